/* The f32 FMA peak of this CPU with N threads (AVX2 + FMA): 12 independent
 * accumulator chains per thread, enough to cover the FMA latency on two
 * pipes. The ceiling for the f32 prefill GEMM (bench/README.md). Build:
 *   cc -O2 -mavx2 -mfma bench/fma_peak.c -o fma_peak -pthread
 *   ./fma_peak [threads] */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITERS  200000000L
#define CHAINS 12

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *spin(void *out) {
    __m256 acc[CHAINS], x = _mm256_set1_ps(1.0000001f), y = _mm256_set1_ps(0.999999f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < ITERS; it++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    float s = 0.0f;
    for (int i = 0; i < CHAINS; i++) s += acc[i][0];
    *(float *)out = s; /* keeps the chains alive */
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2;
    if (n < 1 || n > 256) return 1;
    pthread_t th[256];
    float sink[256];
    double t0 = now();
    for (int i = 1; i < n; i++) pthread_create(&th[i], NULL, spin, &sink[i]);
    spin(&sink[0]);
    for (int i = 1; i < n; i++) pthread_join(th[i], NULL);
    double dt = now() - t0, flops = (double)n * ITERS * CHAINS * 16;
    printf("f32 FMA peak: %.1f GFLOP/s with %d threads (%.1f per thread)\n", flops / dt / 1e9, n,
           flops / dt / 1e9 / n);
    return sink[0] == 0.12345f; /* never: reads the sink */
}
