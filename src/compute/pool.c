/* Fork-join pool. Workers are created once and wait for a generation counter
 * to change: first by spinning briefly (decode calls the pool ~10 times per
 * layer per token, and a futex wake costs several microseconds), then by
 * sleeping on a condition variable. The caller runs share 0 itself and then
 * waits for a countdown of the workers still busy. */
#include "compute/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "base/alloc.h"

/* Spin with PAUSE first, then yield (so an oversubscribed machine lets the
 * thread we wait for run), then sleep. */
#define SPIN_PAUSE 4000
#define SPIN_ITERS 6000

typedef struct scratch_slot {
    void *ptr;
    size_t cap;
    char pad[64 - sizeof(void *) - sizeof(size_t)]; /* one cache line per slot */
} scratch_slot;

typedef struct worker {
    sp_pool *pool;
    int id;
} worker;

struct sp_pool {
    int n;
    pthread_t *threads;
    worker *workers;
    scratch_slot *slots; /* n + 1: slot 0 is SP_POOL_SHARED, then one per thread */

    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers: a new generation started */
    pthread_cond_t done; /* caller: the last worker finished */

    /* fn/ctx/stop are written by the caller before it bumps gen (release) and
     * read by workers after they observe the new gen (acquire). */
    sp_pool_fn fn;
    void *ctx;
    int stop;
    _Alignas(64) atomic_uint gen;
    _Alignas(64) atomic_int pending; /* workers that have not finished this run */
};

static inline void cpu_relax(int i) {
    if (i >= SPIN_PAUSE) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static unsigned wait_new_gen(sp_pool *p, unsigned seen) {
    for (int i = 0; i < SPIN_ITERS; i++) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax(i);
    }
    pthread_mutex_lock(&p->mu);
    unsigned g;
    while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen)
        pthread_cond_wait(&p->wake, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    sp_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_new_gen(p, seen);
        if (p->stop) break;
        p->fn(p->ctx, w->id, p->n);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

/* Publishes fn/ctx/stop to the workers by starting a new generation. */
static void start_generation(sp_pool *p) {
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
}

static void wait_workers(sp_pool *p) {
    for (int i = 0; i < SPIN_ITERS; i++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0) return;
        cpu_relax(i);
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

static void free_pool(sp_pool *p) {
    if (p->slots)
        for (int i = 0; i <= p->n; i++) sp_aligned_free(p->slots[i].ptr);
    free(p->slots);
    free(p->workers);
    free(p->threads);
    free(p);
}

sp_pool *sp_pool_create(int n_threads) {
    if (n_threads < 1) return NULL;
    sp_pool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->n = n_threads;
    p->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    p->workers = calloc((size_t)n_threads, sizeof(worker));
    p->slots = calloc((size_t)n_threads + 1, sizeof(scratch_slot));
    if (!p->threads || !p->workers || !p->slots) {
        free_pool(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    for (int i = 1; i < n_threads; i++) {
        p->workers[i] = (worker){p, i};
        if (pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]) != 0) {
            p->n = i; /* stop and join the ones already started */
            sp_pool_destroy(p);
            return NULL;
        }
    }
    return p;
}

int sp_pool_size(const sp_pool *p) {
    return p ? p->n : 1;
}

void sp_pool_run(sp_pool *p, sp_pool_fn fn, void *ctx) {
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    start_generation(p);
    fn(ctx, 0, p->n);
    wait_workers(p);
}

void sp_pool_destroy(sp_pool *p) {
    if (!p) return;
    if (p->n > 1) {
        p->stop = 1;
        start_generation(p);
        for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free_pool(p);
}

void *sp_pool_scratch(sp_pool *p, int slot, size_t bytes) {
    if (!p || slot < SP_POOL_SHARED || slot >= p->n) return NULL;
    scratch_slot *s = &p->slots[slot + 1];
    if (s->cap >= bytes && s->ptr) return s->ptr;
    size_t cap = bytes + bytes / 4 + 64; /* headroom so slowly growing sizes don't thrash */
    void *q = sp_aligned_alloc(cap);
    if (!q) return NULL;
    sp_aligned_free(s->ptr);
    s->ptr = q;
    s->cap = cap;
    return q;
}
