/* A loaded model: its description (model_desc), weights, derived tables, and
 * the decoder forward pass over a block KV cache. Everything here is owned by
 * the engine thread (DESIGN.md section 1); the CLI, being single-threaded,
 * calls it directly. */
#ifndef SP_MODEL_MODEL_H
#define SP_MODEL_MODEL_H

#include <stdint.h>

#include "base/status.h"
#include "compute/ops.h"
#include "model/desc.h"

typedef struct sp_model sp_model;

typedef struct sp_model_opts {
    sp_precision precision;   /* SP_PREC_F32: reference mode */
    int n_threads;            /* compute workers incl. the caller; 0 = all cores */
    int use_mmap;             /* 1: serve weights from the mapping (--mmap) */
    sp_dtype quantize;        /* SP_F32 = none; else re-quantize 2-D weights at load */
    int longrope_always_long; /* mlx-lm behaviour for longrope (see spec 1.4.6) */
} sp_model_opts;

void sp_model_opts_default(sp_model_opts *o);

/* path: a directory with config.json + *.safetensors, or a .gguf file. */
sp_status sp_model_load(sp_model **out, const char *path, const sp_model_opts *opts, sp_error *err);
void sp_model_free(sp_model *m);
const sp_model_desc *sp_model_get_desc(const sp_model *m);
/* Bytes of weights read per decoded token (for benchmarks). */
uint64_t sp_model_weight_bytes(const sp_model *m);
/* The compute pool the model runs on (owned by the model). */
sp_pool *sp_model_pool(sp_model *m);

/* KV cache storage: n_blocks blocks of block_size tokens for every layer that
 * owns K/V. Which sequence uses which block is the caller's business (the
 * engine's block manager); the forward pass reads block tables. */
typedef struct sp_kv sp_kv;
sp_status sp_kv_create(sp_kv **out, const sp_model *m, int n_blocks, int block_size, sp_error *err);
void sp_kv_free(sp_kv *kv);
int sp_kv_block_size(const sp_kv *kv);
int sp_kv_n_blocks(const sp_kv *kv);
uint64_t sp_kv_bytes_per_block(const sp_model *m, int block_size);

/* Sliding-window layers read only the last `window` positions, so their K/V
 * older than that is dead weight. The K/V a layer owns belongs to the
 * sliding group when every layer reading it (kv_source) has a sliding
 * window; the group's window is the largest of those windows. Returns 0
 * when the model has no sliding group. */
int sp_model_swa_window(const sp_model *m);
/* K/V bytes of one block of the full-attention (sliding 0) or the sliding
 * (sliding 1) group; 0 for a group without layers. */
uint64_t sp_kv_group_bytes_per_block(const sp_model *m, int block_size, int sliding);
/* A cache in two groups: full-attention layers get n_full blocks (indexed by
 * block_table), sliding-group layers n_swa blocks (indexed by swa_table, see
 * sp_seq_input). Without a sliding group this is sp_kv_create(n_full). */
sp_status sp_kv_create_groups(sp_kv **out, const sp_model *m, int n_full, int n_swa, int block_size,
                              sp_error *err);

/* One sequence's part of a batched forward: n_tokens new tokens at positions
 * pos0 .. pos0+n_tokens-1; positions < pos0 are already in its KV blocks.
 * block_table lists the blocks holding positions 0, block_size, 2*block_size...
 * and must cover pos0 + n_tokens. With a grouped cache (sp_kv_create_groups)
 * swa_table does the same for the sliding group, except that entries for
 * blocks wholly before pos0 + 1 - window (never read again) may be -1. */
typedef enum sp_logits_want { SP_LOGITS_NONE = 0, SP_LOGITS_LAST, SP_LOGITS_ALL } sp_logits_want;

typedef struct sp_seq_input {
    const int32_t *tokens;
    int n_tokens;
    int pos0;
    const int32_t *block_table;
    int n_blocks;
    sp_logits_want want;
    const int32_t *swa_table; /* grouped caches only */
    int n_swa_blocks;
    /* 1: every token attends to the whole input, later tokens too (in a
     * sliding layer: |i - j| < window), as encoders do (model_desc
     * .bidirectional). The input must be a whole sequence (pos0 0). */
    int bidirectional;
    /* non-NULL: receives the final-normed hidden state of each new token,
     * n_tokens rows of hidden floats (what embedding pooling reads) */
    float *hidden;
} sp_seq_input;

/* Runs all sequences' new tokens through the decoder as one batch and writes
 * the requested logits, sequence after sequence (LAST: 1 row, ALL: n_tokens
 * rows), each row vocab_size floats. Token ids are checked against the
 * vocabulary. */
sp_status sp_model_forward(sp_model *m, sp_kv *kv, const sp_seq_input *seqs, int n_seqs,
                           float *logits, sp_error *err);

#endif
