/* safetensors reader: one file, or a Hugging Face model directory (sharded
 * with model.safetensors.index.json, or not). Files are mmapped; tensors are
 * views into the mapping and stay valid until sp_st_close.
 *
 * Everything is validated at open (header JSON, dtypes, shapes against
 * data_offsets, spans inside the data section, no overlaps, index vs shards);
 * errors are one line naming the file, the tensor and byte offsets.
 *
 * Dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL map to sp_dtype. The other
 * dtypes of the spec (F8_E4M3, F8_E5M2, F8_E8M0, F6_*, F4, U16, U32, U64, C64)
 * open fine and get dtype == SP_DTYPE_COUNT; sp_st_get() then reports
 * "unsupported dtype" for them. A string that is no safetensors dtype at all
 * is an error at open. */
#ifndef SP_FORMATS_SAFETENSORS_H
#define SP_FORMATS_SAFETENSORS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "compute/dtype.h"

#define SP_ST_MAX_DIMS 8

typedef struct sp_st_tensor {
    const char *name;
    sp_dtype dtype; /* SP_DTYPE_COUNT: a valid safetensors dtype Spindle has no sp_dtype for */
    int ndim;       /* 0 for a scalar */
    int64_t shape[SP_ST_MAX_DIMS]; /* row-major, shape[0] outermost */
    const void *data;              /* points into the mapped file */
    size_t nbytes;
    int file_index;
    uint64_t offset; /* absolute byte offset of data in its file */
} sp_st_tensor;

typedef struct sp_safetensors sp_safetensors;

/* path: a directory (model.safetensors.index.json -> its shards; else
 * model.safetensors; else every *.safetensors file in it, sorted by name) or
 * a single .safetensors file. A tensor name present in two files is an error. */
sp_status sp_st_open(sp_safetensors **out, const char *path, sp_error *err);
/* Hash lookup; NULL if absent. */
const sp_st_tensor *sp_st_find(const sp_safetensors *st, const char *name);
/* Lookup for use: SP_ENOTFOUND if absent, SP_EUNSUPPORTED for a dtype with no
 * sp_dtype (message names the tensor, its dtype and its file). */
sp_status sp_st_get(const sp_safetensors *st, const char *name, const sp_st_tensor **out,
                    sp_error *err);
int sp_st_count(const sp_safetensors *st);
/* Tensors in file order (file 0's tensors by data offset, then file 1's...). */
const sp_st_tensor *sp_st_at(const sp_safetensors *st, int i);
int sp_st_file_count(const sp_safetensors *st);
const char *sp_st_file_path(const sp_safetensors *st, int file_index);
/* The safetensors dtype string as written in the header ("BF16", "F8_E4M3"). */
const char *sp_st_dtype_str(const sp_safetensors *st, const sp_st_tensor *t);
/* The "__metadata__" object of file i (string -> string), or NULL. Owned by st. */
const json_t *sp_st_metadata(const sp_safetensors *st, int file_index);
void sp_st_close(sp_safetensors *st);

/* Test/tool helper: writes a safetensors file with the given tensors (name,
 * dtype, ndim, shape, data, nbytes are used; file_index/offset ignored) in the
 * given order. Only dtypes with a safetensors name can be written (not the
 * quantized ones). nbytes must equal numel * element size. */
sp_status sp_st_write(const char *path, const sp_st_tensor *tensors, int n, sp_error *err);

/* Safetensors dtype name of an sp_dtype, or NULL (quantized types). */
const char *sp_st_dtype_name(sp_dtype t);

#endif
