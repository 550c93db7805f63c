/* Internal kernel table: one instance per ISA level (scalar, AVX2, AVX-512).
 * ops.c picks one by CPUID; every entry of the SIMD tables must agree with
 * the scalar one up to f32 reassociation (tests/unit/test_compute_*.c). */
#ifndef SP_COMPUTE_KERNELS_H
#define SP_COMPUTE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "compute/dtype.h"

typedef struct sp_kernel_table {
    float (*dot_f32)(const float *a, const float *b, int n);
    void (*axpy)(float *y, float a, const float *x, int n);
    void (*scale)(float *y, float a, int n); /* y[i] *= a */
    void (*rmsnorm)(float *y, const float *x, const float *w, int n, float eps, int one_plus);
    void (*rope)(float *x, int n_heads, int head_dim, int rot_dim, int n_pairs, const float *cos,
                 const float *sin, int interleaved);
    void (*softmax)(float *x, int n);
    void (*silu_mul)(float *g, const float *u, int n);
    void (*gelu_tanh_mul)(float *g, const float *u, int n);
    void (*softcap)(float *x, int n, float cap);
    /* y[t*y_stride + r] += sum_{k<n} W_r[k] * x[t*x_stride + k] for r < rows,
     * t < toks. Row r of W starts at (char *)w + r*w_stride; wt is F32, F16 or
     * BF16. Rows outer, tokens inner: a few weight rows stay in L1 while the
     * tokens sweep past them. */
    void (*gemm)(sp_dtype wt, int rows, int toks, int n, const void *w, size_t w_stride,
                 const float *x, size_t x_stride, float *y, size_t y_stride);
    /* Same contract for bf16 weights and activations already rounded to
     * bf16 (pairs multiplied with f32 accumulation: AVX-512 BF16's
     * vdpbf16ps); w_stride in bytes, x_stride in elements. NULL where the
     * level has no such instruction. */
    void (*gemm_bf16_pairs)(int rows, int toks, int n, const uint16_t *w, size_t w_stride,
                            const uint16_t *x, size_t x_stride, float *y, size_t y_stride);
    /* Attention helpers. exp_shift_sum: x[i] = exp(x[i] - m), returns the
     * sum. weighted_rows: acc[d] += sum_{j<n} p[j] * rows[j][d], d < dim
     * (the value rows of a chunk of keys, accumulated in registers). NULL
     * where the level has none (attention.c then uses expf and axpy). */
    float (*exp_shift_sum)(float *x, int n, float m);
    void (*weighted_rows)(float *acc, const float *p, const float *const *rows, int n, int dim);
    /* s[j] = dot(q, rows[j]) over dim values, j < n (a chunk of keys
     * scored against one query head). NULL: attention.c uses dot_f32. */
    void (*dot_rows)(float *s, const float *q, const float *const *rows, int n, int dim);
    /* Prefill GEMM on a packed panel of SP_PANEL rows: the caller converts
     * (or dequantizes) SP_PANEL weight rows of a k-slice to f32 once and
     * packs them k-major, p[k*SP_PANEL + r], and lays the activations out
     * in groups of SP_PGROUP tokens, k-major within a group: token t's
     * value k at x[(t / SP_PGROUP) * x_gstride + k*SP_PGROUP + t % SP_PGROUP]
     * (x already advanced to the slice's first k; the first token starts a
     * group); then
     * y[t*y_stride + r] += sum_{k<n} p[k*SP_PANEL + r] * x(t, k)
     * for r < rows (<= SP_PANEL), t < toks. Register tiles are SP_PGROUP
     * tokens x SP_PANEL rows as an outer product: no horizontal sums, two
     * vector loads per six broadcasts and twelve FMAs. NULL where the
     * level has none. pack_panel: p from `rows` rows of type wt (F32, F16
     * or BF16; row r at (char *)src + r*src_stride), n values each,
     * converted exactly to f32; rows past `rows` are zero. */
    void (*gemm_panel)(int rows, int toks, int n, const float *p, const float *x, size_t x_gstride,
                       float *y, size_t y_stride);
    /* The same for bf16 weights and bf16-rounded activations (vdpbf16ps, as
     * gemm_bf16_pairs): p and x hold pairs of values (k even, k+1) as one
     * uint32 (value k in the low half), p[j*SP_PANEL + r] for pair j, x's
     * groups k-major by pair; np pairs. pack_panel_bf16 fills p from
     * `rows` bf16 rows (stride in bytes), 2*np values each; rows past
     * `rows` are zero. NULL where the level has no bf16 dot. */
    void (*gemm_panel_bf16)(int rows, int toks, int np, const uint32_t *p, const uint32_t *x,
                            size_t x_gstride, float *y, size_t y_stride);
    void (*pack_panel_bf16)(int rows, int np, const void *src, size_t src_stride, uint32_t *p);
    void (*pack_panel)(sp_dtype wt, int rows, int n, const void *src, size_t src_stride, float *p);
    /* Integer prefill GEMM (SP_PREC_FAST, Q8_0 / Q4_0 weights, activations
     * quantized to Q8_0): int16 pairs multiplied and summed into int32
     * (vpmaddwd: 16 products per instruction, twice an f32 FMA's 8), one
     * f32 scale step per 32-value block. NULL where the level has none.
     * Within a block the 32 values are taken as 16 pairs: pair s < 8 is
     * values (4s, 4s+2), pair 8+s is (4s+1, 4s+3) (what a 4-byte group
     * sign-extends to in place); weights and activations use the same order.
     * ipack: `rows` (<= SP_PANEL) weight rows of type wt from w (row stride
     * ws; packed: interleaved in groups of 8 as quant.h describes, then
     * rows == 8 or 16 and nb_row is the matrix's blocks per row), blocks
     * [b0, b0+nblk) into p (int16 [nblk][16][SP_PANEL][2]) and pd (f32
     * [nblk][SP_PANEL]); rows past `rows` are zero. Returns 0 if wt has no
     * integer panel. iact: one row of n values already quantized to Q8_0
     * (q) as token c of a group: xg[(s)*SP_IGROUP + c] (int32 pairs, s <
     * n/2), xd[b*SP_IGROUP + c] (block scales). igemm: for tokens t < toks
     * (groups of SP_IGROUP, xg/xd advanced by their group strides, padded
     * tokens zero) and rows r < rows:
     * y[t*ys + r] += sum_b pd[b][r] * xd[b][t] * sum_s p[b][s][r] . xg[b][s][t]. */
    int (*ipack)(sp_dtype wt, int packed, int rows, const void *w, size_t ws, int nb_row, int b0,
                 int nblk, int16_t *p, float *pd);
    void (*iact)(const void *q, int n, int c, int32_t *xg, float *xd);
    void (*igemm)(int rows, int toks, int nblk, const int16_t *p, const float *pd,
                  const int32_t *xg, size_t xg_stride, const float *xd, size_t xd_stride, float *y,
                  size_t ys);
    /* Q4_0 on unsigned nibbles (vpmaddubsw, int16 sums per block): the
     * same contract with p as uint8 [nblk][8][SP_PANEL][4] (4-byte group c
     * of a block: values 4c..4c+3, nibbles 0..15 without the offset), xg as
     * int32 [n/32][9][SP_IGROUP]: groups 0..7 four int8 activations each,
     * group 8 the block's -8 * sum of activations. NULL where none. */
    int (*ipack4)(int packed, int rows, const void *w, size_t ws, int nb_row, int b0, int nblk,
                  uint8_t *p, float *pd);
    void (*iact4)(const void *q, int n, int c, int32_t *xg, float *xd);
    void (*igemm4)(int rows, int toks, int nblk, const uint8_t *p, const float *pd,
                   const int32_t *xg, size_t xg_stride, const float *xd, size_t xd_stride, float *y,
                   size_t ys);
    /* Q4_K the same way (VNNI vpdpbusd): a 32-value sub-block is a block
     * of the Q4_0 contract above (p: its unsigned nibbles), pd holds
     * [nblk][2][SP_PANEL]: d * scale and dmin * min of each row's
     * sub-block; kact lays out one row already quantized to Q8_K (q) like
     * iact4 (group 8: -8 * the sub-block's activation sum; xd: the Q8_K
     * scale, once per sub-block); kgemm: y[t*ys + r] += sum_b xd[b][t] *
     * (pd[b][0][r] * dot_b - pd[b][1][r] * sum_b(x)). b0 and nblk count
     * sub-blocks (multiples of 8). NULL where the level has none. */
    /* Q8_0 through the same u8 GEMM (igemm4): weights w + 128 as unsigned
     * bytes, group 8 of the activation -128 * its block sum. NULL where the
     * level has none (then Q8_0 takes ipack/iact/igemm). */
    int (*ipack8u)(int packed, int rows, const void *w, size_t ws, int nb_row, int b0, int nblk,
                   uint8_t *p, float *pd);
    void (*iact8u)(const void *q, int n, int c, int32_t *xg, float *xd);
    int (*kpack)(int packed, int rows, const void *w, size_t ws, int nb_row, int b0, int nblk,
                 uint8_t *p, float *pd);
    void (*kact)(const void *q, int n, int c, int32_t *xg, float *xd);
    void (*kgemm)(int rows, int toks, int nblk, const uint8_t *p, const float *pd,
                  const int32_t *xg, size_t xg_stride, const float *xd, size_t xd_stride, float *y,
                  size_t ys);
} sp_kernel_table;

#define SP_PANEL  16
#define SP_PGROUP 6 /* tokens per register tile (and activation group) of gemm_panel */
#define SP_IGROUP 6 /* tokens per register tile of igemm */

extern const sp_kernel_table sp_kernels_scalar;
extern const sp_kernel_table sp_kernels_avx2;
extern const sp_kernel_table sp_kernels_avx512;
extern const sp_kernel_table sp_kernels_avx512_bf16; /* avx512 + gemm_bf16_pairs */

#endif
