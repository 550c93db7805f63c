/* Sliding-window layers keep only their window (issue 6). Sliding-window
 * fixtures (all layers sliding: mistral; hybrid: gemma 2/3) run through the
 * engine with 4-token blocks over sequences several windows long. Checks:
 * greedy ids equal transformers' (or, for prompts without a reference, the
 * untrimmed single-sequence path); the sliding group never holds more than
 * its window bound (the whole sequence would need 16 blocks); prefix hits
 * served from released-then-cached sliding blocks give the same ids; every
 * block comes back; --kv-memory splits as docs/api.md says. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../conformance/fixture.h"
#include "check.h"
#include "test_device.h"
#include "model_dir.h"
#include "engine/blocks.h"
#include "engine/engine.h"
#include "model/seq.h"

#define BS    4
#define CHUNK 3
#define CTX   128

static fixture fx;

/* A model directory: the fixture's weights plus a byte-level tokenizer
 * covering its ids (the fixtures ship none; the engine needs one). */
static int make_model_dir(const char *dir) {
    return model_dir_byte_tokenizer(fx.dir, fx.vocab, dir);
}

typedef struct result {
    int32_t ids[64];
    int n, finished, cached;
} result;

static void generate(sp_engine *e, const int32_t *prompt, int n_prompt, int max_tokens,
                     result *out) {
    memset(out, 0, sizeof *out);
    sp_request_params p;
    memset(&p, 0, sizeof p);
    sp_sampling_default(&p.sampling);
    p.sampling.temperature = 0;
    p.prompt = prompt;
    p.n_prompt = n_prompt;
    p.max_tokens = max_tokens;
    p.ignore_eos = 1;
    sp_request *r = NULL;
    sp_error err = {0};
    if (sp_engine_submit(e, &p, &r, &err) != SP_OK) {
        fprintf(stderr, "submit: %s\n", err.msg);
        return;
    }
    sp_event ev;
    while (!out->finished && sp_request_next(r, &ev, 10000)) {
        if (ev.kind == SP_EV_TOKEN && out->n < 64) {
            out->ids[out->n++] = ev.token;
        } else if (ev.kind != SP_EV_TOKEN) {
            out->finished = ev.reason == SP_FINISH_LENGTH;
            out->cached = ev.cached_tokens;
            if (ev.error[0]) fprintf(stderr, "request failed: %s\n", ev.error);
        }
        sp_event_clear(&ev);
    }
    sp_request_release(r);
}

/* The untrimmed path: one sequence with every position's K/V. */
static int greedy_untrimmed(sp_model *m, const int32_t *prompt, int n_prompt, int n, int32_t *out) {
    sp_seq s;
    sp_error err = {0};
    float *logits = malloc((size_t)fx.vocab * sizeof *logits);
    int ok = logits && sp_seq_init(&s, m, n_prompt + n, &err) == SP_OK;
    if (ok) {
        ok = sp_seq_feed(&s, m, prompt, n_prompt, SP_LOGITS_LAST, logits, &err) == SP_OK;
        for (int i = 0; ok && i < n; i++) {
            out[i] = sp_argmax(logits, fx.vocab);
            ok =
                i + 1 == n || sp_seq_feed(&s, m, &out[i], 1, SP_LOGITS_LAST, logits, &err) == SP_OK;
        }
        sp_seq_free(&s);
    }
    if (!ok) fprintf(stderr, "untrimmed path: %s\n", err.msg);
    free(logits);
    return ok;
}

static void wait_idle(sp_engine *e, sp_engine_stats *st) {
    for (int i = 0; i < 500; i++) {
        sp_engine_get_stats(e, st);
        if (st->running == 0 && st->kv_blocks_used == 0) return;
        usleep(10000);
    }
}

static sp_engine *start(const char *dir, uint64_t kv_memory) {
    sp_engine_opts o;
    sp_engine_opts_default(&o);
    o.model_path = dir;
    o.model.precision = SP_PREC_F32;
    o.model.n_threads = 2;
    test_device_opts(&o.model);
    o.parallel = 4;
    o.ctx_size = CTX;
    o.block_size = BS;
    o.prefill_chunk = CHUNK;
    o.kv_memory = kv_memory;
    sp_engine *e = NULL;
    sp_error err = {0};
    CHECKF(sp_engine_start(&e, &o, &err) == SP_OK, "%s", err.msg);
    if (!e) return NULL;
    if (sp_engine_wait_loaded(e, 60000) != SP_ENGINE_READY) {
        sp_engine_get_state(e, &err);
        CHECKF(0, "engine did not load: %s", err.msg);
        sp_engine_free(e);
        return NULL;
    }
    return e;
}

/* The reference prompt, then a second request that reuses its blocks. */
static void check_reference_runs(sp_engine *e, const char *name, int window, int all_sliding) {
    int bound = sp_blocks_window_bound(window, BS, CHUNK);
    const sp_engine_info *info = sp_engine_get_info(e);
    CHECKF(info->swa_window == window, "%s: window %d, want %d", name, info->swa_window, window);
    CHECKF(info->n_swa_blocks == 4 * bound, "%s: %d sliding blocks, want 4 x %d", name,
           info->n_swa_blocks, bound);
    CHECKF(info->n_blocks == info->n_swa_blocks + (all_sliding ? 0 : 4 * CTX / BS),
           "%s: %d blocks in all", name, info->n_blocks);
    result r;
    generate(e, fx.prompt, fx.n_prompt, fx.n_greedy, &r);
    CHECKF(r.finished && r.n == fx.n_greedy && !memcmp(r.ids, fx.greedy, sizeof(int32_t) * r.n),
           "%s: greedy ids differ from transformers'", name);
    sp_engine_stats st;
    wait_idle(e, &st);
    int whole = (fx.n_prompt + fx.n_greedy + BS - 1) / BS;
    fprintf(stderr, "%s: window %d, %d positions = %d blocks; sliding group peak %d (bound %d)\n",
            name, window, fx.n_prompt + fx.n_greedy, whole, st.kv_swa_blocks_peak, bound);
    CHECKF(st.kv_swa_blocks_peak > 0 && st.kv_swa_blocks_peak <= bound && bound < whole,
           "%s: the sliding group held %d blocks (bound %d, whole sequence %d)", name,
           st.kv_swa_blocks_peak, bound, whole);
    /* same prompt again: the last full prompt block before the final token
     * is block 9; its window's blocks are cached, so 9 blocks are reused */
    generate(e, fx.prompt, fx.n_prompt, fx.n_greedy, &r);
    CHECKF(r.cached == (fx.n_prompt - 1) / BS * BS, "%s: %d cached tokens, want %d", name, r.cached,
           (fx.n_prompt - 1) / BS * BS);
    CHECKF(r.finished && r.n == fx.n_greedy && !memcmp(r.ids, fx.greedy, sizeof(int32_t) * r.n),
           "%s: greedy ids after a prefix hit differ from transformers'", name);
    wait_idle(e, &st);
    CHECKF(st.kv_blocks_used == 0 && st.kv_swa_blocks_used == 0, "%s: %d / %d blocks still held",
           name, st.kv_blocks_used, st.kv_swa_blocks_used);
    CHECKF(st.kv_swa_blocks_peak <= bound, "%s: peak %d after the hit", name,
           st.kv_swa_blocks_peak);
}

/* B starts from A's prompt blocks while A still runs: the window blocks B
 * reuses are shared until A's window moves past them (A then releases its
 * reference and takes its promise back while B still holds the block). */
static void check_overlap(sp_engine *e, const char *name) {
    sp_request_params p;
    memset(&p, 0, sizeof p);
    sp_sampling_default(&p.sampling);
    p.sampling.temperature = 0;
    p.prompt = fx.prompt;
    p.n_prompt = fx.n_prompt;
    p.max_tokens = fx.n_greedy;
    p.ignore_eos = 1;
    sp_request *a = NULL;
    sp_error err = {0};
    CHECKF(sp_engine_submit(e, &p, &a, &err) == SP_OK, "%s", err.msg);
    if (!a) return;
    result ra = {0}, rb;
    sp_event ev;
    int got = sp_request_next(a, &ev, 10000);
    if (got && ev.kind == SP_EV_TOKEN) ra.ids[ra.n++] = ev.token;
    if (got) sp_event_clear(&ev);
    generate(e, fx.prompt, fx.n_prompt, fx.n_greedy, &rb);
    while (!ra.finished && sp_request_next(a, &ev, 10000)) {
        if (ev.kind == SP_EV_TOKEN && ra.n < 64)
            ra.ids[ra.n++] = ev.token;
        else if (ev.kind != SP_EV_TOKEN)
            ra.finished = ev.reason == SP_FINISH_LENGTH;
        sp_event_clear(&ev);
    }
    sp_request_release(a);
    CHECKF(rb.cached > 0, "%s: the second request reused nothing", name);
    CHECKF(ra.finished && ra.n == fx.n_greedy && !memcmp(ra.ids, fx.greedy, sizeof(int32_t) * ra.n),
           "%s: overlapped: the first request's ids differ from transformers'", name);
    CHECKF(rb.finished && rb.n == fx.n_greedy && !memcmp(rb.ids, fx.greedy, sizeof(int32_t) * rb.n),
           "%s: overlapped: the second request's ids differ from transformers'", name);
    sp_engine_stats st;
    wait_idle(e, &st);
    CHECKF(st.kv_blocks_used == 0 && st.kv_swa_blocks_used == 0, "%s: %d / %d blocks still held",
           name, st.kv_blocks_used, st.kv_swa_blocks_used);
}

/* A prompt that shares its first 24 tokens with the reference prompt: the
 * hit ends mid-way, where the sliding blocks of the shared part were already
 * released (and cached) by the first request. */
static void check_partial_hit(sp_engine *e, sp_model *m, const char *name) {
    int32_t prompt[40], want[16];
    memcpy(prompt, fx.prompt, 24 * sizeof *prompt);
    for (int i = 24; i < 40; i++) prompt[i] = (int32_t)((i * 37 + 11) % fx.vocab);
    result r;
    generate(e, fx.prompt, fx.n_prompt, 1, &r); /* puts the prompt's blocks in the cache */
    generate(e, prompt, 40, 16, &r);
    CHECKF(r.cached == 24, "%s: %d cached tokens, want 24", name, r.cached);
    CHECK(greedy_untrimmed(m, prompt, 40, 16, want));
    CHECKF(r.finished && r.n == 16 && !memcmp(r.ids, want, sizeof want),
           "%s: greedy ids after a partial hit differ from the untrimmed path", name);
}

typedef struct job {
    sp_engine *e;
    result r;
} job;

static void *reference_job(void *arg) {
    job *j = arg;
    generate(j->e, fx.prompt, fx.n_prompt, fx.n_greedy, &j->r);
    return NULL;
}

/* More requests than the pools hold, all at once, sharing their prefix
 * blocks while running: admission waits for room, every one still gets
 * transformers' ids, and every block comes back. */
static void check_concurrent(sp_engine *e, const char *name) {
    enum { N = 6 };
    pthread_t t[N];
    job jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i].e = e;
        pthread_create(&t[i], NULL, reference_job, &jobs[i]);
    }
    int same = 1, cached = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        cached += jobs[i].r.cached;
        same &= jobs[i].r.finished && jobs[i].r.n == fx.n_greedy &&
                !memcmp(jobs[i].r.ids, fx.greedy, sizeof(int32_t) * fx.n_greedy);
    }
    fprintf(stderr, "%s: %d concurrent requests reused %d prompt tokens\n", name, N, cached);
    CHECKF(same, "%s: a concurrent request got other ids than transformers", name);
    sp_engine_stats st;
    wait_idle(e, &st);
    CHECKF(st.kv_blocks_used == 0 && st.kv_swa_blocks_used == 0 &&
               st.kv_swa_blocks_peak <= st.kv_swa_blocks_total,
           "%s: %d / %d blocks held after the concurrent run (peak %d of %d)", name,
           st.kv_blocks_used, st.kv_swa_blocks_used, st.kv_swa_blocks_peak, st.kv_swa_blocks_total);
}

/* --kv-memory of exactly two full-context sequences: each pool gets two
 * sequences' worth (docs/api.md). */
static void check_kv_memory(const char *dir, sp_model *m, const char *name, int window) {
    int per_seq = CTX / BS, swa_seq = sp_blocks_window_bound(window, BS, CHUNK);
    uint64_t unit = (uint64_t)per_seq * sp_kv_group_bytes_per_block(m, BS, 0) +
                    (uint64_t)swa_seq * sp_kv_group_bytes_per_block(m, BS, 1);
    sp_engine *e = start(dir, 2 * unit);
    if (!e) return;
    const sp_engine_info *info = sp_engine_get_info(e);
    int full_real = sp_kv_group_bytes_per_block(m, BS, 0) > 0;
    CHECKF(info->n_swa_blocks == 2 * swa_seq &&
               info->n_blocks == 2 * swa_seq + (full_real ? 2 * per_seq : 0),
           "%s: --kv-memory %llu gave %d blocks, %d sliding", name, (unsigned long long)(2 * unit),
           info->n_blocks, info->n_swa_blocks);
    check_concurrent(e, name);
    sp_engine_free(e);
}

static void run_fixture(const char *name, int window, int all_sliding) {
    CHECKF(fixture_load(&fx, name), "fixture %s", name);
    if (!fx.n_prompt) return;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/test-engine-swa-%s", SP_BUILD_DIR,
             strchr(name, '/') ? strchr(name, '/') + 1 : name);
    CHECK(make_model_dir(dir));
    sp_model_opts mo;
    sp_model_opts_default(&mo);
    mo.precision = SP_PREC_F32;
    mo.n_threads = 2;
    test_device_opts(&mo);
    sp_model *m = NULL;
    sp_error err = {0};
    CHECKF(sp_model_load(&m, dir, &mo, &err) == SP_OK, "%s: %s", name, err.msg);
    sp_engine *e = start(dir, 0);
    if (e && m) {
        CHECKF(sp_model_swa_window(m) == window, "%s: model window %d", name,
               sp_model_swa_window(m));
        check_reference_runs(e, name, window, all_sliding);
        check_partial_hit(e, m, name);
        check_overlap(e, name);
    }
    sp_engine_free(e);
    if (m) check_kv_memory(dir, m, name, window);
    sp_model_free(m);
    fixture_free(&fx);
}

int main(void) {
    test_device_or_skip("test_engine_swa");
    run_fixture("mistral_swa", 8, 1); /* every layer sliding: old blocks go back */
    run_fixture("local/mistral_odd", 5, 1);
    run_fixture("gemma3", 8, 0);           /* 5 sliding : 1 full */
    run_fixture("local/gemma3_odd", 5, 0); /* sliding and full interleaved */
    run_fixture("gemma2", 8, 0);
    return check_summary("engine_swa");
}
