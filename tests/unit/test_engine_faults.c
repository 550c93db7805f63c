/* Engine fault survival, in process (docs/errors.md, "Engine faults"), with
 * the test-only SPINDLE_TEST_FAULT hooks: a forward error or NaN logits fail
 * only their own request while a batched neighbour gets the same ids as
 * alone; a dead engine thread finishes every request with an error, reports
 * STOPPED with the reason, and refuses new work. Runs under ThreadSanitizer
 * in `make test` (its name puts it in the concurrency label). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "model_dir.h"
#include "engine/engine.h"
#include "engine/fault.h"

#define VOCAB 512 /* the llama fixture's */

/* The llama fixture's weights plus a tokenizer of filler names: requests
 * here are token ids, the engine only needs a tokenizer to load. */
static int make_model_dir(const char *dir) {
    FILE *f = model_dir_link(SP_SHARED_DIR "/fixtures/llama", dir);
    if (!f) return 0;
    fprintf(f, "{\"version\":\"1.0\",\"added_tokens\":[],\"normalizer\":null,"
               "\"pre_tokenizer\":null,\"post_processor\":null,\"decoder\":null,"
               "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,"
               "\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,"
               "\"fuse_unk\":false,\"byte_fallback\":false,\"vocab\":{");
    for (int id = 0; id < VOCAB; id++) fprintf(f, "%s\"<t%d>\":%d", id ? "," : "", id, id);
    fprintf(f, "},\"merges\":[]}}\n");
    return fclose(f) == 0;
}

static sp_engine *start(const char *dir, const char *fault, int parallel, sp_error *err) {
    setenv(SP_FAULT_ENV, fault, 1); /* read once, by sp_engine_start */
    sp_engine_opts o;
    sp_engine_opts_default(&o);
    o.model_path = dir;
    o.model.n_threads = 1;
    o.parallel = parallel;
    o.ctx_size = 128;
    sp_engine *e = NULL;
    sp_status st = sp_engine_start(&e, &o, err);
    unsetenv(SP_FAULT_ENV);
    if (st != SP_OK) return NULL;
    if (sp_engine_wait_loaded(e, 60000) != SP_ENGINE_READY) {
        sp_engine_get_state(e, err);
        sp_engine_free(e);
        return NULL;
    }
    return e;
}

static sp_request *submit(sp_engine *e, const int32_t *prompt, int n, int max_tokens) {
    sp_request_params p = {
        .prompt = prompt, .n_prompt = n, .max_tokens = max_tokens, .ignore_eos = 1};
    sp_sampling_default(&p.sampling);
    p.sampling.temperature = 0; /* greedy: comparable across runs */
    sp_request *r = NULL;
    sp_error err = {0};
    CHECKF(sp_engine_submit(e, &p, &r, &err) == SP_OK, "submit: %s", err.msg);
    return r;
}

typedef struct outcome {
    int32_t ids[128];
    int n;
    sp_finish_reason reason;
    char error[256];
    int timed_out;
} outcome;

/* Reads r's events to its FINISH (10 s at most per event) and releases it. */
static outcome drain(sp_request *r) {
    outcome o = {0};
    o.reason = SP_FINISH_ERROR;
    if (!r) return o;
    for (;;) {
        sp_event ev;
        if (!sp_request_next(r, &ev, 10000)) {
            o.timed_out = 1;
            break;
        }
        if (ev.kind == SP_EV_TOKEN && o.n < 128) o.ids[o.n++] = ev.token;
        int fin = ev.kind == SP_EV_FINISH;
        if (fin) {
            o.reason = ev.reason;
            snprintf(o.error, sizeof o.error, "%s", ev.error);
        }
        sp_event_clear(&ev);
        if (fin) break;
    }
    sp_request_release(r);
    return o;
}

static void test_parse(void) {
    sp_fault f;
    sp_error err = {0};
    CHECK(sp_fault_parse(NULL, &f, &err) == SP_OK && !sp_fault_any(&f));
    CHECK(sp_fault_parse("", &f, &err) == SP_OK && !sp_fault_any(&f));
    CHECK(sp_fault_parse("engine_die_after_steps=3,nan_logits_token=0", &f, &err) == SP_OK);
    CHECK(f.die_after_steps == 3 && f.nan_logits_token == 0 && f.forward_fail_token == -1);
    CHECK(sp_fault_parse("forward_fail_token=12,", &f, &err) == SP_OK &&
          f.forward_fail_token == 12);
    CHECK(sp_fault_parse("engine_hang_after_steps=4", &f, &err) == SP_OK &&
          f.hang_after_steps == 4 && sp_fault_any(&f));
    CHECK(sp_fault_parse("engine_hang_after_steps=0", &f, &err) == SP_EINVAL);
    const char *bad[] = {
        "engine_die_after_steps=0", "engine_die_after_steps=x", "nope=1",
        "forward_fail_token",       "forward_fail_token=-1",    "nan_logits_token=1x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECKF(sp_fault_parse(bad[i], &f, &err) == SP_EINVAL, "accepted '%s'", bad[i]);
        CHECKF(strstr(err.msg, SP_FAULT_ENV) != NULL, "message: %s", err.msg);
    }
}

static const int32_t healthy[] = {1, 20, 30, 40, 50};

static void test_one_request_fails(const char *dir) {
    sp_error err = {0};
    sp_engine *e = start(dir, "forward_fail_token=7,nan_logits_token=9", 4, &err);
    CHECKF(e != NULL, "start: %s", err.msg);
    if (!e) return;
    outcome alone = drain(submit(e, healthy, 5, 40));
    CHECK(alone.reason == SP_FINISH_LENGTH && alone.n == 40);
    /* submitted together: one batch, whose forward fails for [7,...] */
    static const int32_t fwd[] = {7, 1, 2}, nan[] = {9, 1, 2};
    sp_request *a = submit(e, healthy, 5, 40), *b = submit(e, fwd, 3, 5), *c = submit(e, nan, 3, 5);
    outcome oa = drain(a), ob = drain(b), oc = drain(c);
    CHECKF(oa.reason == SP_FINISH_LENGTH && oa.n == alone.n &&
               !memcmp(oa.ids, alone.ids, sizeof alone.ids[0] * (size_t)alone.n),
           "the healthy neighbour changed: reason %d, %d ids", oa.reason, oa.n);
    CHECKF(ob.reason == SP_FINISH_ERROR && strstr(ob.error, "forward_fail_token=7"), "fwd: %d %s",
           ob.reason, ob.error);
    CHECKF(oc.reason == SP_FINISH_ERROR && strstr(oc.error, "non-finite logits"), "nan: %d %s",
           oc.reason, oc.error);
    CHECK(!oa.timed_out && !ob.timed_out && !oc.timed_out);
    sp_engine_stats st;
    for (int i = 0; i < 200; i++) {
        sp_engine_get_stats(e, &st);
        if (st.running == 0 && st.kv_blocks_used == 0) break;
        usleep(10000);
    }
    CHECKF(st.running == 0 && st.kv_blocks_used == 0, "%d running, %d blocks used", st.running,
           st.kv_blocks_used);
    CHECKF(st.finished[SP_FINISH_ERROR] == 2, "%llu errors",
           (unsigned long long)st.finished[SP_FINISH_ERROR]);
    CHECK(sp_engine_get_state(e, NULL) == SP_ENGINE_READY);
    sp_engine_free(e);
}

static void test_engine_dies(const char *dir) {
    sp_error err = {0};
    sp_engine *e = start(dir, "engine_die_after_steps=5", 1, &err);
    CHECKF(e != NULL, "start: %s", err.msg);
    if (!e) return;
    /* one runs, the others wait in the queue when the thread dies; on a busy
     * machine the thread may run its 5 steps before all are submitted: a
     * submit after the death must then be refused (503), not accepted */
    sp_request *r[4] = {NULL};
    for (int i = 0; i < 4; i++) {
        sp_request_params p = {.prompt = healthy, .n_prompt = 5, .max_tokens = 60, .ignore_eos = 1};
        sp_sampling_default(&p.sampling);
        sp_status st = sp_engine_submit(e, &p, &r[i], &err);
        CHECKF(st == SP_OK ||
                   (i > 0 && st == SP_EBUSY && sp_engine_get_state(e, NULL) == SP_ENGINE_STOPPED),
               "submit %d: %s", i, err.msg);
    }
    for (int i = 0; i < 4; i++) {
        if (!r[i]) continue;
        outcome o = drain(r[i]);
        CHECKF(!o.timed_out, "request %d never finished", i);
        CHECKF(o.reason == SP_FINISH_ERROR && strstr(o.error, "engine thread died"),
               "request %d: reason %d '%s'", i, o.reason, o.error);
    }
    sp_error why = {0};
    CHECK(sp_engine_get_state(e, &why) == SP_ENGINE_STOPPED);
    CHECKF(why.status != SP_OK && strstr(why.msg, "engine_die_after_steps=5"), "why: %s", why.msg);
    sp_request *late = NULL;
    sp_request_params p = {.prompt = healthy, .n_prompt = 5};
    sp_sampling_default(&p.sampling);
    CHECK(sp_engine_submit(e, &p, &late, &err) == SP_EBUSY && late == NULL);
    sp_engine_free(e);
}

static void test_bad_spec(const char *dir) {
    sp_error err = {0};
    sp_engine *e = start(dir, "engine_die_after_steps=soon", 1, &err);
    CHECK(e == NULL);
    CHECKF(err.status == SP_EINVAL && strstr(err.msg, SP_FAULT_ENV), "%s", err.msg);
}

int main(void) {
    test_parse();
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/test-engine-faults-model", SP_BUILD_DIR);
    CHECK(make_model_dir(dir));
    test_one_request_fails(dir);
    test_engine_dies(dir);
    test_bad_spec(dir);
    return check_summary("engine_faults");
}
