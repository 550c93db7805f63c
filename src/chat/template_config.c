/* Finding a model's chat template and special tokens, and building the
 * variables transformers' apply_chat_template passes to the template. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "chat/template.h"

static char *token_text(const json_t *v) {
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static sp_status template_from_config(const json_t *cfg, const char *path, char **source,
                                      sp_error *err) {
    const json_t *ct = json_object_get(cfg, "chat_template");
    if (json_is_string(ct)) {
        *source = strdup(json_string_value(ct));
        return *source ? SP_OK : sp_fail(err, SP_ENOMEM, "%s: out of memory", path);
    }
    if (json_is_array(ct)) {
        size_t i;
        json_t *item;
        json_array_foreach(ct, i, item) {
            const json_t *name = json_object_get(item, "name");
            const json_t *tpl = json_object_get(item, "template");
            if (json_is_string(name) && !strcmp(json_string_value(name), "default") &&
                json_is_string(tpl)) {
                *source = strdup(json_string_value(tpl));
                return *source ? SP_OK : sp_fail(err, SP_ENOMEM, "%s: out of memory", path);
            }
        }
        return sp_fail(err, SP_ENOTFOUND, "%s: chat_template list has no \"default\" entry", path);
    }
    return sp_fail(err, SP_ENOTFOUND, "%s: no chat_template", path);
}

sp_status sp_chat_template_load(const char *model_dir, char **source, char **bos_token,
                                char **eos_token, sp_error *err) {
    *source = NULL;
    if (bos_token) *bos_token = NULL;
    if (eos_token) *eos_token = NULL;
    char *cfg_path = sp_path_join(model_dir, "tokenizer_config.json");
    char *jinja_path = sp_path_join(model_dir, "chat_template.jinja");
    sp_status st = SP_OK;
    json_t *cfg = NULL;
    if (!cfg_path || !jinja_path) {
        st = sp_fail(err, SP_ENOMEM, "%s: out of memory", model_dir);
        goto done;
    }
    if (sp_path_exists(cfg_path)) {
        json_error_t je;
        cfg = json_load_file(cfg_path, JSON_DECODE_INT_AS_REAL,
                             &je); /* model_max_length can be 1e30 */
        if (!cfg || !json_is_object(cfg)) {
            st =
                sp_fail(err, SP_EFORMAT, "%s: bad JSON at line %d: %s", cfg_path, je.line, je.text);
            goto done;
        }
        if (bos_token) *bos_token = token_text(json_object_get(cfg, "bos_token"));
        if (eos_token) *eos_token = token_text(json_object_get(cfg, "eos_token"));
    }
    if (sp_path_exists(jinja_path)) {
        size_t len;
        st = sp_read_text(jinja_path, source, &len, err);
    } else if (cfg) {
        st = template_from_config(cfg, cfg_path, source, err);
    } else {
        st = sp_fail(err, SP_ENOTFOUND,
                     "%s: neither tokenizer_config.json nor chat_template.jinja found", model_dir);
    }
done:
    if (st != SP_OK) {
        if (bos_token) {
            free(*bos_token);
            *bos_token = NULL;
        }
        if (eos_token) {
            free(*eos_token);
            *eos_token = NULL;
        }
    }
    json_decref(cfg);
    free(cfg_path);
    free(jinja_path);
    return st;
}

json_t *sp_chat_template_context(json_t *messages, json_t *tools, int add_generation_prompt,
                                 const char *bos_token, const char *eos_token,
                                 const json_t *kwargs) {
    json_t *ctx = json_object();
    if (!ctx) return NULL;
    json_object_set(ctx, "messages", messages ? messages : json_null());
    json_object_set(ctx, "tools", tools ? tools : json_null());
    json_object_set_new(ctx, "documents", json_null());
    json_object_set_new(ctx, "add_generation_prompt", json_boolean(add_generation_prompt));
    if (bos_token) json_object_set_new(ctx, "bos_token", json_string(bos_token));
    if (eos_token) json_object_set_new(ctx, "eos_token", json_string(eos_token));
    if (json_is_object(kwargs)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)kwargs, k, v) json_object_set(ctx, k, v);
    }
    return ctx;
}
