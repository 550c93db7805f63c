/* Engine lifecycle: the thread that loads the model (and so owns it), the
 * bounded request queue, submit-time validation, stop, and stats. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/file.h"
#include "base/log.h"
#include "engine/engine_impl.h"

/* ChatML, the fallback for models that ship no chat template (as
 * llama-server does). Documented in docs/api.md. */
static const char chatml_template[] =
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const double sp_hist_bounds[SP_HIST_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                0.1,   0.25,   0.5,   1.0,  2.5,   10.0};

void sp_hist_add(sp_hist *h, double seconds) {
    int i = 0;
    while (i < SP_HIST_BUCKETS && seconds > sp_hist_bounds[i]) i++;
    h->counts[i]++;
    h->sum += seconds;
    h->n++;
}

void sp_engine_opts_default(sp_engine_opts *o) {
    memset(o, 0, sizeof *o);
    sp_model_opts_default(&o->model);
    o->block_size = 16;
    o->parallel = 4;
    o->prefill_chunk = 256;
    o->queue_size = 64;
    /* A step is at most prefill_chunk prompt tokens plus one token per
     * running sequence: ~2 x parameters x 256 FLOPs, about 4 TFLOPs for an 8B
     * model, i.e. seconds on a server CPU and up to about a minute on a small
     * one. 120 s leaves that headroom and still turns a hang into a restart
     * within two minutes (docs/errors.md). */
    o->watchdog_s = 120;
}

static void set_state(sp_engine *e, sp_engine_state s) {
    pthread_mutex_lock(&e->mu);
    e->state = s;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static sp_status load_tokenizer(sp_engine *e, sp_error *err) {
    ENGINE_OWNED(e);
    return sp_tokenizer_load(&e->tok, e->model_path, err);
}

/* The template: --chat-template FILE, else the model folder's (as
 * transformers finds it), else the tokenizer's, else ChatML. Also fills the
 * bos/eos strings templates use. */
static sp_status load_template(sp_engine *e, sp_error *err) {
    ENGINE_OWNED(e);
    char *file_src = NULL;
    const char *src = NULL;
    if (sp_path_is_dir(e->model_path)) {
        sp_status st =
            sp_chat_template_load(e->model_path, &file_src, &e->bos_str, &e->eos_str, err);
        if (st != SP_OK && st != SP_ENOTFOUND) return st; /* ENOTFOUND: no template */
    }
    if (e->template_path) {
        free(file_src);
        size_t len;
        SP_TRY(sp_read_text(e->template_path, &file_src, &len, err));
    }
    src = file_src ? file_src : sp_tokenizer_chat_template(e->tok);
    if (!src || !*src) {
        src = chatml_template;
        e->info.template_is_fallback = 1;
        SP_INFO("model has no chat template: using the ChatML fallback");
    }
    sp_status st = sp_template_parse(&e->tmpl, src, err);
    free(file_src);
    if (st != SP_OK)
        return sp_wrap(err, "chat template%s%s", e->template_path ? " " : "",
                       e->template_path ? e->template_path : "");
    return SP_OK;
}

/* EOS ids: the model's (generation_config.json / config.json / GGUF) and the
 * tokenizer's, without duplicates. */
static void collect_eos(sp_engine *e, const sp_model_desc *d) {
    int n = 0;
    for (int i = 0; i < d->n_eos && n < 14; i++) e->eos_ids[n++] = d->eos_ids[i];
    int32_t t = sp_tokenizer_eos_id(e->tok);
    int dup = 0;
    for (int i = 0; i < n; i++) dup |= e->eos_ids[i] == t;
    if (t >= 0 && !dup) e->eos_ids[n++] = t;
    /* the ChatML fallback ends a turn with <|im_end|>: stop there when the
     * vocabulary has it as a token */
    int32_t im_end =
        e->info.template_is_fallback ? sp_tokenizer_token_id(e->tok, "<|im_end|>") : -1;
    dup = 0;
    for (int i = 0; i < n; i++) dup |= e->eos_ids[i] == im_end;
    if (im_end >= 0 && !dup) e->eos_ids[n++] = im_end;
    e->info.eos_ids = e->eos_ids;
    e->info.n_eos = n;
}

static sp_status alloc_scratch(sp_engine *e, int vocab) {
    ENGINE_OWNED(e);
    int p = e->opts.parallel;
    e->running = calloc((size_t)p, sizeof *e->running);
    e->batch = calloc((size_t)p, sizeof *e->batch);
    e->inputs = calloc((size_t)p, sizeof *e->inputs);
    e->logits = malloc((size_t)p * (size_t)vocab * sizeof *e->logits);
    e->counts = calloc((size_t)vocab, sizeof *e->counts);
    e->cand = malloc((size_t)vocab * sizeof *e->cand);
    e->row_copy = malloc((size_t)vocab * sizeof *e->row_copy);
    e->failed = calloc((size_t)p, sizeof *e->failed);
    if (!e->running || !e->batch || !e->inputs || !e->logits || !e->counts || !e->cand ||
        !e->row_copy || !e->failed)
        return SP_ENOMEM;
    return SP_OK;
}

/* The vision tower of a multimodal checkpoint. Failing to load it leaves a
 * text-only server (the model served as text before image input existed),
 * and image requests are answered with the reason. */
static void load_vision(sp_engine *e) {
    ENGINE_OWNED(e);
    e->max_chunk = e->opts.prefill_chunk;
    if (!sp_path_is_dir(e->model_path) || !sp_vision_present(e->model_path)) {
        snprintf(e->vision_missing, sizeof e->vision_missing,
                 "the model has no vision tower: it takes no image input");
        return;
    }
    sp_error err = {0};
    if (sp_vision_load(&e->vision, e->model_path, &e->opts.model, sp_model_pool(e->model), &err) !=
        SP_OK) {
        snprintf(e->vision_missing, sizeof e->vision_missing,
                 "image input is unavailable for this model: %s", err.msg);
        SP_WARN("vision tower not loaded, serving text only: %s", err.msg);
        return;
    }
    const sp_vision_info *vi = sp_vision_get_info(e->vision);
    int max_img = vi->kind == SP_VISION_GEMMA3 ? vi->soft_tokens : vi->proc.max_soft_tokens;
    if (max_img > e->max_chunk) e->max_chunk = max_img;
    e->info.vision = vi;
    e->info.max_image_tokens = max_img;
    SP_INFO("vision tower: %s images, up to %d soft tokens each", sp_proc_kind_name(vi->proc.kind),
            max_img);
}

/* Every token's text and their trie, for constrained decoding (tool_choice,
 * structured output): built here so no request pays for it. */
static sp_status build_token_texts(sp_engine *e, sp_error *err) {
    ENGINE_OWNED(e);
    double t0 = sp_now_ms();
    e->cons_vocab = sp_cons_vocab_new(e->tok);
    e->gvocab = e->cons_vocab ? sp_gvocab_new(e->cons_vocab) : NULL;
    if (!e->gvocab) return sp_fail(err, SP_ENOMEM, "token texts: out of memory");
    SP_INFO("loading: token texts and their trie (%d nodes) in %.0f ms", sp_gvocab_nodes(e->gvocab),
            sp_now_ms() - t0);
    return SP_OK;
}

static sp_status engine_load(sp_engine *e, sp_error *err) {
    ENGINE_OWNED(e);
    double t0 = sp_now_ms();
    SP_INFO("loading %s ...", e->model_path);
    SP_TRY(sp_model_load(&e->model, e->model_path, &e->opts.model, err));
    const sp_model_desc *d = sp_model_get_desc(e->model);
    SP_INFO("loading: model %s (%d layers, vocab %d) in %.1f s; tokenizer ...", d->arch,
            d->n_layers, d->vocab, (sp_now_ms() - t0) / 1e3);
    SP_TRY(load_tokenizer(e, err));
    SP_TRY(load_template(e, err));
    load_vision(e);
    e->info.vision_missing = e->info.vision ? NULL : e->vision_missing;
    SP_TRY(sp_engine_size_kv(e, d, err));
    SP_TRY(sp_embed_load(e, err));
    if (alloc_scratch(e, d->vocab) != SP_OK)
        return sp_fail(err, SP_ENOMEM, "engine scratch: out of memory");
    collect_eos(e, d);
    SP_TRY(build_token_texts(e, err));
    const char *b = sp_tokenizer_bos_token(e->tok), *s = sp_tokenizer_eos_token(e->tok);
    if (!e->bos_str) e->bos_str = strdup(b ? b : "");
    if (!e->eos_str) e->eos_str = strdup(s ? s : "");
    e->info.tokenizer = e->tok;
    e->info.chat_template = e->tmpl;
    e->info.bos_token = e->bos_str;
    e->info.eos_token = e->eos_str;
    e->info.vocab = d->vocab;
    e->info.parallel = e->opts.parallel;
    e->info.model_path = e->model_path;
    pthread_mutex_lock(&e->stats_mu);
    e->stats.kv_blocks_total = e->stats.kv_blocks_free = e->info.n_blocks;
    e->stats.kv_swa_blocks_total = e->info.n_swa_blocks;
    pthread_mutex_unlock(&e->stats_mu);
    SP_INFO("ready in %.1f s: context %d tokens, %d KV blocks of %d tokens, %d parallel",
            (sp_now_ms() - t0) / 1e3, e->info.ctx_size, e->info.n_blocks, e->info.block_size,
            e->opts.parallel);
    return SP_OK;
}

/* Frees what only the engine thread may touch. The tokenizer and template
 * stay (HTTP threads may still read them) until sp_engine_free. */
static void engine_unload(sp_engine *e) {
    ENGINE_OWNED(e);
    sp_sched_free(e);
    sp_blocks_free(e->blocks);
    e->blocks = NULL;
    sp_blocks_free(e->swa_blocks);
    e->swa_blocks = NULL;
    sp_kv_free(e->kv);
    e->kv = NULL;
    sp_vision_free(e->vision);
    e->vision = NULL;
    sp_model_free(e->model);
    e->model = NULL;
}

/* The loop ended without being asked to: remember why, so that /health and
 * the serve command can tell (the state turns STOPPED right after). */
static void engine_died(sp_engine *e, const sp_error *why) {
    ENGINE_OWNED(e);
    SP_ERROR("the engine thread died: %s", why->msg);
    pthread_mutex_lock(&e->mu);
    e->died = 1;
    e->load_err = *why;
    pthread_mutex_unlock(&e->mu);
}

static void *engine_main(void *arg) {
    sp_engine *e = arg;
    /* only this thread reads owner (ENGINE_OWNED), so it sets it itself */
    e->owner = pthread_self();
    sp_error err = {0};
    if (engine_load(e, &err) != SP_OK) {
        SP_ERROR("load failed: %s", err.msg);
        pthread_mutex_lock(&e->mu);
        e->load_err = err;
        pthread_mutex_unlock(&e->mu);
        engine_unload(e);
        set_state(e, SP_ENGINE_FAILED);
    } else {
        set_state(e, SP_ENGINE_READY);
        if (sp_sched_run(e, &err) != SP_OK) engine_died(e, &err);
        engine_unload(e); /* fails what still runs */
        set_state(e, SP_ENGINE_STOPPED);
    }
    /* anything still queued (stop raced with a submit, load failed, or the
     * loop died): every request gets its FINISH, so no waiter hangs */
    pthread_mutex_lock(&e->mu);
    sp_request *q = e->q_head;
    e->q_head = e->q_tail = NULL;
    e->q_len = 0;
    int died = e->died;
    pthread_mutex_unlock(&e->mu);
    while (q) {
        sp_request *next = q->next_queued;
        sp_event ev = {.kind = SP_EV_FINISH,
                       .reason = died ? SP_FINISH_ERROR : SP_FINISH_CANCELLED,
                       .stop_index = -1};
        snprintf(ev.error, sizeof ev.error, "%s",
                 died ? "the engine thread died" : "the engine stopped");
        sp_request_push(q, &ev);
        sp_request_release(q);
        q = next;
    }
    return NULL;
}

sp_status sp_engine_start(sp_engine **out, const sp_engine_opts *opts, sp_error *err) {
    sp_engine *e = calloc(1, sizeof *e);
    if (!e) return sp_fail(err, SP_ENOMEM, "engine: out of memory");
    e->opts = *opts;
    /* read once, here: the engine thread never looks at the environment */
    if (sp_fault_parse(getenv(SP_FAULT_ENV), &e->fault, err) != SP_OK) {
        free(e);
        return err ? err->status : SP_EINVAL;
    }
    if (sp_fault_any(&e->fault))
        SP_WARN("%s is set: faults will be injected (test only)", SP_FAULT_ENV);
    if (e->opts.block_size <= 0) e->opts.block_size = 16;
    if (e->opts.parallel <= 0) e->opts.parallel = 1;
    if (e->opts.prefill_chunk <= 0) e->opts.prefill_chunk = 256;
    if (e->opts.queue_size <= 0) e->opts.queue_size = 64;
    e->model_path = strdup(opts->model_path ? opts->model_path : "");
    e->template_path = opts->chat_template_file ? strdup(opts->chat_template_file) : NULL;
    e->opts.model_path = e->model_path;
    e->opts.chat_template_file = e->template_path;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pthread_mutex_init(&e->stats_mu, NULL);
    atomic_init(&e->next_id, 1);
    atomic_init(&e->hb_step_start, 0);
    atomic_init(&e->hb_steps, 0);
    e->state = SP_ENGINE_LOADING;
    int rc = pthread_create(&e->thread, NULL, engine_main, e);
    if (rc != 0) {
        free(e->model_path);
        free(e->template_path);
        free(e);
        return sp_fail(err, SP_EINTERNAL, "engine: cannot start thread (%s)", strerror(rc));
    }
    *out = e;
    return SP_OK;
}

/* The watchdog: 1 if the engine thread has been inside one step for longer
 * than opts.watchdog_s (it has work, but makes no progress). Reads only the
 * heartbeat atomics. */
static int engine_hung(sp_engine *e, sp_error *err) {
    if (e->opts.watchdog_s <= 0) return 0;
    long long t0 = atomic_load_explicit(&e->hb_step_start, memory_order_relaxed);
    if (t0 == 0) return 0;
    double secs = (sp_now_ms() - (double)t0) / 1e3;
    if (secs <= e->opts.watchdog_s) return 0;
    unsigned long long done = atomic_load_explicit(&e->hb_steps, memory_order_relaxed);
    sp_fail(err, SP_EINTERNAL,
            "the engine thread hangs: step %llu has run for %.0f s, longer than --watchdog %d s",
            done + 1, secs, e->opts.watchdog_s);
    return 1;
}

sp_engine_state sp_engine_get_state(sp_engine *e, sp_error *err) {
    pthread_mutex_lock(&e->mu);
    sp_engine_state s = e->state;
    if ((s == SP_ENGINE_FAILED || (s == SP_ENGINE_STOPPED && e->died)) && err) *err = e->load_err;
    pthread_mutex_unlock(&e->mu);
    if (s == SP_ENGINE_READY && engine_hung(e, err)) s = SP_ENGINE_HUNG;
    return s;
}

static void deadline_in(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

sp_engine_state sp_engine_wait_loaded(sp_engine *e, int timeout_ms) {
    struct timespec until;
    deadline_in(&until, timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&e->mu);
    while (e->state == SP_ENGINE_LOADING) {
        if (timeout_ms < 0)
            pthread_cond_wait(&e->cv, &e->mu);
        else if (pthread_cond_timedwait(&e->cv, &e->mu, &until) == ETIMEDOUT)
            break;
    }
    sp_engine_state s = e->state;
    pthread_mutex_unlock(&e->mu);
    return s;
}

const sp_engine_info *sp_engine_get_info(sp_engine *e) {
    /* the mutex orders the READY store after every write to info */
    pthread_mutex_lock(&e->mu);
    int ready = e->state == SP_ENGINE_READY;
    pthread_mutex_unlock(&e->mu);
    return ready ? &e->info : NULL;
}

/* Images must sit on runs of the soft token, in order, one run each, and
 * every soft token of the prompt must belong to an image. */
static sp_status validate_images(const sp_engine_info *in, const sp_request_params *p,
                                 sp_error *err) {
    if (p->n_images <= 0) return SP_OK;
    if (!in->vision) return sp_fail(err, SP_EUNSUPPORTED, "%s", in->vision_missing);
    int32_t soft = in->vision->image_id;
    int covered = 0, end = 0;
    for (int k = 0; k < p->n_images; k++) {
        const sp_pixels *px = p->images[k].pixels;
        int pos = p->images[k].pos;
        if (!px || px->n_soft <= 0 || px->n_soft > in->max_image_tokens)
            return sp_fail(err, SP_EINVAL, "image %d: %d soft tokens (at most %d)", k,
                           px ? px->n_soft : 0, in->max_image_tokens);
        if (pos < end || pos + px->n_soft > p->n_prompt)
            return sp_fail(err, SP_EINVAL,
                           "image %d: soft tokens at %d..%d are out of order or "
                           "outside the prompt of %d tokens",
                           k, pos, pos + px->n_soft - 1, p->n_prompt);
        for (int i = pos; i < pos + px->n_soft; i++)
            if (p->prompt[i] != soft)
                return sp_fail(err, SP_EINVAL, "image %d: prompt[%d] is %d, not the image token %d",
                               k, i, p->prompt[i], soft);
        end = pos + px->n_soft;
        covered += px->n_soft;
    }
    int total = 0;
    for (int i = 0; i < p->n_prompt; i++) total += p->prompt[i] == soft;
    if (total != covered)
        return sp_fail(err, SP_EINVAL, "the prompt holds %d image tokens but its images fill %d",
                       total, covered);
    return SP_OK;
}

/* Embedding inputs: each non-empty and within the context. */
static sp_status validate_inputs(const sp_engine_info *in, const sp_request_params *p,
                                 sp_error *err) {
    if (!in->embed_dim)
        return sp_fail(err, SP_EINVAL,
                       "this model does not serve embeddings (start the server with --embeddings)");
    if (p->n_images > 0) return sp_fail(err, SP_EINVAL, "embedding inputs take no images");
    long sum = 0;
    for (int i = 0; i < p->n_inputs; i++) {
        if (p->input_len[i] <= 0) return sp_fail(err, SP_EINVAL, "input %d is empty", i);
        if (p->input_len[i] > in->ctx_size)
            return sp_fail(err, SP_ERANGE,
                           "input %d has %d tokens but the context limit is %d tokens", i,
                           p->input_len[i], in->ctx_size);
        sum += p->input_len[i];
    }
    if (sum != p->n_prompt)
        return sp_fail(err, SP_EINVAL, "the inputs hold %ld tokens, the prompt %d", sum,
                       p->n_prompt);
    return SP_OK;
}

static sp_status validate(const sp_engine_info *in, const sp_request_params *p, sp_error *err) {
    if (p->n_prompt <= 0) return sp_fail(err, SP_EINVAL, "the prompt is empty");
    if (p->n_inputs < 0) return sp_fail(err, SP_EINVAL, "n_inputs is negative");
    if (p->n_inputs == 0 && in->embed_only)
        return sp_fail(err, SP_EINVAL, "this is an embedding model: it serves /v1/embeddings only");
    for (int i = 0; i < p->n_prompt; i++)
        if (p->prompt[i] < 0 || p->prompt[i] >= in->vocab)
            return sp_fail(err, SP_EINVAL,
                           "token id %d at prompt[%d] is outside the vocabulary "
                           "(0..%d)",
                           p->prompt[i], i, in->vocab - 1);
    if (p->n_inputs > 0) return validate_inputs(in, p, err);
    if (p->n_prompt >= in->ctx_size)
        return sp_fail(err, SP_ERANGE,
                       "the prompt has %d tokens but the context limit is %d tokens (at least "
                       "one must be left for the completion)",
                       p->n_prompt, in->ctx_size);
    if (p->max_tokens > 0 && (long)p->n_prompt + p->max_tokens > in->ctx_size)
        return sp_fail(err, SP_ERANGE,
                       "the context limit is %d tokens, but %d were requested (%d in the prompt, "
                       "%d for the completion)",
                       in->ctx_size, p->n_prompt + p->max_tokens, p->n_prompt, p->max_tokens);
    if (p->top_logprobs < 0 || p->top_logprobs > SP_MAX_TOP_LOGPROBS)
        return sp_fail(err, SP_EINVAL, "top_logprobs must be between 0 and %d",
                       SP_MAX_TOP_LOGPROBS);
    return validate_images(in, p, err);
}

sp_status sp_engine_submit(sp_engine *e, const sp_request_params *p, sp_request **out,
                           sp_error *err) {
    *out = NULL;
    const sp_engine_info *in = sp_engine_get_info(e);
    if (!in)
        return sp_fail(err, SP_EBUSY,
                       sp_engine_get_state(e, NULL) == SP_ENGINE_LOADING
                           ? "the model is not loaded yet"
                           : "the engine is not serving (it failed, stopped or hangs)");
    SP_TRY(validate(in, p, err));
    uint64_t id = atomic_fetch_add(&e->next_id, 1);
    sp_request_params q = *p;
    if (!q.has_seed) q.seed = id * 0x9e3779b97f4a7c15ull ^ (uint64_t)time(NULL);
    sp_request *r = sp_request_new(&q, id);
    if (!r) return sp_fail(err, SP_ENOMEM, "out of memory queueing the request");
    pthread_mutex_lock(&e->mu);
    int ok = e->state == SP_ENGINE_READY && !e->stopping && e->q_len < e->opts.queue_size;
    if (ok) {
        if (e->q_tail)
            e->q_tail->next_queued = r;
        else
            e->q_head = r;
        e->q_tail = r;
        e->q_len++;
        pthread_cond_broadcast(&e->cv);
    }
    int stopping = e->stopping;
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_lock(&e->stats_mu);
    if (ok)
        e->stats.requests_submitted++;
    else
        e->stats.requests_rejected++;
    pthread_mutex_unlock(&e->stats_mu);
    if (!ok) {
        sp_request_release(r);
        sp_request_release(r);
        return sp_fail(err, SP_EBUSY,
                       stopping ? "the server is shutting down"
                                : "the request queue is full, retry later");
    }
    *out = r;
    return SP_OK;
}

void sp_engine_get_stats(sp_engine *e, sp_engine_stats *s) {
    pthread_mutex_lock(&e->stats_mu);
    *s = e->stats;
    pthread_mutex_unlock(&e->stats_mu);
    pthread_mutex_lock(&e->mu);
    s->waiting = e->q_len;
    pthread_mutex_unlock(&e->mu);
}

void sp_engine_stop(sp_engine *e, int grace_ms) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    int joinable = !e->stopping;
    e->stopping = 1;
    e->stop_deadline = sp_now_ms() + (grace_ms > 0 ? grace_ms : 0);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (joinable) pthread_join(e->thread, NULL);
}

void sp_engine_free(sp_engine *e) {
    if (!e) return;
    sp_engine_stop(e, 0);
    sp_template_free(e->tmpl);
    sp_tokenizer_free(e->tok);
    free(e->bos_str);
    free(e->eos_str);
    free(e->model_path);
    free(e->template_path);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->stats_mu);
    free(e);
}
