/* spindle bench --model M [-p 512] [-n 128] [--batch 1,4,16] [-r 5] [--json]
 *              [--membw] [model options]
 *
 * Prompt processing (pp): one sequence of p tokens in a single forward, from
 * an empty cache. Generation (tg): `batch` sequences decoded together, one
 * token each per step, n steps from an empty cache (as llama-bench's tg).
 * Every figure is the median of r timed runs after a short untimed warm-up
 * (WARMUP_PP tokens / WARMUP_TG steps: enough to touch every weight once).
 * Token ids are pseudo-random (fixed seed); no sampling is timed.
 *
 * Decode reads every weight byte once per step, so tg is also reported as
 * GB/s of weights streamed (bytes_per_token x steps/s) and, with --membw,
 * as a fraction of the sequential-read bandwidth the same threads reach. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "compute/membw.h"
#include "model/seq.h"

#define MAX_BATCHES 16
#define MEMBW_BYTES ((size_t)1 << 30)
#define WARMUP_PP   64 /* tokens of the untimed prefill before the pp runs */
#define WARMUP_TG   8  /* steps of the untimed decode before the tg runs */

typedef struct bench_cfg {
    const char *model;
    int pp, tg, reps, json, membw;
    int batches[MAX_BATCHES], n_batches;
    sp_model_opts opts;
} bench_cfg;

typedef struct bench_result {
    int batch;
    double pp_tps, tg_tps;
    double tg_gbs; /* weight bytes streamed per second while decoding */
} bench_result;

static void usage(FILE *f) {
    fprintf(f, "usage: spindle bench --model PATH [options]\n"
               "       spindle bench --membw [--threads N]\n"
               "  -p N                  prompt tokens for pp (default 512; 0 skips pp)\n"
               "  -n N                  generated tokens for tg (default 128; 0 skips tg)\n"
               "  --batch 1,4,16        sequences decoded together in tg (default 1)\n"
               "  -r N                  timed repetitions, median reported (default 5)\n"
               "  --membw               also probe sequential read bandwidth (1 GiB, best pass)\n"
               "  --json                one JSON object per configuration\n" MODEL_OPTS_HELP);
}

static double now_s(void) {
    return sp_now_ms() * 1e-3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint32_t next_rand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* Weight bytes one decode step streams: everything but the input embedding
 * table, of which a step reads one row (unless it is tied to the output),
 * and but the experts a token does not select. */
static uint64_t bytes_per_token(const sp_model *m) {
    const sp_model_desc *d = sp_model_get_desc(m);
    uint64_t b = sp_model_weight_bytes(m);
    if (!d->tied_embeddings && d->tok_embd.data != d->output.data) b -= d->tok_embd.nbytes;
    if (d->ple_embd.data) b -= d->ple_embd.nbytes;
    for (int l = 0; l < d->n_layers; l++) { /* a token reads only its experts */
        const sp_layer_desc *L = &d->layers[l];
        if (L->n_experts > L->n_experts_used && L->exp_gate)
            b -= (uint64_t)(L->n_experts - L->n_experts_used) *
                 (L->exp_gate[0].nbytes + L->exp_up[0].nbytes + L->exp_down[0].nbytes);
    }
    return b;
}

/* One pp run: p tokens through one forward from an empty cache. */
static sp_status run_pp(sp_model *m, sp_seq *seq, const int32_t *toks, int p, float *logits,
                        double *secs, sp_error *err) {
    seq->len = 0;
    double t0 = now_s();
    sp_status s = sp_seq_feed(seq, m, toks, p, SP_LOGITS_LAST, logits, err);
    *secs = now_s() - t0;
    return s;
}

/* One tg run: B sequences, n steps of one token each, from empty caches. */
static sp_status run_tg(sp_model *m, sp_seq *seqs, int B, int n, float *logits, uint32_t *rng,
                        double *secs, sp_error *err) {
    sp_seq_input in[MAX_BATCHES * 4];
    int32_t tok[MAX_BATCHES * 4];
    int V = sp_model_get_desc(m)->vocab;
    for (int b = 0; b < B; b++) seqs[b].len = 0;
    double t0 = now_s();
    for (int step = 0; step < n; step++) {
        for (int b = 0; b < B; b++) {
            tok[b] = (int32_t)(next_rand(rng) % (uint32_t)V);
            in[b] = (sp_seq_input){.tokens = &tok[b],
                                   .n_tokens = 1,
                                   .pos0 = seqs[b].len,
                                   .block_table = seqs[b].table,
                                   .n_blocks = seqs[b].n_blocks,
                                   .want = SP_LOGITS_LAST};
        }
        SP_TRY(sp_model_forward(m, seqs[0].kv, in, B, logits, err));
        for (int b = 0; b < B; b++) seqs[b].len++;
    }
    *secs = now_s() - t0;
    return SP_OK;
}

/* Median pp tokens/s over reps runs after a warm-up. */
static sp_status bench_pp(sp_model *m, const bench_cfg *c, double *tps, sp_error *err) {
    int V = sp_model_get_desc(m)->vocab;
    int32_t *toks = malloc((size_t)c->pp * sizeof *toks);
    float *logits = malloc((size_t)V * sizeof *logits);
    double *t = malloc((size_t)c->reps * sizeof *t), secs;
    sp_seq seq = {0};
    sp_status s = toks && logits && t ? SP_OK : sp_fail(err, SP_ENOMEM, "bench");
    uint32_t rng = 42;
    for (int i = 0; s == SP_OK && i < c->pp; i++) toks[i] = (int32_t)(next_rand(&rng) % V);
    if (s == SP_OK) s = sp_seq_init(&seq, m, c->pp, err);
    if (s == SP_OK) /* warm-up: every weight is read by any forward; a short one will do */
        s = run_pp(m, &seq, toks, c->pp < WARMUP_PP ? c->pp : WARMUP_PP, logits, &secs, err);
    for (int r = 0; s == SP_OK && r < c->reps; r++)
        s = run_pp(m, &seq, toks, c->pp, logits, &t[r], err);
    if (s == SP_OK) *tps = c->pp / median(t, c->reps);
    if (seq.kv) sp_seq_free(&seq);
    free(toks);
    free(logits);
    free(t);
    return s;
}

/* Median tg tokens/s (all sequences together) for a batch of B. The B
 * sequences share one KV store: sequence b owns blocks [b*nb, (b+1)*nb). */
static sp_status bench_tg(sp_model *m, const bench_cfg *c, int B, double *tps, sp_error *err) {
    int V = sp_model_get_desc(m)->vocab;
    sp_seq seqs[MAX_BATCHES * 4], all = {0};
    float *logits = malloc((size_t)B * V * sizeof *logits);
    double *t = malloc((size_t)c->reps * sizeof *t), secs;
    sp_status s = logits && t ? SP_OK : sp_fail(err, SP_ENOMEM, "bench");
    if (s == SP_OK) s = sp_seq_init(&all, m, c->tg * B + 16 * B, err);
    if (s == SP_OK) {
        int nb = all.n_blocks / B;
        for (int b = 0; b < B; b++)
            seqs[b] = (sp_seq){.kv = all.kv, .table = all.table + b * nb, .n_blocks = nb};
    }
    uint32_t rng = 7;
    if (s == SP_OK)
        s = run_tg(m, seqs, B, c->tg < WARMUP_TG ? c->tg : WARMUP_TG, logits, &rng, &secs, err);
    for (int r = 0; s == SP_OK && r < c->reps; r++)
        s = run_tg(m, seqs, B, c->tg, logits, &rng, &t[r], err);
    if (s == SP_OK) *tps = (double)c->tg * B / median(t, c->reps);
    if (all.kv) sp_seq_free(&all);
    free(logits);
    free(t);
    return s;
}

static const char *weight_type(const sp_model *m) {
    const sp_model_desc *d = sp_model_get_desc(m);
    return d->n_layers ? sp_dtype_name(d->layers[0].wq.dtype) : "?";
}

static long max_rss_mib(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss / 1024;
}

/* Resident set now (Linux /proc/self/statm), -1 if unknown. The peak above
 * includes the file mapping the loader copies weights out of. */
static long rss_mib(void) {
    long pages = -1, resident = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
        fclose(f);
    }
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024) / 1024;
}

/* GPU figures: the device, its memory in use, the GEMM peak probe */
typedef struct gpu_info {
    double gemm_tflops;
    sp_device_mem mem;
} gpu_info;

static void print_result(const bench_cfg *c, sp_model *m, const bench_result *r, double membw,
                         const gpu_info *gi, int header) {
    const char *name = strrchr(c->model, '/') ? strrchr(c->model, '/') + 1 : c->model;
    int threads = sp_pool_size(sp_model_pool(m));
    double frac = membw > 0 && r->tg_gbs > 0 ? r->tg_gbs / membw : 0;
    if (c->json) {
        printf("{\"model\": \"%s\", \"type\": \"%s\", \"weights_bytes\": %llu, "
               "\"bytes_per_token\": %llu, \"threads\": %d, \"batch\": %d, \"precision\": "
               "\"%s\", \"mmap\": %s, \"isa\": \"%s\", \"pp\": %d, \"pp_tps\": %.2f, \"tg\": %d, "
               "\"tg_tps\": %.2f, \"tg_gbs\": %.2f, \"membw_gbs\": %.2f, \"bw_frac\": %.3f, "
               "\"rss_mib\": %ld, \"max_rss_mib\": %ld, ",
               name, weight_type(m), (unsigned long long)sp_model_weight_bytes(m),
               (unsigned long long)bytes_per_token(m), threads, r->batch,
               c->opts.precision == SP_PREC_F32 ? "f32" : "fast",
               c->opts.use_mmap ? "true" : "false", sp_isa_name(sp_ops_isa()), c->pp, r->pp_tps,
               c->tg, r->tg_tps, r->tg_gbs, membw, frac, rss_mib(), max_rss_mib());
        /* pp FLOPs: 2 per weight per token (attention's share left out) */
        double params = (double)bytes_per_token(m) *
                        sp_dtype_block(sp_model_get_desc(m)->layers[0].wq.dtype) /
                        (double)sp_dtype_block_bytes(sp_model_get_desc(m)->layers[0].wq.dtype);
        printf("\"device\": \"%s\", \"ttft_ms\": %.2f, \"pp_tflops\": %.2f, "
               "\"gemm_tflops\": %.2f, \"gpu_mem_used_mib\": %.0f, \"gpu_mem_total_mib\": %.0f, "
               "\"gpu_weights_mib\": %.0f, \"gpu_kv_mib\": %.0f}\n",
               sp_model_device_name(m), r->pp_tps > 0 ? 1e3 * c->pp / r->pp_tps : 0,
               2.0 * params * r->pp_tps / 1e12, gi->gemm_tflops,
               (gi->mem.total - gi->mem.free) / 1048576.0, gi->mem.total / 1048576.0,
               gi->mem.weights / 1048576.0, gi->mem.kv / 1048576.0);
        fflush(stdout);
        return;
    }
    if (header)
        printf("%-28s %-5s %8s %3s %5s %4s %9s %4s %9s %7s %5s\n", "model", "type", "MiB", "thr",
               "batch", "pp", "pp t/s", "tg", "tg t/s", "GB/s", "%bw");
    char bw[16] = "-";
    if (frac > 0) snprintf(bw, sizeof bw, "%.0f%%", 100 * frac);
    printf("%-28.28s %-5s %8.1f %3d %5d %4d %9.2f %4d %9.2f %7.2f %5s\n", name, weight_type(m),
           (double)sp_model_weight_bytes(m) / (1 << 20), threads, r->batch, c->pp, r->pp_tps, c->tg,
           r->tg_tps, r->tg_gbs, bw);
    fflush(stdout);
}

static sp_status run_bench(const bench_cfg *c, sp_error *err) {
    sp_model *m;
    double t0 = now_s();
    SP_TRY(sp_model_load(&m, c->model, &c->opts, err));
    if (!c->json)
        fprintf(stderr, "loaded %s in %.2f s (%s, %s, %d threads)\n", c->model, now_s() - t0,
                sp_model_device_name(m), sp_isa_name(sp_ops_isa()), sp_pool_size(sp_model_pool(m)));
    gpu_info gi = {0};
    double membw = 0, pp_tps = 0;
    sp_status s = SP_OK;
    if (sp_model_device(m) == SP_DEVICE_CUDA) /* the limit: the GPU's own bandwidth, measured */
        s = sp_model_device_probe(m, &membw, &gi.gemm_tflops, err);
    else if (c->membw)
        membw = sp_membw_read_gbs(sp_model_pool(m), MEMBW_BYTES, 5);
    if (s == SP_OK && c->pp > 0) s = bench_pp(m, c, &pp_tps, err);
    for (int i = 0; s == SP_OK && i < c->n_batches; i++) {
        bench_result r = {.batch = c->batches[i], .pp_tps = pp_tps};
        if (c->tg > 0) s = bench_tg(m, c, r.batch, &r.tg_tps, err);
        r.tg_gbs = (double)bytes_per_token(m) * r.tg_tps / r.batch / 1e9;
        sp_model_device_mem(m, &gi.mem);
        if (s == SP_OK) print_result(c, m, &r, membw, &gi, i == 0);
    }
    sp_model_free(m);
    return s;
}

static int membw_only(const bench_cfg *c) {
    int nt = c->opts.n_threads > 0 ? c->opts.n_threads : 1;
    sp_pool *p = sp_pool_create(nt);
    if (!p) return fprintf(stderr, "spindle bench: cannot start %d threads\n", nt), 1;
    double gbs = sp_membw_read_gbs(p, MEMBW_BYTES, 7);
    sp_pool_destroy(p);
    if (gbs < 0) return fprintf(stderr, "spindle bench: no memory for the probe\n"), 1;
    if (c->json)
        printf("{\"membw_gbs\": %.2f, \"threads\": %d, \"bytes\": %zu}\n", gbs, nt, MEMBW_BYTES);
    else
        printf("sequential read: %.2f GB/s with %d threads (1 GiB buffer, best of 7 passes)\n", gbs,
               nt);
    return 0;
}

static int parse_batches(const char *s, bench_cfg *c) {
    int32_t *ids;
    size_t n;
    if (!arg_ids("bench", s, &ids, &n)) return 0;
    int ok = n >= 1 && n <= MAX_BATCHES;
    for (size_t i = 0; ok && i < n; i++) ok = ids[i] >= 1 && ids[i] <= MAX_BATCHES * 4;
    for (size_t i = 0; ok && i < n; i++) c->batches[i] = ids[i];
    c->n_batches = (int)n;
    free(ids);
    if (!ok)
        fprintf(stderr, "spindle bench: --batch wants 1..%d sizes of 1..%d\n", MAX_BATCHES,
                MAX_BATCHES * 4);
    return ok;
}

static int parse_args(int argc, char **argv, bench_cfg *c) {
    for (int i = 1; i < argc; i++) {
        int r = arg_model_opt(argv[0], argc, argv, &i, &c->opts);
        if (r < 0) return 0;
        if (r) continue;
        const char *a = argv[i], *v;
        long n;
        if (!strcmp(a, "--json")) {
            c->json = 1;
        } else if (!strcmp(a, "--membw")) {
            c->membw = 1;
        } else if (!strcmp(a, "--model")) {
            if (!(c->model = arg_value(argc, argv, &i))) return 0;
        } else if (!strcmp(a, "--batch")) {
            if (!(v = arg_value(argc, argv, &i)) || !parse_batches(v, c)) return 0;
        } else if (!strcmp(a, "-p") || !strcmp(a, "-n") || !strcmp(a, "-r")) {
            long hi = a[1] == 'r' ? 1000 : 1 << 16, lo = a[1] == 'r' ? 1 : 0;
            if (!(v = arg_value(argc, argv, &i)) || !arg_int("bench", a, v, lo, hi, &n)) return 0;
            *(a[1] == 'p' ? &c->pp : a[1] == 'n' ? &c->tg : &c->reps) = (int)n;
        } else {
            fprintf(stderr, "spindle bench: unknown option '%s'\n", a);
            usage(stderr);
            return 0;
        }
    }
    return 1;
}

int cmd_bench(int argc, char **argv) {
    bench_cfg c = {.pp = 512, .tg = 128, .reps = 5, .batches = {1}, .n_batches = 1};
    arg_model_opts_default(&c.opts);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help")) return usage(stdout), 0;
    if (!parse_args(argc, argv, &c)) return 2;
    if (!c.model && c.membw) return membw_only(&c);
    if (!c.model) {
        fprintf(stderr, "spindle bench: --model is required\n");
        usage(stderr);
        return 2;
    }
    sp_error err;
    if (run_bench(&c, &err) != SP_OK) {
        fprintf(stderr, "spindle bench: %s\n", err.msg);
        return 1;
    }
    return 0;
}
