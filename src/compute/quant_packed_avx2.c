/* AVX2 decode kernels for packed (row-interleaved) Q4_0 and Q8_0 weights
 * (layouts in quant.h). Lane r of every 256-bit weight load holds 4 bytes
 * of row r; the 4 matching activation bytes are broadcast to all lanes
 * (vpbroadcastd from memory: a load, no shuffle), so vpmaddubsw + vpmaddwd
 * leave row r's integer block sum in lane r. The integer sums are exact
 * and equal to quant_avx2.c's; only the f32 accumulation order differs. */
#include <immintrin.h>

#include "compute/quant_internal.h"
#include "compute/quant_packed_x86.h"

/* Keeps v in a register as computed: stops the compiler from re-associating
 * a block's chain of integer adds into a tree whose extra live values, with
 * two blocks in flight, spilled the accumulators to the stack (gcc 12 -O3).
 * One block at a time with the chain kept runs as fast and spills nothing. */
#define SP_KEEP(v) __asm__("" : "+x"(v))

static inline __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

void sp_pk_prep_avx2(const float *x, void *xa, int64_t n) {
    enum { CHUNK = 64 };
    sp_block_q8_0 tmp[CHUNK];
    int8_t *qs = xa;
    float *d = (float *)(qs + n);
    int32_t *s = (int32_t *)(d + n / SP_QK);
    const __m256i ones = _mm256_set1_epi8(1);
    for (int64_t b0 = 0; b0 < n / SP_QK; b0 += CHUNK) {
        int64_t m = n / SP_QK - b0 < CHUNK ? n / SP_QK - b0 : CHUNK;
        sp_quant_act_q8_0_avx2(x + b0 * SP_QK, tmp, m * SP_QK);
        for (int64_t b = 0; b < m; b++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)tmp[b].qs);
            _mm256_storeu_si256((__m256i *)(qs + (b0 + b) * SP_QK), q);
            d[b0 + b] = _cvtsh_ss(tmp[b].d);
            /* sum of 32 int8: maddubs by ones pairs them, madd widens */
            __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, q), _mm256_set1_epi16(1));
            __m128i h = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
            h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
            h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
            s[b0 + b] = _mm_cvtsi128_si32(h);
        }
    }
}

/* Row sums of one Q4_0 block for the 8 rows of a group, offset -8 applied:
 * sum_j u_j y_j - 8 sum_j y_j. The 8 vpmaddubsw results are added in int16:
 * each lane pair is at most 8 * 2 * 15 * 127 = 30480 in magnitude. */
static inline __m256i block_q4_0(const uint8_t *q, const int8_t *y, const int32_t *s) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256i acc = _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(q + 32 * k));
        __m256i lo = _mm256_and_si256(v, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(lo, bcast4(y + 4 * k)));
        acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(hi, bcast4(y + 16 + 4 * k)));
        SP_KEEP(acc);
    }
    __m256i s32 = _mm256_madd_epi16(acc, _mm256_set1_epi16(1));
    return _mm256_sub_epi32(s32, _mm256_set1_epi32(8 * *s));
}

/* Row sums of one Q8_0 block: |w| * (y with w's sign), each chunk widened
 * to int32 on its own (two int16 pair sums could reach 2 * 32258). */
static inline __m256i block_q8_0(const uint8_t *q, const int8_t *y) {
    __m256i acc = _mm256_setzero_si256();
    const __m256i one = _mm256_set1_epi16(1);
    for (int k = 0; k < 8; k++) {
        __m256i w = _mm256_loadu_si256((const __m256i *)(q + 32 * k));
        __m256i p =
            _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(bcast4(y + 4 * k), w));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, one));
        SP_KEEP(acc);
    }
    return acc;
}

/* Bytes of the group's stream asked into L2 ahead of the block being summed
 * (software prefetch on top of the hardware's), up to the end of the
 * caller's rows (pf_end); past the end of a group it reads into the group's
 * scales and the next group. Two threads streaming 285 MB of packed
 * weights, Zen 3, GB/s, none / 1 KiB / 2 KiB ahead into L1: Q8_0 20.2 /
 * 21.3 / 21.2, Q4_0 16.9 / 17.7 / 18.7 (a plain read: 25-26). Zen 4
 * (bench/bench_decode_bw.c, the bench model's layers, 2 threads, share of
 * a plain read): 2 KiB into L1 Q4_0 49%, Q8_0 61-63%; 16 KiB into L2 66-68%,
 * 74-76% (not measured on Zen 3). */
#define PREFETCH_AHEAD 16384

/* y[r] += sum_b d_r,b * d_y,b * S_r,b, one block at a time. */
static inline __attribute__((always_inline)) void
gemv8(int64_t n, const void *group, const void *xa, float *y, int q8, const void *pf_end) {
    int64_t nb = n / SP_QK;
    size_t qb = q8 ? 256 : 128, bb = qb + 16; /* quants, then the 8 rows' scales */
    const uint8_t *q = group;
    const int8_t *yq = xa;
    const float *yd = sp_pk_act_d(xa, n);
    const int32_t *ys = sp_pk_act_s(xa, n);
    if (!pf_end) pf_end = q + (size_t)nb * bb;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *qq = q + b * bb;
        if ((const char *)qq + PREFETCH_AHEAD + bb <= (const char *)pf_end)
            for (size_t l = 0; l < bb; l += 64)
                _mm_prefetch((const char *)qq + PREFETCH_AHEAD + l, _MM_HINT_T1);
        __m256i s = q8 ? block_q8_0(qq, yq + b * SP_QK) : block_q4_0(qq, yq + b * SP_QK, ys + b);
        __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(qq + qb))),
                                 _mm256_broadcast_ss(yd + b));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc);
        SP_KEEP(acc);
    }
    _mm256_storeu_ps(y, _mm256_add_ps(_mm256_loadu_ps(y), acc));
}

static void gemv8_q4_0(int64_t n, const void *group, const void *xa, float *y, const void *pf_end) {
    gemv8(n, group, xa, y, 0, pf_end);
}
static void gemv8_q8_0(int64_t n, const void *group, const void *xa, float *y, const void *pf_end) {
    gemv8(n, group, xa, y, 1, pf_end);
}

void sp_pk_k_prep_avx2(const float *x, void *xa, int64_t n) {
    enum { CHUNK = 8 };
    sp_block_q8_k tmp[CHUNK];
    int64_t nb = n / SP_QKK;
    float *d = (float *)((int8_t *)xa + n);
    int16_t *bs = (int16_t *)(d + nb);
    for (int64_t b0 = 0; b0 < nb; b0 += CHUNK) {
        int64_t m = nb - b0 < CHUNK ? nb - b0 : CHUNK;
        sp_quant_act_q8_k_avx2(x + b0 * SP_QKK, tmp, m * SP_QKK);
        for (int64_t b = 0; b < m; b++) {
            memcpy((int8_t *)xa + (b0 + b) * SP_QKK, tmp[b].qs, SP_QKK);
            d[b0 + b] = tmp[b].d;
            /* pairs of 16-value sums: madd by ones, packed back to int16 */
            __m256i s = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)tmp[b].bsums),
                                          _mm256_set1_epi16(1));
            __m128i p = _mm_packs_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            _mm_storeu_si128((__m128i *)(bs + (b0 + b) * 8), p);
        }
    }
}

/* sum_j m_j * bs_j per row: m as int16 pairs (m0, m2), (m1, m3) of each
 * dword, against the matching pairs of the activation's sub-block sums. */
static inline __m256i k_min_sums8(const __m256i m[2], const int16_t *bs) {
    const __m256i lo = _mm256_set1_epi32(0x00ff00ff);
    __m256i acc = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
        int32_t p02 = (uint16_t)bs[4 * h] | (int32_t)((uint32_t)(uint16_t)bs[4 * h + 2] << 16);
        int32_t p13 = (uint16_t)bs[4 * h + 1] | (int32_t)((uint32_t)(uint16_t)bs[4 * h + 3] << 16);
        acc = _mm256_add_epi32(
            acc, _mm256_madd_epi16(_mm256_and_si256(m[h], lo), _mm256_set1_epi32(p02)));
        acc = _mm256_add_epi32(acc,
                               _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi32(m[h], 8), lo),
                                                 _mm256_set1_epi32(p13)));
    }
    return acc;
}

/* Packed Q4_K, one super-block at a time: per sub-block the int16 pair
 * sums of 8 chunks stay in int16 (at most 8 * 2 * 15 * 127 = 30480), then
 * vpmaddwd by the row's scale (both halves of the lane) widens them. */
static void gemv8_q4_k(int64_t n, const void *group, const void *xa, float *y, const void *pf_end) {
    int64_t nb = n / SP_QKK;
    if (!pf_end) pf_end = (const uint8_t *)group + (size_t)nb * SP_PK_K_BYTES;
    const int8_t *yq = xa;
    const float *yd = sp_pk_k_act_d(xa, n);
    const int16_t *bs = sp_pk_k_act_bs(xa, n);
    const __m256i m4 = _mm256_set1_epi8(0x0f), lo8 = _mm256_set1_epi32(0xff);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *pk = (const uint8_t *)group + (size_t)b * SP_PK_K_BYTES;
        if (pk + PREFETCH_AHEAD + SP_PK_K_BYTES <= (const uint8_t *)pf_end)
            for (size_t l = 0; l < SP_PK_K_BYTES; l += 64)
                _mm_prefetch((const char *)pk + PREFETCH_AHEAD + l, _MM_HINT_T1);
        __m256i sc[2], m[2];
        k_scales8(pk, sc, m);
        const int8_t *yb = yq + b * SP_QKK;
        __m256i isum = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
            for (int k = 0; k < 8; k++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(pk + 32 * (8 * c + k)));
                a0 = _mm256_add_epi16(
                    a0, _mm256_maddubs_epi16(_mm256_and_si256(v, m4), bcast4(yb + 64 * c + 4 * k)));
                a1 = _mm256_add_epi16(
                    a1, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4),
                                             bcast4(yb + 64 * c + 32 + 4 * k)));
                SP_KEEP(a0);
                SP_KEEP(a1);
            }
            /* scales of sub-blocks 2c, 2c+1 as int16 in both halves of each lane */
            __m256i s0 = _mm256_and_si256(_mm256_srli_epi32(sc[c / 2], 16 * (c % 2)), lo8);
            __m256i s1 = _mm256_and_si256(_mm256_srli_epi32(sc[c / 2], 16 * (c % 2) + 8), lo8);
            s0 = _mm256_or_si256(s0, _mm256_slli_epi32(s0, 16));
            s1 = _mm256_or_si256(s1, _mm256_slli_epi32(s1, 16));
            isum = _mm256_add_epi32(
                isum, _mm256_add_epi32(_mm256_madd_epi16(a0, s0), _mm256_madd_epi16(a1, s1)));
        }
        __m256i msum = k_min_sums8(m, bs + b * 8);
        __m256 yv = _mm256_broadcast_ss(yd + b);
        __m256 d =
            _mm256_mul_ps(yv, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(pk + SP_PK_K_D))));
        __m256 dm = _mm256_mul_ps(
            yv, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(pk + SP_PK_K_DMIN))));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum), acc);
        acc = _mm256_fnmadd_ps(dm, _mm256_cvtepi32_ps(msum), acc);
    }
    _mm256_storeu_ps(y, _mm256_add_ps(_mm256_loadu_ps(y), acc));
}

static const sp_quant_packed_kernels pk_q4_k = {sp_pk_k_act_bytes, sp_pk_k_prep_avx2, gemv8_q4_k};
static const sp_quant_packed_kernels pk_q4_0 = {sp_pk_act_bytes, sp_pk_prep_avx2, gemv8_q4_0};
static const sp_quant_packed_kernels pk_q8_0 = {sp_pk_act_bytes, sp_pk_prep_avx2, gemv8_q8_0};

const sp_quant_packed_kernels *sp_quant_packed_avx2_table(sp_dtype t) {
    return t == SP_Q4_0 ? &pk_q4_0 : t == SP_Q8_0 ? &pk_q8_0 : t == SP_Q4_K ? &pk_q4_k : NULL;
}
