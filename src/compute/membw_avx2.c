/* The probe's read loop with 32-byte AVX2 loads (membw.c calls it only where
 * the CPU has AVX2): the same loads the decode kernels issue, so the probe
 * is not limited by the narrower baseline code. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

int64_t sp_membw_sum_avx2(const void *buf, size_t n32) {
    const __m256i *p = buf;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 4 <= n32; i += 4) {
        s0 = _mm256_add_epi64(s0, _mm256_load_si256(p + i));
        s1 = _mm256_add_epi64(s1, _mm256_load_si256(p + i + 1));
        s2 = _mm256_add_epi64(s2, _mm256_load_si256(p + i + 2));
        s3 = _mm256_add_epi64(s3, _mm256_load_si256(p + i + 3));
    }
    for (; i < n32; i++) s0 = _mm256_add_epi64(s0, _mm256_load_si256(p + i));
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    int64_t out[4];
    _mm256_storeu_si256((__m256i *)out, s);
    return out[0] + out[1] + out[2] + out[3];
}
