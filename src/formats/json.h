/* JSON documents (config.json, tokenizer_config.json, index files) through
 * jansson, with errors that name the file and the key path.
 *
 * Getters share one shape:
 *   sp_json_T(obj, key, def, required, &out, ctx, err)
 * - key absent, or JSON null: *out = def and SP_OK when !required; else
 *   SP_ENOTFOUND "<ctx>.<key>: missing".
 * - present with the wrong JSON type: SP_EFORMAT "<ctx>.<key>: expected an
 *   integer, got string" (whatever the types are).
 * ctx is the path of obj for messages, e.g. "config.json" or
 * "config.json:text_config"; NULL means none. obj may be NULL (then every key
 * is absent). Integers accept only JSON integers (true integers; 2.0 is
 * rejected); numbers accept integers and reals. */
#ifndef SP_FORMATS_JSON_H
#define SP_FORMATS_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

/* Parses a whole file; on error: "<path>: invalid JSON at line L column C
 * (byte P): <jansson's text>". *out is owned by the caller (json_decref). */
sp_status sp_json_load_file(json_t **out, const char *path, sp_error *err);
/* Same for a buffer; name is used in messages. */
sp_status sp_json_parse(json_t **out, const char *text, size_t len, const char *name,
                        sp_error *err);

sp_status sp_json_int(const json_t *obj, const char *key, int64_t def, int required, int64_t *out,
                      const char *ctx, sp_error *err);
/* int64 that must also lie in [lo, hi] (SP_ERANGE otherwise). */
sp_status sp_json_int_range(const json_t *obj, const char *key, int64_t def, int required,
                            int64_t lo, int64_t hi, int64_t *out, const char *ctx, sp_error *err);
sp_status sp_json_num(const json_t *obj, const char *key, double def, int required, double *out,
                      const char *ctx, sp_error *err);
sp_status sp_json_bool(const json_t *obj, const char *key, int def, int required, int *out,
                       const char *ctx, sp_error *err);
/* *out borrows the string inside obj (or is def). */
sp_status sp_json_str(const json_t *obj, const char *key, const char *def, int required,
                      const char **out, const char *ctx, sp_error *err);
/* Object / array members: *out = NULL when absent/null and !required. Borrowed. */
sp_status sp_json_obj(const json_t *obj, const char *key, int required, const json_t **out,
                      const char *ctx, sp_error *err);
sp_status sp_json_arr(const json_t *obj, const char *key, int required, const json_t **out,
                      const char *ctx, sp_error *err);
/* An integer or an array of integers (e.g. eos_token_id): fills up to max
 * values into out and sets *n (0 when absent and !required). More than max
 * values is SP_ERANGE. */
sp_status sp_json_int_list(const json_t *obj, const char *key, int required, int64_t *out, int max,
                           int *n, const char *ctx, sp_error *err);
/* Array of numbers (ints or reals) into doubles, exactly `want` of them (or
 * any count <= max when want < 0; *n gets the count). */
sp_status sp_json_num_list(const json_t *obj, const char *key, int required, double *out, int max,
                           int want, int *n, const char *ctx, sp_error *err);

/* "object", "array", "string", "integer", "real", "true", "false", "null". */
const char *sp_json_type_name(const json_t *v);

#endif
