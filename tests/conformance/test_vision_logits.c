/* Image prompts against transformers, for both prompts of both fixture
 * models in --precision f32: with transformers' pixel values, the logits of
 * every prompt position are within 1e-3 x max(1, max|ref|) and the 16
 * greedy ids (decoded through the KV cache) are identical; the same prompt
 * fed in two chunks split at an image's end gives the same logits; and from
 * the image files themselves (Spindle's decoding and preprocessing) the
 * greedy ids are identical too. */
#include <math.h>

#include "check.h"
#include "test_device.h"
#include "model/seq.h"
#include "vision/vision.h"
#include "vision_fixture.h"

typedef struct prompt {
    int32_t ids[2048];
    int n, n_greedy, n_images;
    int32_t greedy[64];
    const char *images[4];
    float *logits; /* [n][vocab] */
} prompt;

static int read_prompt(const char *dir, const json_t *p, int idx, prompt *pr) {
    const json_t *ids = json_object_get(p, "prompt_ids"), *g = json_object_get(p, "greedy_ids");
    const json_t *im = json_object_get(p, "images");
    pr->n = (int)json_array_size(ids);
    pr->n_greedy = (int)json_array_size(g);
    pr->n_images = (int)json_array_size(im);
    if (pr->n > 2048 || pr->n_greedy > 64 || pr->n_images > 4) return 0;
    for (int i = 0; i < pr->n; i++)
        pr->ids[i] = (int32_t)json_integer_value(json_array_get(ids, i));
    for (int i = 0; i < pr->n_greedy; i++)
        pr->greedy[i] = (int32_t)json_integer_value(json_array_get(g, i));
    for (int i = 0; i < pr->n_images; i++) pr->images[i] = json_string_value(json_array_get(im, i));
    char key[32];
    snprintf(key, sizeof key, "logits_prompt%d", idx);
    const json_t *e = json_object_get(p, key);
    pr->logits = vision_read(dir, json_string_value(json_object_get(e, "file")), vision_numel(e));
    return pr->logits != NULL;
}

/* Pixels per image: transformers' (proc_*) or from the image file. */
static int make_pixels(const char *dir, const json_t *ref, const sp_vision_info *vi,
                       const char *image, int from_file, sp_pixels *px) {
    sp_error err = {0};
    sp_status s;
    if (from_file) {
        char path[1200];
        vision_image_path(path, sizeof path, image);
        FILE *f = fopen(path, "rb");
        uint8_t *buf = malloc(1 << 20);
        size_t n = f && buf ? fread(buf, 1, 1 << 20, f) : 0;
        if (f) fclose(f);
        sp_image img;
        s = sp_image_decode(buf, n, 0, &img, &err);
        free(buf);
        if (s == SP_OK) s = sp_image_preprocess(&vi->proc, &img, px, &err);
        if (s == SP_OK) sp_image_free(&img);
    } else {
        char stem[64], key[128];
        vision_stem(stem, sizeof stem, image);
        size_t n = 0, n_pos = 0;
        snprintf(key, sizeof key, "proc_%s_pixel_values", stem);
        float *pv = vision_array(dir, ref, image, key, &n);
        int32_t *pos = NULL;
        snprintf(key, sizeof key, "proc_%s_image_position_ids", stem);
        if (vi->kind == SP_VISION_GEMMA4) pos = vision_array(dir, ref, image, key, &n_pos);
        s = pv ? sp_pixels_import(&vi->proc, pv, n, pos, n_pos, px, &err) : SP_EIO;
        free(pv);
        free(pos);
    }
    CHECKF(s == SP_OK, "%s: %s", image, err.msg);
    return s == SP_OK;
}

/* Spans over the prompt's runs of image tokens, features image by image. */
static int make_spans(sp_vision *v, const prompt *pr, sp_pixels *px, float *feats,
                      sp_media_span *spans) {
    const sp_vision_info *vi = sp_vision_get_info(v);
    const sp_pixels *list[4];
    for (int k = 0; k < pr->n_images; k++) list[k] = &px[k];
    sp_error err = {0};
    if (sp_vision_encode(v, list, pr->n_images, feats, &err) != SP_OK) {
        CHECKF(0, "%s", err.msg);
        return 0;
    }
    int k = 0;
    const float *f = feats;
    for (int i = 0; i < pr->n && k < pr->n_images; i++) {
        if (pr->ids[i] != vi->image_id || (i > 0 && pr->ids[i - 1] == vi->image_id)) continue;
        spans[k] = (sp_media_span){.pos = i, .n = px[k].n_soft, .embd = f};
        f += (size_t)px[k].n_soft * vi->text_hidden;
        k++;
    }
    CHECK(k == pr->n_images);
    return k == pr->n_images;
}

static void greedy(sp_model *m, const prompt *pr, const sp_media_span *spans, const char *what) {
    int V = sp_model_get_desc(m)->vocab;
    float *row = malloc((size_t)V * sizeof(float));
    sp_seq seq;
    sp_error err = {0};
    int32_t out[64];
    sp_status s = sp_seq_init(&seq, m, pr->n + pr->n_greedy, &err);
    if (s == SP_OK)
        s = sp_seq_feed_media(&seq, m, pr->ids, pr->n, spans, pr->n_images, SP_LOGITS_LAST, row,
                              &err);
    for (int i = 0; s == SP_OK && i < pr->n_greedy; i++) {
        out[i] = sp_argmax(row, V);
        if (i + 1 < pr->n_greedy) s = sp_seq_feed(&seq, m, &out[i], 1, SP_LOGITS_LAST, row, &err);
    }
    CHECKF(s == SP_OK, "%s: %s", what, err.msg);
    int same = s == SP_OK && !memcmp(out, pr->greedy, (size_t)pr->n_greedy * sizeof(int32_t));
    CHECKF(same, "%s: greedy ids differ from transformers'", what);
    if (s == SP_OK) sp_seq_free(&seq);
    free(row);
}

static double logits_err(const float *a, const float *b, size_t n, double *big) {
    double worst = 0;
    *big = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - b[i]));
        *big = fmax(*big, fabs((double)b[i]));
    }
    return worst;
}

static void run_prompt(const char *model, const char *dir, const json_t *ref, sp_model *m,
                       sp_vision *v, int idx) {
    prompt *pr = calloc(1, sizeof *pr);
    if (!read_prompt(dir, json_array_get(json_object_get(ref, "prompts"), idx), idx, pr)) {
        CHECKF(0, "%s prompt %d: cannot read", model, idx);
        free(pr);
        return;
    }
    const sp_vision_info *vi = sp_vision_get_info(v);
    int V = sp_model_get_desc(m)->vocab;
    float *feats = malloc((size_t)pr->n * vi->text_hidden * sizeof(float));
    float *logits = malloc((size_t)pr->n * V * sizeof(float));
    sp_pixels px[4] = {0};
    sp_media_span spans[4];
    char what[128];
    for (int from_file = 0; from_file < 2; from_file++) {
        int ok = 1;
        for (int k = 0; ok && k < pr->n_images; k++)
            ok = make_pixels(dir, ref, vi, pr->images[k], from_file, &px[k]);
        ok = ok && make_spans(v, pr, px, feats, spans);
        snprintf(what, sizeof what, "%s prompt %d (%s pixels)", model, idx,
                 from_file ? "Spindle's" : "transformers'");
        if (ok && !from_file) {
            sp_seq seq;
            sp_error err = {0};
            CHECK(sp_seq_init(&seq, m, pr->n, &err) == SP_OK);
            CHECK(sp_seq_feed_media(&seq, m, pr->ids, pr->n, spans, pr->n_images, SP_LOGITS_ALL,
                                    logits, &err) == SP_OK);
            sp_seq_free(&seq);
            double big, e = logits_err(logits, pr->logits, (size_t)pr->n * V, &big);
            fprintf(stderr, "%s: logits max |diff| %.3g (max |ref| %.3g)\n", what, e, big);
            CHECKF(e <= 1e-3 * fmax(1.0, big), "%s: logits differ by %g", what, e);
            /* two chunks, the first ending where the first image ends */
            int cut = spans[0].pos + spans[0].n;
            CHECK(sp_seq_init(&seq, m, pr->n, &err) == SP_OK);
            sp_status s = sp_seq_feed_media(&seq, m, pr->ids, cut, spans, pr->n_images,
                                            SP_LOGITS_ALL, logits, &err);
            if (s == SP_OK)
                s = sp_seq_feed_media(&seq, m, pr->ids + cut, pr->n - cut, spans, pr->n_images,
                                      SP_LOGITS_ALL, logits + (size_t)cut * V, &err);
            CHECKF(s == SP_OK, "%s", err.msg);
            sp_seq_free(&seq);
            e = logits_err(logits, pr->logits, (size_t)pr->n * V, &big);
            CHECKF(e <= 1e-3 * fmax(1.0, big), "%s in two chunks: logits differ by %g", what, e);
            /* a chunk that ends inside an image is refused (its attention is bidirectional) */
            CHECK(sp_seq_init(&seq, m, pr->n, &err) == SP_OK);
            s = sp_seq_feed_media(&seq, m, pr->ids, spans[0].pos + 2, spans, pr->n_images,
                                  SP_LOGITS_LAST, logits, &err);
            CHECKF(s == SP_EINVAL && strstr(err.msg, "bidirectional"), "%d %s", s, err.msg);
            sp_seq_free(&seq);
        }
        if (ok) greedy(m, pr, spans, what);
        for (int k = 0; k < pr->n_images; k++) sp_pixels_free(&px[k]);
    }
    free(feats);
    free(logits);
    free(pr->logits);
    free(pr);
}

/* The mask is what transformers builds: causal-only logits (no image
 * bidirectionality) and, for Gemma 4, bidirectional full layers too, both
 * miss the reference by far more than the tolerance. */
static void mask_variants(const char *model, const char *dir, const json_t *ref, sp_model *m,
                          sp_vision *v) {
    sp_model_desc *d = (sp_model_desc *)sp_model_get_desc(m); /* test-only: flip the flags */
    int keep[64];
    for (int i = 0; i < d->n_layers && i < 64; i++) keep[i] = d->layers[i].media_bidir;
    for (int variant = 0; variant < 2; variant++) {
        if (variant == 1 && !strcmp(model, "gemma3_vision")) break; /* Gemma 3 has all already */
        for (int i = 0; i < d->n_layers && i < 64; i++) d->layers[i].media_bidir = variant;
        prompt *pr = calloc(1, sizeof *pr);
        const json_t *pj = json_array_get(json_object_get(ref, "prompts"), 0);
        const sp_vision_info *vi = sp_vision_get_info(v);
        int V = sp_model_get_desc(m)->vocab, ok = read_prompt(dir, pj, 0, pr);
        float *feats = malloc((size_t)pr->n * vi->text_hidden * sizeof(float));
        float *logits = malloc((size_t)pr->n * V * sizeof(float));
        sp_pixels px[4] = {0};
        sp_media_span spans[4];
        for (int k = 0; ok && k < pr->n_images; k++)
            ok = make_pixels(dir, ref, vi, pr->images[k], 0, &px[k]);
        ok = ok && make_spans(v, pr, px, feats, spans);
        sp_seq seq;
        sp_error err = {0};
        if (ok && sp_seq_init(&seq, m, pr->n, &err) == SP_OK) {
            CHECK(sp_seq_feed_media(&seq, m, pr->ids, pr->n, spans, pr->n_images, SP_LOGITS_ALL,
                                    logits, &err) == SP_OK);
            sp_seq_free(&seq);
            double big, e = logits_err(logits, pr->logits, (size_t)pr->n * V, &big);
            double effect = json_real_value(json_object_get(pj, "bidirectional_effect_max_abs"));
            fprintf(stderr, "%s with %s: logits max |diff| %.3g (bidirectional effect %.3g)\n",
                    model, variant ? "every layer bidirectional" : "causal attention only", e,
                    effect);
            CHECKF(e > 1e-3 * fmax(1.0, big) * 10, "%s variant %d should not match", model,
                   variant);
        }
        for (int k = 0; k < pr->n_images; k++) sp_pixels_free(&px[k]);
        free(feats);
        free(logits);
        free(pr->logits);
        free(pr);
    }
    for (int i = 0; i < d->n_layers && i < 64; i++) d->layers[i].media_bidir = keep[i];
}

int main(void) {
    test_device_or_skip("test_vision_logits");
    for (int mi = 0; mi < 2; mi++) {
        char dir[1024];
        vision_dir(dir, sizeof dir, vision_models[mi]);
        json_t *ref = vision_reference(dir);
        sp_model_opts o;
        sp_model_opts_default(&o);
        o.precision = SP_PREC_F32;
        test_device_opts(&o);
        o.n_threads = 2;
        sp_model *m = NULL;
        sp_vision *v = NULL;
        sp_error err = {0};
        sp_status s = ref ? sp_model_load(&m, dir, &o, &err) : SP_EIO;
        if (s == SP_OK) s = sp_vision_load(&v, dir, &o, sp_model_pool(m), &err);
        CHECKF(s == SP_OK, "%s: %s", vision_models[mi], err.msg);
        CHECK(s != SP_OK || sp_model_media_bidir(m));
        for (int p = 0; s == SP_OK && p < 2; p++) run_prompt(vision_models[mi], dir, ref, m, v, p);
        if (s == SP_OK) mask_variants(vision_models[mi], dir, ref, m, v);
        sp_vision_free(v);
        sp_model_free(m);
        json_decref(ref);
    }
    return check_summary("vision_logits");
}
