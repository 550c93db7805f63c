/* sp_attention against a naive two-pass softmax in double precision: GQA,
 * key ranges that start and end mid-block (sliding windows), soft-capping,
 * many blocks, at every ISA level the CPU has. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "isa_levels.h"
#define TEST_RAND_SEED 0x13198a2e03707344ull
#include "test_rand.h"
#include "compute/ops.h"

/* Also returns the largest |score|: f32 scores carry an absolute error of a
 * few ulp of it, which exp turns into that much relative error in the
 * weights, so the tolerance grows with it. */
static double reference(const sp_attn_args *a, double *out) {
    double smax = 0;
    int group = a->n_heads / a->n_kv_heads, n = a->k_end - a->k_begin;
    double *s = malloc(sizeof(double) * (n > 0 ? n : 1));
    for (int h = 0; h < a->n_heads; h++) {
        int g = h / group;
        const float *q = a->q + h * a->head_dim;
        double m = -INFINITY, sum = 0;
        for (int j = 0; j < n; j++) {
            int t = a->k_begin + j;
            const float *k = a->k_blocks[t / a->block_size] + (t % a->block_size) * a->kv_stride +
                             g * a->head_dim;
            double d = 0;
            for (int i = 0; i < a->head_dim; i++) d += (double)q[i] * k[i];
            d *= a->scale;
            if (a->softcap > 0) d = a->softcap * tanh(d / a->softcap);
            s[j] = d;
            m = fmax(m, d);
            smax = fmax(smax, fabs(d));
        }
        for (int j = 0; j < n; j++) sum += (s[j] = exp(s[j] - m));
        for (int i = 0; i < a->head_dim; i++) {
            double acc = 0;
            for (int j = 0; j < n; j++) {
                int t = a->k_begin + j;
                acc += s[j] * a->v_blocks[t / a->block_size]
                                         [(t % a->block_size) * a->kv_stride + g * a->head_dim + i];
            }
            out[h * a->head_dim + i] = n > 0 ? acc / sum : 0.0;
        }
    }
    free(s);
    return smax;
}

typedef struct acase {
    int n_heads, n_kv, head_dim, block_size, n_tokens, k_begin, k_end;
    float softcap, qscale;
} acase;

static void run(const acase *c) {
    int kv_stride = c->n_kv * c->head_dim + 3; /* padding: stride is not n_kv*head_dim */
    int n_blocks = (c->n_tokens + c->block_size - 1) / c->block_size;
    float **kb = malloc(sizeof(float *) * n_blocks), **vb = malloc(sizeof(float *) * n_blocks);
    for (int b = 0; b < n_blocks; b++) { /* blocks are separate allocations, not contiguous */
        kb[b] = malloc(sizeof(float) * c->block_size * kv_stride);
        vb[b] = malloc(sizeof(float) * c->block_size * kv_stride);
        for (int i = 0; i < c->block_size * kv_stride; i++) {
            kb[b][i] = frand(-1, 1);
            vb[b][i] = frand(-1, 1);
        }
    }
    int nq = c->n_heads * c->head_dim;
    float *q = malloc(sizeof(float) * nq), *out = malloc(sizeof(float) * nq);
    double *want = malloc(sizeof(double) * nq);
    for (int i = 0; i < nq; i++) q[i] = frand(-c->qscale, c->qscale);
    sp_attn_args a = {
        .out = out,
        .q = q,
        .k_blocks = (const float *const *)kb,
        .v_blocks = (const float *const *)vb,
        .block_size = c->block_size,
        .kv_stride = kv_stride,
        .n_heads = c->n_heads,
        .n_kv_heads = c->n_kv,
        .head_dim = c->head_dim,
        .k_begin = c->k_begin,
        .k_end = c->k_end,
        .scale = 1.0f / sqrtf((float)c->head_dim),
        .softcap = c->softcap,
    };
    double smax = reference(&a, want);
    double tol = 1e-6 + 2e-7 * smax; /* values are in [-1, 1] */
    sp_attention(&a);
    int bad = -1;
    for (int i = 0; i < nq && bad < 0; i++)
        if (!(fabs(out[i] - want[i]) <= tol)) bad = i;
    CHECKF(bad < 0, "heads=%d/%d hd=%d bs=%d range=[%d,%d) cap=%g isa=%s: out[%d]=%.9g want %.9g",
           c->n_heads, c->n_kv, c->head_dim, c->block_size, c->k_begin, c->k_end, c->softcap,
           sp_isa_name(sp_ops_isa()), bad, bad >= 0 ? out[bad] : 0.0, bad >= 0 ? want[bad] : 0.0);
    for (int b = 0; b < n_blocks; b++) free(kb[b]), free(vb[b]);
    free(kb), free(vb), free(q), free(out), free(want);
}

int main(void) {
    static const acase cases[] = {
        /* heads, kv, hd, bs, tokens, begin, end, softcap, q scale */
        {1, 1, 8, 16, 1, 0, 1, 0, 1},           /* one key */
        {4, 4, 64, 16, 40, 0, 40, 0, 1},        /* MHA */
        {8, 2, 64, 16, 300, 0, 300, 0, 3},      /* GQA, many blocks, > one chunk */
        {8, 1, 128, 32, 260, 0, 260, 0, 1},     /* MQA */
        {6, 2, 80, 16, 200, 37, 171, 0, 2},     /* window: starts and ends mid-block */
        {4, 2, 256, 16, 129, 0, 129, 50.0f, 8}, /* soft-capped (Gemma 2 style) */
        {4, 2, 33, 7, 150, 64, 150, 30.0f, 20}, /* odd head_dim/block, large scores */
        {2, 1, 16, 16, 64, 63, 64, 0, 1},       /* window of a single key */
        {4, 2, 64, 16, 600, 10, 590, 0, 40},    /* large logits: the max moves a lot */
        {20, 1, 32, 16, 90, 0, 90, 0, 2},       /* group of 20: split into subgroups */
        {24, 2, 16, 8, 70, 5, 70, 0, 2},        /* two groups of 12 */
    };
    sp_ops_init();
    for (int lvl = SP_ISA_SCALAR; lvl < SP_ISA_LEVELS; lvl++) {
        if (!isa_enter("test_compute_attention", lvl)) continue;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) run(&cases[i]);
    }
    return check_summary("test_compute_attention");
}
