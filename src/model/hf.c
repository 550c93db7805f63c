#include "model/hf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "model/hf_config.h"

typedef struct mapper {
    sp_weights *w;
    sp_model_desc *d;
    const sp_hf_info *info;
    const char *prefix; /* "model.", "model.language_model.", ... */
    int one_plus;       /* norms store 1 + w */
} mapper;

/* Fetches prefix + name (printf-style) with shape dims (SP_ANY allowed). */
static sp_status get(mapper *m, sp_tensor *out, int required, int f32, int ndim, int64_t d0,
                     int64_t d1, int64_t d2, sp_error *err, const char *fmt, ...)
    __attribute__((format(printf, 10, 11)));
#define KEEP 3

static sp_status get(mapper *m, sp_tensor *out, int required, int f32, int ndim, int64_t d0,
                     int64_t d1, int64_t d2, sp_error *err, const char *fmt, ...) {
    char name[256];
    size_t n = (size_t)snprintf(name, sizeof name, "%s", m->prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name + n, sizeof name - n, fmt, ap);
    va_end(ap);
    int64_t shape[3] = {d0, d1, d2};
    if (f32 == KEEP) return sp_weights_get_exact(m->w, name, required, ndim, shape, out, err);
    if (f32) return sp_weights_get_f32(m->w, name, required, ndim, shape, f32 == 2, out, err);
    return sp_weights_get(m->w, name, required, ndim, shape, out, err);
}

#define REQ  1
#define OPT  0
#define RAW  0
#define F32  1
#define NORM (m->one_plus ? 2 : 1) /* f32, stored as 1 + w for (1 + w) models */

static sp_status map_attention(mapper *m, int i, sp_error *err) {
    sp_layer_desc *L = &m->d->layers[i];
    int64_t H = m->d->hidden, q = (int64_t)L->n_heads * L->head_dim,
            kv = (int64_t)L->n_kv_heads * L->head_dim;
    if (m->info->family == SP_FAM_PHI3) {
        sp_tensor qkv;
        SP_TRY(get(m, &qkv, REQ, RAW, 2, q + 2 * kv, H, 0, err,
                   "layers.%d.self_attn.qkv_proj.weight", i));
        sp_tensor_prepare_cut(&qkv, q);
        sp_tensor_prepare_cut(&qkv, q + kv);
        L->wq = sp_tensor_rows_view(&qkv, 0, q);
        L->wk = sp_tensor_rows_view(&qkv, q, kv);
        L->wv = sp_tensor_rows_view(&qkv, q + kv, kv);
    } else {
        SP_TRY(get(m, &L->wq, REQ, RAW, 2, q, H, 0, err, "layers.%d.self_attn.q_proj.weight", i));
        if (L->kv_source == i) {
            SP_TRY(
                get(m, &L->wk, REQ, RAW, 2, kv, H, 0, err, "layers.%d.self_attn.k_proj.weight", i));
            SP_TRY(get(m, &L->wv, !L->k_eq_v, RAW, 2, kv, H, 0, err,
                       "layers.%d.self_attn.v_proj.weight", i));
        }
    }
    SP_TRY(get(m, &L->wo, REQ, RAW, 2, H, q, 0, err, "layers.%d.self_attn.o_proj.weight", i));
    int bias = m->info->family == SP_FAM_QWEN2 || m->info->attention_bias;
    SP_TRY(get(m, &L->bq, bias && m->info->family == SP_FAM_QWEN2, F32, 1, q, 0, 0, err,
               "layers.%d.self_attn.q_proj.bias", i));
    if (L->kv_source == i) {
        SP_TRY(get(m, &L->bk, OPT, F32, 1, kv, 0, 0, err, "layers.%d.self_attn.k_proj.bias", i));
        SP_TRY(get(m, &L->bv, OPT, F32, 1, kv, 0, 0, err, "layers.%d.self_attn.v_proj.bias", i));
    }
    SP_TRY(get(m, &L->bo, OPT, F32, 1, H, 0, 0, err, "layers.%d.self_attn.o_proj.bias", i));
    int qk_norm = m->info->family == SP_FAM_QWEN3 || m->info->family == SP_FAM_QWEN3_MOE ||
                  m->info->family == SP_FAM_GEMMA3 || m->info->family == SP_FAM_GEMMA4;
    SP_TRY(get(m, &L->q_norm, qk_norm, NORM, 1, L->head_dim, 0, 0, err,
               "layers.%d.self_attn.q_norm.weight", i));
    if (L->kv_source == i)
        SP_TRY(get(m, &L->k_norm, qk_norm, NORM, 1, L->head_dim, 0, 0, err,
                   "layers.%d.self_attn.k_norm.weight", i));
    return SP_OK;
}

static sp_status map_norms(mapper *m, int i, sp_error *err) {
    sp_layer_desc *L = &m->d->layers[i];
    int64_t H = m->d->hidden;
    SP_TRY(
        get(m, &L->attn_norm, REQ, NORM, 1, H, 0, 0, err, "layers.%d.input_layernorm.weight", i));
    if (m->d->sandwich_norms) {
        SP_TRY(get(m, &L->post_attn_norm, REQ, NORM, 1, H, 0, 0, err,
                   "layers.%d.post_attention_layernorm.weight", i));
        SP_TRY(get(m, &L->pre_ffn_norm, REQ, NORM, 1, H, 0, 0, err,
                   "layers.%d.pre_feedforward_layernorm.weight", i));
        SP_TRY(get(m, &L->post_ffn_norm, REQ, NORM, 1, H, 0, 0, err,
                   "layers.%d.post_feedforward_layernorm.weight", i));
    } else {
        /* Llama-style: post_attention_layernorm is the pre-FFN norm */
        SP_TRY(get(m, &L->pre_ffn_norm, REQ, NORM, 1, H, 0, 0, err,
                   "layers.%d.post_attention_layernorm.weight", i));
    }
    return SP_OK;
}

static sp_status map_dense_mlp(mapper *m, int i, sp_error *err) {
    sp_layer_desc *L = &m->d->layers[i];
    int64_t H = m->d->hidden, I = L->ffn_dim;
    if (m->info->family == SP_FAM_PHI3) {
        sp_tensor gu;
        SP_TRY(get(m, &gu, REQ, RAW, 2, 2 * I, H, 0, err, "layers.%d.mlp.gate_up_proj.weight", i));
        sp_tensor_prepare_cut(&gu, I);
        L->w_gate = sp_tensor_rows_view(&gu, 0, I);
        L->w_up = sp_tensor_rows_view(&gu, I, I);
    } else {
        SP_TRY(get(m, &L->w_gate, REQ, RAW, 2, I, H, 0, err, "layers.%d.mlp.gate_proj.weight", i));
        SP_TRY(get(m, &L->w_up, REQ, RAW, 2, I, H, 0, err, "layers.%d.mlp.up_proj.weight", i));
    }
    SP_TRY(get(m, &L->w_down, REQ, RAW, 2, H, I, 0, err, "layers.%d.mlp.down_proj.weight", i));
    return SP_OK;
}

static sp_status alloc_expert_views(mapper *m, sp_layer_desc *L, sp_error *err) {
    size_t n = (size_t)L->n_experts;
    L->exp_gate = sp_weights_alloc(m->w, 3 * n * sizeof(sp_tensor));
    if (!L->exp_gate) return sp_fail(err, SP_ENOMEM, "expert table");
    L->exp_up = L->exp_gate + n;
    L->exp_down = L->exp_up + n;
    return SP_OK;
}

/* Experts as one packed pair [E, 2I, H] + [E, H, I] (gate rows first). */
static sp_status map_packed_experts(mapper *m, int i, const char *base, sp_error *err) {
    sp_layer_desc *L = &m->d->layers[i];
    int64_t E = L->n_experts, I = L->expert_ffn_dim, H = m->d->hidden;
    sp_tensor gu, down;
    SP_TRY(get(m, &gu, REQ, RAW, 3, E, 2 * I, H, err, "layers.%d.%sgate_up_proj", i, base));
    SP_TRY(get(m, &down, REQ, RAW, 3, E, H, I, err, "layers.%d.%sdown_proj", i, base));
    for (int e = 0; e < E; e++) {
        sp_tensor ge = sp_tensor_index(&gu, e);
        sp_tensor_prepare_cut(&ge, I);
        L->exp_gate[e] = sp_tensor_rows_view(&ge, 0, I);
        L->exp_up[e] = sp_tensor_rows_view(&ge, I, I);
        L->exp_down[e] = sp_tensor_index(&down, e);
    }
    return SP_OK;
}

static sp_status map_moe(mapper *m, int i, sp_error *err) {
    sp_layer_desc *L = &m->d->layers[i];
    int64_t E = L->n_experts, I = L->expert_ffn_dim, H = m->d->hidden;
    SP_TRY(alloc_expert_views(m, L, err));
    switch (m->info->family) {
    case SP_FAM_GEMMA4:
        SP_TRY(get(m, &L->router, REQ, KEEP, 2, E, H, 0, err, "layers.%d.router.proj.weight", i));
        SP_TRY(get(m, &L->router_scale, REQ, F32, 1, H, 0, 0, err, "layers.%d.router.scale", i));
        SP_TRY(get(m, &L->expert_scale, REQ, F32, 1, E, 0, 0, err,
                   "layers.%d.router.per_expert_scale", i));
        SP_TRY(get(m, &L->pre_ffn_norm2, REQ, NORM, 1, H, 0, 0, err,
                   "layers.%d.pre_feedforward_layernorm_2.weight", i));
        SP_TRY(get(m, &L->post_ffn_norm1, REQ, NORM, 1, H, 0, 0, err,
                   "layers.%d.post_feedforward_layernorm_1.weight", i));
        SP_TRY(get(m, &L->post_ffn_norm2, REQ, NORM, 1, H, 0, 0, err,
                   "layers.%d.post_feedforward_layernorm_2.weight", i));
        return map_packed_experts(m, i, "experts.", err);
    case SP_FAM_MIXTRAL: {
        sp_tensor probe;
        SP_TRY(
            get(m, &probe, OPT, RAW, 3, E, 2 * I, H, err, "layers.%d.mlp.experts.gate_up_proj", i));
        if (probe.data) {
            SP_TRY(get(m, &L->router, REQ, KEEP, 2, E, H, 0, err, "layers.%d.mlp.gate.weight", i));
            return map_packed_experts(m, i, "mlp.experts.", err);
        }
        SP_TRY(get(m, &L->router, REQ, KEEP, 2, E, H, 0, err,
                   "layers.%d.block_sparse_moe.gate.weight", i));
        for (int e = 0; e < E; e++) {
            const char *x = "layers.%d.block_sparse_moe.experts.%d.w%d.weight";
            SP_TRY(get(m, &L->exp_gate[e], REQ, RAW, 2, I, H, 0, err, x, i, e, 1));
            SP_TRY(get(m, &L->exp_down[e], REQ, RAW, 2, H, I, 0, err, x, i, e, 2));
            SP_TRY(get(m, &L->exp_up[e], REQ, RAW, 2, I, H, 0, err, x, i, e, 3));
        }
        return SP_OK;
    }
    default: { /* Qwen3-MoE */
        SP_TRY(get(m, &L->router, REQ, KEEP, 2, E, H, 0, err, "layers.%d.mlp.gate.weight", i));
        sp_tensor probe;
        SP_TRY(
            get(m, &probe, OPT, RAW, 3, E, 2 * I, H, err, "layers.%d.mlp.experts.gate_up_proj", i));
        if (probe.data) return map_packed_experts(m, i, "mlp.experts.", err);
        for (int e = 0; e < E; e++) {
            const char *x = "layers.%d.mlp.experts.%d.%s_proj.weight";
            SP_TRY(get(m, &L->exp_gate[e], REQ, RAW, 2, I, H, 0, err, x, i, e, "gate"));
            SP_TRY(get(m, &L->exp_up[e], REQ, RAW, 2, I, H, 0, err, x, i, e, "up"));
            SP_TRY(get(m, &L->exp_down[e], REQ, RAW, 2, H, I, 0, err, x, i, e, "down"));
        }
        return SP_OK;
    }
    }
}

static sp_status map_gemma4_extras(mapper *m, int i, sp_error *err) {
    sp_layer_desc *L = &m->d->layers[i];
    sp_tensor s;
    SP_TRY(get(m, &s, OPT, F32, 1, 1, 0, 0, err, "layers.%d.layer_scalar", i));
    if (s.data) L->layer_scalar = ((float *)s.data)[0];
    if (m->d->ple_dim) {
        int64_t H = m->d->hidden, P = m->d->ple_dim;
        SP_TRY(get(m, &L->ple_gate, REQ, RAW, 2, P, H, 0, err,
                   "layers.%d.per_layer_input_gate.weight", i));
        SP_TRY(get(m, &L->ple_proj, REQ, RAW, 2, H, P, 0, err,
                   "layers.%d.per_layer_projection.weight", i));
        SP_TRY(get(m, &L->ple_post_norm, REQ, NORM, 1, H, 0, 0, err,
                   "layers.%d.post_per_layer_input_norm.weight", i));
    }
    return SP_OK;
}

static sp_status map_layer(mapper *m, int i, sp_error *err) {
    sp_layer_desc *L = &m->d->layers[i];
    SP_TRY(map_norms(m, i, err));
    SP_TRY(map_attention(m, i, err));
    if (!L->n_experts || L->moe_has_dense) SP_TRY(map_dense_mlp(m, i, err));
    if (L->n_experts) SP_TRY(map_moe(m, i, err));
    if (m->info->family == SP_FAM_GEMMA4) SP_TRY(map_gemma4_extras(m, i, err));
    return SP_OK;
}

static sp_status map_globals(mapper *m, sp_error *err) {
    sp_model_desc *d = m->d;
    int64_t V = d->vocab, H = d->hidden;
    SP_TRY(get(m, &d->tok_embd, REQ, RAW, 2, V, H, 0, err, "embed_tokens.weight"));
    SP_TRY(get(m, &d->out_norm, REQ, NORM, 1, H, 0, 0, err, "norm.weight"));
    if (d->tied_embeddings) {
        d->output = d->tok_embd;
    } else {
        /* a bare base model (Qwen3Model, as embedding models ship it) has
         * no head: output stays absent and the model serves embeddings */
        int bare = !*m->prefix;
        const char *keep = m->prefix;
        m->prefix = "";
        sp_status s = get(m, &d->output, !bare, RAW, 2, V, H, 0, err, "lm_head.weight");
        m->prefix = keep;
        SP_TRY(s);
    }
    if (d->ple_dim) {
        int64_t LP = (int64_t)d->n_layers * d->ple_dim;
        SP_TRY(
            get(m, &d->ple_embd, REQ, RAW, 2, SP_ANY, LP, 0, err, "embed_tokens_per_layer.weight"));
        SP_TRY(get(m, &d->ple_model_proj, REQ, RAW, 2, LP, H, 0, err,
                   "per_layer_model_projection.weight"));
        SP_TRY(get(m, &d->ple_proj_norm, REQ, NORM, 1, d->ple_dim, 0, 0, err,
                   "per_layer_projection_norm.weight"));
    }
    return SP_OK;
}

/* The text model's tensor prefix differs between text-only checkpoints, the
 * two multimodal layouts and bare base models (XxxModel, no prefix). */
static const char *detect_prefix(const sp_safetensors *st) {
    static const char *prefixes[] = {"model.language_model.", "language_model.model.", "model.",
                                     ""};
    char name[128];
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        snprintf(name, sizeof name, "%sembed_tokens.weight", prefixes[i]);
        if (sp_st_find(st, name)) return prefixes[i];
    }
    return "model.";
}

/* Which layers let an image's soft tokens attend to each other both ways,
 * as transformers 5.17 builds the prompt mask from the token types: Gemma 3
 * every layer; Gemma 4 with use_bidirectional_attention "vision" only its
 * sliding layers (window AND (causal OR same image); spec/vision.md 5.2,
 * checked against the fixtures' logits). Only checkpoints with a vision
 * tower carry images. */
static void media_bidir(sp_model_desc *d, const json_t *root, const json_t *cfg) {
    if (root == cfg || !json_is_object(json_object_get(root, "vision_config"))) return;
    int gemma3 = !strncmp(d->arch, "gemma3", 6);
    const char *mode = json_string_value(json_object_get(cfg, "use_bidirectional_attention"));
    int gemma4_vision = !strncmp(d->arch, "gemma4", 6) && mode && !strcmp(mode, "vision");
    for (int i = 0; i < d->n_layers; i++)
        d->layers[i].media_bidir = gemma3 || (gemma4_vision && d->layers[i].sliding_window > 0);
}

/* Multimodal wrappers: which placeholder ids the text model embeds as pad. */
static sp_status media_ids(sp_model_desc *d, const json_t *root, const json_t *cfg, const char *ctx,
                           sp_error *err) {
    if (root == cfg) return SP_OK;
    int64_t pad, id;
    SP_TRY(sp_json_int(cfg, "pad_token_id", 0, 0, &pad, ctx, err));
    d->media_pad_id = (int)pad;
    const char *keys[] = {"image_token_id", "video_token_id", "audio_token_id",
                          "image_token_index"};
    for (size_t i = 0; i < 4; i++) {
        SP_TRY(sp_json_int(root, keys[i], -1, 0, &id, "config.json", err));
        /* Gemma 3 only remaps ids outside the text vocabulary */
        int remap = !strncmp(d->arch, "gemma4", 6) || id >= d->vocab;
        if (id >= 0 && remap) d->media_ids[d->n_media++] = (int)id;
    }
    return SP_OK;
}

/* --load-format dummy makes weights in the checkpoint's own half type. */
static sp_dtype dummy_dtype(const json_t *root, const json_t *cfg) {
    const char *keys[] = {"dtype", "torch_dtype"};
    for (int i = 0; i < 2; i++) {
        const json_t *v = json_object_get(cfg, keys[i]);
        if (!v) v = json_object_get(root, keys[i]);
        if (json_is_string(v) && !strcmp(json_string_value(v), "float16")) return SP_F16;
    }
    return SP_BF16;
}

static sp_status load_config(const char *dir, json_t **root, const json_t **cfg, char *ctx,
                             size_t ctx_len, sp_error *err) {
    char *path = sp_path_join(dir, "config.json");
    if (!path) return sp_fail(err, SP_ENOMEM, "path");
    sp_status s = sp_json_load_file(root, path, err);
    snprintf(ctx, ctx_len, "%s", path);
    free(path);
    SP_TRY(s);
    if (!json_is_object(*root)) return sp_fail(err, SP_EFORMAT, "%s: not a JSON object", ctx);
    *cfg = *root;
    const json_t *tc = json_object_get(*root, "text_config");
    if (json_is_object(tc)) {
        *cfg = tc;
        size_t n = strlen(ctx);
        snprintf(ctx + n, ctx_len - n, ":text_config");
        /* the top level may carry keys the text config lacks (vocab, tie) */
        const char *keys[] = {"tie_word_embeddings", "eos_token_id", "bos_token_id"};
        for (size_t i = 0; i < 3; i++)
            if (!json_object_get(tc, keys[i]) && json_object_get(*root, keys[i]))
                json_object_set((json_t *)tc, keys[i], json_object_get(*root, keys[i]));
    }
    return SP_OK;
}

sp_status sp_hf_load(sp_model_desc *d, sp_weights *w, sp_safetensors **st, const char *dir,
                     const sp_model_opts *opts, sp_error *err) {
    json_t *root = NULL;
    const json_t *cfg = NULL;
    char ctx[1024];
    sp_hf_info info;
    sp_status s = load_config(dir, &root, &cfg, ctx, sizeof ctx, err);
    if (s == SP_OK) s = sp_hf_config(d, &info, cfg, ctx, opts, err);
    if (s == SP_OK) s = media_ids(d, root, cfg, ctx, err);
    const char *prefix = root != cfg ? "model.language_model." : "model.";
    w->dummy_dtype = dummy_dtype(root, cfg);
    if (s == SP_OK) media_bidir(d, root, cfg);
    json_decref(root);
    SP_TRY(s);
    w->file = dir;
    if (!w->dummy) { /* dummy weights are sized from config.json alone */
        SP_TRY(sp_st_open(st, dir, err));
        w->lookup = sp_weights_st_lookup;
        w->src = *st;
        prefix = detect_prefix(*st);
    }
    mapper m = {.w = w, .d = d, .info = &info, .prefix = prefix, .one_plus = d->norm_one_plus};
    SP_TRY(map_globals(&m, err));
    for (int i = 0; i < d->n_layers; i++) SP_TRY(map_layer(&m, i, err));
    d->norm_one_plus = 0; /* folded into the stored weights */
    return SP_OK;
}
