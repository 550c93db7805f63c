/* Split/Replace patterns: a literal string or a PCRE2 regex compiled with
 * UTF + UCP (Unicode classes for \s, \w, \p{..}) and JIT. The Rust
 * tokenizers use Oniguruma; the patterns found in tokenizer.json files
 * (GPT-2, Llama 3, Qwen) mean the same thing under PCRE2. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

sp_status tok_pattern_compile(tok_pattern *p, const char *text, size_t len, int is_regex,
                              const char *where, sp_error *err) {
    memset(p, 0, sizeof *p);
    if (!is_regex) {
        p->literal = malloc(len + 1);
        if (!p->literal) return sp_fail(err, SP_ENOMEM, "%s: out of memory", where);
        memcpy(p->literal, text, len);
        p->literal[len] = 0;
        p->literal_len = len;
        return SP_OK;
    }
    int code;
    PCRE2_SIZE off;
    p->re = pcre2_compile((PCRE2_SPTR)text, len, PCRE2_UTF | PCRE2_UCP, &code, &off, NULL);
    if (!p->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return sp_fail(err, SP_EFORMAT, "%s: bad regex at offset %zu: %s", where, (size_t)off,
                       (const char *)msg);
    }
    pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter on failure */
    return SP_OK;
}

void tok_pattern_free(tok_pattern *p) {
    free(p->literal);
    if (p->re) pcre2_code_free(p->re);
    memset(p, 0, sizeof *p);
}

pcre2_match_data *tok_match_data(void) {
    return pcre2_match_data_create(4, NULL);
}

static int regex_at(const tok_pattern *p, pcre2_match_data *md, const char *s, size_t n,
                    size_t from) {
    int rc = pcre2_jit_match(p->re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_JIT_BADOPTION || rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc =
            pcre2_match(p->re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
    return rc;
}

int tok_pattern_find(const tok_pattern *p, pcre2_match_data *md, const char *s, size_t n,
                     size_t from, size_t *ms, size_t *me) {
    if (p->literal) {
        if (p->literal_len == 0 || from >= n) return 0;
        const char *hit = memmem(s + from, n - from, p->literal, p->literal_len);
        if (!hit) return 0;
        *ms = (size_t)(hit - s);
        *me = *ms + p->literal_len;
        return 1;
    }
    while (from <= n) {
        int rc = regex_at(p, md, s, n, from);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) return -1;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0]) {
            *ms = ov[0];
            *me = ov[1];
            return 1;
        }
        /* An empty match yields no piece: retry one character further. */
        from = ov[0] + 1;
        while (from < n && ((unsigned char)s[from] & 0xC0) == 0x80) from++;
    }
    return 0;
}
