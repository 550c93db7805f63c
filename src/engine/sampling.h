/* Token sampling: pure functions on one logits row plus a per-request RNG.
 * Nothing here knows about threads or the model; the engine thread owns the
 * scratch buffers and calls these once per sequence per step. */
#ifndef SP_ENGINE_SAMPLING_H
#define SP_ENGINE_SAMPLING_H

#include <stdint.h>

/* xoshiro256**, seeded through splitmix64: one stream per request, so the
 * same seed and the same request give the same tokens whatever else is in
 * the batch. */
typedef struct sp_rng {
    uint64_t s[4];
} sp_rng;

void sp_rng_seed(sp_rng *r, uint64_t seed);
uint64_t sp_rng_next(sp_rng *r);
/* Uniform in [0, 1). */
double sp_rng_uniform(sp_rng *r);

typedef struct sp_logit_bias {
    int32_t id;
    float bias;
} sp_logit_bias;

typedef struct sp_sampling {
    float temperature;        /* 0: greedy */
    int top_k;                /* 0: off */
    float top_p;              /* 1: off */
    float min_p;              /* 0: off */
    float repetition_penalty; /* 1: off; HF style, over prompt and output */
    float presence_penalty;   /* 0: off; OpenAI style, over output */
    float frequency_penalty;  /* 0: off; OpenAI style, over output */
    const sp_logit_bias *bias;
    int n_bias;
} sp_sampling;

void sp_sampling_default(sp_sampling *s);

/* A (token, value) pair used for candidates and top logprobs. */
typedef struct sp_token_prob {
    int32_t id;
    float p;
} sp_token_prob;

/* Applies logit_bias and the penalties to logits[0..vocab) in place.
 * history = prompt followed by the output so far (n_prompt of them are the
 * prompt). counts is vocab ints of scratch, left all zero on return. */
void sp_apply_penalties(float *logits, int vocab, const sp_sampling *s, const int32_t *history,
                        int n_history, int n_prompt, int *counts);

/* Picks the next token from (already penalised) logits. Greedy when
 * temperature <= 0 or top_k == 1 (ties: lowest id). cand is vocab entries of
 * scratch. logits are clobbered. */
int32_t sp_sample(float *logits, int vocab, const sp_sampling *s, sp_rng *rng, sp_token_prob *cand);

/* A constraint on the next token (engine/constrain.h): allow says whether
 * id may come; mask sets the logit of every refused token to -inf (one pass,
 * faster than asking allow for each) and returns how many are allowed. */
typedef struct sp_token_filter {
    int (*allow)(void *ctx, int32_t id);
    int (*mask)(void *ctx, float *logits, int vocab);
    void *ctx;
} sp_token_filter;

/* sp_sample restricted to the tokens the filter allows, as if every refused
 * token were masked (-inf) before sampling (top_k / top_p / min_p then apply
 * to the allowed tokens). Greedy, and sampling without truncation, draw and
 * when the draw is refused mask that token and draw again (exact: greedy
 * takes the most likely allowed token); after a few refusals, or at once
 * with truncation, every refused token is masked in one pass. Returns -1 if
 * no token is allowed. logits are clobbered. */
int32_t sp_sample_allowed(float *logits, int vocab, const sp_sampling *s, sp_rng *rng,
                          sp_token_prob *cand, const sp_token_filter *f);

/* log_softmax(logits)[id], and the n_top most likely tokens with their
 * log-probabilities (highest first, ties: lowest id). Does not modify logits. */
float sp_logprob_of(const float *logits, int vocab, int32_t id);
void sp_top_logprobs(const float *logits, int vocab, int n_top, sp_token_prob *out);

#endif
