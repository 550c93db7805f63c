/* Server-sent events for "stream": true. MHD pulls bytes through
 * stream_read (on this connection's own thread, so it may block on the
 * request's events); when the client goes away MHD calls stream_free, which
 * releases the request, and the engine cancels it at its next step.
 * With n > 1 the choices' chunks interleave, each with its choices[0].index;
 * every choice ends with its own finish_reason chunk, then usage (summed)
 * and [DONE] follow once all have finished. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "server/server_impl.h"

/* One choice's output state. */
typedef struct choice_out {
    chatout out; /* content / reasoning / tool calls of each event */
    size_t text_offset;
    sp_event fin;
} choice_out;

typedef struct stream {
    sse_bytes bytes;
    sp_server *s;
    const sp_engine_info *info;
    choices ch;
    choice_out *co; /* ch.n of them */
    int cur;        /* the choice whose event is being sent */
    gen_req g;
    uint64_t id;
    long created;
    char rid[48];
    int started;
    sp_event fin; /* usage over all choices, for the log line */
    double t0;
    struct MHD_Connection *conn;
} stream;

static void put(stream *st, const char *data, size_t n) {
    sse_bytes_put(&st->bytes, data, n);
}

static void put_event(stream *st, json_t *j) {
    sse_bytes_event(&st->bytes, NULL, j);
}

/* One chunk: chat puts text in delta.content, completions in text. */
static json_t *chunk(stream *st, json_t *delta_or_text, json_t *logprobs, const char *finish) {
    json_t *choice = st->g.chat
                         ? json_pack("{s:i, s:o, s:o, s:o}", "index", st->cur, "delta",
                                     delta_or_text, "logprobs", logprobs ? logprobs : json_null(),
                                     "finish_reason", finish ? json_string(finish) : json_null())
                         : json_pack("{s:i, s:o, s:o, s:o}", "index", st->cur, "text",
                                     delta_or_text, "logprobs", logprobs ? logprobs : json_null(),
                                     "finish_reason", finish ? json_string(finish) : json_null());
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:[o]}", "id", st->rid, "object",
                     st->g.chat ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)st->created, "model", st->s->model_id, "system_fingerprint",
                     "spindle", "choices", choice);
}

static json_t *text_payload(stream *st, const char *t, size_t n) {
    json_t *text = json_text(t, n);
    return st->g.chat ? json_pack("{s:o}", "content", text) : text;
}

/* The delta of one chat event (NULL: nothing to send). */
static json_t *event_delta(stream *st, const sp_chat_ev *e) {
    switch (e->kind) {
    case SP_CHAT_CONTENT:
        return text_payload(st, e->text, e->len);
    case SP_CHAT_REASONING:
        return json_pack("{s:o}", "reasoning_content", json_text(e->text, e->len));
    case SP_CHAT_TOOL_START:
        /* OpenAI's first chunk of a call: index, id, type, name, empty arguments */
        return json_pack("{s:[{s:i, s:s, s:s, s:{s:o, s:s}}]}", "tool_calls", "index", e->index,
                         "id", e->id, "type", "function", "function", "name",
                         json_text(e->text, e->len), "arguments", "");
    case SP_CHAT_TOOL_ARGS:
        return json_pack("{s:[{s:i, s:{s:o}}]}", "tool_calls", "index", e->index, "function",
                         "arguments", json_text(e->text, e->len));
    default:
        return NULL;
    }
}

/* One chunk per chat event; lp (may be NULL) rides on the first. Returns
 * the content bytes sent (completions' text_offset). */
static size_t put_events(stream *st, json_t *lp) {
    size_t content = 0;
    const sp_chat_evs *evs = &st->co[st->cur].out.evs;
    for (size_t i = 0; i < evs->n; i++) {
        const sp_chat_ev *e = &evs->v[i];
        json_t *d = event_delta(st, e);
        if (!d) continue;
        if (e->kind == SP_CHAT_CONTENT) content += e->len;
        put_event(st, chunk(st, d, lp, NULL));
        lp = NULL;
    }
    if (lp) put_event(st, chunk(st, text_payload(st, "", 0), lp, NULL));
    return content;
}

static void on_token(stream *st, sp_event *ev) {
    choice_out *co = &st->co[st->cur];
    chatout_event(&co->out, ev);
    json_t *lp = NULL;
    if (st->g.logprobs) {
        if (st->g.chat) {
            lp = json_pack("{s:[o]}", "content",
                           chat_logprob_entry(st->info->tokenizer, ev, st->g.tokens_as_ids));
        } else {
            lp = completion_logprobs_new();
            completion_logprobs_add(lp, st->info->tokenizer, ev, co->text_offset,
                                    st->g.tokens_as_ids);
        }
    }
    co->text_offset += put_events(st, lp); /* nothing when text is held back */
}

/* The request ends: usage (all choices) and [DONE]. */
static void put_end(stream *st) {
    sp_event fin[SP_MAX_CHOICES] = {0};
    for (int i = 0; i < st->ch.n; i++) fin[i] = st->co[i].fin;
    st->fin = usage_sum(fin, st->ch.n);
    if (st->g.include_usage) {
        json_t *u = chunk(st, st->g.chat ? json_object() : json_string(""), NULL, NULL);
        json_array_clear(json_object_get(u, "choices"));
        json_object_set_new(u, "usage", usage_json(&st->fin));
        put_event(st, u);
    }
    put(st, "data: [DONE]\n\n", 14);
    st->bytes.finished = 1;
}

static void on_finish(stream *st, sp_event *ev) {
    choice_out *co = &st->co[st->cur];
    chatout_event(&co->out, ev);
    co->fin = *ev;
    co->fin.text = NULL;
    api_error err;
    if (finish_failed(ev, &err)) {
        put_event(st, json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", err.message, "type",
                                err.type, "param", "code"));
        choices_cancel(&st->ch); /* one failed choice fails the request */
        put(st, "data: [DONE]\n\n", 14);
        st->bytes.finished = 1;
        return;
    }
    put_events(st, NULL);
    json_t *last = st->g.chat ? json_object() : json_string("");
    put_event(st, chunk(st, last, NULL, chatout_finish_reason(&co->out, ev->reason)));
    if (choices_all_done(&st->ch)) put_end(st);
}

/* Produces the next bytes: blocks until the engine has something. */
static void fill(void *ctx) {
    stream *st = ctx;
    if (!st->started) {
        st->started = 1;
        for (st->cur = 0; st->g.chat && st->cur < st->ch.n; st->cur++)
            put_event(st, chunk(st, json_pack("{s:s, s:s}", "role", "assistant", "content", ""),
                                NULL, NULL));
        if (st->bytes.len) return;
    }
    while (st->bytes.len == st->bytes.off && !st->bytes.finished) {
        sp_event ev;
        if (!choices_next(&st->ch, &st->cur, &ev, 250)) {
            if (client_gone(st->conn)) choices_cancel(&st->ch); /* FINISH follows */
            /* an SSE comment keeps a waiting connection from looking idle */
            if (sse_bytes_idle(&st->bytes)) put(st, ": keep-alive\n\n", 14);
            continue;
        }
        if (ev.kind == SP_EV_TOKEN)
            on_token(st, &ev);
        else
            on_finish(st, &ev);
        sp_event_clear(&ev);
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
    stream *st = cls;
    return sse_bytes_read(&st->bytes, out, max, fill, st);
}

static void stream_free(void *cls) {
    stream *st = cls;
    /* releasing an unfinished request cancels it (client went away) */
    choices_release(&st->ch);
    sp_event fin[SP_MAX_CHOICES] = {0};
    for (int i = 0; i < st->ch.n; i++) fin[i] = st->co[i].fin;
    st->fin = usage_sum(fin, st->ch.n);
    SP_INFO("req %llu stream %s -> 200 prompt=%d completion=%d cached=%d ttft=%.1fms "
            "total=%.1fms%s",
            (unsigned long long)st->id, st->g.chat ? "chat" : "completion", (int)st->g.n_prompt,
            st->fin.completion_tokens, st->fin.cached_tokens, st->fin.ttft_ms, sp_now_ms() - st->t0,
            st->bytes.ended ? "" : " (client disconnected)");
    gen_req_free(&st->g);
    for (int i = 0; i < st->ch.n; i++) chatout_free(&st->co[i].out);
    free(st->co);
    sse_bytes_free(&st->bytes);
    free(st);
}

struct MHD_Response *stream_response(sp_server *s, choices *c, gen_req *g, uint64_t id,
                                     struct MHD_Connection *conn) {
    stream *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->info = sp_engine_get_info(s->engine);
    st->co = calloc((size_t)c->n, sizeof *st->co);
    int ok = st->co != NULL;
    for (int i = 0; ok && i < c->n; i++) ok = chatout_init(&st->co[i].out, g, st->info) == 0;
    if (!ok) {
        for (int i = 0; st->co && i < c->n; i++) chatout_free(&st->co[i].out);
        free(st->co);
        free(st);
        return NULL;
    }
    st->conn = conn;
    st->bytes.last_sent = sp_now_ms();
    st->s = s;
    st->ch = *c;
    memset(c, 0, sizeof *c);
    st->g = *g;
    memset(g, 0, sizeof *g);
    st->id = id;
    st->created = (long)time(NULL);
    st->t0 = sp_now_ms();
    snprintf(st->rid, sizeof st->rid, "%s-%llu", st->g.chat ? "chatcmpl" : "cmpl",
             (unsigned long long)id);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free);
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    return resp;
}
