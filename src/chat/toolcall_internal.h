/* Shared by toolcall.c (the mode machine: content, reasoning, calls),
 * toolcall_body.c (reading one call's body) and toolcall_detect.c. */
#ifndef SP_CHAT_TOOLCALL_INTERNAL_H
#define SP_CHAT_TOOLCALL_INTERNAL_H

#include <stddef.h>

#include "base/log.h"
#include "chat/toolcall.h"

/* Malformed output is a warning in the log, never an error. */
#define tc_warn(...) SP_WARN(__VA_ARGS__)

/* A growable byte string, always NUL-terminated. */
typedef struct tc_buf {
    char *s;
    size_t n, cap;
} tc_buf;

void tc_buf_add(tc_buf *b, const char *s, size_t n);
void tc_buf_drop_front(tc_buf *b, size_t n);
void tc_buf_reset(tc_buf *b);
void tc_buf_free(tc_buf *b);

typedef enum tc_mode {
    TC_CONTENT = 0,
    TC_REASON,
    TC_CALL, /* inside a marked call (hermes, gemma4) */
    TC_JSON, /* a JSON-shaped call (llama3, json): buffered to the end */
} tc_mode;

typedef enum tc_phase {
    TC_PRE = 0, /* reading the call's opening up to the arguments */
    TC_RAW,     /* opening not in the usual shape: buffer up to the close marker */
    TC_ARGS,    /* streaming the arguments */
    TC_POST,    /* arguments done: skipping to the close marker */
} tc_phase;

/* JSON value scanner (hermes arguments): where a value ends. */
typedef struct tc_scan {
    int depth, in_str, esc, started, is_str;
} tc_scan;

/* Gemma 4 argument converter: nesting (1 = object, 0 = array). */
#define TC_MAX_DEPTH 64
typedef struct tc_gemma {
    int depth;
    unsigned char obj[TC_MAX_DEPTH];
    int expect_key, in_key, in_str;
} tc_gemma;

struct sp_chat_parser {
    sp_chat_parser_opts o;
    tc_buf pend; /* input not yet consumed: may be the start of a marker */
    tc_mode mode;
    int strip_lead; /* drop leading whitespace of the next content/reasoning */
    int at_start;   /* no content yet since the start or the last reasoning block */
    int skip_line;  /* gemma4: drop the channel name line after <|channel> */
    tc_buf ws;      /* trailing whitespace held back (dropped before a call) */
    int ws_kind;    /* SP_CHAT_CONTENT or SP_CHAT_REASONING: what ws belongs to */
    /* the call being read */
    tc_phase phase;
    int suppress;      /* a call past max_calls: read and dropped */
    const char *open;  /* its open marker (for degrading to content) */
    const char *close; /* its close marker */
    tc_buf raw;        /* the body read so far (for degrading to content) */
    tc_buf args;       /* the arguments emitted (validated at the end) */
    tc_scan scan;
    tc_gemma gem;
    int n_calls, n_malformed;
    uint64_t rng;
};

/* Event output (toolcall.c). */
void tc_emit_text(sp_chat_parser *p, sp_chat_evs *out, sp_chat_ev_kind k, const char *s, size_t n);
void tc_emit_start(sp_chat_parser *p, sp_chat_evs *out, const char *name, size_t n);
void tc_emit_args(sp_chat_parser *p, sp_chat_evs *out, const char *s, size_t n);
void tc_emit_end(sp_chat_parser *p, sp_chat_evs *out);
/* Plain content that skips the whitespace rules (a degraded call). */
void tc_emit_content_raw(sp_chat_parser *p, sp_chat_evs *out, const char *s, size_t n);

/* Call bodies (toolcall_body.c). Each consumes from p->pend and returns 1
 * when the call is over (back to content), 0 when it needs more input. With
 * final set the input has ended: the call is closed or degraded. */
int tc_call_step(sp_chat_parser *p, sp_chat_evs *out, int final);
/* Parses a buffered llama3/json answer; 0 if it is not a tool call. */
int tc_json_calls(sp_chat_parser *p, sp_chat_evs *out, const char *s, size_t n);

/* Length of the longest suffix of s[0..n) that is a proper prefix of m. */
size_t tc_partial_suffix(const char *s, size_t n, const char *m);
/* First occurrence of m in s[0..n), or NULL. */
const char *tc_find(const char *s, size_t n, const char *m);

#endif
