/* Element-wise kernels: the scalar level against double-precision formulas,
 * then every SIMD level the CPU has against the scalar level, on random data
 * of awkward sizes (tails of every length). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "isa_levels.h"
#include "test_rand.h"
#include "compute/ops.h"

static const int k_sizes[] = {1, 2, 7, 8, 9, 15, 16, 17, 33, 100, 257, 1000, 4099};
#define N_SIZES  (int)(sizeof(k_sizes) / sizeof(k_sizes[0]))
#define MAX_SIZE 4099

static void fill(float *x, int n, float lo, float hi) {
    for (int i = 0; i < n; i++) x[i] = frand(lo, hi);
}

/* |got - want| <= atol + rtol * |want| for every element. */
static int close_all(const float *got, const double *want, int n, double rtol, double atol,
                     const char *what, int size, sp_isa isa) {
    for (int i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= atol + rtol * fabs(want[i]))) {
            CHECKF(0, "%s n=%d isa=%s i=%d: got %.9g want %.9g", what, size, sp_isa_name(isa), i,
                   got[i], want[i]);
            return 0;
        }
    }
    return 1;
}

static void widen(const float *x, double *d, int n) {
    for (int i = 0; i < n; i++) d[i] = x[i];
}

/* -------- scalar level against double formulas -------- */

static void test_reference_formulas(void) {
    static float x[MAX_SIZE], w[MAX_SIZE], u[MAX_SIZE], y[MAX_SIZE];
    static double want[MAX_SIZE];
    sp_ops_set_isa(SP_ISA_SCALAR);
    for (int s = 0; s < N_SIZES; s++) {
        int n = k_sizes[s];
        fill(x, n, -3, 3);
        fill(w, n, -1, 1);
        fill(u, n, -2, 2);
        for (int one_plus = 0; one_plus < 2; one_plus++) {
            double ss = 0;
            for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
            double r = 1.0 / sqrt(ss / n + 1e-6);
            for (int i = 0; i < n; i++) want[i] = x[i] * r * (one_plus ? 1.0 + w[i] : w[i]);
            sp_rmsnorm(y, x, w, n, 1e-6f, one_plus);
            close_all(y, want, n, 2e-6, 1e-6, "rmsnorm/ref", n, SP_ISA_SCALAR);
        }
        memcpy(y, x, sizeof(float) * n);
        double m = -INFINITY, sum = 0;
        for (int i = 0; i < n; i++) m = fmax(m, x[i]);
        for (int i = 0; i < n; i++) sum += exp(x[i] - m);
        for (int i = 0; i < n; i++) want[i] = exp(x[i] - m) / sum;
        sp_softmax(y, n);
        close_all(y, want, n, 1e-5, 1e-9, "softmax/ref", n, SP_ISA_SCALAR);

        memcpy(y, x, sizeof(float) * n);
        for (int i = 0; i < n; i++) want[i] = x[i] / (1 + exp(-(double)x[i])) * u[i];
        sp_silu_mul(y, u, n);
        close_all(y, want, n, 1e-6, 1e-7, "silu_mul/ref", n, SP_ISA_SCALAR);

        memcpy(y, x, sizeof(float) * n);
        for (int i = 0; i < n; i++) {
            double v = x[i];
            want[i] = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))) * u[i];
        }
        sp_gelu_tanh_mul(y, u, n);
        close_all(y, want, n, 1e-5, 1e-6, "gelu_tanh_mul/ref", n, SP_ISA_SCALAR);

        memcpy(y, x, sizeof(float) * n);
        for (int i = 0; i < n; i++) want[i] = 2.5 * tanh(x[i] / 2.5);
        sp_softcap(y, n, 2.5f);
        close_all(y, want, n, 1e-6, 1e-7, "softcap/ref", n, SP_ISA_SCALAR);

        double dot = 0;
        for (int i = 0; i < n; i++) dot += (double)x[i] * w[i];
        CHECK_NEAR(sp_dot_f32(x, w, n), dot, 1e-5 * (1 + sqrt((double)n)));

        memcpy(y, x, sizeof(float) * n);
        for (int i = 0; i < n; i++) want[i] = y[i] + 0.75 * u[i];
        sp_axpy(y, 0.75f, u, n);
        close_all(y, want, n, 1e-6, 1e-7, "axpy/ref", n, SP_ISA_SCALAR);
    }
}

/* Rope against the rotation formula: both layouts, partial rotary, lanes
 * outside the pairs untouched. */
static void rope_want(const float *x, double *want, int n_heads, int hd, int rot, int np,
                      const float *c, const float *s, int inter) {
    for (int h = 0; h < n_heads; h++) {
        const float *v = x + h * hd;
        double *o = want + h * hd;
        for (int i = 0; i < hd; i++) o[i] = v[i];
        for (int i = 0; i < np; i++) {
            int a = inter ? 2 * i : i, b = inter ? 2 * i + 1 : i + rot / 2;
            o[a] = (double)v[a] * c[i] - (double)v[b] * s[i];
            o[b] = (double)v[a] * s[i] + (double)v[b] * c[i];
        }
    }
}

static void test_rope_level(sp_isa isa) {
    static const int shapes[][4] = {/* n_heads, head_dim, rot_dim, n_pairs */
                                    {1, 2, 2, 1},    {3, 64, 64, 32},   {2, 128, 64, 32},
                                    {4, 80, 80, 40}, {2, 256, 256, 64}, {5, 96, 48, 17}};
    float x[5 * 256], y[5 * 256], cs[128], sn[128];
    double want[5 * 256];
    sp_ops_set_isa(isa);
    for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
        int nh = shapes[k][0], hd = shapes[k][1], rot = shapes[k][2], np = shapes[k][3];
        for (int inter = 0; inter < 2; inter++) {
            fill(x, nh * hd, -2, 2);
            for (int i = 0; i < np; i++) {
                float th = frand(-10, 10);
                cs[i] = cosf(th);
                sn[i] = sinf(th);
            }
            memcpy(y, x, sizeof(float) * nh * hd);
            rope_want(x, want, nh, hd, rot, np, cs, sn, inter);
            sp_rope(y, nh, hd, rot, np, cs, sn, inter);
            close_all(y, want, nh * hd, 1e-6, 1e-6, inter ? "rope/interleaved" : "rope/half", hd,
                      isa);
        }
    }
}

/* -------- every SIMD level against the scalar level -------- */

typedef void (*unary_fn)(float *x, int n);
static void run_softmax(float *x, int n) {
    sp_softmax(x, n);
}
static void run_softcap(float *x, int n) {
    sp_softcap(x, n, 30.0f);
}

static void compare_unary(sp_isa isa, unary_fn f, const char *what, float lo, float hi, double rtol,
                          double atol) {
    static float x[MAX_SIZE], y[MAX_SIZE];
    static double want[MAX_SIZE];
    for (int s = 0; s < N_SIZES; s++) {
        int n = k_sizes[s];
        fill(x, n, lo, hi);
        memcpy(y, x, sizeof(float) * n);
        sp_ops_set_isa(SP_ISA_SCALAR);
        f(x, n);
        widen(x, want, n);
        sp_ops_set_isa(isa);
        f(y, n);
        close_all(y, want, n, rtol, atol, what, n, isa);
    }
}

typedef void (*binary_fn)(float *g, const float *u, int n);
static void compare_binary(sp_isa isa, binary_fn f, const char *what, float lo, float hi,
                           double rtol, double atol) {
    static float g[MAX_SIZE], g2[MAX_SIZE], u[MAX_SIZE];
    static double want[MAX_SIZE];
    for (int s = 0; s < N_SIZES; s++) {
        int n = k_sizes[s];
        fill(g, n, lo, hi);
        fill(u, n, -2, 2);
        memcpy(g2, g, sizeof(float) * n);
        sp_ops_set_isa(SP_ISA_SCALAR);
        f(g, u, n);
        widen(g, want, n);
        sp_ops_set_isa(isa);
        f(g2, u, n);
        close_all(g2, want, n, rtol, atol, what, n, isa);
    }
}

static void compare_misc(sp_isa isa) {
    static float x[MAX_SIZE], w[MAX_SIZE], a[MAX_SIZE], b[MAX_SIZE];
    static double want[MAX_SIZE];
    for (int s = 0; s < N_SIZES; s++) {
        int n = k_sizes[s];
        fill(x, n, -4, 4);
        fill(w, n, -1, 1);
        for (int variant = 0; variant < 3; variant++) {
            const float *wp = variant == 2 ? NULL : w;
            sp_ops_set_isa(SP_ISA_SCALAR);
            sp_rmsnorm(a, x, wp, n, 1e-5f, variant == 1);
            widen(a, want, n);
            sp_ops_set_isa(isa);
            memcpy(b, x, sizeof(float) * n);
            sp_rmsnorm(b, b, wp, n, 1e-5f, variant == 1); /* in place */
            close_all(b, want, n, 1e-5, 1e-6, "rmsnorm", n, isa);
        }
        sp_ops_set_isa(SP_ISA_SCALAR);
        double d0 = sp_dot_f32(x, w, n);
        memcpy(a, x, sizeof(float) * n);
        sp_axpy(a, -1.25f, w, n);
        widen(a, want, n);
        sp_ops_set_isa(isa);
        CHECKF(fabs(sp_dot_f32(x, w, n) - d0) <= 1e-5 * (1 + sqrt((double)n)), "dot n=%d %s", n,
               sp_isa_name(isa));
        memcpy(b, x, sizeof(float) * n);
        sp_axpy(b, -1.25f, w, n);
        close_all(b, want, n, 1e-6, 1e-6, "axpy", n, isa); /* fma vs mul+add */
    }
}

static void test_level(sp_isa isa) {
    compare_unary(isa, run_softmax, "softmax", -20, 20, 1e-5, 1e-12);
    compare_unary(isa, run_softcap, "softcap", -200, 200, 2e-6, 1e-6);
    compare_binary(isa, sp_silu_mul, "silu_mul", -30, 30, 2e-6, 1e-7);
    compare_binary(isa, sp_silu_mul, "silu_mul small", -1, 1, 2e-6, 1e-7);
    compare_binary(isa, sp_gelu_tanh_mul, "gelu_tanh_mul", -8, 8, 2e-6, 5e-7);
    compare_binary(isa, sp_gelu_tanh_mul, "gelu_tanh_mul small", -0.5f, 0.5f, 2e-6, 1e-7);
    compare_misc(isa);
    test_rope_level(isa);
}

int main(void) {
    sp_ops_init();
    test_reference_formulas();
    for (int lvl = SP_ISA_SCALAR; lvl < SP_ISA_LEVELS; lvl++)
        if (isa_enter("test_compute_kernels", lvl)) test_level((sp_isa)lvl);
    return check_summary("test_compute_kernels");
}
