/* A read-only string -> index hash table (open addressing, FNV-1a), built
 * once after a file is parsed so tensor and key lookups are O(1). The table
 * borrows the name strings; they must outlive it. */
#ifndef SP_FORMATS_NAME_INDEX_H
#define SP_FORMATS_NAME_INDEX_H

#include <stddef.h>

typedef struct sp_name_index {
    int *slots; /* -1 empty, else an index into names */
    size_t cap; /* power of two, >= 2 * count */
    const char *const *names;
    size_t stride; /* bytes between consecutive name pointers */
} sp_name_index;

/* names points at the first name pointer; name i is at (char*)names + i*stride
 * (so the table can index a field of an array of structs). Returns 0 on
 * allocation failure. On a duplicate name, sets *dup to the later index (else -1). */
int sp_name_index_build(sp_name_index *ix, const void *names, size_t stride, int count, int *dup);
/* Index of name, or -1. */
int sp_name_index_find(const sp_name_index *ix, const char *name);
void sp_name_index_free(sp_name_index *ix);

#endif
