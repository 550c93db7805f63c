/* The engine thread's loop: continuous batching over the block KV cache.
 *
 * Each step: admit waiting requests (prefix lookup + block reservation),
 * drop cancelled sequences, then run one batched forward holding one decode
 * token for every generating sequence and up to prefill_chunk prompt tokens
 * of prefilling ones, sample, stream, and retire finished sequences. A
 * sequence reserves blocks for its whole budget on admission, so it never
 * runs out mid-way; requests wait in the queue until their budget fits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "engine/engine_impl.h"
#include "engine/images.h"
#include "engine/stop.h"

struct seq {
    sp_request *req;
    int32_t *tokens; /* prompt followed by the output */
    int n_tokens, n_prompt;
    int n_computed; /* tokens whose K/V are in the cache */
    int n_cached;   /* prompt tokens served by the prefix index */
    int limit;      /* max n_tokens */
    int32_t *table; /* KV blocks: positions [i*bs, (i+1)*bs) */
    int n_table;
    int reserved; /* blocks promised but not yet allocated */
    /* sliding-window group (e->swa_blocks): the same positions, but entries
     * before swa_lo are released (-1); swa_held + swa_reserved == swa_charge */
    int32_t *swa;
    int n_swa, swa_lo;
    int swa_reserved, swa_charge;
    uint64_t key; /* chain key of the last published block */
    int n_published;
    sp_rng rng;
    sp_detok *detok;
    char *held; /* generated text not yet released (stop strings) */
    size_t held_len, held_cap;
    double t_admit, t_first_token, t_last_token;
    int got_first;
    int n_pushed; /* tokens given to the detokenizer */
    /* tool_choice constraint (constrain.h); NULL: none */
    sp_cons *cons;
    seq_images im; /* the prompt's images (images.h) */
    int stop_hit;  /* index of the stop string that ended it; -1: none */
    sp_gmatch *gm; /* structured output (gmask.h); NULL: none */
};

static void seq_free(seq *s) {
    if (!s) return;
    sp_detok_free(s->detok);
    sp_cons_free(s->cons);
    seq_images_free(&s->im);
    sp_gmatch_free(s->gm);
    free(s->tokens);
    free(s->table);
    free(s->swa);
    free(s->held);
    free(s);
}

/* Publishes every block that became full, so later requests can reuse it. */
static void publish_blocks(sp_engine *e, seq *s) {
    ENGINE_OWNED(e);
    int bs = e->info.block_size;
    while ((s->n_published + 1) * bs <= s->n_computed) {
        const int32_t *t = s->tokens + (size_t)s->n_published * bs;
        uint64_t salt = seq_images_block_salt(&s->im, s->n_published, bs);
        s->key = sp_blocks_key_salted(s->key, t, bs, salt);
        sp_blocks_publish_salted(e->blocks, s->table[s->n_published], s->key, t, salt);
        if (e->swa_blocks && s->swa[s->n_published] >= 0)
            sp_blocks_publish_salted(e->swa_blocks, s->swa[s->n_published], s->key, t, salt);
        s->n_published++;
    }
}

static void release_blocks(sp_engine *e, seq *s) {
    ENGINE_OWNED(e);
    for (int i = 0; i < s->n_table; i++) sp_blocks_unref(e->blocks, s->table[i]);
    s->n_table = 0;
    sp_blocks_unreserve(e->blocks, s->reserved);
    s->reserved = 0;
    if (!e->swa_blocks) return;
    for (int i = s->swa_lo; i < s->n_swa; i++)
        if (s->swa[i] >= 0) sp_blocks_unref(e->swa_blocks, s->swa[i]);
    s->swa_lo = s->n_swa = 0;
    sp_blocks_unreserve(e->swa_blocks, s->swa_reserved);
    s->swa_reserved = 0;
    e->swa_committed -= s->swa_charge;
    s->swa_charge = 0;
}

/* The first block the window of the token at pos reaches back into. */
static int swa_first(const sp_engine *e, int pos) {
    int from = pos + 1 - e->swa_window;
    return from > 0 ? from / e->info.block_size : 0;
}

/* Releases the sliding-group blocks that no later token can read: the
 * next token (position n_computed) reads from swa_first(n_computed) on.
 * Each release takes its promise back (see blocks.h, reserve_force), so
 * the sequence can allocate the blocks its window moves into. */
static void swa_trim(sp_engine *e, seq *s) {
    ENGINE_OWNED(e);
    if (!e->swa_blocks) return;
    int lo = swa_first(e, s->n_computed);
    for (; s->swa_lo < lo && s->swa_lo < s->n_swa; s->swa_lo++) {
        int32_t *id = &s->swa[s->swa_lo];
        if (*id < 0) continue;
        sp_blocks_unref(e->swa_blocks, *id);
        *id = -1;
        sp_blocks_reserve_force(e->swa_blocks, 1);
        s->swa_reserved++;
    }
}

static void finish_request(sp_request *r, sp_event *ev) {
    sp_request_push(r, ev);
    sp_request_release(r);
}

/* Retires a sequence: its full blocks stay indexed, all references go. */
static void seq_finish(sp_engine *e, seq *s, sp_finish_reason why, char *text, size_t len,
                       const char *error) {
    ENGINE_OWNED(e);
    publish_blocks(e, s);
    release_blocks(e, s);
    double now = sp_now_ms();
    sp_event ev = {.kind = SP_EV_FINISH, .reason = why, .text = text, .text_len = len};
    ev.stop_index = why == SP_FINISH_STOP ? s->stop_hit : -1;
    ev.prompt_tokens = s->n_prompt;
    ev.completion_tokens = s->n_tokens - s->n_prompt;
    ev.cached_tokens = s->n_cached;
    ev.queue_ms = s->t_admit - s->req->t_submit;
    ev.ttft_ms = s->got_first ? s->t_first_token - s->req->t_submit : 0;
    ev.total_ms = now - s->req->t_submit;
    if (error) snprintf(ev.error, sizeof ev.error, "%s", error);
    pthread_mutex_lock(&e->stats_mu);
    e->stats.finished[why]++;
    pthread_mutex_unlock(&e->stats_mu);
    finish_request(s->req, &ev);
    s->req = NULL;
    seq_free(s);
}

/* Fails or cancels a request that never became a sequence. */
static void reject_queued(sp_engine *e, sp_request *r, sp_finish_reason why, const char *msg) {
    ENGINE_OWNED(e);
    sp_event ev = {
        .kind = SP_EV_FINISH, .reason = why, .prompt_tokens = r->n_prompt, .stop_index = -1};
    if (msg) snprintf(ev.error, sizeof ev.error, "%s", msg);
    pthread_mutex_lock(&e->stats_mu);
    e->stats.finished[why]++;
    pthread_mutex_unlock(&e->stats_mu);
    finish_request(r, &ev);
}

/* The longest hit of at most k blocks that the sliding group can serve:
 * computing from position h*bs on needs its blocks [swa_first(h*bs), h),
 * not the older ones (released blocks are usually gone). Takes references
 * on them; returns h. keys[j]: chain key of block j. */
static int match_sliding(sp_engine *e, seq *s, const uint64_t *keys, int k) {
    ENGINE_OWNED(e);
    int bs = e->info.block_size;
    while (k > 0) {
        int lo = swa_first(e, k * bs), j = lo;
        for (; j < k; j++) {
            int32_t id = sp_blocks_lookup_salted(e->swa_blocks, keys[j], s->tokens + (size_t)j * bs,
                                                 seq_images_block_salt(&s->im, j, bs));
            if (id < 0) break;
            s->swa[j] = id;
        }
        if (j == k) {
            s->swa_lo = lo;
            s->n_swa = k;
            return k;
        }
        for (int i = lo; i < j; i++) {
            sp_blocks_unref(e->swa_blocks, s->swa[i]);
            s->swa[i] = -1;
        }
        k = j; /* every hit longer than j needs block j */
    }
    return 0;
}

/* Looks up the prompt's full blocks in the prefix index. At least one prompt
 * token is always left to compute: its logits start the generation. With a
 * sliding group, a hit counts only as far as both groups can serve it. */
static void match_prefix(sp_engine *e, seq *s) {
    ENGINE_OWNED(e);
    int bs = e->info.block_size;
    int max_blocks = (s->n_prompt - 1) / bs;
    uint64_t key = 0, *keys = malloc((size_t)(max_blocks > 0 ? max_blocks : 1) * sizeof *keys);
    if (!keys) max_blocks = 0; /* no reuse beats failing the request */
    for (int i = 0; i < max_blocks; i++) {
        const int32_t *t = s->tokens + (size_t)i * bs;
        uint64_t salt = seq_images_block_salt(&s->im, i, bs);
        keys[i] = sp_blocks_key_salted(key, t, bs, salt);
        int32_t id = sp_blocks_lookup_salted(e->blocks, keys[i], t, salt);
        if (id < 0) break;
        s->table[s->n_table++] = id;
        key = keys[i];
    }
    if (e->swa_blocks) {
        int hit = match_sliding(e, s, keys, s->n_table);
        while (s->n_table > hit) sp_blocks_unref(e->blocks, s->table[--s->n_table]);
        key = hit > 0 ? keys[hit - 1] : 0;
    }
    free(keys);
    s->key = key;
    s->n_published = s->n_table;
    s->n_cached = s->n_computed = s->n_table * bs;
}

/* Reserves the sequence's blocks: its whole budget in the full group; in
 * the sliding group its window bound (its charge), minus what the prefix
 * hit already holds. Returns 0, or -1 if they do not fit now. */
static int reserve_blocks(sp_engine *e, seq *s, int need) {
    ENGINE_OWNED(e);
    if (sp_blocks_reserve(e->blocks, need - s->n_table) != 0) return -1;
    s->reserved = need - s->n_table;
    if (!e->swa_blocks) return 0;
    int held = s->n_swa - s->swa_lo;
    if (sp_blocks_reserve(e->swa_blocks, s->swa_charge - held) != 0) return -1;
    s->swa_reserved = s->swa_charge - held;
    return 0;
}

/* The request's tool-call constraint (token texts built at load). NULL on
 * out of memory. */
static sp_cons *cons_new(sp_engine *e, sp_request *r) {
    ENGINE_OWNED(e);
    return sp_cons_new(r->constraint, e->cons_vocab, e->info.eos_ids, e->info.n_eos,
                       r->keep_special);
}

/* The request's structured-output matcher. NULL on out of memory. */
static sp_gmatch *gmatch_new(sp_engine *e, sp_request *r) {
    ENGINE_OWNED(e);
    sp_gmatch_opts o = {.think_open = r->think_open[0] ? r->think_open : NULL,
                        .think_close = r->think_close[0] ? r->think_close : NULL,
                        .in_think = r->in_think,
                        .keep_special = r->keep_special};
    return sp_gmatch_new(r->grammar, e->gvocab, e->info.eos_ids, e->info.n_eos, &o);
}

/* Builds a sequence for r if its block budget fits now; NULL if it must
 * wait (or on allocation failure: *oom set). */
static seq *seq_admit(sp_engine *e, sp_request *r, int *oom) {
    ENGINE_OWNED(e);
    int bs = e->info.block_size, ctx = e->info.ctx_size;
    int limit = r->max_tokens > 0 ? r->n_prompt + r->max_tokens : ctx;
    if (limit > ctx) limit = ctx;
    int need = (limit + bs - 1) / bs;
    seq *s = calloc(1, sizeof *s);
    if (s) {
        s->tokens = malloc((size_t)limit * sizeof *s->tokens);
        s->table = malloc((size_t)need * sizeof *s->table);
        s->swa = malloc((size_t)need * sizeof *s->swa);
        s->detok = sp_detok_new(e->tok, !r->keep_special);
        if (r->constraint)
            s->cons = cons_new(e, r);
        else if (r->grammar)
            s->gm = gmatch_new(e, r);
    }
    if (!s || !s->tokens || !s->table || !s->swa || !s->detok || (r->constraint && !s->cons) ||
        seq_images_init(&s->im, r->images, r->image_pos, r->n_images) != 0 ||
        (!r->constraint && r->grammar && !s->gm)) {
        seq_free(s);
        *oom = 1;
        return NULL;
    }
    memcpy(s->tokens, r->prompt, (size_t)r->n_prompt * sizeof *s->tokens);
    s->n_tokens = s->n_prompt = r->n_prompt;
    s->limit = limit;
    s->stop_hit = -1;
    for (int i = 0; i < need; i++) s->swa[i] = -1;
    if (e->swa_blocks) {
        /* the running sequences' bounds must all fit the sliding pool */
        int charge = need < e->swa_bound ? need : e->swa_bound;
        if (e->swa_committed + charge > sp_blocks_total(e->swa_blocks)) {
            seq_free(s);
            return NULL;
        }
        s->swa_charge = charge;
        e->swa_committed += charge;
    }
    match_prefix(e, s);
    seq_images_retire(&s->im, s->n_computed); /* images served by the cache are not encoded */
    if (reserve_blocks(e, s, need) != 0) {
        release_blocks(e, s);
        seq_free(s);
        return NULL;
    }
    s->req = r;
    sp_rng_seed(&s->rng, r->seed);
    s->t_admit = sp_now_ms();
    pthread_mutex_lock(&e->stats_mu);
    e->stats.prompt_tokens += (uint64_t)s->n_prompt;
    e->stats.cached_tokens += (uint64_t)s->n_cached;
    pthread_mutex_unlock(&e->stats_mu);
    return s;
}

static void dequeue_head(sp_engine *e, sp_request *r) {
    ENGINE_OWNED(e);
    pthread_mutex_lock(&e->mu);
    e->q_head = r->next_queued;
    if (!e->q_head) e->q_tail = NULL;
    e->q_len--;
    pthread_mutex_unlock(&e->mu);
    r->next_queued = NULL;
}

/* Moves waiting requests into free running slots while their budgets fit
 * (first come, first served: the head waits rather than being overtaken).
 * Embedding requests take no slot: they go to embed.c's list at once. */
static void admit(sp_engine *e) {
    ENGINE_OWNED(e);
    for (;;) {
        pthread_mutex_lock(&e->mu);
        sp_request *r = e->q_head;
        pthread_mutex_unlock(&e->mu);
        if (!r) return;
        if (r->n_inputs > 0) {
            dequeue_head(e, r);
            sp_embed_admit(e, r);
            continue;
        }
        if (e->n_running >= e->opts.parallel) return;
        int oom = 0;
        seq *s = NULL;
        if (!atomic_load(&r->cancelled)) {
            s = seq_admit(e, r, &oom);
            /* wait for blocks, unless nothing runs that could free them */
            if (!s && !oom && e->n_running > 0) return;
        }
        dequeue_head(e, r);
        if (s)
            e->running[e->n_running++] = s;
        else if (oom)
            reject_queued(e, r, SP_FINISH_ERROR, "out of memory admitting the request");
        else if (atomic_load(&r->cancelled))
            reject_queued(e, r, SP_FINISH_CANCELLED, NULL);
        else
            reject_queued(e, r, SP_FINISH_ERROR, "the request does not fit the KV block pool");
    }
}

static void remove_running(sp_engine *e, int i) {
    ENGINE_OWNED(e);
    memmove(&e->running[i], &e->running[i + 1],
            (size_t)(e->n_running - i - 1) * sizeof *e->running);
    e->n_running--;
}

static void drop_cancelled(sp_engine *e) {
    ENGINE_OWNED(e);
    for (int i = 0; i < e->n_running;) {
        seq *s = e->running[i];
        if (atomic_load(&s->req->cancelled)) {
            remove_running(e, i);
            seq_finish(e, s, SP_FINISH_CANCELLED, NULL, 0, NULL);
        } else {
            i++;
        }
    }
}

static int ensure_blocks(sp_engine *e, seq *s, int upto) {
    ENGINE_OWNED(e);
    int bs = e->info.block_size;
    while (s->n_table * bs < upto) {
        int32_t id = sp_blocks_alloc(e->blocks);
        if (id < 0) return -1;
        s->reserved--;
        s->table[s->n_table++] = id;
    }
    while (e->swa_blocks && s->n_swa * bs < upto) {
        int32_t id = sp_blocks_alloc(e->swa_blocks);
        if (id < 0) return -1;
        s->swa_reserved--;
        s->swa[s->n_swa++] = id;
    }
    return 0;
}

static int is_eos(const sp_engine *e, int32_t t) {
    for (int i = 0; i < e->info.n_eos; i++)
        if (e->info.eos_ids[i] == t) return 1;
    return 0;
}

static void held_append(seq *s, const char *t, size_t n) {
    if (s->held_len + n + 1 > s->held_cap) {
        size_t cap = (s->held_len + n + 1) * 2;
        char *p = realloc(s->held, cap);
        if (!p) return; /* text lost only under memory exhaustion */
        s->held = p;
        s->held_cap = cap;
    }
    memcpy(s->held + s->held_len, t, n);
    s->held_len += n;
    s->held[s->held_len] = 0;
}

/* Takes the first n held bytes out as a malloc'd string. */
static char *held_take(seq *s, size_t n, size_t *len) {
    char *out = malloc(n + 1);
    if (!out) {
        *len = 0;
        return NULL;
    }
    out[n] = 0;
    if (n > 0) { /* held may still be NULL */
        memcpy(out, s->held, n);
        memmove(s->held, s->held + n, s->held_len - n);
        s->held_len -= n;
    }
    *len = n;
    return out;
}

/* Appends text from the detokenizer; returns 1 if a stop string completed
 * (the text before it is then left as the whole held buffer). */
static int feed_text(seq *s, const char *t, size_t n, size_t *safe) {
    if (n) held_append(s, t, n);
    size_t at =
        sp_stop_scan(s->held ? s->held : "", s->held_len, s->req->stop, s->req->n_stop, safe);
    if (at == SP_STOP_NONE) return 0;
    for (int i = 0; i < s->req->n_stop && s->stop_hit < 0; i++) { /* which one (Anthropic says) */
        size_t n = strlen(s->req->stop[i]);
        if (n && n <= s->held_len - at && !memcmp(s->held + at, s->req->stop[i], n))
            s->stop_hit = i;
    }
    s->held_len = at;
    *safe = at;
    return 1;
}

/* Ends a sequence whose generation is over: flushes the detokenizer (unless
 * a stop string already cut the text) and releases all held text (up to a
 * stop string, if the flush completes one). */
static void seq_end(sp_engine *e, int i, sp_finish_reason why, int flush) {
    ENGINE_OWNED(e);
    seq *s = e->running[i];
    char *t = NULL;
    size_t n = 0, safe;
    sp_error err;
    if (flush && s->n_pushed > 0 && sp_detok_flush(s->detok, &t, &n, &err) == SP_OK && t) {
        if (feed_text(s, t, n, &safe)) why = SP_FINISH_STOP;
    }
    free(t);
    size_t len;
    char *rest = held_take(s, s->held_len, &len);
    remove_running(e, i);
    seq_finish(e, s, why, rest, len, NULL);
}

static void fill_logprobs(sp_engine *e, seq *s, const float *row, sp_event *ev) {
    ENGINE_OWNED(e);
    int vocab = e->info.vocab;
    ev->logprob = sp_logprob_of(row, vocab, ev->token);
    if (s->req->top_logprobs > 0) {
        ev->n_top = s->req->top_logprobs;
        sp_top_logprobs(row, vocab, ev->n_top, ev->top);
    }
}

static void note_token_time(sp_engine *e, seq *s) {
    ENGINE_OWNED(e);
    double now = sp_now_ms();
    pthread_mutex_lock(&e->stats_mu);
    if (!s->got_first)
        sp_hist_add(&e->stats.ttft, (now - s->req->t_submit) / 1e3);
    else
        sp_hist_add(&e->stats.itl, (now - s->t_last_token) / 1e3);
    e->stats.generated_tokens++;
    pthread_mutex_unlock(&e->stats_mu);
    if (!s->got_first) s->t_first_token = now;
    s->got_first = 1;
    s->t_last_token = now;
}

typedef struct cons_ctx {
    const sp_cons *cons;
    sp_gmatch *gm;
    int budget; /* tokens left, this one included */
} cons_ctx;

static int cons_allows(void *ctx, int32_t id) {
    const cons_ctx *c = ctx;
    return c->gm ? sp_gmatch_allows(c->gm, id, c->budget) : sp_cons_allows(c->cons, id, c->budget);
}

static int cons_mask(void *ctx, float *logits, int vocab) {
    const cons_ctx *c = ctx;
    return c->gm ? sp_gmatch_mask(c->gm, logits, vocab, c->budget)
                 : sp_cons_mask(c->cons, logits, vocab, c->budget);
}

/* Picks the next token; with a constraint, the most likely (greedy) or a
 * sampled one among the tokens it allows. */
static int32_t seq_pick(sp_engine *e, seq *s, float *row) {
    ENGINE_OWNED(e);
    sp_request *r = s->req;
    int vocab = e->info.vocab;
    if (!s->cons && !s->gm) return sp_sample(row, vocab, &r->sampling, &s->rng, e->cand);
    cons_ctx c = {s->cons, s->gm, s->limit - s->n_tokens};
    sp_token_filter f = {cons_allows, cons_mask, &c};
    int32_t tok = sp_sample_allowed(row, vocab, &r->sampling, &s->rng, e->cand, &f);
    if (tok < 0) tok = e->info.n_eos ? e->info.eos_ids[0] : 0; /* nothing fits: end */
    if (s->gm)
        sp_gmatch_accept(s->gm, tok);
    else
        sp_cons_accept(s->cons, tok);
    return tok;
}

/* Samples the next token of running[i] from its logits row and streams it.
 * Returns 1 if the sequence finished (and was removed). */
static int seq_sample(sp_engine *e, int i, float *row) {
    ENGINE_OWNED(e);
    seq *s = e->running[i];
    sp_request *r = s->req;
    int vocab = e->info.vocab;
    sp_event ev = {.kind = SP_EV_TOKEN};
    sp_apply_penalties(row, vocab, &r->sampling, s->tokens, s->n_tokens, s->n_prompt, e->counts);
    int32_t tok;
    if (r->logprobs) {
        /* logprobs describe the model's distribution after bias and
         * penalties, before the sampler's temperature and truncation */
        memcpy(e->row_copy, row, (size_t)vocab * sizeof *row);
        tok = seq_pick(e, s, e->row_copy);
        ev.token = tok;
        fill_logprobs(e, s, row, &ev);
    } else {
        tok = seq_pick(e, s, row);
        ev.token = tok;
    }
    s->tokens[s->n_tokens++] = tok;
    note_token_time(e, s);
    if ((!r->ignore_eos || s->cons || s->gm) && is_eos(e, tok)) {
        seq_end(e, i, SP_FINISH_STOP, 1);
        return 1;
    }
    char *t = NULL;
    size_t n = 0, safe = 0;
    sp_error err;
    int stopped = 0;
    s->n_pushed++;
    if (sp_detok_push(s->detok, tok, &t, &n, &err) == SP_OK)
        stopped = feed_text(s, t ? t : "", n, &safe);
    free(t);
    ev.text = held_take(s, safe, &ev.text_len);
    sp_request_push(r, &ev);
    if (stopped) {
        seq_end(e, i, SP_FINISH_STOP, 0);
        return 1;
    }
    /* the call (or the structured value) is closed: nothing may follow */
    if ((s->cons && sp_cons_finished(s->cons)) || (s->gm && sp_gmatch_finished(s->gm))) {
        seq_end(e, i, SP_FINISH_STOP, 1);
        return 1;
    }
    int gen = s->n_tokens - s->n_prompt;
    if ((r->max_tokens > 0 && gen >= r->max_tokens) || s->n_tokens >= s->limit) {
        seq_end(e, i, SP_FINISH_LENGTH, 1);
        return 1;
    }
    return 0;
}

/* Plans one step into e->inputs / e->batch; returns the number of entries. */
static int plan_step(sp_engine *e, int *n_logits) {
    ENGINE_OWNED(e);
    int budget = e->opts.prefill_chunk, n = 0;
    *n_logits = 0;
    for (int i = 0; i < e->n_running; i++) {
        seq *s = e->running[i];
        int pending = s->n_tokens - s->n_computed;
        int take = pending;
        if (pending > 1 || s->n_computed < s->n_prompt) {
            if (take > budget) take = budget;
            if (take > 0 && sp_model_media_bidir(e->model)) /* an image's tokens see each other */
                take =
                    seq_images_align(&s->im, s->n_computed, s->n_computed + take) - s->n_computed;
            budget -= take;
        }
        if (take <= 0) continue;
        if (ensure_blocks(e, s, s->n_computed + take) != 0) {
            /* a bug; failing the request beats leaving it waiting forever */
            SP_ERROR("request %llu: KV block reservation broken (bug)",
                     (unsigned long long)s->req->id);
            remove_running(e, i--);
            seq_finish(e, s, SP_FINISH_ERROR, NULL, 0, "KV block reservation broken (bug)");
            continue;
        }
        sp_logits_want want = s->n_computed + take == s->n_tokens ? SP_LOGITS_LAST : SP_LOGITS_NONE;
        e->inputs[n] = (sp_seq_input){.tokens = s->tokens + s->n_computed,
                                      .n_tokens = take,
                                      .pos0 = s->n_computed,
                                      .block_table = s->table,
                                      .n_blocks = s->n_table,
                                      .want = want,
                                      .swa_table = s->swa,
                                      .n_swa_blocks = s->n_swa,
                                      .spans = s->im.spans,
                                      .n_spans = s->im.n_spans};
        e->batch[n++] = s;
        if (want == SP_LOGITS_LAST) (*n_logits)++;
    }
    return n;
}

static int index_of(sp_engine *e, seq *s) {
    for (int i = 0; i < e->n_running; i++)
        if (e->running[i] == s) return i;
    return -1;
}

/* Retires running sequence s with an error that is its own. */
static void seq_fail(sp_engine *e, seq *s, const char *msg) {
    ENGINE_OWNED(e);
    SP_ERROR("request %llu failed: %s", (unsigned long long)s->req->id, msg);
    int i = index_of(e, s);
    if (i >= 0) remove_running(e, i);
    seq_finish(e, s, SP_FINISH_ERROR, NULL, 0, msg);
}

/* The model's forward, with the test-only fault hooks in front of it. */
static sp_status run_forward(sp_engine *e, seq **batch, const sp_seq_input *in, int n,
                             float *logits, sp_error *err) {
    ENGINE_OWNED(e);
    for (int b = 0; b < n; b++)
        if (sp_fault_has_token(batch[b]->tokens, batch[b]->n_prompt, e->fault.forward_fail_token))
            return sp_fail(err, SP_EINTERNAL, "injected fault: forward_fail_token=%d",
                           (int)e->fault.forward_fail_token);
    return sp_model_forward(e->model, e->kv, in, n, logits, err);
}

/* The batched forward failed: run each sequence alone, so that a failure
 * that belongs to one request fails only that request. Logits rows land
 * where the batched call would have put them. Rerunning is safe: a forward
 * writes K/V only at the sequence's own new positions, and the rerun writes
 * the same values there. Marks e->failed[b]; returns how many failed. */
static int forward_isolated(sp_engine *e, int n, const sp_error *batch_err) {
    ENGINE_OWNED(e);
    int row = 0, n_failed = 0;
    for (int b = 0; b < n; b++) {
        float *out = e->logits + (size_t)row * e->info.vocab;
        sp_error err = {0};
        e->failed[b] = 0;
        if (n == 1) {
            err = *batch_err;
            e->failed[b] = 1;
        } else if (run_forward(e, &e->batch[b], &e->inputs[b], 1, out, &err) != SP_OK) {
            e->failed[b] = 1;
        }
        if (e->failed[b]) {
            n_failed++;
            seq_fail(e, e->batch[b], err.msg);
        }
        if (e->inputs[b].want == SP_LOGITS_LAST) row++;
    }
    return n_failed;
}

/* NaN or +Inf logits mean the forward went wrong for this sequence:
 * sampling from them would pick garbage silently. -Inf is a masked token. */
static int logits_ok(const float *row, int vocab) {
    for (int i = 0; i < vocab; i++)
        if (isnan(row[i]) || row[i] == INFINITY) return 0;
    return 1;
}

/* Samples from every sequence's logits row (rows in batch order). */
static void sample_batch(sp_engine *e, int n) {
    ENGINE_OWNED(e);
    int row = 0;
    for (int b = 0; b < n; b++) {
        if (e->inputs[b].want != SP_LOGITS_LAST) continue;
        float *lrow = e->logits + (size_t)row++ * e->info.vocab;
        if (e->failed[b]) continue;
        seq *s = e->batch[b];
        if (sp_fault_has_token(s->tokens, s->n_prompt, e->fault.nan_logits_token)) lrow[0] = NAN;
        if (!logits_ok(lrow, e->info.vocab)) {
            char msg[96];
            snprintf(msg, sizeof msg, "the model produced non-finite logits at position %d",
                     s->n_computed - 1);
            seq_fail(e, s, msg);
            continue;
        }
        int i = index_of(e, s);
        if (i >= 0) seq_sample(e, i, lrow);
    }
}

/* Drops plan entries whose sequence failed before the forward. */
static int compact_plan(sp_engine *e, int n, const unsigned char *gone) {
    ENGINE_OWNED(e);
    int k = 0;
    for (int b = 0; b < n; b++) {
        if (gone[b]) continue;
        e->inputs[k] = e->inputs[b];
        e->batch[k++] = e->batch[b];
    }
    return k;
}

/* Runs the vision tower on the images this step's chunks reach, one batch
 * for all sequences (then one by one if that fails, so a bad image fails
 * only its own request). Returns the number of plan entries left. */
static int encode_images(sp_engine *e, int n) {
    ENGINE_OWNED(e);
    if (!e->vision) return n;
    seq_images **list = malloc((size_t)n * sizeof *list);
    int *from = malloc((size_t)n * sizeof *from), *to = malloc((size_t)n * sizeof *to), k = 0;
    unsigned char *gone = calloc((size_t)n, 1);
    if (!list || !from || !to || !gone) {
        free(list), free(from), free(to), free(gone);
        return n; /* the forward then refuses the spans without features */
    }
    for (int b = 0; b < n; b++) {
        seq *s = e->batch[b];
        from[k] = e->inputs[b].pos0, to[k] = from[k] + e->inputs[b].n_tokens;
        if (seq_images_pending(&s->im, from[k], to[k])) list[k++] = &s->im;
    }
    sp_error err = {0};
    if (k && seq_images_encode(e->vision, list, from, to, k, &err) != SP_OK) {
        SP_ERROR("vision tower on %d sequences failed: %s%s", k, err.msg,
                 k > 1 ? " (retrying them one by one)" : "");
        for (int b = 0; b < n; b++) {
            seq *s = e->batch[b];
            int f = e->inputs[b].pos0, t = f + e->inputs[b].n_tokens;
            seq_images *one = &s->im;
            if (!seq_images_pending(one, f, t)) continue;
            if (k == 1 || seq_images_encode(e->vision, &one, &f, &t, 1, &err) != SP_OK) {
                gone[b] = 1;
                seq_fail(e, s, err.msg);
            }
        }
    }
    for (int b = 0; b < n; b++) { /* the spans may have grown */
        if (gone[b]) continue;    /* its sequence is freed */
        e->inputs[b].spans = e->batch[b]->im.spans;
        e->inputs[b].n_spans = e->batch[b]->im.n_spans;
    }
    n = compact_plan(e, n, gone);
    free(list), free(from), free(to), free(gone);
    return n;
}

/* One engine step; returns the number of sequences that ran a forward. */
static int step(sp_engine *e) {
    ENGINE_OWNED(e);
    int n_logits;
    int n = plan_step(e, &n_logits);
    if (n > 0) n = encode_images(e, n);
    if (n == 0) return 0;
    if (e->swa_blocks && sp_blocks_used(e->swa_blocks) > e->swa_peak)
        e->swa_peak = sp_blocks_used(e->swa_blocks);
    memset(e->failed, 0, (size_t)n * sizeof *e->failed);
    sp_error err = {0};
    if (run_forward(e, e->batch, e->inputs, n, e->logits, &err) != SP_OK) {
        SP_ERROR("forward of %d sequences failed: %s%s", n, err.msg,
                 n > 1 ? " (retrying them one by one)" : "");
        if (forward_isolated(e, n, &err) == n) return n;
    }
    uint64_t prefilled = 0;
    for (int b = 0; b < n; b++) {
        if (e->failed[b]) continue;
        seq *s = e->batch[b];
        if (s->n_computed < s->n_prompt) prefilled += (uint64_t)e->inputs[b].n_tokens;
        s->n_computed += e->inputs[b].n_tokens;
        publish_blocks(e, s);
        swa_trim(e, s);
        seq_images_retire(&s->im, s->n_computed);
    }
    sample_batch(e, n);
    pthread_mutex_lock(&e->stats_mu);
    e->stats.prefill_tokens += prefilled;
    e->stats.steps++;
    pthread_mutex_unlock(&e->stats_mu);
    return n;
}

static void publish_stats(sp_engine *e) {
    ENGINE_OWNED(e);
    pthread_mutex_lock(&e->stats_mu);
    e->stats.running = e->n_running;
    sp_engine_stats *st = &e->stats;
    st->kv_blocks_total = st->kv_blocks_used = st->kv_blocks_cached = 0;
    if (e->full_real) { /* else its blocks are bookkeeping only */
        st->kv_blocks_total = sp_blocks_total(e->blocks);
        st->kv_blocks_used = sp_blocks_used(e->blocks);
        st->kv_blocks_cached = sp_blocks_cached(e->blocks);
    }
    if (e->swa_blocks) {
        st->kv_swa_blocks_total = sp_blocks_total(e->swa_blocks);
        st->kv_swa_blocks_used = sp_blocks_used(e->swa_blocks);
        st->kv_swa_blocks_cached = sp_blocks_cached(e->swa_blocks);
        st->kv_swa_blocks_peak = e->swa_peak;
        st->kv_blocks_total += st->kv_swa_blocks_total;
        st->kv_blocks_used += st->kv_swa_blocks_used;
        st->kv_blocks_cached += st->kv_swa_blocks_cached;
    }
    st->kv_blocks_free = st->kv_blocks_total - st->kv_blocks_used;
    pthread_mutex_unlock(&e->stats_mu);
}

static void cancel_everything(sp_engine *e) {
    ENGINE_OWNED(e);
    for (int i = 0; i < e->n_running; i++) atomic_store(&e->running[i]->req->cancelled, 1);
    for (sp_request *r = e->emb_head; r; r = r->next_embed) atomic_store(&r->cancelled, 1);
    pthread_mutex_lock(&e->mu);
    for (sp_request *r = e->q_head; r; r = r->next_queued) atomic_store(&r->cancelled, 1);
    pthread_mutex_unlock(&e->mu);
}

/* Sleeps while there is nothing to do; returns 0 when the loop should end. */
static int wait_for_work(sp_engine *e) {
    ENGINE_OWNED(e);
    pthread_mutex_lock(&e->mu);
    while (!e->stopping && e->n_running == 0 && !e->q_head && !e->emb_head)
        pthread_cond_wait(&e->cv, &e->mu);
    int stopping = e->stopping, idle = e->n_running == 0 && !e->q_head && !e->emb_head;
    double deadline = e->stop_deadline;
    pthread_mutex_unlock(&e->mu);
    if (stopping && idle) return 0;
    if (stopping && sp_now_ms() >= deadline) cancel_everything(e);
    return 1;
}

sp_status sp_sched_run(sp_engine *e, sp_error *err) {
    ENGINE_OWNED(e);
    long steps = 0;
    while (wait_for_work(e)) {
        sp_hb_step_begin(e); /* the watchdog measures from here (engine.c) */
        admit(e);
        drop_cancelled(e);
        if (step(e) + sp_embed_step(e) > 0) steps++;
        if (e->fault.hang_after_steps > 0 && steps >= e->fault.hang_after_steps)
            sp_fault_hang("engine_hang_after_steps", e->fault.hang_after_steps);
        publish_stats(e);
        sp_hb_step_end(e);
        if (e->fault.die_after_steps > 0 && steps >= e->fault.die_after_steps)
            return sp_fail(err, SP_EINTERNAL, "injected fault: engine_die_after_steps=%ld",
                           e->fault.die_after_steps);
    }
    publish_stats(e);
    return SP_OK;
}

void sp_sched_free(sp_engine *e) {
    ENGINE_OWNED(e);
    for (int i = 0; i < e->n_running; i++) {
        seq *s = e->running[i];
        if (e->died)
            seq_finish(e, s, SP_FINISH_ERROR, NULL, 0, "the engine thread died");
        else
            seq_finish(e, s, SP_FINISH_CANCELLED, NULL, 0, "the engine stopped");
    }
    e->n_running = 0;
    sp_embed_free(e);
    free(e->running);
    free(e->batch);
    free(e->inputs);
    free(e->logits);
    free(e->counts);
    free(e->cand);
    free(e->row_copy);
    free(e->failed);
    sp_gvocab_free(e->gvocab);
    e->gvocab = NULL;
    sp_cons_vocab_free(e->cons_vocab);
    e->cons_vocab = NULL;
    e->row_copy = NULL;
    e->failed = NULL;
    e->running = NULL;
    e->batch = NULL;
    e->inputs = NULL;
    e->logits = NULL;
    e->counts = NULL;
    e->cand = NULL;
}
