/* Writes a Llama-shaped GGUF with seeded random weights (tests/conformance/
 * gguf_synth.h) in any weight type, for benchmarks and for running the same
 * file in llama.cpp (bench/compare_llamacpp.sh). Tensors are generated and
 * quantized with Spindle's own quantizers one at a time while the file is
 * written, so multi-GB models need little memory. A SentencePiece-style
 * vocabulary (<unk>, <s>, </s>, 256 byte pieces, filler pieces) is added so
 * that llama.cpp loads the file.
 *
 *   make_model --out FILE [--type f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q4_k|q5_k|q6_k]
 *              [--dim N] [--layers N] [--heads N] [--kv-heads N] [--ffn N]
 *              [--vocab N] [--ctx N] [--seed N] [--gain X] [--untied]
 *   make_model --preset 0.5b --type q4_k --out m.gguf
 *      (dim 1024, 24 layers, 16/16 heads, FFN 4096, vocab 32000, untied:
 *       0.47 B parameters)
 *
 * Build (not part of CMake; needs the base, compute and formats libraries):
 *   cmake --build build/release --target sp_formats sp_compute sp_base
 *   cc -O2 -Isrc -Itests/conformance bench/make_model.c build/release/libsp_formats.a \
 *      build/release/libsp_compute.a build/release/libsp_base.a -ljansson -lm -pthread \
 *      -o build/release/make_model */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_synth.h"

/* SentencePiece-style vocabulary of n pieces (n >= 259). */
static sp_status add_vocab(sp_gguf_writer *w, void *ctx) {
    int n = *(const int *)ctx;
    char **tok = malloc((size_t)n * sizeof *tok);
    float *scores = malloc((size_t)n * sizeof(float));
    int32_t *types = malloc((size_t)n * sizeof(int32_t));
    if (!tok || !scores || !types) {
        free(tok), free(scores), free(types);
        return SP_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        char buf[32];
        if (i < 3)
            snprintf(buf, sizeof buf, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259)
            snprintf(buf, sizeof buf, "<0x%02X>", i - 3);
        else
            snprintf(buf, sizeof buf, "\xe2\x96\x81p%d", i); /* "▁p<i>" */
        tok[i] = strdup(buf);
        scores[i] = i < 259 ? 0.0f : -(float)i;
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1; /* unknown, control, byte, normal */
    }
    sp_status s = sp_gguf_w_str(w, "tokenizer.ggml.model", "llama");
    if (s == SP_OK)
        s = sp_gguf_w_str_arr(w, "tokenizer.ggml.tokens", (const char *const *)tok, (uint64_t)n);
    if (s == SP_OK) s = sp_gguf_w_arr(w, "tokenizer.ggml.scores", SP_GGUF_F32, scores, (uint64_t)n);
    if (s == SP_OK)
        s = sp_gguf_w_arr(w, "tokenizer.ggml.token_type", SP_GGUF_I32, types, (uint64_t)n);
    if (s == SP_OK) s = sp_gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    for (int i = 0; i < n; i++) free(tok[i]);
    free(tok), free(scores), free(types);
    return s;
}

static int type_of(const char *s, sp_dtype *out) {
    for (int t = 0; t < SP_DTYPE_COUNT; t++)
        if (!strcmp(s, sp_dtype_name((sp_dtype)t)) && sp_dtype_is_weight((sp_dtype)t)) {
            *out = (sp_dtype)t;
            return 1;
        }
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: make_model --out FILE [--preset 0.5b] [--type T] [--dim N] [--layers N] "
            "[--heads N] [--kv-heads N] [--ffn N] [--vocab N] [--ctx N] [--seed N] "
            "[--gain X] [--untied]\n");
}

int main(int argc, char **argv) {
    synth_cfg c;
    synth_default(&c);
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        if (!strcmp(a, "--untied")) {
            c.untied = 1;
            continue;
        }
        if (!v)
            used = 0;
        else if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--type"))
            used = type_of(v, &c.type);
        else if (!strcmp(a, "--dim"))
            c.dim = atoi(v);
        else if (!strcmp(a, "--layers"))
            c.layers = atoi(v);
        else if (!strcmp(a, "--heads"))
            c.heads = atoi(v);
        else if (!strcmp(a, "--kv-heads"))
            c.kv_heads = atoi(v);
        else if (!strcmp(a, "--ffn"))
            c.ffn = atoi(v);
        else if (!strcmp(a, "--vocab"))
            c.vocab = atoi(v);
        else if (!strcmp(a, "--ctx"))
            c.ctx = atoi(v);
        else if (!strcmp(a, "--seed"))
            c.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--gain"))
            c.gain = strtof(v, NULL);
        else if (!strcmp(a, "--preset") && !strcmp(v, "0.5b"))
            c.dim = 1024, c.layers = 24, c.heads = 16, c.kv_heads = 16, c.ffn = 4096,
            c.vocab = 32000, c.untied = 1;
        else
            used = 0;
        if (!used) {
            fprintf(stderr, "make_model: bad option %s %s\n", a, v ? v : "");
            usage();
            return 2;
        }
        i++;
    }
    if (!out || c.dim <= 0 || c.layers <= 0 || c.heads <= 0 || c.kv_heads <= 0 ||
        c.heads % c.kv_heads || c.dim % c.heads || c.vocab < 259 || c.ffn <= 0) {
        usage();
        return 2;
    }
    sp_error err = {0};
    if (synth_write(&c, out, add_vocab, &c.vocab, &err) != SP_OK) {
        fprintf(stderr, "make_model: %s\n", err.msg);
        return 1;
    }
    double params =
        (double)c.vocab * c.dim * (1 + c.untied) +
        (double)c.layers * ((double)c.dim * c.dim * 2 +
                            2.0 * c.dim * (c.dim / c.heads * c.kv_heads) + 3.0 * c.dim * c.ffn);
    printf("%s: %s, %.3f B parameters\n", out, sp_dtype_name(c.type), params / 1e9);
    return 0;
}
