/* Bandwidth probe: each thread sums its contiguous share with several
 * independent vector accumulators (integer adds: no FP latency chain), the
 * same access pattern as a matvec streaming weight rows. */
#include "base/clock.h"
#include "compute/membw.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "base/alloc.h"
#include "compute/ops.h"

int64_t sp_membw_sum_avx2(const void *buf, size_t n32); /* membw_avx2.c */

typedef int64_t v4i __attribute__((vector_size(32)));

typedef struct probe {
    const v4i *buf;
    int avx2;
    size_t n; /* vectors */
    int64_t sink[64];
} probe;

static void read_share(void *ctx, int item, int n_items) {
    probe *p = ctx;
    size_t a = p->n * (size_t)item / (size_t)n_items;
    size_t b = p->n * (size_t)(item + 1) / (size_t)n_items;
    if (p->avx2) {
        p->sink[item % 64] = sp_membw_sum_avx2(p->buf + a, b - a);
        return;
    }
    v4i s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    size_t i = a;
    for (; i + 4 <= b; i += 4) {
        s0 += p->buf[i];
        s1 += p->buf[i + 1];
        s2 += p->buf[i + 2];
        s3 += p->buf[i + 3];
    }
    for (; i < b; i++) s0 += p->buf[i];
    v4i s = s0 + s1 + s2 + s3;
    p->sink[item % 64] = s[0] + s[1] + s[2] + s[3]; /* keeps the loads alive */
}

static double now_s(void) {
    return sp_now_ms() * 1e-3;
}

double sp_membw_read_gbs(sp_pool *pool, size_t bytes, int reps) {
    bytes &= ~(size_t)4095;
    if (bytes == 0 || reps < 1) return -1.0;
    char *buf = sp_aligned_alloc(bytes);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!buf || !t) {
        sp_aligned_free(buf);
        free(t);
        return -1.0;
    }
    for (size_t i = 0; i < bytes; i += 64) buf[i] = (char)i; /* fault every page in */
    probe p = {
        .buf = (const v4i *)buf, .avx2 = sp_ops_cpu_max() >= SP_ISA_AVX2, .n = bytes / sizeof(v4i)};
    int items = 8 * sp_pool_size(pool);         /* claimed like matmul's row items */
    sp_pool_run_n(pool, read_share, &p, items); /* warm-up: TLB, thread wake-up */
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        sp_pool_run_n(pool, read_share, &p, items);
        t[r] = now_s() - t0;
    }
    double best = t[0];
    for (int r = 1; r < reps; r++)
        if (t[r] < best) best = t[r];
    double gbs = (double)bytes / best / 1e9;
    sp_aligned_free(buf);
    free(t);
    return gbs;
}
