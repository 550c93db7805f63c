#include "engine/sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sp_rng_seed(sp_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t sp_rng_next(sp_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sp_rng_uniform(sp_rng *r) {
    return (double)(sp_rng_next(r) >> 11) * 0x1.0p-53;
}

void sp_sampling_default(sp_sampling *s) {
    memset(s, 0, sizeof *s);
    s->temperature = 1.0f;
    s->top_p = 1.0f;
    s->repetition_penalty = 1.0f;
}

void sp_apply_penalties(float *logits, int vocab, const sp_sampling *s, const int32_t *history,
                        int n_history, int n_prompt, int *counts) {
    for (int i = 0; i < s->n_bias; i++) {
        int32_t id = s->bias[i].id;
        if (id >= 0 && id < vocab) logits[id] += s->bias[i].bias;
    }
    int rep = s->repetition_penalty != 1.0f && s->repetition_penalty > 0.0f;
    int oai = s->presence_penalty != 0.0f || s->frequency_penalty != 0.0f;
    if (!rep && !oai) return;
    /* counts[id]: occurrences in the output; the prompt marks with -1 so the
     * repetition penalty sees it but presence/frequency do not. */
    for (int i = 0; i < n_history; i++) {
        int32_t id = history[i];
        if (id < 0 || id >= vocab) continue;
        if (i < n_prompt) {
            if (counts[id] == 0) counts[id] = -1;
        } else {
            counts[id] = counts[id] < 0 ? 1 : counts[id] + 1;
        }
    }
    for (int i = 0; i < n_history; i++) {
        int32_t id = history[i];
        if (id < 0 || id >= vocab || counts[id] == 0) continue;
        int c = counts[id];
        counts[id] = 0; /* each id once; also leaves the scratch zeroed */
        if (rep) {
            float r = s->repetition_penalty;
            logits[id] = logits[id] > 0 ? logits[id] / r : logits[id] * r;
        }
        if (oai && c > 0) logits[id] -= s->presence_penalty + s->frequency_penalty * (float)c;
    }
}

static int cmp_desc(const void *a, const void *b) {
    const sp_token_prob *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Moves the k largest candidates (by p, ties to lower id) to the front,
 * sorted. Quickselect first so that small k over a big vocabulary is cheap. */
static void select_top(sp_token_prob *c, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        sp_token_prob pivot = c[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (cmp_desc(&c[i], &pivot) < 0) i++;
            while (cmp_desc(&c[j], &pivot) > 0) j--;
            if (i <= j) {
                sp_token_prob t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
    qsort(c, (size_t)k, sizeof *c, cmp_desc);
}

int32_t sp_sample(float *logits, int vocab, const sp_sampling *s, sp_rng *rng,
                  sp_token_prob *cand) {
    if (s->temperature <= 0.0f || s->top_k == 1) return argmax(logits, vocab);
    int n = vocab;
    for (int i = 0; i < n; i++) cand[i] = (sp_token_prob){i, logits[i] / s->temperature};
    int sorted = 0;
    if (s->top_k > 0 && s->top_k < n) {
        select_top(cand, n, s->top_k);
        n = s->top_k;
        sorted = 1;
    }
    if (!sorted && (s->top_p < 1.0f || s->min_p > 0.0f)) {
        qsort(cand, (size_t)n, sizeof *cand, cmp_desc);
        sorted = 1;
    }
    float mx = cand[0].p;
    for (int i = 1; i < n; i++)
        if (cand[i].p > mx) mx = cand[i].p;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        cand[i].p = expf(cand[i].p - mx);
        sum += cand[i].p;
    }
    /* sorted here whenever top_p or min_p are active */
    if (s->min_p > 0.0f) {
        float floor_p = s->min_p * cand[0].p; /* cand[0] is the max: p = 1 */
        int keep = 1;
        while (keep < n && cand[keep].p >= floor_p) keep++;
        n = keep;
    }
    if (s->top_p < 1.0f) {
        double total = 0;
        for (int i = 0; i < n; i++) total += cand[i].p;
        double acc = 0;
        int keep = 0;
        while (keep < n) {
            acc += cand[keep].p;
            keep++;
            if (acc >= s->top_p * total) break;
        }
        n = keep;
    }
    sum = 0;
    for (int i = 0; i < n; i++) sum += cand[i].p;
    double u = sp_rng_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += cand[i].p;
        if (u < acc) return cand[i].id;
    }
    return cand[n - 1].id;
}

#define SP_ALLOW_TRIES 8

int32_t sp_sample_allowed(float *logits, int vocab, const sp_sampling *s, sp_rng *rng,
                          sp_token_prob *cand, const sp_token_filter *f) {
    /* top_k / top_p / min_p apply to the allowed tokens: masking refused
     * draws one by one would truncate over tokens not yet known to be
     * refused, so truncating samplers mask first */
    int truncates = s->temperature > 0.0f && s->top_k != 1 &&
                    (s->top_k > 0 || s->top_p < 1.0f || s->min_p > 0.0f);
    for (int t = 0; t < (truncates ? 0 : SP_ALLOW_TRIES); t++) {
        int32_t tok = sp_sample(logits, vocab, s, rng, cand);
        if (logits[tok] == -INFINITY) return -1; /* everything masked */
        if (f->allow(f->ctx, tok)) return tok;
        logits[tok] = -INFINITY;
    }
    int any = 0;
    if (f->mask) {
        any = f->mask(f->ctx, logits, vocab) > 0;
    } else {
        for (int i = 0; i < vocab; i++) {
            if (logits[i] == -INFINITY) continue;
            if (f->allow(f->ctx, i))
                any = 1;
            else
                logits[i] = -INFINITY;
        }
    }
    if (!any) return -1;
    int32_t tok = sp_sample(logits, vocab, s, rng, cand);
    return logits[tok] == -INFINITY ? -1 : tok;
}

static double log_sum_exp(const float *x, int n, float *max_out) {
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)x[i] - mx);
    *max_out = mx;
    return log(sum);
}

float sp_logprob_of(const float *logits, int vocab, int32_t id) {
    float mx;
    double lse = log_sum_exp(logits, vocab, &mx);
    return (float)((double)logits[id] - mx - lse);
}

void sp_top_logprobs(const float *logits, int vocab, int n_top, sp_token_prob *out) {
    if (n_top <= 0) return;
    if (n_top > vocab) n_top = vocab;
    float mx;
    double lse = log_sum_exp(logits, vocab, &mx);
    int n = 0; /* out[0..n) kept sorted, insertion by scan: n_top is <= 20 */
    for (int i = 0; i < vocab; i++) {
        sp_token_prob c = {i, logits[i]};
        if (n == n_top && cmp_desc(&c, &out[n - 1]) >= 0) continue;
        int j = n < n_top ? n++ : n - 1;
        while (j > 0 && cmp_desc(&c, &out[j - 1]) < 0) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = c;
    }
    for (int i = 0; i < n_top; i++) out[i].p = (float)((double)out[i].p - mx - lse);
}
