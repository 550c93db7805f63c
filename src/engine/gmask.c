/* Grammar-constrained decoding on the engine thread (see gmask.h). */
#include "engine/gmask.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STACK   256        /* automaton stack depth (nesting of recursive rules) */
#define CACHE_BYTES (16 << 20) /* per request; the cache starts over past it */
#define INF         SP_GRAM_NEED_INF

/* ---- the token trie ---- */

struct sp_gvocab {
    int vocab;
    int32_t n;        /* nodes; node 0 is the root */
    uint8_t *byte;    /* the byte leading into the node */
    uint16_t *depth;  /* bytes from the root */
    int32_t *end;     /* first node after the node's subtree */
    int32_t *tok;     /* the token spelled by the path to the node, or -1 */
    int32_t *dup;     /* per token: the next token with the same text, -1 */
    int32_t *kid_off; /* children of node i: kid[kid_off[i] .. kid_off[i + 1]), by byte */
    int32_t *kid;
    int32_t *big;   /* nodes with many children: their row in table, else -1 */
    int32_t *table; /* per big node: child by byte, -1 */
    int max_depth;
    const sp_cons_vocab *texts;
};

static int cmp_text(const void *p, const void *q, void *ctx) {
    const sp_cons_vocab *v = ctx;
    size_t la, lb;
    const char *a = sp_cons_vocab_text(v, *(const int32_t *)p, &la, NULL);
    const char *b = sp_cons_vocab_text(v, *(const int32_t *)q, &lb, NULL);
    int c = memcmp(a, b, la < lb ? la : lb);
    if (c) return c;
    if (la != lb) return la < lb ? -1 : 1;
    return *(const int32_t *)p < *(const int32_t *)q ? -1 : 1;
}

void sp_gvocab_free(sp_gvocab *t) {
    if (!t) return;
    free(t->byte);
    free(t->depth);
    free(t->end);
    free(t->tok);
    free(t->dup);
    free(t->kid_off);
    free(t->kid);
    free(t->big);
    free(t->table);
    free(t);
}

int sp_gvocab_nodes(const sp_gvocab *t) {
    return t->n;
}

#define BIG_NODE 24 /* children from which a node gets a byte table */

/* Children lists (walks visit only the bytes a state can take), and byte
 * tables for the nodes with many children (the root, " ", "\n", ...). */
static int index_children(sp_gvocab *t) {
    t->kid_off = calloc((size_t)t->n + 1, sizeof *t->kid_off);
    t->kid = malloc((size_t)t->n * sizeof *t->kid);
    t->big = malloc((size_t)t->n * sizeof *t->big);
    if (!t->kid_off || !t->kid || !t->big) return -1;
    int32_t k = 0, n_big = 0;
    for (int32_t i = 0; i < t->n; i++) {
        t->kid_off[i] = k;
        for (int32_t c = i + 1; c < t->end[i]; c = t->end[c]) t->kid[k++] = c;
        t->big[i] = k - t->kid_off[i] >= BIG_NODE ? n_big++ : -1;
    }
    t->kid_off[t->n] = k;
    t->table = malloc((size_t)(n_big ? n_big : 1) * 256 * sizeof *t->table);
    if (!t->table) return -1;
    memset(t->table, 0xff, (size_t)(n_big ? n_big : 1) * 256 * sizeof *t->table);
    for (int32_t i = 0; i < t->n; i++)
        for (int32_t j = t->kid_off[i]; t->big[i] >= 0 && j < t->kid_off[i + 1]; j++)
            t->table[(size_t)t->big[i] * 256 + t->byte[t->kid[j]]] = t->kid[j];
    return 0;
}

/* Tokens sorted by text become a preorder trie: each token adds the nodes
 * past its common prefix with the one before. */
sp_gvocab *sp_gvocab_new(const sp_cons_vocab *v) {
    sp_gvocab *t = calloc(1, sizeof *t);
    int n = sp_cons_vocab_size(v);
    int32_t *ids = malloc((size_t)n * sizeof *ids), k = 0;
    size_t total = 1;
    if (!t || !ids) goto fail;
    t->vocab = n;
    t->texts = v;
    for (int32_t id = 0; id < n; id++) {
        size_t len;
        int special;
        sp_cons_vocab_text(v, id, &len, &special);
        if (!len || special || len > 65535) continue;
        ids[k++] = id;
        total += len;
    }
    qsort_r(ids, (size_t)k, sizeof *ids, cmp_text, (void *)v);
    t->byte = malloc(total);
    t->depth = malloc(total * sizeof *t->depth);
    t->end = malloc(total * sizeof *t->end);
    t->tok = malloc(total * sizeof *t->tok);
    t->dup = malloc((size_t)n * sizeof *t->dup);
    int32_t *path = malloc((65536 + 1) * sizeof *path);
    if (!t->byte || !t->depth || !t->end || !t->tok || !t->dup || !path) {
        free(path);
        goto fail;
    }
    memset(t->dup, 0xff, (size_t)n * sizeof *t->dup);
    t->n = 1;
    t->byte[0] = 0;
    t->depth[0] = 0;
    t->tok[0] = -1;
    path[0] = 0;
    size_t plen = 0; /* nodes on the path below the root */
    const char *prev = "";
    size_t prev_len = 0;
    for (int32_t i = 0; i < k; i++) {
        size_t len;
        const char *s = sp_cons_vocab_text(v, ids[i], &len, NULL);
        size_t lcp = 0;
        while (lcp < len && lcp < prev_len && s[lcp] == prev[lcp]) lcp++;
        while (plen > lcp) t->end[path[plen--]] = t->n; /* close subtrees */
        if (lcp == len && len == prev_len) {            /* the same text again */
            int32_t first = t->tok[path[plen]];
            while (t->dup[first] >= 0) first = t->dup[first];
            t->dup[first] = ids[i];
            continue;
        }
        for (size_t d = lcp; d < len; d++) {
            int32_t x = t->n++;
            t->byte[x] = (uint8_t)s[d];
            t->depth[x] = (uint16_t)(d + 1);
            t->tok[x] = -1;
            path[++plen] = x;
        }
        t->tok[path[plen]] = ids[i];
        if ((int)len > t->max_depth) t->max_depth = (int)len;
        prev = s;
        prev_len = len;
    }
    while (plen > 0) t->end[path[plen--]] = t->n;
    t->end[0] = t->n;
    free(path);
    free(ids);
    ids = NULL;
    if (index_children(t)) goto fail;
    return t;
fail:
    free(ids);
    sp_gvocab_free(t);
    return NULL;
}

/* ---- walking the automaton ---- */

/* Frames pushed since the walk started (a persistent list in an arena,
 * so each trie depth keeps its own stack by one index). */
typedef struct frame {
    int32_t ret, next;
} frame;

typedef struct wst {
    int32_t q;     /* state */
    int32_t base;  /* real stack entries still below */
    int32_t lhead; /* local frames, -1: none */
    uint32_t lneed;
    int32_t ldepth;
} wst;

typedef struct unc {
    int32_t node, q;
} unc;

/* One cached mask: tokens that stay within the rule on top (cache walk). */
typedef struct centry {
    int32_t key;
    uint64_t *bits;
    uint32_t maxneed; /* over those tokens, need after them (top rule only) */
    int32_t maxdepth; /* frames they push at most */
    unc *unc;         /* subtrees that leave the rule: walked each step */
    int32_t n_unc;
    struct centry *next;
} centry;

enum { PH_OPEN = 0, PH_FREE, PH_GRAM, PH_DONE };

struct sp_gmatch {
    sp_grammar *g;
    const sp_gvocab *v;
    int32_t *eos;
    int n_eos;
    int words;
    /* state */
    int phase, k; /* k: marker bytes matched */
    int32_t q;
    int32_t stack[MAX_STACK];
    uint32_t cum[MAX_STACK + 1]; /* cum[i]: need of stack[0..i) */
    int sp;
    /* reasoning */
    char open[32], close[32];
    int open_len, close_len, keep_special;
    /* scratch */
    frame *fr;
    int32_t n_fr, fr_cap;
    unc *unc;
    int32_t n_unc, unc_cap;
    uint64_t *tmp;
    int cls_off[257]; /* bytes of class c: cls_bytes[cls_off[c] .. cls_off[c + 1]) */
    uint8_t cls_bytes[256];
    /* cache: buckets by key */
    centry *bucket[1024];
    size_t cache_bytes;
    long misses, hits;
};

static int32_t push_frame(sp_gmatch *m, int32_t ret, int32_t next) {
    if (m->n_fr == m->fr_cap) {
        int32_t cap = m->fr_cap ? m->fr_cap * 2 : 256;
        frame *f = realloc(m->fr, (size_t)cap * sizeof *f);
        if (!f) return -2;
        m->fr = f;
        m->fr_cap = cap;
    }
    m->fr[m->n_fr] = (frame){ret, next};
    return m->n_fr++;
}

/* One byte: 1 moved, 0 refused, 2 the byte belongs below the walk's
 * bottom (cache walks with a parent; w->q is then the state it pops). */
static int wstep(sp_gmatch *m, wst *w, unsigned char b, int parent) {
    const sp_grammar *g = m->g;
    int c = g->cls[b];
    for (;;) {
        int32_t v = g->tab[(size_t)w->q * g->n_cls + c];
        if (v >= 0) {
            w->q = v;
            return 1;
        }
        if (v <= -2) {
            const sp_gram_act *a = &g->act[-v - 2];
            if (w->base + w->ldepth + a->n > MAX_STACK) return 0;
            for (int32_t k = 0; k < a->n; k++) {
                int32_t r = g->pushes[a->off + k];
                int32_t f = push_frame(m, r, w->lhead);
                if (f < 0) return 0;
                w->lhead = f;
                w->lneed += g->need[r];
                w->ldepth++;
            }
            w->q = a->target;
            return 1;
        }
        if (!g->acc[w->q]) return 0;
        if (w->lhead >= 0) {
            const frame *f = &m->fr[w->lhead];
            w->q = f->ret;
            w->lneed -= g->need[f->ret];
            w->lhead = f->next;
            w->ldepth--;
        } else if (w->base > 0) {
            w->q = m->stack[--w->base];
        } else {
            return parent ? 2 : 0;
        }
    }
}

static uint32_t wneed(const sp_gmatch *m, const wst *w) {
    uint64_t n = (uint64_t)m->g->need[w->q] + w->lneed + m->cum[w->base];
    return n >= INF ? INF : (uint32_t)n;
}

static void set_tok(sp_gmatch *m, uint64_t *bits, int32_t id) {
    for (; id >= 0; id = m->v->dup[id]) bits[id >> 6] |= 1ull << (id & 63);
}

static int add_unc(sp_gmatch *m, int32_t node, int32_t q) {
    if (m->n_unc == m->unc_cap) {
        int32_t cap = m->unc_cap ? m->unc_cap * 2 : 64;
        unc *u = realloc(m->unc, (size_t)cap * sizeof *u);
        if (!u) return -1;
        m->unc = u;
        m->unc_cap = cap;
    }
    m->unc[m->n_unc++] = (unc){node, q};
    return 0;
}

/* What a walk does with what it finds. Full walks (cache NULL) use the
 * real stack and set the bits of tokens whose need after them is at most
 * limit; cache walks stop at the rule's bottom and record in *cache. */
typedef struct wctx {
    uint32_t limit;
    uint64_t *bits;
    centry *cache;
    int parent;
} wctx;

static void visit(sp_gmatch *m, const wctx *x, int32_t i, wst w);

/* The children of node i from state w: by the byte table where the state
 * cannot pop (its own moves then say which bytes it takes), else all. */
static void children(sp_gmatch *m, const wctx *x, int32_t i, const wst *w) {
    const sp_gvocab *v = m->v;
    const sp_grammar *g = m->g;
    if (v->big[i] >= 0 && !g->acc[w->q]) {
        const int32_t *row = g->tab + (size_t)w->q * g->n_cls;
        const int32_t *tb = v->table + (size_t)v->big[i] * 256;
        for (int c = 0; c < g->n_cls; c++) {
            if (row[c] == -1) continue;
            for (int k = m->cls_off[c]; k < m->cls_off[c + 1]; k++)
                if (tb[m->cls_bytes[k]] >= 0) visit(m, x, tb[m->cls_bytes[k]], *w);
        }
        return;
    }
    for (int32_t j = v->kid_off[i]; j < v->kid_off[i + 1]; j++) visit(m, x, v->kid[j], *w);
}

static void visit(sp_gmatch *m, const wctx *x, int32_t i, wst w) {
    const sp_gvocab *v = m->v;
    int r = wstep(m, &w, v->byte[i], x->parent);
    if (r != 1) {
        if (r == 2) add_unc(m, i, w.q);
        return;
    }
    /* the deepest any token gets, midway included (full walks refuse a
     * push past MAX_STACK wherever it happens) */
    if (x->cache && w.ldepth > x->cache->maxdepth) x->cache->maxdepth = w.ldepth;
    int32_t id = v->tok[i];
    if (id >= 0) {
        uint32_t n = wneed(m, &w);
        if (x->cache) {
            if (n > x->cache->maxneed) x->cache->maxneed = n;
            set_tok(m, x->bits, id);
        } else if (n <= x->limit) {
            set_tok(m, x->bits, id);
        }
    }
    if (v->kid_off[i + 1] > v->kid_off[i]) children(m, x, i, &w);
}

/* Walks the subtree of node i (i == 0: every token) from state s. */
static void walk(sp_gmatch *m, int32_t i, wst s, uint32_t limit, uint64_t *bits, centry *cache,
                 int parent) {
    wctx x = {limit, bits, cache, parent};
    if (i == 0)
        children(m, &x, 0, &s);
    else
        visit(m, &x, i, s);
}

static void cache_clear(sp_gmatch *m) {
    for (int b = 0; b < 1024; b++) {
        for (centry *e = m->bucket[b], *n; e; e = n) {
            n = e->next;
            free(e->bits);
            free(e->unc);
            free(e);
        }
        m->bucket[b] = NULL;
    }
    m->cache_bytes = 0;
}

/* The cached walk of state q (parent: a real stack lies below). */
static centry *cache_get(sp_gmatch *m, int32_t q, int parent) {
    int32_t key = q * 2 + parent;
    centry **head = &m->bucket[(uint32_t)key * 2654435761u >> 22];
    for (centry *e = *head; e; e = e->next)
        if (e->key == key) return m->hits++, e;
    m->misses++;
    size_t bytes = (size_t)m->words * 8;
    if (m->cache_bytes + bytes > CACHE_BYTES) {
        cache_clear(m);
        head = &m->bucket[(uint32_t)key * 2654435761u >> 22];
    }
    centry *e = calloc(1, sizeof *e);
    if (!e || !(e->bits = calloc((size_t)m->words, 8))) {
        free(e);
        return NULL;
    }
    e->key = key;
    m->n_fr = 0;
    m->n_unc = 0;
    wst s = {q, 0, -1, 0, 0};
    walk(m, 0, s, INF, e->bits, e, parent);
    if (m->n_unc && !(e->unc = malloc((size_t)m->n_unc * sizeof *e->unc))) {
        free(e->bits);
        free(e);
        return NULL;
    }
    if (m->n_unc) memcpy(e->unc, m->unc, (size_t)m->n_unc * sizeof *e->unc);
    e->n_unc = m->n_unc;
    e->next = *head;
    *head = e;
    m->cache_bytes += bytes + (size_t)e->n_unc * sizeof *e->unc + sizeof *e;
    return e;
}

/* ---- reasoning phases and whole tokens ---- */

/* The marker bytes matched after byte b, k matched before (longest suffix
 * of what was read that is a prefix of the marker). */
static int marker_next(const char *mk, int len, int k, unsigned char b) {
    for (;;) {
        if (k < len && (unsigned char)mk[k] == b) return k + 1;
        if (!k) return 0;
        int j = k - 1; /* shorter borders: brute force, markers are short */
        while (j > 0 && memcmp(mk, mk + k - j, (size_t)j)) j--;
        k = j;
    }
}

typedef struct tstate {
    int phase, k;
    wst w;
} tstate;

/* Runs a token's text from the current state (frames into the arena). */
static int sim(sp_gmatch *m, const char *s, size_t n, tstate *t) {
    t->phase = m->phase;
    t->k = m->k;
    t->w = (wst){m->q, m->sp, -1, 0, 0};
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        if (t->phase == PH_OPEN) {
            if (t->k < m->open_len && (unsigned char)m->open[t->k] == b) {
                if (++t->k == m->open_len) t->phase = PH_FREE, t->k = 0;
                continue;
            }
            if (t->k) return -1;
            t->phase = PH_GRAM;
        }
        if (t->phase == PH_FREE) {
            t->k = marker_next(m->close, m->close_len, t->k, b);
            if (t->k == m->close_len) t->phase = PH_GRAM, t->k = 0;
            continue;
        }
        if (t->phase != PH_GRAM || wstep(m, &t->w, b, 0) != 1) return -1;
    }
    return 0;
}

static uint32_t tneed(const sp_gmatch *m, const tstate *t) {
    uint32_t start = m->g->need[m->g->start];
    switch (t->phase) {
    case PH_OPEN:
        return t->k ? (uint32_t)(m->open_len - t->k + m->close_len) + start : start;
    case PH_FREE:
        return (uint32_t)(m->close_len - t->k) + start;
    case PH_GRAM:
        return wneed(m, &t->w);
    default:
        return 0;
    }
}

static int is_eos(const sp_gmatch *m, int32_t id) {
    for (int i = 0; i < m->n_eos; i++)
        if (m->eos[i] == id) return 1;
    return 0;
}

static int complete(const sp_gmatch *m) {
    return m->phase == PH_GRAM && sp_grammar_complete(m->g, m->q, m->stack, m->sp);
}

static uint32_t need_now(const sp_gmatch *m) {
    tstate t = {m->phase, m->k, {m->q, m->sp, -1, 0, 0}};
    return tneed(m, &t);
}

/* limit: the need a token may leave (INF: any). */
static int allows(sp_gmatch *m, int32_t id, uint32_t limit) {
    if (m->phase == PH_DONE) return 0;
    if (is_eos(m, id)) return complete(m);
    if (id < 0 || id >= m->v->vocab) return 0;
    size_t len;
    int special;
    const char *s = sp_cons_vocab_text(m->v->texts, id, &len, &special);
    if (!len || (special && (m->phase == PH_GRAM || !m->keep_special))) return 0;
    m->n_fr = 0;
    tstate t;
    return !sim(m, s, len, &t) && tneed(m, &t) <= limit;
}

static uint32_t limit_for(const sp_gmatch *m, int budget) {
    uint32_t need0 = need_now(m);
    /* keep the output completable in what is left, while it still is */
    return budget >= 1 && need0 <= (uint32_t)budget ? (uint32_t)(budget - 1) : INF;
}

int sp_gmatch_allows(sp_gmatch *m, int32_t id, int budget) {
    return allows(m, id, limit_for(m, budget));
}

static int popcount_bits(const uint64_t *bits, int words) {
    int n = 0;
    for (int i = 0; i < words; i++) n += __builtin_popcountll(bits[i]);
    return n;
}

/* The grammar phase: the cached mask of the top state plus this step's
 * walks of the subtrees that leave it; a full walk when the budget or the
 * stack depth is too tight for the cached answer. */
static void fill_gram(sp_gmatch *m, uint64_t *bits, uint32_t limit) {
    wst s = {m->q, m->sp, -1, 0, 0};
    centry *e = cache_get(m, m->q, m->sp > 0);
    int fits = e && (limit >= INF || (uint64_t)e->maxneed + m->cum[m->sp] <= limit) &&
               m->sp + e->maxdepth <= MAX_STACK;
    if (!fits) {
        memset(bits, 0, (size_t)m->words * 8);
        m->n_fr = 0;
        walk(m, 0, s, limit, bits, NULL, 0);
        return;
    }
    memcpy(bits, e->bits, (size_t)m->words * 8);
    for (int32_t i = 0; i < e->n_unc; i++) {
        m->n_fr = 0;
        wst u = {e->unc[i].q, m->sp, -1, 0, 0};
        walk(m, e->unc[i].node, u, limit, bits, NULL, 0);
    }
}

int sp_gmatch_fill(sp_gmatch *m, uint64_t *bits, int budget) {
    uint32_t limit = limit_for(m, budget);
    if (m->phase == PH_GRAM) {
        fill_gram(m, bits, limit);
    } else {
        memset(bits, 0, (size_t)m->words * 8);
        if (m->phase != PH_DONE)
            for (int32_t id = 0; id < m->v->vocab; id++)
                if (!is_eos(m, id) && allows(m, id, limit)) bits[id >> 6] |= 1ull << (id & 63);
    }
    for (int i = 0; i < m->n_eos; i++) {
        int32_t id = m->eos[i];
        if (id < 0 || id >= m->v->vocab) continue;
        if (complete(m))
            bits[id >> 6] |= 1ull << (id & 63);
        else
            bits[id >> 6] &= ~(1ull << (id & 63));
    }
    return popcount_bits(bits, m->words);
}

/* keep[x][j]: all ones when bit j of byte x is set (a branch-free select
 * over 8 logits per mask byte, which compilers vectorize). */
static uint32_t keep_tab[256][8];
static pthread_once_t keep_once = PTHREAD_ONCE_INIT;

static void keep_init(void) {
    for (int x = 0; x < 256; x++)
        for (int j = 0; j < 8; j++) keep_tab[x][j] = (x >> j & 1) ? ~0u : 0u;
}

int sp_gmatch_mask(sp_gmatch *m, float *logits, int vocab, int budget) {
    pthread_once(&keep_once, keep_init);
    int n = sp_gmatch_fill(m, m->tmp, budget);
    const uint32_t ninf = 0xff800000u; /* -inf */
    for (int w = 0; w * 64 < vocab; w++) {
        uint64_t b = w < m->words ? m->tmp[w] : 0;
        float *l = logits + w * 64;
        int k = vocab - w * 64 < 64 ? vocab - w * 64 : 64;
        if (b == ~0ull) continue;
        if (k < 64) {
            for (int i = 0; i < k; i++)
                if (!(b >> i & 1)) l[i] = -INFINITY;
            continue;
        }
        for (int by = 0; by < 8; by++) {
            const uint32_t *kp = keep_tab[(b >> (8 * by)) & 0xff];
            uint32_t x[8];
            memcpy(x, l + 8 * by, sizeof x);
            for (int j = 0; j < 8; j++) x[j] = (x[j] & kp[j]) | (ninf & ~kp[j]);
            memcpy(l + 8 * by, x, sizeof x);
        }
    }
    return n;
}

void sp_gmatch_accept(sp_gmatch *m, int32_t id) {
    size_t len = 0;
    int special = 0;
    const char *s =
        id >= 0 && id < m->v->vocab ? sp_cons_vocab_text(m->v->texts, id, &len, &special) : NULL;
    tstate t;
    m->n_fr = 0;
    if (!s || is_eos(m, id) || (special && m->phase == PH_GRAM) || sim(m, s, len, &t)) {
        m->phase = PH_DONE; /* an end, or a token forced past the grammar */
        return;
    }
    /* the new stack: what stayed below, then the frames pushed (bottom up) */
    m->sp = t.w.base;
    int32_t order[MAX_STACK], n = 0;
    for (int32_t f = t.w.lhead; f >= 0 && n < MAX_STACK; f = m->fr[f].next) order[n++] = f;
    while (n-- > 0 && m->sp < MAX_STACK) {
        m->stack[m->sp] = m->fr[order[n]].ret;
        m->cum[m->sp + 1] = m->cum[m->sp] + m->g->need[m->stack[m->sp]];
        if (m->cum[m->sp + 1] > INF) m->cum[m->sp + 1] = INF;
        m->sp++;
    }
    m->q = t.w.q;
    m->phase = t.phase;
    m->k = t.k;
}

int sp_gmatch_finished(const sp_gmatch *m) {
    return m->phase == PH_DONE || (m->phase == PH_GRAM && m->sp == 0 && m->g->final[m->q]);
}

void sp_gmatch_stats(const sp_gmatch *m, long *misses, long *hits) {
    *misses = m->misses;
    *hits = m->hits;
}

void sp_gmatch_free(sp_gmatch *m) {
    if (!m) return;
    cache_clear(m);
    sp_grammar_release(m->g);
    free(m->eos);
    free(m->fr);
    free(m->unc);
    free(m->tmp);
    free(m);
}

sp_gmatch *sp_gmatch_new(sp_grammar *g, const sp_gvocab *voc, const int32_t *eos, int n_eos,
                         const sp_gmatch_opts *o) {
    sp_gmatch *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->g = sp_grammar_retain(g);
    m->v = voc;
    m->words = (voc->vocab + 63) / 64;
    m->eos = malloc((size_t)(n_eos > 0 ? n_eos : 1) * sizeof *m->eos);
    m->tmp = malloc((size_t)m->words * 8);
    if (!m->eos || !m->tmp) {
        sp_gmatch_free(m);
        return NULL;
    }
    if (n_eos > 0) memcpy(m->eos, eos, (size_t)n_eos * sizeof *eos);
    for (int b = 0; b < 256; b++) m->cls_off[g->cls[b] + 1]++;
    for (int c = 0; c < g->n_cls; c++) m->cls_off[c + 1] += m->cls_off[c];
    int fill[257];
    memcpy(fill, m->cls_off, sizeof fill);
    for (int b = 0; b < 256; b++) m->cls_bytes[fill[g->cls[b]]++] = (uint8_t)b;
    m->n_eos = n_eos;
    m->q = g->start;
    m->phase = PH_GRAM;
    if (o && o->think_close && strlen(o->think_close) < sizeof m->close) {
        strcpy(m->close, o->think_close);
        m->close_len = (int)strlen(m->close);
        if (o->in_think)
            m->phase = PH_FREE;
        else if (o->think_open && *o->think_open && strlen(o->think_open) < sizeof m->open) {
            strcpy(m->open, o->think_open);
            m->open_len = (int)strlen(m->open);
            m->phase = PH_OPEN;
        }
    }
    m->keep_special = o ? o->keep_special : 0;
    return m;
}
