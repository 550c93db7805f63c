/* GGUF parsing: header, metadata key/values, tensor infos, data section.
 * Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 * n_kv x {string key, u32 type, value}, n_tensors x {string name, u32 n_dims,
 * u64 ne[n_dims], u32 ggml type, u64 offset}, padding to the alignment, data.
 * A string is u64 length + bytes; an array is u32 element type, u64 count,
 * elements. Every read is bounds-checked against the mapped size. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf_internal.h"

#define MAX_ARRAY_DEPTH  8
#define MIN_KV_BYTES     13 /* u64 key length + u32 type + 1-byte value */
#define MIN_TENSOR_BYTES 32 /* u64 name length + u32 n_dims + u64 ne + u32 type + u64 offset */

/* ---- arena: owns strings and array items, freed at close ---- */

struct gguf_block {
    gguf_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

static void *arena_alloc(sp_gguf *g, size_t n) {
    n = (n + 15) & ~(size_t)15;
    gguf_block *b = g->arena;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > (1u << 20) ? n : (1u << 20);
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = g->arena;
        b->used = 0;
        b->cap = cap;
        g->arena = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

static void arena_free(sp_gguf *g) {
    while (g->arena) {
        gguf_block *next = g->arena->next;
        free(g->arena);
        g->arena = next;
    }
}

/* ---- bounds-checked reader ---- */

typedef struct reader {
    sp_gguf *g;
    const uint8_t *base;
    uint64_t pos, size;
    const char *path;
    char ctx[192]; /* what is being read, for messages: "key general.name" */
    sp_error *err;
} reader;

static sp_status need(reader *r, uint64_t n, const char *what) {
    if (n <= r->size - r->pos) return SP_OK;
    return sp_fail(r->err, SP_EFORMAT,
                   "%s: %s: %s at byte %" PRIu64 " needs %" PRIu64
                   " bytes, but the file ends at byte %" PRIu64,
                   r->path, r->ctx, what, r->pos, n, r->size);
}

static uint64_t get_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static sp_status read_u32(reader *r, uint32_t *v, const char *what) {
    SP_TRY(need(r, 4, what));
    *v = (uint32_t)get_le(r->base + r->pos, 4);
    r->pos += 4;
    return SP_OK;
}

static sp_status read_u64(reader *r, uint64_t *v, const char *what) {
    SP_TRY(need(r, 8, what));
    *v = get_le(r->base + r->pos, 8);
    r->pos += 8;
    return SP_OK;
}

/* A string, copied NUL-terminated into the arena. */
static sp_status read_str(reader *r, const char **s, uint64_t *len, const char *what) {
    uint64_t n;
    SP_TRY(read_u64(r, &n, what));
    if (n > r->size - r->pos)
        return sp_fail(r->err, SP_EFORMAT,
                       "%s: %s: %s at byte %" PRIu64 " has length %" PRIu64
                       ", past the end of the file (%" PRIu64 " bytes)",
                       r->path, r->ctx, what, r->pos - 8, n, r->size);
    char *p = arena_alloc(r->g, (size_t)n + 1);
    if (!p) return sp_fail(r->err, SP_ENOMEM, "%s: out of memory", r->path);
    memcpy(p, r->base + r->pos, (size_t)n);
    p[n] = 0;
    r->pos += n;
    *s = p;
    if (len) *len = n;
    return SP_OK;
}

/* ---- values ---- */

static sp_status read_val(reader *r, uint32_t type, sp_gguf_val *v, int depth);

static sp_status read_array(reader *r, sp_gguf_val *v, int depth) {
    uint64_t at = r->pos;
    uint32_t et;
    if (depth >= MAX_ARRAY_DEPTH)
        return sp_fail(r->err, SP_EFORMAT, "%s: %s: arrays nested deeper than %d at byte %" PRIu64,
                       r->path, r->ctx, MAX_ARRAY_DEPTH, at);
    SP_TRY(read_u32(r, &et, "array element type"));
    SP_TRY(read_u64(r, &v->n, "array length"));
    if (et >= SP_GGUF_TYPE_COUNT)
        return sp_fail(r->err, SP_EFORMAT, "%s: %s: unknown array element type %u at byte %" PRIu64,
                       r->path, r->ctx, et, at);
    v->elem_type = (sp_gguf_type)et;
    size_t es = sp_gguf_fixed_size(et);
    uint64_t min = es ? es : et == SP_GGUF_STRING ? 8 : 12; /* bytes per element, at least */
    if (v->n > (r->size - r->pos) / min)
        return sp_fail(r->err, SP_EFORMAT,
                       "%s: %s: array of %" PRIu64 " %s at byte %" PRIu64
                       " runs past the end of the file (%" PRIu64 " bytes)",
                       r->path, r->ctx, v->n, sp_gguf_type_name(v->elem_type), at, r->size);
    if (es) {
        v->raw = r->base + r->pos;
        r->pos += v->n * es;
        return SP_OK;
    }
    v->items = arena_alloc(r->g, (size_t)v->n * sizeof *v->items);
    if (!v->items && v->n) return sp_fail(r->err, SP_ENOMEM, "%s: out of memory", r->path);
    for (uint64_t i = 0; i < v->n; i++) SP_TRY(read_val(r, et, &v->items[i], depth + 1));
    return SP_OK;
}

static sp_status read_val(reader *r, uint32_t type, sp_gguf_val *v, int depth) {
    memset(v, 0, sizeof *v);
    if (type >= SP_GGUF_TYPE_COUNT)
        return sp_fail(r->err, SP_EFORMAT, "%s: %s: unknown value type %u at byte %" PRIu64,
                       r->path, r->ctx, type, r->pos - 4);
    v->type = (sp_gguf_type)type;
    if (type == SP_GGUF_STRING) return read_str(r, &v->str, &v->n, "string");
    if (type == SP_GGUF_ARRAY) return read_array(r, v, depth);
    size_t n = sp_gguf_fixed_size(type);
    SP_TRY(need(r, n, sp_gguf_type_name(v->type)));
    sp_gguf_decode_scalar(v, r->base + r->pos);
    r->pos += n;
    return SP_OK;
}

/* ---- sections ---- */

static sp_status read_header(reader *r, uint64_t *n_tensors, uint64_t *n_kv) {
    sp_gguf *g = r->g;
    snprintf(r->ctx, sizeof r->ctx, "header");
    if (r->size < 4)
        return sp_fail(r->err, SP_EFORMAT, "%s: file is %" PRIu64 " bytes, too short for GGUF",
                       r->path, r->size);
    if (memcmp(r->base, "GGUF", 4) != 0)
        return sp_fail(r->err, SP_EFORMAT,
                       "%s: not a GGUF file: bytes 0..3 are %02x %02x %02x %02x, expected \"GGUF\"",
                       r->path, r->base[0], r->base[1], r->base[2], r->base[3]);
    r->pos = 4;
    SP_TRY(read_u32(r, &g->version, "version"));
    if (g->version == 1)
        return sp_fail(r->err, SP_EUNSUPPORTED,
                       "%s: GGUF version 1 is not supported (only 2 and 3)", r->path);
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return sp_fail(r->err, SP_EUNSUPPORTED, "%s: big-endian GGUF is not supported", r->path);
    if (g->version != 2 && g->version != 3)
        return sp_fail(r->err, SP_EFORMAT,
                       "%s: unknown GGUF version %u at byte 4 (expected 2 or 3)", r->path,
                       g->version);
    SP_TRY(read_u64(r, n_tensors, "tensor count"));
    SP_TRY(read_u64(r, n_kv, "metadata count"));
    uint64_t rest = r->size - r->pos;
    if (*n_kv > rest / MIN_KV_BYTES || *n_kv > INT32_MAX)
        return sp_fail(r->err, SP_EFORMAT,
                       "%s: metadata count %" PRIu64
                       " (bytes 16..23) cannot fit in the file (%" PRIu64 " bytes)",
                       r->path, *n_kv, r->size);
    rest -= *n_kv * MIN_KV_BYTES;
    if (*n_tensors > rest / MIN_TENSOR_BYTES || *n_tensors > INT32_MAX)
        return sp_fail(r->err, SP_EFORMAT,
                       "%s: tensor count %" PRIu64 " (bytes 8..15) cannot fit in the file (%" PRIu64
                       " bytes)",
                       r->path, *n_tensors, r->size);
    return SP_OK;
}

static sp_status read_kvs(reader *r, uint64_t n) {
    sp_gguf *g = r->g;
    g->kvs = calloc(n ? n : 1, sizeof *g->kvs);
    if (!g->kvs) return sp_fail(r->err, SP_ENOMEM, "%s: out of memory", r->path);
    for (uint64_t i = 0; i < n; i++) {
        gguf_kv *kv = &g->kvs[i];
        uint32_t type;
        snprintf(r->ctx, sizeof r->ctx, "metadata entry %" PRIu64, i);
        SP_TRY(read_str(r, &kv->key, NULL, "key"));
        snprintf(r->ctx, sizeof r->ctx, "metadata key %.120s", kv->key);
        SP_TRY(read_u32(r, &type, "value type"));
        SP_TRY(read_val(r, type, &kv->val, 0));
        g->n_kv = (int)i + 1;
    }
    int dup;
    if (!sp_name_index_build(&g->kv_ix, &g->kvs[0].key, sizeof(gguf_kv), g->n_kv, &dup))
        return sp_fail(r->err, SP_ENOMEM, "%s: out of memory", r->path);
    if (dup >= 0)
        return sp_fail(r->err, SP_EFORMAT, "%s: metadata key %s appears twice", r->path,
                       g->kvs[dup].key);
    return SP_OK;
}

static sp_status read_alignment(reader *r) {
    sp_gguf *g = r->g;
    g->alignment = SP_GGUF_DEFAULT_ALIGNMENT;
    const sp_gguf_val *v = sp_gguf_find(g, "general.alignment");
    if (!v) return SP_OK;
    uint64_t a;
    if (!sp_gguf_val_u64(v, &a) || a == 0 || (a & (a - 1)) || a > (1u << 30))
        return sp_fail(r->err, SP_EFORMAT,
                       "%s: general.alignment must be a power of two (a u32), got a %s", r->path,
                       sp_gguf_type_name(v->type));
    g->alignment = (uint32_t)a;
    return SP_OK;
}

/* Dims, type, byte size and offset of one tensor info. */
static sp_status read_tensor_info(reader *r, sp_gguf_tensor *t) {
    uint32_t nd;
    SP_TRY(read_u32(r, &nd, "n_dims"));
    if (nd < 1 || nd > SP_GGUF_MAX_DIMS)
        return sp_fail(r->err, SP_EFORMAT, "%s: %s: n_dims %u at byte %" PRIu64 " (must be 1..4)",
                       r->path, r->ctx, nd, r->pos - 4);
    t->ndim = (int)nd;
    int64_t numel = 1;
    for (int d = 0; d < SP_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t ne;
        SP_TRY(read_u64(r, &ne, "dimension"));
        if (ne > INT64_MAX || __builtin_mul_overflow(numel, (int64_t)ne, &numel))
            return sp_fail(r->err, SP_EFORMAT,
                           "%s: %s: dimension %u = %" PRIu64 " at byte %" PRIu64
                           " overflows the element count",
                           r->path, r->ctx, d, ne, r->pos - 8);
        t->ne[d] = (int64_t)ne;
        t->shape[nd - 1 - d] = (int64_t)ne;
    }
    SP_TRY(read_u32(r, &t->ggml_type, "tensor type"));
    int block;
    size_t bb;
    if (!sp_ggml_type_size(t->ggml_type, &block, &bb))
        return sp_fail(r->err, SP_EFORMAT, "%s: %s: unknown ggml type id %u at byte %" PRIu64,
                       r->path, r->ctx, t->ggml_type, r->pos - 4);
    if (t->ne[0] % block)
        return sp_fail(r->err, SP_EFORMAT,
                       "%s: %s: row length %" PRId64 " is not a multiple of the %s block size %d",
                       r->path, r->ctx, t->ne[0], sp_ggml_type_name(t->ggml_type), block);
    if (numel / block > (int64_t)(INT64_MAX / bb))
        return sp_fail(r->err, SP_EFORMAT, "%s: %s: byte size overflows", r->path, r->ctx);
    t->nbytes = (size_t)(numel / block) * bb;
    t->dtype = sp_ggml_to_dtype(t->ggml_type);
    SP_TRY(read_u64(r, &t->offset, "data offset"));
    if (t->offset % r->g->alignment)
        return sp_fail(r->err, SP_EFORMAT,
                       "%s: %s: data offset %" PRIu64 " at byte %" PRIu64
                       " is not a multiple of the alignment %u",
                       r->path, r->ctx, t->offset, r->pos - 8, r->g->alignment);
    return SP_OK;
}

static sp_status read_tensor_infos(reader *r, uint64_t n) {
    sp_gguf *g = r->g;
    g->tensors = calloc(n ? n : 1, sizeof *g->tensors);
    if (!g->tensors) return sp_fail(r->err, SP_ENOMEM, "%s: out of memory", r->path);
    for (uint64_t i = 0; i < n; i++) {
        sp_gguf_tensor *t = &g->tensors[i];
        snprintf(r->ctx, sizeof r->ctx, "tensor info %" PRIu64, i);
        SP_TRY(read_str(r, &t->name, NULL, "tensor name"));
        snprintf(r->ctx, sizeof r->ctx, "tensor %.120s", t->name);
        SP_TRY(read_tensor_info(r, t));
        g->n_tensors = (int)i + 1;
    }
    int dup;
    if (!sp_name_index_build(&g->tensor_ix, &g->tensors[0].name, sizeof(sp_gguf_tensor),
                             g->n_tensors, &dup))
        return sp_fail(r->err, SP_ENOMEM, "%s: out of memory", r->path);
    if (dup >= 0)
        return sp_fail(r->err, SP_EFORMAT, "%s: tensor %s appears twice", r->path,
                       g->tensors[dup].name);
    return SP_OK;
}

static int cmp_offset(const void *a, const void *b) {
    uint64_t x = (*(const sp_gguf_tensor *const *)a)->offset;
    uint64_t y = (*(const sp_gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}

/* Data pointers; every tensor inside the file, no two overlapping. */
static sp_status place_tensors(reader *r) {
    sp_gguf *g = r->g;
    uint64_t a = g->alignment;
    g->data_offset = (r->pos + a - 1) / a * a;
    if (g->n_tensors == 0) return SP_OK;
    if (g->data_offset > r->size)
        return sp_fail(r->err, SP_EFORMAT,
                       "%s: data section would start at byte %" PRIu64
                       ", past the end of the file (%" PRIu64 " bytes)",
                       r->path, g->data_offset, r->size);
    uint64_t avail = r->size - g->data_offset;
    for (int i = 0; i < g->n_tensors; i++) {
        sp_gguf_tensor *t = &g->tensors[i];
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return sp_fail(r->err, SP_EFORMAT,
                           "%s: tensor %s: data at file bytes %" PRIu64 "..%" PRIu64
                           " (offset %" PRIu64
                           ", %zu bytes) runs past the end of the file (%" PRIu64 " bytes)",
                           r->path, t->name, g->data_offset + t->offset,
                           g->data_offset + t->offset + t->nbytes, t->offset, t->nbytes, r->size);
        t->data = r->base + g->data_offset + t->offset;
        t->offset += g->data_offset;
    }
    const sp_gguf_tensor **order = malloc((size_t)(unsigned)g->n_tensors * sizeof *order);
    if (!order) return sp_fail(r->err, SP_ENOMEM, "%s: out of memory", r->path);
    for (int i = 0; i < g->n_tensors; i++) order[i] = &g->tensors[i];
    qsort(order, (size_t)g->n_tensors, sizeof *order, cmp_offset);
    sp_status s = SP_OK;
    uint64_t end = 0;
    const sp_gguf_tensor *prev = NULL;
    for (int i = 0; i < g->n_tensors && s == SP_OK; i++) {
        const sp_gguf_tensor *t = order[i];
        if (t->nbytes == 0) continue;
        if (prev && t->offset < end)
            s = sp_fail(r->err, SP_EFORMAT,
                        "%s: tensors %s (file bytes %" PRIu64 "..%" PRIu64
                        ") and %s (from byte %" PRIu64 ") overlap",
                        r->path, prev->name, prev->offset, prev->offset + prev->nbytes, t->name,
                        t->offset);
        if (t->offset + t->nbytes > end) end = t->offset + t->nbytes, prev = t;
    }
    free(order);
    return s;
}

sp_status sp_gguf_open(sp_gguf **out, const char *path, sp_error *err) {
    *out = NULL;
    sp_gguf *g = calloc(1, sizeof *g);
    if (!g) return sp_fail(err, SP_ENOMEM, "%s: out of memory", path);
    sp_status s = sp_file_map(&g->file, path, err);
    if (s != SP_OK) {
        free(g);
        return s;
    }
    reader r = {
        .g = g, .base = g->file.data, .size = g->file.size, .path = g->file.path, .err = err};
    uint64_t n_tensors = 0, n_kv = 0;
    s = read_header(&r, &n_tensors, &n_kv);
    if (s == SP_OK) s = read_kvs(&r, n_kv);
    if (s == SP_OK) s = read_alignment(&r);
    if (s == SP_OK) s = read_tensor_infos(&r, n_tensors);
    if (s == SP_OK) s = place_tensors(&r);
    if (s != SP_OK) {
        sp_gguf_close(g);
        return s;
    }
    *out = g;
    return SP_OK;
}

void sp_gguf_close(sp_gguf *g) {
    if (!g) return;
    sp_file_close(&g->file);
    free(g->kvs);
    free(g->tensors);
    sp_name_index_free(&g->kv_ix);
    sp_name_index_free(&g->tensor_ix);
    arena_free(g);
    free(g);
}
