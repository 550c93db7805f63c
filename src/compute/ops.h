/* The compute interface the forward pass uses. Every kernel has a scalar
 * reference; AVX2 and AVX-512 versions are chosen once per process
 * (sp_ops_init: the best the CPU has, or SPINDLE_ISA) and must agree with
 * the scalar one (tests/unit). */
#ifndef SP_COMPUTE_OPS_H
#define SP_COMPUTE_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "compute/pool.h"
#include "compute/tensor.h"

/* Kernel levels, each a superset of the one below: AVX2 needs AVX2 + FMA +
 * F16C; AVX512 needs AVX-512 F/BW/VL/DQ (its quantized dots also use VNNI
 * where the CPU has it); AVX512BF16 adds the bf16 pair-dot (vdpbf16ps). */
typedef enum sp_isa {
    SP_ISA_SCALAR = 0,
    SP_ISA_AVX2 = 1,
    SP_ISA_AVX512 = 2,
    SP_ISA_AVX512BF16 = 3,
} sp_isa;
#define SP_ISA_LEVELS 4

/* Selects the kernels once per process (later calls do nothing): the level
 * named by the environment variable SPINDLE_ISA, else the best this CPU
 * has, clamped to what the CPU has; logs one line saying which and why. */
void sp_ops_init(void);
sp_isa sp_ops_isa(void);     /* selected level */
sp_isa sp_ops_cpu_max(void); /* best level this CPU supports */
/* Tests: force a level (<= the CPU's); returns the previous one. */
sp_isa sp_ops_set_isa(sp_isa isa);
const char *sp_isa_name(sp_isa isa);
/* "scalar", "avx2", "avx512" or "avx512bf16" -> *isa; 0 if not a level. */
int sp_isa_parse(const char *name, sp_isa *isa);
/* The features level isa needs that this CPU or its OS lacks, space
 * separated, into buf ("" when the CPU has the level). */
void sp_isa_missing(sp_isa isa, char *buf, size_t size);
/* 1 when the selected level has a bf16 pair-dot instruction (AVX512_BF16):
 * SP_PREC_FAST matmuls with bf16 weights then round activations to bf16. */
int sp_ops_has_bf16_dot(void);

typedef enum sp_precision {
    SP_PREC_F32 = 0, /* reference: weights dequantized exactly, activations f32 */
    SP_PREC_FAST,    /* activations may be rounded to the weight's partner type */
} sp_precision;

/* y[t][o] = sum_i W[o][i] * x[t][i]  (+ bias[o] if bias != NULL)
 * W: 2-D [out, in], any weight dtype; x: f32 [T][in]; y: f32 [T][out].
 * Work is split across the pool. */
void sp_matmul(sp_pool *pool, float *y, const float *x, int T, const sp_tensor *W,
               const float *bias, sp_precision prec);

/* y = x / sqrt(mean(x^2) + eps) * (w or 1+w); w may be NULL (no scale).
 * y may alias x. */
void sp_rmsnorm(float *y, const float *x, const float *w, int n, float eps, int one_plus);

/* Rotates n_heads heads of head_dim lanes in place. Pair i (i < n_pairs)
 * is (x[i], x[i + half]) for half-split or (x[2i], x[2i+1]) for
 * interleaved; half = rot_dim/2. cos/sin hold n_pairs values for this
 * position. Lanes not in a pair pass through. */
void sp_rope(float *x, int n_heads, int head_dim, int rot_dim, int n_pairs, const float *cos,
             const float *sin, int interleaved);

void sp_softmax(float *x, int n);
/* g[i] = act(g[i]) * u[i] */
void sp_silu_mul(float *g, const float *u, int n);
void sp_gelu_tanh_mul(float *g, const float *u, int n);
/* x[i] = cap * tanh(x[i] / cap) */
void sp_softcap(float *x, int n, float cap);
/* y[i] += a * x[i] */
void sp_axpy(float *y, float a, const float *x, int n);
float sp_dot_f32(const float *a, const float *b, int n);

/* One query position attending over cached keys/values of one sequence.
 * K/V live in blocks of block_size tokens: block b holds tokens
 * [b*block_size, (b+1)*block_size), each token kv_stride floats, head g at
 * offset g*head_dim. Keys in [k_begin, k_end) are visible (causal mask and
 * sliding window already folded into the range). GQA: query head h uses KV
 * head h / (n_heads / n_kv_heads). Scores are scale * q.k, soft-capped by
 * softcap when > 0, then an online softmax. out: [n_heads][head_dim]. */
typedef struct sp_attn_args {
    float *out;
    const float *q; /* [n_heads][head_dim] */
    const float *const *k_blocks;
    const float *const *v_blocks;
    int block_size;
    int kv_stride;
    int n_heads, n_kv_heads, head_dim;
    int k_begin, k_end;
    float scale;
    float softcap;
} sp_attn_args;
void sp_attention(const sp_attn_args *a);

#endif
