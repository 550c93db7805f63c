#include "tokenizer/tok_map.h"

#include <stdlib.h>
#include <string.h>

#define EMPTY64 UINT64_MAX

uint64_t tok_hash(const void *data, size_t n) {
    const unsigned char *s = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0x100000001B3ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 32);
}

static size_t table_size(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2; /* load factor <= 0.5 */
    return cap;
}

int tok_map_init(tok_map *m, size_t expected) {
    size_t cap = table_size(expected);
    m->slots = calloc(cap, sizeof *m->slots);
    m->mask = cap - 1;
    m->count = 0;
    return m->slots ? 0 : -1;
}

static int map_grow(tok_map *m) {
    tok_map bigger;
    if (tok_map_init(&bigger, (m->mask + 1))) return -1;
    for (size_t i = 0; i <= m->mask; i++)
        if (m->slots[i].key)
            tok_map_put(&bigger, m->slots[i].key, m->slots[i].len, m->slots[i].val);
    free(m->slots);
    *m = bigger;
    return 0;
}

int tok_map_put(tok_map *m, const char *key, size_t len, int32_t val) {
    if ((m->count + 1) * 2 > m->mask + 1 && map_grow(m)) return -1;
    size_t i = tok_hash(key, len) & m->mask;
    for (;; i = (i + 1) & m->mask) {
        tok_map_slot *s = &m->slots[i];
        if (!s->key) {
            s->key = key;
            s->len = (uint32_t)len;
            s->val = val;
            m->count++;
            return 0;
        }
        if (s->len == len && memcmp(s->key, key, len) == 0) {
            s->val = val;
            return 0;
        }
    }
}

int32_t tok_map_get(const tok_map *m, const char *key, size_t len) {
    if (!m->slots) return -1;
    size_t i = tok_hash(key, len) & m->mask;
    for (;; i = (i + 1) & m->mask) {
        const tok_map_slot *s = &m->slots[i];
        if (!s->key) return -1;
        if (s->len == len && memcmp(s->key, key, len) == 0) return s->val;
    }
}

void tok_map_free(tok_map *m) {
    free(m->slots);
    m->slots = NULL;
    m->mask = m->count = 0;
}

/* murmur3's 64-bit finalizer: ids are small, so mix them fully. */
static inline size_t hash64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return (size_t)k;
}

int tok_map64_init(tok_map64 *m, size_t expected) {
    size_t cap = table_size(expected);
    m->slots = malloc(cap * sizeof *m->slots);
    m->mask = cap - 1;
    m->count = 0;
    if (!m->slots) return -1;
    for (size_t i = 0; i < cap; i++) m->slots[i].key = EMPTY64;
    return 0;
}

static int map64_grow(tok_map64 *m) {
    tok_map64 bigger;
    if (tok_map64_init(&bigger, m->mask + 1)) {
        tok_map64_free(&bigger);
        return -1;
    }
    for (size_t i = 0; i <= m->mask; i++)
        if (m->slots[i].key != EMPTY64) tok_map64_put(&bigger, m->slots[i].key, m->slots[i].val);
    tok_map64_free(m);
    *m = bigger;
    return 0;
}

int tok_map64_put(tok_map64 *m, uint64_t key, uint32_t val) {
    if ((m->count + 1) * 2 > m->mask + 1 && map64_grow(m)) return -1;
    size_t i = hash64(key) & m->mask;
    for (;; i = (i + 1) & m->mask) {
        tok_map64_slot *s = &m->slots[i];
        if (s->key == EMPTY64) {
            s->key = key;
            s->val = val;
            m->count++;
            return 0;
        }
        if (s->key == key) {
            s->val = val;
            return 0;
        }
    }
}

int tok_map64_get(const tok_map64 *m, uint64_t key, uint32_t *val) {
    if (!m->slots) return 0;
    size_t i = hash64(key) & m->mask;
    for (;; i = (i + 1) & m->mask) {
        const tok_map64_slot *s = &m->slots[i];
        if (s->key == key) {
            *val = s->val;
            return 1;
        }
        if (s->key == EMPTY64) return 0;
    }
}

void tok_map64_free(tok_map64 *m) {
    free(m->slots);
    m->slots = NULL;
    m->mask = m->count = 0;
}
