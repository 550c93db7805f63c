/* Row-interleaved (packed) Q4_0 / Q8_0 / Q4_K weights: the in-place repack
 * done at load, row reads of packed matrices (prefill, --precision f32,
 * embedding rows) and the scalar decode kernels that define what the SIMD
 * ones compute. The layouts are described in quant.h. */
#include <stdlib.h>

#include "compute/quant_internal.h"

/* Bytes of nibbles/int8 per row per block (the rest of a block is its f16 d,
 * stored first in both types). */
static int qbytes(sp_dtype t) {
    return t == SP_Q4_0 ? SP_QK / 2 : t == SP_Q8_0 ? SP_QK : 0;
}

int sp_quant_packable(sp_dtype t) {
    return qbytes(t) != 0 || t == SP_Q4_K;
}

/* Row r's Q4_K super-block between natural order (blk) and its place in a
 * packed super-block of its group (pk, SP_PK_K_BYTES). */
static void pack_k_row(uint8_t *blk, uint8_t *pk, int r, int to_packed) {
    struct {
        uint8_t *packed, *plain;
        size_t len;
    } parts[] = {{pk + SP_PK_K_D + 2 * r, blk, 2},
                 {pk + SP_PK_K_DMIN + 2 * r, blk + 2, 2},
                 {pk + SP_PK_K_SC + 4 * r, blk + 4, 4},
                 {pk + SP_PK_K_SC + 32 + 4 * r, blk + 8, 4},
                 {pk + SP_PK_K_SC + 64 + 4 * r, blk + 12, 4}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (to_packed)
            memcpy(parts[i].packed, parts[i].plain, parts[i].len);
        else
            memcpy(parts[i].plain, parts[i].packed, parts[i].len);
    }
    for (int k = 0; k < SP_QKK / 8; k++) { /* 32 chunks of 4 bytes of qs */
        if (to_packed)
            memcpy(pk + 32 * k + 4 * r, blk + 16 + 4 * k, 4);
        else
            memcpy(blk + 16 + 4 * k, pk + 32 * k + 4 * r, 4);
    }
}

/* One super-block of the 8 rows of a group (nat: row r's block at r * rb). */
static void pack_k_block(uint8_t *nat, size_t rb, uint8_t *pk, int to_packed) {
    for (int r = 0; r < SP_PACK_ROWS; r++) pack_k_row(nat + (size_t)r * rb, pk, r, to_packed);
}

/* One group between natural (rows of blocks) and packed order. */
static void pack_group(sp_dtype t, const uint8_t *src, uint8_t *dst, int64_t nb, int to_packed) {
    size_t qb = (size_t)qbytes(t), bb = qb + 2, rb = bb * (size_t)nb;
    uint8_t *dq = to_packed ? dst : (uint8_t *)src;
    const uint8_t *nat = to_packed ? src : dst;
    for (int r = 0; r < SP_PACK_ROWS; r++) {
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *blk = (uint8_t *)nat + (size_t)r * rb + (size_t)b * bb;
            uint8_t *pb = dq + (size_t)b * SP_PACK_ROWS * bb; /* the group's block b */
            uint8_t *d = pb + SP_PACK_ROWS * qb + 2 * (size_t)r;
            uint8_t *q = pb + 4 * (size_t)r;
            if (to_packed)
                memcpy(d, blk, 2);
            else
                memcpy(blk, d, 2);
            for (size_t k = 0; k < qb / 4; k++) {
                if (to_packed)
                    memcpy(q + 32 * k, blk + 2 + 4 * k, 4);
                else
                    memcpy(blk + 2 + 4 * k, q + 32 * k, 4);
            }
        }
    }
}

static void pack_group_k(const uint8_t *src, uint8_t *dst, int64_t nb, int to_packed) {
    size_t rb = sizeof(sp_block_q4_k) * (size_t)nb;
    for (int64_t b = 0; b < nb; b++) {
        size_t off = (size_t)b * sizeof(sp_block_q4_k);
        if (to_packed)
            pack_k_block((uint8_t *)src + off, rb, dst + SP_PACK_ROWS * off, 1);
        else
            pack_k_block(dst + off, rb, (uint8_t *)src + SP_PACK_ROWS * off, 0);
    }
}

static int repack(sp_dtype t, void *data, int64_t rows, int64_t n, int to_packed) {
    if (!sp_quant_packable(t) || rows % SP_PACK_ROWS != 0 || n % sp_dtype_block(t) != 0) return 0;
    if (t == SP_Q4_K) {
        int64_t nb = n / SP_QKK;
        size_t gbytes = (size_t)SP_PACK_ROWS * sp_dtype_row_bytes(t, n);
        uint8_t *tmp = malloc(gbytes);
        if (!tmp) return 0;
        for (int64_t g = 0; g < rows / SP_PACK_ROWS; g++) {
            uint8_t *p = (uint8_t *)data + (size_t)g * gbytes;
            memcpy(tmp, p, gbytes);
            pack_group_k(tmp, p, nb, to_packed);
        }
        free(tmp);
        return 1;
    }
    int64_t nb = n / SP_QK;
    size_t gbytes = (size_t)SP_PACK_ROWS * sp_dtype_row_bytes(t, n);
    uint8_t *tmp = malloc(gbytes);
    if (!tmp) return 0;
    for (int64_t g = 0; g < rows / SP_PACK_ROWS; g++) {
        uint8_t *p = (uint8_t *)data + (size_t)g * gbytes;
        memcpy(tmp, p, gbytes);
        if (to_packed)
            pack_group(t, tmp, p, nb, 1);
        else
            pack_group(t, p, tmp, nb, 0);
        if (!to_packed) memcpy(p, tmp, gbytes);
    }
    free(tmp);
    return 1;
}

int sp_quant_pack(sp_dtype t, void *data, int64_t rows, int64_t n) {
    return repack(t, data, rows, n, 1);
}

int sp_quant_unpack(sp_dtype t, void *data, int64_t rows, int64_t n) {
    return repack(t, data, rows, n, 0);
}

/* Q4_K: super-blocks [k0/256, (k0+len)/256) of row r, one at a time. */
static void packed_dequantize_k(sp_isa isa, const void *data, int64_t n, int64_t r, int64_t k0,
                                int64_t len, float *dst) {
    int64_t nb = n / SP_QKK, ri = r % SP_PACK_ROWS;
    const uint8_t *g = (const uint8_t *)data + (size_t)(r / SP_PACK_ROWS) * SP_PACK_ROWS *
                                                   sizeof(sp_block_q4_k) * (size_t)nb;
    uint8_t blk[sizeof(sp_block_q4_k)];
    for (int64_t b = k0 / SP_QKK; b < (k0 + len) / SP_QKK; b++) {
        pack_k_row(blk, (uint8_t *)g + (size_t)b * SP_PK_K_BYTES, (int)ri, 0);
        sp_quant_dequantize_isa(SP_Q4_K, isa, blk, dst + (b * SP_QKK - k0), SP_QKK);
    }
}

void sp_quant_packed_dequantize(sp_dtype t, sp_isa isa, const void *data, int64_t n, int64_t r,
                                int64_t k0, int64_t len, float *dst) {
    enum { CHUNK = 16 }; /* blocks gathered back into natural order at a time */
    if (t == SP_Q4_K) {
        packed_dequantize_k(isa, data, n, r, k0, len, dst);
        return;
    }
    size_t qb = (size_t)qbytes(t), bb = qb + 2;
    int64_t nb = n / SP_QK, ri = r % SP_PACK_ROWS;
    const uint8_t *g = (const uint8_t *)data + (size_t)(r / SP_PACK_ROWS) * SP_PACK_ROWS * bb * nb;
    uint8_t buf[CHUNK * 34];
    for (int64_t b0 = k0 / SP_QK; b0 < (k0 + len) / SP_QK; b0 += CHUNK) {
        int64_t m = (k0 + len) / SP_QK - b0 < CHUNK ? (k0 + len) / SP_QK - b0 : CHUNK;
        for (int64_t b = 0; b < m; b++) {
            uint8_t *blk = buf + (size_t)b * bb;
            const uint8_t *pb = g + (size_t)(b0 + b) * SP_PACK_ROWS * bb;
            memcpy(blk, pb + SP_PACK_ROWS * qb + 2 * (size_t)ri, 2);
            const uint8_t *q = pb + 4 * (size_t)ri;
            for (size_t k = 0; k < qb / 4; k++) memcpy(blk + 2 + 4 * k, q + 32 * k, 4);
        }
        sp_quant_dequantize_isa(t, isa, buf, dst + (b0 * SP_QK - k0), m * SP_QK);
    }
}

/* ---- prepared activations -------------------------------------------------- */

size_t sp_pk_act_bytes(int64_t n) {
    return (size_t)n + (size_t)(n / SP_QK) * 8;
}

void sp_pk_act_from_q8_0(const sp_block_q8_0 *q, void *xa, int64_t n) {
    int8_t *qs = xa;
    float *d = (float *)(qs + n);
    int32_t *s = (int32_t *)(d + n / SP_QK);
    for (int64_t b = 0; b < n / SP_QK; b++) {
        memcpy(qs + b * SP_QK, q[b].qs, SP_QK);
        d[b] = sp_q_f16(q[b].d);
        int sum = 0;
        for (int j = 0; j < SP_QK; j++) sum += q[b].qs[j];
        s[b] = sum;
    }
}

static void prep_scalar(const float *x, void *xa, int64_t n) {
    enum { CHUNK = 64 };
    sp_block_q8_0 tmp[CHUNK];
    float *d = (float *)((int8_t *)xa + n);
    int32_t *s = (int32_t *)(d + n / SP_QK);
    for (int64_t b0 = 0; b0 < n / SP_QK; b0 += CHUNK) {
        int64_t m = n / SP_QK - b0 < CHUNK ? n / SP_QK - b0 : CHUNK;
        sp_quant_act_q8_0_scalar(x + b0 * SP_QK, tmp, m * SP_QK);
        /* the chunk's three parts sit at their offsets in the whole row */
        int8_t part[CHUNK * 40];
        sp_pk_act_from_q8_0(tmp, part, m * SP_QK);
        memcpy((int8_t *)xa + b0 * SP_QK, part, (size_t)m * SP_QK);
        memcpy(d + b0, part + m * SP_QK, (size_t)m * 4);
        memcpy(s + b0, part + m * SP_QK + m * 4, (size_t)m * 4);
    }
}

/* ---- scalar kernels: the same integer sums and the same f32 operations, in
 * the same order per row, as quant_scalar.c's dot_q4_0 / dot_q8_0 ---------- */

static void gemv8_q4_0_scalar(int64_t n, const void *group, const void *xa, float *y,
                              const void *pf_end) {
    (void)pf_end;
    int64_t nb = n / SP_QK;
    const uint8_t *q = group;
    const int8_t *yq = xa;
    const float *yd = sp_pk_act_d(xa, n);
    for (int r = 0; r < SP_PACK_ROWS; r++) {
        float sum = 0.0f;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *qb = q + (size_t)b * SP_PK_Q4_0_BLOCK + 4 * r;
            const uint16_t *wd = (const uint16_t *)(q + (size_t)b * SP_PK_Q4_0_BLOCK + 128);
            const int8_t *yb = yq + b * SP_QK;
            int s = 0;
            for (int k = 0; k < 4; k++) {
                for (int j = 0; j < 4; j++) {
                    s += ((qb[32 * k + j] & 0x0f) - 8) * yb[4 * k + j];
                    s += ((qb[32 * k + j] >> 4) - 8) * yb[16 + 4 * k + j];
                }
            }
            sum += (float)s * (sp_q_f16(wd[r]) * yd[b]);
        }
        y[r] += sum;
    }
}

static void gemv8_q8_0_scalar(int64_t n, const void *group, const void *xa, float *y,
                              const void *pf_end) {
    (void)pf_end;
    int64_t nb = n / SP_QK;
    const int8_t *q = group;
    const int8_t *yq = xa;
    const float *yd = sp_pk_act_d(xa, n);
    for (int r = 0; r < SP_PACK_ROWS; r++) {
        float sum = 0.0f;
        for (int64_t b = 0; b < nb; b++) {
            const int8_t *qb = q + (size_t)b * SP_PK_Q8_0_BLOCK + 4 * r;
            const uint16_t *wd = (const uint16_t *)(q + (size_t)b * SP_PK_Q8_0_BLOCK + 256);
            const int8_t *yb = yq + b * SP_QK;
            int s = 0;
            for (int k = 0; k < 8; k++)
                for (int j = 0; j < 4; j++) s += qb[32 * k + j] * yb[4 * k + j];
            sum += (float)s * (sp_q_f16(wd[r]) * yd[b]);
        }
        y[r] += sum;
    }
}

/* Q4_K: the same integer sums and f32 operations per row as quant_scalar.c's
 * dot_q4_k (sub-block mins through the activation's 32-value sums). */
static void gemv8_q4_k_scalar(int64_t n, const void *group, const void *xa, float *y,
                              const void *pf_end) {
    (void)pf_end;
    int64_t nb = n / SP_QKK;
    const int8_t *yq = xa;
    const float *yd = sp_pk_k_act_d(xa, n);
    const int16_t *bs = sp_pk_k_act_bs(xa, n);
    for (int r = 0; r < SP_PACK_ROWS; r++) {
        float sum = 0.0f;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *pk = (const uint8_t *)group + (size_t)b * SP_PK_K_BYTES;
            uint8_t scales[12];
            for (int j = 0; j < 3; j++) memcpy(scales + 4 * j, pk + SP_PK_K_SC + 32 * j + 4 * r, 4);
            int isum = 0, msum = 0;
            for (int j = 0; j < 8; j++) {
                uint8_t sc, m;
                sp_kq_scale_min(j, scales, &sc, &m);
                int c = j / 2, s = 0;
                for (int l = 0; l < 32; l++) {
                    int k = 32 * c + l; /* byte k of the row's qs: chunk k/4 */
                    uint8_t v = pk[32 * (k / 4) + 4 * r + k % 4];
                    s += ((j & 1) ? v >> 4 : v & 0x0f) * yq[b * SP_QKK + 32 * j + l];
                }
                isum += sc * s;
                msum += m * bs[b * 8 + j];
            }
            uint16_t d, dmin;
            memcpy(&d, pk + SP_PK_K_D + 2 * r, 2);
            memcpy(&dmin, pk + SP_PK_K_DMIN + 2 * r, 2);
            sum += yd[b] * sp_q_f16(d) * (float)isum - yd[b] * sp_q_f16(dmin) * (float)msum;
        }
        y[r] += sum;
    }
}

size_t sp_pk_k_act_bytes(int64_t n) {
    return (size_t)n + (size_t)(n / SP_QKK) * (4 + 16);
}

void sp_pk_k_act_from_q8_k(const sp_block_q8_k *q, void *xa, int64_t n) {
    int64_t nb = n / SP_QKK;
    float *d = (float *)((int8_t *)xa + n);
    int16_t *bs = (int16_t *)(d + nb);
    for (int64_t b = 0; b < nb; b++) {
        memcpy((int8_t *)xa + b * SP_QKK, q[b].qs, SP_QKK);
        d[b] = q[b].d;
        for (int j = 0; j < 8; j++)
            bs[b * 8 + j] = (int16_t)(q[b].bsums[2 * j] + q[b].bsums[2 * j + 1]);
    }
}

static void prep_k_scalar(const float *x, void *xa, int64_t n) {
    enum { CHUNK = 8 }; /* super-blocks quantized at a time */
    sp_block_q8_k tmp[CHUNK];
    int64_t nb = n / SP_QKK;
    float *d = (float *)((int8_t *)xa + n);
    int16_t *bs = (int16_t *)(d + nb);
    for (int64_t b0 = 0; b0 < nb; b0 += CHUNK) {
        int64_t m = nb - b0 < CHUNK ? nb - b0 : CHUNK;
        sp_quant_act_q8_k_scalar(x + b0 * SP_QKK, tmp, m * SP_QKK);
        for (int64_t b = 0; b < m; b++) {
            memcpy((int8_t *)xa + (b0 + b) * SP_QKK, tmp[b].qs, SP_QKK);
            d[b0 + b] = tmp[b].d;
            for (int j = 0; j < 8; j++)
                bs[(b0 + b) * 8 + j] = (int16_t)(tmp[b].bsums[2 * j] + tmp[b].bsums[2 * j + 1]);
        }
    }
}

static const sp_quant_packed_kernels pk_q4_k = {sp_pk_k_act_bytes, prep_k_scalar,
                                                gemv8_q4_k_scalar};
static const sp_quant_packed_kernels pk_q4_0 = {sp_pk_act_bytes, prep_scalar, gemv8_q4_0_scalar};
static const sp_quant_packed_kernels pk_q8_0 = {sp_pk_act_bytes, prep_scalar, gemv8_q8_0_scalar};

const sp_quant_packed_kernels *sp_quant_packed_scalar_table(sp_dtype t) {
    return t == SP_Q4_0 ? &pk_q4_0 : t == SP_Q8_0 ? &pk_q8_0 : t == SP_Q4_K ? &pk_q4_k : NULL;
}

const sp_quant_packed_kernels *sp_quant_packed_get(sp_dtype t, sp_isa isa) {
    const sp_quant_packed_kernels *k = NULL;
    if (isa >= SP_ISA_AVX512 && sp_quant_avx512_usable()) k = sp_quant_packed_avx512_table(t);
    if (!k && isa >= SP_ISA_AVX2) k = sp_quant_packed_avx2_table(t);
    if (!k) k = sp_quant_packed_scalar_table(t);
    return k;
}
