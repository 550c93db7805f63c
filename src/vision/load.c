/* Loading a vision tower: config.json's vision_config and token ids, the
 * image processor, and the tower's tensors (never re-quantized by
 * --quantize: vision weights are few and the towers are sensitive). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/file.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "vision/internal.h"

typedef struct loader {
    sp_vision *v;
    const char *prefix; /* tower prefix, e.g. "model.vision_tower.vision_model." */
    char name[320];
} loader;

/* The first of the candidate prefixes under which `probe` exists. */
static const char *find_prefix(const sp_safetensors *st, const char *const *cands, int n,
                               const char *probe) {
    char name[320];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%s", cands[i], probe);
        if (sp_st_find(st, name)) return cands[i];
    }
    return NULL;
}

/* prefix + name; f32: 1 float copy, 2 float copy of 1 + w, 0 file dtype. */
static sp_status get(loader *L, sp_tensor *out, int required, int f32, int ndim, int64_t d0,
                     int64_t d1, int64_t d2, const char *fmt, int idx, sp_error *err) {
    size_t n = (size_t)snprintf(L->name, sizeof L->name, "%s", L->prefix);
    snprintf(L->name + n, sizeof L->name - n, fmt, idx);
    int64_t shape[4] = {d0, d1, d2, SP_ANY};
    if (f32)
        return sp_weights_get_f32(&L->v->w, L->name, required, ndim, shape, f32 == 2, out, err);
    return sp_weights_get_exact(&L->v->w, L->name, required, ndim, shape, out, err);
}

static float scalar_or(loader *L, const char *fmt, int idx, float def, sp_error *err,
                       sp_status *s) {
    sp_tensor t = {0};
    if (*s == SP_OK) *s = get(L, &t, 0, 1, 0, 0, 0, 0, fmt, idx, err);
    return *s == SP_OK && t.data ? ((float *)t.data)[0] : def;
}

/* A Gemma 4 clippable linear: <name>.linear.weight plus optional bounds. */
static sp_status get_clippable(loader *L, vis_linear *l, int64_t out, int64_t in, const char *base,
                               int idx, sp_error *err) {
    char fmt[160];
    snprintf(fmt, sizeof fmt, "%s.linear.weight", base);
    SP_TRY(get(L, &l->w, 1, 0, 2, out, in, 0, fmt, idx, err));
    sp_status s = SP_OK;
    const char *names[4] = {"input_min", "input_max", "output_min", "output_max"};
    float *dst[4] = {&l->in_min, &l->in_max, &l->out_min, &l->out_max};
    for (int i = 0; i < 4; i++) {
        snprintf(fmt, sizeof fmt, "%s.%s", base, names[i]);
        *dst[i] = scalar_or(L, fmt, idx, i % 2 ? INFINITY : -INFINITY, err, &s);
    }
    l->clip =
        isfinite(l->in_min) || isfinite(l->in_max) || isfinite(l->out_min) || isfinite(l->out_max);
    return s;
}

static sp_status get_biased(loader *L, vis_linear *l, int64_t out, int64_t in, const char *base,
                            int idx, sp_error *err) {
    char fmt[160];
    snprintf(fmt, sizeof fmt, "%s.weight", base);
    SP_TRY(get(L, &l->w, 1, 0, 2, out, in, 0, fmt, idx, err));
    snprintf(fmt, sizeof fmt, "%s.bias", base);
    return get(L, &l->b, 1, 1, 1, out, 0, 0, fmt, idx, err);
}

static sp_status siglip_layer(loader *L, int i, sp_error *err) {
    sp_vision *v = L->v;
    vis_layer *y = &v->layers[i];
    int64_t H = v->hidden, I = v->ffn;
    const char *ln = "encoder.layers.%d.layer_norm";
    char f[96];
    snprintf(f, sizeof f, "%s1.weight", ln);
    SP_TRY(get(L, &y->norm1_w, 1, 1, 1, H, 0, 0, f, i, err));
    snprintf(f, sizeof f, "%s1.bias", ln);
    SP_TRY(get(L, &y->norm1_b, 1, 1, 1, H, 0, 0, f, i, err));
    snprintf(f, sizeof f, "%s2.weight", ln);
    SP_TRY(get(L, &y->norm2_w, 1, 1, 1, H, 0, 0, f, i, err));
    snprintf(f, sizeof f, "%s2.bias", ln);
    SP_TRY(get(L, &y->norm2_b, 1, 1, 1, H, 0, 0, f, i, err));
    SP_TRY(get_biased(L, &y->q, H, H, "encoder.layers.%d.self_attn.q_proj", i, err));
    SP_TRY(get_biased(L, &y->k, H, H, "encoder.layers.%d.self_attn.k_proj", i, err));
    SP_TRY(get_biased(L, &y->v, H, H, "encoder.layers.%d.self_attn.v_proj", i, err));
    SP_TRY(get_biased(L, &y->o, H, H, "encoder.layers.%d.self_attn.out_proj", i, err));
    SP_TRY(get_biased(L, &y->fc1, I, H, "encoder.layers.%d.mlp.fc1", i, err));
    return get_biased(L, &y->fc2, H, I, "encoder.layers.%d.mlp.fc2", i, err);
}

static sp_status gemma4_layer(loader *L, int i, sp_error *err) {
    sp_vision *v = L->v;
    vis_layer *y = &v->layers[i];
    int64_t H = v->hidden, I = v->ffn, D = v->head_dim;
    const char *base = "encoder.layers.%d.";
    char f[128];
    const char *norms[4] = {"input_layernorm", "post_attention_layernorm",
                            "pre_feedforward_layernorm", "post_feedforward_layernorm"};
    sp_tensor *nw[4] = {&y->norm1_w, &y->norm2_w, &y->norm3_w, &y->norm4_w};
    for (int k = 0; k < 4; k++) {
        snprintf(f, sizeof f, "%s%s.weight", base, norms[k]);
        SP_TRY(get(L, nw[k], 1, 1, 1, H, 0, 0, f, i, err));
    }
    snprintf(f, sizeof f, "%sself_attn.q_norm.weight", base);
    SP_TRY(get(L, &y->q_norm, 1, 1, 1, D, 0, 0, f, i, err));
    snprintf(f, sizeof f, "%sself_attn.k_norm.weight", base);
    SP_TRY(get(L, &y->k_norm, 1, 1, 1, D, 0, 0, f, i, err));
    const char *lin[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                          "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                          "mlp.down_proj"};
    vis_linear *dst[7] = {&y->q, &y->k, &y->v, &y->o, &y->gate, &y->up, &y->down};
    int64_t outs[7] = {H, H, H, H, I, I, H}, ins[7] = {H, H, H, H, H, H, I};
    for (int k = 0; k < 7; k++) {
        snprintf(f, sizeof f, "%s%s", base, lin[k]);
        SP_TRY(get_clippable(L, dst[k], outs[k], ins[k], f, i, err));
    }
    return SP_OK;
}

/* The file stores the projection as [in, out] (used as x @ W); the matmul
 * kernels take [out, in], so it is transposed once here. */
static sp_status transpose_owned(sp_vision *v, sp_tensor *t, sp_error *err) {
    int64_t r = t->shape[0], c = t->shape[1];
    size_t es = sp_dtype_row_bytes(t->dtype, 1);
    if (sp_dtype_block(t->dtype) != 1)
        return sp_fail(err, SP_EUNSUPPORTED, "multi_modal_projector: quantized %s weight",
                       sp_dtype_name(t->dtype));
    uint8_t *dst = sp_weights_alloc(&v->w, (size_t)r * c * es);
    if (!dst) return sp_fail(err, SP_ENOMEM, "multi_modal_projector: transpose");
    const uint8_t *src = t->data;
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++)
            memcpy(dst + ((size_t)j * r + i) * es, src + ((size_t)i * c + j) * es, es);
    t->data = dst;
    t->shape[0] = c, t->shape[1] = r;
    return SP_OK;
}

static sp_status load_siglip(sp_vision *v, const sp_safetensors *st, sp_error *err) {
    static const char *const towers[] = {"model.vision_tower.vision_model.",
                                         "vision_tower.vision_model.", "model.vision_tower.",
                                         "vision_tower."};
    static const char *const projs[] = {"model.multi_modal_projector.", "multi_modal_projector."};
    loader L = {.v = v, .prefix = find_prefix(st, towers, 4, "embeddings.patch_embedding.weight")};
    if (!L.prefix) return sp_fail(err, SP_ENOTFOUND, "no SigLIP vision tower tensors found");
    int64_t H = v->hidden, P = v->patch,
            n_pos = (int64_t)(v->image_size / v->patch) * (v->image_size / v->patch);
    SP_TRY(
        get(&L, &v->patch_embd.w, 1, 0, 4, H, 3, P, "embeddings.patch_embedding.weight", 0, err));
    v->patch_embd.w.ndim = 2, v->patch_embd.w.shape[1] = 3 * P * P; /* the conv as a matmul */
    SP_TRY(get(&L, &v->patch_embd.b, 1, 1, 1, H, 0, 0, "embeddings.patch_embedding.bias", 0, err));
    SP_TRY(get(&L, &v->pos_embd, 1, 1, 2, n_pos, H, 0, "embeddings.position_embedding.weight", 0,
               err));
    for (int i = 0; i < v->n_layers; i++) SP_TRY(siglip_layer(&L, i, err));
    SP_TRY(get(&L, &v->post_w, 1, 1, 1, H, 0, 0, "post_layernorm.weight", 0, err));
    SP_TRY(get(&L, &v->post_b, 1, 1, 1, H, 0, 0, "post_layernorm.bias", 0, err));
    L.prefix = find_prefix(st, projs, 2, "mm_input_projection_weight");
    if (!L.prefix) return sp_fail(err, SP_ENOTFOUND, "no multi_modal_projector tensors found");
    SP_TRY(get(&L, &v->proj_norm, 1, 2, 1, H, 0, 0, "mm_soft_emb_norm.weight", 0, err));
    SP_TRY(get(&L, &v->proj, 1, 0, 2, H, v->info.text_hidden, 0, "mm_input_projection_weight", 0,
               err));
    return transpose_owned(v, &v->proj, err);
}

static sp_status load_gemma4(sp_vision *v, const sp_safetensors *st, sp_error *err) {
    static const char *const towers[] = {"model.vision_tower.", "vision_tower."};
    static const char *const embs[] = {"model.embed_vision.", "embed_vision."};
    loader L = {.v = v, .prefix = find_prefix(st, towers, 2, "patch_embedder.input_proj.weight")};
    if (!L.prefix) return sp_fail(err, SP_ENOTFOUND, "no Gemma 4 vision tower tensors found");
    int64_t H = v->hidden, P = v->patch;
    SP_TRY(get(&L, &v->patch_embd.w, 1, 0, 2, H, 3 * P * P, 0, "patch_embedder.input_proj.weight",
               0, err));
    SP_TRY(get(&L, &v->pos_table, 1, 0, 3, 2, v->pos_size, H,
               "patch_embedder.position_embedding_table", 0, err));
    for (int i = 0; i < v->n_layers; i++) SP_TRY(gemma4_layer(&L, i, err));
    if (v->standardize) {
        SP_TRY(get(&L, &v->std_bias, 1, 1, 1, H, 0, 0, "std_bias", 0, err));
        SP_TRY(get(&L, &v->std_scale, 1, 1, 1, H, 0, 0, "std_scale", 0, err));
    }
    L.prefix = find_prefix(st, embs, 2, "embedding_projection.weight");
    if (!L.prefix) return sp_fail(err, SP_ENOTFOUND, "no embed_vision tensors found");
    return get(&L, &v->embed_proj, 1, 0, 2, v->info.text_hidden, H, 0,
               "embedding_projection.weight", 0, err);
}

sp_status vis_load_tensors(sp_vision *v, const sp_safetensors *st, sp_error *err) {
    v->w.lookup = sp_weights_st_lookup;
    v->w.src = (void *)st;
    return v->info.kind == SP_VISION_GEMMA3 ? load_siglip(v, st, err) : load_gemma4(v, st, err);
}
