/* JSON in and out: jansson documents become interpreter values (object key
 * order kept), and `tojson` reproduces Python's json.dumps as transformers
 * calls it (ensure_ascii=False by default; ", " and ": " separators, or ","
 * plus newlines when indent is given; floats as Python's repr). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/tpl_internal.h"

val tpl_from_json(rctx *r, const void *json) {
    const json_t *j = json;
    if (++r->depth > TPL_MAX_DEPTH * 4) tpl_fail(r, NULL, "input JSON nested too deep");
    val out;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        out = v_dict(r, json_object_size(j) + 1);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            dict_set(r, out.u.d, v_str(k, strlen(k)), tpl_from_json(r, v));
        }
        break;
    }
    case JSON_ARRAY: {
        out = v_list(r, json_array_size(j) + 1);
        size_t i;
        json_t *v;
        json_array_foreach((json_t *)j, i, v) list_push(r, out, tpl_from_json(r, v));
        break;
    }
    case JSON_STRING:
        out = v_str(json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        out = v_int((int64_t)json_integer_value(j));
        break;
    case JSON_REAL:
        out = v_float(json_real_value(j));
        break;
    case JSON_TRUE:
        out = v_bool(1);
        break;
    case JSON_FALSE:
        out = v_bool(0);
        break;
    default:
        out = v_none();
        break;
    }
    r->depth--;
    return out;
}

typedef struct jopts {
    int ensure_ascii, sort_keys;
    const char *indent, *item_sep, *key_sep;
} jopts;

static void dump_string(rctx *r, tbuf *b, const char *p, size_t n, int ensure_ascii) {
    tbuf_putc(r, b, '"');
    size_t i = 0;
    while (i < n) {
        size_t s = i;
        uint32_t c = u8_next(p, n, &i);
        char tmp[16];
        switch (c) {
        case '"':
            tbuf_puts(r, b, "\\\"");
            continue;
        case '\\':
            tbuf_puts(r, b, "\\\\");
            continue;
        case '\n':
            tbuf_puts(r, b, "\\n");
            continue;
        case '\r':
            tbuf_puts(r, b, "\\r");
            continue;
        case '\t':
            tbuf_puts(r, b, "\\t");
            continue;
        case '\b':
            tbuf_puts(r, b, "\\b");
            continue;
        case '\f':
            tbuf_puts(r, b, "\\f");
            continue;
        }
        if (c < 0x20 || (ensure_ascii && c >= 0x7f)) {
            if (c >= 0x10000) {
                uint32_t v = c - 0x10000;
                snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xd800 + (v >> 10),
                         0xdc00 + (v & 0x3ff));
            } else {
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
            }
            tbuf_puts(r, b, tmp);
        } else {
            tbuf_put(r, b, p + s, i - s);
        }
    }
    tbuf_putc(r, b, '"');
}

static void newline_indent(rctx *r, tbuf *b, const jopts *o, int level) {
    tbuf_putc(r, b, '\n');
    for (int i = 0; i < level; i++) tbuf_puts(r, b, o->indent);
}

/* dict keys become strings the way json.dumps converts them */
static val key_string(rctx *r, const node *at, val k) {
    char tmp[64];
    switch (k.t) {
    case V_STR:
        return k;
    case V_BOOL:
        return v_strz(k.u.i ? "true" : "false");
    case V_NONE:
        return v_strz("null");
    case V_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)k.u.i);
        return v_str_copy(r, tmp, strlen(tmp));
    case V_FLOAT:
        if (isnan(k.u.f)) return v_strz("NaN");
        if (isinf(k.u.f)) return v_strz(k.u.f < 0 ? "-Infinity" : "Infinity");
        py_float_repr(k.u.f, tmp, sizeof tmp);
        return v_str_copy(r, tmp, strlen(tmp));
    default:
        tpl_fail(r, at, "keys must be str, int, float, bool or None, not %s", v_type_name(k));
    }
}

static int key_cmp(const void *a, const void *b) {
    const val *x = a, *y = b;
    size_t n = x->u.s.n < y->u.s.n ? x->u.s.n : y->u.s.n;
    int c = memcmp(x->u.s.p, y->u.s.p, n);
    if (c) return c;
    return (x->u.s.n > y->u.s.n) - (x->u.s.n < y->u.s.n);
}

static void dump(rctx *r, const node *at, tbuf *b, val v, const jopts *o, int level) {
    char tmp[64];
    if (++r->depth > TPL_MAX_DEPTH)
        tpl_fail(r, at, "tojson: circular reference or nesting too deep");
    switch (v.t) {
    case V_NONE:
        tbuf_puts(r, b, "null");
        break;
    case V_BOOL:
        tbuf_puts(r, b, v.u.i ? "true" : "false");
        break;
    case V_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i);
        tbuf_puts(r, b, tmp);
        break;
    case V_FLOAT:
        if (isnan(v.u.f))
            tbuf_puts(r, b, "NaN");
        else if (isinf(v.u.f))
            tbuf_puts(r, b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else {
            py_float_repr(v.u.f, tmp, sizeof tmp);
            tbuf_puts(r, b, tmp);
        }
        break;
    case V_STR:
        dump_string(r, b, v.u.s.p, v.u.s.n, o->ensure_ascii);
        break;
    case V_LIST: {
        tlist *l = v.u.l;
        if (!l->n) {
            tbuf_puts(r, b, "[]");
            break;
        }
        tbuf_putc(r, b, '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i) tbuf_puts(r, b, o->item_sep);
            if (o->indent) newline_indent(r, b, o, level + 1);
            dump(r, at, b, l->items[i], o, level + 1);
        }
        if (o->indent) newline_indent(r, b, o, level);
        tbuf_putc(r, b, ']');
        break;
    }
    case V_DICT: {
        tdict *d = v.u.d;
        if (!d->n) {
            tbuf_puts(r, b, "{}");
            break;
        }
        /* (key string, original index) pairs, sorted when asked */
        val *keys = tpl_alloc(r, d->n * sizeof(val));
        for (size_t i = 0; i < d->n; i++) {
            keys[i] = key_string(r, at, d->keys[i]);
            keys[i].t = (int)i; /* the index rides in the tag; restored below */
        }
        if (o->sort_keys) {
            for (size_t i = 0; i < d->n; i++)
                if (d->keys[i].t != V_STR) tpl_fail(r, at, "tojson: sort_keys needs string keys");
            qsort(keys, d->n, sizeof(val), key_cmp);
        }
        tbuf_putc(r, b, '{');
        for (size_t i = 0; i < d->n; i++) {
            size_t idx = (size_t)keys[i].t;
            if (i) tbuf_puts(r, b, o->item_sep);
            if (o->indent) newline_indent(r, b, o, level + 1);
            dump_string(r, b, keys[i].u.s.p, keys[i].u.s.n, o->ensure_ascii);
            tbuf_puts(r, b, o->key_sep);
            dump(r, at, b, d->vals[idx], o, level + 1);
        }
        if (o->indent) newline_indent(r, b, o, level);
        tbuf_putc(r, b, '}');
        break;
    }
    default:
        tpl_fail(r, at, "Object of type %s is not JSON serializable", v_type_name(v));
    }
    r->depth--;
}

void tpl_tojson(rctx *r, const node *at, tbuf *b, val v, int ensure_ascii, const char *indent,
                const char *item_sep, const char *key_sep, int sort_keys) {
    jopts o = {ensure_ascii, sort_keys, indent, item_sep, key_sep};
    if (!o.item_sep) o.item_sep = indent ? "," : ", ";
    if (!o.key_sep) o.key_sep = ": ";
    dump(r, at, b, v, &o, 0);
}
