/* ISA selection and the thin public wrappers around the selected kernel
 * table. Before sp_ops_init the scalar table is used (correct, slow). */
#include "compute/ops.h"

#include <pthread.h>
#include <stdatomic.h>

#include "compute/cpu.h"
#include "compute/ops_internal.h"

static _Atomic(const sp_kernel_table *) g_kernels = &sp_kernels_scalar;
static _Atomic int g_isa = SP_ISA_SCALAR;

/* The AVX-512 tables hold what was written for AVX-512; the optional
 * entries they lack (attention helpers, the integer prefill GEMM) come from
 * the AVX2 table, whose code runs on every AVX-512 CPU. The f32 panel GEMM
 * is not borrowed: the AVX-512 gemm stays in charge of f32/f16/bf16
 * prefill there (not measured against each other: no AVX-512 CPU here). */
static sp_kernel_table g_avx512, g_avx512_bf16;
static pthread_once_t g_avx512_once = PTHREAD_ONCE_INIT;

static void borrow_avx2(sp_kernel_table *t, const sp_kernel_table *own) {
    const sp_kernel_table *b = &sp_kernels_avx2;
    *t = *own;
#define BORROW(f) (t->f = t->f ? t->f : b->f)
    BORROW(exp_shift_sum), BORROW(weighted_rows), BORROW(dot_rows);
    BORROW(ipack), BORROW(iact), BORROW(igemm), BORROW(ipack4), BORROW(iact4), BORROW(igemm4);
#undef BORROW
}

static void build_avx512_tables(void) {
    borrow_avx2(&g_avx512, &sp_kernels_avx512);
    borrow_avx2(&g_avx512_bf16, &sp_kernels_avx512_bf16);
}

static const sp_kernel_table *table_for(sp_isa isa) {
    if (isa == SP_ISA_AVX512) {
        pthread_once(&g_avx512_once, build_avx512_tables);
        return sp_cpu_detect().avx512bf16 ? &g_avx512_bf16 : &g_avx512;
    }
    if (isa == SP_ISA_AVX2) return &sp_kernels_avx2;
    return &sp_kernels_scalar;
}

sp_isa sp_ops_cpu_max(void) {
    sp_cpu_features f = sp_cpu_detect();
    int avx2 = f.os_avx && f.avx2 && f.fma && f.f16c;
    int avx512 = avx2 && f.os_avx512 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
    return avx512 ? SP_ISA_AVX512 : avx2 ? SP_ISA_AVX2 : SP_ISA_SCALAR;
}

void sp_ops_init(void) {
    sp_ops_set_isa(sp_ops_cpu_max());
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

const char *sp_isa_name(sp_isa isa) {
    switch (isa) {
    case SP_ISA_SCALAR:
        return "scalar";
    case SP_ISA_AVX2:
        return "avx2";
    case SP_ISA_AVX512:
        return "avx512";
    }
    return "unknown";
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
