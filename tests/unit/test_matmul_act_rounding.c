/* SP_PREC_FAST on quantized weights rounds the activations to the weight
 * type's partner format (Q8_0 / Q8_1 / Q8_K) on every path -- one token
 * (integer dots), a few tokens (dequantizing path) and prefill (panel or
 * integer-panel GEMM) -- exactly as llama.cpp does before every quantized
 * product. The reference here is computed in double from the dequantized
 * weights and the activations quantized by the type's own quantize_act and
 * dequantized again: every path must land on it within float summation
 * error (1e-5 of sum |w x|), while the same product with unrounded f32
 * activations (SP_PREC_F32) is far from it, so the test fails if a path
 * skips the rounding (measured: 4e-4 to 9e-4 of sum |w x| on these random
 * rows). Q4_1's integer dot uses Q8_1's f16 block sum instead of the rounded
 * values' exact sum (llama.cpp's definition), which moves it by up to ~1e-4
 * of sum |w x| (measured 6e-5 to 9e-5): Q4_1 gets 2e-4. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "isa_levels.h"
#include "test_rand.h"
#include "compute/ops.h"
#include "compute/pool.h"
#include "compute/quant.h"
#include "compute/tensor.h"

#define OUT 40
#define IN  512

typedef struct ref {
    double *y, *mag; /* [T][OUT]: reference and sum |w x| */
} ref;

/* The reference product with activations rounded by quantize_act. */
static void reference(sp_dtype t, const float *wf, const float *x, int T, ref *r) {
    const sp_quant_kernels *qk = sp_quant_get(t, sp_ops_isa());
    void *q = malloc(sp_dtype_row_bytes(qk->act_type, IN));
    float xr[IN];
    for (int k = 0; k < T; k++) {
        qk->quantize_act(x + (size_t)k * IN, q, IN);
        sp_quant_dequantize(qk->act_type, q, xr, IN);
        for (int o = 0; o < OUT; o++) {
            double s = 0, m = 0;
            for (int i = 0; i < IN; i++) {
                s += (double)wf[(size_t)o * IN + i] * xr[i];
                m += fabs((double)wf[(size_t)o * IN + i] * xr[i]);
            }
            r->y[(size_t)k * OUT + o] = s, r->mag[(size_t)k * OUT + o] = m;
        }
    }
    free(q);
}

/* Largest |y - ref| / sum |w x| over all outputs. */
static double worst(const float *y, const ref *r, int T) {
    double w = 0;
    for (int i = 0; i < T * OUT; i++) {
        double e = fabs(y[i] - r->y[i]) / (r->mag[i] + 1e-30);
        if (e > w) w = e;
    }
    return w;
}

static void one_type(sp_dtype t, sp_pool *pool) {
    const int Ts[] = {1, 3, 8, 40}; /* integer dots, dequantizing, panel paths */
    size_t rb = sp_dtype_row_bytes(t, IN);
    char *wq = malloc(rb * OUT);
    float *wf = malloc(sizeof(float) * OUT * IN), *x = malloc(sizeof(float) * 40 * IN);
    float *y = malloc(sizeof(float) * 40 * OUT);
    ref r = {malloc(sizeof(double) * 40 * OUT), malloc(sizeof(double) * 40 * OUT)};
    for (int i = 0; i < OUT * IN; i++) wf[i] = frand(-1, 1);
    for (int o = 0; o < OUT; o++) {
        CHECKF(sp_quantize_row(t, wf + (size_t)o * IN, wq + rb * o, IN), "%s: quantize",
               sp_dtype_name(t));
        sp_dequantize_row(t, wq + rb * o, wf + (size_t)o * IN, IN);
    }
    for (int i = 0; i < 40 * IN; i++) x[i] = frand(-2, 2);
    sp_tensor W = {.dtype = t, .ndim = 2, .shape = {OUT, IN}, .data = wq, .nbytes = rb * OUT};
    for (size_t k = 0; k < sizeof Ts / sizeof Ts[0]; k++) {
        int T = Ts[k];
        reference(t, wf, x, T, &r);
        /* one token at a time, then all T in one call */
        for (int tok = 0; tok < T; tok++)
            sp_matmul(pool, y + (size_t)tok * OUT, x + (size_t)tok * IN, 1, &W, NULL, SP_PREC_FAST);
        double e1 = worst(y, &r, T);
        sp_matmul(pool, y, x, T, &W, NULL, SP_PREC_FAST);
        double eb = worst(y, &r, T);
        sp_matmul(pool, y, x, T, &W, NULL, SP_PREC_F32);
        double ef = worst(y, &r, T);
        double tol = t == SP_Q4_1 ? 2e-4 : 1e-5;
        printf("| %-5s | %-6s | T=%2d | one token %.1e | batch %.1e (both <= %.0e) | f32 "
               "activations %.1e (>= 3e-4) |\n",
               sp_dtype_name(t), sp_isa_name(sp_ops_isa()), T, e1, eb, tol, ef);
        CHECKF(e1 <= tol, "%s T=%d: one-token fast path off the rounded-activation product by %.3g",
               sp_dtype_name(t), T, e1);
        CHECKF(eb <= tol, "%s T=%d: batched fast path off the rounded-activation product by %.3g",
               sp_dtype_name(t), T, eb);
        CHECKF(ef >= 3e-4,
               "%s T=%d: f32 activations only %.3g from the rounded product: the test "
               "cannot tell the paths apart",
               sp_dtype_name(t), T, ef);
    }
    free(wq), free(wf), free(x), free(y), free(r.y), free(r.mag);
}

int main(void) {
    sp_ops_init();
    const sp_dtype types[] = {SP_Q8_0, SP_Q4_0, SP_Q4_1, SP_Q5_0, SP_Q4_K, SP_Q5_K, SP_Q6_K};
    sp_pool *pool = sp_pool_create(2);
    CHECK(pool != NULL);
    for (int lvl = SP_ISA_SCALAR; lvl < SP_ISA_LEVELS; lvl++) {
        if (!isa_enter("test_matmul_act_rounding", lvl)) continue;
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) one_type(types[i], pool);
    }
    sp_pool_destroy(pool);
    return check_summary("test_matmul_act_rounding");
}
