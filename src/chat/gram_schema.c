/* JSON Schema to NFA fragments (grammar.h says what the output looks
 * like). Sub-schemas are inlined; a $ref met again while its target is
 * being expanded becomes a separate rule reached by a call, and so does
 * "any JSON value". Every keyword is either enforced, an annotation, or a
 * 400 naming it and its path. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/gram_internal.h"

#define MAX_RULES 64
#define MAX_INT   999999999999999LL /* 15 digits */

typedef struct sc {
    g_nfa a;
    const json_t *root;
    sp_gram_error *err;
    char path[256];
    size_t plen;
    const json_t *stack[MAX_RULES * 4]; /* $ref targets being expanded */
    int depth;
    struct {
        const json_t *node; /* NULL: a built-in rule (any value, any string) */
        char path[256];
    } rules[MAX_RULES];
    int n_rules, any_rule, string_rule;
    int in_union; /* compiling anyOf / oneOf alternatives */
    int n_calls;  /* call edges emitted so far */
    int nest;     /* schema nesting (stops runaway inlining) */
} sc;

static g_frag compile(sc *c, const json_t *s);

static int failf(sc *c, sp_gram_status st, const char *kw, const char *fmt, ...) {
    if (c->err->status) return -1;
    c->err->status = st;
    snprintf(c->err->keyword, sizeof c->err->keyword, "%s", kw ? kw : "");
    snprintf(c->err->path, sizeof c->err->path, "%s", c->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* The current path with a segment added; returns the length to restore. */
static size_t path_key(sc *c, const char *key) {
    size_t old = c->plen;
    int n = snprintf(c->path + old, sizeof c->path - old, "%s%s", old ? "." : "", key);
    if (n > 0) c->plen = old + (size_t)n < sizeof c->path ? old + (size_t)n : sizeof c->path - 1;
    return old;
}

static size_t path_index(sc *c, const char *key, size_t i) {
    size_t old = path_key(c, key);
    int n = snprintf(c->path + c->plen, sizeof c->path - c->plen, "[%zu]", i);
    if (n > 0)
        c->plen = c->plen + (size_t)n < sizeof c->path ? c->plen + (size_t)n : sizeof c->path - 1;
    return old;
}

static void path_pop(sc *c, size_t old) {
    c->plen = old;
    c->path[old] = 0;
}

static int failed(const sc *c) {
    return c->err->status != SP_GRAM_OK || c->a.err;
}

/* ---- keywords ---- */

static const char *const annotations[] = {
    "title",    "description",   "default",          "examples",        "$schema", "$id",
    "$comment", "deprecated",    "readOnly",         "writeOnly",       "$defs",   "definitions",
    "$anchor",  "discriminator", "contentMediaType", "contentEncoding", NULL};

static const char *const supported[] = {"type",
                                        "enum",
                                        "const",
                                        "anyOf",
                                        "oneOf",
                                        "allOf",
                                        "$ref",
                                        "properties",
                                        "required",
                                        "additionalProperties",
                                        "unevaluatedProperties",
                                        "items",
                                        "prefixItems",
                                        "minItems",
                                        "maxItems",
                                        "minLength",
                                        "maxLength",
                                        "pattern",
                                        "format",
                                        "minimum",
                                        "maximum",
                                        "exclusiveMinimum",
                                        "exclusiveMaximum",
                                        NULL};

static int in_list(const char *const *l, const char *k) {
    for (; *l; l++)
        if (!strcmp(*l, k)) return 1;
    return 0;
}

static int is_annotation(const char *k) {
    return in_list(annotations, k) || !strncmp(k, "x-", 2);
}

static int check_keywords(sc *c, const json_t *s) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v) {
        if (is_annotation(k) || in_list(supported, k)) continue;
        size_t old = path_key(c, k);
        failf(c, SP_GRAM_EUNSUPPORTED, k, "JSON Schema keyword '%s' at %s is not supported", k,
              c->path);
        path_pop(c, old);
        return -1;
    }
    return 0;
}

/* The one keyword of s besides annotations and the allowed ones, or NULL. */
static const char *other_keyword(const json_t *s, const char *const *allowed) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v) if (!is_annotation(k) && !in_list(allowed, k)) return k;
    return NULL;
}

/* ---- literals and simple values ---- */

static g_frag lit(sc *c, const char *s) {
    return g_lit(&c->a, s, strlen(s));
}

static g_frag value_text(sc *c, const json_t *v) {
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (g_json_text(v, &buf, &len, &cap) < 0) {
        free(buf);
        c->a.err = SP_GRAM_ENOMEM;
        return g_never(&c->a);
    }
    g_frag f = g_lit(&c->a, buf, len);
    free(buf);
    return f;
}

static g_frag raw_regex(sc *c, const char *re, int json) {
    g_frag f;
    char msg[200];
    if (g_regex(&c->a, re, strlen(re), json, 0, &f, msg, sizeof msg)) {
        failf(c, SP_GRAM_EINVALID, "", "internal pattern: %s", msg); /* a bug */
        return g_never(&c->a);
    }
    return f;
}

/* Decimal integers in [lo, hi], both >= 0 and of the same digit count. */
static g_frag digits_range(sc *c, const char *lo, const char *hi, int n) {
    g_nfa *a = &c->a;
    if (n == 0) return g_empty(a);
    int full = 1; /* lo = d00..0, hi = e99..9: [d-e][0-9]... (else 3^n paths) */
    for (int i = 1; i < n && full; i++) full = lo[i] == '0' && hi[i] == '9';
    if (full) {
        g_frag f = g_range(a, (unsigned char)lo[0], (unsigned char)hi[0]);
        for (int i = 1; i < n; i++) f = g_cat(a, f, g_range(a, '0', '9'));
        return f;
    }
    if (lo[0] == hi[0])
        return g_cat(a, g_range(a, (unsigned char)lo[0], (unsigned char)lo[0]),
                     digits_range(c, lo + 1, hi + 1, n - 1));
    char nines[20], zeros[20];
    memset(nines, '9', sizeof nines);
    memset(zeros, '0', sizeof zeros);
    g_frag f = g_cat(a, g_range(a, (unsigned char)lo[0], (unsigned char)lo[0]),
                     digits_range(c, lo + 1, nines, n - 1));
    if (hi[0] - lo[0] > 1) {
        g_frag m = g_range(a, (unsigned char)lo[0] + 1u, (unsigned char)hi[0] - 1u);
        for (int i = 1; i < n; i++) m = g_cat(a, m, g_range(a, '0', '9'));
        f = g_alt(a, f, m);
    }
    return g_alt(a, f,
                 g_cat(a, g_range(a, (unsigned char)hi[0], (unsigned char)hi[0]),
                       digits_range(c, zeros, hi + 1, n - 1)));
}

static long long pow10ll(int n) {
    long long p = 1;
    while (n-- > 0) p *= 10;
    return p;
}

/* Non-negative integers in [lo, hi] without leading zeros. */
static g_frag nonneg_range(sc *c, long long lo, long long hi) {
    g_frag f = g_never(&c->a);
    for (int len = 1; len <= 15; len++) {
        long long a = len == 1 ? 0 : pow10ll(len - 1), b = pow10ll(len) - 1;
        if (a < lo) a = lo;
        if (b > hi) b = hi;
        if (a > b) continue;
        char sa[32], sb[32];
        snprintf(sa, sizeof sa, "%lld", a);
        snprintf(sb, sizeof sb, "%lld", b);
        f = g_alt(&c->a, f, digits_range(c, sa, sb, len));
    }
    return f;
}

static g_frag int_range(sc *c, long long lo, long long hi) {
    g_frag f = g_never(&c->a);
    if (hi >= 0 && lo <= hi) f = nonneg_range(c, lo > 0 ? lo : 0, hi);
    if (lo < 0 && lo <= hi) {
        long long nlo = hi < 0 ? -hi : 1, nhi = -lo;
        f = g_alt(&c->a, f, g_cat(&c->a, lit(c, "-"), nonneg_range(c, nlo, nhi)));
    }
    return f;
}

/* A bound as an integer; 1 if present, 0 if absent, -1 on error. */
static int int_bound(sc *c, const json_t *s, const char *key, long long *out) {
    json_t *v = json_object_get(s, key);
    if (!v) return 0;
    size_t old = path_key(c, key);
    int rc = -1;
    double x = json_number_value(v);
    if (!json_is_number(v))
        failf(c, SP_GRAM_EINVALID, key, "%s at %s must be a number", key, c->path);
    else if (x != floor(x))
        failf(c, SP_GRAM_EUNSUPPORTED, key, "%s at %s: only integer bounds are enforced", key,
              c->path);
    else {
        *out = x > MAX_INT ? MAX_INT + 1 : x < -MAX_INT ? -MAX_INT - 1 : (long long)x;
        rc = 1;
    }
    path_pop(c, old);
    return rc;
}

/* [lo, hi] for integers from minimum / maximum / exclusive*; -1 on error. */
static int bounds(sc *c, const json_t *s, long long *lo, long long *hi, long long *rlo,
                  long long *rhi) {
    long long x;
    int r;
    *lo = *rlo = -MAX_INT;
    *hi = *rhi = MAX_INT;
    if ((r = int_bound(c, s, "minimum", &x)) < 0) return -1;
    if (r && x > *lo) *lo = *rlo = x;
    if ((r = int_bound(c, s, "exclusiveMinimum", &x)) < 0) return -1;
    if (r && x + 1 > *lo) *lo = x + 1, *rlo = x > *rlo ? x : *rlo;
    if ((r = int_bound(c, s, "maximum", &x)) < 0) return -1;
    if (r && x < *hi) *hi = *rhi = x;
    if ((r = int_bound(c, s, "exclusiveMaximum", &x)) < 0) return -1;
    if (r && x - 1 < *hi) *hi = x - 1, *rhi = x < *rhi ? x : *rhi;
    return 0;
}

static const char NUM_FRAC[] = "\\.[0-9]{0,14}[1-9]";

static g_frag integer(sc *c, const json_t *s) {
    long long lo, hi, rlo, rhi;
    if (bounds(c, s, &lo, &hi, &rlo, &rhi)) return g_never(&c->a);
    return int_range(c, lo, hi);
}

/* Numbers: with bounds, integers in range plus non-integers whose integer
 * part keeps them inside (x = i + f with 0 < f < 1). */
static g_frag number(sc *c, const json_t *s) {
    g_nfa *a = &c->a;
    int bounded = json_object_get(s, "minimum") || json_object_get(s, "maximum") ||
                  json_object_get(s, "exclusiveMinimum") || json_object_get(s, "exclusiveMaximum");
    if (!bounded)
        return raw_regex(c, "-?(0|[1-9][0-9]{0,14})(\\.[0-9]{1,15})?([eE][+-]?[0-9]{1,2})?", 0);
    long long lo, hi, rlo, rhi;
    if (bounds(c, s, &lo, &hi, &rlo, &rhi)) return g_never(a);
    g_frag f = int_range(c, lo, hi);
    long long plo = rlo > 0 ? rlo : 0, phi = rhi - 1; /* positive: i in [rlo, rhi - 1] */
    if (plo <= phi && phi >= 0)
        f = g_alt(a, f, g_cat(a, nonneg_range(c, plo, phi), raw_regex(c, NUM_FRAC, 0)));
    long long nlo = -rhi > 0 ? -rhi : 0, nhi = -rlo - 1; /* -(i + f) */
    if (nlo <= nhi && nhi >= 0)
        f = g_alt(
            a, f,
            g_cat(a, lit(c, "-"), g_cat(a, nonneg_range(c, nlo, nhi), raw_regex(c, NUM_FRAC, 0))));
    return f;
}

/* ---- strings ---- */

static const struct {
    const char *name, *re;
} formats[] = {
    {"date", "[0-9]{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|"
             "(?:0[13578]|1[02])-31)"},
    {"time", "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?"
             "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"},
    {"date-time", "[0-9]{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-"
                  "(?:29|30)|(?:0[13578]|1[02])-31)T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                  "(?:\\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"},
    {"uuid", "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"},
    {"email", "[A-Za-z0-9_+-]+(?:\\.[A-Za-z0-9_+-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
              "\\.)+[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?"},
    {"ipv4", "(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}"
             "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"},
};

static int length_bound(sc *c, const json_t *s, const char *key, long long *out) {
    json_t *v = json_object_get(s, key);
    if (!v) return 0;
    size_t old = path_key(c, key);
    int rc = 1;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        rc = failf(c, SP_GRAM_EINVALID, key, "%s at %s must be a non-negative integer", key,
                   c->path);
    else if (json_integer_value(v) > G_MAX_REPEAT)
        rc = failf(c, SP_GRAM_ETOO_LARGE, key, "%s at %s is above %d", key, c->path, G_MAX_REPEAT);
    else
        *out = json_integer_value(v);
    path_pop(c, old);
    return rc;
}

static g_frag json_char(g_nfa *a, void *ctx) {
    (void)ctx;
    return g_json_char(a);
}

static g_frag string_content(sc *c, const json_t *s) {
    g_nfa *a = &c->a;
    g_frag f;
    int have = 0;
    json_t *fmt = json_object_get(s, "format"), *pat = json_object_get(s, "pattern");
    if (fmt) {
        size_t old = path_key(c, "format");
        size_t i = 0, nf = sizeof formats / sizeof *formats;
        while (i < nf && (!json_is_string(fmt) || strcmp(formats[i].name, json_string_value(fmt))))
            i++;
        if (i == nf) {
            failf(c, SP_GRAM_EUNSUPPORTED, "format",
                  "format '%s' at %s is not supported (date, time, date-time, uuid, email, ipv4)",
                  json_is_string(fmt) ? json_string_value(fmt) : "?", c->path);
            path_pop(c, old);
            return g_never(a);
        }
        path_pop(c, old);
        f = raw_regex(c, formats[i].re, 1);
        have = 1;
    }
    if (pat) {
        size_t old = path_key(c, "pattern");
        g_frag p;
        char msg[200];
        if (!json_is_string(pat)) {
            failf(c, SP_GRAM_EINVALID, "pattern", "pattern at %s must be a string", c->path);
            p = g_never(a);
        } else if (g_regex(a, json_string_value(pat), json_string_length(pat), 1, 1, &p, msg,
                           sizeof msg)) {
            failf(c,
                  strstr(msg, "not supported") || strstr(msg, "unsupported") || strstr(msg, "above")
                      ? SP_GRAM_EUNSUPPORTED
                      : SP_GRAM_EINVALID,
                  "pattern", "pattern at %s: %s", c->path, msg);
            p = g_never(a);
        }
        path_pop(c, old);
        f = have ? g_frag_product(a, f, p, 0) : p;
        have = 1;
    }
    long long lo = 0, hi = -1;
    int r1 = length_bound(c, s, "minLength", &lo), r2 = length_bound(c, s, "maxLength", &hi);
    if (r1 < 0 || r2 < 0) return g_never(a);
    if (r1 || (r2 && hi >= 0)) {
        g_frag l = g_repeat(a, json_char, NULL, lo, hi);
        f = have ? g_frag_product(a, f, l, 0) : l;
        have = 1;
    }
    return have ? f : g_star_of(a, g_json_char(a));
}

static g_frag any_string(g_nfa *a) {
    g_frag f = g_cat(a, g_lit(a, "\"", 1), g_star_of(a, g_json_char(a)));
    return g_cat(a, f, g_lit(a, "\"", 1));
}

static g_frag call_rule(sc *c, int rule);
static int add_rule(sc *c, const json_t *node, const char *path);

/* A plain string is a call to one shared rule, so every plain string of
 * the schema has the same content state: one cached mask for all (the
 * broadest mask there is, ~5 ms to build). Not inside anyOf / oneOf, where
 * another alternative could also start with '"' and shadow the call. */
static g_frag string(sc *c, const json_t *s) {
    int plain = !json_object_get(s, "format") && !json_object_get(s, "pattern") &&
                !json_object_get(s, "minLength") && !json_object_get(s, "maxLength");
    if (plain && !c->in_union) {
        if (c->string_rule < 0) c->string_rule = add_rule(c, NULL, "");
        return call_rule(c, c->string_rule);
    }
    return g_cat(&c->a, g_cat(&c->a, lit(c, "\""), string_content(c, s)), lit(c, "\""));
}

/* ---- any JSON value: its own rule ---- */

static g_frag call_rule(sc *c, int rule) {
    g_frag f = {g_state(&c->a), g_state(&c->a)};
    g_call(&c->a, f.s, f.e, rule);
    c->n_calls++;
    return f;
}

static int add_rule(sc *c, const json_t *node, const char *path) {
    if (c->n_rules == MAX_RULES) {
        failf(c, SP_GRAM_ETOO_LARGE, "$ref", "more than %d recursive definitions", MAX_RULES);
        return 0;
    }
    c->rules[c->n_rules].node = node;
    snprintf(c->rules[c->n_rules].path, sizeof c->rules[c->n_rules].path, "%s", path);
    return c->n_rules++;
}

static g_frag any_value(sc *c) {
    if (c->any_rule < 0) c->any_rule = add_rule(c, NULL, "");
    return call_rule(c, c->any_rule);
}

/* { ws [ "key" ws : ws V (ws , ws "key" ws : ws V)* ws ] } with V a call. */
static g_frag any_object(sc *c) {
    g_nfa *a = &c->a;
    g_frag m = g_cat(a, g_cat(a, any_string(a), g_ws(a)), lit(c, ":"));
    m = g_cat(a, g_cat(a, m, g_ws(a)), any_value(c));
    g_frag more = g_cat(a, g_cat(a, g_cat(a, g_ws(a), lit(c, ",")), g_ws(a)), any_string(a));
    more = g_cat(a, g_cat(a, g_cat(a, more, g_ws(a)), lit(c, ":")), g_ws(a));
    more = g_cat(a, more, any_value(c));
    g_frag body = g_cat(a, g_cat(a, m, g_star_of(a, more)), g_ws(a));
    return g_cat(a, g_cat(a, g_cat(a, lit(c, "{"), g_ws(a)), g_opt(a, body)), lit(c, "}"));
}

static g_frag any_array(sc *c) {
    g_nfa *a = &c->a;
    g_frag more = g_cat(a, g_cat(a, g_cat(a, g_ws(a), lit(c, ",")), g_ws(a)), any_value(c));
    g_frag body = g_cat(a, g_cat(a, any_value(c), g_star_of(a, more)), g_ws(a));
    return g_cat(a, g_cat(a, g_cat(a, lit(c, "["), g_ws(a)), g_opt(a, body)), lit(c, "]"));
}

static g_frag any_body(sc *c) {
    g_nfa *a = &c->a;
    g_frag f = g_alt(a, any_object(c), any_array(c));
    f = g_alt(a, f, any_string(a));
    f = g_alt(a, f,
              raw_regex(c, "-?(0|[1-9][0-9]{0,14})(\\.[0-9]{1,15})?([eE][+-]?[0-9]{1,2})?", 0));
    return g_alt(a, g_alt(a, f, g_alt(a, lit(c, "true"), lit(c, "false"))), lit(c, "null"));
}

/* ---- $ref ---- */

/* JSON pointer segment: ~1 is '/', ~0 is '~' (percent-escapes refused). */
static const json_t *ref_target(sc *c, const char *ref) {
    if (ref[0] != '#') return NULL;
    const json_t *at = c->root;
    const char *p = ref + 1;
    while (*p == '/' && at) {
        p++;
        char seg[256];
        size_t n = 0;
        for (; *p && *p != '/' && n + 1 < sizeof seg; p++) {
            if (*p == '~' && (p[1] == '0' || p[1] == '1')) {
                seg[n++] = p[1] == '0' ? '~' : '/';
                p++;
            } else if (*p == '%')
                return NULL;
            else
                seg[n++] = *p;
        }
        seg[n] = 0;
        if (json_is_array(at)) {
            char *end;
            long i = strtol(seg, &end, 10);
            at = *end || i < 0 ? NULL : json_array_get(at, (size_t)i);
        } else {
            at = json_object_get(at, seg);
        }
    }
    return *p ? NULL : at;
}

static g_frag ref(sc *c, const json_t *s) {
    json_t *r = json_object_get(s, "$ref");
    size_t old = path_key(c, "$ref");
    const json_t *t = json_is_string(r) ? ref_target(c, json_string_value(r)) : NULL;
    g_frag f;
    if (!t) {
        failf(c,
              json_is_string(r) && json_string_value(r)[0] != '#' ? SP_GRAM_EUNSUPPORTED
                                                                  : SP_GRAM_EINVALID,
              "$ref", "$ref at %s: '%s' is not a reference to this schema (#/...) that exists",
              c->path, json_is_string(r) ? json_string_value(r) : "?");
        f = g_never(&c->a);
    } else {
        int on_stack = 0;
        for (int i = 0; i < c->depth && !on_stack; i++) on_stack = c->stack[i] == t;
        if (on_stack || c->depth == (int)(sizeof c->stack / sizeof *c->stack)) {
            int rule = -1;
            for (int i = 0; i < c->n_rules && rule < 0; i++)
                if (c->rules[i].node == t) rule = i;
            if (rule < 0) rule = add_rule(c, t, json_string_value(r));
            f = call_rule(c, rule);
        } else {
            c->stack[c->depth++] = t;
            f = compile(c, t);
            c->depth--;
        }
    }
    path_pop(c, old);
    return f;
}

/* ---- arrays ---- */

static g_frag item_at(sc *c, const json_t *s, size_t i) {
    json_t *pre = json_object_get(s, "prefixItems");
    if (i < json_array_size(pre)) {
        size_t old = path_index(c, "prefixItems", i);
        g_frag f = compile(c, json_array_get(pre, i));
        path_pop(c, old);
        return f;
    }
    json_t *items = json_object_get(s, "items");
    if (!items) return any_value(c);
    size_t old = path_key(c, "items");
    g_frag f = compile(c, items);
    path_pop(c, old);
    return f;
}

/* Closing bracket reachable from cur (after at least one item: ws first). */
static void array_stop(sc *c, int32_t cur, int nonempty, int32_t end) {
    g_frag close = nonempty ? g_cat(&c->a, g_ws(&c->a), lit(c, "]")) : lit(c, "]");
    g_eps(&c->a, cur, close.s);
    g_eps(&c->a, close.e, end);
}

static g_frag sep_item(sc *c, const json_t *s, size_t i) {
    g_nfa *a = &c->a;
    g_frag sep = g_cat(a, g_cat(a, g_ws(a), lit(c, ",")), g_ws(a));
    return g_cat(a, sep, item_at(c, s, i));
}

/* [ items ]: positions below max(prefixItems, minItems) spelled out, then
 * up to maxItems more (a loop when unbounded); stops allowed from minItems. */
static g_frag array(sc *c, const json_t *s) {
    g_nfa *a = &c->a;
    json_t *pre = json_object_get(s, "prefixItems"), *items = json_object_get(s, "items");
    if (pre && !json_is_array(pre))
        return failf(c, SP_GRAM_EINVALID, "prefixItems", "prefixItems at %s must be an array",
                     c->path),
               g_never(a);
    long long lo = 0, hi = -1;
    if (length_bound(c, s, "minItems", &lo) < 0 || length_bound(c, s, "maxItems", &hi) < 0)
        return g_never(a);
    long long npre = (long long)json_array_size(pre);
    if (json_is_false(items) || (pre && !items)) /* nothing past the prefix */
        hi = hi >= 0 && hi < npre ? hi : npre;
    long long fixed = npre > lo ? npre : lo;
    if (hi >= 0 && fixed > hi) fixed = hi;
    int32_t end = g_state(a);
    g_frag head = g_cat(a, lit(c, "["), g_ws(a));
    int32_t cur = head.e;
    for (long long i = 0; i < fixed && !failed(c); i++) {
        if (i >= lo) array_stop(c, cur, i > 0, end);
        g_frag it = i ? sep_item(c, s, (size_t)i) : item_at(c, s, 0);
        g_eps(a, cur, it.s);
        cur = it.e;
    }
    if (fixed >= lo) array_stop(c, cur, fixed > 0, end);
    if (hi < 0) { /* unbounded: a loop */
        g_frag more = g_star_of(a, sep_item(c, s, (size_t)fixed + 1));
        if (!fixed) more = g_cat(a, item_at(c, s, 0), more);
        g_eps(a, cur, more.s);
        array_stop(c, more.e, 1, end);
    }
    for (long long i = fixed; hi >= 0 && i < hi && !failed(c); i++) {
        g_frag it = i ? sep_item(c, s, (size_t)i) : item_at(c, s, 0);
        g_eps(a, cur, it.s);
        cur = it.e;
        array_stop(c, cur, 1, end);
    }
    return (g_frag){head.s, end};
}

/* ---- objects ---- */

static int is_required(const json_t *req, const char *name) {
    size_t i;
    json_t *v;
    json_array_foreach(req, i,
                       v) if (json_is_string(v) && !strcmp(json_string_value(v), name)) return 1;
    return 0;
}

/* "key" ws : ws value */
static g_frag member(sc *c, g_frag key, g_frag value) {
    g_nfa *a = &c->a;
    g_frag f = g_cat(a, g_cat(a, key, g_ws(a)), lit(c, ":"));
    return g_cat(a, g_cat(a, f, g_ws(a)), value);
}

static g_frag key_text(sc *c, const char *name) {
    json_t *k = json_string(name);
    g_frag f = k ? value_text(c, k) : g_never(&c->a);
    if (!k) c->a.err = SP_GRAM_ENOMEM;
    json_decref(k);
    return f;
}

/* Two tracks: t0 before any member, t1 after one; a member from t1 is
 * preceded by a comma. Optional members may be skipped on either track. */
typedef struct tracks {
    int32_t t0, t1;
} tracks;

static void add_member(sc *c, tracks *t, g_frag m, int optional) {
    g_nfa *a = &c->a;
    int32_t n0 = g_state(a), n1 = g_state(a);
    g_eps(a, t->t0, m.s);
    g_frag comma = g_cat(a, g_cat(a, g_ws(a), lit(c, ",")), g_ws(a));
    g_eps(a, t->t1, comma.s);
    g_eps(a, comma.e, m.s);
    g_eps(a, m.e, n1);
    if (optional) {
        g_eps(a, t->t0, n0);
        g_eps(a, t->t1, n1);
    }
    t->t0 = n0;
    t->t1 = n1;
}

/* Extra members: keys that are no declared name, values of schema ap. */
static void extra_members(sc *c, tracks *t, const json_t *s, const json_t *ap) {
    g_nfa *a = &c->a;
    json_t *props = json_object_get(s, "properties");
    g_frag names = g_never(a);
    const char *k;
    json_t *v;
    json_object_foreach(props, k, v) names = g_alt(a, names, key_text(c, k));
    g_frag key =
        json_object_size(props) ? g_frag_product(a, any_string(a), names, 1) : any_string(a);
    size_t old = path_key(c, "additionalProperties");
    g_frag m = member(c, key, json_is_true(ap) ? any_value(c) : compile(c, ap));
    path_pop(c, old);
    /* a loop: t0 -> m -> t1, t1 -> , m -> t1 */
    g_eps(a, t->t0, m.s);
    g_frag comma = g_cat(a, g_cat(a, g_ws(a), lit(c, ",")), g_ws(a));
    g_eps(a, t->t1, comma.s);
    g_eps(a, comma.e, m.s);
    g_eps(a, m.e, t->t1);
}

static g_frag object(sc *c, const json_t *s) {
    g_nfa *a = &c->a;
    json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    json_t *ap = json_object_get(s, "additionalProperties");
    json_t *uneval = json_object_get(s, "unevaluatedProperties");
    if (props && !json_is_object(props))
        return failf(c, SP_GRAM_EINVALID, "properties", "properties at %s must be an object",
                     c->path),
               g_never(a);
    if (req && !json_is_array(req))
        return failf(c, SP_GRAM_EINVALID, "required", "required at %s must be an array", c->path),
               g_never(a);
    if (uneval && !json_is_false(uneval)) {
        size_t old = path_key(c, "unevaluatedProperties");
        failf(c, SP_GRAM_EUNSUPPORTED, "unevaluatedProperties",
              "unevaluatedProperties at %s: only false is supported", c->path);
        path_pop(c, old);
        return g_never(a);
    }
    g_frag open = g_cat(a, lit(c, "{"), g_ws(a));
    tracks t = {open.e, g_state(a)};
    const char *k;
    json_t *v;
    size_t old = path_key(c, "properties");
    json_object_foreach(props, k, v) {
        size_t o2 = path_key(c, k);
        g_frag m = member(c, key_text(c, k), compile(c, v));
        path_pop(c, o2);
        add_member(c, &t, m, !is_required(req, k));
    }
    path_pop(c, old);
    size_t i;
    json_array_foreach(req, i, v) { /* required but not declared: any value */
        if (!json_is_string(v)) {
            size_t o2 = path_index(c, "required", i);
            failf(c, SP_GRAM_EINVALID, "required", "required at %s must hold strings", c->path);
            path_pop(c, o2);
            return g_never(a);
        }
        if (json_object_get(props, json_string_value(v))) continue;
        /* its value answers to additionalProperties (false: impossible) */
        g_frag val = json_is_false(ap) || (!ap && json_is_false(uneval)) ? g_never(a)
                     : ap && !json_is_true(ap)                           ? compile(c, ap)
                                                                         : any_value(c);
        add_member(c, &t, member(c, key_text(c, json_string_value(v)), val), 0);
    }
    int extras = ap ? !json_is_false(ap) : !json_object_size(props) && !uneval;
    if (extras) extra_members(c, &t, s, ap ? ap : json_true());
    int32_t end = g_state(a);
    g_frag c0 = lit(c, "}"), c1 = g_cat(a, g_ws(a), lit(c, "}"));
    g_eps(a, t.t0, c0.s);
    g_eps(a, t.t1, c1.s);
    g_eps(a, c0.e, end);
    g_eps(a, c1.e, end);
    return (g_frag){open.s, end};
}

/* ---- types, enums, combinators ---- */

enum { T_NULL = 1, T_BOOL = 2, T_INT = 4, T_FRAC = 8, T_STR = 16, T_ARR = 32, T_OBJ = 64 };

static int type_bit(const char *t) {
    static const char *names[] = {"null",   "boolean", "integer", "number",
                                  "string", "array",   "object"};
    static const int bits[] = {T_NULL, T_BOOL, T_INT, T_INT | T_FRAC, T_STR, T_ARR, T_OBJ};
    for (int i = 0; i < 7; i++)
        if (!strcmp(names[i], t)) return bits[i];
    return 0;
}

static int value_bits(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_NULL:
        return T_NULL;
    case JSON_TRUE:
    case JSON_FALSE:
        return T_BOOL;
    case JSON_INTEGER:
        return T_INT;
    case JSON_REAL:
        return json_real_value(v) == floor(json_real_value(v)) ? T_INT : T_FRAC;
    case JSON_STRING:
        return T_STR;
    case JSON_ARRAY:
        return T_ARR;
    default:
        return T_OBJ;
    }
}

/* The declared type bits; -1 on error; 0x7f when no type is given. */
static int declared_types(sc *c, const json_t *s) {
    json_t *t = json_object_get(s, "type");
    if (!t) return 0x7f;
    int bits = 0;
    size_t n = json_is_array(t) ? json_array_size(t) : 1;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_is_array(t) ? json_array_get(t, i) : t;
        int b = json_is_string(e) ? type_bit(json_string_value(e)) : 0;
        if (!b) {
            size_t old = path_key(c, "type");
            failf(c, SP_GRAM_EINVALID, "type", "type at %s: not a JSON Schema type", c->path);
            path_pop(c, old);
            return -1;
        }
        bits |= b;
    }
    return bits;
}

static g_frag literals(sc *c, const json_t *s, int types) {
    json_t *e = json_object_get(s, "enum"), *k = json_object_get(s, "const");
    g_frag f = g_never(&c->a);
    if (e && !json_is_array(e))
        return failf(c, SP_GRAM_EINVALID, "enum", "enum at %s must be an array", c->path),
               g_never(&c->a);
    size_t i;
    json_t *v;
    json_array_foreach(e, i, v) {
        if (!(value_bits(v) & types)) continue;
        if (k && !json_equal(k, v)) continue;
        f = g_alt(&c->a, f, value_text(c, v));
    }
    if (!e && (value_bits(k) & types)) f = value_text(c, k);
    return f;
}

/* Types the schema's values may have (conservative: more, never fewer). */
static int may_types(sc *c, const json_t *s, int depth) {
    if (!json_is_object(s) || depth > 16) return 0x7f;
    json_t *r = json_object_get(s, "$ref");
    if (json_is_string(r)) {
        const json_t *t = ref_target(c, json_string_value(r));
        return t ? may_types(c, t, depth + 1) : 0x7f;
    }
    json_t *alts = json_object_get(s, "anyOf");
    if (!alts) alts = json_object_get(s, "oneOf");
    if (json_is_array(alts)) {
        int bits = 0;
        size_t i;
        json_t *v;
        json_array_foreach(alts, i, v) bits |= may_types(c, v, depth + 1);
        return bits;
    }
    json_t *e = json_object_get(s, "enum"), *k = json_object_get(s, "const");
    if (k) return value_bits(k);
    if (json_is_array(e)) {
        int bits = 0;
        size_t i;
        json_t *v;
        json_array_foreach(e, i, v) bits |= value_bits(v);
        return bits;
    }
    json_t *t = json_object_get(s, "type");
    if (!t) return 0x7f;
    int bits = 0;
    size_t n = json_is_array(t) ? json_array_size(t) : 1;
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_is_array(t) ? json_array_get(t, i) : t;
        bits |= json_is_string(x) ? type_bit(json_string_value(x)) : 0x7f;
    }
    return bits;
}

static g_frag alternatives(sc *c, const json_t *s, const char *key) {
    json_t *alts = json_object_get(s, key);
    g_nfa *a = &c->a;
    if (!json_is_array(alts) || !json_array_size(alts))
        return failf(c, SP_GRAM_EINVALID, key, "%s at %s must be a non-empty array", key, c->path),
               g_never(a);
    size_t n = json_array_size(alts), i;
    int one = !strcmp(key, "oneOf"), seen = 0, overlap = 0;
    for (i = 0; one && i < n; i++) {
        int b = may_types(c, json_array_get(alts, i), 0);
        overlap |= seen & b;
        seen |= b;
    }
    /* oneOf: alternatives of disjoint types are an exact union; strings,
     * booleans and null have one spelling each, so for them a byte-level
     * difference is exact too; anything else could match twice */
    if (overlap & ~(T_STR | T_BOOL | T_NULL)) {
        size_t old = path_key(c, key);
        failf(c, SP_GRAM_EUNSUPPORTED, key,
              "oneOf at %s: alternatives that may match the same number, array or object are not "
              "enforced (use anyOf, or make their types differ)",
              c->path);
        path_pop(c, old);
        return g_never(a);
    }
    g_frag *fr = calloc(n, sizeof *fr);
    if (!fr) return c->a.err = SP_GRAM_ENOMEM, g_never(a);
    int calls0 = c->n_calls;
    c->in_union++;
    for (i = 0; i < n && !failed(c); i++) {
        size_t old = path_index(c, key, i);
        fr[i] = compile(c, json_array_get(alts, i));
        path_pop(c, old);
    }
    c->in_union--;
    g_frag f = g_never(a);
    if (overlap && c->n_calls != calls0) {
        size_t old = path_key(c, key);
        failf(c, SP_GRAM_EUNSUPPORTED, key,
              "oneOf at %s: overlapping alternatives with recursive references are not enforced",
              c->path);
        path_pop(c, old);
    } else if (overlap) {
        for (i = 0; i < n && !failed(c); i++) {
            g_frag others = g_never(a);
            for (size_t j = 0; j < n; j++)
                if (j != i) others = g_alt(a, others, fr[j]);
            f = g_alt(a, f, g_frag_product(a, fr[i], others, 1));
        }
    } else {
        for (i = 0; i < n; i++) f = g_alt(a, f, fr[i]);
    }
    free(fr);
    return f;
}

static const char *const only_type[] = {"type", "enum", "const", NULL};
static const char *const only_ref[] = {"$ref", NULL};
static const char *const only_anyof[] = {"anyOf", NULL};
static const char *const only_oneof[] = {"oneOf", NULL};
static const char *const only_allof[] = {"allOf", NULL};

static g_frag refuse_sibling(sc *c, const char *kw, const char *sib) {
    size_t old = path_key(c, sib);
    failf(c, SP_GRAM_EUNSUPPORTED, sib, "'%s' beside '%s' at %s is not supported", sib, kw,
          c->path);
    path_pop(c, old);
    return g_never(&c->a);
}

static g_frag by_type(sc *c, const json_t *s) {
    g_nfa *a = &c->a;
    int types = declared_types(c, s);
    if (types < 0) return g_never(a);
    if (json_object_get(s, "enum") || json_object_get(s, "const")) {
        const char *o = other_keyword(s, only_type);
        return o ? refuse_sibling(c, json_object_get(s, "enum") ? "enum" : "const", o)
                 : literals(c, s, types);
    }
    if (!json_object_get(s, "type")) { /* infer from the keywords (a subset is sound) */
        int t = 0;
        if (json_object_get(s, "properties") || json_object_get(s, "required") ||
            json_object_get(s, "additionalProperties") ||
            json_object_get(s, "unevaluatedProperties"))
            t |= T_OBJ;
        if (json_object_get(s, "items") || json_object_get(s, "prefixItems") ||
            json_object_get(s, "minItems") || json_object_get(s, "maxItems"))
            t |= T_ARR;
        if (json_object_get(s, "minLength") || json_object_get(s, "maxLength") ||
            json_object_get(s, "pattern") || json_object_get(s, "format"))
            t |= T_STR;
        if (json_object_get(s, "minimum") || json_object_get(s, "maximum") ||
            json_object_get(s, "exclusiveMinimum") || json_object_get(s, "exclusiveMaximum"))
            t |= T_INT | T_FRAC;
        if (!t) return any_value(c);
        types = t;
    }
    g_frag f = g_never(a);
    if (types & T_NULL) f = g_alt(a, f, lit(c, "null"));
    if (types & T_BOOL) f = g_alt(a, f, g_alt(a, lit(c, "true"), lit(c, "false")));
    if (types & T_FRAC)
        f = g_alt(a, f, number(c, s));
    else if (types & T_INT)
        f = g_alt(a, f, integer(c, s));
    if (types & T_STR) f = g_alt(a, f, string(c, s));
    if (types & T_ARR) f = g_alt(a, f, array(c, s));
    if (types & T_OBJ) f = g_alt(a, f, object(c, s));
    return f;
}

static g_frag compile(sc *c, const json_t *s) {
    g_nfa *a = &c->a;
    if (failed(c)) return g_never(a);
    if (json_is_true(s)) return any_value(c);
    if (json_is_false(s)) return g_never(a);
    if (!json_is_object(s))
        return failf(c, SP_GRAM_EINVALID, "", "the schema at %s must be an object or a boolean",
                     c->plen ? c->path : "the root"),
               g_never(a);
    if (check_keywords(c, s)) return g_never(a);
    if (++c->nest > 256) {
        c->nest--;
        return failf(c, SP_GRAM_ETOO_LARGE, "", "the schema nests deeper than 256 at %s", c->path),
               g_never(a);
    }
    g_frag f;
    const char *o;
    if (json_object_get(s, "$ref"))
        f = (o = other_keyword(s, only_ref)) ? refuse_sibling(c, "$ref", o) : ref(c, s);
    else if (json_object_get(s, "allOf")) {
        json_t *all = json_object_get(s, "allOf");
        if ((o = other_keyword(s, only_allof)))
            f = refuse_sibling(c, "allOf", o);
        else if (json_array_size(all) != 1)
            f = refuse_sibling(c, "allOf", "allOf"); /* intersections are not built */
        else {
            size_t old = path_index(c, "allOf", 0);
            f = compile(c, json_array_get(all, 0));
            path_pop(c, old);
        }
    } else if (json_object_get(s, "anyOf"))
        f = (o = other_keyword(s, only_anyof)) ? refuse_sibling(c, "anyOf", o)
                                               : alternatives(c, s, "anyOf");
    else if (json_object_get(s, "oneOf"))
        f = (o = other_keyword(s, only_oneof)) ? refuse_sibling(c, "oneOf", o)
                                               : alternatives(c, s, "oneOf");
    else
        f = by_type(c, s);
    c->nest--;
    return f;
}

/* ---- entry points ---- */

static sp_gram_status finish(sc *c, g_frag root, sp_grammar **out) {
    sp_gram_error *err = c->err;
    g_dfa dfas[MAX_RULES];
    int nd = 0, rc = 0;
    char msg[200] = "";
    if (!failed(c)) rc = g_determinize(&c->a, root, &dfas[nd++]) ? -1 : 0;
    /* rules found while compiling may find more: compile them in turn */
    for (int r = 1; r < c->n_rules && !failed(c) && !rc; r++) {
        c->depth = 0;
        g_frag f;
        path_pop(c, 0);
        path_key(c, c->rules[r].path);
        if (c->rules[r].node) {
            c->stack[c->depth++] = c->rules[r].node;
            f = compile(c, c->rules[r].node);
        } else if (r == c->string_rule) {
            f = any_string(&c->a);
        } else {
            f = any_body(c);
        }
        if (!failed(c) && g_determinize(&c->a, f, &dfas[nd++])) rc = -1, nd--;
        if (rc) break;
    }
    if (!err->status && (c->a.err || rc)) {
        err->status = c->a.err ? c->a.err : SP_GRAM_ENOMEM;
        if (err->status == SP_GRAM_ENOMEM && rc) err->status = SP_GRAM_ETOO_LARGE;
        snprintf(err->msg, sizeof err->msg, "%s",
                 err->status == SP_GRAM_ENOMEM ? "out of memory compiling the schema"
                                               : "the schema or pattern is too large to enforce");
    }
    if (!err->status) {
        rc = g_build(dfas, nd, out, msg, sizeof msg);
        if (rc) {
            err->status = (sp_gram_status)rc;
            snprintf(err->msg, sizeof err->msg, "%s", msg[0] ? msg : "the schema cannot be built");
        }
    }
    for (int i = 0; i < nd; i++) g_dfa_free(&dfas[i]);
    g_nfa_free(&c->a);
    return err->status;
}

static void sc_init(sc *c, const json_t *root, sp_gram_error *err) {
    memset(c, 0, sizeof *c);
    memset(err, 0, sizeof *err);
    c->root = root;
    c->err = err;
    c->any_rule = -1;
    c->string_rule = -1;
    c->n_rules = 1; /* rule 0: the start */
}

sp_gram_status sp_grammar_from_schema(const json_t *schema, sp_grammar **out, sp_gram_error *err) {
    sc c;
    sc_init(&c, schema, err);
    c.stack[c.depth++] = schema;
    g_frag f = g_cat(&c.a, g_ws(&c.a), compile(&c, schema));
    return finish(&c, f, out);
}

sp_gram_status sp_grammar_json_object(sp_grammar **out, sp_gram_error *err) {
    sc c;
    sc_init(&c, NULL, err);
    g_frag f = g_cat(&c.a, g_ws(&c.a), any_object(&c));
    return finish(&c, f, out);
}

sp_gram_status sp_grammar_from_regex(const char *re, sp_grammar **out, sp_gram_error *err) {
    sc c;
    sc_init(&c, NULL, err);
    g_frag f;
    char msg[200];
    if (g_regex(&c.a, re, strlen(re), 0, 0, &f, msg, sizeof msg)) {
        failf(&c,
              strstr(msg, "not supported") || strstr(msg, "unsupported") ? SP_GRAM_EUNSUPPORTED
                                                                         : SP_GRAM_EINVALID,
              "", "%s", msg);
        g_nfa_free(&c.a);
        return err->status;
    }
    return finish(&c, f, out);
}

sp_gram_status sp_grammar_from_choices(const char *const *choices, int n, sp_grammar **out,
                                       sp_gram_error *err) {
    sc c;
    sc_init(&c, NULL, err);
    g_frag f = g_never(&c.a);
    for (int i = 0; i < n; i++) f = g_alt(&c.a, f, lit(&c, choices[i]));
    return finish(&c, f, out);
}
