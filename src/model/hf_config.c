#include "model/hf_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/json.h"
#include "model/rope.h"

#define MAX_FACTORS 1024

static const struct {
    const char *name;
    sp_family fam;
} families[] = {
    {"llama", SP_FAM_LLAMA},         {"mistral", SP_FAM_MISTRAL}, {"qwen2", SP_FAM_QWEN2},
    {"qwen3", SP_FAM_QWEN3},         {"phi3", SP_FAM_PHI3},       {"mixtral", SP_FAM_MIXTRAL},
    {"qwen3_moe", SP_FAM_QWEN3_MOE}, {"gemma2", SP_FAM_GEMMA2},   {"gemma3", SP_FAM_GEMMA3},
    {"gemma3_text", SP_FAM_GEMMA3},  {"gemma4", SP_FAM_GEMMA4},   {"gemma4_text", SP_FAM_GEMMA4},
};

static int is_gemma(sp_family f) {
    return f == SP_FAM_GEMMA2 || f == SP_FAM_GEMMA3 || f == SP_FAM_GEMMA4;
}

static sp_status family_of(const json_t *cfg, const char *ctx, sp_family *out, sp_error *err) {
    const char *mt;
    SP_TRY(sp_json_str(cfg, "model_type", NULL, 1, &mt, ctx, err));
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (!strcmp(mt, families[i].name)) {
            *out = families[i].fam;
            return SP_OK;
        }
    return sp_fail(err, SP_EUNSUPPORTED, "%s.model_type: unsupported architecture '%s'", ctx, mt);
}

/* ---- layer types ------------------------------------------------------ */

static sp_status layer_is_sliding(const json_t *cfg, const char *ctx, sp_family fam, int n_layers,
                                  int window, int *sliding, sp_error *err) {
    const json_t *lt;
    SP_TRY(sp_json_arr(cfg, "layer_types", 0, &lt, ctx, err));
    if (lt) {
        if ((int)json_array_size(lt) != n_layers)
            return sp_fail(err, SP_EFORMAT, "%s.layer_types: %zu entries for %d layers", ctx,
                           json_array_size(lt), n_layers);
        for (int i = 0; i < n_layers; i++) {
            const char *s = json_string_value(json_array_get(lt, (size_t)i));
            if (s && !strcmp(s, "full_attention"))
                sliding[i] = 0;
            else if (s && !strcmp(s, "sliding_attention"))
                sliding[i] = 1;
            else
                return sp_fail(err, SP_EFORMAT, "%s.layer_types[%d]: unknown layer type '%s'", ctx,
                               i, s ? s : "(not a string)");
        }
        return SP_OK;
    }
    int64_t pattern = 6;
    if (fam == SP_FAM_GEMMA3) {
        SP_TRY(sp_json_int(cfg, "sliding_window_pattern", 6, 0, &pattern, ctx, err));
        if (pattern <= 0) pattern = 6;
    }
    int use_swa = 1;
    int64_t max_window_layers = 0;
    if (fam == SP_FAM_QWEN2 || fam == SP_FAM_QWEN3 || fam == SP_FAM_QWEN3_MOE) {
        SP_TRY(sp_json_bool(cfg, "use_sliding_window", 0, 0, &use_swa, ctx, err));
        SP_TRY(sp_json_int(cfg, "max_window_layers", 0, 0, &max_window_layers, ctx, err));
    }
    for (int i = 0; i < n_layers; i++) {
        switch (fam) {
        case SP_FAM_GEMMA2:
            sliding[i] = i % 2 == 0;
            break;
        case SP_FAM_GEMMA3:
            sliding[i] = (i + 1) % pattern != 0;
            break;
        case SP_FAM_GEMMA4:
            sliding[i] = (i + 1) % 6 != 0 && i != n_layers - 1;
            break;
        case SP_FAM_QWEN2:
        case SP_FAM_QWEN3:
        case SP_FAM_QWEN3_MOE:
            sliding[i] = use_swa && window > 0 && i >= max_window_layers;
            break;
        default:
            sliding[i] = window > 0;
            break;
        }
    }
    return SP_OK;
}

/* ---- RoPE --------------------------------------------------------------- */

static sp_status rope_kind_of(const char *s, const char *ctx, sp_rope_kind *k, sp_error *err) {
    static const struct {
        const char *n;
        sp_rope_kind k;
    } kinds[] = {{"default", SP_ROPE_DEFAULT}, {"linear", SP_ROPE_LINEAR},
                 {"dynamic", SP_ROPE_DYNAMIC}, {"llama3", SP_ROPE_LLAMA3},
                 {"yarn", SP_ROPE_YARN},       {"longrope", SP_ROPE_LONGROPE},
                 {"su", SP_ROPE_LONGROPE},     {"proportional", SP_ROPE_PROPORTIONAL}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(s, kinds[i].n)) {
            *k = kinds[i].k;
            return SP_OK;
        }
    return sp_fail(err, SP_EUNSUPPORTED, "%s.rope_type: unsupported RoPE type '%s'", ctx, s);
}

typedef struct rope_buf {
    double shortf[MAX_FACTORS], longf[MAX_FACTORS];
} rope_buf;

/* One rope dict (spec 1.5 normalisation). dict may be NULL (defaults). */
static sp_status rope_params_of(const json_t *cfg, const char *ctx, const json_t *dict,
                                const char *dctx, int nested, double def_theta, int max_pos,
                                sp_rope_params *p, rope_buf *buf, sp_error *err) {
    sp_rope_params_default(p);
    p->max_pos = max_pos;
    const char *type = "default";
    SP_TRY(sp_json_str(dict, "type", type, 0, &type, dctx, err));
    SP_TRY(sp_json_str(dict, "rope_type", type, 0, &type, dctx, err));
    SP_TRY(rope_kind_of(type, dctx, &p->kind, err));
    double top_theta;
    SP_TRY(sp_json_num(cfg, "rope_theta", def_theta, 0, &top_theta, ctx, err));
    SP_TRY(sp_json_num(dict, "rope_theta", top_theta, 0, &p->theta, dctx, err));
    double prf_dict, prf_top;
    SP_TRY(sp_json_num(dict, "partial_rotary_factor", 1.0, 0, &prf_dict, dctx, err));
    SP_TRY(sp_json_num(cfg, "partial_rotary_factor", prf_dict, 0, &prf_top, ctx, err));
    p->partial_rotary_factor = nested ? prf_dict : prf_top;
    int64_t om_dict, om;
    SP_TRY(sp_json_int(dict, "original_max_position_embeddings", 0, 0, &om_dict, dctx, err));
    SP_TRY(sp_json_int(cfg, "original_max_position_embeddings", om_dict, 0, &om, ctx, err));
    p->orig_max = (int)om;
    SP_TRY(sp_json_num(dict, "factor", 0, 0, &p->factor, dctx, err));
    SP_TRY(sp_json_num(dict, "low_freq_factor", 0, 0, &p->low_freq_factor, dctx, err));
    SP_TRY(sp_json_num(dict, "high_freq_factor", 0, 0, &p->high_freq_factor, dctx, err));
    SP_TRY(sp_json_num(dict, "beta_fast", 0, 0, &p->beta_fast, dctx, err));
    SP_TRY(sp_json_num(dict, "beta_slow", 0, 0, &p->beta_slow, dctx, err));
    SP_TRY(sp_json_num(dict, "mscale", 0, 0, &p->mscale, dctx, err));
    SP_TRY(sp_json_num(dict, "mscale_all_dim", 0, 0, &p->mscale_all_dim, dctx, err));
    SP_TRY(sp_json_num(dict, "attention_factor", 0, 0, &p->attention_factor, dctx, err));
    SP_TRY(sp_json_bool(dict, "truncate", 1, 0, &p->truncate, dctx, err));
    if (p->kind == SP_ROPE_LONGROPE) {
        SP_TRY(sp_json_num_list(dict, "short_factor", 1, buf->shortf, MAX_FACTORS, -1, &p->n_short,
                                dctx, err));
        SP_TRY(sp_json_num_list(dict, "long_factor", 1, buf->longf, MAX_FACTORS, -1, &p->n_long,
                                dctx, err));
        p->short_factor = buf->shortf;
        p->long_factor = buf->longf;
    }
    int trad = 0;
    SP_TRY(sp_json_bool(cfg, "rope_traditional", 0, 0, &trad, ctx, err));
    p->interleaved = trad;
    return SP_OK;
}

/* Returns the index of a rope table equal to (params, head_dim), building
 * it when new. */
static sp_status rope_table_for(sp_model_desc *d, const sp_rope_params *p, const char *pctx,
                                int head_dim, int *index, const sp_model_opts *opts,
                                sp_error *err) {
    sp_rope_table r;
    SP_TRY(sp_rope_build(&r, p, head_dim, err) == SP_OK ? SP_OK : sp_wrap(err, "%s", pctx));
    r.always_long = opts && opts->longrope_always_long;
    for (int i = 0; i < d->n_ropes; i++) {
        sp_rope_table *o = &d->ropes[i];
        if (o->kind == r.kind && o->head_dim == r.head_dim && o->rot_dim == r.rot_dim &&
            o->attn_factor == r.attn_factor && o->interleaved == r.interleaved &&
            !memcmp(o->inv_freq, r.inv_freq, sizeof(float) * (size_t)r.n_pairs) &&
            !o->inv_freq_long && !r.inv_freq_long && o->kind != SP_ROPE_DYNAMIC) {
            sp_rope_free(&r);
            *index = i;
            return SP_OK;
        }
    }
    if (d->n_ropes == SP_MAX_ROPE_TABLES) {
        sp_rope_free(&r);
        return sp_fail(err, SP_EUNSUPPORTED, "%s: too many distinct RoPE tables", pctx);
    }
    d->ropes[d->n_ropes] = r;
    *index = d->n_ropes++;
    return SP_OK;
}

/* Which rope dict applies to a layer type (0 full, 1 sliding). */
static sp_status rope_for_layer(sp_model_desc *d, const json_t *cfg, const char *ctx, sp_family fam,
                                int sliding, int head_dim, int *index, const sp_model_opts *opts,
                                sp_error *err) {
    const json_t *dict = NULL;
    const char *key = "rope_parameters";
    SP_TRY(sp_json_obj(cfg, key, 0, &dict, ctx, err));
    if (!dict) {
        key = "rope_scaling";
        SP_TRY(sp_json_obj(cfg, key, 0, &dict, ctx, err));
    }
    const char *tname = sliding ? "sliding_attention" : "full_attention";
    int nested = dict && (json_object_get(dict, "full_attention") ||
                          json_object_get(dict, "sliding_attention"));
    char dctx[256];
    snprintf(dctx, sizeof dctx, "%s.%s%s%s", ctx, key, nested ? "." : "", nested ? tname : "");
    double def_theta = 10000.0;
    if (fam == SP_FAM_GEMMA3 && !sliding) def_theta = 1e6;
    if (fam == SP_FAM_GEMMA4) def_theta = sliding ? 1e4 : 1e6;
    if (nested) dict = json_object_get(dict, tname);
    json_t *tmp = NULL;
    if (fam == SP_FAM_GEMMA3 && sliding && !nested) {
        /* v4 Gemma 3: rope_scaling is for global layers; local layers use
         * the default rope with rope_local_base_freq */
        double local;
        SP_TRY(sp_json_num(cfg, "rope_local_base_freq", 1e4, 0, &local, ctx, err));
        dict = tmp = json_pack("{s:s, s:f}", "rope_type", "default", "rope_theta", local);
    } else if (fam == SP_FAM_GEMMA4 && !dict && !sliding) {
        dict = tmp = json_pack("{s:s, s:f, s:f}", "rope_type", "proportional",
                               "partial_rotary_factor", 0.25, "rope_theta", 1e6);
    }
    int64_t max_pos;
    SP_TRY(sp_json_int(cfg, "max_position_embeddings", 4096, 0, &max_pos, ctx, err));
    sp_rope_params p;
    rope_buf *buf = malloc(sizeof *buf);
    if (!buf) return sp_fail(err, SP_ENOMEM, "rope parameters");
    sp_status s =
        rope_params_of(cfg, ctx, dict, dctx, nested, def_theta, (int)max_pos, &p, buf, err);
    if (s == SP_OK) s = rope_table_for(d, &p, dctx, head_dim, index, opts, err);
    free(buf);
    json_decref(tmp);
    return s;
}

/* ---- geometry ----------------------------------------------------------- */

/* Gemma 4 per_layer_config entry for layer i (keys may be zero-padded). */
static const json_t *per_layer_entry(const json_t *plc, int i) {
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)plc, key, v) {
        char *end;
        long k = strtol(key, &end, 10);
        if (*key && !*end && k == i) return v;
    }
    return NULL;
}

static sp_status gemma4_layer_geometry(sp_layer_desc *L, int i, const json_t *cfg, const char *ctx,
                                       int sliding, sp_error *err) {
    int64_t hd = L->head_dim, nkv = L->n_kv_heads, nh = L->n_heads, ghd, gnkv;
    int k_eq_v;
    SP_TRY(sp_json_int(cfg, "global_head_dim", 512, 0, &ghd, ctx, err));
    SP_TRY(sp_json_int(cfg, "num_global_key_value_heads", 0, 0, &gnkv, ctx, err));
    SP_TRY(sp_json_bool(cfg, "attention_k_eq_v", 0, 0, &k_eq_v, ctx, err));
    const json_t *plc;
    SP_TRY(sp_json_obj(cfg, "per_layer_config", 0, &plc, ctx, err));
    if (!sliding) {
        hd = ghd;
        if (k_eq_v && gnkv > 0) nkv = gnkv;
    }
    const json_t *e = plc ? per_layer_entry(plc, i) : NULL;
    if (e) {
        char ectx[256];
        snprintf(ectx, sizeof ectx, "%s.per_layer_config[%d]", ctx, i);
        SP_TRY(sp_json_int(e, "head_dim", hd, 0, &hd, ectx, err));
        SP_TRY(sp_json_int(e, "num_key_value_heads", nkv, 0, &nkv, ectx, err));
        SP_TRY(sp_json_int(e, "num_attention_heads", nh, 0, &nh, ectx, err));
    } else if (plc && !sliding) {
        hd = L->head_dim; /* per_layer_config layout: no entry means top-level values */
    }
    L->head_dim = (int)hd;
    L->n_kv_heads = (int)nkv;
    L->n_heads = (int)nh;
    L->k_eq_v = k_eq_v && !sliding;
    L->has_v_norm = 1;
    L->attn_scale = 1.0f;
    return SP_OK;
}

static sp_status read_moe(sp_model_desc *d, sp_hf_info *info, const json_t *cfg, const char *ctx,
                          sp_error *err) {
    int64_t ne = 0, nk = 0, mi = 0, step = 1;
    int norm = 1, gemma4_moe = 0;
    if (info->family == SP_FAM_GEMMA4) {
        SP_TRY(sp_json_bool(cfg, "enable_moe_block", 0, 0, &gemma4_moe, ctx, err));
        if (!gemma4_moe) return SP_OK;
        SP_TRY(sp_json_int(cfg, "num_experts", 0, 1, &ne, ctx, err));
        SP_TRY(sp_json_int(cfg, "top_k_experts", 0, 1, &nk, ctx, err));
        SP_TRY(sp_json_int(cfg, "moe_intermediate_size", 0, 1, &mi, ctx, err));
    } else if (info->family == SP_FAM_MIXTRAL || info->family == SP_FAM_QWEN3_MOE) {
        SP_TRY(sp_json_int(cfg, "num_local_experts", 0, 0, &ne, ctx, err));
        SP_TRY(sp_json_int(cfg, "num_experts", ne, ne == 0, &ne, ctx, err));
        SP_TRY(sp_json_int(cfg, "num_experts_per_tok", 2, 0, &nk, ctx, err));
        if (info->family == SP_FAM_QWEN3_MOE) {
            SP_TRY(sp_json_int(cfg, "moe_intermediate_size", 0, 1, &mi, ctx, err));
            SP_TRY(sp_json_bool(cfg, "norm_topk_prob", 0, 0, &norm, ctx, err));
            SP_TRY(sp_json_int(cfg, "decoder_sparse_step", 1, 0, &step, ctx, err));
            int64_t only[256];
            SP_TRY(sp_json_int_list(cfg, "mlp_only_layers", 0, only, 256, &info->n_mlp_only, ctx,
                                    err));
            for (int i = 0; i < info->n_mlp_only; i++) info->mlp_only[i] = (int)only[i];
        } else {
            mi = info->ffn_dim;
        }
    } else {
        return SP_OK;
    }
    if (ne <= 0 || nk <= 0 || nk > ne || mi <= 0)
        return sp_fail(err, SP_EFORMAT,
                       "%s: invalid MoE geometry (experts %lld, per token %lld, ffn %lld)", ctx,
                       (long long)ne, (long long)nk, (long long)mi);
    info->moe_every = step > 0 ? (int)step : 1;
    for (int i = 0; i < d->n_layers; i++) {
        sp_layer_desc *L = &d->layers[i];
        int dense = 0;
        for (int j = 0; j < info->n_mlp_only; j++) dense |= info->mlp_only[j] == i;
        if (info->family == SP_FAM_QWEN3_MOE && (dense || (i + 1) % info->moe_every != 0)) continue;
        L->n_experts = (int)ne;
        L->n_experts_used = (int)nk;
        L->expert_ffn_dim = (int)mi;
        L->moe_norm_topk = norm;
        L->moe_has_dense = gemma4_moe;
    }
    return SP_OK;
}

/* use_bidirectional_attention: true (Gemma 3, EmbeddingGemma) or "all"
 * (Gemma 4) makes the model an encoder; Gemma 4's "vision" (both ways only
 * inside an image) does not. */
static sp_status read_bidirectional(sp_model_desc *d, const json_t *cfg, const char *ctx,
                                    sp_error *err) {
    const json_t *v = json_object_get(cfg, "use_bidirectional_attention");
    if (!v || json_is_null(v) || json_is_false(v)) return SP_OK;
    if (json_is_true(v) || (json_is_string(v) && !strcmp(json_string_value(v), "all"))) {
        d->bidirectional = 1;
        return SP_OK;
    }
    if (json_is_string(v) && !strcmp(json_string_value(v), "vision")) return SP_OK;
    return sp_fail(err, SP_EFORMAT,
                   "%s.use_bidirectional_attention: expected a boolean, \"all\" or \"vision\"",
                   ctx);
}

static sp_status read_common(sp_model_desc *d, sp_hf_info *info, const json_t *cfg, const char *ctx,
                             sp_error *err) {
    int64_t v;
    SP_TRY(sp_json_int_range(cfg, "hidden_size", 0, 1, 1, 1 << 20, &v, ctx, err));
    d->hidden = (int)v;
    SP_TRY(sp_json_int_range(cfg, "num_hidden_layers", 0, 1, 1, 4096, &v, ctx, err));
    d->n_layers = (int)v;
    SP_TRY(sp_json_int_range(cfg, "vocab_size", 0, 1, 1, 1 << 24, &v, ctx, err));
    d->vocab = (int)v;
    SP_TRY(sp_json_int(cfg, "max_position_embeddings", 4096, 0, &v, ctx, err));
    d->max_pos = (int)v;
    SP_TRY(sp_json_int_range(cfg, "intermediate_size", 0, 1, 1, 1 << 24, &v, ctx, err));
    info->ffn_dim = (int)v;
    double eps;
    SP_TRY(sp_json_num(cfg, "rms_norm_eps", 1e-6, 0, &eps, ctx, err));
    d->norm_eps = (float)eps;
    int tied = is_gemma(info->family);
    SP_TRY(sp_json_bool(cfg, "tie_word_embeddings", tied, 0, &d->tied_embeddings, ctx, err));
    const char *act = "silu";
    SP_TRY(sp_json_str(cfg, "hidden_act", act, 0, &act, ctx, err));
    SP_TRY(sp_json_str(cfg, "hidden_activation", act, 0, &act, ctx, err));
    if (!strcmp(act, "silu") || !strcmp(act, "swish"))
        d->act = SP_ACT_SILU;
    else if (!strncmp(act, "gelu", 4) && (is_gemma(info->family) || strstr(act, "tanh")))
        d->act = SP_ACT_GELU_TANH;
    else
        return sp_fail(err, SP_EUNSUPPORTED, "%s.hidden_act: unsupported activation '%s'", ctx,
                       act);
    double cap;
    SP_TRY(sp_json_num(cfg, "attn_logit_softcapping", 0, 0, &cap, ctx, err));
    d->attn_softcap = (float)cap;
    SP_TRY(sp_json_num(cfg, "final_logit_softcapping", 0, 0, &cap, ctx, err));
    d->final_softcap = (float)cap;
    SP_TRY(sp_json_bool(cfg, "attention_bias", 0, 0, &info->attention_bias, ctx, err));
    int mlp_bias;
    SP_TRY(sp_json_bool(cfg, "mlp_bias", 0, 0, &mlp_bias, ctx, err));
    if (mlp_bias)
        return sp_fail(err, SP_EUNSUPPORTED, "%s.mlp_bias: MLP biases are not supported", ctx);
    SP_TRY(read_bidirectional(d, cfg, ctx, err));
    d->norm_one_plus = info->family == SP_FAM_GEMMA2 || info->family == SP_FAM_GEMMA3;
    d->sandwich_norms = is_gemma(info->family);
    d->embed_scale = is_gemma(info->family) ? sqrtf((float)d->hidden) : 1.0f;
    return SP_OK;
}

/* An encoder's sliding layers see |i - j| < window / 2 + 1: transformers
 * halves the configured width on load when use_bidirectional_attention is
 * set, so that the window spans about as many tokens as the causal one
 * (configured 4: two tokens either way of each token). */
static int encoder_window(const sp_model_desc *d, int window) {
    return d->bidirectional && window > 0 ? window / 2 + 1 : window;
}

static sp_status read_layers(sp_model_desc *d, sp_hf_info *info, const json_t *cfg, const char *ctx,
                             const sp_model_opts *opts, sp_error *err) {
    int64_t nh, nkv, hd, window, shared = 0;
    SP_TRY(sp_json_int_range(cfg, "num_attention_heads", 0, 1, 1, 4096, &nh, ctx, err));
    SP_TRY(sp_json_int_range(cfg, "num_key_value_heads", nh, 0, 1, 4096, &nkv, ctx, err));
    SP_TRY(sp_json_int_range(cfg, "head_dim", d->hidden / nh, 0, 2, 8192, &hd, ctx, err));
    SP_TRY(sp_json_int(cfg, "sliding_window", 0, 0, &window, ctx, err));
    double qpas;
    SP_TRY(sp_json_num(cfg, "query_pre_attn_scalar", (double)hd, 0, &qpas, ctx, err));
    if (info->family == SP_FAM_GEMMA4) {
        SP_TRY(sp_json_int(cfg, "num_kv_shared_layers", 0, 0, &shared, ctx, err));
        SP_TRY(sp_json_bool(cfg, "use_double_wide_mlp", 0, 0, &info->double_wide_mlp, ctx, err));
    }
    info->first_kv_shared = d->n_layers - (int)shared;
    int *sliding = calloc((size_t)d->n_layers, sizeof(int));
    if (!sliding) return sp_fail(err, SP_ENOMEM, "layers");
    sp_status s = layer_is_sliding(cfg, ctx, info->family, d->n_layers, (int)window, sliding, err);
    for (int i = 0; s == SP_OK && i < d->n_layers; i++) {
        sp_layer_desc *L = &d->layers[i];
        L->n_heads = (int)nh;
        L->n_kv_heads = (int)nkv;
        L->head_dim = (int)hd;
        L->sliding_window = sliding[i] ? encoder_window(d, (int)window) : 0;
        L->attn_scale =
            is_gemma(info->family) ? (float)(1.0 / sqrt(qpas)) : 1.0f / sqrtf((float)hd);
        L->layer_scalar = 1.0f;
        L->kv_source = i;
        L->ffn_dim = info->ffn_dim;
        if (info->family == SP_FAM_GEMMA4) {
            s = gemma4_layer_geometry(L, i, cfg, ctx, sliding[i], err);
            if (s != SP_OK) break;
            if (i >= info->first_kv_shared) {
                /* reuse the last non-shared layer of the same type */
                L->kv_source = -1;
                for (int j = info->first_kv_shared - 1; j >= 0; j--)
                    if (sliding[j] == sliding[i]) {
                        L->kv_source = j;
                        break;
                    }
                if (L->kv_source < 0)
                    s = sp_fail(err, SP_EFORMAT,
                                "%s.num_kv_shared_layers: layer %d has no earlier "
                                "layer of its type to share K/V with",
                                ctx, i);
                if (info->double_wide_mlp) L->ffn_dim *= 2;
            }
        }
        if (s == SP_OK &&
            (L->n_heads <= 0 || L->n_kv_heads <= 0 || L->head_dim <= 0 || L->head_dim % 2 != 0))
            s = sp_fail(err, SP_EFORMAT,
                        "%s: layer %d has %d heads, %d KV heads, head_dim %d "
                        "(need positive counts and an even head_dim)",
                        ctx, i, L->n_heads, L->n_kv_heads, L->head_dim);
        if (s == SP_OK && L->n_heads % L->n_kv_heads != 0)
            s = sp_fail(err, SP_EFORMAT,
                        "%s: layer %d has %d query heads, not a multiple of %d "
                        "KV heads",
                        ctx, i, L->n_heads, L->n_kv_heads);
        if (s == SP_OK && L->sliding_window < 0)
            s = sp_fail(err, SP_EFORMAT, "%s.sliding_window: must be >= 0", ctx);
        if (s == SP_OK)
            s = rope_for_layer(d, cfg, ctx, info->family, sliding[i], L->head_dim, &L->rope, opts,
                               err);
    }
    free(sliding);
    return s;
}

sp_status sp_hf_config(sp_model_desc *d, sp_hf_info *info, const json_t *cfg, const char *ctx,
                       const sp_model_opts *opts, sp_error *err) {
    memset(info, 0, sizeof *info);
    SP_TRY(family_of(cfg, ctx, &info->family, err));
    const char *mt = json_string_value(json_object_get(cfg, "model_type"));
    snprintf(d->arch, sizeof d->arch, "%s", mt);
    SP_TRY(read_common(d, info, cfg, ctx, err));
    d->layers = calloc((size_t)d->n_layers, sizeof *d->layers);
    if (!d->layers) return sp_fail(err, SP_ENOMEM, "layers");
    SP_TRY(read_layers(d, info, cfg, ctx, opts, err));
    SP_TRY(read_moe(d, info, cfg, ctx, err));
    int64_t ple = 0;
    if (info->family == SP_FAM_GEMMA4)
        SP_TRY(sp_json_int(cfg, "hidden_size_per_layer_input", 0, 0, &ple, ctx, err));
    d->ple_dim = (int)ple;
    int64_t eos[8];
    SP_TRY(sp_json_int_list(cfg, "eos_token_id", 0, eos, 8, &d->n_eos, ctx, err));
    for (int i = 0; i < d->n_eos; i++) d->eos_ids[i] = (int)eos[i];
    int64_t bos;
    SP_TRY(sp_json_int(cfg, "bos_token_id", -1, 0, &bos, ctx, err));
    d->bos_id = (int)bos;
    return SP_OK;
}
