/* ggml tensor types (ids, names, block geometry) and GGUF value types. */
#include <string.h>

#include "formats/gguf_internal.h"

typedef struct ggml_type_info {
    uint32_t id;
    const char *name;
    int block;
    size_t block_bytes;
    sp_dtype dtype; /* SP_DTYPE_COUNT: not supported by Spindle */
} ggml_type_info;

/* Ids and block sizes as in llama.cpp's ggml.h / ggml-common.h. */
static const ggml_type_info GGML_TYPES[] = {
    {0, "F32", 1, 4, SP_F32},
    {1, "F16", 1, 2, SP_F16},
    {2, "Q4_0", 32, 18, SP_Q4_0},
    {3, "Q4_1", 32, 20, SP_Q4_1},
    {6, "Q5_0", 32, 22, SP_Q5_0},
    {7, "Q5_1", 32, 24, SP_DTYPE_COUNT},
    {8, "Q8_0", 32, 34, SP_Q8_0},
    {9, "Q8_1", 32, 36, SP_Q8_1},
    {10, "Q2_K", 256, 84, SP_DTYPE_COUNT},
    {11, "Q3_K", 256, 110, SP_DTYPE_COUNT},
    {12, "Q4_K", 256, 144, SP_Q4_K},
    {13, "Q5_K", 256, 176, SP_Q5_K},
    {14, "Q6_K", 256, 210, SP_Q6_K},
    {15, "Q8_K", 256, 292, SP_Q8_K},
    {16, "IQ2_XXS", 256, 66, SP_DTYPE_COUNT},
    {17, "IQ2_XS", 256, 74, SP_DTYPE_COUNT},
    {18, "IQ3_XXS", 256, 98, SP_DTYPE_COUNT},
    {19, "IQ1_S", 256, 50, SP_DTYPE_COUNT},
    {20, "IQ4_NL", 32, 18, SP_DTYPE_COUNT},
    {21, "IQ3_S", 256, 114, SP_DTYPE_COUNT},
    {22, "IQ2_S", 256, 82, SP_DTYPE_COUNT},
    {23, "IQ4_XS", 256, 136, SP_DTYPE_COUNT},
    {24, "I8", 1, 1, SP_I8},
    {25, "I16", 1, 2, SP_I16},
    {26, "I32", 1, 4, SP_I32},
    {27, "I64", 1, 8, SP_I64},
    {28, "F64", 1, 8, SP_F64},
    {29, "IQ1_M", 256, 56, SP_DTYPE_COUNT},
    {30, "BF16", 1, 2, SP_BF16},
    {34, "TQ1_0", 256, 54, SP_DTYPE_COUNT},
    {35, "TQ2_0", 256, 66, SP_DTYPE_COUNT},
    {39, "MXFP4", 32, 17, SP_DTYPE_COUNT},
};
#define N_GGML_TYPES ((int)(sizeof GGML_TYPES / sizeof GGML_TYPES[0]))

static const ggml_type_info *ggml_info(uint32_t id) {
    for (int i = 0; i < N_GGML_TYPES; i++)
        if (GGML_TYPES[i].id == id) return &GGML_TYPES[i];
    return NULL;
}

const char *sp_ggml_type_name(uint32_t type) {
    const ggml_type_info *t = ggml_info(type);
    return t ? t->name : NULL;
}

int sp_ggml_type_size(uint32_t type, int *block, size_t *block_bytes) {
    const ggml_type_info *t = ggml_info(type);
    if (!t) return 0;
    if (block) *block = t->block;
    if (block_bytes) *block_bytes = t->block_bytes;
    return 1;
}

sp_dtype sp_ggml_to_dtype(uint32_t type) {
    const ggml_type_info *t = ggml_info(type);
    return t ? t->dtype : SP_DTYPE_COUNT;
}

uint32_t sp_ggml_from_dtype(sp_dtype d) {
    for (int i = 0; i < N_GGML_TYPES; i++)
        if (GGML_TYPES[i].dtype == d && d != SP_DTYPE_COUNT) return GGML_TYPES[i].id;
    return SP_GGML_NONE;
}

size_t sp_gguf_fixed_size(uint32_t type) {
    static const size_t sizes[SP_GGUF_TYPE_COUNT] = {
        [SP_GGUF_U8] = 1,  [SP_GGUF_I8] = 1,  [SP_GGUF_U16] = 2, [SP_GGUF_I16] = 2,
        [SP_GGUF_U32] = 4, [SP_GGUF_I32] = 4, [SP_GGUF_F32] = 4, [SP_GGUF_BOOL] = 1,
        [SP_GGUF_U64] = 8, [SP_GGUF_I64] = 8, [SP_GGUF_F64] = 8,
    };
    return type < SP_GGUF_TYPE_COUNT ? sizes[type] : 0;
}

const char *sp_gguf_type_name(sp_gguf_type t) {
    static const char *names[SP_GGUF_TYPE_COUNT] = {
        "u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
        "bool", "string", "array", "u64", "i64", "f64",
    };
    return (unsigned)t < SP_GGUF_TYPE_COUNT ? names[t] : "unknown";
}

void sp_gguf_decode_scalar(sp_gguf_val *v, const uint8_t *p) {
    uint64_t u = 0;
    for (int b = (int)sp_gguf_fixed_size(v->type) - 1; b >= 0; b--) u = (u << 8) | p[b];
    switch (v->type) {
    case SP_GGUF_I8:
        v->num.i = (int8_t)u;
        break;
    case SP_GGUF_I16:
        v->num.i = (int16_t)u;
        break;
    case SP_GGUF_I32:
        v->num.i = (int32_t)u;
        break;
    case SP_GGUF_I64:
        v->num.i = (int64_t)u;
        break;
    case SP_GGUF_F32: {
        uint32_t b = (uint32_t)u;
        float f;
        memcpy(&f, &b, 4);
        v->num.f = f;
        break;
    }
    case SP_GGUF_F64:
        memcpy(&v->num.f, &u, 8);
        break;
    case SP_GGUF_BOOL:
        v->num.u = u != 0;
        break;
    default:
        v->num.u = u;
        break;
    }
}
