#include "formats/name_index.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static const char *name_at(const sp_name_index *ix, int i) {
    const char *p = (const char *)ix->names + (size_t)i * ix->stride;
    const char *name;
    memcpy(&name, p, sizeof name);
    return name;
}

int sp_name_index_build(sp_name_index *ix, const void *names, size_t stride, int count, int *dup) {
    memset(ix, 0, sizeof *ix);
    if (dup) *dup = -1;
    size_t cap = 16;
    while (cap < 2 * (size_t)count) cap *= 2;
    ix->slots = malloc(cap * sizeof *ix->slots);
    if (!ix->slots) return 0;
    memset(ix->slots, 0xff, cap * sizeof *ix->slots); /* all -1 */
    ix->cap = cap;
    ix->names = names;
    ix->stride = stride;
    for (int i = 0; i < count; i++) {
        const char *name = name_at(ix, i);
        size_t s = fnv1a(name) & (cap - 1);
        while (ix->slots[s] >= 0) {
            if (dup && *dup < 0 && strcmp(name_at(ix, ix->slots[s]), name) == 0) *dup = i;
            s = (s + 1) & (cap - 1);
        }
        ix->slots[s] = i;
    }
    return 1;
}

int sp_name_index_find(const sp_name_index *ix, const char *name) {
    if (!ix->slots || !name) return -1;
    size_t s = fnv1a(name) & (ix->cap - 1);
    while (ix->slots[s] >= 0) {
        if (strcmp(name_at(ix, ix->slots[s]), name) == 0) return ix->slots[s];
        s = (s + 1) & (ix->cap - 1);
    }
    return -1;
}

void sp_name_index_free(sp_name_index *ix) {
    free(ix->slots);
    memset(ix, 0, sizeof *ix);
}
