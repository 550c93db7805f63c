/* Server internals shared by server.c (HTTP plumbing), params.c (request
 * validation), routes.c (handlers), stream.c (SSE) and metrics.c. */
#ifndef SP_SERVER_IMPL_H
#define SP_SERVER_IMPL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "base/clock.h"
#include "chat/toolcall.h"
#include "engine/engine.h"
#include "server/server.h"

/* The connection guard (guard.c): a request must arrive within the read
 * timeout, however slowly its bytes drip in. */
typedef struct conn_guard conn_guard;
conn_guard *conn_guard_start(int timeout_s);
void conn_guard_stop(conn_guard *g);
/* MHD_OPTION_NOTIFY_CONNECTION callback; cls is the guard. */
void conn_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode code);
/* received: 1 once the request is all in, 0 when waiting for the next one. */
void conn_guard_mark(conn_guard *g, struct MHD_Connection *c, int received);
/* Connections shut down for being too slow (for /metrics). */
uint64_t conn_guard_closed(conn_guard *g);

struct sp_server {
    sp_server_opts opts;
    conn_guard *guard;
    char *host, *api_key, *cors_origin, *model_id, *media_dir;
    sp_engine *engine;
    struct MHD_Daemon *daemon;
    int port;
    atomic_uint_fast64_t next_id;
    atomic_int open_requests;            /* headers read, response not yet fully sent */
    atomic_uint_fast64_t http_status[6]; /* by hundreds: 1xx..5xx; [0] other */
    long created;                        /* unix time for /v1/models */
    /* output formats (tools.c): from --tool-parser or probed from the chat
     * template on first use, under a lock */
    int chat_formats_known;
    sp_tool_format tool_format;
    sp_think_format think_format;
};

/* An OpenAI-shaped error: {"error": {"message", "type", "param", "code"}}. */
typedef struct api_error {
    int status;
    const char *type; /* invalid_request_error, authentication_error, ... */
    char param[160];  /* JSON path, "" for null */
    const char *code; /* NULL for null */
    char message[1200];
} api_error;

void api_fail(api_error *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Error bodies: OpenAI's {"error": {message, type, param, code}} or, on
 * the Anthropic routes, {"type": "error", "error": {type, message}}. */
typedef enum err_style { ERR_OPENAI = 0, ERR_ANTHROPIC } err_style;
json_t *error_json(const api_error *e, err_style style);

/* What a handler answers: a response (with its status) ready to queue. */
typedef struct reply {
    err_style style; /* of reply_error */
    int status;
    struct MHD_Response *resp;
    /* for the request log line */
    int prompt_tokens, completion_tokens, cached_tokens;
    double ttft_ms;
    int streaming; /* the stream logs its own line when it ends */
    struct MHD_Connection *conn;
} reply;

/* 1 if the client closed its side of the connection (checked while waiting
 * for tokens, so an abandoned request is cancelled). */
int client_gone(struct MHD_Connection *c);

void reply_json(reply *r, int status, json_t *body); /* steals body */
void reply_text(reply *r, int status, const char *content_type, const char *text);
void reply_error(reply *r, const api_error *e);

/* The images of a chat request (images.c): preprocessed pixels, and once
 * the prompt is tokenized, where each one's soft tokens sit. */
typedef struct req_images {
    int n, cap;
    sp_pixels *px;           /* owned */
    sp_request_image *items; /* [n], for sp_request_params.images */
} req_images;

void req_images_free(req_images *im);
/* 1 for {"type": "image_url"} and {"type": "image"} content parts. */
int is_image_part(const json_t *part);
/* Fetches, decodes and preprocesses one image part (path: its JSON path);
 * 0, or -1 with a 400 naming the part. */
int image_part_load(const json_t *part, const char *path, const sp_engine_info *info,
                    const sp_media_opts *mo, req_images *im, api_error *err);
/* Expands the template's image placeholders in text and tokenizes. */
int images_tokenize(const char *text, const sp_engine_info *info, req_images *im, int32_t **ids,
                    size_t *n, api_error *err);
/* Finds each image's run of soft tokens in the final ids (fills items). */
int images_locate(const int32_t *ids, size_t n, const sp_engine_info *info, req_images *im,
                  api_error *err);
/* The bytes behind an image URL (image_fetch.c); 0 or -1 with a 400. */
int image_fetch(const char *url, const sp_media_opts *mo, uint8_t **data, size_t *n,
                const char *path, api_error *err);
void image_fetch_init(void);

/* A validated generation request (chat or completion). */
#define SP_MAX_CHOICES 16

typedef struct gen_req {
    int chat, stream, include_usage;
    int n;           /* choices: 1..SP_MAX_CHOICES */
    int32_t *prompt; /* owned */
    size_t n_prompt;
    sp_request_params params;
    sp_logit_bias *bias; /* owned, params.sampling.bias */
    char **stop;         /* owned, params.stop */
    int n_stop;
    int logprobs;      /* report logprobs */
    int top_logprobs;  /* how many alternatives */
    int tokens_as_ids; /* logprobs name tokens "token_id:N" (vLLM extension) */
    /* chat output (tools.c, chatout.c) */
    sp_chat_parser_opts out; /* out.tools and out.think NONE: text passes through */
    int tool_choice;         /* TOOL_CHOICE_* */
    int keep_special;        /* the output text keeps special tokens (format markers) */
    /* tool_choice enforcement (tools.c); owned, one allocation */
    sp_tool_constraint *constraint;
    sp_grammar *grammar; /* structured output (structured.c); one reference */
    int32_t *forced;     /* test hook: the output is these ids (owned) */
    size_t n_forced;
    req_images images; /* chat: the images of the messages */
} gen_req;

enum { TOOL_CHOICE_AUTO = 0, TOOL_CHOICE_NONE, TOOL_CHOICE_REQUIRED, TOOL_CHOICE_NAMED };

/* Validates body and builds the prompt (chat: rendered with the template).
 * 0 on success; else fills *err (400, naming the JSON path). */
int parse_gen_request(const json_t *body, int chat, const sp_engine_info *info,
                      const sp_media_opts *mo, gen_req *out, api_error *err);
void gen_req_free(gen_req *g);
/* Renders messages with the chat template and tokenizes (shared by chat and
 * /tokenize). */
int render_chat(const json_t *body, const sp_engine_info *info, const sp_media_opts *mo,
                req_images *im, int32_t **ids, size_t *n, api_error *err);

/* Tools (tools.c): validates tools / tool_choice / parallel_tool_calls and
 * returns the tools the template sees (NULL: none), a new reference. */
int chat_tools_check(const json_t *body, json_t **template_tools, int *tool_choice, api_error *err);
/* Checks messages[i].tool_calls and turns JSON-string arguments into
 * objects, as templates expect (vLLM and llama-server do the same). */
int chat_message_tool_calls(json_t *msg, size_t i, api_error *err);
/* Sets g->out (formats, reasoning start, ids), keep_special, the tool_choice
 * constraint and the test hook's forced output, once the prompt is built. */
int chat_output_setup(sp_server *s, const json_t *body, const sp_engine_info *info, gen_req *g,
                      api_error *err);

/* Structured output (structured.c): response_format, guided_json,
 * guided_choice, guided_regex, json_schema compiled into g->grammar, after
 * chat_output_setup (it needs the reasoning format). */
int structured_output_setup(const json_t *body, const sp_engine_info *info, gen_req *g,
                            api_error *err);

/* The output pipeline of one request (chatout.c): engine events in, chat
 * events (content, reasoning, tool calls) out. */
typedef struct chatout {
    const sp_engine_info *info;
    sp_chat_parser *parser; /* NULL: the text is all content */
    sp_detok *detok;        /* own detokenizer (keep_special or forced output) */
    const int32_t *forced;
    size_t n_forced, next;
    int want_call;   /* tool_choice required / named without a constraint: warned */
    sp_chat_evs evs; /* what the last chatout_event produced */
} chatout;

int chatout_init(chatout *c, const gen_req *g, const sp_engine_info *info);
/* Replaces c->evs with the events of ev (TOKEN or FINISH); for FINISH it
 * may rewrite ev->reason (forced output ends as "stop"). */
void chatout_event(chatout *c, sp_event *ev);
int chatout_calls(const chatout *c);
/* "tool_calls" when calls were made and generation stopped by itself. */
const char *chatout_finish_reason(const chatout *c, sp_finish_reason r);
void chatout_free(chatout *c);

/* The n engine requests of one generation request (choices.c). Choice i
 * is seeded with seed + i. */
typedef struct choices {
    int n;
    sp_request *req[SP_MAX_CHOICES];
    int done[SP_MAX_CHOICES]; /* its FINISH was handed out */
    sp_event first;           /* choice 0's first event, taken while waiting */
    int has_first;
    int rr; /* the choice polled first next time */
} choices;

/* Submits g's choices. With n > 1 and a prompt of at least one full KV
 * block, choice 0 runs alone until its first event, so the others find the
 * prompt's blocks in the prefix index (prefilled once). On failure (what
 * sp_engine_submit says) nothing stays submitted. */
sp_status choices_submit(sp_server *s, const gen_req *g, struct MHD_Connection *conn, choices *c,
                         sp_error *err);
/* The next event of any unfinished choice: 1 with *which set, 0 when
 * nothing came within timeout_ms (or all are done). */
int choices_next(choices *c, int *which, sp_event *ev, int timeout_ms);
/* choices_next for a collecting handler (200 ms waits): once *next_check
 * (sp_now_ms) has passed, a client that went away gets the choices
 * cancelled (their FINISH events follow) and *next_check moves 200 ms on. */
int choices_next_watched(choices *c, struct MHD_Connection *conn, double *next_check, int *which,
                         sp_event *ev);
int choices_all_done(const choices *c);
void choices_cancel(choices *c);
void choices_release(choices *c);

/* routes.c helpers the other APIs share: 503 (and 1) unless the model is
 * loaded; a submit failure as its HTTP answer (param names the prompt). */
int server_not_ready(sp_server *s, reply *r);
void api_submit_error(const sp_error *e, const char *param, api_error *err);

/* ---- output blocks (blocks.c) ----
 * Anthropic's content blocks and the Responses API's output items are the
 * same sequence: reasoning, text and tool calls, each opened, grown by
 * deltas and closed. blk_feed turns a request's chat events into it, for
 * the JSON answer and the stream alike, so both agree by construction. */
typedef enum blk_kind { BLK_NONE = 0, BLK_TEXT, BLK_THINKING, BLK_TOOL } blk_kind;

typedef struct blk_sink {
    void *ctx;
    /* index: 0, 1, ... in order; a tool block has the call's id and name */
    void (*open)(void *ctx, int index, blk_kind kind, const sp_chat_ev *start);
    void (*delta)(void *ctx, int index, blk_kind kind, const char *text, size_t len);
    void (*close)(void *ctx, int index, blk_kind kind);
} blk_sink;

typedef struct blk_state {
    blk_kind cur;
    int next; /* blocks opened so far */
} blk_state;

void blk_feed(blk_state *st, const sp_chat_evs *evs, const blk_sink *sink);
void blk_end(blk_state *st, const blk_sink *sink);

/* Validates a translated chat body and submits it as one choice: parse,
 * output setup, submit. On failure *err is set and nothing stays
 * submitted (g freed). */
int gen_submit_one(sp_server *s, const json_t *chat_body, const sp_engine_info *info, gen_req *g,
                   choices *ch, struct MHD_Connection *conn, api_error *err);
/* Runs a submitted single choice to its end, feeding its output blocks to
 * sink; *fin gets the FINISH event, *calls the tool calls made. 0, or -1
 * with *err (cancelled: 503; failed: 500). */
int gen_collect_blocks(const gen_req *g, choices *ch, const sp_engine_info *info,
                       struct MHD_Connection *conn, const blk_sink *sink, sp_event *fin, int *calls,
                       api_error *err);

/* ---- the bytes of a streamed response (sse_bytes.c) ---- */
typedef struct sse_bytes {
    char *buf;
    size_t len, off, cap;
    double last_sent; /* sp_now_ms() of the last bytes queued */
    int finished;     /* the last bytes are queued */
    int ended;        /* and MHD has taken them all (else the client went away) */
} sse_bytes;
void sse_bytes_put(sse_bytes *b, const char *data, size_t n);
/* "event: NAME\ndata: JSON\n\n" (steals data; name NULL: no event line). */
void sse_bytes_event(sse_bytes *b, const char *name, json_t *data);
/* 1 when nothing was queued for the keep-alive interval (15 s). */
int sse_bytes_idle(const sse_bytes *b);
/* MHD's content reader: hands out the queued bytes; when none are left,
 * calls fill(ctx) (which may block on the engine) unless finished. */
ssize_t sse_bytes_read(sse_bytes *b, char *out, size_t max, void (*fill)(void *ctx), void *ctx);
void sse_bytes_free(sse_bytes *b);

/* 1 with *err when a FINISH event ended a request badly (cancelled: 503,
 * failed: 500); 0 for a normal end. */
int finish_failed(const sp_event *fin, api_error *err);

/* ---- a one-choice SSE stream in a given event format (sse.c) ---- */
typedef struct sse sse;
typedef struct sse_fmt {
    void (*begin)(sse *st);
    void (*open)(sse *st, int index, blk_kind kind, const sp_chat_ev *start);
    void (*delta)(sse *st, int index, blk_kind kind, const char *text, size_t len);
    void (*close)(sse *st, int index, blk_kind kind);
    void (*finish)(sse *st, const sp_event *fin, int calls); /* generation ended well */
    void (*fail)(sse *st, const api_error *e);               /* it failed or was cancelled */
    void (*keepalive)(sse *st);                              /* NULL: an SSE comment */
    void (*free_ctx)(void *ctx);
} sse_fmt;

/* Takes over *ch, *g and ctx (freed with fmt->free_ctx), also when it
 * returns NULL (out of memory). log_name names the route in the log line. */
struct MHD_Response *sse_response(sp_server *s, choices *ch, gen_req *g, uint64_t id,
                                  struct MHD_Connection *conn, const sse_fmt *fmt, void *ctx,
                                  const char *log_name);
void *sse_ctx(sse *st);
const gen_req *sse_req(sse *st);
/* "event: NAME\ndata: JSON\n\n" (steals data; name NULL: no event line). */
void sse_event(sse *st, const char *name, json_t *data);

/* A random id: prefix + 24 letters and digits. */
void random_id(char *out, size_t cap, const char *prefix);

/* Handlers. */
/* The chat page (webui.c): answers GET / and the page's files; 0 when url is
 * none of them (or --no-webui), then the API routes take it. */
int webui_route(sp_server *s, struct MHD_Connection *c, const char *url, const char *method,
                reply *r);
void route_chat_or_completion(sp_server *s, const json_t *body, int chat, reply *r, uint64_t id);
void route_embeddings(sp_server *s, const json_t *body, reply *r);
void route_messages(sp_server *s, const json_t *body, reply *r, uint64_t id);
void route_count_tokens(sp_server *s, const json_t *body, reply *r);
void route_responses(sp_server *s, const json_t *body, reply *r, uint64_t id);

/* Request translation, exposed for the fuzz target: the Anthropic Messages
 * and the Responses bodies become chat-completions bodies (*chat, a new
 * reference, "stream" left out), 0; or -1 with a 400 in *err naming the
 * field. count_only: /v1/messages/count_tokens (max_tokens not needed). */
int anthropic_to_chat(const json_t *body, int count_only, json_t **chat, api_error *err);
int responses_to_chat(const json_t *body, json_t **chat, api_error *err);
/* The embeddings request: inputs tokenized (or taken as ids), checked. */
typedef struct embed_req {
    int32_t *ids; /* all inputs back to back (owned) */
    int *len;     /* tokens per input (owned) */
    int n_inputs;
    size_t n_ids;
    int base64;     /* encoding_format */
    int dimensions; /* 0: the model's */
} embed_req;
int parse_embed_request(const json_t *body, const sp_engine_info *info, embed_req *q,
                        api_error *err);
void embed_req_free(embed_req *q);
void route_models(sp_server *s, reply *r);
void route_health(sp_server *s, reply *r);
void route_metrics(sp_server *s, reply *r);
void route_tokenize(sp_server *s, const json_t *body, reply *r);
void route_detokenize(sp_server *s, const json_t *body, reply *r);

/* Streaming: builds the SSE response that reads the choices' events.
 * Takes over *c and g (unless it returns NULL). */
struct MHD_Response *stream_response(sp_server *s, choices *c, gen_req *g, uint64_t id,
                                     struct MHD_Connection *conn);

/* Text that is valid UTF-8 (invalid bytes become U+FFFD), malloc'd. */
char *utf8_sanitize(const char *s, size_t n, size_t *out_len);
/* json string from arbitrary bytes (sanitized). */
json_t *json_text(const char *s, size_t n);
/* Appends bytes (sanitized) to the string at obj[key]. */
void json_append_text(json_t *obj, const char *key, const char *t, size_t n);
/* The token's text (decoded alone), as JSON string and byte array. */
json_t *token_text_json(const sp_tokenizer *tok, int32_t id, int as_id, json_t **bytes_out);
/* Builds usage {prompt_tokens, completion_tokens, total_tokens, details}. */
json_t *usage_json(const sp_event *fin);
/* The usage of n choices: the prompt (and its cached tokens, as choice 0
 * saw them) once, completion tokens summed. */
sp_event usage_sum(const sp_event *fin, int n);
const char *finish_reason_str(sp_finish_reason r);
/* Logprobs: chat's per-token entry; completions' four parallel arrays. */
json_t *chat_logprob_entry(const sp_tokenizer *tok, const sp_event *ev, int as_ids);
json_t *completion_logprobs_new(void);
void completion_logprobs_add(json_t *lp, const sp_tokenizer *tok, const sp_event *ev, size_t offset,
                             int as_ids);

#endif
