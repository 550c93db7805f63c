/* Element types: block geometry, names, and the exact scalar f16/bf16
 * conversions every other kernel is checked against. */
#include "compute/dtype.h"

#include <string.h>

#include "compute/quant.h"

typedef struct dtype_info {
    const char *name;
    int block;          /* values per block */
    size_t block_bytes; /* bytes per block */
    int is_weight;
} dtype_info;

static const dtype_info k_info[SP_DTYPE_COUNT] = {
    [SP_F32] = {"f32", 1, 4, 1},       [SP_F16] = {"f16", 1, 2, 1},
    [SP_BF16] = {"bf16", 1, 2, 1},     [SP_Q8_0] = {"q8_0", 32, 34, 1},
    [SP_Q4_0] = {"q4_0", 32, 18, 1},   [SP_Q4_1] = {"q4_1", 32, 20, 1},
    [SP_Q5_0] = {"q5_0", 32, 22, 1},   [SP_Q4_K] = {"q4_k", 256, 144, 1},
    [SP_Q5_K] = {"q5_k", 256, 176, 1}, [SP_Q6_K] = {"q6_k", 256, 210, 1},
    [SP_Q8_1] = {"q8_1", 32, 36, 0},   [SP_Q8_K] = {"q8_k", 256, 292, 0},
    [SP_I8] = {"i8", 1, 1, 0},         [SP_U8] = {"u8", 1, 1, 0},
    [SP_I16] = {"i16", 1, 2, 0},       [SP_I32] = {"i32", 1, 4, 0},
    [SP_I64] = {"i64", 1, 8, 0},       [SP_F64] = {"f64", 1, 8, 0},
    [SP_BOOL] = {"bool", 1, 1, 0},
};

static int valid(sp_dtype t) {
    return (unsigned)t < SP_DTYPE_COUNT;
}

const char *sp_dtype_name(sp_dtype t) {
    return valid(t) ? k_info[t].name : "invalid";
}
int sp_dtype_block(sp_dtype t) {
    return valid(t) ? k_info[t].block : 0;
}
size_t sp_dtype_block_bytes(sp_dtype t) {
    return valid(t) ? k_info[t].block_bytes : 0;
}
int sp_dtype_is_weight(sp_dtype t) {
    return valid(t) && k_info[t].is_weight;
}

size_t sp_dtype_row_bytes(sp_dtype t, int64_t n) {
    if (!valid(t)) return 0;
    return (size_t)(n / k_info[t].block) * k_info[t].block_bytes;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float sp_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000 | (man << 13)); /* inf, NaN payload */
    if (exp != 0) return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
    /* zero or subnormal: man * 2^-24 is exact in f32 */
    return bits_f32(sign | f32_bits((float)man * 0x1p-24f));
}

/* Rounds m >> shift to nearest, ties to even. */
static uint32_t shift_rne(uint32_t m, int shift) {
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    return q + (rem > half || (rem == half && (q & 1)));
}

uint16_t sp_f32_to_f16(float f) {
    uint32_t u = f32_bits(f), a = u & 0x7fffffff;
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    if (a > 0x7f800000) return sign | 0x7e00 | ((a >> 13) & 0x3ff); /* quiet NaN */
    if (a >= 0x477ff000) return sign | 0x7c00; /* >= 65520 rounds to inf (tie goes to even) */
    if (a >= 0x38800000) {                     /* normal in f16: rebias exponent by 112 */
        uint32_t r = a - 0x38000000;
        return sign | (uint16_t)shift_rne(r, 13); /* a mantissa carry bumps the exponent */
    }
    int e = (int)(a >> 23);
    if (e < 102) return sign; /* below 2^-25: rounds to zero */
    uint32_t m = (a & 0x7fffff) | 0x800000;
    return sign | (uint16_t)shift_rne(m, 126 - e); /* units of 2^-24 */
}

uint16_t sp_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

void sp_dequantize_row(sp_dtype t, const void *src, float *dst, int64_t n) {
    switch (t) {
    case SP_F32:
        memcpy(dst, src, (size_t)n * 4);
        return;
    case SP_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = sp_f16_to_f32(((const uint16_t *)src)[i]);
        return;
    case SP_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = sp_bf16_to_f32(((const uint16_t *)src)[i]);
        return;
    case SP_I8:
        for (int64_t i = 0; i < n; i++) dst[i] = ((const int8_t *)src)[i];
        return;
    case SP_U8:
    case SP_BOOL:
        for (int64_t i = 0; i < n; i++) dst[i] = ((const uint8_t *)src)[i];
        return;
    case SP_I16:
        for (int64_t i = 0; i < n; i++) dst[i] = ((const int16_t *)src)[i];
        return;
    case SP_I32:
        for (int64_t i = 0; i < n; i++) dst[i] = (float)((const int32_t *)src)[i];
        return;
    case SP_I64:
        for (int64_t i = 0; i < n; i++) dst[i] = (float)((const int64_t *)src)[i];
        return;
    case SP_F64:
        for (int64_t i = 0; i < n; i++) dst[i] = (float)((const double *)src)[i];
        return;
    default:
        sp_quant_dequantize(t, src, dst, n);
        return;
    }
}

int sp_quantize_row(sp_dtype t, const float *src, void *dst, int64_t n) {
    switch (t) {
    case SP_F32:
        memcpy(dst, src, (size_t)n * 4);
        return 1;
    case SP_F16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = sp_f32_to_f16(src[i]);
        return 1;
    case SP_BF16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = sp_f32_to_bf16(src[i]);
        return 1;
    case SP_Q8_0:
    case SP_Q4_0:
    case SP_Q4_1:
    case SP_Q5_0:
    case SP_Q4_K:
    case SP_Q5_K:
    case SP_Q6_K:
    case SP_Q8_1:
    case SP_Q8_K:
        return sp_quant_quantize(t, src, dst, n);
    default:
        return 0;
    }
}
