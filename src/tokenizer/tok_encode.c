/* Encoding: added tokens first (leftmost-longest, with lstrip / rstrip /
 * single_word), then normalizer, normalized added tokens, pre-tokenizer and
 * the BPE model on each word; finally the template adds BOS/EOS.
 *
 * Thread safety: all scratch state lives in the per-call encode_ctx; the
 * tokenizer itself is only read, so one tokenizer serves many threads.
 * There is deliberately no shared word cache. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

typedef struct encode_ctx {
    const sp_tokenizer *tok;
    pcre2_match_data *md;
    int parse_special;
    tok_ids out;
    tok_buf norm;
    tok_bpe_scratch *bpe;
} encode_ctx;

static uint32_t last_cp_before(const char *s, size_t at) {
    size_t k = at - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    uint32_t cp;
    tok_utf8_next(s + k, at - k, &cp);
    return cp;
}

/* One added-token match [start, stop) or the text gap before it. */
typedef int (*gap_fn)(encode_ctx *c, const char *s, size_t n, int at_start);

/* Splits s by the trie's added tokens as Hugging Face's find_matches does,
 * calling on_gap for the text between matches. */
static int split_added(encode_ctx *c, const tok_trie *trie, const char *s, size_t n, int at_start,
                       gap_fn on_gap) {
    const sp_tokenizer *tok = c->tok;
    size_t start_offset = 0, i = 0;
    while (i < n) {
        size_t len;
        if (trie->root_child[(uint8_t)s[i]] < 0) {
            i++;
            continue;
        }
        int32_t idx = tok_trie_longest(trie, s + i, n - i, &len);
        if (idx < 0) {
            i++;
            continue;
        }
        size_t start = i, stop = i + len;
        i = stop; /* the match is consumed even when rejected below */
        const tok_added *a = &tok->added[idx];
        if (a->special && !c->parse_special) continue;
        if (a->single_word) {
            uint32_t cp;
            int left_ok = start == 0 || !tok_is_word_char(last_cp_before(s, start));
            int right_ok =
                stop == n || (tok_utf8_next(s + stop, n - stop, &cp), !tok_is_word_char(cp));
            if (!left_ok || !right_ok) continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0 && tok_is_whitespace(last_cp_before(s, ns))) {
                size_t k = ns - 1;
                while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
                ns = k;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            uint32_t cp;
            while (stop < n) {
                int k = tok_utf8_next(s + stop, n - stop, &cp);
                if (!tok_is_whitespace(cp)) break;
                stop += (size_t)k;
            }
            i = stop;
        }
        if (start_offset < start &&
            on_gap(c, s + start_offset, start - start_offset, at_start && start_offset == 0))
            return -1;
        if (tok_ids_push(&c->out, a->id)) return -1;
        start_offset = stop;
    }
    if (start_offset < n &&
        on_gap(c, s + start_offset, n - start_offset, at_start && start_offset == 0))
        return -1;
    return 0;
}

static int model_word(void *ctx, const char *s, size_t n) {
    encode_ctx *c = ctx;
    return tok_bpe_word(&c->tok->bpe, c->bpe, s, n, &c->out);
}

/* Pre-tokenizes one normalized stretch and runs the model on each word. */
static int model_words(encode_ctx *c, const char *s, size_t n, int at_start) {
    return tok_pretokenize_each(c->tok->pretok, s, n, at_start, c->md, model_word, c);
}

/* Text between raw added tokens: normalize, then split out normalized ones. */
static int raw_gap(encode_ctx *c, const char *s, size_t n, int at_start) {
    const sp_tokenizer *tok = c->tok;
    tok_buf_clear(&c->norm);
    if (tok_buf_append(&c->norm, s, n)) return -1;
    if (tok->normalizer && tok_normalize(tok->normalizer, &c->norm, c->md)) return -1;
    if (c->norm.n == 0) return 0;
    if (tok->trie_norm.n == 0) return model_words(c, c->norm.p, c->norm.n, at_start);
    return split_added(c, &tok->trie_norm, c->norm.p, c->norm.n, at_start, model_words);
}

static int push_all(tok_ids *out, const int32_t *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (tok_ids_push(out, v[i])) return -1;
    return 0;
}

sp_status sp_tokenizer_encode(const sp_tokenizer *tok, const char *text, size_t len,
                              int add_special, int parse_special, int32_t **ids, size_t *n_ids,
                              sp_error *err) {
    *ids = NULL;
    *n_ids = 0;
    encode_ctx c = {.tok = tok, .parse_special = parse_special};
    tok_buf clean = {0};
    int rc = -1;
    c.md = tok_match_data();
    c.bpe = tok_bpe_scratch_new();
    if (!c.md || !c.bpe) goto done;
    /* Invalid UTF-8 becomes U+FFFD (one per maximal invalid subpart). */
    if (tok_utf8_repair(&clean, text, len)) goto done;
    if (add_special && push_all(&c.out, tok->tmpl.before, tok->tmpl.n_before)) goto done;
    if (split_added(&c, &tok->trie_raw, clean.p, clean.n, 1, raw_gap)) goto done;
    if (add_special && push_all(&c.out, tok->tmpl.after, tok->tmpl.n_after)) goto done;
    if (!c.out.v && tok_ids_push(&c.out, 0) == 0) c.out.n = 0; /* never return NULL ids */
    rc = 0;
done:
    if (c.md) pcre2_match_data_free(c.md);
    tok_bpe_scratch_free(c.bpe);
    tok_buf_free(&clean);
    tok_buf_free(&c.norm);
    if (rc) {
        free(c.out.v);
        return sp_fail(err, SP_ENOMEM,
                       "tokenizer: out of memory (or regex failure) while encoding");
    }
    *ids = c.out.v;
    *n_ids = c.out.n;
    return SP_OK;
}
