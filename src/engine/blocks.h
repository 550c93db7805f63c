/* KV block manager: a fixed pool of blocks with reference counts, a free
 * list, reservations, and the prefix index. Only full blocks are indexed:
 * a block's key is XXH3 of its tokens seeded with the previous block's key,
 * so equal keys mean equal prefixes (the tokens are compared as well, so a
 * hash collision can never serve wrong KV). A block nobody references but
 * that is indexed stays cached, in LRU order, until an allocation needs it.
 *
 * Pure bookkeeping (no KV memory, no threads): the engine thread owns one. */
#ifndef SP_ENGINE_BLOCKS_H
#define SP_ENGINE_BLOCKS_H

#include <stdint.h>

typedef struct sp_blocks sp_blocks;

sp_blocks *sp_blocks_new(int n_blocks, int block_size);
void sp_blocks_free(sp_blocks *b);

int sp_blocks_total(const sp_blocks *b);
int sp_blocks_size(const sp_blocks *b);   /* tokens per block */
int sp_blocks_used(const sp_blocks *b);   /* referenced by a sequence */
int sp_blocks_cached(const sp_blocks *b); /* unreferenced but indexed (reusable) */
/* Blocks that could still be reserved: free + cached - reserved. */
int sp_blocks_available(const sp_blocks *b);

/* Reservations guarantee that later sp_blocks_alloc calls succeed (the engine
 * reserves a request's whole budget on admission, so a running sequence
 * never runs out mid-generation). Returns 0, or -1 if not enough. */
int sp_blocks_reserve(sp_blocks *b, int n);
void sp_blocks_unreserve(sp_blocks *b, int n);
/* Reserves without checking: for a caller that bounds what all its users
 * can ever hold at once (the sliding-window group: a sequence that releases
 * a block out of its window takes the promise back, even while another
 * sequence still shares that block, so availability may dip below zero
 * only by blocks that the caller's own admission bound already covers). */
void sp_blocks_reserve_force(sp_blocks *b, int n);
/* Blocks a sequence of the sliding-window group holds at once at most, with
 * window w (largest over its layers), block size bs and at most `chunk`
 * new tokens per step: after a step it keeps the blocks from the one holding
 * position n+1-w on; a step then adds up to `chunk` positions. */
int sp_blocks_window_bound(int window, int block_size, int chunk);
/* Takes one reserved block (refcount 1): from the free list, else evicts the
 * least recently used cached block from the index. -1 if none (a bug). */
int32_t sp_blocks_alloc(sp_blocks *b);
void sp_blocks_unref(sp_blocks *b, int32_t id);

/* Chain key of a full block. */
uint64_t sp_blocks_key(uint64_t prev_key, const int32_t *tokens, int n);
/* The same for a block holding image soft tokens: salt identifies the
 * images in it (their content hashes and offsets, sched.c), so a different
 * image never shares KV with the same token ids. salt 0: sp_blocks_key. */
uint64_t sp_blocks_key_salted(uint64_t prev_key, const int32_t *tokens, int n, uint64_t salt);
/* Indexes a full block under key (tokens: block_size ids). If the key is
 * already indexed by another block, nothing changes. */
void sp_blocks_publish(sp_blocks *b, int32_t id, uint64_t key, const int32_t *tokens);
/* With the block's salt, which lookups compare as they compare tokens. */
void sp_blocks_publish_salted(sp_blocks *b, int32_t id, uint64_t key, const int32_t *tokens,
                              uint64_t salt);
/* Finds an indexed block with this key and these tokens and takes a
 * reference on it; -1 if none. */
int32_t sp_blocks_lookup(sp_blocks *b, uint64_t key, const int32_t *tokens);
int32_t sp_blocks_lookup_salted(sp_blocks *b, uint64_t key, const int32_t *tokens, uint64_t salt);

#endif
