/* The image processor's settings from the checkpoint directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "formats/json.h"
#include "media/preprocess.h"

const char *sp_proc_kind_name(sp_proc_kind k) {
    switch (k) {
    case SP_PROC_GEMMA3:
        return "Gemma 3";
    case SP_PROC_GEMMA4:
        return "Gemma 4";
    default:
        return "none";
    }
}

static sp_status kind_of(const char *type, sp_proc_kind *k, const char *ctx, sp_error *err) {
    if (!strncmp(type, "Gemma3ImageProcessor", 20))
        *k = SP_PROC_GEMMA3;
    else if (!strncmp(type, "Gemma4ImageProcessor", 20))
        *k = SP_PROC_GEMMA4;
    else
        return sp_fail(err, SP_EUNSUPPORTED, "%s: image_processor_type %s is not supported", ctx,
                       type);
    return SP_OK;
}

static sp_status read_common(sp_image_proc *p, const json_t *o, const char *ctx, sp_error *err) {
    int64_t resample;
    int rgb;
    SP_TRY(sp_json_bool(o, "do_resize", 1, 0, &p->do_resize, ctx, err));
    SP_TRY(sp_json_bool(o, "do_rescale", 1, 0, &p->do_rescale, ctx, err));
    SP_TRY(
        sp_json_bool(o, "do_normalize", p->kind == SP_PROC_GEMMA3, 0, &p->do_normalize, ctx, err));
    SP_TRY(sp_json_bool(o, "do_convert_rgb", 1, 0, &rgb, ctx, err));
    SP_TRY(sp_json_int(o, "resample", p->kind == SP_PROC_GEMMA3 ? 2 : 3, 0, &resample, ctx, err));
    if (resample != SP_FILTER_BILINEAR && resample != SP_FILTER_BICUBIC)
        return sp_fail(err, SP_EUNSUPPORTED, "%s.resample: %lld (supported: 2 bilinear, 3 bicubic)",
                       ctx, (long long)resample);
    p->resample = (sp_filter)resample;
    SP_TRY(sp_json_num(o, "rescale_factor", 1.0 / 255.0, 0, &p->rescale_factor, ctx, err));
    int n;
    double dm = p->kind == SP_PROC_GEMMA3 ? 0.5 : 0.0, ds = p->kind == SP_PROC_GEMMA3 ? 0.5 : 1.0;
    for (int c = 0; c < 3; c++) p->mean[c] = dm, p->std[c] = ds;
    if (json_object_get(o, "image_mean") && !json_is_null(json_object_get(o, "image_mean")))
        SP_TRY(sp_json_num_list(o, "image_mean", 1, p->mean, 3, 3, &n, ctx, err));
    if (json_object_get(o, "image_std") && !json_is_null(json_object_get(o, "image_std")))
        SP_TRY(sp_json_num_list(o, "image_std", 1, p->std, 3, 3, &n, ctx, err));
    for (int c = 0; c < 3; c++)
        if (p->do_normalize && p->std[c] == 0.0)
            return sp_fail(err, SP_EFORMAT, "%s.image_std[%d] is 0", ctx, c);
    return SP_OK;
}

static sp_status read_gemma3(sp_image_proc *p, const json_t *o, const char *ctx, sp_error *err) {
    const json_t *size;
    int pas;
    SP_TRY(sp_json_obj(o, "size", 0, &size, ctx, err));
    int64_t h, w;
    SP_TRY(sp_json_int_range(size, "height", 896, 0, 1, 8192, &h, ctx, err));
    SP_TRY(sp_json_int_range(size, "width", 896, 0, 1, 8192, &w, ctx, err));
    p->size_h = (int)h, p->size_w = (int)w;
    SP_TRY(sp_json_bool(o, "do_pan_and_scan", 0, 0, &pas, ctx, err));
    if (pas)
        return sp_fail(err, SP_EUNSUPPORTED,
                       "%s: do_pan_and_scan is true; pan-and-scan crops are not implemented", ctx);
    return SP_OK;
}

static sp_status read_gemma4(sp_image_proc *p, const json_t *o, const char *ctx, sp_error *err) {
    int64_t patch, k, soft;
    SP_TRY(sp_json_int_range(o, "patch_size", 16, 0, 1, 64, &patch, ctx, err));
    SP_TRY(sp_json_int_range(o, "pooling_kernel_size", 3, 0, 1, 8, &k, ctx, err));
    SP_TRY(sp_json_int(o, "max_soft_tokens", 280, 0, &soft, ctx, err));
    if (soft != 70 && soft != 140 && soft != 280 && soft != 560 && soft != 1120)
        return sp_fail(err, SP_EFORMAT,
                       "%s.max_soft_tokens: %lld (transformers allows 70, 140, 280, 560, 1120)",
                       ctx, (long long)soft);
    p->patch = (int)patch, p->pool_k = (int)k, p->max_soft_tokens = (int)soft;
    return SP_OK;
}

/* The processor object: preprocessor_config.json itself, or
 * processor_config.json's "image_processor" member. */
static sp_status open_config(json_t **root, const json_t **obj, char *ctx, size_t cap,
                             const char *dir, sp_error *err) {
    const char *names[] = {"preprocessor_config.json", "processor_config.json"};
    for (int i = 0; i < 2; i++) {
        char *path = sp_path_join(dir, names[i]);
        if (!path) return sp_fail(err, SP_ENOMEM, "path");
        int exists = sp_path_exists(path);
        snprintf(ctx, cap, "%s", path);
        sp_status s = exists ? sp_json_load_file(root, path, err) : SP_ENOTFOUND;
        free(path);
        if (!exists) continue;
        SP_TRY(s);
        *obj = *root;
        const json_t *ip = json_object_get(*root, "image_processor");
        if (json_is_object(ip)) {
            *obj = ip;
            size_t n = strlen(ctx);
            snprintf(ctx + n, cap - n, ":image_processor");
        }
        return SP_OK;
    }
    return sp_fail(err, SP_ENOTFOUND, "%s: no preprocessor_config.json or processor_config.json",
                   dir);
}

sp_status sp_image_proc_load(sp_image_proc *p, const char *dir, sp_error *err) {
    memset(p, 0, sizeof *p);
    json_t *root = NULL;
    const json_t *o = NULL;
    char ctx[1024];
    SP_TRY(open_config(&root, &o, ctx, sizeof ctx, dir, err));
    const char *type;
    sp_status s = sp_json_str(o, "image_processor_type", NULL, 1, &type, ctx, err);
    if (s == SP_OK) s = kind_of(type, &p->kind, ctx, err);
    if (s == SP_OK) s = read_common(p, o, ctx, err);
    if (s == SP_OK)
        s = p->kind == SP_PROC_GEMMA3 ? read_gemma3(p, o, ctx, err) : read_gemma4(p, o, ctx, err);
    json_decref(root);
    if (s != SP_OK) p->kind = SP_PROC_NONE;
    return s;
}
