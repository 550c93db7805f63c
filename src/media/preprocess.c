/* Gemma 3 and Gemma 4 image preprocessing (preprocess.h). The arithmetic
 * follows transformers' torchvision backend: rescale and normalise fused
 * into (x - mean/r) / (std/r) in float32 when both are on, plain
 * float32(x) * float32(r) otherwise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "media/preprocess.h"

void sp_pixels_free(sp_pixels *px) {
    if (!px) return;
    free(px->data);
    memset(px, 0, sizeof *px);
}

void sp_pixels_hash(sp_pixels *px) {
    int32_t dims[6] = {px->kind, px->n_views, px->height, px->width, px->grid_h, px->grid_w};
    uint64_t seed = XXH3_64bits(dims, sizeof dims);
    px->hash = XXH3_64bits_withSeed(px->data, px->n_floats * sizeof(float), seed);
    if (px->hash == 0) px->hash = 1; /* 0 means "no image" in cache keys */
}

sp_status sp_pixels_copy(sp_pixels *dst, const sp_pixels *src, sp_error *err) {
    *dst = *src;
    dst->data = malloc(src->n_floats * sizeof(float));
    if (!dst->data) {
        memset(dst, 0, sizeof *dst);
        return sp_fail(err, SP_ENOMEM, "no memory for a copy of the image pixels");
    }
    memcpy(dst->data, src->data, src->n_floats * sizeof(float));
    return SP_OK;
}

/* Per-channel float32 affine map of 8-bit values: out = (x - sub) / div or
 * x * mul, the forms transformers computes. */
typedef struct value_map {
    int fused; /* (x - sub[c]) / div[c] */
    float sub[3], div[3], mul;
} value_map;

static value_map make_map(const sp_image_proc *p) {
    value_map m = {.mul = 1.0f};
    for (int c = 0; c < 3; c++) m.sub[c] = 0.0f, m.div[c] = 1.0f;
    if (p->do_normalize) {
        double r = p->do_rescale ? 1.0 / p->rescale_factor : 1.0;
        m.fused = 1;
        for (int c = 0; c < 3; c++)
            m.sub[c] = (float)(p->mean[c] * r), m.div[c] = (float)(p->std[c] * r);
    } else if (p->do_rescale) {
        m.mul = (float)p->rescale_factor;
    }
    return m;
}

static float map_value(const value_map *m, uint8_t x, int c) {
    return m->fused ? ((float)x - m->sub[c]) / m->div[c] : (float)x * m->mul;
}

/* Resizes img to th x tw (or copies when no resize is asked for). */
static sp_status resized(const sp_image_proc *p, const sp_image *img, int th, int tw, uint8_t **out,
                         sp_error *err) {
    *out = malloc((size_t)th * tw * 3);
    if (!*out) return sp_fail(err, SP_ENOMEM, "no memory for a %d x %d image", tw, th);
    sp_status s = sp_resize_rgb(img->rgb, img->width, img->height, *out, tw, th, p->resample, err);
    if (s != SP_OK) {
        free(*out);
        *out = NULL;
    }
    return s;
}

static sp_status gemma3(const sp_image_proc *p, const sp_image *img, sp_pixels *out,
                        sp_error *err) {
    int h = p->do_resize ? p->size_h : img->height, w = p->do_resize ? p->size_w : img->width;
    uint8_t *rgb;
    SP_TRY(resized(p, img, h, w, &rgb, err));
    out->n_floats = (size_t)3 * h * w;
    out->data = malloc(out->n_floats * sizeof(float));
    if (!out->data) {
        free(rgb);
        return sp_fail(err, SP_ENOMEM, "no memory for the pixel tensor");
    }
    value_map m = make_map(p);
    size_t plane = (size_t)h * w;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) out->data[c * plane + i] = map_value(&m, rgb[i * 3 + c], c);
    free(rgb);
    out->kind = SP_PROC_GEMMA3;
    out->n_views = 1, out->height = h, out->width = w;
    out->n_soft = p->soft_tokens;
    return SP_OK;
}

sp_status sp_gemma4_target_size(const sp_image_proc *p, int h, int w, int *th, int *tw,
                                sp_error *err) {
    int64_t k2 = (int64_t)p->pool_k * p->pool_k, max_patches = (int64_t)p->max_soft_tokens * k2;
    int64_t target_px = max_patches * p->patch * p->patch, side = (int64_t)p->pool_k * p->patch;
    double f = sqrt((double)target_px / ((double)h * (double)w));
    int64_t H = (int64_t)floor(f * h / (double)side) * side;
    int64_t W = (int64_t)floor(f * w / (double)side) * side;
    int64_t max_side = (max_patches / k2) * side;
    if (H == 0 && W == 0)
        return sp_fail(err, SP_EINVAL, "an image of %d x %d pixels resizes to nothing", w, h);
    if (H == 0) {
        H = side;
        W = (int64_t)floor((double)w / h) * side;
        if (W > max_side) W = max_side;
    } else if (W == 0) {
        W = side;
        H = (int64_t)floor((double)h / w) * side;
        if (H > max_side) H = max_side;
    }
    if (H * W > target_px)
        return sp_fail(err, SP_EINVAL, "an image of %d x %d pixels exceeds the patch budget", w, h);
    *th = (int)H, *tw = (int)W;
    return SP_OK;
}

/* Patch n = row * grid_w + col; inside a patch (py, px, c), channel fastest. */
static void patchify(const uint8_t *rgb, int th, int tw, int patch, const value_map *m,
                     float *out) {
    int gw = tw / patch, gh = th / patch, dim = patch * patch * 3;
    for (int r = 0; r < gh; r++)
        for (int col = 0; col < gw; col++) {
            float *o = out + ((size_t)r * gw + col) * dim;
            for (int py = 0; py < patch; py++) {
                const uint8_t *src =
                    rgb + ((size_t)(r * patch + py) * tw + (size_t)col * patch) * 3;
                for (int i = 0; i < patch * 3; i++)
                    o[py * patch * 3 + i] = map_value(m, src[i], i % 3);
            }
        }
}

static sp_status gemma4(const sp_image_proc *p, const sp_image *img, sp_pixels *out,
                        sp_error *err) {
    int th = img->height, tw = img->width;
    if (p->do_resize) SP_TRY(sp_gemma4_target_size(p, img->height, img->width, &th, &tw, err));
    if (th % (p->patch * p->pool_k) || tw % (p->patch * p->pool_k))
        return sp_fail(err, SP_EINVAL, "image of %d x %d is not a multiple of %d pixels", tw, th,
                       p->patch * p->pool_k);
    uint8_t *rgb;
    SP_TRY(resized(p, img, th, tw, &rgb, err));
    out->grid_h = th / p->patch, out->grid_w = tw / p->patch;
    out->patch_dim = p->patch * p->patch * 3;
    out->n_floats = (size_t)out->grid_h * out->grid_w * out->patch_dim;
    out->data = malloc(out->n_floats * sizeof(float));
    if (!out->data) {
        free(rgb);
        return sp_fail(err, SP_ENOMEM, "no memory for the pixel tensor");
    }
    value_map m = make_map(p);
    patchify(rgb, th, tw, p->patch, &m, out->data);
    free(rgb);
    out->kind = SP_PROC_GEMMA4;
    out->n_views = 1;
    out->n_soft = out->grid_h * out->grid_w / (p->pool_k * p->pool_k);
    return SP_OK;
}

sp_status sp_image_preprocess(const sp_image_proc *p, const sp_image *img, sp_pixels *out,
                              sp_error *err) {
    memset(out, 0, sizeof *out);
    sp_status s;
    if (p->kind == SP_PROC_GEMMA3)
        s = gemma3(p, img, out, err);
    else if (p->kind == SP_PROC_GEMMA4)
        s = gemma4(p, img, out, err);
    else
        s = sp_fail(err, SP_EUNSUPPORTED, "the model has no image processor");
    if (s == SP_OK)
        sp_pixels_hash(out);
    else
        sp_pixels_free(out);
    return s;
}
