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
} sp_kernel_table;

extern const sp_kernel_table sp_kernels_scalar;
extern const sp_kernel_table sp_kernels_avx2;
extern const sp_kernel_table sp_kernels_avx512;
extern const sp_kernel_table sp_kernels_avx512_bf16; /* avx512 + gemm_bf16_pairs */

#endif
