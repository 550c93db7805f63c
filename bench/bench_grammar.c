/* Structured output costs (engine/gmask.h, chat/grammar.h) on a real
 * tokenizer: schema compile time, and the per-token cost of computing the
 * allowed-token mask and applying it to a logits row, over documents
 * generated under the mask by a stand-in for a model. Not built by CMake:
 *   make build tokenizers
 *   cc -O2 -Isrc bench/bench_grammar.c build/release/libsp_engine.a \
 *      build/release/libsp_model.a build/release/libsp_chat.a \
 *      build/release/libsp_tokenizer.a build/release/libsp_formats.a \
 *      build/release/libsp_compute.a build/release/libsp_base.a \
 *      $(pkg-config --libs jansson libpcre2-8 libutf8proc libxxhash) -lm -pthread \
 *      -o build/release/bench_grammar
 *   build/release/bench_grammar build/tokenizers/qwen3 [documents]
 * The stand-in model: random logits each step, with a bonus for tokens that
 * contain '"', ',', ']' or '}' (so strings end after a few tokens, as a
 * model's do). Each document may take up to 1024 tokens. Times are the
 * thread's CPU time; the table in bench/README.md came from this. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/grammar.h"
#include "engine/constrain.h"
#include "engine/gmask.h"
#include "tokenizer/tokenizer.h"

/* Thread CPU time: the machines this ran on are shared, and wall clock
 * would count other processes' time slices. */
static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

static uint64_t rng = 88172645463325252ull;
static double urand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const char TYPICAL[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{3}-[0-9]{4}$\"},"
    "\"status\":{\"enum\":[\"active\",\"inactive\",\"pending\"]},"
    "\"owner\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"email\":{\"type\":\"string\",\"format\":\"email\"},"
    "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":150}},"
    "\"required\":[\"name\",\"age\"],\"additionalProperties\":false},"
    "\"items\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
    "\"sku\":{\"type\":\"string\"},\"qty\":{\"type\":\"integer\",\"minimum\":1},"
    "\"price\":{\"type\":\"number\"}},\"required\":[\"sku\",\"qty\"],"
    "\"additionalProperties\":false},\"maxItems\":8},"
    "\"note\":{\"type\":[\"string\",\"null\"]}},"
    "\"required\":[\"id\",\"status\",\"owner\",\"items\"],\"additionalProperties\":false}";

static const char RECURSIVE[] =
    "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"children\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},"
    "\"required\":[\"name\",\"children\"],\"additionalProperties\":false}},"
    "\"$ref\":\"#/$defs/node\"}";

static const char LENGTHS[] =
    "{\"type\":\"object\",\"properties\":{\"title\":{\"type\":\"string\",\"maxLength\":40},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":"
    "12},\"maxItems\":5}},\"required\":[\"title\",\"tags\"],\"additionalProperties\":false}";

/* 50 properties of mixed kinds, half of them required. */
static char *fifty(void) {
    static const char *kinds[] = {
        "{\"type\":\"string\"}",  "{\"type\":\"integer\"}",
        "{\"type\":\"boolean\"}", "{\"enum\":[\"a\",\"b\",\"c\"]}",
        "{\"type\":\"number\"}",  "{\"type\":\"array\",\"items\":{\"type\":\"string\"}}"};
    size_t cap = 8192, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n, "{\"type\":\"object\",\"properties\":{");
    for (int i = 0; i < 50; i++)
        n += (size_t)snprintf(s + n, cap - n, "%s\"field_%d\":%s", i ? "," : "", i, kinds[i % 6]);
    n += (size_t)snprintf(s + n, cap - n, "},\"required\":[");
    for (int i = 0; i < 50; i += 2)
        n += (size_t)snprintf(s + n, cap - n, "%s\"field_%d\"", i ? "," : "", i);
    snprintf(s + n, cap - n, "],\"additionalProperties\":false}");
    return s;
}

static sp_grammar *compile(const char *text, double *ms) {
    json_t *s = json_loads(text, 0, NULL);
    sp_grammar *g = NULL;
    sp_gram_error err;
    double best = 1e30;
    for (int r = 0; r < 20; r++) {
        sp_grammar_release(g);
        g = NULL;
        double t0 = now_us();
        sp_grammar_from_schema(s, &g, &err);
        double t = (now_us() - t0) / 1e3;
        if (t < best) best = t;
        if (!g) break;
    }
    if (!g) fprintf(stderr, "compile failed: %s\n", err.msg);
    json_decref(s);
    *ms = best;
    return g;
}

static int has_closer(const sp_cons_vocab *cv, int32_t id) {
    size_t len;
    const char *t = sp_cons_vocab_text(cv, id, &len, NULL);
    for (size_t i = 0; i < len; i++)
        if (t[i] == '"' || t[i] == ',' || t[i] == ']' || t[i] == '}') return 1;
    return 0;
}

static void run(const char *name, const char *schema, const sp_tokenizer *tok,
                const sp_cons_vocab *cv, const sp_gvocab *gv, int docs) {
    double cms;
    sp_grammar *g = compile(schema, &cms);
    if (!g) return;
    int vocab = sp_tokenizer_vocab_size(tok);
    float *logits = malloc((size_t)vocab * sizeof *logits);
    double *times = malloc((size_t)docs * 1024 * sizeof *times);
    int32_t eos = vocab - 1; /* never allowed before completion: any id works */
    size_t n_t = 0;
    int ok_docs = 0;
    long misses = 0, hits = 0;
    for (int d = 0; d < docs; d++) {
        sp_gmatch *m = sp_gmatch_new(g, gv, &eos, 1, NULL);
        char *text = malloc(1 << 16);
        size_t tl = 0;
        for (int step = 0; step < 1024 && !sp_gmatch_finished(m); step++) {
            for (int i = 0; i < vocab; i++)
                logits[i] = (float)urand() + (has_closer(cv, i) ? 2.5f : 0.0f);
            long mi0, hi0, mi1, hi1;
            sp_gmatch_stats(m, &mi0, &hi0);
            double t0 = now_us();
            int n = sp_gmatch_mask(m, logits, vocab, 1024 - step);
            times[n_t++] = now_us() - t0;
            sp_gmatch_stats(m, &mi1, &hi1);
            if (getenv("TRACE"))
                fprintf(stderr, "step %d %s %.1f us allowed %d\n", step,
                        mi1 > mi0 ? "miss" : "hit ", times[n_t - 1], n);
            if (getenv("FILL_ONLY")) { /* the mask alone, again (cached now) */
                static uint64_t bits[4096];
                t0 = now_us();
                sp_gmatch_fill(m, bits, 1024 - step);
                times[n_t - 1] = now_us() - t0;
            }
            if (!n) break;
            int32_t best = -1;
            for (int i = 0; i < vocab; i++)
                if (logits[i] != -INFINITY && (best < 0 || logits[i] > logits[best])) best = i;
            if (best == eos) break;
            size_t len;
            const char *t = sp_cons_vocab_text(cv, best, &len, NULL);
            if (tl + len < (1 << 16)) memcpy(text + tl, t, len), tl += len;
            sp_gmatch_accept(m, best);
        }
        text[tl] = 0;
        json_t *j = json_loadb(text, tl, JSON_DECODE_ANY, NULL);
        ok_docs += j != NULL;
        if (!j) fprintf(stderr, "%s: document %d does not parse: %.300s\n", name, d, text);
        if (d == 0) printf("  e.g. %.200s\n", text);
        json_decref(j);
        long mi, hi;
        sp_gmatch_stats(m, &mi, &hi);
        misses += mi;
        hits += hi;
        free(text);
        sp_gmatch_free(m);
    }
    qsort(times, n_t, sizeof *times, cmp_d);
    double sum = 0;
    for (size_t i = 0; i < n_t; i++) sum += times[i];
    printf("| %-10s | %6.2f | %5zu | %7.1f | %7.1f | %7.1f | %8.0f | %ld/%ld | %d/%d |\n", name,
           cms, n_t, times[n_t / 2], times[n_t * 9 / 10], sum / (double)n_t, times[n_t - 1], misses,
           misses + hits, ok_docs, docs);
    free(logits);
    free(times);
    sp_grammar_release(g);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_grammar TOKENIZER_DIR [documents]\n");
        return 2;
    }
    int docs = argc > 2 ? atoi(argv[2]) : 20;
    sp_tokenizer *tok;
    sp_error err;
    if (sp_tokenizer_load_dir(&tok, argv[1], &err) != SP_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double t0 = now_us();
    sp_cons_vocab *cv = sp_cons_vocab_new(tok);
    double t1 = now_us();
    sp_gvocab *gv = sp_gvocab_new(cv);
    double t2 = now_us();
    printf("vocab %d: token texts %.0f ms, trie %.0f ms (%d nodes)\n", sp_tokenizer_vocab_size(tok),
           (t1 - t0) / 1e3, (t2 - t1) / 1e3, sp_gvocab_nodes(gv));
    char *f = fifty();
    double cms;
    sp_grammar *g = compile(f, &cms);
    printf("50-property schema: compile %.2f ms (best of 20), %d states\n", cms,
           g ? g->n_states : 0);
    sp_grammar_release(g);
    free(f);
    printf("| schema | compile ms | steps | median us | p90 us | mean us | max us | cache "
           "misses/steps | documents parse |\n|---|---|---|---|---|---|---|---|---|\n");
    run("typical", TYPICAL, tok, cv, gv, docs);
    run("recursive", RECURSIVE, tok, cv, gv, docs);
    run("lengths", LENGTHS, tok, cv, gv, docs);
    sp_gvocab_free(gv);
    sp_cons_vocab_free(cv);
    sp_tokenizer_free(tok);
    return 0;
}
