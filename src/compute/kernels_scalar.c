/* Scalar reference kernels: the definitions the SIMD versions are tested
 * against. Plain loops, f32 accumulation, libm transcendental functions. */
#include <math.h>
#include <stdint.h>

#include "compute/kernels.h"

static float dot_f32(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static void scale(float *y, float a, int n) {
    for (int i = 0; i < n; i++) y[i] *= a;
}

/* PyTorch fp32 order: r = 1/sqrt(sum/n + eps); y = (x * r) * w. The
 * squares (rounded to f32) are summed in double and the mean rounded to f32
 * once, as llama.cpp's CPU rms_norm does: r then has the same bits as
 * llama.cpp's for any summation order (bar a double-rounding coincidence),
 * so when activations are rounded to int8
 * next (quantized weights), values that land exactly on a rounding tie
 * (a quantized embedding row through a norm of unit weights does this
 * often) round the same way as in llama.cpp. A float sum differs in the
 * last bit now and then and flipped such ties. */
static void rmsnorm(float *y, const float *x, const float *w, int n, float eps, int one_plus) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)(x[i] * x[i]);
    float r = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) {
        float v = x[i] * r;
        if (w) v *= one_plus ? 1.0f + w[i] : w[i];
        y[i] = v;
    }
}

static void rope(float *x, int n_heads, int head_dim, int rot_dim, int n_pairs, const float *cos,
                 const float *sin, int interleaved) {
    int half = rot_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < n_pairs; i++) {
            int i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
            float a = v[i0], b = v[i1];
            v[i0] = a * cos[i] - b * sin[i];
            v[i1] = a * sin[i] + b * cos[i];
        }
    }
}

static void softmax(float *x, int n) {
    if (n <= 0) return;
    float m = x[0];
    for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    float s = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        s += x[i];
    }
    float inv = 1.0f / s;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

static void silu_mul(float *g, const float *u, int n) {
    for (int i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void gelu_tanh_mul(float *g, const float *u, int n) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    for (int i = 0; i < n; i++) {
        float x = g[i];
        g[i] = 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x))) * u[i];
    }
}

static void softcap(float *x, int n, float cap) {
    for (int i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}

static float weight_at(sp_dtype wt, const void *row, int k) {
    switch (wt) {
    case SP_F16:
        return sp_f16_to_f32(((const uint16_t *)row)[k]);
    case SP_BF16:
        return sp_bf16_to_f32(((const uint16_t *)row)[k]);
    default:
        return ((const float *)row)[k];
    }
}

static void gemm(sp_dtype wt, int rows, int toks, int n, const void *w, size_t w_stride,
                 const float *x, size_t x_stride, float *y, size_t y_stride) {
    for (int r = 0; r < rows; r++) {
        const char *row = (const char *)w + (size_t)r * w_stride;
        for (int t = 0; t < toks; t++) {
            const float *xt = x + (size_t)t * x_stride;
            float s = 0.0f;
            for (int k = 0; k < n; k++) s += weight_at(wt, row, k) * xt[k];
            y[(size_t)t * y_stride + r] += s;
        }
    }
}

static float exp_shift_sum(float *x, int n, float m) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += x[i] = expf(x[i] - m);
    return s;
}

static void weighted_rows(float *acc, const float *p, const float *const *rows, int n, int dim) {
    for (int j = 0; j < n; j++)
        for (int d = 0; d < dim; d++) acc[d] += p[j] * rows[j][d];
}

const sp_kernel_table sp_kernels_scalar = {
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
};
