/* Sampling: greedy, temperature, top-k/top-p/min-p, penalties, logit bias,
 * logprobs and seeded reproducibility, checked against values computed
 * here from the definitions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/sampling.h"

#define V 3

static void frequencies(const float *logits, const sp_sampling *s, int n, double *freq) {
    sp_rng rng;
    sp_rng_seed(&rng, 1234);
    sp_token_prob cand[V];
    float row[V];
    for (int i = 0; i < V; i++) freq[i] = 0;
    for (int k = 0; k < n; k++) {
        memcpy(row, logits, sizeof row);
        freq[sp_sample(row, V, s, &rng, cand)] += 1.0 / n;
    }
}

static void test_rng(void) {
    sp_rng a, b, c;
    sp_rng_seed(&a, 42);
    sp_rng_seed(&b, 42);
    sp_rng_seed(&c, 43);
    int same = 1, differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = sp_rng_next(&a), y = sp_rng_next(&b), z = sp_rng_next(&c);
        same &= x == y;
        differ |= x != z;
    }
    CHECK(same);
    CHECK(differ);
    double mean = 0;
    for (int i = 0; i < 10000; i++) {
        double u = sp_rng_uniform(&a);
        CHECK(u >= 0 && u < 1);
        mean += u / 10000;
    }
    CHECK_NEAR(mean, 0.5, 0.02);
}

static void test_greedy(void) {
    sp_sampling s;
    sp_sampling_default(&s);
    s.temperature = 0;
    float row[5] = {0.1f, 3.0f, -1.0f, 3.0f, 2.9f};
    sp_token_prob cand[5];
    sp_rng rng;
    sp_rng_seed(&rng, 1);
    CHECK(sp_sample(row, 5, &s, &rng, cand) == 1); /* tie 1 vs 3: lowest id */
    float row2[5] = {0.1f, 3.0f, -1.0f, 3.5f, 2.9f};
    s.temperature = 0.8f;
    s.top_k = 1;
    CHECK(sp_sample(row2, 5, &s, &rng, cand) == 3);
}

static void test_distributions(void) {
    const float logits[V] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    sp_sampling s;
    sp_sampling_default(&s);
    double f[V];
    frequencies(logits, &s, 20000, f);
    CHECK_NEAR(f[0], 0.5, 0.02);
    CHECK_NEAR(f[1], 0.3, 0.02);
    CHECK_NEAR(f[2], 0.2, 0.02);

    /* temperature 0.5 squares the probabilities: 25:9:4 */
    s.temperature = 0.5f;
    frequencies(logits, &s, 20000, f);
    CHECK_NEAR(f[0], 25.0 / 38, 0.02);
    CHECK_NEAR(f[2], 4.0 / 38, 0.02);
    s.temperature = 1;

    s.top_k = 2; /* renormalised 5:3 */
    frequencies(logits, &s, 20000, f);
    CHECK(f[2] == 0);
    CHECK_NEAR(f[0], 5.0 / 8, 0.02);
    s.top_k = 0;

    s.top_p = 0.6f; /* 0.5 < 0.6, 0.8 >= 0.6: two tokens */
    frequencies(logits, &s, 20000, f);
    CHECK(f[2] == 0 && f[1] > 0);
    s.top_p = 0.5f; /* the first token alone reaches 0.5 */
    frequencies(logits, &s, 2000, f);
    CHECK(f[0] == 1.0 || fabs(f[0] - 1.0) < 1e-9);
    s.top_p = 1;

    s.min_p = 0.5f; /* keep p >= 0.25 */
    frequencies(logits, &s, 20000, f);
    CHECK(f[2] == 0 && f[1] > 0);
    CHECK_NEAR(f[0], 5.0 / 8, 0.02);
}

static void test_penalties(void) {
    sp_sampling s;
    sp_sampling_default(&s);
    int counts[6] = {0};
    /* prompt: 1 ; output: 2 2 3 */
    const int32_t hist[4] = {1, 2, 2, 3};
    float row[6] = {1, 2, -2, 4, 1, 1};
    s.repetition_penalty = 2.0f;
    sp_apply_penalties(row, 6, &s, hist, 4, 1, counts);
    CHECK_NEAR(row[1], 1.0, 1e-6);  /* 2 / 2: the prompt counts too */
    CHECK_NEAR(row[2], -4.0, 1e-6); /* negative: times 2 */
    CHECK_NEAR(row[3], 2.0, 1e-6);
    CHECK_NEAR(row[0], 1.0, 1e-6);
    for (int i = 0; i < 6; i++) CHECK(counts[i] == 0);

    float row2[6] = {1, 2, -2, 4, 1, 1};
    sp_sampling_default(&s);
    s.presence_penalty = 0.5f;
    s.frequency_penalty = 0.25f;
    sp_logit_bias bias[2] = {{4, 10.0f}, {99, 1.0f}}; /* out of range ignored */
    s.bias = bias;
    s.n_bias = 2;
    sp_apply_penalties(row2, 6, &s, hist, 4, 1, counts);
    CHECK_NEAR(row2[1], 2.0, 1e-6); /* prompt only: no presence penalty */
    CHECK_NEAR(row2[2], -2 - 0.5 - 0.5, 1e-6);
    CHECK_NEAR(row2[3], 4 - 0.5 - 0.25, 1e-6);
    CHECK_NEAR(row2[4], 11.0, 1e-6);
    for (int i = 0; i < 6; i++) CHECK(counts[i] == 0);
}

static void test_logprobs(void) {
    float row[5] = {0.5f, -1.0f, 2.0f, 2.0f, 0.0f};
    double z = 0;
    for (int i = 0; i < 5; i++) z += exp(row[i]);
    for (int i = 0; i < 5; i++) CHECK_NEAR(sp_logprob_of(row, 5, i), row[i] - log(z), 1e-5);
    sp_token_prob top[3];
    sp_top_logprobs(row, 5, 3, top);
    CHECK(top[0].id == 2 && top[1].id == 3 && top[2].id == 0);
    CHECK_NEAR(top[2].p, 0.5 - log(z), 1e-5);
}

static void test_seeded(void) {
    float base[64];
    for (int i = 0; i < 64; i++) base[i] = sinf((float)i);
    sp_sampling s;
    sp_sampling_default(&s);
    s.temperature = 1.5f;
    s.top_p = 0.9f;
    sp_token_prob cand[64];
    int32_t a[50], b[50];
    for (int run = 0; run < 2; run++) {
        sp_rng rng;
        sp_rng_seed(&rng, 7);
        for (int k = 0; k < 50; k++) {
            float row[64];
            memcpy(row, base, sizeof row);
            (run ? b : a)[k] = sp_sample(row, 64, &s, &rng, cand);
        }
    }
    CHECK(!memcmp(a, b, sizeof a));
    int distinct = 0;
    for (int k = 1; k < 50; k++) distinct |= a[k] != a[0];
    CHECK(distinct);
}

int main(void) {
    test_rng();
    test_greedy();
    test_distributions();
    test_penalties();
    test_logprobs();
    test_seeded();
    return check_summary("test_sampling_basic");
}
