#include "engine/blocks.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct block {
    int ref;
    int indexed;
    uint64_t key;
    uint64_t salt; /* images in the block (0: none), compared like the tokens */
    int32_t next_in_bucket;
    int32_t lru_prev, lru_next; /* valid while cached (indexed, ref 0) */
} block;

struct sp_blocks {
    int n, bs;
    block *blk;
    int32_t *tokens; /* [n][bs]: contents of indexed blocks, for verification */
    int32_t *free_stack;
    int n_free;
    int32_t lru_head, lru_tail; /* head: least recently used */
    int n_cached;
    int n_used;
    int n_reserved;
    int32_t *buckets;
    uint64_t bucket_mask;
};

sp_blocks *sp_blocks_new(int n_blocks, int block_size) {
    sp_blocks *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->n = n_blocks;
    b->bs = block_size;
    size_t nb = 16;
    while (nb < 2 * (size_t)n_blocks) nb *= 2;
    b->bucket_mask = nb - 1;
    b->blk = calloc((size_t)n_blocks, sizeof *b->blk);
    b->tokens = calloc((size_t)n_blocks * (size_t)block_size, sizeof *b->tokens);
    b->free_stack = malloc((size_t)n_blocks * sizeof *b->free_stack);
    b->buckets = malloc(nb * sizeof *b->buckets);
    if (!b->blk || !b->tokens || !b->free_stack || !b->buckets) {
        sp_blocks_free(b);
        return NULL;
    }
    for (size_t i = 0; i < nb; i++) b->buckets[i] = -1;
    /* pop order 0, 1, 2 ... */
    for (int i = 0; i < n_blocks; i++) b->free_stack[i] = n_blocks - 1 - i;
    b->n_free = n_blocks;
    b->lru_head = b->lru_tail = -1;
    return b;
}

void sp_blocks_free(sp_blocks *b) {
    if (!b) return;
    free(b->blk);
    free(b->tokens);
    free(b->free_stack);
    free(b->buckets);
    free(b);
}

int sp_blocks_total(const sp_blocks *b) {
    return b->n;
}
int sp_blocks_size(const sp_blocks *b) {
    return b->bs;
}
int sp_blocks_used(const sp_blocks *b) {
    return b->n_used;
}
int sp_blocks_cached(const sp_blocks *b) {
    return b->n_cached;
}
int sp_blocks_available(const sp_blocks *b) {
    return b->n_free + b->n_cached - b->n_reserved;
}

int sp_blocks_reserve(sp_blocks *b, int n) {
    if (n > sp_blocks_available(b)) return -1;
    b->n_reserved += n;
    return 0;
}

void sp_blocks_unreserve(sp_blocks *b, int n) {
    b->n_reserved -= n;
    if (b->n_reserved < 0) b->n_reserved = 0;
}

void sp_blocks_reserve_force(sp_blocks *b, int n) {
    b->n_reserved += n;
}

int sp_blocks_window_bound(int window, int block_size, int chunk) {
    if (chunk < 1) chunk = 1;
    /* positions [n+1-w, n+chunk-1] span at most this many blocks */
    return (chunk + window - 2) / block_size + 2;
}

static void lru_remove(sp_blocks *b, int32_t id) {
    block *k = &b->blk[id];
    if (k->lru_prev >= 0)
        b->blk[k->lru_prev].lru_next = k->lru_next;
    else
        b->lru_head = k->lru_next;
    if (k->lru_next >= 0)
        b->blk[k->lru_next].lru_prev = k->lru_prev;
    else
        b->lru_tail = k->lru_prev;
    b->n_cached--;
}

static void lru_append(sp_blocks *b, int32_t id) {
    block *k = &b->blk[id];
    k->lru_prev = b->lru_tail;
    k->lru_next = -1;
    if (b->lru_tail >= 0)
        b->blk[b->lru_tail].lru_next = id;
    else
        b->lru_head = id;
    b->lru_tail = id;
    b->n_cached++;
}

static void index_remove(sp_blocks *b, int32_t id) {
    int32_t *link = &b->buckets[b->blk[id].key & b->bucket_mask];
    while (*link >= 0 && *link != id) link = &b->blk[*link].next_in_bucket;
    if (*link == id) *link = b->blk[id].next_in_bucket;
    b->blk[id].indexed = 0;
}

int32_t sp_blocks_alloc(sp_blocks *b) {
    if (b->n_reserved <= 0) return -1;
    int32_t id;
    if (b->n_free > 0) {
        id = b->free_stack[--b->n_free];
    } else if (b->lru_head >= 0) {
        id = b->lru_head;
        lru_remove(b, id);
        index_remove(b, id);
    } else {
        return -1;
    }
    b->n_reserved--;
    b->blk[id].ref = 1;
    b->n_used++;
    return id;
}

void sp_blocks_unref(sp_blocks *b, int32_t id) {
    block *k = &b->blk[id];
    if (k->ref <= 0) return;
    if (--k->ref > 0) return;
    b->n_used--;
    if (k->indexed)
        lru_append(b, id);
    else
        b->free_stack[b->n_free++] = id;
}

uint64_t sp_blocks_key(uint64_t prev_key, const int32_t *tokens, int n) {
    return XXH3_64bits_withSeed(tokens, (size_t)n * sizeof *tokens, prev_key);
}

uint64_t sp_blocks_key_salted(uint64_t prev_key, const int32_t *tokens, int n, uint64_t salt) {
    if (!salt) return sp_blocks_key(prev_key, tokens, n);
    return sp_blocks_key(XXH3_64bits_withSeed(&salt, sizeof salt, prev_key), tokens, n);
}

static int32_t index_find(const sp_blocks *b, uint64_t key, const int32_t *tokens, uint64_t salt) {
    for (int32_t id = b->buckets[key & b->bucket_mask]; id >= 0; id = b->blk[id].next_in_bucket)
        if (b->blk[id].key == key &&
            (!tokens || (b->blk[id].salt == salt &&
                         !memcmp(&b->tokens[(size_t)id * b->bs], tokens, b->bs * sizeof *tokens))))
            return id;
    return -1;
}

void sp_blocks_publish(sp_blocks *b, int32_t id, uint64_t key, const int32_t *tokens) {
    sp_blocks_publish_salted(b, id, key, tokens, 0);
}

void sp_blocks_publish_salted(sp_blocks *b, int32_t id, uint64_t key, const int32_t *tokens,
                              uint64_t salt) {
    if (b->blk[id].indexed || index_find(b, key, NULL, 0) >= 0) return;
    block *k = &b->blk[id];
    k->key = key;
    k->salt = salt;
    k->indexed = 1;
    memcpy(&b->tokens[(size_t)id * b->bs], tokens, b->bs * sizeof *tokens);
    int32_t *head = &b->buckets[key & b->bucket_mask];
    k->next_in_bucket = *head;
    *head = id;
}

int32_t sp_blocks_lookup(sp_blocks *b, uint64_t key, const int32_t *tokens) {
    return sp_blocks_lookup_salted(b, key, tokens, 0);
}

int32_t sp_blocks_lookup_salted(sp_blocks *b, uint64_t key, const int32_t *tokens, uint64_t salt) {
    int32_t id = index_find(b, key, tokens, salt);
    if (id < 0) return -1;
    block *k = &b->blk[id];
    if (k->ref == 0) {
        /* taking a cached block must not break promises made to others */
        if (sp_blocks_available(b) <= 0) return -1;
        lru_remove(b, id);
        b->n_used++;
    }
    k->ref++;
    return id;
}
