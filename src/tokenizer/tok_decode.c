/* Decoding: ids -> pieces -> decoder chain -> text, as Hugging Face's
 * decoders do it (each decoder maps a list of strings to a list of strings).
 *
 * The chain can also decode a window of a longer sequence (the streaming
 * detokenizer): at_start says the window begins the output, at_end that it
 * ends it. Only decoders that look at "the first token" (Metaspace,
 * WordPiece) or, after Fuse/ByteLevel, at the ends of the whole text (Strip,
 * BPE suffix) depend on those flags; with both set this is the plain decode. */
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

int tok_strs_push(tok_strs *l, const char *s, size_t n) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        size_t *off = realloc(l->off, cap * sizeof *off);
        if (!off) return -1;
        l->off = off;
        size_t *len = realloc(l->len, cap * sizeof *len);
        if (!len) return -1;
        l->len = len;
        l->cap = cap;
    }
    l->off[l->n] = l->text.n;
    l->len[l->n] = n;
    if (tok_buf_append(&l->text, s, n)) return -1;
    l->n++;
    return 0;
}

void tok_strs_free(tok_strs *l) {
    tok_buf_free(&l->text);
    free(l->off);
    free(l->len);
    memset(l, 0, sizeof *l);
}

#define STR(l, i) ((l)->text.p + (l)->off[i])

/* Chain state: the list, and whether it has been fused into one string that
 * stands for the whole window. */
typedef struct chain {
    tok_strs list;
    int fused;
    int at_start, at_end;
} chain;

static void chain_swap(chain *c, tok_strs *next) {
    tok_strs_free(&c->list);
    c->list = *next;
    memset(next, 0, sizeof *next);
}

static int dec_bytelevel(chain *c) {
    tok_buf bytes = {0}, text = {0};
    int rc = 0;
    for (size_t i = 0; i < c->list.n && !rc; i++) {
        const char *s = STR(&c->list, i);
        size_t n = c->list.len[i], mark = bytes.n;
        for (size_t k = 0; k < n && !rc;) {
            uint32_t cp;
            k += (size_t)tok_utf8_next(s + k, n - k, &cp);
            int b = tok_char_byte(cp);
            if (b < 0) { /* not a byte-level token: keep its own UTF-8 */
                bytes.n = mark;
                rc = tok_buf_append(&bytes, s, n);
                break;
            }
            unsigned char ch = (unsigned char)b;
            rc = tok_buf_append(&bytes, &ch, 1);
        }
    }
    rc = rc || tok_utf8_repair(&text, bytes.p ? bytes.p : "", bytes.n);
    tok_strs next = {0};
    rc = rc || tok_strs_push(&next, text.p ? text.p : "", text.n);
    tok_buf_free(&bytes);
    tok_buf_free(&text);
    chain_swap(c, &next);
    c->fused = 1;
    return rc ? -1 : 0;
}

static int dec_replace(const tok_dec *d, chain *c, pcre2_match_data *md) {
    tok_strs next = {0};
    tok_buf t = {0};
    int rc = 0;
    for (size_t i = 0; i < c->list.n && !rc; i++) {
        const char *s = STR(&c->list, i);
        size_t n = c->list.len[i], from = 0, ms, me;
        tok_buf_clear(&t);
        int f;
        while ((f = tok_pattern_find(&d->pattern, md, s, n, from, &ms, &me)) == 1) {
            rc = rc || tok_buf_append(&t, s + from, ms - from) ||
                 tok_buf_append(&t, d->content, strlen(d->content));
            from = me;
        }
        rc =
            rc || f < 0 || tok_buf_append(&t, s + from, n - from) || tok_strs_push(&next, t.p, t.n);
    }
    tok_buf_free(&t);
    chain_swap(c, &next);
    return rc ? -1 : 0;
}

static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char ch = s[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A run of <0xXX> tokens becomes its text when the run is valid UTF-8,
 * otherwise one U+FFFD per byte. */
static int flush_bytes(tok_strs *next, tok_buf *run) {
    int rc = 0;
    if (run->n == 0) return 0;
    if (sp_utf8_invalid_at(run->p, run->n) < 0)
        rc = tok_strs_push(next, run->p, run->n);
    else
        for (size_t i = 0; i < run->n && !rc; i++) rc = tok_strs_push(next, "\xEF\xBF\xBD", 3);
    tok_buf_clear(run);
    return rc;
}

static int dec_byte_fallback(chain *c) {
    tok_strs next = {0};
    tok_buf run = {0};
    int rc = 0;
    for (size_t i = 0; i < c->list.n && !rc; i++) {
        int b = byte_token(STR(&c->list, i), c->list.len[i]);
        if (b >= 0) {
            unsigned char ch = (unsigned char)b;
            rc = tok_buf_append(&run, &ch, 1);
        } else {
            rc = flush_bytes(&next, &run) || tok_strs_push(&next, STR(&c->list, i), c->list.len[i]);
        }
    }
    rc = rc || flush_bytes(&next, &run);
    tok_buf_free(&run);
    chain_swap(c, &next);
    return rc ? -1 : 0;
}

static int dec_fuse(chain *c) {
    tok_strs next = {0};
    int rc = tok_strs_push(&next, c->list.text.p ? c->list.text.p : "", c->list.text.n);
    chain_swap(c, &next);
    c->fused = 1;
    return rc;
}

static int dec_strip(const tok_dec *d, chain *c) {
    uint32_t want;
    tok_utf8_next(d->content, strlen(d->content), &want);
    size_t wlen = strlen(d->content);
    tok_strs next = {0};
    int rc = 0;
    for (size_t i = 0; i < c->list.n && !rc; i++) {
        const char *s = STR(&c->list, i);
        size_t a = 0, b = c->list.len[i];
        int start = d->start, stop = d->stop;
        if (c->fused && !c->at_start) start = 0;
        if (c->fused && !c->at_end) stop = 0;
        for (int k = 0; k < start && b - a >= wlen && memcmp(s + a, d->content, wlen) == 0; k++)
            a += wlen;
        for (int k = 0; k < stop && b - a >= wlen && memcmp(s + b - wlen, d->content, wlen) == 0;
             k++)
            b -= wlen;
        rc = tok_strs_push(&next, s + a, b - a);
    }
    chain_swap(c, &next);
    return rc;
}

static int dec_metaspace(const tok_dec *d, chain *c) {
    tok_strs next = {0};
    tok_buf t = {0};
    int rc = 0;
    for (size_t i = 0; i < c->list.n && !rc; i++) {
        const char *s = STR(&c->list, i);
        size_t n = c->list.len[i];
        int first = i == 0 && c->at_start && d->prepend != PREPEND_NEVER;
        tok_buf_clear(&t);
        for (size_t k = 0; k < n && !rc;) {
            uint32_t cp;
            int m = tok_utf8_next(s + k, n - k, &cp);
            if (cp != d->replacement)
                rc = tok_buf_append(&t, s + k, (size_t)m);
            else if (!first)
                rc = tok_buf_append(&t, " ", 1);
            k += (size_t)m;
        }
        rc = rc || tok_strs_push(&next, t.p ? t.p : "", t.n);
    }
    tok_buf_free(&t);
    chain_swap(c, &next);
    return rc;
}

/* WordPiece's cleanup of spaces before punctuation and contractions. */
static int wordpiece_cleanup(tok_buf *t) {
    static const char *from[] = {" .",  " ?",      " !",  " ,",   " ' ", " n't",
                                 " 'm", " do not", " 's", " 've", " 're"};
    static const char *to[] = {".", "?", "!", ",", "'", "n't", "'m", " don't", "'s", "'ve", "'re"};
    for (size_t r = 0; r < sizeof from / sizeof *from; r++) {
        size_t fl = strlen(from[r]), tl = strlen(to[r]), w = 0;
        for (size_t i = 0; i < t->n;) {
            if (i + fl <= t->n && memcmp(t->p + i, from[r], fl) == 0) {
                memmove(t->p + w, to[r], tl); /* tl <= fl, so w + tl <= i + fl */
                w += tl;
                i += fl;
            } else {
                t->p[w++] = t->p[i++];
            }
        }
        t->n = w;
    }
    return 0;
}

static int dec_wordpiece(const tok_dec *d, chain *c) {
    tok_strs next = {0};
    tok_buf t = {0};
    size_t pl = strlen(d->content);
    int rc = 0;
    for (size_t i = 0; i < c->list.n && !rc; i++) {
        const char *s = STR(&c->list, i);
        size_t n = c->list.len[i];
        tok_buf_clear(&t);
        if (i == 0 && c->at_start)
            rc = tok_buf_append(&t, s, n);
        else if (n >= pl && memcmp(s, d->content, pl) == 0)
            rc = tok_buf_append(&t, s + pl, n - pl);
        else
            rc = tok_buf_append(&t, " ", 1) || tok_buf_append(&t, s, n);
        if (d->cleanup && !rc) wordpiece_cleanup(&t);
        rc = rc || tok_strs_push(&next, t.p ? t.p : "", t.n);
    }
    tok_buf_free(&t);
    chain_swap(c, &next);
    return rc;
}

static int dec_bpe_suffix(const tok_dec *d, chain *c) {
    tok_strs next = {0};
    tok_buf t = {0};
    size_t sl = strlen(d->content);
    int rc = 0;
    for (size_t i = 0; i < c->list.n && !rc; i++) {
        const char *s = STR(&c->list, i), *rep = (i + 1 == c->list.n && c->at_end) ? "" : " ";
        size_t n = c->list.len[i];
        tok_buf_clear(&t);
        for (size_t k = 0; k < n && !rc;) {
            if (sl && k + sl <= n && memcmp(s + k, d->content, sl) == 0) {
                rc = tok_buf_append(&t, rep, strlen(rep));
                k += sl;
            } else {
                rc = tok_buf_append(&t, s + k, 1);
                k++;
            }
        }
        rc = rc || tok_strs_push(&next, t.p ? t.p : "", t.n);
    }
    tok_buf_free(&t);
    chain_swap(c, &next);
    return rc;
}

static int dec_apply(const tok_dec *d, chain *c, pcre2_match_data *md) {
    switch (d->kind) {
    case DEC_SEQUENCE:
        for (int i = 0; i < d->n_children; i++)
            if (dec_apply(&d->children[i], c, md)) return -1;
        return 0;
    case DEC_BYTELEVEL:
        return dec_bytelevel(c);
    case DEC_REPLACE:
        return dec_replace(d, c, md);
    case DEC_BYTE_FALLBACK:
        return dec_byte_fallback(c);
    case DEC_FUSE:
        return dec_fuse(c);
    case DEC_STRIP:
        return dec_strip(d, c);
    case DEC_METASPACE:
        return dec_metaspace(d, c);
    case DEC_WORDPIECE:
        return dec_wordpiece(d, c);
    case DEC_BPE_SUFFIX:
        return dec_bpe_suffix(d, c);
    }
    return -1;
}

int tok_decode_chain(const sp_tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                     int at_start, int at_end, tok_buf *out) {
    chain c = {.at_start = at_start, .at_end = at_end};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        int32_t id = ids[i];
        /* Unknown ids are dropped, as Hugging Face's decode does. */
        if (id < 0 || id >= tok->n_ids || !tok->pieces[id]) continue;
        if (skip_special && tok->is_special[id]) continue;
        rc = tok_strs_push(&c.list, tok->pieces[id], tok->piece_len[id]);
    }
    if (!rc && !tok->decoder) {
        /* No decoder: pieces joined by spaces (a window continues the text). */
        for (size_t i = 0; i < c.list.n && !rc; i++) {
            if ((i > 0 || !at_start) && tok_buf_append(out, " ", 1)) rc = -1;
            rc = rc || tok_buf_append(out, STR(&c.list, i), c.list.len[i]);
        }
        tok_strs_free(&c.list);
        return rc;
    }
    pcre2_match_data *md = rc ? NULL : tok_match_data();
    if (!md) rc = -1;
    rc = rc || dec_apply(tok->decoder, &c, md);
    for (size_t i = 0; i < c.list.n && !rc; i++)
        rc = tok_buf_append(out, STR(&c.list, i), c.list.len[i]);
    if (md) pcre2_match_data_free(md);
    tok_strs_free(&c.list);
    return rc;
}

sp_status sp_tokenizer_decode(const sp_tokenizer *tok, const int32_t *ids, size_t n_ids,
                              int skip_special, char **text, size_t *len, sp_error *err) {
    tok_buf out = {0};
    if (tok_decode_chain(tok, ids, n_ids, skip_special, 1, 1, &out)) {
        tok_buf_free(&out);
        return sp_fail(err, SP_ENOMEM, "tokenizer: out of memory while decoding");
    }
    *text = tok_buf_take(&out, len);
    if (!*text) return sp_fail(err, SP_ENOMEM, "tokenizer: out of memory while decoding");
    return SP_OK;
}
