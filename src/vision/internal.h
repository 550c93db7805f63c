/* Private state of a loaded vision tower, shared by load.c, siglip.c,
 * gemma4.c and ops.c. */
#ifndef SP_VISION_INTERNAL_H
#define SP_VISION_INTERNAL_H

#include "compute/ops.h"
#include "model/weights.h"
#include "vision/vision.h"

/* A linear layer: weight [out, in], optional f32 bias, optional clamps of
 * input and output (Gemma 4's clipped linears; +-inf when absent). */
typedef struct vis_linear {
    sp_tensor w, b;
    int clip;
    float in_min, in_max, out_min, out_max;
} vis_linear;

typedef struct vis_layer {
    /* SigLIP: norm1/norm2 are LayerNorms (weight + bias); Gemma 4: the four
     * sandwich RMSNorms norm1..norm4 (weight only) */
    sp_tensor norm1_w, norm1_b, norm2_w, norm2_b, norm3_w, norm4_w;
    vis_linear q, k, v, o;
    sp_tensor q_norm, k_norm;  /* Gemma 4, [head_dim] */
    vis_linear fc1, fc2;       /* SigLIP MLP */
    vis_linear gate, up, down; /* Gemma 4 gated MLP */
} vis_layer;

struct sp_vision {
    sp_vision_info info;
    sp_weights w;
    struct sp_safetensors *st; /* open only with --mmap */
    sp_pool *pool;
    sp_precision prec;
    int hidden, ffn, n_layers, n_heads, head_dim, patch;
    float eps;
    vis_layer *layers;
    float *ones; /* [ffn] of 1.0: gelu(x) = gelu_mul(x, 1) through the shared kernel */
    /* SigLIP + projector */
    int image_size;
    vis_linear patch_embd; /* the conv as [hidden, 3 * patch * patch] */
    sp_tensor pos_embd;    /* [patches, hidden] */
    sp_tensor post_w, post_b;
    sp_tensor proj_norm; /* f32, stored as 1 + w */
    sp_tensor proj;      /* [text_hidden, hidden] (transposed from the file's [in, out]) */
    /* Gemma 4 */
    sp_tensor pos_table; /* [2, pos_size, hidden] */
    int pos_size, pool_k;
    float rope_theta;
    int standardize;
    sp_tensor std_bias, std_scale, embed_proj;
};

/* Shared pieces (ops.c). */
sp_status vis_matmul(sp_vision *v, float *y, const float *x, int n, const vis_linear *l,
                     sp_error *err);
void vis_layernorm(float *x, int n, int dim, const sp_tensor *w, const sp_tensor *b, float eps);
/* Full (bidirectional) attention inside each image's tokens: image i owns
 * rows [seg[i], seg[i + 1]) of q, k, v (row stride hidden, heads side by
 * side). */
sp_status vis_attention(sp_vision *v, float *out, const float *q, const float *k, const float *vv,
                        const int *seg, int n_seg, float scale, sp_error *err);

sp_status vis_load_tensors(sp_vision *v, const struct sp_safetensors *st, sp_error *err);

sp_status vis_siglip_encode(sp_vision *v, const sp_pixels *const *imgs, int n, float *out,
                            sp_error *err);
sp_status vis_gemma4_encode(sp_vision *v, const sp_pixels *const *imgs, int n, float *out,
                            sp_error *err);

#endif
