/* The engine: one thread that loads the model and owns every piece of model
 * state (weights, KV blocks, the prefix index, sampler state, scratch). Other
 * threads talk to it only through this header (DESIGN.md section 1):
 *
 *   sp_engine_start()      spawns the thread; it loads model + tokenizer
 *   sp_engine_state()      LOADING -> READY, or FAILED with the load error
 *   sp_engine_submit()     queues a request (bounded: SP_EBUSY when full)
 *   sp_request_next()      blocks (with a timeout) for the request's events
 *   sp_request_cancel()    sets its atomic cancel flag (checked every step)
 *   sp_request_release()   the submitter is done with it (cancels if running)
 *   sp_engine_stats()      counters for /metrics
 *   sp_engine_stop()       drains (grace period), cancels the rest, joins
 *
 * Continuous batching: each step decodes one token for every running
 * sequence in one batched forward, plus up to prefill_chunk prompt tokens of
 * sequences still prefilling. */
#ifndef SP_ENGINE_ENGINE_H
#define SP_ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "chat/template.h"
#include "chat/grammar.h"
#include "engine/constrain.h"
#include "engine/sampling.h"
#include "media/preprocess.h"
#include "model/model.h"
#include "model/pooling.h"
#include "tokenizer/tokenizer.h"
#include "vision/vision.h"

typedef struct sp_engine sp_engine;
typedef struct sp_request sp_request;

typedef struct sp_engine_opts {
    const char *model_path;
    sp_model_opts model;
    int ctx_size;       /* max tokens of one sequence; 0: the model's max_pos (capped 8192) */
    uint64_t kv_memory; /* bytes of KV pool; 0: parallel * ctx_size tokens */
    int block_size;     /* tokens per KV block (default 16) */
    int parallel;       /* max running sequences (default 4) */
    int prefill_chunk;  /* prompt tokens per step over all sequences (default 256) */
    int queue_size;     /* max waiting requests (default 64) */
    const char *chat_template_file; /* overrides the model's template */
    int watchdog_s; /* a step running longer than this means the engine thread hangs (0: off) */
    /* serve embeddings from a model without a sentence-transformers
     * modules.json (--embeddings), pooled by `pooling` (SP_POOL_* bits from
     * model/pooling.h; 0: last token) and L2-normalised */
    int embeddings;
    unsigned pooling;
} sp_engine_opts;

void sp_engine_opts_default(sp_engine_opts *o);

typedef enum sp_engine_state {
    SP_ENGINE_LOADING = 0,
    SP_ENGINE_READY,
    SP_ENGINE_FAILED,  /* load failed: see the error */
    SP_ENGINE_STOPPED, /* stopped, or the thread died (not asked to stop) */
    SP_ENGINE_HUNG,    /* READY, but one step has run past opts.watchdog_s: see the error */
} sp_engine_state;

/* What the HTTP side needs after READY. Everything here is immutable and
 * safe to read from any thread once sp_engine_state() returned READY. */
typedef struct sp_engine_info {
    const sp_tokenizer *tokenizer;
    const sp_template *chat_template;
    int template_is_fallback;          /* the model had none: ChatML (see engine.c) */
    const char *bos_token, *eos_token; /* strings for templates ("" if none) */
    int vocab;
    int ctx_size;
    int n_blocks, block_size;     /* n_blocks: KV blocks of every group with layers */
    int swa_window, n_swa_blocks; /* the sliding-window group (0, 0: none) */
    int parallel;
    const int32_t *eos_ids;
    int n_eos;
    const char *model_path;
    /* image input: the vision tower's prompt facts, NULL when the model takes
     * no images (then vision_missing says why) */
    const sp_vision_info *vision;
    const char *vision_missing;
    int max_image_tokens; /* soft tokens one image may have */
    /* embeddings (/v1/embeddings): embed_dim > 0 when served; embed_only
     * for embedding models (no generation). embed_input: how a text reaches
     * the model (sp_embed_input: as is, or as a chat message rendered with
     * embed_gen_prompt as add_generation_prompt). */
    int embed_dim, embed_only;
    int embed_input, embed_gen_prompt;
    const char *embed_pipeline; /* e.g. "mean -> dense 32x64 -> normalize", for logs */
} sp_engine_info;

/* Starts the thread; returns at once (loading runs on the new thread). */
sp_status sp_engine_start(sp_engine **out, const sp_engine_opts *opts, sp_error *err);
/* Current state; when FAILED, copies the load error into err (may be NULL);
 * when STOPPED because the engine thread died, copies why (err->status is
 * then not SP_OK; after a requested stop it is left alone). */
sp_engine_state sp_engine_get_state(sp_engine *e, sp_error *err);
/* Blocks until the state leaves LOADING or timeout_ms passes (-1: forever). */
sp_engine_state sp_engine_wait_loaded(sp_engine *e, int timeout_ms);
/* NULL unless READY. */
const sp_engine_info *sp_engine_get_info(sp_engine *e);
/* Stops accepting, lets running requests finish for up to grace_ms, cancels
 * what is left, joins the thread and frees everything. */
void sp_engine_stop(sp_engine *e, int grace_ms);
/* Stops (if not yet) and frees the engine, tokenizer and template included:
 * call after every thread that reads sp_engine_get_info() is done. */
void sp_engine_free(sp_engine *e);

/* One image of a request: its preprocessed pixels (copied by submit) and
 * the prompt position of its first soft token; its soft tokens are the run
 * pixels->n_soft long that starts there. */
typedef struct sp_request_image {
    const sp_pixels *pixels;
    int pos;
} sp_request_image;

typedef struct sp_request_params {
    const int32_t *prompt; /* copied */
    int n_prompt;
    sp_sampling sampling; /* bias array copied */
    uint64_t seed;
    int has_seed;
    int max_tokens;          /* <= 0: until the context is full */
    const char *const *stop; /* copied */
    int n_stop;
    int ignore_eos;
    int logprobs;     /* report the chosen token's logprob */
    int top_logprobs; /* 0..SP_MAX_TOP_LOGPROBS */
    /* tool_choice enforcement (constrain.h); copied; NULL: no constraint */
    const sp_tool_constraint *constraint;
    int keep_special;               /* the text keeps special tokens (stop strings see them too) */
    const sp_request_image *images; /* in prompt order; copied */
    int n_images;
    /* Embeddings instead of generation: n_inputs > 0 inputs of input_len[i]
     * tokens, back to back in prompt (n_prompt is their sum; input_len is
     * copied). Each gets an SP_EV_EMBEDDING event (index = its position,
     * any order), then FINISH. Inputs of this and other requests are batched
     * into one forward per step, up to prefill_chunk tokens. */
    const int *input_len;
    int n_inputs;
    /* structured output (engine/gmask.h): retained; NULL: none. Ignored
     * while a tool constraint applies. The think markers leave a reasoning
     * block free before it (NULL: none). */
    sp_grammar *grammar;
    const char *think_open, *think_close;
    int in_think;
} sp_request_params;

#define SP_MAX_TOP_LOGPROBS 20

/* SP_EBUSY: queue full or stopping (HTTP 503); SP_ERANGE: the prompt does not
 * fit the context (message has the numbers); SP_EINVAL: bad ids, params or
 * image positions; SP_EUNSUPPORTED: not ready, or images for a model
 * without a vision tower. *out holds one reference for the caller. */
sp_status sp_engine_submit(sp_engine *e, const sp_request_params *p, sp_request **out,
                           sp_error *err);

typedef enum sp_event_kind { SP_EV_TOKEN = 1, SP_EV_FINISH, SP_EV_EMBEDDING } sp_event_kind;

typedef enum sp_finish_reason {
    SP_FINISH_STOP = 0, /* EOS or stop string */
    SP_FINISH_LENGTH,   /* max_tokens or context full */
    SP_FINISH_CANCELLED,
    SP_FINISH_ERROR,
} sp_finish_reason;

const char *sp_finish_reason_name(sp_finish_reason r);

typedef struct sp_event {
    sp_event_kind kind;
    /* Text released by this event (may be empty: held back for stop strings,
     * or incomplete UTF-8). Owned by the event. */
    char *text;
    size_t text_len;
    /* TOKEN: the sampled token */
    int32_t token;
    float logprob;
    int n_top;
    sp_token_prob top[SP_MAX_TOP_LOGPROBS];
    /* EMBEDDING: input `index`'s vector (owned by the event) */
    int index;
    float *embedding;
    int n_embedding;
    /* FINISH */
    sp_finish_reason reason;
    int stop_index; /* STOP by stop string params.stop[stop_index]; -1 otherwise */
    int prompt_tokens, completion_tokens, cached_tokens;
    double queue_ms, ttft_ms, total_ms;
    char error[256];
} sp_event;

/* 1: *ev filled (clear it with sp_event_clear); 0: timed out. After the
 * FINISH event no more events come. timeout_ms < 0 waits forever. */
int sp_request_next(sp_request *r, sp_event *ev, int timeout_ms);
void sp_event_clear(sp_event *ev);
void sp_request_cancel(sp_request *r);
void sp_request_release(sp_request *r);
uint64_t sp_request_id(const sp_request *r);

/* Latency histogram buckets (seconds, upper bounds) used for /metrics. */
#define SP_HIST_BUCKETS 12
extern const double sp_hist_bounds[SP_HIST_BUCKETS];

typedef struct sp_hist {
    uint64_t counts[SP_HIST_BUCKETS + 1]; /* last: +Inf */
    double sum;
    uint64_t n;
} sp_hist;

typedef struct sp_engine_stats {
    uint64_t requests_submitted, requests_rejected;
    uint64_t finished[4];    /* by sp_finish_reason */
    uint64_t prompt_tokens;  /* prompt tokens of admitted requests */
    uint64_t prefill_tokens; /* prompt tokens actually computed */
    uint64_t cached_tokens;  /* prompt tokens served from the prefix index */
    uint64_t generated_tokens;
    uint64_t steps;
    int running, waiting;
    /* kv_blocks_*: all groups that hold K/V together; kv_swa_*: the
     * sliding-window group alone (peak: most blocks used at once). */
    int kv_blocks_total, kv_blocks_used, kv_blocks_cached, kv_blocks_free;
    int kv_swa_blocks_total, kv_swa_blocks_used, kv_swa_blocks_cached, kv_swa_blocks_peak;
    sp_hist ttft, itl; /* time to first token, inter-token latency */
} sp_engine_stats;

void sp_engine_get_stats(sp_engine *e, sp_engine_stats *s);

#endif
