/* spindle image --model P (--image F | --pixels-in F.f32 [--positions-in F.i32])
 *               [--pixels OUT.f32] [--features OUT.f32]
 * Runs one image through the model's image processor and vision tower:
 * --pixels writes the preprocessed tensor in the layout transformers'
 * processor returns (float32; Gemma 3 [1, 3, H, W], Gemma 4 [max_patches,
 * 768] zero-padded), --features the projector's output (soft tokens x text
 * hidden, float32). Prints a JSON summary. Loads only the vision tower. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/media.h"

static void usage(FILE *f) {
    fprintf(
        f, "usage: spindle image --model DIR (--image F | --pixels-in F.f32 [--positions-in "
           "F.i32]) [--pixels OUT.f32] [--features OUT.f32] [options]\n"
           "  --pixels OUT.f32      write the preprocessed pixel values (processor layout)\n"
           "  --features OUT.f32    write the image features (soft tokens x text hidden)\n"
           "  --positions-in F.i32  Gemma 4: image_position_ids for --pixels-in\n" MODEL_OPTS_HELP);
}

static sp_status run(const char *model, const sp_model_opts *o, const cli_images *im,
                     const char *pix_out, const char *feat_out, sp_error *err) {
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    sp_ops_init();
    sp_pool *pool = sp_pool_create(o->n_threads > 0 ? o->n_threads : nproc > 0 ? (int)nproc : 1);
    if (!pool) return sp_fail(err, SP_ENOMEM, "compute threads");
    cli_media cm;
    sp_status s = cli_media_load(&cm, model, o, pool, im, err);
    const sp_vision_info *vi = s == SP_OK ? sp_vision_get_info(cm.vision) : NULL;
    float *px = NULL;
    size_t n_px = 0;
    if (s == SP_OK) s = sp_pixels_export(&vi->proc, &cm.px[0], &px, &n_px, err);
    if (s == SP_OK && pix_out && !cli_write_f32(pix_out, px, n_px))
        s = sp_fail(err, SP_EIO, "%s: cannot write", pix_out);
    int32_t *ids = NULL;
    int n_soft = s == SP_OK ? cm.px[0].n_soft : 0;
    if (s == SP_OK && !(ids = malloc((size_t)n_soft * sizeof *ids)))
        s = sp_fail(err, SP_ENOMEM, "image");
    for (int i = 0; s == SP_OK && i < n_soft; i++) ids[i] = vi->image_id;
    if (s == SP_OK) s = cli_media_spans(&cm, ids, (size_t)n_soft, err);
    size_t n_feat = (size_t)n_soft * (vi ? vi->text_hidden : 0);
    if (s == SP_OK && feat_out && !cli_write_f32(feat_out, cm.features, n_feat))
        s = sp_fail(err, SP_EIO, "%s: cannot write", feat_out);
    if (s == SP_OK)
        printf("{\"processor\": \"%s\", \"soft_tokens\": %d, \"pixel_values\": %zu, "
               "\"features\": [%d, %d], \"hash\": \"%016llx\"}\n",
               sp_proc_kind_name(vi->proc.kind), n_soft, n_px, n_soft, vi->text_hidden,
               (unsigned long long)cm.px[0].hash);
    free(ids);
    free(px);
    cli_media_free(&cm);
    sp_pool_destroy(pool);
    return s;
}

int cmd_image(int argc, char **argv) {
    const char *model = NULL, *pix_out = NULL, *feat_out = NULL;
    sp_model_opts o;
    sp_model_opts_default(&o);
    cli_images im;
    if (!cli_images_take(argv[0], &argc, argv, &im)) return 2;
    const arg_flag flags[] = {{"--model", &model, NULL},
                              {"--pixels", &pix_out, NULL},
                              {"--features", &feat_out, NULL},
                              {NULL}};
    int rc = arg_parse(argc, argv, flags, &o, usage);
    if (rc >= 0) return rc;
    if (!model || cli_images_count(&im) != 1) {
        fprintf(stderr, "spindle image: --model and exactly one --image or --pixels-in are "
                        "required\n");
        usage(stderr);
        return 2;
    }
    sp_error err = {0};
    if (run(model, &o, &im, pix_out, feat_out, &err) != SP_OK) {
        fprintf(stderr, "spindle image: %s\n", err.msg);
        return 1;
    }
    return 0;
}
