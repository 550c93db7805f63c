#include "model/weights.h"

#include "base/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/alloc.h"
#include "formats/safetensors.h"
#include "compute/quant.h"
#include "model/dummy.h"

void *sp_weights_alloc(sp_weights *w, size_t bytes) {
    if (w->n_owned == w->cap_owned) {
        int cap = w->cap_owned ? w->cap_owned * 2 : 64;
        void **p = realloc(w->owned, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        w->owned = p;
        w->cap_owned = cap;
    }
    void *buf = sp_aligned_alloc(bytes);
    if (buf) w->owned[w->n_owned++] = buf;
    return buf;
}

void sp_weights_free(sp_weights *w) {
    for (int i = 0; i < w->n_owned; i++) sp_aligned_free(w->owned[i]);
    free(w->owned);
    w->owned = NULL;
    w->n_owned = w->cap_owned = 0;
    for (int i = 0; i < w->n_maps; i++) munmap(w->maps[i], w->map_len[i]);
    free(w->maps);
    free(w->map_len);
    w->maps = NULL;
    w->map_len = NULL;
    w->n_maps = w->cap_maps = 0;
}

/* ---- --load-format dummy ---------------------------------------------------- */

/* Address space for a dummy weight: an anonymous mapping that costs no
 * memory until written (reads see zero pages), so a 62 GB model can be
 * "loaded" for a GPU that makes its values itself. */
static void *dummy_map(sp_weights *w, size_t bytes) {
    if (w->n_maps == w->cap_maps) {
        int cap = w->cap_maps ? w->cap_maps * 2 : 64;
        void **m = realloc(w->maps, (size_t)cap * sizeof *m);
        if (m) w->maps = m;
        size_t *l = realloc(w->map_len, (size_t)cap * sizeof *l);
        if (l) w->map_len = l;
        if (!m || !l) return NULL;
        w->cap_maps = cap;
    }
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) return NULL;
    w->maps[w->n_maps] = p;
    w->map_len[w->n_maps++] = bytes;
    return p;
}

uint64_t sp_weights_dummy_key(const sp_weights *w, const void *p) {
    const char *c = p;
    for (int i = 0; i < w->n_maps; i++)
        if (c >= (const char *)w->maps[i] && c < (const char *)w->maps[i] + w->map_len[i])
            return (uint64_t)(i + 1) << 40 | (uint64_t)(c - (const char *)w->maps[i]);
    return (uint64_t)(uintptr_t)p;
}

static void dummy_fill(const sp_weights *w, sp_tensor *t) {
    uint16_t *v = t->data;
    float a = sqrtf(3.0f / (float)sp_tensor_cols(t));
    size_t n = t->nbytes / 2;
    uint64_t key = sp_weights_dummy_key(w, v);
    for (size_t i = 0; i < n; i++) {
        uint16_t b = sp_dummy_bf16(key + 2 * i, a);
        v[i] = t->dtype == SP_F16 ? sp_f32_to_f16(sp_bf16_to_f32(b)) : b;
    }
}

/* Required tensors get the shape the description asks for; optional ones
 * are absent (biases, extra norms: a dummy model is for speed, not text). */
static sp_status fetch_dummy(sp_weights *w, const char *name, int required, int ndim,
                             const int64_t *shape, sp_tensor *out, sp_error *err) {
    memset(out, 0, sizeof *out);
    if (!required) return SP_OK;
    out->dtype = w->dummy_dtype;
    out->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0)
            return sp_fail(err, SP_EUNSUPPORTED,
                           "--load-format dummy: config.json does not imply the shape of tensor %s",
                           name);
        out->shape[i] = shape[i];
    }
    out->nbytes = sp_dtype_row_bytes(out->dtype, sp_tensor_cols(out)) * (size_t)sp_tensor_rows(out);
    out->data = dummy_map(w, out->nbytes);
    if (!out->data)
        return sp_fail(err, SP_ENOMEM, "--load-format dummy: no address space for tensor %s", name);
    if (w->dummy_fill) dummy_fill(w, out);
    w->bytes += out->nbytes;
    return SP_OK;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static sp_status check_shape(const sp_weights *w, const char *name, const sp_src_tensor *t,
                             int ndim, const int64_t *shape, sp_error *err) {
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = shape[i] == SP_ANY || shape[i] == t->shape[i];
    if (ok) return SP_OK;
    char got[128], want[128];
    shape_str(got, sizeof got, t->ndim, t->shape);
    shape_str(want, sizeof want, ndim, shape);
    for (char *p = want; (p = strstr(p, "-1")) != NULL;) memcpy(p, " *", 2);
    return sp_fail(err, SP_EFORMAT, "%s: tensor %s has shape %s, config.json implies %s", w->file,
                   name, got, want);
}

/* --quantize: re-encodes a 2-D (or stacked 3-D) weight row by row into the
 * target block type, on the loading (engine) thread. Rows whose length is not
 * a multiple of the block keep their dtype. */
static sp_status requantize(sp_weights *w, const char *name, sp_tensor *t, sp_error *err) {
    int64_t cols = sp_tensor_cols(t), rows = sp_tensor_rows(t);
    if (t->ndim < 2 || t->dtype == w->quantize || cols % sp_dtype_block(w->quantize) != 0) {
        if (t->ndim >= 2) w->n_kept++;
        return SP_OK;
    }
    size_t rb = sp_dtype_row_bytes(w->quantize, cols);
    uint8_t *q = sp_weights_alloc(w, rb * (size_t)rows);
    float *row = malloc((size_t)cols * sizeof(float));
    if (!q || !row) {
        free(row);
        return sp_fail(err, SP_ENOMEM, "%s: no memory to quantize tensor %s", w->file, name);
    }
    for (int64_t r = 0; r < rows; r++) {
        sp_tensor_row_f32(t, r, row);
        sp_quantize_row(w->quantize, row, q + (size_t)r * rb, cols);
    }
    free(row);
    w->bytes -= t->nbytes;
    t->dtype = w->quantize;
    t->data = q;
    t->nbytes = rb * (size_t)rows;
    w->bytes += t->nbytes;
    return SP_OK;
}

/* The owned copy is now the resident one: the pages of the file mapping
 * that lie wholly inside the tensor leave this process (MADV_DONTNEED), so
 * peak RSS while loading is the weights plus one tensor, not twice the
 * weights. Safe because both readers (gguf.c, safetensors.c) present
 * tensors from a read-only file mapping (base/file.c, sp_file_map): a later
 * read of those bytes faults them back in from the file (page cache). */
static void release_source(const void *p, size_t n) {
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1), e = ((uintptr_t)p + n) & ~(pg - 1);
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

/* Row-interleaves a resident Q4_0/Q8_0 matrix for the decode kernels
 * (quant.h), in place: same bytes, so no extra memory. Views of the mapping
 * (--mmap) stay as they are: the mapping is read-only and shared. The rows of
 * one matrix (shape[ndim-2], so every expert of a stacked tensor) must be a
 * multiple of the group; other matrices keep the plain layout and kernels. */
static void pack_rows(const sp_weights *w, sp_tensor *t, int owned) {
    if (!owned || w->no_pack || w->device_upload || t->ndim < 2 || !sp_quant_packable(t->dtype) ||
        t->shape[t->ndim - 2] % SP_PACK_ROWS != 0)
        return;
    t->packed = sp_quant_pack(t->dtype, t->data, sp_tensor_rows(t), sp_tensor_cols(t));
}

static sp_status fetch(sp_weights *w, const char *name, int required, int ndim,
                       const int64_t *shape, int pack, sp_tensor *out, sp_error *err) {
    if (w->dummy) return fetch_dummy(w, name, required, ndim, shape, out, err);
    memset(out, 0, sizeof *out);
    sp_src_tensor t;
    sp_status s = w->lookup(w->src, name, &t, err);
    if (s == SP_ENOTFOUND && !required) return SP_OK;
    if (s == SP_ENOTFOUND)
        return sp_fail(err, SP_ENOTFOUND, "%s: tensor %s is missing", w->file, name);
    if (s != SP_OK) return s;
    SP_TRY(check_shape(w, name, &t, ndim, shape, err));
    if (!sp_dtype_is_weight(t.dtype))
        return sp_fail(err, SP_EUNSUPPORTED, "%s: tensor %s has dtype %s, not a weight type",
                       w->file, name, sp_dtype_name(t.dtype));
    out->dtype = t.dtype;
    out->ndim = t.ndim;
    memcpy(out->shape, t.shape, sizeof out->shape);
    out->nbytes = t.nbytes;
    /* a view needs aligned data (safetensors does not promise alignment);
     * anything else is copied into owned, 64-byte aligned memory */
    int owned = !w->device_upload && !(w->use_mmap && (uintptr_t)t.data % 16 == 0);
    if (!owned) {
        out->data = (void *)t.data;
    } else {
        out->data = sp_weights_alloc(w, t.nbytes);
        if (!out->data)
            return sp_fail(err, SP_ENOMEM, "%s: no memory for tensor %s", w->file, name);
        memcpy(out->data, t.data, t.nbytes);
        release_source(t.data, t.nbytes);
    }
    w->bytes += t.nbytes;
    if (w->quantize != SP_F32) {
        SP_TRY(requantize(w, name, out, err));
        owned = owned || out->data != t.data;
    }
    if (pack) pack_rows(w, out, owned);
    return SP_OK;
}

sp_status sp_weights_get(sp_weights *w, const char *name, int required, int ndim,
                         const int64_t *shape, sp_tensor *out, sp_error *err) {
    return fetch(w, name, required, ndim, shape, 1, out, err);
}

sp_status sp_weights_get_exact(sp_weights *w, const char *name, int required, int ndim,
                               const int64_t *shape, sp_tensor *out, sp_error *err) {
    sp_dtype keep = w->quantize;
    w->quantize = SP_F32;
    sp_status s = fetch(w, name, required, ndim, shape, 1, out, err);
    w->quantize = keep;
    return s;
}

sp_status sp_weights_get_f32(sp_weights *w, const char *name, int required, int ndim,
                             const int64_t *shape, int add_one, sp_tensor *out, sp_error *err) {
    int keep = w->use_mmap;
    sp_dtype keep_q = w->quantize;
    w->use_mmap = 1; /* view first: the f32 copy below is the resident one */
    w->quantize = SP_F32;
    sp_status s = fetch(w, name, required, ndim, shape, 0, out, err);
    w->use_mmap = keep;
    w->quantize = keep_q;
    if (s != SP_OK || !out->data) return s;
    int64_t n = sp_tensor_numel(out);
    float *f = sp_weights_alloc(w, (size_t)n * sizeof(float));
    if (!f) return sp_fail(err, SP_ENOMEM, "%s: no memory for tensor %s", w->file, name);
    if (w->dummy) /* norm scales of 1 (stored 1 + 0 where add_one), scalars 1 */
        memset(out->data, 0, out->nbytes);
    sp_dequantize_row(out->dtype, out->data, f, n);
    if (w->dummy && !add_one)
        for (int64_t i = 0; i < n; i++) f[i] = 1.0f;
    if (add_one)
        for (int64_t i = 0; i < n; i++) f[i] += 1.0f;
    w->bytes += (uint64_t)n * sizeof(float) - out->nbytes;
    out->dtype = SP_F32;
    out->data = f;
    out->nbytes = (size_t)n * sizeof(float);
    return SP_OK;
}

sp_status sp_weights_st_lookup(void *src, const char *name, sp_src_tensor *out, sp_error *err) {
    const sp_st_tensor *t;
    SP_TRY(sp_st_get(src, name, &t, err));
    if (t->ndim > SP_MAX_DIMS)
        return sp_fail(err, SP_EUNSUPPORTED, "tensor %s has %d dimensions", name, t->ndim);
    out->dtype = t->dtype;
    out->ndim = t->ndim;
    memcpy(out->shape, t->shape, sizeof out->shape);
    out->data = t->data;
    out->nbytes = t->nbytes;
    return SP_OK;
}
