/* The decoder forward pass: one function per block, read top to bottom.
 * Every family runs through this file; what differs is in model_desc. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "cuda/cuda.h"
#include "model/internal.h"
#include "model/rope.h"

/* A flattened batch: tokens of all sequences back to back. */
typedef struct batch {
    const sp_seq_input *seqs;
    int n_seqs;
    int n; /* total tokens */
} batch;

/* ---- scratch ------------------------------------------------------------ */

static void scratch_free(sp_scratch *s) {
    float **bufs[] = {&s->x,        &s->xb,         &s->xb2,    &s->q,        &s->k,
                      &s->v,        &s->att,        &s->gate,   &s->up,       &s->ffn_out,
                      &s->moe_out,  &s->router,     &s->ple,    &s->ple_tmp,  &s->rope_cos,
                      &s->rope_sin, &s->sel_weight, &s->exp_in, &s->exp_gate, &s->exp_up,
                      &s->exp_out};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        sp_aligned_free(*bufs[i]);
        *bufs[i] = NULL;
    }
    free(s->tok_seq);
    free(s->tok_pos);
    free(s->tok_len);
    free(s->tok_span_end);
    free(s->sel_expert);
    free(s->exp_rows);
    s->tok_seq = s->tok_pos = s->tok_len = s->tok_span_end = s->sel_expert = s->exp_rows = NULL;
    s->cap_tokens = 0;
}

void sp_model_scratch_free(sp_model *m) {
    scratch_free(&m->s);
    free(m->s.blk_ptrs);
    m->s.blk_ptrs = NULL;
    m->s.cap_blocks = 0;
}

static float *fbuf(size_t n) {
    return sp_aligned_alloc(n * sizeof(float));
}

static sp_status scratch_reserve(sp_model *m, int n, int max_blocks, sp_error *err) {
    sp_scratch *s = &m->s;
    const sp_model_desc *d = &m->d;
    if (n > s->cap_tokens) {
        scratch_free(s);
        size_t N = (size_t)n, H = (size_t)d->hidden, E = 1, K = 1, I = (size_t)m->max_ffn;
        int moe = 0;
        for (int i = 0; i < d->n_layers; i++) {
            moe |= d->layers[i].n_experts > 0;
            if ((size_t)d->layers[i].n_experts > E) E = (size_t)d->layers[i].n_experts;
            if ((size_t)d->layers[i].n_experts_used > K) K = (size_t)d->layers[i].n_experts_used;
        }
        size_t LP = (size_t)d->n_layers * (size_t)d->ple_dim;
        size_t R = (size_t)(d->n_ropes ? d->n_ropes : 1) * (size_t)m->max_pairs;
        size_t W = H > (size_t)m->max_q ? H : (size_t)m->max_q;
        s->x = fbuf(N * H), s->xb = fbuf(N * W), s->xb2 = fbuf(N * W);
        s->q = fbuf(N * (size_t)m->max_q), s->k = fbuf(N * (size_t)m->max_kv);
        s->v = fbuf(N * (size_t)m->max_kv), s->att = fbuf(N * (size_t)m->max_q);
        s->gate = fbuf(N * I), s->up = fbuf(N * I), s->ffn_out = fbuf(N * H);
        s->moe_out = fbuf(N * H), s->router = fbuf(N * E);
        s->ple = fbuf(N * (LP ? LP : 1)), s->ple_tmp = fbuf(N * (LP ? LP : 1));
        s->rope_cos = fbuf(N * R), s->rope_sin = fbuf(N * R);
        s->tok_seq = malloc(N * sizeof(int)), s->tok_pos = malloc(N * sizeof(int));
        s->tok_len = malloc(N * sizeof(int)), s->tok_span_end = malloc(N * sizeof(int));
        s->sel_expert = malloc(N * K * sizeof(int)), s->sel_weight = fbuf(N * K);
        s->exp_rows = malloc(N * K * sizeof(int));
        /* expert buffers only for MoE models (1 float otherwise) */
        size_t XE = moe ? N : 1;
        s->exp_in = fbuf(XE * H), s->exp_gate = fbuf(XE * I), s->exp_up = fbuf(XE * I);
        s->exp_out = fbuf(XE * H);
        if (!s->x || !s->xb || !s->xb2 || !s->q || !s->k || !s->v || !s->att || !s->gate ||
            !s->up || !s->ffn_out || !s->moe_out || !s->router || !s->ple || !s->ple_tmp ||
            !s->rope_cos || !s->rope_sin || !s->tok_seq || !s->tok_pos || !s->tok_len ||
            !s->tok_span_end || !s->sel_expert || !s->sel_weight || !s->exp_rows || !s->exp_in ||
            !s->exp_gate || !s->exp_up || !s->exp_out) {
            scratch_free(s);
            return sp_fail(err, SP_ENOMEM, "forward: no memory for a batch of %d tokens", n);
        }
        s->cap_tokens = n;
    }
    if (max_blocks > s->cap_blocks) {
        int nth = sp_pool_size(m->pool);
        const float **p = realloc(s->blk_ptrs, (size_t)nth * 2 * (size_t)max_blocks * sizeof *p);
        if (!p) return sp_fail(err, SP_ENOMEM, "forward: block table scratch");
        s->blk_ptrs = p;
        s->cap_blocks = max_blocks;
    }
    return SP_OK;
}

/* ---- input checks ------------------------------------------------------- */

/* The sliding group's table must hold every block from the first one the
 * window of position pos0 reaches back into up to the new tokens' last. */
static sp_status check_swa_table(const sp_kv *kv, const sp_seq_input *q, int si, long need,
                                 sp_error *err) {
    if (!kv->sliding) return SP_OK;
    if (!q->swa_table || need > q->n_swa_blocks)
        return sp_fail(err, SP_ERANGE, "forward: sequence %d needs %ld sliding-window KV blocks",
                       si, need);
    int from = q->pos0 + 1 - kv->swa_window;
    for (long j = from > 0 ? from / kv->block_size : 0; j < need; j++)
        if (q->swa_table[j] < 0 || q->swa_table[j] >= kv->n_swa_blocks)
            return sp_fail(err, SP_ERANGE, "forward: sliding-window block id %d out of range",
                           q->swa_table[j]);
    return SP_OK;
}

/* Media spans must carry their rows, and in a model whose image tokens
 * attend both ways, a chunk must hold the end of every span it reaches into. */
static sp_status check_spans(const sp_model *m, const sp_seq_input *q, int si, sp_error *err) {
    for (int i = 0; i < q->n_spans; i++) {
        const sp_media_span *sp = &q->spans[i];
        int end = sp->pos + sp->n, chunk_end = q->pos0 + q->n_tokens;
        if (sp->n <= 0 || sp->pos < 0 || !sp->embd)
            return sp_fail(err, SP_EINVAL, "forward: sequence %d: media span %d is empty", si, i);
        if (m->media_bidir && end > chunk_end && sp->pos < chunk_end && end > q->pos0)
            return sp_fail(err, SP_EINVAL,
                           "forward: sequence %d: image tokens %d..%d are cut at %d (their "
                           "attention is bidirectional)",
                           si, sp->pos, end - 1, chunk_end);
    }
    return SP_OK;
}

static sp_status check_batch(const sp_model *m, const sp_kv *kv, const batch *b, sp_error *err) {
    for (int si = 0; si < b->n_seqs; si++) {
        const sp_seq_input *q = &b->seqs[si];
        if (q->n_tokens <= 0 || q->pos0 < 0)
            return sp_fail(err, SP_EINVAL, "forward: sequence %d has no tokens", si);
        if (q->want != SP_LOGITS_NONE && !m->d.output.data)
            return sp_fail(err, SP_EUNSUPPORTED,
                           "the model has no output head (lm_head): it computes embeddings only");
        if (q->bidirectional && q->pos0 != 0)
            return sp_fail(err, SP_EINVAL,
                           "forward: bidirectional sequence %d must be whole (pos0 %d)", si,
                           q->pos0);
        long need = ((long)q->pos0 + q->n_tokens + kv->block_size - 1) / kv->block_size;
        if (need > q->n_blocks)
            return sp_fail(err, SP_ERANGE, "forward: sequence %d needs %ld KV blocks, has %d", si,
                           need, q->n_blocks);
        for (int j = 0; j < q->n_blocks; j++)
            if (q->block_table[j] < 0 || q->block_table[j] >= kv->n_blocks)
                return sp_fail(err, SP_ERANGE, "forward: block id %d out of range",
                               q->block_table[j]);
        SP_TRY(check_swa_table(kv, q, si, need, err));
        SP_TRY(check_spans(m, q, si, err));
        for (int j = 0; j < q->n_tokens; j++)
            if (q->tokens[j] < 0 || q->tokens[j] >= m->d.vocab)
                return sp_fail(err, SP_ERANGE,
                               "token id %d at position %d is outside the vocabulary "
                               "(0..%d)",
                               q->tokens[j], q->pos0 + j, m->d.vocab - 1);
    }
    return SP_OK;
}

/* ---- embeddings and positions ------------------------------------------- */

static int32_t embed_id(const sp_model_desc *d, int32_t id) {
    for (int i = 0; i < d->n_media; i++)
        if (id == d->media_ids[i]) return d->media_pad_id;
    return id;
}

/* The media span holding position pos, or NULL. */
static const sp_media_span *span_at(const sp_seq_input *q, int pos) {
    for (int i = 0; i < q->n_spans; i++)
        if (pos >= q->spans[i].pos && pos < q->spans[i].pos + q->spans[i].n) return &q->spans[i];
    return NULL;
}

static void embed_tokens(sp_model *m, const batch *b) {
    const sp_model_desc *d = &m->d;
    sp_scratch *s = &m->s;
    int t = 0;
    for (int si = 0; si < b->n_seqs; si++) {
        const sp_seq_input *q = &b->seqs[si];
        for (int j = 0; j < q->n_tokens; j++, t++) {
            float *x = s->x + (size_t)t * d->hidden;
            const sp_media_span *sp = span_at(q, q->pos0 + j);
            s->tok_span_end[t] = sp ? sp->pos + sp->n : 0;
            if (sp) { /* image features replace the embedding, unscaled */
                memcpy(x, sp->embd + (size_t)(q->pos0 + j - sp->pos) * d->hidden,
                       (size_t)d->hidden * sizeof(float));
            } else {
                sp_tensor_row_f32(&d->tok_embd, embed_id(d, q->tokens[j]), x);
                if (d->embed_scale != 1.0f)
                    for (int i = 0; i < d->hidden; i++) x[i] *= d->embed_scale;
            }
            s->tok_seq[t] = si;
            s->tok_pos[t] = q->pos0 + j;
            s->tok_len[t] = q->pos0 + q->n_tokens;
        }
    }
}

static void rope_angles(sp_model *m, int n) {
    sp_scratch *s = &m->s;
    for (int t = 0; t < n; t++)
        for (int r = 0; r < m->d.n_ropes; r++) {
            size_t off = ((size_t)t * m->d.n_ropes + r) * m->max_pairs;
            sp_rope_angles(&m->d.ropes[r], s->tok_pos[t], s->tok_len[t], s->rope_cos + off,
                           s->rope_sin + off);
        }
}

/* Gemma 4 per-layer inputs: (norm(proj(embedding) / sqrt(H)) + ple_embd[id] *
 * sqrt(P)) / sqrt(2), for every layer at once. */
static void per_layer_inputs(sp_model *m, const batch *b) {
    const sp_model_desc *d = &m->d;
    sp_scratch *s = &m->s;
    int P = d->ple_dim, LP = d->n_layers * P, n = b->n;
    sp_matmul(m->pool, s->ple, s->x, n, &d->ple_model_proj, NULL, m->opts.precision);
    float proj_scale = 1.0f / sqrtf((float)d->hidden), emb_scale = sqrtf((float)P);
    int t = 0;
    for (int si = 0; si < b->n_seqs; si++)
        for (int j = 0; j < b->seqs[si].n_tokens; j++, t++) {
            float *p = s->ple + (size_t)t * LP, *e = s->ple_tmp + (size_t)t * LP;
            sp_tensor_row_f32(&d->ple_embd, embed_id(d, b->seqs[si].tokens[j]), e);
            for (int l = 0; l < d->n_layers; l++) {
                float *pl = p + (size_t)l * P;
                for (int i = 0; i < P; i++) pl[i] *= proj_scale;
                sp_rmsnorm(pl, pl, d->ple_proj_norm.data, P, d->norm_eps, 0);
            }
            for (int i = 0; i < LP; i++) p[i] = (p[i] + e[i] * emb_scale) * (float)M_SQRT1_2;
        }
}

/* ---- attention ------------------------------------------------------------ */

/* The table of the group that holds layer src's K/V. */
static const int32_t *layer_table(const sp_kv *kv, const sp_seq_input *q, int src) {
    return kv->sliding && kv->sliding[src] ? q->swa_table : q->block_table;
}

static float *kv_row(float *base, const int32_t *table, int pos, int bs, int stride) {
    return base + ((size_t)table[pos / bs] * bs + pos % bs) * stride;
}

typedef struct attn_job {
    sp_model *m;
    const batch *b;
    const sp_kv *kv;
    int layer, n;
} attn_job;

static void attn_worker(void *ctx, int ith, int nth) {
    attn_job *j = ctx;
    sp_model *m = j->m;
    const sp_layer_desc *L = &m->d.layers[j->layer];
    sp_scratch *s = &m->s;
    int src = L->kv_source, nkv = L->n_kv_heads, hd = L->head_dim, bs = j->kv->block_size;
    int group = L->n_heads / nkv, stride = nkv * hd, qw = L->n_heads * hd;
    const float **kb = s->blk_ptrs + (size_t)ith * 2 * s->cap_blocks, **vb = kb + s->cap_blocks;
    for (int item = ith; item < j->n * nkv; item += nth) {
        int t = item / nkv, g = item % nkv;
        const sp_seq_input *q = &j->b->seqs[s->tok_seq[t]];
        int pos = s->tok_pos[t], win = L->sliding_window;
        int begin = win > 0 && pos + 1 > win ? pos + 1 - win : 0;
        /* causal: up to itself; bidirectional: the whole input, or as far
         * ahead as the window reaches (|i - j| < window); an image's soft
         * tokens in a media_bidir layer: to the end of their image */
        int end = !q->bidirectional                      ? pos + 1
                  : win > 0 && pos + win < s->tok_len[t] ? pos + win
                                                         : s->tok_len[t];
        if (L->media_bidir && s->tok_span_end[t] > end) end = s->tok_span_end[t];
        int nb = (end - 1) / bs + 1;
        /* blocks before the window are never read (and may be released) */
        const int32_t *table = layer_table(j->kv, q, src);
        for (int bi = begin / bs; bi < nb; bi++) {
            size_t off = (size_t)table[bi] * bs * stride + (size_t)g * hd;
            kb[bi] = j->kv->k[src] + off;
            vb[bi] = j->kv->v[src] + off;
        }
        sp_attn_args a = {
            .out = s->att + (size_t)t * qw + (size_t)g * group * hd,
            .q = s->q + (size_t)t * qw + (size_t)g * group * hd,
            .k_blocks = kb,
            .v_blocks = vb,
            .block_size = bs,
            .kv_stride = stride,
            .n_heads = group,
            .n_kv_heads = 1,
            .head_dim = hd,
            .k_begin = begin,
            .k_end = end,
            .scale = L->attn_scale,
            .softcap = m->d.attn_softcap,
        };
        sp_attention(&a);
    }
}

/* q/k norms, RoPE, and the K/V written into the cache blocks. */
static void qkv_finish(sp_model *m, const batch *b, sp_kv *kv, int layer) {
    const sp_layer_desc *L = &m->d.layers[layer];
    sp_scratch *s = &m->s;
    int nh = L->n_heads, nkv = L->n_kv_heads, hd = L->head_dim, own = L->kv_source == layer;
    const sp_rope_table *r = L->rope >= 0 ? &m->d.ropes[L->rope] : NULL;
    for (int t = 0; t < b->n; t++) {
        float *q = s->q + (size_t)t * nh * hd, *k = s->k + (size_t)t * nkv * hd;
        float *v = s->v + (size_t)t * nkv * hd;
        size_t roff = ((size_t)t * m->d.n_ropes + (L->rope >= 0 ? L->rope : 0)) * m->max_pairs;
        for (int h = 0; h < nh && L->q_norm.data; h++)
            sp_rmsnorm(q + h * hd, q + h * hd, L->q_norm.data, hd, m->d.norm_eps, 0);
        if (r)
            sp_rope(q, nh, hd, r->rot_dim, r->n_pairs, s->rope_cos + roff, s->rope_sin + roff,
                    r->interleaved);
        if (!own) continue;
        if (L->k_eq_v) memcpy(v, k, (size_t)nkv * hd * sizeof(float));
        for (int h = 0; h < nkv; h++) {
            if (L->k_norm.data)
                sp_rmsnorm(k + h * hd, k + h * hd, L->k_norm.data, hd, m->d.norm_eps, 0);
            if (L->has_v_norm) sp_rmsnorm(v + h * hd, v + h * hd, NULL, hd, m->d.norm_eps, 0);
        }
        if (r)
            sp_rope(k, nkv, hd, r->rot_dim, r->n_pairs, s->rope_cos + roff, s->rope_sin + roff,
                    r->interleaved);
        const sp_seq_input *sq = &b->seqs[s->tok_seq[t]];
        size_t bytes = (size_t)nkv * hd * sizeof(float);
        const int32_t *table = layer_table(kv, sq, layer);
        memcpy(kv_row(kv->k[layer], table, s->tok_pos[t], kv->block_size, nkv * hd), k, bytes);
        memcpy(kv_row(kv->v[layer], table, s->tok_pos[t], kv->block_size, nkv * hd), v, bytes);
    }
}

/* out[N, H] = Attention(h[N, H]) */
static void attention_block(sp_model *m, const batch *b, sp_kv *kv, int layer, const float *h,
                            float *out) {
    const sp_layer_desc *L = &m->d.layers[layer];
    sp_scratch *s = &m->s;
    sp_precision p = m->opts.precision;
    sp_matmul(m->pool, s->q, h, b->n, &L->wq, L->bq.data, p);
    if (L->kv_source == layer) {
        sp_matmul(m->pool, s->k, h, b->n, &L->wk, L->bk.data, p);
        if (!L->k_eq_v) sp_matmul(m->pool, s->v, h, b->n, &L->wv, L->bv.data, p);
    }
    qkv_finish(m, b, kv, layer);
    attn_job j = {.m = m, .b = b, .kv = kv, .layer = layer, .n = b->n};
    sp_pool_run(m->pool, attn_worker, &j);
    sp_matmul(m->pool, out, s->att, b->n, &L->wo, L->bo.data, p);
}

/* ---- feed-forward ----------------------------------------------------------- */

static void act_mul(const sp_model *m, float *g, const float *u, int n) {
    if (m->d.act == SP_ACT_SILU)
        sp_silu_mul(g, u, n);
    else
        sp_gelu_tanh_mul(g, u, n);
}

/* out[n, H] = down(act(gate(h)) * up(h)) with the given weights */
static void gated_mlp(sp_model *m, const sp_tensor *wg, const sp_tensor *wu, const sp_tensor *wd,
                      const float *h, int n, float *g, float *u, float *out) {
    int I = (int)wg->shape[0];
    sp_matmul(m->pool, g, h, n, wg, NULL, m->opts.precision);
    sp_matmul(m->pool, u, h, n, wu, NULL, m->opts.precision);
    for (int t = 0; t < n; t++) act_mul(m, g + (size_t)t * I, u + (size_t)t * I, I);
    sp_matmul(m->pool, out, g, n, wd, NULL, m->opts.precision);
}

/* Router: softmax over all experts, top-k (lowest index wins ties),
 * optional renormalisation, Gemma 4's per-expert scale. */
static void route(sp_model *m, const sp_layer_desc *L, const float *rin, int n) {
    sp_scratch *s = &m->s;
    int E = L->n_experts, K = L->n_experts_used;
    /* Picking experts is a discrete choice among scores that are often
     * near-ties: the router always gets f32 activations (E rows, no
     * measurable cost; llama-quantize keeps routers unquantized too).
     * Measured on mixtral at avx512bf16: KL to f32 4.0e-4 -> 4.0e-5. */
    sp_matmul(m->pool, s->router, rin, n, &L->router, NULL, SP_PREC_F32);
    for (int t = 0; t < n; t++) {
        float *p = s->router + (size_t)t * E;
        sp_softmax(p, E);
        int *sel = s->sel_expert + (size_t)t * K;
        float *w = s->sel_weight + (size_t)t * K, sum = 0;
        for (int k = 0; k < K; k++) {
            int best = -1;
            for (int e = 0; e < E; e++) {
                int taken = 0;
                for (int j = 0; j < k; j++) taken |= sel[j] == e;
                if (!taken && (best < 0 || p[e] > p[best])) best = e;
            }
            sel[k] = best;
            w[k] = p[best];
            sum += p[best];
        }
        for (int k = 0; k < K; k++) {
            if (L->moe_norm_topk) w[k] /= sum;
            if (L->expert_scale.data) w[k] *= ((const float *)L->expert_scale.data)[sel[k]];
        }
    }
}

/* out[n, H] = sum over selected experts of weight * expert(h). Tokens are
 * grouped by expert so each expert's weights are read once per batch. */
static void experts(sp_model *m, const sp_layer_desc *L, const float *h, int n, float *out) {
    sp_scratch *s = &m->s;
    int H = m->d.hidden, K = L->n_experts_used;
    memset(out, 0, (size_t)n * H * sizeof(float));
    for (int e = 0; e < L->n_experts; e++) {
        int cnt = 0;
        for (int i = 0; i < n * K; i++)
            if (s->sel_expert[i] == e) s->exp_rows[cnt++] = i;
        if (!cnt) continue;
        for (int r = 0; r < cnt; r++)
            memcpy(s->exp_in + (size_t)r * H, h + (size_t)(s->exp_rows[r] / K) * H,
                   (size_t)H * sizeof(float));
        gated_mlp(m, &L->exp_gate[e], &L->exp_up[e], &L->exp_down[e], s->exp_in, cnt, s->exp_gate,
                  s->exp_up, s->exp_out);
        for (int r = 0; r < cnt; r++) {
            int slot = s->exp_rows[r];
            sp_axpy(out + (size_t)(slot / K) * H, s->sel_weight[slot], s->exp_out + (size_t)r * H,
                    H);
        }
    }
}

static void norm_rows(const sp_model *m, float *y, const float *x, const sp_tensor *w, int n) {
    int H = m->d.hidden;
    for (int t = 0; t < n; t++)
        sp_rmsnorm(y + (size_t)t * H, x + (size_t)t * H, w ? w->data : NULL, H, m->d.norm_eps, 0);
}

/* f[n, H] = the layer's feed-forward of the residual stream x (its input
 * norm included, its output norm not). */
static void ffn_block(sp_model *m, const sp_layer_desc *L, const float *x, int n, float *f) {
    sp_scratch *s = &m->s;
    int H = m->d.hidden;
    norm_rows(m, s->xb, x, &L->pre_ffn_norm, n);
    if (!L->n_experts) {
        gated_mlp(m, &L->w_gate, &L->w_up, &L->w_down, s->xb, n, s->gate, s->up, f);
        return;
    }
    if (!L->moe_has_dense) { /* Mixtral, Qwen3-MoE: the router reads the normed input */
        route(m, L, s->xb, n);
        experts(m, L, s->xb, n, f);
        return;
    }
    /* Gemma 4: dense MLP and experts side by side; the router reads the
     * residual stream: RMS(x) * scale / sqrt(H) */
    gated_mlp(m, &L->w_gate, &L->w_up, &L->w_down, s->xb, n, s->gate, s->up, f);
    norm_rows(m, f, f, &L->post_ffn_norm1, n);
    norm_rows(m, s->xb2, x, NULL, n);
    const float *rs = L->router_scale.data;
    float root = 1.0f / sqrtf((float)H);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < H; i++) s->xb2[(size_t)t * H + i] *= rs[i] * root;
    route(m, L, s->xb2, n);
    norm_rows(m, s->xb2, x, &L->pre_ffn_norm2, n);
    experts(m, L, s->xb2, n, s->moe_out);
    norm_rows(m, s->moe_out, s->moe_out, &L->post_ffn_norm2, n);
    for (size_t i = 0; i < (size_t)n * H; i++) f[i] += s->moe_out[i];
}

/* Gemma 4 per-layer input: x += norm(proj(act(gate(x)) * ple_i)) */
static void per_layer_input_block(sp_model *m, const sp_layer_desc *L, int layer, float *x, int n) {
    sp_scratch *s = &m->s;
    int P = m->d.ple_dim, LP = m->d.n_layers * P, H = m->d.hidden;
    sp_matmul(m->pool, s->gate, x, n, &L->ple_gate, NULL, m->opts.precision);
    for (int t = 0; t < n; t++)
        act_mul(m, s->gate + (size_t)t * P, s->ple + (size_t)t * LP + (size_t)layer * P, P);
    sp_matmul(m->pool, s->ffn_out, s->gate, n, &L->ple_proj, NULL, m->opts.precision);
    norm_rows(m, s->ffn_out, s->ffn_out, &L->ple_post_norm, n);
    for (size_t i = 0; i < (size_t)n * H; i++) x[i] += s->ffn_out[i];
}

/* ---- the decoder ------------------------------------------------------------ */

static void add_rows(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static void decoder_layer(sp_model *m, const batch *b, sp_kv *kv, int layer) {
    const sp_layer_desc *L = &m->d.layers[layer];
    sp_scratch *s = &m->s;
    int n = b->n;
    size_t nh = (size_t)n * m->d.hidden;
    norm_rows(m, s->xb, s->x, &L->attn_norm, n);
    attention_block(m, b, kv, layer, s->xb, s->ffn_out);
    if (L->post_attn_norm.data) norm_rows(m, s->ffn_out, s->ffn_out, &L->post_attn_norm, n);
    add_rows(s->x, s->ffn_out, nh);
    ffn_block(m, L, s->x, n, s->ffn_out);
    if (L->post_ffn_norm.data) norm_rows(m, s->ffn_out, s->ffn_out, &L->post_ffn_norm, n);
    add_rows(s->x, s->ffn_out, nh);
    if (m->d.ple_dim) per_layer_input_block(m, L, layer, s->x, n);
    if (L->layer_scalar != 1.0f)
        for (size_t i = 0; i < nh; i++) s->x[i] *= L->layer_scalar;
}

/* Final norm and output head for the rows whose logits were asked for. */
static void output_logits(sp_model *m, const batch *b, float *logits) {
    sp_scratch *s = &m->s;
    const sp_model_desc *d = &m->d;
    int H = d->hidden, rows = 0, t = 0;
    for (int si = 0; si < b->n_seqs; si++) {
        const sp_seq_input *q = &b->seqs[si];
        for (int j = 0; j < q->n_tokens; j++, t++) {
            int want =
                q->want == SP_LOGITS_ALL || (q->want == SP_LOGITS_LAST && j == q->n_tokens - 1);
            if (want)
                memcpy(s->xb + (size_t)rows++ * H, s->x + (size_t)t * H, (size_t)H * sizeof(float));
        }
    }
    if (!rows) return;
    norm_rows(m, s->xb, s->xb, &d->out_norm, rows);
    sp_matmul(m->pool, logits, s->xb, rows, &d->output, NULL, m->opts.precision);
    if (d->final_softcap > 0) sp_softcap(logits, rows * d->vocab, d->final_softcap);
}

/* Final-normed hidden states of every token of the sequences that asked
 * (what embedding pooling reads). */
static void output_hidden(sp_model *m, const batch *b) {
    const sp_model_desc *d = &m->d;
    int t = 0;
    for (int si = 0; si < b->n_seqs; si++) {
        const sp_seq_input *q = &b->seqs[si];
        if (q->hidden)
            norm_rows(m, q->hidden, m->s.x + (size_t)t * d->hidden, &d->out_norm, q->n_tokens);
        t += q->n_tokens;
    }
}

sp_status sp_model_forward(sp_model *m, sp_kv *kv, const sp_seq_input *seqs, int n_seqs,
                           float *logits, sp_error *err) {
    batch b = {.seqs = seqs, .n_seqs = n_seqs, .n = 0};
    int max_blocks = 1;
    for (int i = 0; i < n_seqs; i++) {
        b.n += seqs[i].n_tokens;
        if (seqs[i].n_blocks > max_blocks) max_blocks = seqs[i].n_blocks;
        if (kv->sliding && seqs[i].n_swa_blocks > max_blocks) max_blocks = seqs[i].n_swa_blocks;
    }
    if (b.n == 0) return SP_OK;
    SP_TRY(check_batch(m, kv, &b, err));
    if (m->gpu) return sp_cuda_forward(m->gpu, kv->gpu, seqs, n_seqs, logits, err);
    SP_TRY(scratch_reserve(m, b.n, max_blocks, err));
    embed_tokens(m, &b);
    rope_angles(m, b.n);
    if (m->d.ple_dim) per_layer_inputs(m, &b);
    for (int l = 0; l < m->d.n_layers; l++) decoder_layer(m, &b, kv, l);
    output_logits(m, &b, logits);
    output_hidden(m, &b);
    return SP_OK;
}
