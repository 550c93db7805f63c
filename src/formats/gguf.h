/* GGUF reader (versions 2 and 3; v1 and big-endian files are rejected with a
 * clear error). The file is mmapped; tensor data are views into the mapping,
 * valid until sp_gguf_close. Everything is validated at open: magic, version,
 * counts against the file size, every string and array against the end of the
 * file, value types, nested arrays (depth <= 8), tensor infos (n_dims 1..4,
 * dims product overflow, known ggml type, row length a multiple of the block),
 * alignment (general.alignment, default 32, a power of two), tensor offsets
 * (aligned, inside the data section, no overlaps), duplicate keys / names.
 * Errors are one line naming the file, the key or tensor and the byte offset.
 *
 * Shapes: GGUF lists dims innermost-first (ne[0] = row length). sp_gguf_tensor
 * gives both: `ne` exactly as in the file and `shape` in Spindle's row-major
 * outermost-first convention (shape[ndim-1] == ne[0], shape[0] == ne[ndim-1]).
 * A 2-D weight with ne = {in, out} has shape = {out, in}, like PyTorch.
 *
 * Tensor types: every ggml type id known to llama.cpp (see sp_ggml_type_name)
 * is accepted at open. Types Spindle has no sp_dtype for (Q5_1, Q2_K, Q3_K,
 * IQ*, TQ*, MXFP4) get dtype == SP_DTYPE_COUNT, and sp_gguf_get_tensor()
 * reports "unsupported tensor type NAME for tensor X" for them when used. An
 * unknown type id is an error at open (its size cannot be known). */
#ifndef SP_FORMATS_GGUF_H
#define SP_FORMATS_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "compute/dtype.h"
#include "compute/tensor.h"

/* Metadata value types, as numbered in the file. */
typedef enum sp_gguf_type {
    SP_GGUF_U8 = 0,
    SP_GGUF_I8 = 1,
    SP_GGUF_U16 = 2,
    SP_GGUF_I16 = 3,
    SP_GGUF_U32 = 4,
    SP_GGUF_I32 = 5,
    SP_GGUF_F32 = 6,
    SP_GGUF_BOOL = 7,
    SP_GGUF_STRING = 8,
    SP_GGUF_ARRAY = 9,
    SP_GGUF_U64 = 10,
    SP_GGUF_I64 = 11,
    SP_GGUF_F64 = 12,
    SP_GGUF_TYPE_COUNT
} sp_gguf_type;

/* ggml tensor type ids (llama.cpp ggml.h). */
enum {
    SP_GGML_F32 = 0,
    SP_GGML_F16 = 1,
    SP_GGML_Q4_0 = 2,
    SP_GGML_Q4_1 = 3,
    SP_GGML_Q5_0 = 6,
    SP_GGML_Q5_1 = 7,
    SP_GGML_Q8_0 = 8,
    SP_GGML_Q8_1 = 9,
    SP_GGML_Q2_K = 10,
    SP_GGML_Q3_K = 11,
    SP_GGML_Q4_K = 12,
    SP_GGML_Q5_K = 13,
    SP_GGML_Q6_K = 14,
    SP_GGML_Q8_K = 15,
    SP_GGML_I8 = 24,
    SP_GGML_I16 = 25,
    SP_GGML_I32 = 26,
    SP_GGML_I64 = 27,
    SP_GGML_F64 = 28,
    SP_GGML_BF16 = 30,
};
#define SP_GGML_NONE UINT32_MAX

#define SP_GGUF_DEFAULT_ALIGNMENT 32
#define SP_GGUF_MAX_DIMS          4

typedef struct sp_gguf sp_gguf;
typedef struct sp_gguf_val sp_gguf_val; /* a metadata value; read with the accessors below */

typedef struct sp_gguf_tensor {
    const char *name;
    uint32_t ggml_type;              /* id as in the file */
    sp_dtype dtype;                  /* SP_DTYPE_COUNT when Spindle has no such dtype */
    int ndim;                        /* 1..4 */
    int64_t shape[SP_GGUF_MAX_DIMS]; /* outermost first: shape[ndim-1] == ne[0] */
    int64_t ne[SP_GGUF_MAX_DIMS];    /* file order, innermost first; unused dims are 1 */
    const void *data;                /* into the mapping (aligned to the file's alignment) */
    size_t nbytes;
    uint64_t offset; /* absolute byte offset in the file */
} sp_gguf_tensor;

/* ---- file ---- */
sp_status sp_gguf_open(sp_gguf **out, const char *path, sp_error *err);
void sp_gguf_close(sp_gguf *g);
const char *sp_gguf_path(const sp_gguf *g);
uint32_t sp_gguf_version(const sp_gguf *g);
uint32_t sp_gguf_alignment(const sp_gguf *g);
uint64_t sp_gguf_data_offset(const sp_gguf *g); /* absolute start of the data section */

/* ---- metadata ---- */
int sp_gguf_kv_count(const sp_gguf *g);
const char *sp_gguf_kv_key(const sp_gguf *g, int i);
const sp_gguf_val *sp_gguf_kv_val(const sp_gguf *g, int i);
const sp_gguf_val *sp_gguf_find(const sp_gguf *g, const char *key); /* NULL if absent */

/* Keyed getters. Absent key: *out = def and SP_OK when !required, else
 * SP_ENOTFOUND "<file>: metadata key K is missing". Wrong type or out of
 * range: SP_EFORMAT naming the key, its type and value.
 * Integers convert from any integer type whose value fits (u32 from i32 7 is
 * fine, from i32 -1 is not); floats accept F32/F64 and integer types; bool
 * only BOOL; strings only STRING (NUL-terminated, owned by g). */
sp_status sp_gguf_get_u32(const sp_gguf *g, const char *key, uint32_t def, int required,
                          uint32_t *out, sp_error *err);
sp_status sp_gguf_get_i64(const sp_gguf *g, const char *key, int64_t def, int required,
                          int64_t *out, sp_error *err);
sp_status sp_gguf_get_f32(const sp_gguf *g, const char *key, float def, int required, float *out,
                          sp_error *err);
sp_status sp_gguf_get_bool(const sp_gguf *g, const char *key, int def, int required, int *out,
                           sp_error *err);
sp_status sp_gguf_get_str(const sp_gguf *g, const char *key, const char *def, int required,
                          const char **out, sp_error *err);
/* An array; elem_type < 0 accepts any element type, else it must match.
 * *out = NULL when absent and !required. */
sp_status sp_gguf_get_arr(const sp_gguf *g, const char *key, int elem_type, int required,
                          const sp_gguf_val **out, sp_error *err);

/* Value accessors (no errors: they return 0 / NULL on a type mismatch). */
sp_gguf_type sp_gguf_val_type(const sp_gguf_val *v);
int sp_gguf_val_i64(const sp_gguf_val *v, int64_t *out);  /* integer types (U64 > INT64_MAX: 0) */
int sp_gguf_val_u64(const sp_gguf_val *v, uint64_t *out); /* integer types with value >= 0 */
int sp_gguf_val_f64(const sp_gguf_val *v, double *out);   /* float and integer types */
int sp_gguf_val_bool(const sp_gguf_val *v, int *out);
const char *sp_gguf_val_str(const sp_gguf_val *v, uint64_t *len); /* len may be NULL */

/* Arrays: element type and count; elements by index (i < len, unchecked
 * beyond returning 0/NULL for a wrong element type). */
sp_gguf_type sp_gguf_arr_type(const sp_gguf_val *v);
uint64_t sp_gguf_arr_len(const sp_gguf_val *v);
int64_t sp_gguf_arr_i64(const sp_gguf_val *v, uint64_t i); /* integer and bool elements */
double sp_gguf_arr_f64(const sp_gguf_val *v, uint64_t i);  /* numeric elements */
float sp_gguf_arr_f32(const sp_gguf_val *v, uint64_t i);
const char *sp_gguf_arr_str(const sp_gguf_val *v, uint64_t i, uint64_t *len); /* STRING elements */
const sp_gguf_val *sp_gguf_arr_at(const sp_gguf_val *v, uint64_t i); /* STRING/ARRAY elements */
/* Fixed-size elements packed little-endian as in the file (may be unaligned);
 * NULL for STRING/ARRAY elements. */
const void *sp_gguf_arr_raw(const sp_gguf_val *v);

const char *sp_gguf_type_name(sp_gguf_type t); /* "u32", "string", ... */

/* ---- tensors ---- */
int sp_gguf_tensor_count(const sp_gguf *g);
const sp_gguf_tensor *sp_gguf_tensor_at(const sp_gguf *g, int i); /* file order */
const sp_gguf_tensor *sp_gguf_find_tensor(const sp_gguf *g, const char *name);
/* Lookup for use: SP_ENOTFOUND if absent; SP_EUNSUPPORTED "unsupported tensor
 * type Q2_K for tensor X" when dtype == SP_DTYPE_COUNT. */
sp_status sp_gguf_get_tensor(const sp_gguf *g, const char *name, const sp_gguf_tensor **out,
                             sp_error *err);
/* The tensor as an sp_tensor view (dtype must be supported). */
sp_tensor sp_gguf_tensor_view(const sp_gguf_tensor *t);

/* ---- ggml types ---- */
const char *sp_ggml_type_name(uint32_t type); /* "Q4_K"; NULL if unknown */
/* Values per block and bytes per block; 0 if unknown. */
int sp_ggml_type_size(uint32_t type, int *block, size_t *block_bytes);
sp_dtype sp_ggml_to_dtype(uint32_t type); /* SP_DTYPE_COUNT if none */
uint32_t sp_ggml_from_dtype(sp_dtype t);  /* SP_GGML_NONE if none (U8, BOOL) */

#endif
