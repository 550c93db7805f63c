/* Dequantization of hand-built blocks: every value is checked against the
 * format definition (llama.cpp's ggml-common.h layouts, restated here
 * independently of src/compute/quant_ref.c). Scales are powers of two or
 * small integers, so all expected values are exact. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "compute/quant.h"

/* f16 bit patterns */
#define H_ONE     0x3c00 /* 1.0 */
#define H_HALF    0x3800 /* 0.5 */
#define H_QUARTER 0x3400 /* 0.25 */
#define H_TWO     0x4000 /* 2.0 */
#define H_MTHREE  0xc200 /* -3.0 */

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void test_q8_0(void) {
    uint8_t b[34];
    put16(b, H_HALF);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)(j * 8 - 128);
    float y[32];
    sp_quant_dequantize(SP_Q8_0, b, y, 32);
    for (int j = 0; j < 32; j++) CHECK_NEAR(y[j], 0.5 * (j * 8 - 128), 0);
}

static void test_q4_0(void) {
    uint8_t b[18 * 2]; /* two blocks: the second checks the block stride */
    put16(b, H_HALF);
    put16(b + 18, H_MTHREE);
    for (int j = 0; j < 16; j++) {
        b[2 + j] = (uint8_t)(j | (15 - j) << 4);
        b[20 + j] = (uint8_t)((j * 5) % 16 | ((j * 3) % 16) << 4);
    }
    float y[64];
    sp_quant_dequantize(SP_Q4_0, b, y, 64);
    for (int j = 0; j < 16; j++) {
        CHECK_NEAR(y[j], 0.5 * (j - 8), 0);             /* low nibble: value j */
        CHECK_NEAR(y[j + 16], 0.5 * ((15 - j) - 8), 0); /* high nibble: value j+16 */
        CHECK_NEAR(y[32 + j], -3.0 * ((j * 5) % 16 - 8), 0);
        CHECK_NEAR(y[48 + j], -3.0 * ((j * 3) % 16 - 8), 0);
    }
}

static void test_q4_1(void) {
    uint8_t b[20];
    put16(b, H_QUARTER);
    put16(b + 2, H_MTHREE); /* m = -3 */
    for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(j | (15 - j) << 4);
    float y[32];
    sp_quant_dequantize(SP_Q4_1, b, y, 32);
    for (int j = 0; j < 16; j++) {
        CHECK_NEAR(y[j], 0.25 * j - 3.0, 0);
        CHECK_NEAR(y[j + 16], 0.25 * (15 - j) - 3.0, 0);
    }
}

static void test_q5_0(void) {
    uint8_t b[22];
    put16(b, H_TWO);
    /* qh little-endian u32 = 0xff00_8001: 5th bit set for values 0, 15, 24..31 */
    b[2] = 0x01, b[3] = 0x80, b[4] = 0x00, b[5] = 0xff;
    for (int j = 0; j < 16; j++) b[6 + j] = (uint8_t)(j | (15 - j) << 4);
    float y[32];
    sp_quant_dequantize(SP_Q5_0, b, y, 32);
    for (int j = 0; j < 32; j++) {
        int nib = j < 16 ? j : 15 - (j - 16);
        int high = (j == 0 || j == 15 || j >= 24) ? 16 : 0;
        CHECKF(y[j] == 2.0f * (float)(nib + high - 16), "q5_0 value %d: %g", j, y[j]);
    }
}

/* Q4_K / Q5_K 6-bit scale packing, built by hand for
 *   sc = {1, 2, 3, 4, 17, 33, 50, 63}, m = {5, 6, 7, 8, 20, 40, 60, 9}:
 * bytes 0-3: sc[0..3] | (sc[4..7] >> 4) << 6; bytes 4-7: m[0..3] | (m[4..7] >> 4) << 6;
 * bytes 8-11: (sc[4..7] & 15) | (m[4..7] & 15) << 4. */
static const uint8_t k_scales[12] = {1 | 1 << 6, 2 | 2 << 6, 3 | 3 << 6, 4 | 3 << 6,
                                     5 | 1 << 6, 6 | 2 << 6, 7 | 3 << 6, 8 | 0 << 6,
                                     0x41,       0x81,       0xc2,       0x9f};
static const int k_sc[8] = {1, 2, 3, 4, 17, 33, 50, 63};
static const int k_m[8] = {5, 6, 7, 8, 20, 40, 60, 9};

/* 4-bit level of value i in the test pattern, and its 5th bit (Q5_K) */
static int kq_nib(int i) {
    return (i * 7 + i / 64) % 16;
}
static int kq_bit(int i) {
    return (i * 13 / 5) % 3 == 0;
}

/* qs byte 32c+l: low nibble = value 64c+l, high nibble = value 64c+32+l */
static void kq_fill_qs(uint8_t *qs) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            qs[32 * c + l] = (uint8_t)(kq_nib(64 * c + l) | kq_nib(64 * c + 32 + l) << 4);
}

static void test_q4_k(void) {
    uint8_t b[144];
    put16(b, H_HALF);        /* d */
    put16(b + 2, H_QUARTER); /* dmin */
    memcpy(b + 4, k_scales, 12);
    kq_fill_qs(b + 16);
    float y[256];
    sp_quant_dequantize(SP_Q4_K, b, y, 256);
    for (int i = 0; i < 256; i++) {
        int j = i / 32; /* sub-block */
        double want = 0.5 * k_sc[j] * kq_nib(i) - 0.25 * k_m[j];
        CHECKF(y[i] == (float)want, "q4_k value %d: %g want %g", i, y[i], want);
    }
    /* spot check by hand: value 200 = 64*3 + 8 is in sub-block 6 (sc 50,
     * m 60), the low nibble of qs[32*3 + 8] */
    CHECK_NEAR(y[200], 0.5 * 50 * ((200 * 7 + 3) % 16) - 0.25 * 60, 0);
}

static void test_q5_k(void) {
    uint8_t b[176];
    put16(b, H_TWO);
    put16(b + 2, H_HALF);
    memcpy(b + 4, k_scales, 12);
    /* qh[l]: bit 2c = 5th bit of value 64c+l, bit 2c+1 = of value 64c+32+l */
    for (int l = 0; l < 32; l++) {
        uint8_t h = 0;
        for (int c = 0; c < 4; c++)
            h |= (uint8_t)(kq_bit(64 * c + l) << (2 * c) | kq_bit(64 * c + 32 + l) << (2 * c + 1));
        b[16 + l] = h;
    }
    kq_fill_qs(b + 48);
    float y[256];
    sp_quant_dequantize(SP_Q5_K, b, y, 256);
    for (int i = 0; i < 256; i++) {
        int j = i / 32, q = kq_nib(i) + 16 * kq_bit(i);
        double want = 2.0 * k_sc[j] * q - 0.5 * k_m[j];
        CHECKF(y[i] == (float)want, "q5_k value %d: %g want %g", i, y[i], want);
    }
}

/* Q6_K: value i of a block, h = i/128, r = i%128, quarter k = r/32, l = r%32:
 * low 4 bits from ql[64h + l + 32*(k&1)] (low nibble for k<2, high for
 * k>=2), high 2 bits = (qh[32h + l] >> 2k) & 3, scale = scales[i/16]. */
static int q6_level(int i) {
    return (i * 37 + 11) % 64;
}

static void test_q6_k(void) {
    uint8_t b[210];
    memset(b, 0, sizeof(b));
    for (int i = 0; i < 256; i++) {
        int h = i / 128, k = (i % 128) / 32, l = i % 32, u = q6_level(i);
        b[64 * h + l + 32 * (k & 1)] |= (uint8_t)((u & 15) << (k >= 2 ? 4 : 0));
        b[128 + 32 * h + l] |= (uint8_t)((u >> 4) << (2 * k));
    }
    static const int8_t sc[16] = {1, -2, 3, -4, 5, 127, -128, 8, 9, 10, -11, 12, 13, 14, 15, -16};
    memcpy(b + 192, sc, 16);
    put16(b + 208, H_QUARTER);
    float y[256];
    sp_quant_dequantize(SP_Q6_K, b, y, 256);
    for (int i = 0; i < 256; i++) {
        double want = 0.25 * sc[i / 16] * (q6_level(i) - 32);
        CHECKF(y[i] == (float)want, "q6_k value %d: %g want %g", i, y[i], want);
    }
    /* literal bytes: ql[0] = 0xa5, qh[0] = 0b11100100 give value 0 = 5|0<<4,
     * value 64 = 0xa|2<<4 (ql[0] high nibble, qh bits 4-5) */
    uint8_t c[210];
    memset(c, 0, sizeof(c));
    c[0] = 0xa5;
    c[128] = 0xe4;
    c[192] = 1, c[196] = 1; /* scales of values 0..15 and 64..79 */
    put16(c + 208, H_ONE);
    sp_quant_dequantize(SP_Q6_K, c, y, 256);
    CHECK_NEAR(y[0], 5 - 32, 0);
    CHECK_NEAR(y[64], (0xa | 2 << 4) - 32, 0);
    CHECK_NEAR(y[32], 0, 0); /* scale 0 */
}

static void test_q8_k(void) {
    uint8_t b[292];
    memset(b, 0, sizeof(b));
    float d = -0.5f;
    memcpy(b, &d, 4);
    for (int j = 0; j < 256; j++) b[4 + j] = (uint8_t)(int8_t)(j - 128);
    float y[256];
    sp_quant_dequantize(SP_Q8_K, b, y, 256);
    for (int j = 0; j < 256; j++) CHECK_NEAR(y[j], -0.5 * (j - 128), 0);
}

/* Partial rows: dequantizing blocks [2, 4) of a row equals the tail of the
 * whole row (the matmul driver dequantizes column chunks). */
static void test_chunks(void) {
    uint8_t b[4 * 18];
    for (int i = 0; i < 4 * 18; i++) b[i] = (uint8_t)(i * 29 + 7);
    for (int k = 0; k < 4; k++) put16(b + 18 * k, (uint16_t)(H_ONE + k));
    float all[128], part[64];
    sp_quant_dequantize(SP_Q4_0, b, all, 128);
    sp_quant_dequantize(SP_Q4_0, b + 36, part, 64);
    CHECK(memcmp(all + 64, part, sizeof(part)) == 0);
}

int main(void) {
    test_q8_0();
    test_q4_0();
    test_q4_1();
    test_q5_0();
    test_q4_k();
    test_q5_k();
    test_q6_k();
    test_q8_k();
    test_chunks();
    return check_summary("test_quant_formats");
}
