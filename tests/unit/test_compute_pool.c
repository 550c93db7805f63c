/* Fork-join pool: every thread id runs exactly once per sp_pool_run, the
 * caller is thread 0, results are visible after the run, scratch grows.
 * Many short runs so ThreadSanitizer (SP_SANITIZE=thread) sees the races if
 * there are any. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "compute/pool.h"

#include <pthread.h>

#define MAXT 8

typedef struct job {
    int nth_seen[MAXT];
    int hits[MAXT];
    long sums[MAXT];
    int round;
    pthread_t caller;
    int caller_is_0;
    sp_pool *pool;
    int scratch_ok;
} job;

static void work(void *arg, int ith, int nth) {
    job *j = arg;
    j->hits[ith]++;
    j->nth_seen[ith] = nth;
    j->sums[ith] += j->round * (ith + 1);
    if (ith == 0) j->caller_is_0 = pthread_equal(pthread_self(), j->caller);
}

static void scratch_work(void *arg, int ith, int nth) {
    job *j = arg;
    size_t bytes = 1000 + (size_t)ith * 333 + (size_t)j->round * 7;
    unsigned char *s = sp_pool_scratch(j->pool, ith, bytes);
    if (!s || ((uintptr_t)s & 63)) return;
    memset(s, ith + 1, bytes);
    for (size_t i = 0; i < bytes; i++)
        if (s[i] != ith + 1) return;
    j->hits[ith]++;
}

static void test_size(int n, int rounds) {
    sp_pool *p = sp_pool_create(n);
    CHECK(p != NULL);
    if (!p) return;
    CHECK(sp_pool_size(p) == n);
    job j;
    memset(&j, 0, sizeof(j));
    j.caller = pthread_self();
    j.pool = p;
    for (int r = 1; r <= rounds; r++) {
        j.round = r;
        sp_pool_run(p, work, &j);
        /* results of every thread are visible right after the run */
        for (int i = 0; i < n; i++)
            if (j.hits[i] != r) {
                CHECKF(0, "n=%d round %d: thread %d ran %d times", n, r, i, j.hits[i]);
                r = rounds;
                break;
            }
    }
    long want = (long)rounds * (rounds + 1) / 2;
    for (int i = 0; i < n; i++) {
        CHECK(j.nth_seen[i] == n);
        CHECKF(j.sums[i] == want * (i + 1), "thread %d sum %ld", i, j.sums[i]);
    }
    CHECK(j.caller_is_0);

    memset(j.hits, 0, sizeof(j.hits));
    for (int r = 0; r < 50; r++) {
        j.round = r;
        sp_pool_run(p, scratch_work, &j);
    }
    for (int i = 0; i < n; i++) CHECKF(j.hits[i] == 50, "scratch thread %d: %d", i, j.hits[i]);
    void *shared = sp_pool_scratch(p, SP_POOL_SHARED, 100);
    CHECK(shared != NULL && sp_pool_scratch(p, SP_POOL_SHARED, 50) == shared);
    CHECK(sp_pool_scratch(p, n, 10) == NULL);
    sp_pool_destroy(p);
}

/* A pool idle long enough for its workers to fall asleep still wakes up. */
static void test_sleepers(void) {
    sp_pool *p = sp_pool_create(3);
    job j;
    memset(&j, 0, sizeof(j));
    j.caller = pthread_self();
    for (int r = 1; r <= 3; r++) {
        struct timespec ts = {0, 30 * 1000 * 1000};
        nanosleep(&ts, NULL);
        j.round = r;
        sp_pool_run(p, work, &j);
    }
    for (int i = 0; i < 3; i++) CHECK(j.hits[i] == 3);
    sp_pool_destroy(p);
}

int main(void) {
    job j;
    memset(&j, 0, sizeof(j));
    j.caller = pthread_self();
    sp_pool_run(NULL, work, &j);
    CHECK(j.hits[0] == 1 && j.nth_seen[0] == 1 && j.caller_is_0);
    CHECK(sp_pool_create(0) == NULL);
    CHECK(sp_pool_size(NULL) == 1);
    CHECK(sp_pool_scratch(NULL, 0, 10) == NULL);
    sp_pool_destroy(NULL);

    test_size(1, 100);
    test_size(2, 5000);
    test_size(3, 1000); /* more threads than cores on small CI machines */
    test_size(4, 500);
    test_sleepers();
    return check_summary("test_compute_pool");
}
