/* Route handlers: chat and text completions (non-streaming here, streaming in
 * stream.c), models, health, tokenize, detokenize; and the JSON pieces the
 * streaming side shares. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/utf8.h"
#include "server/server_impl.h"

char *utf8_sanitize(const char *s, size_t n, size_t *out_len) {
    char *out = malloc(n * 3 + 1), *o = out;
    if (!out) return NULL;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k = sp_utf8_decode(s + i, n - i, &cp);
        if (k > 0 && cp != 0) {
            memcpy(o, s + i, (size_t)k);
            o += k;
            i += (size_t)k;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3); /* U+FFFD */
            o += 3;
            i++;
        }
    }
    *o = 0;
    *out_len = (size_t)(o - out);
    return out;
}

json_t *json_text(const char *s, size_t n) {
    size_t len;
    char *clean = utf8_sanitize(s ? s : "", s ? n : 0, &len);
    json_t *j = clean ? json_stringn_nocheck(clean, len) : json_string("");
    free(clean);
    return j;
}

void json_append_text(json_t *obj, const char *key, const char *t, size_t n) {
    size_t old = json_string_length(json_object_get(obj, key));
    char *buf = malloc(old + n + 1);
    if (!buf) return;
    memcpy(buf, json_string_value(json_object_get(obj, key)), old);
    memcpy(buf + old, t, n);
    json_object_set_new(obj, key, json_text(buf, old + n));
    free(buf);
}

json_t *token_text_json(const sp_tokenizer *tok, int32_t id, int as_id, json_t **bytes_out) {
    char *text = NULL;
    size_t len = 0;
    sp_error e;
    if (as_id) { /* vLLM's return_tokens_as_token_ids */
        char buf[32];
        len = (size_t)snprintf(buf, sizeof buf, "token_id:%d", id);
        text = strdup(buf);
    } else if (sp_tokenizer_decode(tok, &id, 1, 0, &text, &len, &e) != SP_OK) {
        text = NULL;
        len = 0;
    }
    if (bytes_out) {
        *bytes_out = json_array();
        for (size_t i = 0; i < len; i++)
            json_array_append_new(*bytes_out, json_integer((unsigned char)text[i]));
    }
    json_t *j = json_text(text, len);
    free(text);
    return j;
}

json_t *usage_json(const sp_event *fin) {
    return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", fin->prompt_tokens,
                     "completion_tokens", fin->completion_tokens, "total_tokens",
                     fin->prompt_tokens + fin->completion_tokens, "prompt_tokens_details",
                     "cached_tokens", fin->cached_tokens);
}

sp_event usage_sum(const sp_event *fin, int n) {
    sp_event u = {.kind = SP_EV_FINISH};
    u.prompt_tokens = fin[0].prompt_tokens;
    u.cached_tokens = fin[0].cached_tokens;
    u.ttft_ms = fin[0].ttft_ms;
    for (int i = 0; i < n; i++) u.completion_tokens += fin[i].completion_tokens;
    return u;
}

const char *finish_reason_str(sp_finish_reason r) {
    return r == SP_FINISH_LENGTH ? "length" : "stop";
}

/* Maps a submit failure onto its HTTP status. */
void api_submit_error(const sp_error *e, const char *param, api_error *err) {
    switch (e->status) {
    case SP_EBUSY:
        api_fail(err, 503, NULL, "%s", e->msg);
        break;
    case SP_ERANGE:
        api_fail(err, 400, param, "%s", e->msg);
        err->code = "context_length_exceeded";
        break;
    case SP_EINVAL:
    case SP_EUNSUPPORTED:
        api_fail(err, 400, NULL, "%s", e->msg);
        break;
    default:
        api_fail(err, 500, NULL, "%s", e->msg);
        break;
    }
}

int server_not_ready(sp_server *s, reply *r) {
    if (sp_engine_get_info(s->engine)) return 0;
    api_error err;
    sp_error le = {0};
    sp_engine_state st = sp_engine_get_state(s->engine, &le);
    if (st == SP_ENGINE_LOADING)
        api_fail(&err, 503, NULL, "the model is loading");
    else if (st == SP_ENGINE_FAILED)
        api_fail(&err, 503, NULL, "the model failed to load: %s", le.msg);
    else
        api_fail(&err, 503, NULL, "the engine is not running");
    reply_error(r, &err);
    return 1;
}

/* Logprob entries for one token event. */
json_t *chat_logprob_entry(const sp_tokenizer *tok, const sp_event *ev, int as_ids) {
    json_t *bytes;
    json_t *t = token_text_json(tok, ev->token, as_ids, &bytes);
    json_t *top = json_array();
    for (int i = 0; i < ev->n_top; i++) {
        json_t *tb;
        json_t *tt = token_text_json(tok, ev->top[i].id, as_ids, &tb);
        json_array_append_new(top, json_pack("{s:o, s:f, s:o}", "token", tt, "logprob",
                                             (double)ev->top[i].p, "bytes", tb));
    }
    return json_pack("{s:o, s:f, s:o, s:o}", "token", t, "logprob", (double)ev->logprob, "bytes",
                     bytes, "top_logprobs", top);
}

/* Completions-style logprobs, appended to the four parallel arrays. */
void completion_logprobs_add(json_t *lp, const sp_tokenizer *tok, const sp_event *ev, size_t offset,
                             int as_ids) {
    json_array_append_new(json_object_get(lp, "tokens"),
                          token_text_json(tok, ev->token, as_ids, NULL));
    json_array_append_new(json_object_get(lp, "token_logprobs"), json_real(ev->logprob));
    json_t *top = json_object();
    for (int i = 0; i < ev->n_top; i++) {
        json_t *tt = token_text_json(tok, ev->top[i].id, as_ids, NULL);
        json_object_set_new(top, json_string_value(tt), json_real(ev->top[i].p));
        json_decref(tt);
    }
    json_array_append_new(json_object_get(lp, "top_logprobs"), top);
    json_array_append_new(json_object_get(lp, "text_offset"), json_integer((json_int_t)offset));
}

json_t *completion_logprobs_new(void) {
    return json_pack("{s:[], s:[], s:[], s:[]}", "tokens", "token_logprobs", "top_logprobs",
                     "text_offset");
}

typedef struct collected {
    char *text; /* content */
    size_t len, cap;
    char *reasoning;
    size_t rlen, rcap;
    json_t *tool_calls; /* [{id, type, function: {name, arguments}}] */
    json_t *logprobs;   /* chat: array of entries; completions: the four arrays */
    sp_event fin;
    chatout out;
} collected;

static void append_to(char **s, size_t *len, size_t *cap, const char *t, size_t n) {
    if (!n) return;
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *s = realloc(*s, *cap);
    }
    memcpy(*s + *len, t, n);
    *len += n;
    (*s)[*len] = 0;
}

static void append_args(json_t *call, const char *t, size_t n) {
    json_t *fn = json_object_get(call, "function");
    json_t *a = json_object_get(fn, "arguments");
    size_t old = json_string_length(a);
    char *buf = malloc(old + n + 1);
    if (!buf) return;
    memcpy(buf, json_string_value(a), old);
    memcpy(buf + old, t, n);
    json_object_set_new(fn, "arguments", json_text(buf, old + n));
    free(buf);
}

/* Adds the chat events of one engine event to the message being built. */
static void collect_events(collected *c) {
    for (size_t i = 0; i < c->out.evs.n; i++) {
        const sp_chat_ev *e = &c->out.evs.v[i];
        switch (e->kind) {
        case SP_CHAT_CONTENT:
            append_to(&c->text, &c->len, &c->cap, e->text, e->len);
            break;
        case SP_CHAT_REASONING:
            append_to(&c->reasoning, &c->rlen, &c->rcap, e->text, e->len);
            break;
        case SP_CHAT_TOOL_START:
            if (!c->tool_calls) c->tool_calls = json_array();
            json_array_append_new(c->tool_calls,
                                  json_pack("{s:s, s:s, s:{s:o, s:s}}", "id", e->id, "type",
                                            "function", "function", "name",
                                            json_text(e->text, e->len), "arguments", ""));
            break;
        case SP_CHAT_TOOL_ARGS:
            append_args(json_array_get(c->tool_calls, json_array_size(c->tool_calls) - 1), e->text,
                        e->len);
            break;
        case SP_CHAT_TOOL_END:
            break;
        }
    }
}

/* Adds one engine event to its choice. */
static void collect_one(collected *c, const gen_req *g, const sp_tokenizer *tok, sp_event *ev) {
    chatout_event(&c->out, ev);
    if (ev->kind == SP_EV_TOKEN && g->logprobs) {
        if (g->chat)
            json_array_append_new(c->logprobs, chat_logprob_entry(tok, ev, g->tokens_as_ids));
        else
            completion_logprobs_add(c->logprobs, tok, ev, c->len, g->tokens_as_ids);
    }
    collect_events(c);
    if (ev->kind == SP_EV_FINISH) {
        c->fin = *ev;
        c->fin.text = NULL;
    }
}

static int failed(const sp_event *fin) {
    return fin->reason == SP_FINISH_CANCELLED || fin->reason == SP_FINISH_ERROR;
}

/* Collects every choice; returns the index of a choice that failed (the
 * rest are then cancelled), or -1. */
static int collect(choices *ch, const gen_req *g, const sp_tokenizer *tok, collected *c,
                   struct MHD_Connection *conn) {
    if (g->logprobs)
        for (int i = 0; i < ch->n; i++)
            c[i].logprobs = g->chat ? json_array() : completion_logprobs_new();
    double next_check = sp_now_ms() + 200;
    while (!choices_all_done(ch)) {
        sp_event ev;
        int i;
        if (!choices_next_watched(ch, conn, &next_check, &i, &ev)) continue;
        int finish = ev.kind == SP_EV_FINISH;
        collect_one(&c[i], g, tok, &ev);
        sp_event_clear(&ev);
        if (finish && failed(&c[i].fin)) {
            choices_cancel(ch);
            return i;
        }
    }
    return -1;
}

static json_t *choice_json(const gen_req *g, collected *c, int index) {
    /* with tool calls and no text, content is null (as OpenAI sends it) */
    json_t *text = c->tool_calls && !c->len ? json_null() : json_text(c->text, c->len);
    json_t *lp = c->logprobs ? c->logprobs : json_null();
    if (g->chat && c->logprobs) lp = json_pack("{s:o}", "content", c->logprobs);
    c->logprobs = NULL;
    const char *finish = chatout_finish_reason(&c->out, c->fin.reason);
    json_t *choice =
        g->chat ? json_pack("{s:i, s:{s:s, s:o}, s:o, s:s}", "index", index, "message", "role",
                            "assistant", "content", text, "logprobs", lp, "finish_reason", finish)
                : json_pack("{s:i, s:o, s:o, s:s}", "index", index, "text", text, "logprobs", lp,
                            "finish_reason", finish);
    json_t *msg = json_object_get(choice, "message");
    if (msg && c->rlen)
        json_object_set_new(msg, "reasoning_content", json_text(c->reasoning, c->rlen));
    if (msg && c->tool_calls) {
        json_object_set_new(msg, "tool_calls", c->tool_calls);
        c->tool_calls = NULL;
    }
    return choice;
}

static json_t *completion_body(sp_server *s, const gen_req *g, collected *c, int n,
                               const sp_event *usage, uint64_t id) {
    char rid[48];
    snprintf(rid, sizeof rid, "%s-%llu", g->chat ? "chatcmpl" : "cmpl", (unsigned long long)id);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(arr, choice_json(g, &c[i], i));
    return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o, s:s}", "id", rid, "object",
                     g->chat ? "chat.completion" : "text_completion", "created",
                     (json_int_t)time(NULL), "model", s->model_id, "choices", arr, "usage",
                     usage_json(usage), "system_fingerprint", "spindle");
}

static void collected_free(collected *c, int n) {
    for (int i = 0; i < n; i++) {
        free(c[i].text);
        free(c[i].reasoning);
        json_decref(c[i].tool_calls);
        json_decref(c[i].logprobs);
        chatout_free(&c[i].out);
    }
    free(c);
}

/* The non-streaming answer: collects every choice, then one JSON body. */
static void reply_collected(sp_server *s, gen_req *g, choices *ch, reply *r, uint64_t id) {
    const sp_engine_info *info = sp_engine_get_info(s->engine);
    api_error err = {0};
    collected *c = calloc((size_t)ch->n, sizeof *c);
    int ok = c != NULL;
    for (int i = 0; ok && i < ch->n; i++) ok = chatout_init(&c[i].out, g, info) == 0;
    if (!ok) {
        if (c) collected_free(c, ch->n);
        api_fail(&err, 500, NULL, "out of memory");
        reply_error(r, &err);
        return;
    }
    int bad = collect(ch, g, info->tokenizer, c, r->conn);
    sp_event fin[SP_MAX_CHOICES] = {0};
    for (int i = 0; i < ch->n; i++) fin[i] = c[i].fin;
    sp_event usage = usage_sum(fin, ch->n);
    r->completion_tokens = usage.completion_tokens;
    r->cached_tokens = usage.cached_tokens;
    r->ttft_ms = usage.ttft_ms;
    if (bad >= 0) {
        finish_failed(&c[bad].fin, &err); /* collect returns only a choice that failed */
        reply_error(r, &err);
    } else {
        reply_json(r, 200, completion_body(s, g, c, ch->n, &usage, id));
    }
    collected_free(c, ch->n);
}

void route_chat_or_completion(sp_server *s, const json_t *body, int chat, reply *r, uint64_t id) {
    if (server_not_ready(s, r)) return;
    const sp_engine_info *info = sp_engine_get_info(s->engine);
    api_error err = {0};
    if (info->embed_only) {
        api_fail(&err, 400, "model", "this is an embedding model: it serves /v1/embeddings only");
        reply_error(r, &err);
        return;
    }
    gen_req g;
    if (parse_gen_request(body, chat, info, &s->opts.media, &g, &err) ||
        chat_output_setup(s, body, info, &g, &err) ||
        structured_output_setup(body, info, &g, &err)) {
        gen_req_free(&g);
        reply_error(r, &err);
        return;
    }
    r->prompt_tokens = (int)g.n_prompt;
    choices ch;
    sp_error e = {0};
    if (choices_submit(s, &g, r->conn, &ch, &e) != SP_OK) {
        api_submit_error(&e, chat ? "messages" : "prompt", &err);
        gen_req_free(&g);
        reply_error(r, &err);
        return;
    }
    if (g.stream) {
        r->status = 200;
        r->streaming = 1;
        r->resp = stream_response(s, &ch, &g, id, r->conn);
        if (!r->resp) { /* out of memory: g and ch were not taken over */
            choices_release(&ch);
            gen_req_free(&g);
        }
        return;
    }
    reply_collected(s, &g, &ch, r, id);
    choices_release(&ch);
    gen_req_free(&g);
}

void route_models(sp_server *s, reply *r) {
    const sp_engine_info *info = sp_engine_get_info(s->engine);
    json_t *m = json_pack("{s:s, s:s, s:I, s:s}", "id", s->model_id, "object", "model", "created",
                          (json_int_t)s->created, "owned_by", "spindle");
    if (info) json_object_set_new(m, "max_model_len", json_integer(info->ctx_size));
    reply_json(r, 200, json_pack("{s:s, s:[o]}", "object", "list", "data", m));
}

void route_health(sp_server *s, reply *r) {
    sp_error le = {0};
    sp_engine_state st = sp_engine_get_state(s->engine, &le);
    if (st == SP_ENGINE_READY) {
        reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
        return;
    }
    const char *what = st == SP_ENGINE_LOADING  ? "loading"
                       : st == SP_ENGINE_FAILED ? "failed"
                       : st == SP_ENGINE_HUNG   ? "hung"
                                                : "stopped";
    json_t *b = json_pack("{s:s}", "status", what);
    if (st == SP_ENGINE_FAILED || st == SP_ENGINE_HUNG)
        json_object_set_new(b, "error", json_text(le.msg, strlen(le.msg)));
    reply_json(r, 503, b);
    MHD_add_response_header(r->resp, "Retry-After", "1");
}

static int ids_json(const int32_t *ids, size_t n, json_t **out) {
    *out = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(*out, json_integer(ids[i]));
    return 0;
}

void route_tokenize(sp_server *s, const json_t *body, reply *r) {
    if (server_not_ready(s, r)) return;
    const sp_engine_info *info = sp_engine_get_info(s->engine);
    api_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (!json_is_object(body)) {
        api_fail(&err, 400, NULL, "the request body must be a JSON object");
    } else if (json_object_get(body, "messages")) {
        req_images im = {0}; /* images count: /tokenize shows the expanded prompt */
        render_chat(body, info, &s->opts.media, &im, &ids, &n, &err);
        req_images_free(&im);
    } else {
        json_t *c = json_object_get(body, "content");
        const char *key = "content";
        if (!c) c = json_object_get(body, "prompt"), key = "prompt";
        int add_special = 1;
        json_t *as = json_object_get(body, "add_special");
        if (as && !json_is_boolean(as))
            api_fail(&err, 400, "add_special", "add_special must be a boolean");
        else if (!json_is_string(c))
            api_fail(&err, 400, key, "%s must be a string", key);
        if (as) add_special = json_is_true(as);
        sp_error e = {0};
        if (!err.status &&
            sp_tokenizer_encode(info->tokenizer, json_string_value(c), json_string_length(c),
                                add_special, 1, &ids, &n, &e) != SP_OK)
            api_fail(&err, 400, key, "cannot tokenize: %s", e.msg);
    }
    if (err.status) {
        free(ids);
        reply_error(r, &err);
        return;
    }
    json_t *arr;
    ids_json(ids, n, &arr);
    free(ids);
    reply_json(r, 200,
               json_pack("{s:o, s:i, s:i}", "tokens", arr, "count", (int)n, "max_model_len",
                         info->ctx_size));
}

void route_detokenize(sp_server *s, const json_t *body, reply *r) {
    if (server_not_ready(s, r)) return;
    const sp_engine_info *info = sp_engine_get_info(s->engine);
    api_error err = {0};
    json_t *t = json_object_get(body, "tokens");
    if (!json_is_array(t)) {
        api_fail(&err, 400, "tokens", "tokens must be an array of token ids");
        reply_error(r, &err);
        return;
    }
    size_t n = json_array_size(t);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    for (size_t i = 0; i < n && !err.status; i++) {
        json_t *v = json_array_get(t, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= info->vocab) {
            char path[40];
            snprintf(path, sizeof path, "tokens[%zu]", i);
            api_fail(&err, 400, path, "%s must be a token id between 0 and %d", path,
                     info->vocab - 1);
        } else {
            ids[i] = (int32_t)json_integer_value(v);
        }
    }
    char *text = NULL;
    size_t len = 0;
    sp_error e = {0};
    if (!err.status && sp_tokenizer_decode(info->tokenizer, ids, n, 0, &text, &len, &e) != SP_OK)
        api_fail(&err, 400, "tokens", "cannot decode: %s", e.msg);
    free(ids);
    if (err.status) {
        reply_error(r, &err);
        return;
    }
    json_t *j = json_text(text, len);
    free(text);
    reply_json(r, 200, json_pack("{s:O, s:o}", "content", j, "prompt", j));
}
