/* sp_sample_allowed (engine/sampling.h), the sampling hook of constrained
 * decoding: greedy takes the most likely allowed token, sampling draws
 * exactly from the allowed tokens renormalised (checked against the
 * analytic distribution), with and without the one-pass mask, and with
 * top_k / top_p applied after the constraint. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/sampling.h"

#define V 64

typedef struct allow_set {
    unsigned char ok[V];
    int asked; /* allow() calls */
} allow_set;

static int allow(void *ctx, int32_t id) {
    allow_set *a = ctx;
    a->asked++;
    return a->ok[id];
}

static int mask(void *ctx, float *logits, int vocab) {
    allow_set *a = ctx;
    int n = 0;
    for (int i = 0; i < vocab; i++) {
        if (a->ok[i] && logits[i] != -INFINITY)
            n++;
        else
            logits[i] = -INFINITY;
    }
    return n;
}

static void fill(float *logits) {
    for (int i = 0; i < V; i++) logits[i] = (float)((i * 37) % V) / 8.0f; /* a scrambled ramp */
}

static void test_greedy(int use_mask) {
    float logits[V];
    sp_token_prob cand[V];
    sp_sampling s;
    sp_sampling_default(&s);
    s.temperature = 0;
    sp_rng rng;
    sp_rng_seed(&rng, 1);
    allow_set a = {{0}, 0};
    for (int i = 0; i < V; i += 7) a.ok[i] = 1; /* 0, 7, 14, ... */
    sp_token_filter f = {allow, use_mask ? mask : NULL, &a};
    fill(logits);
    int best = -1;
    for (int i = 0; i < V; i++)
        if (a.ok[i] && (best < 0 || logits[i] > logits[best])) best = i;
    CHECK(sp_sample_allowed(logits, V, &s, &rng, cand, &f) == best);
    /* nothing allowed: -1 */
    memset(a.ok, 0, sizeof a.ok);
    fill(logits);
    CHECK(sp_sample_allowed(logits, V, &s, &rng, cand, &f) == -1);
    /* the most likely token allowed: one question only */
    fill(logits);
    int top = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[top]) top = i;
    a.ok[top] = 1;
    a.asked = 0;
    CHECK(sp_sample_allowed(logits, V, &s, &rng, cand, &f) == top);
    CHECK(a.asked == 1);
}

/* Draw counts against the allowed tokens' renormalised probabilities. */
static void test_sampled(int use_mask, int top_k, float top_p) {
    sp_sampling s;
    sp_sampling_default(&s);
    s.temperature = 1.0f;
    s.top_k = top_k;
    s.top_p = top_p;
    allow_set a = {{0}, 0};
    for (int i = 0; i < V; i += 3) a.ok[i] = 1;
    float base[V], logits[V];
    sp_token_prob cand[V];
    fill(base);
    /* expected: allowed tokens, then top_k / top_p over them */
    double p[V] = {0}, total = 0;
    int order[V], n = 0;
    for (int i = 0; i < V; i++)
        if (a.ok[i]) order[n++] = i;
    for (int i = 0; i < n; i++) /* sort allowed by logit, descending */
        for (int j = i + 1; j < n; j++)
            if (base[order[j]] > base[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    int keep = top_k > 0 && top_k < n ? top_k : n;
    double mass = 0, kept = 0;
    for (int i = 0; i < keep; i++) mass += exp(base[order[i]]);
    int k2 = 0;
    for (; k2 < keep; k2++) {
        kept += exp(base[order[k2]]);
        if (kept >= top_p * mass) {
            k2++;
            break;
        }
    }
    for (int i = 0; i < k2; i++) total += p[order[i]] = exp(base[order[i]]);
    sp_rng rng;
    sp_rng_seed(&rng, 42);
    sp_token_filter f = {allow, use_mask ? mask : NULL, &a};
    int counts[V] = {0};
    const int draws = 20000;
    for (int d = 0; d < draws; d++) {
        memcpy(logits, base, sizeof logits);
        int t = sp_sample_allowed(logits, V, &s, &rng, cand, &f);
        CHECK(t >= 0 && t < V);
        if (t >= 0 && t < V) counts[t]++;
    }
    double chi2 = 0;
    int bins = 0, outside = 0;
    for (int i = 0; i < V; i++) {
        double e = draws * p[i] / total;
        if (e == 0) {
            outside += counts[i];
            continue;
        }
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
        bins++;
    }
    CHECKF(outside == 0, "%d draws outside the allowed set", outside);
    /* the 99.9% point of chi2 with <= 21 degrees of freedom is below 47 */
    CHECKF(chi2 < 47, "mask %d top_k %d top_p %g: chi2 %.1f over %d bins", use_mask, top_k,
           (double)top_p, chi2, bins);
}

int main(void) {
    for (int m = 0; m < 2; m++) {
        test_greedy(m);
        test_sampled(m, 0, 1.0f);
        test_sampled(m, 5, 1.0f);
        test_sampled(m, 0, 0.5f);
    }
    return check_summary("sampling_allowed");
}
