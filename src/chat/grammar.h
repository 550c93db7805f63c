/* Structured output: JSON Schema, regular expressions and choice lists
 * compiled into one immutable byte-level pushdown automaton.
 *
 * A request's grammar is compiled once, on the HTTP thread, then shared
 * read-only (reference counted) with the engine thread, which walks it token
 * by token (engine/gmask.h). The automaton is a set of DFAs ("rules") over
 * bytes; a transition may push a return state and enter another rule (only
 * recursive $refs and "any JSON value" are separate rules; everything else
 * is inlined). Each (state, byte class) has at most one action, chosen when
 * the grammar is built, so a run is deterministic: one state and one stack.
 * Where the schema is ambiguous (anyOf alternatives that start alike and
 * cannot be merged because one is recursive), the earlier alternative wins:
 * the output still matches the schema, it just never takes the later one.
 *
 * Output shape (what the automaton accepts, always valid for the schema):
 * - properties come in the schema's order; optional ones may be left out;
 *   additionalProperties: absent means none when properties are declared
 *   (any when the object declares none), false none, true / a schema: extra
 *   keys after the declared ones, never equal to a declared name;
 * - between tokens up to G_WS_MAX whitespace bytes, none before the first
 *   value byte except at the very start, none after the last;
 * - strings use one canonical escaping: raw UTF-8 for every character
 *   except '"' and '\\' (written \" and \\) and U+0000..U+001F (\b \t \n \f
 *   \r, else \u00XX), so a string's bytes determine its text and back;
 * - integers have at most 15 digits, numbers at most 15 integer and 15
 *   fraction digits and a two-digit exponent (every JSON parser reads them
 *   exactly and finitely). */
#ifndef SP_CHAT_GRAMMAR_H
#define SP_CHAT_GRAMMAR_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SP_GRAM_NEED_INF 0x3fffffffu

/* The tables the engine walks. tab[s * n_cls + cls[b]]: >= 0 the next
 * state; -1 no move; <= -2 action -(v + 2): push act.n return states from
 * pushes[act.off...] (the last pushed is popped first) and go to
 * act.target. A state with no move for a byte that is accepting in its
 * rule pops the stack and retries the byte in the popped state. */
typedef struct sp_gram_act {
    int32_t target, off, n;
} sp_gram_act;

typedef struct sp_grammar {
    atomic_int refs;
    int32_t n_states, n_cls, n_act, n_rules;
    int32_t start;
    uint8_t cls[256];
    int32_t *tab;
    sp_gram_act *act;
    int32_t *pushes;
    uint8_t *acc;   /* accepting in its rule: the rule may end here */
    uint8_t *final; /* accepting with no move at all */
    /* fewest bytes that complete the state's rule (its return states add
     * their own): what keeps an output completable within max_tokens */
    uint32_t *need;
} sp_grammar;

typedef enum sp_gram_status {
    SP_GRAM_OK = 0,
    SP_GRAM_EUNSUPPORTED, /* a keyword (or regex feature) not enforced */
    SP_GRAM_EINVALID,     /* not a valid schema / regex */
    SP_GRAM_EUNSAT,       /* nothing satisfies it */
    SP_GRAM_ETOO_LARGE,   /* past the size limits */
    SP_GRAM_ENOMEM,
} sp_gram_status;

/* What went wrong and where: path is the JSON path inside the schema
 * ("" for the root; "properties.a.items[0]"), keyword the offending
 * keyword ("" when none). */
typedef struct sp_gram_error {
    sp_gram_status status;
    char keyword[64];
    char path[256];
    char msg[512];
} sp_gram_error;

/* JSON Schema (draft 2020-12 subset; docs/api.md lists the keywords). */
sp_gram_status sp_grammar_from_schema(const json_t *schema, sp_grammar **out, sp_gram_error *err);
/* Any JSON object (response_format json_object). */
sp_gram_status sp_grammar_json_object(sp_grammar **out, sp_gram_error *err);
/* The whole output matches the regular expression (guided_regex). */
sp_gram_status sp_grammar_from_regex(const char *re, sp_grammar **out, sp_gram_error *err);
/* The output is exactly one of the strings (guided_choice). */
sp_gram_status sp_grammar_from_choices(const char *const *choices, int n, sp_grammar **out,
                                       sp_gram_error *err);

sp_grammar *sp_grammar_retain(sp_grammar *g);
void sp_grammar_release(sp_grammar *g);

/* Runs bytes from (state, stack) on the automaton (reference walk for
 * tests and fuzzing; the engine has its own). stack holds *sp entries of
 * cap. Returns 0, or -1 when a byte has no move (state unchanged then is
 * not guaranteed). */
int sp_grammar_feed(const sp_grammar *g, int32_t *state, int32_t *stack, int *sp, int cap,
                    const char *s, size_t n);
/* 1 when (state, stack) is a complete output. */
int sp_grammar_complete(const sp_grammar *g, int32_t state, const int32_t *stack, int sp);
/* Bytes still needed to complete from (state, stack). */
uint32_t sp_grammar_need(const sp_grammar *g, int32_t state, const int32_t *stack, int sp);

#endif
