/* ISA selection and the thin public wrappers around the selected kernel
 * table. Before sp_ops_init the scalar table is used (correct, slow). */
#include "compute/ops.h"

#include <stdatomic.h>

#include "compute/cpu.h"
#include "compute/ops_internal.h"

static _Atomic(const sp_kernel_table *) g_kernels = &sp_kernels_scalar;
static _Atomic int g_isa = SP_ISA_SCALAR;

static const sp_kernel_table *table_for(sp_isa isa) {
    if (isa == SP_ISA_AVX512)
        return sp_cpu_detect().avx512bf16 ? &sp_kernels_avx512_bf16 : &sp_kernels_avx512;
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
