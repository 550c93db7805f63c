/* Llama-architecture GGUF files with seeded random weights, written with
 * Spindle's GGUF writer in any weight type (for the quantized-conformance
 * test and for bench/make_model.c, which writes multi-GB models: tensors are
 * generated and encoded one at a time while the file is written).
 *
 * Weights: every value of tensor k is a deterministic function of (seed, k,
 * index), so the same model in two types holds the same underlying values,
 * rounded differently. Matrices are N(0, gain / sqrt(fan_in)), which keeps
 * every layer's contribution to the residual stream comparable to the
 * embedding (a plain std like 0.1 makes the logits near-ties: top-1 then
 * measures noise, not fidelity). Embeddings are N(0, 1); the output matrix
 * is tied to them unless `untied`; norms are 1. */
#ifndef SP_TEST_GGUF_SYNTH_H
#define SP_TEST_GGUF_SYNTH_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/dtype.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"

typedef struct synth_cfg {
    int dim, layers, heads, kv_heads, ffn, vocab, ctx;
    float rope_theta, eps, gain;
    uint64_t seed;
    int untied;
    sp_dtype type; /* of 2-D weights (rows not fitting its blocks fall back to F16) */
} synth_cfg;

static inline void synth_default(synth_cfg *c) {
    *c = (synth_cfg){.dim = 256,
                     .layers = 2,
                     .heads = 4,
                     .kv_heads = 2,
                     .ffn = 768,
                     .vocab = 512,
                     .ctx = 2048,
                     .rope_theta = 10000.0f,
                     .eps = 1e-5f,
                     .gain = 1.0f,
                     .seed = 1234,
                     .type = SP_F32};
}

/* splitmix64: a counter-based generator, so any element can be produced
 * independently of the others */
static inline uint64_t synth_mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Approximately N(0, 1): the sum of four uniforms, rescaled (Irwin-Hall). */
static inline float synth_normal(uint64_t seed, uint64_t tensor, uint64_t i) {
    uint64_t h = synth_mix(seed ^ synth_mix(tensor * 0x100000001b3ull + i));
    float s = 0;
    for (int k = 0; k < 4; k++) s += (float)((h >> (16 * k)) & 0xffff) / 65535.0f;
    return (s - 2.0f) * 1.7320508f; /* var of the sum is 4/12 */
}

typedef struct synth_tensor {
    const synth_cfg *cfg;
    int id;    /* tensor number: selects its values */
    float std; /* 0: constant 1 (norms) */
    int64_t rows, cols;
    sp_dtype type;
} synth_tensor;

static inline sp_status synth_fill(void *ctx, const char *name, void *buf, size_t nbytes,
                                   sp_error *err) {
    const synth_tensor *t = ctx;
    size_t rb = sp_dtype_row_bytes(t->type, t->cols);
    float *row = malloc((size_t)t->cols * sizeof(float));
    if (!row) return sp_fail(err, SP_ENOMEM, "%s: no memory", name);
    for (int64_t r = 0; r < t->rows; r++) {
        for (int64_t c = 0; c < t->cols; c++)
            row[c] = t->std == 0 ? 1.0f
                                 : t->std * synth_normal(t->cfg->seed, (uint64_t)t->id,
                                                         (uint64_t)(r * t->cols + c));
        if (!sp_quantize_row(t->type, row, (uint8_t *)buf + (size_t)r * rb, t->cols)) {
            free(row);
            return sp_fail(err, SP_EINVAL, "%s: cannot encode %s", name, sp_dtype_name(t->type));
        }
    }
    free(row);
    (void)nbytes;
    return SP_OK;
}

/* Adds one tensor description; tensors[] must outlive the write. */
static inline sp_status synth_add(sp_gguf_writer *w, synth_tensor *slot, const synth_cfg *c, int id,
                                  const char *name, int64_t rows, int64_t cols, float std) {
    sp_dtype t = SP_F32;
    if (rows > 1) { /* a matrix: the requested type when its rows fit */
        t = c->type;
        if (cols % sp_dtype_block(t)) t = SP_F16;
    }
    *slot = (synth_tensor){.cfg = c, .id = id, .std = std, .rows = rows, .cols = cols, .type = t};
    int64_t shape2[2] = {rows, cols}, shape1[1] = {cols};
    return sp_gguf_w_tensor_fill(w, name, sp_ggml_from_dtype(t), rows > 1 ? 2 : 1,
                                 rows > 1 ? shape2 : shape1, synth_fill, slot);
}

static inline sp_status synth_meta(sp_gguf_writer *w, const synth_cfg *c) {
    const char *a = "llama";
    char k[96];
#define SYN_U32(key, v) (snprintf(k, sizeof k, "%s." key, a), sp_gguf_w_u32(w, k, (uint32_t)(v)))
    SP_TRY(sp_gguf_w_str(w, "general.architecture", a));
    SP_TRY(sp_gguf_w_str(w, "general.name", "spindle-synth"));
    SP_TRY(SYN_U32("context_length", c->ctx));
    SP_TRY(SYN_U32("embedding_length", c->dim));
    SP_TRY(SYN_U32("block_count", c->layers));
    SP_TRY(SYN_U32("feed_forward_length", c->ffn));
    SP_TRY(SYN_U32("attention.head_count", c->heads));
    SP_TRY(SYN_U32("attention.head_count_kv", c->kv_heads));
    SP_TRY(SYN_U32("rope.dimension_count", c->dim / c->heads));
#undef SYN_U32
    snprintf(k, sizeof k, "%s.rope.freq_base", a);
    SP_TRY(sp_gguf_w_f32(w, k, c->rope_theta));
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", a);
    SP_TRY(sp_gguf_w_f32(w, k, c->eps));
    SP_TRY(sp_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 1));
    SP_TRY(sp_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 2));
    return SP_OK;
}

/* Number of tensors synth_write describes. */
static inline int synth_n_tensors(const synth_cfg *c) {
    return 2 + !!c->untied + 9 * c->layers;
}

/* Writes the model. `extra` (may be NULL) adds metadata first, e.g. a
 * tokenizer copied from another file. */
static inline sp_status synth_write(const synth_cfg *c, const char *path,
                                    sp_status (*extra)(sp_gguf_writer *, void *), void *extra_ctx,
                                    sp_error *err) {
    sp_gguf_writer *w = sp_gguf_writer_new();
    synth_tensor *ts = calloc((size_t)synth_n_tensors(c), sizeof *ts);
    if (!w || !ts) {
        sp_gguf_writer_free(w);
        free(ts);
        return sp_fail(err, SP_ENOMEM, "synth: no memory");
    }
    int64_t D = c->dim, hd = c->dim / c->heads, F = c->ffn, V = c->vocab;
    int64_t q = (int64_t)c->heads * hd, kv = (int64_t)c->kv_heads * hd;
    float g = c->gain, sd = g / sqrtf((float)D), sf = g / sqrtf((float)F);
    int n = 0;
    sp_status s = synth_meta(w, c);
    if (s == SP_OK && extra) s = extra(w, extra_ctx);
    char name[96];
#define SYN_ADD(nm, r, cl, sdev)                                                                   \
    if (s == SP_OK) s = synth_add(w, &ts[n], c, n, nm, r, cl, sdev), n++
    SYN_ADD("token_embd.weight", V, D, 1.0f);
    SYN_ADD("output_norm.weight", 1, D, 0);
    if (c->untied) SYN_ADD("output.weight", V, D, 1.0f / sqrtf((float)D));
    for (int l = 0; l < c->layers; l++) {
        static const char *names[] = {"attn_norm", "attn_q",   "attn_k", "attn_v",  "attn_output",
                                      "ffn_norm",  "ffn_gate", "ffn_up", "ffn_down"};
        int64_t rows[] = {1, q, kv, kv, D, 1, F, F, D}, cols[] = {D, D, D, D, q, D, D, D, F};
        float sds[] = {0, sd, sd, sd, g / sqrtf((float)q), 0, sd, sd, sf};
        for (int k = 0; k < 9; k++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, names[k]);
            SYN_ADD(name, rows[k], cols[k], sds[k]);
        }
    }
#undef SYN_ADD
    if (s == SP_OK)
        s = sp_gguf_w_write(w, path, err);
    else
        sp_fail(err, s, "synth: describing tensor %d failed", n);
    sp_gguf_writer_free(w);
    free(ts);
    return s;
}

#endif
