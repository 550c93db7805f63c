/* GGUF reader internals shared by gguf.c (parsing) and gguf_meta.c (access). */
#ifndef SP_FORMATS_GGUF_INTERNAL_H
#define SP_FORMATS_GGUF_INTERNAL_H

#include "base/file.h"
#include "formats/gguf.h"
#include "formats/name_index.h"

struct sp_gguf_val {
    sp_gguf_type type;
    sp_gguf_type elem_type; /* ARRAY only */
    uint64_t n;             /* STRING: bytes (no NUL); ARRAY: element count */
    union {
        uint64_t u; /* unsigned integers, BOOL */
        int64_t i;  /* signed integers (sign-extended) */
        double f;   /* F32, F64 */
    } num;
    const char *str;           /* STRING: NUL-terminated copy owned by the arena */
    const uint8_t *raw;        /* ARRAY of fixed-size elements: packed, in the mapping */
    struct sp_gguf_val *items; /* ARRAY of STRING/ARRAY: n parsed elements */
};

typedef struct gguf_kv {
    const char *key;
    sp_gguf_val val;
} gguf_kv;

typedef struct gguf_block gguf_block; /* arena block */

struct sp_gguf {
    sp_file file;
    uint32_t version, alignment;
    uint64_t data_offset;
    gguf_kv *kvs;
    int n_kv;
    sp_gguf_tensor *tensors;
    int n_tensors;
    sp_name_index kv_ix, tensor_ix;
    gguf_block *arena; /* owns strings and array items */
};

/* Size in bytes of a fixed-size value type; 0 for STRING/ARRAY/unknown. */
size_t sp_gguf_fixed_size(uint32_t type);

/* Decodes the little-endian scalar of type v->type at p into v->num. */
void sp_gguf_decode_scalar(sp_gguf_val *v, const uint8_t *p);

#endif
