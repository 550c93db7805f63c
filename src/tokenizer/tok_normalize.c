/* Normalizers, applied to each stretch of text between added tokens. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

static int is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return 0;
    return 1;
}

static int replace_buf(tok_buf *s, tok_buf *tmp) {
    tok_buf t = *s;
    *s = *tmp;
    *tmp = t;
    tok_buf_free(tmp);
    return 0;
}

static int unicode_form(tok_buf *s, int flags) {
    if (is_ascii(s->p, s->n)) return 0; /* ASCII is invariant under NF(K)C/D */
    utf8proc_uint8_t *out = NULL;
    utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s->p, (utf8proc_ssize_t)s->n, &out,
                                      (utf8proc_option_t)(UTF8PROC_STABLE | flags));
    if (k < 0) return -1;
    tok_buf_clear(s);
    int rc = tok_buf_append(s, out, (size_t)k);
    free(out);
    return rc;
}

static int lowercase(tok_buf *s) {
    if (is_ascii(s->p, s->n)) {
        for (size_t i = 0; i < s->n; i++)
            if (s->p[i] >= 'A' && s->p[i] <= 'Z') s->p[i] = (char)(s->p[i] + 32);
        return 0;
    }
    tok_buf t = {0};
    for (size_t i = 0; i < s->n;) {
        uint32_t cp;
        i += (size_t)tok_utf8_next(s->p + i, s->n - i, &cp);
        int rc;
        if (cp == 0x130) /* the one unconditional multi-char lowercase mapping */
            rc = tok_buf_append(&t, "i\xCC\x87", 3);
        else
            rc = tok_buf_append_cp(&t, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
        if (rc) {
            tok_buf_free(&t);
            return -1;
        }
    }
    return replace_buf(s, &t);
}

static int replace(const tok_norm *n, tok_buf *s, pcre2_match_data *md) {
    size_t from = 0, ms, me;
    tok_buf t = {0};
    int found = 0, rc = 0;
    while ((rc = tok_pattern_find(&n->pattern, md, s->p, s->n, from, &ms, &me)) == 1) {
        found = 1;
        if (tok_buf_append(&t, s->p + from, ms - from) ||
            tok_buf_append(&t, n->content, strlen(n->content)))
            break;
        from = me;
    }
    if (rc < 0 || (found && tok_buf_append(&t, s->p + from, s->n - from))) {
        tok_buf_free(&t);
        return -1;
    }
    if (!found) return 0;
    return replace_buf(s, &t);
}

static int prepend(const tok_norm *n, tok_buf *s) {
    if (s->n == 0) return 0;
    tok_buf t = {0};
    if (tok_buf_append(&t, n->content, strlen(n->content)) || tok_buf_append(&t, s->p, s->n)) {
        tok_buf_free(&t);
        return -1;
    }
    return replace_buf(s, &t);
}

static int strip(const tok_norm *n, tok_buf *s) {
    size_t a = 0, b = s->n;
    uint32_t cp;
    while (n->strip_left && a < b) {
        int k = tok_utf8_next(s->p + a, b - a, &cp);
        if (!tok_is_whitespace(cp)) break;
        a += (size_t)k;
    }
    while (n->strip_right && b > a) {
        size_t k = b - 1;
        while (k > a && ((unsigned char)s->p[k] & 0xC0) == 0x80) k--;
        tok_utf8_next(s->p + k, b - k, &cp);
        if (!tok_is_whitespace(cp)) break;
        b = k;
    }
    memmove(s->p, s->p + a, b - a);
    s->n = b - a;
    if (s->p) s->p[s->n] = 0;
    return 0;
}

static int strip_accents(tok_buf *s) {
    size_t w = 0;
    for (size_t i = 0; i < s->n;) {
        uint32_t cp;
        int k = tok_utf8_next(s->p + i, s->n - i, &cp);
        if (utf8proc_category((utf8proc_int32_t)cp) != UTF8PROC_CATEGORY_MN) {
            memmove(s->p + w, s->p + i, (size_t)k);
            w += (size_t)k;
        }
        i += (size_t)k;
    }
    s->n = w;
    if (s->p) s->p[w] = 0;
    return 0;
}

int tok_normalize(const tok_norm *n, tok_buf *s, pcre2_match_data *md) {
    switch (n->kind) {
    case NORM_SEQUENCE:
        for (int i = 0; i < n->n_children; i++)
            if (tok_normalize(&n->children[i], s, md)) return -1;
        return 0;
    case NORM_NFC:
        return unicode_form(s, UTF8PROC_COMPOSE);
    case NORM_NFD:
        return unicode_form(s, UTF8PROC_DECOMPOSE);
    case NORM_NFKC:
        return unicode_form(s, UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case NORM_NFKD:
        return unicode_form(s, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
    case NORM_LOWERCASE:
        return lowercase(s);
    case NORM_REPLACE:
        return replace(n, s, md);
    case NORM_PREPEND:
        return prepend(n, s);
    case NORM_STRIP:
        return strip(n, s);
    case NORM_STRIP_ACCENTS:
        return strip_accents(s);
    }
    return 0;
}
