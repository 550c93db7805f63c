/* Constrained decoding of tool calls (tool_choice "required" or a named
 * function): the output must be one or more calls in the model's own format,
 *
 *   prefix  (open name_i mid ARGS close)  [sep (open name_j mid ARGS close)]...
 *
 * where name_i is one of the allowed names and ARGS is one JSON object (or
 * Gemma 4's syntax for one, whose mid is the object's opening '{'). The
 * engine thread asks, for each candidate token, whether its text keeps the
 * output a prefix of that language, and whether what is left can still be
 * completed within the token budget (so a call is always closed before
 * max_tokens runs out, given single-byte tokens, which byte-level and
 * byte-fallback vocabularies have). With sep set, the model may end (EOS)
 * after any complete call or start another; without it the sequence ends as
 * soon as the call is closed. */
#ifndef SP_ENGINE_CONSTRAIN_H
#define SP_ENGINE_CONSTRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

typedef struct sp_tool_constraint {
    const char *prefix;       /* forced first ("" if none), e.g. closing an open <think> */
    const char *open;         /* the call's text up to the name */
    const char *const *names; /* allowed names, as written inside the JSON string */
    int n_names;
    const char *mid;   /* from after the name up to the arguments object */
    const char *close; /* after the arguments object */
    const char *sep;   /* between calls; NULL: exactly one call */
    int max_calls;     /* with sep: 0 for any number */
    /* Gemma 4's argument syntax instead of JSON: strings between this
     * marker (<|"|>), bare keys (key:), the rest as JSON; NULL: JSON */
    const char *quote;
} sp_tool_constraint;

/* One allocation holding the spec and all its strings: free() it. NULL on
 * out of memory or a spec without names. */
sp_tool_constraint *sp_tool_constraint_copy(const sp_tool_constraint *c);

/* Every token's text as it appears in the middle of an output, built once
 * per tokenizer (engine thread) and shared by all constrained requests. */
typedef struct sp_cons_vocab sp_cons_vocab;
sp_cons_vocab *sp_cons_vocab_new(const sp_tokenizer *tok);
void sp_cons_vocab_free(sp_cons_vocab *v);
int sp_cons_vocab_size(const sp_cons_vocab *v);
/* Token id's text (not NUL-terminated) and whether it is a special token. */
const char *sp_cons_vocab_text(const sp_cons_vocab *v, int32_t id, size_t *len, int *special);

/* One request's constraint state (engine thread only). keep_special: special
 * tokens are part of the output text and may spell the markers (never the
 * arguments); else they are never allowed. */
typedef struct sp_cons sp_cons;
sp_cons *sp_cons_new(const sp_tool_constraint *spec, const sp_cons_vocab *voc, const int32_t *eos,
                     int n_eos, int keep_special);
void sp_cons_free(sp_cons *c);
/* May token id come next, with budget tokens left (this one included)? */
int sp_cons_allows(const sp_cons *c, int32_t id, int budget);
/* Sets logits[id] = -inf for every token not allowed (as sp_cons_allows
 * says, but tokens are first sorted out by their first byte); returns how
 * many are allowed. */
int sp_cons_mask(const sp_cons *c, float *logits, int vocab, int budget);
/* The token was chosen: advance. */
void sp_cons_accept(sp_cons *c, int32_t id);
/* 1 when the output is complete and nothing may follow. */
int sp_cons_finished(const sp_cons *c);

/* The same checks on raw text (unit tests): 0 if s keeps the output valid;
 * then the state advanced. */
int sp_cons_feed_text(sp_cons *c, const char *s, size_t n);
/* Bytes (tokens, at worst) still needed to complete the output. */
int sp_cons_need(const sp_cons *c);

#endif
