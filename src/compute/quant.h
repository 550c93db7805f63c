/* Kernels for llama.cpp-compatible block-quantized weight types
 * (Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K) and their activation partner
 * types (Q8_0, Q8_1, Q8_K). Block layouts follow llama.cpp's definitions. */
#ifndef SP_COMPUTE_QUANT_H
#define SP_COMPUTE_QUANT_H

#include <stdint.h>

#include "compute/dtype.h"
#include "compute/ops.h"

typedef struct sp_quant_kernels {
    sp_dtype act_type; /* the activation partner type the dot expects */
    /* quantizes n f32 activations (a multiple of the block) into act_type */
    void (*quantize_act)(const float *x, void *xq, int64_t n);
    /* dot product of one weight row of n values with a quantized activation */
    float (*dot)(int64_t n, const void *w, const void *xq);
} sp_quant_kernels;

/* Kernels of weight type t at the given ISA level (falls back to a lower
 * level where a type has no kernel at that level); NULL if t is not a
 * block-quantized weight type. */
const sp_quant_kernels *sp_quant_get(sp_dtype t, sp_isa isa);

/* Scalar reference definitions (the spec of each format). */
void sp_quant_dequantize(sp_dtype t, const void *src, float *dst, int64_t n);
/* The same values (bit for bit) with the fastest kernel the ISA level has. */
void sp_quant_dequantize_isa(sp_dtype t, sp_isa isa, const void *src, float *dst, int64_t n);
/* Returns 1 on success, 0 if t cannot be produced. */
int sp_quant_quantize(sp_dtype t, const float *src, void *dst, int64_t n);

/* ---- row-interleaved ("packed") weights for decode ----------------------
 * At load, a weight matrix of a packable type whose row count is a multiple
 * of SP_PACK_ROWS is rearranged in place (same bytes, sp_tensor.packed set):
 * each group of SP_PACK_ROWS consecutive rows is interleaved so that one
 * 256-bit load holds 4 bytes of every row of the group, and the decode
 * kernel computes 8 dot products in the lanes of one register (no
 * horizontal sums, one activation broadcast feeds 8 rows). Group layout for
 * nb blocks per row: nb pieces of 144 bytes (Q4_0: 128 bytes of nibbles,
 * chunk k = 0..3: row r's qs[4k..4k+3] at byte 32k + 4r, then the 8 rows'
 * f16 d) or 272 bytes (Q8_0: chunk k = 0..7 the same way, then the d), so
 * a group is one stream (the scales at the group's end, a second stream,
 * read 78% of a plain read from DRAM on Zen 4 against 101% for Q4_K). Q4_K: one 1152-byte piece per
 * super-block (its qs chunked the same way, then the rows' scale bytes,
 * d and dmin; quant_internal.h), so a group is read front to back. A group
 * starts at byte g * 8 * row_bytes, so views of whole groups (rows_view at
 * multiples of 8, experts) stay valid. */
#define SP_PACK_ROWS 8

typedef struct sp_quant_packed_kernels {
    /* bytes of one prepared activation row of n values */
    size_t (*act_bytes)(int64_t n);
    /* quantizes n f32 activations exactly as the type's quantize_act does
     * (the same int8 values and scales), in the layout the kernel reads */
    void (*prep_act)(const float *x, void *xa, int64_t n);
    /* y[r] += dot(row r of the group, activation), r < SP_PACK_ROWS.
     * Software prefetches ahead of the stream stop at pf_end (the end of
     * the caller's share of the matrix: the bytes after it are another
     * thread's), NULL: the group's end. */
    void (*gemv8)(int64_t n, const void *group, const void *xa, float *y, const void *pf_end);
} sp_quant_packed_kernels;

/* 1 if t has a packed layout. */
int sp_quant_packable(sp_dtype t);
/* Packs (unpack: undoes) rows x n values in place; rows must be a multiple
 * of SP_PACK_ROWS. Returns 0 (data untouched) if t is not packable or a
 * group's scratch cannot be allocated. */
int sp_quant_pack(sp_dtype t, void *data, int64_t rows, int64_t n);
int sp_quant_unpack(sp_dtype t, void *data, int64_t rows, int64_t n);
/* Values [k0, k0+len) (block-aligned) of row r of a packed matrix with n
 * values per row, as f32: bit-identical to sp_quant_dequantize_isa on the
 * unpacked row. */
void sp_quant_packed_dequantize(sp_dtype t, sp_isa isa, const void *data, int64_t n, int64_t r,
                                int64_t k0, int64_t len, float *dst);
/* Kernels for packed weights of type t at the ISA level (falls back to
 * scalar); NULL if t is not packable. */
const sp_quant_packed_kernels *sp_quant_packed_get(sp_dtype t, sp_isa isa);

#endif
