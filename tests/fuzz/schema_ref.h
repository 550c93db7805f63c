/* A reference JSON Schema validator for the keywords Spindle enforces
 * (chat/grammar.h), written from the spec and independent of the grammar
 * compiler: patterns go through PCRE2 (with ECMA-262's meanings of ., \s,
 * \v and $ spelled out), formats are checked by code. Used by fuzz_schema.c
 * to check that every document the automaton accepts is valid.
 * Returns 1 valid, 0 invalid, -1 when it cannot tell (a pattern PCRE2 reads
 * differently from ECMA-262). Helpers carry the fuzz_schema_ prefix (the
 * regression test includes every target in one translation unit). */
#ifndef SP_FUZZ_SCHEMA_REF_H
#define SP_FUZZ_SCHEMA_REF_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <math.h>
#include <pcre2.h>
#include <string.h>

static int fuzz_schema_valid(const json_t *v, const json_t *s, const json_t *root, int depth);

static int fuzz_schema_num(const json_t *v, double *x) {
    if (json_is_integer(v)) return *x = (double)json_integer_value(v), 1;
    if (json_is_real(v)) return *x = json_real_value(v), 1;
    return 0;
}

/* JSON Schema equality: numbers by value, objects by members. */
static int fuzz_schema_equal(const json_t *a, const json_t *b) {
    double x, y;
    if (fuzz_schema_num(a, &x) && fuzz_schema_num(b, &y)) return x == y;
    if (json_typeof(a) != json_typeof(b)) return 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!fuzz_schema_equal(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) return 0;
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)a, k, e) {
            json_t *f = json_object_get(b, k);
            if (!f || !fuzz_schema_equal(e, f)) return 0;
        }
        return 1;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

static int fuzz_schema_has_type(const json_t *v, const char *t) {
    double x;
    if (!strcmp(t, "null")) return json_is_null(v);
    if (!strcmp(t, "boolean")) return json_is_boolean(v);
    if (!strcmp(t, "integer")) return fuzz_schema_num(v, &x) && x == floor(x);
    if (!strcmp(t, "number")) return json_is_number(v);
    if (!strcmp(t, "string")) return json_is_string(v);
    if (!strcmp(t, "array")) return json_is_array(v);
    if (!strcmp(t, "object")) return json_is_object(v);
    return 0;
}

static size_t fuzz_schema_cps(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

static int fuzz_schema_digits(const char *s, int n) {
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static int fuzz_schema_2(const char *s) {
    return (s[0] - '0') * 10 + (s[1] - '0');
}

static int fuzz_schema_date(const char *s, size_t n) {
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n != 10 || !fuzz_schema_digits(s, 4) || s[4] != '-' || !fuzz_schema_digits(s + 5, 2) ||
        s[7] != '-' || !fuzz_schema_digits(s + 8, 2))
        return 0;
    int y = atoi(s), m = fuzz_schema_2(s + 5), d = fuzz_schema_2(s + 8);
    if (m < 1 || m > 12 || d < 1 || d > days[m - 1]) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(m == 2 && d == 29 && !leap);
}

static int fuzz_schema_time(const char *s, size_t n) {
    if (n < 9 || !fuzz_schema_digits(s, 2) || s[2] != ':' || !fuzz_schema_digits(s + 3, 2) ||
        s[5] != ':' || !fuzz_schema_digits(s + 6, 2))
        return 0;
    if (fuzz_schema_2(s) > 23 || fuzz_schema_2(s + 3) > 59 || fuzz_schema_2(s + 6) > 59) return 0;
    size_t i = 8;
    if (s[i] == '.') {
        size_t j = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == j) return 0;
    }
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) return i + 1 == n;
    if (i + 6 != n || (s[i] != '+' && s[i] != '-') || !fuzz_schema_digits(s + i + 1, 2) ||
        s[i + 3] != ':' || !fuzz_schema_digits(s + i + 4, 2))
        return 0;
    return fuzz_schema_2(s + i + 1) <= 23 && fuzz_schema_2(s + i + 4) <= 59;
}

static int fuzz_schema_ipv4(const char *s, size_t n) {
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        size_t j = i;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - j < 4) i++;
        if (i == j || i - j > 3 || (i - j > 1 && s[j] == '0') || atoi(s + j) > 255) return 0;
        if (part < 3 && (i >= n || s[i++] != '.')) return 0;
    }
    return i == n;
}

/* 1 match, 0 no match, -1 cannot tell. */
static int fuzz_schema_pcre(const char *re, const char *s, size_t n, uint32_t opts) {
    int err;
    PCRE2_SIZE off;
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    pcre2_set_compile_extra_options(cc, PCRE2_EXTRA_ALT_BSUX); /* \u{...} too */
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, opts, &err, &off, cc);
    pcre2_compile_context_free(cc);
    if (!c) return -1;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(c, NULL);
    int rc = pcre2_match(c, (PCRE2_SPTR)s, n, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(c);
    return rc >= 0 ? 1 : rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

#define FUZZ_SCHEMA_WS                                                                             \
    "\\t\\n\\x0b\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"

/* ECMA-262 pattern -> PCRE2 pattern, or NULL when a construct would read
 * differently (then the caller cannot tell). */
static char *fuzz_schema_ecma(const char *re) {
    size_t n = strlen(re), cap = n * 40 + 64, k = 0;
    char *o = malloc(cap);
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        const char *add = NULL;
        char one[3] = {re[i], 0, 0};
        if (re[i] == '\\' && i + 1 < n) {
            char c = re[++i];
            if (c == 's')
                add = in_class ? FUZZ_SCHEMA_WS : "[" FUZZ_SCHEMA_WS "]";
            else if (c == 'S')
                add = in_class ? NULL : "[^" FUZZ_SCHEMA_WS "]";
            else if (c == 'v')
                add = "\\x0b";
            else
                one[0] = '\\', one[1] = c;
            if (c == 'S' && in_class) {
                free(o);
                return NULL;
            }
        } else if (!in_class && re[i] == '.') {
            add = "[^\\n\\r\\u2028\\u2029]";
        } else if (!in_class && re[i] == '[') {
            if (!strncmp(re + i, "[^]", 3))
                add = "[\\s\\S]", i += 2;
            else if (!strncmp(re + i, "[]", 2))
                add = "(?!)", i += 1;
            else
                in_class = 1;
        } else if (in_class && re[i] == ']') {
            in_class = 0;
        }
        if (!add) add = one;
        size_t l = strlen(add);
        if (k + l + 1 > cap) break;
        memcpy(o + k, add, l);
        k += l;
    }
    o[k] = 0;
    return o;
}

static int fuzz_schema_string(const json_t *v, const json_t *s) {
    const char *str = json_string_value(v);
    size_t n = json_string_length(v);
    json_t *x;
    size_t cps = fuzz_schema_cps(str, n);
    if ((x = json_object_get(s, "minLength")) && cps < (size_t)json_integer_value(x)) return 0;
    if ((x = json_object_get(s, "maxLength")) && cps > (size_t)json_integer_value(x)) return 0;
    if ((x = json_object_get(s, "format"))) {
        const char *f = json_string_value(x);
        int ok = 1;
        if (!strcmp(f, "date")) ok = fuzz_schema_date(str, n);
        if (!strcmp(f, "time")) ok = fuzz_schema_time(str, n);
        if (!strcmp(f, "date-time"))
            ok = n > 11 && fuzz_schema_date(str, 10) && strchr("Tt ", str[10]) &&
                 fuzz_schema_time(str + 11, n - 11);
        if (!strcmp(f, "ipv4")) ok = fuzz_schema_ipv4(str, n);
        if (!strcmp(f, "uuid"))
            ok = fuzz_schema_pcre("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
                                  str, n, PCRE2_CASELESS) == 1;
        if (!strcmp(f, "email")) /* ajv-formats' "full" email */
            ok =
                fuzz_schema_pcre("^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                                 "@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\\.)+[a-z0-9](?:[a-z0-9-]*"
                                 "[a-z0-9])?$",
                                 str, n, PCRE2_CASELESS) == 1;
        if (!ok) return 0;
    }
    if ((x = json_object_get(s, "pattern"))) {
        char *re = fuzz_schema_ecma(json_string_value(x));
        if (!re) return -1;
        int m = fuzz_schema_pcre(
            re, str, n, PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_DOLLAR_ENDONLY | PCRE2_NO_UTF_CHECK);
        free(re);
        if (m != 1) return m;
    }
    return 1;
}

static int fuzz_schema_numeric(const json_t *v, const json_t *s) {
    double x = 0, b;
    json_t *k;
    fuzz_schema_num(v, &x);
    if ((k = json_object_get(s, "minimum")) && fuzz_schema_num(k, &b) && x < b) return 0;
    if ((k = json_object_get(s, "maximum")) && fuzz_schema_num(k, &b) && x > b) return 0;
    if ((k = json_object_get(s, "exclusiveMinimum")) && fuzz_schema_num(k, &b) && x <= b) return 0;
    if ((k = json_object_get(s, "exclusiveMaximum")) && fuzz_schema_num(k, &b) && x >= b) return 0;
    return 1;
}

static int fuzz_schema_array(const json_t *v, const json_t *s, const json_t *root, int depth) {
    size_t n = json_array_size(v);
    json_t *x, *pre = json_object_get(s, "prefixItems"), *items = json_object_get(s, "items");
    if ((x = json_object_get(s, "minItems")) && n < (size_t)json_integer_value(x)) return 0;
    if ((x = json_object_get(s, "maxItems")) && n > (size_t)json_integer_value(x)) return 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *sub = i < json_array_size(pre) ? json_array_get(pre, i) : items;
        if (!sub) continue;
        int r = fuzz_schema_valid(json_array_get(v, i), sub, root, depth + 1);
        if (r != 1) return r;
    }
    return 1;
}

static int fuzz_schema_object(const json_t *v, const json_t *s, const json_t *root, int depth) {
    json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    json_t *ap = json_object_get(s, "additionalProperties");
    json_t *ue = json_object_get(s, "unevaluatedProperties");
    size_t i;
    json_t *e;
    json_array_foreach(req, i, e) if (!json_object_get(v, json_string_value(e))) return 0;
    const char *k;
    json_object_foreach((json_t *)v, k, e) {
        json_t *p = json_object_get(props, k);
        int r = 1;
        if (p)
            r = fuzz_schema_valid(e, p, root, depth + 1);
        else if (ap)
            r = fuzz_schema_valid(e, ap, root, depth + 1);
        else if (json_is_false(ue))
            r = 0;
        if (r != 1) return r;
    }
    return 1;
}

static int fuzz_schema_valid(const json_t *v, const json_t *s, const json_t *root, int depth) {
    if (depth > 200) return -1;
    if (json_is_boolean(s)) return json_is_true(s);
    json_t *x;
    int r;
    if ((x = json_object_get(s, "$ref"))) {
        const char *p = json_string_value(x);
        json_t *t = (json_t *)root;
        if (!p || p[0] != '#') return -1;
        for (p++; *p == '/' && t;) {
            char seg[256];
            size_t k = 0;
            for (p++; *p && *p != '/' && k < 255; p++) {
                if (*p == '~' && p[1])
                    seg[k++] = p[1] == '1' ? '/' : '~', p++;
                else
                    seg[k++] = *p;
            }
            seg[k] = 0;
            t = json_is_array(t) ? json_array_get(t, (size_t)atol(seg)) : json_object_get(t, seg);
        }
        if (!t) return -1;
        if ((r = fuzz_schema_valid(v, t, root, depth + 1)) != 1) return r;
    }
    if ((x = json_object_get(s, "type"))) {
        int ok = 0;
        if (json_is_string(x)) ok = fuzz_schema_has_type(v, json_string_value(x));
        for (size_t i = 0; json_is_array(x) && i < json_array_size(x) && !ok; i++)
            ok = fuzz_schema_has_type(v, json_string_value(json_array_get(x, i)));
        if (!ok) return 0;
    }
    if ((x = json_object_get(s, "const")) && !fuzz_schema_equal(v, x)) return 0;
    if ((x = json_object_get(s, "enum"))) {
        int ok = 0;
        for (size_t i = 0; i < json_array_size(x) && !ok; i++)
            ok = fuzz_schema_equal(v, json_array_get(x, i));
        if (!ok) return 0;
    }
    if ((x = json_object_get(s, "anyOf"))) {
        int ok = 0, unsure = 0;
        for (size_t i = 0; i < json_array_size(x) && !ok; i++) {
            r = fuzz_schema_valid(v, json_array_get(x, i), root, depth + 1);
            ok = r == 1, unsure |= r < 0;
        }
        if (!ok) return unsure ? -1 : 0;
    }
    if ((x = json_object_get(s, "oneOf"))) {
        int hits = 0;
        for (size_t i = 0; i < json_array_size(x); i++) {
            r = fuzz_schema_valid(v, json_array_get(x, i), root, depth + 1);
            if (r < 0) return -1;
            hits += r;
        }
        if (hits != 1) return 0;
    }
    if ((x = json_object_get(s, "allOf")))
        for (size_t i = 0; i < json_array_size(x); i++)
            if ((r = fuzz_schema_valid(v, json_array_get(x, i), root, depth + 1)) != 1) return r;
    if (json_is_string(v)) return fuzz_schema_string(v, s);
    if (json_is_number(v)) return fuzz_schema_numeric(v, s);
    if (json_is_array(v)) return fuzz_schema_array(v, s, root, depth);
    if (json_is_object(v)) return fuzz_schema_object(v, s, root, depth);
    return 1;
}

#endif
