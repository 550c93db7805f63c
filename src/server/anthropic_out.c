/* Anthropic Messages answers: the message object (content blocks,
 * stop_reason, stop_sequence, usage) and the stream of message_start,
 * ping, content_block_start / _delta / _stop, message_delta and
 * message_stop. Both build their blocks from blk_feed (blocks.c), so the
 * SDK's stream helper assembles the same message as the plain answer.
 *
 * usage follows Anthropic's meaning: input_tokens are the prompt tokens
 * computed for this request, cache_read_input_tokens those served by the
 * prefix cache; their sum is chat completions' prompt_tokens and what
 * count_tokens returns. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_impl.h"

/* The message being built: content blocks, tool arguments as text until
 * their block closes. g: the request (non-streaming answers; a stream asks
 * sse_req, as the stream owns its request). */
typedef struct amsg {
    json_t *content;
    char *args;
    size_t args_len, args_cap;
    char id[48];
    const gen_req *g;
    const char *model;
} amsg;

static void amsg_free(void *p) {
    amsg *m = p;
    if (!m) return;
    json_decref(m->content);
    free(m->args);
    free(m);
}

static amsg *amsg_new(const gen_req *g, const char *model) {
    amsg *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->content = json_array();
    m->g = g;
    m->model = model;
    random_id(m->id, sizeof m->id, "msg_");
    return m;
}

/* Our tool call ids are call_XXXX; Anthropic's clients expect toolu_XXXX. */
static json_t *tool_id(const char *id) {
    char buf[96];
    snprintf(buf, sizeof buf, "toolu_%s", !strncmp(id, "call_", 5) ? id + 5 : id);
    return json_string(buf);
}

static json_t *block_start(blk_kind kind, const sp_chat_ev *start) {
    if (kind == BLK_TOOL)
        return json_pack("{s:s, s:o, s:o, s:{}}", "type", "tool_use", "id", tool_id(start->id),
                         "name", json_text(start->text, start->len), "input");
    if (kind == BLK_THINKING)
        return json_pack("{s:s, s:s, s:s}", "type", "thinking", "thinking", "", "signature", "");
    return json_pack("{s:s, s:s}", "type", "text", "text", "");
}

static void m_open(void *ctx, int index, blk_kind kind, const sp_chat_ev *start) {
    amsg *m = ctx;
    json_array_append_new(m->content, block_start(kind, start));
    m->args_len = 0;
}

static void m_delta(void *ctx, int index, blk_kind kind, const char *t, size_t n) {
    amsg *m = ctx;
    json_t *b = json_array_get(m->content, (size_t)index);
    if (kind == BLK_TEXT || kind == BLK_THINKING) {
        json_append_text(b, kind == BLK_TEXT ? "text" : "thinking", t, n);
        return;
    }
    if (m->args_len + n + 1 > m->args_cap) {
        size_t cap = (m->args_len + n + 1) * 2;
        char *p = realloc(m->args, cap);
        if (!p) return;
        m->args = p;
        m->args_cap = cap;
    }
    memcpy(m->args + m->args_len, t, n);
    m->args_len += n;
}

static void m_close(void *ctx, int index, blk_kind kind) {
    amsg *m = ctx;
    if (kind != BLK_TOOL || !m->args_len) return;
    json_t *input = json_loadb(m->args, m->args_len, 0, NULL);
    if (json_is_object(input))
        json_object_set_new(json_array_get(m->content, (size_t)index), "input", input);
    else
        json_decref(input); /* the parser only closes well-formed calls; keep {} otherwise */
}

static const char *stop_reason(const sp_event *fin, int calls) {
    if (fin->reason == SP_FINISH_LENGTH) return "max_tokens";
    if (calls > 0) return "tool_use";
    return fin->stop_index >= 0 ? "stop_sequence" : "end_turn";
}

static json_t *stop_sequence(const gen_req *g, const sp_event *fin) {
    if (fin->reason != SP_FINISH_STOP || fin->stop_index < 0 || fin->stop_index >= g->n_stop)
        return json_null();
    return json_string(g->stop[fin->stop_index]);
}

static json_t *usage(const sp_event *fin) {
    return json_pack("{s:i, s:i, s:i, s:i}", "input_tokens",
                     fin->prompt_tokens - fin->cached_tokens, "output_tokens",
                     fin->completion_tokens, "cache_creation_input_tokens", 0,
                     "cache_read_input_tokens", fin->cached_tokens);
}

static json_t *message_json(amsg *m, const sp_event *fin, int calls) {
    return json_pack("{s:s, s:s, s:s, s:s, s:O, s:s, s:o, s:o}", "id", m->id, "type", "message",
                     "role", "assistant", "model", m->model, "content", m->content, "stop_reason",
                     stop_reason(fin, calls), "stop_sequence", stop_sequence(m->g, fin), "usage",
                     usage(fin));
}

/* ---- streaming --------------------------------------------------------- */

static void s_begin(sse *st) {
    amsg *m = sse_ctx(st);
    json_t *msg = json_pack("{s:s, s:s, s:s, s:s, s:[], s:n, s:n, s:{s:i, s:i}}", "id", m->id,
                            "type", "message", "role", "assistant", "model", m->model, "content",
                            "stop_reason", "stop_sequence", "usage", "input_tokens",
                            (int)sse_req(st)->n_prompt, "output_tokens", 0);
    sse_event(st, "message_start",
              json_pack("{s:s, s:o}", "type", "message_start", "message", msg));
    sse_event(st, "ping", json_pack("{s:s}", "type", "ping"));
}

static void s_open(sse *st, int index, blk_kind kind, const sp_chat_ev *start) {
    m_open(sse_ctx(st), index, kind, start);
    sse_event(st, "content_block_start",
              json_pack("{s:s, s:i, s:o}", "type", "content_block_start", "index", index,
                        "content_block", block_start(kind, start)));
}

static void s_delta(sse *st, int index, blk_kind kind, const char *t, size_t n) {
    m_delta(sse_ctx(st), index, kind, t, n);
    json_t *d =
        kind == BLK_TEXT ? json_pack("{s:s, s:o}", "type", "text_delta", "text", json_text(t, n))
        : kind == BLK_THINKING
            ? json_pack("{s:s, s:o}", "type", "thinking_delta", "thinking", json_text(t, n))
            : json_pack("{s:s, s:o}", "type", "input_json_delta", "partial_json", json_text(t, n));
    sse_event(
        st, "content_block_delta",
        json_pack("{s:s, s:i, s:o}", "type", "content_block_delta", "index", index, "delta", d));
}

static void s_close(sse *st, int index, blk_kind kind) {
    m_close(sse_ctx(st), index, kind);
    sse_event(st, "content_block_stop",
              json_pack("{s:s, s:i}", "type", "content_block_stop", "index", index));
}

static void s_finish(sse *st, const sp_event *fin, int calls) {
    sse_event(st, "message_delta",
              json_pack("{s:s, s:{s:s, s:o}, s:o}", "type", "message_delta", "delta", "stop_reason",
                        stop_reason(fin, calls), "stop_sequence", stop_sequence(sse_req(st), fin),
                        "usage", usage(fin)));
    sse_event(st, "message_stop", json_pack("{s:s}", "type", "message_stop"));
}

static void s_fail(sse *st, const api_error *e) {
    sse_event(st, "error", error_json(e, ERR_ANTHROPIC));
}

static void s_keepalive(sse *st) {
    sse_event(st, "ping", json_pack("{s:s}", "type", "ping"));
}

static const sse_fmt anthropic_stream = {s_begin,  s_open, s_delta,     s_close,
                                         s_finish, s_fail, s_keepalive, amsg_free};

/* ---- routes ------------------------------------------------------------ */

static int stream_flag(const json_t *body) {
    return json_is_true(json_object_get(body, "stream"));
}

void route_messages(sp_server *s, const json_t *body, reply *r, uint64_t id) {
    if (server_not_ready(s, r)) return;
    const sp_engine_info *info = sp_engine_get_info(s->engine);
    api_error err = {0};
    json_t *chat = NULL;
    gen_req g;
    choices ch;
    if (anthropic_to_chat(body, 0, &chat, &err) ||
        gen_submit_one(s, chat, info, &g, &ch, r->conn, &err)) {
        json_decref(chat);
        reply_error(r, &err);
        return;
    }
    json_decref(chat);
    r->prompt_tokens = (int)g.n_prompt;
    const char *model = s->model_id;
    if (stream_flag(body)) {
        amsg *m = amsg_new(NULL, model);
        r->status = 200;
        r->streaming = 1;
        r->resp =
            m ? sse_response(s, &ch, &g, id, r->conn, &anthropic_stream, m, "messages") : NULL;
        if (!m) choices_release(&ch), gen_req_free(&g);
        if (!r->resp) {
            r->streaming = 0;
            api_fail(&err, 500, NULL, "out of memory starting the stream");
            reply_error(r, &err);
        }
        return;
    }
    amsg *m = amsg_new(&g, model);
    sp_event fin;
    int calls = 0;
    blk_sink sink = {m, m_open, m_delta, m_close};
    if (!m || gen_collect_blocks(&g, &ch, info, r->conn, &sink, &fin, &calls, &err)) {
        if (!m) api_fail(&err, 500, NULL, "out of memory");
        reply_error(r, &err);
    } else {
        r->completion_tokens = fin.completion_tokens;
        r->cached_tokens = fin.cached_tokens;
        r->ttft_ms = fin.ttft_ms;
        reply_json(r, 200, message_json(m, &fin, calls));
    }
    amsg_free(m);
    choices_release(&ch);
    gen_req_free(&g);
}

void route_count_tokens(sp_server *s, const json_t *body, reply *r) {
    if (server_not_ready(s, r)) return;
    const sp_engine_info *info = sp_engine_get_info(s->engine);
    api_error err = {0};
    json_t *chat = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    req_images im = {0}; /* the translation lets no image through; render_chat takes the list */
    int bad = anthropic_to_chat(body, 1, &chat, &err) ||
              render_chat(chat, info, &s->opts.media, &im, &ids, &n, &err);
    req_images_free(&im);
    json_decref(chat);
    if (bad) {
        reply_error(r, &err);
        return;
    }
    free(ids);
    r->prompt_tokens = (int)n;
    reply_json(r, 200, json_pack("{s:i}", "input_tokens", (int)n));
}
