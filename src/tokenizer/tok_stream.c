/* Streaming detokenizer. It keeps a window of ids not yet turned into text
 * and emits the window's decode as soon as the window can be cut off: the
 * decode of everything = decode(window before the cut) + decode(the rest),
 * with the rest decoded as a continuation (not "first token", see
 * tok_decode_chain). A cut is allowed when
 *   - ByteLevel: the window's bytes do not end inside a UTF-8 sequence;
 *   - ByteFallback: no run of <0xXX> tokens spans the cut (a run is decoded
 *     as a whole: valid UTF-8, or one U+FFFD per byte);
 *   - decoders that treat the last token specially (BPE suffix, Strip after
 *     Fuse with stop > 0): the last token stays in the window until flush;
 *   - and the text before the cut is not empty, so "first token" rules
 *     (Metaspace, Strip of the leading space) see the same first token as
 *     the full decode.
 * So concatenating every output equals sp_tokenizer_decode of all ids. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

struct sp_detok {
    const sp_tokenizer *tok;
    int skip_special;
    tok_ids win;
    size_t byte_run; /* <0xXX> pieces at the end of win (ByteFallback) */
    int started;     /* some text has been emitted */
};

sp_detok *sp_detok_new(const sp_tokenizer *tok, int skip_special) {
    sp_detok *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->tok = tok;
    d->skip_special = skip_special;
    return d;
}

void sp_detok_free(sp_detok *d) {
    if (!d) return;
    free(d->win.v);
    free(d);
}

static int is_byte_piece(const sp_tokenizer *tok, int32_t id) {
    const char *p = tok->pieces[id];
    return tok->piece_len[id] == 6 && memcmp(p, "<0x", 3) == 0 && p[5] == '>';
}

static int bytes_end_partial(const sp_tokenizer *tok, const int32_t *ids, size_t n) {
    tok_buf bytes = {0};
    for (size_t i = 0; i < n; i++) {
        const char *s = tok->pieces[ids[i]];
        size_t len = tok->piece_len[ids[i]], mark = bytes.n;
        for (size_t k = 0; k < len;) {
            uint32_t cp;
            k += (size_t)tok_utf8_next(s + k, len - k, &cp);
            int b = tok_char_byte(cp);
            if (b < 0) {
                bytes.n = mark;
                tok_buf_append(&bytes, s, len);
                break;
            }
            unsigned char ch = (unsigned char)b;
            tok_buf_append(&bytes, &ch, 1);
        }
    }
    int partial = tok_utf8_ends_partial((const unsigned char *)bytes.p, bytes.n);
    tok_buf_free(&bytes);
    return partial;
}

/* The largest allowed cut position in the window (0: none). The trailing
 * run of byte pieces is counted as ids arrive (d->byte_run), not rescanned:
 * a long run (a model emitting raw bytes) would make every push cost the
 * run's length. */
static size_t cut_point(const sp_detok *d) {
    const sp_tokenizer *tok = d->tok;
    const int32_t *w = d->win.v;
    size_t k = d->win.n;
    if (tok->stream_hold_last && k > 0) k--;
    if (tok->stream_byte_fallback && d->byte_run > 0) k = d->win.n - d->byte_run;
    if (tok->stream_byte_level && k > 0 && bytes_end_partial(tok, w, k)) k = 0;
    return k;
}

static sp_status emit(sp_detok *d, size_t k, int at_end, char **out, size_t *len, sp_error *err) {
    tok_buf text = {0};
    if (k > 0 && tok_decode_chain(d->tok, d->win.v, k, 0, !d->started, at_end, &text)) {
        tok_buf_free(&text);
        return sp_fail(err, SP_ENOMEM, "detokenizer: out of memory");
    }
    if ((text.n > 0 || at_end) && k > 0) {
        memmove(d->win.v, d->win.v + k, (d->win.n - k) * sizeof *d->win.v);
        d->win.n -= k;
        if (d->byte_run > d->win.n) d->byte_run = d->win.n;
        if (text.n) d->started = 1;
    }
    *out = tok_buf_take(&text, len);
    if (!*out) return sp_fail(err, SP_ENOMEM, "detokenizer: out of memory");
    return SP_OK;
}

sp_status sp_detok_push(sp_detok *d, int32_t id, char **out, size_t *len, sp_error *err) {
    const sp_tokenizer *tok = d->tok;
    *out = NULL;
    int keep =
        id >= 0 && id < tok->n_ids && tok->pieces[id] && !(d->skip_special && tok->is_special[id]);
    if (keep && tok_ids_push(&d->win, id))
        return sp_fail(err, SP_ENOMEM, "detokenizer: out of memory");
    if (keep) d->byte_run = is_byte_piece(tok, id) ? d->byte_run + 1 : 0;
    return emit(d, keep ? cut_point(d) : 0, 0, out, len, err);
}

sp_status sp_detok_flush(sp_detok *d, char **out, size_t *len, sp_error *err) {
    return emit(d, d->win.n, 1, out, len, err);
}
