/* GGUF metadata -> model_desc geometry and RoPE tables, following how
 * llama.cpp reads the "{arch}.*" keys: per-layer values may be a scalar or
 * an array of block_count entries; SWA layers have their own head size,
 * rotary dims and base; the sliding pattern is an array of bools or a
 * period. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf_model_internal.h"
#include "model/rope.h"

#define MAX_LAYERS  4096
#define MAX_HEADS   4096
#define MAX_HEADDIM 8192
#define MAX_WIDTH   (1 << 24)

static const char *key_of(const sp_gguf_map *m, const char *key, char *buf, size_t n) {
    snprintf(buf, n, "%s.%s", m->an, key);
    return buf;
}

sp_status sp_gguf_kv_u32(const sp_gguf_map *m, const char *key, uint32_t def, int req,
                         uint32_t *out, sp_error *err) {
    char k[160];
    return sp_gguf_get_u32(m->g, key_of(m, key, k, sizeof k), def, req, out, err);
}

sp_status sp_gguf_kv_f32(const sp_gguf_map *m, const char *key, float def, float *out,
                         sp_error *err) {
    char k[160];
    return sp_gguf_get_f32(m->g, key_of(m, key, k, sizeof k), def, 0, out, err);
}

static sp_status bad(const sp_gguf_map *m, const char *key, const char *what, long long v,
                     sp_error *err) {
    return sp_fail(err, SP_EFORMAT, "%s: metadata key %s.%s: %s (%lld)", sp_gguf_path(m->g), m->an,
                   key, what, v);
}

/* A per-layer integer: a scalar for every layer, or an array of one value
 * per layer (llama.cpp get_key_or_arr). Values must lie in [lo, hi]. */
static sp_status kv_layers(const sp_gguf_map *m, const char *key, uint32_t def, int req, int lo,
                           int hi, int *out, sp_error *err) {
    char k[160];
    key_of(m, key, k, sizeof k);
    int n = m->d->n_layers;
    const sp_gguf_val *v = sp_gguf_find(m->g, k);
    if (v && sp_gguf_val_type(v) == SP_GGUF_ARRAY) {
        if ((int)sp_gguf_arr_len(v) != n)
            return bad(m, key, "array length != block_count", (long long)sp_gguf_arr_len(v), err);
        sp_gguf_type et = sp_gguf_arr_type(v);
        if (et == SP_GGUF_STRING || et == SP_GGUF_ARRAY || et == SP_GGUF_F32 || et == SP_GGUF_F64)
            return sp_fail(err, SP_EFORMAT, "%s: metadata key %s: array of %s, expected integers",
                           sp_gguf_path(m->g), k, sp_gguf_type_name(et));
        for (int i = 0; i < n; i++) {
            int64_t x = sp_gguf_arr_i64(v, (uint64_t)i);
            if (x < lo || x > hi) return bad(m, key, "value out of range", (long long)x, err);
            out[i] = (int)x;
        }
        return SP_OK;
    }
    uint32_t x;
    SP_TRY(sp_gguf_get_u32(m->g, k, def, req, &x, err));
    if ((int64_t)x < lo || (int64_t)x > hi) return bad(m, key, "value out of range", x, err);
    for (int i = 0; i < n; i++) out[i] = (int)x;
    return SP_OK;
}

/* ---- which layers slide ----------------------------------------------------- */

static sp_status read_sliding(sp_gguf_map *m, int *window, sp_error *err) {
    const sp_gguf_arch *a = m->arch;
    int n = m->d->n_layers;
    uint32_t w;
    SP_TRY(sp_gguf_kv_u32(m, "attention.sliding_window", (uint32_t)a->default_window, 0, &w, err));
    if (w > (1u << 30)) return bad(m, "attention.sliding_window", "too large", w, err);
    *window = (int)w;
    char k[160];
    const sp_gguf_val *v =
        sp_gguf_find(m->g, key_of(m, "attention.sliding_window_pattern", k, sizeof k));
    if (v && sp_gguf_val_type(v) == SP_GGUF_ARRAY) { /* one bool per layer */
        if ((int)sp_gguf_arr_len(v) != n || sp_gguf_arr_type(v) != SP_GGUF_BOOL)
            return bad(m, "attention.sliding_window_pattern", "expected block_count bools",
                       (long long)sp_gguf_arr_len(v), err);
        for (int i = 0; i < n; i++) m->sliding[i] = sp_gguf_arr_i64(v, (uint64_t)i) != 0;
        return SP_OK;
    }
    uint32_t period;
    SP_TRY(sp_gguf_kv_u32(m, "attention.sliding_window_pattern", (uint32_t)a->swa_period, 0,
                          &period, err));
    for (int i = 0; i < n; i++) /* every period-th layer is full attention */
        m->sliding[i] = w > 0 && (period == 0 || i % (int)period < (int)period - 1);
    return SP_OK;
}

/* ---- attention geometry ----------------------------------------------------- */

typedef struct layer_arrays {
    int *heads, *kv_heads, *ffn;
} layer_arrays;

static sp_status read_heads(sp_gguf_map *m, layer_arrays *la, sp_error *err) {
    SP_TRY(kv_layers(m, "attention.head_count", 0, 1, 1, MAX_HEADS, la->heads, err));
    char k[160];
    if (sp_gguf_find(m->g, key_of(m, "attention.head_count_kv", k, sizeof k)))
        SP_TRY(kv_layers(m, "attention.head_count_kv", 0, 1, 1, MAX_HEADS, la->kv_heads, err));
    else
        memcpy(la->kv_heads, la->heads, sizeof(int) * (size_t)m->d->n_layers);
    int moe = m->n_experts > 0;
    SP_TRY(kv_layers(m, "feed_forward_length", 0, !moe, 0, MAX_WIDTH, la->ffn, err));
    return SP_OK;
}

/* llama.cpp's rule for the q.k scale, unless the file states it. */
static float attention_scale(const sp_gguf_map *m, float stated, int head_dim, int heads) {
    if (stated > 0) return stated;
    if (m->arch->flags & GF_GEMMA4) return 1.0f;
    if ((m->arch->flags & GF_BIG_SCALE) && m->d->n_layers == m->arch->big_layers)
        return 1.0f / sqrtf((float)(m->d->hidden / heads));
    return 1.0f / sqrtf((float)head_dim);
}

static sp_status read_layers(sp_gguf_map *m, layer_arrays *la, sp_error *err) {
    sp_model_desc *d = m->d;
    uint32_t hd_full, hd_swa, shared;
    int window = 0;
    float scale;
    SP_TRY(read_sliding(m, &window, err));
    SP_TRY(read_heads(m, la, err));
    SP_TRY(sp_gguf_kv_u32(m, "attention.key_length", (uint32_t)(d->hidden / la->heads[0]), 0,
                          &hd_full, err));
    SP_TRY(sp_gguf_kv_u32(m, "attention.key_length_swa", hd_full, 0, &hd_swa, err));
    SP_TRY(sp_gguf_kv_f32(m, "attention.scale", 0, &scale, err));
    SP_TRY(sp_gguf_kv_u32(m, "attention.shared_kv_layers", 0, 0, &shared, err));
    if (hd_full < 2 || hd_full > MAX_HEADDIM || hd_swa < 2 || hd_swa > MAX_HEADDIM)
        return bad(m, "attention.key_length", "head size out of range", hd_full, err);
    if (shared >= (uint32_t)d->n_layers)
        return bad(m, "attention.shared_kv_layers", "not below block_count", shared, err);
    m->first_kv_shared = d->n_layers - (int)shared;
    for (int i = 0; i < d->n_layers; i++) {
        sp_layer_desc *L = &d->layers[i];
        L->n_heads = la->heads[i];
        L->n_kv_heads = la->kv_heads[i];
        L->head_dim = (int)(m->sliding[i] ? hd_swa : hd_full);
        L->sliding_window = m->sliding[i] ? window : 0;
        L->attn_scale = attention_scale(m, scale, L->head_dim, L->n_heads);
        L->layer_scalar = 1.0f;
        L->kv_source = i;
        L->ffn_dim = la->ffn[i];
        L->has_v_norm = (m->arch->flags & GF_GEMMA4) != 0;
        if (L->n_heads % L->n_kv_heads)
            return sp_fail(err, SP_EFORMAT,
                           "%s: layer %d has %d query heads, not a multiple of %d KV heads",
                           sp_gguf_path(m->g), i, L->n_heads, L->n_kv_heads);
        if (i >= m->first_kv_shared) { /* reuse the last earlier layer of its type */
            L->kv_source = -1;
            for (int j = m->first_kv_shared - 1; j >= 0 && L->kv_source < 0; j--)
                if (m->sliding[j] == m->sliding[i]) L->kv_source = j;
            if (L->kv_source < 0)
                return sp_fail(
                    err, SP_EFORMAT,
                    "%s: layer %d shares K/V but no earlier layer has its attention type",
                    sp_gguf_path(m->g), i);
        }
    }
    return SP_OK;
}

/* ---- RoPE --------------------------------------------------------------------- */

/* Factors shipped as tensors (rope_freqs: llama3 / Gemma 4 proportional;
 * rope_factors_long/short: LongRoPE) as f32 values. NULL when absent. */
static sp_status rope_tensor(const sp_gguf_map *m, const char *name, int n, double *out, int *found,
                             sp_error *err) {
    *found = 0;
    const sp_gguf_tensor *t = sp_gguf_find_tensor(m->g, name);
    if (!t) return SP_OK;
    if (t->dtype != SP_F32 || t->ndim != 1 || t->shape[0] != n)
        return sp_fail(err, SP_EFORMAT, "%s: tensor %s must be F32 [%d]", sp_gguf_path(m->g), name,
                       n);
    for (int i = 0; i < n; i++) out[i] = ((const float *)t->data)[i];
    *found = 1;
    return SP_OK;
}

typedef struct rope_meta {
    float base, factor, attn_factor, beta_fast, beta_slow;
    uint32_t orig;
    const char *type;
} rope_meta;

static sp_status read_rope_meta(sp_gguf_map *m, rope_meta *r, sp_error *err) {
    char k[160];
    SP_TRY(sp_gguf_kv_f32(m, "rope.freq_base", 10000.0f, &r->base, err));
    SP_TRY(sp_gguf_kv_f32(m, "rope.scaling.factor", 0, &r->factor, err));
    if (r->factor == 0) SP_TRY(sp_gguf_kv_f32(m, "rope.scale_linear", 0, &r->factor, err));
    SP_TRY(sp_gguf_kv_f32(m, "rope.scaling.attn_factor", 0, &r->attn_factor, err));
    SP_TRY(sp_gguf_kv_f32(m, "rope.scaling.yarn_beta_fast", 0, &r->beta_fast, err));
    SP_TRY(sp_gguf_kv_f32(m, "rope.scaling.yarn_beta_slow", 0, &r->beta_slow, err));
    SP_TRY(sp_gguf_kv_u32(m, "rope.scaling.original_context_length", 0, 0, &r->orig, err));
    SP_TRY(
        sp_gguf_get_str(m->g, key_of(m, "rope.scaling.type", k, sizeof k), NULL, 0, &r->type, err));
    if (!(r->base > 0) || !isfinite(r->base)) /* a float: %g, not bad()'s integer */
        return sp_fail(err, SP_EFORMAT, "%s: metadata key %s.rope.freq_base: must be > 0 (%g)",
                       sp_gguf_path(m->g), m->an, (double)r->base);
    return SP_OK;
}

/* The table of the full-attention layers: scaling and factor tensors apply
 * here (llama.cpp applies rope_freqs and scaling to non-SWA layers). */
static sp_status build_full_rope(sp_gguf_map *m, const rope_meta *r, int hd, int rot,
                                 sp_rope_table *out, sp_error *err) {
    sp_rope_params p;
    sp_rope_params_default(&p);
    p.theta = r->base;
    p.partial_rotary_factor = (double)rot / hd;
    p.interleaved = (m->arch->flags & GF_NORM_ROPE) != 0;
    p.max_pos = m->d->max_pos;
    p.orig_max = (int)r->orig;
    int n = rot / 2, found_l = 0, found_s = 0;
    double *lf = calloc((size_t)n * 2, sizeof(double)), *sf = lf + n;
    if (!lf) return sp_fail(err, SP_ENOMEM, "rope factors");
    sp_status s = rope_tensor(m, "rope_factors_long.weight", n, lf, &found_l, err);
    if (s == SP_OK) s = rope_tensor(m, "rope_factors_short.weight", n, sf, &found_s, err);
    const char *t = r->type ? r->type : (r->factor > 0 ? "linear" : "none");
    if (s != SP_OK) {
    } else if (found_l && found_s) {
        p.kind = SP_ROPE_LONGROPE;
        p.long_factor = lf, p.short_factor = sf, p.n_long = p.n_short = n;
        p.attention_factor = r->attn_factor;
    } else if (!strcmp(t, "linear") && r->factor > 0) {
        p.kind = SP_ROPE_LINEAR, p.factor = r->factor;
    } else if (!strcmp(t, "yarn")) {
        p.kind = SP_ROPE_YARN, p.factor = r->factor;
        p.beta_fast = r->beta_fast, p.beta_slow = r->beta_slow;
        p.attention_factor = r->attn_factor;
    } else if (strcmp(t, "none") && strcmp(t, "linear")) {
        s = sp_fail(err, SP_EUNSUPPORTED, "%s: %s.rope.scaling.type: unsupported rope scaling '%s'",
                    sp_gguf_path(m->g), m->an, t);
    }
    if (s == SP_OK) s = sp_rope_build(out, &p, hd, err);
    free(lf);
    SP_TRY(s);
    /* rope_freqs divides the frequencies (llama3 shaping; Gemma 4 marks the
     * unrotated pairs of proportional RoPE with 1e30: exactly identity) */
    double *ff = calloc((size_t)out->n_pairs, sizeof(double));
    int found;
    if (!ff) return sp_fail(err, SP_ENOMEM, "rope factors");
    s = rope_tensor(m, "rope_freqs.weight", out->n_pairs, ff, &found, err);
    for (int i = 0; s == SP_OK && found && i < out->n_pairs; i++) {
        if (!(ff[i] > 0) || !isfinite(ff[i]))
            s = sp_fail(err, SP_EFORMAT, "%s: rope_freqs.weight[%d] = %g is not a positive factor",
                        sp_gguf_path(m->g), i, ff[i]);
        else
            out->inv_freq[i] = ff[i] >= 1e20 ? 0.0f : (float)(out->inv_freq[i] / ff[i]);
    }
    free(ff);
    return s;
}

static sp_status build_swa_rope(sp_gguf_map *m, const rope_meta *r, int hd, int rot,
                                sp_rope_table *out, sp_error *err) {
    sp_rope_params p;
    sp_rope_params_default(&p);
    float base;
    SP_TRY(sp_gguf_kv_f32(m, "rope.freq_base_swa", 10000.0f, &base, err));
    if (!(base > 0)) return bad(m, "rope.freq_base_swa", "must be > 0", (long long)base, err);
    p.theta = base;
    p.partial_rotary_factor = (double)rot / hd;
    p.interleaved = (m->arch->flags & GF_NORM_ROPE) != 0;
    p.max_pos = m->d->max_pos;
    (void)r;
    return sp_rope_build(out, &p, hd, err);
}

static sp_status read_rope(sp_gguf_map *m, sp_error *err) {
    sp_model_desc *d = m->d;
    rope_meta r;
    SP_TRY(read_rope_meta(m, &r, err));
    int full = -1, swa = -1;
    for (int i = 0; i < d->n_layers; i++) {
        if (m->sliding[i] && swa < 0) swa = i;
        if (!m->sliding[i] && full < 0) full = i;
    }
    int hd_full = d->layers[full >= 0 ? full : 0].head_dim;
    uint32_t rot, rot_swa;
    SP_TRY(sp_gguf_kv_u32(m, "rope.dimension_count", (uint32_t)hd_full, 0, &rot, err));
    SP_TRY(sp_gguf_kv_u32(m, "rope.dimension_count_swa", rot, 0, &rot_swa, err));
    if (rot < 2 || (int)rot > hd_full)
        return bad(m, "rope.dimension_count", "not within the head size", rot, err);
    SP_TRY(build_full_rope(m, &r, hd_full, (int)rot, &d->ropes[0], err));
    d->n_ropes = 1;
    int own_swa = swa >= 0 && (m->arch->flags & GF_SWA_ROPE);
    if (own_swa) {
        int hd = d->layers[swa].head_dim;
        if (rot_swa < 2 || (int)rot_swa > hd)
            return bad(m, "rope.dimension_count_swa", "not within the head size", rot_swa, err);
        SP_TRY(build_swa_rope(m, &r, hd, (int)rot_swa, &d->ropes[1], err));
        d->n_ropes = 2;
    }
    for (int i = 0; i < d->n_layers; i++) {
        d->layers[i].rope = own_swa && m->sliding[i] ? 1 : 0;
        if (d->ropes[d->layers[i].rope].head_dim != d->layers[i].head_dim)
            return sp_fail(
                err, SP_EFORMAT, "%s: layer %d head size %d differs from its RoPE table's %d",
                sp_gguf_path(m->g), i, d->layers[i].head_dim, d->ropes[d->layers[i].rope].head_dim);
    }
    return SP_OK;
}

/* ---- MoE counts ------------------------------------------------------------------ */

static sp_status read_moe(sp_gguf_map *m, sp_error *err) {
    uint32_t ne, nk;
    SP_TRY(sp_gguf_kv_u32(m, "expert_count", 0, 0, &ne, err));
    SP_TRY(sp_gguf_kv_u32(m, "expert_used_count", 0, ne > 0, &nk, err));
    if (ne > 4096) return bad(m, "expert_count", "too many experts", ne, err);
    if (ne && (nk == 0 || nk > ne))
        return bad(m, "expert_used_count", "not in 1..expert_count", nk, err);
    m->n_experts = (int)ne, m->n_experts_used = (int)nk;
    m->moe_norm = 1; /* llama.cpp renormalises the selected weights by default */
    char k[160];
    SP_TRY(sp_gguf_get_bool(m->g, key_of(m, "expert_weights_norm", k, sizeof k), 1, 0, &m->moe_norm,
                            err));
    return SP_OK;
}

static sp_status read_expert_ffn(sp_gguf_map *m, const int *ffn, sp_error *err) {
    if (!m->n_experts) return SP_OK;
    char k[160];
    if (sp_gguf_find(m->g, key_of(m, "expert_feed_forward_length", k, sizeof k)))
        return kv_layers(m, "expert_feed_forward_length", 0, 1, 1, MAX_WIDTH, m->expert_ffn, err);
    /* llama.cpp's fallback: feed_forward_length / experts used */
    for (int i = 0; i < m->d->n_layers; i++) m->expert_ffn[i] = ffn[i] / m->n_experts_used;
    return SP_OK;
}

/* ---- entry ------------------------------------------------------------------------ */

static sp_status read_globals(sp_gguf_map *m, sp_error *err) {
    sp_model_desc *d = m->d;
    uint32_t v;
    SP_TRY(sp_gguf_kv_u32(m, "embedding_length", 0, 1, &v, err));
    if (v < 1 || v > (1u << 20)) return bad(m, "embedding_length", "out of range", v, err);
    d->hidden = (int)v;
    SP_TRY(sp_gguf_kv_u32(m, "block_count", 0, 1, &v, err));
    if (v < 1 || v > MAX_LAYERS) return bad(m, "block_count", "out of range", v, err);
    d->n_layers = (int)v;
    SP_TRY(sp_gguf_kv_u32(m, "context_length", 4096, 0, &v, err));
    d->max_pos = v > (1u << 30) ? (1 << 30) : (int)v;
    SP_TRY(sp_gguf_kv_f32(m, "attention.layer_norm_rms_epsilon", 1e-5f, &d->norm_eps, err));
    SP_TRY(sp_gguf_kv_f32(m, "attn_logit_softcapping", 0, &d->attn_softcap, err));
    SP_TRY(sp_gguf_kv_f32(m, "final_logit_softcapping", 0, &d->final_softcap, err));
    SP_TRY(sp_gguf_kv_u32(m, "embedding_length_per_layer_input", 0, 0, &v, err));
    if (v > (1u << 16)) return bad(m, "embedding_length_per_layer_input", "out of range", v, err);
    d->ple_dim = (int)v;
    int gemma = (m->arch->flags & GF_GEMMA) != 0;
    d->sandwich_norms = gemma;
    d->act = gemma ? SP_ACT_GELU_TANH : SP_ACT_SILU;
    d->embed_scale = gemma ? sqrtf((float)d->hidden) : 1.0f;
    d->norm_one_plus = 0; /* llama.cpp's converter stores Gemma 2/3 norms as 1 + w */
    return SP_OK;
}

sp_status sp_gguf_read_hparams(sp_gguf_map *m, sp_error *err) {
    sp_model_desc *d = m->d;
    SP_TRY(read_globals(m, err));
    SP_TRY(read_moe(m, err));
    size_t n = (size_t)d->n_layers;
    d->layers = calloc(n, sizeof *d->layers);
    m->sliding = calloc(n * 2, sizeof(int)); /* owned by the caller (gguf_model.c) */
    int *tmp = calloc(n * 3, sizeof(int));
    if (!d->layers || !m->sliding || !tmp) {
        free(tmp);
        return sp_fail(err, SP_ENOMEM, "layers");
    }
    m->expert_ffn = m->sliding + n;
    layer_arrays la = {.heads = tmp, .kv_heads = tmp + n, .ffn = tmp + 2 * n};
    sp_status s = read_layers(m, &la, err);
    if (s == SP_OK) s = read_expert_ffn(m, la.ffn, err);
    if (s == SP_OK) s = read_rope(m, err);
    free(tmp);
    return s;
}
