/* dtype geometry and the exact f16/bf16 conversions, against hand-computed
 * bit patterns and an exhaustive round-to-nearest-even check. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "compute/dtype.h"

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_geometry(void) {
    static const struct {
        sp_dtype t;
        int block;
        size_t bytes;
    } want[] = {
        {SP_F32, 1, 4},      {SP_F16, 1, 2},      {SP_BF16, 1, 2},   {SP_Q8_0, 32, 34},
        {SP_Q4_0, 32, 18},   {SP_Q4_1, 32, 20},   {SP_Q5_0, 32, 22}, {SP_Q4_K, 256, 144},
        {SP_Q5_K, 256, 176}, {SP_Q6_K, 256, 210}, {SP_Q8_1, 32, 36}, {SP_Q8_K, 256, 292},
        {SP_I8, 1, 1},       {SP_I64, 1, 8},      {SP_F64, 1, 8},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        CHECKF(sp_dtype_block(want[i].t) == want[i].block, "%s", sp_dtype_name(want[i].t));
        CHECKF(sp_dtype_block_bytes(want[i].t) == want[i].bytes, "%s", sp_dtype_name(want[i].t));
    }
    CHECK(sp_dtype_row_bytes(SP_Q4_K, 512) == 288);
    CHECK(sp_dtype_row_bytes(SP_Q8_0, 4096) == 128 * 34);
    CHECK(sp_dtype_row_bytes(SP_BF16, 7) == 14);
    CHECK(strcmp(sp_dtype_name(SP_Q6_K), "q6_k") == 0);
    CHECK(strcmp(sp_dtype_name(SP_BF16), "bf16") == 0);
    CHECK(sp_dtype_is_weight(SP_Q5_K) && sp_dtype_is_weight(SP_F16));
    CHECK(!sp_dtype_is_weight(SP_Q8_K) && !sp_dtype_is_weight(SP_I32));
}

static void test_f16_to_f32(void) {
    CHECK(sp_f16_to_f32(0x3c00) == 1.0f);
    CHECK(sp_f16_to_f32(0xc000) == -2.0f);
    CHECK(sp_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(sp_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    CHECK(sp_f16_to_f32(0x03ff) == 1023.0f * ldexpf(1.0f, -24));
    CHECK(sp_f16_to_f32(0x0400) == ldexpf(1.0f, -14));
    CHECK(sp_f16_to_f32(0x3555) == 0.333251953125f);
    CHECK(bits(sp_f16_to_f32(0x8000)) == 0x80000000u);
    CHECK(isinf(sp_f16_to_f32(0x7c00)) && sp_f16_to_f32(0x7c00) > 0);
    CHECK(isinf(sp_f16_to_f32(0xfc00)) && sp_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(sp_f16_to_f32(0x7e00)) && isnan(sp_f16_to_f32(0xfc01)));
}

static void test_f32_to_f16(void) {
    const float u24 = ldexpf(1.0f, -24), u25 = ldexpf(1.0f, -25);
    CHECK(sp_f32_to_f16(1.0f) == 0x3c00);
    CHECK(sp_f32_to_f16(-2.0f) == 0xc000);
    CHECK(sp_f32_to_f16(-0.0f) == 0x8000);
    CHECK(sp_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(sp_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(sp_f32_to_f16(65520.0f) == 0x7c00); /* tie: 0x7bff is odd, so up to inf */
    CHECK(sp_f32_to_f16(1e6f) == 0x7c00);
    CHECK(sp_f32_to_f16(-INFINITY) == 0xfc00);
    CHECK(sp_f32_to_f16(u24) == 0x0001);
    CHECK(sp_f32_to_f16(u25) == 0x0000);                   /* tie to even: 0 */
    CHECK(sp_f32_to_f16(nextafterf(u25, 1.0f)) == 0x0001); /* just above the tie */
    CHECK(sp_f32_to_f16(3 * u25) == 0x0002);               /* tie between 1 and 2 units */
    CHECK(sp_f32_to_f16(1e-10f) == 0x0000);
    CHECK(sp_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00);     /* tie, even is 0x3c00 */
    CHECK(sp_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)) == 0x3c02); /* tie, even is 0x3c02 */
    CHECK(sp_f32_to_f16(1023.5f * u24) == 0x0400); /* tie rounds up into the normals */
    uint16_t n = sp_f32_to_f16(NAN);
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0);
    n = sp_f32_to_f16(from_bits(0x7f800001)); /* signalling NaN with payload only in low bits */
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0);
}

/* Every finite f16 survives f16->f32->f16; values just around each midpoint
 * between neighbours round to the nearer one, exact midpoints to the even. */
static void test_f16_exhaustive(void) {
    int bad_round = 0, bad_mid = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        float f = sp_f16_to_f32((uint16_t)h);
        if (sp_f32_to_f16(f) != h) bad_round++;
        if ((h & 0x7fff) == 0x7bff) continue; /* midpoint above max is covered above */
        double lo = f, hi = sp_f16_to_f32((uint16_t)(h + 1));
        if (h & 0x8000) continue;           /* negatives mirror positives (sign bit only) */
        float mid = (float)((lo + hi) / 2); /* exact: midpoints need 12 bits */
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (sp_f32_to_f16(mid) != even) bad_mid++;
        if (sp_f32_to_f16(nextafterf(mid, 0.0f)) != h) bad_mid++;
        if (sp_f32_to_f16(nextafterf(mid, INFINITY)) != h + 1) bad_mid++;
        if (sp_f32_to_f16(-mid) != (even | 0x8000)) bad_mid++;
    }
    CHECKF(bad_round == 0, "%d f16 values did not round-trip", bad_round);
    CHECKF(bad_mid == 0, "%d midpoint roundings wrong", bad_mid);
}

static void test_bf16(void) {
    CHECK(sp_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(sp_f32_to_bf16(-2.0f) == 0xc000);
    CHECK(sp_f32_to_bf16(1.0f + ldexpf(1.0f, -8)) == 0x3f80);     /* tie to even */
    CHECK(sp_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)) == 0x3f82); /* tie to even (up) */
    CHECK(sp_f32_to_bf16(from_bits(0x3f808001)) == 0x3f81);       /* above the tie */
    CHECK(sp_f32_to_bf16(3.0e38f) == 0x7f62);
    CHECK(sp_f32_to_bf16(from_bits(0x7f7fffff)) == 0x7f80); /* FLT_MAX rounds to inf */
    CHECK(sp_f32_to_bf16(INFINITY) == 0x7f80 && sp_f32_to_bf16(-INFINITY) == 0xff80);
    CHECK(sp_f32_to_bf16(from_bits(0x00000001)) == 0x0000); /* tiny subnormal to zero */
    uint16_t n = sp_f32_to_bf16(from_bits(0x7f800001));     /* NaN whose payload is all low bits */
    CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0);
    CHECK(sp_bf16_to_f32(0x3fc0) == 1.5f);
    CHECK(isnan(sp_bf16_to_f32(sp_f32_to_bf16(NAN))));
}

static void test_rows(void) {
    float src[5] = {1.0f, -0.5f, 65504.0f, ldexpf(1.0f, -24), 3.0f};
    uint16_t h[5], b[5];
    float back[5];
    CHECK(sp_quantize_row(SP_F16, src, h, 5) == 1);
    CHECK(h[0] == 0x3c00 && h[1] == 0xb800 && h[2] == 0x7bff && h[3] == 0x0001 && h[4] == 0x4200);
    sp_dequantize_row(SP_F16, h, back, 5);
    for (int i = 0; i < 5; i++) CHECK(back[i] == src[i]);
    CHECK(sp_quantize_row(SP_BF16, src, b, 5) == 1);
    CHECK(b[0] == 0x3f80 && b[1] == 0xbf00 && b[4] == 0x4040);
    sp_dequantize_row(SP_BF16, b, back, 5);
    CHECK(back[0] == 1.0f && back[1] == -0.5f && back[4] == 3.0f);
    int16_t i16[3] = {-3, 0, 32767};
    sp_dequantize_row(SP_I16, i16, back, 3);
    CHECK(back[0] == -3.0f && back[2] == 32767.0f);
    CHECK(sp_quantize_row(SP_I32, src, back, 5) == 0);
}

int main(void) {
    test_geometry();
    test_f16_to_f32();
    test_f32_to_f16();
    test_f16_exhaustive();
    test_bf16();
    test_rows();
    return check_summary("test_compute_dtype");
}
