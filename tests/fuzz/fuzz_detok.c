/* Fuzz target: ids from bytes -> the streaming detokenizer (sp_detok_push
 * one id at a time, then flush) against sp_tokenizer_decode of all ids.
 *
 * Byte 0 picks the tokenizer (see fuzz_tokenize.c) and skip_special. Then
 * every 3 bytes make one id, drawn so that the interesting tokens come up
 * often (random ids almost never form a multi-byte character):
 *   b0 & 3 == 0: the token of the single byte b1 (byte-fallback <0xHH> or the
 *                byte-level alphabet), so characters get split across ids
 *   b0 & 3 == 3: a special token (b1 selects), or an out-of-range id when
 *                b2 == 0xFF
 *   otherwise:   any id, (b0 >> 2 | b1 << 6 | b2 << 14) mod vocab
 * Contract (tokenizer.h): concatenating the pushes and the flush equals
 * decode; when decode refuses (bad id), the stream refuses too; pieces of a
 * valid-UTF-8 decode are each valid UTF-8 (nothing cut mid-character). */
#include "fuzz_common.h"

typedef struct fuzz_detok_tables {
    int32_t byte_id[256]; /* -1: no token for that byte */
    int32_t *special;
    int n_special;
} fuzz_detok_tables;

/* GPT-2's byte-level alphabet: printable Latin-1 bytes map to themselves,
 * the rest to U+0100 + n in byte order. Writes the UTF-8 of byte b's char. */
static void fuzz_detok_bytelevel_char(int b, char out[4]) {
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    int cp = b;
    if (!printable) {
        int n = 0;
        for (int k = 0; k < b; k++)
            if (!((k >= 0x21 && k <= 0x7E) || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE))) n++;
        cp = 0x100 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

static const fuzz_detok_tables *fuzz_detok_tables_for(fuzz_tok_id which, const sp_tokenizer *tok) {
    static fuzz_detok_tables tabs[FUZZ_TOK_COUNT];
    static int ready[FUZZ_TOK_COUNT];
    fuzz_detok_tables *t = &tabs[which];
    if (ready[which]) return t;
    for (int b = 0; b < 256; b++) {
        char piece[16];
        if (which == FUZZ_TOK_GEMMA3)
            snprintf(piece, sizeof piece, "<0x%02X>", b);
        else
            fuzz_detok_bytelevel_char(b, piece);
        t->byte_id[b] = sp_tokenizer_token_id(tok, piece);
    }
    int vocab = sp_tokenizer_vocab_size(tok);
    t->special = malloc(sizeof *t->special * (size_t)(vocab > 0 ? vocab : 1));
    for (int32_t id = 0; id < vocab; id++)
        if (sp_tokenizer_is_special(tok, id)) t->special[t->n_special++] = id;
    ready[which] = 1;
    return t;
}

static int32_t fuzz_detok_id(const fuzz_detok_tables *t, int vocab, const uint8_t *u) {
    switch (u[0] & 3) {
    case 0:
        return t->byte_id[u[1]] >= 0 ? t->byte_id[u[1]] : u[1] % vocab;
    case 3:
        if (u[2] == 0xFF) return vocab + u[1]; /* out of range */
        return t->n_special ? t->special[u[1] % t->n_special] : u[1] % vocab;
    default:
        return (int32_t)(((uint32_t)(u[0] >> 2) | (uint32_t)u[1] << 6 | (uint32_t)u[2] << 14) %
                         (uint32_t)vocab);
    }
}

/* Streams ids; returns the status, the concatenation in *cat. */
static sp_status fuzz_detok_stream(const sp_tokenizer *tok, int skip, const int32_t *ids, size_t n,
                                   int check_pieces, char **cat, size_t *len) {
    sp_error err = {0};
    sp_detok *d = sp_detok_new(tok, skip);
    FUZZ_ASSERT(d != NULL, "sp_detok_new failed");
    if (!d) return SP_ENOMEM;
    size_t cap = 64;
    *cat = malloc(cap);
    *len = 0;
    sp_status s = SP_OK;
    for (size_t i = 0; i <= n && s == SP_OK; i++) {
        char *piece = NULL;
        size_t pl = 0;
        s = i < n ? sp_detok_push(d, ids[i], &piece, &pl, &err)
                  : sp_detok_flush(d, &piece, &pl, &err);
        if (s != SP_OK) break;
        FUZZ_ASSERT(piece != NULL && strlen(piece) <= pl, "piece %zu: NULL or not NUL-terminated",
                    i);
        if (check_pieces)
            FUZZ_ASSERT(fuzz_valid_utf8((const uint8_t *)piece, pl),
                        "piece after id %zu of %zu is cut mid-character (%zu bytes)", i, n, pl);
        if (*len + pl + 1 > cap) *cat = realloc(*cat, cap = 2 * (*len + pl + 1));
        memcpy(*cat + *len, piece, pl);
        *len += pl;
        free(piece);
    }
    sp_detok_free(d);
    return s;
}

int fuzz_detok(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    fuzz_tok_id which = (fuzz_tok_id)((data[0] & 3) % FUZZ_TOK_COUNT);
    int skip = (data[0] >> 2) & 1;
    const sp_tokenizer *tok = fuzz_real_tokenizer(which);
    const fuzz_detok_tables *t = fuzz_detok_tables_for(which, tok);
    int vocab = sp_tokenizer_vocab_size(tok);
    size_t n = (size - 1) / 3;
    int32_t *ids = malloc(sizeof *ids * (n ? n : 1));
    for (size_t i = 0; i < n; i++) ids[i] = fuzz_detok_id(t, vocab, data + 1 + 3 * i);

    sp_error err = {0};
    char *whole = NULL, *cat = NULL;
    size_t whole_len = 0, cat_len = 0;
    sp_status ds = sp_tokenizer_decode(tok, ids, n, skip, &whole, &whole_len, &err);
    int valid = ds == SP_OK && fuzz_valid_utf8((const uint8_t *)whole, whole_len);
#ifdef FUZZ_WORKAROUND_EMPTY_FLUSH
    /* Known bug, skipped only when run.sh is asked to (FUZZ_WORKAROUNDS=1)
     * so a campaign can get past it: see fuzz_common.h. */
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) /* ids the stream buffers (others are dropped) */
        shown += sp_tokenizer_piece(tok, ids[i]) && !(skip && sp_tokenizer_is_special(tok, ids[i]));
    if (shown == 0) {
        free(whole);
        free(ids);
        return 0;
    }
#endif
    sp_status ss = fuzz_detok_stream(tok, skip, ids, n, valid, &cat, &cat_len);
    if (ds == SP_OK) {
        FUZZ_ASSERT(ss == SP_OK, "%s: decode succeeded, the stream failed", fuzz_tok_names[which]);
        if (ss == SP_OK)
            FUZZ_ASSERT(cat_len == whole_len && !memcmp(cat, whole, cat_len),
                        "%s skip=%d: streamed %zu bytes, decoded %zu, first difference at %zu",
                        fuzz_tok_names[which], skip, cat_len, whole_len,
                        fuzz_first_diff(cat, cat_len, whole, whole_len));
    } else {
        FUZZ_ASSERT(ss != SP_OK, "%s: decode refused (%s), the stream accepted",
                    fuzz_tok_names[which], err.msg);
    }
    free(cat);
    free(whole);
    free(ids);
    return 0;
}

#ifndef FUZZ_REGRESSION
/* Loads the tokenizers before fuzzing starts: seconds under ASan, which
 * must not count against the first input's -timeout. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    for (int i = 0; i < FUZZ_TOK_COUNT; i++)
        fuzz_detok_tables_for((fuzz_tok_id)i, fuzz_real_tokenizer((fuzz_tok_id)i));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_detok(data, size);
}
#endif
