/* CPU feature detection (CPUID + XGETBV), internal to src/compute. */
#ifndef SP_COMPUTE_CPU_H
#define SP_COMPUTE_CPU_H

typedef struct sp_cpu_features {
    int avx2, fma, f16c;                       /* AVX2 level needs all three */
    int avx512f, avx512bw, avx512vl, avx512dq; /* AVX-512 level needs all four */
    int avx512bf16, avx512vnni;                /* optional extras, recorded only */
    int os_avx, os_avx512;                     /* XCR0 says the OS saves the state */
} sp_cpu_features;

/* Queries the CPU (cheap; no caching, no global state). */
sp_cpu_features sp_cpu_detect(void);

#endif
