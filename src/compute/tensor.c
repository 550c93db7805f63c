/* Tensor views: shape arithmetic only; the data is owned elsewhere. */
#include "compute/tensor.h"

#include <assert.h>

#include "compute/ops.h"
#include "compute/quant.h"

int64_t sp_tensor_numel(const sp_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int64_t sp_tensor_cols(const sp_tensor *t) {
    return t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
}

int64_t sp_tensor_rows(const sp_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i + 1 < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t sp_tensor_row_bytes(const sp_tensor *t) {
    return sp_dtype_row_bytes(t->dtype, sp_tensor_cols(t));
}

void sp_tensor_prepare_cut(sp_tensor *t, int64_t cut) {
    if (!t->packed || cut % SP_PACK_ROWS == 0) return;
    sp_quant_unpack(t->dtype, t->data, sp_tensor_rows(t), sp_tensor_cols(t));
    t->packed = 0;
}

sp_tensor sp_tensor_rows_view(const sp_tensor *t, int64_t r0, int64_t n) {
    assert(!t->packed || (r0 % SP_PACK_ROWS == 0 && n % SP_PACK_ROWS == 0));
    sp_tensor v = *t;
    size_t rb = sp_tensor_row_bytes(t);
    int64_t cols = sp_tensor_cols(t);
    v.data = (char *)t->data + (size_t)r0 * rb;
    v.nbytes = (size_t)n * rb;
    if (t->ndim <= 1) { /* a 1-D tensor is one row */
        v.ndim = 1;
        v.shape[0] = cols;
        return v;
    }
    v.ndim = 2; /* outer dims flattened */
    v.shape[0] = n;
    v.shape[1] = cols;
    return v;
}

sp_tensor sp_tensor_index(const sp_tensor *t, int64_t i) {
    sp_tensor v = *t;
    if (t->ndim <= 1) { /* element i of a vector of a plain (unblocked) type */
        size_t esz = sp_dtype_block_bytes(t->dtype);
        v.ndim = 1;
        v.shape[0] = 1;
        v.data = (char *)t->data + (size_t)i * esz;
        v.nbytes = esz;
        return v;
    }
    size_t slice = sp_tensor_row_bytes(t);
    for (int d = 1; d + 1 < t->ndim; d++) slice *= (size_t)t->shape[d];
    v.ndim = t->ndim - 1;
    for (int d = 0; d < v.ndim; d++) v.shape[d] = t->shape[d + 1];
    v.shape[v.ndim] = 0;
    v.data = (char *)t->data + (size_t)i * slice;
    v.nbytes = slice;
    return v;
}

void sp_tensor_row_f32(const sp_tensor *t, int64_t r, float *dst) {
    if (t->packed) {
        int64_t n = sp_tensor_cols(t);
        sp_quant_packed_dequantize(t->dtype, sp_ops_isa(), t->data, n, r, 0, n, dst);
        return;
    }
    const char *row = (const char *)t->data + (size_t)r * sp_tensor_row_bytes(t);
    sp_dequantize_row(t->dtype, row, dst, sp_tensor_cols(t));
}
