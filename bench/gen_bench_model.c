/* Writes a random-weight Llama-shaped GGUF for speed measurements (the
 * numbers it computes are meaningless; every byte is still read and every
 * product still done). Stand-in for bench/make_model.c while that is being
 * written; same idea, smaller.
 *
 *   gen_bench_model OUT.gguf TYPE [layers hidden ffn heads kv_heads vocab]
 *   TYPE: f32 f16 bf16 q8_0 q4_0 q4_k q5_k q6_k
 * Default shape: 16 layers, hidden 2048, ffn 5632, 32 heads, 8 KV heads,
 * vocab 32000: 0.84 B parameters (TinyLlama's widths, fewer layers).
 *
 * Quantized tensors are random blocks with sane scales (no quantizer run),
 * so writing a Q4_K file takes seconds. The vocabulary is SentencePiece-style
 * (<unk>, <s>, </s>, 256 byte tokens, filler pieces) so llama.cpp loads it.
 *
 * Build (not part of CMake):
 *   cc -O2 -Isrc bench/gen_bench_model.c build/perf/libsp_formats.a \
 *      build/perf/libsp_compute.a build/perf/libsp_base.a -lm -pthread -o gen_bench_model */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/dtype.h"
#include "formats/gguf_write.h"

enum {
    GGML_F32 = 0,
    GGML_F16 = 1,
    GGML_Q4_0 = 2,
    GGML_Q8_0 = 8,
    GGML_Q4_K = 12,
    GGML_Q5_K = 13,
    GGML_Q6_K = 14,
    GGML_BF16 = 30
};

typedef struct shape {
    int layers, hidden, ffn, heads, kv_heads, vocab;
} shape;

typedef struct fill_ctx {
    uint32_t type; /* ggml type of the 2-D weights */
    uint64_t seed;
} fill_ctx;

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* uniform in [-a, a) */
static float rndf(uint64_t *s, float a) {
    return ((float)(rnd(s) >> 40) / 16777216.0f * 2.0f - 1.0f) * a;
}

static void put16(uint8_t *p, uint16_t v) {
    memcpy(p, &v, 2);
}

#define W_AMP 0.04f /* weight magnitude: activations neither vanish nor blow up */

static void fill_blocks(uint32_t type, uint8_t *b, size_t nbytes, uint64_t *s) {
    for (size_t i = 0; i < nbytes; i += 8) { /* random bytes everywhere, then fix the scales */
        uint64_t r = rnd(s);
        memcpy(b + i, &r, nbytes - i < 8 ? nbytes - i : 8);
    }
    size_t bb = type == GGML_Q8_0   ? 34
                : type == GGML_Q4_0 ? 18
                : type == GGML_Q5_K ? 176
                : type == GGML_Q6_K ? 210
                                    : 144;
    for (size_t i = 0; i + bb <= nbytes; i += bb) {
        if (type == GGML_Q8_0) put16(b + i, sp_f32_to_f16(W_AMP / 127.0f));
        if (type == GGML_Q4_0) put16(b + i, sp_f32_to_f16(W_AMP / 8.0f));
        if (type == GGML_Q4_K || type == GGML_Q5_K) { /* d, dmin lead the block */
            float q = type == GGML_Q4_K ? 15.0f : 31.0f;
            put16(b + i, sp_f32_to_f16(W_AMP / (q * 32.0f)));
            put16(b + i + 2, sp_f32_to_f16(W_AMP / 64.0f));
        }
        if (type == GGML_Q6_K) /* d is last; int8 sub-block scales of up to 128 */
            put16(b + i + 208, sp_f32_to_f16(W_AMP / (32.0f * 128.0f)));
    }
}

static sp_status fill(void *vctx, const char *name, void *buf, size_t nbytes, sp_error *err) {
    fill_ctx *c = vctx;
    uint64_t s = c->seed++ * 0x9E3779B97F4A7C15ull + 1;
    if (strstr(name, "norm")) { /* f32 ones */
        for (size_t i = 0; i < nbytes / 4; i++) ((float *)buf)[i] = 1.0f;
        return SP_OK;
    }
    if (c->type == GGML_F32) {
        for (size_t i = 0; i < nbytes / 4; i++) ((float *)buf)[i] = rndf(&s, W_AMP);
    } else if (c->type == GGML_F16 || c->type == GGML_BF16) {
        uint16_t *h = buf;
        for (size_t i = 0; i < nbytes / 2; i++) {
            float f = rndf(&s, W_AMP);
            h[i] = c->type == GGML_F16 ? sp_f32_to_f16(f) : sp_f32_to_bf16(f);
        }
    } else {
        fill_blocks(c->type, buf, nbytes, &s);
    }
    (void)err;
    return SP_OK;
}

static int parse_type(const char *s, uint32_t *t, sp_dtype *dt) {
    static const struct {
        const char *name;
        uint32_t ggml;
        sp_dtype sp;
    } types[] = {{"f32", GGML_F32, SP_F32},    {"f16", GGML_F16, SP_F16},
                 {"bf16", GGML_BF16, SP_BF16}, {"q8_0", GGML_Q8_0, SP_Q8_0},
                 {"q4_0", GGML_Q4_0, SP_Q4_0}, {"q4_k", GGML_Q4_K, SP_Q4_K},
                 {"q5_k", GGML_Q5_K, SP_Q5_K}, {"q6_k", GGML_Q6_K, SP_Q6_K}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(s, types[i].name)) {
            *t = types[i].ggml;
            *dt = types[i].sp;
            return 1;
        }
    return 0;
}

static void write_vocab(sp_gguf_writer *w, int V) {
    char **tok = malloc((size_t)V * sizeof *tok);
    float *score = malloc((size_t)V * sizeof *score);
    int32_t *type = malloc((size_t)V * sizeof *type);
    for (int i = 0; i < V; i++) {
        char buf[32];
        if (i < 3)
            snprintf(buf, sizeof buf, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259)
            snprintf(buf, sizeof buf, "<0x%02X>", i - 3);
        else
            snprintf(buf, sizeof buf, "\xe2\x96\x81t%d", i);
        tok[i] = strdup(buf);
        score[i] = -(float)i;
        type[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
    }
    sp_gguf_w_str(w, "tokenizer.ggml.model", "llama");
    sp_gguf_w_str_arr(w, "tokenizer.ggml.tokens", (const char *const *)tok, (uint64_t)V);
    sp_gguf_w_arr(w, "tokenizer.ggml.scores", SP_GGUF_F32, score, (uint64_t)V);
    sp_gguf_w_arr(w, "tokenizer.ggml.token_type", SP_GGUF_I32, type, (uint64_t)V);
    sp_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 1);
    sp_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 2);
    sp_gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    for (int i = 0; i < V; i++) free(tok[i]);
    free(tok);
    free(score);
    free(type);
}

static void write_meta(sp_gguf_writer *w, const shape *s) {
    sp_gguf_w_str(w, "general.architecture", "llama");
    sp_gguf_w_str(w, "general.name", "spindle-bench-random");
    sp_gguf_w_u32(w, "llama.context_length", 4096);
    sp_gguf_w_u32(w, "llama.embedding_length", (uint32_t)s->hidden);
    sp_gguf_w_u32(w, "llama.block_count", (uint32_t)s->layers);
    sp_gguf_w_u32(w, "llama.feed_forward_length", (uint32_t)s->ffn);
    sp_gguf_w_u32(w, "llama.rope.dimension_count", (uint32_t)(s->hidden / s->heads));
    sp_gguf_w_u32(w, "llama.attention.head_count", (uint32_t)s->heads);
    sp_gguf_w_u32(w, "llama.attention.head_count_kv", (uint32_t)s->kv_heads);
    sp_gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    sp_gguf_w_f32(w, "llama.rope.freq_base", 10000.0f);
    write_vocab(w, s->vocab);
}

static void add(sp_gguf_writer *w, fill_ctx *c, const char *name, uint32_t type, int64_t rows,
                int64_t cols) {
    int64_t shp[2] = {rows, cols};
    if (rows == 0)
        sp_gguf_w_tensor_fill(w, name, GGML_F32, 1, &shp[1], fill, c);
    else
        sp_gguf_w_tensor_fill(w, name, type, 2, shp, fill, c);
}

static void write_tensors(sp_gguf_writer *w, fill_ctx *c, const shape *s) {
    int64_t H = s->hidden, I = s->ffn, KV = (int64_t)s->hidden / s->heads * s->kv_heads;
    uint32_t t = c->type;
    add(w, c, "token_embd.weight", t, s->vocab, H);
    add(w, c, "output_norm.weight", t, 0, H);
    add(w, c, "output.weight", t, s->vocab, H);
    for (int l = 0; l < s->layers; l++) {
        char n[64];
#define T(suffix, rows, cols)                                                                      \
    snprintf(n, sizeof n, "blk.%d." suffix, l);                                                    \
    add(w, c, n, t, rows, cols)
        T("attn_norm.weight", 0, H);
        T("attn_q.weight", H, H);
        T("attn_k.weight", KV, H);
        T("attn_v.weight", KV, H);
        T("attn_output.weight", H, H);
        T("ffn_norm.weight", 0, H);
        T("ffn_gate.weight", I, H);
        T("ffn_up.weight", I, H);
        T("ffn_down.weight", H, I);
#undef T
    }
}

int main(int argc, char **argv) {
    shape s = {16, 2048, 5632, 32, 8, 32000};
    fill_ctx c = {.seed = 1};
    sp_dtype dt;
    if (argc != 3 && argc != 9) {
        fprintf(stderr,
                "usage: %s OUT.gguf f32|f16|bf16|q8_0|q4_0|q4_k|q5_k|q6_k "
                "[layers hidden ffn heads kv_heads vocab]\n",
                argv[0]);
        return 2;
    }
    if (!parse_type(argv[2], &c.type, &dt)) return fprintf(stderr, "bad type %s\n", argv[2]), 2;
    if (argc == 9) {
        int *f[] = {&s.layers, &s.hidden, &s.ffn, &s.heads, &s.kv_heads, &s.vocab};
        for (int i = 0; i < 6; i++) *f[i] = atoi(argv[3 + i]);
    }
    int blk = sp_dtype_block(dt);
    if (s.hidden % blk || s.ffn % blk || s.hidden % s.heads || s.heads % s.kv_heads) {
        fprintf(stderr, "shape does not fit %s blocks of %d\n", argv[2], blk);
        return 2;
    }
    sp_gguf_writer *w = sp_gguf_writer_new();
    if (!w) return 1;
    write_meta(w, &s);
    write_tensors(w, &c, &s);
    sp_error err;
    sp_status st = sp_gguf_w_write(w, argv[1], &err);
    sp_gguf_writer_free(w);
    if (st != SP_OK) return fprintf(stderr, "%s\n", err.msg), 1;
    return 0;
}
