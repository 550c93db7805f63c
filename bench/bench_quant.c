/* Single-threaded throughput of the quantized dot kernels: a 4096x4096
 * matrix-vector product per weight type, in GB/s of weight bytes read.
 * "hot": one matrix, re-read (fits a large L3); "cold": enough copies
 * cycled to exceed the caches (DRAM bandwidth). Build (after building
 * sp_compute and sp_base in build/quant):
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -Isrc bench/bench_quant.c build/quant/libsp_compute.a \
 *       build/quant/libsp_base.a -lm -pthread -o build/quant/bench_quant
 * Usage: bench_quant [scalar|avx2|avx512] [type name, e.g. q4_0] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compute/dtype.h"
#include "compute/ops.h"
#include "compute/quant.h"

enum { N = 4096, COLD_BYTES = 256 << 20 };

/* CPU time of this thread: the build machine is shared, and time spent
 * descheduled is not the kernel's. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* random weights with sane f16 scales: quantize random floats */
static void fill(sp_dtype t, uint8_t *w, size_t row_bytes) {
    float x[N];
    uint64_t s = 88172645463325252ull;
    for (int r = 0; r < N; r++) {
        for (int i = 0; i < N; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            x[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
        }
        sp_quant_quantize(t, x, w + (size_t)r * row_bytes, N);
    }
}

/* The packed (row-interleaved) kernel: 8 rows per call. */
static double run_packed(const sp_quant_packed_kernels *k, const uint8_t *const *mats, int n_mats,
                         size_t row_bytes, const void *xa, float *y, double min_time) {
    double best = 0;
    for (int trial = 0; trial < 5; trial++) {
        int reps = 0;
        double t0 = now(), t;
        do {
            const uint8_t *w = mats[reps % n_mats];
            for (int r = 0; r < N; r += SP_PACK_ROWS)
                k->gemv8(N, w + (size_t)r * row_bytes, xa, y + r, NULL);
            reps++;
            t = now() - t0;
        } while (t < min_time / 5);
        double gbs = (double)reps * (double)row_bytes * N / t / 1e9;
        if (gbs > best) best = gbs;
    }
    return best;
}

static double run(const sp_quant_kernels *k, const uint8_t *const *mats, int n_mats,
                  size_t row_bytes, const void *xq, float *y, double min_time) {
    double best = 0; /* best of 5 trials */
    for (int trial = 0; trial < 5; trial++) {
        int reps = 0;
        double t0 = now(), t;
        do {
            const uint8_t *w = mats[reps % n_mats];
            for (int r = 0; r < N; r++) y[r] = k->dot(N, w + (size_t)r * row_bytes, xq);
            reps++;
            t = now() - t0;
        } while (t < min_time / 5);
        double gbs = (double)reps * (double)row_bytes * N / t / 1e9;
        if (gbs > best) best = gbs;
    }
    return best;
}

int main(int argc, char **argv) {
    sp_isa isa = sp_ops_cpu_max();
    if (argc > 1)
        isa = !strcmp(argv[1], "scalar") ? SP_ISA_SCALAR
              : !strcmp(argv[1], "avx2") ? SP_ISA_AVX2
                                         : SP_ISA_AVX512;
    if (isa > sp_ops_cpu_max()) {
        fprintf(stderr, "%s is not available on this CPU\n", sp_isa_name(isa));
        return 1;
    }
    sp_dtype types[] = {SP_Q8_0, SP_Q4_0, SP_Q4_1, SP_Q5_0, SP_Q4_K, SP_Q5_K, SP_Q6_K};
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) x[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    void *xq = malloc(N * 2);
    printf("isa %s, %dx%d, single thread, GB/s of weight bytes (GFLOP/s = 2*N*N/time)\n",
           sp_isa_name(isa), N, N);
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        sp_dtype t = types[ti];
        if (argc > 2 && strcmp(argv[2], sp_dtype_name(t)) != 0) continue;
        const sp_quant_kernels *k = sp_quant_get(t, isa);
        size_t rb = sp_dtype_row_bytes(t, N), mb = rb * N;
        int n_cold = (int)(COLD_BYTES / mb) + 1;
        uint8_t **mats = malloc(sizeof(uint8_t *) * (size_t)n_cold);
        double tq = 0;
        for (int m = 0; m < n_cold; m++) {
            mats[m] = malloc(mb);
            if (m == 0) {
                tq = now();
                fill(t, mats[0], rb);
                tq = now() - tq;
            } else {
                memcpy(mats[m], mats[0], mb);
            }
        }
        k->quantize_act(x, xq, N);
        double hot = run(k, (const uint8_t *const *)mats, 1, rb, xq, y, 0.5);
        double cold = run(k, (const uint8_t *const *)mats, n_cold, rb, xq, y, 0.5);
        double bpv = (double)rb / N;
        printf("%-5s %5.3f B/value  hot %6.2f GB/s (%6.1f GFLOP/s)   cold %6.2f GB/s   "
               "sp_quant_quantize %6.1f Mvalues/s  [y0=%g]\n",
               sp_dtype_name(t), bpv, hot, hot / bpv * 2, cold, (double)N * N / tq / 1e6, y[0]);
        const sp_quant_packed_kernels *pk = sp_quant_packed_get(t, isa);
        if (pk) { /* the same matrices, rows packed as weights.c does at load */
            void *xa = malloc(pk->act_bytes(N));
            pk->prep_act(x, xa, N);
            for (int m = 0; m < n_cold; m++) sp_quant_pack(t, mats[m], N, N);
            memset(y, 0, N * sizeof(float));
            hot = run_packed(pk, (const uint8_t *const *)mats, 1, rb, xa, y, 0.5);
            cold = run_packed(pk, (const uint8_t *const *)mats, n_cold, rb, xa, y, 0.5);
            printf("%-4sp %5.3f B/value  hot %6.2f GB/s (%6.1f GFLOP/s)   cold %6.2f GB/s   "
                   "(rows packed in groups of %d)\n",
                   sp_dtype_name(t), bpv, hot, hot / bpv * 2, cold, SP_PACK_ROWS);
            free(xa);
        }
        for (int m = 0; m < n_cold; m++) free(mats[m]);
        free(mats);
    }
    free(x), free(y), free(xq);
    return 0;
}
