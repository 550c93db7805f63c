/* Vision towers against transformers: given transformers' own pixel values
 * (the fixture's proc_* arrays), the image features (projector output, soft
 * tokens x text hidden) match get_image_features within 1e-3 of their
 * largest magnitude in --precision f32, image by image and batched; the
 * default fast precision agrees within 2%. */
#include <math.h>

#include "check.h"
#include "vision/vision.h"
#include "vision_fixture.h"

typedef struct loaded {
    sp_pixels px[3];
    float *ref[3];
    size_t n_ref[3];
} loaded;

static int load_image(const char *dir, const json_t *ref, const sp_vision_info *vi, int i,
                      loaded *L) {
    char stem[64], key[128];
    vision_stem(stem, sizeof stem, vision_images[i]);
    size_t n = 0, n_pos = 0;
    snprintf(key, sizeof key, "proc_%s_pixel_values", stem);
    float *pv = vision_array(dir, ref, vision_images[i], key, &n);
    int32_t *pos = NULL;
    if (vi->kind == SP_VISION_GEMMA4) {
        snprintf(key, sizeof key, "proc_%s_image_position_ids", stem);
        pos = vision_array(dir, ref, vision_images[i], key, &n_pos);
    }
    sp_error err = {0};
    sp_status s = pv ? sp_pixels_import(&vi->proc, pv, n, pos, n_pos, &L->px[i], &err) : SP_EIO;
    CHECKF(s == SP_OK, "%s: %s", vision_images[i], err.msg);
    free(pv);
    free(pos);
    snprintf(key, sizeof key, "features_%s", stem);
    L->ref[i] = vision_array(dir, ref, vision_images[i], key, &L->n_ref[i]);
    return s == SP_OK && L->ref[i];
}

static void compare_tol(const char *model, const char *what, const float *mine, const float *ref,
                        size_t n, double tol) {
    double worst = 0, big = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)mine[i] - ref[i]));
        big = fmax(big, fabs((double)ref[i]));
    }
    fprintf(stderr, "%s %s: max |diff| %.3g, max |ref| %.3g (relative %.3g)\n", model, what, worst,
            big, worst / big);
    CHECKF(worst <= tol * big, "%s %s: max diff %g vs max %g", model, what, worst, big);
}

static void compare(const char *model, const char *what, const float *mine, const float *ref,
                    size_t n) {
    compare_tol(model, what, mine, ref, n, 1e-3);
}

static void run_model(const char *model, sp_precision prec) {
    char dir[1024];
    vision_dir(dir, sizeof dir, model);
    json_t *ref = vision_reference(dir);
    sp_model_opts o;
    sp_model_opts_default(&o);
    o.precision = prec;
    sp_pool *pool = sp_pool_create(2);
    sp_vision *v = NULL;
    sp_error err = {0};
    sp_ops_init();
    sp_status s = ref ? sp_vision_load(&v, dir, &o, pool, &err) : SP_EIO;
    CHECKF(s == SP_OK, "%s: %s", model, err.msg);
    loaded L = {0};
    int ok = s == SP_OK;
    for (int i = 0; ok && i < 3; i++) ok = load_image(dir, ref, sp_vision_get_info(v), i, &L);
    if (ok) {
        int Ht = sp_vision_get_info(v)->text_hidden;
        size_t total = 0;
        for (int i = 0; i < 3; i++) {
            CHECK(L.n_ref[i] == (size_t)L.px[i].n_soft * Ht);
            total += L.n_ref[i];
        }
        float *one = malloc(total * sizeof(float)), *all = malloc(total * sizeof(float));
        size_t off = 0;
        for (int i = 0; i < 3; i++) {
            const sp_pixels *p = &L.px[i];
            CHECKF(sp_vision_encode(v, &p, 1, one + off, &err) == SP_OK, "%s", err.msg);
            if (prec == SP_PREC_FAST)
                compare_tol(model, "fast precision", one + off, L.ref[i], L.n_ref[i], 0.02);
            else
                compare(model, vision_images[i], one + off, L.ref[i], L.n_ref[i]);
            off += L.n_ref[i];
        }
        const sp_pixels *batch[3] = {&L.px[0], &L.px[1], &L.px[2]};
        if (prec == SP_PREC_F32) { /* batching is checked in f32 */
            CHECKF(sp_vision_encode(v, batch, 3, all, &err) == SP_OK, "%s", err.msg);
            off = 0;
            for (int i = 0; i < 3; i++) {
                compare(model, "batched", all + off, L.ref[i], L.n_ref[i]);
                off += L.n_ref[i];
            }
        }
        free(one);
        free(all);
    }
    for (int i = 0; i < 3; i++) {
        sp_pixels_free(&L.px[i]);
        free(L.ref[i]);
    }
    sp_vision_free(v);
    sp_pool_destroy(pool);
    json_decref(ref);
}

int main(void) {
    for (int m = 0; m < 2; m++) run_model(vision_models[m], SP_PREC_F32);
    for (int m = 0; m < 2; m++) run_model(vision_models[m], SP_PREC_FAST);
    return check_summary("vision_features");
}
