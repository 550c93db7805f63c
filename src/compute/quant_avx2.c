/* AVX2 dot kernels and activation quantizers. Integer trick used
 * throughout: vpmaddubsw multiplies unsigned weight levels (0..63) by
 * signed int8 activations and adds adjacent pairs into int16 (at most
 * 2*63*127 = 16002, no saturation); vpmaddwd then applies the int16
 * sub-block scale (or 1) and widens to int32. Offsets such as Q4_0's -8
 * are applied to the activation side: sum((q-8)y) = sum(qy) - 8 sum(y).
 * The activation quantizers give bit-identical output to quant_scalar.c. */
#include <immintrin.h>
#include <math.h>

#include "compute/quant_internal.h"

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float f16(uint16_t h) {
    return _cvtsh_ss(h);
}
static inline uint16_t to_f16(float f) {
    return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

static inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* 32 values -> max |x| */
static inline float amax32(const float *x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_andnot_ps(sign, _mm256_loadu_ps(x));
    for (int k = 8; k < 32; k += 8)
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
    return hmax_ps(m);
}

/* Rounds x[0..31]*scale half-to-even into int8 (capped at 127), returns
 * the int32 lanes in i[4] for sums. */
static inline __m256i round32(const float *x, float scale, __m256i i[4]) {
    const __m256 s = _mm256_set1_ps(scale);
    const __m256i cap = _mm256_set1_epi32(127);
    for (int k = 0; k < 4; k++) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), s);
        v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        i[k] = _mm256_min_epi32(_mm256_cvtps_epi32(v), cap);
    }
    __m256i a = _mm256_packs_epi32(i[0], i[1]); /* lanes interleave by 128 bits */
    __m256i b = _mm256_packs_epi32(i[2], i[3]);
    __m256i q = _mm256_packs_epi16(a, b);
    return _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

void sp_quant_act_q8_0_avx2(const float *x, void *xq, int64_t n) {
    sp_block_q8_0 *y = xq;
    for (int64_t b = 0; b < n / SP_QK; b++, x += SP_QK) {
        float amax = amax32(x);
        __m256i i[4];
        y[b].d = to_f16(amax / 127.0f);
        _mm256_storeu_si256((__m256i *)y[b].qs, round32(x, amax != 0.0f ? 127.0f / amax : 0.0f, i));
    }
}

void sp_quant_act_q8_1_avx2(const float *x, void *xq, int64_t n) {
    sp_block_q8_1 *y = xq;
    for (int64_t b = 0; b < n / SP_QK; b++, x += SP_QK) {
        float amax = amax32(x), d = amax / 127.0f;
        __m256i i[4];
        y[b].d = to_f16(d);
        _mm256_storeu_si256((__m256i *)y[b].qs, round32(x, amax != 0.0f ? 127.0f / amax : 0.0f, i));
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
        y[b].s = to_f16(d * (float)hsum_epi32(s));
    }
}

void sp_quant_act_q8_k_avx2(const float *x, void *xq, int64_t n) {
    sp_block_q8_k *y = xq;
    for (int64_t b = 0; b < n / SP_QKK; b++, x += SP_QKK) {
        float amax = 0.0f, max = 0.0f;
        for (int k = 0; k < SP_QKK; k += 32) amax = fmaxf(amax, amax32(x + k));
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof(y[b]));
            continue;
        }
        for (int j = 0; j < SP_QKK; j++) { /* the first value of largest magnitude */
            if (x[j] == amax || x[j] == -amax) {
                max = x[j];
                break;
            }
        }
        float iscale = -127.0f / max;
        for (int k = 0; k < SP_QKK; k += 32) {
            __m256i i[4];
            _mm256_storeu_si256((__m256i *)(y[b].qs + k), round32(x + k, iscale, i));
            y[b].bsums[k / 16] = (int16_t)hsum_epi32(_mm256_add_epi32(i[0], i[1]));
            y[b].bsums[k / 16 + 1] = (int16_t)hsum_epi32(_mm256_add_epi32(i[2], i[3]));
        }
        y[b].d = 1.0f / iscale;
    }
}

/* ---- 32-wide blocks ------------------------------------------------------- */

/* 16 bytes of nibbles -> 32 bytes: low nibbles first, then high nibbles. */
static inline __m256i unpack_nibbles(const uint8_t *p) {
    __m128i t = _mm_loadu_si128((const __m128i *)p);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

/* Bit i of the 32-bit word at p -> byte i = 0x10 or 0. */
static inline __m256i bits_to_0x10(const uint8_t *p) {
    uint32_t bits;
    memcpy(&bits, p, 4);
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i mask = _mm256_set1_epi64x(0x8040201008040201);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), pick);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, mask), mask);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* int16 pair sums -> int32 -> float */
static inline __m256 widen(__m256i p16) {
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

/* sum((u - off) * y) in int16 pairs for unsigned levels u */
static inline __m256i dot_off(__m256i u, __m256i y, __m256i off) {
    return _mm256_sub_epi16(_mm256_maddubs_epi16(u, y), _mm256_maddubs_epi16(off, y));
}

/* One block's int16 pair sums -> scaled f32 lanes (8 partial sums). */
static inline __m256 scaled(__m256i p16, float d) {
    return _mm256_mul_ps(_mm256_set1_ps(d), widen(p16));
}

/* int16 pair sums of one block of each type with its Q8_0 activation */
typedef __m256i (*pairs_fn)(const uint8_t *x, const sp_block_q8_0 *y);

static inline __m256i pairs_q8_0(const uint8_t *xb, const sp_block_q8_0 *y) {
    const sp_block_q8_0 *x = (const sp_block_q8_0 *)xb;
    __m256i qx = _mm256_loadu_si256((const __m256i *)x->qs);
    __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
    /* |x| * (y with x's sign): the unsigned-by-signed form maddubs needs */
    return _mm256_maddubs_epi16(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx));
}

static inline __m256i pairs_q4_0(const uint8_t *xb, const sp_block_q8_0 *y) {
    const sp_block_q4_0 *x = (const sp_block_q4_0 *)xb;
    __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
    return dot_off(unpack_nibbles(x->qs), qy, _mm256_set1_epi8(8));
}

static inline __m256i pairs_q5_0(const uint8_t *xb, const sp_block_q8_0 *y) {
    const sp_block_q5_0 *x = (const sp_block_q5_0 *)xb;
    __m256i q = _mm256_or_si256(unpack_nibbles(x->qs), bits_to_0x10(x->qh));
    __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
    return dot_off(q, qy, _mm256_set1_epi8(16));
}

static inline uint16_t half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

/* d_x * d_y of 4 consecutive blocks (the f16 d is the first field of both
 * block types): one vcvtph2ps instead of eight scalar conversions. */
static inline __m128 scales4(const uint8_t *x, size_t xs, const sp_block_q8_0 *y) {
    __m128i h = _mm_setr_epi16((short)half_at(x), (short)half_at(x + xs),
                               (short)half_at(x + 2 * xs), (short)half_at(x + 3 * xs),
                               (short)y[0].d, (short)y[1].d, (short)y[2].d, (short)y[3].d);
    __m256 f = _mm256_cvtph_ps(h);
    return _mm_mul_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
}

static inline __m256 lane(__m128 v, int k) {
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(v), _mm256_set1_epi32(k));
}

/* The loop shared by the 32-wide types whose activation is Q8_0 (xs: the
 * weight block size): four blocks per step, two accumulators to hide the
 * FMA latency. Inlined into each caller with its pairs function. */
static inline __attribute__((always_inline)) float dot32(int64_t n, const void *w, size_t xs,
                                                         const void *xq, pairs_fn pairs) {
    const uint8_t *x = w;
    const sp_block_q8_0 *y = xq;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t nb = n / SP_QK, i = 0;
    for (; i + 3 < nb; i += 4, x += 4 * xs) {
        __m128 d = scales4(x, xs, y + i);
        acc0 = _mm256_fmadd_ps(lane(d, 0), widen(pairs(x, y + i)), acc0);
        acc1 = _mm256_fmadd_ps(lane(d, 1), widen(pairs(x + xs, y + i + 1)), acc1);
        acc0 = _mm256_fmadd_ps(lane(d, 2), widen(pairs(x + 2 * xs, y + i + 2)), acc0);
        acc1 = _mm256_fmadd_ps(lane(d, 3), widen(pairs(x + 3 * xs, y + i + 3)), acc1);
    }
    for (; i < nb; i++, x += xs)
        acc0 = _mm256_add_ps(acc0, scaled(pairs(x, y + i), _cvtsh_ss(half_at(x)) * f16(y[i].d)));
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

static float dot_q8_0(int64_t n, const void *w, const void *xq) {
    return dot32(n, w, sizeof(sp_block_q8_0), xq, pairs_q8_0);
}
static float dot_q4_0(int64_t n, const void *w, const void *xq) {
    return dot32(n, w, sizeof(sp_block_q4_0), xq, pairs_q4_0);
}
static float dot_q5_0(int64_t n, const void *w, const void *xq) {
    return dot32(n, w, sizeof(sp_block_q5_0), xq, pairs_q5_0);
}

/* Q4_1: levels are unsigned, the offset m pairs with the block sum s. */
static float dot_q4_1(int64_t n, const void *w, const void *xq) {
    const sp_block_q4_1 *x = w;
    const sp_block_q8_1 *y = xq;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float msum = 0.0f;
    int64_t nb = n / SP_QK, i = 0;
    for (; i + 1 < nb; i += 2) {
        __m256i p0 = _mm256_maddubs_epi16(unpack_nibbles(x[i].qs),
                                          _mm256_loadu_si256((const __m256i *)y[i].qs));
        __m256i p1 = _mm256_maddubs_epi16(unpack_nibbles(x[i + 1].qs),
                                          _mm256_loadu_si256((const __m256i *)y[i + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)), widen(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i + 1].d) * f16(y[i + 1].d)), widen(p1), acc1);
        msum += f16(x[i].m) * f16(y[i].s) + f16(x[i + 1].m) * f16(y[i + 1].s);
    }
    if (i < nb) {
        __m256i p = _mm256_maddubs_epi16(unpack_nibbles(x[i].qs),
                                         _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc0 = _mm256_add_ps(acc0, scaled(p, f16(x[i].d) * f16(y[i].d)));
        msum += f16(x[i].m) * f16(y[i].s);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1)) + msum;
}

/* ---- k-quants ------------------------------------------------------------- */

/* The 8 six-bit scales (sc) and mins (m) of a Q4_K/Q5_K block, as bytes;
 * the same unpacking as sp_kq_scale_min, four sub-blocks at a time. */
static inline void kq_scales(const uint8_t *s, uint8_t sc[8], uint8_t m[8]) {
    uint32_t a, b, c, v[4];
    memcpy(&a, s, 4);
    memcpy(&b, s + 4, 4);
    memcpy(&c, s + 8, 4);
    v[0] = a & 0x3f3f3f3f;
    v[1] = (c & 0x0f0f0f0f) | ((a >> 6) & 0x03030303) << 4;
    v[2] = b & 0x3f3f3f3f;
    v[3] = ((c >> 4) & 0x0f0f0f0f) | ((b >> 6) & 0x03030303) << 4;
    memcpy(sc, v, 8);
    memcpy(m, v + 2, 8);
}

/* sum_j m_j * (sum of activations of sub-block j of 32), as 8 int32 lanes */
static inline __m256i kq_min_sums(const uint8_t m[8], const int16_t *bsums) {
    __m128i m8 = _mm_loadl_epi64((const __m128i *)m);
    __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8)); /* m0 m0 m1 m1 ... */
    return _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)bsums), m16);
}

/* Shared by Q4_K and Q5_K (five: add the fifth bits from qh). */
static inline float dot_kq(int64_t n, const uint8_t *w, size_t stride, const void *xq, int five) {
    const sp_block_q8_k *y = xq;
    const __m256i low4 = _mm256_set1_epi8(0x0f), bit0 = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SP_QKK; i++, w += stride) {
        const sp_block_q4_k *b4 = (const sp_block_q4_k *)w;
        const sp_block_q5_k *b5 = (const sp_block_q5_k *)w;
        const uint8_t *qs = five ? b5->qs : b4->qs;
        uint8_t sc[8], m[8];
        kq_scales(b4->scales, sc, m);
        __m256i hb = five ? _mm256_loadu_si256((const __m256i *)b5->qh) : _mm256_setzero_si256();
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
            __m256i lo = _mm256_and_si256(q, low4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            if (five) { /* bit 2c -> lo's bit 4, bit 2c+1 -> hi's bit 4 */
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hb, bit0), 4));
                hi = _mm256_or_si256(
                    hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), bit0), 4));
                hb = _mm256_srli_epi16(hb, 2);
            }
            const int8_t *yq = y[i].qs + 64 * c;
            __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)yq));
            __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(yq + 32)));
            plo = _mm256_madd_epi16(plo, _mm256_set1_epi16(sc[2 * c]));
            phi = _mm256_madd_epi16(phi, _mm256_set1_epi16(sc[2 * c + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(plo, phi));
        }
        __m256 d = _mm256_set1_ps(y[i].d * f16(b4->d));
        __m256 dmin = _mm256_set1_ps(y[i].d * f16(b4->dmin));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        accm = _mm256_fmadd_ps(dmin, _mm256_cvtepi32_ps(kq_min_sums(m, y[i].bsums)), accm);
    }
    return hsum_ps(acc) - hsum_ps(accm);
}

static float dot_q4_k(int64_t n, const void *w, const void *xq) {
    return dot_kq(n, w, sizeof(sp_block_q4_k), xq, 0);
}

static float dot_q5_k(int64_t n, const void *w, const void *xq) {
    return dot_kq(n, w, sizeof(sp_block_q5_k), xq, 1);
}

/* Q6_K: levels u = 0..63 stand for u-32; the -32 is applied once per
 * block through the activation group sums: sum_g sc_g * 32 * bsum_g. */
static float dot_q6_k(int64_t n, const void *w, const void *xq) {
    const sp_block_q6_k *x = w;
    const sp_block_q8_k *y = xq;
    const __m256i low4 = _mm256_set1_epi8(0x0f), two_bits = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SP_QKK; i++) {
        const int8_t *sc = x[i].scales;
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), sc16);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h));
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h));
            __m256i u[4];
            u[0] = _mm256_and_si256(l0, low4);
            u[1] = _mm256_and_si256(l1, low4);
            u[2] = _mm256_and_si256(_mm256_srli_epi16(l0, 4), low4);
            u[3] = _mm256_and_si256(_mm256_srli_epi16(l1, 4), low4);
            for (int k = 0; k < 4; k++) {
                __m256i hk = _mm256_and_si256(qh, two_bits); /* bits 2k, 2k+1 */
                u[k] = _mm256_or_si256(u[k], _mm256_slli_epi16(hk, 4));
                qh = _mm256_srli_epi16(qh, 2);
                const int8_t *yq = y[i].qs + 128 * h + 32 * k;
                __m256i p = _mm256_maddubs_epi16(u[k], _mm256_loadu_si256((const __m256i *)yq));
                int g = 8 * h + 2 * k; /* groups g (values 0..15) and g+1 */
                __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[g + 1]), _mm_set1_epi16(sc[g]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, s));
            }
        }
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(off, 5));
        __m256 d = _mm256_set1_ps(y[i].d * f16(x[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc);
}

static const sp_quant_kernels k_q8_0 = {SP_Q8_0, sp_quant_act_q8_0_avx2, dot_q8_0};
static const sp_quant_kernels k_q4_0 = {SP_Q8_0, sp_quant_act_q8_0_avx2, dot_q4_0};
static const sp_quant_kernels k_q4_1 = {SP_Q8_1, sp_quant_act_q8_1_avx2, dot_q4_1};
static const sp_quant_kernels k_q5_0 = {SP_Q8_0, sp_quant_act_q8_0_avx2, dot_q5_0};
static const sp_quant_kernels k_q4_k = {SP_Q8_K, sp_quant_act_q8_k_avx2, dot_q4_k};
static const sp_quant_kernels k_q5_k = {SP_Q8_K, sp_quant_act_q8_k_avx2, dot_q5_k};
static const sp_quant_kernels k_q6_k = {SP_Q8_K, sp_quant_act_q8_k_avx2, dot_q6_k};

const sp_quant_kernels *sp_quant_avx2_table(sp_dtype t) {
    switch (t) {
    case SP_Q8_0:
        return &k_q8_0;
    case SP_Q4_0:
        return &k_q4_0;
    case SP_Q4_1:
        return &k_q4_1;
    case SP_Q5_0:
        return &k_q5_0;
    case SP_Q4_K:
        return &k_q4_k;
    case SP_Q5_K:
        return &k_q5_k;
    case SP_Q6_K:
        return &k_q6_k;
    default:
        return NULL;
    }
}

/* ---- dequantization (bit-identical to quant_ref.c) --------------------------
 * Same products in the same order as the reference: one rounding each, and
 * the file is compiled as ISO C, so GCC does not fuse a multiply and the
 * subtraction after it into an FMA. Used by prefill (dequantize a panel of
 * rows once, then the f32 GEMM) and by --precision f32. */

/* 8 int8 / uint8 at p -> f32 */
static inline __m256 i8_to_ps(const int8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}
static inline __m256 u8_to_ps(__m128i v) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
}

static void deq_q8_0(const void *src, float *y, int64_t n) {
    const sp_block_q8_0 *b = src;
    for (int64_t i = 0; i < n / SP_QK; i++, y += SP_QK) {
        __m256 d = _mm256_set1_ps(f16(b[i].d));
        for (int k = 0; k < 32; k += 8)
            _mm256_storeu_ps(y + k, _mm256_mul_ps(d, i8_to_ps(b[i].qs + k)));
    }
}

static void deq_q4_0(const void *src, float *y, int64_t n) {
    const sp_block_q4_0 *b = src;
    int8_t q[32];
    for (int64_t i = 0; i < n / SP_QK; i++, y += SP_QK) {
        __m256 d = _mm256_set1_ps(f16(b[i].d));
        _mm256_storeu_si256((__m256i *)q,
                            _mm256_sub_epi8(unpack_nibbles(b[i].qs), _mm256_set1_epi8(8)));
        for (int k = 0; k < 32; k += 8) _mm256_storeu_ps(y + k, _mm256_mul_ps(d, i8_to_ps(q + k)));
    }
}

static void deq_q4_k(const void *src, float *y, int64_t n) {
    const sp_block_q4_k *b = src;
    for (int64_t i = 0; i < n / SP_QKK; i++, y += SP_QKK) {
        float d = f16(b[i].d), dmin = f16(b[i].dmin);
        uint8_t sc[8], m[8];
        kq_scales(b[i].scales, sc, m);
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * c));
            __m256i nib[2] = {_mm256_and_si256(q, _mm256_set1_epi8(0x0f)),
                              _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0f))};
            for (int h = 0; h < 2; h++) {
                int j = 2 * c + h;
                __m256 ds = _mm256_set1_ps(d * sc[j]), dm = _mm256_set1_ps(dmin * m[j]);
                __m128i lo = _mm256_castsi256_si128(nib[h]),
                        hi = _mm256_extracti128_si256(nib[h], 1);
                float *out = y + 32 * j;
                _mm256_storeu_ps(out, _mm256_sub_ps(_mm256_mul_ps(ds, u8_to_ps(lo)), dm));
                _mm256_storeu_ps(
                    out + 8, _mm256_sub_ps(_mm256_mul_ps(ds, u8_to_ps(_mm_srli_si128(lo, 8))), dm));
                _mm256_storeu_ps(out + 16, _mm256_sub_ps(_mm256_mul_ps(ds, u8_to_ps(hi)), dm));
                _mm256_storeu_ps(
                    out + 24,
                    _mm256_sub_ps(_mm256_mul_ps(ds, u8_to_ps(_mm_srli_si128(hi, 8))), dm));
            }
        }
    }
}

/* Q6_K: value = (d * sc) * (q - 32), as the reference computes it. */
static void deq_q6_k(const void *src, float *y, int64_t n) {
    const sp_block_q6_k *b = src;
    const __m256i low4 = _mm256_set1_epi8(0x0f), three = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < n / SP_QKK; i++, y += SP_QKK) {
        float d = f16(b[i].d);
        for (int h = 0; h < 2; h++) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(b[i].ql + 64 * h));
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(b[i].ql + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(b[i].qh + 32 * h));
            __m256i u[4] = {_mm256_and_si256(l0, low4), _mm256_and_si256(l1, low4),
                            _mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                            _mm256_and_si256(_mm256_srli_epi16(l1, 4), low4)};
            int8_t q[32];
            for (int k = 0; k < 4; k++) { /* quarter k: values 32k .. 32k+31 of this half */
                __m256i hk = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), three);
                __m256i v = _mm256_sub_epi8(_mm256_or_si256(u[k], _mm256_slli_epi16(hk, 4)),
                                            _mm256_set1_epi8(32));
                _mm256_storeu_si256((__m256i *)q, v);
                const int8_t *sc = b[i].scales + 8 * h + 2 * k;
                float *out = y + 128 * h + 32 * k;
                for (int g = 0; g < 2; g++) { /* 16 values per scale */
                    __m256 s = _mm256_set1_ps(d * (float)sc[g]);
                    _mm256_storeu_ps(out + 16 * g, _mm256_mul_ps(s, i8_to_ps(q + 16 * g)));
                    _mm256_storeu_ps(out + 16 * g + 8, _mm256_mul_ps(s, i8_to_ps(q + 16 * g + 8)));
                }
            }
        }
    }
}

int sp_quant_dequantize_avx2(sp_dtype t, const void *src, float *dst, int64_t n) {
    switch (t) {
    case SP_Q8_0:
        deq_q8_0(src, dst, n);
        return 1;
    case SP_Q4_0:
        deq_q4_0(src, dst, n);
        return 1;
    case SP_Q4_K:
        deq_q4_k(src, dst, n);
        return 1;
    case SP_Q6_K:
        deq_q6_k(src, dst, n);
        return 1;
    default:
        return 0;
    }
}
