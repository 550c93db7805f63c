/* Fuzz target: arbitrary bytes as a .safetensors file -> sp_st_open, then
 * every accessor on every tensor. Beyond "no crash": each tensor's span lies
 * inside the file, its byte count matches its shape and dtype, and lookups
 * by name return the same entry. */
#include "fuzz_common.h"

#include "formats/safetensors.h"

static void fuzz_st_check_tensor(const sp_safetensors *st, const sp_st_tensor *t, size_t size) {
    FUZZ_ASSERT(t->name != NULL, "tensor without a name");
    FUZZ_ASSERT(t->ndim >= 0 && t->ndim <= SP_ST_MAX_DIMS, "ndim %d", t->ndim);
    FUZZ_ASSERT(t->offset <= size && t->nbytes <= size - t->offset,
                "tensor %s spans [%llu, +%zu) in a %zu-byte file", t->name,
                (unsigned long long)t->offset, t->nbytes, size);
    if (t->dtype != SP_DTYPE_COUNT && t->ndim >= 0 && t->ndim <= SP_ST_MAX_DIMS) {
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_ASSERT(t->shape[d] >= 0, "tensor %s dim %d is %lld", t->name, d,
                        (long long)t->shape[d]);
            numel *= (uint64_t)t->shape[d];
        }
        uint64_t want = numel * sp_dtype_block_bytes(t->dtype);
        FUZZ_ASSERT(t->nbytes == want, "tensor %s: %zu bytes for %llu elements of %s", t->name,
                    t->nbytes, (unsigned long long)numel, sp_dtype_name(t->dtype));
    }
    /* Touch the first and last byte: the view must be readable. */
    if (t->nbytes && t->data) {
        volatile uint8_t sink = ((const uint8_t *)t->data)[0];
        sink ^= ((const uint8_t *)t->data)[t->nbytes - 1];
        (void)sink;
    }
    FUZZ_ASSERT(sp_st_find(st, t->name) == t, "find(%s) is another entry", t->name);
    FUZZ_ASSERT(sp_st_dtype_str(st, t) != NULL, "tensor %s has no dtype string", t->name);
    const sp_st_tensor *got = NULL;
    sp_error err = {0};
    sp_status s = sp_st_get(st, t->name, &got, &err);
    FUZZ_ASSERT((s == SP_OK) == (t->dtype != SP_DTYPE_COUNT), "get(%s): %s", t->name, err.msg);
}

int fuzz_safetensors(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("model.safetensors", data, size);
    sp_safetensors *st = NULL;
    sp_error err = {0};
    if (sp_st_open(&st, path, &err) != SP_OK) {
        FUZZ_ASSERT(st == NULL && err.msg[0], "failed open must set an error and no handle");
        return 0;
    }
    FUZZ_ASSERT(sp_st_file_count(st) == 1, "%d files", sp_st_file_count(st));
    uint64_t prev_end = 0;
    for (int i = 0; i < sp_st_count(st); i++) {
        const sp_st_tensor *t = sp_st_at(st, i);
        fuzz_st_check_tensor(st, t, size);
        /* file order = data offset order, spans do not overlap */
        FUZZ_ASSERT(t->nbytes == 0 || t->offset >= prev_end, "tensor %s overlaps its predecessor",
                    t->name);
        if (t->nbytes) prev_end = t->offset + t->nbytes;
    }
    const json_t *meta = sp_st_metadata(st, 0);
    if (meta) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)meta, k, v) {
            FUZZ_ASSERT(json_is_string(v), "__metadata__.%s is not a string", k);
        }
    }
    sp_st_close(st);
    return 0;
}

#ifndef FUZZ_REGRESSION
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_safetensors(data, size);
}
#endif
