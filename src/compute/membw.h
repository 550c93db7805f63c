/* Sequential-read bandwidth probe: the ceiling a bandwidth-bound decode step
 * can reach on this machine with a given pool (spindle bench --membw). */
#ifndef SP_COMPUTE_MEMBW_H
#define SP_COMPUTE_MEMBW_H

#include <stddef.h>

#include "compute/pool.h"

/* Reads a buffer of `bytes` (rounded down to 4 KiB; far larger than the last
 * level cache, e.g. 1 GiB) reps times, each pass split in equal contiguous
 * shares across the pool's threads, and returns the median pass's GB/s
 * (1e9 bytes per second). The buffer is written once before timing so
 * every page is resident. Returns a negative value if allocation fails. */
double sp_membw_read_gbs(sp_pool *pool, size_t bytes, int reps);

#endif
