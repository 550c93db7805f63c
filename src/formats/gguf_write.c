#include "formats/gguf_write.h"

#include "formats/gguf_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPEN_ARRAYS 8

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
} wbuf;

typedef struct w_tensor {
    char *name;
    uint32_t type;
    int ndim;
    int64_t shape[SP_GGUF_MAX_DIMS];
    const void *data;
    size_t nbytes;
    sp_gguf_fill_fn fill;
    void *ctx;
    uint64_t offset; /* relative to the data section */
} w_tensor;

typedef struct open_arr {
    sp_gguf_type elem;
    uint64_t left;
} open_arr;

struct sp_gguf_writer {
    wbuf kv; /* serialized key/values */
    uint64_t n_kv;
    open_arr stack[MAX_OPEN_ARRAYS];
    int depth;
    w_tensor *tensors;
    int n_tensors, cap_tensors;
    uint32_t alignment;
    sp_error err; /* first misuse, sticky */
};

sp_gguf_writer *sp_gguf_writer_new(void) {
    sp_gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->alignment = SP_GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void sp_gguf_writer_free(sp_gguf_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->tensors);
    free(w->kv.p);
    free(w);
}

static sp_status fail(sp_gguf_writer *w, sp_status s, const char *what, const char *name) {
    if (w->err.status == SP_OK) sp_fail(&w->err, s, "gguf writer: %s (%s)", what, name ? name : "");
    return w->err.status;
}

static sp_status put(sp_gguf_writer *w, const void *src, size_t n) {
    wbuf *b = &w->kv;
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->n < n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) return fail(w, SP_ENOMEM, "out of memory", NULL);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
    return SP_OK;
}

static void le(uint8_t *dst, uint64_t v, int n) {
    for (int i = 0; i < n; i++) dst[i] = (uint8_t)(v >> (8 * i));
}
static sp_status put_u32(sp_gguf_writer *w, uint32_t v) {
    uint8_t b[4];
    le(b, v, 4);
    return put(w, b, 4);
}
static sp_status put_u64(sp_gguf_writer *w, uint64_t v) {
    uint8_t b[8];
    le(b, v, 8);
    return put(w, b, 8);
}
static sp_status put_str(sp_gguf_writer *w, const char *s, uint64_t n) {
    SP_TRY(put_u64(w, n));
    return put(w, s, (size_t)n);
}

/* Starts a value of type t: a key + type tag at top level, or the next
 * element of the innermost open array (whose element type must be t). */
static sp_status begin_value(sp_gguf_writer *w, const char *key, sp_gguf_type t) {
    if (w->err.status != SP_OK) return w->err.status;
    if (key) {
        if (w->depth > 0) return fail(w, SP_EINVAL, "key given inside an open array", key);
        SP_TRY(put_str(w, key, strlen(key)));
        SP_TRY(put_u32(w, (uint32_t)t));
        w->n_kv++;
        return SP_OK;
    }
    if (w->depth == 0) return fail(w, SP_EINVAL, "no key and no open array", NULL);
    open_arr *a = &w->stack[w->depth - 1];
    if (a->elem != t)
        return fail(w, SP_EINVAL, "element type differs from the array's", sp_gguf_type_name(t));
    a->left--;
    return SP_OK;
}

/* Pops arrays whose elements are all written. */
static void close_full_arrays(sp_gguf_writer *w) {
    while (w->depth > 0 && w->stack[w->depth - 1].left == 0) w->depth--;
}

static sp_status scalar(sp_gguf_writer *w, const char *key, sp_gguf_type t, uint64_t bits) {
    SP_TRY(begin_value(w, key, t));
    uint8_t b[8];
    size_t n = sp_gguf_fixed_size(t);
    le(b, bits, (int)n);
    SP_TRY(put(w, b, n));
    close_full_arrays(w);
    return SP_OK;
}

sp_status sp_gguf_w_u8(sp_gguf_writer *w, const char *k, uint8_t v) {
    return scalar(w, k, SP_GGUF_U8, v);
}
sp_status sp_gguf_w_i8(sp_gguf_writer *w, const char *k, int8_t v) {
    return scalar(w, k, SP_GGUF_I8, (uint8_t)v);
}
sp_status sp_gguf_w_u16(sp_gguf_writer *w, const char *k, uint16_t v) {
    return scalar(w, k, SP_GGUF_U16, v);
}
sp_status sp_gguf_w_i16(sp_gguf_writer *w, const char *k, int16_t v) {
    return scalar(w, k, SP_GGUF_I16, (uint16_t)v);
}
sp_status sp_gguf_w_i32(sp_gguf_writer *w, const char *k, int32_t v) {
    return scalar(w, k, SP_GGUF_I32, (uint32_t)v);
}
sp_status sp_gguf_w_bool(sp_gguf_writer *w, const char *k, int v) {
    return scalar(w, k, SP_GGUF_BOOL, v != 0);
}
sp_status sp_gguf_w_u64(sp_gguf_writer *w, const char *k, uint64_t v) {
    return scalar(w, k, SP_GGUF_U64, v);
}
sp_status sp_gguf_w_i64(sp_gguf_writer *w, const char *k, int64_t v) {
    return scalar(w, k, SP_GGUF_I64, (uint64_t)v);
}

sp_status sp_gguf_w_u32(sp_gguf_writer *w, const char *key, uint32_t v) {
    if (key && strcmp(key, "general.alignment") == 0) {
        if (v == 0 || (v & (v - 1)))
            return fail(w, SP_EINVAL, "alignment is not a power of two", key);
        w->alignment = v;
    }
    return scalar(w, key, SP_GGUF_U32, v);
}

sp_status sp_gguf_w_f32(sp_gguf_writer *w, const char *key, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return scalar(w, key, SP_GGUF_F32, bits);
}

sp_status sp_gguf_w_f64(sp_gguf_writer *w, const char *key, double v) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    return scalar(w, key, SP_GGUF_F64, bits);
}

sp_status sp_gguf_w_strn(sp_gguf_writer *w, const char *key, const char *s, uint64_t len) {
    SP_TRY(begin_value(w, key, SP_GGUF_STRING));
    SP_TRY(put_str(w, s, len));
    close_full_arrays(w);
    return SP_OK;
}

sp_status sp_gguf_w_str(sp_gguf_writer *w, const char *key, const char *s) {
    return sp_gguf_w_strn(w, key, s, strlen(s));
}

sp_status sp_gguf_w_begin_arr(sp_gguf_writer *w, const char *key, sp_gguf_type elem_type,
                              uint64_t n) {
    if ((unsigned)elem_type >= SP_GGUF_TYPE_COUNT)
        return fail(w, SP_EINVAL, "unknown array element type", key);
    SP_TRY(begin_value(w, key, SP_GGUF_ARRAY));
    if (w->depth == MAX_OPEN_ARRAYS) return fail(w, SP_EINVAL, "arrays nested too deep", key);
    SP_TRY(put_u32(w, (uint32_t)elem_type));
    SP_TRY(put_u64(w, n));
    w->stack[w->depth++] = (open_arr){elem_type, n};
    close_full_arrays(w); /* an empty array is complete at once */
    return SP_OK;
}

sp_status sp_gguf_w_arr(sp_gguf_writer *w, const char *key, sp_gguf_type elem_type,
                        const void *data, uint64_t n) {
    size_t es = sp_gguf_fixed_size(elem_type);
    if (!es) return fail(w, SP_EINVAL, "sp_gguf_w_arr needs a fixed-size element type", key);
    SP_TRY(begin_value(w, key, SP_GGUF_ARRAY));
    SP_TRY(put_u32(w, (uint32_t)elem_type));
    SP_TRY(put_u64(w, n));
    const uint8_t *src = data;
    for (uint64_t i = 0; i < n; i++) { /* host to little-endian, element by element */
        uint64_t bits = 0;
        if (es == 1)
            bits = src[i];
        else if (es == 2) {
            uint16_t x;
            memcpy(&x, src + 2 * i, 2);
            bits = x;
        } else if (es == 4) {
            uint32_t x;
            memcpy(&x, src + 4 * i, 4);
            bits = x;
        } else
            memcpy(&bits, src + 8 * i, 8);
        uint8_t b[8];
        le(b, bits, (int)es);
        SP_TRY(put(w, b, es));
    }
    close_full_arrays(w);
    return SP_OK;
}

sp_status sp_gguf_w_str_arr(sp_gguf_writer *w, const char *key, const char *const *strs,
                            uint64_t n) {
    SP_TRY(sp_gguf_w_begin_arr(w, key, SP_GGUF_STRING, n));
    for (uint64_t i = 0; i < n; i++) SP_TRY(sp_gguf_w_str(w, NULL, strs[i]));
    return SP_OK;
}

/* ---- tensors ---- */

static sp_status add_tensor(sp_gguf_writer *w, const char *name, uint32_t type, int ndim,
                            const int64_t *shape, w_tensor **out) {
    if (w->err.status != SP_OK) return w->err.status;
    int block;
    size_t bb;
    if (!sp_ggml_type_size(type, &block, &bb)) return fail(w, SP_EINVAL, "unknown ggml type", name);
    if (ndim < 1 || ndim > SP_GGUF_MAX_DIMS) return fail(w, SP_EINVAL, "ndim must be 1..4", name);
    if (shape[ndim - 1] % block)
        return fail(w, SP_EINVAL, "row length not a multiple of the block", name);
    if (w->n_tensors == w->cap_tensors) {
        int cap = w->cap_tensors ? 2 * w->cap_tensors : 16;
        w_tensor *t = realloc(w->tensors, (size_t)cap * sizeof *t);
        if (!t) return fail(w, SP_ENOMEM, "out of memory", name);
        w->tensors = t;
        w->cap_tensors = cap;
    }
    w_tensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return fail(w, SP_ENOMEM, "out of memory", name);
    w->n_tensors++;
    t->type = type;
    t->ndim = ndim;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return fail(w, SP_EINVAL, "negative dimension", name);
        t->shape[d] = shape[d];
        numel *= shape[d];
    }
    t->nbytes = (size_t)(numel / block) * bb;
    *out = t;
    return SP_OK;
}

sp_status sp_gguf_w_tensor(sp_gguf_writer *w, const char *name, uint32_t ggml_type, int ndim,
                           const int64_t *shape, const void *data, size_t nbytes) {
    w_tensor *t = NULL;
    SP_TRY(add_tensor(w, name, ggml_type, ndim, shape, &t));
    if (t->nbytes != nbytes)
        return fail(w, SP_EINVAL, "nbytes does not match shape and type", name);
    t->data = data;
    return SP_OK;
}

sp_status sp_gguf_w_tensor_fill(sp_gguf_writer *w, const char *name, uint32_t ggml_type, int ndim,
                                const int64_t *shape, sp_gguf_fill_fn fill, void *ctx) {
    w_tensor *t = NULL;
    SP_TRY(add_tensor(w, name, ggml_type, ndim, shape, &t));
    t->fill = fill;
    t->ctx = ctx;
    return SP_OK;
}

/* ---- output ---- */

static int write_le(FILE *fp, uint64_t v, int n) {
    uint8_t b[8];
    le(b, v, n);
    return fwrite(b, 1, (size_t)n, fp) == (size_t)n;
}

static int write_zeros(FILE *fp, uint64_t n) {
    static const uint8_t zeros[64];
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (fwrite(zeros, 1, k, fp) != k) return 0;
        n -= k;
    }
    return 1;
}

static uint64_t pad(uint64_t x, uint64_t a) {
    return (x + a - 1) / a * a - x;
}

/* Header, metadata and tensor infos; returns bytes written in *pos. */
static int write_head(sp_gguf_writer *w, FILE *fp, uint64_t *pos) {
    int ok = fwrite("GGUF", 1, 4, fp) == 4 && write_le(fp, 3, 4) &&
             write_le(fp, (uint64_t)w->n_tensors, 8) && write_le(fp, w->n_kv, 8) &&
             fwrite(w->kv.p ? (void *)w->kv.p : "", 1, w->kv.n, fp) == w->kv.n;
    *pos = 24 + w->kv.n;
    uint64_t off = 0;
    for (int i = 0; i < w->n_tensors && ok; i++) {
        w_tensor *t = &w->tensors[i];
        size_t nl = strlen(t->name);
        ok = write_le(fp, nl, 8) && fwrite(t->name, 1, nl, fp) == nl &&
             write_le(fp, (uint64_t)t->ndim, 4);
        for (int d = t->ndim - 1; d >= 0 && ok; d--) ok = write_le(fp, (uint64_t)t->shape[d], 8);
        t->offset = off;
        ok = ok && write_le(fp, t->type, 4) && write_le(fp, off, 8);
        off += t->nbytes + pad(t->nbytes, w->alignment);
        *pos += 8 + nl + 4 + 8 * (uint64_t)t->ndim + 4 + 8;
    }
    return ok;
}

static sp_status write_tensor_data(sp_gguf_writer *w, FILE *fp, const char *path, sp_error *err) {
    for (int i = 0; i < w->n_tensors; i++) {
        w_tensor *t = &w->tensors[i];
        int ok;
        if (t->fill) {
            void *buf = malloc(t->nbytes ? t->nbytes : 1);
            if (!buf)
                return sp_fail(err, SP_ENOMEM, "%s: out of memory for tensor %s", path, t->name);
            sp_status s = t->fill(t->ctx, t->name, buf, t->nbytes, err);
            ok = s == SP_OK && fwrite(buf, 1, t->nbytes, fp) == t->nbytes;
            free(buf);
            if (s != SP_OK) return s;
        } else {
            ok = t->nbytes == 0 || fwrite(t->data, 1, t->nbytes, fp) == t->nbytes;
        }
        if (!ok || !write_zeros(fp, pad(t->nbytes, w->alignment)))
            return sp_fail(err, SP_EIO, "%s: write failed in tensor %s", path, t->name);
    }
    return SP_OK;
}

sp_status sp_gguf_w_write(sp_gguf_writer *w, const char *path, sp_error *err) {
    if (w->err.status != SP_OK) return sp_fail(err, w->err.status, "%s: %s", path, w->err.msg);
    if (w->depth > 0)
        return sp_fail(err, SP_EINVAL, "%s: gguf writer: an array still misses %llu elements", path,
                       (unsigned long long)w->stack[w->depth - 1].left);
    FILE *fp = fopen(path, "wb");
    if (!fp) return sp_fail(err, SP_EIO, "%s: cannot create file", path);
    uint64_t pos;
    sp_status s = SP_OK;
    if (!write_head(w, fp, &pos) || !write_zeros(fp, pad(pos, w->alignment)))
        s = sp_fail(err, SP_EIO, "%s: write failed", path);
    if (s == SP_OK) s = write_tensor_data(w, fp, path, err);
    if (fclose(fp) != 0 && s == SP_OK) s = sp_fail(err, SP_EIO, "%s: write failed", path);
    return s;
}
