/* Fork-join pool with claimed work items.
 *
 * One 64-bit word describes the current run: generation (24 bits), item
 * count (20 bits) and next unclaimed item (20 bits). Threads claim items
 * with a compare-and-swap on the whole word, so a claim can never land in a
 * different run than the one the thread looked at, and fn/ctx (written
 * before the word is published) are stable while any item of the run is
 * claimed and unfinished.
 *
 * Waiting: measured spinning first (PAUSE; the gap between two kernels of
 * a decode step is a few microseconds, a futex wake-up costs more), then
 * sleeping on a futex. Spinning is bounded in time, not iterations, so an
 * idle pool gives its cores back within SPIN_NS on any CPU. */
#include "compute/pool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"

#define SPIN_NS   50000 /* how long an idle thread spins before it sleeps */
#define GEN_BITS  24
#define N_BITS    20
#define IDX_BITS  20
#define IDX_MASK  ((1ull << IDX_BITS) - 1)
#define N_MASK    ((1ull << N_BITS) - 1)
#define MAX_ITEMS ((int)N_MASK)

typedef struct scratch_slot {
    void *ptr;
    size_t cap;
    char pad[64 - sizeof(void *) - sizeof(size_t)]; /* one cache line per slot */
} scratch_slot;

struct sp_pool {
    int n;
    pthread_t *threads;
    scratch_slot *slots; /* n + 1: slot 0 is SP_POOL_SHARED, then one per item */
    uint32_t gen;        /* caller only */

    /* written by the caller before it publishes `work` (release) */
    sp_pool_fn fn;
    void *ctx;
    atomic_int stop; /* read by workers after every wake */

    _Alignas(64) _Atomic uint64_t work; /* gen | n_items | next item */
    _Alignas(64) atomic_int done;       /* items finished in this run */
    atomic_int caller_sleeps;           /* the caller waits on `done` */
    _Alignas(64) atomic_int wake;       /* bumped once per run: workers' futex */
    atomic_int sleepers;                /* workers waiting on `wake` */
};

static inline uint64_t pack(uint32_t gen, int n, int idx) {
    return ((uint64_t)(gen & ((1u << GEN_BITS) - 1)) << (N_BITS + IDX_BITS)) |
           ((uint64_t)n << IDX_BITS) | (uint64_t)idx;
}

static void futex_wait(atomic_int *addr, int expected) {
    syscall(SYS_futex, (int *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(atomic_int *addr) {
    syscall(SYS_futex, (int *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Spins until *a != v or SPIN_NS pass; returns 1 if it changed. */
static int spin_while_equal(atomic_int *a, int v) {
    int64_t t0 = 0;
    for (int i = 0;; i++) {
        if (atomic_load_explicit(a, memory_order_acquire) != v) return 1;
        cpu_relax();
        if ((i & 63) == 63) { /* the clock read (vDSO) is amortised over 64 pauses */
            int64_t t = now_ns();
            if (!t0)
                t0 = t;
            else if (t - t0 > SPIN_NS)
                return 0;
        }
    }
}

/* Claims and runs items of the current run until none is left. */
static void drain(sp_pool *p) {
    uint64_t w = atomic_load_explicit(&p->work, memory_order_acquire);
    for (;;) {
        int n = (int)((w >> IDX_BITS) & N_MASK), idx = (int)(w & IDX_MASK);
        if (idx >= n) return;
        if (!atomic_compare_exchange_weak_explicit(&p->work, &w, w + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue; /* w now holds the current word */
        p->fn(p->ctx, idx, n);
        if (atomic_fetch_add_explicit(&p->done, 1, memory_order_seq_cst) + 1 == n &&
            atomic_load_explicit(&p->caller_sleeps, memory_order_seq_cst))
            futex_wake_all(&p->done);
        w = atomic_load_explicit(&p->work, memory_order_acquire);
    }
}

static void *worker_main(void *arg) {
    sp_pool *p = arg;
    int seen = 0;
    for (;;) {
        if (!spin_while_equal(&p->wake, seen)) {
            atomic_fetch_add_explicit(&p->sleepers, 1, memory_order_seq_cst);
            while (atomic_load_explicit(&p->wake, memory_order_seq_cst) == seen)
                futex_wait(&p->wake, seen);
            atomic_fetch_sub_explicit(&p->sleepers, 1, memory_order_relaxed);
        }
        seen = atomic_load_explicit(&p->wake, memory_order_acquire);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        drain(p);
    }
    return NULL;
}

/* Publishes a run (fn/ctx/stop already written) and wakes sleeping workers.
 * Item 0 is marked claimed: the caller runs it. */
static void publish(sp_pool *p, int n_items) {
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    p->gen++;
    atomic_store_explicit(&p->work, pack(p->gen, n_items, 1), memory_order_release);
    atomic_fetch_add_explicit(&p->wake, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&p->sleepers, memory_order_seq_cst) > 0) futex_wake_all(&p->wake);
}

static void wait_done(sp_pool *p, int n_items) {
    int64_t t0 = 0;
    for (int i = 0;; i++) {
        if (atomic_load_explicit(&p->done, memory_order_acquire) == n_items) return;
        cpu_relax();
        if ((i & 63) == 63) {
            int64_t t = now_ns();
            if (!t0)
                t0 = t;
            else if (t - t0 > SPIN_NS)
                break;
        }
    }
    atomic_store_explicit(&p->caller_sleeps, 1, memory_order_seq_cst);
    int d;
    while ((d = atomic_load_explicit(&p->done, memory_order_seq_cst)) != n_items)
        futex_wait(&p->done, d);
    atomic_store_explicit(&p->caller_sleeps, 0, memory_order_relaxed);
}

static void free_pool(sp_pool *p) {
    if (p->slots)
        for (int i = 0; i <= p->n; i++) sp_aligned_free(p->slots[i].ptr);
    free(p->slots);
    free(p->threads);
    free(p);
}

sp_pool *sp_pool_create(int n_threads) {
    if (n_threads < 1) return NULL;
    sp_pool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->n = n_threads;
    p->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    p->slots = calloc((size_t)n_threads + 1, sizeof(scratch_slot));
    if (!p->threads || !p->slots) {
        free_pool(p);
        return NULL;
    }
    atomic_init(&p->work, pack(0, 0, 0));
    atomic_init(&p->done, 0);
    atomic_init(&p->caller_sleeps, 0);
    atomic_init(&p->wake, 0);
    atomic_init(&p->sleepers, 0);
    for (int i = 1; i < n_threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
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

void sp_pool_run_n(sp_pool *p, sp_pool_fn fn, void *ctx, int n_items) {
    if (n_items > MAX_ITEMS) n_items = MAX_ITEMS;
    if (n_items < 1) return;
    if (!p || p->n == 1 || n_items == 1) {
        for (int i = 0; i < n_items; i++) fn(ctx, i, n_items);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    publish(p, n_items);
    fn(ctx, 0, n_items);
    atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel);
    drain(p);
    wait_done(p, n_items);
}

void sp_pool_run(sp_pool *p, sp_pool_fn fn, void *ctx) {
    sp_pool_run_n(p, fn, ctx, sp_pool_size(p));
}

void sp_pool_destroy(sp_pool *p) {
    if (!p) return;
    if (p->n > 1) {
        atomic_store_explicit(&p->stop, 1, memory_order_release);
        atomic_fetch_add_explicit(&p->wake, 1, memory_order_seq_cst);
        futex_wake_all(&p->wake);
        for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    }
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
