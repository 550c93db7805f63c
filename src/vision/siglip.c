/* Gemma 3's image path: the SigLIP vision transformer (patch convolution as
 * a matmul, learned positions, pre-LayerNorm blocks, post-LayerNorm), then
 * Gemma3MultiModalProjector (average pool of the patch grid down to
 * mm_tokens_per_image, RMSNorm with 1 + w, projection into the text model's
 * hidden size; no sqrt(hidden) scale anywhere). Images of a batch share
 * every matmul; attention stays within each image. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "vision/internal.h"

typedef struct sig_bufs {
    float *x, *xb, *q, *k, *v, *att, *ff, *patches, *pooled;
} sig_bufs;

static void bufs_free(sig_bufs *b) {
    float **all[] = {&b->x, &b->xb, &b->q, &b->k, &b->v, &b->att, &b->ff, &b->patches, &b->pooled};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sp_aligned_free(*all[i]);
        *all[i] = NULL;
    }
}

static sp_status bufs_alloc(sig_bufs *b, size_t T, size_t H, size_t I, size_t pd, size_t pooled,
                            sp_error *err) {
    memset(b, 0, sizeof *b);
    size_t sizes[] = {T * H, T * H, T * H, T * H, T * H, T * H, T * I, T * pd, pooled * H};
    float **all[] = {&b->x, &b->xb, &b->q, &b->k, &b->v, &b->att, &b->ff, &b->patches, &b->pooled};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!(*all[i] = sp_aligned_alloc(sizes[i] * sizeof(float)))) {
            bufs_free(b);
            return sp_fail(err, SP_ENOMEM, "vision: no memory for %zu patches", T);
        }
    return SP_OK;
}

/* Patch (r, c) of a [3][S][S] image as the conv sees it: (channel, ky, kx). */
static void extract_patches(const float *img, int size, int patch, float *out) {
    int side = size / patch, pd = 3 * patch * patch;
    for (int r = 0; r < side; r++)
        for (int c = 0; c < side; c++) {
            float *o = out + ((size_t)r * side + c) * pd;
            for (int ch = 0; ch < 3; ch++)
                for (int ky = 0; ky < patch; ky++)
                    memcpy(o + (ch * patch + ky) * patch,
                           img + ((size_t)ch * size + (size_t)r * patch + ky) * size +
                               (size_t)c * patch,
                           (size_t)patch * sizeof(float));
        }
}

static void add_rows(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static sp_status block(sp_vision *v, const vis_layer *L, sig_bufs *b, int T, const int *seg,
                       int n_seg, sp_error *err) {
    size_t H = (size_t)v->hidden, I = (size_t)v->ffn;
    memcpy(b->xb, b->x, (size_t)T * H * sizeof(float));
    vis_layernorm(b->xb, T, (int)H, &L->norm1_w, &L->norm1_b, v->eps);
    SP_TRY(vis_matmul(v, b->q, b->xb, T, &L->q, err));
    SP_TRY(vis_matmul(v, b->k, b->xb, T, &L->k, err));
    SP_TRY(vis_matmul(v, b->v, b->xb, T, &L->v, err));
    SP_TRY(vis_attention(v, b->att, b->q, b->k, b->v, seg, n_seg,
                         (float)(1.0 / sqrt((double)v->head_dim)), err));
    SP_TRY(vis_matmul(v, b->xb, b->att, T, &L->o, err));
    add_rows(b->x, b->xb, (size_t)T * H);
    memcpy(b->xb, b->x, (size_t)T * H * sizeof(float));
    vis_layernorm(b->xb, T, (int)H, &L->norm2_w, &L->norm2_b, v->eps);
    SP_TRY(vis_matmul(v, b->ff, b->xb, T, &L->fc1, err));
    for (int t = 0; t < T; t++) sp_gelu_tanh_mul(b->ff + (size_t)t * I, v->ones, (int)I);
    SP_TRY(vis_matmul(v, b->xb, b->ff, T, &L->fc2, err));
    add_rows(b->x, b->xb, (size_t)T * H);
    return SP_OK;
}

/* AvgPool2d(k, k) over one image's side x side patch grid, row-major out. */
static void avg_pool(const float *x, int side, int k, int H, float *out) {
    int tps = side / k;
    for (int i = 0; i < tps; i++)
        for (int j = 0; j < tps; j++) {
            float *o = out + ((size_t)i * tps + j) * H;
            memset(o, 0, (size_t)H * sizeof(float));
            for (int dy = 0; dy < k; dy++)
                for (int dx = 0; dx < k; dx++)
                    add_rows(o, x + ((size_t)(i * k + dy) * side + j * k + dx) * H, (size_t)H);
            for (int h = 0; h < H; h++) o[h] /= (float)(k * k);
        }
}

sp_status vis_siglip_encode(sp_vision *v, const sp_pixels *const *imgs, int n, float *out,
                            sp_error *err) {
    int side = v->image_size / v->patch, P = side * side, H = v->hidden;
    int pd = 3 * v->patch * v->patch, tps = (int)lround(sqrt((double)v->info.soft_tokens));
    size_t T = (size_t)n * P;
    sig_bufs b;
    SP_TRY(bufs_alloc(&b, T, (size_t)H, (size_t)v->ffn, (size_t)pd, (size_t)tps * tps, err));
    int *seg = malloc((size_t)(n + 1) * sizeof(int));
    sp_status s = seg ? SP_OK : sp_fail(err, SP_ENOMEM, "vision: segments");
    for (int i = 0; s == SP_OK && i <= n; i++) seg[i] = i * P;
    for (int i = 0; s == SP_OK && i < n; i++)
        extract_patches(imgs[i]->data, v->image_size, v->patch, b.patches + (size_t)i * P * pd);
    if (s == SP_OK) s = vis_matmul(v, b.x, b.patches, (int)T, &v->patch_embd, err);
    for (size_t t = 0; s == SP_OK && t < T; t++)
        add_rows(b.x + t * H, (const float *)v->pos_embd.data + (t % P) * H, (size_t)H);
    for (int l = 0; s == SP_OK && l < v->n_layers; l++)
        s = block(v, &v->layers[l], &b, (int)T, seg, n, err);
    if (s == SP_OK) vis_layernorm(b.x, (int)T, H, &v->post_w, &v->post_b, v->eps);
    for (int i = 0; s == SP_OK && i < n; i++) {
        int m = tps * tps;
        avg_pool(b.x + (size_t)i * P * H, side, side / tps, H, b.pooled);
        for (int t = 0; t < m; t++)
            sp_rmsnorm(b.pooled + (size_t)t * H, b.pooled + (size_t)t * H, v->proj_norm.data, H,
                       v->eps, 0);
        sp_matmul(v->pool, out + (size_t)i * m * v->info.text_hidden, b.pooled, m, &v->proj, NULL,
                  v->prec);
    }
    free(seg);
    bufs_free(&b);
    return s;
}
