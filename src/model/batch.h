/* One batch of a forward pass, as data: which tokens of which sequence,
 * where their K/V blocks are, which logits are wanted. Shared by every
 * backend (model/forward.c on the CPU, cuda/forward.cu on NVIDIA GPUs). */
#ifndef SP_MODEL_BATCH_H
#define SP_MODEL_BATCH_H

#include <stdint.h>

/* One sequence's part of a batched forward: n_tokens new tokens at positions
 * pos0 .. pos0+n_tokens-1; positions < pos0 are already in its KV blocks.
 * block_table lists the blocks holding positions 0, block_size, 2*block_size...
 * and must cover pos0 + n_tokens. With a grouped cache (sp_kv_create_groups)
 * swa_table does the same for the sliding group, except that entries for
 * blocks wholly before pos0 + 1 - window (never read again) may be -1. */
typedef enum sp_logits_want { SP_LOGITS_NONE = 0, SP_LOGITS_LAST, SP_LOGITS_ALL } sp_logits_want;

/* The soft tokens of one image in a sequence: positions [pos, pos + n).
 * Their input embeddings are the rows of embd (the vision projector's
 * output, not scaled like text embeddings), and in layers with media_bidir
 * they attend to each other in both directions, as transformers' token-type
 * mask makes them. A span may begin before pos0 (those rows are in the
 * cache already); in a model with media_bidir layers it must not end after
 * pos0 + n_tokens (its later keys would not exist yet). */
typedef struct sp_media_span {
    int pos, n;
    const float *embd; /* [n][hidden] */
} sp_media_span;

typedef struct sp_seq_input {
    const int32_t *tokens;
    int n_tokens;
    int pos0;
    const int32_t *block_table;
    int n_blocks;
    sp_logits_want want;
    const int32_t *swa_table; /* grouped caches only */
    int n_swa_blocks;
    const sp_media_span *spans; /* image soft tokens, by position (may be NULL) */
    int n_spans;
    /* 1: every token attends to the whole input, later tokens too (in a
     * sliding layer: |i - j| < window), as encoders do (model_desc
     * .bidirectional). The input must be a whole sequence (pos0 0). */
    int bidirectional;
    /* non-NULL: receives the final-normed hidden state of each new token,
     * n_tokens rows of hidden floats (what embedding pooling reads) */
    float *hidden;
} sp_seq_input;

#endif
