/* Private state of a loaded model, shared by model.c, kv.c and forward.c. */
#ifndef SP_MODEL_INTERNAL_H
#define SP_MODEL_INTERNAL_H

#include "model/model.h"
#include "model/weights.h"

/* Grow-only scratch for the forward pass: sized for the largest batch seen,
 * so steady-state decoding allocates nothing. */
typedef struct sp_scratch {
    int cap_tokens;
    float *x, *xb, *xb2, *q, *k, *v, *att, *gate, *up, *ffn_out, *moe_out;
    float *router, *ple, *ple_tmp;
    float *rope_cos, *rope_sin; /* [tokens][n_ropes][max_pairs] */
    int *tok_seq, *tok_pos, *tok_len;
    int *tok_span_end; /* end of the media span holding the token, 0 if none */
    /* MoE grouping */
    int *sel_expert;   /* [tokens][k] */
    float *sel_weight; /* [tokens][k] */
    int *exp_rows;     /* [tokens * k] token index per (expert, slot) */
    float *exp_in, *exp_gate, *exp_up, *exp_out;
    int cap_blocks;
    const float **blk_ptrs; /* per thread: 2 * cap_blocks pointers */
} sp_scratch;

struct sp_model {
    sp_model_desc d;
    sp_model_opts opts;
    sp_weights w;
    struct sp_safetensors *st; /* kept open only with --mmap */
    struct sp_gguf *gguf;      /* kept open only with --mmap */
    sp_pool *pool;
    sp_scratch s;
    int max_q, max_kv, max_ffn, max_pairs; /* widest layer, for scratch */
    struct sp_cuda *gpu; /* the CUDA backend when loaded with --device cuda, else NULL */
    int kv_elem;         /* bytes of one cached K or V value on the model's device */
    char device_name[160];
    char device_why[320]; /* --device auto: why this device (logged after the load) */
    int media_bidir;      /* some layer has media_bidir */
};

struct sp_kv {
    int n_blocks, block_size, n_layers;
    float **k, **v; /* per layer: NULL for layers that read another layer's K/V */
    /* Made by sp_kv_create_groups with a sliding group: per layer, 1 if its
     * K/V lives in the sliding group (indexed by swa_table, n_swa_blocks
     * blocks); NULL otherwise (every layer reads block_table). */
    unsigned char *sliding;
    int n_swa_blocks, swa_window;
    struct sp_cuda_kv *gpu; /* the blocks on the device (k and v stay NULL) */
    struct sp_cuda *dev;    /* its owner */
};

#endif
