/* GGUF models: llama.cpp's architecture names and tensor names mapped onto
 * model_desc. The architecture table below is the only per-family code;
 * which optional tensors a layer has (biases, fused projections, experts,
 * per-layer embeddings, output scale) is read from the file itself. */
#include "model/gguf_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf_model_internal.h"

static const sp_gguf_arch archs[] = {
    /* name      flags                                                period window big */
    {"llama", GF_NORM_ROPE, 0, 0, 0},
    {"mistral", GF_NORM_ROPE, 0, 0, 0},
    {"qwen2", GF_QKV_BIAS, 0, 0, 0},
    {"qwen3", GF_QK_NORM, 0, 0, 0},
    {"qwen3moe", GF_QK_NORM, 0, 0, 0},
    {"phi3", GF_FUSED, 0, 0, 0},
    {"gemma2", GF_GEMMA | GF_BIG_SCALE, 2, 4096, 46},
    {"gemma3", GF_GEMMA | GF_QK_NORM | GF_SWA_ROPE | GF_BIG_SCALE, 6, 0, 62},
    {"gemma4", GF_GEMMA | GF_QK_NORM | GF_SWA_ROPE | GF_GEMMA4, 0, 0, 0},
};

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

static int has(const sp_gguf_map *m, const char *fmt, int i) {
    char name[256];
    snprintf(name, sizeof name, fmt, i);
    return sp_gguf_find_tensor(m->g, name) != NULL;
}

#define R    1 /* required */
#define O    0 /* optional */
#define RAW  0 /* file dtype (re-quantized by --quantize) */
#define F32  1 /* owned f32 copy: norms, biases, scales */
#define KEEP 3 /* file dtype, never re-quantized: routers */

/* Fetches a tensor by printf-style name with shape dims (SP_ANY allowed). */
static sp_status get(sp_gguf_map *m, sp_tensor *out, int req, int mode, int ndim, int64_t d0,
                     int64_t d1, int64_t d2, sp_error *err, const char *fmt, ...)
    __attribute__((format(printf, 10, 11)));

static sp_status get(sp_gguf_map *m, sp_tensor *out, int req, int mode, int ndim, int64_t d0,
                     int64_t d1, int64_t d2, sp_error *err, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int64_t shape[3] = {d0, d1, d2};
    if (mode == F32) return sp_weights_get_f32(m->w, name, req, ndim, shape, 0, out, err);
    if (mode == KEEP) return sp_weights_get_exact(m->w, name, req, ndim, shape, out, err);
    return sp_weights_get(m->w, name, req, ndim, shape, out, err);
}

/* ---- attention ---------------------------------------------------------------- */

static sp_status map_attention(sp_gguf_map *m, int i, sp_error *err) {
    sp_layer_desc *L = &m->d->layers[i];
    unsigned f = m->arch->flags;
    int own = L->kv_source == i;
    int64_t H = m->d->hidden, q = (int64_t)L->n_heads * L->head_dim,
            kv = (int64_t)L->n_kv_heads * L->head_dim;
    if (has(m, "blk.%d.attn_qkv.weight", i) || (f & GF_FUSED)) { /* q, k, v rows stacked */
        sp_tensor qkv;
        SP_TRY(get(m, &qkv, R, RAW, 2, q + 2 * kv, H, 0, err, "blk.%d.attn_qkv.weight", i));
        sp_tensor_prepare_cut(&qkv, q);
        sp_tensor_prepare_cut(&qkv, q + kv);
        L->wq = sp_tensor_rows_view(&qkv, 0, q);
        L->wk = sp_tensor_rows_view(&qkv, q, kv);
        L->wv = sp_tensor_rows_view(&qkv, q + kv, kv);
    } else {
        SP_TRY(get(m, &L->wq, R, RAW, 2, q, H, 0, err, "blk.%d.attn_q.weight", i));
        if (own) {
            SP_TRY(get(m, &L->wk, R, RAW, 2, kv, H, 0, err, "blk.%d.attn_k.weight", i));
            /* Gemma 4 K=V layers have no attn_v: values are the raw keys */
            SP_TRY(
                get(m, &L->wv, !(f & GF_GEMMA4), RAW, 2, kv, H, 0, err, "blk.%d.attn_v.weight", i));
            L->k_eq_v = L->wv.data == NULL;
        }
    }
    SP_TRY(get(m, &L->wo, R, RAW, 2, H, q, 0, err, "blk.%d.attn_output.weight", i));
    int bias = (f & GF_QKV_BIAS) != 0;
    SP_TRY(get(m, &L->bq, bias, F32, 1, q, 0, 0, err, "blk.%d.attn_q.bias", i));
    if (own) {
        SP_TRY(get(m, &L->bk, bias, F32, 1, kv, 0, 0, err, "blk.%d.attn_k.bias", i));
        SP_TRY(get(m, &L->bv, bias, F32, 1, kv, 0, 0, err, "blk.%d.attn_v.bias", i));
    }
    SP_TRY(get(m, &L->bo, O, F32, 1, H, 0, 0, err, "blk.%d.attn_output.bias", i));
    int qk = (f & GF_QK_NORM) != 0;
    SP_TRY(get(m, &L->q_norm, qk, F32, 1, L->head_dim, 0, 0, err, "blk.%d.attn_q_norm.weight", i));
    if (own)
        SP_TRY(
            get(m, &L->k_norm, qk, F32, 1, L->head_dim, 0, 0, err, "blk.%d.attn_k_norm.weight", i));
    return SP_OK;
}

/* ---- norms -------------------------------------------------------------------- */

static sp_status map_norms(sp_gguf_map *m, int i, sp_error *err) {
    sp_layer_desc *L = &m->d->layers[i];
    int64_t H = m->d->hidden;
    int s = m->d->sandwich_norms;
    SP_TRY(get(m, &L->attn_norm, R, F32, 1, H, 0, 0, err, "blk.%d.attn_norm.weight", i));
    SP_TRY(get(m, &L->pre_ffn_norm, R, F32, 1, H, 0, 0, err, "blk.%d.ffn_norm.weight", i));
    SP_TRY(get(m, &L->post_attn_norm, s, F32, 1, H, 0, 0, err, "blk.%d.post_attention_norm.weight",
               i));
    SP_TRY(get(m, &L->post_ffn_norm, s, F32, 1, H, 0, 0, err, "blk.%d.post_ffw_norm.weight", i));
    return SP_OK;
}

/* ---- feed-forward --------------------------------------------------------------- */

static sp_status map_dense_mlp(sp_gguf_map *m, int i, sp_error *err) {
    sp_layer_desc *L = &m->d->layers[i];
    int64_t H = m->d->hidden, I = L->ffn_dim;
    if (I <= 0)
        return sp_fail(err, SP_EFORMAT, "%s: layer %d: feed_forward_length is 0",
                       sp_gguf_path(m->g), i);
    if (m->arch->flags & GF_FUSED) { /* ffn_up holds gate rows then up rows */
        sp_tensor gu;
        SP_TRY(get(m, &gu, R, RAW, 2, 2 * I, H, 0, err, "blk.%d.ffn_up.weight", i));
        sp_tensor_prepare_cut(&gu, I);
        L->w_gate = sp_tensor_rows_view(&gu, 0, I);
        L->w_up = sp_tensor_rows_view(&gu, I, I);
    } else {
        SP_TRY(get(m, &L->w_gate, R, RAW, 2, I, H, 0, err, "blk.%d.ffn_gate.weight", i));
        SP_TRY(get(m, &L->w_up, R, RAW, 2, I, H, 0, err, "blk.%d.ffn_up.weight", i));
    }
    SP_TRY(get(m, &L->w_down, R, RAW, 2, H, I, 0, err, "blk.%d.ffn_down.weight", i));
    return SP_OK;
}

/* Experts: packed [E, I, H] gate and up (or one [E, 2I, H] gate_up, gate
 * rows first) and [E, H, I] down, sliced into per-expert 2-D views. */
static sp_status map_experts(sp_gguf_map *m, int i, sp_error *err) {
    sp_layer_desc *L = &m->d->layers[i];
    int64_t E = L->n_experts, I = L->expert_ffn_dim, H = m->d->hidden;
    L->exp_gate = sp_weights_alloc(m->w, 3 * (size_t)E * sizeof(sp_tensor));
    if (!L->exp_gate) return sp_fail(err, SP_ENOMEM, "expert table");
    L->exp_up = L->exp_gate + E, L->exp_down = L->exp_up + E;
    sp_tensor g, u, dn;
    int fused = has(m, "blk.%d.ffn_gate_up_exps.weight", i);
    if (fused)
        SP_TRY(get(m, &g, R, RAW, 3, E, 2 * I, H, err, "blk.%d.ffn_gate_up_exps.weight", i));
    else {
        SP_TRY(get(m, &g, R, RAW, 3, E, I, H, err, "blk.%d.ffn_gate_exps.weight", i));
        SP_TRY(get(m, &u, R, RAW, 3, E, I, H, err, "blk.%d.ffn_up_exps.weight", i));
    }
    SP_TRY(get(m, &dn, R, RAW, 3, E, H, I, err, "blk.%d.ffn_down_exps.weight", i));
    for (int e = 0; e < E; e++) {
        sp_tensor ge = sp_tensor_index(&g, e);
        if (fused) sp_tensor_prepare_cut(&ge, I);
        L->exp_gate[e] = fused ? sp_tensor_rows_view(&ge, 0, I) : ge;
        L->exp_up[e] = fused ? sp_tensor_rows_view(&ge, I, I) : sp_tensor_index(&u, e);
        L->exp_down[e] = sp_tensor_index(&dn, e);
    }
    return SP_OK;
}

/* A layer is MoE when it has a router (ffn_gate_inp), so dense and sparse
 * layers can mix. Gemma 4 keeps its dense MLP beside the experts, with its
 * router reading RMS(x) * ffn_gate_inp.scale / sqrt(H), and the per-expert
 * output scale stored as ffn_down_exps.scale. */
static sp_status map_ffn(sp_gguf_map *m, int i, sp_error *err) {
    sp_layer_desc *L = &m->d->layers[i];
    int64_t H = m->d->hidden;
    int moe = has(m, "blk.%d.ffn_gate_inp.weight", i);
    int gemma4 = (m->arch->flags & GF_GEMMA4) != 0;
    if (moe && !m->n_experts)
        return sp_fail(err, SP_EFORMAT,
                       "%s: blk.%d.ffn_gate_inp.weight present but %s.expert_count is missing",
                       sp_gguf_path(m->g), i, m->an);
    if (!moe || gemma4) SP_TRY(map_dense_mlp(m, i, err));
    if (!moe) return SP_OK;
    int64_t E = m->n_experts;
    L->n_experts = m->n_experts, L->n_experts_used = m->n_experts_used;
    L->expert_ffn_dim = m->expert_ffn[i];
    L->moe_norm_topk = m->moe_norm;
    L->moe_has_dense = gemma4;
    if (L->expert_ffn_dim <= 0)
        return sp_fail(err, SP_EFORMAT, "%s: layer %d: expert FFN width is 0", sp_gguf_path(m->g),
                       i);
    SP_TRY(get(m, &L->router, R, KEEP, 2, E, H, 0, err, "blk.%d.ffn_gate_inp.weight", i));
    SP_TRY(get(m, &L->router_scale, gemma4, F32, 1, H, 0, 0, err, "blk.%d.ffn_gate_inp.scale", i));
    SP_TRY(get(m, &L->expert_scale, O, F32, 1, E, 0, 0, err, "blk.%d.ffn_down_exps.scale", i));
    if (gemma4) {
        SP_TRY(
            get(m, &L->pre_ffn_norm2, R, F32, 1, H, 0, 0, err, "blk.%d.pre_ffw_norm_2.weight", i));
        SP_TRY(get(m, &L->post_ffn_norm1, R, F32, 1, H, 0, 0, err, "blk.%d.post_ffw_norm_1.weight",
                   i));
        SP_TRY(get(m, &L->post_ffn_norm2, R, F32, 1, H, 0, 0, err, "blk.%d.post_ffw_norm_2.weight",
                   i));
    }
    return map_experts(m, i, err);
}

/* ---- Gemma 4 extras ---------------------------------------------------------------- */

static sp_status map_layer_extras(sp_gguf_map *m, int i, sp_error *err) {
    sp_layer_desc *L = &m->d->layers[i];
    sp_tensor s;
    SP_TRY(get(m, &s, O, F32, 1, 1, 0, 0, err, "blk.%d.layer_output_scale.weight", i));
    if (s.data) L->layer_scalar = ((const float *)s.data)[0];
    if (!m->d->ple_dim) return SP_OK;
    int64_t H = m->d->hidden, P = m->d->ple_dim;
    SP_TRY(get(m, &L->ple_gate, R, RAW, 2, P, H, 0, err, "blk.%d.inp_gate.weight", i));
    SP_TRY(get(m, &L->ple_proj, R, RAW, 2, H, P, 0, err, "blk.%d.proj.weight", i));
    SP_TRY(get(m, &L->ple_post_norm, R, F32, 1, H, 0, 0, err, "blk.%d.post_norm.weight", i));
    return SP_OK;
}

static sp_status map_layer(sp_gguf_map *m, int i, sp_error *err) {
    SP_TRY(map_norms(m, i, err));
    SP_TRY(map_attention(m, i, err));
    SP_TRY(map_ffn(m, i, err));
    return map_layer_extras(m, i, err);
}

/* ---- globals -------------------------------------------------------------------------- */

static sp_status map_globals(sp_gguf_map *m, sp_error *err) {
    sp_model_desc *d = m->d;
    const sp_gguf_tensor *te = sp_gguf_find_tensor(m->g, "token_embd.weight");
    if (!te || te->ndim != 2)
        return sp_fail(err, SP_ENOTFOUND, "%s: tensor token_embd.weight is missing",
                       sp_gguf_path(m->g));
    d->vocab = (int)te->shape[0];
    int64_t H = d->hidden, V = d->vocab;
    SP_TRY(get(m, &d->tok_embd, R, RAW, 2, V, H, 0, err, "token_embd.weight"));
    SP_TRY(get(m, &d->out_norm, R, F32, 1, H, 0, 0, err, "output_norm.weight"));
    SP_TRY(get(m, &d->output, O, RAW, 2, V, H, 0, err, "output.weight"));
    d->tied_embeddings = d->output.data == NULL;
    if (d->tied_embeddings) d->output = d->tok_embd;
    if (d->ple_dim) {
        int64_t LP = (int64_t)d->n_layers * d->ple_dim;
        SP_TRY(get(m, &d->ple_embd, R, RAW, 2, SP_ANY, LP, 0, err, "per_layer_token_embd.weight"));
        SP_TRY(get(m, &d->ple_model_proj, R, RAW, 2, LP, H, 0, err, "per_layer_model_proj.weight"));
        SP_TRY(get(m, &d->ple_proj_norm, R, F32, 1, d->ple_dim, 0, 0, err,
                   "per_layer_proj_norm.weight"));
        if (d->ple_embd.shape[0] < V)
            return sp_fail(err, SP_EFORMAT,
                           "%s: per_layer_token_embd.weight has %lld rows for %lld tokens",
                           sp_gguf_path(m->g), (long long)d->ple_embd.shape[0], (long long)V);
    }
    return SP_OK;
}

/* bos, eos and the end-of-turn ids llama.cpp also stops on. */
static sp_status read_token_ids(sp_gguf_map *m, sp_error *err) {
    static const char *stops[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                                  "tokenizer.ggml.eom_token_id"};
    uint32_t bos, id;
    sp_model_desc *d = m->d;
    SP_TRY(sp_gguf_get_u32(m->g, "tokenizer.ggml.bos_token_id", UINT32_MAX, 0, &bos, err));
    d->bos_id = bos == UINT32_MAX || bos >= (uint32_t)d->vocab ? -1 : (int)bos;
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
        SP_TRY(sp_gguf_get_u32(m->g, stops[i], UINT32_MAX, 0, &id, err));
        int dup = 0;
        for (int j = 0; j < d->n_eos; j++) dup |= d->eos_ids[j] == (int)id;
        if (id < (uint32_t)d->vocab && !dup) d->eos_ids[d->n_eos++] = (int)id;
    }
    return SP_OK;
}

static sp_status find_arch(sp_gguf_map *m, const char *path, sp_error *err) {
    SP_TRY(sp_gguf_get_str(m->g, "general.architecture", NULL, 1, &m->an, err));
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (!strcmp(m->an, archs[i].name)) {
            m->arch = &archs[i];
            return SP_OK;
        }
    return sp_fail(err, SP_EUNSUPPORTED, "%s: general.architecture '%s' is not supported", path,
                   m->an);
}

sp_status sp_gguf_model_load(sp_model_desc *d, sp_weights *w, struct sp_gguf **gp, const char *path,
                             const sp_model_opts *opts, sp_error *err) {
    (void)opts;
    SP_TRY(sp_gguf_open(gp, path, err));
    sp_gguf_map m = {.g = *gp, .w = w, .d = d};
    SP_TRY(find_arch(&m, path, err));
    snprintf(d->arch, sizeof d->arch, "%s", m.an);
    w->lookup = gg_lookup;
    w->src = *gp;
    w->file = path;
    sp_status s = sp_gguf_read_hparams(&m, err);
    if (s == SP_OK) s = map_globals(&m, err);
    for (int i = 0; s == SP_OK && i < d->n_layers; i++) s = map_layer(&m, i, err);
    if (s == SP_OK) s = read_token_ids(&m, err);
    free(m.sliding);
    return s;
}
