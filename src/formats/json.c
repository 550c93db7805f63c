#include "formats/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/file.h"

static sp_status parse_error(const json_error_t *je, const char *name, sp_error *err) {
    return sp_fail(err, SP_EFORMAT, "%s: invalid JSON at line %d column %d (byte %d): %s", name,
                   je->line, je->column, je->position, je->text);
}

sp_status sp_json_parse(json_t **out, const char *text, size_t len, const char *name,
                        sp_error *err) {
    json_error_t je;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!*out) return parse_error(&je, name, err);
    return SP_OK;
}

sp_status sp_json_load_file(json_t **out, const char *path, sp_error *err) {
    *out = NULL;
    sp_file f;
    SP_TRY(sp_file_read(&f, path, err));
    sp_status s = sp_json_parse(out, (const char *)f.data, f.size, path, err);
    sp_file_close(&f);
    return s;
}

const char *sp_json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "real";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* "ctx.key" (or "key") for messages. */
typedef struct key_path {
    char s[256];
} key_path;

static key_path kp(const char *ctx, const char *key) {
    key_path p;
    snprintf(p.s, sizeof p.s, "%s%s%s", ctx ? ctx : "", ctx ? "." : "", key);
    return p;
}

/* Looks key up: NULL when absent or null. Reports "missing" if required. */
static sp_status lookup(const json_t *obj, const char *key, int required, json_t **v,
                        const char *ctx, sp_error *err) {
    *v = (obj && json_is_object(obj)) ? json_object_get(obj, key) : NULL;
    if (*v && json_is_null(*v)) *v = NULL;
    if (!*v && required) return sp_fail(err, SP_ENOTFOUND, "%s: missing", kp(ctx, key).s);
    return SP_OK;
}

static sp_status wrong_type(const json_t *v, const char *want, const char *key, const char *ctx,
                            sp_error *err) {
    return sp_fail(err, SP_EFORMAT, "%s: expected %s, got %s", kp(ctx, key).s, want,
                   sp_json_type_name(v));
}

sp_status sp_json_int(const json_t *obj, const char *key, int64_t def, int required, int64_t *out,
                      const char *ctx, sp_error *err) {
    json_t *v;
    *out = def;
    SP_TRY(lookup(obj, key, required, &v, ctx, err));
    if (!v) return SP_OK;
    if (!json_is_integer(v)) return wrong_type(v, "an integer", key, ctx, err);
    *out = (int64_t)json_integer_value(v);
    return SP_OK;
}

sp_status sp_json_int_range(const json_t *obj, const char *key, int64_t def, int required,
                            int64_t lo, int64_t hi, int64_t *out, const char *ctx, sp_error *err) {
    SP_TRY(sp_json_int(obj, key, def, required, out, ctx, err));
    if (*out < lo || *out > hi)
        return sp_fail(err, SP_ERANGE, "%s: %" PRId64 " is outside [%" PRId64 ", %" PRId64 "]",
                       kp(ctx, key).s, *out, lo, hi);
    return SP_OK;
}

sp_status sp_json_num(const json_t *obj, const char *key, double def, int required, double *out,
                      const char *ctx, sp_error *err) {
    json_t *v;
    *out = def;
    SP_TRY(lookup(obj, key, required, &v, ctx, err));
    if (!v) return SP_OK;
    if (!json_is_number(v)) return wrong_type(v, "a number", key, ctx, err);
    *out = json_number_value(v);
    return SP_OK;
}

sp_status sp_json_bool(const json_t *obj, const char *key, int def, int required, int *out,
                       const char *ctx, sp_error *err) {
    json_t *v;
    *out = def;
    SP_TRY(lookup(obj, key, required, &v, ctx, err));
    if (!v) return SP_OK;
    if (!json_is_boolean(v)) return wrong_type(v, "a boolean", key, ctx, err);
    *out = json_is_true(v);
    return SP_OK;
}

sp_status sp_json_str(const json_t *obj, const char *key, const char *def, int required,
                      const char **out, const char *ctx, sp_error *err) {
    json_t *v;
    *out = def;
    SP_TRY(lookup(obj, key, required, &v, ctx, err));
    if (!v) return SP_OK;
    if (!json_is_string(v)) return wrong_type(v, "a string", key, ctx, err);
    *out = json_string_value(v);
    return SP_OK;
}

sp_status sp_json_obj(const json_t *obj, const char *key, int required, const json_t **out,
                      const char *ctx, sp_error *err) {
    json_t *v;
    *out = NULL;
    SP_TRY(lookup(obj, key, required, &v, ctx, err));
    if (v && !json_is_object(v)) return wrong_type(v, "an object", key, ctx, err);
    *out = v;
    return SP_OK;
}

sp_status sp_json_arr(const json_t *obj, const char *key, int required, const json_t **out,
                      const char *ctx, sp_error *err) {
    json_t *v;
    *out = NULL;
    SP_TRY(lookup(obj, key, required, &v, ctx, err));
    if (v && !json_is_array(v)) return wrong_type(v, "an array", key, ctx, err);
    *out = v;
    return SP_OK;
}

sp_status sp_json_int_list(const json_t *obj, const char *key, int required, int64_t *out, int max,
                           int *n, const char *ctx, sp_error *err) {
    json_t *v;
    *n = 0;
    SP_TRY(lookup(obj, key, required, &v, ctx, err));
    if (!v) return SP_OK;
    if (json_is_integer(v)) {
        if (max < 1) return sp_fail(err, SP_ERANGE, "%s: no room", kp(ctx, key).s);
        out[0] = (int64_t)json_integer_value(v);
        *n = 1;
        return SP_OK;
    }
    if (!json_is_array(v))
        return wrong_type(v, "an integer or an array of integers", key, ctx, err);
    size_t len = json_array_size(v);
    if (len > (size_t)max)
        return sp_fail(err, SP_ERANGE, "%s: %zu values, at most %d supported", kp(ctx, key).s, len,
                       max);
    for (size_t i = 0; i < len; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e))
            return sp_fail(err, SP_EFORMAT, "%s[%zu]: expected an integer, got %s", kp(ctx, key).s,
                           i, sp_json_type_name(e));
        out[i] = (int64_t)json_integer_value(e);
    }
    *n = (int)len;
    return SP_OK;
}

sp_status sp_json_num_list(const json_t *obj, const char *key, int required, double *out, int max,
                           int want, int *n, const char *ctx, sp_error *err) {
    const json_t *v;
    *n = 0;
    SP_TRY(sp_json_arr(obj, key, required, &v, ctx, err));
    if (!v) return SP_OK;
    size_t len = json_array_size(v);
    if ((want >= 0 && len != (size_t)want) || len > (size_t)max)
        return sp_fail(err, SP_EFORMAT, "%s: %zu values, expected %s%d", kp(ctx, key).s, len,
                       want >= 0 ? "" : "at most ", want >= 0 ? want : max);
    for (size_t i = 0; i < len; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_number(e))
            return sp_fail(err, SP_EFORMAT, "%s[%zu]: expected a number, got %s", kp(ctx, key).s, i,
                           sp_json_type_name(e));
        out[i] = json_number_value(e);
    }
    *n = (int)len;
    return SP_OK;
}
