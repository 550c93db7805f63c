/* Preprocessing against transformers: for every fixture image and both
 * models, the pixel tensor Spindle makes from the image file matches the
 * default (torchvision) processor's within one 8-bit step per value, with a
 * mean difference under a tenth of a step, and the soft-token counts (and
 * Gemma 4's position ids) are identical. */
#include <math.h>

#include "base/file.h"
#include "check.h"
#include "media/preprocess.h"
#include "vision_fixture.h"

static int64_t config_int(const char *dir, const char *key) {
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *c = json_load_file(path, 0, NULL);
    int64_t v = c ? json_integer_value(json_object_get(c, key)) : 0;
    json_decref(c);
    return v;
}

static void check_image(const char *model, const char *dir, const json_t *ref,
                        const sp_image_proc *p, const char *image) {
    char path[1200], stem[64], key[128];
    vision_image_path(path, sizeof path, image);
    vision_stem(stem, sizeof stem, image);
    sp_file f;
    sp_error err = {0};
    sp_image img;
    sp_pixels px;
    CHECK(sp_file_read(&f, path, &err) == SP_OK);
    sp_status s = sp_image_decode(f.data, f.size, 0, &img, &err);
    CHECKF(s == SP_OK, "%s: %s", image, err.msg);
    sp_file_close(&f);
    if (s != SP_OK) return;
    s = sp_image_preprocess(p, &img, &px, &err);
    CHECKF(s == SP_OK, "%s %s: %s", model, image, err.msg);
    sp_image_free(&img);
    if (s != SP_OK) return;
    float *mine;
    size_t n_mine = 0, n_ref = 0;
    CHECK(sp_pixels_export(p, &px, &mine, &n_mine, &err) == SP_OK);
    snprintf(key, sizeof key, "proc_%s_pixel_values", stem);
    float *ref_px = vision_array(dir, ref, image, key, &n_ref);
    const json_t *im = json_object_get(json_object_get(ref, "images"), image);
    int n_soft = (int)json_integer_value(json_object_get(im, "n_soft_tokens"));
    CHECKF(px.n_soft == n_soft, "%s %s: %d soft tokens, transformers %d", model, image, px.n_soft,
           n_soft);
    CHECKF(ref_px && n_ref == n_mine, "%s %s: %zu values, transformers %zu", model, image, n_mine,
           n_ref);
    if (ref_px && n_ref == n_mine) {
        double step = p->do_normalize ? p->rescale_factor / p->std[0] : p->rescale_factor;
        double worst = 0, sum = 0;
        size_t exact = 0;
        for (size_t i = 0; i < n_ref; i++) {
            double d = fabs((double)mine[i] - ref_px[i]) / step;
            worst = d > worst ? d : worst;
            sum += d;
            exact += mine[i] == ref_px[i];
        }
        fprintf(stderr, "%s %s: max %.4f steps, mean %.6f steps, %zu of %zu bit-exact\n", model,
                image, worst, sum / n_ref, exact, n_ref);
        CHECKF(worst <= 1.0 + 1e-6, "%s %s: max diff %.3f steps", model, image, worst);
        CHECKF(sum / n_ref < 0.1, "%s %s: mean diff %.4f steps", model, image, sum / n_ref);
    }
    if (px.kind == SP_PROC_GEMMA4) {
        snprintf(key, sizeof key, "proc_%s_image_position_ids", stem);
        size_t n_pos = 0;
        int32_t *pos = vision_array(dir, ref, image, key, &n_pos);
        sp_pixels back;
        /* the position ids describe the grid Spindle chose */
        s = pos ? sp_pixels_import(p, ref_px, n_ref, pos, n_pos, &back, &err) : SP_EINVAL;
        CHECKF(s == SP_OK, "%s %s: %s", model, image, err.msg);
        if (s == SP_OK) {
            CHECK(back.grid_h == px.grid_h && back.grid_w == px.grid_w);
            sp_pixels_free(&back);
        }
        free(pos);
    }
    free(ref_px);
    free(mine);
    sp_pixels_free(&px);
}

int main(void) {
    for (size_t m = 0; m < 2; m++) {
        char dir[1024];
        vision_dir(dir, sizeof dir, vision_models[m]);
        json_t *ref = vision_reference(dir);
        CHECK(ref != NULL);
        if (!ref) continue;
        sp_image_proc p;
        sp_error err = {0};
        sp_status s = sp_image_proc_load(&p, dir, &err);
        CHECKF(s == SP_OK, "%s", err.msg);
        p.soft_tokens = (int)config_int(dir, "mm_tokens_per_image");
        for (size_t i = 0; s == SP_OK && i < 3; i++)
            check_image(vision_models[m], dir, ref, &p, vision_images[i]);
        json_decref(ref);
    }
    return check_summary("vision_pixels");
}
