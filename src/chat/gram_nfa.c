/* Thompson NFA fragments over bytes, subset construction, and products of
 * call-free DFAs (see gram_internal.h). */
#include <stdlib.h>
#include <string.h>

#include "chat/gram_internal.h"

/* ---- the NFA ---- */

int32_t g_state(g_nfa *a) {
    if (a->err) return 0;
    if (a->n >= G_MAX_NFA_STATES) {
        a->err = SP_GRAM_ETOO_LARGE;
        return 0;
    }
    if (a->n == a->cap) {
        int32_t cap = a->cap ? a->cap * 2 : 1024;
        int32_t *h = realloc(a->head, (size_t)cap * sizeof *h);
        if (h) a->head = h;
        int32_t *t = realloc(a->tail, (size_t)cap * sizeof *t);
        if (t) a->tail = t;
        if (!h || !t) {
            a->err = SP_GRAM_ENOMEM;
            return 0;
        }
        a->cap = cap;
    }
    a->head[a->n] = a->tail[a->n] = -1;
    return a->n++;
}

static void add_edge(g_nfa *a, int32_t from, g_edge e) {
    if (a->err) return;
    if (a->ne == a->ecap) {
        size_t cap = a->ecap ? a->ecap * 2 : 4096;
        g_edge *n = realloc(a->e, cap * sizeof *n);
        if (!n) {
            a->err = SP_GRAM_ENOMEM;
            return;
        }
        a->e = n;
        a->ecap = cap;
    }
    int32_t id = (int32_t)a->ne++;
    e.next = -1;
    a->e[id] = e;
    if (a->tail[from] >= 0)
        a->e[a->tail[from]].next = id;
    else
        a->head[from] = id;
    a->tail[from] = id;
}

void g_byte(g_nfa *a, int32_t from, int32_t to, unsigned lo, unsigned hi) {
    add_edge(a, from, (g_edge){.to = to, .lo = (uint8_t)lo, .hi = (uint8_t)hi, .kind = G_BYTE});
}

void g_eps(g_nfa *a, int32_t from, int32_t to) {
    add_edge(a, from, (g_edge){.to = to, .kind = G_EPS});
}

void g_call(g_nfa *a, int32_t from, int32_t to, int32_t rule) {
    add_edge(a, from, (g_edge){.to = to, .rule = rule, .kind = G_CALL});
}

void g_nfa_free(g_nfa *a) {
    free(a->head);
    free(a->tail);
    free(a->e);
    memset(a, 0, sizeof *a);
}

g_frag g_empty(g_nfa *a) {
    g_frag f = {g_state(a), g_state(a)};
    g_eps(a, f.s, f.e);
    return f;
}

g_frag g_never(g_nfa *a) {
    return (g_frag){g_state(a), g_state(a)};
}

g_frag g_lit(g_nfa *a, const char *s, size_t n) {
    g_frag f;
    f.s = f.e = g_state(a);
    for (size_t i = 0; i < n; i++) {
        int32_t t = g_state(a);
        g_byte(a, f.e, t, (unsigned char)s[i], (unsigned char)s[i]);
        f.e = t;
    }
    return f;
}

g_frag g_range(g_nfa *a, unsigned lo, unsigned hi) {
    g_frag f = {g_state(a), g_state(a)};
    g_byte(a, f.s, f.e, lo, hi);
    return f;
}

g_frag g_cat(g_nfa *a, g_frag x, g_frag y) {
    g_eps(a, x.e, y.s);
    return (g_frag){x.s, y.e};
}

g_frag g_alt(g_nfa *a, g_frag x, g_frag y) {
    g_frag f = {g_state(a), g_state(a)};
    g_eps(a, f.s, x.s);
    g_eps(a, f.s, y.s);
    g_eps(a, x.e, f.e);
    g_eps(a, y.e, f.e);
    return f;
}

g_frag g_opt(g_nfa *a, g_frag x) {
    g_frag f = {g_state(a), g_state(a)};
    g_eps(a, f.s, x.s);
    g_eps(a, f.s, f.e);
    g_eps(a, x.e, f.e);
    return f;
}

g_frag g_star_of(g_nfa *a, g_frag x) {
    g_frag f = {g_state(a), g_state(a)};
    g_eps(a, f.s, x.s);
    g_eps(a, f.s, f.e);
    g_eps(a, x.e, f.s);
    return f;
}

g_frag g_ws(g_nfa *a) {
    /* a chain: every state may end, so the DFA counts the bytes left */
    g_frag f = {g_state(a), g_state(a)};
    int32_t cur = f.s;
    for (int i = 0; i < G_WS_MAX; i++) {
        int32_t t = g_state(a);
        g_eps(a, cur, f.e);
        g_byte(a, cur, t, ' ', ' ');
        g_byte(a, cur, t, '\t', '\n');
        g_byte(a, cur, t, '\r', '\r');
        cur = t;
    }
    g_eps(a, cur, f.e);
    return f;
}

/* Copies in a chain; every copy from min on may exit straight to one end
 * state (nested optionals would chain their exits, and every closure
 * would hold all of them). */
g_frag g_repeat(g_nfa *a, g_frag (*make)(g_nfa *, void *), void *ctx, long long min,
                long long max) {
    if (max >= 0 && max < min) return g_never(a);
    g_frag f = {g_state(a), g_state(a)};
    int32_t cur = f.s;
    for (long long i = 0; (max < 0 ? i < min : i < max) && !a->err; i++) {
        if (i >= min) g_eps(a, cur, f.e);
        g_frag x = make(a, ctx);
        g_eps(a, cur, x.s);
        cur = x.e;
    }
    if (max < 0) {
        g_frag x = make(a, ctx);
        g_eps(a, cur, x.s);
        g_eps(a, x.e, cur);
    }
    g_eps(a, cur, f.e);
    return f;
}

/* ---- DFAs ---- */

void g_dfa_free(g_dfa *d) {
    free(d->next);
    free(d->acc);
    free(d->c_off);
    free(d->c_rule);
    free(d->c_to);
    memset(d, 0, sizeof *d);
}

static int dfa_add(g_dfa *d) {
    if (d->n >= G_MAX_DFA_STATES) return SP_GRAM_ETOO_LARGE;
    if (d->n == d->cap) {
        int32_t cap = d->cap ? d->cap * 2 : 256;
        int32_t *nx = realloc(d->next, (size_t)cap * 256 * sizeof *nx);
        if (nx) d->next = nx;
        uint8_t *ac = realloc(d->acc, (size_t)cap);
        if (ac) d->acc = ac;
        int32_t *co = realloc(d->c_off, ((size_t)cap + 1) * sizeof *co);
        if (co) d->c_off = co;
        if (!nx || !ac || !co) return SP_GRAM_ENOMEM;
        d->cap = cap;
    }
    memset(d->next + (size_t)d->n * 256, 0xff, 256 * sizeof *d->next);
    d->acc[d->n] = 0;
    d->n++;
    return 0;
}

static int dfa_add_call(g_dfa *d, int32_t rule, int32_t to) {
    if (d->nc == d->ccap) {
        int32_t cap = d->ccap ? d->ccap * 2 : 64;
        int32_t *r = realloc(d->c_rule, (size_t)cap * sizeof *r);
        if (r) d->c_rule = r;
        int32_t *t = realloc(d->c_to, (size_t)cap * sizeof *t);
        if (t) d->c_to = t;
        if (!r || !t) return SP_GRAM_ENOMEM;
        d->ccap = cap;
    }
    d->c_rule[d->nc] = rule;
    d->c_to[d->nc++] = to;
    return 0;
}

/* Sets of NFA states, interned: sorted arrays in one pool, found by hash. */
typedef struct set_index {
    int32_t *pool;
    size_t used, cap;
    size_t *off; /* per DFA state */
    int32_t *len;
    int32_t *slot; /* hash slots: DFA state or -1 */
    size_t n_slots, n_sets, sets_cap;
} set_index;

static uint64_t set_hash(const int32_t *s, int32_t n) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)n;
    for (int32_t i = 0; i < n; i++) h = (h ^ (uint32_t)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static int set_grow(set_index *x) {
    size_t ns = x->n_slots ? x->n_slots * 2 : 1024;
    int32_t *slot = malloc(ns * sizeof *slot);
    if (!slot) return -1;
    memset(slot, 0xff, ns * sizeof *slot);
    for (size_t k = 0; k < x->n_sets; k++) {
        size_t i = set_hash(x->pool + x->off[k], x->len[k]) & (ns - 1);
        while (slot[i] >= 0) i = (i + 1) & (ns - 1);
        slot[i] = (int32_t)k;
    }
    free(x->slot);
    x->slot = slot;
    x->n_slots = ns;
    return 0;
}

/* The id of set s (a new id == n_sets when it was not known; -2: OOM). */
static int32_t set_intern(set_index *x, const int32_t *s, int32_t n) {
    if (!x->pool) { /* allocated up front: no arithmetic on a NULL pool */
        x->cap = 1024;
        if (!(x->pool = malloc(x->cap * sizeof *x->pool))) return -2;
    }
    if ((x->n_sets + 1) * 2 > x->n_slots && set_grow(x)) return -2;
    size_t i = set_hash(s, n) & (x->n_slots - 1);
    for (; x->slot[i] >= 0; i = (i + 1) & (x->n_slots - 1)) {
        int32_t k = x->slot[i];
        if (x->len[k] == n && !memcmp(x->pool + x->off[k], s, (size_t)n * sizeof *s)) return k;
    }
    if (x->used + (size_t)n > x->cap) {
        size_t cap = (x->used + (size_t)n) * 2 + 1024;
        int32_t *p = realloc(x->pool, cap * sizeof *p);
        if (!p) return -2;
        x->pool = p;
        x->cap = cap;
    }
    if (x->n_sets == x->sets_cap) {
        size_t cap = x->sets_cap ? x->sets_cap * 2 : 256;
        size_t *o = realloc(x->off, cap * sizeof *o);
        if (o) x->off = o;
        int32_t *l = realloc(x->len, cap * sizeof *l);
        if (l) x->len = l;
        if (!o || !l) return -2;
        x->sets_cap = cap;
    }
    if (n) memcpy(x->pool + x->used, s, (size_t)n * sizeof *s);
    x->off[x->n_sets] = x->used;
    x->len[x->n_sets] = n;
    x->used += (size_t)n;
    x->slot[i] = (int32_t)x->n_sets;
    return (int32_t)x->n_sets++;
}

static void set_free(set_index *x) {
    free(x->pool);
    free(x->off);
    free(x->len);
    free(x->slot);
}

static int cmp_i32(const void *p, const void *q) {
    int32_t a = *(const int32_t *)p, b = *(const int32_t *)q;
    return (a > b) - (a < b);
}

/* Scratch for one determinization. */
typedef struct det {
    g_nfa *a;
    uint32_t *mark, stamp; /* per NFA state: last closure that saw it */
    int32_t *buf, *stk;    /* closure result and DFS stack */
    int32_t n_buf;
    g_edge *moves; /* byte edges out of the current set */
    size_t n_moves, moves_cap;
    int32_t *pts;  /* interval boundaries */
    uint8_t *keep; /* per NFA state: has byte or call edges (what a set is) */
    int32_t accept;
} det;

/* Epsilon closure of seeds[0..n) into d->buf (sorted, unique). */
static void closure(det *d, const int32_t *seeds, int32_t n) {
    d->stamp++;
    d->n_buf = 0;
    int32_t top = 0;
    for (int32_t i = 0; i < n; i++)
        if (d->mark[seeds[i]] != d->stamp) {
            d->mark[seeds[i]] = d->stamp;
            d->stk[top++] = seeds[i];
        }
    while (top > 0) {
        int32_t s = d->stk[--top];
        d->buf[d->n_buf++] = s;
        for (int32_t e = d->a->head[s]; e >= 0; e = d->a->e[e].next) {
            const g_edge *ed = &d->a->e[e];
            if (ed->kind == G_EPS && d->mark[ed->to] != d->stamp) {
                d->mark[ed->to] = d->stamp;
                d->stk[top++] = ed->to;
            }
        }
    }
    if (d->n_buf > 16) {
        qsort(d->buf, (size_t)d->n_buf, sizeof *d->buf, cmp_i32);
        return;
    }
    for (int32_t i = 1; i < d->n_buf; i++) { /* small sets: insertion sort */
        int32_t x = d->buf[i], j = i;
        while (j > 0 && d->buf[j - 1] > x) d->buf[j] = d->buf[j - 1], j--;
        d->buf[j] = x;
    }
}

/* Interns d->buf as a DFA state (adding it when new); -1 on error. States
 * with only epsilon edges (other than the accepting one) are left out of
 * the set: they change nothing ahead, and keeping them would split one
 * state into several (after '"' and after a character, say). */
static int32_t intern_buf(det *d, set_index *x, g_dfa *out, int32_t accept, int *rc) {
    int32_t n = 0;
    for (int32_t i = 0; i < d->n_buf; i++)
        if (d->keep[d->buf[i]] || d->buf[i] == accept) d->buf[n++] = d->buf[i];
    d->n_buf = n;
    int32_t k = set_intern(x, d->buf, d->n_buf);
    if (k == -2) {
        *rc = SP_GRAM_ENOMEM;
        return -1;
    }
    if (k == out->n) {
        if ((*rc = dfa_add(out))) return -1;
        out->acc[k] = bsearch(&accept, d->buf, (size_t)d->n_buf, sizeof accept, cmp_i32) != NULL;
    }
    return k;
}

static int push_move(det *d, const g_edge *e) {
    if (d->n_moves == d->moves_cap) {
        size_t cap = d->moves_cap ? d->moves_cap * 2 : 256;
        g_edge *m = realloc(d->moves, cap * sizeof *m);
        if (!m) return -1;
        d->moves = m;
        d->moves_cap = cap;
    }
    d->moves[d->n_moves++] = *e;
    return 0;
}

/* Byte moves of DFA state k (its NFA set at x): each interval between edge
 * boundaries goes to the closure of the targets that cover it. */
static int byte_moves(det *d, set_index *x, g_dfa *out, int32_t k, int32_t accept) {
    d->n_moves = 0;
    for (int32_t i = 0; i < x->len[k]; i++) {
        int32_t s = x->pool[x->off[k] + i];
        for (int32_t e = d->a->head[s]; e >= 0; e = d->a->e[e].next)
            if (d->a->e[e].kind == G_BYTE && push_move(d, &d->a->e[e])) return SP_GRAM_ENOMEM;
    }
    if (!d->n_moves) return 0;
    int np = 0;
    for (size_t i = 0; i < d->n_moves; i++) {
        d->pts[np++] = d->moves[i].lo;
        d->pts[np++] = d->moves[i].hi + 1;
    }
    qsort(d->pts, (size_t)np, sizeof *d->pts, cmp_i32);
    int32_t *seeds = d->stk + d->a->n; /* second half of the stack area */
    int rc = 0;
    for (int p = 0; p + 1 < np; p++) {
        int lo = d->pts[p], hi = d->pts[p + 1] - 1;
        if (hi < lo) continue;
        int32_t ns = 0;
        for (size_t i = 0; i < d->n_moves; i++)
            if (d->moves[i].lo <= lo && lo <= d->moves[i].hi) seeds[ns++] = d->moves[i].to;
        if (!ns) continue;
        closure(d, seeds, ns);
        int32_t t = intern_buf(d, x, out, accept, &rc);
        if (t < 0) return rc;
        for (int b = lo; b <= hi; b++) out->next[(size_t)k * 256 + b] = t;
    }
    return 0;
}

/* Call moves: one per rule, in the order the rules first appear. */
static int call_moves(det *d, set_index *x, g_dfa *out, int32_t k, int32_t accept) {
    int32_t *seeds = d->stk + d->a->n;
    int rc = 0;
    int32_t first = out->nc;
    for (int32_t i = 0; i < x->len[k]; i++) {
        int32_t s = x->pool[x->off[k] + i];
        for (int32_t e = d->a->head[s]; e >= 0; e = d->a->e[e].next) {
            const g_edge *ed = &d->a->e[e];
            if (ed->kind != G_CALL) continue;
            int seen = 0;
            for (int32_t c = first; c < out->nc && !seen; c++) seen = out->c_rule[c] == ed->rule;
            if (seen) continue;
            int32_t ns = 0; /* every return state of this rule in the set */
            for (int32_t j = 0; j < x->len[k]; j++) {
                int32_t s2 = x->pool[x->off[k] + j];
                for (int32_t e2 = d->a->head[s2]; e2 >= 0; e2 = d->a->e[e2].next)
                    if (d->a->e[e2].kind == G_CALL && d->a->e[e2].rule == ed->rule)
                        seeds[ns++] = d->a->e[e2].to;
            }
            closure(d, seeds, ns);
            int32_t t = intern_buf(d, x, out, accept, &rc);
            if (t < 0 || (rc = dfa_add_call(out, ed->rule, t))) return rc ? rc : SP_GRAM_ENOMEM;
        }
    }
    return 0;
}

int g_determinize(g_nfa *a, g_frag f, g_dfa *out) {
    memset(out, 0, sizeof *out);
    if (a->err) return a->err;
    det d = {.a = a};
    set_index x = {0};
    int rc = SP_GRAM_ENOMEM;
    d.mark = calloc((size_t)a->n, sizeof *d.mark);
    d.buf = malloc((size_t)a->n * sizeof *d.buf);
    d.stk = malloc((size_t)a->n * 2 * sizeof *d.stk);
    d.pts = malloc((a->ne * 2 + 2) * sizeof *d.pts);
    d.keep = calloc((size_t)a->n, 1);
    if (!d.mark || !d.buf || !d.stk || !d.pts || !d.keep) goto done;
    for (int32_t s = 0; s < a->n; s++)
        for (int32_t e = a->head[s]; e >= 0 && !d.keep[s]; e = a->e[e].next)
            d.keep[s] = a->e[e].kind != G_EPS;
    closure(&d, &f.s, 1);
    rc = 0;
    if (intern_buf(&d, &x, out, f.e, &rc) < 0) goto done;
    for (int32_t k = 0; k < out->n; k++) {
        out->c_off[k] = out->nc;
        if ((rc = byte_moves(&d, &x, out, k, f.e))) goto done;
        if ((rc = call_moves(&d, &x, out, k, f.e))) goto done;
    }
    out->c_off[out->n] = out->nc;
done:
    free(d.mark);
    free(d.buf);
    free(d.stk);
    free(d.pts);
    free(d.keep);
    free(d.moves);
    set_free(&x);
    if (rc) g_dfa_free(out);
    return rc;
}

/* ---- products of call-free DFAs ---- */

int g_dfa_product(const g_dfa *x, const g_dfa *y, int and_not, g_dfa *out) {
    memset(out, 0, sizeof *out);
    set_index ix = {0}; /* pairs interned as two-element sets */
    int rc = 0;
    int32_t pair[2] = {0, y->n ? 0 : -1};
    if (set_intern(&ix, pair, 2) != 0 || (rc = dfa_add(out))) goto fail;
    for (int32_t k = 0; k < out->n; k++) {
        int32_t px = ix.pool[ix.off[k]], py = ix.pool[ix.off[k] + 1];
        int yacc = py >= 0 && y->acc[py];
        out->acc[k] = x->acc[px] && (and_not ? !yacc : yacc);
        out->c_off[k] = 0;
        for (int b = 0; b < 256; b++) {
            int32_t tx = x->next[(size_t)px * 256 + b];
            int32_t ty = py >= 0 ? y->next[(size_t)py * 256 + b] : -1;
            if (tx < 0 || (!and_not && ty < 0)) continue;
            int32_t p2[2] = {tx, ty};
            int32_t t = set_intern(&ix, p2, 2);
            if (t == -2) goto fail;
            if (t == out->n && (rc = dfa_add(out))) goto fail;
            out->next[(size_t)k * 256 + b] = t;
        }
    }
    out->c_off[out->n] = 0;
    set_free(&ix);
    return 0;
fail:
    set_free(&ix);
    g_dfa_free(out);
    return rc ? rc : SP_GRAM_ENOMEM;
}

g_frag g_embed(g_nfa *a, const g_dfa *d) {
    int32_t base = a->n;
    for (int32_t k = 0; k < d->n; k++) g_state(a);
    int32_t end = g_state(a);
    if (a->err) return (g_frag){0, 0};
    for (int32_t k = 0; k < d->n; k++) {
        const int32_t *nx = d->next + (size_t)k * 256;
        for (int b = 0; b < 256;) {
            int e = b;
            while (e + 1 < 256 && nx[e + 1] == nx[b]) e++;
            if (nx[b] >= 0) g_byte(a, base + k, base + nx[b], (unsigned)b, (unsigned)e);
            b = e + 1;
        }
        for (int32_t c = d->c_off[k]; c < d->c_off[k + 1]; c++)
            g_call(a, base + k, base + d->c_to[c], d->c_rule[c]);
        if (d->acc[k]) g_eps(a, base + k, end);
    }
    return (g_frag){base, end};
}

g_frag g_frag_product(g_nfa *a, g_frag x, g_frag y, int and_not) {
    g_dfa dx, dy, dp;
    int rc = g_determinize(a, x, &dx);
    if (rc) {
        a->err = rc;
        return g_never(a);
    }
    if ((rc = g_determinize(a, y, &dy))) {
        g_dfa_free(&dx);
        a->err = rc;
        return g_never(a);
    }
    rc = g_dfa_product(&dx, &dy, and_not, &dp);
    g_dfa_free(&dx);
    g_dfa_free(&dy);
    if (rc) {
        a->err = rc;
        return g_never(a);
    }
    g_frag f = g_embed(a, &dp);
    g_dfa_free(&dp);
    return f;
}
