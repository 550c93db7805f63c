/* Embedding requests (sp_request_params.n_inputs > 0) on the engine thread.
 *
 * An input runs whole in one forward: an encoder's tokens attend to the
 * tokens after them too, so nothing can be computed before all are there.
 * Each step packs waiting inputs, oldest first, into one batched forward of
 * up to prefill_chunk tokens (an input longer than that runs alone), with KV
 * blocks taken for that forward and given back right after it. Nothing goes
 * to the prefix index: a bidirectional input's K/V depend on what follows.
 * The final hidden states are pooled (model/pooling.h) into one event per
 * input; FINISH follows the request's last input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/log.h"
#include "engine/engine_impl.h"

#define EMB_MAX_BATCH 64

typedef struct sp_embed_scratch {
    sp_seq_input in[EMB_MAX_BATCH];
    sp_request *req[EMB_MAX_BATCH];
    int index[EMB_MAX_BATCH];
    char why[EMB_MAX_BATCH][160]; /* entry k failed: why ("" if not) */
    int max_blocks;               /* blocks of the longest input (ctx_size) */
    int32_t *tables;              /* [EMB_MAX_BATCH][max_blocks], full group */
    int32_t *swa;                 /* the same for the sliding group */
    float *hidden;                /* the batch's final hidden states */
    size_t hidden_cap;
    char pipeline[256];
} sp_embed_scratch;

/* Why a model without modules.json cannot generate, or NULL. */
static const char *encoder_reason(const sp_model_desc *d) {
    if (d->bidirectional) return "its attention is bidirectional (use_bidirectional_attention)";
    if (!d->output.data) return "it has no output head (lm_head)";
    return NULL;
}

sp_status sp_embed_load(sp_engine *e, sp_error *err) {
    ENGINE_OWNED(e);
    const sp_model_desc *d = sp_model_get_desc(e->model);
    sp_status s = sp_path_is_dir(e->model_path)
                      ? sp_pooler_load(&e->pooler, e->model_path, d->hidden, err)
                      : SP_ENOTFOUND;
    int st_dir = s == SP_OK;
    if (s != SP_OK && s != SP_ENOTFOUND) return s;
    const char *encoder = encoder_reason(d);
    if (!st_dir && !e->opts.embeddings) {
        if (!encoder) return SP_OK; /* a generative model, no embeddings */
        return sp_fail(err, SP_EUNSUPPORTED,
                       "%s: %s and there is no sentence-transformers modules.json: serve it as an "
                       "embedding model with --embeddings [--pooling mean|cls|last]",
                       e->model_path, encoder);
    }
    if (!st_dir)
        SP_TRY(sp_pooler_plain(&e->pooler, e->opts.pooling ? e->opts.pooling : SP_POOL_LAST,
                               d->hidden, 1, err));
    else if (e->opts.pooling)
        SP_WARN("--pooling is ignored: %s/modules.json sets the pooling", e->model_path);
    sp_embed_scratch *x = calloc(1, sizeof *x);
    if (!x) return sp_fail(err, SP_ENOMEM, "embedding scratch");
    e->emb = x;
    int bs = e->info.block_size;
    x->max_blocks = (e->info.ctx_size + bs - 1) / bs;
    x->tables = malloc((size_t)EMB_MAX_BATCH * x->max_blocks * sizeof *x->tables);
    x->swa = malloc((size_t)EMB_MAX_BATCH * x->max_blocks * sizeof *x->swa);
    if (!x->tables || !x->swa) return sp_fail(err, SP_ENOMEM, "embedding scratch");
    snprintf(x->pipeline, sizeof x->pipeline, "%s", sp_pooler_describe(e->pooler));
    e->info.embed_dim = sp_pooler_dim(e->pooler);
    e->info.embed_only = st_dir || encoder;
    e->info.embed_input = sp_pooler_input(e->pooler);
    e->info.embed_gen_prompt = sp_pooler_generation_prompt(e->pooler);
    e->info.embed_pipeline = x->pipeline;
    SP_INFO("embeddings: %d dimensions (%s)%s", e->info.embed_dim, x->pipeline,
            e->info.embed_only ? "; an embedding model: no generation" : "");
    return SP_OK;
}

void sp_embed_admit(sp_engine *e, sp_request *r) {
    ENGINE_OWNED(e);
    r->next_embed = NULL;
    r->next_input = r->done_inputs = 0;
    r->next_offset = 0;
    if (e->emb_tail)
        e->emb_tail->next_embed = r;
    else
        e->emb_head = r;
    e->emb_tail = r;
    pthread_mutex_lock(&e->stats_mu);
    e->stats.prompt_tokens += (uint64_t)r->n_prompt;
    pthread_mutex_unlock(&e->stats_mu);
}

static void unlink_request(sp_engine *e, sp_request *r) {
    ENGINE_OWNED(e);
    sp_request **p = &e->emb_head, *prev = NULL;
    while (*p && *p != r) prev = *p, p = &(*p)->next_embed;
    if (!*p) return;
    *p = r->next_embed;
    if (e->emb_tail == r) e->emb_tail = prev;
    r->next_embed = NULL;
}

/* Ends r (FINISH) and drops it from the list. */
static void embed_finish(sp_engine *e, sp_request *r, sp_finish_reason why, const char *msg) {
    ENGINE_OWNED(e);
    unlink_request(e, r);
    r->next_input = r->n_inputs; /* nothing more of it runs */
    r->done_inputs = -1;         /* finished: its other results are dropped */
    double now = sp_now_ms();
    sp_event ev = {.kind = SP_EV_FINISH, .reason = why, .stop_index = -1};
    ev.prompt_tokens = r->n_prompt;
    ev.total_ms = now - r->t_submit;
    if (msg) snprintf(ev.error, sizeof ev.error, "%s", msg);
    pthread_mutex_lock(&e->stats_mu);
    e->stats.finished[why]++;
    pthread_mutex_unlock(&e->stats_mu);
    sp_request_push(r, &ev);
    sp_request_release(r);
}

static void drop_cancelled(sp_engine *e) {
    ENGINE_OWNED(e);
    for (sp_request *r = e->emb_head, *next; r; r = next) {
        next = r->next_embed;
        if (atomic_load(&r->cancelled)) embed_finish(e, r, SP_FINISH_CANCELLED, NULL);
    }
}

static void give_back(sp_blocks *b, const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) sp_blocks_unref(b, ids[i]);
}

/* Blocks for batch entry k of `need` blocks in each group; -1 if they are
 * not available now (nothing taken). */
static int take_blocks(sp_engine *e, int k, int need) {
    ENGINE_OWNED(e);
    sp_embed_scratch *x = e->emb;
    int32_t *full = x->tables + (size_t)k * x->max_blocks,
            *swa = x->swa + (size_t)k * x->max_blocks;
    if (sp_blocks_reserve(e->blocks, need) != 0) return -1;
    if (e->swa_blocks && sp_blocks_reserve(e->swa_blocks, need) != 0) {
        sp_blocks_unreserve(e->blocks, need);
        return -1;
    }
    for (int i = 0; i < need; i++) {
        full[i] = sp_blocks_alloc(e->blocks);
        swa[i] = e->swa_blocks ? sp_blocks_alloc(e->swa_blocks) : -1;
    }
    return 0;
}

static void release_batch(sp_engine *e, int n) {
    ENGINE_OWNED(e);
    sp_embed_scratch *x = e->emb;
    for (int k = 0; k < n; k++) {
        give_back(e->blocks, x->in[k].block_table, x->in[k].n_blocks);
        if (e->swa_blocks) give_back(e->swa_blocks, x->in[k].swa_table, x->in[k].n_swa_blocks);
    }
}

/* Adds input r->next_input as batch entry n; 0, or -1 when its blocks are
 * not available. */
static int add_input(sp_engine *e, sp_request *r, int n) {
    ENGINE_OWNED(e);
    sp_embed_scratch *x = e->emb;
    int len = r->input_len[r->next_input],
        need = (len + e->info.block_size - 1) / e->info.block_size;
    if (take_blocks(e, n, need) != 0) return -1;
    x->in[n] = (sp_seq_input){.tokens = r->prompt + r->next_offset,
                              .n_tokens = len,
                              .block_table = x->tables + (size_t)n * x->max_blocks,
                              .n_blocks = need,
                              .swa_table = x->swa + (size_t)n * x->max_blocks,
                              .n_swa_blocks = e->swa_blocks ? need : 0,
                              .bidirectional = sp_model_get_desc(e->model)->bidirectional};
    x->req[n] = r;
    x->index[n] = r->next_input++;
    x->why[n][0] = 0;
    r->next_offset += (size_t)len;
    return 0;
}

/* Packs waiting inputs into the batch; returns how many, *tokens their sum. */
static int plan(sp_engine *e, int *tokens) {
    ENGINE_OWNED(e);
    int n = 0;
    *tokens = 0;
    for (sp_request *r = e->emb_head, *next; r && n < EMB_MAX_BATCH; r = next) {
        next = r->next_embed;
        while (r->next_input < r->n_inputs && n < EMB_MAX_BATCH) {
            int len = r->input_len[r->next_input];
            if (n > 0 && *tokens + len > e->opts.prefill_chunk) return n;
            if (add_input(e, r, n) == 0) {
                *tokens += len, n++;
                continue;
            }
            if (n > 0 || e->n_running > 0) return n; /* blocks come back later */
            char msg[200];
            snprintf(msg, sizeof msg, "input %d (%d tokens) needs more KV blocks than the pool has",
                     r->next_input, len);
            embed_finish(e, r, SP_FINISH_ERROR, msg);
            break;
        }
    }
    return n;
}

/* The batched forward; when it fails, each input alone, so that a failure
 * that belongs to one input fails only its request. */
static void forward(sp_engine *e, int n) {
    ENGINE_OWNED(e);
    sp_embed_scratch *x = e->emb;
    sp_error err = {0};
    if (sp_model_forward(e->model, e->kv, x->in, n, e->logits, &err) == SP_OK) return;
    SP_ERROR("embedding forward of %d inputs failed: %s%s", n, err.msg,
             n > 1 ? " (retrying them one by one)" : "");
    for (int k = 0; k < n; k++) {
        sp_error one = err;
        if (n > 1 && sp_model_forward(e->model, e->kv, &x->in[k], 1, e->logits, &one) == SP_OK)
            continue;
        snprintf(x->why[k], sizeof x->why[k], "%.150s", one.msg);
    }
}

static int all_finite(const float *v, int n) {
    for (int i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

/* Pools batch entry k into its request's event (unless the entry or an
 * earlier one of its request failed). */
static void emit(sp_engine *e, int k) {
    ENGINE_OWNED(e);
    sp_embed_scratch *x = e->emb;
    sp_request *r = x->req[k];
    if (x->why[k][0] || r->done_inputs < 0) {
        r->done_inputs = -1; /* failed: ended after the batch */
        return;
    }
    int dim = e->info.embed_dim;
    sp_event ev = {.kind = SP_EV_EMBEDDING, .index = x->index[k], .n_embedding = dim};
    ev.embedding = malloc((size_t)dim * sizeof(float));
    if (ev.embedding) sp_pooler_run(e->pooler, x->in[k].hidden, x->in[k].n_tokens, ev.embedding);
    if (!ev.embedding || !all_finite(ev.embedding, dim)) {
        snprintf(x->why[k], sizeof x->why[k], "%s for input %d",
                 ev.embedding ? "the model produced a non-finite embedding"
                              : "out of memory for the embedding",
                 x->index[k]);
        free(ev.embedding);
        r->done_inputs = -1;
        return;
    }
    sp_request_push(r, &ev);
    r->done_inputs++;
}

/* Ends the batch's requests that failed or are complete. A request's
 * entries are adjacent; the first decides (FINISH may free the request). */
static void settle(sp_engine *e, int n) {
    ENGINE_OWNED(e);
    sp_embed_scratch *x = e->emb;
    for (int k = 0; k < n; k++) {
        sp_request *r = x->req[k];
        if (k > 0 && x->req[k - 1] == r) continue;
        const char *why = NULL;
        for (int j = k; j < n && x->req[j] == r && !why; j++)
            if (x->why[j][0]) why = x->why[j];
        if (r->done_inputs < 0)
            embed_finish(e, r, SP_FINISH_ERROR, why ? why : "an earlier input failed");
        else if (r->done_inputs == r->n_inputs)
            embed_finish(e, r, SP_FINISH_STOP, NULL);
    }
}

static int reserve_hidden(sp_embed_scratch *x, size_t floats) {
    if (floats <= x->hidden_cap) return 0;
    float *h = realloc(x->hidden, floats * sizeof *h);
    if (!h) return -1;
    x->hidden = h;
    x->hidden_cap = floats;
    return 0;
}

int sp_embed_step(sp_engine *e) {
    ENGINE_OWNED(e);
    if (!e->emb_head) return 0;
    drop_cancelled(e);
    int tokens, n = plan(e, &tokens);
    if (!n) return 0;
    sp_embed_scratch *x = e->emb;
    int H = sp_model_get_desc(e->model)->hidden;
    if (reserve_hidden(x, (size_t)tokens * H) != 0) {
        for (int k = 0; k < n; k++)
            snprintf(x->why[k], sizeof x->why[k], "out of memory for %d hidden states", tokens);
    } else {
        for (int k = 0, t = 0; k < n; t += x->in[k++].n_tokens)
            x->in[k].hidden = x->hidden + (size_t)t * H;
        forward(e, n);
    }
    release_batch(e, n); /* first: a finished request's blocks are free */
    for (int k = 0; k < n; k++) emit(e, k);
    settle(e, n);
    pthread_mutex_lock(&e->stats_mu);
    e->stats.prefill_tokens += (uint64_t)tokens;
    e->stats.steps++; /* a batched forward of its own */
    pthread_mutex_unlock(&e->stats_mu);
    return n;
}

void sp_embed_free(sp_engine *e) {
    ENGINE_OWNED(e);
    while (e->emb_head)
        embed_finish(e, e->emb_head, e->died ? SP_FINISH_ERROR : SP_FINISH_CANCELLED,
                     e->died ? "the engine thread died" : "the engine stopped");
    if (e->emb) {
        free(e->emb->tables);
        free(e->emb->swa);
        free(e->emb->hidden);
        free(e->emb);
        e->emb = NULL;
    }
    sp_pooler_free(e->pooler);
    e->pooler = NULL;
}
