/* Values: constructors, containers, Python truthiness/equality/ordering and
 * Python's str()/repr() text, plus the render's error exit. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/tpl_internal.h"

_Noreturn void tpl_fail(rctx *r, const node *at, const char *fmt, ...) {
    char msg[SP_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at)
        sp_fail(r->err, SP_EINVAL, "template: %s at line %d col %d", msg, at->line, at->col);
    else
        sp_fail(r->err, SP_EINVAL, "template: %s", msg);
    longjmp(r->jb, 1);
}

void *tpl_alloc(rctx *r, size_t n) {
    void *p = tpl_arena_alloc(r->arena, n);
    if (!p) tpl_fail(r, NULL, "out of memory (render limit %zu MiB)", TPL_MAX_MEMORY >> 20);
    return p;
}

/* ---- constructors ---- */

val v_undef(const char *why) {
    val v = {.t = V_UNDEF};
    v.u.s.p = why;
    v.u.s.n = 0;
    return v;
}
val v_none(void) {
    return (val){.t = V_NONE};
}
val v_bool(int b) {
    val v = {.t = V_BOOL};
    v.u.i = b != 0;
    return v;
}
val v_int(int64_t i) {
    val v = {.t = V_INT};
    v.u.i = i;
    return v;
}
val v_float(double f) {
    val v = {.t = V_FLOAT};
    v.u.f = f;
    return v;
}
val v_str(const char *p, size_t n) {
    val v = {.t = V_STR};
    v.u.s.p = p;
    v.u.s.n = n;
    return v;
}
val v_strz(const char *p) {
    return v_str(p, strlen(p));
}
val v_str_copy(rctx *r, const char *p, size_t n) {
    char *q = tpl_alloc(r, n + 1);
    if (n) memcpy(q, p, n);
    q[n] = 0;
    return v_str(q, n);
}

val v_list(rctx *r, size_t cap) {
    tlist *l = tpl_alloc(r, sizeof *l);
    l->cap = cap ? cap : 4;
    l->n = 0;
    l->tuple = 0;
    l->items = tpl_alloc(r, l->cap * sizeof(val));
    val v = {.t = V_LIST};
    v.u.l = l;
    return v;
}

void list_push(rctx *r, val list, val item) {
    tlist *l = list.u.l;
    if (l->n == l->cap) {
        val *items = tpl_alloc(r, 2 * l->cap * sizeof(val));
        memcpy(items, l->items, l->n * sizeof(val));
        l->items = items;
        l->cap *= 2;
    }
    l->items[l->n++] = item;
}

val v_dict(rctx *r, size_t cap) {
    tdict *d = tpl_alloc(r, sizeof *d);
    d->cap = cap ? cap : 4;
    d->n = 0;
    d->keys = tpl_alloc(r, d->cap * sizeof(val));
    d->vals = tpl_alloc(r, d->cap * sizeof(val));
    val v = {.t = V_DICT};
    v.u.d = d;
    return v;
}

int dict_find(const tdict *d, val key) {
    for (size_t i = 0; i < d->n; i++)
        if (v_equal(d->keys[i], key)) return (int)i;
    return -1;
}

val dict_get_str(const tdict *d, const char *key) {
    size_t n = strlen(key);
    for (size_t i = 0; i < d->n; i++) {
        val k = d->keys[i];
        if (k.t == V_STR && k.u.s.n == n && !memcmp(k.u.s.p, key, n)) return d->vals[i];
    }
    return v_undef(NULL);
}

void dict_set(rctx *r, tdict *d, val key, val value) {
    int i = dict_find(d, key);
    if (i >= 0) {
        d->vals[i] = value;
        return;
    }
    if (d->n == d->cap) {
        val *k = tpl_alloc(r, 2 * d->cap * sizeof(val));
        val *v = tpl_alloc(r, 2 * d->cap * sizeof(val));
        memcpy(k, d->keys, d->n * sizeof(val));
        memcpy(v, d->vals, d->n * sizeof(val));
        d->keys = k;
        d->vals = v;
        d->cap *= 2;
    }
    d->keys[d->n] = key;
    d->vals[d->n] = value;
    d->n++;
}

/* ---- Python semantics ---- */

int v_truthy(val v) {
    switch (v.t) {
    case V_UNDEF:
    case V_NONE:
        return 0;
    case V_BOOL:
    case V_INT:
        return v.u.i != 0;
    case V_FLOAT:
        return v.u.f != 0.0;
    case V_STR:
        return v.u.s.n != 0;
    case V_LIST:
        return v.u.l->n != 0;
    case V_DICT:
        return v.u.d->n != 0;
    default:
        return 1;
    }
}

int v_is_number(val v) {
    return v.t == V_BOOL || v.t == V_INT || v.t == V_FLOAT;
}
double v_as_double(val v) {
    return v.t == V_FLOAT ? v.u.f : (double)v.u.i;
}

int v_equal(val a, val b) {
    if (v_is_number(a) && v_is_number(b)) {
        if (a.t != V_FLOAT && b.t != V_FLOAT) return a.u.i == b.u.i;
        return v_as_double(a) == v_as_double(b);
    }
    if (a.t != b.t) return 0;
    switch (a.t) {
    case V_UNDEF:
    case V_NONE:
        return 1;
    case V_STR:
        return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    case V_LIST:
        if (a.u.l->tuple != b.u.l->tuple || a.u.l->n != b.u.l->n) return 0;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!v_equal(a.u.l->items[i], b.u.l->items[i])) return 0;
        return 1;
    case V_DICT:
        if (a.u.d->n != b.u.d->n) return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            int j = dict_find(b.u.d, a.u.d->keys[i]);
            if (j < 0 || !v_equal(a.u.d->vals[i], b.u.d->vals[j])) return 0;
        }
        return 1;
    case V_NS:
        return a.u.d == b.u.d;
    case V_MACRO:
        return a.u.m == b.u.m;
    case V_FUNC:
        return a.u.fn == b.u.fn;
    case V_LOOP:
        return a.u.loop == b.u.loop;
    }
    return 0;
}

int v_compare(rctx *r, const node *at, val a, val b) {
    if (v_is_number(a) && v_is_number(b)) {
        if (a.t != V_FLOAT && b.t != V_FLOAT) return (a.u.i > b.u.i) - (a.u.i < b.u.i);
        double x = v_as_double(a), y = v_as_double(b);
        return (x > y) - (x < y);
    }
    if (a.t == V_STR && b.t == V_STR) {
        size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int c = memcmp(a.u.s.p, b.u.s.p, n);
        if (c) return c < 0 ? -1 : 1;
        return (a.u.s.n > b.u.s.n) - (a.u.s.n < b.u.s.n);
    }
    if (a.t == V_LIST && b.t == V_LIST) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (v_equal(a.u.l->items[i], b.u.l->items[i])) continue;
            return v_compare(r, at, a.u.l->items[i], b.u.l->items[i]);
        }
        return (a.u.l->n > b.u.l->n) - (a.u.l->n < b.u.l->n);
    }
    if (a.t == V_UNDEF || b.t == V_UNDEF) {
        val u = a.t == V_UNDEF ? a : b;
        tpl_fail(r, at, "%s", u.u.s.p ? u.u.s.p : "value is undefined");
    }
    tpl_fail(r, at, "'<' not supported between instances of '%s' and '%s'", v_type_name(a),
             v_type_name(b));
}

const char *v_type_name(val v) {
    switch (v.t) {
    case V_UNDEF:
        return "Undefined";
    case V_NONE:
        return "NoneType";
    case V_BOOL:
        return "bool";
    case V_INT:
        return "int";
    case V_FLOAT:
        return "float";
    case V_STR:
        return "str";
    case V_LIST:
        return v.u.l->tuple ? "tuple" : "list";
    case V_DICT:
        return "dict";
    case V_NS:
        return "Namespace";
    case V_MACRO:
        return "Macro";
    case V_FUNC:
        return "builtin_function_or_method";
    case V_LOOP:
        return "LoopContext";
    }
    return "object";
}

/* ---- buffers ---- */

void tbuf_put(rctx *r, tbuf *b, const char *p, size_t n) {
    if (n == 0) return;
    if (n > r->out_limit || b->n > r->out_limit - n)
        tpl_fail(r, NULL, "output too large (limit %zu MiB)", r->out_limit >> 20);
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n) cap *= 2;
        if (b->heap) {
            char *q = realloc(b->p, cap);
            if (!q) tpl_fail(r, NULL, "out of memory");
            b->p = q;
        } else {
            char *q = tpl_alloc(r, cap);
            if (b->n) memcpy(q, b->p, b->n);
            b->p = q;
        }
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
void tbuf_putc(rctx *r, tbuf *b, char c) {
    tbuf_put(r, b, &c, 1);
}
void tbuf_puts(rctx *r, tbuf *b, const char *s) {
    tbuf_put(r, b, s, strlen(s));
}

/* ---- str() and repr() ---- */

/* Python's repr(float): the shortest digits that round-trip, fixed notation
 * for exponents in [-4, 16), scientific otherwise. */
void py_float_repr(double f, char *out, size_t cap) {
    if (isnan(f)) {
        snprintf(out, cap, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(out, cap, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0) {
        snprintf(out, cap, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    char buf[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
        if (strtod(buf, NULL) == f) break;
    }
    /* buf: [-]d[.ddd]e[+-]xx */
    char digits[24];
    int nd = 0, neg = buf[0] == '-';
    const char *p = buf + neg;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    char *o = out;
    size_t left = cap;
#define EMIT(...)                                                                                  \
    do {                                                                                           \
        int k_ = snprintf(o, left, __VA_ARGS__);                                                   \
        if (k_ < 0 || (size_t)k_ >= left) return;                                                  \
        o += k_;                                                                                   \
        left -= (size_t)k_;                                                                        \
    } while (0)
    if (neg) EMIT("-");
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            EMIT("0.");
            for (int i = 0; i < -exp - 1; i++) EMIT("0");
            EMIT("%.*s", nd, digits);
        } else {
            for (int i = 0; i <= exp; i++) EMIT("%c", i < nd ? digits[i] : '0');
            EMIT(".");
            if (nd > exp + 1)
                EMIT("%.*s", nd - exp - 1, digits + exp + 1);
            else
                EMIT("0");
        }
    } else {
        EMIT("%c", digits[0]);
        if (nd > 1) EMIT(".%.*s", nd - 1, digits + 1);
        EMIT("e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
#undef EMIT
}

static void repr_str(rctx *r, tbuf *b, const char *p, size_t n) {
    int has_sq = memchr(p, '\'', n) != NULL, has_dq = memchr(p, '"', n) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    tbuf_putc(r, b, q);
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        uint32_t c = u8_next(p, n, &i);
        char tmp[16];
        if (c == (uint32_t)q || c == '\\') {
            tbuf_putc(r, b, '\\');
            tbuf_putc(r, b, (char)c);
        } else if (c == '\n') {
            tbuf_puts(r, b, "\\n");
        } else if (c == '\r') {
            tbuf_puts(r, b, "\\r");
        } else if (c == '\t') {
            tbuf_puts(r, b, "\\t");
        } else if (!py_isprintable(c)) {
            if (c < 0x100)
                snprintf(tmp, sizeof tmp, "\\x%02x", c);
            else if (c < 0x10000)
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
            else
                snprintf(tmp, sizeof tmp, "\\U%08x", c);
            tbuf_puts(r, b, tmp);
        } else {
            tbuf_put(r, b, p + start, i - start);
        }
    }
    tbuf_putc(r, b, q);
}

static void str_or_repr(rctx *r, tbuf *b, val v, int repr);

/* containers recurse; a namespace can hold itself, so the depth is bounded */
static void container_repr(rctx *r, tbuf *b, val v) {
    if (++r->depth > TPL_MAX_DEPTH) tpl_fail(r, NULL, "recursion too deep while printing a value");
    if (v.t == V_LIST) {
        tlist *l = v.u.l;
        tbuf_putc(r, b, l->tuple ? '(' : '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i) tbuf_puts(r, b, ", ");
            str_or_repr(r, b, l->items[i], 1);
        }
        if (l->tuple && l->n == 1) tbuf_putc(r, b, ',');
        tbuf_putc(r, b, l->tuple ? ')' : ']');
    } else {
        tdict *d = v.u.d;
        if (v.t == V_NS) tbuf_puts(r, b, "<Namespace ");
        tbuf_putc(r, b, '{');
        for (size_t i = 0; i < d->n; i++) {
            if (i) tbuf_puts(r, b, ", ");
            str_or_repr(r, b, d->keys[i], 1);
            tbuf_puts(r, b, ": ");
            str_or_repr(r, b, d->vals[i], 1);
        }
        tbuf_putc(r, b, '}');
        if (v.t == V_NS) tbuf_putc(r, b, '>');
    }
    r->depth--;
}

static void str_or_repr(rctx *r, tbuf *b, val v, int repr) {
    char tmp[64];
    switch (v.t) {
    case V_UNDEF:
        return;
    case V_NONE:
        tbuf_puts(r, b, "None");
        return;
    case V_BOOL:
        tbuf_puts(r, b, v.u.i ? "True" : "False");
        return;
    case V_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i);
        tbuf_puts(r, b, tmp);
        return;
    case V_FLOAT:
        py_float_repr(v.u.f, tmp, sizeof tmp);
        tbuf_puts(r, b, tmp);
        return;
    case V_STR:
        if (repr)
            repr_str(r, b, v.u.s.p, v.u.s.n);
        else
            tbuf_put(r, b, v.u.s.p, v.u.s.n);
        return;
    case V_LIST:
    case V_NS:
    case V_DICT:
        container_repr(r, b, v);
        return;
    case V_MACRO:
        snprintf(tmp, sizeof tmp, "<Macro '%.40s'>", v.u.m->def->name);
        tbuf_puts(r, b, tmp);
        return;
    case V_FUNC:
        snprintf(tmp, sizeof tmp, "<built-in method %.40s>", v.u.fn->name);
        tbuf_puts(r, b, tmp);
        return;
    case V_LOOP:
        snprintf(tmp, sizeof tmp, "<LoopContext %zu/%zu>", v.u.loop->i + 1, v.u.loop->n);
        tbuf_puts(r, b, tmp);
        return;
    }
}

void v_str_into(rctx *r, tbuf *b, val v) {
    str_or_repr(r, b, v, 0);
}
void v_repr_into(rctx *r, tbuf *b, val v) {
    if (v.t == V_UNDEF) return; /* Undefined's repr is "Undefined"; str is "" */
    str_or_repr(r, b, v, 1);
}

val v_to_string(rctx *r, val v) {
    if (v.t == V_STR) return v;
    if (v.t == V_UNDEF) return v_str("", 0);
    tbuf b = {0};
    v_str_into(r, &b, v);
    return v_str(b.p ? b.p : "", b.n);
}
