/* The vector dequantizers (sp_quant_dequantize_isa) against the scalar
 * reference definition, bit for bit: --precision f32 relies on it. Blocks
 * are random bytes with their f16 scales replaced by random finite values,
 * so every level, scale and min code is exercised. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "isa_levels.h"
#include "compute/dtype.h"
#include "compute/ops.h"
#include "compute/quant.h"

static uint64_t g_rng = 0x243f6a8885a308d3ull;

static uint64_t rnd(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return g_rng;
}

/* A random finite f16 of either sign, magnitude 2^-14 .. 2^1. */
static uint16_t rnd_half(void) {
    float f = ldexpf(1.0f + (float)(rnd() % 1024) / 1024.0f, (int)(rnd() % 16) - 14);
    return sp_f32_to_f16(rnd() & 1 ? -f : f);
}

/* Byte offsets of the f16 scales inside one block of t. */
static int scale_offsets(sp_dtype t, int *off) {
    switch (t) {
    case SP_Q8_0:
    case SP_Q4_0:
    case SP_Q5_0:
        off[0] = 0;
        return 1;
    case SP_Q4_1:
    case SP_Q4_K:
    case SP_Q5_K:
        off[0] = 0, off[1] = 2;
        return 2;
    case SP_Q6_K:
        off[0] = 208;
        return 1;
    default:
        return 0;
    }
}

static void check_type(sp_dtype t, sp_isa isa) {
    enum { N = 256 * 24 };
    size_t bb = sp_dtype_block_bytes(t), nb = N / sp_dtype_block(t);
    uint8_t *q = malloc(bb * nb);
    float *want = malloc(N * sizeof(float)), *got = malloc(N * sizeof(float));
    for (size_t i = 0; i < bb * nb; i++) q[i] = (uint8_t)rnd();
    int off[2], k = scale_offsets(t, off);
    for (size_t b = 0; b < nb; b++)
        for (int j = 0; j < k; j++) {
            uint16_t h = rnd_half();
            memcpy(q + b * bb + off[j], &h, 2);
        }
    sp_quant_dequantize(t, q, want, N);
    sp_quant_dequantize_isa(t, isa, q, got, N);
    int bad = -1;
    for (int i = 0; i < N && bad < 0; i++)
        if (memcmp(&want[i], &got[i], 4) != 0) bad = i;
    CHECKF(bad < 0, "%s at %s: value %d is %.9g, reference %.9g", sp_dtype_name(t),
           sp_isa_name(isa), bad, bad >= 0 ? got[bad] : 0.0, bad >= 0 ? want[bad] : 0.0);
    free(q);
    free(want);
    free(got);
}

int main(void) {
    sp_ops_init();
    const sp_dtype types[] = {SP_Q8_0, SP_Q4_0, SP_Q4_1, SP_Q5_0, SP_Q4_K, SP_Q5_K, SP_Q6_K};
    for (int isa = SP_ISA_SCALAR; isa < SP_ISA_LEVELS; isa++)
        if (isa_enter("test_compute_dequant", isa))
            for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
                check_type(types[i], (sp_isa)isa);
    return check_summary("test_compute_dequant");
}
