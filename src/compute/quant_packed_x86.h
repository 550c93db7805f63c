/* AVX2 helpers the packed decode kernels of both x86 levels share
 * (quant_packed_avx2.c, quant_packed_avx512.c; include it only from files
 * compiled with the AVX2 flags). */
#ifndef SP_COMPUTE_QUANT_PACKED_X86_H
#define SP_COMPUTE_QUANT_PACKED_X86_H

#include <immintrin.h>

#include "compute/quant_internal.h"

/* The 6-bit scales (sc) and mins (m) of the 8 rows of a packed Q4_K
 * super-block, as in sp_kq_scale_min: byte j of sc[0] / sc[1] is row r's
 * scale of sub-block j / 4 + j (lane r), the same for m. */
static inline void k_scales8(const uint8_t *pk, __m256i sc[2], __m256i m[2]) {
    __m256i a = _mm256_loadu_si256((const __m256i *)(pk + SP_PK_K_SC));
    __m256i b = _mm256_loadu_si256((const __m256i *)(pk + SP_PK_K_SC + 32));
    __m256i c = _mm256_loadu_si256((const __m256i *)(pk + SP_PK_K_SC + 64));
    const __m256i m6 = _mm256_set1_epi8(0x3f), m4 = _mm256_set1_epi8(0x0f);
    const __m256i m2 = _mm256_set1_epi8(0x03);
    sc[0] = _mm256_and_si256(a, m6);
    sc[1] = _mm256_or_si256(_mm256_and_si256(c, m4),
                            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(a, 6), m2), 4));
    m[0] = _mm256_and_si256(b, m6);
    m[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(c, 4), m4),
                           _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(b, 6), m2), 4));
}

#endif
