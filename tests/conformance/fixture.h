/* Loading a ../shared/fixtures/<name> reference: prompt ids, greedy ids and
 * the float32 logits transformers produced. */
#ifndef SP_TEST_FIXTURE_H
#define SP_TEST_FIXTURE_H

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    char dir[1024];
    int32_t prompt[512], greedy[512];
    int n_prompt, n_greedy, vocab;
    float *logits_prompt, *logits_steps; /* [n_prompt][vocab], [n_greedy][vocab] */
} fixture;

static inline int read_ids(json_t *root, const char *key, int32_t *out, int *n) {
    json_t *a = json_object_get(root, key);
    if (!json_is_array(a) || json_array_size(a) > 512) return 0;
    *n = (int)json_array_size(a);
    for (int i = 0; i < *n; i++) out[i] = (int32_t)json_integer_value(json_array_get(a, (size_t)i));
    return 1;
}

static inline float *read_f32(const char *dir, const char *name, size_t n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    float *x = malloc(n * sizeof(float));
    if (!f || !x || fread(x, sizeof(float), n, f) != n) {
        fprintf(stderr, "%s: cannot read %zu floats\n", path, n);
        if (f) fclose(f);
        free(x);
        return NULL;
    }
    fclose(f);
    return x;
}

/* name: a fixture of ../shared/fixtures, or "local/NAME" for tests/fixtures. */
static inline int fixture_load(fixture *fx, const char *name) {
    memset(fx, 0, sizeof *fx);
    if (!strncmp(name, "local/", 6))
        snprintf(fx->dir, sizeof fx->dir, "%s/tests/fixtures/%s", SP_SOURCE_DIR, name + 6);
    else
        snprintf(fx->dir, sizeof fx->dir, "%s/fixtures/%s", SP_SHARED_DIR, name);
    char path[1200];
    snprintf(path, sizeof path, "%s/reference.json", fx->dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        fprintf(stderr, "%s: %s\n", path, je.text);
        return 0;
    }
    int ok = read_ids(root, "prompt_ids", fx->prompt, &fx->n_prompt) &&
             read_ids(root, "greedy_ids", fx->greedy, &fx->n_greedy);
    fx->vocab = (int)json_integer_value(json_object_get(root, "vocab_size"));
    json_decref(root);
    if (!ok || fx->vocab <= 0) return 0;
    fx->logits_prompt = read_f32(fx->dir, "logits_prompt.f32", (size_t)fx->n_prompt * fx->vocab);
    fx->logits_steps = read_f32(fx->dir, "logits_steps.f32", (size_t)fx->n_greedy * fx->vocab);
    return fx->logits_prompt && fx->logits_steps;
}

static inline void fixture_free(fixture *fx) {
    free(fx->logits_prompt);
    free(fx->logits_steps);
}

static inline float max_abs(const float *x, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

static inline float max_diff(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fabsf(a[i] - b[i]) > m ? fabsf(a[i] - b[i]) : m;
    return m;
}

#endif
