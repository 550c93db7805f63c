/* jinja2's builtin filters and tests (filters.py / tests.py semantics), with
 * transformers' tojson in place of jinja2's HTML-safe one. Autoescape is off,
 * so `safe` is the identity and `escape` returns escaped text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/tpl_internal.h"

#define FARGS                                                                                      \
    rctx *r, const node *at, val in, val *pos, int npos, const char **kwn, val *kwv, int nkw
#define ARG(idx, name, dflt) tpl_arg(pos, npos, kwn, kwv, nkw, idx, name, dflt)

typedef val (*filter_fn)(FARGS);

static val str_of(rctx *r, val v) {
    return v_to_string(r, v);
}
static val empty_str(void) {
    return v_str("", 0);
}

static int64_t want_int(rctx *r, const node *at, val v, const char *what) {
    if (v.t == V_INT || v.t == V_BOOL) return v.u.i;
    tpl_fail(r, at, "%s must be an integer, not %s", what, v_type_name(v));
}

/* ---- string filters ---- */

static val f_trim(FARGS) {
    val chars = ARG(0, "chars", v_none());
    val s = str_of(r, in);
    if (chars.t == V_NONE || chars.t == V_UNDEF) return py_strip(s, 3, NULL, 0);
    chars = str_of(r, chars);
    return py_strip(s, 3, chars.u.s.p, chars.u.s.n);
}

static val case_filter(rctx *r, const node *at, val in, const char *method) {
    val s = str_of(r, in);
    val m = tpl_getattr(r, at, s, method, strlen(method));
    return tpl_call(r, at, m, NULL, 0, NULL, NULL, 0);
}
static val f_upper(FARGS) {
    return case_filter(r, at, in, "upper");
}
static val f_lower(FARGS) {
    return case_filter(r, at, in, "lower");
}
static val f_capitalize(FARGS) {
    return case_filter(r, at, in, "capitalize");
}

/* jinja2's title: words start after runs of "-", whitespace, "(", "{", "[", "<" */
static val f_title(FARGS) {
    val s = str_of(r, in);
    tbuf b = {0};
    size_t i = 0;
    int at_start = 1, prev_delim = -1;
    while (i < s.u.s.n) {
        uint32_t c = u8_next(s.u.s.p, s.u.s.n, &i);
        int delim = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c);
        if (prev_delim >= 0 && delim != prev_delim) at_start = 1;
        u8_put(r, &b, at_start ? py_upper(c) : py_lower(c));
        at_start = 0;
        prev_delim = delim;
    }
    return v_str(b.p ? b.p : "", b.n);
}

static val f_replace(FARGS) {
    val s = str_of(r, in);
    val count = ARG(2, "count", v_none());
    return tpl_str_replace(r, at, s, str_of(r, ARG(0, "old", v_undef(NULL))),
                           str_of(r, ARG(1, "new", v_undef(NULL))),
                           count.t == V_NONE ? -1 : want_int(r, at, count, "count"));
}

static val f_string(FARGS) {
    return str_of(r, in);
}
static val f_safe(FARGS) {
    return str_of(r, in);
}

static val f_escape(FARGS) {
    val s = str_of(r, in);
    tbuf b = {0};
    for (size_t i = 0; i < s.u.s.n; i++) {
        char c = s.u.s.p[i];
        switch (c) {
        case '&':
            tbuf_puts(r, &b, "&amp;");
            break;
        case '<':
            tbuf_puts(r, &b, "&lt;");
            break;
        case '>':
            tbuf_puts(r, &b, "&gt;");
            break;
        case '"':
            tbuf_puts(r, &b, "&#34;");
            break;
        case '\'':
            tbuf_puts(r, &b, "&#39;");
            break;
        default:
            tbuf_putc(r, &b, c);
        }
    }
    return v_str(b.p ? b.p : "", b.n);
}

static val f_indent(FARGS) {
    val width = ARG(0, "width", v_int(4));
    int first = v_truthy(ARG(1, "first", v_bool(0)));
    int blank = v_truthy(ARG(2, "blank", v_bool(0)));
    val ind;
    if (width.t == V_STR) {
        ind = width;
    } else {
        int64_t w = want_int(r, at, width, "indent width");
        tbuf ib = {0};
        for (int64_t i = 0; i < w && i < 4096; i++) tbuf_putc(r, &ib, ' ');
        ind = v_str(ib.p ? ib.p : "", ib.n);
    }
    tbuf sb = {0};
    v_str_into(r, &sb, in);
    tbuf_putc(r, &sb, '\n'); /* jinja2 appends a newline so splitlines keeps a last empty line */
    tlist *lines = tpl_splitlines(r, v_str(sb.p, sb.n), 0).u.l;
    tbuf b = {0};
    if (first) tbuf_put(r, &b, ind.u.s.p, ind.u.s.n);
    for (size_t i = 0; i < lines->n; i++) {
        val line = lines->items[i];
        if (i) {
            tbuf_putc(r, &b, '\n');
            if (blank || line.u.s.n) tbuf_put(r, &b, ind.u.s.p, ind.u.s.n);
        }
        tbuf_put(r, &b, line.u.s.p, line.u.s.n);
    }
    return v_str(b.p ? b.p : "", b.n);
}

static val f_wordcount(FARGS) {
    val s = str_of(r, in);
    int64_t n = 0;
    int inword = 0;
    size_t i = 0;
    while (i < s.u.s.n) {
        uint32_t c = u8_next(s.u.s.p, s.u.s.n, &i);
        int w = py_isalpha(c) || py_isdigit(c) || c == '_';
        if (w && !inword) n++;
        inword = w;
    }
    return v_int(n);
}

static val f_center(FARGS) {
    val s = str_of(r, in);
    val m = tpl_getattr(r, at, s, "center", 6);
    val w = ARG(0, "width", v_int(80));
    return tpl_call(r, at, m, &w, 1, NULL, NULL, 0);
}

static val f_format(FARGS) {
    val s = str_of(r, in);
    val args;
    if (nkw) {
        args = v_dict(r, (size_t)nkw);
        for (int i = 0; i < nkw; i++) dict_set(r, args.u.d, v_strz(kwn[i]), kwv[i]);
        tpl_fail(r, at, "format filter with keyword arguments is not supported");
    }
    args = v_list(r, (size_t)npos + 1);
    args.u.l->tuple = 1;
    for (int i = 0; i < npos; i++) list_push(r, args, pos[i]);
    /* "%s" % (a, b) */
    return tpl_percent(r, at, s, args);
}

static val f_truncate(FARGS) {
    val s = str_of(r, in);
    int64_t length = want_int(r, at, ARG(0, "length", v_int(255)), "length");
    int killwords = v_truthy(ARG(1, "killwords", v_bool(0)));
    val end = str_of(r, ARG(2, "end", v_strz("...")));
    val lw = ARG(3, "leeway", v_none());
    int64_t leeway = lw.t == V_NONE ? 5 : want_int(r, at, lw, "leeway");
    int64_t n = (int64_t)u8_len(s.u.s.p, s.u.s.n), elen = (int64_t)u8_len(end.u.s.p, end.u.s.n);
    if (n <= length + leeway) return s;
    int64_t keep = length - elen;
    if (keep < 0) keep = 0;
    val head = v_str(s.u.s.p, u8_offset(s.u.s.p, s.u.s.n, (size_t)keep));
    if (!killwords) { /* drop the last partial word (rpartition on " ") */
        const char *sp = NULL;
        for (size_t i = head.u.s.n; i-- > 0;)
            if (head.u.s.p[i] == ' ') {
                sp = head.u.s.p + i;
                break;
            }
        if (sp) head.u.s.n = (size_t)(sp - head.u.s.p);
    }
    tbuf b = {0};
    tbuf_put(r, &b, head.u.s.p, head.u.s.n);
    tbuf_put(r, &b, end.u.s.p, end.u.s.n);
    return v_str(b.p, b.n);
}

/* ---- sequences ---- */

static val f_length(FARGS) {
    switch (in.t) {
    case V_STR:
        return v_int((int64_t)u8_len(in.u.s.p, in.u.s.n));
    case V_LIST:
        return v_int((int64_t)in.u.l->n);
    case V_DICT:
        return v_int((int64_t)in.u.d->n);
    case V_UNDEF:
        return v_int(0);
    default:
        tpl_fail(r, at, "object of type '%s' has no len()", v_type_name(in));
    }
}

static val f_first(FARGS) {
    tlist *l = tpl_iterate(r, at, in);
    return l->n ? l->items[0] : v_undef("No first item, sequence was empty.");
}

static val f_last(FARGS) {
    tlist *l = tpl_iterate(r, at, in);
    return l->n ? l->items[l->n - 1] : v_undef("No last item, sequence was empty.");
}

static val f_list(FARGS) {
    tlist *l = tpl_iterate(r, at, in);
    val out = v_list(r, l->n + 1);
    for (size_t i = 0; i < l->n; i++) list_push(r, out, l->items[i]);
    return out;
}

static val f_reverse(FARGS) {
    if (in.t == V_STR) {
        tlist *l = tpl_iterate(r, at, in);
        tbuf b = {0};
        for (size_t i = l->n; i-- > 0;) tbuf_put(r, &b, l->items[i].u.s.p, l->items[i].u.s.n);
        return v_str(b.p ? b.p : "", b.n);
    }
    tlist *l = tpl_iterate(r, at, in);
    val out = v_list(r, l->n + 1);
    for (size_t i = l->n; i-- > 0;) list_push(r, out, l->items[i]);
    return out;
}

static val f_items(FARGS) {
    if (in.t == V_UNDEF) return v_list(r, 1);
    if (in.t != V_DICT) tpl_fail(r, at, "can only get item pairs from a mapping.");
    val m = tpl_getattr(r, at, in, "items", 5);
    return tpl_call(r, at, m, NULL, 0, NULL, NULL, 0);
}

/* jinja2's attribute getter: "a.b.0" looks each part up item-first */
static val get_path(rctx *r, const node *at, val item, val attr) {
    if (attr.t == V_INT) return tpl_getitem(r, at, item, attr);
    val s = str_of(r, attr);
    const char *p = s.u.s.p, *e = p + s.u.s.n;
    while (p <= e) {
        const char *dot = memchr(p, '.', (size_t)(e - p));
        if (!dot) dot = e;
        val key = v_str(p, (size_t)(dot - p));
        int digits = dot > p;
        for (const char *q = p; q < dot; q++)
            if (*q < '0' || *q > '9') digits = 0;
        if (digits) key = v_int(atoll(p));
        item = tpl_getitem(r, at, item, key);
        p = dot + 1;
    }
    return item;
}

static val f_join(FARGS) {
    val sep = str_of(r, ARG(0, "d", empty_str()));
    val attr = ARG(1, "attribute", v_none());
    tlist *l = tpl_iterate(r, at, in);
    tbuf b = {0};
    for (size_t i = 0; i < l->n; i++) {
        if (i) tbuf_put(r, &b, sep.u.s.p, sep.u.s.n);
        val item = attr.t == V_NONE ? l->items[i] : get_path(r, at, l->items[i], attr);
        v_str_into(r, &b, item);
    }
    return v_str(b.p ? b.p : "", b.n);
}

static val f_default(FARGS) {
    val dflt = ARG(0, "default_value", empty_str());
    int boolean = v_truthy(ARG(1, "boolean", v_bool(0)));
    if (in.t == V_UNDEF || (boolean && !v_truthy(in))) return dflt;
    return in;
}

static val f_map(FARGS) {
    tlist *l = tpl_iterate(r, at, in);
    val out = v_list(r, l->n + 1);
    val attr = ARG(-1, "attribute", v_undef(NULL));
    if (attr.t != V_UNDEF) {
        val dflt = ARG(-1, "default", v_undef(NULL));
        for (size_t i = 0; i < l->n; i++) {
            val v = get_path(r, at, l->items[i], attr);
            list_push(r, out, (v.t == V_UNDEF && dflt.t != V_UNDEF) ? dflt : v);
        }
        return out;
    }
    if (npos < 1 || pos[0].t != V_STR) tpl_fail(r, at, "map requires a filter name or attribute=");
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)pos[0].u.s.n, pos[0].u.s.p);
    int fi = tpl_filter_index(name);
    if (fi < 0) tpl_fail(r, at, "no filter named '%s'", name);
    for (size_t i = 0; i < l->n; i++)
        list_push(r, out,
                  tpl_apply_filter(r, at, fi, name, l->items[i], pos + 1, npos - 1, kwn, kwv, nkw));
    return out;
}

/* select/reject/selectattr/rejectattr */
static val select_common(FARGS, int by_attr, int keep) {
    tlist *l = tpl_iterate(r, at, in);
    val out = v_list(r, l->n + 1);
    int base = by_attr ? 1 : 0;
    val attr = by_attr ? ARG(0, "attribute", v_undef(NULL)) : v_undef(NULL);
    int ti = -1;
    char name[64] = "";
    if (npos > base) {
        if (pos[base].t != V_STR) tpl_fail(r, at, "test name must be a string");
        snprintf(name, sizeof name, "%.*s", (int)pos[base].u.s.n, pos[base].u.s.p);
        ti = tpl_test_index(name);
        if (ti < 0) tpl_fail(r, at, "no test named '%s'", name);
    }
    for (size_t i = 0; i < l->n; i++) {
        val item = l->items[i];
        val subject = by_attr ? get_path(r, at, item, attr) : item;
        int ok = ti < 0 ? v_truthy(subject)
                        : tpl_apply_test(r, at, ti, name, subject, pos + base + 1, npos - base - 1);
        if (ok == keep) list_push(r, out, item);
    }
    return out;
}
static val f_select(FARGS) {
    return select_common(r, at, in, pos, npos, kwn, kwv, nkw, 0, 1);
}
static val f_reject(FARGS) {
    return select_common(r, at, in, pos, npos, kwn, kwv, nkw, 0, 0);
}
static val f_selectattr(FARGS) {
    return select_common(r, at, in, pos, npos, kwn, kwv, nkw, 1, 1);
}
static val f_rejectattr(FARGS) {
    return select_common(r, at, in, pos, npos, kwn, kwv, nkw, 1, 0);
}

/* sort key: lowercased strings unless case-sensitive */
static val sort_key(rctx *r, const node *at, val v, val attr, int case_sensitive) {
    if (attr.t != V_NONE && attr.t != V_UNDEF) v = get_path(r, at, v, attr);
    if (!case_sensitive && v.t == V_STR) {
        val m = tpl_getattr(r, at, v, "lower", 5);
        v = tpl_call(r, at, m, NULL, 0, NULL, NULL, 0);
    }
    return v;
}

typedef struct sort_item {
    val key, v;
    size_t idx;
} sort_item;

static void merge_sort(rctx *r, const node *at, sort_item *a, sort_item *tmp, size_t n,
                       int reverse) {
    if (n < 2) return;
    size_t h = n / 2;
    merge_sort(r, at, a, tmp, h, reverse);
    merge_sort(r, at, a + h, tmp, n - h, reverse);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int c = v_compare(r, at, a[j].key, a[i].key);
        if (reverse) c = -c;
        tmp[k++] = c < 0 ? a[j++] : a[i++]; /* stable: ties keep the left item */
    }
    while (i < h) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
}

static sort_item *sorted_items(rctx *r, const node *at, tlist *l, val attr, int cs, int reverse) {
    sort_item *a = tpl_alloc(r, (l->n + 1) * sizeof *a);
    sort_item *tmp = tpl_alloc(r, (l->n + 1) * sizeof *tmp);
    for (size_t i = 0; i < l->n; i++) {
        a[i].v = l->items[i];
        a[i].key = sort_key(r, at, l->items[i], attr, cs);
        a[i].idx = i;
    }
    merge_sort(r, at, a, tmp, l->n, reverse);
    return a;
}

static val f_sort(FARGS) {
    int reverse = v_truthy(ARG(0, "reverse", v_bool(0)));
    int cs = v_truthy(ARG(1, "case_sensitive", v_bool(0)));
    val attr = ARG(2, "attribute", v_none());
    tlist *l = tpl_iterate(r, at, in);
    sort_item *a = sorted_items(r, at, l, attr, cs, reverse);
    val out = v_list(r, l->n + 1);
    for (size_t i = 0; i < l->n; i++) list_push(r, out, a[i].v);
    return out;
}

static val f_dictsort(FARGS) {
    int cs = v_truthy(ARG(0, "case_sensitive", v_bool(0)));
    val by = ARG(1, "by", v_strz("key"));
    int reverse = v_truthy(ARG(2, "reverse", v_bool(0)));
    if (in.t != V_DICT) tpl_fail(r, at, "dictsort needs a mapping");
    val m = tpl_getattr(r, at, in, "items", 5);
    tlist *pairs = tpl_call(r, at, m, NULL, 0, NULL, NULL, 0).u.l;
    int by_value = by.t == V_STR && by.u.s.n == 5 && !memcmp(by.u.s.p, "value", 5);
    sort_item *a = sorted_items(r, at, pairs, v_int(by_value ? 1 : 0), cs, reverse);
    val out = v_list(r, pairs->n + 1);
    for (size_t i = 0; i < pairs->n; i++) list_push(r, out, a[i].v);
    return out;
}

static val f_unique(FARGS) {
    int cs = v_truthy(ARG(0, "case_sensitive", v_bool(0)));
    val attr = ARG(1, "attribute", v_none());
    tlist *l = tpl_iterate(r, at, in);
    val out = v_list(r, l->n + 1), seen = v_list(r, l->n + 1);
    for (size_t i = 0; i < l->n; i++) {
        val k = sort_key(r, at, l->items[i], attr, cs);
        int dup = 0;
        for (size_t j = 0; j < seen.u.l->n && !dup; j++) dup = v_equal(seen.u.l->items[j], k);
        if (dup) continue;
        list_push(r, seen, k);
        list_push(r, out, l->items[i]);
    }
    return out;
}

static val minmax(FARGS, int want_max) {
    int cs = v_truthy(ARG(0, "case_sensitive", v_bool(0)));
    val attr = ARG(1, "attribute", v_none());
    tlist *l = tpl_iterate(r, at, in);
    if (!l->n)
        return v_undef(want_max ? "No aggregated item, sequence was empty."
                                : "No aggregated item, sequence was empty.");
    size_t best = 0;
    val bk = sort_key(r, at, l->items[0], attr, cs);
    for (size_t i = 1; i < l->n; i++) {
        val k = sort_key(r, at, l->items[i], attr, cs);
        int c = v_compare(r, at, k, bk);
        if (want_max ? c > 0 : c < 0) {
            best = i;
            bk = k;
        }
    }
    return l->items[best];
}
static val f_max(FARGS) {
    return minmax(r, at, in, pos, npos, kwn, kwv, nkw, 1);
}
static val f_min(FARGS) {
    return minmax(r, at, in, pos, npos, kwn, kwv, nkw, 0);
}

static val f_sum(FARGS) {
    val attr = ARG(0, "attribute", v_none());
    val acc = ARG(1, "start", v_int(0));
    tlist *l = tpl_iterate(r, at, in);
    for (size_t i = 0; i < l->n; i++) {
        val v = attr.t == V_NONE ? l->items[i] : get_path(r, at, l->items[i], attr);
        acc = tpl_arith(r, at, '+', acc, v);
    }
    return acc;
}

static val f_batch(FARGS) {
    int64_t size = want_int(r, at, ARG(0, "linecount", v_undef(NULL)), "linecount");
    val fill = ARG(1, "fill_with", v_none());
    if (size <= 0) tpl_fail(r, at, "batch size must be positive");
    tlist *l = tpl_iterate(r, at, in);
    val out = v_list(r, 0), cur = v_list(r, (size_t)size);
    for (size_t i = 0; i < l->n; i++) {
        list_push(r, cur, l->items[i]);
        if ((int64_t)cur.u.l->n == size) {
            list_push(r, out, cur);
            cur = v_list(r, (size_t)size);
        }
    }
    if (cur.u.l->n) {
        if (fill.t != V_NONE)
            while ((int64_t)cur.u.l->n < size) list_push(r, cur, fill);
        list_push(r, out, cur);
    }
    return out;
}

static val f_attr(FARGS) {
    val name = str_of(r, ARG(0, "name", v_undef(NULL)));
    if (in.t == V_UNDEF) return in;
    if (in.t == V_DICT) /* a Python attribute only: methods, never keys */
        return tpl_method(r, in, name.u.s.p, name.u.s.n);
    return tpl_getattr(r, at, in, name.u.s.p, name.u.s.n);
}

/* ---- numbers ---- */

static val f_abs(FARGS) {
    if (in.t == V_FLOAT) return v_float(fabs(in.u.f));
    if (in.t == V_INT || in.t == V_BOOL) return v_int(in.u.i < 0 ? -in.u.i : in.u.i);
    tpl_fail(r, at, "bad operand type for abs(): '%s'", v_type_name(in));
}

/* Python float(str): surrounding whitespace, underscores between digits, inf/nan */
static int parse_float(val s, double *out) {
    val t = py_strip(s, 3, NULL, 0);
    char buf[128];
    size_t n = 0;
    for (size_t i = 0; i < t.u.s.n; i++) {
        char c = t.u.s.p[i];
        if (c == '_') continue;
        if (n + 1 >= sizeof buf) return 0;
        buf[n++] = c;
    }
    buf[n] = 0;
    if (!n) return 0;
    char *end;
    *out = strtod(buf, &end);
    if (*end) return 0;
    /* strtod accepts hex floats and "infinity"/"nan(...)"; Python accepts only some */
    for (size_t i = 0; i < n; i++)
        if (buf[i] == 'x' || buf[i] == 'X' || buf[i] == '(') return 0;
    return 1;
}

static int parse_int(val s, int base, int64_t *out) {
    val t = py_strip(s, 3, NULL, 0);
    char buf[128];
    size_t n = 0;
    for (size_t i = 0; i < t.u.s.n; i++) {
        char c = t.u.s.p[i];
        if (c == '_') continue;
        if (n + 1 >= sizeof buf) return 0;
        buf[n++] = c;
    }
    buf[n] = 0;
    if (!n) return 0;
    const char *p = buf;
    if (*p == '+' || *p == '-') p++;
    if (!*p) return 0;
    if (base == 16 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) p += 2;
    if (base == 8 && p[0] == '0' && (p[1] == 'o' || p[1] == 'O')) p += 2;
    if (base == 2 && p[0] == '0' && (p[1] == 'b' || p[1] == 'B')) p += 2;
    char *end;
    long long v = strtoll(p, &end, base);
    if (*end || end == p) return 0;
    *out = buf[0] == '-' ? -v : v;
    return 1;
}

static val f_int(FARGS) {
    val dflt = ARG(0, "default", v_int(0));
    val base = ARG(1, "base", v_int(10));
    if (in.t == V_INT) return in;
    if (in.t == V_BOOL) return v_int(in.u.i);
    if (in.t == V_FLOAT) {
        if (isnan(in.u.f) || isinf(in.u.f)) return dflt;
        return v_int((int64_t)in.u.f);
    }
    if (in.t == V_STR) {
        int64_t i;
        double f;
        if (parse_int(in, (int)want_int(r, at, base, "base"), &i)) return v_int(i);
        if (parse_float(in, &f) && !isnan(f) && !isinf(f)) return v_int((int64_t)f);
    }
    return dflt;
}

static val f_float(FARGS) {
    val dflt = ARG(0, "default", v_float(0.0));
    if (in.t == V_FLOAT) return in;
    if (in.t == V_INT || in.t == V_BOOL) return v_float((double)in.u.i);
    double f;
    if (in.t == V_STR && parse_float(in, &f)) return v_float(f);
    return dflt;
}

/* Python round(x, n): exact value, ties to even (glibc printf rounds the same way) */
static double py_round(double x, int64_t ndigits) {
    if (isnan(x) || isinf(x)) return x;
    if (ndigits > 300) return x;
    if (ndigits >= 0) {
        char buf[512];
        snprintf(buf, sizeof buf, "%.*f", (int)ndigits, x);
        return strtod(buf, NULL);
    }
    double p = pow(10.0, (double)-ndigits);
    double y = x / p, fl = floor(y), diff = y - fl;
    double rounded = diff > 0.5 ? fl + 1 : diff < 0.5 ? fl : (fmod(fl, 2) == 0 ? fl : fl + 1);
    return rounded * p;
}

static val f_round(FARGS) {
    int64_t precision = want_int(r, at, ARG(0, "precision", v_int(0)), "precision");
    val method = str_of(r, ARG(1, "method", v_strz("common")));
    if (!v_is_number(in)) tpl_fail(r, at, "round needs a number, not %s", v_type_name(in));
    if (method.u.s.n == 6 && !memcmp(method.u.s.p, "common", 6)) {
        if (in.t != V_FLOAT) return v_int(in.u.i); /* round(int, n) stays an int */
        return v_float(py_round(in.u.f, precision));
    }
    double x = v_as_double(in), p = pow(10.0, (double)precision);
    if (method.u.s.n == 4 && !memcmp(method.u.s.p, "ceil", 4)) return v_float(ceil(x * p) / p);
    if (method.u.s.n == 5 && !memcmp(method.u.s.p, "floor", 5)) return v_float(floor(x * p) / p);
    tpl_fail(r, at, "method must be common, ceil or floor");
}

/* ---- tojson (transformers' override) ---- */

static val f_tojson(FARGS) {
    int ensure_ascii = v_truthy(ARG(0, "ensure_ascii", v_bool(0)));
    val indent = ARG(1, "indent", v_none());
    val seps = ARG(2, "separators", v_none());
    int sort_keys = v_truthy(ARG(3, "sort_keys", v_bool(0)));
    const char *ind = NULL, *item_sep = NULL, *key_sep = NULL;
    if (indent.t == V_INT || indent.t == V_BOOL) {
        int64_t n = indent.u.i < 0 ? 0 : indent.u.i;
        if (n > 1024) n = 1024;
        char *s = tpl_alloc(r, (size_t)n + 1);
        memset(s, ' ', (size_t)n);
        s[n] = 0;
        ind = s;
    } else if (indent.t == V_STR) {
        ind = v_str_copy(r, indent.u.s.p, indent.u.s.n).u.s.p;
    } else if (indent.t != V_NONE && indent.t != V_UNDEF) {
        tpl_fail(r, at, "tojson: indent must be an int or a string");
    }
    if (seps.t == V_LIST && seps.u.l->n == 2 && seps.u.l->items[0].t == V_STR &&
        seps.u.l->items[1].t == V_STR) {
        item_sep = v_str_copy(r, seps.u.l->items[0].u.s.p, seps.u.l->items[0].u.s.n).u.s.p;
        key_sep = v_str_copy(r, seps.u.l->items[1].u.s.p, seps.u.l->items[1].u.s.n).u.s.p;
    } else if (seps.t != V_NONE && seps.t != V_UNDEF) {
        tpl_fail(r, at, "tojson: separators must be a pair of strings");
    }
    tbuf b = {0};
    tpl_tojson(r, at, &b, in, ensure_ascii, ind, item_sep, key_sep, sort_keys);
    return v_str(b.p ? b.p : "", b.n);
}

static const struct {
    const char *name;
    filter_fn fn;
} filters[] = {
    {"abs", f_abs},           {"attr", f_attr},
    {"batch", f_batch},       {"capitalize", f_capitalize},
    {"center", f_center},     {"count", f_length},
    {"d", f_default},         {"default", f_default},
    {"dictsort", f_dictsort}, {"e", f_escape},
    {"escape", f_escape},     {"first", f_first},
    {"float", f_float},       {"forceescape", f_escape},
    {"format", f_format},     {"indent", f_indent},
    {"int", f_int},           {"items", f_items},
    {"join", f_join},         {"last", f_last},
    {"length", f_length},     {"list", f_list},
    {"lower", f_lower},       {"map", f_map},
    {"max", f_max},           {"min", f_min},
    {"reject", f_reject},     {"rejectattr", f_rejectattr},
    {"replace", f_replace},   {"reverse", f_reverse},
    {"round", f_round},       {"safe", f_safe},
    {"select", f_select},     {"selectattr", f_selectattr},
    {"sort", f_sort},         {"string", f_string},
    {"sum", f_sum},           {"title", f_title},
    {"tojson", f_tojson},     {"trim", f_trim},
    {"truncate", f_truncate}, {"unique", f_unique},
    {"upper", f_upper},       {"wordcount", f_wordcount},
};

int tpl_filter_index(const char *name) {
    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++)
        if (!strcmp(filters[i].name, name)) return (int)i;
    return -1;
}

val tpl_apply_filter(rctx *r, const node *at, int index, const char *name, val input, val *pos,
                     int npos, const char **kwn, val *kwv, int nkw) {
    (void)name;
    return filters[index].fn(r, at, input, pos, npos, kwn, kwv, nkw);
}

/* ---- tests ---- */

#define TARGS rctx *r, const node *at, val in, val *pos, int npos
typedef int (*test_fn)(TARGS);

static val targ(rctx *r, const node *at, val *pos, int npos, const char *test) {
    if (npos < 1) tpl_fail(r, at, "test '%s' needs an argument", test);
    return pos[0];
}

static int t_defined(TARGS) {
    return in.t != V_UNDEF;
}
static int t_undefined(TARGS) {
    return in.t == V_UNDEF;
}
static int t_none(TARGS) {
    return in.t == V_NONE;
}
static int t_boolean(TARGS) {
    return in.t == V_BOOL;
}
static int t_true(TARGS) {
    return in.t == V_BOOL && in.u.i;
}
static int t_false(TARGS) {
    return in.t == V_BOOL && !in.u.i;
}
static int t_integer(TARGS) {
    return in.t == V_INT;
}
static int t_float(TARGS) {
    return in.t == V_FLOAT;
}
static int t_number(TARGS) {
    return v_is_number(in);
}
static int t_string(TARGS) {
    return in.t == V_STR;
}
static int t_mapping(TARGS) {
    return in.t == V_DICT;
}
static int t_iterable(TARGS) {
    return in.t == V_STR || in.t == V_LIST || in.t == V_DICT || in.t == V_UNDEF;
}
static int t_sequence(TARGS) {
    return in.t == V_STR || in.t == V_LIST || in.t == V_DICT || in.t == V_UNDEF;
}
static int t_callable(TARGS) {
    return in.t == V_FUNC || in.t == V_MACRO || in.t == V_LOOP;
}
static int t_escaped(TARGS) {
    return 0;
}
static int t_odd(TARGS) {
    return (want_int(r, at, in, "odd test value") & 1) != 0;
}
static int t_even(TARGS) {
    return (want_int(r, at, in, "even test value") & 1) == 0;
}
static int t_divisibleby(TARGS) {
    int64_t d = want_int(r, at, targ(r, at, pos, npos, "divisibleby"), "divisor");
    if (d == 0) tpl_fail(r, at, "integer division or modulo by zero");
    return want_int(r, at, in, "divisibleby value") % d == 0;
}
static int t_eq(TARGS) {
    return v_equal(in, targ(r, at, pos, npos, "eq"));
}
static int t_ne(TARGS) {
    return !v_equal(in, targ(r, at, pos, npos, "ne"));
}
static int t_lt(TARGS) {
    return v_compare(r, at, in, targ(r, at, pos, npos, "lt")) < 0;
}
static int t_le(TARGS) {
    return v_compare(r, at, in, targ(r, at, pos, npos, "le")) <= 0;
}
static int t_gt(TARGS) {
    return v_compare(r, at, in, targ(r, at, pos, npos, "gt")) > 0;
}
static int t_ge(TARGS) {
    return v_compare(r, at, in, targ(r, at, pos, npos, "ge")) >= 0;
}
static int t_sameas(TARGS) {
    val o = targ(r, at, pos, npos, "sameas");
    if (in.t != o.t) return 0;
    switch (in.t) {
    case V_NONE:
    case V_UNDEF:
        return 1;
    case V_BOOL:
    case V_INT:
        return in.u.i == o.u.i;
    case V_FLOAT:
        return in.u.f == o.u.f;
    case V_STR:
        return in.u.s.p == o.u.s.p && in.u.s.n == o.u.s.n;
    default:
        return in.u.l == o.u.l;
    }
}
static int t_in(TARGS) {
    val seq = targ(r, at, pos, npos, "in");
    if (seq.t == V_STR) {
        if (in.t != V_STR) tpl_fail(r, at, "'in <string>' requires string as left operand");
        return in.u.s.n == 0 || memmem(seq.u.s.p, seq.u.s.n, in.u.s.p, in.u.s.n) != NULL;
    }
    if (seq.t == V_DICT) return dict_find(seq.u.d, in) >= 0;
    tlist *l = tpl_iterate(r, at, seq);
    for (size_t i = 0; i < l->n; i++)
        if (v_equal(l->items[i], in)) return 1;
    return 0;
}
static int t_lower(TARGS) {
    if (in.t != V_STR) return 0;
    val s = str_of(r, in), m = tpl_getattr(r, at, s, "islower", 7);
    return v_truthy(tpl_call(r, at, m, NULL, 0, NULL, NULL, 0));
}
static int t_upper(TARGS) {
    if (in.t != V_STR) return 0;
    val s = str_of(r, in), m = tpl_getattr(r, at, s, "isupper", 7);
    return v_truthy(tpl_call(r, at, m, NULL, 0, NULL, NULL, 0));
}
static int t_filter(TARGS) {
    if (in.t != V_STR) return 0;
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)in.u.s.n, in.u.s.p);
    return tpl_filter_index(name) >= 0;
}
static int t_test(TARGS) {
    if (in.t != V_STR) return 0;
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)in.u.s.n, in.u.s.p);
    return tpl_test_index(name) >= 0;
}

static const struct {
    const char *name;
    test_fn fn;
} tests[] = {
    {"!=", t_ne},
    {"<", t_lt},
    {"<=", t_le},
    {"==", t_eq},
    {">", t_gt},
    {">=", t_ge},
    {"boolean", t_boolean},
    {"callable", t_callable},
    {"defined", t_defined},
    {"divisibleby", t_divisibleby},
    {"eq", t_eq},
    {"equalto", t_eq},
    {"escaped", t_escaped},
    {"even", t_even},
    {"false", t_false},
    {"filter", t_filter},
    {"float", t_float},
    {"ge", t_ge},
    {"greaterthan", t_gt},
    {"gt", t_gt},
    {"in", t_in},
    {"integer", t_integer},
    {"iterable", t_iterable},
    {"le", t_le},
    {"lessthan", t_lt},
    {"lower", t_lower},
    {"lt", t_lt},
    {"mapping", t_mapping},
    {"ne", t_ne},
    {"none", t_none},
    {"number", t_number},
    {"odd", t_odd},
    {"sameas", t_sameas},
    {"sequence", t_sequence},
    {"string", t_string},
    {"test", t_test},
    {"true", t_true},
    {"undefined", t_undefined},
    {"upper", t_upper},
};

int tpl_test_index(const char *name) {
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++)
        if (!strcmp(tests[i].name, name)) return (int)i;
    return -1;
}

int tpl_apply_test(rctx *r, const node *at, int index, const char *name, val input, val *pos,
                   int npos) {
    (void)name;
    return tests[index].fn(r, at, input, pos, npos);
}
