/* The decoder forward pass on the GPU: the same blocks as model/forward.c,
 * in the same order, reading the same sp_model_desc; one function per
 * block, read top to bottom. A batch larger than the scratch (max_tokens
 * tokens, or more block-table entries than one step uploads) runs as
 * several chunks; sequences are independent and a sequence's tokens may be
 * split, since earlier chunks leave their K/V in the cache. */
#include <math.h>
#include <string.h>

#include "cuda/internal.cuh"

/* ---- a chunk: pieces of sequences, and their metadata on the device ------------- */

struct piece {
    const sp_seq_input *q;
    int j0, n; /* tokens j0 .. j0+n-1 of q */
};

/* Device views of the metadata (sp_cuda_kv.meta): per token its id (media
 * placeholders remapped), position, sequence end (RoPE variants that
 * depend on length), offsets of its sequence's full and sliding tables,
 * the end of the image span holding it (0: none), its sequence's length
 * when that sequence's attention is bidirectional (0: causal), then the
 * rows whose logits are wanted, then the tables. */
struct meta {
    int32_t *tok, *pos, *len, *tab, *swatab, *span_end, *bidir_len, *rows, *tables;
    int T, n_rows;
};

/* The views of a metadata buffer of N tokens (laid out as upload_meta fills it). */
static meta meta_views(int32_t *v, int N, int T, int n_rows) {
    static_assert(META_PER_TOKEN == 8, "meta_views lays out 8 per-token arrays");
    meta m;
    m.tok = v, m.pos = v + N, m.len = v + 2 * N, m.tab = v + 3 * N, m.swatab = v + 4 * N;
    m.span_end = v + 5 * N, m.bidir_len = v + 6 * N, m.rows = v + 7 * N;
    m.tables = v + META_PER_TOKEN * N, m.T = T, m.n_rows = n_rows;
    return m;
}

/* The media span holding position pos, or NULL (model/forward.c span_at). */
static const sp_media_span *span_at(const sp_seq_input *q, int pos) {
    for (int i = 0; i < q->n_spans; i++)
        if (pos >= q->spans[i].pos && pos < q->spans[i].pos + q->spans[i].n) return &q->spans[i];
    return NULL;
}

static int32_t embed_id(const sp_model_desc *d, int32_t id) {
    for (int i = 0; i < d->n_media; i++)
        if (id == d->media_ids[i]) return d->media_pad_id;
    return id;
}

static int blocks_needed(const piece *p, int bs) {
    return (p->q->pos0 + p->j0 + p->n + bs - 1) / bs;
}

static int wants_logits(const piece *p, int j) {
    sp_logits_want w = p->q->want;
    return w == SP_LOGITS_ALL || (w == SP_LOGITS_LAST && p->j0 + j == p->q->n_tokens - 1);
}

/* Fills the pinned metadata for the pieces and copies it to the device. */
static sp_status upload_meta(sp_cuda *g, sp_cuda_kv *kv, const piece *ps, int np, meta *m,
                             sp_error *err) {
    const sp_model_desc *d = g->d;
    int N = g->max_tokens, bs = kv->block_size, grouped = kv->n_swa > 0;
    meta hm = meta_views(kv->meta_host, N, 0, 0);
    int32_t *tok = hm.tok, *pos = hm.pos, *len = hm.len, *tab = hm.tab, *swatab = hm.swatab;
    int32_t *span_end = hm.span_end, *bidir_len = hm.bidir_len, *rows = hm.rows;
    int32_t *tables = hm.tables;
    int t = 0, nt = 0, nr = 0;
    for (int i = 0; i < np; i++) {
        const piece *p = &ps[i];
        int nb = blocks_needed(p, bs);
        memcpy(tables + nt, p->q->block_table, (size_t)nb * sizeof(int32_t));
        int full_off = nt;
        nt += nb;
        int swa_off = full_off;
        if (grouped) {
            memcpy(tables + nt, p->q->swa_table, (size_t)nb * sizeof(int32_t));
            swa_off = nt;
            nt += nb;
        }
        for (int j = 0; j < p->n; j++, t++) {
            tok[t] = embed_id(d, p->q->tokens[p->j0 + j]);
            pos[t] = p->q->pos0 + p->j0 + j;
            len[t] = p->q->pos0 + p->q->n_tokens;
            tab[t] = full_off;
            swatab[t] = swa_off;
            const sp_media_span *sp = span_at(p->q, pos[t]);
            span_end[t] = sp ? sp->pos + sp->n : 0;
            bidir_len[t] = p->q->bidirectional ? len[t] : 0;
            if (wants_logits(p, j)) rows[nr++] = t;
        }
    }
    CU_TRY(cudaMemcpyAsync(kv->meta, kv->meta_host,
                           ((size_t)META_PER_TOKEN * N + nt) * sizeof(int32_t),
                           cudaMemcpyHostToDevice, g->st),
           err);
    *m = meta_views(kv->meta, N, t, nr);
    return SP_OK;
}

/* Image soft tokens: their rows of x are the vision projector's output
 * (host memory of the request), copied over the text embeddings. */
static sp_status media_rows(sp_cuda *g, const piece *ps, int np, sp_error *err) {
    int H = g->d->hidden, t = 0;
    for (int i = 0; i < np; i++) {
        const piece *p = &ps[i];
        for (int j = 0; j < p->n; j++, t++) {
            int pos = p->q->pos0 + p->j0 + j;
            const sp_media_span *sp = span_at(p->q, pos);
            if (!sp) continue;
            int run = 1; /* the rest of this span inside the piece, in one copy */
            while (j + run < p->n && pos + run < sp->pos + sp->n) run++;
            CU_TRY(cudaMemcpyAsync(g->s.x + (size_t)t * H, sp->embd + (size_t)(pos - sp->pos) * H,
                                   (size_t)run * H * sizeof(float), cudaMemcpyHostToDevice, g->st),
                   err);
            j += run - 1, t += run - 1;
        }
    }
    return SP_OK;
}

/* ---- blocks ------------------------------------------------------------------- */

static const int32_t *layer_tab(const sp_cuda_kv *kv, const meta *m, int src) {
    return kv->sliding[src] ? m->swatab : m->tab;
}

/* out[T, H] = Attention(h[T, H]) */
static sp_status attention_block(sp_cuda *g, sp_cuda_kv *kv, int l, const meta *m,
                                 const float *h, float *out, sp_error *err) {
    const sp_layer_desc *L = &g->d->layers[l];
    const dlayer *D = &g->L[l];
    dscratch *s = &g->s;
    int T = m->T, own = L->kv_source == l;
    SP_TRY(sp_cu_matmul(g, s->q, h, T, &D->wq, D->bq, err));
    if (own) {
        SP_TRY(sp_cu_matmul(g, s->k, h, T, &D->wk, D->bk, err));
        if (!L->k_eq_v)
            SP_TRY(sp_cu_matmul(g, s->v, h, T, &D->wv, D->bv, err));
        else /* values are the raw key projection */
            CU_TRY(cudaMemcpyAsync(s->v, s->k,
                                   (size_t)T * L->n_kv_heads * L->head_dim * sizeof(float),
                                   cudaMemcpyDeviceToDevice, g->st),
                   err);
    }
    sp_cu_head_norm_rope(g, s->q, T, L->n_heads, L->head_dim, D->q_norm, D->q_norm != NULL,
                         L->rope);
    if (own) {
        sp_cu_head_norm_rope(g, s->k, T, L->n_kv_heads, L->head_dim, D->k_norm,
                             D->k_norm != NULL, L->rope);
        if (L->has_v_norm) sp_cu_head_norm_rope(g, s->v, T, L->n_kv_heads, L->head_dim, NULL, 1, -1);
        sp_cu_kv_write(g, kv, l, s->k, s->v, T, m->pos, m->tables, layer_tab(kv, m, l));
    }
    sp_cu_attention(g, kv, l, s->q, s->att, T, m->pos, L->media_bidir ? m->span_end : NULL,
                    m->bidir_len, m->tables, layer_tab(kv, m, L->kv_source));
    return sp_cu_matmul(g, out, s->att, T, &D->wo, D->bo, err);
}

/* out[T, H] = down(act(gate(h)) * up(h)) */
static sp_status gated_mlp(sp_cuda *g, const dmat *wg, const dmat *wu, const dmat *wd,
                           const float *h, int T, float *out, sp_error *err) {
    dscratch *s = &g->s;
    SP_TRY(sp_cu_matmul(g, s->gate, h, T, wg, NULL, err));
    SP_TRY(sp_cu_matmul(g, s->up, h, T, wu, NULL, err));
    sp_cu_act_mul(g->st, s->gate, s->up, (size_t)T * wg->rows, g->d->act == SP_ACT_GELU_TANH);
    return sp_cu_matmul(g, out, s->gate, T, wd, NULL, err);
}

/* out[T, H] = sum over the selected experts of weight * expert(h), the
 * router reading rin. */
static sp_status moe(sp_cuda *g, int l, const float *rin, const float *h, int T, float *out,
                     sp_error *err) {
    const sp_layer_desc *L = &g->d->layers[l];
    const dlayer *D = &g->L[l];
    dscratch *s = &g->s;
    int K = L->n_experts_used, slots = T * K;
    SP_TRY(sp_cu_matmul_exact(g, s->router, rin, T, &D->router, err));
    sp_cu_route(g->st, s->router, T, L->n_experts, K, L->moe_norm_topk, D->expert_scale, s->sel,
                s->selw);
    SP_TRY(sp_cu_matmul_experts(g, s->eg, h, K, slots, s->sel, &D->eg, err));
    SP_TRY(sp_cu_matmul_experts(g, s->eu, h, K, slots, s->sel, &D->eu, err));
    sp_cu_act_mul(g->st, s->eg, s->eu, (size_t)slots * D->eg.rows,
                  g->d->act == SP_ACT_GELU_TANH);
    SP_TRY(sp_cu_matmul_experts(g, s->eo, s->eg, 1, slots, s->sel, &D->ed, err));
    sp_cu_moe_combine(g->st, out, s->eo, s->selw, T, K, g->d->hidden);
    return SP_OK;
}

/* f[T, H] = the layer's feed-forward of the residual stream x (its input
 * norm included, its output norm not). */
static sp_status ffn_block(sp_cuda *g, int l, const float *x, int T, float *f, sp_error *err) {
    const sp_model_desc *d = g->d;
    const sp_layer_desc *L = &d->layers[l];
    const dlayer *D = &g->L[l];
    dscratch *s = &g->s;
    int H = d->hidden;
    sp_cu_rmsnorm(g->st, s->xb, x, D->pre_ffn_norm, T, H, H, d->norm_eps);
    if (!L->n_experts) return gated_mlp(g, &D->gate, &D->up, &D->down, s->xb, T, f, err);
    if (!L->moe_has_dense) /* Mixtral, Qwen3-MoE: the router reads the normed input */
        return moe(g, l, s->xb, s->xb, T, f, err);
    /* Gemma 4: dense MLP and experts side by side; the router reads the
     * residual stream: RMS(x) * scale / sqrt(H) */
    SP_TRY(gated_mlp(g, &D->gate, &D->up, &D->down, s->xb, T, f, err));
    sp_cu_rmsnorm(g->st, f, f, D->post_ffn_norm1, T, H, H, d->norm_eps);
    sp_cu_rmsnorm(g->st, s->xb2, x, NULL, T, H, H, d->norm_eps);
    sp_cu_scale_cols(g->st, s->xb2, D->router_scale, 1.0f / sqrtf((float)H), T, H);
    sp_cu_rmsnorm(g->st, s->xb, x, D->pre_ffn_norm2, T, H, H, d->norm_eps);
    SP_TRY(moe(g, l, s->xb2, s->xb, T, s->moe_out, err));
    sp_cu_rmsnorm(g->st, s->moe_out, s->moe_out, D->post_ffn_norm2, T, H, H, d->norm_eps);
    sp_cu_add(g->st, f, s->moe_out, (size_t)T * H);
    return SP_OK;
}

/* Gemma 4 per-layer input: x += norm(proj(act(gate(x)) * ple_l)) */
static sp_status per_layer_input_block(sp_cuda *g, int l, int T, sp_error *err) {
    const sp_model_desc *d = g->d;
    const dlayer *D = &g->L[l];
    dscratch *s = &g->s;
    int P = d->ple_dim, H = d->hidden;
    SP_TRY(sp_cu_matmul(g, s->gate, s->x, T, &D->ple_gate, NULL, err));
    sp_cu_act_mul_strided(g->st, s->gate, P, s->ple + (size_t)l * P, d->n_layers * P, T, P,
                          d->act == SP_ACT_GELU_TANH);
    SP_TRY(sp_cu_matmul(g, s->ffn_out, s->gate, T, &D->ple_proj, NULL, err));
    sp_cu_rmsnorm(g->st, s->ffn_out, s->ffn_out, D->ple_post_norm, T, H, H, d->norm_eps);
    sp_cu_add(g->st, s->x, s->ffn_out, (size_t)T * H);
    return SP_OK;
}

static sp_status decoder_layer(sp_cuda *g, sp_cuda_kv *kv, int l, const meta *m, sp_error *err) {
    const sp_model_desc *d = g->d;
    const sp_layer_desc *L = &d->layers[l];
    const dlayer *D = &g->L[l];
    dscratch *s = &g->s;
    int T = m->T, H = d->hidden;
    size_t nh = (size_t)T * H;
    sp_cu_rmsnorm(g->st, s->xb, s->x, D->attn_norm, T, H, H, d->norm_eps);
    SP_TRY(attention_block(g, kv, l, m, s->xb, s->ffn_out, err));
    if (D->post_attn_norm)
        sp_cu_rmsnorm(g->st, s->ffn_out, s->ffn_out, D->post_attn_norm, T, H, H, d->norm_eps);
    sp_cu_add(g->st, s->x, s->ffn_out, nh);
    SP_TRY(ffn_block(g, l, s->x, T, s->ffn_out, err));
    if (D->post_ffn_norm)
        sp_cu_rmsnorm(g->st, s->ffn_out, s->ffn_out, D->post_ffn_norm, T, H, H, d->norm_eps);
    sp_cu_add(g->st, s->x, s->ffn_out, nh);
    if (d->ple_dim) SP_TRY(per_layer_input_block(g, l, T, err));
    if (L->layer_scalar != 1.0f) sp_cu_scale(g->st, s->x, L->layer_scalar, nh);
    return SP_OK;
}

/* Embeddings, RoPE angles and (Gemma 4) per-layer inputs of the chunk. */
static sp_status inputs(sp_cuda *g, const meta *m, const piece *ps, int np, sp_error *err) {
    const sp_model_desc *d = g->d;
    dscratch *s = &g->s;
    sp_cu_embed(g->st, &g->tok_embd, m->tok, m->T, d->embed_scale, s->x, d->hidden);
    SP_TRY(media_rows(g, ps, np, err));
    sp_cu_rope_angles(g, m->pos, m->len, m->T);
    if (!d->ple_dim) return SP_OK;
    int LP = d->n_layers * d->ple_dim;
    SP_TRY(sp_cu_matmul(g, s->ple, s->x, m->T, &g->ple_model_proj, NULL, err));
    sp_cu_embed(g->st, &g->ple_embd, m->tok, m->T, 1.0f, s->ple_tmp, LP);
    sp_cu_ple_combine(g->st, s->ple, s->ple_tmp, g->ple_proj_norm, m->T, d->n_layers, d->ple_dim,
                      d->hidden, d->norm_eps);
    return SP_OK;
}

/* Final norm and output head: logits rows r0 .. r0+n-1 of the wanted rows
 * (gathered into xb and normed when r0 is 0) into s->logits. */
static sp_status head_rows(sp_cuda *g, const meta *m, int r0, int n, sp_error *err) {
    const sp_model_desc *d = g->d;
    dscratch *s = &g->s;
    int H = d->hidden;
    if (r0 == 0) {
        sp_cu_gather_rows(g->st, s->xb, s->x, m->rows, m->n_rows, H);
        sp_cu_rmsnorm(g->st, s->xb, s->xb, g->out_norm, m->n_rows, H, H, d->norm_eps);
    }
    SP_TRY(sp_cu_matmul(g, s->logits, s->xb + (size_t)r0 * H, n, &g->output, NULL, err));
    if (d->final_softcap > 0)
        sp_cu_softcap(g->st, s->logits, (size_t)n * d->vocab, d->final_softcap);
    return SP_OK;
}

/* Copies n rows of s->logits to host memory (waits for the stream). */
static sp_status copy_logits(sp_cuda *g, float *logits, int n, sp_error *err) {
    size_t bytes = (size_t)n * g->d->vocab * sizeof(float);
    CU_TRY(cudaMemcpyAsync(g->logits_host, g->s.logits, bytes, cudaMemcpyDeviceToHost, g->st),
           err);
    CU_TRY(cudaStreamSynchronize(g->st), err);
    memcpy(logits, g->logits_host, bytes);
    return SP_OK;
}

/* The final-normed hidden states of the pieces that asked for them
 * (sp_seq_input.hidden, what embedding pooling reads), copied to their
 * rows of host memory; waits for the stream. ffn_out is free after the
 * last layer. */
static sp_status copy_hidden(sp_cuda *g, const piece *ps, int np, sp_error *err) {
    const sp_model_desc *d = g->d;
    int H = d->hidden, t = 0, any = 0;
    for (int i = 0; i < np; t += ps[i].n, i++) {
        const piece *p = &ps[i];
        if (!p->q->hidden) continue;
        float *dev = g->s.ffn_out + (size_t)t * H;
        sp_cu_rmsnorm(g->st, dev, g->s.x + (size_t)t * H, g->out_norm, p->n, H, H, d->norm_eps);
        CU_TRY(cudaMemcpyAsync(p->q->hidden + (size_t)p->j0 * H, dev,
                               (size_t)p->n * H * sizeof(float), cudaMemcpyDeviceToHost, g->st),
               err);
        any = 1;
    }
    if (any) CU_TRY(cudaStreamSynchronize(g->st), err);
    return SP_OK;
}

/* Everything of a chunk after its metadata is on the device, up to the
 * first logits_rows rows of logits (all of them when they fit). */
static sp_status run_layers(sp_cuda *g, sp_cuda_kv *kv, const meta *m, const piece *ps, int np,
                            sp_error *err) {
    SP_TRY(inputs(g, m, ps, np, err));
    for (int l = 0; l < g->d->n_layers; l++) SP_TRY(decoder_layer(g, kv, l, m, err));
    if (!m->n_rows) return SP_OK;
    int n = m->n_rows < g->s.logit_rows ? m->n_rows : g->s.logit_rows;
    return head_rows(g, m, 0, n, err);
}

/* A decode step of T <= SP_CUDA_GRAPH_MAX sequences, one new token and its
 * logits each: the same launches every step (positions and tables are read
 * from the metadata on the device), so they were captured once per T when
 * the K/V blocks were made, and a step is one graph launch. Media spans,
 * bidirectional attention and hidden states are never in a graph. */
static int graph_step(const sp_cuda *g, const sp_cuda_kv *kv, const piece *ps, int np) {
    if (np > SP_CUDA_GRAPH_MAX || !kv->graph[np]) return 0;
    for (int i = 0; i < np; i++) {
        const sp_seq_input *q = ps[i].q;
        if (ps[i].n != 1 || q->want != SP_LOGITS_LAST || ps[i].j0 != q->n_tokens - 1 ||
            q->n_spans || q->bidirectional || q->hidden)
            return 0;
    }
    return 1;
}

sp_status sp_cu_capture_decode(sp_cuda *g, sp_cuda_kv *kv, sp_error *err) {
    int N = g->max_tokens;
    if (!g->output.p) return SP_OK; /* no output head (an embedding model): nothing decodes */
    for (int T = 1; T <= SP_CUDA_GRAPH_MAX && T <= N && T <= g->s.logit_rows; T++) {
        meta m = meta_views(kv->meta, N, T, T);
        cudaGraph_t graph;
        CU_TRY(cudaStreamBeginCapture(g->st, cudaStreamCaptureModeThreadLocal), err);
        sp_status s = run_layers(g, kv, &m, NULL, 0, err);
        cudaError_t e = cudaStreamEndCapture(g->st, &graph);
        SP_TRY(s);
        CU_TRY(e, err);
        e = cudaGraphInstantiate(&kv->graph[T], graph, 0);
        cudaGraphDestroy(graph);
        CU_TRY(e, err);
    }
    return SP_OK;
}

static sp_status run_chunk(sp_cuda *g, sp_cuda_kv *kv, const piece *ps, int np, float *logits,
                           int *rows_out, sp_error *err) {
    meta m;
    SP_TRY(upload_meta(g, kv, ps, np, &m, err));
    if (graph_step(g, kv, ps, np))
        CU_TRY(cudaGraphLaunch(kv->graph[np], g->st), err);
    else
        SP_TRY(run_layers(g, kv, &m, ps, np, err));
    for (int r0 = 0; r0 < m.n_rows; r0 += g->s.logit_rows) {
        int n = m.n_rows - r0 < g->s.logit_rows ? m.n_rows - r0 : g->s.logit_rows;
        if (r0) SP_TRY(head_rows(g, &m, r0, n, err));
        SP_TRY(copy_logits(g, logits + (size_t)r0 * g->d->vocab, n, err));
    }
    SP_TRY(copy_hidden(g, ps, np, err));
    /* the pinned metadata is reused by the next chunk: wait for this one */
    CU_TRY(cudaStreamSynchronize(g->st), err);
    CU_TRY(cudaGetLastError(), err);
    *rows_out = m.n_rows;
    return SP_OK;
}

/* ---- the batch ------------------------------------------------------------------ */

#define MAX_PIECES 1024

/* Tokens of q from j0 on that one chunk may take when room are free: never
 * a cut inside an image whose tokens attend both ways, nor anywhere in a
 * bidirectional input (the earlier part would read keys not written yet).
 * 0: the cut must wait for a new chunk. */
static int piece_len(const sp_cuda *g, const sp_seq_input *q, int j0, int room) {
    int n = q->n_tokens - j0 < room ? q->n_tokens - j0 : room;
    if (j0 + n == q->n_tokens) return n;
    if (q->bidirectional) return 0;
    if (!g->media_bidir) return n;
    const sp_media_span *sp = span_at(q, q->pos0 + j0 + n);
    if (sp && sp->pos < q->pos0 + j0 + n) n = sp->pos - (q->pos0 + j0);
    return n > 0 ? n : 0;
}

extern "C" sp_status sp_cuda_forward(sp_cuda *g, sp_cuda_kv *kv, const sp_seq_input *seqs,
                                     int n_seqs, float *logits, sp_error *err) {
    SP_CUDA_OWNED(g);
    piece ps[MAX_PIECES];
    int np = 0, tokens = 0, table = 0, per_seq = kv->n_swa > 0 ? 2 : 1;
    for (int si = 0; si < n_seqs; si++) {
        const sp_seq_input *q = &seqs[si];
        for (int j0 = 0; j0 < q->n_tokens;) {
            int room = g->max_tokens - tokens;
            piece p = {q, j0, piece_len(g, q, j0, room)};
            if (p.n == 0 && np == 0 && q->bidirectional)
                return sp_fail(err, SP_ERANGE,
                               "cuda: sequence %d: a bidirectional input of %d tokens does not "
                               "fit one forward chunk of %d (sp_model_opts.max_batch_tokens)",
                               si, q->n_tokens, g->max_tokens);
            if (p.n == 0 && np == 0)
                return sp_fail(err, SP_ERANGE,
                               "cuda: sequence %d: an image of more than %d tokens does not fit "
                               "one forward chunk (sp_model_opts.max_batch_tokens)",
                               si, g->max_tokens);
            if (p.n == 0) room = 0; /* start a new chunk at the image */
            int tab = per_seq * blocks_needed(&p, kv->block_size);
            if (np == 0 && table + tab > kv->table_cap)
                return sp_fail(err, SP_ERANGE,
                               "cuda: sequence %d needs %d block-table entries, more than the "
                               "%d one step holds",
                               si, tab, kv->table_cap);
            if (room == 0 || np == MAX_PIECES || table + tab > kv->table_cap) {
                int rows;
                SP_TRY(run_chunk(g, kv, ps, np, logits, &rows, err));
                logits += (size_t)rows * g->d->vocab;
                np = tokens = table = 0;
                continue;
            }
            ps[np++] = p;
            tokens += p.n, table += tab, j0 += p.n;
        }
    }
    int rows;
    if (np) SP_TRY(run_chunk(g, kv, ps, np, logits, &rows, err));
    return SP_OK;
}
