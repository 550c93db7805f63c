/* spindle logits --model P --tokens 1,2,3 --out FILE [--precision f32]
 *                [--image F ... | --pixels-in F.f32 [--positions-in F.i32] ...]
 * Writes the logits of every position, float32 little-endian, positions x
 * vocab (DESIGN.md section 5). With images, the k-th run of image soft
 * tokens in --tokens takes the k-th image's features. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/media.h"
#include "model/seq.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: spindle logits --model PATH --tokens 1,2,3 --out FILE [options]\n"
            "  --image F             an image for the k-th run of image soft tokens (repeatable)\n"
            "  --pixels-in F.f32     preprocessed pixel values instead of an image file\n"
            "  --positions-in F.i32  Gemma 4: the processor's image_position_ids for "
            "--pixels-in\n" MODEL_OPTS_HELP);
}

int cmd_logits(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *toks = NULL;
    sp_model_opts o;
    arg_model_opts_default(&o);
    cli_images im;
    if (!cli_images_take(argv[0], &argc, argv, &im)) return 2;
    const arg_flag flags[] = {
        {"--model", &model, NULL}, {"--out", &out, NULL}, {"--tokens", &toks, NULL}, {NULL}};
    int rc = arg_parse(argc, argv, flags, &o, usage);
    if (rc >= 0) return rc;
    if (!model || !out || !toks) {
        fprintf(stderr, "spindle logits: --model, --tokens and --out are required\n");
        usage(stderr);
        return 2;
    }
    int32_t *ids;
    size_t n;
    if (!arg_ids(argv[0], toks, &ids, &n)) return 2;
    sp_error err = {0};
    sp_model *m = NULL;
    sp_seq seq = {0};
    cli_media cm = {0};
    float *logits = NULL;
    rc = 1;
    if (sp_model_load(&m, model, &o, &err) != SP_OK) goto fail;
    int V = sp_model_get_desc(m)->vocab;
    logits = malloc(n * (size_t)V * sizeof(float));
    if (!logits) {
        sp_fail(&err, SP_ENOMEM, "no memory for %zu x %d logits", n, V);
        goto fail;
    }
    if (cli_images_count(&im) &&
        (cli_media_load(&cm, model, &o, sp_model_pool(m), &im, &err) != SP_OK ||
         cli_media_spans(&cm, ids, n, &err) != SP_OK))
        goto fail;
    if (sp_seq_init(&seq, m, (int)n, &err) != SP_OK ||
        sp_seq_feed_media(&seq, m, ids, (int)n, cm.spans, cm.n, SP_LOGITS_ALL, logits, &err) !=
            SP_OK)
        goto fail;
    if (!cli_write_f32(out, logits, n * (size_t)V)) {
        sp_fail(&err, SP_EIO, "%s: cannot write", out);
        goto fail;
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "spindle logits: %s\n", err.msg);
done:
    free(logits);
    free(ids);
    sp_seq_free(&seq);
    cli_media_free(&cm);
    sp_model_free(m);
    return rc;
}
