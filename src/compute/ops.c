/* ISA selection and the thin public wrappers around the selected kernel
 * table. Before sp_ops_init the scalar table is used (correct, slow). */
#include "compute/ops.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "compute/cpu.h"
#include "compute/ops_internal.h"

static _Atomic(const sp_kernel_table *) g_kernels = &sp_kernels_scalar;
static _Atomic int g_isa = SP_ISA_SCALAR;

/* The AVX-512 tables hold what was written for AVX-512 (the prefill panel
 * GEMMs, f32 and bf16 pairs, and the VNNI integer GEMM for Q8_0 / Q4_0 /
 * Q4_K); the optional entries they lack (attention helpers, the panel
 * packing, the int16 integer GEMM) come from the AVX2 table, whose code runs
 * on every AVX-512 CPU. */
static sp_kernel_table g_avx512, g_avx512_bf16;
static pthread_once_t g_avx512_once = PTHREAD_ONCE_INIT;
static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;

static void borrow_avx2(sp_kernel_table *t, const sp_kernel_table *own) {
    const sp_kernel_table *b = &sp_kernels_avx2;
    *t = *own;
#define BORROW(f) (t->f = t->f ? t->f : b->f)
    BORROW(exp_shift_sum), BORROW(weighted_rows), BORROW(dot_rows);
    BORROW(pack_panel);
    BORROW(ipack), BORROW(iact), BORROW(igemm), BORROW(ipack4), BORROW(iact4), BORROW(igemm4);
#undef BORROW
}

static void build_avx512_tables(void) {
    borrow_avx2(&g_avx512, &sp_kernels_avx512);
    borrow_avx2(&g_avx512_bf16, &sp_kernels_avx512_bf16);
}

static const sp_kernel_table *table_for(sp_isa isa) {
    if (isa >= SP_ISA_AVX512) {
        pthread_once(&g_avx512_once, build_avx512_tables);
        return isa == SP_ISA_AVX512BF16 ? &g_avx512_bf16 : &g_avx512;
    }
    if (isa == SP_ISA_AVX2) return &sp_kernels_avx2;
    return &sp_kernels_scalar;
}

void sp_isa_missing(sp_isa isa, char *buf, size_t size) {
    if (size == 0) return;
    sp_cpu_features f = sp_cpu_detect();
    struct {
        sp_isa level;
        int have;
        const char *name;
    } need[] = {
        {SP_ISA_AVX2, f.os_avx, "OS AVX state"},
        {SP_ISA_AVX2, f.avx2, "avx2"},
        {SP_ISA_AVX2, f.fma, "fma"},
        {SP_ISA_AVX2, f.f16c, "f16c"},
        {SP_ISA_AVX512, f.os_avx512, "OS AVX-512 state"},
        {SP_ISA_AVX512, f.avx512f, "avx512f"},
        {SP_ISA_AVX512, f.avx512bw, "avx512bw"},
        {SP_ISA_AVX512, f.avx512vl, "avx512vl"},
        {SP_ISA_AVX512, f.avx512dq, "avx512dq"},
        {SP_ISA_AVX512BF16, f.avx512bf16, "avx512_bf16"},
    };
    size_t len = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (need[i].level <= isa && !need[i].have && len < size)
            len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? " " : "", need[i].name);
}

sp_isa sp_ops_cpu_max(void) {
    char miss[128];
    for (int l = SP_ISA_LEVELS - 1; l > SP_ISA_SCALAR; l--) {
        sp_isa_missing((sp_isa)l, miss, sizeof miss);
        if (!miss[0]) return (sp_isa)l;
    }
    return SP_ISA_SCALAR;
}

/* The one start-up line: which kernel table runs, and why that one. */
static void init_from_env(void) {
    const char *req = getenv("SPINDLE_ISA");
    sp_isa max = sp_ops_cpu_max(), want = max;
    char miss[128];
    if (req && *req && !sp_isa_parse(req, &want)) {
        SP_WARN("SPINDLE_ISA=%s is not a level (scalar, avx2, avx512, avx512bf16): ignored", req);
        req = NULL, want = max;
    }
    sp_ops_set_isa(want);
    if (!req || !*req)
        SP_INFO("compute kernels: %s (the best this CPU has; SPINDLE_ISA or --isa selects a lower "
                "level)",
                sp_isa_name(max));
    else if (want > max) {
        sp_isa_missing(want, miss, sizeof miss);
        SP_WARN("compute kernels: %s (SPINDLE_ISA=%s asked for more than this CPU has: it lacks "
                "%s)",
                sp_isa_name(max), req, miss);
    } else
        SP_INFO("compute kernels: %s (SPINDLE_ISA=%s; this CPU has up to %s)", sp_isa_name(want),
                req, sp_isa_name(max));
}

void sp_ops_init(void) {
    pthread_once(&g_init_once, init_from_env);
}

sp_isa sp_ops_isa(void) {
    return (sp_isa)atomic_load_explicit(&g_isa, memory_order_relaxed);
}

sp_isa sp_ops_set_isa(sp_isa isa) {
    sp_isa max = sp_ops_cpu_max();
    if ((int)isa > (int)max) isa = max;
    if ((int)isa < 0) isa = SP_ISA_SCALAR;
    atomic_store_explicit(&g_kernels, table_for(isa), memory_order_release);
    return (sp_isa)atomic_exchange_explicit(&g_isa, (int)isa, memory_order_acq_rel);
}

static const char *const g_isa_names[SP_ISA_LEVELS] = {"scalar", "avx2", "avx512", "avx512bf16"};

const char *sp_isa_name(sp_isa isa) {
    return (int)isa >= 0 && (int)isa < SP_ISA_LEVELS ? g_isa_names[isa] : "unknown";
}

int sp_isa_parse(const char *name, sp_isa *isa) {
    for (int l = 0; l < SP_ISA_LEVELS; l++)
        if (!strcmp(name, g_isa_names[l])) {
            *isa = (sp_isa)l;
            return 1;
        }
    return 0;
}

int sp_ops_has_bf16_dot(void) {
    return sp_ops_kernels()->gemm_bf16_pairs != NULL;
}

const sp_kernel_table *sp_ops_kernels(void) {
    return atomic_load_explicit(&g_kernels, memory_order_acquire);
}

void sp_rmsnorm(float *y, const float *x, const float *w, int n, float eps, int one_plus) {
    sp_ops_kernels()->rmsnorm(y, x, w, n, eps, one_plus);
}

void sp_rope(float *x, int n_heads, int head_dim, int rot_dim, int n_pairs, const float *cos,
             const float *sin, int interleaved) {
    sp_ops_kernels()->rope(x, n_heads, head_dim, rot_dim, n_pairs, cos, sin, interleaved);
}

void sp_softmax(float *x, int n) {
    sp_ops_kernels()->softmax(x, n);
}
void sp_silu_mul(float *g, const float *u, int n) {
    sp_ops_kernels()->silu_mul(g, u, n);
}
void sp_gelu_tanh_mul(float *g, const float *u, int n) {
    sp_ops_kernels()->gelu_tanh_mul(g, u, n);
}
void sp_softcap(float *x, int n, float cap) {
    sp_ops_kernels()->softcap(x, n, cap);
}
void sp_axpy(float *y, float a, const float *x, int n) {
    sp_ops_kernels()->axpy(y, a, x, n);
}
float sp_dot_f32(const float *a, const float *b, int n) {
    return sp_ops_kernels()->dot_f32(a, b, n);
}
