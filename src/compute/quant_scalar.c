/* Scalar activation quantizers and dot kernels: the reference that the
 * SIMD kernels are tested against. Every block's integer dot product is
 * exact; only the f32 accumulation across blocks may differ by ISA. */
#include <math.h>

#include "compute/quant_internal.h"

/* ---- activation quantizers ------------------------------------------------
 * These reproduce what llama.cpp does on x86 (its fixtures' logits depend
 * on it): Q8_0/Q8_1 scale by 127/amax and round half to even (AVX
 * vroundps), storing d = amax/127 as f16; Q8_1 adds s = d*sum(q) as f16.
 * Q8_K (quantize_row_q8_K_ref) scales by -127/max where max is the signed
 * value of largest magnitude, rounds half to even, caps at 127 and keeps
 * d = 1/iscale in f32 (so d is negative when max is positive). */

static float block_amax(const float *x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    return amax;
}

static int q8_block(const float *x, int8_t *qs, uint16_t *d16) {
    float amax = block_amax(x, SP_QK);
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    *d16 = sp_q_to_f16(amax / 127.0f);
    int sum = 0;
    for (int j = 0; j < SP_QK; j++) {
        int v = (int)rintf(x[j] * id);
        qs[j] = (int8_t)v;
        sum += v;
    }
    return sum;
}

void sp_quant_act_q8_0_scalar(const float *x, void *xq, int64_t n) {
    sp_block_q8_0 *y = xq;
    for (int64_t i = 0; i < n / SP_QK; i++) q8_block(x + SP_QK * i, y[i].qs, &y[i].d);
}

void sp_quant_act_q8_1_scalar(const float *x, void *xq, int64_t n) {
    sp_block_q8_1 *y = xq;
    for (int64_t i = 0; i < n / SP_QK; i++) {
        const float *xb = x + SP_QK * i;
        int sum = q8_block(xb, y[i].qs, &y[i].d);
        /* llama.cpp uses the unrounded d = amax/127 here */
        y[i].s = sp_q_to_f16(block_amax(xb, SP_QK) / 127.0f * (float)sum);
    }
}

void sp_quant_act_q8_k_scalar(const float *x, void *xq, int64_t n) {
    sp_block_q8_k *y = xq;
    for (int64_t i = 0; i < n / SP_QKK; i++, x += SP_QKK) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < SP_QKK; j++) {
            if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
        }
        memset(&y[i], 0, sizeof(y[i]));
        if (amax == 0.0f) continue;
        float iscale = -127.0f / max;
        for (int j = 0; j < SP_QKK; j++) {
            int v = (int)rintf(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int g = 0; g < SP_QKK / 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += y[i].qs[16 * g + l];
            y[i].bsums[g] = (int16_t)s;
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ---- dot kernels ---------------------------------------------------------- */

static float dot_q8_0(int64_t n, const void *w, const void *xq) {
    const sp_block_q8_0 *x = w;
    const sp_block_q8_0 *y = xq;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SP_QK; i++) {
        int s = 0;
        for (int j = 0; j < SP_QK; j++) s += x[i].qs[j] * y[i].qs[j];
        sum += (float)s * (sp_q_f16(x[i].d) * sp_q_f16(y[i].d));
    }
    return sum;
}

static float dot_q4_0(int64_t n, const void *w, const void *xq) {
    const sp_block_q4_0 *x = w;
    const sp_block_q8_0 *y = xq;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SP_QK; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++) {
            s += ((x[i].qs[j] & 0x0f) - 8) * y[i].qs[j];
            s += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        }
        sum += (float)s * (sp_q_f16(x[i].d) * sp_q_f16(y[i].d));
    }
    return sum;
}

/* sum_j (d q_j + m) (dy y_j) = d dy sum q_j y_j + m * s, s = dy * sum y_j */
static float dot_q4_1(int64_t n, const void *w, const void *xq) {
    const sp_block_q4_1 *x = w;
    const sp_block_q8_1 *y = xq;
    float sum = 0.0f, msum = 0.0f;
    for (int64_t i = 0; i < n / SP_QK; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++) {
            s += (x[i].qs[j] & 0x0f) * y[i].qs[j];
            s += (x[i].qs[j] >> 4) * y[i].qs[j + 16];
        }
        sum += (float)s * (sp_q_f16(x[i].d) * sp_q_f16(y[i].d));
        msum += sp_q_f16(x[i].m) * sp_q_f16(y[i].s);
    }
    return sum + msum;
}

static float dot_q5_0(int64_t n, const void *w, const void *xq) {
    const sp_block_q5_0 *x = w;
    const sp_block_q8_0 *y = xq;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SP_QK; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        int s = 0;
        for (int j = 0; j < 16; j++) {
            int lo = (x[i].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
            int hi = (x[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            s += (lo - 16) * y[i].qs[j] + (hi - 16) * y[i].qs[j + 16];
        }
        sum += (float)s * (sp_q_f16(x[i].d) * sp_q_f16(y[i].d));
    }
    return sum;
}

/* Q4_K/Q5_K: sum over sub-blocks j of (d sc_j q - dmin m_j) . (dy y)
 *   = dy (d sum_j sc_j (q.y)_j - dmin sum_j m_j ysum_j), ysum_j from bsums. */
static float dot_kq(int64_t n, const void *w, const void *xq, int five) {
    const sp_block_q8_k *y = xq;
    size_t stride = five ? sizeof(sp_block_q5_k) : sizeof(sp_block_q4_k);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SP_QKK; i++) {
        const uint8_t *blk = (const uint8_t *)w + (size_t)i * stride;
        const sp_block_q4_k *b4 = (const sp_block_q4_k *)blk;
        const sp_block_q5_k *b5 = (const sp_block_q5_k *)blk;
        const uint8_t *qs = five ? b5->qs : b4->qs;
        int isum = 0, msum = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            sp_kq_scale_min(j, b4->scales, &sc, &m); /* same offset in both */
            int c = j / 2, s = 0;
            for (int l = 0; l < 32; l++) {
                int q = (j & 1) ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 0x0f;
                if (five) q |= ((b5->qh[l] >> j) & 1) << 4;
                s += q * y[i].qs[32 * j + l];
            }
            isum += sc * s;
            msum += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        float d = y[i].d * sp_q_f16(b4->d), dmin = y[i].d * sp_q_f16(b4->dmin);
        sum += d * (float)isum - dmin * (float)msum;
    }
    return sum;
}

static float dot_q4_k(int64_t n, const void *w, const void *xq) {
    return dot_kq(n, w, xq, 0);
}
static float dot_q5_k(int64_t n, const void *w, const void *xq) {
    return dot_kq(n, w, xq, 1);
}

static float dot_q6_k(int64_t n, const void *w, const void *xq) {
    const sp_block_q6_k *x = w;
    const sp_block_q8_k *y = xq;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SP_QKK; i++) {
        float v[SP_QKK]; /* unit-scale levels via the reference decoder */
        sp_block_q6_k unit = x[i];
        unit.d = 0x3c00; /* 1.0 */
        for (int g = 0; g < 16; g++) unit.scales[g] = 1;
        sp_quant_dequantize(SP_Q6_K, &unit, v, SP_QKK);
        int isum = 0;
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += (int)v[16 * g + l] * y[i].qs[16 * g + l];
            isum += x[i].scales[g] * s;
        }
        sum += y[i].d * sp_q_f16(x[i].d) * (float)isum;
    }
    return sum;
}

static const sp_quant_kernels k_q8_0 = {SP_Q8_0, sp_quant_act_q8_0_scalar, dot_q8_0};
static const sp_quant_kernels k_q4_0 = {SP_Q8_0, sp_quant_act_q8_0_scalar, dot_q4_0};
static const sp_quant_kernels k_q4_1 = {SP_Q8_1, sp_quant_act_q8_1_scalar, dot_q4_1};
static const sp_quant_kernels k_q5_0 = {SP_Q8_0, sp_quant_act_q8_0_scalar, dot_q5_0};
static const sp_quant_kernels k_q4_k = {SP_Q8_K, sp_quant_act_q8_k_scalar, dot_q4_k};
static const sp_quant_kernels k_q5_k = {SP_Q8_K, sp_quant_act_q8_k_scalar, dot_q5_k};
static const sp_quant_kernels k_q6_k = {SP_Q8_K, sp_quant_act_q8_k_scalar, dot_q6_k};

const sp_quant_kernels *sp_quant_scalar_table(sp_dtype t) {
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
