/* Output blocks (server_impl.h): a request's chat events as a sequence of
 * reasoning, text and tool-call blocks, and the one-choice plumbing the
 * Anthropic Messages and Responses routes share: submit a translated chat
 * body, then run it to its end feeding a block sink. */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "server/server_impl.h"

static void open_block(blk_state *st, blk_kind kind, const sp_chat_ev *start,
                       const blk_sink *sink) {
    if (st->cur != BLK_NONE) sink->close(sink->ctx, st->next - 1, st->cur);
    st->cur = kind;
    sink->open(sink->ctx, st->next++, kind, start);
}

/* Text and reasoning continue their block or open one; empty text opens
 * nothing (a block is never empty because of it). */
static void text_event(blk_state *st, blk_kind kind, const sp_chat_ev *e, const blk_sink *sink) {
    if (!e->len) return;
    if (st->cur != kind) open_block(st, kind, e, sink);
    sink->delta(sink->ctx, st->next - 1, kind, e->text, e->len);
}

void blk_feed(blk_state *st, const sp_chat_evs *evs, const blk_sink *sink) {
    for (size_t i = 0; i < evs->n; i++) {
        const sp_chat_ev *e = &evs->v[i];
        switch (e->kind) {
        case SP_CHAT_CONTENT:
            text_event(st, BLK_TEXT, e, sink);
            break;
        case SP_CHAT_REASONING:
            text_event(st, BLK_THINKING, e, sink);
            break;
        case SP_CHAT_TOOL_START:
            open_block(st, BLK_TOOL, e, sink);
            break;
        case SP_CHAT_TOOL_ARGS:
            if (st->cur == BLK_TOOL && e->len)
                sink->delta(sink->ctx, st->next - 1, BLK_TOOL, e->text, e->len);
            break;
        case SP_CHAT_TOOL_END:
            if (st->cur == BLK_TOOL) sink->close(sink->ctx, st->next - 1, BLK_TOOL);
            st->cur = BLK_NONE;
            break;
        }
    }
}

void blk_end(blk_state *st, const blk_sink *sink) {
    if (st->cur != BLK_NONE) sink->close(sink->ctx, st->next - 1, st->cur);
    st->cur = BLK_NONE;
}

void random_id(char *out, size_t cap, const char *prefix) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[24];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        for (size_t i = 0; i < sizeof r; i++) r[i] = (unsigned char)(rand() ^ time(NULL));
    size_t n = (size_t)snprintf(out, cap, "%s", prefix);
    for (size_t i = 0; i < sizeof r && n + 1 < cap; i++) out[n++] = abc[r[i] % (sizeof abc - 1)];
    out[n < cap ? n : cap - 1] = 0;
}

int gen_submit_one(sp_server *s, const json_t *chat_body, const sp_engine_info *info, gen_req *g,
                   choices *ch, struct MHD_Connection *conn, api_error *err) {
    if (info->embed_only) {
        api_fail(err, 400, "model", "this is an embedding model: it serves /v1/embeddings only");
        memset(g, 0, sizeof *g);
        return -1;
    }
    if (parse_gen_request(chat_body, 1, info, &s->opts.media, g, err) ||
        chat_output_setup(s, chat_body, info, g, err) ||
        structured_output_setup(chat_body, info, g, err)) {
        gen_req_free(g);
        return -1;
    }
    g->n = 1;
    sp_error e = {0};
    if (choices_submit(s, g, conn, ch, &e) != SP_OK) {
        api_submit_error(&e, "messages", err);
        gen_req_free(g);
        return -1;
    }
    return 0;
}

int gen_collect_blocks(const gen_req *g, choices *ch, const sp_engine_info *info,
                       struct MHD_Connection *conn, const blk_sink *sink, sp_event *fin, int *calls,
                       api_error *err) {
    chatout out;
    if (chatout_init(&out, g, info) != 0) {
        choices_cancel(ch);
        api_fail(err, 500, NULL, "out of memory");
        return -1;
    }
    blk_state st = {0};
    memset(fin, 0, sizeof *fin);
    double next_check = sp_now_ms() + 200;
    while (!choices_all_done(ch)) {
        sp_event ev;
        int i;
        if (!choices_next_watched(ch, conn, &next_check, &i, &ev)) continue;
        chatout_event(&out, &ev);
        blk_feed(&st, &out.evs, sink);
        if (ev.kind == SP_EV_FINISH) {
            *fin = ev;
            fin->text = NULL;
        }
        sp_event_clear(&ev);
    }
    blk_end(&st, sink);
    *calls = chatout_calls(&out);
    chatout_free(&out);
    return finish_failed(fin, err) ? -1 : 0;
}
