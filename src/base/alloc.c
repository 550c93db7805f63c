#include "base/alloc.h"

#include <stdlib.h>
#include <string.h>

void *sp_aligned_alloc(size_t size) {
    void *p = NULL;
    if (size == 0) size = 64;
    if (posix_memalign(&p, 64, (size + 63) & ~(size_t)63) != 0) return NULL;
    memset(p, 0, size);
    return p;
}

void sp_aligned_free(void *p) {
    free(p);
}
