/* Attribute and item access with jinja2's fallbacks (a.b tries the Python
 * attribute, then the item; a[b] tries the item, then the attribute), the
 * Python methods of str/dict/list that templates call, the sandbox's refusal
 * of mutating methods (ImmutableSandboxedEnvironment: list.append,
 * dict.update, ... raise SecurityError), and the global functions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/tpl_internal.h"

#define UNUSED_ARGS (void)pos, (void)npos, (void)kwn, (void)kwv, (void)nkw

val tpl_arg(val *pos, int npos, const char **kwn, val *kwv, int nkw, int idx, const char *name,
            val dflt) {
    if (idx >= 0 && idx < npos) return pos[idx];
    for (int i = 0; i < nkw; i++)
        if (name && !strcmp(kwn[i], name)) return kwv[i];
    return dflt;
}
#define ARG(idx, name, dflt) tpl_arg(pos, npos, kwn, kwv, nkw, idx, name, dflt)

static val need_str(rctx *r, const node *at, val v, const char *what) {
    if (v.t != V_STR) tpl_fail(r, at, "%s must be str, not %s", what, v_type_name(v));
    return v;
}

static val str_or_none(rctx *r, const node *at, val v, const char *what) {
    if (v.t == V_NONE || v.t == V_UNDEF) return v_none();
    return need_str(r, at, v, what);
}

static const char *find_bytes(const char *h, size_t hn, const char *n, size_t nn) {
    if (nn == 0) return h;
    return memmem(h, hn, n, nn);
}

/* ---- str methods ---- */

typedef val (*case_fn)(rctx *r, val s);

static val map_case(rctx *r, val s, int mode) {
    /* mode 0 upper, 1 lower, 2 title, 3 capitalize, 4 swapcase */
    tbuf b = {0};
    size_t i = 0;
    int prev_cased = 0, first = 1;
    while (i < s.u.s.n) {
        uint32_t c = u8_next(s.u.s.p, s.u.s.n, &i), o = c;
        int cased = py_upper(c) != c || py_lower(c) != c;
        switch (mode) {
        case 0:
            o = py_upper(c);
            break;
        case 1:
            o = py_lower(c);
            break;
        case 2:
            o = cased ? (prev_cased ? py_lower(c) : py_upper(c)) : c;
            break;
        case 3:
            o = first ? py_upper(c) : py_lower(c);
            break;
        case 4:
            o = py_upper(c) != c ? py_upper(c) : py_lower(c);
            break;
        }
        prev_cased = cased;
        first = 0;
        u8_put(r, &b, o);
    }
    return v_str(b.p ? b.p : "", b.n);
}

static val m_upper(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                   val *kwv, int nkw) {
    UNUSED_ARGS;
    return map_case(r, self, 0);
}
static val m_lower(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                   val *kwv, int nkw) {
    UNUSED_ARGS;
    return map_case(r, self, 1);
}
static val m_title(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                   val *kwv, int nkw) {
    UNUSED_ARGS;
    return map_case(r, self, 2);
}
static val m_capitalize(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                        val *kwv, int nkw) {
    UNUSED_ARGS;
    return map_case(r, self, 3);
}
static val m_swapcase(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                      val *kwv, int nkw) {
    UNUSED_ARGS;
    return map_case(r, self, 4);
}

static val strip_common(rctx *r, const node *at, val self, val chars, int mode) {
    chars = str_or_none(r, at, chars, "strip arg");
    if (chars.t == V_NONE) return py_strip(self, mode, NULL, 0);
    return py_strip(self, mode, chars.u.s.p, chars.u.s.n);
}
static val m_strip(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                   val *kwv, int nkw) {
    return strip_common(r, at, self, ARG(0, "chars", v_none()), 3);
}
static val m_lstrip(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                    val *kwv, int nkw) {
    return strip_common(r, at, self, ARG(0, "chars", v_none()), 1);
}
static val m_rstrip(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                    val *kwv, int nkw) {
    return strip_common(r, at, self, ARG(0, "chars", v_none()), 2);
}

static int affix_match(rctx *r, const node *at, val self, val affix, int end) {
    if (affix.t == V_LIST && affix.u.l->tuple) {
        for (size_t i = 0; i < affix.u.l->n; i++)
            if (affix_match(r, at, self, affix.u.l->items[i], end)) return 1;
        return 0;
    }
    need_str(r, at, affix, end ? "endswith arg" : "startswith arg");
    if (affix.u.s.n > self.u.s.n) return 0;
    const char *p = end ? self.u.s.p + self.u.s.n - affix.u.s.n : self.u.s.p;
    return !memcmp(p, affix.u.s.p, affix.u.s.n);
}
static val m_startswith(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                        val *kwv, int nkw) {
    return v_bool(affix_match(r, at, self, ARG(0, "prefix", v_str("", 0)), 0));
}
static val m_endswith(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                      val *kwv, int nkw) {
    return v_bool(affix_match(r, at, self, ARG(0, "suffix", v_str("", 0)), 1));
}

static val split_ws(rctx *r, val s, int64_t maxsplit) {
    val out = v_list(r, 0);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, i = 0;
    for (;;) {
        /* skip whitespace */
        while (i < n) {
            size_t j = i;
            if (!py_isspace(u8_next(p, n, &j))) break;
            i = j;
        }
        if (i >= n) break;
        if (maxsplit >= 0 && (int64_t)out.u.l->n == maxsplit) {
            list_push(r, out, v_str(p + i, n - i));
            break;
        }
        size_t start = i;
        while (i < n) {
            size_t j = i;
            if (py_isspace(u8_next(p, n, &j))) break;
            i = j;
        }
        list_push(r, out, v_str(p + start, i - start));
    }
    return out;
}

static val split_sep(rctx *r, const node *at, val s, val sep, int64_t maxsplit) {
    if (sep.u.s.n == 0) tpl_fail(r, at, "empty separator");
    val out = v_list(r, 0);
    const char *p = s.u.s.p, *e = p + s.u.s.n;
    while (maxsplit < 0 || (int64_t)out.u.l->n < maxsplit) {
        const char *hit = find_bytes(p, (size_t)(e - p), sep.u.s.p, sep.u.s.n);
        if (!hit) break;
        list_push(r, out, v_str(p, (size_t)(hit - p)));
        p = hit + sep.u.s.n;
    }
    list_push(r, out, v_str(p, (size_t)(e - p)));
    return out;
}

static int64_t int_arg(rctx *r, const node *at, val v, int64_t dflt) {
    if (v.t == V_UNDEF || v.t == V_NONE) return dflt;
    if (v.t != V_INT && v.t != V_BOOL)
        tpl_fail(r, at, "an integer is required, got %s", v_type_name(v));
    return v.u.i;
}

static val m_split(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                   val *kwv, int nkw) {
    val sep = str_or_none(r, at, ARG(0, "sep", v_none()), "separator");
    int64_t maxsplit = int_arg(r, at, ARG(1, "maxsplit", v_none()), -1);
    if (sep.t == V_NONE) return split_ws(r, self, maxsplit);
    return split_sep(r, at, self, sep, maxsplit);
}

static val m_rsplit(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                    val *kwv, int nkw) {
    val sep = str_or_none(r, at, ARG(0, "sep", v_none()), "separator");
    int64_t maxsplit = int_arg(r, at, ARG(1, "maxsplit", v_none()), -1);
    if (sep.t == V_NONE) {
        if (maxsplit >= 0) tpl_fail(r, at, "rsplit() with maxsplit needs a separator here");
        return split_ws(r, self, -1);
    }
    if (sep.u.s.n == 0) tpl_fail(r, at, "empty separator");
    /* collect from the right, then reverse */
    val rev = v_list(r, 0);
    const char *b = self.u.s.p, *e = b + self.u.s.n;
    while (maxsplit < 0 || (int64_t)rev.u.l->n < maxsplit) {
        const char *hit = NULL;
        for (const char *q = e - sep.u.s.n; q >= b; q--)
            if (!memcmp(q, sep.u.s.p, sep.u.s.n)) {
                hit = q;
                break;
            }
        if (!hit) break;
        list_push(r, rev, v_str(hit + sep.u.s.n, (size_t)(e - hit - sep.u.s.n)));
        e = hit;
    }
    list_push(r, rev, v_str(b, (size_t)(e - b)));
    val out = v_list(r, rev.u.l->n);
    for (size_t i = rev.u.l->n; i-- > 0;) list_push(r, out, rev.u.l->items[i]);
    return out;
}

static int is_line_break(uint32_t c) {
    return c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d ||
           c == 0x1e || c == 0x85 || c == 0x2028 || c == 0x2029;
}

val tpl_splitlines(rctx *r, val s, int keepends) {
    val out = v_list(r, 0);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, i = 0, start = 0;
    while (i < n) {
        size_t j = i;
        uint32_t c = u8_next(p, n, &j);
        if (!is_line_break(c)) {
            i = j;
            continue;
        }
        size_t end = i;
        if (c == '\r' && j < n && p[j] == '\n') j++;
        list_push(r, out, v_str(p + start, (keepends ? j : end) - start));
        start = i = j;
    }
    if (start < n) list_push(r, out, v_str(p + start, n - start));
    return out;
}

static val m_splitlines(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                        val *kwv, int nkw) {
    return tpl_splitlines(r, self, v_truthy(ARG(0, "keepends", v_bool(0))));
}

val tpl_str_replace(rctx *r, const node *at, val s, val old, val new_, int64_t count) {
    need_str(r, at, old, "replace() argument 1");
    need_str(r, at, new_, "replace() argument 2");
    tbuf b = {0};
    const char *p = s.u.s.p, *e = p + s.u.s.n;
    int64_t done = 0;
    if (old.u.s.n == 0) { /* insert between every code point */
        size_t i = 0;
        while (count < 0 || done < count) {
            tbuf_put(r, &b, new_.u.s.p, new_.u.s.n);
            done++;
            if (i >= s.u.s.n) break;
            size_t j = i;
            u8_next(s.u.s.p, s.u.s.n, &j);
            tbuf_put(r, &b, s.u.s.p + i, j - i);
            i = j;
        }
        tbuf_put(r, &b, s.u.s.p + i, s.u.s.n - i);
        return v_str(b.p ? b.p : "", b.n);
    }
    while (count < 0 || done < count) {
        const char *hit = find_bytes(p, (size_t)(e - p), old.u.s.p, old.u.s.n);
        if (!hit) break;
        tbuf_put(r, &b, p, (size_t)(hit - p));
        tbuf_put(r, &b, new_.u.s.p, new_.u.s.n);
        p = hit + old.u.s.n;
        done++;
    }
    tbuf_put(r, &b, p, (size_t)(e - p));
    return v_str(b.p ? b.p : "", b.n);
}

static val m_replace(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                     val *kwv, int nkw) {
    return tpl_str_replace(r, at, self, ARG(0, "old", v_undef(NULL)), ARG(1, "new", v_undef(NULL)),
                           int_arg(r, at, ARG(2, "count", v_none()), -1));
}

static val find_common(rctx *r, const node *at, val self, val sub, int from_right, int raise) {
    need_str(r, at, sub, "substring");
    const char *hit = NULL;
    if (!from_right) {
        hit = find_bytes(self.u.s.p, self.u.s.n, sub.u.s.p, sub.u.s.n);
    } else if (sub.u.s.n <= self.u.s.n) {
        for (const char *q = self.u.s.p + self.u.s.n - sub.u.s.n; q >= self.u.s.p; q--)
            if (!memcmp(q, sub.u.s.p, sub.u.s.n)) {
                hit = q;
                break;
            }
    }
    if (!hit) {
        if (raise) tpl_fail(r, at, "substring not found");
        return v_int(-1);
    }
    return v_int((int64_t)u8_len(self.u.s.p, (size_t)(hit - self.u.s.p)));
}
static val m_find(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn, val *kwv,
                  int nkw) {
    return find_common(r, at, self, ARG(0, "sub", v_undef(NULL)), 0, 0);
}
static val m_rfind(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                   val *kwv, int nkw) {
    return find_common(r, at, self, ARG(0, "sub", v_undef(NULL)), 1, 0);
}
static val m_index(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                   val *kwv, int nkw) {
    return find_common(r, at, self, ARG(0, "sub", v_undef(NULL)), 0, 1);
}
static val m_rindex(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                    val *kwv, int nkw) {
    return find_common(r, at, self, ARG(0, "sub", v_undef(NULL)), 1, 1);
}

static val m_count(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                   val *kwv, int nkw) {
    val sub = need_str(r, at, ARG(0, "sub", v_undef(NULL)), "count() argument");
    if (sub.u.s.n == 0) return v_int((int64_t)u8_len(self.u.s.p, self.u.s.n) + 1);
    int64_t n = 0;
    const char *p = self.u.s.p, *e = p + self.u.s.n, *hit;
    while ((hit = find_bytes(p, (size_t)(e - p), sub.u.s.p, sub.u.s.n))) {
        n++;
        p = hit + sub.u.s.n;
    }
    return v_int(n);
}

static val m_join(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn, val *kwv,
                  int nkw) {
    tlist *items = tpl_iterate(r, at, ARG(0, "iterable", v_undef(NULL)));
    tbuf b = {0};
    for (size_t i = 0; i < items->n; i++) {
        if (items->items[i].t != V_STR)
            tpl_fail(r, at, "sequence item %zu: expected str instance, %s found", i,
                     v_type_name(items->items[i]));
        if (i) tbuf_put(r, &b, self.u.s.p, self.u.s.n);
        tbuf_put(r, &b, items->items[i].u.s.p, items->items[i].u.s.n);
    }
    return v_str(b.p ? b.p : "", b.n);
}

/* str.format: {} {0} {name} {name.attr} {name[key]} with !r / !s, no format spec */
static val m_format(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                    val *kwv, int nkw) {
    tbuf b = {0};
    const char *p = self.u.s.p, *e = p + self.u.s.n;
    int auto_idx = 0;
    while (p < e) {
        if (*p == '{' && p + 1 < e && p[1] == '{') {
            tbuf_putc(r, &b, '{');
            p += 2;
            continue;
        }
        if (*p == '}' && p + 1 < e && p[1] == '}') {
            tbuf_putc(r, &b, '}');
            p += 2;
            continue;
        }
        if (*p == '}') tpl_fail(r, at, "single '}' encountered in format string");
        if (*p != '{') {
            tbuf_putc(r, &b, *p++);
            continue;
        }
        const char *f = ++p;
        while (p < e && *p != '}') p++;
        if (p >= e) tpl_fail(r, at, "expected '}' before end of string");
        const char *fe = p++;
        const char *conv = memchr(f, '!', (size_t)(fe - f));
        const char *spec = memchr(f, ':', (size_t)(fe - f));
        if (spec && (!conv || spec < conv)) {
            if (spec + 1 != fe) tpl_fail(r, at, "format specs in str.format are not supported");
            fe = spec;
        }
        char cv = 's';
        if (conv && conv < fe) {
            cv = conv + 1 < fe ? conv[1] : 's';
            fe = conv;
        }
        /* field name: first part up to . or [ */
        const char *q = f;
        while (q < fe && *q != '.' && *q != '[') q++;
        val v = v_undef(NULL);
        if (q == f) {
            v = auto_idx < npos ? pos[auto_idx] : v_undef(NULL);
            if (auto_idx >= npos) tpl_fail(r, at, "Replacement index %d out of range", auto_idx);
            auto_idx++;
        } else if (*f >= '0' && *f <= '9') {
            int k = atoi(f);
            if (k >= npos) tpl_fail(r, at, "Replacement index %d out of range", k);
            v = pos[k];
        } else {
            int found = 0;
            for (int k = 0; k < nkw; k++)
                if (strlen(kwn[k]) == (size_t)(q - f) && !memcmp(kwn[k], f, (size_t)(q - f))) {
                    v = kwv[k];
                    found = 1;
                }
            if (!found) tpl_fail(r, at, "format key '%.*s' not given", (int)(q - f), f);
        }
        while (q < fe) {
            if (*q == '.') {
                const char *s = ++q;
                while (q < fe && *q != '.' && *q != '[') q++;
                v = tpl_getattr(r, at, v, s, (size_t)(q - s));
            } else {
                const char *s = ++q;
                while (q < fe && *q != ']') q++;
                val key = (*s >= '0' && *s <= '9') ? v_int(atoll(s)) : v_str(s, (size_t)(q - s));
                v = tpl_getitem(r, at, v, key);
                if (q < fe) q++;
            }
        }
        if (cv == 'r')
            v_repr_into(r, &b, v);
        else
            v_str_into(r, &b, v);
    }
    return v_str(b.p ? b.p : "", b.n);
}

static val char_class(val self, int (*pred)(uint32_t)) {
    if (self.u.s.n == 0) return v_bool(0);
    size_t i = 0;
    while (i < self.u.s.n)
        if (!pred(u8_next(self.u.s.p, self.u.s.n, &i))) return v_bool(0);
    return v_bool(1);
}
static int is_alnum_cp(uint32_t c) {
    return py_isalpha(c) || py_isdigit(c);
}
static val m_isdigit(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                     val *kwv, int nkw) {
    UNUSED_ARGS;
    return char_class(self, py_isdigit);
}
static val m_isalpha(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                     val *kwv, int nkw) {
    UNUSED_ARGS;
    return char_class(self, py_isalpha);
}
static val m_isalnum(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                     val *kwv, int nkw) {
    UNUSED_ARGS;
    return char_class(self, is_alnum_cp);
}
static val m_isspace(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                     val *kwv, int nkw) {
    UNUSED_ARGS;
    return char_class(self, py_isspace);
}
static val case_check(val self, int want_upper) {
    int cased = 0;
    size_t i = 0;
    while (i < self.u.s.n) {
        uint32_t c = u8_next(self.u.s.p, self.u.s.n, &i);
        if (py_upper(c) != c) { /* lowercase letter */
            if (want_upper) return v_bool(0);
            cased = 1;
        } else if (py_lower(c) != c) {
            if (!want_upper) return v_bool(0);
            cased = 1;
        }
    }
    return v_bool(cased);
}
static val m_islower(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                     val *kwv, int nkw) {
    UNUSED_ARGS;
    return case_check(self, 0);
}
static val m_isupper(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                     val *kwv, int nkw) {
    UNUSED_ARGS;
    return case_check(self, 1);
}

static val m_removeprefix(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                          val *kwv, int nkw) {
    val a = need_str(r, at, ARG(0, "prefix", v_undef(NULL)), "removeprefix arg");
    if (affix_match(r, at, self, a, 0)) return v_str(self.u.s.p + a.u.s.n, self.u.s.n - a.u.s.n);
    return self;
}
static val m_removesuffix(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                          val *kwv, int nkw) {
    val a = need_str(r, at, ARG(0, "suffix", v_undef(NULL)), "removesuffix arg");
    if (affix_match(r, at, self, a, 1)) return v_str(self.u.s.p, self.u.s.n - a.u.s.n);
    return self;
}

static val justify(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                   val *kwv, int nkw, int mode) {
    int64_t width = int_arg(r, at, ARG(0, "width", v_int(0)), 0);
    val fill = ARG(1, "fillchar", v_str(" ", 1));
    need_str(r, at, fill, "fillchar");
    int64_t len = (int64_t)u8_len(self.u.s.p, self.u.s.n);
    if (width <= len) return self;
    if (width > (1 << 24)) tpl_fail(r, at, "width too large");
    int64_t pad = width - len, left = mode == 0 ? 0 : mode == 1 ? pad : pad / 2 + (pad & width & 1);
    tbuf b = {0};
    for (int64_t i = 0; i < left; i++) tbuf_put(r, &b, fill.u.s.p, fill.u.s.n);
    tbuf_put(r, &b, self.u.s.p, self.u.s.n);
    for (int64_t i = 0; i < pad - left; i++) tbuf_put(r, &b, fill.u.s.p, fill.u.s.n);
    return v_str(b.p, b.n);
}
static val m_ljust(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                   val *kwv, int nkw) {
    return justify(r, at, self, pos, npos, kwn, kwv, nkw, 0);
}
static val m_rjust(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                   val *kwv, int nkw) {
    return justify(r, at, self, pos, npos, kwn, kwv, nkw, 1);
}
static val m_center(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                    val *kwv, int nkw) {
    return justify(r, at, self, pos, npos, kwn, kwv, nkw, 2);
}

/* ---- dict methods ---- */

static val m_get(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn, val *kwv,
                 int nkw) {
    val key = ARG(0, "key", v_undef(NULL));
    int i = dict_find(self.u.d, key);
    return i >= 0 ? self.u.d->vals[i] : ARG(1, "default", v_none());
}
static val m_items(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                   val *kwv, int nkw) {
    UNUSED_ARGS;
    val out = v_list(r, self.u.d->n);
    for (size_t i = 0; i < self.u.d->n; i++) {
        val pair = v_list(r, 2);
        pair.u.l->tuple = 1;
        list_push(r, pair, self.u.d->keys[i]);
        list_push(r, pair, self.u.d->vals[i]);
        list_push(r, out, pair);
    }
    return out;
}
static val m_keys(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn, val *kwv,
                  int nkw) {
    UNUSED_ARGS;
    val out = v_list(r, self.u.d->n);
    for (size_t i = 0; i < self.u.d->n; i++) list_push(r, out, self.u.d->keys[i]);
    return out;
}
static val m_values(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                    val *kwv, int nkw) {
    UNUSED_ARGS;
    val out = v_list(r, self.u.d->n);
    for (size_t i = 0; i < self.u.d->n; i++) list_push(r, out, self.u.d->vals[i]);
    return out;
}
static val m_dict_copy(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                       val *kwv, int nkw) {
    UNUSED_ARGS;
    val out = v_dict(r, self.u.d->n);
    for (size_t i = 0; i < self.u.d->n; i++)
        dict_set(r, out.u.d, self.u.d->keys[i], self.u.d->vals[i]);
    return out;
}

/* ---- list methods ---- */

static val m_list_index(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                        val *kwv, int nkw) {
    val x = ARG(0, "value", v_undef(NULL));
    for (size_t i = 0; i < self.u.l->n; i++)
        if (v_equal(self.u.l->items[i], x)) return v_int((int64_t)i);
    tpl_fail(r, at, "value is not in list");
}
static val m_list_count(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                        val *kwv, int nkw) {
    val x = ARG(0, "value", v_undef(NULL));
    int64_t n = 0;
    for (size_t i = 0; i < self.u.l->n; i++) n += v_equal(self.u.l->items[i], x);
    return v_int(n);
}
static val m_list_pop(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                      val *kwv, int nkw) {
    tlist *l = self.u.l;
    if (l->tuple) tpl_fail(r, at, "'tuple' object has no attribute 'pop'");
    if (!l->n) tpl_fail(r, at, "pop from empty list");
    int64_t i = int_arg(r, at, ARG(0, "index", v_none()), -1);
    if (i < 0) i += (int64_t)l->n;
    if (i < 0 || i >= (int64_t)l->n) tpl_fail(r, at, "pop index out of range");
    val v = l->items[i];
    memmove(l->items + i, l->items + i + 1, (l->n - (size_t)i - 1) * sizeof(val));
    l->n--;
    return v;
}
static val m_list_copy(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                       val *kwv, int nkw) {
    UNUSED_ARGS;
    val out = v_list(r, self.u.l->n);
    for (size_t i = 0; i < self.u.l->n; i++) list_push(r, out, self.u.l->items[i]);
    return out;
}

static val m_unsafe(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                    val *kwv, int nkw) {
    UNUSED_ARGS;
    return v_none(); /* never called: tpl_call refuses unsafe methods */
}

typedef struct method {
    const char *name;
    tfunc_impl impl;
    int unsafe;
} method;

static const method str_methods[] = {
    {"upper", m_upper, 0},
    {"lower", m_lower, 0},
    {"title", m_title, 0},
    {"capitalize", m_capitalize, 0},
    {"swapcase", m_swapcase, 0},
    {"strip", m_strip, 0},
    {"lstrip", m_lstrip, 0},
    {"rstrip", m_rstrip, 0},
    {"startswith", m_startswith, 0},
    {"endswith", m_endswith, 0},
    {"split", m_split, 0},
    {"rsplit", m_rsplit, 0},
    {"splitlines", m_splitlines, 0},
    {"replace", m_replace, 0},
    {"find", m_find, 0},
    {"rfind", m_rfind, 0},
    {"index", m_index, 0},
    {"rindex", m_rindex, 0},
    {"count", m_count, 0},
    {"join", m_join, 0},
    {"format", m_format, 0},
    {"isdigit", m_isdigit, 0},
    {"isnumeric", m_isdigit, 0},
    {"isdecimal", m_isdigit, 0},
    {"isalpha", m_isalpha, 0},
    {"isalnum", m_isalnum, 0},
    {"isspace", m_isspace, 0},
    {"islower", m_islower, 0},
    {"isupper", m_isupper, 0},
    {"removeprefix", m_removeprefix, 0},
    {"removesuffix", m_removesuffix, 0},
    {"ljust", m_ljust, 0},
    {"rjust", m_rjust, 0},
    {"center", m_center, 0},
};

static const method dict_methods[] = {
    {"get", m_get, 0},       {"items", m_items, 0},    {"keys", m_keys, 0},
    {"values", m_values, 0}, {"copy", m_dict_copy, 0}, {"clear", m_unsafe, 1},
    {"pop", m_unsafe, 1},    {"popitem", m_unsafe, 1}, {"setdefault", m_unsafe, 1},
    {"update", m_unsafe, 1},
};

static const method list_methods[] = {
    {"index", m_list_index, 0}, {"count", m_list_count, 0}, {"pop", m_list_pop, 0},
    {"copy", m_list_copy, 0},   {"append", m_unsafe, 1},    {"reverse", m_unsafe, 1},
    {"insert", m_unsafe, 1},    {"sort", m_unsafe, 1},      {"extend", m_unsafe, 1},
    {"remove", m_unsafe, 1},
};

static const method *find_method(const method *tab, size_t n, const char *name, size_t len) {
    for (size_t i = 0; i < n; i++)
        if (strlen(tab[i].name) == len && !memcmp(tab[i].name, name, len)) return &tab[i];
    return NULL;
}

static val bind(rctx *r, const method *m, val self) {
    tfunc *f = tpl_alloc(r, sizeof *f);
    f->name = m->name;
    f->impl = m->impl;
    f->self = self;
    f->unsafe = m->unsafe;
    val v = {.t = V_FUNC};
    v.u.fn = f;
    return v;
}

/* the Python method `name` of obj, or V_UNDEF */
val tpl_method(rctx *r, val obj, const char *name, size_t n) {
    const method *m = NULL;
    if (obj.t == V_STR)
        m = find_method(str_methods, sizeof str_methods / sizeof *str_methods, name, n);
    else if (obj.t == V_DICT)
        m = find_method(dict_methods, sizeof dict_methods / sizeof *dict_methods, name, n);
    else if (obj.t == V_LIST && (!obj.u.l->tuple || (n == 5 && !memcmp(name, "index", 5)) ||
                                 (n == 5 && !memcmp(name, "count", 5))))
        m = find_method(list_methods, sizeof list_methods / sizeof *list_methods, name, n);
    return m ? bind(r, m, obj) : v_undef(NULL);
}

static val no_attr(rctx *r, val obj, const char *name, size_t n, int is_item) {
    char what[48];
    if (obj.t == V_NONE)
        snprintf(what, sizeof what, "'None'");
    else if (obj.t == V_NS || obj.t == V_LOOP || obj.t == V_MACRO)
        snprintf(what, sizeof what, "'%s object'", v_type_name(obj));
    else
        snprintf(what, sizeof what, "'%s object'", v_type_name(obj));
    size_t cap = n + 80;
    char *msg = tpl_alloc(r, cap);
    snprintf(msg, cap, "%s has no %s %s%.*s%s", what, is_item ? "element" : "attribute",
             is_item ? "" : "'", (int)n, name, is_item ? "" : "'");
    return v_undef(msg);
}

val tpl_getattr(rctx *r, const node *at, val obj, const char *name, size_t n) {
    if (obj.t == V_UNDEF) tpl_fail(r, at, "%s", obj.u.s.p ? obj.u.s.p : "value is undefined");
    if (n > 0 && name[0] == '_') return no_attr(r, obj, name, n, 0); /* sandbox: private */
    val m = tpl_method(r, obj, name, n);
    if (m.t != V_UNDEF) return m;
    if (obj.t == V_DICT || obj.t == V_NS) {
        for (size_t i = 0; i < obj.u.d->n; i++) {
            val k = obj.u.d->keys[i];
            if (k.t == V_STR && k.u.s.n == n && !memcmp(k.u.s.p, name, n)) return obj.u.d->vals[i];
        }
    } else if (obj.t == V_LOOP) {
        char tmp[32];
        if (n < sizeof tmp) {
            memcpy(tmp, name, n);
            tmp[n] = 0;
            return tpl_loop_attr(r, at, obj.u.loop, tmp);
        }
    }
    return no_attr(r, obj, name, n, 0);
}

val tpl_getitem(rctx *r, const node *at, val obj, val key) {
    if (obj.t == V_UNDEF) tpl_fail(r, at, "%s", obj.u.s.p ? obj.u.s.p : "value is undefined");
    if (key.t == V_UNDEF) tpl_fail(r, at, "%s", key.u.s.p ? key.u.s.p : "value is undefined");
    int is_int = key.t == V_INT || key.t == V_BOOL;
    if (obj.t == V_DICT) {
        int i = dict_find(obj.u.d, key);
        if (i >= 0) return obj.u.d->vals[i];
    } else if ((obj.t == V_LIST || obj.t == V_STR) && is_int) {
        int64_t len = obj.t == V_LIST ? (int64_t)obj.u.l->n : (int64_t)u8_len(obj.u.s.p, obj.u.s.n);
        int64_t i = key.u.i < 0 ? key.u.i + len : key.u.i;
        if (i >= 0 && i < len) {
            if (obj.t == V_LIST) return obj.u.l->items[i];
            size_t b = u8_offset(obj.u.s.p, obj.u.s.n, (size_t)i), e = b;
            u8_next(obj.u.s.p, obj.u.s.n, &e);
            return v_str(obj.u.s.p + b, e - b);
        }
        char num[32];
        int k = snprintf(num, sizeof num, "%lld", (long long)key.u.i);
        return no_attr(r, obj, num, (size_t)k, 1);
    }
    if (key.t == V_STR) {
        if (obj.t == V_DICT) {
            val m = tpl_method(r, obj, key.u.s.p, key.u.s.n);
            if (m.t != V_UNDEF) return m;
            return no_attr(r, obj, key.u.s.p, key.u.s.n, 0);
        }
        return tpl_getattr(r, at, obj, key.u.s.p, key.u.s.n);
    }
    tbuf b = {0};
    v_repr_into(r, &b, key);
    return no_attr(r, obj, b.p ? b.p : "", b.n, 1);
}

/* ---- loop object ---- */

static val loop_cycle(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                      val *kwv, int nkw) {
    if (npos == 0) tpl_fail(r, at, "no items for cycling given");
    return pos[self.u.loop->i % (size_t)npos];
}

static val loop_changed(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                        val *kwv, int nkw) {
    tloop *l = self.u.loop;
    val cur = v_list(r, (size_t)npos + 1);
    for (int i = 0; i < npos; i++) list_push(r, cur, pos[i]);
    if (l->changed_set && v_equal(l->last_changed, cur)) return v_bool(0);
    l->last_changed = cur;
    l->changed_set = 1;
    return v_bool(1);
}

val tpl_loop_attr(rctx *r, const node *at, tloop *l, const char *name) {
    int64_t i = (int64_t)l->i, n = (int64_t)l->n;
    val self = {.t = V_LOOP};
    self.u.loop = l;
    if (!strcmp(name, "index")) return v_int(i + 1);
    if (!strcmp(name, "index0")) return v_int(i);
    if (!strcmp(name, "revindex")) return v_int(n - i);
    if (!strcmp(name, "revindex0")) return v_int(n - i - 1);
    if (!strcmp(name, "first")) return v_bool(i == 0);
    if (!strcmp(name, "last")) return v_bool(i == n - 1);
    if (!strcmp(name, "length")) return v_int(n);
    if (!strcmp(name, "depth")) return v_int(l->depth);
    if (!strcmp(name, "depth0")) return v_int(l->depth - 1);
    if (!strcmp(name, "previtem"))
        return i > 0 ? l->items[i - 1] : v_undef("there is no previous item");
    if (!strcmp(name, "nextitem"))
        return i + 1 < n ? l->items[i + 1] : v_undef("there is no next item");
    static const method cycle = {"cycle", loop_cycle, 0}, changed = {"changed", loop_changed, 0};
    if (!strcmp(name, "cycle")) return bind(r, &cycle, self);
    if (!strcmp(name, "changed")) return bind(r, &changed, self);
    return no_attr(r, self, name, strlen(name), 0);
}

/* ---- iteration ---- */

tlist *tpl_iterate(rctx *r, const node *at, val v) {
    switch (v.t) {
    case V_LIST:
        return v.u.l;
    case V_DICT: {
        val out = v_list(r, v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++) list_push(r, out, v.u.d->keys[i]);
        return out.u.l;
    }
    case V_STR: {
        val out = v_list(r, v.u.s.n);
        size_t i = 0;
        while (i < v.u.s.n) {
            size_t s = i;
            u8_next(v.u.s.p, v.u.s.n, &i);
            list_push(r, out, v_str(v.u.s.p + s, i - s));
        }
        return out.u.l;
    }
    case V_UNDEF:
        return v_list(r, 1).u.l;
    default:
        tpl_fail(r, at, "'%s' object is not iterable", v_type_name(v));
    }
}

/* ---- globals ---- */

static val g_range(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                   val *kwv, int nkw) {
    if (npos < 1 || npos > 3) tpl_fail(r, at, "range expected 1 to 3 arguments, got %d", npos);
    for (int i = 0; i < npos; i++)
        if (pos[i].t != V_INT && pos[i].t != V_BOOL)
            tpl_fail(r, at, "'%s' object cannot be interpreted as an integer", v_type_name(pos[i]));
    int64_t start = 0, stop, step = 1;
    if (npos == 1) {
        stop = pos[0].u.i;
    } else {
        start = pos[0].u.i;
        stop = pos[1].u.i;
        if (npos == 3) step = pos[2].u.i;
    }
    if (step == 0) tpl_fail(r, at, "range() arg 3 must not be zero");
    int64_t n = 0;
    if (step > 0 && stop > start) n = (stop - start + step - 1) / step;
    if (step < 0 && stop < start) n = (start - stop - step - 1) / -step;
    if (n > TPL_MAX_RANGE)
        tpl_fail(r, at, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).",
                 TPL_MAX_RANGE);
    val out = v_list(r, (size_t)n + 1);
    for (int64_t i = 0; i < n; i++) list_push(r, out, v_int(start + i * step));
    return out;
}

static void dict_update_from(rctx *r, const node *at, tdict *d, val *pos, int npos,
                             const char **kwn, val *kwv, int nkw) {
    if (npos > 1) tpl_fail(r, at, "expected at most 1 positional argument, got %d", npos);
    if (npos == 1) {
        if (pos[0].t == V_DICT || pos[0].t == V_NS) {
            for (size_t i = 0; i < pos[0].u.d->n; i++)
                dict_set(r, d, pos[0].u.d->keys[i], pos[0].u.d->vals[i]);
        } else {
            tlist *items = tpl_iterate(r, at, pos[0]);
            for (size_t i = 0; i < items->n; i++) {
                tlist *pair = tpl_iterate(r, at, items->items[i]);
                if (pair->n != 2)
                    tpl_fail(r, at, "dictionary update sequence element has wrong length");
                dict_set(r, d, pair->items[0], pair->items[1]);
            }
        }
    }
    for (int i = 0; i < nkw; i++) dict_set(r, d, v_strz(kwn[i]), kwv[i]);
}

static val g_dict(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn, val *kwv,
                  int nkw) {
    val out = v_dict(r, (size_t)nkw + 4);
    dict_update_from(r, at, out.u.d, pos, npos, kwn, kwv, nkw);
    return out;
}

static val g_namespace(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                       val *kwv, int nkw) {
    val out = v_dict(r, (size_t)nkw + 4);
    dict_update_from(r, at, out.u.d, pos, npos, kwn, kwv, nkw);
    out.t = V_NS;
    return out;
}

static val g_raise_exception(rctx *r, const node *at, val self, val *pos, int npos,
                             const char **kwn, val *kwv, int nkw) {
    val msg = ARG(0, "message", v_str("", 0));
    tbuf b = {0};
    v_str_into(r, &b, msg);
    tbuf_putc(r, &b, 0);
    tpl_fail(r, at, "%s", b.p);
}

static val g_strftime_now(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                          val *kwv, int nkw) {
    val fmt = need_str(r, at, ARG(0, "format", v_undef(NULL)), "strftime_now format");
    char *f = tpl_alloc(r, fmt.u.s.n + 1);
    memcpy(f, fmt.u.s.p, fmt.u.s.n);
    f[fmt.u.s.n] = 0;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char buf[512];
    size_t k = strftime(buf, sizeof buf, f, &tm);
    return v_str_copy(r, buf, k);
}

static tfunc globals[] = {
    {"range", g_range, {0}, 0},
    {"dict", g_dict, {0}, 0},
    {"namespace", g_namespace, {0}, 0},
    {"raise_exception", g_raise_exception, {0}, 0},
    {"strftime_now", g_strftime_now, {0}, 0},
};

val tpl_global(const char *name) {
    for (size_t i = 0; i < sizeof globals / sizeof *globals; i++)
        if (!strcmp(globals[i].name, name)) {
            val v = {.t = V_FUNC};
            v.u.fn = &globals[i]; /* never written: shared read-only by all renders */
            return v;
        }
    return v_undef(NULL);
}

val tpl_call(rctx *r, const node *at, val callee, val *pos, int npos, const char **kwn, val *kwv,
             int nkw) {
    switch (callee.t) {
    case V_FUNC:
        if (callee.u.fn->unsafe)
            tpl_fail(r, at, "access to attribute '%s' of '%s' object is unsafe.", callee.u.fn->name,
                     v_type_name(callee.u.fn->self));
        return callee.u.fn->impl(r, at, callee.u.fn->self, pos, npos, kwn, kwv, nkw);
    case V_MACRO:
        return tpl_call_macro(r, at, callee.u.m, pos, npos, kwn, kwv, nkw);
    case V_LOOP:
        return tpl_call_loop(r, at, callee.u.loop, pos, npos);
    case V_UNDEF:
        tpl_fail(r, at, "%s", callee.u.s.p ? callee.u.s.p : "value is undefined");
    default:
        tpl_fail(r, at, "'%s' object is not callable", v_type_name(callee));
    }
}
