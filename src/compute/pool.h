/* A fixed fork-join worker pool driven by one calling thread. Workers own no
 * model state: they run the function they are handed on the data they are
 * handed, and are idle between calls (DESIGN.md section 1).
 *
 * A run is a list of work items that the threads claim one at a time, so a
 * worker the OS has not scheduled (an oversubscribed machine: HTTP threads,
 * other processes) does not hold the step back: the caller and the running
 * workers take its items. Idle workers spin for a few tens of microseconds
 * (the gap between two kernels of a decode step), then sleep on a futex. */
#ifndef SP_COMPUTE_POOL_H
#define SP_COMPUTE_POOL_H

#include <stddef.h>

typedef struct sp_pool sp_pool;

/* Work item i of n. */
typedef void (*sp_pool_fn)(void *ctx, int i, int n);

/* n_threads >= 1 (including the caller). Returns NULL on failure. */
sp_pool *sp_pool_create(int n_threads);
int sp_pool_size(const sp_pool *p);
/* Runs fn(ctx, i, nth) once for every i in [0, nth), nth = sp_pool_size(p),
 * and returns when all have finished. The caller runs item 0 itself; each
 * item runs on exactly one thread, so scratch slot i (below) may be used by
 * item i. Only the thread that created the pool may call this. p == NULL
 * runs fn(ctx, 0, 1). */
void sp_pool_run(sp_pool *p, sp_pool_fn fn, void *ctx);
/* Same with n_items items (>= 1, < 2^20): finer items balance better when
 * threads run at different speeds. Item i is not tied to a scratch slot. */
void sp_pool_run_n(sp_pool *p, sp_pool_fn fn, void *ctx, int n_items);
void sp_pool_destroy(sp_pool *p);

/* Scratch memory owned by the pool: 64-byte aligned, at least `bytes` long,
 * kept (and grown only when a larger size is asked for) until
 * sp_pool_destroy, so steady-state decode does not allocate. Slot i in
 * [0, nth) belongs to item i of an sp_pool_run and may be used only inside
 * the function it hands out; its contents are not preserved across runs in
 * any useful way. Slot SP_POOL_SHARED belongs to the calling thread between
 * runs (data it prepares for the workers, which may read it during the next
 * run). Returns NULL when p is NULL or allocation fails. */
#define SP_POOL_SHARED (-1)
void *sp_pool_scratch(sp_pool *p, int slot, size_t bytes);

#endif
