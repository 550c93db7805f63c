/* The bytes of a streamed response waiting for MHD (server_impl.h
 * sse_bytes): what the OpenAI stream (stream.c) and the Anthropic and
 * Responses streams (sse.c) queue, and the pull MHD drives on the
 * connection's own thread. */
#include <stdlib.h>
#include <string.h>

#include "server/server_impl.h"

/* A stream quiet for this long gets a keep-alive (a stream queued behind
 * others may wait long for its first token). */
#define KEEPALIVE_MS 15000.0

void sse_bytes_put(sse_bytes *b, const char *data, size_t n) {
    b->last_sent = sp_now_ms();
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2 + 256;
        char *p = realloc(b->buf, cap);
        if (!p) return;
        b->buf = p;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, data, n);
    b->len += n;
}

void sse_bytes_event(sse_bytes *b, const char *name, json_t *data) {
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (!text) return;
    if (name) {
        sse_bytes_put(b, "event: ", 7);
        sse_bytes_put(b, name, strlen(name));
        sse_bytes_put(b, "\n", 1);
    }
    sse_bytes_put(b, "data: ", 6);
    sse_bytes_put(b, text, strlen(text));
    sse_bytes_put(b, "\n\n", 2);
    free(text);
}

int sse_bytes_idle(const sse_bytes *b) {
    return sp_now_ms() - b->last_sent > KEEPALIVE_MS;
}

ssize_t sse_bytes_read(sse_bytes *b, char *out, size_t max, void (*fill)(void *ctx), void *ctx) {
    if (b->off == b->len) {
        b->off = b->len = 0;
        if (b->finished) {
            b->ended = 1;
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        fill(ctx);
    }
    size_t n = b->len - b->off;
    if (n > max) n = max;
    memcpy(out, b->buf + b->off, n);
    b->off += n;
    return (ssize_t)n;
}

void sse_bytes_free(sse_bytes *b) {
    free(b->buf);
    b->buf = NULL;
}

int finish_failed(const sp_event *fin, api_error *err) {
    if (fin->reason == SP_FINISH_CANCELLED)
        api_fail(err, 503, NULL, "the request was cancelled (server shutting down)");
    else if (fin->reason == SP_FINISH_ERROR)
        api_fail(err, 500, NULL, "generation failed: %s", fin->error);
    else
        return 0;
    return 1;
}
