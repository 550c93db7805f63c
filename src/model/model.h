/* A loaded model: its description (model_desc), weights, derived tables, and
 * the decoder forward pass over a block KV cache. Everything here is owned by
 * the engine thread (DESIGN.md section 1); the CLI, being single-threaded,
 * calls it directly. */
#ifndef SP_MODEL_MODEL_H
#define SP_MODEL_MODEL_H

#include <stdint.h>

#include "base/status.h"
#include "compute/ops.h"
#include "model/batch.h"
#include "model/desc.h"

typedef struct sp_model sp_model;

/* Where the forward pass runs (DESIGN.md section 8). AUTO picks the first
 * usable CUDA device, else the CPU, and logs which and why. */
typedef enum sp_device_kind { SP_DEVICE_CPU = 0, SP_DEVICE_CUDA, SP_DEVICE_AUTO } sp_device_kind;

typedef struct sp_model_opts {
    sp_precision precision;   /* SP_PREC_F32: reference mode */
    sp_device_kind device;    /* the library default is the CPU; the CLI's is AUTO */
    int device_index;         /* CUDA device number */
    int load_dummy;           /* --load-format dummy: random weights sized from config.json */
    int n_threads;            /* compute workers incl. the caller; 0 = all cores */
    int use_mmap;             /* 1: serve weights from the mapping (--mmap) */
    sp_dtype quantize;        /* SP_F32 = none; else re-quantize 2-D weights at load */
    int longrope_always_long; /* mlx-lm behaviour for longrope (see spec 1.4.6) */
    int max_batch_tokens;     /* GPU: tokens one forward chunk holds (0: 512); larger
                                 batches run in chunks */
    sp_dtype kv_dtype;        /* GPU K/V cache (--kv-type f32|f16|bf16); SP_DTYPE_COUNT:
                                 f16 in fast mode, f32 in --precision f32. The CPU's is f32 */
} sp_model_opts;

void sp_model_opts_default(sp_model_opts *o);

/* path: a directory with config.json + *.safetensors, or a .gguf file. */
sp_status sp_model_load(sp_model **out, const char *path, const sp_model_opts *opts, sp_error *err);
void sp_model_free(sp_model *m);
const sp_model_desc *sp_model_get_desc(const sp_model *m);
/* 1 when image soft tokens attend to each other both ways in some layer:
 * a prefill chunk must then never end inside an image's tokens. */
int sp_model_media_bidir(const sp_model *m);
/* Bytes of weights read per decoded token (for benchmarks). */
uint64_t sp_model_weight_bytes(const sp_model *m);
/* The compute pool the model runs on (owned by the model). */
sp_pool *sp_model_pool(sp_model *m);
/* The device the model was loaded on (never AUTO), and a one-line name
 * ("cpu (avx512)", "cuda:0 NVIDIA H100 80GB HBM3"). */
sp_device_kind sp_model_device(const sp_model *m);
const char *sp_model_device_name(const sp_model *m);
/* Device memory the model holds (weights, scratch), and the device's total
 * and free bytes; zeros on the CPU. */
typedef struct sp_device_mem {
    uint64_t weights, scratch, kv, total, free;
} sp_device_mem;
void sp_model_device_mem(const sp_model *m, sp_device_mem *out);
/* GPU models: the device's copy bandwidth (GB/s, bytes read + written) and
 * bf16 GEMM rate (TFLOP/s), measured now; SP_EUNSUPPORTED on the CPU. */
sp_status sp_model_device_probe(sp_model *m, double *gbps, double *tflops, sp_error *err);

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

/* sp_seq_input and sp_logits_want: model/batch.h */

/* Runs all sequences' new tokens through the decoder as one batch and writes
 * the requested logits, sequence after sequence (LAST: 1 row, ALL: n_tokens
 * rows), each row vocab_size floats. Token ids are checked against the
 * vocabulary. */
sp_status sp_model_forward(sp_model *m, sp_kv *kv, const sp_seq_input *seqs, int n_seqs,
                           float *logits, sp_error *err);

#endif
