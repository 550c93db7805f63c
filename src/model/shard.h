/* Tensor-parallel partitioning of a model_desc (docs/multi-gpu.md): which
 * piece of every weight each of N GPUs holds, checked against the model's
 * geometry and its weights' block sizes before a byte is read.
 *
 * The split is Megatron's. Attention heads and MLP intermediate columns are
 * divided: the matrices that produce them are cut by rows (wq, wk, wv,
 * gate, up: "column parallel"), the matrices that consume them by columns
 * (wo, down: "row parallel"), so each GPU computes a partial sum of the
 * residual update and one all-reduce follows the attention output and one
 * the FFN. The output head (and the token embedding) is cut by vocabulary
 * rows. When there are more GPUs than K/V heads, GPUs share a K/V head
 * (each holds a copy). MoE layers either shard every expert's columns or
 * give each GPU whole experts. Norms, routers, biases of the row-parallel
 * matrices and Gemma 4's small per-layer tensors stay whole on every GPU.
 *
 * Pure CPU code over the description; no device is touched. */
#ifndef SP_MODEL_SHARD_H
#define SP_MODEL_SHARD_H

#include <stdint.h>

#include "base/status.h"
#include "model/desc.h"

typedef struct sp_tp_range {
    int64_t begin, count;
} sp_tp_range;

typedef enum sp_tp_moe {
    SP_TP_MOE_AUTO = 0, /* SHARD where the expert width divides, else EXPERTS */
    SP_TP_MOE_SHARD,    /* every GPU holds every expert's share of columns:
                           the work of a token is even across GPUs at any batch */
    SP_TP_MOE_EXPERTS,  /* every GPU holds E/N whole experts */
} sp_tp_moe;

/* One GPU's share of one layer. */
typedef struct sp_tp_layer {
    sp_tp_range q_heads;    /* query heads */
    sp_tp_range kv_heads;   /* K/V heads (a range of 1 shared with other GPUs
                               when N exceeds the layer's K/V heads) */
    sp_tp_range ffn;        /* dense MLP intermediate columns */
    sp_tp_range experts;    /* experts held (all of them unless EXPERTS) */
    sp_tp_range expert_ffn; /* columns of each held expert (all unless SHARD) */
} sp_tp_layer;

typedef struct sp_tp_rank {
    sp_tp_layer *layers;   /* [n_layers] */
    sp_tp_range vocab;     /* rows of the output head and token embedding */
    uint64_t weight_bytes; /* every byte of weights this GPU holds */
} sp_tp_rank;

typedef struct sp_tp_plan {
    int n_ranks, n_layers;
    sp_tp_moe moe;             /* the mode chosen (never AUTO) */
    sp_tp_rank *ranks;         /* [n_ranks]; the plan owns these and their layers */
    uint64_t replicated_bytes; /* of weight_bytes: what every GPU holds whole */
} sp_tp_plan;

/* Plans n_ranks >= 1 GPUs for d. A geometry that does not divide fails with
 * SP_EINVAL naming the layer, the count and what would divide it; a cut
 * inside a quantization block fails naming the tensor and its type. */
sp_status sp_tp_plan_make(sp_tp_plan *p, const sp_model_desc *d, int n_ranks, sp_tp_moe moe,
                          sp_error *err);
void sp_tp_plan_free(sp_tp_plan *p);

/* The matrices a plan cuts. */
typedef enum sp_tp_weight {
    SP_TP_WQ,
    SP_TP_WK,
    SP_TP_WV,
    SP_TP_WO,
    SP_TP_GATE,
    SP_TP_UP,
    SP_TP_DOWN,
    SP_TP_EXP_GATE, /* of any held expert */
    SP_TP_EXP_UP,
    SP_TP_EXP_DOWN,
    SP_TP_OUTPUT, /* layer is ignored; also the token embedding's rows */
} sp_tp_weight;

/* A GPU's piece of a 2-D weight, in rows and columns of the whole matrix. */
typedef struct sp_tp_slice {
    sp_tp_range rows, cols;
} sp_tp_slice;

sp_tp_slice sp_tp_slice_of(const sp_tp_plan *p, const sp_model_desc *d, int rank, int layer,
                           sp_tp_weight w);

#endif
