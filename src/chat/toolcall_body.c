/* One call's body, after its open marker:
 *   hermes  {"name": "f", "arguments": {...}}   the opening is matched, the
 *           arguments value is streamed as raw JSON text until it closes
 *   gemma4  call:f{key:<|"|>text<|"|>,n:1}      converted to JSON on the fly
 * A hermes body in another shape (keys reordered, escapes in the name) is
 * buffered to the close marker and parsed whole; one that is no call at all
 * becomes content again, markup included, with a warning.
 * Also the whole-answer JSON calls of llama3 / json (tc_json_calls). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "chat/toolcall_internal.h"

static int is_ws(char c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* A longer "name" is not one: stop waiting for its end (and rescanning). */
#define TC_MAX_NAME 256

/* ---- reading an opening: 1 matched, 0 needs more text, -1 no match ---- */

typedef struct cursor {
    const char *s;
    size_t n, i;
} cursor;

static void skip_ws(cursor *c) {
    while (c->i < c->n && is_ws(c->s[c->i])) c->i++;
}

/* Whitespace, then one of the literals (NULL-terminated list). */
static int expect(cursor *c, const char *const *lits) {
    skip_ws(c);
    size_t rest = c->n - c->i;
    int partial = 0;
    for (const char *const *l = lits; *l; l++) {
        size_t ll = strlen(*l);
        size_t k = rest < ll ? rest : ll;
        if (memcmp(c->s + c->i, *l, k)) continue;
        if (k == ll) {
            c->i += ll;
            return 1;
        }
        partial = 1;
    }
    return partial ? 0 : -1;
}

static int expect1(cursor *c, const char *lit) {
    const char *l[2] = {lit, NULL};
    return expect(c, l);
}

/* {"name": "NAME", "arguments": ... with the value's first byte next. */
static int hermes_open(const char *s, size_t n, size_t *name_at, size_t *name_len, size_t *used) {
    cursor c = {s, n, 0};
    static const char *const args_keys[] = {"\"arguments\"", "\"parameters\"", NULL};
    int r;
    if ((r = expect1(&c, "{")) < 1 || (r = expect1(&c, "\"name\"")) < 1 ||
        (r = expect1(&c, ":")) < 1 || (r = expect1(&c, "\"")) < 1)
        return r;
    *name_at = c.i;
    while (c.i < n && s[c.i] != '"') {
        if (s[c.i] == '\\' || (unsigned char)s[c.i] < 0x20) return -1; /* parse it whole */
        if (c.i - *name_at > TC_MAX_NAME) return -1;
        c.i++;
    }
    if (c.i == n) return 0;
    *name_len = c.i - *name_at;
    c.i++;
    if (*name_len == 0) return -1;
    if ((r = expect1(&c, ",")) < 1 || (r = expect(&c, args_keys)) < 1 || (r = expect1(&c, ":")) < 1)
        return r;
    *used = c.i;
    return 1;
}

/* call:NAME{ */
static int gemma_open(const char *s, size_t n, size_t *name_at, size_t *name_len, size_t *used) {
    cursor c = {s, n, 0};
    int r = expect1(&c, "call:");
    if (r < 1) return r;
    *name_at = c.i;
    while (c.i < n && s[c.i] != '{') {
        char ch = s[c.i];
        if (is_ws(ch) || ch == '<' || ch == '}' || ch == '"') return -1;
        if (c.i - *name_at > TC_MAX_NAME) return -1;
        c.i++;
    }
    if (c.i == n) return 0;
    *name_len = c.i - *name_at;
    if (*name_len == 0) return -1;
    *used = c.i + 1;
    return 1;
}

/* ---- degrading and ending ---- */

static void degrade(sp_chat_parser *p, sp_chat_evs *out, const char *why) {
    p->n_malformed++;
    tc_warn("malformed tool call (%s): kept as content", why);
    tc_emit_content_raw(p, out, p->open, strlen(p->open));
    tc_emit_content_raw(p, out, p->raw.s ? p->raw.s : "", p->raw.n);
    tc_buf_reset(&p->raw);
}

static void end_call(sp_chat_parser *p, sp_chat_evs *out, const char *note) {
    if (note) tc_warn("tool call %d: %s", p->n_calls, note);
    json_error_t je;
    json_t *v = json_loadb(p->args.s ? p->args.s : "", p->args.n, JSON_DECODE_ANY, &je);
    if (!v) tc_warn("tool call %d: arguments are not valid JSON (%s)", p->n_calls, je.text);
    json_decref(v);
    tc_emit_end(p, out);
    tc_buf_reset(&p->raw);
}

/* ---- phases: -1 needs input, 0 phase changed, 1 call over ---- */

static int phase_pre(sp_chat_parser *p, sp_chat_evs *out, int final) {
    const char *s = p->pend.s;
    size_t n = p->pend.n, at = 0, len = 0, used = 0;
    int gemma = p->o.tools == SP_TOOLS_GEMMA4;
    int r = gemma ? gemma_open(s, n, &at, &len, &used) : hermes_open(s, n, &at, &len, &used);
    if (r < 0) {
        p->phase = TC_RAW;
        return 0;
    }
    if (r == 0) {
        if (!final) return -1;
        tc_buf_add(&p->raw, s, n);
        tc_buf_reset(&p->pend);
        degrade(p, out, "the output ended inside the call's opening");
        return 1;
    }
    tc_emit_start(p, out, s + at, len);
    tc_buf_drop_front(&p->pend, used);
    tc_buf_reset(&p->raw);
    memset(&p->scan, 0, sizeof p->scan);
    memset(&p->gem, 0, sizeof p->gem);
    if (gemma) {
        p->gem.depth = 1;
        p->gem.obj[0] = 1;
        p->gem.expect_key = 1;
        tc_emit_args(p, out, "{", 1);
    }
    p->phase = TC_ARGS;
    return 0;
}

/* Moves the pending text before the close marker into p->raw and drops
 * the marker; without a marker, all of it when final, else all but a tail
 * that may be the marker's start. Returns 1 if the marker was found. */
static int take_to_close(sp_chat_parser *p, int final) {
    const char *s = p->pend.s;
    size_t n = p->pend.n;
    const char *f = tc_find(s, n, p->close);
    size_t take = f ? (size_t)(f - s) : final ? n : n - tc_partial_suffix(s, n, p->close);
    tc_buf_add(&p->raw, s, take);
    tc_buf_drop_front(&p->pend, take + (f ? strlen(p->close) : 0));
    return f != NULL;
}

/* An opening we could not stream: buffer to the close marker, parse whole. */
static int phase_raw(sp_chat_parser *p, sp_chat_evs *out, int final) {
    int closed = take_to_close(p, final);
    if (!closed && !final) return -1;
    if (p->o.tools == SP_TOOLS_HERMES && tc_json_calls(p, out, p->raw.s, p->raw.n) > 0) {
        tc_buf_reset(&p->raw);
        return 1;
    }
    if (closed) {
        tc_buf_add(&p->raw, p->close, strlen(p->close));
        degrade(p, out, "not a {\"name\", \"arguments\"} object");
    } else {
        degrade(p, out, "the output ended inside the call");
    }
    return 1;
}

/* The close marker at s (outside a string) ends a call whose arguments are
 * unfinished: 1 found, 0 may be (hold), -1 not. */
static int close_here(const sp_chat_parser *p, const char *s, size_t n, int final) {
    size_t cl = strlen(p->close);
    size_t k = n < cl ? n : cl;
    if (memcmp(s, p->close, k)) return -1;
    if (k == cl) return 1;
    return final ? -1 : 0;
}

/* hermes: streams the arguments value until it closes. */
static int phase_args_json(sp_chat_parser *p, sp_chat_evs *out, int final) {
    const char *s = p->pend.s;
    size_t n = p->pend.n, i = 0, from = 0;
    tc_scan *sc = &p->scan;
    int done = 0, early = 0;
    for (; i < n && !done; i++) {
        char c = s[i];
        if (!sc->started) {
            if (is_ws(c)) {
                from = i + 1;
                continue;
            }
            sc->started = 1;
            sc->is_str = c == '"';
        }
        if (sc->in_str) {
            if (sc->esc)
                sc->esc = 0;
            else if (c == '\\')
                sc->esc = 1;
            else if (c == '"') {
                sc->in_str = 0;
                if (sc->depth == 0) done = 1;
            }
            continue;
        }
        if (c == '<') {
            int r = close_here(p, s + i, n - i, final);
            if (r >= 0) {
                early = r;
                break;
            }
        }
        if (c == '"') {
            sc->in_str = 1;
        } else if (c == '{' || c == '[') {
            sc->depth++;
        } else if (c == '}' || c == ']' || c == ',') {
            if (sc->depth == 0) { /* a bare scalar ended */
                done = 1;
                break;
            }
            if (c != ',' && --sc->depth == 0) done = 1;
        }
    }
    if (sc->is_str) /* arguments given as a JSON string: decoded at its end */
        tc_buf_add(&p->raw, s + from, i - from);
    else
        tc_emit_args(p, out, s + from, i - from);
    tc_buf_drop_front(&p->pend, i);
    if (early) {
        tc_buf_drop_front(&p->pend, strlen(p->close));
        end_call(p, out, "closed before its arguments were complete");
        return 1;
    }
    if (!done && !final) return -1;
    if (sc->is_str) {
        json_t *v = json_loadb(p->raw.s ? p->raw.s : "", p->raw.n, JSON_DECODE_ANY, NULL);
        if (json_is_string(v)) tc_emit_args(p, out, json_string_value(v), json_string_length(v));
        json_decref(v);
        tc_buf_reset(&p->raw);
    }
    if (!done) {
        end_call(p, out, "the output ended inside the arguments");
        return 1;
    }
    p->phase = TC_POST;
    return 0;
}

/* Appends c to a JSON string body, escaped. */
static void json_escape_byte(tc_buf *o, unsigned char c) {
    char tmp[8];
    switch (c) {
    case '"':
        tc_buf_add(o, "\\\"", 2);
        break;
    case '\\':
        tc_buf_add(o, "\\\\", 2);
        break;
    case '\n':
        tc_buf_add(o, "\\n", 2);
        break;
    case '\r':
        tc_buf_add(o, "\\r", 2);
        break;
    case '\t':
        tc_buf_add(o, "\\t", 2);
        break;
    default:
        if (c < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            tc_buf_add(o, tmp, 6);
        } else {
            tc_buf_add(o, (const char *)&c, 1);
        }
    }
}

static const char GEMMA_QUOTE[] = "<|\"|>";

/* 1 full match of m at s, 0 partial (hold unless final), -1 no. */
static int match_at(const char *s, size_t n, const char *m, int final) {
    size_t ml = strlen(m), k = n < ml ? n : ml;
    if (memcmp(s, m, k)) return -1;
    return k == ml ? 1 : final ? -1 : 0;
}

static void gemma_push(tc_gemma *g, int obj) {
    g->obj[g->depth < TC_MAX_DEPTH ? g->depth : TC_MAX_DEPTH - 1] = (unsigned char)obj;
    g->depth++;
}

static int gemma_in_obj(const tc_gemma *g) {
    int d = g->depth - 1;
    return g->obj[d < TC_MAX_DEPTH ? d : TC_MAX_DEPTH - 1];
}

/* gemma4: key:<|"|>text<|"|>,n:1 ... } converted to {"key":"text","n":1}. */
static int phase_args_gemma(sp_chat_parser *p, sp_chat_evs *out, int final) {
    const char *s = p->pend.s;
    size_t n = p->pend.n, i = 0;
    tc_gemma *g = &p->gem;
    tc_buf o = {0};
    int done = 0, early = 0, hold = 0;
    while (i < n && !done && !early && !hold) {
        char c = s[i];
        if (c == '<') {
            int q = match_at(s + i, n - i, GEMMA_QUOTE, final);
            int cl = g->in_str ? -1 : close_here(p, s + i, n - i, final);
            if (q == 1) {
                tc_buf_add(&o, "\"", 1);
                if (!g->in_str && g->expect_key)
                    g->in_key = 1, g->expect_key = 0;
                else if (g->in_str && g->in_key)
                    g->in_key = 0;
                g->in_str = !g->in_str;
                i += sizeof GEMMA_QUOTE - 1;
                continue;
            }
            if (cl == 1) {
                early = 1;
                break;
            }
            if (q == 0 || cl == 0) {
                hold = 1;
                break;
            }
        }
        i++;
        if (g->in_str) {
            json_escape_byte(&o, (unsigned char)c);
        } else if (g->in_key && c != ':') { /* a bare key */
            json_escape_byte(&o, (unsigned char)c);
        } else if (g->in_key) {
            tc_buf_add(&o, "\":", 2);
            g->in_key = 0;
        } else if (is_ws(c)) {
            continue;
        } else if (g->expect_key && c != '}') {
            tc_buf_add(&o, "\"", 1);
            json_escape_byte(&o, (unsigned char)c);
            g->in_key = 1;
            g->expect_key = 0;
        } else if (c == '{' || c == '[') {
            tc_buf_add(&o, &c, 1);
            gemma_push(g, c == '{');
            g->expect_key = c == '{';
        } else if (c == '}' || c == ']') {
            tc_buf_add(&o, &c, 1);
            g->expect_key = 0;
            if (--g->depth == 0) done = 1;
        } else if (c == ',') {
            tc_buf_add(&o, ",", 1);
            g->expect_key = gemma_in_obj(g);
        } else {
            tc_buf_add(&o, &c, 1); /* ':', numbers, true, false, null */
        }
    }
    tc_emit_args(p, out, o.s ? o.s : "", o.n);
    tc_buf_free(&o);
    tc_buf_drop_front(&p->pend, i);
    if (early) {
        tc_buf_drop_front(&p->pend, strlen(p->close));
        end_call(p, out, "closed before its arguments were complete");
        return 1;
    }
    if (done) {
        p->phase = TC_POST;
        return 0;
    }
    if (!final) return -1;
    end_call(p, out, "the output ended inside the arguments");
    return 1;
}

/* After the arguments: skip to the close marker (hermes: the object's '}'). */
static int phase_post(sp_chat_parser *p, sp_chat_evs *out, int final) {
    if (!take_to_close(p, final) && !final) return -1;
    /* what was between: whitespace and (hermes) the closing brace */
    size_t k = 0, braces = 0, other = 0;
    for (; k < p->raw.n; k++) {
        if (p->raw.s[k] == '}')
            braces++;
        else if (!is_ws(p->raw.s[k]))
            other++;
    }
    size_t want = p->o.tools == SP_TOOLS_HERMES ? 1 : 0;
    end_call(p, out, other || braces > want ? "text after the arguments ignored" : NULL);
    return 1;
}

int tc_call_step(sp_chat_parser *p, sp_chat_evs *out, int final) {
    for (;;) {
        int r;
        switch (p->phase) {
        case TC_PRE:
            r = phase_pre(p, out, final);
            break;
        case TC_RAW:
            r = phase_raw(p, out, final);
            break;
        case TC_ARGS:
            r = p->o.tools == SP_TOOLS_GEMMA4 ? phase_args_gemma(p, out, final)
                                              : phase_args_json(p, out, final);
            break;
        default:
            r = phase_post(p, out, final);
            break;
        }
        if (r < 0) return 0;
        if (r > 0) {
            p->phase = TC_PRE;
            return 1;
        }
    }
}

/* ---- whole-answer JSON calls ---- */

/* name and arguments of {"name": N, "arguments"|"parameters": A}; NULL if not a call. */
static const char *call_parts(json_t *o, json_t **args) {
    if (!json_is_object(o)) return NULL;
    json_t *name = json_object_get(o, "name");
    json_t *fn = json_object_get(o, "function");
    if (!json_is_string(name) && json_is_object(fn)) { /* {"function": {"name", "arguments"}} */
        o = fn;
        name = json_object_get(o, "name");
    }
    if (!json_is_string(name) || !json_string_length(name)) return NULL;
    *args = json_object_get(o, "arguments");
    if (!*args) *args = json_object_get(o, "parameters");
    if (*args && !json_is_object(*args) && !json_is_string(*args)) return NULL;
    return json_string_value(name);
}

static void emit_call(sp_chat_parser *p, sp_chat_evs *out, const char *name, json_t *args) {
    tc_emit_start(p, out, name, strlen(name));
    if (json_is_string(args)) {
        tc_emit_args(p, out, json_string_value(args), json_string_length(args));
    } else {
        char *t = args ? json_dumps(args, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
        tc_emit_args(p, out, t ? t : "{}", t ? strlen(t) : 2);
        free(t);
    }
    tc_emit_end(p, out);
}

int tc_json_calls(sp_chat_parser *p, sp_chat_evs *out, const char *s, size_t n) {
    json_t *calls = json_array();
    size_t pos = 0;
    int ok = 1;
    while (ok) {
        while (pos < n && (is_ws(s[pos]) || s[pos] == ';')) pos++;
        if (pos == n) break;
        json_error_t je;
        json_t *v = json_loadb(s + pos, n - pos, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &je);
        if (!v) {
            ok = 0;
            break;
        }
        pos += je.position;
        if (json_is_array(v))
            json_array_extend(calls, v);
        else
            json_array_append(calls, v);
        json_decref(v);
    }
    size_t i;
    json_t *c, *args;
    json_array_foreach(calls, i, c) {
        if (!call_parts(c, &args)) ok = 0;
    }
    int count = ok ? (int)json_array_size(calls) : 0;
    json_array_foreach(calls, i, c) {
        if (!count) break;
        const char *name = call_parts(c, &args);
        emit_call(p, out, name, args);
    }
    json_decref(calls);
    return count;
}
