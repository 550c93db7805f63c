/* Recursive-descent parser producing the syntax tree, following jinja2's
 * grammar (parser.py) so precedence and quirks match: `is` tests and filters
 * bind tighter than arithmetic, `**` is left-associative, unary minus binds
 * tighter than `**`, `for x in y if c` filters, `if` without `else` yields
 * undefined. Unknown filters/tests are syntax errors, except inside an
 * {% if %} body where jinja2 defers them to render time. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chat/tpl_internal.h"

typedef struct parser {
    tpl_arena *a;
    const tok *t;
    size_t n, i;
    tpl_parse_error *pe;
    jmp_buf jb;
    int depth;
    int soft;    /* inside an if body: unknown filters fail at render time */
    node *macro; /* innermost macro being parsed: notes varargs/kwargs use */
} parser;

typedef struct nvec {
    node **v;
    int n, cap;
} nvec;

_Noreturn static void pfail(parser *p, const tok *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pfail(parser *p, const tok *at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->pe->msg, sizeof p->pe->msg, fmt, ap);
    va_end(ap);
    p->pe->line = at->line;
    p->pe->col = at->col;
    longjmp(p->jb, 1);
}

static void *palloc(parser *p, size_t n) {
    void *m = tpl_arena_alloc(p->a, n);
    if (!m) pfail(p, &p->t[p->i], "out of memory");
    memset(m, 0, n);
    return m;
}

static void vpush(parser *p, nvec *v, node *x) {
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 8;
        node **m = palloc(p, (size_t)cap * sizeof *m);
        if (v->n) memcpy(m, v->v, (size_t)v->n * sizeof *m);
        v->v = m;
        v->cap = cap;
    }
    v->v[v->n++] = x;
}

static const tok *cur(parser *p) {
    return &p->t[p->i];
}
static const tok *look(parser *p) {
    return &p->t[p->i + 1 < p->n ? p->i + 1 : p->i];
}
static const tok *advance(parser *p) {
    const tok *t = &p->t[p->i];
    if (p->i + 1 < p->n) p->i++;
    return t;
}

static int tok_is_name(const tok *t, const char *s) {
    return t->type == T_NAME && t->n == strlen(s) && !memcmp(t->p, s, t->n);
}
static int tok_is_op(const tok *t, int op) {
    return t->type == T_OP && t->op == op;
}

static const char *describe(const tok *t, char *buf, size_t cap) {
    switch (t->type) {
    case T_EOF:
        return "end of template";
    case T_VAR_END:
        return "end of print statement";
    case T_BLOCK_END:
        return "end of statement block";
    case T_STRING:
        return "string";
    case T_INT:
        return "integer";
    case T_FLOAT:
        return "float";
    default:
        snprintf(buf, cap, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p);
        return buf;
    }
}

static char *pstrdup(parser *p, const char *s, size_t n) {
    char *m = palloc(p, n + 1);
    memcpy(m, s, n);
    m[n] = 0;
    return m;
}

static const char *expect_name(parser *p) {
    const tok *t = cur(p);
    char buf[64];
    if (t->type != T_NAME) pfail(p, t, "expected a name, got %s", describe(t, buf, sizeof buf));
    advance(p);
    return pstrdup(p, t->p, t->n);
}

static void expect_op(parser *p, int op) {
    const tok *t = cur(p);
    char buf[64];
    if (!tok_is_op(t, op))
        pfail(p, t, "expected '%c', got %s", op < 256 ? op : '?', describe(t, buf, sizeof buf));
    advance(p);
}

static void expect_type(parser *p, int type, const char *what) {
    const tok *t = cur(p);
    char buf[64];
    if (t->type != type) pfail(p, t, "expected %s, got %s", what, describe(t, buf, sizeof buf));
    advance(p);
}

static node *mk(parser *p, int kind, const tok *at) {
    node *x = palloc(p, sizeof *x);
    x->kind = kind;
    x->line = at->line;
    x->col = at->col;
    return x;
}

#define ENTER(p)                                                                                   \
    do {                                                                                           \
        if (++(p)->depth > TPL_MAX_PARSE_DEPTH)                                                    \
            pfail(p, cur(p), "recursion too deep (template nesting over %d)",                      \
                  TPL_MAX_PARSE_DEPTH);                                                            \
    } while (0)
#define LEAVE(p) ((p)->depth--)

/* ---- expressions ---- */

static node *parse_expression(parser *p, int condexpr);
static node *parse_unary(parser *p, int with_filter);
static node *parse_primary(parser *p);
static node *parse_postfix(parser *p, node *x);
static node *parse_filter(parser *p, node *x, int start_inline);

static node *parse_tuple(parser *p, int simplified, int condexpr, const char *extra_end,
                         int explicit_parens) {
    const tok *start = cur(p);
    nvec args = {0};
    int is_tuple = 0;
    for (;;) {
        if (args.n) expect_op(p, ',');
        const tok *t = cur(p);
        if (t->type == T_VAR_END || t->type == T_BLOCK_END || tok_is_op(t, ')') ||
            (extra_end && tok_is_name(t, extra_end)))
            break;
        vpush(p, &args, simplified ? parse_primary(p) : parse_expression(p, condexpr));
        if (tok_is_op(cur(p), ','))
            is_tuple = 1;
        else
            break;
    }
    if (!is_tuple) {
        if (args.n) return args.v[0];
        if (!explicit_parens) {
            char buf[64];
            pfail(p, cur(p), "expected an expression, got %s", describe(cur(p), buf, sizeof buf));
        }
    }
    node *x = mk(p, N_TUPLE, start);
    x->kids = args.v;
    x->nkids = args.n;
    return x;
}

static void parse_call_args(parser *p, node *x) {
    expect_op(p, '(');
    nvec args = {0}, kwv = {0};
    const char *names[64];
    int nkw = 0;
    while (!tok_is_op(cur(p), ')')) {
        if (args.n || nkw) {
            expect_op(p, ',');
            if (tok_is_op(cur(p), ')')) break;
        }
        if (tok_is_op(cur(p), '*') || tok_is_op(cur(p), OP_POW))
            pfail(p, cur(p), "*args / **kwargs in calls are not supported");
        if (cur(p)->type == T_NAME && tok_is_op(look(p), '=')) {
            if (nkw == 64) pfail(p, cur(p), "too many keyword arguments");
            names[nkw++] = expect_name(p);
            advance(p);
            vpush(p, &kwv, parse_expression(p, 1));
        } else {
            if (nkw) pfail(p, cur(p), "invalid syntax for function call expression");
            vpush(p, &args, parse_expression(p, 1));
        }
    }
    expect_op(p, ')');
    x->kids = args.v;
    x->nkids = args.n;
    x->kwvals = kwv.v;
    x->nkw = nkw;
    if (nkw) {
        x->kwnames = palloc(p, (size_t)nkw * sizeof(char *));
        memcpy(x->kwnames, names, (size_t)nkw * sizeof(char *));
    }
}

static const char *dotted_name(parser *p) {
    const char *name = expect_name(p);
    while (tok_is_op(cur(p), '.')) {
        advance(p);
        const char *more = expect_name(p);
        size_t a = strlen(name), b = strlen(more);
        char *m = palloc(p, a + b + 2);
        memcpy(m, name, a);
        m[a] = '.';
        memcpy(m + a + 1, more, b + 1);
        name = m;
    }
    return name;
}

static node *parse_filter(parser *p, node *x, int start_inline) {
    while (tok_is_op(cur(p), '|') || start_inline) {
        if (!start_inline) advance(p);
        start_inline = 0;
        const tok *at = cur(p);
        node *f = mk(p, N_FILTER, at);
        f->a = x;
        f->name = dotted_name(p);
        f->op = tpl_filter_index(f->name);
        if (f->op < 0 && !p->soft) pfail(p, at, "no filter named '%s'", f->name);
        if (tok_is_op(cur(p), '(')) parse_call_args(p, f);
        x = f;
    }
    return x;
}

static node *parse_test(parser *p, node *x) {
    advance(p); /* "is" */
    int negated = 0;
    if (tok_is_name(cur(p), "not")) {
        advance(p);
        negated = 1;
    }
    const tok *at = cur(p);
    node *t = mk(p, N_TEST, at);
    t->a = x;
    t->flag = negated;
    t->name = dotted_name(p);
    t->op = tpl_test_index(t->name);
    if (t->op < 0 && !p->soft) pfail(p, at, "no test named '%s'", t->name);
    const tok *c = cur(p);
    if (tok_is_op(c, '(')) {
        parse_call_args(p, t);
    } else if ((c->type == T_NAME || c->type == T_STRING || c->type == T_INT ||
                c->type == T_FLOAT || tok_is_op(c, '(') || tok_is_op(c, '[') ||
                tok_is_op(c, '{')) &&
               !tok_is_name(c, "else") && !tok_is_name(c, "or") && !tok_is_name(c, "and")) {
        if (tok_is_name(c, "is")) pfail(p, c, "You cannot chain multiple tests with is");
        node *arg = parse_postfix(p, parse_primary(p));
        t->kids = palloc(p, sizeof(node *));
        t->kids[0] = arg;
        t->nkids = 1;
    }
    return t;
}

static node *parse_filter_expr(parser *p, node *x) {
    for (;;) {
        if (tok_is_op(cur(p), '|')) {
            x = parse_filter(p, x, 0);
        } else if (tok_is_name(cur(p), "is")) {
            x = parse_test(p, x);
        } else if (tok_is_op(cur(p), '(')) {
            node *c = mk(p, N_CALL, cur(p));
            c->line = x->line; /* errors point at the callee */
            c->col = x->col;
            c->a = x;
            parse_call_args(p, c);
            x = c;
        } else {
            return x;
        }
    }
}

static node *parse_subscribed(parser *p) {
    const tok *at = cur(p);
    node *args[3] = {0};
    if (tok_is_op(at, ':')) {
        advance(p);
    } else {
        node *x = parse_expression(p, 1);
        if (!tok_is_op(cur(p), ':')) return x;
        advance(p);
        args[0] = x;
    }
    if (!tok_is_op(cur(p), ':') && !tok_is_op(cur(p), ']') && !tok_is_op(cur(p), ','))
        args[1] = parse_expression(p, 1);
    if (tok_is_op(cur(p), ':')) {
        advance(p);
        if (!tok_is_op(cur(p), ']') && !tok_is_op(cur(p), ',')) args[2] = parse_expression(p, 1);
    }
    node *s = mk(p, N_SLICE, at);
    s->a = args[0];
    s->b = args[1];
    s->c = args[2];
    return s;
}

static node *parse_postfix(parser *p, node *x) {
    for (;;) {
        const tok *t = cur(p);
        if (tok_is_op(t, '.')) {
            advance(p);
            const tok *at = cur(p);
            if (at->type == T_NAME) {
                node *g = mk(p, N_GETATTR, at);
                g->a = x;
                g->name = expect_name(p);
                x = g;
            } else if (at->type == T_INT) {
                advance(p);
                node *g = mk(p, N_GETITEM, at);
                g->a = x;
                g->b = mk(p, N_CONST, at);
                g->b->lit = v_int(at->i);
                x = g;
            } else {
                pfail(p, at, "expected name or number after '.'");
            }
        } else if (tok_is_op(t, '[')) {
            advance(p);
            nvec args = {0};
            while (!tok_is_op(cur(p), ']')) {
                if (args.n) expect_op(p, ',');
                if (tok_is_op(cur(p), ']')) break;
                vpush(p, &args, parse_subscribed(p));
            }
            expect_op(p, ']');
            if (!args.n) pfail(p, t, "expected a subscript");
            node *g = mk(p, N_GETITEM, t);
            g->a = x;
            if (args.n == 1) {
                g->b = args.v[0];
            } else {
                g->b = mk(p, N_TUPLE, t);
                g->b->kids = args.v;
                g->b->nkids = args.n;
            }
            x = g;
        } else if (tok_is_op(t, '(')) {
            node *c = mk(p, N_CALL, t);
            c->line = x->line;
            c->col = x->col;
            c->a = x;
            parse_call_args(p, c);
            x = c;
        } else {
            return x;
        }
    }
}

static node *parse_primary(parser *p) {
    const tok *t = cur(p);
    char buf[64];
    ENTER(p);
    node *x;
    if (t->type == T_NAME) {
        advance(p);
        x = mk(p, N_CONST, t);
        if (tok_is_name(t, "true") || tok_is_name(t, "True"))
            x->lit = v_bool(1);
        else if (tok_is_name(t, "false") || tok_is_name(t, "False"))
            x->lit = v_bool(0);
        else if (tok_is_name(t, "none") || tok_is_name(t, "None"))
            x->lit = v_none();
        else {
            x->kind = N_NAME;
            x->name = pstrdup(p, t->p, t->n);
            /* like jinja2, a macro accepts extra arguments only if it reads them */
            if (p->macro && !strcmp(x->name, "varargs")) p->macro->flag |= 8;
            if (p->macro && !strcmp(x->name, "kwargs")) p->macro->flag |= 16;
        }
    } else if (t->type == T_STRING) {
        /* adjacent literals concatenate */
        size_t total = 0, k = p->i;
        while (p->t[k].type == T_STRING) total += p->t[k++].n;
        char *s = palloc(p, total + 1);
        size_t o = 0;
        while (cur(p)->type == T_STRING) {
            memcpy(s + o, cur(p)->p, cur(p)->n);
            o += cur(p)->n;
            advance(p);
        }
        x = mk(p, N_CONST, t);
        x->lit = v_str(s, total);
    } else if (t->type == T_INT || t->type == T_FLOAT) {
        advance(p);
        x = mk(p, N_CONST, t);
        x->lit = t->type == T_INT ? v_int(t->i) : v_float(t->f);
    } else if (tok_is_op(t, '(')) {
        advance(p);
        x = parse_tuple(p, 0, 1, NULL, 1);
        expect_op(p, ')');
    } else if (tok_is_op(t, '[')) {
        advance(p);
        nvec items = {0};
        while (!tok_is_op(cur(p), ']')) {
            if (items.n) expect_op(p, ',');
            if (tok_is_op(cur(p), ']')) break;
            vpush(p, &items, parse_expression(p, 1));
        }
        expect_op(p, ']');
        x = mk(p, N_LIST, t);
        x->kids = items.v;
        x->nkids = items.n;
    } else if (tok_is_op(t, '{')) {
        advance(p);
        nvec keys = {0}, vals = {0};
        while (!tok_is_op(cur(p), '}')) {
            if (keys.n) expect_op(p, ',');
            if (tok_is_op(cur(p), '}')) break;
            vpush(p, &keys, parse_expression(p, 1));
            expect_op(p, ':');
            vpush(p, &vals, parse_expression(p, 1));
        }
        expect_op(p, '}');
        x = mk(p, N_DICT, t);
        x->kids = keys.v;
        x->nkids = keys.n;
        x->kids2 = vals.v;
        x->nkids2 = vals.n;
    } else {
        pfail(p, t, "unexpected %s", describe(t, buf, sizeof buf));
    }
    LEAVE(p);
    return x;
}

static node *parse_unary(parser *p, int with_filter) {
    const tok *t = cur(p);
    ENTER(p);
    node *x;
    if (tok_is_op(t, '-') || tok_is_op(t, '+')) {
        advance(p);
        x = mk(p, t->op == '-' ? N_NEG : N_POS, t);
        x->a = parse_unary(p, 0);
    } else {
        x = parse_primary(p);
    }
    x = parse_postfix(p, x);
    if (with_filter) x = parse_filter_expr(p, x);
    LEAVE(p);
    return x;
}

static node *binop(parser *p, const tok *at, int op, node *l, node *r) {
    node *x = mk(p, N_BINOP, at);
    x->op = op;
    x->a = l;
    x->b = r;
    return x;
}

static node *parse_pow(parser *p) {
    node *x = parse_unary(p, 1);
    while (tok_is_op(cur(p), OP_POW)) {
        const tok *t = advance(p);
        x = binop(p, t, OP_POW, x, parse_unary(p, 1));
    }
    return x;
}

static node *parse_math2(parser *p) {
    node *x = parse_pow(p);
    for (;;) {
        const tok *t = cur(p);
        if (!(tok_is_op(t, '*') || tok_is_op(t, '/') || tok_is_op(t, OP_FLOORDIV) ||
              tok_is_op(t, '%')))
            return x;
        advance(p);
        x = binop(p, t, t->op, x, parse_pow(p));
    }
}

static node *parse_concat(parser *p) {
    const tok *at = cur(p);
    node *first = parse_math2(p);
    if (!tok_is_op(cur(p), '~')) return first;
    nvec args = {0};
    vpush(p, &args, first);
    while (tok_is_op(cur(p), '~')) {
        advance(p);
        vpush(p, &args, parse_math2(p));
    }
    node *x = mk(p, N_CONCAT, at);
    x->kids = args.v;
    x->nkids = args.n;
    return x;
}

static node *parse_math1(parser *p) {
    node *x = parse_concat(p);
    while (tok_is_op(cur(p), '+') || tok_is_op(cur(p), '-')) {
        const tok *t = advance(p);
        x = binop(p, t, t->op, x, parse_concat(p));
    }
    return x;
}

static node *parse_compare(parser *p) {
    const tok *at = cur(p);
    node *first = parse_math1(p);
    nvec operands = {0};
    int ops[64], nops = 0;
    for (;;) {
        const tok *t = cur(p);
        int op;
        if (t->type == T_OP && (t->op == OP_EQ || t->op == OP_NE || t->op == '<' || t->op == '>' ||
                                t->op == OP_LE || t->op == OP_GE)) {
            op = t->op;
            advance(p);
        } else if (tok_is_name(t, "in")) {
            op = OP_IN;
            advance(p);
        } else if (tok_is_name(t, "not") && tok_is_name(look(p), "in")) {
            op = OP_NOTIN;
            advance(p);
            advance(p);
        } else {
            break;
        }
        if (nops == 64) pfail(p, t, "comparison chain too long");
        ops[nops++] = op;
        vpush(p, &operands, parse_math1(p));
    }
    if (!nops) return first;
    node *x = mk(p, N_COMPARE, at);
    x->a = first;
    x->kids2 = operands.v;
    x->nkids2 = operands.n;
    x->ops = palloc(p, (size_t)nops * sizeof(int));
    memcpy(x->ops, ops, (size_t)nops * sizeof(int));
    return x;
}

static node *parse_not(parser *p) {
    const tok *t = cur(p);
    if (tok_is_name(t, "not")) {
        ENTER(p);
        advance(p);
        node *x = mk(p, N_NOT, t);
        x->a = parse_not(p);
        LEAVE(p);
        return x;
    }
    return parse_compare(p);
}

static node *parse_and(parser *p) {
    node *x = parse_not(p);
    while (tok_is_name(cur(p), "and")) {
        const tok *t = advance(p);
        node *y = mk(p, N_AND, t);
        y->a = x;
        y->b = parse_not(p);
        x = y;
    }
    return x;
}

static node *parse_or(parser *p) {
    node *x = parse_and(p);
    while (tok_is_name(cur(p), "or")) {
        const tok *t = advance(p);
        node *y = mk(p, N_OR, t);
        y->a = x;
        y->b = parse_and(p);
        x = y;
    }
    return x;
}

static node *parse_condexpr(parser *p) {
    node *x = parse_or(p);
    while (tok_is_name(cur(p), "if")) {
        const tok *t = advance(p);
        node *c = mk(p, N_COND, t);
        c->b = x;
        c->a = parse_or(p);
        if (tok_is_name(cur(p), "else")) {
            advance(p);
            c->c = parse_condexpr(p);
        }
        x = c;
    }
    return x;
}

static node *parse_expression(parser *p, int condexpr) {
    ENTER(p);
    node *x = condexpr ? parse_condexpr(p) : parse_or(p);
    LEAVE(p);
    return x;
}

/* ---- statements ---- */

typedef struct body {
    node **v;
    int n;
} body;

static body subparse(parser *p, const char *const *end_names);

static int is_end(const tok *t, const char *const *end_names) {
    if (!end_names) return 0;
    for (; *end_names; end_names++)
        if (tok_is_name(t, *end_names)) return 1;
    return 0;
}

static body parse_statements(parser *p, const char *const *end_names, int drop_needle) {
    if (tok_is_op(cur(p), ':')) advance(p);
    expect_type(p, T_BLOCK_END, "end of statement block");
    body b = subparse(p, end_names);
    if (cur(p)->type == T_EOF) {
        char want[256] = "";
        for (const char *const *e = end_names; *e; e++) {
            size_t k = strlen(want);
            snprintf(want + k, sizeof want - k, "%s'%s'", k ? " or " : "", *e);
        }
        pfail(p, cur(p), "unexpected end of template, expected %s", want);
    }
    if (drop_needle) advance(p);
    return b;
}

/* for/set targets: name, or names separated by commas, optionally in () */
static void parse_targets(parser *p, node *x) {
    const char *names[32];
    int n = 0, paren = 0;
    if (tok_is_op(cur(p), '(')) {
        advance(p);
        paren = 1;
    }
    for (;;) {
        if (n == 32) pfail(p, cur(p), "too many assignment targets");
        names[n++] = expect_name(p);
        if (!tok_is_op(cur(p), ',')) break;
        advance(p);
        if (paren && tok_is_op(cur(p), ')')) break;
        if (!paren && cur(p)->type != T_NAME) break;
    }
    if (paren) expect_op(p, ')');
    x->names = palloc(p, (size_t)n * sizeof(char *));
    memcpy(x->names, names, (size_t)n * sizeof(char *));
    x->nnames = n;
    x->flag = n > 1 || paren; /* unpack even for (a) */
    if (n == 1 && !paren) x->flag = 0;
}

static node *parse_if(parser *p) {
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const endif[] = {"endif", NULL};
    node *result = mk(p, N_IF, advance(p)), *x = result;
    int saved = p->soft;
    p->soft = 1;
    for (;;) {
        x->a = parse_tuple(p, 0, 0, NULL, 0);
        body b = parse_statements(p, ends, 0);
        x->kids = b.v;
        x->nkids = b.n;
        const tok *t = advance(p);
        if (tok_is_name(t, "elif")) {
            node *y = mk(p, N_IF, t);
            x->kids2 = palloc(p, sizeof(node *));
            x->kids2[0] = y;
            x->nkids2 = 1;
            x = y;
            continue;
        }
        if (tok_is_name(t, "else")) {
            b = parse_statements(p, endif, 1);
            x->kids2 = b.v;
            x->nkids2 = b.n;
        }
        break;
    }
    p->soft = saved;
    return result;
}

static node *parse_for(parser *p) {
    static const char *const ends[] = {"endfor", "else", NULL};
    static const char *const endfor[] = {"endfor", NULL};
    node *x = mk(p, N_FOR, advance(p));
    parse_targets(p, x);
    if (!tok_is_name(cur(p), "in")) pfail(p, cur(p), "expected 'in' in for loop");
    advance(p);
    x->a = parse_tuple(p, 0, 0, "recursive", 0);
    if (tok_is_name(cur(p), "if")) {
        advance(p);
        x->b = parse_expression(p, 1);
    }
    if (tok_is_name(cur(p), "recursive")) {
        advance(p);
        x->flag |= 2;
    }
    int saved = p->soft;
    p->soft = 0;
    body b = parse_statements(p, ends, 0);
    x->kids = b.v;
    x->nkids = b.n;
    if (tok_is_name(advance(p), "else")) {
        b = parse_statements(p, endfor, 1);
        x->kids2 = b.v;
        x->nkids2 = b.n;
    }
    p->soft = saved;
    return x;
}

static node *parse_set(parser *p) {
    static const char *const endset[] = {"endset", NULL};
    const tok *at = advance(p);
    node *x = mk(p, N_SET, at);
    if (cur(p)->type == T_NAME && tok_is_op(look(p), '.')) {
        /* namespace attribute: {% set ns.attr = ... %} */
        x->names = palloc(p, 2 * sizeof(char *));
        x->names[0] = expect_name(p);
        advance(p);
        x->names[1] = expect_name(p);
        x->nnames = 2;
        x->flag = 4;
    } else {
        parse_targets(p, x);
    }
    if (tok_is_op(cur(p), '=')) {
        advance(p);
        x->a = parse_tuple(p, 0, 1, NULL, 0);
        return x;
    }
    x->kind = N_SETBLOCK;
    if (tok_is_op(cur(p), '|')) x->a = parse_filter(p, NULL, 0);
    int saved = p->soft;
    p->soft = 0;
    body b = parse_statements(p, endset, 1);
    p->soft = saved;
    x->kids = b.v;
    x->nkids = b.n;
    return x;
}

static node *parse_macro(parser *p) {
    static const char *const endmacro[] = {"endmacro", NULL};
    node *x = mk(p, N_MACRO, advance(p));
    x->name = expect_name(p);
    expect_op(p, '(');
    const char *names[64];
    node *defaults[64];
    int n = 0, seen_default = 0;
    while (!tok_is_op(cur(p), ')')) {
        if (n) expect_op(p, ',');
        if (tok_is_op(cur(p), ')')) break;
        if (n == 64) pfail(p, cur(p), "too many macro parameters");
        const tok *at = cur(p);
        names[n] = expect_name(p);
        defaults[n] = NULL;
        if (tok_is_op(cur(p), '=')) {
            advance(p);
            defaults[n] = parse_expression(p, 1);
            seen_default = 1;
        } else if (seen_default) {
            pfail(p, at, "non-default argument follows default argument");
        }
        n++;
    }
    expect_op(p, ')');
    x->kwnames = palloc(p, (size_t)(n ? n : 1) * sizeof(char *));
    x->kwvals = palloc(p, (size_t)(n ? n : 1) * sizeof(node *));
    if (n) {
        memcpy(x->kwnames, names, (size_t)n * sizeof(char *));
        memcpy(x->kwvals, defaults, (size_t)n * sizeof(node *));
    }
    x->nkw = n;
    int saved = p->soft;
    node *outer = p->macro;
    p->soft = 0;
    p->macro = x;
    body b = parse_statements(p, endmacro, 1);
    p->soft = saved;
    p->macro = outer;
    x->kids = b.v;
    x->nkids = b.n;
    return x;
}

static node *parse_filter_block(parser *p) {
    static const char *const endfilter[] = {"endfilter", NULL};
    node *x = mk(p, N_FILTERBLOCK, advance(p));
    x->a = parse_filter(p, NULL, 1);
    body b = parse_statements(p, endfilter, 1);
    x->kids = b.v;
    x->nkids = b.n;
    return x;
}

/* {% with a=1 %}, {% block name %}, {% generation %}: a body in a child scope */
static node *parse_scope(parser *p, const char *end) {
    const char *const ends[] = {end, NULL};
    const tok *at = advance(p);
    node *x = mk(p, N_SCOPE, at);
    if (tok_is_name(at, "with")) {
        nvec vals = {0};
        const char *names[32];
        int n = 0;
        while (cur(p)->type != T_BLOCK_END) {
            if (n) expect_op(p, ',');
            if (n == 32) pfail(p, cur(p), "too many with-assignments");
            names[n++] = expect_name(p);
            expect_op(p, '=');
            vpush(p, &vals, parse_expression(p, 1));
        }
        x->kwnames = palloc(p, (size_t)(n ? n : 1) * sizeof(char *));
        if (n) memcpy(x->kwnames, names, (size_t)n * sizeof(char *));
        x->kwvals = vals.v;
        x->nkw = n;
    } else if (tok_is_name(at, "block")) {
        x->name = expect_name(p);
        while (tok_is_name(cur(p), "scoped") || tok_is_name(cur(p), "required")) advance(p);
    }
    body b = parse_statements(p, ends, 1);
    if (tok_is_name(at, "block") && cur(p)->type == T_NAME) advance(p);
    x->kids = b.v;
    x->nkids = b.n;
    return x;
}

static node *parse_statement(parser *p) {
    const tok *t = cur(p);
    if (t->type != T_NAME) pfail(p, t, "tag name expected");
    ENTER(p);
    node *x;
    if (tok_is_name(t, "if"))
        x = parse_if(p);
    else if (tok_is_name(t, "for"))
        x = parse_for(p);
    else if (tok_is_name(t, "set"))
        x = parse_set(p);
    else if (tok_is_name(t, "macro"))
        x = parse_macro(p);
    else if (tok_is_name(t, "filter"))
        x = parse_filter_block(p);
    else if (tok_is_name(t, "with"))
        x = parse_scope(p, "endwith");
    else if (tok_is_name(t, "block"))
        x = parse_scope(p, "endblock");
    else if (tok_is_name(t, "generation"))
        x = parse_scope(p, "endgeneration");
    else if (tok_is_name(t, "break") || tok_is_name(t, "continue")) {
        x = mk(p, tok_is_name(t, "break") ? N_BREAK : N_CONTINUE, t);
        advance(p);
    } else if (tok_is_name(t, "print")) {
        x = mk(p, N_OUTPUT, advance(p));
        x->a = parse_tuple(p, 0, 1, NULL, 0);
    } else if (tok_is_name(t, "call") || tok_is_name(t, "include") || tok_is_name(t, "import") ||
               tok_is_name(t, "from") || tok_is_name(t, "extends") ||
               tok_is_name(t, "autoescape")) {
        pfail(p, t, "tag '%.*s' is not supported", (int)t->n, t->p);
    } else {
        pfail(p, t, "encountered unknown tag '%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p);
    }
    LEAVE(p);
    return x;
}

static body subparse(parser *p, const char *const *end_names) {
    nvec v = {0};
    for (;;) {
        const tok *t = cur(p);
        if (t->type == T_EOF) break;
        if (t->type == T_DATA) {
            node *x = mk(p, N_TEXT, t);
            x->lit = v_str(t->p, t->n);
            vpush(p, &v, x);
            advance(p);
        } else if (t->type == T_VAR_BEGIN) {
            advance(p);
            node *x = mk(p, N_OUTPUT, t);
            x->a = parse_tuple(p, 0, 1, NULL, 0);
            expect_type(p, T_VAR_END, "end of print statement");
            vpush(p, &v, x);
        } else if (t->type == T_BLOCK_BEGIN) {
            advance(p);
            if (is_end(cur(p), end_names)) break;
            vpush(p, &v, parse_statement(p));
            expect_type(p, T_BLOCK_END, "end of statement block");
        } else {
            pfail(p, t, "internal parser error");
        }
    }
    return (body){v.v, v.n};
}

int tpl_parse(tpl_arena *a, const tok *toks, size_t ntok, node **root, tpl_parse_error *pe) {
    parser p = {.a = a, .t = toks, .n = ntok, .pe = pe};
    if (setjmp(p.jb)) return -1;
    body b = subparse(&p, NULL);
    if (cur(&p)->type != T_EOF) {
        char buf[64];
        pfail(&p, cur(&p), "unexpected %s", describe(cur(&p), buf, sizeof buf));
    }
    node *x = mk(&p, N_SCOPE, &toks[0]);
    x->kids = b.v;
    x->nkids = b.n;
    *root = x;
    return 0;
}
