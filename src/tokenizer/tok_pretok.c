/* Pre-tokenizers: split normalized text into words (pieces). The split
 * behaviours follow
 * the Hugging Face definitions (Isolated, Removed, MergedWithPrevious,
 * MergedWithNext, Contiguous, with optional inversion of the matches). */
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "tokenizer/tok_internal.h"

/* A segment of one piece: [s, e) and whether it is a pattern match. */
typedef struct seg {
    size_t s, e;
    int m;
} seg;

typedef struct segs {
    seg *v;
    size_t n, cap;
} segs;

static int segs_push(segs *g, size_t s, size_t e, int m) {
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        seg *v = realloc(g->v, cap * sizeof *v);
        if (!v) return -1;
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n++] = (seg){s, e, m};
    return 0;
}

/* Matches of a pattern, with the gaps between them, covering [0, n). */
static int find_pattern_segs(const tok_pattern *pat, pcre2_match_data *md, const char *s, size_t n,
                             segs *g) {
    size_t prev = 0, ms, me;
    int rc;
    while ((rc = tok_pattern_find(pat, md, s, n, prev, &ms, &me)) == 1) {
        if (ms > prev && segs_push(g, prev, ms, 0)) return -1;
        if (segs_push(g, ms, me, 1)) return -1;
        prev = me;
    }
    if (rc < 0) return -1;
    if (prev < n && segs_push(g, prev, n, 0)) return -1;
    return 0;
}

/* Every character satisfying pred is a one-character match. */
static int find_char_segs(int (*pred)(uint32_t, const tok_pretok *), const tok_pretok *pt,
                          const char *s, size_t n, segs *g) {
    size_t last = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = (size_t)tok_utf8_next(s + i, n - i, &cp);
        if (pred(cp, pt)) {
            if (i > last && segs_push(g, last, i, 0)) return -1;
            if (segs_push(g, i, i + k, 1)) return -1;
            last = i + k;
        }
        i += k;
    }
    if (last < n && segs_push(g, last, n, 0)) return -1;
    return 0;
}

/* Applies the delimiter behaviour to g in place; the result's segments are
 * the pieces to keep (m == 0) or drop (m == 1, only for Removed). */
static void apply_behavior(segs *g, tok_split_behavior b) {
    size_t w = 0;
    int prev_m = 0;
    switch (b) {
    case SPLIT_ISOLATED:
        for (size_t i = 0; i < g->n; i++) g->v[i].m = 0;
        return;
    case SPLIT_REMOVED:
        return;
    case SPLIT_CONTIGUOUS:
    case SPLIT_MERGED_PREV:
        for (size_t i = 0; i < g->n; i++) {
            seg x = g->v[i];
            int merge = b == SPLIT_CONTIGUOUS ? x.m == prev_m : x.m && !prev_m;
            if (merge && w > 0)
                g->v[w - 1].e = x.e;
            else
                g->v[w++] = (seg){x.s, x.e, 0};
            prev_m = x.m;
        }
        g->n = w;
        return;
    case SPLIT_MERGED_NEXT: {
        /* Walk backwards, merging a match into the piece after it. */
        size_t r = g->n;
        w = g->n;
        while (r > 0) {
            seg x = g->v[--r];
            if (x.m && !prev_m && w < g->n)
                g->v[w].s = x.s;
            else
                g->v[--w] = (seg){x.s, x.e, 0};
            prev_m = x.m;
        }
        memmove(g->v, g->v + w, (g->n - w) * sizeof *g->v);
        g->n -= w;
        return;
    }
    }
}

static int pred_numeric(uint32_t cp, const tok_pretok *pt) {
    return tok_is_numeric(cp);
}
static int pred_whitespace(uint32_t cp, const tok_pretok *pt) {
    return tok_is_whitespace(cp);
}
static int pred_punct(uint32_t cp, const tok_pretok *pt) {
    return tok_is_punctuation(cp);
}
static int pred_metaspace(uint32_t cp, const tok_pretok *pt) {
    return cp == pt->replacement;
}

/* Pieces flow depth-first through the flattened list of stages: a stage
 * splits (or rewrites) one piece and hands each result to the next stage,
 * the last one to the model. Sub-pieces point into their parent, so only
 * rewriting stages (ByteLevel, Metaspace) copy bytes, into a buffer of
 * their level. This keeps the working set small for long texts. */
typedef struct level {
    segs g;
    tok_buf tmp;
} level;

typedef struct walker {
    const tok_pretok **stages;
    int n_stages;
    level *levels;
    pcre2_match_data *md;
    tok_piece_fn fn;
    void *ctx;
} walker;

static int walk(walker *w, int k, const char *s, size_t n, int at_start);

/* Computes the segments of a splitting stage (behaviour applied). */
static int split_segs(const tok_pretok *pt, const char *s, size_t n, pcre2_match_data *md,
                      segs *g) {
    g->n = 0;
    int rc = 0;
    tok_split_behavior b = pt->behavior;
    switch (pt->kind) {
    case PT_SPLIT:
    case PT_WHITESPACE:
        rc = find_pattern_segs(&pt->pattern, md, s, n, g);
        break;
    case PT_DIGITS:
        rc = find_char_segs(pred_numeric, pt, s, n, g);
        b = pt->individual_digits ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS;
        break;
    case PT_WHITESPACE_SPLIT:
        rc = find_char_segs(pred_whitespace, pt, s, n, g);
        b = SPLIT_REMOVED;
        break;
    case PT_PUNCTUATION:
        rc = find_char_segs(pred_punct, pt, s, n, g);
        break;
    case PT_METASPACE:
        rc = find_char_segs(pred_metaspace, pt, s, n, g);
        b = SPLIT_MERGED_NEXT;
        break;
    default:
        return -1;
    }
    if (rc) return -1;
    if (pt->invert)
        for (size_t i = 0; i < g->n; i++) g->v[i].m = !g->v[i].m;
    apply_behavior(g, b);
    return 0;
}

/* Hands the kept segments of g (over s) to stage k + 1. The segments live in
 * this level's array, which deeper levels do not touch. */
static int walk_segs(walker *w, int k, const segs *g, const char *s, int at_start) {
    for (size_t i = 0; i < g->n; i++) {
        const seg *x = &g->v[i];
        if (x->m || x->e == x->s) continue;
        if (walk(w, k + 1, s + x->s, x->e - x->s, at_start && x->s == 0)) return -1;
    }
    return 0;
}

/* ByteLevel: optional leading space, optional GPT-2 split, then every byte
 * becomes its printable stand-in character. */
static int bytelevel_stage(walker *w, int k, const char *s, size_t n, int at_start) {
    const tok_pretok *pt = w->stages[k];
    level *L = &w->levels[k];
    tok_buf_clear(&L->tmp);
    if (pt->add_prefix_space && (n == 0 || s[0] != ' ') && tok_buf_append(&L->tmp, " ", 1))
        return -1;
    if (tok_buf_append(&L->tmp, s, n)) return -1;
    L->g.n = 0;
    if (pt->use_regex) {
        if (find_pattern_segs(&pt->pattern, w->md, L->tmp.p, L->tmp.n, &L->g)) return -1;
    } else if (L->tmp.n && segs_push(&L->g, 0, L->tmp.n, 0)) {
        return -1;
    }
    /* Map every segment into the second half of tmp, one after another. */
    size_t base = L->tmp.n;
    if (tok_buf_reserve(&L->tmp, 2 * base)) return -1;
    char *o = L->tmp.p + base;
    for (size_t i = 0; i < L->g.n; i++) {
        size_t a = L->g.v[i].s, e = L->g.v[i].e;
        L->g.v[i].s = (size_t)(o - L->tmp.p);
        for (size_t j = a; j < e; j++) {
            unsigned char c = (unsigned char)L->tmp.p[j];
            *o++ = tok_byte_char[c][0];
            if (tok_byte_char_len[c] == 2) *o++ = tok_byte_char[c][1];
        }
        L->g.v[i].e = (size_t)(o - L->tmp.p);
        L->g.v[i].m = a != 0; /* reuse m as "not at the start" */
    }
    L->tmp.n = (size_t)(o - L->tmp.p);
    for (size_t i = 0; i < L->g.n; i++) {
        const seg *x = &L->g.v[i];
        if (x->e == x->s) continue;
        if (walk(w, k + 1, L->tmp.p + x->s, x->e - x->s, at_start && !x->m)) return -1;
    }
    return 0;
}

/* Metaspace: spaces become the replacement char, which may be prepended;
 * then optionally split before each replacement char. */
static int metaspace_stage(walker *w, int k, const char *s, size_t n, int at_start) {
    const tok_pretok *pt = w->stages[k];
    level *L = &w->levels[k];
    char rep[4];
    size_t rep_len = (size_t)sp_utf8_encode(pt->replacement, rep);
    tok_buf_clear(&L->tmp);
    uint32_t first = 0; /* a leading space or replacement char needs no prefix */
    if (n) tok_utf8_next(s, n, &first);
    if (first != pt->replacement && first != ' ' &&
        (pt->prepend == PREPEND_ALWAYS || (pt->prepend == PREPEND_FIRST && at_start)) &&
        tok_buf_append(&L->tmp, rep, rep_len))
        return -1;
    for (size_t i = 0; i < n; i++) {
        int rc =
            s[i] == ' ' ? tok_buf_append(&L->tmp, rep, rep_len) : tok_buf_append(&L->tmp, s + i, 1);
        if (rc) return -1;
    }
    if (!pt->split) return L->tmp.n ? walk(w, k + 1, L->tmp.p, L->tmp.n, at_start) : 0;
    if (split_segs(pt, L->tmp.p, L->tmp.n, w->md, &L->g)) return -1;
    return walk_segs(w, k, &L->g, L->tmp.p, at_start);
}

static int walk(walker *w, int k, const char *s, size_t n, int at_start) {
    if (k == w->n_stages) return w->fn(w->ctx, s, n);
    const tok_pretok *pt = w->stages[k];
    if (pt->kind == PT_BYTELEVEL) return bytelevel_stage(w, k, s, n, at_start);
    if (pt->kind == PT_METASPACE) return metaspace_stage(w, k, s, n, at_start);
    level *L = &w->levels[k];
    if (split_segs(pt, s, n, w->md, &L->g)) return -1;
    return walk_segs(w, k, &L->g, s, at_start);
}

static int flatten(const tok_pretok *pt, const tok_pretok **out, int *n, int max) {
    if (pt->kind != PT_SEQUENCE) {
        if (*n >= max) return -1;
        out[(*n)++] = pt;
        return 0;
    }
    for (int i = 0; i < pt->n_children; i++)
        if (flatten(&pt->children[i], out, n, max)) return -1;
    return 0;
}

#define MAX_STAGES 32

int tok_pretokenize_each(const tok_pretok *pt, const char *s, size_t n, int at_start,
                         pcre2_match_data *md, tok_piece_fn fn, void *ctx) {
    const tok_pretok *stages[MAX_STAGES];
    level levels[MAX_STAGES];
    walker w = {stages, 0, levels, md, fn, ctx};
    if (pt && flatten(pt, stages, &w.n_stages, MAX_STAGES)) return -1;
    memset(levels, 0, sizeof levels);
    int rc = n ? walk(&w, 0, s, n, at_start) : 0;
    for (int i = 0; i < w.n_stages; i++) {
        free(levels[i].g.v);
        tok_buf_free(&levels[i].tmp);
    }
    return rc;
}
