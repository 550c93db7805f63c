/* Assembles the rules' DFAs into the immutable grammar (grammar.h): one
 * state numbering, byte classes, one action per (state, class) with
 * calls flattened into pushes, the bytes each state needs to complete, and
 * no move that leads where the output could never be completed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/gram_internal.h"

#define INF SP_GRAM_NEED_INF

typedef struct builder {
    const g_dfa *dfas;
    int n_rules;
    int32_t *base; /* rule -> first global state */
    int32_t *rule; /* global state -> rule */
    int32_t n;     /* global states */
    int32_t ncls;
    uint8_t cls[256];
    uint8_t rep[256]; /* a byte of each class */
    uint8_t *dead;    /* states skipped when choosing actions */
    int32_t *tab;     /* resolved actions (grammar.h encoding), -3: unknown, -4: in progress */
    sp_gram_act *act;
    int32_t n_act, act_cap;
    int32_t *pushes;
    int32_t n_push, push_cap;
    uint32_t *need;
    int err;
} builder;

/* Bytes that every DFA treats alike share a class: columns hashed row by
 * row (cache friendly), then checked; a hash collision (never seen) falls
 * back to one class per byte, which is always right. */
static void byte_classes(builder *b) {
    uint64_t h[256];
    for (int c = 0; c < 256; c++) h[c] = 1469598103934665603ull;
    for (int r = 0; r < b->n_rules; r++)
        for (int32_t s = 0; s < b->dfas[r].n; s++) {
            const int32_t *row = b->dfas[r].next + (size_t)s * 256;
            for (int c = 0; c < 256; c++) h[c] = (h[c] ^ (uint32_t)row[c]) * 1099511628211ull;
        }
    b->ncls = 0;
    for (int c = 0; c < 256; c++) {
        int k = 0;
        while (k < b->ncls && h[b->rep[k]] != h[c]) k++;
        if (k == b->ncls) b->rep[b->ncls++] = (uint8_t)c;
        b->cls[c] = (uint8_t)k;
    }
    int same = 1;
    for (int r = 0; r < b->n_rules && same; r++)
        for (int32_t s = 0; s < b->dfas[r].n && same; s++) {
            const int32_t *row = b->dfas[r].next + (size_t)s * 256;
            for (int c = 0; c < 256 && same; c++) same = row[c] == row[b->rep[b->cls[c]]];
        }
    if (!same) {
        b->ncls = 256;
        for (int c = 0; c < 256; c++) b->cls[c] = b->rep[c] = (uint8_t)c;
    }
}

static int32_t rule_of(const builder *b, int32_t s) {
    return b->rule[s];
}

static int32_t new_act(builder *b, int32_t target, const int32_t *push, int32_t n) {
    if (b->n_act == b->act_cap) {
        int32_t cap = b->act_cap ? b->act_cap * 2 : 64;
        sp_gram_act *a = realloc(b->act, (size_t)cap * sizeof *a);
        if (!a) return b->err = SP_GRAM_ENOMEM, -1;
        b->act = a;
        b->act_cap = cap;
    }
    if (b->n_push + n > b->push_cap) {
        int32_t cap = (b->n_push + n) * 2 + 64;
        int32_t *p = realloc(b->pushes, (size_t)cap * sizeof *p);
        if (!p) return b->err = SP_GRAM_ENOMEM, -1;
        b->pushes = p;
        b->push_cap = cap;
    }
    memcpy(b->pushes + b->n_push, push, (size_t)n * sizeof *push);
    b->act[b->n_act] = (sp_gram_act){target, b->n_push, n};
    b->n_push += n;
    return -(b->n_act++) - 2;
}

/* The action of (s, class c): the state's own byte move when it leads
 * somewhere live, else the first call whose rule can start with the byte.
 * A call found again while being resolved (left recursion) adds nothing. */
static int32_t resolve(builder *b, int32_t s, int c) {
    int32_t *slot = &b->tab[(size_t)s * b->ncls + c];
    if (*slot == -4) return -1;
    if (*slot != -3) return *slot;
    *slot = -4;
    int r = rule_of(b, s);
    const g_dfa *d = &b->dfas[r];
    int32_t ls = s - b->base[r], v = -1;
    int32_t t = d->next[(size_t)ls * 256 + b->rep[c]];
    if (t >= 0 && !b->dead[b->base[r] + t]) v = b->base[r] + t;
    for (int32_t k = d->c_off[ls]; v == -1 && k < d->c_off[ls + 1] && !b->err; k++) {
        int32_t ret = b->base[r] + d->c_to[k], callee = d->c_rule[k];
        if (b->dead[ret]) continue;
        int32_t sub = resolve(b, b->base[callee], c);
        if (sub == -1) continue;
        int32_t push[64];
        push[0] = ret;
        int32_t n = 1, target = sub;
        if (sub <= -2) {
            const sp_gram_act *a = &b->act[-sub - 2];
            if (a->n + 1 > 64) continue; /* absurd left nesting: skip */
            memcpy(push + 1, b->pushes + a->off, (size_t)a->n * sizeof *push);
            n += a->n;
            target = a->target;
        }
        v = new_act(b, target, push, n);
    }
    *slot = v;
    return v;
}

/* A binary min-heap of (need, state). */
typedef struct heap {
    uint64_t *v;
    size_t n, cap;
} heap;

static int heap_push(heap *h, uint32_t key, int32_t s) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 1024;
        uint64_t *v = realloc(h->v, cap * sizeof *v);
        if (!v) return -1;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    uint64_t x = (uint64_t)key << 32 | (uint32_t)s;
    while (i > 0 && h->v[(i - 1) / 2] > x) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = x;
    return 0;
}

static uint64_t heap_pop(heap *h) {
    uint64_t top = h->v[0], x = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->v[c + 1] < h->v[c]) c++;
        if (h->v[c] >= x) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = x;
    return top;
}

static uint32_t sat_add(uint32_t a, uint32_t b) {
    uint64_t s = (uint64_t)a + b;
    return s >= INF ? INF : (uint32_t)s;
}

/* need over the resolved actions: shortest paths backwards over plain
 * moves (one byte each), repeated while push actions improve a state (their
 * cost needs the return states' own need). */
static int compute_need(builder *b) {
    int32_t n = b->n, nc = b->ncls;
    int32_t *roff = calloc((size_t)n + 1, sizeof *roff);
    int32_t *radj = malloc((size_t)n * (size_t)nc * sizeof *radj + 1);
    heap h = {0};
    int rc = SP_GRAM_ENOMEM;
    if (!roff || !radj) goto done;
    for (size_t i = 0; i < (size_t)n * nc; i++)
        if (b->tab[i] >= 0) roff[b->tab[i] + 1]++;
    for (int32_t s = 0; s < n; s++) roff[s + 1] += roff[s];
    int32_t *fill = malloc((size_t)n * sizeof *fill);
    if (!fill) goto done;
    memcpy(fill, roff, (size_t)n * sizeof *fill);
    for (size_t i = 0; i < (size_t)n * nc; i++)
        if (b->tab[i] >= 0) radj[fill[b->tab[i]]++] = (int32_t)(i / nc);
    free(fill);
    for (int32_t s = 0; s < n; s++) {
        b->need[s] = b->dfas[rule_of(b, s)].acc[s - b->base[rule_of(b, s)]] ? 0 : INF;
        if (!b->need[s] && heap_push(&h, 0, s)) goto done;
    }
    for (int changed = 1; changed;) {
        while (h.n) {
            uint64_t top = heap_pop(&h);
            int32_t s = (int32_t)(uint32_t)top;
            if ((uint32_t)(top >> 32) != b->need[s]) continue;
            for (int32_t k = roff[s]; k < roff[s + 1]; k++) {
                int32_t p = radj[k];
                if (b->need[s] + 1 < b->need[p]) {
                    b->need[p] = b->need[s] + 1;
                    if (heap_push(&h, b->need[p], p)) goto done;
                }
            }
        }
        changed = 0;
        for (size_t i = 0; i < (size_t)n * nc; i++) {
            if (b->tab[i] > -2) continue;
            const sp_gram_act *a = &b->act[-b->tab[i] - 2];
            uint32_t c = sat_add(1, b->need[a->target]);
            for (int32_t k = 0; k < a->n; k++) c = sat_add(c, b->need[b->pushes[a->off + k]]);
            int32_t s = (int32_t)(i / nc);
            if (c < b->need[s]) {
                b->need[s] = c;
                changed = 1;
                if (heap_push(&h, c, s)) goto done;
            }
        }
    }
    rc = 0;
done:
    free(roff);
    free(radj);
    free(h.v);
    return rc;
}

/* Resolves every action with the current dead set and computes need. */
static int resolve_all(builder *b) {
    b->n_act = b->n_push = 0;
    for (size_t i = 0; i < (size_t)b->n * b->ncls; i++) b->tab[i] = -3;
    for (int32_t s = 0; s < b->n; s++)
        for (int c = 0; c < b->ncls; c++) resolve(b, s, c);
    if (b->err) return b->err;
    return compute_need(b);
}

/* Does a chosen move lead into a dead state (or push one)? Then choices
 * must be made again. Moves out of dead states do not matter. */
static int uses_dead(const builder *b) {
    for (size_t i = 0; i < (size_t)b->n * b->ncls; i++) {
        int32_t v = b->tab[i];
        if (v == -1 || b->dead[i / b->ncls]) continue;
        if (v >= 0) {
            if (b->dead[v]) return 1;
            continue;
        }
        const sp_gram_act *a = &b->act[-v - 2];
        if (b->dead[a->target]) return 1;
        for (int32_t k = 0; k < a->n; k++)
            if (b->dead[b->pushes[a->off + k]]) return 1;
    }
    return 0;
}

/* Drops moves into states that cannot complete: resolving again skips
 * them, which may reveal more such states; the dead set only grows. */
static int prune(builder *b) {
    for (int round = 0; round < 64; round++) {
        int rc = resolve_all(b);
        if (rc) return rc;
        int grew = 0;
        for (int32_t s = 0; s < b->n; s++)
            if (b->need[s] >= INF && !b->dead[s]) b->dead[s] = 1, grew = 1;
        if (!grew || !uses_dead(b)) return 0; /* the choices stand as they are */
    }
    return 0;
}

static void builder_free(builder *b) {
    free(b->base);
    free(b->rule);
    free(b->dead);
    free(b->tab);
    free(b->act);
    free(b->pushes);
    free(b->need);
}

static int make_grammar(builder *b, sp_grammar **out) {
    sp_grammar *g = calloc(1, sizeof *g);
    if (!g) return SP_GRAM_ENOMEM;
    atomic_init(&g->refs, 1);
    g->n_states = b->n;
    g->n_cls = b->ncls;
    g->n_rules = b->n_rules;
    g->start = 0;
    memcpy(g->cls, b->cls, 256);
    g->tab = b->tab;
    g->act = b->act;
    g->n_act = b->n_act;
    g->pushes = b->pushes;
    g->need = b->need;
    b->tab = NULL, b->act = NULL, b->pushes = NULL, b->need = NULL;
    g->acc = malloc((size_t)b->n);
    g->final = malloc((size_t)b->n);
    if (!g->acc || !g->final) {
        sp_grammar_release(g);
        return SP_GRAM_ENOMEM;
    }
    for (int32_t s = 0; s < b->n; s++) {
        int r = rule_of(b, s);
        g->acc[s] = b->dfas[r].acc[s - b->base[r]];
        int moves = 0;
        for (int c = 0; c < b->ncls && !moves; c++) moves = g->tab[(size_t)s * b->ncls + c] != -1;
        g->final[s] = g->acc[s] && !moves;
    }
    *out = g;
    return 0;
}

int g_build(const g_dfa *dfas, int n_rules, sp_grammar **out, char *msg, size_t cap) {
    builder b = {.dfas = dfas, .n_rules = n_rules};
    int rc = SP_GRAM_ENOMEM;
    b.base = malloc((size_t)n_rules * sizeof *b.base);
    if (!b.base) goto done;
    for (int r = 0; r < n_rules; r++) {
        b.base[r] = b.n;
        b.n += dfas[r].n;
    }
    rc = SP_GRAM_ETOO_LARGE;
    if (b.n > G_MAX_DFA_STATES) {
        snprintf(msg, cap, "the schema compiles to %d automaton states (at most %d)", b.n,
                 G_MAX_DFA_STATES);
        goto done;
    }
    rc = SP_GRAM_ENOMEM;
    if (!(b.rule = malloc((size_t)b.n * sizeof *b.rule + 1))) goto done;
    for (int r = 0; r < n_rules; r++)
        for (int32_t s = 0; s < dfas[r].n; s++) b.rule[b.base[r] + s] = r;
    byte_classes(&b);
    b.dead = calloc((size_t)b.n, 1);
    b.tab = malloc((size_t)b.n * b.ncls * sizeof *b.tab);
    b.need = malloc((size_t)b.n * sizeof *b.need);
    if (!b.dead || !b.tab || !b.need) goto done;
    if ((rc = prune(&b))) goto done;
    if (b.need[0] >= INF) {
        snprintf(msg, cap, "no JSON value satisfies the schema");
        rc = SP_GRAM_EUNSAT;
        goto done;
    }
    rc = make_grammar(&b, out);
done:
    builder_free(&b);
    return rc;
}

/* ---- the reference walk ---- */

sp_grammar *sp_grammar_retain(sp_grammar *g) {
    if (g) atomic_fetch_add(&g->refs, 1);
    return g;
}

void sp_grammar_release(sp_grammar *g) {
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1) return;
    free(g->tab);
    free(g->act);
    free(g->pushes);
    free(g->acc);
    free(g->final);
    free(g->need);
    free(g);
}

int sp_grammar_feed(const sp_grammar *g, int32_t *state, int32_t *stack, int *sp, int cap,
                    const char *s, size_t n) {
    int32_t q = *state;
    for (size_t i = 0; i < n; i++) {
        int c = g->cls[(unsigned char)s[i]];
        for (;;) {
            int32_t v = g->tab[(size_t)q * g->n_cls + c];
            if (v >= 0) {
                q = v;
                break;
            }
            if (v <= -2) {
                const sp_gram_act *a = &g->act[-v - 2];
                if (*sp + a->n > cap) return -1;
                for (int32_t k = 0; k < a->n; k++) stack[(*sp)++] = g->pushes[a->off + k];
                q = a->target;
                break;
            }
            if (!g->acc[q] || *sp == 0) return -1;
            q = stack[--*sp];
        }
    }
    *state = q;
    return 0;
}

int sp_grammar_complete(const sp_grammar *g, int32_t state, const int32_t *stack, int sp) {
    if (!g->acc[state]) return 0;
    for (int i = 0; i < sp; i++)
        if (!g->acc[stack[i]]) return 0;
    return 1;
}

uint32_t sp_grammar_need(const sp_grammar *g, int32_t state, const int32_t *stack, int sp) {
    uint32_t n = g->need[state];
    for (int i = 0; i < sp; i++) n = sat_add(n, g->need[stack[i]]);
    return n;
}
