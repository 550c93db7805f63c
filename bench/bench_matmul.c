/* Microbenchmark of sp_matmul (decode matvec and prefill GEMM) and of the
 * pool's fork-join latency. Not built by CMake; build after the libraries:
 *   cmake --build build/release --target sp_compute sp_base
 *   cc -O2 -Isrc bench/bench_matmul.c build/release/libsp_compute.a \
 *      build/release/libsp_base.a -lm -pthread -o build/release/bench_matmul
 *   build/release/bench_matmul [threads] [out] [in] [type] [prefill tokens]
 * Q4_0 and Q8_0 run twice: as in the file and packed (rows interleaved as
 * weights.c does at load; type printed with a "p").
 * Prints GB/s (weight bytes read per second) and GFLOP/s per case. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "compute/ops.h"
#include "compute/quant.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu_now(void) { /* process CPU time: robust against other load */
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void nop(void *ctx, int ith, int nth) {}

static void *make_weights(sp_dtype t, int out, int in) {
    size_t rb = sp_dtype_row_bytes(t, in);
    char *w = sp_aligned_alloc(rb * (size_t)out);
    float *row = malloc(sizeof(float) * (size_t)in);
    if (!w || !row) exit(1);
    unsigned s = 12345;
    for (int o = 0; o < out; o++) {
        for (int i = 0; i < in; i++)
            row[i] = (float)((s = s * 1103515245u + 12345u) >> 9) / 8388608.0f - 1.0f;
        if (!sp_quantize_row(t, row, w + rb * (size_t)o, in)) {
            fprintf(stderr, "cannot quantize to %s\n", sp_dtype_name(t));
            exit(1);
        }
    }
    free(row);
    return w;
}

/* Runs one case for at least ~0.5 s; returns seconds per call. */
static double time_case(sp_pool *pool, float *y, const float *x, int T, const sp_tensor *W,
                        sp_precision prec, double *cpu) {
    sp_matmul(pool, y, x, T, W, NULL, prec); /* warm up */
    int reps = 0;
    double t0 = now(), c0 = cpu_now(), t1;
    do {
        sp_matmul(pool, y, x, T, W, NULL, prec);
        reps++;
        t1 = now();
    } while (t1 - t0 < 0.5);
    *cpu = (cpu_now() - c0) / reps;
    return (t1 - t0) / reps;
}

int main(int argc, char **argv) {
    int nth = argc > 1 ? atoi(argv[1]) : 2;
    int out = argc > 2 ? atoi(argv[2]) : 8192, in = argc > 3 ? atoi(argv[3]) : 4096;
    sp_ops_init();
    sp_pool *pool = sp_pool_create(nth);
    printf("isa %s, %d threads, W [%d x %d]\n", sp_isa_name(sp_ops_isa()), nth, out, in);

    int reps = 20000;
    double t0 = now();
    for (int i = 0; i < reps; i++) sp_pool_run(pool, nop, NULL);
    printf("pool fork-join: %.2f us\n", (now() - t0) / reps * 1e6);

    sp_dtype types[] = {SP_F32, SP_F16, SP_BF16, SP_Q8_0, SP_Q4_0, SP_Q4_K, SP_Q6_K};
    enum { NT = 4 };
    int Ts[NT] = {1, 3, 16, 128};
    if (argc > 5) Ts[NT - 1] = atoi(argv[5]);     /* the prefill size, e.g. 512 */
    const char *only = argc > 4 ? argv[4] : NULL; /* e.g. "q4_0" */
    size_t tmax = 0;
    for (int k = 0; k < NT; k++) tmax = (size_t)Ts[k] > tmax ? (size_t)Ts[k] : tmax;
    float *x = malloc(sizeof(float) * tmax * (size_t)in), *y = malloc(sizeof(float) * tmax * out);
    for (size_t i = 0; i < tmax * (size_t)in; i++) x[i] = (float)(i % 17) / 17.0f - 0.5f;
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        if (only && strcmp(only, sp_dtype_name(types[ti]))) continue;
        sp_tensor W = {.dtype = types[ti], .ndim = 2, .shape = {out, in}};
        W.data = make_weights(types[ti], out, in);
        W.nbytes = sp_dtype_row_bytes(types[ti], in) * (size_t)out;
        /* Q4_0/Q8_0 a second time with rows packed as weights.c does at load
         * (suffix "p"): fast precision only, the f32 path reads the same values */
        int passes = sp_quant_packable(types[ti]) ? 2 : 1;
        for (int pk = 0; pk < passes; pk++) {
            if (pk) W.packed = sp_quant_pack(W.dtype, W.data, out, in);
            for (int prec = 1; prec >= pk; prec--) {
                int is_float = types[ti] <= SP_BF16;
                if (is_float && prec == 0 && types[ti] != SP_BF16) continue; /* same kernels */
                for (size_t k = 0; k < NT; k++) {
                    double c, s = time_case(pool, y, x, Ts[k], &W, (sp_precision)prec, &c);
                    printf("%-4s%-1s %-4s T=%-4d %8.3f ms  %7.1f GB/s  %7.1f GFLOP/s  "
                           "(%.1f GFLOP, %.1f GB of weights per CPU-second)\n",
                           sp_dtype_name(types[ti]), pk ? "p" : "", prec ? "fast" : "f32", Ts[k],
                           s * 1e3, (double)W.nbytes / s * 1e-9,
                           2.0 * Ts[k] * out * (double)in / s * 1e-9,
                           2.0 * Ts[k] * out * (double)in / c * 1e-9, (double)W.nbytes / c * 1e-9);
                }
            }
        }
        sp_aligned_free(W.data);
    }
    free(x);
    free(y);
    sp_pool_destroy(pool);
    return 0;
}
