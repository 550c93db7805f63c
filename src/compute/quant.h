/* Kernels for llama.cpp-compatible block-quantized weight types
 * (Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K) and their activation partner
 * types (Q8_0, Q8_1, Q8_K). Block layouts follow llama.cpp's definitions. */
#ifndef SP_COMPUTE_QUANT_H
#define SP_COMPUTE_QUANT_H

#include <stdint.h>

#include "compute/dtype.h"
#include "compute/ops.h"

typedef struct sp_quant_kernels {
    sp_dtype act_type; /* the activation partner type the dot expects */
    /* quantizes n f32 activations (a multiple of the block) into act_type */
    void (*quantize_act)(const float *x, void *xq, int64_t n);
    /* dot product of one weight row of n values with a quantized activation */
    float (*dot)(int64_t n, const void *w, const void *xq);
} sp_quant_kernels;

/* Kernels of weight type t at the given ISA level (falls back to a lower
 * level where a type has no kernel at that level); NULL if t is not a
 * block-quantized weight type. */
const sp_quant_kernels *sp_quant_get(sp_dtype t, sp_isa isa);

/* Scalar reference definitions (the spec of each format). */
void sp_quant_dequantize(sp_dtype t, const void *src, float *dst, int64_t n);
/* The same values (bit for bit) with the fastest kernel the ISA level has. */
void sp_quant_dequantize_isa(sp_dtype t, sp_isa isa, const void *src, float *dst, int64_t n);
/* Returns 1 on success, 0 if t cannot be produced. */
int sp_quant_quantize(sp_dtype t, const float *src, void *dst, int64_t n);

#endif
