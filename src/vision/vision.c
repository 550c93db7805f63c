/* sp_vision: configuration, lifetime and the encode entry point. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/file.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "vision/internal.h"

static sp_status int_key(const json_t *o, const char *key, const char *alt, int64_t def,
                         int64_t *out, const char *ctx, sp_error *err) {
    if (alt && json_is_integer(json_object_get(o, alt)))
        return sp_json_int(o, alt, def, 0, out, ctx, err);
    return sp_json_int(o, key, def, 0, out, ctx, err);
}

static sp_status gemma3_config(sp_vision *v, const json_t *root, const json_t *vc, sp_error *err) {
    int64_t mm, boi, eoi, img, H, I, L, nh, size, patch;
    double eps;
    const char *c = "config.json", *cv = "config.json:vision_config";
    SP_TRY(sp_json_int_range(root, "mm_tokens_per_image", 256, 0, 1, 65536, &mm, c, err));
    SP_TRY(int_key(root, "boi_token_index", "boi_token_id", 255999, &boi, c, err));
    SP_TRY(int_key(root, "eoi_token_index", "eoi_token_id", 256000, &eoi, c, err));
    SP_TRY(int_key(root, "image_token_index", "image_token_id", 262144, &img, c, err));
    SP_TRY(sp_json_int_range(vc, "hidden_size", 768, 0, 1, 65536, &H, cv, err));
    SP_TRY(sp_json_int_range(vc, "intermediate_size", 3072, 0, 1, 1 << 20, &I, cv, err));
    SP_TRY(sp_json_int_range(vc, "num_hidden_layers", 12, 0, 1, 1024, &L, cv, err));
    SP_TRY(sp_json_int_range(vc, "num_attention_heads", 12, 0, 1, 1024, &nh, cv, err));
    SP_TRY(sp_json_int_range(vc, "image_size", 224, 0, 1, 8192, &size, cv, err));
    SP_TRY(sp_json_int_range(vc, "patch_size", 16, 0, 1, 1024, &patch, cv, err));
    SP_TRY(sp_json_num(vc, "layer_norm_eps", 1e-6, 0, &eps, cv, err));
    int side = (int)(size / patch), tps = (int)lround(sqrt((double)mm));
    if (H % nh || size % patch || tps * tps != mm || side % tps)
        return sp_fail(err, SP_EUNSUPPORTED,
                       "%s: a %lld px image in %lld px patches does not pool to %lld tokens "
                       "(or hidden %lld is not a multiple of %lld heads)",
                       cv, (long long)size, (long long)patch, (long long)mm, (long long)H,
                       (long long)nh);
    v->info.kind = SP_VISION_GEMMA3;
    v->info.soft_tokens = (int)mm;
    v->info.boi_id = (int32_t)boi, v->info.eoi_id = (int32_t)eoi, v->info.image_id = (int32_t)img;
    v->hidden = (int)H, v->ffn = (int)I, v->n_layers = (int)L, v->n_heads = (int)nh;
    v->head_dim = (int)(H / nh), v->image_size = (int)size, v->patch = (int)patch;
    v->eps = (float)eps;
    return SP_OK;
}

static sp_status gemma4_config(sp_vision *v, const json_t *root, const json_t *vc, sp_error *err) {
    int64_t boi, eoi, img, H, I, L, nh, nkv, hd, patch, k, pos;
    double eps, theta;
    int std;
    const char *c = "config.json", *cv = "config.json:vision_config";
    SP_TRY(int_key(root, "boi_token_id", "boi_token_index", 255999, &boi, c, err));
    SP_TRY(int_key(root, "eoi_token_id", "eoi_token_index", 258882, &eoi, c, err));
    SP_TRY(int_key(root, "image_token_id", "image_token_index", 258880, &img, c, err));
    SP_TRY(sp_json_int_range(vc, "hidden_size", 768, 0, 1, 65536, &H, cv, err));
    SP_TRY(sp_json_int_range(vc, "intermediate_size", 3072, 0, 1, 1 << 20, &I, cv, err));
    SP_TRY(sp_json_int_range(vc, "num_hidden_layers", 16, 0, 1, 1024, &L, cv, err));
    SP_TRY(sp_json_int_range(vc, "num_attention_heads", 12, 0, 1, 1024, &nh, cv, err));
    SP_TRY(sp_json_int_range(vc, "num_key_value_heads", nh, 0, 1, 1024, &nkv, cv, err));
    SP_TRY(sp_json_int_range(vc, "head_dim", H / nh, 0, 4, 4096, &hd, cv, err));
    SP_TRY(sp_json_int_range(vc, "patch_size", 16, 0, 1, 64, &patch, cv, err));
    SP_TRY(sp_json_int_range(vc, "pooling_kernel_size", 3, 0, 1, 8, &k, cv, err));
    SP_TRY(sp_json_int_range(vc, "position_embedding_size", 10240, 0, 1, 1 << 20, &pos, cv, err));
    SP_TRY(sp_json_num(vc, "rms_norm_eps", 1e-6, 0, &eps, cv, err));
    SP_TRY(sp_json_bool(vc, "standardize", 0, 0, &std, cv, err));
    const json_t *rp = json_object_get(vc, "rope_parameters");
    SP_TRY(sp_json_num(json_is_object(rp) ? rp : NULL, "rope_theta", 100.0, 0, &theta, cv, err));
    if (nkv != nh || nh * hd != H || hd % 4)
        return sp_fail(err, SP_EUNSUPPORTED,
                       "%s: %lld heads x %lld (kv heads %lld) for hidden %lld is not supported", cv,
                       (long long)nh, (long long)hd, (long long)nkv, (long long)H);
    v->info.kind = SP_VISION_GEMMA4;
    v->info.boi_id = (int32_t)boi, v->info.eoi_id = (int32_t)eoi, v->info.image_id = (int32_t)img;
    v->hidden = (int)H, v->ffn = (int)I, v->n_layers = (int)L, v->n_heads = (int)nh;
    v->head_dim = (int)hd, v->patch = (int)patch, v->pool_k = (int)k, v->pos_size = (int)pos;
    v->eps = (float)eps, v->rope_theta = (float)theta, v->standardize = std;
    return SP_OK;
}

static sp_status read_config(sp_vision *v, const char *dir, sp_error *err) {
    char *path = sp_path_join(dir, "config.json");
    if (!path) return sp_fail(err, SP_ENOMEM, "path");
    json_t *root = NULL;
    sp_status s = sp_json_load_file(&root, path, err);
    free(path);
    SP_TRY(s);
    const json_t *vc = json_object_get(root, "vision_config");
    const json_t *tc = json_object_get(root, "text_config");
    const char *type = json_string_value(json_object_get(root, "model_type"));
    int64_t th = 0;
    if (!json_is_object(vc))
        s = sp_fail(err, SP_ENOTFOUND, "%s/config.json: no vision_config (a text-only model)", dir);
    else if (type && !strcmp(type, "gemma3"))
        s = gemma3_config(v, root, vc, err);
    else if (type && !strcmp(type, "gemma4"))
        s = gemma4_config(v, root, vc, err);
    else
        s = sp_fail(err, SP_EUNSUPPORTED,
                    "%s/config.json: image input for model_type %s is not "
                    "supported (Gemma 3 and Gemma 4 are)",
                    dir, type ? type : "(none)");
    if (s == SP_OK)
        s = sp_json_int_range(tc, "hidden_size", 0, 1, 1, 1 << 20, &th, "config.json:text_config",
                              err);
    v->info.text_hidden = (int)th;
    json_decref(root);
    return s;
}

/* The image processor must agree with the tower it feeds. */
static sp_status check_processor(sp_vision *v, const char *dir, sp_error *err) {
    sp_image_proc *p = &v->info.proc;
    SP_TRY(sp_image_proc_load(p, dir, err));
    if (v->info.kind == SP_VISION_GEMMA3) {
        p->soft_tokens = v->info.soft_tokens;
        if (p->kind != SP_PROC_GEMMA3 ||
            (p->do_resize && (p->size_h != v->image_size || p->size_w != v->image_size)))
            return sp_fail(err, SP_EFORMAT,
                           "%s: the image processor does not make %d x %d Gemma 3 images", dir,
                           v->image_size, v->image_size);
        if (!p->do_resize)
            return sp_fail(err, SP_EUNSUPPORTED, "%s: Gemma 3 without do_resize is not supported",
                           dir);
    } else if (p->kind != SP_PROC_GEMMA4 || p->patch != v->patch || p->pool_k != v->pool_k) {
        return sp_fail(err, SP_EFORMAT,
                       "%s: the image processor's patch %d / pooling %d do not "
                       "match the vision tower's %d / %d",
                       dir, p->patch, p->pool_k, v->patch, v->pool_k);
    }
    return SP_OK;
}

int sp_vision_present(const char *dir) {
    char *path = sp_path_join(dir, "config.json");
    json_t *root = path ? json_load_file(path, 0, NULL) : NULL;
    free(path);
    int yes = root && json_is_object(json_object_get(root, "vision_config"));
    json_decref(root);
    return yes;
}

sp_status sp_vision_load(sp_vision **out, const char *dir, const sp_model_opts *opts, sp_pool *pool,
                         sp_error *err) {
    *out = NULL;
    sp_vision *v = calloc(1, sizeof *v);
    if (!v) return sp_fail(err, SP_ENOMEM, "vision tower");
    v->pool = pool;
    v->prec = opts ? opts->precision : SP_PREC_FAST;
    v->w.use_mmap = opts ? opts->use_mmap : 0;
    v->w.quantize = SP_F32;
    v->w.file = dir;
    sp_status s = read_config(v, dir, err);
    if (s == SP_OK) s = check_processor(v, dir, err);
    if (s == SP_OK && (!(v->layers = calloc((size_t)v->n_layers, sizeof *v->layers)) ||
                       !(v->ones = sp_aligned_alloc((size_t)v->ffn * sizeof(float)))))
        s = sp_fail(err, SP_ENOMEM, "vision tower");
    for (int i = 0; s == SP_OK && i < v->ffn; i++) v->ones[i] = 1.0f;
    if (s == SP_OK) s = sp_st_open(&v->st, dir, err);
    if (s == SP_OK) {
        v->w.lookup = NULL; /* set by vis_load_tensors */
        s = vis_load_tensors(v, v->st, err);
    }
    if (v->st && !v->w.use_mmap) { /* the tensors are resident copies now */
        sp_st_close(v->st);
        v->st = NULL;
    }
    if (s != SP_OK) {
        sp_vision_free(v);
        return s;
    }
    *out = v;
    return SP_OK;
}

void sp_vision_free(sp_vision *v) {
    if (!v) return;
    sp_weights_free(&v->w);
    if (v->st) sp_st_close(v->st);
    free(v->layers);
    sp_aligned_free(v->ones);
    free(v);
}

const sp_vision_info *sp_vision_get_info(const sp_vision *v) {
    return &v->info;
}

static sp_status check_pixels(const sp_vision *v, const sp_pixels *px, int i, sp_error *err) {
    if (v->info.kind == SP_VISION_GEMMA3) {
        if (px->kind != SP_PROC_GEMMA3 || px->n_views != 1 || px->height != v->image_size ||
            px->width != v->image_size)
            return sp_fail(err, SP_EINVAL, "image %d: pixels are not a %d x %d Gemma 3 image", i,
                           v->image_size, v->image_size);
    } else if (px->kind != SP_PROC_GEMMA4 || px->patch_dim != 3 * v->patch * v->patch ||
               px->grid_h % v->pool_k || px->grid_w % v->pool_k || px->grid_w > v->pos_size ||
               px->grid_h > v->pos_size || px->grid_h <= 0 || px->grid_w <= 0) {
        return sp_fail(err, SP_EINVAL, "image %d: pixels are not Gemma 4 patches of this tower", i);
    }
    return SP_OK;
}

sp_status sp_vision_encode(sp_vision *v, const sp_pixels *const *imgs, int n, float *out,
                           sp_error *err) {
    if (n <= 0) return SP_OK;
    for (int i = 0; i < n; i++) SP_TRY(check_pixels(v, imgs[i], i, err));
    if (v->info.kind == SP_VISION_GEMMA3) return vis_siglip_encode(v, imgs, n, out, err);
    return vis_gemma4_encode(v, imgs, n, out, err);
}
