/* Sequential-read bandwidth probe: the ceiling a bandwidth-bound decode step
 * can reach on this machine with a given pool (spindle bench --membw). */
#ifndef SP_COMPUTE_MEMBW_H
#define SP_COMPUTE_MEMBW_H

#include <stddef.h>

#include "compute/pool.h"

/* Reads a buffer of `bytes` (rounded down to 4 KiB; far larger than the last
 * level cache, e.g. 1 GiB) reps times, each pass cut into contiguous work
 * items the pool's threads claim (as sp_matmul's rows), and returns the
 * fastest pass's GB/s (1e9 bytes per second): the limit a decode step can
 * reach, which on a shared machine is what the quiet moments show. The buffer is written once
 * before timing so every page is resident. Returns a negative value if allocation fails. */
double sp_membw_read_gbs(sp_pool *pool, size_t bytes, int reps);

#endif
