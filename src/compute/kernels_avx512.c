/* AVX-512 (F/BW/VL/DQ) kernels, 16 f32 lanes. Same algorithms as
 * kernels_avx2.c; loop tails use opmask loads/stores. Only called after
 * ops.c has checked CPUID and XCR0. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "compute/kernels.h"
#include "compute/quant_internal.h"

#define INLINE static inline __attribute__((always_inline))

INLINE __mmask16 tail_mask(int rem) {
    return rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1);
}

/* e^x: same reduction and polynomial as exp256; 2^n applied with scalef. */
INLINE __m512 exp512(__m512 x) {
    x = _mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f));
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.3365447504019f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

INLINE __m512 tanh512(__m512 x) {
    __m512 a = _mm512_abs_ps(x);
    __m512 e = exp512(_mm512_mul_ps(a, _mm512_set1_ps(-2.0f)));
    __m512 one = _mm512_set1_ps(1.0f);
    __m512 big = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
    __m512 a2 = _mm512_mul_ps(a, a);
    __m512 p = _mm512_set1_ps(-1382.0f / 155925.0f);
    p = _mm512_fmadd_ps(p, a2, _mm512_set1_ps(62.0f / 2835.0f));
    p = _mm512_fmadd_ps(p, a2, _mm512_set1_ps(-17.0f / 315.0f));
    p = _mm512_fmadd_ps(p, a2, _mm512_set1_ps(2.0f / 15.0f));
    p = _mm512_fmadd_ps(p, a2, _mm512_set1_ps(-1.0f / 3.0f));
    __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, a2), a, a);
    __mmask16 lt = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.25f), _CMP_LT_OQ);
    __m512 t = _mm512_mask_blend_ps(lt, big, small);
    __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sign));
}

static float dot_f32(const float *a, const float *b, int n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static void axpy(float *y, float a, const float *x, int n) {
    __m512 av = _mm512_set1_ps(a);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v =
            _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

static void scale(float *y, float a, int n) {
    __m512 av = _mm512_set1_ps(a);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(av, _mm512_maskz_loadu_ps(m, y + i)));
    }
}

/* The sum of squares in double, as the scalar kernel does (why: there). */
static void rmsnorm(float *y, const float *x, const float *w, int n, float eps, int one_plus) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
        __m512 p = _mm512_mul_ps(v, v);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(p)));
        s1 = _mm512_add_pd(
            s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(p), 1))));
    }
    float mean = (float)(_mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / n);
    __m512 r = _mm512_set1_ps(1.0f / sqrtf(mean + eps));
    __m512 one = _mm512_set1_ps(1.0f);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), r);
        if (w) {
            __m512 wv = _mm512_maskz_loadu_ps(m, w + i);
            v = _mm512_mul_ps(v, one_plus ? _mm512_add_ps(one, wv) : wv);
        }
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

static void rope(float *x, int n_heads, int head_dim, int rot_dim, int n_pairs, const float *cos,
                 const float *sin, int interleaved) {
    if (interleaved) {
        sp_kernels_scalar.rope(x, n_heads, head_dim, rot_dim, n_pairs, cos, sin, 1);
        return;
    }
    int half = rot_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < n_pairs; i += 16) {
            __mmask16 m = tail_mask(n_pairs - i);
            __m512 a = _mm512_maskz_loadu_ps(m, v + i), b = _mm512_maskz_loadu_ps(m, v + i + half);
            __m512 c = _mm512_maskz_loadu_ps(m, cos + i), s = _mm512_maskz_loadu_ps(m, sin + i);
            _mm512_mask_storeu_ps(v + i, m, _mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s)));
            _mm512_mask_storeu_ps(v + i + half, m, _mm512_fmadd_ps(a, s, _mm512_mul_ps(b, c)));
        }
    }
}

static void softmax(float *x, int n) {
    if (n <= 0) return;
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 16)
        mv = _mm512_mask_max_ps(mv, tail_mask(n - i), mv,
                                _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
    __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(mv)), s = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 e =
            _mm512_maskz_mov_ps(m, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mx)));
        _mm512_mask_storeu_ps(x + i, m, e);
        s = _mm512_add_ps(s, e);
    }
    scale(x, 1.0f / _mm512_reduce_add_ps(s), n);
}

static void silu_mul(float *g, const float *u, int n) {
    __m512 one = _mm512_set1_ps(1.0f);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 x = _mm512_maskz_loadu_ps(m, g + i);
        __m512 d = _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x)));
        _mm512_mask_storeu_ps(g + i, m,
                              _mm512_mul_ps(_mm512_div_ps(x, d), _mm512_maskz_loadu_ps(m, u + i)));
    }
}

static void gelu_tanh_mul(float *g, const float *u, int n) {
    const __m512 k = _mm512_set1_ps(0.7978845608028654f), c = _mm512_set1_ps(0.044715f);
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 x = _mm512_maskz_loadu_ps(m, g + i);
        __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
        __m512 t = tanh512(_mm512_mul_ps(k, _mm512_fmadd_ps(c, x3, x)));
        __m512 y = _mm512_mul_ps(_mm512_mul_ps(half, x), _mm512_add_ps(one, t));
        _mm512_mask_storeu_ps(g + i, m, _mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, u + i)));
    }
}

static void softcap(float *x, int n, float cap) {
    __m512 c = _mm512_set1_ps(cap), ic = _mm512_set1_ps(1.0f / cap);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(c, tanh512(_mm512_mul_ps(v, ic))));
    }
}

/* ---- GEMM: register tiles of R weight rows x C tokens ---------------------- */

INLINE __m512 load_w16(sp_dtype wt, const char *row, int k, __mmask16 m) {
    if (wt == SP_F16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * (size_t)k));
    if (wt == SP_BF16) {
        __m512i h = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, row + 2 * (size_t)k));
        return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
    }
    return _mm512_maskz_loadu_ps(m, (const float *)row + k);
}

/* Prefetch into L2 of the next tile's R rows while this one streams (decode
 * reads each weight once): the rows after these, when the call has them. */
INLINE void prefetch_rows(int R, const char *next, size_t ws, size_t off) {
    if (next && off % 64 == 0)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) _mm_prefetch(next + r * ws + off, _MM_HINT_T1);
}

INLINE void tile(sp_dtype wt, int R, int C, int n, const char *w, size_t ws, const float *x,
                 size_t xs, float *y, size_t ys, const char *next) {
    __m512 acc[4][4];
    size_t esz = wt == SP_F32 ? 4 : 2;
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    for (int k = 0; k < n; k += 16) {
        __mmask16 m = tail_mask(n - k);
        prefetch_rows(R, next, ws, (size_t)k * esz);
        __m512 xv[4];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) xv[c] = _mm512_maskz_loadu_ps(m, x + c * xs + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 wv = load_w16(wt, w + r * ws, k, m);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) acc[r][c] = _mm512_fmadd_ps(wv, xv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[c * ys + r] += _mm512_reduce_add_ps(acc[r][c]);
}

#define TILE_TOKENS(WT, R, NEXT)                                                                   \
    do {                                                                                           \
        int t = 0;                                                                                 \
        for (; t + 4 <= toks; t += 4)                                                              \
            tile(WT, R, 4, n, wr, ws, x + t * xs, xs, y + t * ys + r, ys, t ? NULL : NEXT);        \
        const char *nx = t ? NULL : NEXT;                                                          \
        switch (toks - t) {                                                                        \
        case 3:                                                                                    \
            tile(WT, R, 3, n, wr, ws, x + t * xs, xs, y + t * ys + r, ys, nx);                     \
            break;                                                                                 \
        case 2:                                                                                    \
            tile(WT, R, 2, n, wr, ws, x + t * xs, xs, y + t * ys + r, ys, nx);                     \
            break;                                                                                 \
        case 1:                                                                                    \
            tile(WT, R, 1, n, wr, ws, x + t * xs, xs, y + t * ys + r, ys, nx);                     \
            break;                                                                                 \
        default:                                                                                   \
            break;                                                                                 \
        }                                                                                          \
    } while (0)

#define GEMM_FOR_TYPE(NAME, WT)                                                                    \
    static void NAME(int rows, int toks, int n, const char *w, size_t ws, const float *x,          \
                     size_t xs, float *y, size_t ys) {                                             \
        int r = 0;                                                                                 \
        for (; r + 4 <= rows; r += 4) {                                                            \
            const char *wr = w + r * ws;                                                           \
            TILE_TOKENS(WT, 4, r + 8 <= rows ? wr + 4 * ws : NULL);                                \
        }                                                                                          \
        for (; r < rows; r++) {                                                                    \
            const char *wr = w + r * ws;                                                           \
            TILE_TOKENS(WT, 1, NULL);                                                              \
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

/* ---- prefill panel GEMM (kernels.h: gemm_panel) ------------------------------ */

/* G groups (1 or 2) of C tokens x 16 rows (one zmm): each weight load meets
 * up to 12 tokens, whose values the FMAs broadcast from memory; 12
 * independent sums cover the FMA latency of two pipes. */
INLINE void panel_tile(int G, int C, int rows, int n, const float *p, const float *x0,
                       const float *x1, float *y, size_t ys) {
    __m512 acc[2][SP_PGROUP];
#pragma GCC unroll 2
    for (int g = 0; g < G; g++)
#pragma GCC unroll 6
        for (int c = 0; c < C; c++) acc[g][c] = _mm512_setzero_ps();
    for (int k = 0; k < n; k++) {
        __m512 w = _mm512_loadu_ps(p + (size_t)k * SP_PANEL);
#pragma GCC unroll 2
        for (int g = 0; g < G; g++) {
            const float *x = (g ? x1 : x0) + (size_t)k * SP_PGROUP;
#pragma GCC unroll 6
            for (int c = 0; c < C; c++)
                acc[g][c] = _mm512_fmadd_ps(w, _mm512_set1_ps(x[c]), acc[g][c]);
        }
    }
    __mmask16 m = tail_mask(rows);
#pragma GCC unroll 2
    for (int g = 0; g < G; g++)
#pragma GCC unroll 6
        for (int c = 0; c < C; c++) {
            float *yc = y + (size_t)(g * SP_PGROUP + c) * ys;
            _mm512_mask_storeu_ps(yc, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, yc), acc[g][c]));
        }
}

_Static_assert(SP_PGROUP == 6, "panel_tile's register tile is 6 tokens x 16 rows per group");

static void gemm_panel(int rows, int toks, int n, const float *p, const float *x, size_t xgs,
                       float *y, size_t ys) {
    int t = 0;
    for (; t + 12 <= toks; t += 12)
        panel_tile(2, 6, rows, n, p, x + t / 6 * xgs, x + (t / 6 + 1) * xgs, y + t * ys, ys);
    for (; t + 6 <= toks; t += 6)
        panel_tile(1, 6, rows, n, p, x + t / 6 * xgs, NULL, y + t * ys, ys);
    const float *xt = x + t / 6 * xgs;
    switch (toks - t) {
    case 5:
        panel_tile(1, 5, rows, n, p, xt, NULL, y + t * ys, ys);
        break;
    case 4:
        panel_tile(1, 4, rows, n, p, xt, NULL, y + t * ys, ys);
        break;
    case 3:
        panel_tile(1, 3, rows, n, p, xt, NULL, y + t * ys, ys);
        break;
    case 2:
        panel_tile(1, 2, rows, n, p, xt, NULL, y + t * ys, ys);
        break;
    case 1:
        panel_tile(1, 1, rows, n, p, xt, NULL, y + t * ys, ys);
        break;
    default:
        break;
    }
}

/* ---- bf16 x bf16 pairs (AVX512_BF16): 32 products per instruction ------- */

INLINE __m512 dp_bf16(__m512 acc, __m512i w, __m512i x) {
    return _mm512_dpbf16_ps(acc, (__m512bh)w, (__m512bh)x);
}

INLINE __mmask32 tail_mask32(int rem) {
    return rem >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << rem) - 1);
}

INLINE void tile_bf16_pairs(int R, int C, int n, const uint16_t *w, size_t ws, const uint16_t *x,
                            size_t xs, float *y, size_t ys, const uint16_t *next) {
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    for (int k = 0; k < n; k += 32) {
        __mmask32 m = tail_mask32(n - k); /* a masked lane is a zero product */
        prefetch_rows(R, (const char *)next, 2 * ws, 2 * (size_t)k);
        __m512i xv[4];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) xv[c] = _mm512_maskz_loadu_epi16(m, x + c * xs + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512i wv = _mm512_maskz_loadu_epi16(m, w + r * ws + k);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) acc[r][c] = dp_bf16(acc[r][c], wv, xv[c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[c * ys + r] += _mm512_reduce_add_ps(acc[r][c]);
}

#define TILE_TOKENS_BF16(R, NEXT)                                                                  \
    do {                                                                                           \
        int t = 0;                                                                                 \
        for (; t + 4 <= toks; t += 4)                                                              \
            tile_bf16_pairs(R, 4, n, wr, ws, x + t * xs, xs, y + t * ys + r, ys, t ? NULL : NEXT); \
        const uint16_t *nx = t ? NULL : NEXT;                                                      \
        switch (toks - t) {                                                                        \
        case 3:                                                                                    \
            tile_bf16_pairs(R, 3, n, wr, ws, x + t * xs, xs, y + t * ys + r, ys, nx);              \
            break;                                                                                 \
        case 2:                                                                                    \
            tile_bf16_pairs(R, 2, n, wr, ws, x + t * xs, xs, y + t * ys + r, ys, nx);              \
            break;                                                                                 \
        case 1:                                                                                    \
            tile_bf16_pairs(R, 1, n, wr, ws, x + t * xs, xs, y + t * ys + r, ys, nx);              \
            break;                                                                                 \
        default:                                                                                   \
            break;                                                                                 \
        }                                                                                          \
    } while (0)

/* gemm_panel with bf16 pairs: G groups of C tokens x 16 rows. */
INLINE void panel_tile_bf16(int G, int C, int rows, int np, const uint32_t *p, const uint32_t *x0,
                            const uint32_t *x1, float *y, size_t ys) {
    __m512 acc[2][SP_PGROUP];
#pragma GCC unroll 2
    for (int g = 0; g < G; g++)
#pragma GCC unroll 6
        for (int c = 0; c < C; c++) acc[g][c] = _mm512_setzero_ps();
    for (int k = 0; k < np; k++) {
        __m512i w = _mm512_loadu_si512(p + (size_t)k * SP_PANEL);
#pragma GCC unroll 2
        for (int g = 0; g < G; g++) {
            const uint32_t *x = (g ? x1 : x0) + (size_t)k * SP_PGROUP;
#pragma GCC unroll 6
            for (int c = 0; c < C; c++)
                acc[g][c] = dp_bf16(acc[g][c], w, _mm512_set1_epi32((int)x[c]));
        }
    }
    __mmask16 m = tail_mask(rows);
#pragma GCC unroll 2
    for (int g = 0; g < G; g++)
#pragma GCC unroll 6
        for (int c = 0; c < C; c++) {
            float *yc = y + (size_t)(g * SP_PGROUP + c) * ys;
            _mm512_mask_storeu_ps(yc, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, yc), acc[g][c]));
        }
}

static void gemm_panel_bf16(int rows, int toks, int np, const uint32_t *p, const uint32_t *x,
                            size_t xgs, float *y, size_t ys) {
    int t = 0;
    for (; t + 12 <= toks; t += 12)
        panel_tile_bf16(2, 6, rows, np, p, x + t / 6 * xgs, x + (t / 6 + 1) * xgs, y + t * ys, ys);
    for (; t + 6 <= toks; t += 6)
        panel_tile_bf16(1, 6, rows, np, p, x + t / 6 * xgs, NULL, y + t * ys, ys);
    const uint32_t *xt = x + t / 6 * xgs;
    switch (toks - t) {
    case 5:
        panel_tile_bf16(1, 5, rows, np, p, xt, NULL, y + t * ys, ys);
        break;
    case 4:
        panel_tile_bf16(1, 4, rows, np, p, xt, NULL, y + t * ys, ys);
        break;
    case 3:
        panel_tile_bf16(1, 3, rows, np, p, xt, NULL, y + t * ys, ys);
        break;
    case 2:
        panel_tile_bf16(1, 2, rows, np, p, xt, NULL, y + t * ys, ys);
        break;
    case 1:
        panel_tile_bf16(1, 1, rows, np, p, xt, NULL, y + t * ys, ys);
        break;
    default:
        break;
    }
}

/* 16 x 16 dwords in place: four rounds of swapping the off-diagonal
 * b x b blocks of rows i and i + b (b = 8, 4, 2, 1), two vpermt2d each. */
INLINE void transpose16(__m512i r[16]) {
    for (int b = 8; b >= 1; b /= 2) {
        int lo[16], hi[16];
        for (int j = 0; j < 16; j++) {
            lo[j] = (j & b) ? 16 + j - b : j;
            hi[j] = (j & b) ? 16 + j : j + b;
        }
        __m512i il = _mm512_loadu_si512(lo), ih = _mm512_loadu_si512(hi);
        for (int i = 0; i < 16; i++) {
            if (i & b) continue;
            __m512i a = r[i], c = r[i + b];
            r[i] = _mm512_permutex2var_epi32(a, il, c);
            r[i + b] = _mm512_permutex2var_epi32(a, ih, c);
        }
    }
}

/* A pair of bf16 values is one dword of the row: the panel is the
 * transpose of the 16 rows' dwords, 16 pairs at a time. */
static void pack_panel_bf16(int rows, int np, const void *src, size_t ss, uint32_t *p) {
    const char *w = src;
    int j = 0;
    for (; j + 16 <= np; j += 16) {
        __m512i r[16];
        for (int i = 0; i < 16; i++)
            r[i] = i < rows ? _mm512_loadu_si512(w + (size_t)i * ss + 4 * (size_t)j)
                            : _mm512_setzero_si512();
        transpose16(r);
        for (int i = 0; i < 16; i++) _mm512_storeu_si512(p + (size_t)(j + i) * SP_PANEL, r[i]);
    }
    for (; j < np; j++)
        for (int r = 0; r < SP_PANEL; r++) {
            uint32_t v = 0;
            if (r < rows) memcpy(&v, w + (size_t)r * ss + 4 * (size_t)j, 4);
            p[(size_t)j * SP_PANEL + r] = v;
        }
}

/* w_stride is in bytes (as for gemm); x_stride in elements. */
static void gemm_bf16_pairs(int rows, int toks, int n, const uint16_t *w, size_t w_stride,
                            const uint16_t *x, size_t xs, float *y, size_t ys) {
    size_t ws = w_stride / 2;
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        const uint16_t *wr = w + r * ws;
        TILE_TOKENS_BF16(4, r + 8 <= rows ? wr + 4 * ws : NULL);
    }
    for (; r < rows; r++) {
        const uint16_t *wr = w + r * ws;
        TILE_TOKENS_BF16(1, NULL);
    }
}

/* ---- integer prefill with VNNI (vpdpbusd: 64 u8 x s8 products into 16
 * int32 lanes per instruction) ------------------------------------------ */

/* SP_IGROUP tokens x 16 rows (one zmm) of the ipack4 / kpack panels: per
 * block, 8 weight loads, each multiplied by every token's 4 activation
 * bytes (broadcast from memory into the instruction). kq: Q4_K (per-row
 * scale and min of the sub-block); else Q4_0 (the -8 offset in the
 * activation's 9th group). f32 sums stay in registers across blocks. */
INLINE void vtile(int kq, int nblk, const uint8_t *p, const float *pd, const int32_t *xg,
                  const float *xd, __m512 ya[SP_IGROUP]) {
    for (int b = 0; b < nblk; b++) {
        const uint8_t *pb = p + (size_t)b * 8 * SP_PANEL * 4;
        const int32_t *xb = xg + (size_t)b * 9 * SP_IGROUP;
        __m512i acc[SP_IGROUP];
#pragma GCC unroll 6
        for (int c = 0; c < SP_IGROUP; c++)
            acc[c] = kq ? _mm512_setzero_si512() : _mm512_set1_epi32(xb[8 * SP_IGROUP + c]);
#pragma GCC unroll 8
        for (int s = 0; s < 8; s++) {
            __m512i w = _mm512_loadu_si512(pb + s * SP_PANEL * 4);
#pragma GCC unroll 6
            for (int c = 0; c < SP_IGROUP; c++)
                acc[c] = _mm512_dpbusd_epi32(acc[c], w, _mm512_set1_epi32(xb[s * SP_IGROUP + c]));
        }
        const float *db = pd + (size_t)b * (kq ? 2 : 1) * SP_PANEL;
        __m512 d = _mm512_loadu_ps(db);
        __m512 m = kq ? _mm512_loadu_ps(db + SP_PANEL) : _mm512_setzero_ps();
#pragma GCC unroll 6
        for (int c = 0; c < SP_IGROUP; c++) {
            __m512 dx = _mm512_set1_ps(xd[(size_t)b * SP_IGROUP + c]);
            ya[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[c]), _mm512_mul_ps(d, dx), ya[c]);
            if (kq) /* -8 * sum(x) / 8 * dx: exact scaling of the group-8 entry */
                ya[c] = _mm512_fmadd_ps(
                    m, _mm512_mul_ps(dx, _mm512_set1_ps(0.125f * (float)xb[8 * SP_IGROUP + c])),
                    ya[c]);
        }
    }
}

INLINE void vgemm(int kq, int rows, int toks, int nblk, const uint8_t *p, const float *pd,
                  const int32_t *xg, size_t xg_stride, const float *xd, size_t xd_stride, float *y,
                  size_t ys) {
    __mmask16 rm = tail_mask(rows);
    for (int t = 0; t < toks; t += SP_IGROUP, xg += xg_stride, xd += xd_stride) {
        int C = toks - t < SP_IGROUP ? toks - t : SP_IGROUP;
        __m512 ya[SP_IGROUP];
        for (int c = 0; c < SP_IGROUP; c++) ya[c] = _mm512_setzero_ps();
        vtile(kq, nblk, p, pd, xg, xd, ya);
        for (int c = 0; c < C; c++) {
            float *yc = y + (size_t)(t + c) * ys;
            _mm512_mask_storeu_ps(yc, rm, _mm512_add_ps(_mm512_maskz_loadu_ps(rm, yc), ya[c]));
        }
    }
}

static void igemm4(int rows, int toks, int nblk, const uint8_t *p, const float *pd,
                   const int32_t *xg, size_t xg_stride, const float *xd, size_t xd_stride, float *y,
                   size_t ys) {
    vgemm(0, rows, toks, nblk, p, pd, xg, xg_stride, xd, xd_stride, y, ys);
}

static void kgemm(int rows, int toks, int nblk, const uint8_t *p, const float *pd,
                  const int32_t *xg, size_t xg_stride, const float *xd, size_t xd_stride, float *y,
                  size_t ys) {
    vgemm(1, rows, toks, nblk, p, pd, xg, xg_stride, xd, xd_stride, y, ys);
}

/* Q8_0 rows h..h+7 (hr real) of blocks [b0, b0+nblk) as w + 128. */
static void pack8u8(int packed, int hr, const char *w, size_t ws, int nb_row, int b0, int nblk,
                    int h, uint8_t *p, float *pd) {
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    for (int b = 0; b < nblk; b++) {
        uint8_t *pb = p + (size_t)b * 8 * SP_PANEL * 4 + 4 * h;
        float *d = pd + (size_t)b * SP_PANEL + h;
        const char *blk = w + (size_t)(b0 + b) * SP_PK_Q8_0_BLOCK; /* packed: rows' chunks */
        const uint16_t *dd = (const uint16_t *)(blk + 8 * SP_QK);
        (void)nb_row;
        for (int i = 0; i < 8; i++) {
            const sp_block_q8_0 *q = (const sp_block_q8_0 *)(w + (size_t)i * ws) + b0 + b;
            d[i] = i >= hr ? 0.0f : sp_q_f16(packed ? dd[i] : q->d);
        }
        for (int k = 0; k < 8; k++) {
            __m256i v;
            if (packed) {
                v = _mm256_loadu_si256((const __m256i *)(blk + 32 * k));
            } else {
                int32_t q[8];
                for (int i = 0; i < 8; i++) q[i] = (int32_t)0x80808080u; /* zero after the flip */
                for (int i = 0; i < hr; i++)
                    memcpy(&q[i],
                           ((const sp_block_q8_0 *)(w + (size_t)i * ws) + b0 + b)->qs + 4 * k, 4);
                v = _mm256_loadu_si256((const __m256i *)q);
            }
            _mm256_storeu_si256((__m256i *)(pb + (size_t)k * SP_PANEL * 4),
                                _mm256_xor_si256(v, flip));
        }
    }
}

static int ipack8u(int packed, int rows, const void *w, size_t ws, int nb_row, int b0, int nblk,
                   uint8_t *p, float *pd) {
    for (int h = 0; h < SP_PANEL; h += 8) {
        int hr = rows - h < 8 ? rows - h : 8;
        if (hr > 0) {
            pack8u8(packed, hr, (const char *)w + (size_t)h * ws, ws, nb_row, b0, nblk, h, p, pd);
            continue;
        }
        for (int b = 0; b < nblk; b++) {
            for (int k = 0; k < 8; k++)
                memset(p + (size_t)(b * 8 + k) * SP_PANEL * 4 + 4 * h, 0, 32);
            for (int i = 0; i < 8; i++) pd[(size_t)b * SP_PANEL + h + i] = 0.0f;
        }
    }
    return 1;
}

static void iact8u(const void *q, int n, int c, int32_t *xg, float *xd) {
    const sp_block_q8_0 *blk = q;
    for (int b = 0; b < n / SP_QK; b++) {
        int32_t s[8];
        memcpy(s, blk[b].qs, sizeof s);
        int32_t *o = xg + (size_t)b * 9 * SP_IGROUP + c;
        for (int i = 0; i < 8; i++) o[i * SP_IGROUP] = s[i];
        int sum = 0;
        for (int i = 0; i < SP_QK; i++) sum += blk[b].qs[i];
        o[8 * SP_IGROUP] = -128 * sum;
        xd[(size_t)b * SP_IGROUP + c] = sp_q_f16(blk[b].d);
    }
}

/* Row i (< 8) of a Q4_K group, super-block sb: scale bytes and d, dmin. */
static void k_row_meta(int packed, const char *w, size_t ws, int nb_row, int i, int sb,
                       uint8_t sc[12], uint16_t dd[2], const uint8_t **qs) {
    if (packed) {
        const uint8_t *pk = (const uint8_t *)w + (size_t)sb * SP_PK_K_BYTES;
        for (int j = 0; j < 3; j++) memcpy(sc + 4 * j, pk + SP_PK_K_SC + 32 * j + 4 * i, 4);
        memcpy(&dd[0], pk + SP_PK_K_D + 2 * i, 2);
        memcpy(&dd[1], pk + SP_PK_K_DMIN + 2 * i, 2);
        *qs = pk;
        (void)nb_row, (void)ws;
        return;
    }
    const sp_block_q4_k *blk = (const sp_block_q4_k *)(w + (size_t)i * ws) + sb;
    memcpy(sc, blk->scales, 12);
    dd[0] = blk->d, dd[1] = blk->dmin;
    *qs = blk->qs;
}

/* 8 rows (h..h+7 of the panel; hr real) of sub-blocks [b0, b0+nblk). */
static void kpack8(int packed, int hr, const char *w, size_t ws, int nb_row, int b0, int nblk,
                   int h, uint8_t *p, float *pd) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int b = 0; b < nblk; b++) {
        int sb = (b0 + b) / 8, j = (b0 + b) % 8, c = j / 2, hi = j & 1;
        uint8_t *pb = p + (size_t)b * 8 * SP_PANEL * 4 + 4 * h;
        float *d = pd + (size_t)b * 2 * SP_PANEL + h;
        for (int i = 0; i < 8; i++) {
            uint8_t sc[12], s, m;
            uint16_t dd[2] = {0, 0};
            const uint8_t *qs;
            if (i >= hr) {
                d[i] = d[SP_PANEL + i] = 0.0f;
                continue;
            }
            k_row_meta(packed, w, ws, nb_row, i, sb, sc, dd, &qs);
            sp_kq_scale_min(j, sc, &s, &m);
            d[i] = sp_q_f16(dd[0]) * (float)s;
            d[SP_PANEL + i] = sp_q_f16(dd[1]) * (float)m;
        }
        for (int k = 0; k < 8; k++) { /* values 4k..4k+3 of the sub-block: chunk 8c + k */
            __m256i v;
            if (packed) {
                v = _mm256_loadu_si256(
                    (const __m256i *)(w + (size_t)sb * SP_PK_K_BYTES + 32 * (8 * c + k)));
            } else {
                int32_t q[8] = {0};
                for (int i = 0; i < hr; i++)
                    memcpy(&q[i],
                           ((const sp_block_q4_k *)(w + (size_t)i * ws) + sb)->qs + 32 * c + 4 * k,
                           4);
                v = _mm256_loadu_si256((const __m256i *)q);
            }
            v = _mm256_and_si256(hi ? _mm256_srli_epi16(v, 4) : v, m4);
            _mm256_storeu_si256((__m256i *)(pb + (size_t)k * SP_PANEL * 4), v);
        }
    }
}

static int kpack(int packed, int rows, const void *w, size_t ws, int nb_row, int b0, int nblk,
                 uint8_t *p, float *pd) {
    for (int h = 0; h < SP_PANEL; h += 8) {
        int hr = rows - h < 8 ? rows - h : 8;
        if (hr > 0) {
            kpack8(packed, hr, (const char *)w + (size_t)h * ws, ws, nb_row, b0, nblk, h, p, pd);
            continue;
        }
        for (int b = 0; b < nblk; b++) { /* no rows here: zero levels and scales */
            for (int k = 0; k < 8; k++)
                memset(p + (size_t)(b * 8 + k) * SP_PANEL * 4 + 4 * h, 0, 32);
            for (int i = 0; i < 8; i++)
                pd[(size_t)b * 2 * SP_PANEL + h + i] =
                    pd[(size_t)b * 2 * SP_PANEL + SP_PANEL + h + i] = 0.0f;
        }
    }
    return 1;
}

static void kact(const void *q, int n, int c, int32_t *xg, float *xd) {
    const sp_block_q8_k *blk = q;
    for (int b = 0; b < n / SP_QK; b++) {
        const sp_block_q8_k *k = &blk[b / 8];
        int j = b % 8;
        int32_t *o = xg + (size_t)b * 9 * SP_IGROUP + c;
        int32_t s[8];
        memcpy(s, k->qs + 32 * j, sizeof s);
        for (int i = 0; i < 8; i++) o[i * SP_IGROUP] = s[i];
        o[8 * SP_IGROUP] = -8 * (k->bsums[2 * j] + k->bsums[2 * j + 1]);
        xd[(size_t)b * SP_IGROUP + c] = k->d;
    }
}

const sp_kernel_table sp_kernels_avx512_bf16 = {
    .gemm_panel = gemm_panel,
    .igemm4 = igemm4,
    .ipack8u = ipack8u,
    .iact8u = iact8u,
    .kpack = kpack,
    .kact = kact,
    .kgemm = kgemm,
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
    .gemm_bf16_pairs = gemm_bf16_pairs,
    .gemm_panel_bf16 = gemm_panel_bf16,
    .pack_panel_bf16 = pack_panel_bf16,
};

const sp_kernel_table sp_kernels_avx512 = {
    .gemm_panel = gemm_panel,
    .igemm4 = igemm4,
    .ipack8u = ipack8u,
    .iact8u = iact8u,
    .kpack = kpack,
    .kact = kact,
    .kgemm = kgemm,
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
};
