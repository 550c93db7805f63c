/* Open-addressing hash maps: byte string -> int32 (keys are borrowed, their
 * owner must outlive the map) and uint64 -> uint32. Built once at load time,
 * then only read, so lookups are safe from many threads. */
#ifndef SP_TOKENIZER_TOK_MAP_H
#define SP_TOKENIZER_TOK_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct tok_map_slot {
    const char *key;
    uint32_t len;
    int32_t val;
} tok_map_slot;

typedef struct tok_map {
    tok_map_slot *slots;
    size_t mask, count;
} tok_map;

uint64_t tok_hash(const void *s, size_t n);
int tok_map_init(tok_map *m, size_t expected);
/* Inserts or overwrites; returns 0, or -1 when out of memory. */
int tok_map_put(tok_map *m, const char *key, size_t len, int32_t val);
/* Returns the value or -1 when absent. */
int32_t tok_map_get(const tok_map *m, const char *key, size_t len);
void tok_map_free(tok_map *m);

typedef struct tok_map64_slot {
    uint64_t key; /* UINT64_MAX: empty */
    uint32_t val;
} tok_map64_slot;

typedef struct tok_map64 {
    tok_map64_slot *slots; /* key and value side by side: one cache miss */
    size_t mask, count;
} tok_map64;

int tok_map64_init(tok_map64 *m, size_t expected);
int tok_map64_put(tok_map64 *m, uint64_t key, uint32_t val);
/* Returns 1 and sets *val when present. */
int tok_map64_get(const tok_map64 *m, uint64_t key, uint32_t *val);
void tok_map64_free(tok_map64 *m);

#endif
