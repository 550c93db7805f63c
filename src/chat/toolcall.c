/* The output parser's mode machine: content, reasoning, and the hand-over to
 * a call's body reader (toolcall_body.c). Every decision depends only on the
 * bytes seen so far, never on how they were chunked: text that might still
 * become a marker stays in p->pend until it is decided, and trailing
 * whitespace is held in p->ws (dropped when a call or a block boundary
 * follows, so "</think>\n\n<tool_call>" leaves no stray content). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "chat/toolcall_internal.h"

/* ---- small helpers ---- */

void tc_buf_add(tc_buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2 + 32;
        char *q = realloc(b->s, cap);
        if (!q) return; /* out of memory: the text is lost, never a crash */
        b->s = q;
        b->cap = cap;
    }
    if (n) memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

void tc_buf_drop_front(tc_buf *b, size_t n) {
    if (n >= b->n) {
        tc_buf_reset(b);
        return;
    }
    memmove(b->s, b->s + n, b->n - n);
    b->n -= n;
    b->s[b->n] = 0;
}

void tc_buf_reset(tc_buf *b) {
    b->n = 0;
    if (b->s) b->s[0] = 0;
}

void tc_buf_free(tc_buf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

size_t tc_partial_suffix(const char *s, size_t n, const char *m) {
    size_t ml = strlen(m);
    size_t k = n < ml - 1 ? n : ml - 1;
    for (; k > 0; k--)
        if (!memcmp(s + n - k, m, k)) return k;
    return 0;
}

const char *tc_find(const char *s, size_t n, const char *m) {
    size_t ml = strlen(m);
    if (ml == 0 || n < ml) return NULL;
    for (size_t i = 0; i + ml <= n; i++)
        if (s[i] == m[0] && !memcmp(s + i, m, ml)) return s + i;
    return NULL;
}

static int is_ws(char c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* ---- events ---- */

void sp_chat_evs_clear(sp_chat_evs *e) {
    for (size_t i = 0; i < e->n; i++) free(e->v[i].text);
    e->n = 0;
}

void sp_chat_evs_free(sp_chat_evs *e) {
    sp_chat_evs_clear(e);
    free(e->v);
    memset(e, 0, sizeof *e);
}

static sp_chat_ev *ev_new(sp_chat_evs *out, sp_chat_ev_kind k, int index) {
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 8;
        sp_chat_ev *v = realloc(out->v, cap * sizeof *v);
        if (!v) return NULL;
        out->v = v;
        out->cap = cap;
    }
    sp_chat_ev *e = &out->v[out->n++];
    memset(e, 0, sizeof *e);
    e->kind = k;
    e->index = index;
    return e;
}

static void ev_append(sp_chat_ev *e, const char *s, size_t n) {
    char *t = realloc(e->text, e->len + n + 1);
    if (!t) return;
    memcpy(t + e->len, s, n);
    e->text = t;
    e->len += n;
    t[e->len] = 0;
}

/* Text events of one kind (and one call) that follow each other are merged:
 * a feed yields at most one content delta. */
static void emit(sp_chat_evs *out, sp_chat_ev_kind k, int index, const char *s, size_t n) {
    if (!n) return;
    sp_chat_ev *last = out->n ? &out->v[out->n - 1] : NULL;
    if (!last || last->kind != k || last->index != index) last = ev_new(out, k, index);
    if (last) ev_append(last, s, n);
}

void tc_emit_text(sp_chat_parser *p, sp_chat_evs *out, sp_chat_ev_kind k, const char *s, size_t n) {
    emit(out, k, 0, s, n);
    if (k == SP_CHAT_CONTENT && n) p->at_start = 0;
}

void tc_emit_content_raw(sp_chat_parser *p, sp_chat_evs *out, const char *s, size_t n) {
    if (p->ws.n) tc_emit_text(p, out, SP_CHAT_CONTENT, p->ws.s, p->ws.n);
    tc_buf_reset(&p->ws);
    tc_emit_text(p, out, SP_CHAT_CONTENT, s, n);
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void tc_emit_start(sp_chat_parser *p, sp_chat_evs *out, const char *name, size_t n) {
    tc_buf_reset(&p->args);
    p->suppress = p->o.max_calls > 0 && p->n_calls >= p->o.max_calls;
    if (p->suppress) return;
    sp_chat_ev *e = ev_new(out, SP_CHAT_TOOL_START, p->n_calls);
    if (!e) return;
    ev_append(e, name, n);
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    memcpy(e->id, "call_", 5);
    for (int i = 0; i < 24; i++) e->id[5 + i] = abc[splitmix(&p->rng) % 62];
    e->id[29] = 0;
}

void tc_emit_args(sp_chat_parser *p, sp_chat_evs *out, const char *s, size_t n) {
    tc_buf_add(&p->args, s, n);
    if (!p->suppress) emit(out, SP_CHAT_TOOL_ARGS, p->n_calls, s, n);
}

void tc_emit_end(sp_chat_parser *p, sp_chat_evs *out) {
    if (p->suppress) {
        p->suppress = 0;
        return;
    }
    ev_new(out, SP_CHAT_TOOL_END, p->n_calls);
    p->n_calls++;
}

/* Content or reasoning text under the whitespace rules: leading whitespace
 * dropped after a block boundary, trailing whitespace held until more text
 * follows. */
static void emit_ws_text(sp_chat_parser *p, sp_chat_evs *out, sp_chat_ev_kind k, const char *s,
                         size_t n) {
    if (p->strip_lead) {
        while (n && is_ws(*s)) s++, n--;
        if (!n) return;
        p->strip_lead = 0;
    }
    size_t e = n;
    while (e && is_ws(s[e - 1])) e--;
    if (e > 0) {
        if (p->ws.n) tc_emit_text(p, out, k, p->ws.s, p->ws.n);
        tc_buf_reset(&p->ws);
        tc_emit_text(p, out, k, s, e);
    }
    tc_buf_add(&p->ws, s + e, n - e);
}

/* ---- markers ---- */

static const char *think_open(const sp_chat_parser *p) {
    return p->o.think == SP_THINK_TAGS     ? "<think>"
           : p->o.think == SP_THINK_GEMMA4 ? "<|channel>"
                                           : NULL;
}

static const char *think_close(const sp_chat_parser *p) {
    return p->o.think == SP_THINK_TAGS ? "</think>" : "<channel|>";
}

static const char *call_open(const sp_chat_parser *p) {
    switch (p->o.tools) {
    case SP_TOOLS_HERMES:
        return "<tool_call>";
    case SP_TOOLS_GEMMA4:
        return "<|tool_call>";
    case SP_TOOLS_LLAMA3:
        return "<|python_tag|>";
    default:
        return NULL;
    }
}

static const char *call_close(const sp_chat_parser *p) {
    return p->o.tools == SP_TOOLS_HERMES ? "</tool_call>" : "<tool_call|>";
}

/* A bare JSON answer may be a call (llama3, json). */
static int json_start(const sp_chat_parser *p, char c) {
    if (p->o.tools == SP_TOOLS_LLAMA3) return c == '{';
    if (p->o.tools == SP_TOOLS_JSON) return c == '{' || c == '[';
    return 0;
}

/* ---- modes ---- */

static void enter_json(sp_chat_parser *p, const char *open) {
    p->mode = TC_JSON;
    p->open = open;
    tc_buf_reset(&p->raw);
}

/* Content: emits text up to the first marker and switches mode. Returns 1
 * if it made a decision (call again), 0 when it needs more input. */
static int step_content(sp_chat_parser *p, sp_chat_evs *out, int final) {
    const char *s = p->pend.s;
    size_t n = p->pend.n;
    if (!n) return 0;
    if (p->at_start && p->o.tools != SP_TOOLS_NONE) {
        size_t i = 0;
        while (i < n && is_ws(s[i])) i++;
        if (i < n && json_start(p, s[i])) {
            emit_ws_text(p, out, SP_CHAT_CONTENT, s, i);
            tc_buf_drop_front(&p->pend, i);
            enter_json(p, "");
            return 1;
        }
    }
    const char *marks[2] = {think_open(p), call_open(p)};
    const char *best = NULL;
    int which = -1;
    for (int k = 0; k < 2; k++) {
        const char *f = marks[k] ? tc_find(s, n, marks[k]) : NULL;
        if (f && (!best || f < best)) best = f, which = k;
    }
    if (!best) {
        size_t hold = 0;
        for (int k = 0; k < 2 && !final; k++) {
            size_t h = marks[k] ? tc_partial_suffix(s, n, marks[k]) : 0;
            if (h > hold) hold = h;
        }
        emit_ws_text(p, out, SP_CHAT_CONTENT, s, n - hold);
        tc_buf_drop_front(&p->pend, n - hold);
        return 0;
    }
    emit_ws_text(p, out, SP_CHAT_CONTENT, s, (size_t)(best - s));
    tc_buf_drop_front(&p->pend, (size_t)(best - s) + strlen(marks[which]));
    tc_buf_reset(&p->ws); /* whitespace before a block or a call is not content */
    if (which == 0) {
        p->mode = TC_REASON;
        p->strip_lead = 1;
        p->skip_line = p->o.think == SP_THINK_GEMMA4;
    } else if (p->o.tools == SP_TOOLS_LLAMA3) {
        enter_json(p, marks[1]);
    } else {
        p->mode = TC_CALL;
        p->phase = TC_PRE;
        p->open = marks[1];
        p->close = call_close(p);
        tc_buf_reset(&p->raw);
    }
    return 1;
}

/* Reasoning: everything up to the close marker. */
static int step_reason(sp_chat_parser *p, sp_chat_evs *out, int final) {
    const char *s = p->pend.s, *close = think_close(p);
    size_t n = p->pend.n;
    const char *f = tc_find(s, n, close);
    if (p->skip_line) { /* gemma4: "<|channel>thought\n": the name is not reasoning */
        const char *nl = memchr(s, '\n', n);
        if (nl && (!f || nl < f)) {
            tc_buf_drop_front(&p->pend, (size_t)(nl - s) + 1);
            p->skip_line = 0;
            return 1;
        }
        if (!f) return 0;
        tc_buf_drop_front(&p->pend, (size_t)(f - s));
        p->skip_line = 0;
        return 1;
    }
    if (!f) {
        size_t hold = final ? 0 : tc_partial_suffix(s, n, close);
        emit_ws_text(p, out, SP_CHAT_REASONING, s, n - hold);
        tc_buf_drop_front(&p->pend, n - hold);
        return 0;
    }
    emit_ws_text(p, out, SP_CHAT_REASONING, s, (size_t)(f - s));
    tc_buf_drop_front(&p->pend, (size_t)(f - s) + strlen(close));
    tc_buf_reset(&p->ws);
    p->mode = TC_CONTENT;
    p->strip_lead = 1;
    p->at_start = 1;
    return 1;
}

static void run(sp_chat_parser *p, sp_chat_evs *out, int final) {
    for (;;) {
        int more = 0;
        switch (p->mode) {
        case TC_CONTENT:
            more = step_content(p, out, final);
            break;
        case TC_REASON:
            more = step_reason(p, out, final);
            break;
        case TC_CALL: {
            int bad = p->n_malformed;
            if (tc_call_step(p, out, final)) {
                p->mode = TC_CONTENT;
                p->strip_lead = p->n_malformed == bad; /* a degraded call is content */
                more = 1;
            }
            break;
        }
        case TC_JSON: /* decided at the end */
            tc_buf_add(&p->raw, p->pend.s, p->pend.n);
            tc_buf_reset(&p->pend);
            break;
        }
        if (!more) return;
    }
}

/* ---- public ---- */

sp_chat_parser *sp_chat_parser_new(const sp_chat_parser_opts *o) {
    sp_chat_parser *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->o = *o;
    p->rng = o->id_seed;
    p->at_start = 1;
    if (o->start_in_reasoning && o->think != SP_THINK_NONE) {
        p->mode = TC_REASON;
        p->strip_lead = 1;
    }
    return p;
}

void sp_chat_parser_free(sp_chat_parser *p) {
    if (!p) return;
    tc_buf_free(&p->pend);
    tc_buf_free(&p->ws);
    tc_buf_free(&p->raw);
    tc_buf_free(&p->args);
    free(p);
}

void sp_chat_parser_feed(sp_chat_parser *p, const char *text, size_t len, sp_chat_evs *out) {
    tc_buf_add(&p->pend, text, len);
    run(p, out, 0);
}

/* The held JSON answer: calls, or content after all. */
static void finish_json(sp_chat_parser *p, sp_chat_evs *out) {
    if (tc_json_calls(p, out, p->raw.s ? p->raw.s : "", p->raw.n)) {
        tc_buf_reset(&p->ws);
        return;
    }
    if (*p->open) {
        p->n_malformed++;
        tc_warn("text after %s is not a JSON tool call: kept as content", p->open);
    }
    tc_emit_content_raw(p, out, p->open, strlen(p->open));
    emit_ws_text(p, out, SP_CHAT_CONTENT, p->raw.s ? p->raw.s : "", p->raw.n);
}

void sp_chat_parser_finish(sp_chat_parser *p, sp_chat_evs *out) {
    run(p, out, 1);
    if (p->mode == TC_JSON) finish_json(p, out);
    if (p->mode == TC_CALL) tc_call_step(p, out, 1); /* never left open */
    if (p->n_calls == 0 && p->ws.n && p->mode != TC_REASON)
        tc_emit_text(p, out, SP_CHAT_CONTENT, p->ws.s, p->ws.n);
    tc_buf_reset(&p->ws);
    p->mode = TC_CONTENT;
}

int sp_chat_parser_calls(const sp_chat_parser *p) {
    return p->n_calls;
}
int sp_chat_parser_malformed(const sp_chat_parser *p) {
    return p->n_malformed;
}
