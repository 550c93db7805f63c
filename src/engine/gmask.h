/* Structured output on the engine thread: a request's compiled grammar
 * (chat/grammar.h) walked token by token.
 *
 * Per tokenizer, built once at load: every token's bytes in a trie laid
 * out in preorder (sp_gvocab), shared read-only. Per request: the
 * automaton's state and stack, and a cache of token masks keyed by the
 * state on top. A mask lists the tokens whose bytes stay inside the top
 * rule (computed once by one walk of the trie that skips every subtree
 * whose prefix the state refuses); tokens that would leave the top rule
 * are few (a closing bracket and what follows) and are walked against the
 * real stack each step. So a step costs a copy of the vocabulary's bits,
 * not a pass over 151k token texts.
 *
 * Budget: with n tokens left, a token is allowed only if the output can
 * still be completed in n - 1 more (at one token per byte, which
 * byte-level vocabularies always allow); when that is no longer possible
 * the output is cut off as it is ("length", a prefix of a valid value).
 *
 * Reasoning: with think markers, the output may open a block (think_open)
 * first, or starts inside one (in_think); the block's text is free until
 * think_close, and the grammar starts right after it. */
#ifndef SP_ENGINE_GMASK_H
#define SP_ENGINE_GMASK_H

#include <stdint.h>

#include "chat/grammar.h"
#include "engine/constrain.h"

typedef struct sp_gvocab sp_gvocab;
sp_gvocab *sp_gvocab_new(const sp_cons_vocab *v);
void sp_gvocab_free(sp_gvocab *t);
int sp_gvocab_nodes(const sp_gvocab *t); /* trie size (for the log) */

typedef struct sp_gmatch_opts {
    const char *think_open;  /* NULL: no optional block at the start */
    const char *think_close; /* NULL: no reasoning */
    int in_think;            /* the prompt opened a block */
    int keep_special;        /* special tokens are text (allowed while reasoning) */
} sp_gmatch_opts;

typedef struct sp_gmatch sp_gmatch;
/* Retains g; voc must outlive the matcher. NULL on out of memory. */
sp_gmatch *sp_gmatch_new(sp_grammar *g, const sp_gvocab *voc, const int32_t *eos, int n_eos,
                         const sp_gmatch_opts *o);
void sp_gmatch_free(sp_gmatch *m);
/* May token id come next, with budget tokens left (this one included)? */
int sp_gmatch_allows(sp_gmatch *m, int32_t id, int budget);
/* The allowed tokens as bits (vocab ids; words of (vocab + 63) / 64);
 * returns how many. */
int sp_gmatch_fill(sp_gmatch *m, uint64_t *bits, int budget);
/* logits[id] = -inf for every token not allowed; returns how many are. */
int sp_gmatch_mask(sp_gmatch *m, float *logits, int vocab, int budget);
/* The token was chosen: advance (a token the grammar refuses ends it). */
void sp_gmatch_accept(sp_gmatch *m, int32_t id);
/* 1 when the output is complete and nothing may follow. */
int sp_gmatch_finished(const sp_gmatch *m);
/* Cache statistics (bench): masks computed, and reused. */
void sp_gmatch_stats(const sp_gmatch *m, long *misses, long *hits);

#endif
