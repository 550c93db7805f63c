/* Fuzz target: arbitrary bytes -> a real tokenizer's encode and decode.
 * Byte 0 picks the tokenizer (qwen3 byte-level BPE with NFC, gemma3
 * SentencePiece-style BPE with byte fallback, llama3.1 byte-level BPE) and
 * whether special tokens are parsed; the rest is the text.
 *
 * Beyond "no crash": ids are in range; the post-processor only adds tokens
 * around the plain encoding; and for valid UTF-8 whose encoding holds no
 * special token, decode(encode(x)) == normalize(x) as in transformers:
 *   qwen3:  NFC(x) (the normalizer is NFC, the byte-level decoder is exact)
 *   gemma3: x, unless x holds U+2581 (the normalizer maps ' ' to U+2581 and
 *           the decoder maps every U+2581 back to ' ', so a literal one
 *           comes back as a space)
 *   llama3: x (no normalizer; the decoder's trim_offsets only moves offsets) */
#include "fuzz_common.h"

#include <utf8proc.h>

/* Expected decode of text, malloc'd in *out; 0 when no exact round trip is
 * promised for this input. */
static int fuzz_tokenize_expected(fuzz_tok_id which, const uint8_t *text, size_t n, char **out,
                                  size_t *out_len) {
    if (!fuzz_valid_utf8(text, n)) return 0;
    if (which == FUZZ_TOK_QWEN3) {
        utf8proc_uint8_t *nfc = NULL;
        utf8proc_ssize_t r =
            utf8proc_map(text, (utf8proc_ssize_t)n, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (r < 0) return 0;
        *out = (char *)nfc;
        *out_len = (size_t)r;
        return 1;
    }
    if (which == FUZZ_TOK_GEMMA3 && memmem(text, n, "\xe2\x96\x81", 3)) return 0;
    *out = fuzz_strndup(text, n);
    *out_len = n;
    return 1;
}

static int fuzz_tokenize_has_special(const sp_tokenizer *tok, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (sp_tokenizer_is_special(tok, ids[i])) return 1;
    return 0;
}

/* ids[0, n) appears contiguously in with[0, nw). */
static int fuzz_tokenize_contains(const int32_t *with, size_t nw, const int32_t *ids, size_t n) {
    for (size_t off = 0; off + n <= nw; off++)
        if (!n || !memcmp(with + off, ids, n * sizeof *ids)) return 1;
    return 0;
}

static void fuzz_tokenize_roundtrip(fuzz_tok_id which, const sp_tokenizer *tok, const uint8_t *text,
                                    size_t n, const int32_t *ids, size_t n_ids) {
    sp_error err = {0};
    char *dec = NULL;
    size_t dec_len = 0;
    sp_status s = sp_tokenizer_decode(tok, ids, n_ids, 0, &dec, &dec_len, &err);
    FUZZ_ASSERT(s == SP_OK, "%s: decode of its own encoding failed: %s", fuzz_tok_names[which],
                err.msg);
    char *want = NULL;
    size_t want_len = 0;
    if (s == SP_OK && !fuzz_tokenize_has_special(tok, ids, n_ids) &&
        fuzz_tokenize_expected(which, text, n, &want, &want_len)) {
        FUZZ_ASSERT(dec_len == want_len && !memcmp(dec, want, dec_len),
                    "%s: decode(encode(x)) differs from x: %zu vs %zu bytes, first difference at "
                    "byte %zu",
                    fuzz_tok_names[which], dec_len, want_len,
                    fuzz_first_diff(dec, dec_len, want, want_len));
    }
    free(want);
    free(dec);
    /* skip_special drops what it should and nothing crashes */
    if (sp_tokenizer_decode(tok, ids, n_ids, 1, &dec, &dec_len, &err) == SP_OK) free(dec);
}

int fuzz_tokenize(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    fuzz_tok_id which = (fuzz_tok_id)((data[0] & 3) % FUZZ_TOK_COUNT);
    int parse_special = (data[0] >> 2) & 1;
    const uint8_t *text = data + 1;
    size_t n = size - 1;
    const sp_tokenizer *tok = fuzz_real_tokenizer(which);
    sp_error err = {0};
    int32_t *ids = NULL, *with = NULL;
    size_t n_ids = 0, n_with = 0;
    sp_status s =
        sp_tokenizer_encode(tok, (const char *)text, n, 0, parse_special, &ids, &n_ids, &err);
    /* Server input is valid UTF-8 (the body is checked first); anything
     * else may be refused, but valid text must always tokenize. */
    if (s != SP_OK) {
        FUZZ_ASSERT(!fuzz_valid_utf8(text, n), "%s: valid UTF-8 refused: %s", fuzz_tok_names[which],
                    err.msg);
        free(ids);
        return 0;
    }
    FUZZ_ASSERT(n == 0 || n_ids > 0, "%s: %zu bytes gave no tokens", fuzz_tok_names[which], n);
    int vocab = sp_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < n_ids; i++)
        FUZZ_ASSERT(ids[i] >= 0 && ids[i] < vocab, "id %d outside the vocabulary", (int)ids[i]);
    fuzz_tokenize_roundtrip(which, tok, text, n, ids, n_ids);
    s = sp_tokenizer_encode(tok, (const char *)text, n, 1, parse_special, &with, &n_with, &err);
    FUZZ_ASSERT(s == SP_OK, "%s: encode with add_special failed: %s", fuzz_tok_names[which],
                err.msg);
    if (s == SP_OK)
        FUZZ_ASSERT(fuzz_tokenize_contains(with, n_with, ids, n_ids),
                    "%s: add_special changed the text's tokens (%zu -> %zu ids)",
                    fuzz_tok_names[which], n_ids, n_with);
    free(with);
    free(ids);
    return 0;
}

#ifndef FUZZ_REGRESSION
/* Loads the tokenizers before fuzzing starts: seconds under ASan, which
 * must not count against the first input's -timeout. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    for (int i = 0; i < FUZZ_TOK_COUNT; i++) fuzz_real_tokenizer((fuzz_tok_id)i);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_tokenize(data, size);
}
#endif
