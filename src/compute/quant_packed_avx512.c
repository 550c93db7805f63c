/* AVX-512 VNNI decode kernels for packed Q4_0, Q8_0 and Q4_K weights
 * (layouts in quant.h, quant_internal.h): vpdpbusd multiplies 4 unsigned
 * weight bytes by 4 signed activation bytes and adds them into the int32
 * lane of the row, so a block needs no int16 stage. Q8_0 weights are made
 * unsigned with w ^ 0x80 (= w + 128); the 128 * sum(y) this adds is
 * subtracted per block, as Q4_0's 8 * sum(y). Exact integer sums, equal to
 * the scalar kernel's; tests/unit/test_repack.c compares them wherever the
 * CPU has VNNI. */
#include <immintrin.h>

#include "compute/quant_internal.h"
#include "compute/quant_packed_x86.h"

/* Bytes ahead of the block being summed that are asked into L2 (software
 * prefetch on top of the hardware's; it stops at the end of the caller's
 * rows, pf_end). Zen 4, bench/bench_decode_bw.c (every variant alternated
 * in one process), packed Q4_0, GB/s: 2 threads, 316 MiB of FFN matrices,
 * plain read 24.3: none 11.4, 2 KiB into L1 11.8, 8 KiB into L2 15.2 (ymm
 * kernel), 16 KiB into L2 17.4; 1 thread, 5632 x 2048 matrices, plain read
 * 29.1: none 10.1, 16 KiB into L2 19.2. */
#define PREFETCH_AHEAD 16384

/* always_inline: a separate function holding only prefetches counts as
 * free of side effects for gcc, which then drops its calls. */
static inline __attribute__((always_inline)) void prefetch_block(const uint8_t *p, size_t bytes,
                                                                 const uint8_t *end) {
    if (p + PREFETCH_AHEAD + bytes > end) return; /* past this thread's share */
    for (size_t l = 0; l < bytes; l += 64)
        _mm_prefetch((const char *)p + PREFETCH_AHEAD + l, _MM_HINT_T1);
}

/* dword j of 8 in lanes 0-7, 2j+1 in lanes 8-15 (vpermd indices) */
static inline void pair_index(__m512i idx[4]) {
    for (int j = 0; j < 4; j++)
        idx[j] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(2 * j)),
                                    _mm256_set1_epi32(2 * j + 1), 1);
}

/* One zmm load holds chunks 2j, 2j+1 of a block (lanes 0-7: chunk 2j of
 * rows 0-7, lanes 8-15: chunk 2j+1); vpermd spreads the block's activation
 * dwords to match, and the two halves of a row are added once at the end
 * (a row's two halves share its block scale). Single thread, L3-resident
 * weights, GB/s: Q4_0 34.4 -> 37.4 against 8 lanes per ymm with vpbroadcastd
 * (Q8_0 28.2 -> 35.0 with the prefetch). */
static inline __attribute__((always_inline)) void
gemv8(int64_t n, const void *group, const void *xa, float *y, int q8, const void *pf_end) {
    int64_t nb = n / SP_QK;
    size_t qb = q8 ? 256 : 128, bb = qb + 16; /* quants, then the 8 rows' scales */
    const uint8_t *q = group;
    const int8_t *yq = xa;
    const float *yd = sp_pk_act_d(xa, n);
    const int32_t *ys = sp_pk_act_s(xa, n);
    if (!pf_end) pf_end = q + (size_t)nb * bb;
    const __m512i m4 = _mm512_set1_epi8(0x0f), flip = _mm512_set1_epi8((char)0x80);
    __m512i idx[4];
    pair_index(idx);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *qq = q + b * bb;
        prefetch_block(qq, bb, pf_end);
        __m512i yb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(yq + b * SP_QK)));
        /* unsigned weights: w + 128 (Q8_0) or the nibble (Q4_0); the offset
         * times the activation sum is taken off once per row (lanes 0-7) */
        __m512i s = _mm512_maskz_set1_epi32(0x00ff, (q8 ? -128 : -8) * ys[b]);
        if (q8) {
            for (int j = 0; j < 4; j++) {
                __m512i w = _mm512_xor_si512(_mm512_loadu_si512(qq + 64 * j), flip);
                s = _mm512_dpbusd_epi32(s, w, _mm512_permutexvar_epi32(idx[j], yb));
            }
        } else {
            for (int j = 0; j < 2; j++) { /* low nibbles: values 8j.., high: 16 + 8j.. */
                __m512i v = _mm512_loadu_si512(qq + 64 * j);
                s = _mm512_dpbusd_epi32(s, _mm512_and_si512(v, m4),
                                        _mm512_permutexvar_epi32(idx[j], yb));
                s = _mm512_dpbusd_epi32(s, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4),
                                        _mm512_permutexvar_epi32(idx[j + 2], yb));
            }
        }
        __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_broadcastsi128_si256(
                                     _mm_loadu_si128((const __m128i *)(qq + qb)))),
                                 _mm512_set1_ps(yd[b]));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d, acc);
    }
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
    _mm256_storeu_ps(y, _mm256_add_ps(_mm256_loadu_ps(y), h));
}

static void gemv8_q4_0(int64_t n, const void *group, const void *xa, float *y, const void *pf_end) {
    gemv8(n, group, xa, y, 0, pf_end);
}
static void gemv8_q8_0(int64_t n, const void *group, const void *xa, float *y, const void *pf_end) {
    gemv8(n, group, xa, y, 1, pf_end);
}

/* Packed Q4_K: a zmm holds chunks 2j, 2j+1 of the 8 rows (as gemv8_v3);
 * per sub-block pair c the low nibbles (sub-block 2c) and high nibbles
 * (2c+1) go to their own vpdpbusd sums, which vpmulld then scales by the
 * row's 6-bit scale; the mins meet the activation's sub-block sums in
 * vpdpwssd (int16 pairs). */
static void gemv8_q4_k(int64_t n, const void *group, const void *xa, float *y, const void *pf_end) {
    int64_t nb = n / SP_QKK;
    if (!pf_end) pf_end = (const uint8_t *)group + (size_t)nb * SP_PK_K_BYTES;
    const int8_t *yq = xa;
    const float *yd = sp_pk_k_act_d(xa, n);
    const int16_t *bs = sp_pk_k_act_bs(xa, n);
    const __m512i m4 = _mm512_set1_epi8(0x0f), lo8 = _mm512_set1_epi32(0xff);
    const __m256i lo16 = _mm256_set1_epi32(0x00ff00ff);
    __m512i idx[4];
    pair_index(idx);
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *pk = (const uint8_t *)group + (size_t)b * SP_PK_K_BYTES;
        prefetch_block(pk, SP_PK_K_BYTES, pf_end);
        __m256i sc8[2], m8[2];
        k_scales8(pk, sc8, m8);
        __m512i sc[2] = {_mm512_broadcast_i64x4(sc8[0]), _mm512_broadcast_i64x4(sc8[1])};
        const int8_t *yb = yq + b * SP_QKK;
        __m512i isum = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) {
            __m512i ya = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(yb + 64 * c)));
            __m512i yh =
                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(yb + 64 * c + 32)));
            __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
            for (int j = 0; j < 4; j++) {
                __m512i v = _mm512_loadu_si512(pk + 256 * c + 64 * j);
                a0 = _mm512_dpbusd_epi32(a0, _mm512_and_si512(v, m4),
                                         _mm512_permutexvar_epi32(idx[j], ya));
                a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4),
                                         _mm512_permutexvar_epi32(idx[j], yh));
            }
            __m512i s0 = _mm512_and_si512(_mm512_srli_epi32(sc[c / 2], 16 * (c % 2)), lo8);
            __m512i s1 = _mm512_and_si512(_mm512_srli_epi32(sc[c / 2], 16 * (c % 2) + 8), lo8);
            isum = _mm512_add_epi32(
                isum, _mm512_add_epi32(_mm512_mullo_epi32(a0, s0), _mm512_mullo_epi32(a1, s1)));
        }
        __m256i msum = _mm256_setzero_si256();
        const int16_t *bb = bs + b * 8;
        for (int h = 0; h < 2; h++) {
            int32_t p02 = (uint16_t)bb[4 * h] | (int32_t)((uint32_t)(uint16_t)bb[4 * h + 2] << 16);
            int32_t p13 =
                (uint16_t)bb[4 * h + 1] | (int32_t)((uint32_t)(uint16_t)bb[4 * h + 3] << 16);
            msum = _mm256_dpwssd_epi32(msum, _mm256_and_si256(m8[h], lo16), _mm256_set1_epi32(p02));
            msum = _mm256_dpwssd_epi32(msum, _mm256_and_si256(_mm256_srli_epi32(m8[h], 8), lo16),
                                       _mm256_set1_epi32(p13));
        }
        __m128i dh = _mm_loadu_si128((const __m128i *)(pk + SP_PK_K_D));
        __m512 d =
            _mm512_mul_ps(_mm512_set1_ps(yd[b]), _mm512_cvtph_ps(_mm256_broadcastsi128_si256(dh)));
        __m256 dm =
            _mm256_mul_ps(_mm256_set1_ps(yd[b]),
                          _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(pk + SP_PK_K_DMIN))));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(isum), acc);
        accm = _mm256_fmadd_ps(dm, _mm256_cvtepi32_ps(msum), accm);
    }
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
    _mm256_storeu_ps(y, _mm256_add_ps(_mm256_loadu_ps(y), _mm256_sub_ps(h, accm)));
}

static const sp_quant_packed_kernels pk_q4_k = {sp_pk_k_act_bytes, sp_pk_k_prep_avx2, gemv8_q4_k};
static const sp_quant_packed_kernels pk_q4_0 = {sp_pk_act_bytes, sp_pk_prep_avx2, gemv8_q4_0};
static const sp_quant_packed_kernels pk_q8_0 = {sp_pk_act_bytes, sp_pk_prep_avx2, gemv8_q8_0};

const sp_quant_packed_kernels *sp_quant_packed_avx512_table(sp_dtype t) {
    return t == SP_Q4_0 ? &pk_q4_0 : t == SP_Q8_0 ? &pk_q8_0 : t == SP_Q4_K ? &pk_q4_k : NULL;
}
