/* sp_matmul against a double-precision reference: every float weight dtype,
 * token counts on both sides of the kernel's tiles and token blocks, odd
 * shapes, with/without bias, no pool / 2 / 3 threads, every ISA level the CPU
 * has, both precisions. Quantized weights: SP_PREC_F32 against the reference
 * dequantization, SP_PREC_FAST for agreement within activation-rounding
 * error. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "isa_levels.h"
#define TEST_RAND_SEED 0x243f6a8885a308d3ull
#include "test_rand.h"
#include "compute/ops.h"
#include "compute/quant.h"

typedef struct problem {
    int T, out, in;
    sp_dtype wt;
    float *wf; /* the weights as f32 (exactly what the dtype holds) */
    void *wq;  /* the weights in their dtype */
    float *x, *bias, *y;
    double *ref, *tol_abs, *rms;
    double *ref_bx; /* with x rounded to bf16: what a bf16 pair-dot computes */
} problem;

static int make_weights(problem *p) {
    size_t rb = sp_dtype_row_bytes(p->wt, p->in);
    p->wq = malloc(rb * p->out + 64);
    for (int o = 0; o < p->out; o++) {
        float *row = p->wf + (size_t)o * p->in;
        for (int i = 0; i < p->in; i++) row[i] = frand(-1, 1);
        char *dst = (char *)p->wq + rb * o;
        if (!sp_quantize_row(p->wt, row, dst, p->in)) return 0;
        sp_dequantize_row(p->wt, dst, row, p->in); /* exact values the kernel must see */
    }
    return 1;
}

static int setup(problem *p, int T, int out, int in, sp_dtype wt) {
    memset(p, 0, sizeof(*p));
    p->T = T, p->out = out, p->in = in, p->wt = wt;
    p->wf = malloc(sizeof(float) * out * in);
    p->x = malloc(sizeof(float) * T * in);
    p->bias = malloc(sizeof(float) * out);
    p->y = malloc(sizeof(float) * T * out);
    p->ref = malloc(sizeof(double) * T * out);
    p->tol_abs = malloc(sizeof(double) * T * out);
    p->rms = malloc(sizeof(double) * T * out);
    p->ref_bx = malloc(sizeof(double) * T * out);
    for (int i = 0; i < T * in; i++) p->x[i] = frand(-1, 1);
    for (int o = 0; o < out; o++) p->bias[o] = frand(-1, 1);
    if (!make_weights(p)) return 0;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double s = 0, sa = 0, s2 = 0, sb = 0;
            for (int i = 0; i < in; i++) {
                double wv = p->wf[(size_t)o * in + i], xv = p->x[(size_t)t * in + i];
                double v = wv * xv;
                s += v, sa += fabs(v), s2 += v * v;
                sb += wv * sp_bf16_to_f32(sp_f32_to_bf16((float)xv));
            }
            p->ref[t * out + o] = s;
            p->ref_bx[t * out + o] = sb;
            p->tol_abs[t * out + o] = 6e-7 * sqrt((double)in) * sa + 1e-6;
            p->rms[t * out + o] = sqrt(s2);
        }
    return 1;
}

static void teardown(problem *p) {
    free(p->wf), free(p->wq), free(p->x), free(p->bias), free(p->y);
    free(p->ref), free(p->tol_abs), free(p->rms), free(p->ref_bx);
}

/* fast: tolerance from activation rounding (a few per mille of the rms). */
static void run_case(problem *p, sp_pool *pool, int with_bias, sp_precision prec, int fast_quant,
                     const char *pool_name) {
    sp_tensor W = {.dtype = p->wt, .ndim = 2, .shape = {p->out, p->in}, .data = p->wq};
    W.nbytes = sp_dtype_row_bytes(p->wt, p->in) * p->out;
    for (int i = 0; i < p->T * p->out; i++) p->y[i] = NAN; /* every output must be written */
    sp_matmul(pool, p->y, p->x, p->T, &W, with_bias ? p->bias : NULL, prec);
    int bf16_x = p->wt == SP_BF16 && prec == SP_PREC_FAST && sp_ops_has_bf16_dot();
    for (int t = 0; t < p->T; t++)
        for (int o = 0; o < p->out; o++) {
            int i = t * p->out + o;
            double want = (bf16_x ? p->ref_bx[i] : p->ref[i]) + (with_bias ? p->bias[o] : 0.0);
            double tol = fast_quant ? 0.03 * p->rms[i] + 1e-5 : p->tol_abs[i];
            if (!(fabs(p->y[i] - want) <= tol)) {
                CHECKF(
                    0,
                    "%s T=%d out=%d in=%d bias=%d prec=%d pool=%s isa=%s: y[%d][%d]=%.9g want %.9g",
                    sp_dtype_name(p->wt), p->T, p->out, p->in, with_bias, (int)prec, pool_name,
                    sp_isa_name(sp_ops_isa()), t, o, p->y[i], want);
                return;
            }
        }
    CHECK(1);
}

static void test_float_types(sp_pool *pool2, sp_pool *pool3) {
    static const int shapes[][3] = {/* T, out, in */
                                    {1, 1, 1},      {3, 1, 5},     {1, 37, 71},    {3, 37, 71},
                                    {17, 37, 71},   {1, 130, 257}, {3, 130, 257},  {17, 130, 257},
                                    {70, 33, 40},   {1, 20, 1100}, {70, 20, 1100}, {4, 5, 16},
                                    {1100, 40, 300}}; /* two token blocks of the panel GEMM */
    const sp_dtype types[] = {SP_F32, SP_F16, SP_BF16};
    for (size_t ti = 0; ti < 3; ti++)
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            problem p;
            setup(&p, shapes[s][0], shapes[s][1], shapes[s][2], types[ti]);
            for (int bias = 0; bias < 2; bias++)
                for (int prec = 0; prec < 2; prec++) {
                    run_case(&p, NULL, bias, (sp_precision)prec, 0, "none");
                    run_case(&p, pool2, bias, (sp_precision)prec, 0, "2");
                    run_case(&p, pool3, bias, (sp_precision)prec, 0, "3");
                }
            teardown(&p);
        }
}

static void test_quant_types(sp_pool *pool2) {
    const sp_dtype types[] = {SP_Q8_0, SP_Q4_0, SP_Q4_1, SP_Q5_0, SP_Q4_K, SP_Q5_K, SP_Q6_K};
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        sp_dtype t = types[ti];
        int blk = sp_dtype_block(t);
        const int ins[] = {blk == 32 ? 288 : 256, 768}; /* partial 512-column chunks */
        const int Ts[] = {1, 5, 67};
        const sp_quant_kernels *qk = sp_quant_get(t, sp_ops_isa());
        for (int ii = 0; ii < 2; ii++)
            for (int k = 0; k < 3; k++) {
                problem p;
                if (!setup(&p, Ts[k], 19, ins[ii], t)) {
                    CHECKF(0, "%s: sp_quantize_row cannot produce it", sp_dtype_name(t));
                    teardown(&p);
                    return;
                }
                run_case(&p, NULL, 1, SP_PREC_F32, 0, "none");
                run_case(&p, pool2, 0, SP_PREC_F32, 0, "2");
                if (qk) {
                    run_case(&p, NULL, 0, SP_PREC_FAST, 1, "none");
                    run_case(&p, pool2, 1, SP_PREC_FAST, 1, "2");
                }
                teardown(&p);
            }
        if (!qk)
            fprintf(stderr,
                    "test_compute_matmul: %s has no dot kernel at %s: FAST path not tested\n",
                    sp_dtype_name(t), sp_isa_name(sp_ops_isa()));
    }
}

int main(void) {
    sp_ops_init();
    sp_pool *pool2 = sp_pool_create(2), *pool3 = sp_pool_create(3);
    CHECK(pool2 && pool3);
    for (int lvl = SP_ISA_SCALAR; lvl < SP_ISA_LEVELS; lvl++) {
        if (!isa_enter("test_compute_matmul", lvl)) continue;
        test_float_types(pool2, pool3);
        test_quant_types(pool2);
    }
    sp_pool_destroy(pool2);
    sp_pool_destroy(pool3);
    return check_summary("test_compute_matmul");
}
