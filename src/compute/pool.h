/* A fixed fork-join worker pool driven by one calling thread. Workers own no
 * model state: they run the function they are handed on the data they are
 * handed, and are idle between calls (DESIGN.md section 1). */
#ifndef SP_COMPUTE_POOL_H
#define SP_COMPUTE_POOL_H

#include <stddef.h>

typedef struct sp_pool sp_pool;

/* fn is called once per thread with ith in [0, nth); the caller is ith 0. */
typedef void (*sp_pool_fn)(void *ctx, int ith, int nth);

/* n_threads >= 1 (including the caller). Returns NULL on failure. */
sp_pool *sp_pool_create(int n_threads);
int sp_pool_size(const sp_pool *p);
/* Runs fn on every thread and returns when all have finished. Only the thread
 * that created the pool may call this. p == NULL runs fn(ctx, 0, 1). */
void sp_pool_run(sp_pool *p, sp_pool_fn fn, void *ctx);
void sp_pool_destroy(sp_pool *p);

/* Scratch memory owned by the pool: 64-byte aligned, at least `bytes` long,
 * kept (and grown only when a larger size is asked for) until
 * sp_pool_destroy, so steady-state decode does not allocate. Slot ith in
 * [0, nth) belongs to thread ith and may be used only inside the function
 * sp_pool_run hands it; its contents are not preserved across runs in any
 * useful way. Slot SP_POOL_SHARED belongs to the calling thread between runs
 * (data it prepares for the workers, which may read it during the next run).
 * Returns NULL when p is NULL or allocation fails. */
#define SP_POOL_SHARED (-1)
void *sp_pool_scratch(sp_pool *p, int slot, size_t bytes);

#endif
