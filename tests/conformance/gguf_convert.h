/* A HF -> GGUF converter for tests, written from llama.cpp's documented
 * conventions (tensor names, metadata keys, the Llama Q/K row permutation,
 * Gemma 2/3 norms stored as 1 + w, Gemma 4's rope_freqs for proportional
 * RoPE, per-expert scales as ffn_down_exps.scale). It uses Spindle's
 * safetensors reader, GGUF writer and quantizers.
 *
 * Geometry (per-layer heads, head sizes, windows, FFN widths, experts) is
 * taken from the model_desc our HF loader builds; RoPE parameters come from
 * config.json. Weights are converted to the requested type when their rows
 * allow it (else F16 for quantized targets, as llama.cpp falls back); 1-D
 * tensors stay F32. */
#ifndef SP_TEST_GGUF_CONVERT_H
#define SP_TEST_GGUF_CONVERT_H

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/dtype.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "formats/safetensors.h"
#include "model/model.h"

typedef enum cv_family {
    CV_LLAMA,
    CV_QWEN2,
    CV_QWEN3,
    CV_QWEN3MOE,
    CV_PHI3,
    CV_GEMMA2,
    CV_GEMMA3,
    CV_GEMMA4
} cv_family;

typedef struct cv_ctx {
    sp_gguf_writer *w;
    const sp_safetensors *st;
    const sp_model_desc *d;
    const json_t *cfg;
    cv_family fam;
    const char *an;     /* GGUF architecture name */
    const char *prefix; /* HF text-model prefix */
    sp_dtype wtype;     /* target type of matrices */
    void **bufs;        /* converted data, alive until the file is written */
    int n_bufs, cap_bufs;
    char msg[1200];
} cv_ctx;

/* ---- small helpers -------------------------------------------------------------- */

static inline void *cv_keep(cv_ctx *c, size_t n) {
    if (c->n_bufs == c->cap_bufs) {
        c->cap_bufs = c->cap_bufs ? 2 * c->cap_bufs : 256;
        c->bufs = realloc(c->bufs, (size_t)c->cap_bufs * sizeof *c->bufs);
    }
    void *p = calloc(1, n ? n : 1);
    c->bufs[c->n_bufs++] = p;
    return p;
}

static inline char *cv_key(const cv_ctx *c, const char *k) {
    static char buf[200];
    snprintf(buf, sizeof buf, "%s.%s", c->an, k);
    return buf;
}

static inline double cv_num(const json_t *o, const char *k, double def) {
    const json_t *v = o ? json_object_get(o, k) : NULL;
    return json_is_number(v) ? json_number_value(v) : def;
}

/* The rope dict of a layer type (nested or flat), or NULL. */
static inline const json_t *cv_rope_dict(const cv_ctx *c, int sliding) {
    const json_t *r = json_object_get(c->cfg, "rope_parameters");
    if (!json_is_object(r)) r = json_object_get(c->cfg, "rope_scaling");
    if (!json_is_object(r)) return NULL;
    const json_t *n = json_object_get(r, sliding ? "sliding_attention" : "full_attention");
    if (json_is_object(n)) return n;
    return json_object_get(r, "full_attention") ? NULL : r;
}

/* ---- tensor emission -------------------------------------------------------------- */

/* Llama: HF keeps rotary halves apart (lane i pairs with i + hd/2); llama.cpp
 * files interleave them (2i, 2i+1) per head. rows = heads * hd. */
static inline void cv_permute_rows(float *x, int64_t rows, int64_t cols, int heads) {
    int64_t hd = rows / heads;
    float *tmp = malloc((size_t)(rows * cols) * sizeof(float));
    for (int h = 0; h < heads; h++)
        for (int64_t i = 0; i < hd / 2; i++)
            for (int s = 0; s < 2; s++)
                memcpy(tmp + (h * hd + 2 * i + s) * cols, x + (h * hd + s * (hd / 2) + i) * cols,
                       (size_t)cols * sizeof(float));
    memcpy(x, tmp, (size_t)(rows * cols) * sizeof(float));
    free(tmp);
}

/* Writes f32 values (shape outermost-first) as a GGUF tensor: matrices in
 * the target type when rows fit its blocks, else F16/F32; vectors F32. */
static inline int cv_write_f32(cv_ctx *c, const char *name, const float *x, int ndim,
                               const int64_t *shape) {
    int64_t n = 1, cols = shape[ndim - 1];
    for (int i = 0; i < ndim; i++) n *= shape[i];
    sp_dtype t = SP_F32;
    /* llama-quantize keeps routers and the PLE projection in full precision */
    int keep = strstr(name, "ffn_gate_inp.") || strstr(name, "per_layer_model_proj");
    if (ndim >= 2 && !keep) {
        t = c->wtype;
        if (cols % sp_dtype_block(t)) t = c->wtype == SP_F32 ? SP_F32 : SP_F16;
    }
    size_t rb = sp_dtype_row_bytes(t, cols), rows = (size_t)(n / cols);
    uint8_t *q = cv_keep(c, rb * rows);
    for (size_t r = 0; r < rows; r++)
        if (!sp_quantize_row(t, x + r * cols, q + r * rb, cols)) {
            snprintf(c->msg, sizeof c->msg, "%s: cannot encode as %s", name, sp_dtype_name(t));
            return 0;
        }
    if (sp_gguf_w_tensor(c->w, name, sp_ggml_from_dtype(t), ndim, shape, q, rb * rows) != SP_OK) {
        snprintf(c->msg, sizeof c->msg, "%s: writer refused the tensor", name);
        return 0;
    }
    return 1;
}

enum { CV_PLAIN = 0, CV_ADD_ONE = 1, CV_PERM_Q = 2, CV_PERM_K = 3 };

/* Converts HF tensor `hf` (prefix added when `prefixed`) to GGUF `gg`.
 * Missing tensors are skipped (returns 1) unless required. */
static inline int cv_tensor(cv_ctx *c, const char *hf, const char *gg, int how, int required) {
    const sp_st_tensor *t = sp_st_find(c->st, hf);
    if (!t) {
        if (required) snprintf(c->msg, sizeof c->msg, "%s: missing in the checkpoint", hf);
        return !required;
    }
    int64_t n = 1, shape[4] = {1, 1, 1, 1};
    int ndim = t->ndim ? t->ndim : 1;
    for (int i = 0; i < t->ndim; i++) n *= (shape[i] = t->shape[i]);
    float *x = malloc((size_t)n * sizeof(float));
    sp_dequantize_row(t->dtype, t->data, x, n);
    if (how == CV_ADD_ONE)
        for (int64_t i = 0; i < n; i++) x[i] += 1.0f;
    if (how == CV_PERM_Q || how == CV_PERM_K) {
        int heads = how == CV_PERM_Q ? c->d->layers[0].n_heads : c->d->layers[0].n_kv_heads;
        cv_permute_rows(x, shape[0], ndim > 1 ? shape[1] : 1, heads);
    }
    int ok = cv_write_f32(c, gg, x, ndim, shape);
    free(x);
    return ok;
}

/* "{prefix}layers.{i}.{suffix}" -> "blk.{i}.{gg}" */
static inline int cv_layer(cv_ctx *c, int i, const char *suffix, const char *gg, int how,
                           int required) {
    char a[300], b[200];
    snprintf(a, sizeof a, "%slayers.%d.%s", c->prefix, i, suffix);
    snprintf(b, sizeof b, "blk.%d.%s", i, gg);
    return cv_tensor(c, a, b, how, required);
}

/* Qwen3-MoE experts.{e}.{proj}_proj.weight [I, H] stacked into [E, I, H]. */
static inline int cv_stack_experts(cv_ctx *c, int i, const char *proj, const char *gg) {
    const sp_layer_desc *L = &c->d->layers[i];
    char a[300], b[200];
    int64_t E = L->n_experts, shape[3] = {E, 0, 0};
    float *all = NULL;
    for (int e = 0; e < E; e++) {
        snprintf(a, sizeof a, "%slayers.%d.mlp.experts.%d.%s_proj.weight", c->prefix, i, e, proj);
        const sp_st_tensor *t = sp_st_find(c->st, a);
        if (!t || t->ndim != 2) {
            snprintf(c->msg, sizeof c->msg, "%s: missing", a);
            free(all);
            return 0;
        }
        int64_t n = t->shape[0] * t->shape[1];
        if (!all) all = malloc((size_t)(n * E) * sizeof(float));
        shape[1] = t->shape[0], shape[2] = t->shape[1];
        sp_dequantize_row(t->dtype, t->data, all + e * n, n);
    }
    snprintf(b, sizeof b, "blk.%d.%s", i, gg);
    int ok = cv_write_f32(c, b, all, 3, shape);
    free(all);
    return ok;
}

/* ---- metadata --------------------------------------------------------------------- */

static inline int cv_layer_array(cv_ctx *c, const char *key, const int *v) {
    int n = c->d->n_layers, same = 1;
    for (int i = 1; i < n; i++) same &= v[i] == v[0];
    if (same) return sp_gguf_w_u32(c->w, cv_key(c, key), (uint32_t)v[0]) == SP_OK;
    int32_t *a = malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) a[i] = v[i];
    sp_status s = sp_gguf_w_arr(c->w, cv_key(c, key), SP_GGUF_I32, a, (uint64_t)n);
    free(a);
    return s == SP_OK;
}

static inline int cv_geometry(cv_ctx *c) {
    const sp_model_desc *d = c->d;
    int n = d->n_layers, *heads = malloc(sizeof(int) * 3 * (size_t)n), *kvh = heads + n,
        *ffn = heads + 2 * n;
    int hd_full = 0, hd_swa = 0, window = 0, shared = 0;
    for (int i = 0; i < n; i++) {
        const sp_layer_desc *L = &d->layers[i];
        heads[i] = L->n_heads, kvh[i] = L->n_kv_heads, ffn[i] = L->ffn_dim;
        if (L->sliding_window)
            hd_swa = L->head_dim, window = L->sliding_window;
        else
            hd_full = L->head_dim;
        shared += L->kv_source != i;
    }
    if (!hd_full) hd_full = hd_swa;
    if (!hd_swa) hd_swa = hd_full;
    sp_gguf_writer *w = c->w;
    int ok = sp_gguf_w_u32(w, cv_key(c, "context_length"), (uint32_t)d->max_pos) == SP_OK &&
             sp_gguf_w_u32(w, cv_key(c, "embedding_length"), (uint32_t)d->hidden) == SP_OK &&
             sp_gguf_w_u32(w, cv_key(c, "block_count"), (uint32_t)n) == SP_OK &&
             cv_layer_array(c, "feed_forward_length", ffn) &&
             cv_layer_array(c, "attention.head_count", heads) &&
             cv_layer_array(c, "attention.head_count_kv", kvh) &&
             sp_gguf_w_u32(w, cv_key(c, "attention.key_length"), (uint32_t)hd_full) == SP_OK &&
             sp_gguf_w_u32(w, cv_key(c, "attention.value_length"), (uint32_t)hd_full) == SP_OK &&
             sp_gguf_w_f32(w, cv_key(c, "attention.layer_norm_rms_epsilon"), d->norm_eps) == SP_OK;
    if (ok && window)
        ok = sp_gguf_w_u32(w, cv_key(c, "attention.sliding_window"), (uint32_t)window) == SP_OK;
    if (ok && c->fam == CV_GEMMA4) {
        uint8_t *pat = malloc((size_t)n);
        for (int i = 0; i < n; i++) pat[i] = d->layers[i].sliding_window > 0;
        ok = sp_gguf_w_arr(w, cv_key(c, "attention.sliding_window_pattern"), SP_GGUF_BOOL, pat,
                           (uint64_t)n) == SP_OK &&
             sp_gguf_w_u32(w, cv_key(c, "attention.key_length_swa"), (uint32_t)hd_swa) == SP_OK &&
             sp_gguf_w_u32(w, cv_key(c, "attention.value_length_swa"), (uint32_t)hd_swa) == SP_OK &&
             sp_gguf_w_u32(w, cv_key(c, "attention.shared_kv_layers"), (uint32_t)shared) == SP_OK &&
             sp_gguf_w_u32(w, cv_key(c, "embedding_length_per_layer_input"),
                           (uint32_t)d->ple_dim) == SP_OK;
        free(pat);
    }
    if (ok && d->attn_softcap > 0)
        ok = sp_gguf_w_f32(w, cv_key(c, "attn_logit_softcapping"), d->attn_softcap) == SP_OK;
    if (ok && d->final_softcap > 0)
        ok = sp_gguf_w_f32(w, cv_key(c, "final_logit_softcapping"), d->final_softcap) == SP_OK;
    /* Gemma 2/3: llama.cpp derives the q.k scale from the head size; state
     * query_pre_attn_scalar only when it says otherwise */
    double qpas = cv_num(c->cfg, "query_pre_attn_scalar", hd_full);
    if (ok && (c->fam == CV_GEMMA2 || c->fam == CV_GEMMA3) && qpas != hd_full)
        ok = sp_gguf_w_f32(w, cv_key(c, "attention.scale"), (float)(1.0 / sqrt(qpas))) == SP_OK;
    free(heads);
    return ok;
}

static inline int cv_moe_meta(cv_ctx *c) {
    const sp_layer_desc *M = NULL;
    for (int i = 0; i < c->d->n_layers && !M; i++)
        if (c->d->layers[i].n_experts) M = &c->d->layers[i];
    if (!M) return 1;
    return sp_gguf_w_u32(c->w, cv_key(c, "expert_count"), (uint32_t)M->n_experts) == SP_OK &&
           sp_gguf_w_u32(c->w, cv_key(c, "expert_used_count"), (uint32_t)M->n_experts_used) ==
               SP_OK &&
           sp_gguf_w_u32(c->w, cv_key(c, "expert_feed_forward_length"),
                         (uint32_t)M->expert_ffn_dim) == SP_OK &&
           sp_gguf_w_bool(c->w, cv_key(c, "expert_weights_norm"), M->moe_norm_topk) == SP_OK;
}

/* RoPE keys; LongRoPE factors and Gemma 4's rope_freqs as tensors. */
static inline int cv_rope(cv_ctx *c) {
    const json_t *full = cv_rope_dict(c, 0), *swa = cv_rope_dict(c, 1);
    sp_gguf_writer *w = c->w;
    const sp_model_desc *d = c->d;
    int hd_full = 0, hd_swa = 0;
    for (int i = 0; i < d->n_layers; i++)
        *(d->layers[i].sliding_window ? &hd_swa : &hd_full) = d->layers[i].head_dim;
    if (!hd_full) hd_full = hd_swa;
    double theta =
        cv_num(full, "rope_theta", cv_num(c->cfg, "rope_theta", c->fam == CV_GEMMA4 ? 1e6 : 1e4));
    double prf =
        cv_num(full, "partial_rotary_factor", cv_num(c->cfg, "partial_rotary_factor", 1.0));
    const char *type = json_string_value(json_object_get(full, "rope_type"));
    if (!type) type = json_string_value(json_object_get(full, "type"));
    if (!type) type = "default";
    int rot = !strcmp(type, "proportional") ? hd_full : (int)(hd_full * prf) & ~1;
    int ok = sp_gguf_w_f32(w, cv_key(c, "rope.freq_base"), (float)theta) == SP_OK &&
             sp_gguf_w_u32(w, cv_key(c, "rope.dimension_count"), (uint32_t)rot) == SP_OK;
    if (ok && (c->fam == CV_GEMMA3 || c->fam == CV_GEMMA4) && swa)
        ok = sp_gguf_w_f32(w, cv_key(c, "rope.freq_base_swa"),
                           (float)cv_num(swa, "rope_theta", 1e4)) == SP_OK;
    if (ok && c->fam == CV_GEMMA4 && hd_swa) {
        int rs = (int)(hd_swa * cv_num(swa, "partial_rotary_factor", 1.0)) & ~1;
        ok = sp_gguf_w_u32(w, cv_key(c, "rope.dimension_count_swa"), (uint32_t)rs) == SP_OK;
    }
    if (ok && !strcmp(type, "linear")) {
        ok = sp_gguf_w_str(w, cv_key(c, "rope.scaling.type"), "linear") == SP_OK &&
             sp_gguf_w_f32(w, cv_key(c, "rope.scaling.factor"), (float)cv_num(full, "factor", 1)) ==
                 SP_OK;
    }
    if (ok && !strcmp(type, "proportional")) { /* 1 for rotated pairs, 1e30 (= none) for the rest */
        int np = hd_full / 2, nr = (int)(hd_full * prf / 2);
        float *f = cv_keep(c, (size_t)np * sizeof(float));
        for (int i = 0; i < np; i++) f[i] = i < nr ? 1.0f : 1e30f;
        int64_t shape[1] = {np};
        ok = sp_gguf_w_tensor(w, "rope_freqs.weight", SP_GGML_F32, 1, shape, f, (size_t)np * 4) ==
             SP_OK;
    }
    if (ok && (!strcmp(type, "longrope") || !strcmp(type, "su"))) {
        double orig = cv_num(full, "original_max_position_embeddings",
                             cv_num(c->cfg, "original_max_position_embeddings", d->max_pos));
        double scale = d->max_pos / orig;
        double af =
            cv_num(full, "attention_factor", scale > 1 ? sqrt(1 + log(scale) / log(orig)) : 1.0);
        ok = sp_gguf_w_u32(w, cv_key(c, "rope.scaling.original_context_length"), (uint32_t)orig) ==
                 SP_OK &&
             sp_gguf_w_f32(w, cv_key(c, "rope.scaling.attn_factor"), (float)af) == SP_OK;
        const char *names[2] = {"long_factor", "short_factor"},
                   *gg[2] = {"rope_factors_long.weight", "rope_factors_short.weight"};
        for (int k = 0; ok && k < 2; k++) {
            const json_t *a = json_object_get(full, names[k]);
            int64_t np = (int64_t)json_array_size(a);
            float *f = cv_keep(c, (size_t)np * sizeof(float));
            for (int64_t i = 0; i < np; i++)
                f[i] = (float)json_number_value(json_array_get(a, (size_t)i));
            ok = np > 0 &&
                 sp_gguf_w_tensor(w, gg[k], SP_GGML_F32, 1, &np, f, (size_t)np * 4) == SP_OK;
        }
    }
    return ok;
}

/* ---- tensors per family ----------------------------------------------------------- */

static inline int cv_attention(cv_ctx *c, int i) {
    const sp_layer_desc *L = &c->d->layers[i];
    int perm = c->fam == CV_LLAMA, own = L->kv_source == i, ok = 1;
    if (c->fam == CV_PHI3)
        return cv_layer(c, i, "self_attn.qkv_proj.weight", "attn_qkv.weight", 0, 1) &&
               cv_layer(c, i, "self_attn.o_proj.weight", "attn_output.weight", 0, 1);
    ok = cv_layer(c, i, "self_attn.q_proj.weight", "attn_q.weight", perm ? CV_PERM_Q : 0, 1) &&
         cv_layer(c, i, "self_attn.o_proj.weight", "attn_output.weight", 0, 1) &&
         cv_layer(c, i, "self_attn.q_proj.bias", "attn_q.bias", perm ? CV_PERM_Q : 0, 0);
    if (ok && own)
        ok = cv_layer(c, i, "self_attn.k_proj.weight", "attn_k.weight", perm ? CV_PERM_K : 0, 1) &&
             cv_layer(c, i, "self_attn.v_proj.weight", "attn_v.weight", 0, !L->k_eq_v) &&
             cv_layer(c, i, "self_attn.k_proj.bias", "attn_k.bias", perm ? CV_PERM_K : 0, 0) &&
             cv_layer(c, i, "self_attn.v_proj.bias", "attn_v.bias", 0, 0);
    int one = c->fam == CV_GEMMA2 || c->fam == CV_GEMMA3 ? CV_ADD_ONE : 0;
    if (ok) ok = cv_layer(c, i, "self_attn.q_norm.weight", "attn_q_norm.weight", one, 0);
    if (ok && own) ok = cv_layer(c, i, "self_attn.k_norm.weight", "attn_k_norm.weight", one, 0);
    return ok;
}

static inline int cv_norms(cv_ctx *c, int i) {
    int gemma = c->fam == CV_GEMMA2 || c->fam == CV_GEMMA3 || c->fam == CV_GEMMA4;
    int one = c->fam == CV_GEMMA2 || c->fam == CV_GEMMA3 ? CV_ADD_ONE : 0;
    if (!gemma)
        return cv_layer(c, i, "input_layernorm.weight", "attn_norm.weight", 0, 1) &&
               cv_layer(c, i, "post_attention_layernorm.weight", "ffn_norm.weight", 0, 1);
    static const char *map[][2] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"post_attention_layernorm.weight", "post_attention_norm.weight"},
        {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
        {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
        {"pre_feedforward_layernorm_2.weight", "pre_ffw_norm_2.weight"},
        {"post_feedforward_layernorm_1.weight", "post_ffw_norm_1.weight"},
        {"post_feedforward_layernorm_2.weight", "post_ffw_norm_2.weight"},
        {"post_per_layer_input_norm.weight", "post_norm.weight"},
    };
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
        if (!cv_layer(c, i, map[k][0], map[k][1], one, k < 4)) return 0;
    return 1;
}

static inline int cv_ffn(cv_ctx *c, int i) {
    const sp_layer_desc *L = &c->d->layers[i];
    if (c->fam == CV_PHI3)
        return cv_layer(c, i, "mlp.gate_up_proj.weight", "ffn_up.weight", 0, 1) &&
               cv_layer(c, i, "mlp.down_proj.weight", "ffn_down.weight", 0, 1);
    int ok = 1;
    if (!L->n_experts || L->moe_has_dense)
        ok = cv_layer(c, i, "mlp.gate_proj.weight", "ffn_gate.weight", 0, 1) &&
             cv_layer(c, i, "mlp.up_proj.weight", "ffn_up.weight", 0, 1) &&
             cv_layer(c, i, "mlp.down_proj.weight", "ffn_down.weight", 0, 1);
    if (!ok || !L->n_experts) return ok;
    if (c->fam == CV_GEMMA4)
        return cv_layer(c, i, "router.proj.weight", "ffn_gate_inp.weight", 0, 1) &&
               cv_layer(c, i, "router.scale", "ffn_gate_inp.scale", 0, 1) &&
               cv_layer(c, i, "router.per_expert_scale", "ffn_down_exps.scale", 0, 1) &&
               cv_layer(c, i, "experts.gate_up_proj", "ffn_gate_up_exps.weight", 0, 1) &&
               cv_layer(c, i, "experts.down_proj", "ffn_down_exps.weight", 0, 1);
    return cv_layer(c, i, "mlp.gate.weight", "ffn_gate_inp.weight", 0, 1) &&
           cv_stack_experts(c, i, "gate", "ffn_gate_exps.weight") &&
           cv_stack_experts(c, i, "up", "ffn_up_exps.weight") &&
           cv_stack_experts(c, i, "down", "ffn_down_exps.weight");
}

static inline int cv_layer_extras(cv_ctx *c, int i) {
    return cv_layer(c, i, "layer_scalar", "layer_output_scale.weight", 0, 0) &&
           cv_layer(c, i, "per_layer_input_gate.weight", "inp_gate.weight", 0, 0) &&
           cv_layer(c, i, "per_layer_projection.weight", "proj.weight", 0, 0);
}

static inline int cv_globals(cv_ctx *c) {
    char a[300];
    int one = c->fam == CV_GEMMA2 || c->fam == CV_GEMMA3 ? CV_ADD_ONE : 0;
#define CV_G(hf, gg, how, req)                                                                     \
    (snprintf(a, sizeof a, "%s%s", c->prefix, hf), cv_tensor(c, a, gg, how, req))
    int ok = CV_G("embed_tokens.weight", "token_embd.weight", 0, 1) &&
             CV_G("norm.weight", "output_norm.weight", one, 1) &&
             CV_G("embed_tokens_per_layer.weight", "per_layer_token_embd.weight", 0, 0) &&
             CV_G("per_layer_model_projection.weight", "per_layer_model_proj.weight", 0, 0) &&
             CV_G("per_layer_projection_norm.weight", "per_layer_proj_norm.weight", 0, 0);
#undef CV_G
    if (ok && !c->d->tied_embeddings) ok = cv_tensor(c, "lm_head.weight", "output.weight", 0, 1);
    if (ok && c->d->bos_id >= 0)
        ok = sp_gguf_w_u32(c->w, "tokenizer.ggml.bos_token_id", (uint32_t)c->d->bos_id) == SP_OK;
    if (ok && c->d->n_eos)
        ok =
            sp_gguf_w_u32(c->w, "tokenizer.ggml.eos_token_id", (uint32_t)c->d->eos_ids[0]) == SP_OK;
    return ok;
}

static inline int cv_family_of(cv_ctx *c, const char *mt) {
    static const struct {
        const char *mt, *an;
        cv_family f;
    } t[] = {{"llama", "llama", CV_LLAMA},           {"mistral", "llama", CV_LLAMA},
             {"qwen2", "qwen2", CV_QWEN2},           {"qwen3", "qwen3", CV_QWEN3},
             {"qwen3_moe", "qwen3moe", CV_QWEN3MOE}, {"phi3", "phi3", CV_PHI3},
             {"gemma2", "gemma2", CV_GEMMA2},        {"gemma3", "gemma3", CV_GEMMA3},
             {"gemma3_text", "gemma3", CV_GEMMA3},   {"gemma4", "gemma4", CV_GEMMA4},
             {"gemma4_text", "gemma4", CV_GEMMA4}};
    for (size_t i = 0; mt && i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(mt, t[i].mt)) {
            c->fam = t[i].f, c->an = t[i].an;
            return 1;
        }
    snprintf(c->msg, sizeof c->msg, "model_type %s: no GGUF mapping", mt ? mt : "(none)");
    return 0;
}

/* Converts the HF checkpoint in dir to a GGUF at out with matrices in wtype
 * (SP_F32, SP_F16, SP_Q8_0, ...). Returns 1, or 0 with msg filled. */
static inline int gguf_convert_hf(const char *dir, const char *out, sp_dtype wtype, char *msg,
                                  size_t msg_len) {
    cv_ctx c = {.wtype = wtype};
    sp_error err = {0};
    sp_model *m = NULL;
    sp_safetensors *st = NULL;
    json_t *root = NULL;
    sp_model_opts o;
    sp_model_opts_default(&o);
    o.precision = SP_PREC_F32;
    o.n_threads = 1;
    char path[600];
    snprintf(path, sizeof path, "%.500s/config.json", dir);
    int ok = sp_model_load(&m, dir, &o, &err) == SP_OK && sp_st_open(&st, dir, &err) == SP_OK &&
             (root = json_load_file(path, 0, NULL)) != NULL;
    if (!ok) snprintf(c.msg, sizeof c.msg, "%.1100s", err.msg[0] ? err.msg : "config.json");
    if (ok) {
        c.d = sp_model_get_desc(m);
        c.st = st;
        c.cfg = json_is_object(json_object_get(root, "text_config"))
                    ? json_object_get(root, "text_config")
                    : root;
        c.prefix = sp_st_find(st, "model.language_model.embed_tokens.weight")
                       ? "model.language_model."
                       : "model.";
        c.w = sp_gguf_writer_new();
        ok = cv_family_of(&c, json_string_value(json_object_get(c.cfg, "model_type"))) &&
             sp_gguf_w_str(c.w, "general.architecture", c.an) == SP_OK &&
             sp_gguf_w_str(c.w, "general.name", "spindle-test-conversion") == SP_OK &&
             cv_geometry(&c) && cv_moe_meta(&c) && cv_rope(&c) && cv_globals(&c);
        for (int i = 0; ok && i < c.d->n_layers; i++)
            ok = cv_norms(&c, i) && cv_attention(&c, i) && cv_ffn(&c, i) && cv_layer_extras(&c, i);
        if (ok && sp_gguf_w_write(c.w, out, &err) != SP_OK) {
            snprintf(c.msg, sizeof c.msg, "%.1100s", err.msg);
            ok = 0;
        }
        sp_gguf_writer_free(c.w);
    }
    for (int i = 0; i < c.n_bufs; i++) free(c.bufs[i]);
    free(c.bufs);
    json_decref(root);
    if (st) sp_st_close(st);
    sp_model_free(m);
    if (!ok) snprintf(msg, msg_len, "%.300s: %.600s", dir, c.msg);
    return ok;
}

#endif
