/* spindle logits --model P --tokens 1,2,3 --out FILE [--precision f32]
 * Writes the logits of every position, float32 little-endian, positions x
 * vocab (DESIGN.md section 5). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "model/seq.h"

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: spindle logits --model PATH --tokens 1,2,3 --out FILE [options]\n" MODEL_OPTS_HELP);
}

static int write_all(const char *path, const float *x, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = fwrite(x, sizeof(float), n, f);
    return fclose(f) == 0 && w == n;
}

int cmd_logits(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *toks = NULL;
    sp_model_opts o;
    arg_model_opts_default(&o);
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
    float *logits = NULL;
    rc = 1;
    if (sp_model_load(&m, model, &o, &err) != SP_OK) goto fail;
    int V = sp_model_get_desc(m)->vocab;
    logits = malloc(n * (size_t)V * sizeof(float));
    if (!logits) {
        sp_fail(&err, SP_ENOMEM, "no memory for %zu x %d logits", n, V);
        goto fail;
    }
    if (sp_seq_init(&seq, m, (int)n, &err) != SP_OK ||
        sp_seq_feed(&seq, m, ids, (int)n, SP_LOGITS_ALL, logits, &err) != SP_OK)
        goto fail;
    if (!write_all(out, logits, n * (size_t)V)) {
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
    sp_model_free(m);
    return rc;
}
