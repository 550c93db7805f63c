/* Internals of the Jinja interpreter behind template.h: arena, values, tokens,
 * syntax tree, and the render context shared by the evaluator, the filters
 * and the Python-method emulation. Not a public header. */
#ifndef SP_CHAT_TPL_INTERNAL_H
#define SP_CHAT_TPL_INTERNAL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

/* ---- arena: every parse and every render owns one; freed all at once ---- */

typedef struct tpl_chunk tpl_chunk;
typedef struct tpl_arena {
    tpl_chunk *head;
    size_t total; /* bytes handed out so far */
    size_t limit; /* 0: unlimited */
} tpl_arena;

void tpl_arena_init(tpl_arena *a, size_t limit);
void tpl_arena_free(tpl_arena *a);
/* NULL when the limit is reached or malloc fails. Memory is 16-aligned. */
void *tpl_arena_alloc(tpl_arena *a, size_t n);

/* ---- values: Python objects as Jinja sees them ---- */

typedef enum vtype {
    V_UNDEF, /* jinja2.Undefined: s.p holds the "why" message (may be NULL) */
    V_NONE,
    V_BOOL,
    V_INT,
    V_FLOAT,
    V_STR,
    V_LIST, /* list or tuple (l->tuple) */
    V_DICT,
    V_NS,    /* namespace(): a dict whose attributes may be assigned */
    V_MACRO, /* {% macro %} closure */
    V_FUNC,  /* builtin global or bound method */
    V_LOOP,  /* the `loop` object of a for loop */
} vtype;

typedef struct tlist tlist;
typedef struct tdict tdict;
typedef struct tmacro tmacro;
typedef struct tfunc tfunc;
typedef struct tloop tloop;

typedef struct val {
    int t;
    union {
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        tlist *l;
        tdict *d;
        tmacro *m;
        tfunc *fn;
        tloop *loop;
    } u;
} val;

struct tlist {
    val *items;
    size_t n, cap;
    int tuple;
};

struct tdict {
    val *keys, *vals;
    size_t n, cap;
};

/* ---- tokens ---- */

typedef enum ttype {
    T_EOF,
    T_DATA,
    T_VAR_BEGIN,
    T_VAR_END,
    T_BLOCK_BEGIN,
    T_BLOCK_END,
    T_NAME,
    T_STRING,
    T_INT,
    T_FLOAT,
    T_OP,
} ttype;

/* two-character operators; single-character ones use their own char code */
enum { OP_FLOORDIV = 256, OP_POW, OP_EQ, OP_NE, OP_LE, OP_GE, OP_IN, OP_NOTIN };

typedef struct tok {
    int type;
    int op;        /* T_OP: operator code */
    const char *p; /* T_DATA/T_NAME/T_STRING (decoded): text */
    size_t n;
    int64_t i;
    double f;
    int line, col;
} tok;

/* ---- syntax tree ---- */

typedef enum nkind {
    /* statements */
    N_TEXT,
    N_OUTPUT,
    N_IF,
    N_FOR,
    N_SET,
    N_SETBLOCK,
    N_MACRO,
    N_FILTERBLOCK,
    N_SCOPE, /* {% with %}, {% block %}: body in a child scope */
    N_BREAK,
    N_CONTINUE,
    /* expressions */
    N_CONST,
    N_NAME,
    N_GETATTR,
    N_GETITEM,
    N_SLICE,
    N_CALL,
    N_FILTER,
    N_TEST,
    N_BINOP,
    N_NEG,
    N_POS,
    N_NOT,
    N_AND,
    N_OR,
    N_COMPARE,
    N_CONCAT,
    N_COND,
    N_LIST,
    N_TUPLE,
    N_DICT,
} nkind;

typedef struct node node;
struct node {
    int kind;
    int op; /* N_BINOP: operator; N_FILTER/N_TEST: table index (-1: unknown) */
    int line, col;
    node *a, *b, *c, *d;
    node **kids; /* statements of a body; positional args; list items */
    int nkids;
    node **kids2; /* else-body; dict values; compare operands */
    int nkids2;
    int *ops;             /* N_COMPARE operators */
    const char **kwnames; /* keyword argument names / macro parameter names */
    node **kwvals;        /* keyword argument values / macro defaults (NULL: none) */
    int nkw;
    const char *name;   /* variable, attribute, filter, test, macro name */
    const char **names; /* for/set targets */
    int nnames;
    val lit;
    int flag; /* N_TEST: negated; N_FOR: recursive; N_SET: namespace attr */
};

/* ---- parse (tpl_lex.c, tpl_parse.c) ---- */

typedef struct tpl_parse_error {
    char msg[512];
    int line, col;
} tpl_parse_error;

/* Normalizes newlines, strips the final newline, then tokenizes with
 * trim_blocks and lstrip_blocks. Tokens live in the arena. */
int tpl_lex(tpl_arena *a, const char *src, size_t n, tok **out, size_t *ntok, tpl_parse_error *pe);
/* Builds the tree of the whole template: an N_SCOPE-less body list. */
int tpl_parse(tpl_arena *a, const tok *toks, size_t ntok, node **root, tpl_parse_error *pe);

/* ---- render context (tpl_eval.c) ---- */

typedef struct tbuf {
    char *p;
    size_t n, cap;
    int heap; /* grown with realloc (the render's output), else in the arena */
} tbuf;

typedef struct scope scope;
struct scope {
    scope *parent;
    const char **names;
    val *vals;
    size_t n, cap;
    int captured; /* a macro closes over it: a loop must not reuse it */
};

struct tmacro {
    const node *def;
    scope *closure;
};

typedef struct rctx rctx;
typedef val (*tfunc_impl)(rctx *r, const node *at, val self, val *pos, int npos, const char **kwn,
                          val *kwv, int nkw);
struct tfunc {
    const char *name;
    tfunc_impl impl;
    val self;   /* bound method receiver, V_UNDEF for globals */
    int unsafe; /* sandbox: calling it raises a SecurityError */
};

struct tloop {
    val *items;
    size_t n, i;
    int depth;
    const node *forn; /* for recursive loop(...) */
    scope *outer;
    val last_changed; /* loop.changed() state */
    int changed_set;
};

struct rctx {
    tpl_arena *arena;
    jmp_buf jb;
    sp_error *err;
    tbuf *out;
    scope *root;
    int depth;      /* eval/exec nesting */
    int call_depth; /* macro calls */
    long iterations;
    size_t out_limit;
};

/* limits: named errors instead of a crash or a hang */
#define TPL_MAX_DEPTH       600      /* nested evaluation/statement frames */
#define TPL_MAX_CALL_DEPTH  100      /* nested macro calls (Python would stop near here) */
#define TPL_MAX_ITERATIONS  5000000L /* loop iterations per render */
#define TPL_MAX_RANGE       100000   /* jinja2 sandbox MAX_RANGE */
#define TPL_MAX_OUTPUT      (64u << 20)
#define TPL_MAX_MEMORY      ((size_t)256 << 20)
#define TPL_MAX_PARSE_DEPTH 200

/* Raises a template error at node `at` (may be NULL): never returns. */
_Noreturn void tpl_fail(rctx *r, const node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void *tpl_alloc(rctx *r, size_t n); /* never NULL: fails the render instead */

/* values (tpl_value.c) */
val v_undef(const char *why);
val v_none(void);
val v_bool(int b);
val v_int(int64_t i);
val v_float(double f);
val v_str(const char *p, size_t n);
val v_strz(const char *p);
val v_str_copy(rctx *r, const char *p, size_t n);
val v_list(rctx *r, size_t cap);
val v_dict(rctx *r, size_t cap);
void list_push(rctx *r, val list, val item);
void dict_set(rctx *r, tdict *d, val key, val value);
int dict_find(const tdict *d, val key); /* index or -1 */
val dict_get_str(const tdict *d, const char *key);

int v_truthy(val v);
int v_equal(val a, val b);
int v_compare(rctx *r, const node *at, val a, val b); /* <0, 0, >0; fails on mismatch */
const char *v_type_name(val v);
int v_is_number(val v); /* bool, int or float */
double v_as_double(val v);
/* Python str(v) / repr(v) appended to b */
void v_str_into(rctx *r, tbuf *b, val v);
void v_repr_into(rctx *r, tbuf *b, val v);
val v_to_string(rctx *r, val v); /* str(v) as a V_STR */
void py_float_repr(double f, char *out, size_t cap);

/* buffers */
void tbuf_put(rctx *r, tbuf *b, const char *p, size_t n);
void tbuf_putc(rctx *r, tbuf *b, char c);
void tbuf_puts(rctx *r, tbuf *b, const char *s);

/* Python string helpers (tpl_pystr.c) */
int py_isspace(uint32_t cp);
size_t u8_len(const char *p, size_t n);              /* code points */
size_t u8_offset(const char *p, size_t n, size_t k); /* byte offset of code point k */
uint32_t u8_next(const char *p, size_t n, size_t *i);
uint32_t py_upper(uint32_t cp);
uint32_t py_lower(uint32_t cp);
int py_isalpha(uint32_t cp);
int py_isdigit(uint32_t cp);
int py_isprintable(uint32_t cp);
void u8_put(rctx *r, tbuf *b, uint32_t cp);
/* strip modes: 1 left, 2 right, 3 both; chars NULL: whitespace */
val py_strip(val s, int mode, const char *chars, size_t nchars);

/* JSON (tpl_json.c) */
val tpl_from_json(rctx *r, const void *json); /* json_t* */
/* Python json.dumps(v, ensure_ascii, indent, separators, sort_keys) */
void tpl_tojson(rctx *r, const node *at, tbuf *b, val v, int ensure_ascii, const char *indent,
                const char *item_sep, const char *key_sep, int sort_keys);

/* filters and tests (tpl_filters.c) */
int tpl_filter_index(const char *name);
int tpl_test_index(const char *name);
val tpl_apply_filter(rctx *r, const node *at, int index, const char *name, val input, val *pos,
                     int npos, const char **kwn, val *kwv, int nkw);
int tpl_apply_test(rctx *r, const node *at, int index, const char *name, val input, val *pos,
                   int npos);

/* attributes, methods and globals (tpl_methods.c) */
val tpl_getattr(rctx *r, const node *at, val obj, const char *name, size_t n);
val tpl_getitem(rctx *r, const node *at, val obj, val key);
val tpl_method(rctx *r, val obj, const char *name, size_t n); /* bound method or V_UNDEF */
val tpl_global(const char *name); /* builtin globals (range, namespace, ...) or V_UNDEF */
val tpl_call(rctx *r, const node *at, val callee, val *pos, int npos, const char **kwn, val *kwv,
             int nkw);
/* argument helper: positional index or keyword name, else dflt */
val tpl_arg(val *pos, int npos, const char **kwn, val *kwv, int nkw, int idx, const char *name,
            val dflt);
/* str.splitlines / str.replace, shared with the filters */
val tpl_splitlines(rctx *r, val s, int keepends);
val tpl_str_replace(rctx *r, const node *at, val s, val old, val new_, int64_t count);
/* iteration: a list of the items `for` would see */
tlist *tpl_iterate(rctx *r, const node *at, val v);
/* macro call (tpl_eval.c) */
val tpl_call_macro(rctx *r, const node *at, tmacro *m, val *pos, int npos, const char **kwn,
                   val *kwv, int nkw);
val tpl_loop_attr(rctx *r, const node *at, tloop *l, const char *name);
/* loop(children) inside a `recursive` for loop (tpl_eval.c) */
val tpl_call_loop(rctx *r, const node *at, tloop *l, val *pos, int npos);
/* binary arithmetic and printf-style "fmt % args" (tpl_eval.c) */
val tpl_arith(rctx *r, const node *at, int op, val a, val b);
val tpl_percent(rctx *r, const node *at, val fmt, val args);
/* renders the template body into r->out (tpl_eval.c) */
void tpl_exec_root(rctx *r, const node *root, scope *sc);
scope *tpl_scope_new(rctx *r, scope *parent);
void tpl_scope_set(rctx *r, scope *s, const char *name, val v);

#endif
