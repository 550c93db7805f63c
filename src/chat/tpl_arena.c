/* Bump allocator: a parse or a render allocates freely and frees everything
 * at once, which is what lets the interpreter unwind errors with longjmp
 * without leaking. */
#include <stdlib.h>

#include "chat/tpl_internal.h"

struct tpl_chunk {
    tpl_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

#define TPL_CHUNK_MIN ((size_t)64 << 10)

void tpl_arena_init(tpl_arena *a, size_t limit) {
    a->head = NULL;
    a->total = 0;
    a->limit = limit;
}

void tpl_arena_free(tpl_arena *a) {
    tpl_chunk *c = a->head;
    while (c) {
        tpl_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

void *tpl_arena_alloc(tpl_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (a->limit && (n > a->limit || a->total > a->limit - n)) return NULL;
    tpl_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = n > TPL_CHUNK_MIN ? n : TPL_CHUNK_MIN;
        /* big requests get their own chunk behind the current one so the
         * current chunk's free tail stays usable */
        tpl_chunk *nc = malloc(sizeof *nc + size);
        if (!nc) return NULL;
        nc->size = size;
        nc->used = 0;
        if (c && size == n) {
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    a->total += n;
    return p;
}
