/* The BPE model: a word is split into characters (or byte-fallback tokens,
 * or unk), then adjacent symbols are merged lowest rank first, ties going to
 * the leftmost pair. A binary heap of candidate merges over a linked list of
 * symbols keeps this O(n log n) even for very long words (Gemma's tokenizer
 * has no pre-tokenization, so a whole paragraph can be one word). A heap
 * entry remembers the ids of its pair; when popped it is stale unless the
 * symbol at its position and its right neighbour still have those ids. */
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "tokenizer/tok_internal.h"

int tok_ids_push(tok_ids *ids, int32_t id) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 256;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v) return -1;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}

typedef struct tok_heap_entry {
    uint64_t key; /* (rank << 32) | position: min-heap order = rank, then leftmost */
    int32_t left, right;
} tok_heap_entry;

tok_bpe_scratch *tok_bpe_scratch_new(void) {
    tok_bpe_scratch *s = calloc(1, sizeof *s);
    if (s) memset(s->pair_key, 0xff, sizeof s->pair_key);
    return s;
}

void tok_bpe_scratch_free(tok_bpe_scratch *s) {
    if (!s) return;
    free(s->slots);
    tok_buf_free(&s->words);
    free(s->word_ids.v);
    free(s->id);
    free(s->heap);
    tok_buf_free(&s->tmp);
    free(s);
}

/* Room for n symbols: 3 arrays of n ids and a heap of 3n entries (n - 1
 * initial pairs plus at most 2 pushes per merge). */
static int scratch_reserve(tok_bpe_scratch *s, size_t n) {
    if (n <= s->cap) return 0;
    size_t cap = n < 256 ? 256 : n;
    int32_t *id = malloc(3 * cap * sizeof *id);
    tok_heap_entry *heap = malloc(3 * cap * sizeof *heap);
    if (!id || !heap) {
        free(id);
        free(heap);
        return -1;
    }
    free(s->id);
    free(s->heap);
    s->id = id;
    s->prev = id + cap;
    s->next = id + 2 * cap;
    s->heap = heap;
    s->cap = cap;
    return 0;
}

void tok_bpe_fill_char_ids(tok_bpe *bpe) {
    for (uint32_t cp = 0; cp < 0x800; cp++) {
        char u[4];
        int k = sp_utf8_encode(cp, u);
        bpe->char_id[cp] = tok_map_get(&bpe->vocab, u, (size_t)k);
    }
}

#define PACK_ID_BITS   21
#define PACK_RANK_BITS 22

static size_t pair_hash(uint64_t pair) {
    pair *= 0x9E3779B97F4A7C15ull;
    return (size_t)(pair ^ (pair >> 29));
}

int tok_bpe_pack_merges(tok_bpe *bpe) {
    size_t n = bpe->merges.count, cap = 16;
    if (bpe->n_merges >= (1u << PACK_RANK_BITS) - 1) return 0;
    while (cap < n + n / 2 + 1) cap *= 2; /* load <= 2/3 */
    uint64_t *t = malloc(cap * sizeof *t);
    if (!t) return -1;
    memset(t, 0xff, cap * sizeof *t);
    for (size_t i = 0; i <= bpe->merges.mask; i++) {
        const tok_map64_slot *sl = &bpe->merges.slots[i];
        if (sl->key == UINT64_MAX) continue;
        uint64_t a = sl->key >> 32, b = sl->key & 0xffffffffu;
        if (a >= (1u << PACK_ID_BITS) - 1 || b >= (1u << PACK_ID_BITS) - 1) {
            free(t);
            return 0;
        }
        uint64_t pair = (a << PACK_ID_BITS) | b;
        size_t j = pair_hash(pair) & (cap - 1);
        while (t[j] != UINT64_MAX) j = (j + 1) & (cap - 1);
        t[j] = (pair << PACK_RANK_BITS) | sl->val;
    }
    bpe->packed = t;
    bpe->packed_mask = cap - 1;
    return 0;
}

static uint32_t lookup_rank(const tok_bpe *bpe, uint64_t key) {
    uint32_t rank;
    if (!bpe->packed) return tok_map64_get(&bpe->merges, key, &rank) ? rank : UINT32_MAX;
    uint64_t a = key >> 32, b = key & 0xffffffffu;
    if (a >= (1u << PACK_ID_BITS) - 1 || b >= (1u << PACK_ID_BITS) - 1) return UINT32_MAX;
    uint64_t pair = (a << PACK_ID_BITS) | b;
    for (size_t j = pair_hash(pair) & bpe->packed_mask;; j = (j + 1) & bpe->packed_mask) {
        uint64_t v = bpe->packed[j];
        if (v == UINT64_MAX) return UINT32_MAX;
        if (v >> PACK_RANK_BITS == pair) return (uint32_t)(v & ((1u << PACK_RANK_BITS) - 1));
    }
}

static uint32_t merge_rank(const tok_bpe *bpe, tok_bpe_scratch *sc, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t slot = (size_t)((key * 0x9E3779B97F4A7C15ull) >> (64 - TOK_PAIR_CACHE_BITS));
    if (sc->pair_key[slot] == key) return sc->pair_rank[slot];
    uint32_t rank = lookup_rank(bpe, key);
    sc->pair_key[slot] = key;
    sc->pair_rank[slot] = rank;
    return rank;
}

static void heap_push(tok_heap_entry *h, size_t *n, tok_heap_entry v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].key <= v.key) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static tok_heap_entry heap_pop(tok_heap_entry *h, size_t *n) {
    tok_heap_entry top = h[0], v = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1].key < h[c].key) c++;
        if (v.key <= h[c].key) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = v;
    return top;
}

static void push_pair(const tok_bpe *bpe, tok_bpe_scratch *sc, size_t *hn, int32_t pos) {
    int32_t nx = sc->next[pos];
    if (nx < 0) return;
    uint32_t rank = merge_rank(bpe, sc, sc->id[pos], sc->id[nx]);
    if (rank != UINT32_MAX)
        heap_push(
            sc->heap, hn,
            (tok_heap_entry){((uint64_t)rank << 32) | (uint32_t)pos, sc->id[pos], sc->id[nx]});
}

static void merge_all(const tok_bpe *bpe, tok_bpe_scratch *sc, size_t n) {
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        sc->prev[i] = (int32_t)i - 1;
        sc->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) push_pair(bpe, sc, &hn, (int32_t)i);
    while (hn) {
        tok_heap_entry top = heap_pop(sc->heap, &hn);
        int32_t pos = (int32_t)(uint32_t)top.key, nx = sc->next[pos];
        if (sc->id[pos] != top.left || nx < 0 || sc->id[nx] != top.right) continue; /* stale */
        sc->id[pos] = bpe->merge_info[top.key >> 32].new_id;
        sc->id[nx] = -1;
        sc->next[pos] = sc->next[nx];
        if (sc->next[nx] >= 0) sc->prev[sc->next[nx]] = pos;
        if (sc->prev[pos] >= 0) push_pair(bpe, sc, &hn, sc->prev[pos]);
        push_pair(bpe, sc, &hn, pos);
    }
}

static int32_t piece_id(const tok_bpe *bpe, tok_bpe_scratch *sc, const char *s, size_t n, int first,
                        int last) {
    int plain = (first || !bpe->prefix[0]) && (!last || !bpe->suffix[0]);
    if (plain && n <= 2 && !bpe->prefix[0] && !bpe->suffix[0]) {
        /* one character below U+0800: the table; a broken sequence (invalid
         * UTF-8 in the text, e.g. E6 96 without its third byte) is looked
         * up as bytes */
        uint32_t cp;
        if ((size_t)tok_utf8_next(s, n, &cp) == n && cp < 0x800) return bpe->char_id[cp];
        return tok_map_get(&bpe->vocab, s, n);
    }
    if (plain) return tok_map_get(&bpe->vocab, s, n);
    tok_buf *tmp = &sc->tmp;
    tok_buf_clear(tmp);
    if (!first) tok_buf_append(tmp, bpe->prefix, strlen(bpe->prefix));
    tok_buf_append(tmp, s, n);
    if (last) tok_buf_append(tmp, bpe->suffix, strlen(bpe->suffix));
    return tok_map_get(&bpe->vocab, tmp->p, tmp->n);
}

static int has_byte_tokens(const tok_bpe *bpe, const char *s, size_t k) {
    for (size_t b = 0; b < k; b++)
        if (bpe->byte_ids[(unsigned char)s[b]] < 0) return 0;
    return 1;
}

/* Splits the word into initial symbols (Hugging Face's merge_word before
 * merge_all); returns their count. */
static size_t initial_symbols(const tok_bpe *bpe, tok_bpe_scratch *sc, const char *s, size_t n) {
    int32_t *w = sc->id;
    size_t m = 0;
    int unk_pending = 0; /* an unk symbol waiting to be emitted */
    for (size_t i = 0; i < n;) {
        size_t k = 1;
        while (i + k < n && ((unsigned char)s[i + k] & 0xC0) == 0x80) k++;
        int32_t id = piece_id(bpe, sc, s + i, k, i == 0, i + k == n);
        if (id >= 0) {
            if (unk_pending) w[m++] = bpe->unk_id, unk_pending = 0;
            w[m++] = id;
        } else if (bpe->byte_fallback && has_byte_tokens(bpe, s + i, k)) {
            /* like Hugging Face, a pending unk is not flushed before the bytes */
            for (size_t b = 0; b < k; b++) w[m++] = bpe->byte_ids[(unsigned char)s[i + b]];
        } else if (bpe->unk_id >= 0) {
            if (unk_pending && !bpe->fuse_unk) w[m++] = bpe->unk_id;
            unk_pending = 1;
        }
        /* no unk token: the character is dropped, as Hugging Face does */
        i += k;
    }
    if (unk_pending) w[m++] = bpe->unk_id;
    return m;
}

/* ---- per-call word cache: text repeats words, so remember their ids ---- */

#define WORD_CACHE_MAX_LEN   64
#define WORD_CACHE_MAX_SLOTS (1 << 18) /* the table stops growing here */

static tok_word_slot *cache_find(tok_bpe_scratch *sc, const char *s, size_t n, uint64_t h) {
    for (size_t i = h & sc->mask;; i = (i + 1) & sc->mask) {
        tok_word_slot *w = &sc->slots[i];
        if (w->key_len == 0) return w; /* empty: words are never empty */
        if (w->hash == h && w->key_len == n && !memcmp(sc->words.p + w->key_off, s, n)) return w;
    }
}

static int cache_grow(tok_bpe_scratch *sc) {
    size_t cap = sc->slots ? 2 * (sc->mask + 1) : 1024;
    tok_word_slot *old = sc->slots;
    size_t old_cap = old ? sc->mask + 1 : 0;
    sc->slots = calloc(cap, sizeof *sc->slots);
    if (!sc->slots) {
        sc->slots = old;
        return -1;
    }
    sc->mask = cap - 1;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key_len)
            *cache_find(sc, sc->words.p + old[i].key_off, old[i].key_len, old[i].hash) = old[i];
    free(old);
    return 0;
}

/* Remembers ids out[first..] as the ids of word s (best effort). */
static void cache_put(tok_bpe_scratch *sc, tok_word_slot *w, const char *s, size_t n, uint64_t h,
                      const tok_ids *out, size_t first) {
    size_t key_off = sc->words.n, ids_off = sc->word_ids.n;
    if (tok_buf_append(&sc->words, s, n)) return;
    for (size_t i = first; i < out->n; i++)
        if (tok_ids_push(&sc->word_ids, out->v[i])) return;
    *w = (tok_word_slot){h, (uint32_t)key_off, (uint32_t)n, (uint32_t)ids_off,
                         (uint32_t)(out->n - first)};
    sc->count++;
}

static int bpe_uncached(const tok_bpe *bpe, tok_bpe_scratch *sc, const char *s, size_t n,
                        tok_ids *out) {
    if (bpe->ignore_merges) {
        int32_t id = tok_map_get(&bpe->vocab, s, n);
        if (id >= 0) return tok_ids_push(out, id);
    }
    if (scratch_reserve(sc, n + 1)) return -1; /* symbols <= bytes */
    size_t m = initial_symbols(bpe, sc, s, n);
    if (m > 1) merge_all(bpe, sc, m);
    for (size_t i = 0; i < m; i++)
        if (sc->id[i] >= 0 && tok_ids_push(out, sc->id[i])) return -1;
    return 0;
}

int tok_bpe_word(const tok_bpe *bpe, tok_bpe_scratch *sc, const char *s, size_t n, tok_ids *out) {
    if (n == 0) return 0;
    if (n > WORD_CACHE_MAX_LEN) return bpe_uncached(bpe, sc, s, n, out);
    if ((sc->count + 1) * 2 > (sc->slots ? sc->mask + 1 : 0) &&
        (sc->slots ? sc->mask + 1 : 0) < WORD_CACHE_MAX_SLOTS)
        cache_grow(sc);
    int usable = sc->slots && (sc->count + 1) * 2 <= sc->mask + 1;
    if (!usable) return bpe_uncached(bpe, sc, s, n, out);
    uint64_t h = tok_hash(s, n);
    tok_word_slot *w = cache_find(sc, s, n, h);
    if (w->key_len) {
        for (uint32_t i = 0; i < w->n_ids; i++)
            if (tok_ids_push(out, sc->word_ids.v[w->ids_off + i])) return -1;
        return 0;
    }
    size_t first = out->n;
    if (bpe_uncached(bpe, sc, s, n, out)) return -1;
    cache_put(sc, w, s, n, h, out, first);
    return 0;
}

void tok_bpe_free(tok_bpe *bpe) {
    tok_map_free(&bpe->vocab);
    tok_map64_free(&bpe->merges);
    free(bpe->merge_info);
    free(bpe->packed);
    free(bpe->prefix);
    free(bpe->suffix);
    memset(bpe, 0, sizeof *bpe);
}
