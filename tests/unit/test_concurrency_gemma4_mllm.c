/* The old system's failure, as a test (issue 3): the multimodal Gemma 4
 * checkpoint whose first full-attention (proportional RoPE) layer is layer
 * 5 is loaded by the engine thread, then driven from 8 other threads, one
 * after another and all at once; every one must get transformers' greedy
 * ids. Runs under ThreadSanitizer in `make test`. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../conformance/fixture.h"
#include "check.h"
#include "test_device.h"
#include "model_dir.h"
#include "engine/engine.h"

#define N_THREADS 8

static fixture fx;
static sp_engine *engine;

/* A model directory: the fixture's weights plus a byte-level tokenizer
 * covering its 512 ids (the fixture ships none; the engine needs one). */
static int make_model_dir(const char *dir) {
    return model_dir_byte_tokenizer(fx.dir, fx.vocab, dir);
}

static void *generate(void *arg) {
    int *ok = arg;
    sp_request_params p;
    memset(&p, 0, sizeof p);
    sp_sampling_default(&p.sampling);
    p.sampling.temperature = 0;
    p.prompt = fx.prompt;
    p.n_prompt = fx.n_prompt;
    p.max_tokens = fx.n_greedy;
    p.ignore_eos = 1;
    sp_request *r = NULL;
    sp_error err = {0};
    *ok = 0;
    if (sp_engine_submit(engine, &p, &r, &err) != SP_OK) {
        fprintf(stderr, "submit: %s\n", err.msg);
        return NULL;
    }
    int n = 0, same = 1, finished = 0;
    sp_event ev;
    while (!finished && sp_request_next(r, &ev, 60000)) {
        if (ev.kind == SP_EV_TOKEN)
            same &= n < fx.n_greedy && ev.token == fx.greedy[n++];
        else
            finished = 1;
        sp_event_clear(&ev);
    }
    sp_request_release(r);
    *ok = finished && same && n == fx.n_greedy;
    return NULL;
}

static int run_threads(int concurrent) {
    pthread_t t[N_THREADS];
    int ok[N_THREADS], all = 1;
    for (int i = 0; i < N_THREADS; i++) {
        pthread_create(&t[i], NULL, generate, &ok[i]);
        if (!concurrent) pthread_join(t[i], NULL);
    }
    for (int i = 0; i < N_THREADS; i++) {
        if (concurrent) pthread_join(t[i], NULL);
        all &= ok[i];
    }
    return all;
}

int main(void) {
    test_device_or_skip("concurrency_gemma4_mllm");
    CHECK(fixture_load(&fx, "gemma4_mllm"));
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/test-gemma4-mllm-model", SP_BUILD_DIR);
    CHECK(make_model_dir(dir));
    sp_engine_opts o;
    sp_engine_opts_default(&o);
    o.model_path = dir;
    o.model.precision = SP_PREC_F32;
    o.model.n_threads = 2;
    test_device_opts(&o.model);
    o.parallel = N_THREADS;
    o.ctx_size = 128;
    sp_error err = {0};
    CHECKF(sp_engine_start(&engine, &o, &err) == SP_OK, "%s", err.msg);
    if (!engine) return check_summary("concurrency_gemma4_mllm");
    CHECKF(sp_engine_wait_loaded(engine, 60000) == SP_ENGINE_READY, "engine did not load: %s",
           (sp_engine_get_state(engine, &err), err.msg));
    CHECKF(run_threads(0), "one after another: a thread got other ids than transformers");
    CHECKF(run_threads(1), "all at once: a thread got other ids than transformers");
    /* every block comes back once the engine has retired the sequences */
    sp_engine_stats st;
    for (int i = 0; i < 500; i++) {
        sp_engine_get_stats(engine, &st);
        if (st.running == 0 && st.kv_blocks_used == 0) break;
        usleep(10000);
    }
    CHECKF(st.running == 0 && st.kv_blocks_used == 0, "%d sequences, %d blocks still held",
           st.running, st.kv_blocks_used);
    sp_engine_free(engine);
    fixture_free(&fx);
    return check_summary("concurrency_gemma4_mllm");
}
