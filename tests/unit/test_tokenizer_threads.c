/* One tokenizer shared read-only by several threads: every thread encodes
 * and decodes the fixture strings concurrently and must get the fixture ids
 * (run under SP_SANITIZE=thread to check for races). */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tokenizer/tokenizer.h"

#define THREADS 4
#define ROUNDS  3

typedef struct job {
    const sp_tokenizer *tok;
    json_t *cases;
    int failures;
} job;

static void *worker(void *arg) {
    job *j = arg;
    for (int r = 0; r < ROUNDS; r++) {
        for (size_t i = 0; i < json_array_size(j->cases); i++) {
            json_t *c = json_array_get(j->cases, i), *text = json_object_get(c, "text");
            json_t *want = json_object_get(c, "ids_with_special");
            int32_t *ids = NULL;
            size_t n = 0;
            sp_error err = {0};
            if (sp_tokenizer_encode(j->tok, json_string_value(text), json_string_length(text), 1, 1,
                                    &ids, &n, &err) != SP_OK ||
                n != json_array_size(want)) {
                j->failures++;
            } else {
                for (size_t k = 0; k < n; k++)
                    if (ids[k] != json_integer_value(json_array_get(want, k))) j->failures++;
            }
            char *out = NULL;
            size_t len;
            if (sp_tokenizer_decode(j->tok, ids, n, 1, &out, &len, &err) != SP_OK) j->failures++;
            free(out);
            free(ids);
        }
    }
    return NULL;
}

static void run(const char *name) {
    char path[1024], dir[1024];
    const char *env = getenv("SP_TOKENIZERS_DIR");
    snprintf(path, sizeof path, "%s/fixtures/tokenizers/%s.json", SP_SHARED_DIR, name);
    snprintf(dir, sizeof dir, "%s/%s", env && *env ? env : SP_SOURCE_DIR "/build/tokenizers", name);
    json_error_t je;
    json_t *fx = json_load_file(path, JSON_ALLOW_NUL, &je);
    sp_tokenizer *tok = NULL;
    sp_error err = {0};
    CHECKF(fx != NULL, "%s", je.text);
    CHECKF(sp_tokenizer_load_dir(&tok, dir, &err) == SP_OK, "%s (run scripts/fetch-tokenizers.sh)",
           err.msg);
    if (fx && tok) {
        pthread_t th[THREADS];
        job jobs[THREADS];
        for (int t = 0; t < THREADS; t++) {
            jobs[t] = (job){tok, json_object_get(fx, "encode"), 0};
            CHECK(pthread_create(&th[t], NULL, worker, &jobs[t]) == 0);
        }
        for (int t = 0; t < THREADS; t++) {
            pthread_join(th[t], NULL);
            CHECKF(jobs[t].failures == 0, "%s: thread %d: %d mismatches", name, t,
                   jobs[t].failures);
        }
    }
    sp_tokenizer_free(tok);
    json_decref(fx);
}

int main(void) {
    run("llama3_1");
    run("gemma3");
    return check_summary("test_tokenizer_threads");
}
