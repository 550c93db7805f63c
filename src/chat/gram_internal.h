/* Internals of the grammar compiler (grammar.h): a Thompson NFA over bytes
 * with call edges (recursive rules), its subset construction into DFAs,
 * products of call-free DFAs (intersection, difference), and the code that
 * turns JSON Schema and regular expressions into NFA fragments. Everything
 * here runs on the thread that compiles a request's grammar. */
#ifndef SP_CHAT_GRAM_INTERNAL_H
#define SP_CHAT_GRAM_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "chat/grammar.h"

/* Size limits: a schema past them is refused (400) rather than compiled
 * for seconds or into hundreds of megabytes. */
#define G_MAX_NFA_STATES 300000
#define G_MAX_DFA_STATES 65536
#define G_MAX_REPEAT     1000 /* {n,m}, maxLength, maxItems bounds we unroll */
#define G_WS_MAX         16   /* whitespace bytes in a row between tokens */

enum { G_BYTE = 0, G_EPS = 1, G_CALL = 2 };

typedef struct g_edge {
    int32_t to, next; /* next: the state's next edge (-1: last) */
    int32_t rule;     /* G_CALL: the rule called; the edge returns to `to` */
    uint8_t lo, hi, kind;
} g_edge;

typedef struct g_nfa {
    int32_t n, cap;
    int32_t *head; /* per state: first edge, -1 */
    int32_t *tail; /* per state: last edge (edges keep insertion order) */
    g_edge *e;
    size_t ne, ecap;
    int err; /* sticky: SP_GRAM_ETOO_LARGE or SP_GRAM_ENOMEM */
} g_nfa;

typedef struct g_frag {
    int32_t s, e; /* start state, the one end state (no edges out yet) */
} g_frag;

int32_t g_state(g_nfa *a);
void g_byte(g_nfa *a, int32_t from, int32_t to, unsigned lo, unsigned hi);
void g_eps(g_nfa *a, int32_t from, int32_t to);
void g_call(g_nfa *a, int32_t from, int32_t to, int32_t rule);
void g_nfa_free(g_nfa *a);

g_frag g_empty(g_nfa *a); /* the empty string */
g_frag g_never(g_nfa *a); /* no string at all */
g_frag g_lit(g_nfa *a, const char *s, size_t n);
g_frag g_range(g_nfa *a, unsigned lo, unsigned hi);
g_frag g_cat(g_nfa *a, g_frag x, g_frag y);
g_frag g_alt(g_nfa *a, g_frag x, g_frag y);
g_frag g_opt(g_nfa *a, g_frag x);
g_frag g_star_of(g_nfa *a, g_frag x); /* x must not be shared elsewhere */
g_frag g_ws(g_nfa *a);                /* [ \t\n\r]{0,G_WS_MAX} */
/* make(ctx){min,max} (max < 0: unbounded), each copy a fresh make(). */
g_frag g_repeat(g_nfa *a, g_frag (*make)(g_nfa *, void *), void *ctx, long long min, long long max);

/* A DFA from subset construction: next[s*256+b] (-1: none), accepting
 * states, and each state's call edges (rule, target) in NFA order. */
typedef struct g_dfa {
    int32_t n, cap;
    int32_t *next;
    uint8_t *acc;
    int32_t *c_off; /* n+1 offsets into c_rule / c_to */
    int32_t *c_rule, *c_to;
    int32_t nc, ccap;
} g_dfa;

/* The DFA of the strings from f.s to f.e. 0, or SP_GRAM_ETOO_LARGE /
 * SP_GRAM_ENOMEM. */
int g_determinize(g_nfa *a, g_frag f, g_dfa *out);
/* x AND y, or (and_not) x AND NOT y; both call-free. */
int g_dfa_product(const g_dfa *x, const g_dfa *y, int and_not, g_dfa *out);
/* Copies a DFA into the NFA as a fragment. */
g_frag g_embed(g_nfa *a, const g_dfa *d);
void g_dfa_free(g_dfa *d);
/* The fragment x op y via DFAs (both call-free); sets a->err on failure. */
g_frag g_frag_product(g_nfa *a, g_frag x, g_frag y, int and_not);

/* Regular expressions (gram_regex.c). json: the text is a JSON string's
 * content, written in Spindle's canonical escaping (see grammar.h); else
 * raw UTF-8 output text. Whole-string match unless the pattern is
 * unanchored and search is set (JSON Schema's pattern). On error fills msg
 * (what and where in the pattern) and returns -1. */
int g_regex(g_nfa *a, const char *re, size_t n, int json, int search, g_frag *out, char *msg,
            size_t cap);
/* One character (any code point) as a JSON string's content. */
g_frag g_json_char(g_nfa *a);
/* A code point range as JSON string content (json) or raw UTF-8. */
g_frag g_cp_range(g_nfa *a, uint32_t lo, uint32_t hi, int json);
/* Appends v's canonical JSON text (compact, the escaping of grammar.h);
 * returns its length or -1 on out of memory. */
long g_json_text(const json_t *v, char **buf, size_t *len, size_t *cap);

/* Rules assembled into the immutable grammar (gram_build.c): rule 0 is the
 * start; dfas[r] is rule r's DFA. Takes nothing over. */
int g_build(const g_dfa *dfas, int n_rules, sp_grammar **out, char *msg, size_t cap);

#endif
