/* Fuzz target: model output text -> the incremental tool-call / reasoning
 * parser (src/chat/toolcall.h).
 *
 * Byte 0 picks the options: tool format (b % 5), reasoning format
 * ((b >> 3) % 3), start_in_reasoning (bit 5), max_calls 1 (bit 6). Byte 1
 * picks how the text is cut into pieces for the second run. The rest is the
 * text the "model" generated.
 *
 * Beyond "no crash": the parser's contract (toolcall.h) that feeding the text
 * whole or in pieces of any size gives the same events, concatenated; call
 * counts agree; with no tool and no reasoning format the content is the
 * text itself; max_calls is respected. */
#include "fuzz_common.h"

#include "chat/toolcall.h"

/* Events with adjacent text events of one kind (and call) merged: the form
 * in which two feeding schedules must agree. */
static void fuzz_tc_merge(const sp_chat_evs *in, sp_chat_evs *out) {
    for (size_t i = 0; i < in->n; i++) {
        const sp_chat_ev *e = &in->v[i];
        sp_chat_ev *last = out->n ? &out->v[out->n - 1] : NULL;
        int texty = e->kind == SP_CHAT_CONTENT || e->kind == SP_CHAT_REASONING ||
                    e->kind == SP_CHAT_TOOL_ARGS;
        if (texty && last && last->kind == e->kind && last->index == e->index) {
            last->text = realloc(last->text, last->len + e->len + 1);
            memcpy(last->text + last->len, e->text, e->len);
            last->len += e->len;
            last->text[last->len] = 0;
            continue;
        }
        if (texty && e->len == 0) continue; /* empty pieces carry nothing */
        if (out->n == out->cap) {
            out->cap = out->cap ? 2 * out->cap : 16;
            out->v = realloc(out->v, out->cap * sizeof *out->v);
        }
        sp_chat_ev *c = &out->v[out->n++];
        *c = *e;
        c->text = malloc(e->len + 1);
        if (e->len) memcpy(c->text, e->text, e->len);
        c->text[e->len] = 0;
    }
}

/* Runs the parser over text cut at the given piece size pattern (0: whole);
 * returns the merged events in *out and the call count. */
static int fuzz_tc_run(const sp_chat_parser_opts *o, const char *text, size_t n, unsigned cut,
                       sp_chat_evs *out, int *malformed) {
    sp_chat_parser *p = sp_chat_parser_new(o);
    FUZZ_ASSERT(p != NULL, "parser_new failed");
    if (!p) return 0;
    sp_chat_evs raw = {0};
    size_t off = 0;
    unsigned k = 0;
    while (off < n) {
        size_t piece = cut ? 1 + (k++ * 7 + cut) % (cut % 13 + 1) : n;
        if (piece > n - off) piece = n - off;
        sp_chat_parser_feed(p, text + off, piece, &raw);
        off += piece;
    }
    sp_chat_parser_finish(p, &raw);
    for (size_t i = 0; i < raw.n; i++)
        FUZZ_ASSERT(raw.v[i].kind >= SP_CHAT_CONTENT && raw.v[i].kind <= SP_CHAT_TOOL_END &&
                        (raw.v[i].text || raw.v[i].len == 0),
                    "event %zu: kind %d, text %p len %zu", i, (int)raw.v[i].kind,
                    (void *)raw.v[i].text, raw.v[i].len);
    fuzz_tc_merge(&raw, out);
    sp_chat_evs_free(&raw);
    int calls = sp_chat_parser_calls(p);
    *malformed = sp_chat_parser_malformed(p);
    sp_chat_parser_free(p);
    return calls;
}

static void fuzz_tc_compare(const sp_chat_evs *a, const sp_chat_evs *b, unsigned cut) {
    FUZZ_ASSERT(a->n == b->n, "whole text gave %zu events, pieces (cut %u) gave %zu", a->n, cut,
                b->n);
    for (size_t i = 0; i < a->n && i < b->n; i++) {
        const sp_chat_ev *x = &a->v[i], *y = &b->v[i];
        FUZZ_ASSERT(x->kind == y->kind && x->index == y->index && x->len == y->len &&
                        !memcmp(x->text, y->text, x->len),
                    "event %zu differs (cut %u): kind %d/%d index %d/%d, %zu/%zu bytes, first "
                    "difference at %zu",
                    i, cut, (int)x->kind, (int)y->kind, x->index, y->index, x->len, y->len,
                    fuzz_first_diff(x->text, x->len, y->text, y->len));
        if (x->kind == SP_CHAT_TOOL_START)
            FUZZ_ASSERT(!strcmp(x->id, y->id), "call %d: id %s vs %s", x->index, x->id, y->id);
    }
}

int fuzz_toolcall(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    sp_chat_parser_opts o = {
        .tools = (sp_tool_format)(data[0] % 5),
        .think = (sp_think_format)((data[0] >> 3) % 3),
        .start_in_reasoning = (data[0] >> 5) & 1,
        .max_calls = (data[0] >> 6) & 1,
        .id_seed = 0x5eed,
    };
    unsigned cut = data[1] | 1u;
    const char *text = (const char *)data + 2;
    size_t n = size - 2;
    sp_chat_evs whole = {0}, pieces = {0};
    int mal_w = 0, mal_p = 0;
    int calls_w = fuzz_tc_run(&o, text, n, 0, &whole, &mal_w);
    int calls_p = fuzz_tc_run(&o, text, n, cut, &pieces, &mal_p);
    FUZZ_ASSERT(calls_w == calls_p && mal_w == mal_p, "calls %d/%d, malformed %d/%d", calls_w,
                calls_p, mal_w, mal_p);
    if (o.max_calls) FUZZ_ASSERT(calls_w <= o.max_calls, "%d calls, max %d", calls_w, o.max_calls);
    fuzz_tc_compare(&whole, &pieces, cut);
    if (o.tools == SP_TOOLS_NONE && o.think == SP_THINK_NONE) {
        size_t got = whole.n ? whole.v[0].len : 0;
        FUZZ_ASSERT(whole.n <= 1 && (whole.n == 0 || whole.v[0].kind == SP_CHAT_CONTENT) &&
                        got == n && (n == 0 || !memcmp(whole.v[0].text, text, n)),
                    "no formats: %zu events, %zu of %zu bytes of content", whole.n, got, n);
    }
    sp_chat_evs_free(&whole);
    sp_chat_evs_free(&pieces);
    return 0;
}

#ifndef FUZZ_REGRESSION
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_toolcall(data, size);
}
#endif
