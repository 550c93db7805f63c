/* Sentence embeddings from a model's final hidden states: pooling over the
 * input's tokens, then optional Dense layers and L2 normalisation. Read from
 * a sentence-transformers directory (modules.json and the module folders it
 * lists), or set by flags for a generative model (serve --embeddings
 * --pooling). Model state: loaded and run by the engine thread only (the
 * pooler keeps its scratch). */
#ifndef SP_MODEL_POOLING_H
#define SP_MODEL_POOLING_H

#include "base/status.h"

/* Pooling modes; sentence-transformers concatenates several in this order. */
enum {
    SP_POOL_CLS = 1 << 0,
    SP_POOL_MAX = 1 << 1,
    SP_POOL_MEAN = 1 << 2,
    SP_POOL_MEAN_SQRT = 1 << 3, /* sum / sqrt(n) */
    SP_POOL_WEIGHTED = 1 << 4,  /* weights 1..n, then the weighted mean */
    SP_POOL_LAST = 1 << 5,
};

typedef struct sp_pooler sp_pooler;

/* dir/modules.json: a Transformer module first, then Pooling, Dense and
 * Normalize modules (sentence-transformers 2.x-6.x layouts, both the
 * pooling_mode string and the pooling_mode_* booleans). hidden: the
 * transformer's width. SP_ENOTFOUND when dir has no modules.json. */
sp_status sp_pooler_load(sp_pooler **out, const char *dir, int hidden, sp_error *err);
/* Pooling alone (modes: SP_POOL_* bits), L2-normalised if normalize. */
sp_status sp_pooler_plain(sp_pooler **out, unsigned modes, int hidden, int normalize,
                          sp_error *err);
/* SP_POOL_* bits from a name: mean, cls, last (lasttoken), max. -1 if unknown. */
int sp_pool_mode_from_name(const char *name);
/* How sentence-transformers 6 feeds a text to the model: as is, or, when
 * sentence_bert_config.json's modality_config has "message", as one user
 * message rendered by the chat template (content a string: flat; or
 * [{"type": "text", "text": ...}]: structured). */
typedef enum sp_embed_input {
    SP_EMBED_TEXT = 0,
    SP_EMBED_MESSAGE_FLAT,
    SP_EMBED_MESSAGE_STRUCTURED,
} sp_embed_input;
sp_embed_input sp_pooler_input(const sp_pooler *p);
/* The chat template's add_generation_prompt for message inputs
 * (processing_kwargs.chat_template; default false). */
int sp_pooler_generation_prompt(const sp_pooler *p);
/* The embedding's length. */
int sp_pooler_dim(const sp_pooler *p);
/* The pipeline for logs, e.g. "mean -> dense 32x64 -> dense 64x32 -> normalize". */
const char *sp_pooler_describe(const sp_pooler *p);
/* out[dim] from the hidden states of one input's n tokens (n x hidden). */
void sp_pooler_run(sp_pooler *p, const float *hidden, int n, float *out);
void sp_pooler_free(sp_pooler *p);

#endif
