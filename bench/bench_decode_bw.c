/* Decode against a plain read of the same bytes, alternated in one process:
 * a stack of weight matrices of one type (layers of the 0.85 B bench
 * model: q, k, v, o, gate, up, down; packed as weights.c packs them at
 * load), far larger than the caches; each round reads all of them once
 * with a plain vector sum (the pool's threads, each matrix cut into the
 * matmul's work items), then runs sp_matmul with one token (or T tokens)
 * over every matrix. Prints the median GB/s of both and their ratio; with
 * several ISA levels, the levels alternate within each round too.
 *
 *   cmake --build build/release --target sp_compute sp_base
 *   cc -O2 -Isrc bench/bench_decode_bw.c build/release/libsp_compute.a \
 *      build/release/libsp_base.a -lm -pthread -o build/release/bench_decode_bw
 *   build/release/bench_decode_bw TYPE [threads=2] [MiB=320] [rounds=9] [isa,isa..] [T=1]
 * TYPE: f16 bf16 q8_0 q4_0 q4_k q5_k q6_k ...; isa: scalar avx2 avx512 avx512bf16.
 * NOPACK=1 in the environment keeps the plain row layout; SHAPE=i (0..6)
 * makes every matrix the layer's i-th shape. MiB=8 keeps the
 * weights in L3: the kernels' own speed, without the memory. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/alloc.h"
#include "compute/ops.h"
#include "compute/quant.h"

enum { ROWS_A = 5632, MAX_ISA = 8 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef struct mat {
    sp_tensor w;
} mat;

typedef struct read_ctx {
    const char *p;
    size_t n;
    int64_t sink[64];
} read_ctx;

typedef long long v8 __attribute__((vector_size(32)));

/* The plain read: four independent integer sums of 32-byte loads. */
__attribute__((target("avx2"))) static void read_item(void *arg, int i, int n) {
    read_ctx *c = arg;
    size_t a = c->n / 32 * (size_t)i / (size_t)n, b = c->n / 32 * (size_t)(i + 1) / (size_t)n;
    const v8 *v = (const v8 *)c->p;
    v8 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    size_t k = a;
    for (; k + 4 <= b; k += 4) s0 += v[k], s1 += v[k + 1], s2 += v[k + 2], s3 += v[k + 3];
    for (; k < b; k++) s0 += v[k];
    v8 s = s0 + s1 + s2 + s3;
    c->sink[i % 64] = s[0] + s[1] + s[2] + s[3];
}

static void fill(mat *m, sp_dtype t, int rows, int cols, unsigned seed) {
    size_t rb = sp_dtype_row_bytes(t, cols);
    char *w = sp_aligned_alloc(rb * (size_t)rows);
    float *row = malloc(sizeof(float) * (size_t)cols);
    enum { DISTINCT = 16 }; /* quantized rows, repeated: contents do not change the timing */
    if (!w || !row) exit(1);
    for (int r = 0; r < rows; r++) {
        if (r < DISTINCT) {
            for (int i = 0; i < cols; i++)
                row[i] = (float)((seed = seed * 1103515245u + 12345u) >> 9) / 8388608.0f - 1.0f;
            if (!sp_quantize_row(t, row, w + rb * (size_t)r, cols)) {
                fprintf(stderr, "cannot write %s\n", sp_dtype_name(t));
                exit(1);
            }
        } else {
            memcpy(w + rb * (size_t)r, w + rb * (size_t)(r % DISTINCT), rb);
        }
    }
    free(row);
    m->w = (sp_tensor){.dtype = t, .ndim = 2, .shape = {rows, cols}, .data = w};
    m->w.nbytes = rb * (size_t)rows;
    if (sp_quant_packable(t) && !getenv("NOPACK")) m->w.packed = sp_quant_pack(t, w, rows, cols);
}

static int parse_type(const char *name, sp_dtype *t) {
    for (int i = 0; i < SP_DTYPE_COUNT; i++)
        if (!strcasecmp(name, sp_dtype_name((sp_dtype)i))) return *t = (sp_dtype)i, 1;
    return 0;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s TYPE [threads] [MiB] [rounds] [isa,isa..] [T]\n", argv[0]);
        return 2;
    }
    sp_dtype t;
    if (!parse_type(argv[1], &t)) return fprintf(stderr, "bad type %s\n", argv[1]), 2;
    int nth = argc > 2 ? atoi(argv[2]) : 2, mib = argc > 3 ? atoi(argv[3]) : 320;
    int rounds = argc > 4 ? atoi(argv[4]) : 9, T = argc > 6 ? atoi(argv[6]) : 1;
    sp_isa isas[MAX_ISA];
    int n_isa = 0;
    sp_ops_init();
    char list[128];
    snprintf(list, sizeof list, "%s", argc > 5 ? argv[5] : sp_isa_name(sp_ops_isa()));
    for (char *s = strtok(list, ","); s && n_isa < MAX_ISA; s = strtok(NULL, ","))
        if (!sp_isa_parse(s, &isas[n_isa++])) return fprintf(stderr, "bad isa %s\n", s), 2;
    static const int layer[7][2] = {{2048, 2048}, {512, 2048},  {512, 2048}, {2048, 2048},
                                    {5632, 2048}, {5632, 2048}, {2048, 5632}};
    size_t per = 0;
    for (int i = 0; i < 7; i++) per += sp_dtype_row_bytes(t, layer[i][1]) * (size_t)layer[i][0];
    int shape = getenv("SHAPE") ? atoi(getenv("SHAPE")) % 7 : -1; /* one of the 7 only */
    int n_mat = 7 * (int)((((size_t)mib << 20) + per - 1) / per);
    mat *m = calloc((size_t)n_mat, sizeof *m);
    for (int i = 0; i < n_mat; i++)
        fill(&m[i], t, layer[shape >= 0 ? shape : i % 7][0], layer[shape >= 0 ? shape : i % 7][1],
             1u + (unsigned)i);
    size_t bytes = 0;
    for (int i = 0; i < n_mat; i++) bytes += m[i].w.nbytes;
    sp_pool *pool = sp_pool_create(nth);
    float *x = malloc(sizeof(float) * ROWS_A * (size_t)T),
          *y = malloc(sizeof(float) * ROWS_A * (size_t)T);
    for (int i = 0; i < ROWS_A * T; i++) x[i] = (float)(i % 29) / 29.0f - 0.5f;
    double *rd = malloc(sizeof(double) * (size_t)rounds);
    double *mm = malloc(sizeof(double) * (size_t)rounds * MAX_ISA);
    read_ctx rc = {0};
    for (int r = -1; r < rounds; r++) { /* round -1: warm-up */
        double t0 = now();
        for (int i = 0; i < n_mat; i++) {
            rc.p = m[i].w.data, rc.n = m[i].w.nbytes;
            sp_pool_run_n(pool, read_item, &rc, 16 * nth);
        }
        if (r >= 0) rd[r] = (double)bytes / (now() - t0) * 1e-9;
        for (int k = 0; k < n_isa; k++) {
            int kk = (k + (r > 0 ? r : 0)) % n_isa; /* rotate the order */
            sp_ops_set_isa(isas[kk]);
            t0 = now();
            for (int i = 0; i < n_mat; i++) sp_matmul(pool, y, x, T, &m[i].w, NULL, SP_PREC_FAST);
            if (r >= 0) mm[kk * rounds + r] = (double)bytes / (now() - t0) * 1e-9;
        }
    }
    double rmed = median(rd, rounds);
    printf("%s, %d threads, %.0f MiB in %d matrices, T=%d, %d rounds: plain read %.1f GB/s\n",
           sp_dtype_name(t), nth, (double)bytes / 1048576.0, n_mat, T, rounds, rmed);
    for (int k = 0; k < n_isa; k++) {
        double v = median(mm + k * rounds, rounds);
        printf("  %-10s matmul %.1f GB/s (%.0f%% of the read)\n", sp_isa_name(isas[k]), v,
               100.0 * v / rmed);
    }
    sp_pool_destroy(pool);
    return 0;
}
