/* Batched decode cost: B sequences decoded together (one token each per
 * step, one sp_model_forward per step, as the engine batches them), for
 * each B given; prints wall-clock and process-CPU tokens per second and the
 * ratio to the first B. CPU time is the figure to compare on a shared
 * machine. Not built by CMake; build after the libraries:
 *   cc -O2 -Isrc bench/bench_decode_batch.c build/release/libsp_model.a \
 *      build/release/libsp_formats.a build/release/libsp_compute.a \
 *      build/release/libsp_base.a -ljansson -lxxhash -lm -pthread -o bench_decode_batch
 *   ./bench_decode_batch MODEL THREADS STEPS REPS 1,4,16
 * Each figure is the median of REPS runs of STEPS steps from empty caches,
 * after a 4-step warm-up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/model.h"
#include "model/seq.h"

#define MAX_B    64
#define MAX_REPS 32

static double clock_s(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* steps decode steps of B sequences; adds wall and CPU seconds. */
static int run(sp_model *m, sp_seq *all, sp_seq *seqs, int B, int steps, unsigned *rng,
               float *logits, double *wall, double *cpu) {
    int V = sp_model_get_desc(m)->vocab;
    sp_error e = {0};
    for (int b = 0; b < B; b++) seqs[b].len = 0;
    double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int s = 0; s < steps; s++) {
        sp_seq_input in[MAX_B];
        int32_t tok[MAX_B];
        for (int b = 0; b < B; b++) {
            *rng = *rng * 1664525u + 1013904223u;
            tok[b] = (int32_t)((*rng >> 8) % (unsigned)V);
            in[b] = (sp_seq_input){.tokens = &tok[b],
                                   .n_tokens = 1,
                                   .pos0 = seqs[b].len,
                                   .block_table = seqs[b].table,
                                   .n_blocks = seqs[b].n_blocks,
                                   .want = SP_LOGITS_LAST};
        }
        if (sp_model_forward(m, all->kv, in, B, logits, &e) != SP_OK) {
            fprintf(stderr, "forward: %s\n", e.msg);
            return -1;
        }
        for (int b = 0; b < B; b++) seqs[b].len++;
    }
    *wall = clock_s(CLOCK_MONOTONIC) - w0;
    *cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    return 0;
}

/* Prints one line for batch B; *base: the first batch's rates. */
static int bench_batch(sp_model *m, int B, int steps, int reps, double base[2]) {
    sp_seq all = {0}, seqs[MAX_B];
    sp_error e = {0};
    if (sp_seq_init(&all, m, (steps + 16) * B, &e) != SP_OK) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    int nb = all.n_blocks / B;
    for (int b = 0; b < B; b++)
        seqs[b] = (sp_seq){.kv = all.kv, .table = all.table + b * nb, .n_blocks = nb};
    float *logits = malloc((size_t)B * (size_t)sp_model_get_desc(m)->vocab * sizeof *logits);
    double tw[MAX_REPS], tc[MAX_REPS], w, c;
    unsigned rng = 7;
    int rc = logits ? run(m, &all, seqs, B, 4, &rng, logits, &w, &c) : -1;
    for (int r = 0; rc == 0 && r < reps; r++)
        rc = run(m, &all, seqs, B, steps, &rng, logits, &tw[r], &tc[r]);
    if (rc == 0) {
        w = median(tw, reps);
        c = median(tc, reps);
        double tps = steps * B / w, tpc = steps * B / c;
        if (base[0] == 0) base[0] = tps, base[1] = tpc;
        printf("B=%2d  wall %.1f tok/s (%.2fx)  per CPU-second %.1f tok (%.2fx)  "
               "step %.1f ms wall, %.1f ms CPU\n",
               B, tps, tps / base[0], tpc, tpc / base[1], w / steps * 1e3, c / steps * 1e3);
        fflush(stdout);
    }
    free(logits);
    sp_seq_free(&all);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s MODEL THREADS STEPS REPS B1,B2,...\n", argv[0]);
        return 2;
    }
    sp_model_opts o;
    sp_model_opts_default(&o);
    o.n_threads = atoi(argv[2]);
    int steps = atoi(argv[3]), reps = atoi(argv[4]);
    if (steps < 1 || reps < 1 || reps > MAX_REPS) return 2;
    sp_model *m;
    sp_error e = {0};
    if (sp_model_load(&m, argv[1], &o, &e) != SP_OK) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    double base[2] = {0, 0};
    int rc = 0;
    for (char *p = argv[5]; rc == 0 && p && *p;) {
        int B = atoi(p);
        p = strchr(p, ',');
        if (p) p++;
        if (B < 1 || B > MAX_B) return 2;
        rc = bench_batch(m, B, steps, reps, base);
    }
    sp_model_free(m);
    return rc ? 1 : 0;
}
