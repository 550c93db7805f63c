/* Regular expressions (the common ECMA-262 subset JSON Schema patterns
 * use) compiled to NFA fragments over UTF-8 bytes, either as raw text or
 * as the content of a JSON string in the canonical escaping (grammar.h).
 *
 * Supported: literals, ., [...] and [^...] with ranges and \d \w \s (and
 * their negations), escapes \n \r \t \f \v \0 \xHH \uHHHH \u{...} and
 * escaped punctuation, groups (...) (?:...) (?<name>...), |, the
 * quantifiers * + ? {n} {n,} {n,m} (lazy forms too: same language), ^ at
 * the start and $ at the end. Anything else (lookaround, backreferences,
 * \b, \p{...}, anchors elsewhere) is refused: never silently unenforced. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/gram_internal.h"

/* ---- code point sets: sorted, disjoint [lo, hi] ranges ---- */

typedef struct cpset {
    uint32_t *r; /* pairs */
    int n, cap;
} cpset;

static int cp_add(cpset *s, uint32_t lo, uint32_t hi) {
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 8;
        uint32_t *r = realloc(s->r, (size_t)cap * 2 * sizeof *r);
        if (!r) return -1;
        s->r = r;
        s->cap = cap;
    }
    s->r[2 * s->n] = lo;
    s->r[2 * s->n + 1] = hi;
    s->n++;
    return 0;
}

static int cmp_range(const void *p, const void *q) {
    uint32_t a = *(const uint32_t *)p, b = *(const uint32_t *)q;
    return (a > b) - (a < b);
}

static void cp_normalize(cpset *s) {
    if (s->n > 1) qsort(s->r, (size_t)s->n, 2 * sizeof *s->r, cmp_range);
    int k = 0;
    for (int i = 0; i < s->n; i++) {
        uint32_t lo = s->r[2 * i], hi = s->r[2 * i + 1];
        if (k && lo <= s->r[2 * k - 1] + 1) {
            if (hi > s->r[2 * k - 1]) s->r[2 * k - 1] = hi;
        } else {
            s->r[2 * k] = lo;
            s->r[2 * k + 1] = hi;
            k++;
        }
    }
    s->n = k;
}

/* The complement within [0, 0x10FFFF]. */
static int cp_negate(cpset *s) {
    cp_normalize(s);
    cpset o = {0};
    uint32_t next = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->r[2 * i] > next && cp_add(&o, next, s->r[2 * i] - 1)) return -1;
        next = s->r[2 * i + 1] + 1;
    }
    if (next <= 0x10FFFF && cp_add(&o, next, 0x10FFFF)) return -1;
    free(s->r);
    *s = o;
    return 0;
}

/* ---- code points to UTF-8 byte paths ---- */

static int utf8_enc(uint32_t c, unsigned char *o) {
    if (c < 0x80) return o[0] = (unsigned char)c, 1;
    if (c < 0x800) {
        o[0] = (unsigned char)(0xC0 | c >> 6);
        o[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | c >> 12);
        o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | c >> 18);
    o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

/* Byte sequences from lo[i..n) to hi[i..n) (same length, lo <= hi
 * lexicographically) from state s to state e. */
static void seq_range(g_nfa *a, const unsigned char *lo, const unsigned char *hi, int i, int n,
                      int32_t s, int32_t e) {
    if (i == n - 1) {
        g_byte(a, s, e, lo[i], hi[i]);
        return;
    }
    if (lo[i] == hi[i]) {
        int32_t m = g_state(a);
        g_byte(a, s, m, lo[i], lo[i]);
        seq_range(a, lo, hi, i + 1, n, m, e);
        return;
    }
    unsigned char top[4], bot[4];
    for (int k = 0; k < n; k++) top[k] = 0xBF, bot[k] = 0x80;
    int32_t m1 = g_state(a); /* lo[i], then lo's rest up to the top */
    g_byte(a, s, m1, lo[i], lo[i]);
    seq_range(a, lo, top, i + 1, n, m1, e);
    if (hi[i] - lo[i] > 1) { /* whole continuation ranges in between */
        int32_t m = g_state(a);
        g_byte(a, s, m, lo[i] + 1u, hi[i] - 1u);
        seq_range(a, bot, top, i + 1, n, m, e);
    }
    int32_t m2 = g_state(a);
    g_byte(a, s, m2, hi[i], hi[i]);
    seq_range(a, bot, hi, i + 1, n, m2, e);
}

static void utf8_range(g_nfa *a, uint32_t lo, uint32_t hi, int32_t s, int32_t e) {
    static const uint32_t bounds[] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    for (int k = 0; k < 4 && lo <= hi; k++) {
        if (lo > bounds[k]) continue;
        uint32_t h = hi < bounds[k] ? hi : bounds[k];
        unsigned char bl[4], bh[4];
        int n = utf8_enc(lo, bl);
        utf8_enc(h, bh);
        seq_range(a, bl, bh, 0, n, s, e);
        lo = h + 1;
    }
}

/* The canonical escape of a code point below 0x20, '"' or '\\'. */
static int json_escape(uint32_t c, char *o) {
    switch (c) {
    case '"':
        return memcpy(o, "\\\"", 2), 2;
    case '\\':
        return memcpy(o, "\\\\", 2), 2;
    case '\b':
        return memcpy(o, "\\b", 2), 2;
    case '\f':
        return memcpy(o, "\\f", 2), 2;
    case '\n':
        return memcpy(o, "\\n", 2), 2;
    case '\r':
        return memcpy(o, "\\r", 2), 2;
    case '\t':
        return memcpy(o, "\\t", 2), 2;
    default:
        return snprintf(o, 7, "\\u%04x", (unsigned)c);
    }
}

static int needs_escape(uint32_t c) {
    return c < 0x20 || c == '"' || c == '\\';
}

/* The ranges (surrogates dropped) as one fragment; json: the characters
 * that must be escaped take their escape instead of their byte. */
static g_frag set_frag(g_nfa *a, const cpset *s, int json) {
    g_frag f = {g_state(a), g_state(a)};
    for (int i = 0; i < s->n; i++) {
        uint32_t lo = s->r[2 * i], hi = s->r[2 * i + 1];
        for (uint32_t c = lo; json && c <= hi && c < 0x60; c++) {
            if (!needs_escape(c)) continue;
            char esc[8];
            int n = json_escape(c, esc);
            g_frag l = g_lit(a, esc, (size_t)n);
            g_eps(a, f.s, l.s);
            g_eps(a, l.e, f.e);
        }
        /* the plain pieces: split around the escaped ones and surrogates */
        uint32_t cuts[][2] = {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}, {0xD800, 0xDFFF}};
        uint32_t x = lo;
        while (x <= hi) {
            uint32_t end = hi;
            int skip = 0;
            for (int k = 0; k < 4; k++) {
                if (k < 3 && !json) continue;
                if (x >= cuts[k][0] && x <= cuts[k][1]) {
                    x = cuts[k][1] + 1;
                    skip = 1;
                    break;
                }
                if (cuts[k][0] > x && cuts[k][0] - 1 < end) end = cuts[k][0] - 1;
            }
            if (skip) continue;
            utf8_range(a, x, end, f.s, f.e);
            if (end == 0x10FFFF) break;
            x = end + 1;
        }
    }
    return f;
}

g_frag g_cp_range(g_nfa *a, uint32_t lo, uint32_t hi, int json) {
    uint32_t r[2] = {lo, hi};
    cpset s = {r, 1, 1};
    return set_frag(a, &s, json);
}

/* Any character, built by hand with shared continuation states (the
 * generic set_frag spells each escape separately: ~20x the states). Same
 * language as g_cp_range(a, 0, 0x10FFFF, 1). */
g_frag g_json_char(g_nfa *a) {
    g_frag f = {g_state(a), g_state(a)};
    int32_t c1 = g_state(a), c2 = g_state(a), c3 = g_state(a); /* continuation bytes left */
    g_byte(a, c1, f.e, 0x80, 0xBF);
    g_byte(a, c2, c1, 0x80, 0xBF);
    g_byte(a, c3, c2, 0x80, 0xBF);
    g_byte(a, f.s, f.e, 0x20, 0x21);
    g_byte(a, f.s, f.e, 0x23, 0x5B);
    g_byte(a, f.s, f.e, 0x5D, 0x7F);
    g_byte(a, f.s, c1, 0xC2, 0xDF);
    int32_t e0 = g_state(a), ed = g_state(a), f0 = g_state(a), f4 = g_state(a);
    g_byte(a, f.s, e0, 0xE0, 0xE0);
    g_byte(a, e0, c1, 0xA0, 0xBF);
    g_byte(a, f.s, c2, 0xE1, 0xEC);
    g_byte(a, f.s, ed, 0xED, 0xED);
    g_byte(a, ed, c1, 0x80, 0x9F);
    g_byte(a, f.s, c2, 0xEE, 0xEF);
    g_byte(a, f.s, f0, 0xF0, 0xF0);
    g_byte(a, f0, c2, 0x90, 0xBF);
    g_byte(a, f.s, c3, 0xF1, 0xF3);
    g_byte(a, f.s, f4, 0xF4, 0xF4);
    g_byte(a, f4, c2, 0x80, 0x8F);
    /* escapes: \" \\ \b \f \n \r \t, else \u00XX in lowercase hex */
    int32_t bs = g_state(a), u = g_state(a), u0 = g_state(a), u00 = g_state(a);
    int32_t h0 = g_state(a), h1 = g_state(a);
    g_byte(a, f.s, bs, '\\', '\\');
    g_byte(a, bs, f.e, '"', '"');
    g_byte(a, bs, f.e, '\\', '\\');
    g_byte(a, bs, f.e, 'b', 'b');
    g_byte(a, bs, f.e, 'f', 'f');
    g_byte(a, bs, f.e, 'n', 'n');
    g_byte(a, bs, f.e, 'r', 'r');
    g_byte(a, bs, f.e, 't', 't');
    g_byte(a, bs, u, 'u', 'u');
    g_byte(a, u, u0, '0', '0');
    g_byte(a, u0, u00, '0', '0');
    g_byte(a, u00, h0, '0', '0');
    g_byte(a, u00, h1, '1', '1');
    g_byte(a, h0, f.e, '0', '7');
    g_byte(a, h0, f.e, 'b', 'b');
    g_byte(a, h0, f.e, 'e', 'f');
    g_byte(a, h1, f.e, '0', '9');
    g_byte(a, h1, f.e, 'a', 'f');
    return f;
}

/* ---- the parser: a small AST, expanded into fragments (repetitions
 * expand their operand once per copy) ---- */

enum { R_SET, R_CAT, R_ALT, R_REP, R_EMPTY };

typedef struct rnode {
    int kind;
    int a, b;     /* children (CAT, ALT: a b; REP: a) */
    int min, max; /* REP; max -1: unbounded */
    cpset set;
} rnode;

typedef struct rparse {
    const char *s;
    size_t n, i;
    rnode *nodes;
    int n_nodes, cap;
    char *msg;
    size_t msg_cap;
    int failed;
    int depth;
} rparse;

static int fail(rparse *p, const char *what) {
    if (!p->failed) snprintf(p->msg, p->msg_cap, "%s at offset %zu of the pattern", what, p->i);
    p->failed = 1;
    return -1;
}

static int node(rparse *p, int kind) {
    if (p->n_nodes == p->cap) {
        int cap = p->cap ? p->cap * 2 : 32;
        rnode *n = realloc(p->nodes, (size_t)cap * sizeof *n);
        if (!n) return fail(p, "out of memory");
        p->nodes = n;
        p->cap = cap;
    }
    memset(&p->nodes[p->n_nodes], 0, sizeof(rnode));
    p->nodes[p->n_nodes].kind = kind;
    return p->n_nodes++;
}

static int node2(rparse *p, int kind, int x, int y) {
    int k = node(p, kind);
    if (k >= 0) p->nodes[k].a = x, p->nodes[k].b = y;
    return k;
}

/* One UTF-8 character of the pattern. */
static uint32_t next_cp(rparse *p) {
    unsigned char c = (unsigned char)p->s[p->i];
    int n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (!n || p->i + (size_t)n > p->n) return fail(p, "invalid UTF-8"), 0;
    uint32_t v = n == 1 ? c : c & (0x7F >> n);
    for (int k = 1; k < n; k++) v = v << 6 | ((unsigned char)p->s[p->i + (size_t)k] & 0x3F);
    p->i += (size_t)n;
    return v;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex(rparse *p, int digits, uint32_t *v) {
    *v = 0;
    for (int k = 0; k < digits; k++) {
        if (p->i >= p->n || hexval(p->s[p->i]) < 0) return fail(p, "bad hex escape");
        *v = *v * 16 + (uint32_t)hexval(p->s[p->i++]);
    }
    return 0;
}

static int add_class(cpset *s, char k) {
    static const uint32_t ws[] = {9,      13,     32,     32,     0xA0,   0xA0,   0x1680,
                                  0x1680, 0x2000, 0x200A, 0x2028, 0x2029, 0x202F, 0x202F,
                                  0x205F, 0x205F, 0x3000, 0x3000, 0xFEFF, 0xFEFF};
    cpset t = {0};
    int rc = 0;
    switch (k | 0x20) {
    case 'd':
        rc = cp_add(&t, '0', '9');
        break;
    case 'w':
        rc = cp_add(&t, '0', '9') || cp_add(&t, 'A', 'Z') || cp_add(&t, '_', '_') ||
             cp_add(&t, 'a', 'z');
        break;
    default: /* s */
        for (size_t i = 0; i < sizeof ws / sizeof *ws && !rc; i += 2)
            rc = cp_add(&t, ws[i], ws[i + 1]);
    }
    if (!rc && k >= 'A' && k <= 'Z') rc = cp_negate(&t);
    for (int i = 0; !rc && i < t.n; i++) rc = cp_add(s, t.r[2 * i], t.r[2 * i + 1]);
    free(t.r);
    return rc;
}

/* An escape after '\\' (p->i at the letter): a class into *set (returns
 * 1) or one code point into *cp (returns 0); -1 on error. */
static int escape(rparse *p, cpset *set, uint32_t *cp, int in_class) {
    if (p->i >= p->n) return fail(p, "pattern ends in '\\'");
    char c = p->s[p->i];
    if (strchr("dDwWsS", c)) {
        p->i++;
        return add_class(set, c) ? fail(p, "out of memory") : 1;
    }
    static const char simple[] = "n\nr\rt\tf\fv\v0";
    const char *k = strchr(simple, c);
    if (c && k && (k - simple) % 2 == 0) {
        p->i++;
        *cp = c == '0' ? 0 : (uint32_t)(unsigned char)k[1];
        return 0;
    }
    if (c == 'x') {
        p->i++;
        return read_hex(p, 2, cp);
    }
    if (c == 'u') {
        p->i++;
        if (p->i < p->n && p->s[p->i] == '{') {
            p->i++;
            *cp = 0;
            int d = 0;
            while (p->i < p->n && hexval(p->s[p->i]) >= 0 && d++ < 6)
                *cp = *cp * 16 + (uint32_t)hexval(p->s[p->i++]);
            if (p->i >= p->n || p->s[p->i] != '}' || !d || *cp > 0x10FFFF)
                return fail(p, "bad \\u{...} escape");
            p->i++;
            return 0;
        }
        return read_hex(p, 4, cp);
    }
    if (c == 'b' && in_class) {
        p->i++;
        *cp = 8;
        return 0;
    }
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return fail(p, "unsupported escape (\\b, \\B, backreferences, \\p and \\c are not "
                       "enforced)");
    *cp = next_cp(p);
    return 0;
}

static int parse_class(rparse *p) {
    int k = node(p, R_SET);
    if (k < 0) return -1;
    cpset s = {0};
    int neg = p->i < p->n && p->s[p->i] == '^';
    if (neg) p->i++;
    while (p->i < p->n && p->s[p->i] != ']') {
        uint32_t lo, hi;
        int r;
        if (p->s[p->i] == '\\') {
            p->i++;
            if ((r = escape(p, &s, &lo, 1)) < 0) goto bad;
            if (r == 1) continue;
        } else {
            lo = next_cp(p);
            if (p->failed) goto bad;
        }
        hi = lo;
        if (p->i + 1 < p->n && p->s[p->i] == '-' && p->s[p->i + 1] != ']') {
            p->i++;
            if (p->s[p->i] == '\\') {
                p->i++;
                if ((r = escape(p, &s, &hi, 1)) < 0) goto bad;
                if (r == 1) {
                    fail(p, "a class escape cannot end a range");
                    goto bad;
                }
            } else {
                hi = next_cp(p);
                if (p->failed) goto bad;
            }
            if (hi < lo) {
                fail(p, "range out of order in a character class");
                goto bad;
            }
        }
        if (cp_add(&s, lo, hi)) goto oom;
    }
    if (p->i >= p->n) {
        fail(p, "unterminated character class");
        goto bad;
    }
    p->i++;
    if (neg && cp_negate(&s)) goto oom;
    cp_normalize(&s);
    p->nodes[k].set = s;
    return k;
oom:
    fail(p, "out of memory");
bad:
    free(s.r);
    return -1;
}

static int parse_alt(rparse *p);

static int set_node(rparse *p, cpset s) {
    int k = node(p, R_SET);
    if (k < 0) {
        free(s.r);
        return -1;
    }
    cp_normalize(&s);
    p->nodes[k].set = s;
    return k;
}

static int parse_atom(rparse *p) {
    char c = p->s[p->i];
    cpset s = {0};
    if (c == '(') {
        p->i++;
        if (p->i < p->n && p->s[p->i] == '?') {
            if (p->i + 1 < p->n && p->s[p->i + 1] == ':') {
                p->i += 2;
            } else if (p->i + 2 < p->n && p->s[p->i + 1] == '<' && p->s[p->i + 2] != '=' &&
                       p->s[p->i + 2] != '!') {
                while (p->i < p->n && p->s[p->i] != '>') p->i++;
                p->i++;
            } else {
                return fail(p, "lookaround is not supported");
            }
        }
        if (++p->depth > 64) return fail(p, "groups nested too deeply");
        int k = parse_alt(p);
        p->depth--;
        if (k < 0) return -1;
        if (p->i >= p->n || p->s[p->i] != ')') return fail(p, "missing ')'");
        p->i++;
        return k;
    }
    if (c == '[') {
        p->i++;
        return parse_class(p);
    }
    if (c == '.') {
        p->i++;
        /* everything but the line terminators */
        if (cp_add(&s, 0, 9) || cp_add(&s, 11, 12) || cp_add(&s, 14, 0x2027) ||
            cp_add(&s, 0x202A, 0x10FFFF))
            return fail(p, "out of memory");
        return set_node(p, s);
    }
    if (c == '^' || c == '$') return fail(p, "an anchor inside the pattern is not supported");
    if (c == '*' || c == '+' || c == '?' || c == '{') return fail(p, "nothing to repeat");
    uint32_t cp;
    if (c == '\\') {
        p->i++;
        int r = escape(p, &s, &cp, 0);
        if (r < 0) {
            free(s.r);
            return -1;
        }
        if (r == 1) return set_node(p, s);
    } else {
        cp = next_cp(p);
        if (p->failed) return -1;
    }
    if (cp_add(&s, cp, cp)) return fail(p, "out of memory");
    return set_node(p, s);
}

static int parse_int(rparse *p, int *v) {
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return -1;
    long x = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        x = x * 10 + (p->s[p->i++] - '0');
        if (x > 100000) x = 100000;
    }
    *v = (int)x;
    return 0;
}

static int parse_rep(rparse *p) {
    int k = parse_atom(p);
    while (k >= 0 && p->i < p->n) {
        char c = p->s[p->i];
        int min, max;
        if (c == '*')
            min = 0, max = -1, p->i++;
        else if (c == '+')
            min = 1, max = -1, p->i++;
        else if (c == '?')
            min = 0, max = 1, p->i++;
        else if (c == '{') {
            size_t save = p->i++;
            if (parse_int(p, &min)) {
                p->i = save;
                return fail(p, "a literal '{' must be escaped");
            }
            max = min;
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                max = -1;
                if (p->i < p->n && p->s[p->i] != '}' && parse_int(p, &max))
                    return fail(p, "bad {n,m} quantifier");
            }
            if (p->i >= p->n || p->s[p->i] != '}') return fail(p, "bad {n,m} quantifier");
            p->i++;
            if (max >= 0 && max < min) return fail(p, "{n,m} with m < n");
            if (min > G_MAX_REPEAT || max > G_MAX_REPEAT)
                return fail(p, "repetition bound above 1000");
        } else
            break;
        if (p->i < p->n && p->s[p->i] == '?') p->i++; /* lazy: same language */
        if (p->i < p->n && strchr("*+?{", p->s[p->i]))
            return fail(p, "nothing to repeat (a quantifier after a quantifier)");
        int r = node(p, R_REP);
        if (r < 0) return -1;
        p->nodes[r].a = k;
        p->nodes[r].min = min;
        p->nodes[r].max = max;
        k = r;
    }
    return k;
}

static int parse_cat(rparse *p) {
    int k = node(p, R_EMPTY);
    while (k >= 0 && p->i < p->n && p->s[p->i] != '|' && p->s[p->i] != ')') {
        int x = parse_rep(p);
        if (x < 0) return -1;
        k = node2(p, R_CAT, k, x);
    }
    return k;
}

static int parse_alt(rparse *p) {
    int k = parse_cat(p);
    while (k >= 0 && p->i < p->n && p->s[p->i] == '|') {
        p->i++;
        int x = parse_cat(p);
        if (x < 0) return -1;
        k = node2(p, R_ALT, k, x);
    }
    return k;
}

typedef struct rep_ctx {
    const rparse *p;
    int k, json;
} rep_ctx;

static g_frag expand(g_nfa *a, const rparse *p, int k, int json);

static g_frag expand_one(g_nfa *a, void *ctx) {
    const rep_ctx *r = ctx;
    return expand(a, r->p, r->k, r->json);
}

static g_frag expand(g_nfa *a, const rparse *p, int k, int json) {
    if (a->err) return (g_frag){0, 0}; /* past the size limit: stop at once */
    const rnode *r = &p->nodes[k];
    switch (r->kind) {
    case R_SET:
        return set_frag(a, &r->set, json);
    case R_CAT:
        return g_cat(a, expand(a, p, r->a, json), expand(a, p, r->b, json));
    case R_ALT:
        return g_alt(a, expand(a, p, r->a, json), expand(a, p, r->b, json));
    case R_REP: {
        rep_ctx c = {p, r->a, json};
        return g_repeat(a, expand_one, &c, r->min, r->max);
    }
    default:
        return g_empty(a);
    }
}

int g_regex(g_nfa *a, const char *re, size_t n, int json, int search, g_frag *out, char *msg,
            size_t cap) {
    rparse p = {.s = re, .n = n, .msg = msg, .msg_cap = cap};
    int head = n > 0 && re[0] == '^';
    int tail = n > 0 && re[n - 1] == '$';
    if (tail) { /* an escaped '$' is a literal */
        size_t bs = 0;
        while (bs + 1 < n && re[n - 2 - bs] == '\\') bs++;
        if (bs % 2) tail = 0;
    }
    p.i = head ? 1 : 0;
    p.n = tail ? n - 1 : n;
    int k = p.i <= p.n ? parse_alt(&p) : node(&p, R_EMPTY);
    if (k >= 0 && p.i < p.n) fail(&p, "unbalanced ')'");
    int rc = -1;
    if (!p.failed) {
        g_frag f = expand(a, &p, k, json);
        if (search && !head)
            f = g_cat(a, g_star_of(a, json ? g_json_char(a) : g_cp_range(a, 0, 0x10FFFF, 0)), f);
        if (search && !tail)
            f = g_cat(a, f, g_star_of(a, json ? g_json_char(a) : g_cp_range(a, 0, 0x10FFFF, 0)));
        *out = f;
        rc = 0;
    }
    for (int i = 0; i < p.n_nodes; i++) free(p.nodes[i].set.r);
    free(p.nodes);
    return rc;
}
