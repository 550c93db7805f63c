/* Scalar reference dequantization (the definition of every block format)
 * and the weight quantizers used by the GGUF writer and --quantize. */
#include <math.h>
#include <stddef.h>

#include "compute/quant_internal.h"

/* ---- dequantization ------------------------------------------------------ */

static void deq_q8_0(const sp_block_q8_0 *b, float *y) {
    float d = sp_q_f16(b->d);
    for (int j = 0; j < SP_QK; j++) y[j] = d * (float)b->qs[j];
}

static void deq_q4_0(const sp_block_q4_0 *b, float *y) {
    float d = sp_q_f16(b->d);
    for (int j = 0; j < SP_QK / 2; j++) {
        y[j] = d * (float)((b->qs[j] & 0x0f) - 8);
        y[j + 16] = d * (float)((b->qs[j] >> 4) - 8);
    }
}

static void deq_q4_1(const sp_block_q4_1 *b, float *y) {
    float d = sp_q_f16(b->d), m = sp_q_f16(b->m);
    for (int j = 0; j < SP_QK / 2; j++) {
        y[j] = d * (float)(b->qs[j] & 0x0f) + m;
        y[j + 16] = d * (float)(b->qs[j] >> 4) + m;
    }
}

static uint32_t load_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void deq_q5_0(const sp_block_q5_0 *b, float *y) {
    float d = sp_q_f16(b->d);
    uint32_t qh = load_u32le(b->qh);
    for (int j = 0; j < SP_QK / 2; j++) {
        int lo = (b->qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
        int hi = (b->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (float)(lo - 16);
        y[j + 16] = d * (float)(hi - 16);
    }
}

static void deq_q8_1(const sp_block_q8_1 *b, float *y) {
    float d = sp_q_f16(b->d);
    for (int j = 0; j < SP_QK; j++) y[j] = d * (float)b->qs[j];
}

/* Q4_K and Q5_K share the layout of their 8 sub-blocks of 32: chunk c
 * (0..3) holds sub-block 2c in the low nibbles of qs[32c..32c+31] and
 * sub-block 2c+1 in the high nibbles. qh (Q5_K only) adds bit 4. */
static void deq_kq(uint16_t d16, uint16_t dmin16, const uint8_t *scales, const uint8_t *qs,
                   const uint8_t *qh, float *y) {
    float d = sp_q_f16(d16), dmin = sp_q_f16(dmin16);
    for (int c = 0; c < 4; c++) {
        for (int half = 0; half < 2; half++) {
            int j = 2 * c + half;
            uint8_t sc, m;
            sp_kq_scale_min(j, scales, &sc, &m);
            float ds = d * sc, dm = dmin * m;
            for (int l = 0; l < 32; l++) {
                int q = half ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 0x0f;
                if (qh) q |= ((qh[l] >> j) & 1) << 4;
                y[32 * j + l] = ds * (float)q - dm;
            }
        }
    }
}

static void deq_q6_k(const sp_block_q6_k *b, float *y) {
    float d = sp_q_f16(b->d);
    for (int h = 0; h < 2; h++) { /* two halves of 128 values */
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        const int8_t *sc = b->scales + 8 * h;
        float *out = y + 128 * h;
        for (int l = 0; l < 32; l++) {
            int g = l / 16; /* sub-block of 16 within each quarter */
            int q0 = ((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32;
            int q1 = ((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q2 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            int q3 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            out[l] = d * (float)sc[g] * (float)q0;
            out[l + 32] = d * (float)sc[g + 2] * (float)q1;
            out[l + 64] = d * (float)sc[g + 4] * (float)q2;
            out[l + 96] = d * (float)sc[g + 6] * (float)q3;
        }
    }
}

static void deq_q8_k(const sp_block_q8_k *b, float *y) {
    for (int j = 0; j < SP_QKK; j++) y[j] = b->d * (float)b->qs[j];
}

void sp_quant_dequantize(sp_dtype t, const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    switch (t) {
    case SP_Q8_0:
        for (int64_t i = 0; i < n / SP_QK; i++)
            deq_q8_0((const sp_block_q8_0 *)p + i, dst + i * 32);
        break;
    case SP_Q4_0:
        for (int64_t i = 0; i < n / SP_QK; i++)
            deq_q4_0((const sp_block_q4_0 *)p + i, dst + i * 32);
        break;
    case SP_Q4_1:
        for (int64_t i = 0; i < n / SP_QK; i++)
            deq_q4_1((const sp_block_q4_1 *)p + i, dst + i * 32);
        break;
    case SP_Q5_0:
        for (int64_t i = 0; i < n / SP_QK; i++)
            deq_q5_0((const sp_block_q5_0 *)p + i, dst + i * 32);
        break;
    case SP_Q8_1:
        for (int64_t i = 0; i < n / SP_QK; i++)
            deq_q8_1((const sp_block_q8_1 *)p + i, dst + i * 32);
        break;
    case SP_Q4_K:
        for (int64_t i = 0; i < n / SP_QKK; i++) {
            const sp_block_q4_k *b = (const sp_block_q4_k *)p + i;
            deq_kq(b->d, b->dmin, b->scales, b->qs, NULL, dst + i * SP_QKK);
        }
        break;
    case SP_Q5_K:
        for (int64_t i = 0; i < n / SP_QKK; i++) {
            const sp_block_q5_k *b = (const sp_block_q5_k *)p + i;
            deq_kq(b->d, b->dmin, b->scales, b->qs, b->qh, dst + i * SP_QKK);
        }
        break;
    case SP_Q6_K:
        for (int64_t i = 0; i < n / SP_QKK; i++)
            deq_q6_k((const sp_block_q6_k *)p + i, dst + i * SP_QKK);
        break;
    case SP_Q8_K:
        for (int64_t i = 0; i < n / SP_QKK; i++)
            deq_q8_k((const sp_block_q8_k *)p + i, dst + i * SP_QKK);
        break;
    default:
        break;
    }
}

/* ---- 32-wide quantizers ---------------------------------------------------
 * Each scale is rounded to f16 first and the values are rounded against
 * that stored scale, so dequantization sees exactly the grid we chose. */

static float inv_or_zero(float d) {
    return d != 0.0f ? 1.0f / d : 0.0f;
}

static int clampi(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* Round half to even without a libm call (adding 1.5*2^23 leaves the
 * integer in the low mantissa bits; exact for |v| < 2^22, so v is clamped
 * first, which callers clamp further anyway); the k-quant searches round
 * millions of candidates. */
static inline int nearest(float v) {
    float f = (v < -4e6f ? -4e6f : v > 4e6f ? 4e6f : v) + 12582912.0f;
    int32_t i;
    memcpy(&i, &f, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* The value of largest magnitude, with its sign (the first one on a tie). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void quant_q8_0(const float *x, sp_block_q8_0 *b) {
    b->d = sp_q_to_f16(fabsf(signed_absmax(x, SP_QK)) / 127.0f);
    float id = inv_or_zero(sp_q_f16(b->d));
    for (int j = 0; j < SP_QK; j++) b->qs[j] = (int8_t)clampi((int)lrintf(x[j] * id), -127, 127);
}

/* Q4_0 / Q5_0: the extreme value maps to the most negative level (-8 or
 * -16), which gives one more level on its side than on the other. */
static void quant_sym(const float *x, int half, uint16_t *d16, int *q) {
    *d16 = sp_q_to_f16(signed_absmax(x, SP_QK) / (float)-half);
    float id = inv_or_zero(sp_q_f16(*d16));
    for (int j = 0; j < SP_QK; j++) q[j] = clampi((int)lrintf(x[j] * id) + half, 0, 2 * half - 1);
}

static void quant_q4_0(const float *x, sp_block_q4_0 *b) {
    int q[SP_QK];
    quant_sym(x, 8, &b->d, q);
    for (int j = 0; j < 16; j++) b->qs[j] = (uint8_t)(q[j] | q[j + 16] << 4);
}

static void quant_q5_0(const float *x, sp_block_q5_0 *b) {
    int q[SP_QK];
    quant_sym(x, 16, &b->d, q);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        b->qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4);
        qh |= (uint32_t)(q[j] >> 4) << j | (uint32_t)(q[j + 16] >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++) b->qh[k] = (uint8_t)(qh >> (8 * k));
}

static void quant_q4_1(const float *x, sp_block_q4_1 *b) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < SP_QK; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    b->d = sp_q_to_f16((hi - lo) / 15.0f);
    b->m = sp_q_to_f16(lo);
    float id = inv_or_zero(sp_q_f16(b->d)), m = sp_q_f16(b->m);
    int q[SP_QK];
    for (int j = 0; j < SP_QK; j++) q[j] = clampi((int)lrintf((x[j] - m) * id), 0, 15);
    for (int j = 0; j < 16; j++) b->qs[j] = (uint8_t)(q[j] | q[j + 16] << 4);
}

/* ---- k-quant quantizers ---------------------------------------------------
 * A search in the spirit of llama.cpp's make_qkx/make_qx: try a few grid
 * spacings around the min/max one, refit scale (and offset) by weighted
 * least squares for each, keep the best. Weights favour large values
 * (w = rms + |x|), which matter most to a dot product. */

#define SEARCH_STEPS 8 /* candidates on each side of the min/max spacing */

static void importance(const float *x, int n, float *w) {
    float s = 0.0f;
    for (int j = 0; j < n; j++) s += x[j] * x[j];
    float rms = sqrtf(s / (float)n);
    for (int j = 0; j < n; j++) w[j] = rms + fabsf(x[j]);
}

/* x ~ scale*q - min with q in [0, nmax], scale >= 0, min >= 0 (the block
 * minimum is clamped to <= 0, as the format stores -dmin*m). */
static void fit_affine(const float *x, const float *w, int n, int nmax, float *scale, float *min) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    if (lo > 0.0f) lo = 0.0f;
    *scale = 0.0f;
    *min = -lo;
    if (hi <= lo) return;
    float best = INFINITY;
    for (int k = -SEARCH_STEPS; k <= SEARCH_STEPS; k++) {
        float is = ((float)nmax + 0.1f * (float)k) / (hi - lo);
        float sw = 0, sq = 0, sx = 0, sqq = 0, sqx = 0;
        for (int j = 0; j < n; j++) {
            float q = (float)clampi(nearest(is * (x[j] - lo)), 0, nmax);
            sw += w[j], sq += w[j] * q, sx += w[j] * x[j];
            sqq += w[j] * q * q, sqx += w[j] * q * x[j];
        }
        float det = sw * sqq - sq * sq, a = 0.0f, b = 1.0f;
        if (det > 0.0f) {
            a = (sw * sqx - sq * sx) / det; /* x ~ a*q + b */
            b = (sqq * sx - sq * sqx) / det;
        }
        if (b > 0.0f) { /* all q equal, or offset > 0: refit the scale alone */
            b = 0.0f;
            a = sqq > 0.0f ? sqx / sqq : 0.0f;
        }
        if (a <= 0.0f) continue;
        float err = 0.0f, ia = 1.0f / a;
        for (int j = 0; j < n; j++) {
            float q = (float)clampi(nearest((x[j] - b) * ia), 0, nmax);
            float e = a * q + b - x[j];
            err += w[j] * e * e;
        }
        if (err < best) {
            best = err;
            *scale = a;
            *min = -b;
        }
    }
}

/* x ~ scale*q with q in [-32, 31]; the scale may be negative so that the
 * largest magnitude can use level -32. */
static float fit_signed(const float *x, const float *w, int n) {
    float max = signed_absmax(x, n);
    if (max == 0.0f) return 0.0f;
    float best = INFINITY, scale = 0.0f;
    for (int k = -SEARCH_STEPS; k <= SEARCH_STEPS; k++) {
        float is = -(32.0f + 0.1f * (float)k) / max;
        float sqq = 0, sqx = 0;
        for (int j = 0; j < n; j++) {
            float q = (float)clampi(nearest(is * x[j]), -32, 31);
            sqq += w[j] * q * q, sqx += w[j] * q * x[j];
        }
        if (sqq <= 0.0f) continue;
        float a = sqx / sqq, ia = 1.0f / a, err = 0.0f;
        for (int j = 0; j < n; j++) {
            float q = (float)clampi(nearest(x[j] * ia), -32, 31);
            err += w[j] * (a * q - x[j]) * (a * q - x[j]);
        }
        if (err < best) best = err, scale = a;
    }
    return scale;
}

/* Fits the 8 sub-blocks of 32 of a Q4_K/Q5_K block: stores d/dmin and the
 * packed 6-bit scales, returns the per-value levels in q (0..nmax). */
static void quant_kq(const float *x, int nmax, uint16_t *d16, uint16_t *dmin16, uint8_t *packed,
                     int *q) {
    float w[SP_QKK], sc[8], mn[8], max_sc = 0.0f, max_mn = 0.0f;
    importance(x, SP_QKK, w);
    for (int j = 0; j < 8; j++) {
        fit_affine(x + 32 * j, w + 32 * j, 32, nmax, &sc[j], &mn[j]);
        max_sc = fmaxf(max_sc, sc[j]);
        max_mn = fmaxf(max_mn, mn[j]);
    }
    *d16 = sp_q_to_f16(max_sc / 63.0f);
    *dmin16 = sp_q_to_f16(max_mn / 63.0f);
    float d = sp_q_f16(*d16), dmin = sp_q_f16(*dmin16);
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)clampi(nearest(sc[j] * inv_or_zero(d)), 0, 63);
        lm[j] = (uint8_t)clampi(nearest(mn[j] * inv_or_zero(dmin)), 0, 63);
    }
    for (int j = 0; j < 4; j++) {
        packed[j] = (uint8_t)(ls[j] | (ls[j + 4] >> 4) << 6);
        packed[j + 4] = (uint8_t)(lm[j] | (lm[j + 4] >> 4) << 6);
        packed[j + 8] = (uint8_t)((ls[j + 4] & 0x0f) | (lm[j + 4] & 0x0f) << 4);
    }
    for (int j = 0; j < 8; j++) { /* requantize against the stored grid */
        float s = d * ls[j], m = dmin * lm[j], is = inv_or_zero(s);
        for (int l = 0; l < 32; l++)
            q[32 * j + l] = clampi(nearest((x[32 * j + l] + m) * is), 0, nmax);
    }
}

static void quant_q4_k(const float *x, sp_block_q4_k *b) {
    int q[SP_QKK];
    quant_kq(x, 15, &b->d, &b->dmin, b->scales, q);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            b->qs[32 * c + l] = (uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
}

static void quant_q5_k(const float *x, sp_block_q5_k *b) {
    int q[SP_QKK];
    quant_kq(x, 31, &b->d, &b->dmin, b->scales, q);
    memset(b->qh, 0, sizeof(b->qh));
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            int lo = q[64 * c + l], hi = q[64 * c + 32 + l];
            b->qs[32 * c + l] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
            b->qh[l] |= (uint8_t)((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
        }
    }
}

static void quant_q6_k(const float *x, sp_block_q6_k *b) {
    float w[SP_QKK], sc[16], amax = 0.0f;
    importance(x, SP_QKK, w);
    for (int g = 0; g < 16; g++) {
        sc[g] = fit_signed(x + 16 * g, w + 16 * g, 16);
        amax = fmaxf(amax, fabsf(sc[g]));
    }
    b->d = sp_q_to_f16(amax / 127.0f);
    float d = sp_q_f16(b->d);
    int q[SP_QKK];
    for (int g = 0; g < 16; g++) {
        b->scales[g] = (int8_t)clampi(nearest(sc[g] * inv_or_zero(d)), -127, 127);
        float is = inv_or_zero(d * b->scales[g]);
        for (int l = 0; l < 16; l++)
            q[16 * g + l] = clampi(nearest(x[16 * g + l] * is), -32, 31) + 32;
    }
    for (int h = 0; h < 2; h++) {
        const int *v = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            b->ql[64 * h + l] = (uint8_t)((v[l] & 0x0f) | (v[l + 64] & 0x0f) << 4);
            b->ql[64 * h + l + 32] = (uint8_t)((v[l + 32] & 0x0f) | (v[l + 96] & 0x0f) << 4);
            b->qh[32 * h + l] = (uint8_t)((v[l] >> 4) | (v[l + 32] >> 4) << 2 |
                                          (v[l + 64] >> 4) << 4 | (v[l + 96] >> 4) << 6);
        }
    }
}

int sp_quant_quantize(sp_dtype t, const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    switch (t) {
    case SP_Q8_0:
        for (int64_t i = 0; i < n / SP_QK; i++) quant_q8_0(src + 32 * i, (sp_block_q8_0 *)p + i);
        return 1;
    case SP_Q4_0:
        for (int64_t i = 0; i < n / SP_QK; i++) quant_q4_0(src + 32 * i, (sp_block_q4_0 *)p + i);
        return 1;
    case SP_Q4_1:
        for (int64_t i = 0; i < n / SP_QK; i++) quant_q4_1(src + 32 * i, (sp_block_q4_1 *)p + i);
        return 1;
    case SP_Q5_0:
        for (int64_t i = 0; i < n / SP_QK; i++) quant_q5_0(src + 32 * i, (sp_block_q5_0 *)p + i);
        return 1;
    case SP_Q4_K:
        for (int64_t i = 0; i < n / SP_QKK; i++)
            quant_q4_k(src + SP_QKK * i, (sp_block_q4_k *)p + i);
        return 1;
    case SP_Q5_K:
        for (int64_t i = 0; i < n / SP_QKK; i++)
            quant_q5_k(src + SP_QKK * i, (sp_block_q5_k *)p + i);
        return 1;
    case SP_Q6_K:
        for (int64_t i = 0; i < n / SP_QKK; i++)
            quant_q6_k(src + SP_QKK * i, (sp_block_q6_k *)p + i);
        return 1;
    /* activation types: llama.cpp's own rounding */
    case SP_Q8_1:
        sp_quant_act_q8_1_scalar(src, dst, n);
        return 1;
    case SP_Q8_K:
        sp_quant_act_q8_k_scalar(src, dst, n);
        return 1;
    default:
        return 0;
    }
}
