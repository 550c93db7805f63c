/* The integer prefill GEMM (SP_PREC_FAST, Q8_0 / Q4_0 / Q4_K weights, T >=
 * 32): every output against a double-precision sum over the exact weight
 * values and the exact Q8_0- (Q4_K: Q8_K-) quantized activation values (the
 * type's own quantize_act, dequantized by the reference), so the only error
 * allowed is
 * f32 rounding of the per-block scale steps. Shapes cross the kernel's
 * edges: token counts off the 6-token groups and past one token block,
 * rows off the 16-row panel, blocks off the 8-block slice, rows longer than
 * the activation chunk; plain and row-interleaved (packed) weights; no pool
 * and 2 threads. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "isa_levels.h"
#include "test_rand.h"
#include "compute/ops.h"
#include "compute/quant.h"

/* x as the kernel sees it: each row quantized to the partner type and back. */
static void quantized_x(sp_dtype wt, const float *x, int T, int in, float *xr) {
    const sp_quant_kernels *qk = sp_quant_get(wt, sp_ops_isa());
    size_t rb = sp_dtype_row_bytes(qk->act_type, in);
    char *q = malloc(rb);
    for (int t = 0; t < T; t++) {
        qk->quantize_act(x + (size_t)t * in, q, in);
        sp_quant_dequantize(qk->act_type, q, xr + (size_t)t * in, in);
    }
    free(q);
}

static void run_case(sp_pool *pool, sp_dtype wt, int T, int out, int in, int packed) {
    size_t rb = sp_dtype_row_bytes(wt, in);
    char *wq = malloc(rb * out);
    float *wf = malloc(sizeof(float) * out * in), *x = malloc(sizeof(float) * T * in);
    float *xr = malloc(sizeof(float) * T * in), *y = malloc(sizeof(float) * T * out);
    float *bias = malloc(sizeof(float) * out);
    for (int i = 0; i < out * in; i++) wf[i] = frand(-1, 1);
    for (int i = 0; i < T * in; i++) x[i] = frand(-2, 2) * (i % 7 == 0 ? 4.0f : 1.0f);
    for (int o = 0; o < out; o++) {
        bias[o] = frand(-1, 1);
        CHECK(sp_quantize_row(wt, wf + (size_t)o * in, wq + rb * o, in));
        sp_dequantize_row(wt, wq + rb * o, wf + (size_t)o * in, in); /* exact values */
    }
    quantized_x(wt, x, T, in, xr);
    if (packed) CHECK(sp_quant_pack(wt, wq, out, in));
    sp_tensor W = {.dtype = wt, .ndim = 2, .shape = {out, in}, .data = wq, .packed = packed};
    W.nbytes = rb * out;
    sp_matmul(pool, y, x, T, &W, bias, SP_PREC_FAST);
    int bad = 0;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double s = bias[o], sa = fabs(bias[o]);
            for (int k = 0; k < in; k++) {
                double p = (double)wf[(size_t)o * in + k] * xr[(size_t)t * in + k];
                s += p, sa += fabs(p);
            }
            double got = y[(size_t)t * out + o];
            if (!(fabs(got - s) <= 2e-6 * sa + 1e-6) && bad++ < 3)
                CHECKF(0, "%s T=%d out=%d in=%d packed=%d pool=%d: y[%d][%d] %.7g vs %.7g",
                       sp_dtype_name(wt), T, out, in, packed, sp_pool_size(pool), t, o, got, s);
        }
    CHECK(bad == 0);
    free(wq), free(wf), free(x), free(xr), free(y), free(bias);
}

int main(void) {
    sp_ops_init();
    sp_pool *pool2 = sp_pool_create(2);
    static const int shapes[][3] = {/* T, out, in */
                                    {32, 16, 256}, {37, 24, 288}, {301, 40, 64},
                                    {67, 8, 2080}, {96, 19, 96},  {599, 32, 320}};
    /* Q4_K: 256-value super-blocks; 2560 crosses the activation chunk */
    static const int kshapes[][3] = {{32, 16, 256}, {37, 24, 512}, {301, 40, 256},
                                     {67, 8, 2560}, {96, 19, 256}, {599, 32, 512}};
    const sp_dtype types[] = {SP_Q8_0, SP_Q4_0, SP_Q4_K};
    /* the levels without an integer GEMM for a type: their dequantizing path
     * must land on the same rounded-activation sums */
    for (int lvl = SP_ISA_SCALAR; lvl < SP_ISA_LEVELS; lvl++) {
        if (!isa_enter("test_compute_ipanel", lvl)) continue;
        for (size_t ti = 0; ti < 3; ti++)
            for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                const int *sh = types[ti] == SP_Q4_K ? kshapes[si] : shapes[si];
                int T = sh[0], out = sh[1], in = sh[2];
                run_case(NULL, types[ti], T, out, in, 0);
                run_case(pool2, types[ti], T, out, in, 0);
                if (out % SP_PACK_ROWS == 0) run_case(pool2, types[ti], T, out, in, 1);
            }
    }
    sp_pool_destroy(pool2);
    return check_summary("test_compute_ipanel");
}
