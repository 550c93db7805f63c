/* A one-choice SSE stream whose events a format writes (server_impl.h
 * sse_fmt): the Anthropic Messages and Responses streams. Like stream.c,
 * MHD pulls bytes through sse_read on the connection's own thread, which
 * may block on the request's events; a client that goes away gets its
 * request cancelled. The output blocks come from blk_feed, exactly as the
 * non-streaming answer builds them. */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "server/server_impl.h"

#define KEEPALIVE_MS 15000.0

struct sse {
    sp_server *s;
    const sp_engine_info *info;
    choices ch;
    gen_req g;
    chatout out;
    blk_state blocks;
    const sse_fmt *fmt;
    void *ctx;
    const char *log_name;
    uint64_t id;
    char *buf;
    size_t len, off, cap;
    int started, finished, ended;
    sp_event fin;
    int calls;
    double t0, last_sent;
    struct MHD_Connection *conn;
};

void *sse_ctx(sse *st) {
    return st->ctx;
}

const gen_req *sse_req(sse *st) {
    return &st->g;
}

static void put(sse *st, const char *data, size_t n) {
    st->last_sent = sp_now_ms();
    if (st->len + n > st->cap) {
        size_t cap = (st->len + n) * 2 + 256;
        char *p = realloc(st->buf, cap);
        if (!p) return;
        st->buf = p;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, data, n);
    st->len += n;
}

void sse_event(sse *st, const char *name, json_t *data) {
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (!text) return;
    if (name) {
        put(st, "event: ", 7);
        put(st, name, strlen(name));
        put(st, "\n", 1);
    }
    put(st, "data: ", 6);
    put(st, text, strlen(text));
    put(st, "\n\n", 2);
    free(text);
}

/* The sink blk_feed drives: the format's callbacks. */
static void sink_open(void *ctx, int index, blk_kind kind, const sp_chat_ev *start) {
    sse *st = ctx;
    st->fmt->open(st, index, kind, start);
}

static void sink_delta(void *ctx, int index, blk_kind kind, const char *text, size_t len) {
    sse *st = ctx;
    st->fmt->delta(st, index, kind, text, len);
}

static void sink_close(void *ctx, int index, blk_kind kind) {
    sse *st = ctx;
    st->fmt->close(st, index, kind);
}

static void on_event(sse *st, sp_event *ev) {
    blk_sink sink = {st, sink_open, sink_delta, sink_close};
    chatout_event(&st->out, ev);
    blk_feed(&st->blocks, &st->out.evs, &sink);
    if (ev->kind != SP_EV_FINISH) return;
    blk_end(&st->blocks, &sink);
    st->fin = *ev;
    st->fin.text = NULL;
    st->calls = chatout_calls(&st->out);
    st->finished = 1;
    if (ev->reason == SP_FINISH_ERROR || ev->reason == SP_FINISH_CANCELLED) {
        api_error err;
        if (ev->reason == SP_FINISH_ERROR)
            api_fail(&err, 500, NULL, "generation failed: %s", ev->error);
        else
            api_fail(&err, 503, NULL, "the request was cancelled (server shutting down)");
        st->fmt->fail(st, &err);
        return;
    }
    st->fmt->finish(st, &st->fin, st->calls);
}

/* Produces the next bytes: blocks until the engine has something. */
static void fill(sse *st) {
    if (!st->started) {
        st->started = 1;
        st->fmt->begin(st);
        if (st->len) return;
    }
    while (st->len == st->off && !st->finished) {
        sp_event ev;
        int which;
        if (!choices_next(&st->ch, &which, &ev, 250)) {
            if (client_gone(st->conn)) choices_cancel(&st->ch); /* FINISH follows */
            if (sp_now_ms() - st->last_sent > KEEPALIVE_MS) {
                if (st->fmt->keepalive)
                    st->fmt->keepalive(st);
                else
                    put(st, ": keep-alive\n\n", 14);
            }
            continue;
        }
        on_event(st, &ev);
        sp_event_clear(&ev);
    }
}

static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max) {
    sse *st = cls;
    if (st->off == st->len) {
        st->off = st->len = 0;
        if (st->finished) {
            st->ended = 1;
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        fill(st);
    }
    size_t n = st->len - st->off;
    if (n > max) n = max;
    memcpy(out, st->buf + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

static void sse_free(void *cls) {
    sse *st = cls;
    choices_release(&st->ch); /* an unfinished request is cancelled */
    SP_INFO("req %llu stream %s -> 200 prompt=%d completion=%d cached=%d ttft=%.1fms "
            "total=%.1fms%s",
            (unsigned long long)st->id, st->log_name, (int)st->g.n_prompt,
            st->fin.completion_tokens, st->fin.cached_tokens, st->fin.ttft_ms, sp_now_ms() - st->t0,
            st->ended ? "" : " (client disconnected)");
    gen_req_free(&st->g);
    chatout_free(&st->out);
    st->fmt->free_ctx(st->ctx);
    free(st->buf);
    free(st);
}

struct MHD_Response *sse_response(sp_server *s, choices *ch, gen_req *g, uint64_t id,
                                  struct MHD_Connection *conn, const sse_fmt *fmt, void *ctx,
                                  const char *log_name) {
    sse *st = calloc(1, sizeof *st);
    if (!st || chatout_init(&st->out, g, sp_engine_get_info(s->engine)) != 0) {
        if (st) chatout_free(&st->out);
        free(st);
        choices_release(ch);
        gen_req_free(g);
        fmt->free_ctx(ctx);
        return NULL;
    }
    st->info = sp_engine_get_info(s->engine);
    st->s = s;
    st->fmt = fmt;
    st->ctx = ctx;
    st->log_name = log_name;
    st->id = id;
    st->conn = conn;
    st->t0 = st->last_sent = sp_now_ms();
    st->ch = *ch;
    memset(ch, 0, sizeof *ch);
    st->g = *g;
    memset(g, 0, sizeof *g);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, st, sse_free);
    if (!resp) {
        sse_free(st);
        return NULL;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    return resp;
}
