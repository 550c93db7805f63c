/* Element types of tensors: float formats and llama.cpp-compatible block
 * quantizations. Weights stay in their file dtype; kernels accumulate in f32. */
#ifndef SP_COMPUTE_DTYPE_H
#define SP_COMPUTE_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum sp_dtype {
    SP_F32 = 0,
    SP_F16,
    SP_BF16,
    SP_Q8_0, /* 32 values: f16 d, 32 x int8 */
    SP_Q4_0, /* 32 values: f16 d, 16 bytes of nibbles, value d*(q-8) */
    SP_Q4_1, /* 32 values: f16 d, f16 m, 16 bytes nibbles, value d*q+m */
    SP_Q5_0, /* 32 values: f16 d, u32 high bits, 16 bytes nibbles, d*(q-16) */
    SP_Q4_K, /* 256 values, 144 bytes */
    SP_Q5_K, /* 256 values, 176 bytes */
    SP_Q6_K, /* 256 values, 210 bytes */
    SP_Q8_1, /* activation partner of Q4_1: 32 values, f16 d, f16 s, 32 x int8 */
    SP_Q8_K, /* activation partner of k-quants: 256 values, f32 d, 256 x int8, 16 x int16 sums */
    /* non-float types that appear in files; never used as weights */
    SP_I8,
    SP_U8,
    SP_I16,
    SP_I32,
    SP_I64,
    SP_F64,
    SP_BOOL,
    SP_DTYPE_COUNT
} sp_dtype;

const char *sp_dtype_name(sp_dtype t);
/* Values per block (1 for plain types) and bytes per block. */
int sp_dtype_block(sp_dtype t);
size_t sp_dtype_block_bytes(sp_dtype t);
/* Bytes of a row of n values; n must be a multiple of the block size. */
size_t sp_dtype_row_bytes(sp_dtype t, int64_t n);
/* 1 if the type can be a weight of a matmul (f32/f16/bf16/q*). */
int sp_dtype_is_weight(sp_dtype t);

/* Exact conversions. bf16 rounding is round-to-nearest-even; NaN stays NaN. */
float sp_f16_to_f32(uint16_t h);
uint16_t sp_f32_to_f16(float f);
static inline float sp_bf16_to_f32(uint16_t b) {
    union {
        uint32_t u;
        float f;
    } v = {.u = (uint32_t)b << 16};
    return v.f;
}
uint16_t sp_f32_to_bf16(float f);

/* Dequantizes n values (a multiple of the block size) of a row in type t to
 * f32 (the scalar reference definition of every format). */
void sp_dequantize_row(sp_dtype t, const void *src, float *dst, int64_t n);
/* Quantizes n f32 values into type t (reference, scalar). Used by writers,
 * --quantize and for activations. Returns 0 if t cannot be quantized to. */
int sp_quantize_row(sp_dtype t, const float *src, void *dst, int64_t n);

#endif
