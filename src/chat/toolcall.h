/* Tool-call and reasoning parsers for model output: an incremental state
 * machine that is fed the generated text in pieces of any size and returns
 * events (content text, reasoning text, tool call start / arguments / end).
 * Feeding the whole text at once gives the same events, concatenated, as
 * feeding it one byte at a time: text that could still be the start of a
 * marker is held back until it is decided.
 *
 * Formats (chosen from the chat template's markers, see
 * sp_chat_detect_formats):
 *   hermes  <tool_call>{"name": N, "arguments": {...}}</tool_call>  (Qwen 2.5/3, Hermes)
 *   llama3  {"name": N, "parameters": {...}} as the whole answer, or after
 *           <|python_tag|>; several calls separated by ';'
 *   gemma4  <|tool_call>call:N{key:<|"|>text<|"|>,n:1}<tool_call|>
 *   json    the whole answer is {"name", "arguments"|"parameters"} or an array of them
 * Reasoning: <think>...</think> (Qwen 3, DeepSeek) or Gemma 4's thought channel
 * <|channel>thought\n...<channel|>.
 *
 * Streaming granularity: hermes and gemma4 calls are committed once their
 * name is read; the arguments then stream as they are generated (gemma4's
 * syntax converted to JSON on the fly). llama3 and json calls can only be
 * told apart from a plain JSON answer at the end, so they are buffered and
 * emitted whole when the output ends. A call whose opening cannot be read
 * (not JSON, no name) degrades to plain content (the markup included) and a
 * warning is logged. */
#ifndef SP_CHAT_TOOLCALL_H
#define SP_CHAT_TOOLCALL_H

#include <stddef.h>
#include <stdint.h>

typedef enum sp_tool_format {
    SP_TOOLS_NONE = 0,
    SP_TOOLS_HERMES,
    SP_TOOLS_LLAMA3,
    SP_TOOLS_GEMMA4,
    SP_TOOLS_JSON,
} sp_tool_format;

typedef enum sp_think_format {
    SP_THINK_NONE = 0,
    SP_THINK_TAGS,   /* <think> ... </think> */
    SP_THINK_GEMMA4, /* <|channel>thought\n ... <channel|> */
} sp_think_format;

/* Formats implied by a chat template's source (NULL: none). Models with no
 * recognisable tool markup get the generic json parser. */
void sp_chat_detect_formats(const char *template_source, sp_tool_format *tools,
                            sp_think_format *think);
/* "hermes", "llama3", "gemma4", "json", "none"; -1 if unknown. */
int sp_tool_format_from_name(const char *name, sp_tool_format *out);
const char *sp_tool_format_name(sp_tool_format f);
/* 1 if the rendered prompt ends inside an open reasoning block (e.g. a
 * template that writes "<think>\n" after the generation prompt), so the
 * output starts as reasoning. */
int sp_chat_prompt_opens_reasoning(sp_think_format f, const char *prompt, size_t len);
/* 1 if the format's markers are special tokens (gemma4; llama3's
 * <|python_tag|>): the text fed to the parser must keep special tokens. */
int sp_chat_formats_need_special(sp_tool_format tools, sp_think_format think);

typedef enum sp_chat_ev_kind {
    SP_CHAT_CONTENT = 1,
    SP_CHAT_REASONING,
    SP_CHAT_TOOL_START, /* text: the function name; id: the call id */
    SP_CHAT_TOOL_ARGS,  /* text: the next piece of the arguments (JSON text) */
    SP_CHAT_TOOL_END,
} sp_chat_ev_kind;

typedef struct sp_chat_ev {
    sp_chat_ev_kind kind;
    int index; /* the tool call's index (0, 1, ...) for TOOL_* events */
    char *text;
    size_t len;
    char id[40]; /* TOOL_START: "call_" + 24 characters */
} sp_chat_ev;

/* A growing list of events; the caller owns it. */
typedef struct sp_chat_evs {
    sp_chat_ev *v;
    size_t n, cap;
} sp_chat_evs;

void sp_chat_evs_clear(sp_chat_evs *e); /* frees the texts, keeps the array */
void sp_chat_evs_free(sp_chat_evs *e);

typedef struct sp_chat_parser_opts {
    sp_tool_format tools; /* NONE: tool markup is plain content */
    sp_think_format think;
    int start_in_reasoning; /* see sp_chat_prompt_opens_reasoning */
    int max_calls;          /* 0: any number; 1 for parallel_tool_calls=false */
    uint64_t id_seed;       /* call ids are derived from it (random per request) */
} sp_chat_parser_opts;

typedef struct sp_chat_parser sp_chat_parser;

sp_chat_parser *sp_chat_parser_new(const sp_chat_parser_opts *o); /* NULL: out of memory */
void sp_chat_parser_free(sp_chat_parser *p);
/* Appends the events that text decides to out. */
void sp_chat_parser_feed(sp_chat_parser *p, const char *text, size_t len, sp_chat_evs *out);
/* The output ended: releases everything held back, closes an open call. */
void sp_chat_parser_finish(sp_chat_parser *p, sp_chat_evs *out);
int sp_chat_parser_calls(const sp_chat_parser *p);     /* tool calls emitted so far */
int sp_chat_parser_malformed(const sp_chat_parser *p); /* calls degraded to content */

#endif
