/* Private to the CUDA backend: the device model (weights as device
 * matrices), scratch, the owner check and error helpers. */
#ifndef SP_CUDA_INTERNAL_CUH
#define SP_CUDA_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "cuda/cuda.h"
}

/* ---- ownership and errors ------------------------------------------------ */

/* Every entry point runs on the thread that loaded the model (cuda.h). */
#define SP_CUDA_OWNED(g)                                                                           \
    do {                                                                                           \
        if (!pthread_equal(pthread_self(), (g)->owner)) sp_cuda_not_owner(__func__);               \
    } while (0)
[[noreturn]] void sp_cuda_not_owner(const char *fn);

/* A failed CUDA or cuBLAS call becomes an sp_error naming the call. */
sp_status sp_cuda_check(cudaError_t e, const char *what, sp_error *err);
sp_status sp_cublas_check(cublasStatus_t s, const char *what, sp_error *err);
#define CU_TRY(call, err) SP_TRY(sp_cuda_check((call), #call, (err)))
#define CUBLAS_TRY(call, err) SP_TRY(sp_cublas_check((call), #call, (err)))

/* ---- the device model ----------------------------------------------------- */

/* A 2-D weight [rows, cols] in its file dtype, rows row_bytes apart. */
struct dmat {
    sp_dtype dtype;
    int rows, cols;
    size_t row_bytes;
    const uint8_t *p; /* NULL: absent */
};

/* The experts of one MoE matrix (gate, up or down): E matrices of one
 * shape and dtype, found through a device array of pointers. */
struct dexperts {
    sp_dtype dtype;
    int rows, cols;
    size_t row_bytes;
    const uint8_t *const *p; /* device array [E] */
};

struct dlayer {
    dmat wq, wk, wv, wo, gate, up, down, router, ple_gate, ple_proj;
    const float *attn_norm, *post_attn_norm, *pre_ffn_norm, *post_ffn_norm, *q_norm, *k_norm;
    const float *bq, *bk, *bv, *bo;
    const float *router_scale, *expert_scale;
    const float *pre_ffn_norm2, *post_ffn_norm1, *post_ffn_norm2, *ple_post_norm;
    dexperts eg, eu, ed;
};

/* A RoPE table's device copy (the host table in model_desc keeps the
 * scalar parameters). */
struct drope {
    const float *inv_freq, *inv_freq_long;
};

/* Per-step scratch, sized at load for max_tokens tokens (cuda.h). */
struct dscratch {
    float *x, *xb, *xb2, *xr, *q, *k, *v, *att, *gate, *up, *ffn_out, *moe_out, *router;
    float *ple, *ple_tmp, *rope_cos, *rope_sin;
    int *sel;           /* [tokens][K] selected experts */
    float *selw;        /* [tokens][K] their weights */
    float *eg, *eu, *eo; /* [tokens * K][I or H] expert activations */
    float *logits;      /* [logit_rows][vocab] */
    void *act16;        /* activations as bf16 for cuBLAS */
    void *wslice;       /* a slice of a dequantized weight for cuBLAS */
    size_t wslice_elems;
    int logit_rows;
};

struct sp_cuda {
    pthread_t owner;
    int device, f32;
    sp_dtype kv_dtype;
    const sp_model_desc *d; /* the model's description (host), outlives this */
    char name[256];
    cudaStream_t st;
    cublasHandle_t blas;
    uint8_t *arena; /* every weight, one allocation */
    size_t arena_bytes;
    const uint8_t **ptr_tables; /* expert pointer arrays live in the arena too */
    dlayer *L;
    dmat tok_embd, output, ple_embd, ple_model_proj;
    const float *out_norm, *ple_proj_norm;
    drope ropes[SP_MAX_ROPE_TABLES];
    dscratch s;
    uint64_t scratch_bytes, kv_bytes;
    int max_tokens, max_q, max_kv, max_ffn, max_pairs, max_experts, max_used;
    int media_bidir; /* some layer's image tokens attend both ways */
    float *logits_host; /* pinned, [logit_rows][vocab] */
};

#define SP_CUDA_MAX_HEAD_DIM 512 /* attention.cu keeps a head in shared memory */
#define SP_CUDA_GRAPH_MAX 8 /* decode batches captured as CUDA graphs, 1..8 sequences */

/* Ints of per-token metadata a step uploads (forward.cu meta: id, position,
 * length, two table offsets, image span end, bidirectional length, logit
 * row); the block tables follow them. */
#define META_PER_TOKEN 8

struct sp_cuda_kv {
    int n_layers, n_full, n_swa, block_size;
    void **k, **v;          /* per layer (NULL when it reads another layer's) */
    unsigned char *sliding; /* per layer: indexed by the swa table */
    cudaGraphExec_t graph[SP_CUDA_GRAPH_MAX + 1]; /* decode steps of T sequences */
    int32_t *meta;          /* a step's token metadata and block tables (forward.cu) */
    int32_t *meta_host;     /* its pinned staging copy */
    int table_cap;          /* ints of block tables one step can upload */
    uint64_t bytes;         /* K and V on the device */
};

/* Captures the decode graphs of kv (forward.cu), when it is made. */
sp_status sp_cu_capture_decode(sp_cuda *g, sp_cuda_kv *kv, sp_error *err);

/* ---- kernels (launchers; every one runs on g->st) --------------------------- */

/* y[T][out] = x[T][in] . W^T (+ bias); see matmul.cu for the paths. */
sp_status sp_cu_matmul(sp_cuda *g, float *y, const float *x, int T, const dmat *W,
                       const float *bias, sp_error *err);
/* The same in f32 arithmetic whatever the precision (MoE routers). */
sp_status sp_cu_matmul_exact(sp_cuda *g, float *y, const float *x, int T, const dmat *W,
                             sp_error *err);
/* Experts: for every slot s of n_slots, y[s] = W[sel[s]] . x[s / x_div]. */
sp_status sp_cu_matmul_experts(sp_cuda *g, float *y, const float *x, int x_div, int n_slots,
                               const int *sel, const dexperts *W, sp_error *err);
/* Rows [r0, r0 + n) of a weight as f32 or bf16 (to_bf16) into dst. */
void sp_cu_dequant_rows(cudaStream_t st, const dmat *W, int r0, int n, void *dst, int to_bf16);
/* Row `row` (a device index) of a table for every token: out[t] = deq(W[ids[t]]) * scale */
void sp_cu_embed(cudaStream_t st, const dmat *W, const int32_t *ids, int T, float scale,
                 float *out, int out_stride);

void sp_cu_rmsnorm(cudaStream_t st, float *y, const float *x, const float *w, int rows, int n,
                   int stride, float eps);
void sp_cu_add(cudaStream_t st, float *y, const float *x, size_t n);
void sp_cu_scale(cudaStream_t st, float *y, float a, size_t n);
void sp_cu_act_mul(cudaStream_t st, float *g, const float *u, size_t n, int gelu);
void sp_cu_act_mul_strided(cudaStream_t st, float *g, int g_stride, const float *u, int u_stride,
                           int rows, int n, int gelu);
void sp_cu_softcap(cudaStream_t st, float *x, size_t n, float cap);
void sp_cu_add_bias(cudaStream_t st, float *y, const float *b, int rows, int n);
void sp_cu_scale_cols(cudaStream_t st, float *y, const float *w, float a, int rows, int n);
void sp_cu_gather_rows(cudaStream_t st, float *dst, const float *src, const int32_t *rows,
                       int n_rows, int n);
/* hi = bf16(x), lo = bf16(x - hi): x to about 16 bits in two bf16 halves */
void sp_cu_split_bf16(cudaStream_t st, void *hi, void *lo, const float *src, size_t n);
/* x rounded to the partner type of weight type wt (llama.cpp's activation
 * rounding, compute/quant_scalar.c), written to xr; 0 if wt has none. */
int sp_cu_round_partner(cudaStream_t st, float *xr, const float *x, int T, int n, sp_dtype wt);

/* RoPE: cos/sin of every (token, table, pair); see rope.cu. */
void sp_cu_rope_angles(sp_cuda *g, const int32_t *pos, const int32_t *len, int T);
/* Per-head RMSNorm (weight w, or none when w is NULL and norm is set) and
 * RoPE with table r (NULL: none) on x[T][n_heads][hd]. */
void sp_cu_head_norm_rope(sp_cuda *g, float *x, int T, int n_heads, int hd, const float *w,
                          int norm, int rope);
/* Writes the step's K and V rows into the cache blocks of layer l. */
void sp_cu_kv_write(sp_cuda *g, sp_cuda_kv *kv, int l, const float *k, const float *v, int T,
                    const int32_t *pos, const int32_t *tables, const int32_t *tab);
/* out[T][nh][hd] = softmax(q k^T) v over each token's visible keys. */
/* span_end (NULL: none): a token inside an image also sees the image's
 * later tokens (layers with media_bidir). bidir_len (NULL: none): per
 * token, its input's length when the input attends both ways (0: causal);
 * such a token sees the whole input, within the window on sliding layers. */
void sp_cu_attention(sp_cuda *g, sp_cuda_kv *kv, int l, const float *q, float *out, int T,
                     const int32_t *pos, const int32_t *span_end, const int32_t *bidir_len,
                     const int32_t *tables, const int32_t *tab);
/* MoE routing (softmax, top-k, renormalise, per-expert scale). */
void sp_cu_route(cudaStream_t st, const float *logits, int T, int E, int K, int norm_topk,
                 const float *expert_scale, int *sel, float *selw);
/* out[t] = sum_k w[t][k] * e[t*K + k] */
void sp_cu_moe_combine(cudaStream_t st, float *out, const float *e, const float *w, int T, int K,
                       int H);
/* Gemma 4 per-layer inputs (model/forward.c per_layer_inputs), in place
 * on ple [T][L*P] given the projection and the per-layer embedding rows. */
void sp_cu_ple_combine(cudaStream_t st, float *ple, const float *emb, const float *norm_w, int T,
                       int L, int P, int H, float eps);

/* Random bf16/f16 weights for --load-format dummy (model/dummy.h). */
void sp_cu_dummy_fill(cudaStream_t st, void *dst, size_t n, sp_dtype dt, uint64_t key, float a);

#endif
