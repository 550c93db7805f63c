#include "cli/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *arg_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "spindle %s: option %s needs a value\n", argv[0], argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int arg_int(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "spindle %s: %s expects an integer in [%ld, %ld], got '%s'\n", cmd, flag,
                lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

int arg_ids(const char *cmd, const char *s, int32_t **ids, size_t *n) {
    size_t cap = 16, k = 0;
    int32_t *a = malloc(cap * sizeof *a);
    const char *p = s;
    while (a && *p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            fprintf(stderr, "spindle %s: --tokens expects comma-separated ids, bad at '%s'\n", cmd,
                    p);
            free(a);
            return 0;
        }
        if (k == cap) {
            int32_t *b = realloc(a, (cap *= 2) * sizeof *a);
            if (!b) break;
            a = b;
        }
        a[k++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (!a || k == 0) {
        fprintf(stderr, "spindle %s: --tokens needs at least one id\n", cmd);
        free(a);
        return 0;
    }
    *ids = a;
    *n = k;
    return 1;
}

/* --isa LEVEL is SPINDLE_ISA=LEVEL for this process: the kernels are chosen
 * once, when the first model loads (sp_ops_init), before any thread starts. */
int arg_isa(const char *cmd, const char *v) {
    sp_isa isa;
    if (!sp_isa_parse(v, &isa)) {
        fprintf(stderr, "spindle %s: --isa must be scalar, avx2, avx512 or avx512bf16, got '%s'\n",
                cmd, v);
        return 0;
    }
    return setenv("SPINDLE_ISA", v, 1) == 0;
}

int arg_model_opt(const char *cmd, int argc, char **argv, int *i, sp_model_opts *o) {
    const char *f = argv[*i];
    if (!strcmp(f, "--isa")) {
        const char *v = arg_value(argc, argv, i);
        return v && arg_isa(cmd, v) ? 1 : -1;
    }
    if (!strcmp(f, "--mmap")) {
        o->use_mmap = 1;
        return 1;
    }
    if (!strcmp(f, "--longrope-long")) {
        o->longrope_always_long = 1;
        return 1;
    }
    if (!strcmp(f, "--precision")) {
        const char *v = arg_value(argc, argv, i);
        if (!v) return -1;
        if (!strcmp(v, "f32"))
            o->precision = SP_PREC_F32;
        else if (!strcmp(v, "fast"))
            o->precision = SP_PREC_FAST;
        else {
            fprintf(stderr, "spindle %s: --precision must be f32 or fast, got '%s'\n", cmd, v);
            return -1;
        }
        return 1;
    }
    if (!strcmp(f, "--quantize")) {
        const char *v = arg_value(argc, argv, i);
        if (!v) return -1;
        if (!strcmp(v, "q8_0"))
            o->quantize = SP_Q8_0;
        else if (!strcmp(v, "q4_k"))
            o->quantize = SP_Q4_K;
        else {
            fprintf(stderr, "spindle %s: --quantize must be q8_0 or q4_k, got '%s'\n", cmd, v);
            return -1;
        }
        return 1;
    }
    if (!strcmp(f, "--device")) {
        const char *v = arg_value(argc, argv, i);
        if (!v) return -1;
        char *end = NULL;
        if (!strcmp(v, "cpu"))
            o->device = SP_DEVICE_CPU;
        else if (!strcmp(v, "auto"))
            o->device = SP_DEVICE_AUTO;
        else if (!strcmp(v, "cuda"))
            o->device = SP_DEVICE_CUDA, o->device_index = 0;
        else if (!strncmp(v, "cuda:", 5) && v[5] >= '0' && v[5] <= '9' &&
                 (o->device_index = (int)strtol(v + 5, &end, 10), *end == 0))
            o->device = SP_DEVICE_CUDA;
        else {
            fprintf(stderr, "spindle %s: --device must be cpu, cuda, cuda:N or auto, got '%s'\n",
                    cmd, v);
            return -1;
        }
        return 1;
    }
    if (!strcmp(f, "--kv-type")) {
        const char *v = arg_value(argc, argv, i);
        if (!v) return -1;
        if (!strcmp(v, "f32") || !strcmp(v, "f16") || !strcmp(v, "bf16"))
            o->kv_dtype = !strcmp(v, "f32") ? SP_F32 : !strcmp(v, "f16") ? SP_F16 : SP_BF16;
        else {
            fprintf(stderr, "spindle %s: --kv-type must be f32, f16 or bf16, got '%s'\n", cmd, v);
            return -1;
        }
        return 1;
    }
    if (!strcmp(f, "--load-format")) {
        const char *v = arg_value(argc, argv, i);
        if (!v) return -1;
        if (!strcmp(v, "dummy") || !strcmp(v, "auto"))
            o->load_dummy = !strcmp(v, "dummy");
        else {
            fprintf(stderr, "spindle %s: --load-format must be auto or dummy, got '%s'\n", cmd, v);
            return -1;
        }
        return 1;
    }
    if (!strcmp(f, "--threads")) {
        const char *v = arg_value(argc, argv, i);
        long n;
        if (!v || !arg_int(cmd, f, v, 1, 1024, &n)) return -1;
        o->n_threads = (int)n;
        return 1;
    }
    return 0;
}

void arg_model_opts_default(sp_model_opts *o) {
    sp_model_opts_default(o);
    o->device = SP_DEVICE_AUTO;
}

static const arg_flag *find_flag(const arg_flag *flags, const char *name) {
    for (; flags->name; flags++)
        if (!strcmp(flags->name, name)) return flags;
    return NULL;
}

int arg_parse(int argc, char **argv, const arg_flag *flags, sp_model_opts *model_opts,
              void (*usage)(FILE *)) {
    for (int i = 1; i < argc; i++) {
        if (model_opts) {
            int r = arg_model_opt(argv[0], argc, argv, &i, model_opts);
            if (r < 0) return 2;
            if (r) continue;
        }
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        const arg_flag *f = find_flag(flags, argv[i]);
        if (!f) {
            fprintf(stderr, "spindle %s: unknown option '%s'\n", argv[0], argv[i]);
            usage(stderr);
            return 2;
        }
        if (!f->value)
            *f->on = 1;
        else if (!(*f->value = arg_value(argc, argv, &i)))
            return 2;
    }
    return -1;
}
