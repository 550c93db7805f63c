/* Dot kernels of every weight type:
 *  1. every SIMD level this CPU has vs the scalar kernels (activation
 *     quantization byte-identical, dots equal up to f32 summation order);
 *  2. the scalar dot vs a double-precision dot of the dequantized weight
 *     row and the dequantized activation (must agree to rounding);
 *  3. the dot vs the dequantized weights times the original f32
 *     activations (must agree within the activation rounding error).
 * Weight blocks are random bytes (every bit pattern of levels, scales and
 * packed 6-bit scales) with finite random f16 scale fields. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "compute/dtype.h"
#include "compute/ops.h"
#include "compute/quant.h"

static uint64_t g_rng = 0x243f6a8885a308d3ull;

static uint64_t next(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return g_rng;
}
static double urand(void) {
    return (double)(next() >> 11) / 9007199254740992.0;
}
static float grand(void) {
    double u = urand() + 1e-12, v = urand();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

typedef struct {
    sp_dtype t;
    int block, bytes;
    int f16_at[2]; /* offsets of f16 scale fields in a block (-1: none) */
} wtype;

static const wtype k_types[] = {
    {SP_Q8_0, 32, 34, {0, -1}},     {SP_Q4_0, 32, 18, {0, -1}},  {SP_Q4_1, 32, 20, {0, 2}},
    {SP_Q5_0, 32, 22, {0, -1}},     {SP_Q4_K, 256, 144, {0, 2}}, {SP_Q5_K, 256, 176, {0, 2}},
    {SP_Q6_K, 256, 210, {208, -1}},
};

static int act_bytes(sp_dtype a) {
    return a == SP_Q8_0 ? 34 : a == SP_Q8_1 ? 36 : 292;
}
static int act_block(sp_dtype a) {
    return a == SP_Q8_K ? 256 : 32;
}

static void random_row(const wtype *w, uint8_t *row, int n) {
    for (int i = 0; i < n / w->block * w->bytes; i++) row[i] = (uint8_t)next();
    for (int b = 0; b < n / w->block; b++) {
        for (int f = 0; f < 2; f++) {
            if (w->f16_at[f] < 0) continue;
            float v = (float)(urand() * 2.0 - 1.0) * (w->block == 32 ? 0.01f : 0.001f);
            uint16_t h = sp_f32_to_f16(v);
            memcpy(row + b * w->bytes + w->f16_at[f], &h, 2);
        }
    }
}

/* tolerance of |fast - scalar|: f32 accumulation in a different order */
static double sum_abs_products(const float *a, const float *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += fabs((double)a[i] * b[i]);
    return s;
}

/* Worst-case |sum w (xq - x)| where xq is the activation after rounding:
 * per value |xq - x| <= d/2 from rounding to the grid plus up to 127 d
 * 2^-11 where the stored scale is f16 (Q8_0/Q8_1); Q8_K's f32 scale adds
 * nothing. Q4_1 also multiplies its offset m by s = f16(d*sum q): up to
 * |m s| 2^-11 more per block, and m times the rounding of the whole block. */
static double act_error_bound(const wtype *w, sp_dtype at, const uint8_t *row, const float *wd,
                              const float *x, int n) {
    double bound = 0;
    int ab = act_block(at);
    for (int b = 0; b < n / ab; b++) {
        double amax = 0;
        for (int j = 0; j < ab; j++) amax = fmax(amax, fabs(x[b * ab + j]));
        double d = amax / 127.0;
        double e = at == SP_Q8_K ? 0.5 * d * (1 + 1e-6) : 0.5 * d + 127.0 * d / 2048.0;
        for (int j = 0; j < ab; j++) bound += fabs(wd[b * ab + j]) * e;
        if (w->t == SP_Q4_1) {
            uint16_t mh;
            memcpy(&mh, row + b * w->bytes + 2, 2);
            double m = fabs(sp_f16_to_f32(mh));
            bound += m * (32 * e + 128.0 * 32 * d / 2048.0);
        }
    }
    return bound;
}

/* Q4_1: m*s, with s = f16(d*sum q) and d unrounded, vs m*d16*sum q of the
 * dequantized activation: both within 2^-11 relative of d*sum q, and
 * |d sum q| <= 32*127*d. */
static double q4_1_offset_tol(const uint8_t *row, const uint8_t *xq, int n) {
    double tol = 0;
    for (int b = 0; b < n / 32; b++) {
        uint16_t mh, dh;
        memcpy(&mh, row + b * 20 + 2, 2);
        memcpy(&dh, xq + b * 36, 2);
        tol += fabs(sp_f16_to_f32(mh)) * 32 * 127 * sp_f16_to_f32(dh) * (1.0 + 1e-3) * 2.0 / 2048;
    }
    return tol;
}

typedef struct {
    int tested[3];
} isa_report;

static void test_type(const wtype *w, int n, int rows, isa_report *rep) {
    const sp_quant_kernels *ref = sp_quant_get(w->t, SP_ISA_SCALAR);
    CHECK(ref != NULL);
    if (!ref) return;
    sp_dtype at = ref->act_type;
    int rb = n / w->block * w->bytes, xb = n / act_block(at) * act_bytes(at);
    uint8_t *W = malloc((size_t)rb * rows), *xq = malloc(xb), *xq2 = malloc(xb);
    float *x = malloc(n * sizeof(float)), *wd = malloc(n * sizeof(float));
    float *xd = malloc(n * sizeof(float));
    for (int r = 0; r < rows; r++) random_row(w, W + (size_t)r * rb, n);
    for (int i = 0; i < n; i++) x[i] = grand() * (i % 64 == 3 ? 8.0f : 1.0f);
    ref->quantize_act(x, xq, n);
    sp_quant_dequantize(at, xq, xd, n);

    double worst_deq = 0, worst_act = 0;
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = W + (size_t)r * rb;
        sp_quant_dequantize(w->t, row, wd, n);
        float got = ref->dot(n, row, xq);
        double mag = sum_abs_products(wd, xd, n);
        /* 2: against the dequantized activation; Q4_1's m*s uses the
         * unrounded d, up to 2^-11 relative per block apart */
        double exact = 0;
        for (int i = 0; i < n; i++) exact += (double)wd[i] * xd[i];
        double tol = 1e-5 * mag + 1e-6;
        if (w->t == SP_Q4_1) tol += q4_1_offset_tol(row, xq, n);
        CHECKF(fabs(got - exact) <= tol, "%s row %d: dot %.7g vs dequantized %.7g (tol %g)",
               sp_dtype_name(w->t), r, got, exact, tol);
        worst_deq = fmax(worst_deq, fabs(got - exact) / (mag + 1e-30));
        /* 3: against f32 activations */
        double f32dot = 0;
        for (int i = 0; i < n; i++) f32dot += (double)wd[i] * x[i];
        double bound = act_error_bound(w, at, row, wd, x, n) + 1e-5 * mag;
        CHECKF(fabs(got - f32dot) <= bound, "%s row %d: dot %.7g vs f32 %.7g (bound %g)",
               sp_dtype_name(w->t), r, got, f32dot, bound);
        worst_act = fmax(worst_act, fabs(got - f32dot) / bound);
    }

    /* 1: every SIMD level against scalar */
    for (int isa = SP_ISA_AVX2; isa <= SP_ISA_AVX512; isa++) {
        if (isa > (int)sp_ops_cpu_max()) continue;
        const sp_quant_kernels *k = sp_quant_get(w->t, (sp_isa)isa);
        if (isa == SP_ISA_AVX512 && k == sp_quant_get(w->t, SP_ISA_AVX2)) continue;
        rep->tested[isa] = 1;
        CHECK(k->act_type == at);
        memset(xq2, 0xa5, xb);
        k->quantize_act(x, xq2, n);
        CHECKF(memcmp(xq, xq2, xb) == 0, "%s %s: activation quantization differs from scalar",
               sp_dtype_name(w->t), sp_isa_name((sp_isa)isa));
        for (int r = 0; r < rows; r++) {
            const uint8_t *row = W + (size_t)r * rb;
            sp_quant_dequantize(w->t, row, wd, n);
            double mag = sum_abs_products(wd, xd, n);
            float a = ref->dot(n, row, xq), b = k->dot(n, row, xq);
            CHECKF(fabs((double)a - b) <= 2e-6 * mag + 1e-7, "%s %s row %d: %.8g vs scalar %.8g",
                   sp_dtype_name(w->t), sp_isa_name((sp_isa)isa), r, b, a);
        }
    }
    fprintf(stderr, "  %-5s n=%-5d worst |dot-deq|/sum|wx| %.2e, worst |dot-f32dot|/bound %.3f\n",
            sp_dtype_name(w->t), n, worst_deq, worst_act);
    free(W), free(xq), free(xq2), free(x), free(wd), free(xd);
}

/* Activations of all-zero blocks and ties of +max/-max (the first wins in
 * Q8_K) quantize identically at every level. */
static void test_act_edge_cases(void) {
    float x[512];
    for (int i = 0; i < 512; i++) x[i] = i < 256 ? 0.0f : (float)((i * 37) % 11) - 5.0f;
    x[300] = 9.0f, x[301] = -9.0f;
    sp_dtype types[3] = {SP_Q4_0, SP_Q4_1, SP_Q4_K};
    for (int k = 0; k < 3; k++) {
        const sp_quant_kernels *ref = sp_quant_get(types[k], SP_ISA_SCALAR);
        uint8_t a[600], b[600];
        int bytes = 512 / act_block(ref->act_type) * act_bytes(ref->act_type);
        ref->quantize_act(x, a, 512);
        for (int isa = SP_ISA_AVX2; isa <= (int)sp_ops_cpu_max(); isa++) {
            sp_quant_get(types[k], (sp_isa)isa)->quantize_act(x, b, 512);
            CHECKF(memcmp(a, b, bytes) == 0, "%s act edge cases at %s", sp_dtype_name(types[k]),
                   sp_isa_name((sp_isa)isa));
        }
        if (ref->act_type == SP_Q8_K) {
            float d;
            memcpy(&d, a + 292, 4);
            CHECK(d == 1.0f / (-127.0f / 9.0f)); /* +9 came first */
        }
    }
}

int main(void) {
    isa_report rep = {{1, 0, 0}};
    for (size_t k = 0; k < sizeof(k_types) / sizeof(k_types[0]); k++) {
        test_type(&k_types[k], 4096, 48, &rep);
        test_type(&k_types[k], 1280, 16, &rep);
        if (k_types[k].block == 32) test_type(&k_types[k], 32 * 7, 16, &rep); /* odd block count */
    }
    test_act_edge_cases();
    for (int isa = SP_ISA_AVX2; isa <= SP_ISA_AVX512; isa++) {
        if (rep.tested[isa])
            fprintf(stderr, "ISA %s: tested against scalar\n", sp_isa_name((sp_isa)isa));
        else if (isa <= (int)sp_ops_cpu_max())
            fprintf(stderr,
                    "ISA %s: this CPU lacks AVX-512 VNNI, quant kernels fall back to avx2 "
                    "(NOT tested here)\n",
                    sp_isa_name((sp_isa)isa));
        else
            fprintf(stderr, "ISA %s: unavailable on this CPU (NOT tested here)\n",
                    sp_isa_name((sp_isa)isa));
    }
    return check_summary("test_quant_dot");
}
