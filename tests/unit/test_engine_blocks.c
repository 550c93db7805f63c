/* KV block manager and prefix index: reference counts, reservations, LRU
 * eviction, chained keys and collision safety. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/blocks.h"

#define BS 4

static void test_alloc_reserve(void) {
    sp_blocks *b = sp_blocks_new(3, BS);
    CHECK(sp_blocks_available(b) == 3);
    CHECK(sp_blocks_alloc(b) == -1); /* nothing reserved */
    CHECK(sp_blocks_reserve(b, 4) == -1);
    CHECK(sp_blocks_reserve(b, 2) == 0);
    CHECK(sp_blocks_available(b) == 1);
    int32_t x = sp_blocks_alloc(b), y = sp_blocks_alloc(b);
    CHECK(x >= 0 && y >= 0 && x != y);
    CHECK(sp_blocks_alloc(b) == -1); /* reservation used up */
    CHECK(sp_blocks_used(b) == 2);
    sp_blocks_unref(b, x);
    sp_blocks_unref(b, y);
    CHECK(sp_blocks_used(b) == 0 && sp_blocks_available(b) == 3 && sp_blocks_cached(b) == 0);
    sp_blocks_free(b);
}

static void test_prefix_reuse(void) {
    sp_blocks *b = sp_blocks_new(4, BS);
    int32_t toks[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint64_t k1 = sp_blocks_key(0, toks, BS), k2 = sp_blocks_key(k1, toks + BS, BS);
    /* the same block after another prefix has another key */
    CHECK(sp_blocks_key(0, toks + BS, BS) != k2);
    CHECK(sp_blocks_reserve(b, 2) == 0);
    int32_t a = sp_blocks_alloc(b), c = sp_blocks_alloc(b);
    sp_blocks_publish(b, a, k1, toks);
    sp_blocks_publish(b, c, k2, toks + BS);
    /* a second sequence shares the first block while the first runs */
    CHECK(sp_blocks_lookup(b, k1, toks) == a);
    CHECK(sp_blocks_used(b) == 2);
    sp_blocks_unref(b, a);
    sp_blocks_unref(b, a);
    sp_blocks_unref(b, c);
    CHECK(sp_blocks_used(b) == 0 && sp_blocks_cached(b) == 2 && sp_blocks_available(b) == 4);
    /* cached blocks are found again */
    CHECK(sp_blocks_lookup(b, k1, toks) == a);
    CHECK(sp_blocks_cached(b) == 1 && sp_blocks_used(b) == 1);
    /* same key, other tokens (a collision): no hit */
    int32_t other[4] = {9, 9, 9, 9};
    CHECK(sp_blocks_lookup(b, k2, other) == -1);
    sp_blocks_unref(b, a);
    sp_blocks_free(b);
}

static void test_lru_eviction(void) {
    sp_blocks *b = sp_blocks_new(2, BS);
    int32_t t1[4] = {1, 1, 1, 1}, t2[4] = {2, 2, 2, 2};
    uint64_t k1 = sp_blocks_key(0, t1, BS), k2 = sp_blocks_key(0, t2, BS);
    CHECK(sp_blocks_reserve(b, 2) == 0);
    int32_t a = sp_blocks_alloc(b), c = sp_blocks_alloc(b);
    sp_blocks_publish(b, a, k1, t1);
    sp_blocks_publish(b, c, k2, t2);
    sp_blocks_unref(b, a); /* a becomes least recently used */
    sp_blocks_unref(b, c);
    CHECK(sp_blocks_reserve(b, 1) == 0);
    CHECK(sp_blocks_alloc(b) == a); /* evicts a, keeps c */
    CHECK(sp_blocks_lookup(b, k1, t1) == -1);
    CHECK(sp_blocks_lookup(b, k2, t2) == c);
    /* a cached block cannot be taken if that would break a reservation */
    sp_blocks_unref(b, c);
    CHECK(sp_blocks_reserve(b, 1) == 0); /* the only available block is c */
    CHECK(sp_blocks_lookup(b, k2, t2) == -1);
    sp_blocks_unreserve(b, 1);
    CHECK(sp_blocks_lookup(b, k2, t2) == c);
    sp_blocks_free(b);
}

static void test_publish_duplicate(void) {
    sp_blocks *b = sp_blocks_new(3, BS);
    int32_t t[4] = {5, 6, 7, 8};
    uint64_t k = sp_blocks_key(0, t, BS);
    CHECK(sp_blocks_reserve(b, 2) == 0);
    int32_t a = sp_blocks_alloc(b), c = sp_blocks_alloc(b);
    sp_blocks_publish(b, a, k, t);
    sp_blocks_publish(b, c, k, t); /* same content computed twice: first wins */
    sp_blocks_unref(b, c);
    CHECK(sp_blocks_cached(b) == 0); /* c was not indexed: back to free */
    CHECK(sp_blocks_lookup(b, k, t) == a);
    sp_blocks_free(b);
}

int main(void) {
    test_alloc_reserve();
    test_prefix_reuse();
    test_lru_eviction();
    test_publish_duplicate();
    return check_summary("test_engine_blocks");
}
