#include "media/prompt.h"

#include <stdlib.h>
#include <string.h>

const char *sp_image_placeholder(sp_proc_kind kind, const char *boi, const char *soft) {
    return kind == SP_PROC_GEMMA3 ? boi : soft;
}

char *sp_image_expansion(sp_proc_kind kind, const char *boi, const char *soft, const char *eoi,
                         int n_soft) {
    const char *nl = kind == SP_PROC_GEMMA3 ? "\n\n" : "";
    size_t ls = strlen(soft), total = 2 * strlen(nl) + strlen(boi) + strlen(eoi) + ls * n_soft;
    char *out = malloc(total + 1), *p = out;
    if (!out) return NULL;
    p = stpcpy(stpcpy(p, nl), boi);
    for (int i = 0; i < n_soft; i++, p += ls) memcpy(p, soft, ls);
    *p = 0;
    stpcpy(stpcpy(p, eoi), nl);
    return out;
}

int sp_image_count_placeholders(const char *text, const char *ph) {
    int n = 0;
    size_t lp = strlen(ph);
    for (const char *p = text; lp && (p = strstr(p, ph)) != NULL; p += lp) n++;
    return n;
}

sp_status sp_image_expand_text(const char *text, const char *ph, const char *const *exp, int n,
                               char **out, sp_error *err) {
    *out = NULL;
    int found = sp_image_count_placeholders(text, ph);
    if (found != n)
        return sp_fail(err, SP_EINVAL,
                       "the rendered prompt holds %d image placeholder(s) (%s) for %d image(s)",
                       found, ph, n);
    size_t lp = strlen(ph), total = strlen(text) + 1;
    for (int i = 0; i < n; i++) total += strlen(exp[i]);
    char *o = malloc(total), *w = o;
    if (!o) return sp_fail(err, SP_ENOMEM, "expanded prompt");
    const char *p = text;
    for (int i = 0; i < n; i++) {
        const char *q = strstr(p, ph);
        memcpy(w, p, (size_t)(q - p));
        w = stpcpy(w + (q - p), exp[i]);
        p = q + lp;
    }
    strcpy(w, p);
    *out = o;
    return SP_OK;
}
