/* Embedding pooling, Dense layers and normalisation (pooling.h), read from
 * a sentence-transformers directory. Each module folder holds a
 * config.json; Dense layers also a model.safetensors with linear.weight
 * [out, in] (and linear.bias [out]). Sizes here are small (an embedding is
 * at most a few thousand floats), so the code is plain loops. */
#include "model/pooling.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "formats/json.h"
#include "formats/safetensors.h"

#define MAX_DENSE 8

typedef enum act { ACT_IDENTITY, ACT_TANH, ACT_RELU, ACT_GELU, ACT_SIGMOID } act;

typedef struct dense {
    int in, out;
    float *w; /* [out][in] */
    float *b; /* [out] or NULL */
    act act;
} dense;

struct sp_pooler {
    unsigned modes;
    int hidden, dim;
    dense dense[MAX_DENSE];
    int n_dense;
    int normalize;
    sp_embed_input input;
    int gen_prompt;
    float *buf[2]; /* scratch: the widest stage */
    char desc[256];
};

static const struct {
    const char *name;
    unsigned mode;
} mode_names[] = {
    {"cls", SP_POOL_CLS},
    {"max", SP_POOL_MAX},
    {"mean", SP_POOL_MEAN},
    {"mean_sqrt_len_tokens", SP_POOL_MEAN_SQRT},
    {"weightedmean", SP_POOL_WEIGHTED},
    {"lasttoken", SP_POOL_LAST},
    {"last", SP_POOL_LAST},
    {"cls_token", SP_POOL_CLS},
    {"mean_tokens", SP_POOL_MEAN},
};

/* The boolean keys of sentence-transformers before 6. */
static const struct {
    const char *key;
    unsigned mode;
} mode_keys[] = {
    {"pooling_mode_cls_token", SP_POOL_CLS},
    {"pooling_mode_max_tokens", SP_POOL_MAX},
    {"pooling_mode_mean_tokens", SP_POOL_MEAN},
    {"pooling_mode_mean_sqrt_len_tokens", SP_POOL_MEAN_SQRT},
    {"pooling_mode_weightedmean_tokens", SP_POOL_WEIGHTED},
    {"pooling_mode_lasttoken", SP_POOL_LAST},
};

int sp_pool_mode_from_name(const char *name) {
    for (size_t i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++)
        if (!strcmp(name, mode_names[i].name)) return (int)mode_names[i].mode;
    return -1;
}

static int n_modes(unsigned modes) {
    int n = 0;
    for (unsigned m = modes; m; m &= m - 1) n++;
    return n;
}

static const char *mode_name(unsigned mode) {
    for (size_t i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++)
        if (mode_names[i].mode == mode) return mode_names[i].name;
    return "?";
}

void sp_pooler_free(sp_pooler *p) {
    if (!p) return;
    for (int i = 0; i < p->n_dense; i++) {
        free(p->dense[i].w);
        free(p->dense[i].b);
    }
    free(p->buf[0]);
    free(p->buf[1]);
    free(p);
}

static void describe(sp_pooler *p) {
    size_t n = 0, cap = sizeof p->desc;
    if (p->input != SP_EMBED_TEXT)
        n += (size_t)snprintf(p->desc, cap, "chat-template %s message -> ",
                              p->input == SP_EMBED_MESSAGE_STRUCTURED ? "structured" : "flat");
    int first = 0;
    for (int i = 0; i < 6 && n < cap; i++)
        if (p->modes & (1u << i))
            n += (size_t)snprintf(p->desc + n, cap - n, "%s%s", first++ ? "+" : "",
                                  mode_name(1u << i));
    for (int i = 0; i < p->n_dense && n < cap; i++)
        n += (size_t)snprintf(p->desc + n, cap - n, " -> dense %dx%d", p->dense[i].in,
                              p->dense[i].out);
    if (p->normalize && n < cap) snprintf(p->desc + n, cap - n, " -> normalize");
}

/* Sizes the scratch once every stage is known. */
static sp_status finish(sp_pooler *p, sp_error *err) {
    int widest = p->hidden * n_modes(p->modes);
    p->dim = widest;
    for (int i = 0; i < p->n_dense; i++) {
        if (p->dense[i].in != p->dim)
            return sp_fail(err, SP_EFORMAT, "embedding module %d: Dense expects %d inputs, gets %d",
                           i, p->dense[i].in, p->dim);
        p->dim = p->dense[i].out;
        if (p->dim > widest) widest = p->dim;
    }
    p->buf[0] = malloc((size_t)widest * sizeof(float));
    p->buf[1] = malloc((size_t)widest * sizeof(float));
    if (!p->buf[0] || !p->buf[1]) return sp_fail(err, SP_ENOMEM, "embedding scratch");
    describe(p);
    return SP_OK;
}

sp_status sp_pooler_plain(sp_pooler **out, unsigned modes, int hidden, int normalize,
                          sp_error *err) {
    *out = NULL;
    if (!modes || hidden <= 0) return sp_fail(err, SP_EINVAL, "pooling: no mode or no width");
    sp_pooler *p = calloc(1, sizeof *p);
    if (!p) return sp_fail(err, SP_ENOMEM, "pooler");
    p->modes = modes;
    p->hidden = hidden;
    p->normalize = normalize;
    sp_status s = finish(p, err);
    if (s != SP_OK) {
        sp_pooler_free(p);
        return s;
    }
    *out = p;
    return SP_OK;
}

/* ---- loading ------------------------------------------------------------ */

static sp_status load_module_config(const char *dir, const char *sub, json_t **cfg, char *ctx,
                                    size_t ctx_len, sp_error *err) {
    char rel[512];
    snprintf(rel, sizeof rel, "%s/config.json", sub);
    char *path = sp_path_join(dir, rel);
    if (!path) return sp_fail(err, SP_ENOMEM, "path");
    snprintf(ctx, ctx_len, "%s", path);
    sp_status s = sp_json_load_file(cfg, path, err);
    free(path);
    if (s == SP_OK && !json_is_object(*cfg)) {
        json_decref(*cfg);
        *cfg = NULL;
        return sp_fail(err, SP_EFORMAT, "%s: not a JSON object", ctx);
    }
    return s;
}

static sp_status read_pooling(sp_pooler *p, const char *dir, const char *sub, sp_error *err) {
    json_t *cfg;
    char ctx[600];
    SP_TRY(load_module_config(dir, sub, &cfg, ctx, sizeof ctx, err));
    sp_status s = SP_OK;
    int64_t dim = 0;
    s = sp_json_int(cfg, "embedding_dimension", 0, 0, &dim, ctx, err);
    if (s == SP_OK && !dim) s = sp_json_int(cfg, "word_embedding_dimension", 0, 0, &dim, ctx, err);
    if (s == SP_OK && dim && dim != p->hidden)
        s = sp_fail(err, SP_EFORMAT, "%s: embedding_dimension %lld, but the model's width is %d",
                    ctx, (long long)dim, p->hidden);
    const json_t *mode = json_object_get(cfg, "pooling_mode");
    for (size_t i = 0; s == SP_OK && json_is_array(mode) && i < json_array_size(mode); i++) {
        const char *name = json_string_value(json_array_get(mode, i));
        int m = name ? sp_pool_mode_from_name(name) : -1;
        if (m < 0)
            s = sp_fail(err, SP_EUNSUPPORTED, "%s.pooling_mode[%zu]: unsupported mode", ctx, i);
        else
            p->modes |= (unsigned)m;
    }
    if (s == SP_OK && json_is_string(mode)) {
        int m = sp_pool_mode_from_name(json_string_value(mode));
        if (m < 0)
            s = sp_fail(err, SP_EUNSUPPORTED, "%s.pooling_mode: unsupported mode '%s'", ctx,
                        json_string_value(mode));
        else
            p->modes |= (unsigned)m;
    }
    for (size_t i = 0; s == SP_OK && i < sizeof mode_keys / sizeof mode_keys[0]; i++) {
        int on = 0;
        s = sp_json_bool(cfg, mode_keys[i].key, 0, 0, &on, ctx, err);
        if (on) p->modes |= mode_keys[i].mode;
    }
    if (s == SP_OK && !p->modes) s = sp_fail(err, SP_EFORMAT, "%s: no pooling mode is set", ctx);
    json_decref(cfg);
    return s;
}

static sp_status parse_act(const char *name, act *out, const char *ctx, sp_error *err) {
    const char *dot = strrchr(name, '.');
    const char *base = dot ? dot + 1 : name;
    static const struct {
        const char *name;
        act a;
    } acts[] = {{"Identity", ACT_IDENTITY},
                {"Tanh", ACT_TANH},
                {"ReLU", ACT_RELU},
                {"GELU", ACT_GELU},
                {"Sigmoid", ACT_SIGMOID}};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (!strcmp(base, acts[i].name)) {
            *out = acts[i].a;
            return SP_OK;
        }
    return sp_fail(err, SP_EUNSUPPORTED, "%s.activation_function: unsupported '%s'", ctx, name);
}

/* A tensor of `want` values as f32 (F32, BF16 or F16 in the file). */
static sp_status tensor_f32(const sp_safetensors *st, const char *name, int64_t rows, int64_t cols,
                            float **out, const char *file, sp_error *err) {
    const sp_st_tensor *t;
    SP_TRY(sp_st_get(st, name, &t, err));
    int ok = cols ? t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols
                  : t->ndim == 1 && t->shape[0] == rows;
    if (!ok)
        return sp_fail(err, SP_EFORMAT, "%s: tensor %s has the wrong shape (want [%lld%s%lld])",
                       file, name, (long long)rows, cols ? ", " : "", (long long)cols);
    size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
    float *f = malloc(n * sizeof *f);
    if (!f) return sp_fail(err, SP_ENOMEM, "%s: %s", file, name);
    for (size_t i = 0; i < n; i++) {
        if (t->dtype == SP_F32)
            memcpy(&f[i], (const char *)t->data + i * 4, 4);
        else if (t->dtype == SP_BF16 || t->dtype == SP_F16) {
            uint16_t h;
            memcpy(&h, (const char *)t->data + i * 2, 2);
            f[i] = t->dtype == SP_BF16 ? sp_bf16_to_f32(h) : sp_f16_to_f32(h);
        } else {
            free(f);
            return sp_fail(err, SP_EUNSUPPORTED, "%s: tensor %s is %s (need F32, BF16 or F16)",
                           file, name, sp_dtype_name(t->dtype));
        }
    }
    *out = f;
    return SP_OK;
}

static sp_status read_dense_weights(dense *d, int bias, const char *dir, const char *sub,
                                    sp_error *err) {
    char rel[512];
    snprintf(rel, sizeof rel, "%s/model.safetensors", sub);
    char *path = sp_path_join(dir, rel);
    if (!path) return sp_fail(err, SP_ENOMEM, "path");
    sp_safetensors *st = NULL;
    sp_status s = sp_path_exists(path) ? sp_st_open(&st, path, err)
                                       : sp_fail(err, SP_ENOTFOUND,
                                                 "%s: missing (Dense weights are read only from "
                                                 "safetensors)",
                                                 path);
    if (s == SP_OK) s = tensor_f32(st, "linear.weight", d->out, d->in, &d->w, path, err);
    if (s == SP_OK && bias) s = tensor_f32(st, "linear.bias", d->out, 0, &d->b, path, err);
    if (st) sp_st_close(st);
    free(path);
    return s;
}

static sp_status read_dense(sp_pooler *p, const char *dir, const char *sub, sp_error *err) {
    if (p->n_dense == MAX_DENSE)
        return sp_fail(err, SP_EUNSUPPORTED, "%s: more than %d Dense modules", dir, MAX_DENSE);
    json_t *cfg;
    char ctx[600];
    SP_TRY(load_module_config(dir, sub, &cfg, ctx, sizeof ctx, err));
    dense *d = &p->dense[p->n_dense];
    memset(d, 0, sizeof *d);
    int64_t in = 0, out = 0;
    int bias = 1;
    const char *act_name = "torch.nn.modules.activation.Tanh"; /* sentence-transformers' default */
    sp_status s = sp_json_int_range(cfg, "in_features", 0, 1, 1, 1 << 20, &in, ctx, err);
    if (s == SP_OK) s = sp_json_int_range(cfg, "out_features", 0, 1, 1, 1 << 20, &out, ctx, err);
    if (s == SP_OK) s = sp_json_bool(cfg, "bias", 1, 0, &bias, ctx, err);
    if (s == SP_OK) s = sp_json_str(cfg, "activation_function", act_name, 0, &act_name, ctx, err);
    if (s == SP_OK) s = parse_act(act_name, &d->act, ctx, err);
    json_decref(cfg);
    SP_TRY(s);
    d->in = (int)in;
    d->out = (int)out;
    p->n_dense++; /* owns whatever was read, even on failure */
    return read_dense_weights(d, bias, dir, sub, err);
}

/* The Transformer module's input format (sentence_bert_config.json in its
 * folder; absent in checkpoints older than sentence-transformers 6). */
static sp_status read_transformer(sp_pooler *p, const char *dir, const char *sub, sp_error *err) {
    char rel[512];
    snprintf(rel, sizeof rel, "%s%ssentence_bert_config.json", sub, *sub ? "/" : "");
    char *path = sp_path_join(dir, rel);
    if (!path) return sp_fail(err, SP_ENOMEM, "path");
    json_t *cfg = NULL;
    sp_status s = sp_path_exists(path) ? sp_json_load_file(&cfg, path, err) : SP_OK;
    const json_t *msg = json_object_get(json_object_get(cfg, "modality_config"), "message");
    if (s == SP_OK && json_is_object(msg)) {
        const char *fmt = json_string_value(json_object_get(msg, "format"));
        p->input =
            fmt && !strcmp(fmt, "structured") ? SP_EMBED_MESSAGE_STRUCTURED : SP_EMBED_MESSAGE_FLAT;
        const json_t *ct =
            json_object_get(json_object_get(cfg, "processing_kwargs"), "chat_template");
        p->gen_prompt = json_is_true(json_object_get(ct, "add_generation_prompt"));
    }
    json_decref(cfg);
    free(path);
    return s;
}

/* The last component of a module's type name ("...modules.dense.Dense"). */
static const char *type_base(const char *type) {
    const char *dot = strrchr(type, '.');
    return dot ? dot + 1 : type;
}

static sp_status read_module(sp_pooler *p, const char *dir, const json_t *mod, size_t i,
                             const char *ctx, sp_error *err) {
    const char *type = json_string_value(json_object_get(mod, "type"));
    const char *sub = json_string_value(json_object_get(mod, "path"));
    if (!type || !sub)
        return sp_fail(err, SP_EFORMAT, "%s[%zu]: needs string \"type\" and \"path\"", ctx, i);
    const char *base = type_base(type);
    if (i == 0) {
        if (strcmp(base, "Transformer"))
            return sp_fail(err, SP_EUNSUPPORTED, "%s[0]: the first module is %s, not a Transformer",
                           ctx, type);
        return read_transformer(p, dir, sub, err); /* the model: loaded from dir itself */
    }
    if (!strcmp(base, "Pooling")) {
        if (p->modes)
            return sp_fail(err, SP_EUNSUPPORTED, "%s[%zu]: a second Pooling module", ctx, i);
        return read_pooling(p, dir, sub, err);
    }
    if (!p->modes)
        return sp_fail(err, SP_EUNSUPPORTED, "%s[%zu]: %s before any Pooling module", ctx, i, type);
    if (!strcmp(base, "Dense")) return read_dense(p, dir, sub, err);
    if (!strcmp(base, "Normalize")) {
        p->normalize = 1;
        return SP_OK;
    }
    return sp_fail(err, SP_EUNSUPPORTED, "%s[%zu]: module type %s is not supported", ctx, i, type);
}

sp_status sp_pooler_load(sp_pooler **out, const char *dir, int hidden, sp_error *err) {
    *out = NULL;
    char *path = sp_path_join(dir, "modules.json");
    if (!path) return sp_fail(err, SP_ENOMEM, "path");
    if (!sp_path_exists(path)) {
        free(path);
        return SP_ENOTFOUND;
    }
    json_t *mods = NULL;
    sp_status s = sp_json_load_file(&mods, path, err);
    sp_pooler *p = s == SP_OK ? calloc(1, sizeof *p) : NULL;
    if (s == SP_OK && !p) s = sp_fail(err, SP_ENOMEM, "pooler");
    if (s == SP_OK && (!json_is_array(mods) || json_array_size(mods) < 2))
        s = sp_fail(err, SP_EFORMAT, "%s: expected an array of at least 2 modules", path);
    if (s == SP_OK) p->hidden = hidden;
    for (size_t i = 0; s == SP_OK && i < json_array_size(mods); i++)
        s = read_module(p, dir, json_array_get(mods, i), i, path, err);
    if (s == SP_OK && !p->modes) s = sp_fail(err, SP_EFORMAT, "%s: no Pooling module", path);
    if (s == SP_OK) s = finish(p, err);
    json_decref(mods);
    free(path);
    if (s != SP_OK) {
        sp_pooler_free(p);
        return s;
    }
    *out = p;
    return SP_OK;
}

/* ---- running ------------------------------------------------------------ */

int sp_pooler_dim(const sp_pooler *p) {
    return p->dim;
}

sp_embed_input sp_pooler_input(const sp_pooler *p) {
    return p->input;
}

int sp_pooler_generation_prompt(const sp_pooler *p) {
    return p->gen_prompt;
}

const char *sp_pooler_describe(const sp_pooler *p) {
    return p->desc;
}

/* One pooling mode over n tokens into out[H] (sums in double). */
static void pool_one(unsigned mode, const float *x, int n, int H, float *out) {
    if (mode == SP_POOL_CLS || mode == SP_POOL_LAST) {
        memcpy(out, x + (size_t)(mode == SP_POOL_CLS ? 0 : n - 1) * H, (size_t)H * sizeof *out);
        return;
    }
    for (int i = 0; i < H; i++) {
        double acc = mode == SP_POOL_MAX ? -INFINITY : 0, wsum = 0;
        for (int t = 0; t < n; t++) {
            double v = x[(size_t)t * H + i], w = mode == SP_POOL_WEIGHTED ? t + 1 : 1;
            if (mode == SP_POOL_MAX)
                acc = v > acc ? v : acc;
            else
                acc += v * w;
            wsum += w;
        }
        out[i] = (float)(mode == SP_POOL_MAX         ? acc
                         : mode == SP_POOL_MEAN_SQRT ? acc / sqrt((double)n)
                                                     : acc / wsum);
    }
}

static float activate(act a, float v) {
    switch (a) {
    case ACT_TANH:
        return tanhf(v);
    case ACT_RELU:
        return v > 0 ? v : 0;
    case ACT_GELU:
        return 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2));
    case ACT_SIGMOID:
        return 1.0f / (1.0f + expf(-v));
    default:
        return v;
    }
}

static void dense_run(const dense *d, const float *x, float *y) {
    for (int o = 0; o < d->out; o++) {
        const float *w = d->w + (size_t)o * d->in;
        double acc = d->b ? d->b[o] : 0;
        for (int i = 0; i < d->in; i++) acc += (double)w[i] * x[i];
        y[o] = activate(d->act, (float)acc);
    }
}

void sp_pooler_run(sp_pooler *p, const float *hidden, int n, float *out) {
    float *cur = p->buf[0], *next = p->buf[1];
    int width = 0;
    for (int i = 0; i < 6; i++)
        if (p->modes & (1u << i)) {
            pool_one(1u << i, hidden, n, p->hidden, cur + width);
            width += p->hidden;
        }
    for (int i = 0; i < p->n_dense; i++) {
        dense_run(&p->dense[i], cur, next);
        float *t = cur;
        cur = next;
        next = t;
    }
    if (p->normalize) { /* torch's F.normalize: x / max(|x|, 1e-12) */
        double ss = 0;
        for (int i = 0; i < p->dim; i++) ss += (double)cur[i] * cur[i];
        double norm = sqrt(ss) > 1e-12 ? sqrt(ss) : 1e-12;
        for (int i = 0; i < p->dim; i++) cur[i] = (float)(cur[i] / norm);
    }
    memcpy(out, cur, (size_t)p->dim * sizeof *out);
}
