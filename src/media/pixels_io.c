/* Pixel tensors in transformers' processor layout, for the CLI's --pixels
 * (export) and --pixels-in (import) files. */
#include <stdlib.h>
#include <string.h>

#include "media/preprocess.h"

static size_t gemma4_max_patches(const sp_image_proc *p) {
    return (size_t)p->max_soft_tokens * p->pool_k * p->pool_k;
}

sp_status sp_pixels_export(const sp_image_proc *p, const sp_pixels *px, float **out, size_t *n,
                           sp_error *err) {
    size_t total = px->n_floats;
    if (px->kind == SP_PROC_GEMMA4) {
        size_t maxp = gemma4_max_patches(p), have = (size_t)px->grid_h * px->grid_w;
        if (have > maxp) maxp = have;
        total = maxp * px->patch_dim;
    }
    *out = calloc(total ? total : 1, sizeof(float));
    if (!*out) return sp_fail(err, SP_ENOMEM, "no memory for the pixel tensor");
    memcpy(*out, px->data, px->n_floats * sizeof(float));
    *n = total;
    return SP_OK;
}

static sp_status import_gemma3(const sp_image_proc *p, const float *data, size_t n, sp_pixels *out,
                               sp_error *err) {
    size_t want = (size_t)3 * p->size_h * p->size_w;
    if (n != want)
        return sp_fail(err, SP_EINVAL,
                       "pixel values: %zu floats, but the processor makes [1, 3, %d, %d] = %zu", n,
                       p->size_h, p->size_w, want);
    out->kind = SP_PROC_GEMMA3;
    out->n_views = 1, out->height = p->size_h, out->width = p->size_w;
    out->n_soft = p->soft_tokens;
    out->n_floats = n;
    return SP_OK;
}

/* The grid the position ids describe: real patches first, row-major. */
static sp_status grid_of(const sp_image_proc *p, const int32_t *pos, size_t rows, int *gh, int *gw,
                         sp_error *err) {
    size_t real = 0;
    int mx = -1, my = -1;
    while (real < rows && pos[real * 2] >= 0) {
        if (pos[real * 2] > mx) mx = pos[real * 2];
        if (pos[real * 2 + 1] > my) my = pos[real * 2 + 1];
        real++;
    }
    for (size_t i = real; i < rows; i++)
        if (pos[i * 2] >= 0 || pos[i * 2 + 1] >= 0)
            return sp_fail(err, SP_EINVAL, "position ids: a real patch (row %zu) after padding", i);
    if (real == 0 || (size_t)(mx + 1) * (size_t)(my + 1) != real)
        return sp_fail(err, SP_EINVAL, "position ids: %zu real patches do not form a %d x %d grid",
                       real, my + 1, mx + 1);
    for (size_t i = 0; i < real; i++)
        if (pos[i * 2] != (int32_t)(i % (size_t)(mx + 1)) ||
            pos[i * 2 + 1] != (int32_t)(i / (size_t)(mx + 1)))
            return sp_fail(err, SP_EINVAL, "position ids: row %zu is not in row-major order", i);
    if ((mx + 1) % p->pool_k || (my + 1) % p->pool_k)
        return sp_fail(err, SP_EINVAL, "position ids: a %d x %d grid is not a multiple of %d",
                       my + 1, mx + 1, p->pool_k);
    *gh = my + 1, *gw = mx + 1;
    return SP_OK;
}

static sp_status import_gemma4(const sp_image_proc *p, const float *data, size_t n,
                               const int32_t *pos, size_t n_pos, sp_pixels *out, sp_error *err) {
    size_t dim = (size_t)p->patch * p->patch * 3;
    if (!pos)
        return sp_fail(err, SP_EINVAL,
                       "Gemma 4 pixel values need their position ids "
                       "(--positions-in, the processor's image_position_ids)");
    if (n % dim || n_pos != n / dim * 2)
        return sp_fail(err, SP_EINVAL,
                       "pixel values: %zu floats and %zu position ids do not form [N, %zu] and "
                       "[N, 2]",
                       n, n_pos, dim);
    int gh = 0, gw = 0;
    SP_TRY(grid_of(p, pos, n / dim, &gh, &gw, err));
    out->kind = SP_PROC_GEMMA4;
    out->n_views = 1, out->grid_h = gh, out->grid_w = gw, out->patch_dim = (int)dim;
    out->n_soft = gh * gw / (p->pool_k * p->pool_k);
    out->n_floats = (size_t)gh * gw * dim;
    (void)data;
    return SP_OK;
}

sp_status sp_pixels_import(const sp_image_proc *p, const float *data, size_t n, const int32_t *pos,
                           size_t n_pos, sp_pixels *out, sp_error *err) {
    memset(out, 0, sizeof *out);
    sp_status s;
    if (p->kind == SP_PROC_GEMMA3)
        s = import_gemma3(p, data, n, out, err);
    else if (p->kind == SP_PROC_GEMMA4)
        s = import_gemma4(p, data, n, pos, n_pos, out, err);
    else
        s = sp_fail(err, SP_EUNSUPPORTED, "the model has no image processor");
    if (s != SP_OK) {
        memset(out, 0, sizeof *out);
        return s;
    }
    out->data = malloc(out->n_floats * sizeof(float));
    if (!out->data) return sp_fail(err, SP_ENOMEM, "no memory for the pixel tensor");
    memcpy(out->data, data, out->n_floats * sizeof(float));
    sp_pixels_hash(out);
    return SP_OK;
}
