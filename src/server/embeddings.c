/* POST /v1/embeddings: input as a string, an array of strings, an array of
 * token ids or an array of such arrays; encoding_format float or base64
 * (float32 little-endian, as OpenAI's SDKs decode it); dimensions keeps the
 * first N values and renormalises them. All inputs go to the engine as one
 * request, whose inputs it batches with other requests' (engine/embed.c).
 * Texts are tokenized here, or rendered as a user message by the chat
 * template first when the model's sentence-transformers config says so. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_impl.h"

#define MAX_INPUTS 2048

void embed_req_free(embed_req *q) {
    free(q->ids);
    free(q->len);
    memset(q, 0, sizeof *q);
}

static int push_ids(embed_req *q, const int32_t *ids, size_t n) {
    int32_t *p = realloc(q->ids, (q->n_ids + n + 1) * sizeof *p);
    if (!p) return -1;
    q->ids = p;
    memcpy(q->ids + q->n_ids, ids, n * sizeof *ids);
    q->n_ids += n;
    q->len[q->n_inputs++] = (int)n;
    return 0;
}

/* A text as the model reads it: plain, or one user message through the
 * chat template (sentence-transformers 6's "message" modality). */
static int text_ids(const sp_engine_info *info, const json_t *text, int32_t **ids, size_t *n,
                    sp_error *e) {
    if (info->embed_input == SP_EMBED_TEXT)
        return sp_tokenizer_encode(info->tokenizer, json_string_value(text),
                                   json_string_length(text), 1, 1, ids, n, e) != SP_OK;
    json_t *content = info->embed_input == SP_EMBED_MESSAGE_STRUCTURED
                          ? json_pack("[{s:s, s:O}]", "type", "text", "text", text)
                          : json_incref((json_t *)text);
    json_t *msgs = json_pack("[{s:s, s:o}]", "role", "user", "content", content);
    json_t *ctx = sp_chat_template_context(msgs, NULL, info->embed_gen_prompt, info->bos_token,
                                           info->eos_token, NULL);
    json_decref(msgs);
    char *chat = NULL;
    sp_status st = sp_template_render(info->chat_template, ctx, &chat, e);
    json_decref(ctx);
    /* as transformers' apply_chat_template: the template writes the specials */
    if (st == SP_OK) st = sp_tokenizer_encode(info->tokenizer, chat, strlen(chat), 0, 1, ids, n, e);
    free(chat);
    return st != SP_OK;
}

static int add_text(const sp_engine_info *info, const json_t *text, const char *path, embed_req *q,
                    api_error *err) {
    if (!json_string_length(text)) { /* as OpenAI: an empty string is no input */
        api_fail(err, 400, path, "%s is an empty string", path);
        return -1;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    sp_error e = {0};
    if (text_ids(info, text, &ids, &n, &e)) {
        api_fail(err, 400, path, "cannot tokenize %s: %s", path, e.msg);
        return -1;
    }
    if (!n) {
        free(ids);
        api_fail(err, 400, path, "%s is empty (no tokens)", path);
        return -1;
    }
    int rc = push_ids(q, ids, n);
    free(ids);
    if (rc) api_fail(err, 500, NULL, "out of memory");
    return rc;
}

static int add_id_list(const sp_engine_info *info, const json_t *arr, const char *path,
                       embed_req *q, api_error *err) {
    size_t n = json_array_size(arr);
    if (!n) {
        api_fail(err, 400, path, "%s is empty", path);
        return -1;
    }
    int32_t *ids = malloc(n * sizeof *ids);
    if (!ids) return api_fail(err, 500, NULL, "out of memory"), -1;
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(arr, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 ||
            json_integer_value(t) >= info->vocab) {
            char p[96];
            snprintf(p, sizeof p, "%s[%zu]", path, i);
            api_fail(err, 400, p, "%s must be a token id between 0 and %d", p, info->vocab - 1);
            free(ids);
            return -1;
        }
        ids[i] = (int32_t)json_integer_value(t);
    }
    int rc = push_ids(q, ids, n);
    free(ids);
    if (rc) api_fail(err, 500, NULL, "out of memory");
    return rc;
}

/* input: "text" | ["text", ...] | [id, ...] | [[id, ...], ...] */
static int parse_input(const json_t *in, const sp_engine_info *info, embed_req *q, api_error *err) {
    size_t n = json_is_array(in) ? json_array_size(in) : 1;
    int ids_one = json_is_array(in) && n && json_is_integer(json_array_get(in, 0));
    if (!in || (!json_is_string(in) && !json_is_array(in)) || !n) {
        api_fail(err, 400, "input",
                 in ? "input must be a string, an array of strings or token ids, not empty"
                    : "input is required");
        return -1;
    }
    if (n > MAX_INPUTS && !ids_one) {
        api_fail(err, 400, "input", "input has %zu items; at most %d are allowed", n, MAX_INPUTS);
        return -1;
    }
    q->len = malloc((ids_one || json_is_string(in) ? 1 : n) * sizeof *q->len);
    if (!q->len) return api_fail(err, 500, NULL, "out of memory"), -1;
    if (json_is_string(in)) return add_text(info, in, "input", q, err);
    if (ids_one) return add_id_list(info, in, "input", q, err);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(in, i);
        char p[48];
        snprintf(p, sizeof p, "input[%zu]", i);
        int rc =
            json_is_string(v) ? add_text(info, v, p, q, err)
            : json_is_array(v)
                ? add_id_list(info, v, p, q, err)
                : (api_fail(err, 400, p, "%s must be a string or an array of token ids", p), -1);
        if (rc) return -1;
    }
    return 0;
}

int parse_embed_request(const json_t *body, const sp_engine_info *info, embed_req *q,
                        api_error *err) {
    memset(q, 0, sizeof *q);
    if (!json_is_object(body)) {
        api_fail(err, 400, NULL, "the request body must be a JSON object");
        return -1;
    }
    const json_t *model = json_object_get(body, "model");
    if (model && !json_is_string(model) && !json_is_null(model)) {
        api_fail(err, 400, "model", "model must be a string");
        return -1;
    }
    const json_t *fmt = json_object_get(body, "encoding_format");
    const char *f = json_string_value(fmt);
    if (fmt && !json_is_null(fmt) && (!f || (strcmp(f, "float") && strcmp(f, "base64")))) {
        api_fail(err, 400, "encoding_format", "encoding_format must be \"float\" or \"base64\"");
        return -1;
    }
    q->base64 = f && !strcmp(f, "base64");
    const json_t *dim = json_object_get(body, "dimensions");
    if (dim && !json_is_null(dim)) {
        if (!json_is_integer(dim) || json_integer_value(dim) < 1 ||
            json_integer_value(dim) > info->embed_dim) {
            api_fail(err, 400, "dimensions", "dimensions must be an integer between 1 and %d",
                     info->embed_dim);
            return -1;
        }
        q->dimensions = (int)json_integer_value(dim);
    }
    const json_t *user = json_object_get(body, "user");
    if (user && !json_is_null(user) && !json_is_string(user)) {
        api_fail(err, 400, "user", "user must be a string");
        return -1;
    }
    return parse_input(json_object_get(body, "input"), info, q, err);
}

/* ---- answer ------------------------------------------------------------ */

static json_t *base64_of(const float *v, int n) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t bytes = (size_t)n * 4, out_len = (bytes + 2) / 3 * 4;
    unsigned char *b = malloc(bytes);
    char *o = malloc(out_len + 1);
    if (!b || !o) {
        free(b), free(o);
        return NULL;
    }
    for (int i = 0; i < n; i++) { /* little-endian float32, whatever the host */
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++) b[(size_t)i * 4 + k] = (unsigned char)(u >> (8 * k));
    }
    size_t j = 0;
    for (size_t i = 0; i < bytes; i += 3) {
        uint32_t x = (uint32_t)b[i] << 16 | (i + 1 < bytes ? (uint32_t)b[i + 1] << 8 : 0) |
                     (i + 2 < bytes ? b[i + 2] : 0);
        o[j++] = abc[x >> 18 & 63];
        o[j++] = abc[x >> 12 & 63];
        o[j++] = i + 1 < bytes ? abc[x >> 6 & 63] : '=';
        o[j++] = i + 2 < bytes ? abc[x & 63] : '=';
    }
    o[j] = 0;
    json_t *s = json_stringn(o, j);
    free(b), free(o);
    return s;
}

/* The first `dim` values, renormalised when shortened (dimensions). */
static json_t *vector_json(float *v, int n, int dim, int base64) {
    if (dim < n) {
        double ss = 0;
        for (int i = 0; i < dim; i++) ss += (double)v[i] * v[i];
        double norm = sqrt(ss) > 1e-12 ? sqrt(ss) : 1e-12;
        for (int i = 0; i < dim; i++) v[i] = (float)(v[i] / norm);
    }
    if (base64) return base64_of(v, dim);
    json_t *a = json_array();
    for (int i = 0; i < dim; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

/* Waits for every input's vector; NULL with *err on failure. */
static json_t *collect(sp_request *req, const embed_req *q, int dim, struct MHD_Connection *conn,
                       api_error *err, sp_event *fin) {
    json_t *data = json_array();
    for (int i = 0; i < q->n_inputs; i++) json_array_append_new(data, json_null());
    double next_check = sp_now_ms() + 200;
    for (;;) {
        sp_event ev;
        if (!sp_request_next(req, &ev, 200)) {
            if (sp_now_ms() >= next_check && client_gone(conn)) sp_request_cancel(req);
            next_check = sp_now_ms() + 200;
            continue;
        }
        if (ev.kind == SP_EV_EMBEDDING && ev.index >= 0 && ev.index < q->n_inputs) {
            json_t *vec = vector_json(ev.embedding, ev.n_embedding, dim, q->base64);
            json_array_set_new(data, (size_t)ev.index,
                               json_pack("{s:s, s:i, s:o}", "object", "embedding", "index",
                                         ev.index, "embedding", vec ? vec : json_null()));
        }
        if (ev.kind == SP_EV_FINISH) *fin = ev, fin->text = NULL, ev.text = NULL;
        int done = ev.kind == SP_EV_FINISH;
        sp_event_clear(&ev);
        if (done) break;
    }
    if (fin->reason == SP_FINISH_STOP) return data;
    json_decref(data);
    if (fin->reason == SP_FINISH_CANCELLED)
        api_fail(err, 503, NULL, "the request was cancelled (server shutting down)");
    else
        api_fail(err, 500, NULL, "embedding failed: %s", fin->error);
    return NULL;
}

void route_embeddings(sp_server *s, const json_t *body, reply *r) {
    if (server_not_ready(s, r)) return;
    const sp_engine_info *info = sp_engine_get_info(s->engine);
    api_error err = {0};
    embed_req q;
    if (!info->embed_dim) {
        api_fail(&err, 400, "model",
                 "this model does not serve embeddings: it is a generative model (start the "
                 "server with --embeddings to pool its hidden states)");
        reply_error(r, &err);
        return;
    }
    if (parse_embed_request(body, info, &q, &err)) {
        embed_req_free(&q);
        reply_error(r, &err);
        return;
    }
    sp_request_params p = {
        .prompt = q.ids, .n_prompt = (int)q.n_ids, .input_len = q.len, .n_inputs = q.n_inputs};
    sp_sampling_default(&p.sampling);
    sp_request *req = NULL;
    sp_error e = {0};
    r->prompt_tokens = (int)q.n_ids;
    if (sp_engine_submit(s->engine, &p, &req, &e) != SP_OK) {
        api_submit_error(&e, "input", &err);
        embed_req_free(&q);
        reply_error(r, &err);
        return;
    }
    sp_event fin = {0};
    int dim = q.dimensions ? q.dimensions : info->embed_dim;
    json_t *data = collect(req, &q, dim, r->conn, &err, &fin);
    sp_request_release(req);
    if (!data) {
        reply_error(r, &err);
    } else {
        reply_json(r, 200,
                   json_pack("{s:s, s:o, s:s, s:{s:i, s:i}}", "object", "list", "data", data,
                             "model", s->model_id, "usage", "prompt_tokens", (int)q.n_ids,
                             "total_tokens", (int)q.n_ids));
    }
    embed_req_free(&q);
}
