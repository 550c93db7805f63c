/* The multiply-add peak of this CPU with N threads: 12 independent
 * accumulator chains per thread, enough to cover the latency on two pipes.
 * The ceiling for the prefill GEMMs (bench/README.md). Kinds:
 *   ymm   f32 FMA, 8 lanes (AVX2 + FMA; the f32 panel GEMM at AVX2)
 *   zmm   f32 FMA, 16 lanes (AVX-512; the f32 panel GEMM at AVX-512)
 *   bf16  vdpbf16ps, 32 bf16 products (AVX512_BF16; BF16 prefill)
 *   vnni  vpdpbusd, 64 u8 x s8 products (AVX512_VNNI; integer prefill)
 * Reports multiply-adds counted as 2 operations each (GFLOP/s, GOP/s).
 * Build:
 *   cc -O2 -mavx2 -mfma -mavx512f -mavx512bf16 -mavx512vnni bench/fma_peak.c -o fma_peak -pthread
 *   ./fma_peak [threads] [ymm|zmm|bf16|vnni] */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ITERS  100000000L
#define CHAINS 12

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int g_kind;                            /* 0 ymm, 1 zmm, 2 bf16, 3 vnni */
static const int g_ops[] = {16, 32, 64, 128}; /* operations per instruction */

static float spin_ymm(void) {
    __m256 acc[CHAINS], x = _mm256_set1_ps(1.0000001f), y = _mm256_set1_ps(0.999999f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < ITERS; it++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    float s = 0.0f;
    for (int i = 0; i < CHAINS; i++) s += acc[i][0];
    return s;
}

static float spin_zmm(void) {
    __m512 acc[CHAINS], x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(0.999999f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < ITERS; it++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    float s = 0.0f;
    for (int i = 0; i < CHAINS; i++) s += acc[i][0];
    return s;
}

static float spin_bf16(void) {
    __m512 acc[CHAINS];
    __m512i x = _mm512_set1_epi32(0x3f803f80), y = _mm512_set1_epi32(0x3f7f3f7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < ITERS; it++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm512_dpbf16_ps(acc[i], (__m512bh)x, (__m512bh)y);
    float s = 0.0f;
    for (int i = 0; i < CHAINS; i++) s += acc[i][0];
    return s;
}

static float spin_vnni(void) {
    __m512i acc[CHAINS], x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-2);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_epi32(i);
    for (long it = 0; it < ITERS; it++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_dpbusd_epi32(acc[i], x, y);
    int s = 0;
    for (int i = 0; i < CHAINS; i++) s += _mm512_reduce_add_epi32(acc[i]);
    return (float)s;
}

static void *spin(void *out) {
    float (*const fn[])(void) = {spin_ymm, spin_zmm, spin_bf16, spin_vnni};
    *(float *)out = fn[g_kind](); /* keeps the chains alive */
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2;
    const char *kinds[] = {"ymm", "zmm", "bf16", "vnni"};
    if (n < 1 || n > 256) return 1;
    for (int k = 0; k < 4; k++)
        if (argc > 2 && !strcmp(argv[2], kinds[k])) g_kind = k;
    pthread_t th[256];
    float sink[256];
    double t0 = now();
    for (int i = 1; i < n; i++) pthread_create(&th[i], NULL, spin, &sink[i]);
    spin(&sink[0]);
    for (int i = 1; i < n; i++) pthread_join(th[i], NULL);
    double dt = now() - t0, ops = (double)n * ITERS * CHAINS * g_ops[g_kind];
    printf("%s multiply-add peak: %.1f G op/s with %d threads (%.1f per thread)\n", kinds[g_kind],
           ops / dt / 1e9, n, ops / dt / 1e9 / n);
    return sink[0] == 0.12345f; /* never: reads the sink */
}
