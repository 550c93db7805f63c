/* Single-query attention over block-paged K/V with an online softmax.
 *
 * Query heads that share a KV head (GQA) are processed together, up to
 * SUBGROUP at a time, so each key and value row is read from memory once per
 * subgroup rather than once per query head: keys are scored a chunk at a
 * time, each head's running output is rescaled once per chunk when its
 * running max grows, then the chunk's values are accumulated with axpy while
 * the value row is hot in L1 (or, where the ISA level has them, the chunk's
 * keys are scored eight at a time per head, the chunk's weights are
 * exponentiated as a vector and each head's output accumulates in registers
 * across the chunk's value rows). Thread-safe: state lives on the stack. */
#include <math.h>

#include "compute/ops.h"
#include "compute/ops_internal.h"

#define CHUNK    64
#define SUBGROUP 8

typedef struct head_state {
    const float *q;
    float *acc; /* the head's output row, used as the accumulator */
    float m, l; /* running max and running sum of exp(s - m) */
    float s[CHUNK];
} head_state;

static const float *kv_row(const float *const *blocks, const sp_attn_args *a, int t, int g) {
    return blocks[t / a->block_size] + (size_t)(t % a->block_size) * a->kv_stride +
           (size_t)g * a->head_dim;
}

static float score(const sp_kernel_table *k, const sp_attn_args *a, const float *q,
                   const float *key) {
    float v = k->dot_f32(q, key, a->head_dim) * a->scale;
    return a->softcap > 0.0f ? a->softcap * tanhf(v / a->softcap) : v;
}

/* Scores of keys t0 .. t0+n-1 for every head of the subgroup, the chunk's
 * keys scored together per head (the chunk stays in L1 across heads). */
static void score_chunk(const sp_kernel_table *k, const sp_attn_args *a, head_state *hs, int nh,
                        int g, int t0, int n) {
    const float *keys[CHUNK];
    for (int j = 0; j < n; j++) keys[j] = kv_row(a->k_blocks, a, t0 + j, g);
    for (int i = 0; i < nh; i++) {
        k->dot_rows(hs[i].s, hs[i].q, keys, n, a->head_dim);
        for (int j = 0; j < n; j++) {
            float v = hs[i].s[j] * a->scale;
            hs[i].s[j] = a->softcap > 0.0f ? a->softcap * tanhf(v / a->softcap) : v;
        }
    }
}

/* Folds a chunk's max into a head's running max, rescaling what it has. */
static void update_max(const sp_kernel_table *k, head_state *h, int n, int head_dim) {
    float cmax = -INFINITY;
    for (int j = 0; j < n; j++) cmax = h->s[j] > cmax ? h->s[j] : cmax;
    if (cmax <= h->m) return;
    if (h->m != -INFINITY) {
        float corr = expf(h->m - cmax);
        k->scale(h->acc, corr, head_dim);
        h->l *= corr;
    }
    h->m = cmax;
}

/* Heads h0 .. h0+nh-1, all reading KV head g. */
static void attend_subgroup(const sp_kernel_table *k, const sp_attn_args *a, int h0, int nh,
                            int g) {
    head_state hs[SUBGROUP];
    for (int i = 0; i < nh; i++) {
        hs[i].q = a->q + (size_t)(h0 + i) * a->head_dim;
        hs[i].acc = a->out + (size_t)(h0 + i) * a->head_dim;
        hs[i].m = -INFINITY;
        hs[i].l = 0.0f;
        for (int d = 0; d < a->head_dim; d++) hs[i].acc[d] = 0.0f;
    }
    for (int t0 = a->k_begin; t0 < a->k_end; t0 += CHUNK) {
        int n = a->k_end - t0 < CHUNK ? a->k_end - t0 : CHUNK;
        if (k->dot_rows)
            score_chunk(k, a, hs, nh, g, t0, n);
        else
            for (int j = 0; j < n; j++) {
                const float *key = kv_row(a->k_blocks, a, t0 + j, g);
                for (int i = 0; i < nh; i++) hs[i].s[j] = score(k, a, hs[i].q, key);
            }
        for (int i = 0; i < nh; i++) update_max(k, &hs[i], n, a->head_dim);
        if (k->exp_shift_sum && k->weighted_rows) {
            const float *vals[CHUNK];
            for (int j = 0; j < n; j++) vals[j] = kv_row(a->v_blocks, a, t0 + j, g);
            for (int i = 0; i < nh; i++) {
                hs[i].l += k->exp_shift_sum(hs[i].s, n, hs[i].m);
                k->weighted_rows(hs[i].acc, hs[i].s, vals, n, a->head_dim);
            }
            continue;
        }
        for (int j = 0; j < n; j++) {
            const float *val = kv_row(a->v_blocks, a, t0 + j, g);
            for (int i = 0; i < nh; i++) {
                float p = expf(hs[i].s[j] - hs[i].m);
                hs[i].l += p;
                k->axpy(hs[i].acc, p, val, a->head_dim);
            }
        }
    }
    for (int i = 0; i < nh; i++)
        if (hs[i].l > 0.0f) k->scale(hs[i].acc, 1.0f / hs[i].l, a->head_dim);
}

void sp_attention(const sp_attn_args *a) {
    const sp_kernel_table *k = sp_ops_kernels();
    int group = a->n_kv_heads > 0 ? a->n_heads / a->n_kv_heads : 1;
    if (group < 1) group = 1;
    for (int g = 0; g * group < a->n_heads; g++)
        for (int i = 0; i < group; i += SUBGROUP) {
            int h0 = g * group + i;
            int nh = group - i < SUBGROUP ? group - i : SUBGROUP;
            if (h0 + nh > a->n_heads) nh = a->n_heads - h0;
            attend_subgroup(k, a, h0, nh, g);
        }
}
