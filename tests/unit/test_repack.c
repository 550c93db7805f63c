/* Row-interleaved (packed) Q4_0 / Q8_0 / Q4_K weights (quant.h):
 *  1. pack then unpack restores every byte; packing changes the bytes;
 *  2. a packed row read back (sp_quant_packed_dequantize, any block range,
 *     and sp_tensor_row_f32) is bit-identical to the plain row's
 *     dequantization;
 *  3. the prepared activation holds exactly the partner quantizer's values
 *     (Q8_0; Q8_K for Q4_K, with its 32-value sums);
 *  4. the scalar packed kernel equals the plain scalar dot bit for bit (same
 *     integer sums, same f32 operations), and every SIMD level this CPU has
 *     agrees with it to f32 summation order;
 *  5. sp_matmul on a packed tensor: fast precision (packed kernels for
 *     decode and small batches, integer or dequantizing prefill) within
 *     summation-order tolerance of the plain tensor; --precision f32 (the
 *     dequantizing paths) bit-identical; views of whole groups (rows_view
 *     at multiples of 8) too. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "compute/dtype.h"
#include "compute/ops.h"
#include "compute/pool.h"
#include "compute/quant.h"
#include "compute/tensor.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return g_rng;
}
static float frand(void) {
    return (float)((double)(next() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Random blocks (every level bit pattern) with finite random f16 scales
 * (d, and Q4_K's dmin, lead every block). */
static void random_rows(sp_dtype t, uint8_t *w, int rows, int n) {
    size_t bb = sp_dtype_block_bytes(t), nb = (size_t)n / (size_t)sp_dtype_block(t);
    for (size_t i = 0; i < bb * nb * (size_t)rows; i++) w[i] = (uint8_t)next();
    for (size_t b = 0; b < nb * (size_t)rows; b++) {
        for (int k = 0; k < (t == SP_Q4_K ? 2 : 1); k++) {
            uint16_t h = sp_f32_to_f16(frand() * 0.01f);
            memcpy(w + b * bb + 2 * k, &h, 2);
        }
    }
}

static double sum_abs(const float *a, const float *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += fabs((double)a[i] * b[i]);
    return s;
}

static void test_layout(sp_dtype t, int rows, int n) {
    size_t rb = sp_dtype_row_bytes(t, n), bytes = rb * (size_t)rows;
    uint8_t *w = malloc(bytes), *p = malloc(bytes);
    float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
    random_rows(t, w, rows, n);
    memcpy(p, w, bytes);
    CHECK(sp_quant_pack(t, p, rows, n) == 1);
    CHECK(memcmp(p, w, bytes) != 0);
    sp_tensor T = {
        .dtype = t, .ndim = 2, .shape = {rows, n}, .data = p, .nbytes = bytes, .packed = 1};
    int same = 1;
    for (int r = 0; r < rows; r++) {
        sp_quant_dequantize(t, w + (size_t)r * rb, a, n);
        for (int isa = 0; isa <= (int)sp_ops_cpu_max(); isa++) {
            memset(b, 0, (size_t)n * 4);
            sp_quant_packed_dequantize(t, (sp_isa)isa, p, n, r, 0, n, b);
            same &= memcmp(a, b, (size_t)n * 4) == 0;
            int blk = sp_dtype_block(t);
            if (n >= 3 * blk) { /* a block range in the middle */
                sp_quant_packed_dequantize(t, (sp_isa)isa, p, n, r, blk, n - 2 * blk, b);
                same &= memcmp(a + blk, b, (size_t)(n - 2 * blk) * 4) == 0;
            }
        }
        sp_tensor_row_f32(&T, r, b);
        same &= memcmp(a, b, (size_t)n * 4) == 0;
    }
    CHECKF(same, "%s %dx%d: packed rows read back differ", sp_dtype_name(t), rows, n);
    CHECK(sp_quant_unpack(t, p, rows, n) == 1);
    CHECKF(memcmp(p, w, bytes) == 0, "%s: unpack(pack(w)) != w", sp_dtype_name(t));
    CHECK(sp_quant_pack(t, p, rows + 1, n) == 0); /* not a multiple of the group */
    CHECK(sp_quant_pack(SP_Q6_K, p, 8, 256) == 0);
    free(w), free(p), free(a), free(b);
}

/* Q4_K's prepared activation against Q8_K blocks: qs, d, 32-value sums. */
static int k_act_same(const uint8_t *xq, const uint8_t *xa, int n) {
    int ok = 1;
    const float *d = (const float *)(xa + n);
    const int16_t *bs = (const int16_t *)(xa + n + n / 256 * 4);
    for (int b = 0; b < n / 256; b++) {
        const uint8_t *blk = xq + (size_t)b * 292; /* f32 d, 256 x int8, 16 x int16 */
        float bd;
        int16_t sums[16];
        memcpy(&bd, blk, 4);
        memcpy(sums, blk + 4 + 256, sizeof sums);
        ok &= memcmp(xa + b * 256, blk + 4, 256) == 0 && d[b] == bd;
        for (int j = 0; j < 8; j++) ok &= bs[b * 8 + j] == sums[2 * j] + sums[2 * j + 1];
    }
    return ok;
}

static void test_kernels(sp_dtype t, int n) {
    enum { ROWS = 16 };
    size_t rb = sp_dtype_row_bytes(t, n);
    uint8_t *w = malloc(rb * ROWS), *p = malloc(rb * ROWS);
    float *x = malloc((size_t)n * 4), *wd = malloc((size_t)n * 4), *xd = malloc((size_t)n * 4);
    uint8_t *xq = malloc((size_t)n * 2), *xa = malloc((size_t)n * 2);
    random_rows(t, w, ROWS, n);
    memcpy(p, w, rb * ROWS);
    sp_quant_pack(t, p, ROWS, n);
    for (int i = 0; i < n; i++) x[i] = frand() * (i % 50 == 7 ? 10.0f : 1.0f);
    const sp_quant_kernels *ref = sp_quant_get(t, SP_ISA_SCALAR);
    ref->quantize_act(x, xq, n);
    sp_quant_dequantize(ref->act_type, xq, xd, n);
    float plain[ROWS];
    for (int r = 0; r < ROWS; r++) plain[r] = ref->dot(n, w + (size_t)r * rb, xq);
    for (int isa = 0; isa <= (int)sp_ops_cpu_max(); isa++) {
        const sp_quant_packed_kernels *k = sp_quant_packed_get(t, (sp_isa)isa);
        CHECK(k != NULL && k->act_bytes(n) <= (size_t)n * 2);
        /* 3: the same int8 values, scales and sums as the partner quantizer */
        k->prep_act(x, xa, n);
        int act_ok = t == SP_Q4_K ? k_act_same(xq, xa, n) : 1;
        const float *d = (const float *)(xa + n);
        const int32_t *s = (const int32_t *)(xa + n + n / 32 * 4);
        for (int b = 0; t != SP_Q4_K && b < n / 32; b++) {
            uint16_t h;
            memcpy(&h, xq + b * 34, 2);
            int sum = 0;
            for (int j = 0; j < 32; j++) sum += ((const int8_t *)xq)[b * 34 + 2 + j];
            act_ok &= memcmp(xa + b * 32, xq + b * 34 + 2, 32) == 0;
            act_ok &= d[b] == sp_f16_to_f32(h) && s[b] == sum;
        }
        CHECKF(act_ok, "%s isa %d: prepared activation differs", sp_dtype_name(t), isa);
        float y[ROWS];
        for (int r = 0; r < ROWS; r++) y[r] = 0.5f * (float)r; /* gemv8 adds */
        for (int g = 0; g < ROWS / 8; g++) k->gemv8(n, p + (size_t)g * 8 * rb, xa, y + 8 * g, NULL);
        for (int r = 0; r < ROWS; r++) {
            float got = y[r] - 0.5f * (float)r, want = plain[r];
            if (isa == SP_ISA_SCALAR) {
                CHECKF(y[r] == want + 0.5f * (float)r, "%s scalar row %d: %.9g vs %.9g",
                       sp_dtype_name(t), r, (double)got, (double)want);
            } else {
                sp_quant_dequantize(t, w + (size_t)r * rb, wd, n);
                double tol = 2e-6 * sum_abs(wd, xd, n) + 1e-6;
                CHECKF(fabs((double)got - want) <= tol, "%s isa %d row %d: %.9g vs %.9g",
                       sp_dtype_name(t), isa, r, (double)got, (double)want);
            }
        }
    }
    free(w), free(p), free(x), free(wd), free(xd), free(xq), free(xa);
}

/* 5: sp_matmul, packed vs plain tensor of the same weights. */
static void test_matmul(sp_pool *pool, sp_dtype t, int out, int in) {
    size_t rb = sp_dtype_row_bytes(t, in), bytes = rb * (size_t)out;
    uint8_t *w = malloc(bytes), *p = malloc(bytes);
    random_rows(t, w, out, in);
    memcpy(p, w, bytes);
    sp_quant_pack(t, p, out, in);
    sp_tensor A = {.dtype = t, .ndim = 2, .shape = {out, in}, .data = w, .nbytes = bytes};
    sp_tensor B = A;
    B.data = p;
    B.packed = 1;
    enum { TMAX = 40 };
    float *x = malloc(sizeof(float) * TMAX * (size_t)in), *bias = malloc(sizeof(float) * out);
    float *ya = malloc(sizeof(float) * TMAX * (size_t)out);
    float *yb = malloc(sizeof(float) * TMAX * (size_t)out);
    for (int i = 0; i < TMAX * in; i++) x[i] = frand();
    for (int o = 0; o < out; o++) bias[o] = frand();
    float *wd = malloc(sizeof(float) * (size_t)in);
    int Ts[] = {1, 2, 3, 5, 40};
    for (int pr = 0; pr < 2; pr++) {
        sp_precision prec = pr ? SP_PREC_F32 : SP_PREC_FAST;
        for (int ti = 0; ti < 5; ti++) {
            int T = Ts[ti];
            sp_matmul(pool, ya, x, T, &A, bias, prec);
            sp_matmul(pool, yb, x, T, &B, bias, prec);
            if (prec == SP_PREC_FAST) { /* the paths may differ by T: f32 order */
                int ok = 1;
                for (int o = 0; o < out; o++) {
                    sp_quant_dequantize(t, w + (size_t)o * rb, wd, in);
                    for (int tt = 0; tt < T; tt++) {
                        double tol = 1e-5 * sum_abs(wd, x + (size_t)tt * in, in) + 1e-5;
                        size_t i = (size_t)tt * out + o;
                        ok &= fabs((double)ya[i] - yb[i]) <= tol;
                    }
                }
                CHECKF(ok, "%s %dx%d T=%d: packed decode differs", sp_dtype_name(t), out, in, T);
            } else {
                CHECKF(memcmp(ya, yb, sizeof(float) * (size_t)T * out) == 0,
                       "%s %dx%d T=%d prec %d: packed result not bit-identical", sp_dtype_name(t),
                       out, in, T, pr);
            }
        }
    }
    /* a view of whole groups, as fused q/k/v or gate/up are split */
    sp_tensor va = sp_tensor_rows_view(&A, 8, out - 16), vb = sp_tensor_rows_view(&B, 8, out - 16);
    CHECK(vb.packed == 1);
    sp_matmul(pool, ya, x, 5, &va, NULL, SP_PREC_F32);
    sp_matmul(pool, yb, x, 5, &vb, NULL, SP_PREC_F32);
    CHECK(memcmp(ya, yb, sizeof(float) * 5 * (size_t)(out - 16)) == 0);
    sp_matmul(pool, ya, x, 1, &va, NULL, SP_PREC_FAST);
    sp_matmul(pool, yb, x, 1, &vb, NULL, SP_PREC_FAST);
    for (int o = 0; o < out - 16; o++) CHECK_NEAR(ya[o], yb[o], 1e-3 * (1 + fabs(ya[o])));
    /* a cut inside a group (head_dim 20, say) unpacks the matrix first */
    sp_tensor_prepare_cut(&B, 12);
    CHECK(B.packed == 0 && memcmp(B.data, w, bytes) == 0);
    va = sp_tensor_rows_view(&A, 12, out - 12), vb = sp_tensor_rows_view(&B, 12, out - 12);
    sp_matmul(pool, ya, x, 3, &va, NULL, SP_PREC_FAST);
    sp_matmul(pool, yb, x, 3, &vb, NULL, SP_PREC_FAST);
    CHECK(memcmp(ya, yb, sizeof(float) * 3 * (size_t)(out - 12)) == 0);
    free(w), free(p), free(x), free(bias), free(ya), free(yb), free(wd);
}

int main(void) {
    sp_dtype types[] = {SP_Q4_0, SP_Q8_0, SP_Q4_K};
    for (int i = 0; i < 3; i++) {
        int k = types[i] == SP_Q4_K ? 8 : 1; /* block sizes: 256 against 32 */
        test_layout(types[i], 8, 32 * k);
        test_layout(types[i], 24, 96 * k);
        test_layout(types[i], 16, 4096);
        test_kernels(types[i], 32 * k);
        test_kernels(types[i], 96 * k);
        test_kernels(types[i], 2048);
        test_kernels(types[i], 5632);
    }
    for (int threads = 1; threads <= 2; threads++) {
        sp_pool *pool = sp_pool_create(threads);
        for (int i = 0; i < 3; i++) {
            test_matmul(pool, types[i], 48, 256);
            test_matmul(pool, types[i], 136, types[i] == SP_Q4_K ? 768 : 640); /* 17 groups */
        }
        sp_pool_destroy(pool);
    }
    test_matmul(NULL, SP_Q4_0, 32, 128);
    return check_summary("test_repack");
}
