/* AVX2 + FMA + F16C kernels (8 f32 lanes). Built with -mavx2 -mfma -mf16c;
 * only ever called after ops.c has checked CPUID. Loop tails use masked
 * loads/stores so every element goes through the same vector arithmetic. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "compute/kernels.h"
#include "compute/quant_internal.h"

#define INLINE static inline __attribute__((always_inline))

INLINE __m256i tail_mask(int rem) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Full vectors load and store plainly; only the tail is masked (AMD's
 * vmaskmovps store is microcoded and many times slower). */
INLINE __m256 load_n(const float *p, int rem) {
    return rem >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask(rem));
}

INLINE void store_n(float *p, int rem, __m256 v) {
    if (rem >= 8)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, tail_mask(rem), v);
}

INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* e^x, Cephes-style: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial in r,
 * then scale by 2^n through the exponent bits. About 1-2 ulp. Inputs are
 * clamped to the finite range (exp(-87.3) ~ 1e-38 stands in for 0). */
INLINE __m256 exp256(__m256 x) {
    x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365447504019f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* tanh: odd Taylor polynomial below |x| = 0.25 (where 1 - e^-2x would lose
 * relative precision), (1 - e)/(1 + e) with e = e^-2|x| above. */
INLINE __m256 tanh256(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 a = _mm256_andnot_ps(sign, x);
    __m256 e = exp256(_mm256_mul_ps(a, _mm256_set1_ps(-2.0f)));
    __m256 one = _mm256_set1_ps(1.0f);
    __m256 big = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
    __m256 a2 = _mm256_mul_ps(a, a);
    __m256 p = _mm256_set1_ps(-1382.0f / 155925.0f);
    p = _mm256_fmadd_ps(p, a2, _mm256_set1_ps(62.0f / 2835.0f));
    p = _mm256_fmadd_ps(p, a2, _mm256_set1_ps(-17.0f / 315.0f));
    p = _mm256_fmadd_ps(p, a2, _mm256_set1_ps(2.0f / 15.0f));
    p = _mm256_fmadd_ps(p, a2, _mm256_set1_ps(-1.0f / 3.0f));
    __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, a2), a, a);
    __m256 t = _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.25f), _CMP_LT_OQ));
    return _mm256_or_ps(t, _mm256_and_ps(x, sign));
}

static float dot_f32(const float *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i < n; i += 8) {
        int rem = n - i;
        s0 = _mm256_fmadd_ps(load_n(a + i, rem), load_n(b + i, rem), s0);
    }
    return hsum(_mm256_add_ps(s0, s1));
}

static void axpy(float *y, float a, const float *x, int n) {
    __m256 av = _mm256_set1_ps(a);
    for (int i = 0; i < n; i += 8) {
        int rem = n - i;
        __m256 v = _mm256_fmadd_ps(av, load_n(x + i, rem), load_n(y + i, rem));
        store_n(y + i, rem, v);
    }
}

static void scale(float *y, float a, int n) {
    __m256 av = _mm256_set1_ps(a);
    for (int i = 0; i < n; i += 8) {
        int rem = n - i;
        store_n(y + i, rem, _mm256_mul_ps(av, load_n(y + i, rem)));
    }
}

/* The sum of squares in double, as the scalar kernel does (why: there). */
static void rmsnorm(float *y, const float *x, const float *w, int n, float eps, int one_plus) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (int i = 0; i < n; i += 8) {
        __m256 v = load_n(x + i, n - i);
        __m256 p = _mm256_mul_ps(v, v);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
    }
    double part[4];
    _mm256_storeu_pd(part, _mm256_add_pd(s0, s1));
    float mean = (float)((part[0] + part[1] + part[2] + part[3]) / n);
    __m256 r = _mm256_set1_ps(1.0f / sqrtf(mean + eps));
    __m256 one = _mm256_set1_ps(1.0f);
    for (int i = 0; i < n; i += 8) {
        int rem = n - i;
        __m256 v = _mm256_mul_ps(load_n(x + i, rem), r);
        if (w) {
            __m256 wv = load_n(w + i, rem);
            v = _mm256_mul_ps(v, one_plus ? _mm256_add_ps(one, wv) : wv);
        }
        store_n(y + i, rem, v);
    }
}

/* Half-split pairs are contiguous in both halves: 8 pairs per vector. The
 * interleaved layout is a small fraction of the step; it stays scalar. */
static void rope(float *x, int n_heads, int head_dim, int rot_dim, int n_pairs, const float *cos,
                 const float *sin, int interleaved) {
    if (interleaved) {
        sp_kernels_scalar.rope(x, n_heads, head_dim, rot_dim, n_pairs, cos, sin, 1);
        return;
    }
    int half = rot_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < n_pairs; i += 8) {
            int rem = n_pairs - i;
            __m256 a = load_n(v + i, rem), b = load_n(v + i + half, rem);
            __m256 c = load_n(cos + i, rem), s = load_n(sin + i, rem);
            store_n(v + i, rem, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)));
            store_n(v + i + half, rem, _mm256_fmadd_ps(a, s, _mm256_mul_ps(b, c)));
        }
    }
}

static void softmax(float *x, int n) {
    if (n <= 0) return;
    __m256 mv = _mm256_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 8) {
        int rem = n - i;
        __m256i m = tail_mask(rem);
        __m256 v = _mm256_blendv_ps(mv, load_n(x + i, rem), _mm256_castsi256_ps(m));
        mv = _mm256_max_ps(mv, v);
    }
    __m256 mx = _mm256_set1_ps(hmax(mv)), s = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) {
        int rem = n - i;
        __m256i m = tail_mask(rem);
        __m256 e = exp256(_mm256_sub_ps(load_n(x + i, rem), mx));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(m));
        store_n(x + i, rem, e);
        s = _mm256_add_ps(s, e);
    }
    scale(x, 1.0f / hsum(s), n);
}

static void silu_mul(float *g, const float *u, int n) {
    __m256 one = _mm256_set1_ps(1.0f);
    for (int i = 0; i < n; i += 8) {
        int rem = n - i;
        __m256 x = load_n(g + i, rem);
        __m256 d = _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), x)));
        store_n(g + i, rem, _mm256_mul_ps(_mm256_div_ps(x, d), load_n(u + i, rem)));
    }
}

static void gelu_tanh_mul(float *g, const float *u, int n) {
    const __m256 k = _mm256_set1_ps(0.7978845608028654f), c = _mm256_set1_ps(0.044715f);
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    for (int i = 0; i < n; i += 8) {
        int rem = n - i;
        __m256 x = load_n(g + i, rem);
        __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
        __m256 t = tanh256(_mm256_mul_ps(k, _mm256_fmadd_ps(c, x3, x)));
        __m256 y = _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, t));
        store_n(g + i, rem, _mm256_mul_ps(y, load_n(u + i, rem)));
    }
}

static void softcap(float *x, int n, float cap) {
    __m256 c = _mm256_set1_ps(cap), ic = _mm256_set1_ps(1.0f / cap);
    for (int i = 0; i < n; i += 8) {
        int rem = n - i;
        __m256 v = load_n(x + i, rem);
        store_n(x + i, rem, _mm256_mul_ps(c, tanh256(_mm256_mul_ps(v, ic))));
    }
}

/* ---- attention helpers ----------------------------------------------------- */

static float exp_shift_sum(float *x, int n, float m) {
    __m256 mv = _mm256_set1_ps(m), s = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) {
        int rem = n - i;
        __m256 e = exp256(_mm256_sub_ps(load_n(x + i, rem), mv));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(tail_mask(rem)));
        store_n(x + i, rem, e);
        s = _mm256_add_ps(s, e);
    }
    return hsum(s);
}

/* Eight sums at once: lane i of the result is the sum of the lanes of a[i]. */
INLINE __m256 hsum8(const __m256 a[8]) {
    __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                         _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* Eight keys at a time: eight independent FMA chains (one dot_f32 per key
 * waits on its own chain and horizontal sum), one reduction for all eight. */
static void dot_rows(float *s, const float *q, const float *const *rows, int n, int dim) {
    int j = 0;
    if (dim % 8 == 0)
        for (; j + 8 <= n; j += 8) {
            __m256 a[8];
            for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();
            for (int d = 0; d < dim; d += 8) {
                __m256 qv = _mm256_loadu_ps(q + d);
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++)
                    a[i] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(rows[j + i] + d), a[i]);
            }
            _mm256_storeu_ps(s + j, hsum8(a));
        }
    for (; j < n; j++) s[j] = dot_f32(q, rows[j], dim);
}

/* 64 (then 32) lanes of the output at a time stay in registers while the n
 * value rows stream past (L1: a chunk of keys is a few KiB); eight chains
 * keep both FMA pipes busy. */
static void weighted_rows(float *acc, const float *p, const float *const *rows, int n, int dim) {
    int d = 0;
    for (; d + 64 <= dim; d += 64) {
        __m256 a[8];
        for (int i = 0; i < 8; i++) a[i] = _mm256_loadu_ps(acc + d + 8 * i);
        for (int j = 0; j < n; j++) {
            __m256 pj = _mm256_broadcast_ss(p + j);
            const float *r = rows[j] + d;
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++)
                a[i] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(r + 8 * i), a[i]);
        }
        for (int i = 0; i < 8; i++) _mm256_storeu_ps(acc + d + 8 * i, a[i]);
    }
    for (; d + 32 <= dim; d += 32) {
        __m256 a0 = _mm256_loadu_ps(acc + d), a1 = _mm256_loadu_ps(acc + d + 8);
        __m256 a2 = _mm256_loadu_ps(acc + d + 16), a3 = _mm256_loadu_ps(acc + d + 24);
        for (int j = 0; j < n; j++) {
            __m256 pj = _mm256_broadcast_ss(p + j);
            const float *r = rows[j] + d;
            a0 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(r), a0);
            a1 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(r + 8), a1);
            a2 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(r + 16), a2);
            a3 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(r + 24), a3);
        }
        _mm256_storeu_ps(acc + d, a0);
        _mm256_storeu_ps(acc + d + 8, a1);
        _mm256_storeu_ps(acc + d + 16, a2);
        _mm256_storeu_ps(acc + d + 24, a3);
    }
    for (; d < dim; d += 8) {
        int rem = dim - d;
        __m256 a = load_n(acc + d, rem);
        for (int j = 0; j < n; j++)
            a = _mm256_fmadd_ps(_mm256_broadcast_ss(p + j), load_n(rows[j] + d, rem), a);
        store_n(acc + d, rem, a);
    }
}

/* ---- GEMM: register tiles of R weight rows x C tokens ---------------------- */

INLINE __m256 load_w8(sp_dtype wt, const char *row, int k) {
    if (wt == SP_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * (size_t)k)));
    if (wt == SP_BF16) {
        __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(row + 2 * (size_t)k)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
    }
    return _mm256_loadu_ps((const float *)row + k);
}

INLINE float load_w1(sp_dtype wt, const char *row, int k) {
    if (wt == SP_F16) return _cvtsh_ss(((const uint16_t *)row)[k]);
    if (wt == SP_BF16) return sp_bf16_to_f32(((const uint16_t *)row)[k]);
    return ((const float *)row)[k];
}

/* One R x C tile over n values; R, C and wt are compile-time constants at
 * every call site so the accumulators live in registers. */
/* Decode reads each weight once: while a tile streams its R rows, the
 * next tile's rows (next, when the call has them) are asked into L2 (Zen 4,
 * bench/bench_decode_bw.c, 2 threads, share of a plain read: F16 75% -> 106-110%,
 * BF16 70-71% -> 106-108%). */
INLINE void prefetch_rows(int R, const char *next, size_t ws, size_t off) {
    if (next && off % 64 == 0)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) _mm_prefetch(next + r * ws + off, _MM_HINT_T1);
}

INLINE void tile(sp_dtype wt, int R, int C, int n, const char *w, size_t ws, const float *x,
                 size_t xs, float *y, size_t ys, const char *next) {
    __m256 acc[4][3];
    size_t esz = wt == SP_F32 ? 4 : 2;
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 xv[3];
        prefetch_rows(R, next, ws, (size_t)k * esz);
#pragma GCC unroll 3
        for (int c = 0; c < C; c++) xv[c] = _mm256_loadu_ps(x + c * xs + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 wv = load_w8(wt, w + r * ws, k);
#pragma GCC unroll 3
            for (int c = 0; c < C; c++) acc[r][c] = _mm256_fmadd_ps(wv, xv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int c = 0; c < C; c++) {
            float s = hsum(acc[r][c]);
            for (int j = k; j < n; j++) s += load_w1(wt, w + r * ws, j) * x[c * xs + j];
            y[c * ys + r] += s;
        }
}

#define GEMM_FOR_TYPE(NAME, WT)                                                                    \
    static void NAME(int rows, int toks, int n, const char *w, size_t ws, const float *x,          \
                     size_t xs, float *y, size_t ys) {                                             \
        int r = 0;                                                                                 \
        for (; r + 4 <= rows; r += 4) {                                                            \
            const char *wr = w + r * ws, *nx = r + 8 <= rows ? wr + 4 * ws : NULL;                 \
            int t = 0;                                                                             \
            for (; t + 3 <= toks; t += 3, nx = NULL)                                               \
                tile(WT, 4, 3, n, wr, ws, x + t * xs, xs, y + t * ys + r, ys, nx);                 \
            if (toks - t == 2) tile(WT, 4, 2, n, wr, ws, x + t * xs, xs, y + t * ys + r, ys, nx);  \
            if (toks - t == 1) tile(WT, 4, 1, n, wr, ws, x + t * xs, xs, y + t * ys + r, ys, nx);  \
        }                                                                                          \
        for (; r < rows; r++) {                                                                    \
            const char *wr = w + r * ws;                                                           \
            int t = 0;                                                                             \
            for (; t + 3 <= toks; t += 3)                                                          \
                tile(WT, 1, 3, n, wr, ws, x + t * xs, xs, y + t * ys + r, ys, NULL);               \
            if (toks - t == 2)                                                                     \
                tile(WT, 1, 2, n, wr, ws, x + t * xs, xs, y + t * ys + r, ys, NULL);               \
            if (toks - t == 1)                                                                     \
                tile(WT, 1, 1, n, wr, ws, x + t * xs, xs, y + t * ys + r, ys, NULL);               \
        }                                                                                          \
    }

GEMM_FOR_TYPE(gemm_f32, SP_F32)
GEMM_FOR_TYPE(gemm_f16, SP_F16)
GEMM_FOR_TYPE(gemm_bf16, SP_BF16)

static void gemm(sp_dtype wt, int rows, int toks, int n, const void *w, size_t w_stride,
                 const float *x, size_t x_stride, float *y, size_t y_stride) {
    if (wt == SP_F16)
        gemm_f16(rows, toks, n, w, w_stride, x, x_stride, y, y_stride);
    else if (wt == SP_BF16)
        gemm_bf16(rows, toks, n, w, w_stride, x, x_stride, y, y_stride);
    else
        gemm_f32(rows, toks, n, w, w_stride, x, x_stride, y, y_stride);
}

/* ---- packed-panel GEMM (prefill) -------------------------------------------- */

/* 8x8 transpose of r[0..7] in registers. */
INLINE void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

static void pack_panel(sp_dtype wt, int rows, int n, const void *src, size_t ss, float *p) {
    const char *w = src;
    int k = 0;
    for (; k + 8 <= n; k += 8)
        for (int h = 0; h < SP_PANEL; h += 8) { /* rows h..h+7, values k..k+7 */
            __m256 r[8];
            for (int i = 0; i < 8; i++)
                r[i] =
                    h + i < rows ? load_w8(wt, w + (size_t)(h + i) * ss, k) : _mm256_setzero_ps();
            transpose8(r);
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(p + (size_t)(k + i) * SP_PANEL + h, r[i]);
        }
    for (; k < n; k++)
        for (int r = 0; r < SP_PANEL; r++)
            p[(size_t)k * SP_PANEL + r] = r < rows ? load_w1(wt, w + (size_t)r * ss, k) : 0.0f;
}

/* C tokens x 16 rows; C is a compile-time constant at every call site. x is
 * one group of SP_PGROUP tokens, k-major: the C broadcasts of a step read
 * one 24-byte run, not C rows a row stride apart (10% more FLOP/s in L1). */
INLINE void panel_tile(int C, int rows, int n, const float *p, const float *x, float *y,
                       size_t ys) {
    __m256 acc[SP_PGROUP][2];
#pragma GCC unroll 6
    for (int c = 0; c < C; c++) acc[c][0] = acc[c][1] = _mm256_setzero_ps();
    for (int k = 0; k < n; k++) {
        __m256 w0 = _mm256_loadu_ps(p + (size_t)k * SP_PANEL);
        __m256 w1 = _mm256_loadu_ps(p + (size_t)k * SP_PANEL + 8);
#pragma GCC unroll 6
        for (int c = 0; c < C; c++) {
            __m256 xv = _mm256_broadcast_ss(x + (size_t)k * SP_PGROUP + c);
            acc[c][0] = _mm256_fmadd_ps(w0, xv, acc[c][0]);
            acc[c][1] = _mm256_fmadd_ps(w1, xv, acc[c][1]);
        }
    }
#pragma GCC unroll 6
    for (int c = 0; c < C; c++) {
        float *yc = y + c * ys;
        if (rows == SP_PANEL) {
            _mm256_storeu_ps(yc, _mm256_add_ps(_mm256_loadu_ps(yc), acc[c][0]));
            _mm256_storeu_ps(yc + 8, _mm256_add_ps(_mm256_loadu_ps(yc + 8), acc[c][1]));
        } else {
            float a[SP_PANEL];
            _mm256_storeu_ps(a, acc[c][0]);
            _mm256_storeu_ps(a + 8, acc[c][1]);
            for (int r = 0; r < rows; r++) yc[r] += a[r];
        }
    }
}

_Static_assert(SP_PGROUP == 6, "panel_tile's register tile is 6 tokens x 16 rows");

static void gemm_panel(int rows, int toks, int n, const float *p, const float *x, size_t xgs,
                       float *y, size_t ys) {
    int t = 0;
    for (; t + 6 <= toks; t += 6) panel_tile(6, rows, n, p, x + t / 6 * xgs, y + t * ys, ys);
    const float *xt = x + t / 6 * xgs;
    switch (toks - t) {
    case 5:
        panel_tile(5, rows, n, p, xt, y + t * ys, ys);
        break;
    case 4:
        panel_tile(4, rows, n, p, xt, y + t * ys, ys);
        break;
    case 3:
        panel_tile(3, rows, n, p, xt, y + t * ys, ys);
        break;
    case 2:
        panel_tile(2, rows, n, p, xt, y + t * ys, ys);
        break;
    case 1:
        panel_tile(1, rows, n, p, xt, y + t * ys, ys);
        break;
    default:
        break;
    }
}

/* ---- integer prefill GEMM (Q8_0 / Q4_0 weights, Q8_0 activations) ------------ */

/* In place, each 4-byte group (v0, v1, v2, v3) of int8 -> int16 pairs:
 * lo: (v0, v2), hi: (v1, v3) (kernels.h: the pair order of a block). */
INLINE __m256i pairs_lo(__m256i q) {
    return _mm256_srai_epi16(_mm256_slli_epi16(q, 8), 8);
}

INLINE __m256i pairs_hi(__m256i q) {
    return _mm256_srai_epi16(q, 8);
}

/* Row i of 8 as one 32-byte block of int8 values: Q8_0 as stored, Q4_0's
 * nibbles unpacked (value j: low nibble of qs[j], j+16: high) minus 8. */
INLINE __m256i row_q8(sp_dtype wt, const char *blk, float *d, int off) {
    if (wt == SP_Q8_0) {
        const sp_block_q8_0 *b = (const sp_block_q8_0 *)blk;
        *d = sp_q_f16(b->d);
        return _mm256_loadu_si256((const __m256i *)b->qs);
    }
    const sp_block_q4_0 *b = (const sp_block_q4_0 *)blk;
    *d = sp_q_f16(b->d);
    __m128i v = _mm_loadu_si128((const __m128i *)b->qs), m = _mm_set1_epi8(0x0f);
    __m256i q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
    return _mm256_sub_epi8(q, _mm256_set1_epi8((char)off));
}

/* Block b of 8 rows as 8 vectors of 4-byte groups: q[c] holds every row's
 * values 4c..4c+3 (row i in 32-bit lane i); d: the rows' scales. */
static void quads_plain(sp_dtype wt, int rows, const char *w, size_t ws, int b, __m256i q[8],
                        float d[8], int off) {
    size_t bb = wt == SP_Q8_0 ? sizeof(sp_block_q8_0) : sizeof(sp_block_q4_0);
    __m256 r[8];
    for (int i = 0; i < 8; i++) {
        d[i] = 0.0f;
        r[i] =
            i < rows
                ? _mm256_castsi256_ps(row_q8(wt, w + (size_t)i * ws + (size_t)b * bb, &d[i], off))
                : _mm256_setzero_ps();
    }
    transpose8(r);
    for (int c = 0; c < 8; c++) q[c] = _mm256_castps_si256(r[c]);
}

/* The same from a packed group of 8 rows (quant.h): its 4-byte groups are
 * already interleaved by row. */
static void quads_packed(sp_dtype wt, const char *g, int nb, int b, __m256i q[8], float d[8],
                         int off) {
    int qb = wt == SP_Q8_0 ? SP_QK : SP_QK / 2;
    const char *blk = g + (size_t)b * (8 * qb + 16); /* quants, then the 8 rows' scales */
    const uint16_t *dd = (const uint16_t *)(blk + 8 * qb);
    (void)nb;
    _mm256_storeu_ps(d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dd)));
    if (wt == SP_Q8_0) {
        for (int c = 0; c < 8; c++) q[c] = _mm256_loadu_si256((const __m256i *)(blk + 32 * c));
        return;
    }
    const __m256i m = _mm256_set1_epi8(0x0f), eight = _mm256_set1_epi8((char)off);
    for (int c = 0; c < 4; c++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 32 * c));
        q[c] = _mm256_sub_epi8(_mm256_and_si256(v, m), eight);
        q[c + 4] = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(v, 4), m), eight);
    }
}

static int ipack(sp_dtype wt, int packed, int rows, const void *w, size_t ws, int nb_row, int b0,
                 int nblk, int16_t *p, float *pd) {
    if (wt != SP_Q8_0 && wt != SP_Q4_0) return 0;
    for (int h = 0; h < SP_PANEL; h += 8) {
        int hr = rows - h < 8 ? rows - h : 8;
        for (int b = 0; b < nblk; b++) {
            __m256i q[8];
            float *d = pd + (size_t)b * SP_PANEL + h;
            if (hr <= 0) {
                for (int c = 0; c < 8; c++) q[c] = _mm256_setzero_si256();
                for (int i = 0; i < 8; i++) d[i] = 0.0f;
            } else if (packed) {
                quads_packed(wt, (const char *)w + (size_t)h * ws, nb_row, b0 + b, q, d, 8);
            } else {
                quads_plain(wt, hr, (const char *)w + (size_t)h * ws, ws, b0 + b, q, d, 8);
            }
            int16_t *pb = p + (size_t)b * 16 * SP_PANEL * 2 + 2 * h;
            for (int c = 0; c < 8; c++) {
                _mm256_storeu_si256((__m256i *)(pb + (size_t)c * SP_PANEL * 2), pairs_lo(q[c]));
                _mm256_storeu_si256((__m256i *)(pb + (size_t)(8 + c) * SP_PANEL * 2),
                                    pairs_hi(q[c]));
            }
        }
    }
    return 1;
}

static void iact(const void *q, int n, int c, int32_t *xg, float *xd) {
    const sp_block_q8_0 *blk = q;
    for (int b = 0; b < n / SP_QK; b++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)blk[b].qs);
        int32_t s[16];
        _mm256_storeu_si256((__m256i *)s, pairs_lo(v));
        _mm256_storeu_si256((__m256i *)(s + 8), pairs_hi(v));
        int32_t *o = xg + (size_t)b * 16 * SP_IGROUP + c;
        for (int i = 0; i < 16; i++) o[i * SP_IGROUP] = s[i];
        xd[(size_t)b * SP_IGROUP + c] = sp_q_f16(blk[b].d);
    }
}

/* C (3) tokens x 16 rows of a token group (xg, xd already at token c0 of
 * it); y has C rows of 16 columns. Per block: 16 pair steps of 2 weight
 * loads, C broadcasts, 2C vpmaddwd and 2C adds into int32 registers (C = 3
 * keeps accumulators, weights and temporaries in the 16 ymm registers),
 * then one scale step into y (in L1). */
INLINE void itile(int C, int nblk, const int16_t *p, const float *pd, const int32_t *xg,
                  const float *xd, float *y, size_t ys) {
    __m256 f[3][2];
    for (int c = 0; c < C; c++) f[c][0] = f[c][1] = _mm256_setzero_ps();
    for (int b = 0; b < nblk; b++) {
        __m256i acc[3][2];
        for (int c = 0; c < C; c++) acc[c][0] = acc[c][1] = _mm256_setzero_si256();
        const int16_t *pb = p + (size_t)b * 16 * SP_PANEL * 2;
        const int32_t *xb = xg + (size_t)b * 16 * SP_IGROUP;
#pragma GCC unroll 4
        for (int s = 0; s < 16; s++) {
            __m256i w0 = _mm256_loadu_si256((const __m256i *)(pb + s * SP_PANEL * 2));
            __m256i w1 = _mm256_loadu_si256((const __m256i *)(pb + s * SP_PANEL * 2 + 16));
#pragma GCC unroll 3
            for (int c = 0; c < C; c++) {
                /* a float broadcast is a pure load on AMD (no ALU uop) */
                __m256i xv = _mm256_castps_si256(
                    _mm256_broadcast_ss((const float *)(xb + s * SP_IGROUP + c)));
                acc[c][0] = _mm256_add_epi32(acc[c][0], _mm256_madd_epi16(w0, xv));
                acc[c][1] = _mm256_add_epi32(acc[c][1], _mm256_madd_epi16(w1, xv));
            }
        }
        __m256 d0 = _mm256_loadu_ps(pd + (size_t)b * SP_PANEL);
        __m256 d1 = _mm256_loadu_ps(pd + (size_t)b * SP_PANEL + 8);
#pragma GCC unroll 3
        for (int c = 0; c < C; c++) {
            __m256 dx = _mm256_broadcast_ss(xd + (size_t)b * SP_IGROUP + c);
            f[c][0] =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[c][0]), _mm256_mul_ps(d0, dx), f[c][0]);
            f[c][1] =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[c][1]), _mm256_mul_ps(d1, dx), f[c][1]);
        }
    }
#pragma GCC unroll 3
    for (int c = 0; c < C; c++) {
        float *yc = y + c * ys;
        _mm256_storeu_ps(yc, _mm256_add_ps(_mm256_loadu_ps(yc), f[c][0]));
        _mm256_storeu_ps(yc + 8, _mm256_add_ps(_mm256_loadu_ps(yc + 8), f[c][1]));
    }
}

/* One token group: two tiles of 3 tokens. */
static void igroup(int nblk, const int16_t *p, const float *pd, const int32_t *xg, const float *xd,
                   float *y, size_t ys) {
    itile(3, nblk, p, pd, xg, xd, y, ys);
    itile(3, nblk, p, pd, xg + 3, xd + 3, y + 3 * ys, ys);
}

static void igemm(int rows, int toks, int nblk, const int16_t *p, const float *pd,
                  const int32_t *xg, size_t xg_stride, const float *xd, size_t xd_stride, float *y,
                  size_t ys) {
    for (int t = 0; t < toks; t += SP_IGROUP, xg += xg_stride, xd += xd_stride) {
        int C = toks - t < SP_IGROUP ? toks - t : SP_IGROUP;
        if (C == SP_IGROUP && rows == SP_PANEL) {
            igroup(nblk, p, pd, xg, xd, y + (size_t)t * ys, ys);
            continue;
        }
        float tmp[SP_IGROUP * SP_PANEL] = {0}; /* partial tile: rows or tokens past the end */
        igroup(nblk, p, pd, xg, xd, tmp, SP_PANEL);
        for (int c = 0; c < C; c++)
            for (int r = 0; r < rows; r++) y[(size_t)(t + c) * ys + r] += tmp[c * SP_PANEL + r];
    }
}

/* ---- Q4_0 prefill on unsigned nibbles ---------------------------------------
 * vpmaddubsw multiplies the unsigned nibbles (0..15) by the signed int8
 * activations, 32 products per instruction into int16 pairs; |pair| <=
 * 2 * 15 * 127, so a whole block's 8 steps add up in int16 without overflow
 * and one vpmaddwd per block widens them. The nibbles' offset of 8 comes
 * back as -8 * (sum of the block's activations), prepared with them. */

static int ipack4(int packed, int rows, const void *w, size_t ws, int nb_row, int b0, int nblk,
                  uint8_t *p, float *pd) {
    for (int h = 0; h < SP_PANEL; h += 8) {
        int hr = rows - h < 8 ? rows - h : 8;
        for (int b = 0; b < nblk; b++) {
            __m256i q[8];
            float *d = pd + (size_t)b * SP_PANEL + h;
            if (hr <= 0) {
                for (int c = 0; c < 8; c++) q[c] = _mm256_setzero_si256();
                for (int i = 0; i < 8; i++) d[i] = 0.0f;
            } else if (packed) {
                quads_packed(SP_Q4_0, (const char *)w + (size_t)h * ws, nb_row, b0 + b, q, d, 0);
            } else {
                quads_plain(SP_Q4_0, hr, (const char *)w + (size_t)h * ws, ws, b0 + b, q, d, 0);
            }
            uint8_t *pb = p + (size_t)b * 8 * SP_PANEL * 4 + 4 * h;
            for (int c = 0; c < 8; c++)
                _mm256_storeu_si256((__m256i *)(pb + (size_t)c * SP_PANEL * 4), q[c]);
        }
    }
    return 1;
}

static void iact4(const void *q, int n, int c, int32_t *xg, float *xd) {
    const sp_block_q8_0 *blk = q;
    for (int b = 0; b < n / SP_QK; b++) {
        int32_t s[8];
        memcpy(s, blk[b].qs, sizeof s);
        int32_t *o = xg + (size_t)b * 9 * SP_IGROUP + c;
        for (int i = 0; i < 8; i++) o[i * SP_IGROUP] = s[i];
        int sum = 0;
        for (int i = 0; i < SP_QK; i++) sum += blk[b].qs[i];
        o[8 * SP_IGROUP] = -8 * sum;
        xd[(size_t)b * SP_IGROUP + c] = sp_q_f16(blk[b].d);
    }
}

/* C (3) tokens x 16 rows; y has C rows of 16 columns. Each block's sums are
 * scaled into y (in L1) at once: keeping f32 sums in registers as well
 * spills (measured slower). */
INLINE void itile4(int C, int nblk, const uint8_t *p, const float *pd, const int32_t *xg,
                   const float *xd, float *y, size_t ys) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int b = 0; b < nblk; b++) {
        __m256i acc[3][2];
        for (int c = 0; c < C; c++) acc[c][0] = acc[c][1] = _mm256_setzero_si256();
        const uint8_t *pb = p + (size_t)b * 8 * SP_PANEL * 4;
        const int32_t *xb = xg + (size_t)b * 9 * SP_IGROUP;
#pragma GCC unroll 8
        for (int s = 0; s < 8; s++) {
            __m256i w0 = _mm256_loadu_si256((const __m256i *)(pb + s * SP_PANEL * 4));
            __m256i w1 = _mm256_loadu_si256((const __m256i *)(pb + s * SP_PANEL * 4 + 32));
#pragma GCC unroll 3
            for (int c = 0; c < C; c++) {
                __m256i xv = _mm256_castps_si256(
                    _mm256_broadcast_ss((const float *)(xb + s * SP_IGROUP + c)));
                acc[c][0] = _mm256_add_epi16(acc[c][0], _mm256_maddubs_epi16(w0, xv));
                acc[c][1] = _mm256_add_epi16(acc[c][1], _mm256_maddubs_epi16(w1, xv));
            }
        }
        __m256 d0 = _mm256_loadu_ps(pd + (size_t)b * SP_PANEL);
        __m256 d1 = _mm256_loadu_ps(pd + (size_t)b * SP_PANEL + 8);
#pragma GCC unroll 3
        for (int c = 0; c < C; c++) {
            __m256 dx = _mm256_broadcast_ss(xd + (size_t)b * SP_IGROUP + c);
            __m256i corr = _mm256_set1_epi32(xb[8 * SP_IGROUP + c]);
            __m256i s0 = _mm256_add_epi32(_mm256_madd_epi16(acc[c][0], ones), corr);
            __m256i s1 = _mm256_add_epi32(_mm256_madd_epi16(acc[c][1], ones), corr);
            float *yc = y + c * ys;
            _mm256_storeu_ps(yc, _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_mul_ps(d0, dx),
                                                 _mm256_loadu_ps(yc)));
            _mm256_storeu_ps(yc + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_mul_ps(d1, dx),
                                                     _mm256_loadu_ps(yc + 8)));
        }
    }
}

static void igemm4(int rows, int toks, int nblk, const uint8_t *p, const float *pd,
                   const int32_t *xg, size_t xg_stride, const float *xd, size_t xd_stride, float *y,
                   size_t ys) {
    for (int t = 0; t < toks; t += SP_IGROUP, xg += xg_stride, xd += xd_stride) {
        int C = toks - t < SP_IGROUP ? toks - t : SP_IGROUP;
        int full = C == SP_IGROUP && rows == SP_PANEL;
        float tmp[SP_IGROUP * SP_PANEL] = {0}; /* partial tile: rows or tokens past the end */
        float *yt = full ? y + (size_t)t * ys : tmp;
        size_t yts = full ? ys : SP_PANEL;
        itile4(3, nblk, p, pd, xg, xd, yt, yts);
        itile4(3, nblk, p, pd, xg + 3, xd + 3, yt + 3 * yts, yts);
        if (full) continue;
        for (int c = 0; c < C; c++)
            for (int r = 0; r < rows; r++) y[(size_t)(t + c) * ys + r] += tmp[c * SP_PANEL + r];
    }
}

const sp_kernel_table sp_kernels_avx2 = {
    .dot_f32 = dot_f32,
    .axpy = axpy,
    .scale = scale,
    .rmsnorm = rmsnorm,
    .rope = rope,
    .softmax = softmax,
    .silu_mul = silu_mul,
    .gelu_tanh_mul = gelu_tanh_mul,
    .softcap = softcap,
    .gemm = gemm,
    .exp_shift_sum = exp_shift_sum,
    .weighted_rows = weighted_rows,
    .dot_rows = dot_rows,
    .gemm_panel = gemm_panel,
    .pack_panel = pack_panel,
    .ipack = ipack,
    .iact = iact,
    .igemm = igemm,
    .ipack4 = ipack4,
    .iact4 = iact4,
    .igemm4 = igemm4,
};
