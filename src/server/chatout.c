/* One request's output pipeline: the engine's token events become chat
 * events (content, reasoning, tool call start / arguments / end) for the
 * JSON response (routes.c) and the SSE stream (stream.c), which therefore
 * agree by construction.
 *
 * The text comes from the engine (stop strings applied). Formats whose
 * markers are special tokens (Gemma 4, Llama 3's <|python_tag|>) ask the
 * engine to keep special tokens in it (g->keep_special; EOS never reaches
 * the text: the engine ends the sequence on it without a token event). Only
 * the test hook's forced output is detokenized here. */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "server/server_impl.h"

int chatout_init(chatout *c, const gen_req *g, const sp_engine_info *info) {
    memset(c, 0, sizeof *c);
    c->info = info;
    if (g->out.tools != SP_TOOLS_NONE || g->out.think != SP_THINK_NONE) {
        c->parser = sp_chat_parser_new(&g->out);
        if (!c->parser) return -1;
    }
    if (g->forced) {
        c->detok = sp_detok_new(info->tokenizer, !g->keep_special);
        if (!c->detok) return -1;
    }
    c->want_call =
        (g->tool_choice == TOOL_CHOICE_REQUIRED || g->tool_choice == TOOL_CHOICE_NAMED) &&
        !g->constraint;
    c->forced = g->forced;
    c->n_forced = g->n_forced;
    return 0;
}

static void push_content(chatout *c, const char *t, size_t n) {
    if (!n) return;
    sp_chat_evs *e = &c->evs;
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 4;
        sp_chat_ev *v = realloc(e->v, cap * sizeof *v);
        if (!v) return;
        e->v = v;
        e->cap = cap;
    }
    sp_chat_ev *ev = &e->v[e->n];
    memset(ev, 0, sizeof *ev);
    ev->kind = SP_CHAT_CONTENT;
    ev->text = malloc(n + 1);
    if (!ev->text) return;
    memcpy(ev->text, t, n);
    ev->text[n] = 0;
    ev->len = n;
    e->n++;
}

static void feed(chatout *c, const char *t, size_t n) {
    if (c->parser)
        sp_chat_parser_feed(c->parser, t, n, &c->evs);
    else
        push_content(c, t, n);
}

/* The text this token event adds, from our own detokenizer. */
static void own_text(chatout *c, sp_event *ev) {
    if (c->forced) {
        if (c->next >= c->n_forced) return; /* the engine ran one step past */
        ev->token = c->forced[c->next++];
    }
    char *t = NULL;
    size_t n = 0;
    sp_error err;
    if (sp_detok_push(c->detok, ev->token, &t, &n, &err) == SP_OK) feed(c, t, n);
    free(t);
}

void chatout_event(chatout *c, sp_event *ev) {
    sp_chat_evs_clear(&c->evs);
    if (ev->kind == SP_EV_TOKEN) {
        if (c->detok)
            own_text(c, ev);
        else
            feed(c, ev->text, ev->text_len);
        return;
    }
    if (c->detok) {
        char *t = NULL;
        size_t n = 0;
        sp_error err;
        if (sp_detok_flush(c->detok, &t, &n, &err) == SP_OK) feed(c, t, n);
        free(t);
    } else {
        feed(c, ev->text, ev->text_len);
    }
    if (c->parser) sp_chat_parser_finish(c->parser, &c->evs);
    if (c->want_call && chatout_calls(c) == 0 && ev->reason == SP_FINISH_STOP)
        SP_WARN("tool_choice asked for a tool call and the model made none (not enforced for "
                "this format)");
    if (c->forced && ev->reason == SP_FINISH_LENGTH && c->next >= c->n_forced)
        ev->reason = SP_FINISH_STOP; /* the forced text is the whole answer */
}

int chatout_calls(const chatout *c) {
    return c->parser ? sp_chat_parser_calls(c->parser) : 0;
}

const char *chatout_finish_reason(const chatout *c, sp_finish_reason r) {
    if (r == SP_FINISH_STOP && chatout_calls(c) > 0) return "tool_calls";
    return finish_reason_str(r);
}

void chatout_free(chatout *c) {
    sp_chat_parser_free(c->parser);
    sp_detok_free(c->detok);
    sp_chat_evs_free(&c->evs);
    memset(c, 0, sizeof *c);
}
