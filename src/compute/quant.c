/* Chooses the dot/activation kernels of a weight type for an ISA level. */
#include <stdatomic.h>
#include <stddef.h>

#include "compute/cpu.h"
#include "compute/quant_internal.h"

/* The AVX-512 kernels also use VNNI (vpdpbusd), which the AVX-512 level of
 * sp_ops does not require; without it they are skipped for AVX2's. */
static int cpu_has_vnni(void) {
    static atomic_int cached = -1;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        sp_cpu_features f = sp_cpu_detect();
        v = f.avx512vnni && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.os_avx512 &&
            f.avx2 && f.fma && f.f16c;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v;
}

const sp_quant_kernels *sp_quant_get(sp_dtype t, sp_isa isa) {
    const sp_quant_kernels *k = NULL;
    if (isa >= SP_ISA_AVX512 && cpu_has_vnni()) k = sp_quant_avx512_table(t);
    if (!k && isa >= SP_ISA_AVX2) k = sp_quant_avx2_table(t);
    if (!k) k = sp_quant_scalar_table(t);
    return k;
}

int sp_quant_avx512_usable(void) {
    return cpu_has_vnni();
}

void sp_quant_dequantize_isa(sp_dtype t, sp_isa isa, const void *src, float *dst, int64_t n) {
    if (isa >= SP_ISA_AVX2 && sp_quant_dequantize_avx2(t, src, dst, n)) return;
    sp_quant_dequantize(t, src, dst, n);
}
