/* ../shared/fixtures/gguf: llama.cpp's logits and greedy ids for small GGUFs
 * in every weight type (see its README.md), and helpers to run a GGUF the
 * way llama.cpp produced them: all input tokens in one batch with logits for
 * every position, then greedy steps fed back one token at a time. */
#ifndef SP_TEST_GGUF_QUANT_REF_H
#define SP_TEST_GGUF_QUANT_REF_H

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "model/seq.h"
#include "test_device.h"

#define QREF_MAX_IDS 128

typedef struct qref {
    char name[64], path[600];
    int32_t tokens[QREF_MAX_IDS], greedy[QREF_MAX_IDS], greedy_f32[QREF_MAX_IDS];
    int n_tokens, n_greedy, n_greedy_f32, vocab;
    float *logits; /* [n_tokens][vocab] */
} qref;

static inline int qref_ids(const json_t *a, int32_t *out, int *n) {
    if (!json_is_array(a) || json_array_size(a) > QREF_MAX_IDS) return 0;
    *n = (int)json_array_size(a);
    for (int i = 0; i < *n; i++) out[i] = (int32_t)json_integer_value(json_array_get(a, (size_t)i));
    return 1;
}

/* Model i of reference.json; 0 at the end of the list or on a bad entry. */
static inline int qref_load(qref *r, const json_t *models, size_t i) {
    memset(r, 0, sizeof *r);
    const json_t *m = json_array_get(models, i);
    if (!json_is_object(m)) return 0;
    const char *dir = SP_SHARED_DIR "/fixtures/gguf";
    snprintf(r->name, sizeof r->name, "%s", json_string_value(json_object_get(m, "name")));
    snprintf(r->path, sizeof r->path, "%s/%s", dir, json_string_value(json_object_get(m, "file")));
    const json_t *shape = json_object_get(m, "logits_shape");
    r->vocab = (int)json_integer_value(json_array_get(shape, 1));
    if (!qref_ids(json_object_get(m, "tokens"), r->tokens, &r->n_tokens) ||
        !qref_ids(json_object_get(m, "greedy_ids"), r->greedy, &r->n_greedy) || r->vocab <= 0)
        return 0;
    const json_t *dq = json_object_get(json_object_get(m, "llama_cpp_variants"), "dequantized_f32");
    if (dq) qref_ids(json_object_get(dq, "greedy_ids"), r->greedy_f32, &r->n_greedy_f32);
    r->logits = read_f32(dir, json_string_value(json_object_get(m, "logits_file")),
                         (size_t)r->n_tokens * r->vocab);
    return r->logits != NULL;
}

static inline void qref_free(qref *r) {
    free(r->logits);
}

static inline sp_model *qref_model(const char *path, sp_precision p) {
    sp_model_opts o;
    sp_model_opts_default(&o);
    o.precision = p;
    o.n_threads = 2;
    test_device_opts(&o);
    /* llama.cpp's references were made with an f32 K/V cache, as the CPU
     * keeps it: on the GPU too, so both backends are held to the same bounds */
    o.kv_dtype = SP_F32;
    sp_model *m = NULL;
    sp_error err = {0};
    if (sp_model_load(&m, path, &o, &err) != SP_OK) fprintf(stderr, "%s: %s\n", path, err.msg);
    return m;
}

/* logits of every position of tokens (one batch); NULL on error. */
static inline float *qref_logits(sp_model *m, const int32_t *tokens, int n) {
    int V = sp_model_get_desc(m)->vocab;
    float *lg = malloc((size_t)n * V * sizeof(float));
    sp_seq seq;
    sp_error err = {0};
    if (sp_seq_init(&seq, m, n, &err) != SP_OK) {
        fprintf(stderr, "%s\n", err.msg);
        free(lg);
        return NULL;
    }
    if (sp_seq_feed(&seq, m, tokens, n, SP_LOGITS_ALL, lg, &err) != SP_OK) {
        fprintf(stderr, "%s\n", err.msg);
        free(lg);
        lg = NULL;
    }
    sp_seq_free(&seq);
    return lg;
}

/* Greedy continuation as llama.cpp ran it; returns the ids written. */
static inline int qref_greedy(sp_model *m, const int32_t *prompt, int n_prompt, int n,
                              int32_t *out) {
    int V = sp_model_get_desc(m)->vocab, done = 0;
    float *lg = malloc((size_t)V * sizeof(float));
    sp_seq seq;
    sp_error err = {0};
    if (sp_seq_init(&seq, m, n_prompt + n, &err) == SP_OK &&
        sp_seq_feed(&seq, m, prompt, n_prompt, SP_LOGITS_LAST, lg, &err) == SP_OK) {
        for (; done < n; done++) {
            out[done] = sp_argmax(lg, V);
            if (done + 1 < n &&
                sp_seq_feed(&seq, m, &out[done], 1, SP_LOGITS_LAST, lg, &err) != SP_OK)
                break;
        }
        sp_seq_free(&seq);
    }
    if (err.msg[0]) fprintf(stderr, "%s\n", err.msg);
    free(lg);
    return done;
}

static inline int same_ids(const int32_t *a, const int32_t *b, int n) {
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return i;
    return n;
}

#endif
