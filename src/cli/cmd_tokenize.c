/* spindle tokenize --model PATH --text T          -> ids as a JSON array
 * spindle tokenize --model PATH --detokenize --ids 1,2,3  -> the text
 * spindle tokenize --model PATH --bench FILE      -> encode speed in MB/s
 *
 * Defaults follow transformers' tokenizer.encode(text): special-token text
 * (e.g. "<|eot_id|>") is parsed as the special token, and the post-processor
 * adds BOS/EOS (add_special_tokens=True). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/file.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "tokenizer/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f, "usage: spindle tokenize --model PATH (--text T | --file F) [options]\n"
               "       spindle tokenize --model PATH --detokenize --ids 1,2,3 [--skip-special]\n"
               "       spindle tokenize --model PATH --batch STRINGS.json [options]\n"
               "       spindle tokenize --model PATH --bench FILE [--repeat N]\n"
               "  --model PATH      folder with tokenizer.json (+ tokenizer_config.json),\n"
               "                    or a .gguf file (its tokenizer.ggml.* vocabulary)\n"
               "  --text T          text to tokenize; --file F reads it from a file\n"
               "  --special         parse special-token text and add BOS/EOS (default, like\n"
               "                    transformers' encode)\n"
               "  --no-add-special  parse special-token text, but add no BOS/EOS\n"
               "  --no-special      neither: special-token text is plain text, no BOS/EOS\n"
               "  --detokenize      decode --ids to text (--skip-special drops special tokens)\n"
               "  --batch F.json    F is a JSON array of strings: print one id array per line\n"
               "  --bench FILE      time encoding FILE (no BOS), print MB/s\n");
}

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "spindle tokenize: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    usage(stderr);
    return 2;
}

static void print_ids(const int32_t *ids, size_t n) {
    putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
    printf("]\n");
}

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bench(const sp_tokenizer *tok, const char *file, long repeat) {
    char *text = NULL;
    size_t len = 0;
    sp_error err = {0};
    if (sp_read_text(file, &text, &len, &err) != SP_OK) {
        fprintf(stderr, "spindle tokenize: %s\n", err.msg);
        return 1;
    }
    /* Best of `repeat` runs; CPU time of this (single) thread as well as wall
     * time, since a busy machine inflates the latter. */
    double best = 1e30, best_wall = 1e30;
    size_t n_ids = 0;
    for (long r = 0; r < repeat; r++) {
        int32_t *ids = NULL;
        double t0 = clock_s(CLOCK_THREAD_CPUTIME_ID), w0 = clock_s(CLOCK_MONOTONIC);
        sp_status st = sp_tokenizer_encode(tok, text, len, 0, 1, &ids, &n_ids, &err);
        double dt = clock_s(CLOCK_THREAD_CPUTIME_ID) - t0, dw = clock_s(CLOCK_MONOTONIC) - w0;
        if (dw < best_wall) best_wall = dw;
        free(ids);
        if (st != SP_OK) {
            fprintf(stderr, "spindle tokenize: %s\n", err.msg);
            free(text);
            return 1;
        }
        if (dt < best) best = dt;
    }
    printf("{\"bytes\": %zu, \"tokens\": %zu, \"cpu_seconds\": %.4f, \"wall_seconds\": %.4f, "
           "\"mb_per_s\": %.2f}\n",
           len, n_ids, best, best_wall, (double)len / 1e6 / best);
    free(text);
    return 0;
}

/* One JSON array of ids per line for each string of a JSON array. */
static int batch(const sp_tokenizer *tok, const char *file, int add_special, int parse_special) {
    json_error_t je;
    json_t *arr = json_load_file(file, JSON_ALLOW_NUL, &je);
    if (!json_is_array(arr)) {
        fprintf(stderr, "spindle tokenize: %s: line %d: %s\n", file, je.line,
                arr ? "expected a JSON array of strings" : je.text);
        json_decref(arr);
        return 1;
    }
    int rc = 0;
    for (size_t i = 0; i < json_array_size(arr) && !rc; i++) {
        json_t *s = json_array_get(arr, i);
        int32_t *ids = NULL;
        size_t n = 0;
        sp_error err = {0};
        if (!json_is_string(s)) {
            fprintf(stderr, "spindle tokenize: %s: [%zu] is not a string\n", file, i);
            rc = 1;
        } else if (sp_tokenizer_encode(tok, json_string_value(s), json_string_length(s),
                                       add_special, parse_special, &ids, &n, &err) != SP_OK) {
            fprintf(stderr, "spindle tokenize: %s\n", err.msg);
            rc = 1;
        } else {
            print_ids(ids, n);
        }
        free(ids);
    }
    json_decref(arr);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *file = NULL, *ids_arg = NULL, *bench_file = NULL,
               *batch_file = NULL;
    int add_special = 1, parse_special = 1, detok = 0, skip_special = 0;
    long repeat = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--model")) {
            if (!(model = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--text")) {
            if (!(text = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--file")) {
            if (!(file = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--ids")) {
            if (!(ids_arg = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--batch")) {
            if (!(batch_file = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--bench")) {
            if (!(bench_file = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--repeat")) {
            const char *v = arg_value(argc, argv, &i);
            if (!v || !arg_int("tokenize", "--repeat", v, 1, 1000, &repeat)) return 2;
        } else if (!strcmp(a, "--special")) {
            add_special = parse_special = 1;
        } else if (!strcmp(a, "--no-special")) {
            add_special = parse_special = 0;
        } else if (!strcmp(a, "--no-add-special")) {
            add_special = 0;
            parse_special = 1;
        } else if (!strcmp(a, "--detokenize")) {
            detok = 1;
        } else if (!strcmp(a, "--skip-special")) {
            skip_special = 1;
        } else {
            return usage_error("unknown option", a);
        }
    }
    if (!model) return usage_error("--model is required", NULL);
    int modes = (detok || ids_arg) + (text || file) + (bench_file != NULL) + (batch_file != NULL);
    if (modes != 1 || (text && file) || (detok && !ids_arg) || (ids_arg && !detok))
        return usage_error("give one of --text, --file, --detokenize --ids, --batch, --bench",
                           NULL);
    sp_tokenizer *tok = NULL;
    sp_error err = {0};
    if (sp_tokenizer_load(&tok, model, &err) != SP_OK) {
        fprintf(stderr, "spindle tokenize: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    if (bench_file) {
        rc = bench(tok, bench_file, repeat);
    } else if (batch_file) {
        rc = batch(tok, batch_file, add_special, parse_special);
    } else if (detok) {
        int32_t *ids = NULL;
        size_t n = 0;
        char *out = NULL;
        size_t len = 0;
        if (!arg_ids("tokenize", ids_arg, &ids, &n))
            rc = 2;
        else if (sp_tokenizer_decode(tok, ids, n, skip_special, &out, &len, &err) != SP_OK)
            rc = 1, fprintf(stderr, "spindle tokenize: %s\n", err.msg);
        else
            fwrite(out, 1, len, stdout), putchar('\n');
        free(ids);
        free(out);
    } else {
        char *owned = NULL;
        size_t len = text ? strlen(text) : 0;
        if (file && sp_read_text(file, &owned, &len, &err) != SP_OK) {
            fprintf(stderr, "spindle tokenize: %s\n", err.msg);
            rc = 1;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        if (!rc && sp_tokenizer_encode(tok, owned ? owned : text, len, add_special, parse_special,
                                       &ids, &n, &err) != SP_OK) {
            fprintf(stderr, "spindle tokenize: %s\n", err.msg);
            rc = 1;
        }
        if (!rc) print_ids(ids, n);
        free(ids);
        free(owned);
    }
    sp_tokenizer_free(tok);
    return rc;
}
