/* Growable byte buffer used throughout the tokenizer. Functions return 0 on
 * success and -1 when memory runs out; the contents stay NUL-terminated. */
#ifndef SP_TOKENIZER_TOK_BUF_H
#define SP_TOKENIZER_TOK_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct tok_buf {
    char *p;
    size_t n, cap;
} tok_buf;

int tok_buf_reserve(tok_buf *b, size_t extra);
int tok_buf_append(tok_buf *b, const void *s, size_t n);
int tok_buf_append_cp(tok_buf *b, uint32_t cp); /* UTF-8 encode */
static inline void tok_buf_clear(tok_buf *b) {
    b->n = 0;
    if (b->p) b->p[0] = 0;
}
void tok_buf_free(tok_buf *b);
/* Hands the buffer's memory to the caller (never NULL on success). */
char *tok_buf_take(tok_buf *b, size_t *len);

#endif
