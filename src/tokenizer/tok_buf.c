#include "tokenizer/tok_buf.h"

#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"

int tok_buf_reserve(tok_buf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tok_buf_append(tok_buf *b, const void *s, size_t n) {
    if (tok_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int tok_buf_append_cp(tok_buf *b, uint32_t cp) {
    char tmp[4];
    int k = sp_utf8_encode(cp, tmp);
    return tok_buf_append(b, tmp, (size_t)k);
}

void tok_buf_free(tok_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

char *tok_buf_take(tok_buf *b, size_t *len) {
    if (!b->p && tok_buf_reserve(b, 0)) return NULL;
    b->p[b->n] = 0;
    char *p = b->p;
    if (len) *len = b->n;
    b->p = NULL;
    b->n = b->cap = 0;
    return p;
}
