/* Fuzz target: GGUF vocabularies (tokenizer/tok_gguf.c), the tokenizer built
 * from tokenizer.ggml.* metadata.
 *
 * Input, either
 *   - a whole .gguf file (starts with "GGUF"): loaded as it is, or
 *   - a structured vocabulary the harness writes as a GGUF file, so the
 *     fuzzer mutates tokens, scores, types and merges rather than the
 *     container (fuzz_gguf covers that):
 *       byte 0  flags: bit 0 model gpt2 (else llama); bit 1 write token_type;
 *               bit 2 add_space_prefix; bit 3 add_bos_token; bit 4
 *               add_eos_token; bits 5-6 pre (none, llama-bpe, qwen2, gpt-2);
 *               bit 7 write unknown_token_id
 *       bytes 1-3  bos, eos, unknown token id (0xFF: 0xFFFFFFFF)
 *       then FUZZ_SEP-separated parts: tokens (one per line) | per-token
 *       (type, score) byte pairs | merges (one "a b" per line) | probe text
 * A vocabulary that loads is used: every id's piece and lookup, the probe
 * and fixed texts encoded (special tokens parsed or not, BOS/EOS added or
 * not), decoded and streamed through the detokenizer, every id decoded.
 * Beyond "no crash": ids in range, stream = decode. */
#include "fuzz_common.h"

#include "formats/gguf_write.h"
#include "tokenizer/tokenizer.h"

#define FUZZ_VOCAB_MAX 4096

static const char *const fuzz_vocab_probes[] = {
    "Hello, world! It's 2024.\n\n  indented\ttab",
    "\xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 caf\xc3\xa9 \xe2\x96\x81x \xff\xfe",
    "<s></s><unk><|endoftext|><|im_start|>",
};

/* Splits part into '\n'-separated lines: starts[i], lens[i]; returns the
 * count (at most max). */
static size_t fuzz_vocab_lines(const uint8_t *p, size_t n, const char **starts, uint64_t *lens,
                               size_t max) {
    size_t count = 0, i = 0;
    while (p && i <= n && count < max) {
        const uint8_t *nl = memchr(p + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - p) : n;
        starts[count] = (const char *)p + i;
        lens[count++] = end - i;
        i = end + 1;
        if (!nl) break;
    }
    return count;
}

static sp_status fuzz_vocab_str_arr(sp_gguf_writer *w, const char *key, const char **s,
                                    const uint64_t *len, size_t n) {
    SP_TRY(sp_gguf_w_begin_arr(w, key, SP_GGUF_STRING, n));
    for (size_t i = 0; i < n; i++) SP_TRY(sp_gguf_w_strn(w, NULL, s[i], len[i]));
    return SP_OK;
}

static uint32_t fuzz_vocab_id(uint8_t b) {
    return b == 0xFF ? UINT32_MAX : b;
}

/* The structured input as a GGUF file at path; 0 if it was written. */
static int fuzz_vocab_write(const uint8_t *data, size_t size, const char *path) {
    if (size < 4) return -1;
    uint8_t fl = data[0];
    const uint8_t *parts[4] = {NULL};
    size_t lens[4] = {0};
    const uint8_t *rest = data + 4;
    size_t rest_len = size - 4;
    for (int i = 0; i < 4 && rest; i++) {
        const uint8_t *next;
        size_t next_len;
        fuzz_split(rest, rest_len, &lens[i], &next, &next_len);
        parts[i] = rest;
        if (i == 3) lens[i] = rest_len; /* the probe text takes the rest */
        rest = next, rest_len = next_len;
    }
    static const char *tok[FUZZ_VOCAB_MAX], *mrg[FUZZ_VOCAB_MAX];
    static uint64_t tok_len[FUZZ_VOCAB_MAX], mrg_len[FUZZ_VOCAB_MAX];
    static int32_t types[FUZZ_VOCAB_MAX];
    static float scores[FUZZ_VOCAB_MAX];
    size_t n = fuzz_vocab_lines(parts[0], lens[0], tok, tok_len, FUZZ_VOCAB_MAX);
    size_t nm = fuzz_vocab_lines(parts[2], lens[2], mrg, mrg_len, FUZZ_VOCAB_MAX);
    for (size_t i = 0; i < n; i++) {
        int has = parts[1] && 2 * i + 1 < lens[1];
        types[i] = has ? parts[1][2 * i] % 8 : 1;
        scores[i] = has ? (int8_t)parts[1][2 * i + 1] / 8.0f : -(float)i;
    }
    static const char *const pre[4] = {NULL, "llama-bpe", "qwen2", "gpt-2"};
    sp_gguf_writer *w = sp_gguf_writer_new();
    if (!w) abort();
    sp_status s = sp_gguf_w_str(w, "general.architecture", "llama");
    if (!s) s = sp_gguf_w_str(w, "tokenizer.ggml.model", fl & 1 ? "gpt2" : "llama");
    if (!s) s = fuzz_vocab_str_arr(w, "tokenizer.ggml.tokens", tok, tok_len, n);
    if (!s) s = sp_gguf_w_arr(w, "tokenizer.ggml.scores", SP_GGUF_F32, scores, n);
    if (!s && (fl & 2)) s = sp_gguf_w_arr(w, "tokenizer.ggml.token_type", SP_GGUF_I32, types, n);
    if (!s && (fl & 1)) s = fuzz_vocab_str_arr(w, "tokenizer.ggml.merges", mrg, mrg_len, nm);
    if (!s) s = sp_gguf_w_bool(w, "tokenizer.ggml.add_space_prefix", (fl >> 2) & 1);
    if (!s) s = sp_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", (fl >> 3) & 1);
    if (!s) s = sp_gguf_w_bool(w, "tokenizer.ggml.add_eos_token", (fl >> 4) & 1);
    if (!s && pre[(fl >> 5) & 3]) s = sp_gguf_w_str(w, "tokenizer.ggml.pre", pre[(fl >> 5) & 3]);
    if (!s) s = sp_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", fuzz_vocab_id(data[1]));
    if (!s) s = sp_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", fuzz_vocab_id(data[2]));
    if (!s && (fl & 0x80))
        s = sp_gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", fuzz_vocab_id(data[3]));
    sp_error err = {0};
    if (!s) s = sp_gguf_w_write(w, path, &err);
    sp_gguf_writer_free(w);
    /* the writer may refuse what it cannot represent; nothing to fuzz then */
    return s == SP_OK ? 0 : -1;
}

static void fuzz_vocab_use(const sp_tokenizer *tok, const char *text, size_t len, int mode) {
    sp_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (sp_tokenizer_encode(tok, text, len, mode & 1, mode >> 1, &ids, &n, &err) != SP_OK) {
        FUZZ_ASSERT(err.msg[0], "a failed encode must say why");
        free(ids);
        return;
    }
    int vocab = sp_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < n; i++)
        FUZZ_ASSERT(ids[i] >= 0 && ids[i] < vocab, "id %d outside the vocabulary of %d",
                    (int)ids[i], vocab);
    char *whole = NULL;
    size_t whole_len = 0;
    sp_status ds = sp_tokenizer_decode(tok, ids, n, 0, &whole, &whole_len, &err);
    sp_detok *dt = sp_detok_new(tok, 0);
    size_t cap = 64, cat_len = 0;
    char *cat = malloc(cap);
    sp_status ss = dt ? SP_OK : SP_ENOMEM;
    for (size_t i = 0; i <= n && ss == SP_OK; i++) {
        char *piece = NULL;
        size_t pl = 0;
        ss = i < n ? sp_detok_push(dt, ids[i], &piece, &pl, &err)
                   : sp_detok_flush(dt, &piece, &pl, &err);
        if (ss == SP_OK && cat_len + pl + 1 > cap) cat = realloc(cat, cap = 2 * (cat_len + pl + 1));
        if (ss == SP_OK && pl) memcpy(cat + cat_len, piece, pl), cat_len += pl;
        free(piece);
    }
    if (ds == SP_OK && ss == SP_OK)
        FUZZ_ASSERT(cat_len == whole_len && !memcmp(cat, whole, cat_len),
                    "streamed %zu bytes, decoded %zu", cat_len, whole_len);
    sp_detok_free(dt);
    free(cat);
    free(whole);
    free(ids);
}

static void fuzz_vocab_check(const sp_tokenizer *tok, const char *probe, size_t probe_len) {
    int vocab = sp_tokenizer_vocab_size(tok);
    FUZZ_ASSERT(vocab > 0, "vocab %d", vocab);
    int32_t *all = malloc(sizeof *all * (size_t)(vocab > 0 ? vocab : 1));
    for (int32_t id = -1; id <= vocab; id++) {
        const char *p = sp_tokenizer_piece(tok, id);
        (void)sp_tokenizer_is_special(tok, id);
        if (id < 0 || id >= vocab) continue;
        FUZZ_ASSERT(p != NULL, "id %d has no piece", (int)id);
        all[id] = id;
        int32_t back = p ? sp_tokenizer_token_id(tok, p) : -1;
        FUZZ_ASSERT(back >= -1 && back < vocab, "token_id(piece %d) = %d", (int)id, (int)back);
    }
    int32_t bos = sp_tokenizer_bos_id(tok), eos = sp_tokenizer_eos_id(tok);
    FUZZ_ASSERT(bos >= -1 && bos < vocab, "bos %d", (int)bos);
    FUZZ_ASSERT(eos >= -1 && eos < vocab, "eos %d", (int)eos);
    (void)sp_tokenizer_bos_token(tok);
    (void)sp_tokenizer_eos_token(tok);
    (void)sp_tokenizer_chat_template(tok);
    for (int skip = 0; skip < 2; skip++) { /* every id at once */
        char *text = NULL;
        size_t len = 0;
        sp_error err = {0};
        (void)sp_tokenizer_decode(tok, all, (size_t)vocab, skip, &text, &len, &err);
        free(text);
    }
    free(all);
    /* the fuzzed probe in every mode; the fixed ones with special tokens
     * parsed and BOS/EOS added, and with neither (keeps executions fast) */
    const size_t n_fixed = sizeof fuzz_vocab_probes / sizeof *fuzz_vocab_probes;
    for (int mode = 0; mode < 4; mode++) {
        if (probe) fuzz_vocab_use(tok, probe, probe_len, mode);
        if (mode == 1 || mode == 2) continue;
        for (size_t i = 0; i < n_fixed; i++)
            fuzz_vocab_use(tok, fuzz_vocab_probes[i], strlen(fuzz_vocab_probes[i]), mode);
    }
}

int fuzz_gguf_vocab(const uint8_t *data, size_t size) {
    const char *path;
    char built[512];
    const char *probe = NULL;
    size_t probe_len = 0;
    if (size >= 4 && !memcmp(data, "GGUF", 4)) {
        path = fuzz_write("model.gguf", data, size);
    } else {
        snprintf(built, sizeof built, "%s/model.gguf", fuzz_dir());
        if (fuzz_vocab_write(data, size, built)) return 0;
        path = built;
        /* the probe text: the part after the third separator */
        const uint8_t *q = size > 4 ? data + 4 : NULL;
        size_t ql = size > 4 ? size - 4 : 0;
        for (int i = 0; i < 3 && q; i++) {
            size_t l1;
            fuzz_split(q, ql, &l1, &q, &ql);
        }
        if (q) probe = (const char *)q, probe_len = ql;
    }
    sp_tokenizer *tok = NULL;
    sp_error err = {0};
    if (sp_tokenizer_load(&tok, path, &err) != SP_OK) {
        FUZZ_ASSERT(tok == NULL && err.msg[0], "failed load must set an error and no handle");
        return 0;
    }
    fuzz_vocab_check(tok, probe, probe_len);
    sp_tokenizer_free(tok);
    return 0;
}

#ifndef FUZZ_REGRESSION
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_gguf_vocab(data, size);
}
#endif
