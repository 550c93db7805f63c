/* Server internals shared by server.c (HTTP plumbing), params.c (request
 * validation), routes.c (handlers), stream.c (SSE) and metrics.c. */
#ifndef SP_SERVER_IMPL_H
#define SP_SERVER_IMPL_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "engine/engine.h"
#include "server/server.h"

struct sp_server {
    sp_server_opts opts;
    char *host, *api_key, *cors_origin, *model_id;
    sp_engine *engine;
    struct MHD_Daemon *daemon;
    int port;
    atomic_uint_fast64_t next_id;
    atomic_uint_fast64_t http_status[6]; /* by hundreds: 1xx..5xx; [0] other */
    long created;                        /* unix time for /v1/models */
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

/* What a handler answers: a response (with its status) ready to queue. */
typedef struct reply {
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

/* A validated generation request (chat or completion). */
typedef struct gen_req {
    int chat, stream, include_usage;
    int32_t *prompt; /* owned */
    size_t n_prompt;
    sp_request_params params;
    sp_logit_bias *bias; /* owned, params.sampling.bias */
    char **stop;         /* owned, params.stop */
    int n_stop;
    int logprobs;      /* report logprobs */
    int top_logprobs;  /* how many alternatives */
    int tokens_as_ids; /* logprobs name tokens "token_id:N" (vLLM extension) */
} gen_req;

/* Validates body and builds the prompt (chat: rendered with the template).
 * 0 on success; else fills *err (400, naming the JSON path). */
int parse_gen_request(const json_t *body, int chat, const sp_engine_info *info, gen_req *out,
                      api_error *err);
void gen_req_free(gen_req *g);
/* Renders messages with the chat template and tokenizes (shared by chat and
 * /tokenize). */
int render_chat(const json_t *body, const sp_engine_info *info, int32_t **ids, size_t *n,
                api_error *err);

/* Handlers. */
void route_chat_or_completion(sp_server *s, const json_t *body, int chat, reply *r, uint64_t id);
void route_models(sp_server *s, reply *r);
void route_health(sp_server *s, reply *r);
void route_metrics(sp_server *s, reply *r);
void route_tokenize(sp_server *s, const json_t *body, reply *r);
void route_detokenize(sp_server *s, const json_t *body, reply *r);

/* Streaming: builds the SSE response that reads req's events. Takes over
 * req and g. */
struct MHD_Response *stream_response(sp_server *s, sp_request *req, gen_req *g, uint64_t id,
                                     struct MHD_Connection *conn);

static inline double srv_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Text that is valid UTF-8 (invalid bytes become U+FFFD), malloc'd. */
char *utf8_sanitize(const char *s, size_t n, size_t *out_len);
/* json string from arbitrary bytes (sanitized). */
json_t *json_text(const char *s, size_t n);
/* The token's text (decoded alone), as JSON string and byte array. */
json_t *token_text_json(const sp_tokenizer *tok, int32_t id, int as_id, json_t **bytes_out);
/* Builds usage {prompt_tokens, completion_tokens, total_tokens, details}. */
json_t *usage_json(const sp_event *fin);
const char *finish_reason_str(sp_finish_reason r);
/* Logprobs: chat's per-token entry; completions' four parallel arrays. */
json_t *chat_logprob_entry(const sp_tokenizer *tok, const sp_event *ev, int as_ids);
json_t *completion_logprobs_new(void);
void completion_logprobs_add(json_t *lp, const sp_tokenizer *tok, const sp_event *ev, size_t offset,
                             int as_ids);

#endif
