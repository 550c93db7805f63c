/* Image requests through the engine (issue 20), on both vision fixtures in
 * f32 with 4-token KV blocks and 8-token prefill chunks (so chunks must
 * stretch to whole images): from the image files, every prompt gets
 * transformers' greedy ids, alone and two at once; the same request again
 * is served from the prefix cache (cached tokens past the images) with the
 * same ids; a different image at the same positions reuses nothing from
 * the first image on; an image on a model without a vision tower, and
 * images that do not sit on the prompt's soft tokens, are refused at submit. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../conformance/vision_fixture.h"
#include "base/file.h"
#include "check.h"
#include "test_device.h"
#include "engine/engine.h"
#include "model_dir.h"

typedef struct job {
    sp_engine *e;
    const int32_t *ids;
    int n, n_out, cached, images;
    sp_request_image img[4];
    int32_t out[64];
    int ok;
} job;

static void *run_job(void *arg) {
    job *j = arg;
    sp_request_params p;
    memset(&p, 0, sizeof p);
    sp_sampling_default(&p.sampling);
    p.sampling.temperature = 0;
    p.prompt = j->ids;
    p.n_prompt = j->n;
    p.max_tokens = j->n_out;
    p.ignore_eos = 1;
    p.images = j->img;
    p.n_images = j->images;
    sp_request *r = NULL;
    sp_error err = {0};
    j->ok = 0;
    if (sp_engine_submit(j->e, &p, &r, &err) != SP_OK) {
        fprintf(stderr, "submit: %s\n", err.msg);
        return NULL;
    }
    int n = 0, done = 0;
    sp_event ev;
    while (!done && sp_request_next(r, &ev, 120000)) {
        if (ev.kind == SP_EV_TOKEN && n < 64) j->out[n++] = ev.token;
        if (ev.kind == SP_EV_FINISH) {
            done = 1;
            j->cached = ev.cached_tokens;
            if (ev.reason == SP_FINISH_ERROR) fprintf(stderr, "finish: %s\n", ev.error);
            j->ok = ev.reason == SP_FINISH_LENGTH && n == j->n_out && ev.prompt_tokens == j->n;
        }
        sp_event_clear(&ev);
    }
    sp_request_release(r);
    return NULL;
}

static int pixels_of(const sp_vision_info *vi, const char *image, sp_pixels *px) {
    char path[1200];
    vision_image_path(path, sizeof path, image);
    sp_file f;
    sp_error err = {0};
    sp_image img;
    int ok = sp_file_read(&f, path, &err) == SP_OK;
    ok = ok && sp_image_decode(f.data, f.size, 0, &img, &err) == SP_OK;
    if (f.data) sp_file_close(&f);
    ok = ok && sp_image_preprocess(&vi->proc, &img, px, &err) == SP_OK;
    if (ok) sp_image_free(&img);
    CHECKF(ok, "%s: %s", image, err.msg);
    return ok;
}

typedef struct prompt_ref {
    int32_t ids[1024], greedy[64];
    int n, n_greedy, n_images;
    const char *images[4];
} prompt_ref;

static void read_prompt(const json_t *p, prompt_ref *pr) {
    const json_t *ids = json_object_get(p, "prompt_ids"), *g = json_object_get(p, "greedy_ids");
    pr->n = (int)json_array_size(ids);
    pr->n_greedy = (int)json_array_size(g);
    pr->n_images = (int)json_array_size(json_object_get(p, "images"));
    for (int i = 0; i < pr->n; i++)
        pr->ids[i] = (int32_t)json_integer_value(json_array_get(ids, i));
    for (int i = 0; i < pr->n_greedy; i++)
        pr->greedy[i] = (int32_t)json_integer_value(json_array_get(g, i));
    for (int i = 0; i < pr->n_images; i++)
        pr->images[i] = json_string_value(json_array_get(json_object_get(p, "images"), i));
}

/* A job for the prompt: image k at the k-th run of soft tokens. */
static void make_job(job *j, sp_engine *e, const prompt_ref *pr, int32_t soft, sp_pixels *px) {
    memset(j, 0, sizeof *j);
    j->e = e, j->ids = pr->ids, j->n = pr->n, j->n_out = pr->n_greedy, j->images = pr->n_images;
    for (int i = 0, k = 0; i < pr->n && k < pr->n_images; i++)
        if (pr->ids[i] == soft && (i == 0 || pr->ids[i - 1] != soft))
            j->img[k] = (sp_request_image){.pixels = &px[k], .pos = i}, k++;
}

static void run_model(const char *model) {
    char fdir[1024], dir[1200], src[1200], dst[1300];
    vision_dir(fdir, sizeof fdir, model);
    snprintf(dir, sizeof dir, "%s/test-engine-images-%s", SP_BUILD_DIR, model);
    CHECK(model_dir_byte_tokenizer(fdir, 512, dir));
    snprintf(src, sizeof src, "%s/preprocessor_config.json", fdir);
    snprintf(dst, sizeof dst, "%s/preprocessor_config.json", dir);
    unlink(dst);
    CHECK(symlink(src, dst) == 0);
    json_t *ref = vision_reference(fdir);
    sp_engine_opts o;
    sp_engine_opts_default(&o);
    o.model_path = dir;
    o.model.precision = SP_PREC_F32;
    o.model.n_threads = 2;
    test_device_opts(&o.model);
    o.parallel = 2;
    o.block_size = 4;
    o.prefill_chunk = 8;
    o.ctx_size = 640;
    sp_engine *e = NULL;
    sp_error err = {0};
    CHECKF(sp_engine_start(&e, &o, &err) == SP_OK, "%s", err.msg);
    CHECKF(sp_engine_wait_loaded(e, 60000) == SP_ENGINE_READY, "%s: %s", model,
           (sp_engine_get_state(e, &err), err.msg));
    const sp_engine_info *in = sp_engine_get_info(e);
    CHECK(in && in->vision);
    if (!in || !in->vision || !ref) {
        sp_engine_free(e);
        json_decref(ref);
        return;
    }
    prompt_ref pr[2];
    sp_pixels px[2][4];
    memset(px, 0, sizeof px);
    for (int p = 0; p < 2; p++) {
        read_prompt(json_array_get(json_object_get(ref, "prompts"), p), &pr[p]);
        for (int k = 0; k < pr[p].n_images; k++) pixels_of(in->vision, pr[p].images[k], &px[p][k]);
    }
    int32_t soft = in->vision->image_id;
    job a, b;
    for (int p = 0; p < 2; p++) { /* alone, then again from the prefix cache */
        make_job(&a, e, &pr[p], soft, px[p]);
        run_job(&a);
        CHECKF(a.ok && !memcmp(a.out, pr[p].greedy, sizeof(int32_t) * pr[p].n_greedy),
               "%s prompt %d: not transformers' greedy ids", model, p);
        run_job(&a);
        CHECKF(a.ok && !memcmp(a.out, pr[p].greedy, sizeof(int32_t) * pr[p].n_greedy),
               "%s prompt %d from the cache: other ids", model, p);
        int last = a.img[pr[p].n_images - 1].pos + px[p][pr[p].n_images - 1].n_soft;
        CHECKF(a.cached >= last - 4, "%s prompt %d: %d cached tokens, images end at %d", model, p,
               a.cached, last);
    }
    /* both prompts at once */
    make_job(&a, e, &pr[0], soft, px[0]);
    make_job(&b, e, &pr[1], soft, px[1]);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, run_job, &a);
    pthread_create(&tb, NULL, run_job, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECKF(a.ok && b.ok && !memcmp(a.out, pr[0].greedy, sizeof(int32_t) * pr[0].n_greedy) &&
               !memcmp(b.out, pr[1].greedy, sizeof(int32_t) * pr[1].n_greedy),
           "%s: batched prompts got other ids", model);
    /* prompt 0 with prompt 1's first image where the soft-token count agrees */
    if (px[1][0].n_soft == px[0][0].n_soft) {
        make_job(&a, e, &pr[0], soft, px[1]);
        a.images = 1;
        run_job(&a);
        CHECKF(a.ok && a.cached <= a.img[0].pos,
               "%s: another image reused %d cached tokens "
               "(the image starts at %d)",
               model, a.cached, a.img[0].pos);
    }
    /* images that do not sit on soft tokens */
    make_job(&a, e, &pr[0], soft, px[0]);
    a.img[0].pos += 1;
    sp_request_params p;
    memset(&p, 0, sizeof p);
    sp_sampling_default(&p.sampling);
    p.prompt = a.ids, p.n_prompt = a.n, p.images = a.img, p.n_images = 1, p.max_tokens = 1;
    sp_request *r = NULL;
    CHECK(sp_engine_submit(e, &p, &r, &err) == SP_EINVAL && strstr(err.msg, "image 0"));
    p.n_images = 0;
    (void)r;
    for (int q = 0; q < 2; q++)
        for (int k = 0; k < 4; k++) sp_pixels_free(&px[q][k]);
    sp_engine_free(e);
    json_decref(ref);
}

/* A text-only checkpoint answers images with "no vision tower". */
static void text_only(void) {
    char dir[1200], fdir[1200];
    snprintf(fdir, sizeof fdir, "%s/fixtures/qwen3", SP_SHARED_DIR);
    snprintf(dir, sizeof dir, "%s/test-engine-images-text", SP_BUILD_DIR);
    CHECK(model_dir_byte_tokenizer(fdir, 512, dir));
    sp_engine_opts o;
    sp_engine_opts_default(&o);
    o.model_path = dir;
    o.model.n_threads = 1;
    sp_engine *e = NULL;
    sp_error err = {0};
    CHECK(sp_engine_start(&e, &o, &err) == SP_OK);
    CHECK(sp_engine_wait_loaded(e, 60000) == SP_ENGINE_READY);
    const sp_engine_info *in = sp_engine_get_info(e);
    CHECK(in && !in->vision && strstr(in->vision_missing, "no vision tower"));
    sp_pixels px = {.kind = SP_PROC_GEMMA3, .n_soft = 1};
    int32_t ids[3] = {1, 2, 3};
    sp_request_image img = {.pixels = &px, .pos = 1};
    sp_request_params p;
    memset(&p, 0, sizeof p);
    sp_sampling_default(&p.sampling);
    p.prompt = ids, p.n_prompt = 3, p.images = &img, p.n_images = 1, p.max_tokens = 1;
    sp_request *r = NULL;
    CHECKF(sp_engine_submit(e, &p, &r, &err) == SP_EUNSUPPORTED && strstr(err.msg, "vision"), "%s",
           err.msg);
    sp_engine_free(e);
}

int main(void) {
    test_device_or_skip("test_engine_images");
    for (int m = 0; m < 2; m++) run_model(vision_models[m]);
    text_only();
    return check_summary("engine_images");
}
