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
    sse_bytes bytes;
    int started;
    sp_event fin;
    int calls;
    double t0;
    struct MHD_Connection *conn;
};

void *sse_ctx(sse *st) {
    return st->ctx;
}

const gen_req *sse_req(sse *st) {
    return &st->g;
}

void sse_event(sse *st, const char *name, json_t *data) {
    sse_bytes_event(&st->bytes, name, data);
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
    st->bytes.finished = 1;
    api_error err;
    if (finish_failed(ev, &err)) {
        st->fmt->fail(st, &err);
        return;
    }
    st->fmt->finish(st, &st->fin, st->calls);
}

/* Produces the next bytes: blocks until the engine has something. */
static void fill(void *ctx) {
    sse *st = ctx;
    if (!st->started) {
        st->started = 1;
        st->fmt->begin(st);
        if (st->bytes.len) return;
    }
    while (st->bytes.len == st->bytes.off && !st->bytes.finished) {
        sp_event ev;
        int which;
        if (!choices_next(&st->ch, &which, &ev, 250)) {
            if (client_gone(st->conn)) choices_cancel(&st->ch); /* FINISH follows */
            if (sse_bytes_idle(&st->bytes)) {
                if (st->fmt->keepalive)
                    st->fmt->keepalive(st);
                else
                    sse_bytes_put(&st->bytes, ": keep-alive\n\n", 14);
            }
            continue;
        }
        on_event(st, &ev);
        sp_event_clear(&ev);
    }
}

static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max) {
    sse *st = cls;
    return sse_bytes_read(&st->bytes, out, max, fill, st);
}

static void sse_free(void *cls) {
    sse *st = cls;
    choices_release(&st->ch); /* an unfinished request is cancelled */
    SP_INFO("req %llu stream %s -> 200 prompt=%d completion=%d cached=%d ttft=%.1fms "
            "total=%.1fms%s",
            (unsigned long long)st->id, st->log_name, (int)st->g.n_prompt,
            st->fin.completion_tokens, st->fin.cached_tokens, st->fin.ttft_ms, sp_now_ms() - st->t0,
            st->bytes.ended ? "" : " (client disconnected)");
    gen_req_free(&st->g);
    chatout_free(&st->out);
    st->fmt->free_ctx(st->ctx);
    sse_bytes_free(&st->bytes);
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
    st->t0 = st->bytes.last_sent = sp_now_ms();
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
