/* Gemma 4's image path (spec/vision.md section 4): patch projection of
 * 2 * (pixel - 0.5), learned x and y position rows, encoder layers with
 * sandwich RMSNorms (w, not 1 + w), q/k norms, weightless v norm, 2-D RoPE
 * (x angles on the first half of each head, y angles on the second, rotate-
 * half inside each), attention scale 1, gated GELU MLP; then 3x3 average
 * pooling of the patch grid, times sqrt(hidden), optional standardize, and
 * the embedder (weightless RMSNorm, projection). Padding patches never
 * exist here: each image is exactly its grid. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "vision/internal.h"

typedef struct g4_bufs {
    float *x, *xb, *q, *k, *v, *att, *gate, *up, *cos, *sin, *pooled;
} g4_bufs;

static void bufs_free(g4_bufs *b) {
    float **all[] = {&b->x,    &b->xb, &b->q,   &b->k,   &b->v,     &b->att,
                     &b->gate, &b->up, &b->cos, &b->sin, &b->pooled};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sp_aligned_free(*all[i]);
        *all[i] = NULL;
    }
}

static sp_status bufs_alloc(g4_bufs *b, size_t T, size_t H, size_t I, size_t pd, size_t hd,
                            sp_error *err) {
    memset(b, 0, sizeof *b);
    size_t X = pd > H ? pd : H; /* x first holds the scaled patches */
    size_t sizes[] = {T * X, T * H, T * H,  T * H,  T * H, T * H,
                      T * I, T * I, T * hd, T * hd, T * H};
    float **all[] = {&b->x,    &b->xb, &b->q,   &b->k,   &b->v,     &b->att,
                     &b->gate, &b->up, &b->cos, &b->sin, &b->pooled};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!(*all[i] = sp_aligned_alloc(sizes[i] * sizeof(float)))) {
            bufs_free(b);
            return sp_fail(err, SP_ENOMEM, "vision: no memory for %zu patches", T);
        }
    return SP_OK;
}

static void norm_rows(float *y, const float *x, const sp_tensor *w, int n, int dim, float eps) {
    for (int t = 0; t < n; t++)
        sp_rmsnorm(y + (size_t)t * dim, x + (size_t)t * dim, w ? w->data : NULL, dim, eps, 0);
}

static void add_rows(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* cos/sin per row: [x pairs | y pairs], hd/4 each (angles duplicated by rotate-half). */
static void rope_tables(const sp_vision *v, const sp_pixels *const *imgs, int n, float *cs,
                        float *sn) {
    int sd = v->head_dim / 2, np = sd / 2, t = 0;
    float inv[1024];
    for (int i = 0; i < np && i < 1024; i++)
        inv[i] = 1.0f / powf(v->rope_theta, (float)(2 * i) / (float)sd);
    for (int m = 0; m < n; m++)
        for (int r = 0; r < imgs[m]->grid_h * imgs[m]->grid_w; r++, t++) {
            float pos[2] = {(float)(r % imgs[m]->grid_w), (float)(r / imgs[m]->grid_w)};
            for (int a = 0; a < 2; a++)
                for (int i = 0; i < np; i++) {
                    float ang = inv[i] * pos[a];
                    cs[(size_t)t * sd + a * np + i] = cosf(ang);
                    sn[(size_t)t * sd + a * np + i] = sinf(ang);
                }
        }
}

/* q/k norms and the two RoPE halves per head; v gets the weightless norm. */
static void qkv_finish(const sp_vision *v, const vis_layer *L, g4_bufs *b, int T) {
    int hd = v->head_dim, sd = hd / 2, np = sd / 2;
    for (int t = 0; t < T; t++) {
        const float *c = b->cos + (size_t)t * sd, *s = b->sin + (size_t)t * sd;
        for (int h = 0; h < v->n_heads; h++) {
            size_t o = (size_t)t * v->hidden + (size_t)h * hd;
            sp_rmsnorm(b->q + o, b->q + o, L->q_norm.data, hd, v->eps, 0);
            sp_rmsnorm(b->k + o, b->k + o, L->k_norm.data, hd, v->eps, 0);
            sp_rmsnorm(b->v + o, b->v + o, NULL, hd, v->eps, 0);
            for (int a = 0; a < 2; a++) {
                sp_rope(b->q + o + a * sd, 1, sd, sd, np, c + a * np, s + a * np, 0);
                sp_rope(b->k + o + a * sd, 1, sd, sd, np, c + a * np, s + a * np, 0);
            }
        }
    }
}

static sp_status layer(sp_vision *v, const vis_layer *L, g4_bufs *b, int T, const int *seg,
                       int n_seg, sp_error *err) {
    size_t H = (size_t)v->hidden, I = (size_t)v->ffn;
    norm_rows(b->xb, b->x, &L->norm1_w, T, (int)H, v->eps);
    SP_TRY(vis_matmul(v, b->q, b->xb, T, &L->q, err));
    SP_TRY(vis_matmul(v, b->k, b->xb, T, &L->k, err));
    SP_TRY(vis_matmul(v, b->v, b->xb, T, &L->v, err));
    qkv_finish(v, L, b, T);
    SP_TRY(vis_attention(v, b->att, b->q, b->k, b->v, seg, n_seg, 1.0f, err));
    SP_TRY(vis_matmul(v, b->xb, b->att, T, &L->o, err));
    norm_rows(b->xb, b->xb, &L->norm2_w, T, (int)H, v->eps);
    add_rows(b->x, b->xb, (size_t)T * H);
    norm_rows(b->xb, b->x, &L->norm3_w, T, (int)H, v->eps);
    SP_TRY(vis_matmul(v, b->gate, b->xb, T, &L->gate, err));
    SP_TRY(vis_matmul(v, b->up, b->xb, T, &L->up, err));
    for (int t = 0; t < T; t++)
        sp_gelu_tanh_mul(b->gate + (size_t)t * I, b->up + (size_t)t * I, (int)I);
    SP_TRY(vis_matmul(v, b->xb, b->gate, T, &L->down, err));
    norm_rows(b->xb, b->xb, &L->norm4_w, T, (int)H, v->eps);
    add_rows(b->x, b->xb, (size_t)T * H);
    return SP_OK;
}

/* Patch embedding: x = (2 * (pixel - 0.5)) W^T + table[0][col] + table[1][row]. */
static sp_status embed(sp_vision *v, const sp_pixels *const *imgs, int n, g4_bufs *b, int T,
                       sp_error *err) {
    size_t H = (size_t)v->hidden, pd = (size_t)imgs[0]->patch_dim, t = 0;
    float *in = b->x; /* T x pd, then replaced by the projection in xb */
    for (int m = 0; m < n; m++)
        for (size_t i = 0; i < imgs[m]->n_floats; i++) in[t++] = (imgs[m]->data[i] - 0.5f) * 2.0f;
    (void)pd;
    SP_TRY(vis_matmul(v, b->xb, in, T, &v->patch_embd, err));
    float *px = b->q, *py = b->k; /* two scratch rows */
    t = 0;
    for (int m = 0; m < n; m++)
        for (int r = 0; r < imgs[m]->grid_h * imgs[m]->grid_w; r++, t++) {
            sp_tensor_row_f32(&v->pos_table, r % imgs[m]->grid_w, px);
            sp_tensor_row_f32(&v->pos_table, v->pos_size + r / imgs[m]->grid_w, py);
            float *x = b->x + t * H;
            const float *e = b->xb + t * H;
            for (size_t h = 0; h < H; h++) x[h] = e[h] + (px[h] + py[h]);
        }
    return SP_OK;
}

/* k x k average pooling of one image's grid (row-major bins), times
 * sqrt(hidden), then standardize. */
static void pool_image(const sp_vision *v, const float *x, int gh, int gw, float *out) {
    int k = v->pool_k, H = v->hidden, bw = gw / k, bins = (gh / k) * bw;
    float w = 1.0f / (float)(k * k), root = (float)sqrt((double)H);
    memset(out, 0, (size_t)bins * H * sizeof(float));
    for (int r = 0; r < gh * gw; r++) {
        int x0 = r % gw, y0 = r / gw, bin = x0 / k + bw * (y0 / k);
        float *o = out + (size_t)bin * H;
        const float *s = x + (size_t)r * H;
        for (int h = 0; h < H; h++) o[h] += w * s[h];
    }
    const float *sb = v->std_bias.data, *ss = v->std_scale.data;
    for (int i = 0; i < bins; i++)
        for (int h = 0; h < H; h++) {
            float *o = out + (size_t)i * H + h;
            *o *= root;
            if (v->standardize) *o = (*o - sb[h]) * ss[h];
        }
}

sp_status vis_gemma4_encode(sp_vision *v, const sp_pixels *const *imgs, int n, float *out,
                            sp_error *err) {
    int *seg = malloc((size_t)(n + 1) * sizeof(int));
    if (!seg) return sp_fail(err, SP_ENOMEM, "vision: segments");
    seg[0] = 0;
    for (int i = 0; i < n; i++) seg[i + 1] = seg[i] + imgs[i]->grid_h * imgs[i]->grid_w;
    int T = seg[n], H = v->hidden;
    g4_bufs b;
    sp_status s = bufs_alloc(&b, (size_t)T, (size_t)H, (size_t)v->ffn, (size_t)imgs[0]->patch_dim,
                             (size_t)v->head_dim / 2, err);
    if (s != SP_OK) {
        free(seg);
        return s;
    }
    rope_tables(v, imgs, n, b.cos, b.sin);
    s = embed(v, imgs, n, &b, T, err);
    for (int l = 0; s == SP_OK && l < v->n_layers; l++)
        s = layer(v, &v->layers[l], &b, T, seg, n, err);
    size_t row = 0;
    for (int i = 0; s == SP_OK && i < n; i++) {
        int bins = imgs[i]->grid_h * imgs[i]->grid_w / (v->pool_k * v->pool_k);
        pool_image(v, b.x + (size_t)seg[i] * H, imgs[i]->grid_h, imgs[i]->grid_w, b.pooled);
        norm_rows(b.pooled, b.pooled, NULL, bins, H, v->eps);
        sp_matmul(v->pool, out + row * v->info.text_hidden, b.pooled, bins, &v->embed_proj, NULL,
                  v->prec);
        row += (size_t)bins;
    }
    free(seg);
    bufs_free(&b);
    return s;
}
