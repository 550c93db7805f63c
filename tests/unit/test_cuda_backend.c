/* The CUDA backend beyond conformance (which test_conformance_* cover under
 * the `cuda` label): the owner-thread rule is enforced, a batch split into
 * chunks and several sequences in one batch give the single-sequence
 * logits, --load-format dummy makes the same weights on the GPU as on the
 * CPU, and a model that does not fit is refused with a named error.
 * Needs a GPU: without one it prints why and exits 77 (ctest: skipped). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../conformance/fixture.h"
#include "check.h"
#include "model/seq.h"
#include "test_device.h"

static sp_model *load(const char *dir, sp_device_kind dev, sp_precision p, int dummy,
                      int max_tokens) {
    sp_model_opts o;
    sp_model_opts_default(&o);
    o.device = dev;
    o.precision = p;
    o.load_dummy = dummy;
    o.max_batch_tokens = max_tokens;
    o.n_threads = 2;
    sp_model *m = NULL;
    sp_error err = {0};
    CHECKF(sp_model_load(&m, dir, &o, &err) == SP_OK, "%s: %s", dir, err.msg);
    return m;
}

/* logits of every position of tokens, one sequence; NULL on error */
static float *prompt_logits(sp_model *m, const int32_t *tokens, int n) {
    int V = sp_model_get_desc(m)->vocab;
    float *lg = malloc((size_t)n * V * sizeof(float));
    sp_seq seq;
    sp_error err = {0};
    int ok = sp_seq_init(&seq, m, n, &err) == SP_OK &&
             sp_seq_feed(&seq, m, tokens, n, SP_LOGITS_ALL, lg, &err) == SP_OK;
    CHECKF(ok, "forward: %s", err.msg);
    sp_seq_free(&seq);
    if (!ok) free(lg);
    return ok ? lg : NULL;
}

/* ---- the owner-thread rule ------------------------------------------------------- */

static sp_model *g_model;

static void *forward_elsewhere(void *arg) {
    (void)arg;
    float *lg = prompt_logits(g_model, (const int32_t[]){1, 2, 3}, 3);
    free(lg);
    return NULL;
}

/* A forward from a thread that did not load the model must abort (in a
 * child process, so the test survives to check how it ended). */
static void check_owner_rule(const char *dir) {
    pid_t pid = fork();
    if (pid == 0) {
        g_model = load(dir, SP_DEVICE_CUDA, SP_PREC_F32, 0, 0);
        if (!g_model) _exit(3);
        pthread_t t;
        pthread_create(&t, NULL, forward_elsewhere, NULL);
        pthread_join(t, NULL);
        _exit(0); /* reached only if the rule was not enforced */
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
           "a forward from another thread was not stopped (status %d)", st);
}

/* ---- batching and chunking --------------------------------------------------------- */

static float max_rel(const float *a, const float *b, size_t n) {
    float scale = fmaxf(1.0f, max_abs(b, n));
    return max_diff(a, b, n) / scale;
}

/* The fixture prompt through a model whose chunks hold 5 tokens: the
 * reference logits, to the f32 tolerance. */
static void check_chunked(const fixture *fx) {
    sp_model *m = load(fx->dir, SP_DEVICE_CUDA, SP_PREC_F32, 0, 5);
    if (!m) return;
    float *lg = prompt_logits(m, fx->prompt, fx->n_prompt);
    if (lg) {
        float e = max_rel(lg, fx->logits_prompt, (size_t)fx->n_prompt * fx->vocab);
        printf("chunks of 5 tokens, %s: error %.2e\n", fx->dir, e);
        CHECKF(e <= 1e-3f, "%s in chunks of 5: error %.3g", fx->dir, e);
    }
    free(lg);
    sp_model_free(m);
}

/* Two sequences (the prompt and its first half) in one forward give each
 * its own logits. */
static void check_two_sequences(const fixture *fx) {
    sp_model *m = load(fx->dir, SP_DEVICE_CUDA, SP_PREC_F32, 0, 0);
    if (!m) return;
    int P = fx->n_prompt, H = P / 2, V = fx->vocab, bs = 16, nb = (P + bs - 1) / bs;
    sp_kv *kv = NULL;
    sp_error err = {0};
    CHECKF(sp_kv_create(&kv, m, 2 * nb, bs, &err) == SP_OK, "%s", err.msg);
    int32_t t0[64], t1[64];
    for (int i = 0; i < nb; i++) t0[i] = i, t1[i] = nb + i;
    sp_seq_input in[2] = {
        {.tokens = fx->prompt,
         .n_tokens = P,
         .block_table = t0,
         .n_blocks = nb,
         .want = SP_LOGITS_ALL},
        {.tokens = fx->prompt,
         .n_tokens = H,
         .block_table = t1,
         .n_blocks = nb,
         .want = SP_LOGITS_ALL},
    };
    float *lg = malloc((size_t)(P + H) * V * sizeof(float));
    if (kv && sp_model_forward(m, kv, in, 2, lg, &err) == SP_OK) {
        float e0 = max_rel(lg, fx->logits_prompt, (size_t)P * V);
        float e1 = max_rel(lg + (size_t)P * V, fx->logits_prompt, (size_t)H * V);
        printf("two sequences in one batch: errors %.2e %.2e\n", e0, e1);
        CHECKF(e0 <= 1e-3f && e1 <= 1e-3f, "batched sequences: errors %.3g %.3g", e0, e1);
    } else {
        CHECKF(0, "batched forward: %s", err.msg);
    }
    free(lg);
    sp_kv_free(kv);
    sp_model_free(m);
}

/* ---- --load-format dummy ------------------------------------------------------------ */

/* Dummy weights made on the GPU equal those the CPU makes in host memory,
 * so the two backends' logits agree. */
static void check_dummy(const char *name) {
    fixture fx;
    CHECKF(fixture_load(&fx, name), "fixture %s", name);
    sp_model *c = load(fx.dir, SP_DEVICE_CPU, SP_PREC_F32, 1, 0);
    sp_model *g = load(fx.dir, SP_DEVICE_CUDA, SP_PREC_F32, 1, 0);
    float *a = c ? prompt_logits(c, fx.prompt, fx.n_prompt) : NULL;
    float *b = g ? prompt_logits(g, fx.prompt, fx.n_prompt) : NULL;
    if (a && b) {
        float e = max_rel(b, a, (size_t)fx.n_prompt * fx.vocab);
        printf("dummy %s: gpu vs cpu %.2e\n", name, e);
        CHECKF(e <= 1e-3f, "dummy %s: the GPU's logits differ from the CPU's by %.3g", name, e);
    }
    free(a), free(b);
    sp_model_free(c), sp_model_free(g);
    fixture_free(&fx);
}

/* A config whose weights (about 600 GB) cannot fit any GPU. */
static void check_too_big(void) {
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/test-cuda-too-big", SP_BUILD_DIR);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
          "\"hidden_size\": 16384, \"intermediate_size\": 53248, \"num_hidden_layers\": 160, "
          "\"num_attention_heads\": 128, \"num_key_value_heads\": 8, \"vocab_size\": 128256, "
          "\"max_position_embeddings\": 8192, \"rms_norm_eps\": 1e-5, \"torch_dtype\": "
          "\"bfloat16\"}\n",
          f);
    fclose(f);
    sp_model_opts o;
    sp_model_opts_default(&o);
    o.device = SP_DEVICE_CUDA;
    o.load_dummy = 1;
    sp_model *m = NULL;
    sp_error err = {0};
    sp_status s = sp_model_load(&m, dir, &o, &err);
    printf("too big: %s\n", err.msg);
    CHECKF(s == SP_ENOMEM && strstr(err.msg, "does not fit") && strstr(err.msg, "GiB"),
           "a model too big for the GPU: status %d, '%s'", s, err.msg);
    sp_model_free(m);
}

/* The probe runs in a child: CUDA initialised before a fork is unusable in
 * the child, and check_owner_rule needs a fresh child. */
static int gpu_usable(void) {
    pid_t pid = fork();
    if (pid == 0) {
        char why[256];
        int n = sp_cuda_probe(why, sizeof why);
        if (n <= 0) {
            printf("SKIPPED test_cuda_backend: %s\n", why);
            fprintf(stderr, "SKIPPED test_cuda_backend: %s\n", why);
        }
        _exit(n > 0 ? 0 : 1);
    }
    int st = 1;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int main(void) {
    if (!gpu_usable()) return TEST_SKIPPED;
    fixture fx;
    CHECK(fixture_load(&fx, "gemma3"));
    if (fx.logits_prompt) {
        check_owner_rule(fx.dir); /* forks before this process touches CUDA */
        check_chunked(&fx);
        check_two_sequences(&fx);
    }
    fixture_free(&fx);
    check_dummy("llama");
    check_dummy("qwen3_moe");
    check_dummy("gemma4_moe");
    check_too_big();
    return check_summary("test_cuda_backend");
}
