/* The evaluator: expressions to values, statements to output, with jinja2's
 * scoping (a for-loop iteration, a macro call, {% with %} and block-set
 * bodies get a child scope; {% if %} does not) and the render limits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/tpl_internal.h"

enum { FLOW_NORMAL, FLOW_BREAK, FLOW_CONTINUE };

static val eval(rctx *r, const node *x, scope *sc);
static int exec_body(rctx *r, node *const *kids, int n, scope *sc);

/* ---- scopes ---- */

static scope *scope_new(rctx *r, scope *parent) {
    scope *s = tpl_alloc(r, sizeof *s);
    memset(s, 0, sizeof *s);
    s->parent = parent;
    return s;
}

static void scope_set(rctx *r, scope *s, const char *name, val v) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name)) {
            s->vals[i] = v;
            return;
        }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 4;
        const char **names = tpl_alloc(r, cap * sizeof *names);
        val *vals = tpl_alloc(r, cap * sizeof *vals);
        if (s->n) {
            memcpy(names, s->names, s->n * sizeof *names);
            memcpy(vals, s->vals, s->n * sizeof *vals);
        }
        s->names = names;
        s->vals = vals;
        s->cap = cap;
    }
    s->names[s->n] = name;
    s->vals[s->n] = v;
    s->n++;
}

static int scope_lookup(const scope *s, const char *name, val *out) {
    for (; s; s = s->parent)
        for (size_t i = s->n; i-- > 0;)
            if (!strcmp(s->names[i], name)) {
                *out = s->vals[i];
                return 1;
            }
    return 0;
}

#define ENTER(r, at)                                                                               \
    do {                                                                                           \
        if (++(r)->depth > TPL_MAX_DEPTH) tpl_fail(r, at, "recursion too deep");                   \
    } while (0)
#define LEAVE(r) ((r)->depth--)

static void count_step(rctx *r, const node *at) {
    if (++r->iterations > TPL_MAX_ITERATIONS)
        tpl_fail(r, at, "loop limit exceeded (%ld iterations and calls)", TPL_MAX_ITERATIONS);
}

_Noreturn static void fail_undefined(rctx *r, const node *at, val u) {
    tpl_fail(r, at, "%s", u.u.s.p ? u.u.s.p : "value is undefined");
}

/* ---- arithmetic ---- */

static val repeat(rctx *r, const node *at, val seq, int64_t times) {
    if (times < 0) times = 0;
    if (seq.t == V_STR) {
        if (seq.u.s.n && (uint64_t)times > r->out_limit / seq.u.s.n)
            tpl_fail(r, at, "string too large");
        tbuf b = {0};
        for (int64_t i = 0; i < times; i++) tbuf_put(r, &b, seq.u.s.p, seq.u.s.n);
        return v_str(b.p ? b.p : "", b.n);
    }
    if (seq.u.l->n && (uint64_t)times > (1u << 24) / seq.u.l->n) tpl_fail(r, at, "list too large");
    val out = v_list(r, seq.u.l->n * (size_t)times + 1);
    out.u.l->tuple = seq.u.l->tuple;
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < seq.u.l->n; k++) list_push(r, out, seq.u.l->items[k]);
    return out;
}

static int64_t floordiv_i(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static const char *op_name(int op) {
    switch (op) {
    case OP_FLOORDIV:
        return "//";
    case OP_POW:
        return "**";
    case '+':
        return "+";
    case '-':
        return "-";
    case '*':
        return "*";
    case '/':
        return "/";
    default:
        return "%";
    }
}

val tpl_arith(rctx *r, const node *at, int op, val a, val b) {
    if (a.t == V_UNDEF) fail_undefined(r, at, a);
    if (b.t == V_UNDEF) fail_undefined(r, at, b);
    int na = v_is_number(a), nb = v_is_number(b);
    if (na && nb) {
        int ints = a.t != V_FLOAT && b.t != V_FLOAT;
        int64_t x = a.u.i, y = b.u.i;
        double fx = v_as_double(a), fy = v_as_double(b);
        int64_t ri;
        switch (op) {
        case '+':
            if (ints && !__builtin_add_overflow(x, y, &ri)) return v_int(ri);
            return v_float(fx + fy);
        case '-':
            if (ints && !__builtin_sub_overflow(x, y, &ri)) return v_int(ri);
            return v_float(fx - fy);
        case '*':
            if (ints && !__builtin_mul_overflow(x, y, &ri)) return v_int(ri);
            return v_float(fx * fy);
        case '/':
            if (fy == 0) tpl_fail(r, at, "division by zero");
            return v_float(fx / fy);
        case OP_FLOORDIV:
            if (fy == 0) tpl_fail(r, at, "integer division or modulo by zero");
            if (ints) return v_int(floordiv_i(x, y));
            return v_float(floor(fx / fy));
        case '%':
            if (fy == 0) tpl_fail(r, at, "integer division or modulo by zero");
            if (ints) return v_int(x - floordiv_i(x, y) * y);
            {
                double m = fmod(fx, fy);
                if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
                if (m == 0) m = copysign(0.0, fy); /* Python: the sign of the divisor */
                return v_float(m);
            }
        case OP_POW:
            if (ints && y >= 0) {
                int64_t acc = 1, base = x, e = y;
                int overflow = 0;
                while (e > 0 && !overflow) {
                    if (e & 1) overflow |= __builtin_mul_overflow(acc, base, &acc);
                    e >>= 1;
                    if (e) overflow |= __builtin_mul_overflow(base, base, &base);
                }
                if (!overflow) return v_int(acc);
            }
            return v_float(pow(fx, fy));
        }
    }
    if (op == '+' && a.t == V_STR && b.t == V_STR) {
        if (a.u.s.n + b.u.s.n > r->out_limit) tpl_fail(r, at, "string too large");
        char *p = tpl_alloc(r, a.u.s.n + b.u.s.n + 1);
        memcpy(p, a.u.s.p, a.u.s.n);
        memcpy(p + a.u.s.n, b.u.s.p, b.u.s.n);
        p[a.u.s.n + b.u.s.n] = 0;
        return v_str(p, a.u.s.n + b.u.s.n);
    }
    if (op == '+' && a.t == V_LIST && b.t == V_LIST && a.u.l->tuple == b.u.l->tuple) {
        val out = v_list(r, a.u.l->n + b.u.l->n);
        out.u.l->tuple = a.u.l->tuple;
        for (size_t i = 0; i < a.u.l->n; i++) list_push(r, out, a.u.l->items[i]);
        for (size_t i = 0; i < b.u.l->n; i++) list_push(r, out, b.u.l->items[i]);
        return out;
    }
    if (op == '*' && (a.t == V_STR || a.t == V_LIST) && (b.t == V_INT || b.t == V_BOOL))
        return repeat(r, at, a, b.u.i);
    if (op == '*' && (b.t == V_STR || b.t == V_LIST) && (a.t == V_INT || a.t == V_BOOL))
        return repeat(r, at, b, a.u.i);
    if (op == '%' && a.t == V_STR) return tpl_percent(r, at, a, b);
    tpl_fail(r, at, "unsupported operand type(s) for %s: '%s' and '%s'", op_name(op),
             v_type_name(a), v_type_name(b));
}

/* printf-style "%s" % x: %s %r %d %i %f %x %% with optional width/precision */
val tpl_percent(rctx *r, const node *at, val fmt, val args) {
    val *items = &args;
    size_t n = 1, k = 0;
    if (args.t == V_LIST && args.u.l->tuple) {
        items = args.u.l->items;
        n = args.u.l->n;
    }
    tbuf b = {0};
    const char *p = fmt.u.s.p, *e = p + fmt.u.s.n;
    while (p < e) {
        if (*p != '%') {
            tbuf_putc(r, &b, *p++);
            continue;
        }
        p++;
        char spec[32] = "%";
        size_t sl = 1;
        while (p < e && strchr("-+ #0123456789.", *p) && sl < 20) spec[sl++] = *p++;
        if (p >= e) tpl_fail(r, at, "incomplete format");
        char conv = *p++;
        if (conv == '%') {
            tbuf_putc(r, &b, '%');
            continue;
        }
        if (k >= n) tpl_fail(r, at, "not enough arguments for format string");
        val v = items[k++];
        char tmp[128];
        if (conv == 's' || conv == 'r') {
            tbuf s = {0};
            if (conv == 's')
                v_str_into(r, &s, v);
            else
                v_repr_into(r, &s, v);
            /* flags/width/precision count code points, as Python does */
            spec[sl] = 0;
            int left = strchr(spec, '-') != NULL;
            const char *dot = strchr(spec, '.');
            long width = strtol(spec + 1 + strspn(spec + 1, "-+ #0"), NULL, 10);
            size_t len = s.n ? u8_len(s.p, s.n) : 0;
            if (dot) {
                size_t prec = (size_t)strtol(dot + 1, NULL, 10);
                if (prec < len) {
                    s.n = u8_offset(s.p, s.n, prec);
                    len = prec;
                }
            }
            for (long pad = width - (long)len; !left && pad > 0; pad--) tbuf_putc(r, &b, ' ');
            tbuf_put(r, &b, s.p, s.n);
            for (long pad = width - (long)len; left && pad > 0; pad--) tbuf_putc(r, &b, ' ');
        } else if (conv == 'd' || conv == 'i' || conv == 'x' || conv == 'X' || conv == 'o') {
            if (!v_is_number(v)) tpl_fail(r, at, "%%%c format: a number is required", conv);
            long long iv = v.t == V_FLOAT ? (long long)v.u.f : (long long)v.u.i;
            spec[sl++] = 'l';
            spec[sl++] = 'l';
            spec[sl++] = conv == 'i' ? 'd' : conv;
            spec[sl] = 0;
            snprintf(tmp, sizeof tmp, spec, iv);
            tbuf_puts(r, &b, tmp);
        } else if (strchr("feEgG", conv)) {
            if (!v_is_number(v)) tpl_fail(r, at, "%%%c format: a number is required", conv);
            spec[sl++] = conv;
            spec[sl] = 0;
            snprintf(tmp, sizeof tmp, spec, v_as_double(v));
            tbuf_puts(r, &b, tmp);
        } else {
            tpl_fail(r, at, "unsupported format character '%c'", conv);
        }
    }
    if (k < n) tpl_fail(r, at, "not all arguments converted during string formatting");
    return v_str(b.p ? b.p : "", b.n);
}

/* ---- comparisons ---- */

static int contains(rctx *r, const node *at, val container, val item) {
    switch (container.t) {
    case V_STR:
        if (item.t != V_STR)
            tpl_fail(r, at, "'in <string>' requires string as left operand, not %s",
                     v_type_name(item));
        if (item.u.s.n == 0) return 1;
        return memmem(container.u.s.p, container.u.s.n, item.u.s.p, item.u.s.n) != NULL;
    case V_LIST:
        for (size_t i = 0; i < container.u.l->n; i++)
            if (v_equal(container.u.l->items[i], item)) return 1;
        return 0;
    case V_DICT:
        return dict_find(container.u.d, item) >= 0;
    case V_UNDEF:
        return 0;
    default:
        tpl_fail(r, at, "argument of type '%s' is not iterable", v_type_name(container));
    }
}

static int compare_op(rctx *r, const node *at, int op, val a, val b) {
    switch (op) {
    case OP_EQ:
        return v_equal(a, b);
    case OP_NE:
        return !v_equal(a, b);
    case OP_IN:
        return contains(r, at, b, a);
    case OP_NOTIN:
        return !contains(r, at, b, a);
    case '<':
        return v_compare(r, at, a, b) < 0;
    case '>':
        return v_compare(r, at, a, b) > 0;
    case OP_LE:
        return v_compare(r, at, a, b) <= 0;
    default:
        return v_compare(r, at, a, b) >= 0;
    }
}

/* ---- slicing (Python semantics, code points for strings) ---- */

static int64_t slice_arg(rctx *r, const node *at, val v, int64_t dflt) {
    if (v.t == V_NONE || v.t == V_UNDEF) return dflt;
    if (v.t != V_INT && v.t != V_BOOL) tpl_fail(r, at, "slice indices must be integers or None");
    return v.u.i;
}

static val do_slice(rctx *r, const node *x, val obj, scope *sc) {
    const node *s = x->b;
    val vs = s->a ? eval(r, s->a, sc) : v_none();
    val ve = s->b ? eval(r, s->b, sc) : v_none();
    val vt = s->c ? eval(r, s->c, sc) : v_none();
    if (obj.t == V_UNDEF) fail_undefined(r, x, obj);
    if (obj.t != V_STR && obj.t != V_LIST)
        tpl_fail(r, x, "'%s' object is not subscriptable", v_type_name(obj));
    int64_t len = obj.t == V_STR ? (int64_t)u8_len(obj.u.s.p, obj.u.s.n) : (int64_t)obj.u.l->n;
    int64_t step = slice_arg(r, x, vt, 1);
    if (step == 0) tpl_fail(r, x, "slice step cannot be zero");
    int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? len - 1 : len;
    int64_t start = slice_arg(r, x, vs, step < 0 ? hi : lo);
    int64_t stop = slice_arg(r, x, ve, step < 0 ? lo : hi);
    if (vs.t == V_INT || vs.t == V_BOOL) {
        if (start < 0) start += len;
        if (start < lo) start = lo;
        if (start > hi) start = hi;
    }
    if (ve.t == V_INT || ve.t == V_BOOL) {
        if (stop < 0) stop += len;
        if (stop < lo) stop = lo;
        if (stop > hi) stop = hi;
    }
    if (obj.t == V_LIST) {
        val out = v_list(r, 0);
        out.u.l->tuple = obj.u.l->tuple;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
            list_push(r, out, obj.u.l->items[i]);
        return out;
    }
    /* strings: index the code points once */
    size_t *offs = tpl_alloc(r, (size_t)(len + 1) * sizeof *offs);
    size_t bi = 0;
    for (int64_t i = 0; i < len; i++) {
        offs[i] = bi;
        u8_next(obj.u.s.p, obj.u.s.n, &bi);
    }
    offs[len] = obj.u.s.n;
    if (step == 1) {
        if (stop <= start) return v_str("", 0);
        return v_str(obj.u.s.p + offs[start], offs[stop] - offs[start]);
    }
    tbuf b = {0};
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
        tbuf_put(r, &b, obj.u.s.p + offs[i], offs[i + 1] - offs[i]);
    return v_str(b.p ? b.p : "", b.n);
}

/* ---- expressions ---- */

typedef struct argv_ {
    val *pos;
    int npos;
    const char **kwn;
    val *kwv;
    int nkw;
} argv_;

static argv_ eval_args(rctx *r, const node *x, scope *sc) {
    argv_ a = {0};
    a.npos = x->nkids;
    a.nkw = x->nkw;
    a.pos = tpl_alloc(r, (size_t)(x->nkids + 1) * sizeof(val));
    for (int i = 0; i < x->nkids; i++) a.pos[i] = eval(r, x->kids[i], sc);
    a.kwn = x->kwnames;
    a.kwv = tpl_alloc(r, (size_t)(x->nkw + 1) * sizeof(val));
    for (int i = 0; i < x->nkw; i++) a.kwv[i] = eval(r, x->kwvals[i], sc);
    return a;
}

/* a filter chain whose innermost input is `input` (block set / filter block) */
static val eval_filter(rctx *r, const node *x, scope *sc, const val *input) {
    val in = x->a ? (x->a->kind == N_FILTER && input ? eval_filter(r, x->a, sc, input)
                                                     : eval(r, x->a, sc))
                  : *input;
    argv_ a = eval_args(r, x, sc);
    if (x->op < 0) tpl_fail(r, x, "no filter named '%s'", x->name);
    return tpl_apply_filter(r, x, x->op, x->name, in, a.pos, a.npos, a.kwn, a.kwv, a.nkw);
}

static val eval_name(rctx *r, const node *x, scope *sc) {
    val v;
    if (scope_lookup(sc, x->name, &v)) return v;
    v = tpl_global(x->name);
    if (v.t != V_UNDEF) return v;
    size_t n = strlen(x->name) + 20;
    char *msg = tpl_alloc(r, n);
    snprintf(msg, n, "'%s' is undefined", x->name);
    return v_undef(msg);
}

static val eval(rctx *r, const node *x, scope *sc) {
    val out;
    ENTER(r, x);
    switch (x->kind) {
    case N_CONST:
        out = x->lit;
        break;
    case N_NAME:
        out = eval_name(r, x, sc);
        break;
    case N_GETATTR: {
        val obj = eval(r, x->a, sc);
        out = tpl_getattr(r, x, obj, x->name, strlen(x->name));
        break;
    }
    case N_GETITEM: {
        val obj = eval(r, x->a, sc);
        if (x->b->kind == N_SLICE)
            out = do_slice(r, x, obj, sc);
        else
            out = tpl_getitem(r, x, obj, eval(r, x->b, sc));
        break;
    }
    case N_CALL: {
        val callee = eval(r, x->a, sc);
        argv_ a = eval_args(r, x, sc);
        out = tpl_call(r, x, callee, a.pos, a.npos, a.kwn, a.kwv, a.nkw);
        break;
    }
    case N_FILTER:
        out = eval_filter(r, x, sc, NULL);
        break;
    case N_TEST: {
        val in = eval(r, x->a, sc);
        argv_ a = eval_args(r, x, sc);
        if (x->op < 0) tpl_fail(r, x, "no test named '%s'", x->name);
        int t = tpl_apply_test(r, x, x->op, x->name, in, a.pos, a.npos);
        out = v_bool(x->flag ? !t : t);
        break;
    }
    case N_BINOP: {
        val a = eval(r, x->a, sc);
        out = tpl_arith(r, x, x->op, a, eval(r, x->b, sc));
        break;
    }
    case N_NEG:
    case N_POS: {
        val a = eval(r, x->a, sc);
        if (a.t == V_UNDEF) fail_undefined(r, x, a);
        if (!v_is_number(a))
            tpl_fail(r, x, "bad operand type for unary %c: '%s'", x->kind == N_NEG ? '-' : '+',
                     v_type_name(a));
        if (x->kind == N_POS)
            out = a.t == V_BOOL ? v_int(a.u.i) : a;
        else
            out = a.t == V_FLOAT ? v_float(-a.u.f) : v_int(-a.u.i);
        break;
    }
    case N_NOT:
        out = v_bool(!v_truthy(eval(r, x->a, sc)));
        break;
    case N_AND: {
        val a = eval(r, x->a, sc);
        out = v_truthy(a) ? eval(r, x->b, sc) : a;
        break;
    }
    case N_OR: {
        val a = eval(r, x->a, sc);
        out = v_truthy(a) ? a : eval(r, x->b, sc);
        break;
    }
    case N_COMPARE: {
        val left = eval(r, x->a, sc);
        out = v_bool(1);
        for (int i = 0; i < x->nkids2; i++) {
            val right = eval(r, x->kids2[i], sc);
            if (!compare_op(r, x, x->ops[i], left, right)) {
                out = v_bool(0);
                break;
            }
            left = right;
        }
        break;
    }
    case N_CONCAT: {
        tbuf b = {0};
        for (int i = 0; i < x->nkids; i++) v_str_into(r, &b, eval(r, x->kids[i], sc));
        out = v_str(b.p ? b.p : "", b.n);
        break;
    }
    case N_COND:
        if (v_truthy(eval(r, x->a, sc)))
            out = eval(r, x->b, sc);
        else
            out = x->c ? eval(r, x->c, sc)
                       : v_undef("the inline if-expression evaluated to false "
                                 "and no else section was defined");
        break;
    case N_LIST:
    case N_TUPLE:
        out = v_list(r, (size_t)x->nkids);
        out.u.l->tuple = x->kind == N_TUPLE;
        for (int i = 0; i < x->nkids; i++) list_push(r, out, eval(r, x->kids[i], sc));
        break;
    case N_DICT:
        out = v_dict(r, (size_t)x->nkids);
        for (int i = 0; i < x->nkids; i++) {
            val k = eval(r, x->kids[i], sc);
            dict_set(r, out.u.d, k, eval(r, x->kids2[i], sc));
        }
        break;
    default:
        tpl_fail(r, x, "internal error: not an expression (%d)", x->kind);
    }
    LEAVE(r);
    return out;
}

/* ---- statements ---- */

static void assign_targets(rctx *r, const node *x, scope *sc, val v) {
    if (!(x->flag & 1)) {
        scope_set(r, sc, x->names[0], v);
        return;
    }
    tlist *items = tpl_iterate(r, x, v);
    if ((int)items->n > x->nnames)
        tpl_fail(r, x, "too many values to unpack (expected %d)", x->nnames);
    if ((int)items->n < x->nnames)
        tpl_fail(r, x, "not enough values to unpack (expected %d, got %zu)", x->nnames, items->n);
    for (int i = 0; i < x->nnames; i++) scope_set(r, sc, x->names[i], items->items[i]);
}

static val capture(rctx *r, node *const *kids, int n, scope *sc) {
    tbuf *saved = r->out, b = {0};
    r->out = &b;
    exec_body(r, kids, n, sc);
    r->out = saved;
    return v_str(b.p ? b.p : "", b.n);
}

static void exec_set(rctx *r, const node *x, scope *sc) {
    if (x->flag & 4) {
        val ns;
        if (!scope_lookup(sc, x->names[0], &ns) || ns.t != V_NS)
            tpl_fail(r, x, "cannot assign attribute on non-namespace object");
        val v = eval(r, x->a, sc);
        dict_set(r, ns.u.d, v_strz(x->names[1]), v);
        return;
    }
    assign_targets(r, x, sc, eval(r, x->a, sc));
}

static void exec_setblock(rctx *r, const node *x, scope *sc) {
    val v = capture(r, x->kids, x->nkids, scope_new(r, sc));
    if (x->a) v = eval_filter(r, x->a, sc, &v);
    if (x->flag & 4) {
        val ns;
        if (!scope_lookup(sc, x->names[0], &ns) || ns.t != V_NS)
            tpl_fail(r, x, "cannot assign attribute on non-namespace object");
        dict_set(r, ns.u.d, v_strz(x->names[1]), v);
        return;
    }
    assign_targets(r, x, sc, v);
}

static void run_loop(rctx *r, const node *x, scope *sc, tlist *items, int depth) {
    tloop *l = tpl_alloc(r, sizeof *l);
    memset(l, 0, sizeof *l);
    l->items = items->items;
    l->n = items->n;
    l->depth = depth;
    l->forn = x;
    l->outer = sc;
    val lv = {.t = V_LOOP};
    lv.u.loop = l;
    scope *it = NULL;
    for (l->i = 0; l->i < l->n; l->i++) {
        count_step(r, x);
        /* one scope per iteration, recycled unless a macro captured it, so
         * long loops do not grow the arena */
        if (!it || it->captured)
            it = scope_new(r, sc);
        else
            it->n = 0;
        assign_targets(r, x, it, l->items[l->i]);
        scope_set(r, it, "loop", lv);
        int flow = exec_body(r, x->kids, x->nkids, it);
        if (flow == FLOW_BREAK) break;
    }
}

static tlist *loop_items(rctx *r, const node *x, scope *sc, val iterable) {
    tlist *items = tpl_iterate(r, x, iterable);
    if (!x->b) return items;
    val kept = v_list(r, items->n);
    scope *t = NULL;
    for (size_t i = 0; i < items->n; i++) {
        count_step(r, x);
        if (!t || t->captured)
            t = scope_new(r, sc);
        else
            t->n = 0;
        assign_targets(r, x, t, items->items[i]);
        if (v_truthy(eval(r, x->b, t))) list_push(r, kept, items->items[i]);
    }
    return kept.u.l;
}

static void exec_for(rctx *r, const node *x, scope *sc) {
    tlist *items = loop_items(r, x, sc, eval(r, x->a, sc));
    if (items->n == 0) {
        exec_body(r, x->kids2, x->nkids2, scope_new(r, sc));
        return;
    }
    run_loop(r, x, sc, items, 1);
}

/* loop(children) inside a `recursive` for loop */
val tpl_call_loop(rctx *r, const node *at, tloop *l, val *pos, int npos) {
    if (!(l->forn->flag & 2)) tpl_fail(r, at, "loop is not recursive; declare it 'recursive'");
    if (npos != 1) tpl_fail(r, at, "loop() takes exactly one argument");
    if (++r->call_depth > TPL_MAX_CALL_DEPTH)
        tpl_fail(r, at, "recursion too deep (recursive loop nested over %d)", TPL_MAX_CALL_DEPTH);
    count_step(r, at);
    tlist *items = loop_items(r, l->forn, l->outer, pos[0]);
    tbuf *saved = r->out, b = {0};
    r->out = &b;
    run_loop(r, l->forn, l->outer, items, l->depth + 1);
    r->out = saved;
    r->call_depth--;
    return v_str(b.p ? b.p : "", b.n);
}

val tpl_call_macro(rctx *r, const node *at, tmacro *m, val *pos, int npos, const char **kwn,
                   val *kwv, int nkw) {
    const node *def = m->def;
    if (++r->call_depth > TPL_MAX_CALL_DEPTH)
        tpl_fail(r, at, "recursion too deep (macro calls nested over %d)", TPL_MAX_CALL_DEPTH);
    count_step(r, at);
    scope *ms = scope_new(r, m->closure);
    char *used = tpl_alloc(r, (size_t)nkw + 1);
    memset(used, 0, (size_t)nkw + 1);
    for (int i = 0; i < def->nkw; i++) {
        const char *pname = def->kwnames[i];
        val v;
        int found = 0;
        if (i < npos) {
            v = pos[i];
            found = 1;
        }
        for (int k = 0; k < nkw; k++)
            if (!strcmp(kwn[k], pname)) {
                if (found)
                    tpl_fail(r, at, "macro '%s' got multiple values for argument '%s'", def->name,
                             pname);
                v = kwv[k];
                used[k] = 1;
                found = 1;
            }
        if (!found) {
            if (def->kwvals[i]) {
                v = eval(r, def->kwvals[i], ms);
            } else {
                size_t n = strlen(pname) + 40;
                char *msg = tpl_alloc(r, n);
                snprintf(msg, n, "parameter '%s' was not provided", pname);
                v = v_undef(msg);
            }
        }
        scope_set(r, ms, pname, v);
    }
    if (npos > def->nkw && !(def->flag & 8))
        tpl_fail(r, at, "macro '%s' takes not more than %d argument(s)", def->name, def->nkw);
    for (int k = 0; k < nkw; k++)
        if (!used[k] && !(def->flag & 16))
            tpl_fail(r, at, "macro '%s' takes no keyword argument '%s'", def->name, kwn[k]);
    val varargs = v_list(r, 0);
    varargs.u.l->tuple = 1;
    for (int i = def->nkw; i < npos; i++) list_push(r, varargs, pos[i]);
    val kwargs = v_dict(r, 0);
    for (int k = 0; k < nkw; k++)
        if (!used[k]) dict_set(r, kwargs.u.d, v_strz(kwn[k]), kwv[k]);
    scope_set(r, ms, "varargs", varargs);
    scope_set(r, ms, "kwargs", kwargs);
    val out = capture(r, def->kids, def->nkids, ms);
    r->call_depth--;
    return out;
}

static int exec_stmt(rctx *r, const node *x, scope *sc) {
    switch (x->kind) {
    case N_TEXT:
        tbuf_put(r, r->out, x->lit.u.s.p, x->lit.u.s.n);
        break;
    case N_OUTPUT:
        v_str_into(r, r->out, eval(r, x->a, sc));
        break;
    case N_IF:
        if (v_truthy(eval(r, x->a, sc))) return exec_body(r, x->kids, x->nkids, sc);
        return exec_body(r, x->kids2, x->nkids2, sc);
    case N_FOR:
        exec_for(r, x, sc);
        break;
    case N_SET:
        exec_set(r, x, sc);
        break;
    case N_SETBLOCK:
        exec_setblock(r, x, sc);
        break;
    case N_MACRO: {
        tmacro *m = tpl_alloc(r, sizeof *m);
        m->def = x;
        m->closure = sc;
        for (scope *s = sc; s; s = s->parent) s->captured = 1;
        val v = {.t = V_MACRO};
        v.u.m = m;
        scope_set(r, sc, x->name, v);
        break;
    }
    case N_FILTERBLOCK: {
        val v = capture(r, x->kids, x->nkids, scope_new(r, sc));
        v_str_into(r, r->out, eval_filter(r, x->a, sc, &v));
        break;
    }
    case N_SCOPE: {
        scope *inner = scope_new(r, sc);
        for (int i = 0; i < x->nkw; i++)
            scope_set(r, inner, x->kwnames[i], eval(r, x->kwvals[i], sc));
        return exec_body(r, x->kids, x->nkids, inner);
    }
    case N_BREAK:
        return FLOW_BREAK;
    case N_CONTINUE:
        return FLOW_CONTINUE;
    default:
        tpl_fail(r, x, "internal error: not a statement (%d)", x->kind);
    }
    return FLOW_NORMAL;
}

static int exec_body(rctx *r, node *const *kids, int n, scope *sc) {
    for (int i = 0; i < n; i++) {
        ENTER(r, kids[i]);
        int flow = exec_stmt(r, kids[i], sc);
        LEAVE(r);
        if (flow != FLOW_NORMAL) return flow;
    }
    return FLOW_NORMAL;
}

void tpl_exec_root(rctx *r, const node *root, scope *sc) {
    exec_body(r, root->kids, root->nkids, sc);
}

scope *tpl_scope_new(rctx *r, scope *parent) {
    return scope_new(r, parent);
}
void tpl_scope_set(rctx *r, scope *s, const char *name, val v) {
    scope_set(r, s, name, v);
}
