/* Building blocks both towers share: linear layers (with Gemma 4's optional
 * clamps), LayerNorm, and bidirectional attention within each image. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vision/internal.h"

static void clamp_rows(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
}

sp_status vis_matmul(sp_vision *v, float *y, const float *x, int n, const vis_linear *l,
                     sp_error *err) {
    size_t in = (size_t)sp_tensor_cols(&l->w), out = (size_t)l->w.shape[0];
    float *tmp = NULL;
    if (l->clip) { /* each clipped linear clamps its own copy of the input */
        tmp = malloc((size_t)n * in * sizeof(float));
        if (!tmp) return sp_fail(err, SP_ENOMEM, "vision: clipped linear of %d rows", n);
        memcpy(tmp, x, (size_t)n * in * sizeof(float));
        clamp_rows(tmp, (size_t)n * in, l->in_min, l->in_max);
        x = tmp;
    }
    sp_matmul(v->pool, y, x, n, &l->w, l->b.data, v->prec);
    if (l->clip) clamp_rows(y, (size_t)n * out, l->out_min, l->out_max);
    free(tmp);
    return SP_OK;
}

void vis_layernorm(float *x, int n, int dim, const sp_tensor *w, const sp_tensor *b, float eps) {
    const float *g = w->data, *bb = b->data;
    for (int t = 0; t < n; t++) {
        float *r = x + (size_t)t * dim;
        double mean = 0, var = 0;
        for (int i = 0; i < dim; i++) mean += r[i];
        mean /= dim;
        for (int i = 0; i < dim; i++) var += (r[i] - mean) * (r[i] - mean);
        float inv = (float)(1.0 / sqrt(var / dim + eps));
        for (int i = 0; i < dim; i++) r[i] = ((float)(r[i] - mean) * inv) * g[i] + bb[i];
    }
}

typedef struct attn_job {
    float *out;
    const float *q, *k, *v;
    const int *seg, *seg_of; /* seg_of[t]: the image of row t */
    int row0, n_heads, head_dim, hidden;
    float scale;
} attn_job;

/* Item i: row row0 + i, every head; the row's image keys form one block. */
static void attn_item(void *ctx, int item, int n_items) {
    (void)n_items;
    const attn_job *j = ctx;
    int t = j->row0 + item, img = j->seg_of[t];
    int begin = j->seg[img], len = j->seg[img + 1] - begin;
    for (int h = 0; h < j->n_heads; h++) {
        size_t off = (size_t)h * j->head_dim;
        const float *kb = j->k + (size_t)begin * j->hidden + off;
        const float *vb = j->v + (size_t)begin * j->hidden + off;
        sp_attn_args a = {
            .out = j->out + (size_t)t * j->hidden + off,
            .q = j->q + (size_t)t * j->hidden + off,
            .k_blocks = &kb,
            .v_blocks = &vb,
            .block_size = len,
            .kv_stride = j->hidden,
            .n_heads = 1,
            .n_kv_heads = 1,
            .head_dim = j->head_dim,
            .k_begin = 0,
            .k_end = len,
            .scale = j->scale,
        };
        sp_attention(&a);
    }
}

sp_status vis_attention(sp_vision *v, float *out, const float *q, const float *k, const float *vv,
                        const int *seg, int n_seg, float scale, sp_error *err) {
    int n = seg[n_seg];
    int *seg_of = malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    if (!seg_of) return sp_fail(err, SP_ENOMEM, "vision attention: %d rows", n);
    for (int i = 0; i < n_seg; i++)
        for (int t = seg[i]; t < seg[i + 1]; t++) seg_of[t] = i;
    attn_job j = {out, q, k, vv, seg, seg_of, 0, v->n_heads, v->head_dim, v->hidden, scale};
    for (j.row0 = 0; j.row0 < n; j.row0 += 1 << 19) { /* the pool takes < 2^20 items per run */
        int cnt = n - j.row0 < (1 << 19) ? n - j.row0 : 1 << 19;
        sp_pool_run_n(v->pool, attn_item, &j, cnt);
    }
    free(seg_of);
    return SP_OK;
}
