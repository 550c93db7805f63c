/* GGUF metadata and tensor access: typed getters with named errors, array
 * element accessors, tensor lookup. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "formats/gguf_internal.h"

static int is_int_type(sp_gguf_type t) {
    return t <= SP_GGUF_I32 || t == SP_GGUF_U64 || t == SP_GGUF_I64;
}
static int is_signed_type(sp_gguf_type t) {
    return t == SP_GGUF_I8 || t == SP_GGUF_I16 || t == SP_GGUF_I32 || t == SP_GGUF_I64;
}

const char *sp_gguf_path(const sp_gguf *g) {
    return g->file.path;
}
uint32_t sp_gguf_version(const sp_gguf *g) {
    return g->version;
}
uint32_t sp_gguf_alignment(const sp_gguf *g) {
    return g->alignment;
}
uint64_t sp_gguf_data_offset(const sp_gguf *g) {
    return g->data_offset;
}
int sp_gguf_kv_count(const sp_gguf *g) {
    return g->n_kv;
}

const char *sp_gguf_kv_key(const sp_gguf *g, int i) {
    return (i < 0 || i >= g->n_kv) ? NULL : g->kvs[i].key;
}

const sp_gguf_val *sp_gguf_kv_val(const sp_gguf *g, int i) {
    return (i < 0 || i >= g->n_kv) ? NULL : &g->kvs[i].val;
}

const sp_gguf_val *sp_gguf_find(const sp_gguf *g, const char *key) {
    int i = sp_name_index_find(&g->kv_ix, key);
    return i < 0 ? NULL : &g->kvs[i].val;
}

/* ---- values ---- */

sp_gguf_type sp_gguf_val_type(const sp_gguf_val *v) {
    return v->type;
}

int sp_gguf_val_i64(const sp_gguf_val *v, int64_t *out) {
    if (!is_int_type(v->type)) return 0;
    if (!is_signed_type(v->type) && v->num.u > INT64_MAX) return 0;
    *out = v->num.i;
    return 1;
}

int sp_gguf_val_u64(const sp_gguf_val *v, uint64_t *out) {
    if (!is_int_type(v->type)) return 0;
    if (is_signed_type(v->type) && v->num.i < 0) return 0;
    *out = v->num.u;
    return 1;
}

int sp_gguf_val_f64(const sp_gguf_val *v, double *out) {
    if (v->type == SP_GGUF_F32 || v->type == SP_GGUF_F64)
        *out = v->num.f;
    else if (is_signed_type(v->type))
        *out = (double)v->num.i;
    else if (is_int_type(v->type))
        *out = (double)v->num.u;
    else
        return 0;
    return 1;
}

int sp_gguf_val_bool(const sp_gguf_val *v, int *out) {
    if (v->type != SP_GGUF_BOOL) return 0;
    *out = (int)v->num.u;
    return 1;
}

const char *sp_gguf_val_str(const sp_gguf_val *v, uint64_t *len) {
    if (v->type != SP_GGUF_STRING) return NULL;
    if (len) *len = v->n;
    return v->str;
}

/* ---- arrays ---- */

sp_gguf_type sp_gguf_arr_type(const sp_gguf_val *v) {
    return v->type == SP_GGUF_ARRAY ? v->elem_type : SP_GGUF_TYPE_COUNT;
}
uint64_t sp_gguf_arr_len(const sp_gguf_val *v) {
    return v->type == SP_GGUF_ARRAY ? v->n : 0;
}
const void *sp_gguf_arr_raw(const sp_gguf_val *v) {
    return v->type == SP_GGUF_ARRAY ? v->raw : NULL;
}

/* Element i of a fixed-size array decoded as a scalar value. */
static int arr_scalar(const sp_gguf_val *v, uint64_t i, sp_gguf_val *e) {
    if (v->type != SP_GGUF_ARRAY || !v->raw || i >= v->n) return 0;
    size_t es = sp_gguf_fixed_size(v->elem_type);
    memset(e, 0, sizeof *e);
    e->type = v->elem_type;
    sp_gguf_decode_scalar(e, v->raw + i * es);
    return 1;
}

int64_t sp_gguf_arr_i64(const sp_gguf_val *v, uint64_t i) {
    sp_gguf_val e;
    int64_t x = 0;
    if (!arr_scalar(v, i, &e)) return 0;
    if (e.type == SP_GGUF_BOOL) return (int64_t)e.num.u;
    return sp_gguf_val_i64(&e, &x) ? x : 0;
}

double sp_gguf_arr_f64(const sp_gguf_val *v, uint64_t i) {
    sp_gguf_val e;
    double x = 0;
    if (!arr_scalar(v, i, &e)) return 0;
    return sp_gguf_val_f64(&e, &x) ? x : 0;
}

float sp_gguf_arr_f32(const sp_gguf_val *v, uint64_t i) {
    return (float)sp_gguf_arr_f64(v, i);
}

const sp_gguf_val *sp_gguf_arr_at(const sp_gguf_val *v, uint64_t i) {
    if (v->type != SP_GGUF_ARRAY || !v->items || i >= v->n) return NULL;
    return &v->items[i];
}

const char *sp_gguf_arr_str(const sp_gguf_val *v, uint64_t i, uint64_t *len) {
    const sp_gguf_val *e = sp_gguf_arr_at(v, i);
    return e ? sp_gguf_val_str(e, len) : NULL;
}

/* ---- keyed getters ---- */

/* Finds key; reports a missing required key. *v = NULL when absent. */
static sp_status lookup(const sp_gguf *g, const char *key, int required, const sp_gguf_val **v,
                        sp_error *err) {
    *v = sp_gguf_find(g, key);
    if (!*v && required)
        return sp_fail(err, SP_ENOTFOUND, "%s: metadata key %s is missing", g->file.path, key);
    return SP_OK;
}

static sp_status bad_value(const sp_gguf *g, const char *key, const sp_gguf_val *v,
                           const char *want, sp_error *err) {
    char val[64] = "";
    int64_t i;
    uint64_t u;
    double f;
    if (sp_gguf_val_i64(v, &i))
        snprintf(val, sizeof val, " %" PRId64, i);
    else if (sp_gguf_val_u64(v, &u))
        snprintf(val, sizeof val, " %" PRIu64, u);
    else if (sp_gguf_val_f64(v, &f))
        snprintf(val, sizeof val, " %g", f);
    return sp_fail(err, SP_EFORMAT, "%s: metadata key %s is %s%s, expected %s", g->file.path, key,
                   sp_gguf_type_name(v->type), val, want);
}

sp_status sp_gguf_get_u32(const sp_gguf *g, const char *key, uint32_t def, int required,
                          uint32_t *out, sp_error *err) {
    const sp_gguf_val *v;
    uint64_t u;
    *out = def;
    SP_TRY(lookup(g, key, required, &v, err));
    if (!v) return SP_OK;
    if (!sp_gguf_val_u64(v, &u) || u > UINT32_MAX)
        return bad_value(g, key, v, "an integer in [0, 4294967295]", err);
    *out = (uint32_t)u;
    return SP_OK;
}

sp_status sp_gguf_get_i64(const sp_gguf *g, const char *key, int64_t def, int required,
                          int64_t *out, sp_error *err) {
    const sp_gguf_val *v;
    *out = def;
    SP_TRY(lookup(g, key, required, &v, err));
    if (!v) return SP_OK;
    if (!sp_gguf_val_i64(v, out)) {
        *out = def;
        return bad_value(g, key, v, "a 64-bit signed integer", err);
    }
    return SP_OK;
}

sp_status sp_gguf_get_f32(const sp_gguf *g, const char *key, float def, int required, float *out,
                          sp_error *err) {
    const sp_gguf_val *v;
    double f;
    *out = def;
    SP_TRY(lookup(g, key, required, &v, err));
    if (!v) return SP_OK;
    if (!sp_gguf_val_f64(v, &f)) return bad_value(g, key, v, "a number", err);
    *out = (float)f;
    return SP_OK;
}

sp_status sp_gguf_get_bool(const sp_gguf *g, const char *key, int def, int required, int *out,
                           sp_error *err) {
    const sp_gguf_val *v;
    *out = def;
    SP_TRY(lookup(g, key, required, &v, err));
    if (!v) return SP_OK;
    if (!sp_gguf_val_bool(v, out)) return bad_value(g, key, v, "a bool", err);
    return SP_OK;
}

sp_status sp_gguf_get_str(const sp_gguf *g, const char *key, const char *def, int required,
                          const char **out, sp_error *err) {
    const sp_gguf_val *v;
    *out = def;
    SP_TRY(lookup(g, key, required, &v, err));
    if (!v) return SP_OK;
    if (v->type != SP_GGUF_STRING) return bad_value(g, key, v, "a string", err);
    *out = v->str;
    return SP_OK;
}

sp_status sp_gguf_get_arr(const sp_gguf *g, const char *key, int elem_type, int required,
                          const sp_gguf_val **out, sp_error *err) {
    const sp_gguf_val *v;
    *out = NULL;
    SP_TRY(lookup(g, key, required, &v, err));
    if (!v) return SP_OK;
    if (v->type != SP_GGUF_ARRAY) return bad_value(g, key, v, "an array", err);
    if (elem_type >= 0 && (int)v->elem_type != elem_type)
        return sp_fail(err, SP_EFORMAT, "%s: metadata key %s is an array of %s, expected %s",
                       g->file.path, key, sp_gguf_type_name(v->elem_type),
                       sp_gguf_type_name((sp_gguf_type)elem_type));
    *out = v;
    return SP_OK;
}

/* ---- tensors ---- */

int sp_gguf_tensor_count(const sp_gguf *g) {
    return g->n_tensors;
}

const sp_gguf_tensor *sp_gguf_tensor_at(const sp_gguf *g, int i) {
    return (i < 0 || i >= g->n_tensors) ? NULL : &g->tensors[i];
}

const sp_gguf_tensor *sp_gguf_find_tensor(const sp_gguf *g, const char *name) {
    int i = sp_name_index_find(&g->tensor_ix, name);
    return i < 0 ? NULL : &g->tensors[i];
}

sp_status sp_gguf_get_tensor(const sp_gguf *g, const char *name, const sp_gguf_tensor **out,
                             sp_error *err) {
    *out = sp_gguf_find_tensor(g, name);
    if (!*out) return sp_fail(err, SP_ENOTFOUND, "%s: no tensor named %s", g->file.path, name);
    if ((*out)->dtype == SP_DTYPE_COUNT) {
        uint32_t type = (*out)->ggml_type;
        *out = NULL;
        return sp_fail(err, SP_EUNSUPPORTED, "%s: unsupported tensor type %s for tensor %s",
                       g->file.path, sp_ggml_type_name(type), name);
    }
    return SP_OK;
}

sp_tensor sp_gguf_tensor_view(const sp_gguf_tensor *t) {
    sp_tensor v;
    memset(&v, 0, sizeof v);
    v.dtype = t->dtype;
    v.ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) v.shape[d] = t->shape[d];
    v.data = (void *)t->data;
    v.nbytes = t->nbytes;
    return v;
}
