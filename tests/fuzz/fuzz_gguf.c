/* Fuzz target: arbitrary bytes as a .gguf file -> sp_gguf_open, then every
 * metadata value through every accessor (arrays element by element, nested
 * arrays recursively) and every tensor info; then the GGUF model loader. Beyond "no crash": tensor
 * data lies inside the file and is aligned, lookups by key / name agree with the iteration. */
#include "fuzz_common.h"

#include "formats/gguf.h"
#include "model/model.h"

/* Elements read per array: enough to reach both ends, bounded for speed. */
#define FUZZ_GGUF_ARR_READS 64

static void fuzz_gguf_val(const sp_gguf_val *v, int depth);

static void fuzz_gguf_arr_elem(const sp_gguf_val *v, uint64_t i, int depth) {
    sp_gguf_type et = sp_gguf_arr_type(v);
    if (et == SP_GGUF_STRING) {
        uint64_t len = 0;
        const char *s = sp_gguf_arr_str(v, i, &len);
        FUZZ_ASSERT(s != NULL, "string element %llu is NULL", (unsigned long long)i);
        if (s && len) {
            volatile char c = s[len - 1];
            (void)c;
        }
    } else if (et == SP_GGUF_ARRAY) {
        const sp_gguf_val *sub = sp_gguf_arr_at(v, i);
        FUZZ_ASSERT(sub != NULL, "array element %llu is NULL", (unsigned long long)i);
        if (sub) fuzz_gguf_val(sub, depth + 1);
    } else {
        (void)sp_gguf_arr_i64(v, i);
        (void)sp_gguf_arr_f64(v, i);
        (void)sp_gguf_arr_f32(v, i);
    }
}

static void fuzz_gguf_val(const sp_gguf_val *v, int depth) {
    FUZZ_ASSERT(depth <= 9, "nesting depth %d", depth);
    sp_gguf_type t = sp_gguf_val_type(v);
    FUZZ_ASSERT((unsigned)t < SP_GGUF_TYPE_COUNT, "value type %d", (int)t);
    FUZZ_ASSERT(sp_gguf_type_name(t) != NULL, "type %d has no name", (int)t);
    int64_t i64;
    uint64_t u64;
    double f64;
    int b;
    (void)sp_gguf_val_i64(v, &i64);
    (void)sp_gguf_val_u64(v, &u64);
    (void)sp_gguf_val_f64(v, &f64);
    (void)sp_gguf_val_bool(v, &b);
    uint64_t slen = 0;
    const char *s = sp_gguf_val_str(v, &slen);
    if (t == SP_GGUF_STRING) FUZZ_ASSERT(s && strlen(s) <= slen, "string value");
    if (t != SP_GGUF_ARRAY) return;
    uint64_t n = sp_gguf_arr_len(v);
    uint64_t reads = n < FUZZ_GGUF_ARR_READS ? n : FUZZ_GGUF_ARR_READS;
    for (uint64_t k = 0; k < reads; k++) fuzz_gguf_arr_elem(v, k * (n / reads), depth);
    if (n) fuzz_gguf_arr_elem(v, n - 1, depth);
    (void)sp_gguf_arr_raw(v);
}

/* The typed getters convert or refuse; none may crash on any value. */
static void fuzz_gguf_getters(const sp_gguf *g, const char *key) {
    sp_error err = {0};
    uint32_t u32;
    int64_t i64;
    float f32;
    int b;
    const char *s;
    const sp_gguf_val *arr;
    (void)sp_gguf_get_u32(g, key, 0, 1, &u32, &err);
    (void)sp_gguf_get_i64(g, key, 0, 1, &i64, &err);
    (void)sp_gguf_get_f32(g, key, 0, 1, &f32, &err);
    (void)sp_gguf_get_bool(g, key, 0, 1, &b, &err);
    (void)sp_gguf_get_str(g, key, NULL, 1, &s, &err);
    (void)sp_gguf_get_arr(g, key, -1, 1, &arr, &err);
    (void)sp_gguf_get_arr(g, key, SP_GGUF_STRING, 1, &arr, &err);
}

static void fuzz_gguf_tensor(const sp_gguf *g, const sp_gguf_tensor *t, size_t size) {
    FUZZ_ASSERT(t->name != NULL, "tensor without a name");
    FUZZ_ASSERT(t->ndim >= 1 && t->ndim <= SP_GGUF_MAX_DIMS, "tensor %s: ndim %d", t->name,
                t->ndim);
    FUZZ_ASSERT(t->offset <= size && t->nbytes <= size - t->offset,
                "tensor %s spans [%llu, +%zu) in a %zu-byte file", t->name,
                (unsigned long long)t->offset, t->nbytes, size);
    FUZZ_ASSERT(t->offset % sp_gguf_alignment(g) == 0, "tensor %s at %llu, alignment %u", t->name,
                (unsigned long long)t->offset, sp_gguf_alignment(g));
    FUZZ_ASSERT(sp_ggml_type_name(t->ggml_type) != NULL, "tensor %s: unknown type %u", t->name,
                t->ggml_type);
    if (t->nbytes && t->data) {
        volatile uint8_t sink = ((const uint8_t *)t->data)[0];
        sink ^= ((const uint8_t *)t->data)[t->nbytes - 1];
        (void)sink;
    }
    FUZZ_ASSERT(sp_gguf_find_tensor(g, t->name) == t, "find_tensor(%s) is another entry", t->name);
    const sp_gguf_tensor *got = NULL;
    sp_error err = {0};
    sp_status s = sp_gguf_get_tensor(g, t->name, &got, &err);
    FUZZ_ASSERT((s == SP_OK) == (t->dtype != SP_DTYPE_COUNT), "get_tensor(%s): %s", t->name,
                err.msg);
    if (s == SP_OK) {
        sp_tensor view = sp_gguf_tensor_view(t);
        (void)view;
    }
}

/* Stage 2, for files the reader accepts that name an architecture: the
 * GGUF model mapping (metadata -> model_desc, tensor names and shapes), as
 * `spindle serve --model x.gguf --mmap` loads it, one compute thread. */
static void fuzz_gguf_model(const char *path) {
    sp_model_opts opts;
    sp_model_opts_default(&opts);
    opts.use_mmap = 1;
    opts.n_threads = 1;
    sp_model *m = NULL;
    sp_error err = {0};
    if (sp_model_load(&m, path, &opts, &err) != SP_OK) {
        FUZZ_ASSERT(m == NULL && err.msg[0], "failed load must set an error and no model");
        return;
    }
    const sp_model_desc *d = sp_model_get_desc(m);
    FUZZ_ASSERT(d->n_layers > 0 && d->hidden > 0 && d->vocab > 0, "loaded with %d layers",
                d->n_layers);
    sp_model_free(m);
}

int fuzz_gguf(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("model.gguf", data, size);
    sp_gguf *g = NULL;
    sp_error err = {0};
    if (sp_gguf_open(&g, path, &err) != SP_OK) {
        FUZZ_ASSERT(g == NULL && err.msg[0], "failed open must set an error and no handle");
        return 0;
    }
    uint32_t align = sp_gguf_alignment(g);
    FUZZ_ASSERT(align && (align & (align - 1)) == 0, "alignment %u", align);
    for (int i = 0; i < sp_gguf_kv_count(g); i++) {
        const char *key = sp_gguf_kv_key(g, i);
        const sp_gguf_val *v = sp_gguf_kv_val(g, i);
        FUZZ_ASSERT(key && v, "kv %d", i);
        if (!key || !v) continue;
        FUZZ_ASSERT(sp_gguf_find(g, key) == v, "find(%s) is another value", key);
        fuzz_gguf_val(v, 0);
        fuzz_gguf_getters(g, key);
    }
    for (int i = 0; i < sp_gguf_tensor_count(g); i++)
        fuzz_gguf_tensor(g, sp_gguf_tensor_at(g, i), size);
    int has_arch = sp_gguf_find(g, "general.architecture") != NULL;
    sp_gguf_close(g);
    if (has_arch) fuzz_gguf_model(path);
    return 0;
}

#ifndef FUZZ_REGRESSION
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_gguf(data, size);
}
#endif
