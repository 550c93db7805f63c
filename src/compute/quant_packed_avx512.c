/* AVX-512 VNNI decode kernels for packed Q4_0 and Q8_0 weights (layouts in
 * quant.h): vpdpbusd multiplies 4 unsigned weight bytes by 4 signed
 * activation bytes and adds them into the int32 lane of the row, so a block
 * needs no int16 stage. Q8_0 weights are made unsigned with w ^ 0x80
 * (= w + 128); the 128 * sum(y) this adds is subtracted per block, as Q4_0's
 * 8 * sum(y). Exact integer sums, equal to the scalar kernel's. Not run on
 * the AVX2 build machine (no AVX-512 there): tests/unit/test_repack.c
 * compares it with the scalar kernel wherever the CPU has VNNI. */
#include <immintrin.h>

#include "compute/quant_internal.h"

static inline __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

static inline __m256i block_q4_0(const uint8_t *q, const int8_t *y, int32_t s) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256i acc = _mm256_set1_epi32(-8 * s);
    for (int k = 0; k < 4; k++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(q + 32 * k));
        acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(v, m4), bcast4(y + 4 * k));
        acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4),
                                  bcast4(y + 16 + 4 * k));
    }
    return acc;
}

static inline __m256i block_q8_0(const uint8_t *q, const int8_t *y, int32_t s) {
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    __m256i acc = _mm256_set1_epi32(-128 * s);
    for (int k = 0; k < 8; k++) {
        __m256i w = _mm256_loadu_si256((const __m256i *)(q + 32 * k));
        acc = _mm256_dpbusd_epi32(acc, _mm256_xor_si256(w, flip), bcast4(y + 4 * k));
    }
    return acc;
}

static inline __attribute__((always_inline)) void gemv8(int64_t n, const void *group,
                                                        const void *xa, float *y, int q8) {
    int64_t nb = n / SP_QK;
    size_t qb = q8 ? 256 : 128;
    const uint8_t *q = group;
    const __m128i *wd = (const __m128i *)(q + (size_t)nb * qb);
    const int8_t *yq = xa;
    const float *yd = sp_pk_act_d(xa, n);
    const int32_t *ys = sp_pk_act_s(xa, n);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i s = q8 ? block_q8_0(q + b * qb, yq + b * SP_QK, ys[b])
                       : block_q4_0(q + b * qb, yq + b * SP_QK, ys[b]);
        __m256 d =
            _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(wd + b)), _mm256_broadcast_ss(yd + b));
        if (b & 1)
            acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc1);
        else
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc0);
    }
    _mm256_storeu_ps(y, _mm256_add_ps(_mm256_loadu_ps(y), _mm256_add_ps(acc0, acc1)));
}

static void gemv8_q4_0(int64_t n, const void *group, const void *xa, float *y) {
    gemv8(n, group, xa, y, 0);
}
static void gemv8_q8_0(int64_t n, const void *group, const void *xa, float *y) {
    gemv8(n, group, xa, y, 1);
}

static const sp_quant_packed_kernels pk_q4_0 = {sp_pk_act_bytes, sp_pk_prep_avx2, gemv8_q4_0};
static const sp_quant_packed_kernels pk_q8_0 = {sp_pk_act_bytes, sp_pk_prep_avx2, gemv8_q8_0};

const sp_quant_packed_kernels *sp_quant_packed_avx512_table(sp_dtype t) {
    return t == SP_Q4_0 ? &pk_q4_0 : t == SP_Q8_0 ? &pk_q8_0 : NULL;
}
