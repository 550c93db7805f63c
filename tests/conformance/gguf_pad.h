/* stories260K (a real trained Llama, dim 64) zero-padded to dim 256, FFN 256
 * and 32 heads, written in any weight type: the padded model is exactly
 * the same function (so its F32 version reproduces llama.cpp's stories
 * numbers), but every matrix row is now a multiple of 256 wide, so all
 * k-quants apply. A trained model has real top-1 margins, unlike random
 * weights, which are either copy machines or chaotic.
 *
 * Why it is the same function: padded lanes of the residual stream are 0,
 * and RMSNorm over 256 lanes sees mean(x^2) / 4, so the norm weights are
 * halved and eps is quartered: x / sqrt(m/4 + eps/4) * w/2 ==
 * x / sqrt(m + eps) * w. Extra query heads and FFN units have zero weights
 * and contribute 0 (their values are 0; silu(0) * 0 = 0). */
#ifndef SP_TEST_GGUF_PAD_H
#define SP_TEST_GGUF_PAD_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/dtype.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"

#define PAD_H     256
#define PAD_HEADS 32

typedef struct pad_ctx {
    const sp_gguf *src;
    sp_gguf_writer *w;
    sp_dtype type;
    void **bufs;
    int n_bufs;
} pad_ctx;

/* Copies src [rows, cols] (any dtype) into a zero [R, C] f32 matrix,
 * scaled by mul, then encodes it. */
static inline int pad_tensor(pad_ctx *c, const char *name, int64_t R, int64_t C, float mul) {
    const sp_gguf_tensor *t = sp_gguf_find_tensor(c->src, name);
    if (!t) return 0;
    int64_t rows = t->ndim == 2 ? t->shape[0] : 1, cols = t->shape[t->ndim - 1];
    float *x = calloc((size_t)(R * C), sizeof(float)), *row = malloc((size_t)cols * sizeof(float));
    size_t srb = sp_dtype_row_bytes(t->dtype, cols);
    for (int64_t r = 0; r < rows; r++) {
        sp_dequantize_row(t->dtype, (const uint8_t *)t->data + r * srb, row, cols);
        for (int64_t k = 0; k < cols; k++) x[r * C + k] = row[k] * mul;
    }
    free(row);
    sp_dtype ty = R > 1 ? c->type : SP_F32;
    if (C % sp_dtype_block(ty)) ty = SP_F16;
    size_t rb = sp_dtype_row_bytes(ty, C);
    uint8_t *q = malloc(rb * (size_t)R);
    for (int64_t r = 0; r < R; r++) sp_quantize_row(ty, x + r * C, q + r * rb, C);
    free(x);
    c->bufs[c->n_bufs++] = q;
    int64_t shape2[2] = {R, C}, shape1[1] = {C};
    return sp_gguf_w_tensor(c->w, name, sp_ggml_from_dtype(ty), R > 1 ? 2 : 1,
                            R > 1 ? shape2 : shape1, q, rb * (size_t)R) == SP_OK;
}

/* Writes the padded model in type; 1 on success. */
static inline int pad_stories(const char *src_path, const char *out, sp_dtype type, char *msg,
                              size_t msg_len) {
    sp_gguf *g = NULL;
    sp_error err = {0};
    if (sp_gguf_open(&g, src_path, &err) != SP_OK) {
        snprintf(msg, msg_len, "%s", err.msg);
        return 0;
    }
    uint32_t L = 0, F = 0, H = 0, V = 0;
    float eps = 0;
    sp_gguf_get_u32(g, "llama.block_count", 0, 1, &L, &err);
    sp_gguf_get_u32(g, "llama.feed_forward_length", 0, 1, &F, &err);
    sp_gguf_get_u32(g, "llama.embedding_length", 0, 1, &H, &err);
    sp_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", 0, 1, &eps, &err);
    const sp_gguf_tensor *te = sp_gguf_find_tensor(g, "token_embd.weight");
    V = te ? (uint32_t)te->shape[0] : 0;
    pad_ctx c = {.src = g, .w = sp_gguf_writer_new(), .type = type};
    c.bufs = calloc((size_t)(16 * L + 8), sizeof(void *));
    int64_t P = PAD_H, hd = 8, q = PAD_HEADS * hd, kv = q / 2;
    int ok = L && F <= PAD_H && H == 64 && V && !err.msg[0];
    ok = ok && sp_gguf_w_str(c.w, "general.architecture", "llama") == SP_OK &&
         sp_gguf_w_u32(c.w, "llama.context_length", 2048) == SP_OK &&
         sp_gguf_w_u32(c.w, "llama.embedding_length", PAD_H) == SP_OK &&
         sp_gguf_w_u32(c.w, "llama.feed_forward_length", PAD_H) == SP_OK &&
         sp_gguf_w_u32(c.w, "llama.block_count", L) == SP_OK &&
         sp_gguf_w_u32(c.w, "llama.attention.head_count", PAD_HEADS) == SP_OK &&
         sp_gguf_w_u32(c.w, "llama.attention.head_count_kv", PAD_HEADS / 2) == SP_OK &&
         sp_gguf_w_u32(c.w, "llama.attention.key_length", (uint32_t)hd) == SP_OK &&
         sp_gguf_w_u32(c.w, "llama.rope.dimension_count", (uint32_t)hd) == SP_OK &&
         sp_gguf_w_f32(c.w, "llama.attention.layer_norm_rms_epsilon", eps / 4) == SP_OK &&
         sp_gguf_w_u32(c.w, "tokenizer.ggml.bos_token_id", 1) == SP_OK &&
         sp_gguf_w_u32(c.w, "tokenizer.ggml.eos_token_id", 2) == SP_OK;
    ok = ok && pad_tensor(&c, "token_embd.weight", V, P, 1) &&
         pad_tensor(&c, "output_norm.weight", 1, P, 0.5f) &&
         pad_tensor(&c, "output.weight", V, P, 1);
    char n[96];
#define PAD(suffix, R, C, mul)                                                                     \
    (snprintf(n, sizeof n, "blk.%u.%s", l, suffix), pad_tensor(&c, n, R, C, mul))
    for (uint32_t l = 0; ok && l < L; l++)
        ok = PAD("attn_norm.weight", 1, P, 0.5f) && PAD("attn_q.weight", q, P, 1) &&
             PAD("attn_k.weight", kv, P, 1) && PAD("attn_v.weight", kv, P, 1) &&
             PAD("attn_output.weight", P, q, 1) && PAD("ffn_norm.weight", 1, P, 0.5f) &&
             PAD("ffn_gate.weight", P, P, 1) && PAD("ffn_up.weight", P, P, 1) &&
             PAD("ffn_down.weight", P, P, 1);
#undef PAD
    if (ok && sp_gguf_w_write(c.w, out, &err) != SP_OK) ok = 0;
    if (!ok) snprintf(msg, msg_len, "%.300s: padding failed: %.600s", src_path, err.msg);
    for (int i = 0; i < c.n_bufs; i++) free(c.bufs[i]);
    free(c.bufs);
    sp_gguf_writer_free(c.w);
    sp_gguf_close(g);
    return ok;
}

#endif
