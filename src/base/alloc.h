/* Aligned allocation for kernel buffers (64 bytes: one cache line, one zmm). */
#ifndef SP_BASE_ALLOC_H
#define SP_BASE_ALLOC_H

#include <stddef.h>

void *sp_aligned_alloc(size_t size); /* zeroed; NULL on failure */
void sp_aligned_free(void *p);

#endif
