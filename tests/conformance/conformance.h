/* The conformance check every HF fixture must pass (issues 2 and 3):
 * f32 mode within 1e-3 x max(1, max|ref|) on every prompt logit, the exact
 * greedy ids, step logits within the same tolerance; default precision:
 * top-1 agreement >= 99% and max error <= 5e-2 x max(1, max|ref|). */
#ifndef SP_TEST_CONFORMANCE_H
#define SP_TEST_CONFORMANCE_H

#include "check.h"
#include "fixture.h"
#include "isa_levels.h"
#include "model/seq.h"

static inline int top1_same(const float *a, const float *b, int rows, int V) {
    int same = 0;
    for (int r = 0; r < rows; r++)
        same += sp_argmax(a + (size_t)r * V, V) == sp_argmax(b + (size_t)r * V, V);
    return same;
}

/* Runs prompt + greedy steps; returns the worst relative step error. */
static inline float run_greedy(sp_model *m, const fixture *fx, int *ids_ok) {
    int V = fx->vocab;
    float *lg = malloc((size_t)V * sizeof(float)), worst = 0;
    float tol_scale = fmaxf(1.0f, max_abs(fx->logits_steps, (size_t)fx->n_greedy * V));
    sp_seq seq;
    sp_error err = {0};
    *ids_ok = 1;
    if (sp_seq_init(&seq, m, fx->n_prompt + fx->n_greedy, &err) != SP_OK ||
        sp_seq_feed(&seq, m, fx->prompt, fx->n_prompt, SP_LOGITS_LAST, lg, &err) != SP_OK) {
        fprintf(stderr, "%s: %s\n", fx->dir, err.msg);
        *ids_ok = 0;
        free(lg);
        return INFINITY;
    }
    for (int i = 0; i < fx->n_greedy; i++) {
        float e = max_diff(lg, fx->logits_steps + (size_t)i * V, (size_t)V) / tol_scale;
        worst = fmaxf(worst, e);
        int32_t id = sp_argmax(lg, V);
        if (id != fx->greedy[i]) *ids_ok = 0;
        if (i + 1 < fx->n_greedy &&
            sp_seq_feed(&seq, m, &fx->greedy[i], 1, SP_LOGITS_LAST, lg, &err) != SP_OK) {
            fprintf(stderr, "%s: %s\n", fx->dir, err.msg);
            *ids_ok = 0;
            break;
        }
    }
    sp_seq_free(&seq);
    free(lg);
    return worst;
}

/* Checks one fixture in one precision; prints a table row. */
static inline void check_fixture(const char *name, sp_precision prec) {
    fixture fx;
    CHECKF(fixture_load(&fx, name), "fixture %s", name);
    if (!fx.logits_prompt) return;
    sp_model_opts o;
    sp_model_opts_default(&o);
    o.precision = prec;
    o.n_threads = 2;
    sp_model *m = NULL;
    sp_error err = {0};
    sp_status s = sp_model_load(&m, fx.dir, &o, &err);
    CHECKF(s == SP_OK, "%s: %s", name, err.msg);
    if (s != SP_OK) return fixture_free(&fx);
    int V = fx.vocab, P = fx.n_prompt;
    float *lg = malloc((size_t)P * V * sizeof(float));
    sp_seq seq;
    s = sp_seq_init(&seq, m, P, &err);
    if (s == SP_OK) s = sp_seq_feed(&seq, m, fx.prompt, P, SP_LOGITS_ALL, lg, &err);
    CHECKF(s == SP_OK, "%s: %s", name, err.msg);
    float scale = fmaxf(1.0f, max_abs(fx.logits_prompt, (size_t)P * V));
    float err_prompt = max_diff(lg, fx.logits_prompt, (size_t)P * V) / scale;
    int same = top1_same(lg, fx.logits_prompt, P, V);
    if (prec == SP_PREC_F32) {
        int ids_ok;
        float err_steps = run_greedy(m, &fx, &ids_ok);
        printf("| %-20s | f32  | %.2e | %.2e | %d/%d | %s |\n", name, err_prompt, err_steps, same,
               P, ids_ok ? "exact" : "DIFFER");
        CHECKF(err_prompt <= 1e-3f, "%s f32: prompt logits error %.3g > 1e-3", name, err_prompt);
        CHECKF(err_steps <= 1e-3f, "%s f32: step logits error %.3g > 1e-3", name, err_steps);
        CHECKF(ids_ok, "%s f32: greedy ids differ from the reference", name);
    } else {
        printf("| %-20s | fast | %.2e |          | %d/%d |       |\n", name, err_prompt, same, P);
        CHECKF(err_prompt <= 5e-2f, "%s fast: prompt logits error %.3g > 5e-2", name, err_prompt);
        CHECKF(same * 100 >= 99 * P, "%s fast: top-1 agrees on %d/%d positions", name, same, P);
    }
    sp_seq_free(&seq);
    free(lg);
    sp_model_free(m);
    fixture_free(&fx);
}

static inline int run_fixtures(const char *suite, const char *const *names, int n) {
    int rc = isa_from_env(suite);
    if (rc >= 0) return rc;
    printf("kernels: %s\n", sp_isa_name(sp_ops_isa()));
    printf("| fixture              | mode | prompt err | step err | top-1 | greedy |\n");
    for (int i = 0; i < n; i++) {
        check_fixture(names[i], SP_PREC_F32);
        check_fixture(names[i], SP_PREC_FAST);
    }
    return check_summary(suite);
}

#endif
