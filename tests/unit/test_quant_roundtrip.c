/* Quantize -> dequantize round trips of every weight type on random data,
 * and the activation quantizers' rounding (llama.cpp's, which the GGUF
 * fixtures' logits depend on) on hand-made inputs. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "compute/quant.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static double urand(void) { /* [0, 1) */
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

static float grand(void) { /* standard normal (Box-Muller) */
    double u = urand() + 1e-12, v = urand();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

typedef struct {
    sp_dtype t;
    int block;
    /* worst error of one value, in units of the block's max |x| */
    double max_rel;
    /* rms error / rms of the data, for N(0,1) data */
    double rms_rel;
} rt_case;

/* Bounds. 32-wide types: a grid step of amax/127 (Q8_0), amax/8 (Q4_0,
 * Q5_0 use amax/16; the extreme of the opposite sign can be clamped by one
 * full step), (max-min)/15 (Q4_1) -> worst error = half a step, or one
 * step where clamping applies; rms error of uniform rounding is
 * step/sqrt(12). For N(0,1) blocks of 32, amax is about 2.1-2.5, so the
 * rms bounds below are ~1.3x the step/sqrt(12) estimate. k-quants:
 * sub-block steps are smaller than the super-block's amax would give, but
 * the 6-bit scale/min rounding and the least-squares search (which may
 * clamp outliers) add error; bounds are the 32-wide equivalents plus
 * margin, and rms bounds are what the bit width allows (each extra bit
 * must roughly halve the error: checked by the ordering below). */
static const rt_case k_cases[] = {
    {SP_Q8_0, 32, 0.5 / 127 * 1.01, 0.0065},
    {SP_Q4_0, 32, 1.0 / 8 * 1.01, 0.12},
    {SP_Q5_0, 32, 1.0 / 16 * 1.01, 0.06},
    {SP_Q4_1, 32, 2.0 / 15 * 0.5 * 1.02, 0.085},
    {SP_Q4_K, 256, 0.15, 0.085},
    {SP_Q5_K, 256, 0.075, 0.043},
    {SP_Q6_K, 256, 0.04, 0.021},
};

static void test_roundtrip(const rt_case *c, int scale_kind) {
    enum { N = 256 * 64 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    void *q = malloc(N * 2); /* more than any type needs */
    for (int i = 0; i < N; i++) {
        x[i] = grand();
        if (scale_kind == 1) x[i] = x[i] * 1e-3f + 2e-3f;  /* small, offset */
        if (scale_kind == 2 && i % 97 == 0) x[i] *= 20.0f; /* outliers */
    }
    CHECK(sp_quant_quantize(c->t, x, q, N) == 1);
    sp_quant_dequantize(c->t, q, y, N);
    double se = 0, sx = 0, worst = 0;
    for (int b = 0; b < N / c->block; b++) {
        double amax = 0;
        for (int j = 0; j < c->block; j++) amax = fmax(amax, fabs(x[b * c->block + j]));
        for (int j = 0; j < c->block; j++) {
            int i = b * c->block + j;
            double e = fabs((double)x[i] - y[i]);
            se += e * e, sx += (double)x[i] * x[i];
            worst = fmax(worst, e / amax);
        }
    }
    double rms = sqrt(se / sx);
    fprintf(stderr, "  %-5s data %d: worst %.4f of block amax (bound %.4f), rms rel %.4f",
            sp_dtype_name(c->t), scale_kind, worst, c->max_rel, rms);
    if (scale_kind == 0) fprintf(stderr, " (bound %.4f)", c->rms_rel);
    fputc('\n', stderr);
    CHECKF(worst <= c->max_rel, "%s: worst error %g", sp_dtype_name(c->t), worst);
    if (scale_kind == 0) CHECKF(rms <= c->rms_rel, "%s: rms %g", sp_dtype_name(c->t), rms);
    free(x), free(y), free(q);
}

/* Blocks of zeros and constants must come back exactly or nearly. */
static void test_constant_blocks(void) {
    for (size_t k = 0; k < sizeof(k_cases) / sizeof(k_cases[0]); k++) {
        float x[256], y[256];
        uint8_t q[512];
        for (int v = 0; v < 3; v++) {
            float val = v == 0 ? 0.0f : v == 1 ? 1.5f : -0.75f;
            for (int i = 0; i < 256; i++) x[i] = val;
            sp_quant_quantize(k_cases[k].t, x, q, 256);
            sp_quant_dequantize(k_cases[k].t, q, y, 256);
            double e = 0;
            for (int i = 0; i < 256; i++) e = fmax(e, fabs(x[i] - y[i]));
            CHECKF(e <= 1e-3 * fabs(val), "%s constant %g: error %g", sp_dtype_name(k_cases[k].t),
                   val, e);
        }
    }
}

/* Q8_0 activations: d = amax/127 (f16), q = x*127/amax rounded half to
 * even. With amax = 127 the multiplier is 1 and the ties are visible. */
static void test_act_q8_0(void) {
    float x[32] = {0};
    x[0] = 127.0f, x[1] = 2.5f, x[2] = 3.5f, x[3] = -2.5f, x[4] = -0.5f, x[5] = 0.5f, x[6] = 1.49f;
    x[7] = -126.5f;
    uint8_t b[34];
    const sp_quant_kernels *k = sp_quant_get(SP_Q4_0, SP_ISA_SCALAR);
    CHECK(k->act_type == SP_Q8_0);
    k->quantize_act(x, b, 32);
    int8_t *qs = (int8_t *)(b + 2);
    CHECK(b[0] == 0x00 && b[1] == 0x3c); /* d = 1.0 */
    CHECK(qs[0] == 127 && qs[1] == 2 && qs[2] == 4 && qs[3] == -2 && qs[4] == 0 && qs[5] == 0);
    CHECK(qs[6] == 1 && qs[7] == -126);
    /* an all-zero block: d = 0, q = 0 */
    memset(x, 0, sizeof(x));
    k->quantize_act(x, b, 32);
    for (int i = 0; i < 34; i++) CHECK(b[i] == 0);
}

/* Q8_1 adds s = d * sum(q) (with the unrounded d) as f16. */
static void test_act_q8_1(void) {
    float x[32] = {0};
    x[0] = -63.5f; /* amax 63.5: d = 0.5, multiplier 2 */
    x[1] = 10.25f, x[2] = 10.75f, x[3] = 0.25f;
    uint8_t b[36];
    const sp_quant_kernels *k = sp_quant_get(SP_Q4_1, SP_ISA_SCALAR);
    CHECK(k->act_type == SP_Q8_1);
    k->quantize_act(x, b, 32);
    int8_t *qs = (int8_t *)(b + 4);
    CHECK(b[0] == 0x00 && b[1] == 0x38); /* d = 0.5 */
    CHECK(qs[0] == -127 && qs[1] == 20 && qs[2] == 22 && qs[3] == 0);
    /* s = 0.5 * (-127 + 20 + 22) = -42.5 = f16 0xd150 */
    CHECK(b[2] == 0x50 && b[3] == 0xd1);
}

/* Q8_K: iscale = -127/max (max = the signed value of largest magnitude),
 * q = min(127, round_half_even(iscale*x)), d = 1/iscale (f32), and
 * bsums = sums of 16. */
static void test_act_q8_k(void) {
    float x[256] = {0};
    x[10] = 127.0f; /* max positive: iscale = -1, d = -1 */
    x[0] = 2.5f, x[1] = -3.5f, x[2] = -126.0f, x[17] = 100.0f, x[255] = -0.5f;
    uint8_t b[292];
    const sp_quant_kernels *k = sp_quant_get(SP_Q6_K, SP_ISA_SCALAR);
    CHECK(k->act_type == SP_Q8_K);
    k->quantize_act(x, b, 256);
    float d;
    memcpy(&d, b, 4);
    int8_t *qs = (int8_t *)(b + 4);
    int16_t bs[16];
    memcpy(bs, b + 260, 32);
    CHECK(d == -1.0f);
    CHECK(qs[0] == -2 && qs[1] == 4 && qs[2] == 126 && qs[10] == -127 && qs[17] == -100);
    CHECK(qs[255] == 0);
    CHECK(bs[0] == -2 + 4 + 126 - 127 && bs[1] == -100 && bs[15] == 0);
}

int main(void) {
    for (size_t k = 0; k < sizeof(k_cases) / sizeof(k_cases[0]); k++)
        for (int s = 0; s < 3; s++) test_roundtrip(&k_cases[k], s);
    test_constant_blocks();
    test_act_q8_0();
    test_act_q8_1();
    test_act_q8_k();
    return check_summary("test_quant_roundtrip");
}
