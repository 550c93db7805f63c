/* Single-query attention over block-paged K/V with an online softmax: keys
 * are scored a chunk at a time, the running output is rescaled once per
 * chunk when the running max grows, then values are accumulated with axpy. */
#include <math.h>

#include "compute/ops.h"
#include "compute/ops_internal.h"

#define CHUNK 64

static const float *kv_row(const float *const *blocks, const sp_attn_args *a, int t, int g) {
    return blocks[t / a->block_size] + (size_t)(t % a->block_size) * a->kv_stride +
           (size_t)g * a->head_dim;
}

static void attend_head(const sp_kernel_table *k, const sp_attn_args *a, int h, int g) {
    const float *q = a->q + (size_t)h * a->head_dim;
    float *acc = a->out + (size_t)h * a->head_dim;
    float s[CHUNK];
    float m = -INFINITY, l = 0.0f;
    for (int i = 0; i < a->head_dim; i++) acc[i] = 0.0f;
    for (int t0 = a->k_begin; t0 < a->k_end; t0 += CHUNK) {
        int n = a->k_end - t0 < CHUNK ? a->k_end - t0 : CHUNK;
        float cmax = -INFINITY;
        for (int j = 0; j < n; j++) {
            float v = k->dot_f32(q, kv_row(a->k_blocks, a, t0 + j, g), a->head_dim) * a->scale;
            if (a->softcap > 0.0f) v = a->softcap * tanhf(v / a->softcap);
            s[j] = v;
            cmax = v > cmax ? v : cmax;
        }
        if (cmax > m) {
            if (m != -INFINITY) {
                float corr = expf(m - cmax);
                k->scale(acc, corr, a->head_dim);
                l *= corr;
            }
            m = cmax;
        }
        for (int j = 0; j < n; j++) {
            float p = expf(s[j] - m);
            l += p;
            k->axpy(acc, p, kv_row(a->v_blocks, a, t0 + j, g), a->head_dim);
        }
    }
    if (l > 0.0f) k->scale(acc, 1.0f / l, a->head_dim);
}

void sp_attention(const sp_attn_args *a) {
    const sp_kernel_table *k = sp_ops_kernels();
    int group = a->n_kv_heads > 0 ? a->n_heads / a->n_kv_heads : 1;
    if (group < 1) group = 1;
    for (int h = 0; h < a->n_heads; h++) attend_head(k, a, h, h / group);
}
