/* A small safetensors writer for tests and tools: header JSON (padded with
 * spaces to a multiple of 8 so the data section is 8-byte aligned), then the
 * tensors back to back in the given order. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"

static size_t elem_bytes(sp_dtype t) {
    switch (t) {
    case SP_F64:
    case SP_I64:
        return 8;
    case SP_F32:
    case SP_I32:
        return 4;
    case SP_F16:
    case SP_BF16:
    case SP_I16:
        return 2;
    case SP_I8:
    case SP_U8:
    case SP_BOOL:
        return 1;
    default:
        return 0;
    }
}

/* Builds the header object; checks each tensor's byte count. */
static sp_status build_header(json_t *h, const sp_st_tensor *ts, int n, const char *path,
                              sp_error *err) {
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const sp_st_tensor *t = &ts[i];
        const char *dt = sp_st_dtype_name(t->dtype);
        if (!dt || t->ndim < 0 || t->ndim > SP_ST_MAX_DIMS)
            return sp_fail(err, SP_EINVAL, "%s: tensor %s: cannot write dtype %s / ndim %d", path,
                           t->name, sp_dtype_name(t->dtype), t->ndim);
        uint64_t numel = 1;
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) {
            numel *= (uint64_t)t->shape[d];
            json_array_append_new(shape, json_integer(t->shape[d]));
        }
        if (numel * elem_bytes(t->dtype) != t->nbytes) {
            json_decref(shape);
            return sp_fail(err, SP_EINVAL, "%s: tensor %s: nbytes %zu, shape needs %" PRIu64, path,
                           t->name, t->nbytes, numel * elem_bytes(t->dtype));
        }
        json_t *e = json_object();
        json_object_set_new(e, "dtype", json_string(dt));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets",
                            json_pack("[I, I]", (json_int_t)off, (json_int_t)(off + t->nbytes)));
        json_object_set_new(h, t->name, e);
        off += t->nbytes;
    }
    return SP_OK;
}

static sp_status write_all(FILE *fp, const char *header, size_t hlen, const sp_st_tensor *ts, int n,
                           const char *path, sp_error *err) {
    size_t padded = (hlen + 7) & ~(size_t)7;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(header, 1, hlen, fp) == hlen;
    for (size_t i = hlen; i < padded && ok; i++) ok = fputc(' ', fp) != EOF;
    for (int i = 0; i < n && ok; i++)
        ok = ts[i].nbytes == 0 || fwrite(ts[i].data, 1, ts[i].nbytes, fp) == ts[i].nbytes;
    if (!ok) return sp_fail(err, SP_EIO, "%s: write failed", path);
    return SP_OK;
}

sp_status sp_st_write(const char *path, const sp_st_tensor *tensors, int n, sp_error *err) {
    json_t *h = json_object();
    json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
    sp_status s = build_header(h, tensors, n, path, err);
    char *text = s == SP_OK ? json_dumps(h, JSON_COMPACT) : NULL;
    json_decref(h);
    if (s != SP_OK) return s;
    if (!text) return sp_fail(err, SP_ENOMEM, "%s: cannot serialize header", path);
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        free(text);
        return sp_fail(err, SP_EIO, "%s: cannot create file", path);
    }
    s = write_all(fp, text, strlen(text), tensors, n, path, err);
    free(text);
    if (fclose(fp) != 0 && s == SP_OK) s = sp_fail(err, SP_EIO, "%s: write failed", path);
    return s;
}
