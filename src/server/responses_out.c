/* OpenAI Responses answers: the response object with its output items
 * (reasoning, message with output_text, function_call) and the stream of
 * response.created, response.in_progress, response.output_item.added,
 * response.content_part.added, response.output_text.delta (or
 * reasoning_text / function_call_arguments deltas), their .done events,
 * response.output_item.done and response.completed (response.incomplete at
 * max_output_tokens, response.failed on an error), each with its
 * sequence_number. The items come from blk_feed (blocks.c), so the stream
 * and the plain answer agree. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_impl.h"

typedef struct rstate {
    json_t *output; /* the items so far */
    json_t *echo;   /* request fields the response repeats */
    char id[48];
    long created;
    const char *model;
    int seq; /* the stream's next sequence_number */
} rstate;

static void rstate_free(void *p) {
    rstate *r = p;
    if (!r) return;
    json_decref(r->output);
    json_decref(r->echo);
    free(r);
}

/* A field of the request, or def (a new reference either way). */
static json_t *field(const json_t *body, const char *key, json_t *def) {
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) return def;
    json_decref(def);
    return json_incref(v);
}

static rstate *rstate_new(const json_t *body, const char *model) {
    rstate *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->output = json_array();
    r->echo =
        json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "instructions",
                  field(body, "instructions", json_null()), "max_output_tokens",
                  field(body, "max_output_tokens", json_null()), "temperature",
                  field(body, "temperature", json_real(1.0)), "top_p",
                  field(body, "top_p", json_real(1.0)), "tools", field(body, "tools", json_array()),
                  "tool_choice", field(body, "tool_choice", json_string("auto")),
                  "parallel_tool_calls", field(body, "parallel_tool_calls", json_true()),
                  "metadata", field(body, "metadata", json_object()));
    random_id(r->id, sizeof r->id, "resp_");
    r->created = (long)time(NULL);
    r->model = model;
    return r;
}

static json_t *usage_of(const sp_event *fin) {
    return json_pack("{s:i, s:{s:i}, s:i, s:{s:i}, s:i}", "input_tokens", fin->prompt_tokens,
                     "input_tokens_details", "cached_tokens", fin->cached_tokens, "output_tokens",
                     fin->completion_tokens, "output_tokens_details", "reasoning_tokens", 0,
                     "total_tokens", fin->prompt_tokens + fin->completion_tokens);
}

/* The response object; fin NULL while in progress. store is false: nothing
 * is kept (docs/api.md). */
static json_t *response_json(rstate *r, const char *status, const sp_event *fin,
                             const api_error *e) {
    json_t *j =
        json_pack("{s:s, s:s, s:I, s:s, s:o, s:o, s:s, s:O, s:n, s:{s:n, s:n}, s:b, s:{s:{s:s}}, "
                  "s:s, s:o, s:n}",
                  "id", r->id, "object", "response", "created_at", (json_int_t)r->created, "status",
                  status, "error",
                  e ? json_pack("{s:s, s:s}", "code",
                                e->status == 503 ? "server_is_overloaded" : "server_error",
                                "message", e->message)
                    : json_null(),
                  "incomplete_details",
                  !strcmp(status, "incomplete") ? json_pack("{s:s}", "reason", "max_output_tokens")
                                                : json_null(),
                  "model", r->model, "output", r->output, "previous_response_id", "reasoning",
                  "effort", "summary", "store", 0, "text", "format", "type", "text", "truncation",
                  "disabled", "usage", fin ? usage_of(fin) : json_null(), "user");
    json_object_update(j, r->echo);
    return j;
}

/* ---- items ------------------------------------------------------------- */

static json_t *item_new(blk_kind kind, const sp_chat_ev *start) {
    char id[48];
    if (kind == BLK_TOOL) {
        random_id(id, sizeof id, "fc_");
        return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s}", "id", id, "type", "function_call",
                         "status", "in_progress", "call_id", start->id, "name",
                         json_text(start->text, start->len), "arguments", "");
    }
    if (kind == BLK_THINKING) {
        random_id(id, sizeof id, "rs_");
        return json_pack("{s:s, s:s, s:[], s:[]}", "id", id, "type", "reasoning", "summary",
                         "content");
    }
    random_id(id, sizeof id, "msg_");
    return json_pack("{s:s, s:s, s:s, s:s, s:[]}", "id", id, "type", "message", "status",
                     "in_progress", "role", "assistant", "content");
}

static json_t *part_new(blk_kind kind) {
    if (kind == BLK_THINKING) return json_pack("{s:s, s:s}", "type", "reasoning_text", "text", "");
    return json_pack("{s:s, s:s, s:[], s:[]}", "type", "output_text", "text", "", "annotations",
                     "logprobs");
}

static void r_open(void *ctx, int index, blk_kind kind, const sp_chat_ev *start) {
    rstate *r = ctx;
    json_t *item = item_new(kind, start);
    if (kind != BLK_TOOL) json_array_append_new(json_object_get(item, "content"), part_new(kind));
    json_array_append_new(r->output, item);
}

static void r_delta(void *ctx, int index, blk_kind kind, const char *t, size_t n) {
    rstate *r = ctx;
    json_t *item = json_array_get(r->output, (size_t)index);
    if (kind == BLK_TOOL)
        json_append_text(item, "arguments", t, n);
    else
        json_append_text(json_array_get(json_object_get(item, "content"), 0), "text", t, n);
}

static void r_close(void *ctx, int index, blk_kind kind) {
    rstate *r = ctx;
    json_t *item = json_array_get(r->output, (size_t)index);
    if (kind != BLK_THINKING) json_object_set_new(item, "status", json_string("completed"));
}

/* At max_output_tokens the last message or call is cut short. */
static const char *settle_status(rstate *r, const sp_event *fin) {
    if (fin->reason != SP_FINISH_LENGTH) return "completed";
    json_t *last = json_array_get(r->output, json_array_size(r->output) - 1);
    if (json_object_get(last, "status"))
        json_object_set_new(last, "status", json_string("incomplete"));
    return "incomplete";
}

/* ---- streaming --------------------------------------------------------- */

static void event(sse *st, const char *type, json_t *data) {
    rstate *r = sse_ctx(st);
    json_object_set_new(data, "type", json_string(type));
    json_object_set_new(data, "sequence_number", json_integer(r->seq++));
    sse_event(st, type, data);
}

static void s_begin(sse *st) {
    rstate *r = sse_ctx(st);
    event(st, "response.created",
          json_pack("{s:o}", "response", response_json(r, "in_progress", NULL, NULL)));
    event(st, "response.in_progress",
          json_pack("{s:o}", "response", response_json(r, "in_progress", NULL, NULL)));
}

static const char *item_id(rstate *r, int index) {
    return json_string_value(json_object_get(json_array_get(r->output, (size_t)index), "id"));
}

static void s_open(sse *st, int index, blk_kind kind, const sp_chat_ev *start) {
    rstate *r = sse_ctx(st);
    r_open(r, index, kind, start);
    json_t *item = json_deep_copy(json_array_get(r->output, (size_t)index));
    if (kind != BLK_TOOL) json_object_set_new(item, "content", json_array());
    event(st, "response.output_item.added",
          json_pack("{s:i, s:o}", "output_index", index, "item", item));
    if (kind != BLK_TOOL)
        event(st, "response.content_part.added",
              json_pack("{s:s, s:i, s:i, s:o}", "item_id", item_id(r, index), "output_index", index,
                        "content_index", 0, "part", part_new(kind)));
}

static void s_delta(sse *st, int index, blk_kind kind, const char *t, size_t n) {
    rstate *r = sse_ctx(st);
    r_delta(r, index, kind, t, n);
    json_t *d = json_pack("{s:s, s:i, s:o}", "item_id", item_id(r, index), "output_index", index,
                          "delta", json_text(t, n));
    if (kind != BLK_TOOL) json_object_set_new(d, "content_index", json_integer(0));
    if (kind == BLK_TEXT) json_object_set_new(d, "logprobs", json_array());
    event(st,
          kind == BLK_TEXT       ? "response.output_text.delta"
          : kind == BLK_THINKING ? "response.reasoning_text.delta"
                                 : "response.function_call_arguments.delta",
          d);
}

static void s_close(sse *st, int index, blk_kind kind) {
    rstate *r = sse_ctx(st);
    r_close(r, index, kind);
    json_t *item = json_array_get(r->output, (size_t)index);
    const char *id = item_id(r, index);
    if (kind == BLK_TOOL) {
        event(st, "response.function_call_arguments.done",
              json_pack("{s:s, s:i, s:O, s:O}", "item_id", id, "output_index", index, "name",
                        json_object_get(item, "name"), "arguments",
                        json_object_get(item, "arguments")));
    } else {
        json_t *part = json_array_get(json_object_get(item, "content"), 0);
        json_t *done = json_pack("{s:s, s:i, s:i, s:O}", "item_id", id, "output_index", index,
                                 "content_index", 0, "text", json_object_get(part, "text"));
        if (kind == BLK_TEXT) json_object_set_new(done, "logprobs", json_array());
        event(st, kind == BLK_TEXT ? "response.output_text.done" : "response.reasoning_text.done",
              done);
        event(st, "response.content_part.done",
              json_pack("{s:s, s:i, s:i, s:O}", "item_id", id, "output_index", index,
                        "content_index", 0, "part", part));
    }
    event(st, "response.output_item.done",
          json_pack("{s:i, s:O}", "output_index", index, "item", item));
}

static void s_finish(sse *st, const sp_event *fin, int calls) {
    rstate *r = sse_ctx(st);
    const char *status = settle_status(r, fin);
    event(st, !strcmp(status, "completed") ? "response.completed" : "response.incomplete",
          json_pack("{s:o}", "response", response_json(r, status, fin, NULL)));
}

static void s_fail(sse *st, const api_error *e) {
    rstate *r = sse_ctx(st);
    event(st, "response.failed",
          json_pack("{s:o}", "response", response_json(r, "failed", NULL, e)));
}

static const sse_fmt responses_stream = {s_begin,  s_open, s_delta, s_close,
                                         s_finish, s_fail, NULL,    rstate_free};

/* ---- route ------------------------------------------------------------- */

static void reply_stream(sp_server *s, const json_t *body, gen_req *g, choices *ch, reply *r,
                         uint64_t id) {
    rstate *st = rstate_new(body, s->model_id);
    r->status = 200;
    r->streaming = 1;
    r->resp = st ? sse_response(s, ch, g, id, r->conn, &responses_stream, st, "responses") : NULL;
    if (!st) choices_release(ch), gen_req_free(g);
    if (!r->resp) {
        api_error err;
        r->streaming = 0;
        api_fail(&err, 500, NULL, "out of memory starting the stream");
        reply_error(r, &err);
    }
}

void route_responses(sp_server *s, const json_t *body, reply *r, uint64_t id) {
    if (server_not_ready(s, r)) return;
    const sp_engine_info *info = sp_engine_get_info(s->engine);
    api_error err = {0};
    json_t *chat = NULL;
    gen_req g;
    choices ch;
    if (responses_to_chat(body, &chat, &err) ||
        gen_submit_one(s, chat, info, &g, &ch, r->conn, &err)) {
        json_decref(chat);
        reply_error(r, &err);
        return;
    }
    json_decref(chat);
    r->prompt_tokens = (int)g.n_prompt;
    if (json_is_true(json_object_get(body, "stream"))) {
        reply_stream(s, body, &g, &ch, r, id);
        return;
    }
    rstate *st = rstate_new(body, s->model_id);
    sp_event fin;
    int calls = 0;
    blk_sink sink = {st, r_open, r_delta, r_close};
    if (!st || gen_collect_blocks(&g, &ch, info, r->conn, &sink, &fin, &calls, &err)) {
        if (!st) api_fail(&err, 500, NULL, "out of memory");
        reply_error(r, &err);
    } else {
        r->completion_tokens = fin.completion_tokens;
        r->cached_tokens = fin.cached_tokens;
        r->ttft_ms = fin.ttft_ms;
        reply_json(r, 200, response_json(st, settle_status(st, &fin), &fin, NULL));
    }
    rstate_free(st);
    choices_release(&ch);
    gen_req_free(&g);
}
