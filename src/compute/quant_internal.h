/* Private to the quant module: block layouts (byte-compatible with
 * llama.cpp's ggml-common.h), half-float helpers and the per-ISA kernel
 * tables that quant.c dispatches between. */
#ifndef SP_COMPUTE_QUANT_INTERNAL_H
#define SP_COMPUTE_QUANT_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "compute/quant.h"

#define SP_QK  32  /* values per block of the 32-wide types */
#define SP_QKK 256 /* values per super-block of the k-quants */

/* All fields are byte arrays or 2-byte aligned, so these structs have no
 * padding and match the file layout exactly (checked below). */
typedef struct {
    uint16_t d;
    int8_t qs[SP_QK];
} sp_block_q8_0;

typedef struct {
    uint16_t d;
    uint8_t qs[SP_QK / 2]; /* value j: low nibble of qs[j]; j+16: high nibble */
} sp_block_q4_0;

typedef struct {
    uint16_t d, m;
    uint8_t qs[SP_QK / 2];
} sp_block_q4_1;

typedef struct {
    uint16_t d;
    uint8_t qh[4]; /* little-endian u32: bit j is the 5th bit of value j */
    uint8_t qs[SP_QK / 2];
} sp_block_q5_0;

typedef struct {
    uint16_t d, s; /* s = d * sum(qs) */
    int8_t qs[SP_QK];
} sp_block_q8_1;

typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12]; /* 8 x (6-bit scale, 6-bit min), see sp_kq_scale_min */
    uint8_t qs[SP_QKK / 2];
} sp_block_q4_k;

typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[SP_QKK / 8]; /* value 64c+l: bit 2c of qh[l]; 64c+32+l: bit 2c+1 */
    uint8_t qs[SP_QKK / 2];
} sp_block_q5_k;

typedef struct {
    uint8_t ql[SP_QKK / 2];
    uint8_t qh[SP_QKK / 4];
    int8_t scales[SP_QKK / 16];
    uint16_t d;
} sp_block_q6_k;

typedef struct {
    float d;
    int8_t qs[SP_QKK];
    int16_t bsums[SP_QKK / 16]; /* sums of qs in groups of 16 */
} sp_block_q8_k;

_Static_assert(sizeof(sp_block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(sp_block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(sp_block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(sp_block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(sp_block_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(sp_block_q4_k) == 144, "q4_k layout");
_Static_assert(sizeof(sp_block_q5_k) == 176, "q5_k layout");
_Static_assert(sizeof(sp_block_q6_k) == 210, "q6_k layout");
_Static_assert(sizeof(sp_block_q8_k) == 292, "q8_k layout");

/* IEEE half <-> single, exact (local copies so the hot loops inline them;
 * they agree bit for bit with sp_f16_to_f32 / sp_f32_to_f16). */
static inline float sp_q_f16(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: value man * 2^-24, exact in f32 */
        union {
            float f;
            uint32_t u;
        } s = {.f = (float)man * 5.9604644775390625e-8f};
        return (sign ? -s.f : s.f);
    }
    union {
        uint32_t u;
        float f;
    } v = {.u = bits};
    return v.f;
}

/* Round-to-nearest-even, like F16C's vcvtps2ph with mode 0. */
static inline uint16_t sp_q_to_f16(float f) {
    union {
        float f;
        uint32_t u;
    } v = {.f = f};
    uint32_t sign = (v.u >> 16) & 0x8000, a = v.u & 0x7fffffff;
    if (a >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (a > 0x7f800000u ? 0x200 : 0));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds past 65504 */
    if (a < 0x38800000u) { /* result is subnormal or zero: round a * 2^24 */
        union {
            uint32_t u;
            float f;
        } x = {.u = a};
        float scaled = x.f * 16777216.0f; /* exact: power of two */
        uint32_t q = (uint32_t)scaled;
        float rem = scaled - (float)q;
        if (rem > 0.5f || (rem == 0.5f && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = a + 0xfff + ((a >> 13) & 1); /* nearest-even on the 13 dropped bits */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block:
 * j < 4: low 6 bits of bytes j and j+4; otherwise the low/high nibble of
 * byte j+4 plus the top two bits of bytes j-4 / j. */
static inline void sp_kq_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* Activation quantizers with llama.cpp's x86 rounding (quant_scalar.c). */
void sp_quant_act_q8_0_scalar(const float *x, void *xq, int64_t n);
void sp_quant_act_q8_1_scalar(const float *x, void *xq, int64_t n);
void sp_quant_act_q8_k_scalar(const float *x, void *xq, int64_t n);

/* The same, vectorized (bit-identical output; quant_avx2.c). Only call
 * them where the CPU has AVX2. */
void sp_quant_act_q8_0_avx2(const float *x, void *xq, int64_t n);
void sp_quant_act_q8_1_avx2(const float *x, void *xq, int64_t n);
void sp_quant_act_q8_k_avx2(const float *x, void *xq, int64_t n);

/* Vector dequantizers, bit-identical to sp_quant_dequantize; 0 if type t
 * has none (quant_avx2.c; AVX2 only). */
int sp_quant_dequantize_avx2(sp_dtype t, const void *src, float *dst, int64_t n);

/* Per-ISA tables: the kernels for weight type t, or NULL if this level has
 * none for it (quant.c then falls back a level). */
const sp_quant_kernels *sp_quant_scalar_table(sp_dtype t);
const sp_quant_kernels *sp_quant_avx2_table(sp_dtype t);
const sp_quant_kernels *sp_quant_avx512_table(sp_dtype t);
/* 1 if this CPU can run the AVX-512 table (it needs VNNI too). */
int sp_quant_avx512_usable(void);

/* Packed layouts (quant.h). The prepared activation of n values (nb = n/32
 * blocks): int8 qs[nb*32], then f32 d[nb] (the f16 scale of the Q8_0
 * block, exactly), then int32 s[nb] (sum of the block's qs). */
static inline const float *sp_pk_act_d(const void *xa, int64_t n) {
    return (const float *)((const int8_t *)xa + n);
}
static inline const int32_t *sp_pk_act_s(const void *xa, int64_t n) {
    return (const int32_t *)((const int8_t *)xa + n + n / SP_QK * 4);
}
/* Fills the layout from Q8_0 blocks q (n values). */
void sp_pk_act_from_q8_0(const sp_block_q8_0 *q, void *xa, int64_t n);
size_t sp_pk_act_bytes(int64_t n);
/* The preparation with the AVX2 Q8_0 quantizer (AVX2 only). */
void sp_pk_prep_avx2(const float *x, void *xa, int64_t n);
/* Bytes of one block of a packed Q4_0 / Q8_0 group (quant.h): the 8 rows'
 * quants (4-byte chunks by row), then their 8 f16 scales. */
#define SP_PK_Q4_0_BLOCK (8 * 16 + 16)
#define SP_PK_Q8_0_BLOCK (8 * 32 + 16)

/* Packed Q4_K (quant.h): one super-block of a group of 8 rows is
 * SP_PK_K_BYTES: the qs as 32 chunks of 4 bytes (chunk k: row r's
 * qs[4k..4k+3] at 32k + 4r), then the 12 scale bytes as 3 dwords (dword j
 * of row r at SP_PK_K_SC + 32j + 4r), then the 8 rows' f16 d, then their
 * f16 dmin. Its prepared activation (n values, nb = n/256): int8 qs[n] of
 * the Q8_K quantizer, f32 d[nb], then int16 bs[nb][8] (sums of the 32
 * values of each sub-block). */
#define SP_PK_K_SC    1024
#define SP_PK_K_D     1120
#define SP_PK_K_DMIN  1136
#define SP_PK_K_BYTES 1152
static inline const float *sp_pk_k_act_d(const void *xa, int64_t n) {
    return (const float *)((const int8_t *)xa + n);
}
static inline const int16_t *sp_pk_k_act_bs(const void *xa, int64_t n) {
    return (const int16_t *)((const int8_t *)xa + n + n / SP_QKK * 4);
}
size_t sp_pk_k_act_bytes(int64_t n);
void sp_pk_k_act_from_q8_k(const sp_block_q8_k *q, void *xa, int64_t n);
/* The preparation with the AVX2 Q8_K quantizer (AVX2 only). */
void sp_pk_k_prep_avx2(const float *x, void *xa, int64_t n);
const sp_quant_packed_kernels *sp_quant_packed_scalar_table(sp_dtype t);
const sp_quant_packed_kernels *sp_quant_packed_avx2_table(sp_dtype t);
const sp_quant_packed_kernels *sp_quant_packed_avx512_table(sp_dtype t);

#endif
