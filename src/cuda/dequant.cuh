/* Device-side dequantization of one chunk of 32 consecutive values of a
 * weight row, for every dtype a weight may have on the device. The formats
 * are compute/quant_internal.h's (byte-compatible with GGUF); the
 * arithmetic follows compute/quant_ref.c, the reference definition.
 * Blocks start at odd byte offsets (34, 18, 22 bytes...), so the quantized
 * formats read bytes and 2-byte halves, never wider words. */
#ifndef SP_CUDA_DEQUANT_CUH
#define SP_CUDA_DEQUANT_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

extern "C" {
#include "compute/dtype.h"
}

__device__ __forceinline__ float f16_at(const uint8_t *p) {
    __half_raw r;
    r.x = (unsigned short)(p[0] | p[1] << 8);
    return __half2float(__half(r));
}

__device__ __forceinline__ float bf16_bits(uint32_t b) {
    return __uint_as_float(b << 16);
}

/* 6-bit scale and min of sub-block j of a Q4_K/Q5_K super-block */
__device__ __forceinline__ void kq_scale_min(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Chunk c (values 32c .. 32c+31) of a row of n values. Float types may end
 * mid-chunk (values past n read as 0); VEC: the row is 16-byte aligned and
 * n a multiple of 32, so 16-byte loads are used. */
template <int DT, bool VEC>
__device__ __forceinline__ void deq_chunk(const uint8_t *row, int c, int n, float w[32]) {
    if (DT == SP_F32) {
        const float *p = (const float *)row + 32 * c;
        if (VEC) {
#pragma unroll
            for (int i = 0; i < 8; i++) {
                float4 v = ((const float4 *)p)[i];
                w[4 * i] = v.x, w[4 * i + 1] = v.y, w[4 * i + 2] = v.z, w[4 * i + 3] = v.w;
            }
        } else {
#pragma unroll
            for (int i = 0; i < 32; i++) w[i] = 32 * c + i < n ? p[i] : 0.0f;
        }
    } else if (DT == SP_F16 || DT == SP_BF16) {
        const uint16_t *p = (const uint16_t *)row + 32 * c;
        if (VEC) {
#pragma unroll
            for (int i = 0; i < 4; i++) {
                uint4 v = ((const uint4 *)p)[i];
                uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    if (DT == SP_BF16) {
                        w[8 * i + 2 * j] = bf16_bits(u[j] & 0xffff);
                        w[8 * i + 2 * j + 1] = bf16_bits(u[j] >> 16);
                    } else {
                        __half2_raw h;
                        h.x = (unsigned short)(u[j] & 0xffff);
                        h.y = (unsigned short)(u[j] >> 16);
                        float2 f = __half22float2(__half2(h));
                        w[8 * i + 2 * j] = f.x;
                        w[8 * i + 2 * j + 1] = f.y;
                    }
                }
            }
        } else {
#pragma unroll
            for (int i = 0; i < 32; i++) {
                float f = 0.0f;
                if (32 * c + i < n)
                    f = DT == SP_BF16 ? bf16_bits(p[i]) : __half2float(__ushort_as_half(p[i]));
                w[i] = f;
            }
        }
    } else if (DT == SP_Q8_0) {
        const uint8_t *b = row + 34 * c;
        float d = f16_at(b);
#pragma unroll
        for (int i = 0; i < 32; i++) w[i] = d * (float)(int8_t)b[2 + i];
    } else if (DT == SP_Q4_0) {
        const uint8_t *b = row + 18 * c;
        float d = f16_at(b);
#pragma unroll
        for (int i = 0; i < 16; i++) {
            w[i] = d * (float)((b[2 + i] & 0x0f) - 8);
            w[i + 16] = d * (float)((b[2 + i] >> 4) - 8);
        }
    } else if (DT == SP_Q4_1) {
        const uint8_t *b = row + 20 * c;
        float d = f16_at(b), m = f16_at(b + 2);
#pragma unroll
        for (int i = 0; i < 16; i++) {
            w[i] = d * (float)(b[4 + i] & 0x0f) + m;
            w[i + 16] = d * (float)(b[4 + i] >> 4) + m;
        }
    } else if (DT == SP_Q5_0) {
        const uint8_t *b = row + 22 * c;
        float d = f16_at(b);
        uint32_t qh = b[2] | b[3] << 8 | b[4] << 16 | (uint32_t)b[5] << 24;
#pragma unroll
        for (int i = 0; i < 16; i++) {
            int lo = (b[6 + i] & 0x0f) | (int)((qh >> i) & 1) << 4;
            int hi = (b[6 + i] >> 4) | (int)((qh >> (i + 16)) & 1) << 4;
            w[i] = d * (float)(lo - 16);
            w[i + 16] = d * (float)(hi - 16);
        }
    } else if (DT == SP_Q4_K || DT == SP_Q5_K) {
        /* super-block of 256: d, dmin, scales[12], (Q5_K: qh[32]), qs[128] */
        const int bytes = DT == SP_Q4_K ? 144 : 176;
        const uint8_t *b = row + (size_t)bytes * (c / 8);
        int j = c % 8, sc, m;
        kq_scale_min(j, b + 4, &sc, &m);
        float ds = f16_at(b) * (float)sc, dm = f16_at(b + 2) * (float)m;
        const uint8_t *qh = b + 16, *qs = b + (DT == SP_Q4_K ? 16 : 48) + 32 * (j / 2);
        int shift = 4 * (j % 2);
#pragma unroll
        for (int l = 0; l < 32; l++) {
            int q = (qs[l] >> shift) & 0x0f;
            if (DT == SP_Q5_K) q |= ((qh[l] >> j) & 1) << 4;
            w[l] = ds * (float)q - dm;
        }
    } else if (DT == SP_Q6_K) {
        /* super-block of 256: ql[128], qh[64], scales[16] (int8), d (f16) */
        const uint8_t *b = row + (size_t)210 * (c / 8);
        int j = c % 8, h = j / 4, quarter = j % 4;
        const uint8_t *ql = b + 64 * h + (quarter & 1) * 32, *qh = b + 128 + 32 * h;
        const int8_t *sc = (const int8_t *)(b + 192) + 8 * h + 2 * quarter;
        float d = f16_at(b + 208);
        int lshift = (quarter >> 1) * 4, hshift = 2 * quarter;
#pragma unroll
        for (int l = 0; l < 32; l++) {
            int q = ((ql[l] >> lshift) & 0x0f) | ((qh[l] >> hshift) & 3) << 4;
            w[l] = d * (float)sc[l / 16] * (float)(q - 32);
        }
    }
}

#endif
