#include "model/gguf_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "model/rope.h"

typedef enum arch { A_LLAMA, A_QWEN2, A_QWEN3, A_QWEN3MOE, A_GEMMA2, A_GEMMA3, A_PHI3 } arch;

static const struct {
    const char *name;
    arch a;
} archs[] = {{"llama", A_LLAMA},   {"mistral", A_LLAMA},     {"qwen2", A_QWEN2},
             {"qwen3", A_QWEN3},   {"qwen3moe", A_QWEN3MOE}, {"gemma2", A_GEMMA2},
             {"gemma3", A_GEMMA3}, {"phi3", A_PHI3}};

typedef struct gmap {
    const struct sp_gguf *g;
    sp_weights *w;
    sp_model_desc *d;
    arch a;
    const char *an; /* architecture name: key prefix */
} gmap;

static sp_status gg_lookup(void *src, const char *name, sp_src_tensor *out, sp_error *err) {
    const sp_gguf_tensor *t;
    SP_TRY(sp_gguf_get_tensor(src, name, &t, err));
    out->dtype = t->dtype;
    out->ndim = t->ndim;
    memset(out->shape, 0, sizeof out->shape);
    memcpy(out->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    out->data = t->data;
    out->nbytes = t->nbytes;
    return SP_OK;
}

/* "{arch}.key" getters */
static sp_status kv_u32(gmap *m, const char *key, uint32_t def, int req, uint32_t *out,
                        sp_error *err) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", m->an, key);
    return sp_gguf_get_u32(m->g, k, def, req, out, err);
}

static sp_status kv_f32(gmap *m, const char *key, float def, float *out, sp_error *err) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", m->an, key);
    return sp_gguf_get_f32(m->g, k, def, 0, out, err);
}

static sp_status get(gmap *m, sp_tensor *out, int req, int f32, int ndim, int64_t d0, int64_t d1,
                     int64_t d2, sp_error *err, const char *fmt, ...)
    __attribute__((format(printf, 10, 11)));

static sp_status get(gmap *m, sp_tensor *out, int req, int f32, int ndim, int64_t d0, int64_t d1,
                     int64_t d2, sp_error *err, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int64_t shape[3] = {d0, d1, d2};
    if (f32) return sp_weights_get_f32(m->w, name, req, ndim, shape, 0, out, err);
    return sp_weights_get(m->w, name, req, ndim, shape, out, err);
}

/* ---- hyper-parameters --------------------------------------------------- */

static sp_status read_hparams(gmap *m, uint32_t *ffn, sp_error *err) {
    sp_model_desc *d = m->d;
    uint32_t v, nh, nkv, hd, ctx, window = 0;
    SP_TRY(kv_u32(m, "embedding_length", 0, 1, &v, err));
    d->hidden = (int)v;
    SP_TRY(kv_u32(m, "block_count", 0, 1, &v, err));
    d->n_layers = (int)v;
    SP_TRY(kv_u32(m, "feed_forward_length", 0, m->a != A_QWEN3MOE, ffn, err));
    SP_TRY(kv_u32(m, "context_length", 4096, 0, &ctx, err));
    d->max_pos = (int)ctx;
    SP_TRY(kv_u32(m, "attention.head_count", 0, 1, &nh, err));
    SP_TRY(kv_u32(m, "attention.head_count_kv", nh, 0, &nkv, err));
    SP_TRY(kv_u32(m, "attention.key_length", d->hidden / (nh ? nh : 1), 0, &hd, err));
    SP_TRY(kv_u32(m, "attention.sliding_window", 0, 0, &window, err));
    SP_TRY(kv_f32(m, "attention.layer_norm_rms_epsilon", 1e-5f, &d->norm_eps, err));
    SP_TRY(kv_f32(m, "attn_logit_softcapping", 0, &d->attn_softcap, err));
    SP_TRY(kv_f32(m, "final_logit_softcapping", 0, &d->final_softcap, err));
    if (!nh || !nkv || nh % nkv || !d->hidden || !d->n_layers || d->n_layers > 4096 || !hd)
        return sp_fail(err, SP_EFORMAT, "%s: invalid attention geometry (heads %u, kv heads %u)",
                       sp_gguf_path(m->g), nh, nkv);
    int gemma = m->a == A_GEMMA2 || m->a == A_GEMMA3;
    d->layers = calloc((size_t)d->n_layers, sizeof *d->layers);
    if (!d->layers) return sp_fail(err, SP_ENOMEM, "layers");
    for (int i = 0; i < d->n_layers; i++) {
        sp_layer_desc *L = &d->layers[i];
        L->n_heads = (int)nh, L->n_kv_heads = (int)nkv, L->head_dim = (int)hd;
        L->attn_scale = 1.0f / sqrtf((float)hd);
        L->layer_scalar = 1.0f;
        L->kv_source = i;
        L->ffn_dim = (int)*ffn;
        if (m->a == A_GEMMA2)
            L->sliding_window = i % 2 == 0 ? (int)window : 0;
        else if (m->a == A_GEMMA3)
            L->sliding_window = (i + 1) % 6 != 0 ? (int)window : 0;
        else
            L->sliding_window = (int)window;
    }
    d->sandwich_norms = gemma;
    d->act = gemma ? SP_ACT_GELU_TANH : SP_ACT_SILU;
    d->embed_scale = gemma ? sqrtf((float)d->hidden) : 1.0f;
    return SP_OK;
}

/* RoPE: llama.cpp's "NORM" rope (llama) pairs adjacent lanes; the others
 * use half-split ("NEOX"). Gemma 3 sliding layers use base 10000. */
static sp_status read_rope(gmap *m, sp_error *err) {
    sp_model_desc *d = m->d;
    sp_rope_params p;
    sp_rope_params_default(&p);
    float base, factor;
    uint32_t rot, orig;
    const char *type = NULL;
    int hd = d->layers[0].head_dim;
    SP_TRY(kv_f32(m, "rope.freq_base", 10000.0f, &base, err));
    SP_TRY(kv_u32(m, "rope.dimension_count", (uint32_t)hd, 0, &rot, err));
    SP_TRY(kv_f32(m, "rope.scaling.factor", 0, &factor, err));
    SP_TRY(kv_u32(m, "rope.scaling.original_context_length", 0, 0, &orig, err));
    char k[128];
    snprintf(k, sizeof k, "%s.rope.scaling.type", m->an);
    SP_TRY(sp_gguf_get_str(m->g, k, "none", 0, &type, err));
    p.theta = base;
    p.partial_rotary_factor = (double)rot / hd;
    p.interleaved = m->a == A_LLAMA;
    p.max_pos = d->max_pos;
    p.orig_max = (int)orig;
    if (!strcmp(type, "linear") && factor > 0)
        p.kind = SP_ROPE_LINEAR, p.factor = factor;
    else if (!strcmp(type, "yarn"))
        p.kind = SP_ROPE_YARN, p.factor = factor;
    else if (strcmp(type, "none"))
        return sp_fail(err, SP_EUNSUPPORTED, "%s: %s: unsupported rope scaling '%s'",
                       sp_gguf_path(m->g), k, type);
    SP_TRY(sp_rope_build(&d->ropes[0], &p, hd, err));
    d->n_ropes = 1;
    /* llama3-style frequency divisors shipped as a tensor */
    const sp_gguf_tensor *rf = sp_gguf_find_tensor(m->g, "rope_freqs.weight");
    if (rf && rf->dtype == SP_F32 && rf->shape[0] == d->ropes[0].n_pairs)
        for (int i = 0; i < d->ropes[0].n_pairs; i++)
            d->ropes[0].inv_freq[i] /= ((const float *)rf->data)[i];
    if (m->a == A_GEMMA3) {
        sp_rope_params local = p;
        local.kind = SP_ROPE_DEFAULT, local.theta = 10000.0, local.factor = 0;
        SP_TRY(sp_rope_build(&d->ropes[1], &local, hd, err));
        d->n_ropes = 2;
    }
    for (int i = 0; i < d->n_layers; i++)
        d->layers[i].rope = m->a == A_GEMMA3 && d->layers[i].sliding_window ? 1 : 0;
    return SP_OK;
}

/* ---- tensors -------------------------------------------------------------- */

#define R 1
#define O 0

static sp_status map_layer(gmap *m, int i, sp_error *err) {
    sp_layer_desc *L = &m->d->layers[i];
    int64_t H = m->d->hidden, q = (int64_t)L->n_heads * L->head_dim,
            kv = (int64_t)L->n_kv_heads * L->head_dim, I = L->ffn_dim;
    SP_TRY(get(m, &L->attn_norm, R, 1, 1, H, 0, 0, err, "blk.%d.attn_norm.weight", i));
    if (m->a == A_PHI3) {
        sp_tensor qkv;
        SP_TRY(get(m, &qkv, R, 0, 2, q + 2 * kv, H, 0, err, "blk.%d.attn_qkv.weight", i));
        L->wq = sp_tensor_rows_view(&qkv, 0, q);
        L->wk = sp_tensor_rows_view(&qkv, q, kv);
        L->wv = sp_tensor_rows_view(&qkv, q + kv, kv);
    } else {
        SP_TRY(get(m, &L->wq, R, 0, 2, q, H, 0, err, "blk.%d.attn_q.weight", i));
        SP_TRY(get(m, &L->wk, R, 0, 2, kv, H, 0, err, "blk.%d.attn_k.weight", i));
        SP_TRY(get(m, &L->wv, R, 0, 2, kv, H, 0, err, "blk.%d.attn_v.weight", i));
    }
    SP_TRY(get(m, &L->wo, R, 0, 2, H, q, 0, err, "blk.%d.attn_output.weight", i));
    SP_TRY(get(m, &L->bq, m->a == A_QWEN2, 1, 1, q, 0, 0, err, "blk.%d.attn_q.bias", i));
    SP_TRY(get(m, &L->bk, m->a == A_QWEN2, 1, 1, kv, 0, 0, err, "blk.%d.attn_k.bias", i));
    SP_TRY(get(m, &L->bv, m->a == A_QWEN2, 1, 1, kv, 0, 0, err, "blk.%d.attn_v.bias", i));
    int qk = m->a == A_QWEN3 || m->a == A_QWEN3MOE || m->a == A_GEMMA3;
    SP_TRY(get(m, &L->q_norm, qk, 1, 1, L->head_dim, 0, 0, err, "blk.%d.attn_q_norm.weight", i));
    SP_TRY(get(m, &L->k_norm, qk, 1, 1, L->head_dim, 0, 0, err, "blk.%d.attn_k_norm.weight", i));
    SP_TRY(get(m, &L->pre_ffn_norm, R, 1, 1, H, 0, 0, err, "blk.%d.ffn_norm.weight", i));
    if (m->d->sandwich_norms) {
        SP_TRY(get(m, &L->post_attn_norm, R, 1, 1, H, 0, 0, err,
                   "blk.%d.post_attention_norm.weight", i));
        SP_TRY(get(m, &L->post_ffn_norm, R, 1, 1, H, 0, 0, err, "blk.%d.post_ffw_norm.weight", i));
    }
    if (L->n_experts) {
        int64_t E = L->n_experts, Ie = L->expert_ffn_dim;
        sp_tensor g, u, dn;
        SP_TRY(get(m, &L->router, R, 0, 2, E, H, 0, err, "blk.%d.ffn_gate_inp.weight", i));
        SP_TRY(get(m, &g, R, 0, 3, E, Ie, H, err, "blk.%d.ffn_gate_exps.weight", i));
        SP_TRY(get(m, &u, R, 0, 3, E, Ie, H, err, "blk.%d.ffn_up_exps.weight", i));
        SP_TRY(get(m, &dn, R, 0, 3, E, H, Ie, err, "blk.%d.ffn_down_exps.weight", i));
        L->exp_gate = sp_weights_alloc(m->w, 3 * (size_t)E * sizeof(sp_tensor));
        if (!L->exp_gate) return sp_fail(err, SP_ENOMEM, "expert table");
        L->exp_up = L->exp_gate + E, L->exp_down = L->exp_up + E;
        for (int e = 0; e < E; e++) {
            L->exp_gate[e] = sp_tensor_index(&g, e);
            L->exp_up[e] = sp_tensor_index(&u, e);
            L->exp_down[e] = sp_tensor_index(&dn, e);
        }
        return SP_OK;
    }
    if (m->a == A_PHI3) { /* ffn_up holds gate rows then up rows */
        sp_tensor gu;
        SP_TRY(get(m, &gu, R, 0, 2, 2 * I, H, 0, err, "blk.%d.ffn_up.weight", i));
        L->w_gate = sp_tensor_rows_view(&gu, 0, I);
        L->w_up = sp_tensor_rows_view(&gu, I, I);
    } else {
        SP_TRY(get(m, &L->w_gate, R, 0, 2, I, H, 0, err, "blk.%d.ffn_gate.weight", i));
        SP_TRY(get(m, &L->w_up, R, 0, 2, I, H, 0, err, "blk.%d.ffn_up.weight", i));
    }
    SP_TRY(get(m, &L->w_down, R, 0, 2, H, I, 0, err, "blk.%d.ffn_down.weight", i));
    return SP_OK;
}

static sp_status read_moe(gmap *m, sp_error *err) {
    uint32_t ne, nk, fe;
    SP_TRY(kv_u32(m, "expert_count", 0, 0, &ne, err));
    if (!ne) return SP_OK;
    SP_TRY(kv_u32(m, "expert_used_count", 0, 1, &nk, err));
    SP_TRY(kv_u32(m, "expert_feed_forward_length", m->d->layers[0].ffn_dim, 0, &fe, err));
    if (!nk || nk > ne || !fe)
        return sp_fail(err, SP_EFORMAT, "%s: invalid MoE geometry", sp_gguf_path(m->g));
    for (int i = 0; i < m->d->n_layers; i++) {
        sp_layer_desc *L = &m->d->layers[i];
        L->n_experts = (int)ne, L->n_experts_used = (int)nk, L->expert_ffn_dim = (int)fe;
        L->moe_norm_topk = m->a != A_QWEN3MOE;
    }
    if (m->a == A_QWEN3MOE) {
        int norm = 1; /* released Qwen3-MoE models renormalise */
        char k[128];
        snprintf(k, sizeof k, "%s.expert_weights_norm", m->an);
        SP_TRY(sp_gguf_get_bool(m->g, k, 1, 0, &norm, err));
        for (int i = 0; i < m->d->n_layers; i++) m->d->layers[i].moe_norm_topk = norm;
    }
    return SP_OK;
}

static sp_status map_globals(gmap *m, sp_error *err) {
    sp_model_desc *d = m->d;
    const sp_gguf_tensor *te = sp_gguf_find_tensor(m->g, "token_embd.weight");
    if (!te || te->ndim != 2)
        return sp_fail(err, SP_ENOTFOUND, "%s: tensor token_embd.weight is missing",
                       sp_gguf_path(m->g));
    d->vocab = (int)te->shape[0];
    SP_TRY(get(m, &d->tok_embd, R, 0, 2, d->vocab, d->hidden, 0, err, "token_embd.weight"));
    SP_TRY(get(m, &d->out_norm, R, 1, 1, d->hidden, 0, 0, err, "output_norm.weight"));
    SP_TRY(get(m, &d->output, O, 0, 2, d->vocab, d->hidden, 0, err, "output.weight"));
    d->tied_embeddings = d->output.data == NULL;
    if (d->tied_embeddings) d->output = d->tok_embd;
    return SP_OK;
}

static sp_status read_token_ids(gmap *m, sp_error *err) {
    uint32_t bos, eos;
    SP_TRY(sp_gguf_get_u32(m->g, "tokenizer.ggml.bos_token_id", UINT32_MAX, 0, &bos, err));
    SP_TRY(sp_gguf_get_u32(m->g, "tokenizer.ggml.eos_token_id", UINT32_MAX, 0, &eos, err));
    m->d->bos_id = bos == UINT32_MAX ? -1 : (int)bos;
    if (eos != UINT32_MAX) m->d->eos_ids[m->d->n_eos++] = (int)eos;
    return SP_OK;
}

sp_status sp_gguf_model_load(sp_model_desc *d, sp_weights *w, struct sp_gguf **gp, const char *path,
                             const sp_model_opts *opts, sp_error *err) {
    SP_TRY(sp_gguf_open(gp, path, err));
    gmap m = {.g = *gp, .w = w, .d = d};
    SP_TRY(sp_gguf_get_str(m.g, "general.architecture", NULL, 1, &m.an, err));
    int found = 0;
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (!strcmp(m.an, archs[i].name)) m.a = archs[i].a, found = 1;
    if (!found)
        return sp_fail(err, SP_EUNSUPPORTED, "%s: general.architecture '%s' is not supported", path,
                       m.an);
    snprintf(d->arch, sizeof d->arch, "%s", m.an);
    w->lookup = gg_lookup;
    w->src = *gp;
    w->file = path;
    uint32_t ffn = 0;
    SP_TRY(read_hparams(&m, &ffn, err));
    SP_TRY(read_rope(&m, err));
    SP_TRY(read_moe(&m, err));
    SP_TRY(map_globals(&m, err));
    for (int i = 0; i < d->n_layers; i++) SP_TRY(map_layer(&m, i, err));
    SP_TRY(read_token_ids(&m, err));
    (void)opts;
    return SP_OK;
}
