/* Engine internals shared by engine.c (lifecycle, load, submit), request.c
 * (requests and their event channels) and sched.c (the step loop). Not part
 * of the public interface. */
#ifndef SP_ENGINE_IMPL_H
#define SP_ENGINE_IMPL_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>

#include "base/clock.h"
#include "engine/blocks.h"
#include "engine/engine.h"
#include "engine/fault.h"
#include "model/pooling.h"
#include "engine/gmask.h"

/* Debug builds check that engine-private state is touched only by the engine
 * thread (DESIGN.md section 1). */
#ifndef NDEBUG
#define ENGINE_OWNED(e) assert(pthread_equal(pthread_self(), (e)->owner))
#else
#define ENGINE_OWNED(e) ((void)(e))
#endif

typedef struct ev_node {
    sp_event ev;
    struct ev_node *next;
} ev_node;

struct sp_request {
    uint64_t id;
    atomic_int refs; /* the submitter's and the engine's */
    atomic_int cancelled;

    /* the event channel: engine pushes, the submitter pops */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ev_node *head, *tail;
    int finished;         /* FINISH was pushed */
    ev_node *finish_node; /* preallocated for the FINISH event */

    /* parameters, owned copies; read by the engine thread only after submit */
    int32_t *prompt;
    int n_prompt;
    sp_sampling sampling;
    sp_logit_bias *bias;
    uint64_t seed;
    int max_tokens;
    char **stop;
    int n_stop;
    int ignore_eos;
    int logprobs, top_logprobs;
    sp_tool_constraint *constraint; /* NULL: free output */
    int keep_special;
    sp_pixels *images; /* copies; the engine frees the pixel data once encoded */
    int *image_pos;
    int n_images;
    int *input_len; /* embeddings: n_inputs > 0 */
    int n_inputs;
    sp_grammar *grammar; /* structured output (retained); NULL: none */
    char think_open[32], think_close[32];
    int in_think;
    double t_submit;

    struct sp_request *next_queued; /* engine queue link (under engine mu) */
    /* embeddings (embed.c, engine thread only): inputs started and done */
    int next_input, done_inputs;
    size_t next_offset; /* prompt offset of input next_input */
    struct sp_request *next_embed;
};

sp_request *sp_request_new(const sp_request_params *p, uint64_t id);
/* Engine side: queue an event (moves ev's text into the channel). */
void sp_request_push(sp_request *r, sp_event *ev);

typedef struct seq seq;

struct sp_engine {
    /* immutable after start */
    sp_engine_opts opts;
    char *model_path, *template_path;
    pthread_t thread;
    pthread_t owner; /* == thread; set before the thread touches anything */
    sp_fault fault;  /* test-only fault injection (fault.h); read once at start */

    /* shared: under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sp_engine_state state;
    sp_error load_err; /* why loading failed, or why the thread died */
    int died;          /* the loop ended without a stop: state STOPPED, load_err says why */
    sp_request *q_head, *q_tail;
    int q_len;
    int stopping;
    double stop_deadline;
    atomic_uint_fast64_t next_id;

    /* published read-only at READY */
    sp_engine_info info;
    sp_tokenizer *tok;
    sp_template *tmpl;
    int32_t eos_ids[16];
    char *bos_str, *eos_str;

    /* engine thread only */
    sp_model *model;
    sp_vision *vision; /* NULL: no image input (info.vision_missing says why) */
    char vision_missing[1200];
    int max_chunk; /* most prompt tokens one sequence computes in a step: prefill_chunk, or an
                      image's soft tokens (a chunk never ends inside an image) */
    sp_kv *kv;
    sp_blocks *blocks;
    /* The sliding-window group (kvsize.c): its own pool and prefix index, or
     * NULL when the model has none. A sequence keeps only the blocks its
     * window still reaches, so it never holds more than swa_bound; admission
     * keeps the sum of running sequences' bounds (swa_committed) within the
     * pool. full_real: the full-attention group has layers (without, its
     * blocks are bookkeeping only: they still carry the prefix index). */
    sp_blocks *swa_blocks;
    int swa_window, swa_bound, swa_committed, swa_peak;
    int full_real;
    seq **running;
    int n_running;
    float *logits;
    int *counts;
    sp_token_prob *cand;
    float *row_copy;
    sp_seq_input *inputs;
    seq **batch;
    unsigned char *failed;     /* per batch entry: its forward failed */
    sp_cons_vocab *cons_vocab; /* token texts, built at load */
    sp_gvocab *gvocab;         /* their trie (structured output), built at load */
    /* embeddings (embed.c): the pooling pipeline (NULL: none served), the
     * admitted embedding requests in order, and their step's scratch */
    sp_pooler *pooler;
    sp_request *emb_head, *emb_tail;
    struct sp_embed_scratch *emb;

    /* the watchdog's heartbeat: written by the engine thread around every
     * step, read by sp_engine_get_state from any thread. Atomics, no lock, so
     * the step loop never waits for a reader. */
    atomic_llong hb_step_start; /* sp_now_ms() when the running step began; 0 between steps */
    atomic_ullong hb_steps;     /* steps completed */

    /* stats: written by the engine thread, read by anyone, under stats_mu */
    pthread_mutex_t stats_mu;
    sp_engine_stats stats;
};

/* Heartbeat (engine thread): a step begins / ends. Relaxed order is enough:
 * the reader only compares a timestamp against a limit of seconds. */
static inline void sp_hb_step_begin(sp_engine *e) {
    long long now = (long long)sp_now_ms();
    atomic_store_explicit(&e->hb_step_start, now > 0 ? now : 1, memory_order_relaxed);
}

static inline void sp_hb_step_end(sp_engine *e) {
    atomic_store_explicit(&e->hb_step_start, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->hb_steps, 1, memory_order_relaxed);
}

/* The engine thread's main loop after a successful load (sched.c). Returns
 * SP_OK after a requested stop; anything else means the loop cannot go on
 * (the engine thread dies: err says why). */
sp_status sp_sched_run(sp_engine *e, sp_error *err);
/* Sizes and creates the KV cache and block pools for the loaded model
 * (kvsize.c); fills info.ctx_size, n_blocks, block_size, swa_*. */
sp_status sp_engine_size_kv(sp_engine *e, const sp_model_desc *d, sp_error *err);
/* Frees the scheduler's sequences and scratch (engine thread). */
void sp_sched_free(sp_engine *e);
/* Embeddings (embed.c, engine thread): the pooler for the loaded model (or
 * none; fills info.embed_*); taking an admitted request; one batched
 * forward over waiting inputs (returns the inputs run); failing what is
 * left at stop. */
sp_status sp_embed_load(sp_engine *e, sp_error *err);
void sp_embed_admit(sp_engine *e, sp_request *r);
int sp_embed_step(sp_engine *e);
void sp_embed_free(sp_engine *e);
void sp_hist_add(sp_hist *h, double seconds);

#endif
