/* AVX-512 (F/BW/VL/DQ) + VNNI dot kernels. quant.c only selects them when
 * the CPU reports AVX512_VNNI as well as the sp_ops AVX-512 level.
 *  - 32-wide types: two blocks per zmm; vpdpbusd (u8 x s8, 4 products
 *    into each int32) replaces AVX2's maddubs+madd pair. Signed x signed
 *    (Q8_0) moves x's sign onto y first: |x| . (sign(x) y).
 *  - k-quants: one zmm covers 64 values (two sub-blocks); vpmaddubsw makes
 *    int16 pair sums and vpdpwssd multiplies them by the int16 sub-block
 *    scales and accumulates in one step.
 * Activation quantization reuses the AVX2 quantizers (bit-identical to
 * the scalar ones; every AVX-512 CPU has AVX2). */
#include <immintrin.h>

#include "compute/quant_internal.h"

static inline float f16(uint16_t h) {
    return _cvtsh_ss(h);
}

static inline float hsum512(__m512 v) {
    return _mm512_reduce_add_ps(v);
}

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* [lo for lanes 0-7, hi for lanes 8-15] */
static inline __m512 two_scales(float lo, float hi) {
    return _mm512_insertf32x8(_mm512_set1_ps(lo), _mm256_set1_ps(hi), 1);
}

static inline __m512i join(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles first, then high nibbles. */
static inline __m256i unpack_nibbles(const uint8_t *p) {
    __m128i t = _mm_loadu_si128((const __m128i *)p);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

/* two 32-byte blocks side by side */
static inline __m512i load2(const int8_t *a, const int8_t *b) {
    return join(_mm256_loadu_si256((const __m256i *)a), _mm256_loadu_si256((const __m256i *)b));
}

/* sum((u - off) . y) per 4 bytes, for unsigned levels u */
static inline __m512i dot_off(__m512i u, __m512i y, __m512i off) {
    __m512i z = _mm512_setzero_si512();
    return _mm512_sub_epi32(_mm512_dpbusd_epi32(z, u, y), _mm512_dpbusd_epi32(z, off, y));
}

/* ---- one-block (256-bit) versions for an odd last block --------------- */

static inline __m256i dot_off256(__m256i u, __m256i y, __m256i off) {
    __m256i z = _mm256_setzero_si256();
    return _mm256_sub_epi32(_mm256_dpbusd_epi32(z, u, y), _mm256_dpbusd_epi32(z, off, y));
}

static inline __m256i i32_q8_0(const sp_block_q8_0 *x, const sp_block_q8_0 *y) {
    __m256i qx = _mm256_loadu_si256((const __m256i *)x->qs);
    __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(qx, qx),
                               _mm256_sign_epi8(qy, qx));
}

static inline __m256i i32_q4_0(const sp_block_q4_0 *x, const sp_block_q8_0 *y) {
    __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
    return dot_off256(unpack_nibbles(x->qs), qy, _mm256_set1_epi8(8));
}

static inline __m256i q5_levels(const sp_block_q5_0 *x) {
    uint32_t bits;
    memcpy(&bits, x->qh, 4);
    /* bit i of qh -> 0x10 in byte i, straight from a byte mask */
    return _mm256_or_si256(unpack_nibbles(x->qs),
                           _mm256_maskz_mov_epi8(bits, _mm256_set1_epi8(0x10)));
}

static inline __m256i i32_q5_0(const sp_block_q5_0 *x, const sp_block_q8_0 *y) {
    __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
    return dot_off256(q5_levels(x), qy, _mm256_set1_epi8(16));
}

static inline float last_block(__m256i i32, float d) {
    return d * hsum256(_mm256_cvtepi32_ps(i32));
}

/* ---- 32-wide types, two blocks per step ---------------------------------- */

static float dot_q8_0(int64_t n, const void *w, const void *xq) {
    const sp_block_q8_0 *x = w;
    const sp_block_q8_0 *y = xq;
    __m512 acc = _mm512_setzero_ps();
    int64_t nb = n / SP_QK, i = 0;
    for (; i + 1 < nb; i += 2) {
        __m512i qx = load2(x[i].qs, x[i + 1].qs);
        __m512i qy = load2(y[i].qs, y[i + 1].qs);
        /* negate y where x < 0, so that |x| . y' = x . y */
        __m512i sy = _mm512_mask_sub_epi8(qy, _mm512_movepi8_mask(qx), _mm512_setzero_si512(), qy);
        __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(qx), sy);
        __m512 d = two_scales(f16(x[i].d) * f16(y[i].d), f16(x[i + 1].d) * f16(y[i + 1].d));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc);
    }
    float sum = hsum512(acc);
    if (i < nb) sum += last_block(i32_q8_0(&x[i], &y[i]), f16(x[i].d) * f16(y[i].d));
    return sum;
}

static float dot_q4_0(int64_t n, const void *w, const void *xq) {
    const sp_block_q4_0 *x = w;
    const sp_block_q8_0 *y = xq;
    const __m512i off = _mm512_set1_epi8(8);
    __m512 acc = _mm512_setzero_ps();
    int64_t nb = n / SP_QK, i = 0;
    for (; i + 1 < nb; i += 2) {
        __m512i q = join(unpack_nibbles(x[i].qs), unpack_nibbles(x[i + 1].qs));
        __m512i p = dot_off(q, load2(y[i].qs, y[i + 1].qs), off);
        __m512 d = two_scales(f16(x[i].d) * f16(y[i].d), f16(x[i + 1].d) * f16(y[i + 1].d));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc);
    }
    float sum = hsum512(acc);
    if (i < nb) sum += last_block(i32_q4_0(&x[i], &y[i]), f16(x[i].d) * f16(y[i].d));
    return sum;
}

static float dot_q5_0(int64_t n, const void *w, const void *xq) {
    const sp_block_q5_0 *x = w;
    const sp_block_q8_0 *y = xq;
    const __m512i off = _mm512_set1_epi8(16);
    __m512 acc = _mm512_setzero_ps();
    int64_t nb = n / SP_QK, i = 0;
    for (; i + 1 < nb; i += 2) {
        __m512i q = join(q5_levels(&x[i]), q5_levels(&x[i + 1]));
        __m512i p = dot_off(q, load2(y[i].qs, y[i + 1].qs), off);
        __m512 d = two_scales(f16(x[i].d) * f16(y[i].d), f16(x[i + 1].d) * f16(y[i + 1].d));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc);
    }
    float sum = hsum512(acc);
    if (i < nb) sum += last_block(i32_q5_0(&x[i], &y[i]), f16(x[i].d) * f16(y[i].d));
    return sum;
}

static float dot_q4_1(int64_t n, const void *w, const void *xq) {
    const sp_block_q4_1 *x = w;
    const sp_block_q8_1 *y = xq;
    __m512 acc = _mm512_setzero_ps();
    float msum = 0.0f;
    int64_t nb = n / SP_QK, i = 0;
    for (; i + 1 < nb; i += 2) {
        __m512i q = join(unpack_nibbles(x[i].qs), unpack_nibbles(x[i + 1].qs));
        __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, load2(y[i].qs, y[i + 1].qs));
        __m512 d = two_scales(f16(x[i].d) * f16(y[i].d), f16(x[i + 1].d) * f16(y[i + 1].d));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc);
        msum += f16(x[i].m) * f16(y[i].s) + f16(x[i + 1].m) * f16(y[i + 1].s);
    }
    float sum = hsum512(acc);
    if (i < nb) {
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), unpack_nibbles(x[i].qs), qy);
        sum += last_block(p, f16(x[i].d) * f16(y[i].d));
        msum += f16(x[i].m) * f16(y[i].s);
    }
    return sum + msum;
}

/* ---- k-quants ---------------------------------------------------------------- */

/* Same unpacking as sp_kq_scale_min, four sub-blocks at a time. */
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

/* sum_j m_j * (activation sum of sub-block j), as 8 int32 lanes */
static inline __m256i kq_min_sums(const uint8_t m[8], const int16_t *bsums) {
    __m128i m8 = _mm_loadl_epi64((const __m128i *)m);
    __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8)); /* m0 m0 m1 m1 ... */
    return _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)bsums), m16);
}

/* int16 scale a in lanes 0-15, b in lanes 16-31 */
static inline __m512i two_scales16(int a, int b) {
    return join(_mm256_set1_epi16((int16_t)a), _mm256_set1_epi16((int16_t)b));
}

static inline float dot_kq(int64_t n, const uint8_t *w, size_t stride, const void *xq, int five) {
    const sp_block_q8_k *y = xq;
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SP_QKK; i++, w += stride) {
        const sp_block_q4_k *b4 = (const sp_block_q4_k *)w;
        const sp_block_q5_k *b5 = (const sp_block_q5_k *)w;
        const uint8_t *qs = five ? b5->qs : b4->qs;
        uint8_t sc[8], m[8];
        kq_scales(b4->scales, sc, m);
        __m512i qh = five ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)b5->qh))
                          : _mm512_setzero_si512();
        __m512i sumi = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
            /* lanes 0-31: sub-block 2c (low nibbles); 32-63: 2c+1 (high) */
            __m512i u = _mm512_and_si512(join(q, _mm256_srli_epi16(q, 4)), low4);
            if (five) { /* bit 2c of qh[l] for the low half, 2c+1 for the high half */
                __m512i sel = join(_mm256_set1_epi8((char)(1 << (2 * c))),
                                   _mm256_set1_epi8((char)(1 << (2 * c + 1))));
                __mmask64 hb = _mm512_test_epi8_mask(qh, sel);
                u = _mm512_mask_add_epi8(u, hb, u, _mm512_set1_epi8(16));
            }
            __m512i yq = _mm512_loadu_si512((const void *)(y[i].qs + 64 * c));
            __m512i p = _mm512_maddubs_epi16(u, yq);
            sumi = _mm512_dpwssd_epi32(sumi, p, two_scales16(sc[2 * c], sc[2 * c + 1]));
        }
        float d = y[i].d * f16(b4->d), dmin = y[i].d * f16(b4->dmin);
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
        accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(kq_min_sums(m, y[i].bsums)),
                               accm);
    }
    return hsum512(acc) - hsum256(accm);
}

static float dot_q4_k(int64_t n, const void *w, const void *xq) {
    return dot_kq(n, w, sizeof(sp_block_q4_k), xq, 0);
}

static float dot_q5_k(int64_t n, const void *w, const void *xq) {
    return dot_kq(n, w, sizeof(sp_block_q5_k), xq, 1);
}

/* Q6_K: a zmm holds two quarters of 32 values of one half (128 values):
 * ql bytes 64h..64h+63 give quarters 0,1 (low nibbles) and 2,3 (high
 * nibbles); quarter k takes bits 2k,2k+1 of qh[32h+l]. The -32 offset is
 * applied through the activation group sums, as in the AVX2 kernel. */
static float dot_q6_k(int64_t n, const void *w, const void *xq) {
    const sp_block_q6_k *x = w;
    const sp_block_q8_k *y = xq;
    const __m512i low4 = _mm512_set1_epi8(0x0f), two_bits = _mm512_set1_epi8(3);
    /* per-half shifts of qh: quarters (0,1) -> 0,2; quarters (2,3) -> 4,6 */
    const __m512i sh01 = join(_mm256_set1_epi16(0), _mm256_set1_epi16(2));
    const __m512i sh23 = join(_mm256_set1_epi16(4), _mm256_set1_epi16(6));
    /* vpermw indices that broadcast scale g to the 8 int16 lanes of 128-bit lane g%4 */
    const __m512i idx_lo =
        _mm512_set_epi64(0x0003000300030003, 0x0003000300030003, 0x0002000200020002,
                         0x0002000200020002, 0x0001000100010001, 0x0001000100010001, 0, 0);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / SP_QKK; i++) {
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), sc16);
        __m512i scz = _mm512_castsi256_si512(sc16);
        __m512i sumi = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            __m512i l = _mm512_loadu_si512((const void *)(x[i].ql + 64 * h));
            __m512i qh =
                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h)));
            __m512i h01 = _mm512_and_si512(_mm512_srlv_epi16(qh, sh01), two_bits);
            __m512i h23 = _mm512_and_si512(_mm512_srlv_epi16(qh, sh23), two_bits);
            __m512i u01 = _mm512_or_si512(_mm512_and_si512(l, low4), _mm512_slli_epi16(h01, 4));
            __m512i u23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low4),
                                          _mm512_slli_epi16(h23, 4));
            const int8_t *yq = y[i].qs + 128 * h;
            __m512i p01 = _mm512_maddubs_epi16(u01, _mm512_loadu_si512((const void *)yq));
            __m512i p23 = _mm512_maddubs_epi16(u23, _mm512_loadu_si512((const void *)(yq + 64)));
            /* groups 8h..8h+3 and 8h+4..8h+7 */
            __m512i g01 = _mm512_add_epi16(idx_lo, _mm512_set1_epi16((short)(8 * h)));
            __m512i g23 = _mm512_add_epi16(idx_lo, _mm512_set1_epi16((short)(8 * h + 4)));
            sumi = _mm512_dpwssd_epi32(sumi, p01, _mm512_permutexvar_epi16(g01, scz));
            sumi = _mm512_dpwssd_epi32(sumi, p23, _mm512_permutexvar_epi16(g23, scz));
        }
        sumi = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(_mm256_slli_epi32(off, 5)));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(y[i].d * f16(x[i].d)), _mm512_cvtepi32_ps(sumi), acc);
    }
    return hsum512(acc);
}

static const sp_quant_kernels k_q8_0 = {SP_Q8_0, sp_quant_act_q8_0_avx2, dot_q8_0};
static const sp_quant_kernels k_q4_0 = {SP_Q8_0, sp_quant_act_q8_0_avx2, dot_q4_0};
static const sp_quant_kernels k_q4_1 = {SP_Q8_1, sp_quant_act_q8_1_avx2, dot_q4_1};
static const sp_quant_kernels k_q5_0 = {SP_Q8_0, sp_quant_act_q8_0_avx2, dot_q5_0};
static const sp_quant_kernels k_q4_k = {SP_Q8_K, sp_quant_act_q8_k_avx2, dot_q4_k};
static const sp_quant_kernels k_q5_k = {SP_Q8_K, sp_quant_act_q8_k_avx2, dot_q5_k};
static const sp_quant_kernels k_q6_k = {SP_Q8_K, sp_quant_act_q8_k_avx2, dot_q6_k};

const sp_quant_kernels *sp_quant_avx512_table(sp_dtype t) {
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
