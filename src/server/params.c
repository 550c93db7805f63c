/* Request validation for /v1/chat/completions and /v1/completions: every
 * wrong type or range is a 400 that names the JSON path. Unknown fields are
 * ignored (clients send many). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_impl.h"

void api_fail(api_error *e, int status, const char *param, const char *fmt, ...) {
    e->status = status;
    e->type = status == 401   ? "authentication_error"
              : status == 404 ? "not_found_error"
              : status == 503 ? "server_unavailable"
              : status >= 500 ? "server_error"
                              : "invalid_request_error";
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    e->code = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* Optional number field in [lo, hi]; absent or null leaves *out. */
static int get_number(const json_t *body, const char *key, double lo, double hi, double *out,
                      api_error *err) {
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) {
        api_fail(err, 400, key, "%s must be a number", key);
        return -1;
    }
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) {
        api_fail(err, 400, key, "%s must be between %g and %g, got %g", key, lo, hi, x);
        return -1;
    }
    *out = x;
    return 0;
}

static int get_int(const json_t *body, const char *key, long long lo, long long hi, long long *out,
                   api_error *err) {
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) {
        api_fail(err, 400, key, "%s must be an integer", key);
        return -1;
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        api_fail(err, 400, key, "%s must be between %lld and %lld, got %lld", key, lo, hi, x);
        return -1;
    }
    *out = x;
    return 0;
}

static int get_bool(const json_t *body, const char *key, int *out, api_error *err) {
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) {
        api_fail(err, 400, key, "%s must be a boolean", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static int parse_stop(const json_t *body, gen_req *g, api_error *err) {
    json_t *v = json_object_get(body, "stop");
    if (!v || json_is_null(v)) return 0;
    size_t n = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;
    if (!json_is_string(v) && !json_is_array(v)) {
        api_fail(err, 400, "stop", "stop must be a string or an array of strings");
        return -1;
    }
    if (n > 16) {
        api_fail(err, 400, "stop", "stop has %zu entries; at most 16 are supported", n);
        return -1;
    }
    g->stop = calloc(n ? n : 1, sizeof *g->stop);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_string(v) ? v : json_array_get(v, i);
        char path[32];
        snprintf(path, sizeof path, "stop[%zu]", i);
        if (!json_is_string(s)) {
            api_fail(err, 400, path, "%s must be a string", path);
            return -1;
        }
        if (json_string_length(s) == 0) continue; /* an empty stop matches nothing */
        g->stop[g->n_stop++] = strdup(json_string_value(s));
    }
    g->params.stop = (const char *const *)g->stop;
    g->params.n_stop = g->n_stop;
    return 0;
}

static int parse_logit_bias(const json_t *body, const sp_engine_info *info, gen_req *g,
                            api_error *err) {
    json_t *v = json_object_get(body, "logit_bias");
    if (!v || json_is_null(v)) return 0;
    if (!json_is_object(v)) {
        api_fail(err, 400, "logit_bias", "logit_bias must be an object of token id -> bias");
        return -1;
    }
    g->bias = calloc(json_object_size(v) + 1, sizeof *g->bias);
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        char path[96];
        snprintf(path, sizeof path, "logit_bias.%.64s", key);
        char *end;
        long id = strtol(key, &end, 10);
        if (!*key || *end || id < 0 || id >= info->vocab) {
            api_fail(err, 400, path, "logit_bias key '%s' is not a token id (0..%d)", key,
                     info->vocab - 1);
            return -1;
        }
        if (!json_is_number(val) || fabs(json_number_value(val)) > 100) {
            api_fail(err, 400, path, "%s must be a number between -100 and 100", path);
            return -1;
        }
        g->bias[g->params.sampling.n_bias++] =
            (sp_logit_bias){(int32_t)id, (float)json_number_value(val)};
    }
    g->params.sampling.bias = g->bias;
    return 0;
}

static int parse_sampling(const json_t *body, const sp_engine_info *info, gen_req *g,
                          api_error *err) {
    sp_sampling *s = &g->params.sampling;
    sp_sampling_default(s);
    double t = 1.0, top_p = 1.0, min_p = 0.0, rep = 1.0, pres = 0.0, freq = 0.0;
    long long top_k = 0, seed = 0, n = 1, max_tokens = 0;
    if (get_number(body, "temperature", 0, 2, &t, err) ||
        get_number(body, "top_p", 0, 1, &top_p, err) ||
        get_number(body, "min_p", 0, 1, &min_p, err) ||
        get_number(body, "repetition_penalty", 0.01, 100, &rep, err) ||
        get_number(body, "presence_penalty", -2, 2, &pres, err) ||
        get_number(body, "frequency_penalty", -2, 2, &freq, err) ||
        get_int(body, "top_k", -1, 1 << 30, &top_k, err) ||
        get_int(body, "n", 1, SP_MAX_CHOICES, &n, err) ||
        get_int(body, "max_tokens", 1, 1 << 30, &max_tokens, err) ||
        get_int(body, "max_completion_tokens", 1, 1 << 30, &max_tokens, err) ||
        get_bool(body, "ignore_eos", &g->params.ignore_eos, err) ||
        get_bool(body, "return_tokens_as_token_ids", &g->tokens_as_ids, err))
        return -1;
    json_t *sv = json_object_get(body, "seed");
    if (sv && !json_is_null(sv)) {
        if (!json_is_integer(sv)) {
            api_fail(err, 400, "seed", "seed must be an integer");
            return -1;
        }
        seed = json_integer_value(sv);
        g->params.has_seed = 1;
        g->params.seed = (uint64_t)seed;
    }
    g->n = (int)n; /* n choices: n engine requests (choices.c) */
    if (top_p <= 0) {
        api_fail(err, 400, "top_p", "top_p must be greater than 0");
        return -1;
    }
    s->temperature = (float)t;
    s->top_p = (float)top_p;
    s->min_p = (float)min_p;
    s->top_k = top_k < 0 ? 0 : (int)top_k;
    s->repetition_penalty = (float)rep;
    s->presence_penalty = (float)pres;
    s->frequency_penalty = (float)freq;
    g->params.max_tokens = (int)max_tokens;
    if (parse_stop(body, g, err) || parse_logit_bias(body, info, g, err)) return -1;
    return 0;
}

static int parse_logprobs(const json_t *body, gen_req *g, api_error *err) {
    json_t *v = json_object_get(body, "logprobs");
    if (!v || json_is_null(v)) return 0;
    if (g->chat) {
        long long top = 0;
        if (get_bool(body, "logprobs", &g->logprobs, err) ||
            get_int(body, "top_logprobs", 0, SP_MAX_TOP_LOGPROBS, &top, err))
            return -1;
        g->top_logprobs = g->logprobs ? (int)top : 0;
    } else {
        long long top = 0;
        if (get_int(body, "logprobs", 0, 5, &top, err)) return -1;
        g->logprobs = 1;
        g->top_logprobs = (int)top;
    }
    g->params.logprobs = g->logprobs;
    g->params.top_logprobs = g->top_logprobs;
    return 0;
}

static int parse_stream(const json_t *body, gen_req *g, api_error *err) {
    if (get_bool(body, "stream", &g->stream, err)) return -1;
    json_t *so = json_object_get(body, "stream_options");
    if (!so || json_is_null(so)) return 0;
    if (!json_is_object(so)) {
        api_fail(err, 400, "stream_options", "stream_options must be an object");
        return -1;
    }
    json_t *iu = json_object_get(so, "include_usage");
    if (iu && !json_is_null(iu) && !json_is_boolean(iu)) {
        api_fail(err, 400, "stream_options.include_usage",
                 "stream_options.include_usage must be a boolean");
        return -1;
    }
    g->include_usage = json_is_true(iu);
    return 0;
}

static int tokenize_text(const sp_engine_info *info, const char *text, size_t len, gen_req *g,
                         api_error *err) {
    sp_error e = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (sp_tokenizer_encode(info->tokenizer, text, len, 1, 1, &ids, &n, &e) != SP_OK) {
        api_fail(err, 400, "prompt", "cannot tokenize the prompt: %s", e.msg);
        return -1;
    }
    g->prompt = ids;
    g->n_prompt = n;
    return 0;
}

static int parse_prompt(const json_t *body, const sp_engine_info *info, gen_req *g,
                        api_error *err) {
    json_t *p = json_object_get(body, "prompt");
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
        p = json_array_get(p, 0);
    if (json_is_string(p))
        return tokenize_text(info, json_string_value(p), json_string_length(p), g, err);
    if (!json_is_array(p) || json_array_size(p) == 0) {
        api_fail(err, 400, "prompt",
                 p ? "prompt must be a string or a non-empty array of token ids"
                   : "prompt is required");
        return -1;
    }
    size_t n = json_array_size(p);
    g->prompt = malloc(n * sizeof *g->prompt);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(p, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 ||
            json_integer_value(t) >= info->vocab) {
            char path[40];
            snprintf(path, sizeof path, "prompt[%zu]", i);
            api_fail(err, 400, path, "%s must be a token id between 0 and %d", path,
                     info->vocab - 1);
            return -1;
        }
        g->prompt[i] = (int32_t)json_integer_value(t);
    }
    g->n_prompt = n;
    return 0;
}

/* A content array with image parts keeps its parts (the chat template
 * places images between texts): text parts as they are, image parts as
 * {"type": "image"} (what templates test for) after their pixels are
 * loaded into im. */
static json_t *content_with_images(const json_t *c, const char *path, const sp_engine_info *info,
                                   const sp_media_opts *mo, req_images *im, api_error *err) {
    json_t *out = json_array();
    for (size_t k = 0; k < json_array_size(c); k++) {
        json_t *part = json_array_get(c, k);
        char pp[96];
        snprintf(pp, sizeof pp, "%s[%zu]", path, k);
        if (is_image_part(part)) {
            if (!im) {
                api_fail(err, 400, pp, "%s: images are not accepted here", pp);
            } else if (image_part_load(part, pp, info, mo, im, err) == 0) {
                json_array_append_new(out, json_pack("{s:s}", "type", "image"));
                continue;
            }
        } else if (json_is_string(json_object_get(part, "text"))) {
            json_array_append_new(out, json_pack("{s:s, s:O}", "type", "text", "text",
                                                 json_object_get(part, "text")));
            continue;
        } else {
            api_fail(err, 400, pp, "%s must be a text part or an image_url part", pp);
        }
        json_decref(out);
        return NULL;
    }
    return out;
}

/* content: a string, an array of text (and image) parts, or null. Returns
 * a new string, or the parts when there are images (or NULL with *err). */
static json_t *message_content(const json_t *c, size_t i, const sp_engine_info *info,
                               const sp_media_opts *mo, req_images *im, api_error *err) {
    char path[64];
    snprintf(path, sizeof path, "messages[%zu].content", i);
    if (!c || json_is_null(c)) return json_string("");
    if (json_is_string(c)) return json_incref((json_t *)c);
    if (!json_is_array(c)) {
        api_fail(err, 400, path, "%s must be a string or an array of text parts", path);
        return NULL;
    }
    for (size_t k = 0; k < json_array_size(c); k++)
        if (is_image_part(json_array_get(c, k)))
            return content_with_images(c, path, info, mo, im, err);
    size_t cap = 64, len = 0;
    char *buf = malloc(cap);
    buf[0] = 0;
    for (size_t k = 0; k < json_array_size(c); k++) {
        json_t *part = json_array_get(c, k);
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type) ||
            strcmp(json_string_value(type), "text") || !json_is_string(text)) {
            api_fail(err, 400, path,
                     "%s[%zu] must be a text part {\"type\": \"text\", \"text\": string}", path, k);
            free(buf);
            return NULL;
        }
        size_t tl = json_string_length(text);
        if (len + tl + 2 > cap) {
            cap = (len + tl + 2) * 2;
            buf = realloc(buf, cap);
        }
        if (k > 0) buf[len++] = '\n';
        memcpy(buf + len, json_string_value(text), tl);
        len += tl;
        buf[len] = 0;
    }
    json_t *s = json_stringn(buf, len);
    free(buf);
    return s;
}

/* Copies messages with content normalised to strings (or parts, with images). */
static json_t *normalize_messages(const json_t *msgs, const sp_engine_info *info,
                                  const sp_media_opts *mo, req_images *im, api_error *err) {
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        api_fail(err, 400, "messages",
                 msgs ? "messages must be a non-empty array" : "messages is required");
        return NULL;
    }
    json_t *out = json_array();
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i);
        char path[48];
        snprintf(path, sizeof path, "messages[%zu]", i);
        if (!json_is_object(m)) {
            api_fail(err, 400, path, "%s must be an object", path);
            goto fail;
        }
        json_t *role = json_object_get(m, "role");
        if (!json_is_string(role)) {
            snprintf(path, sizeof path, "messages[%zu].role", i);
            api_fail(err, 400, path, "%s must be a string", path);
            goto fail;
        }
        json_t *content = message_content(json_object_get(m, "content"), i, info, mo, im, err);
        if (!content) goto fail;
        json_t *copy = json_copy(m);
        json_object_set_new(copy, "content", content);
        json_array_append_new(out, copy);
        if (chat_message_tool_calls(copy, i, err)) goto fail;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

/* Drops a second BOS when both the template and the tokenizer added one. */
static void dedupe_bos(const sp_engine_info *info, int32_t *ids, size_t *n) {
    int32_t bos = sp_tokenizer_bos_id(info->tokenizer);
    if (bos >= 0 && *n >= 2 && ids[0] == bos && ids[1] == bos) {
        memmove(ids, ids + 1, (*n - 1) * sizeof *ids);
        (*n)--;
    }
}

int render_chat(const json_t *body, const sp_engine_info *info, const sp_media_opts *mo,
                req_images *im, int32_t **ids, size_t *n, api_error *err) {
    json_t *tools = NULL;
    int tool_choice;
    if (chat_tools_check(body, &tools, &tool_choice, err)) return -1;
    json_t *msgs = normalize_messages(json_object_get(body, "messages"), info, mo, im, err);
    if (!msgs) {
        json_decref(tools);
        return -1;
    }
    int agp = 1;
    json_t *agp_v = json_object_get(body, "add_generation_prompt");
    if (json_is_boolean(agp_v)) agp = json_is_true(agp_v);
    json_t *kw = json_object_get(body, "chat_template_kwargs");
    json_t *ctx = sp_chat_template_context(msgs, tools, agp, info->bos_token, info->eos_token,
                                           json_is_object(kw) ? kw : NULL);
    json_decref(msgs);
    json_decref(tools);
    char *text = NULL;
    sp_error e = {0};
    sp_status st = sp_template_render(info->chat_template, ctx, &text, &e);
    json_decref(ctx);
    if (st != SP_OK) {
        api_fail(err, 400, "messages", "chat template: %s", e.msg);
        return -1;
    }
    if (im && im->n > 0) {
        int rc = images_tokenize(text, info, im, ids, n, err);
        free(text);
        if (rc) return -1;
        dedupe_bos(info, *ids, n);
        return images_locate(*ids, *n, info, im, err);
    }
    st = sp_tokenizer_encode(info->tokenizer, text, strlen(text), 1, 1, ids, n, &e);
    free(text);
    if (st != SP_OK) {
        api_fail(err, 400, "messages", "cannot tokenize the rendered chat: %s", e.msg);
        return -1;
    }
    dedupe_bos(info, *ids, n);
    return 0;
}

int parse_gen_request(const json_t *body, int chat, const sp_engine_info *info,
                      const sp_media_opts *mo, gen_req *g, api_error *err) {
    memset(g, 0, sizeof *g);
    g->chat = chat;
    if (!json_is_object(body)) {
        api_fail(err, 400, NULL, "the request body must be a JSON object");
        return -1;
    }
    json_t *model = json_object_get(body, "model");
    if (model && !json_is_string(model) && !json_is_null(model)) {
        api_fail(err, 400, "model", "model must be a string");
        return -1;
    }
    if (parse_stream(body, g, err) || parse_sampling(body, info, g, err) ||
        parse_logprobs(body, g, err))
        return -1;
    if (chat) {
        json_t *tools = NULL;
        if (chat_tools_check(body, &tools, &g->tool_choice, err)) return -1;
        json_decref(tools);
        if (render_chat(body, info, mo, &g->images, &g->prompt, &g->n_prompt, err)) return -1;
    } else if (parse_prompt(body, info, g, err)) {
        return -1;
    }
    if (g->n_prompt == 0) {
        api_fail(err, 400, chat ? "messages" : "prompt", "the prompt has no tokens");
        return -1;
    }
    g->params.prompt = g->prompt;
    g->params.n_prompt = (int)g->n_prompt;
    g->params.images = g->images.items;
    g->params.n_images = g->images.n;
    return 0;
}

void gen_req_free(gen_req *g) {
    req_images_free(&g->images);
    free(g->prompt);
    free(g->forced);
    free(g->constraint);
    sp_grammar_release(g->grammar);
    free(g->bias);
    for (int i = 0; i < g->n_stop; i++) free(g->stop[i]);
    free(g->stop);
    memset(g, 0, sizeof *g);
}
