/* A tensor is a typed, row-major view of memory it does not own.
 * shape[0] is the outermost dimension; for a 2-D weight [out, in] row o is
 * the o-th output feature, as PyTorch stores Linear weights. */
#ifndef SP_COMPUTE_TENSOR_H
#define SP_COMPUTE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "compute/dtype.h"

#define SP_MAX_DIMS 4

typedef struct sp_tensor {
    sp_dtype dtype;
    int ndim;
    int64_t shape[SP_MAX_DIMS];
    void *data;    /* not owned */
    size_t nbytes; /* bytes covered by this view */
    /* rows interleaved in groups of 8 for the decode kernels (quant.h,
     * sp_quant_pack; set at load by weights.c). Views of a packed tensor
     * must start and end at multiples of 8 rows. */
    int packed;
} sp_tensor;

int64_t sp_tensor_numel(const sp_tensor *t);
int64_t sp_tensor_rows(const sp_tensor *t); /* product of all dims but the last */
int64_t sp_tensor_cols(const sp_tensor *t); /* last dim */
size_t sp_tensor_row_bytes(const sp_tensor *t);
/* View of rows [r0, r0+n) of a tensor (the outer dims flattened), no copy. */
sp_tensor sp_tensor_rows_view(const sp_tensor *t, int64_t r0, int64_t n);
/* Before views of a fused matrix (q|k|v, gate|up) are cut at row `cut`: a
 * packed matrix whose cut is not on a group boundary goes back to the plain
 * layout in place, so every view reads its own rows (the plain kernels then
 * serve it). */
void sp_tensor_prepare_cut(sp_tensor *t, int64_t cut);
/* View of slice i of the first dimension (e.g. expert i of [E, out, in]). */
sp_tensor sp_tensor_index(const sp_tensor *t, int64_t i);
/* Reads row r as f32 into dst (cols values), dequantizing as needed. */
void sp_tensor_row_f32(const sp_tensor *t, int64_t r, float *dst);

#endif
