/* Deterministic test data for the compute tests: xorshift64, one state per
 * test file. A file that wants another sequence defines TEST_RAND_SEED
 * before including this. */
#ifndef SP_TESTS_TEST_RAND_H
#define SP_TESTS_TEST_RAND_H

#include <stdint.h>

#ifndef TEST_RAND_SEED
#define TEST_RAND_SEED 0x9e3779b97f4a7c15ull
#endif

static uint64_t g_rng = TEST_RAND_SEED;

/* Uniform in [lo, hi). */
static inline float frand(float lo, float hi) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((g_rng >> 11) * 0x1.0p-53);
}

#endif
