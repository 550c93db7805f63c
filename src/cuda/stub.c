/* The CUDA backend's interface in a build without nvcc (CMake's
 * SP_CUDA=OFF): every device is reported unusable, and nothing else can be
 * reached (sp_cuda_load fails first, so no handle ever exists). */
#include <stdio.h>

#include "cuda/cuda.h"

#define NO_CUDA "this build has no CUDA backend (nvcc was not found when it was configured)"

int sp_cuda_built(void) {
    return 0;
}

int sp_cuda_probe(char *why, size_t why_len) {
    if (why && why_len) snprintf(why, why_len, "%s", NO_CUDA);
    return 0;
}

sp_status sp_cuda_load(sp_cuda **out, const sp_model_desc *d, const sp_cuda_opts *o,
                       sp_error *err) {
    (void)d, (void)o;
    *out = NULL;
    return sp_fail(err, SP_EUNSUPPORTED, "%s", NO_CUDA);
}

void sp_cuda_free(sp_cuda *g) {
    (void)g;
}

const char *sp_cuda_name(const sp_cuda *g) {
    (void)g;
    return "none";
}

int sp_cuda_kv_elem_bytes(const sp_cuda *g) {
    (void)g;
    return 4;
}

void sp_cuda_mem_info(sp_cuda *g, sp_cuda_mem *out) {
    (void)g;
    *out = (sp_cuda_mem){0};
}

sp_status sp_cuda_kv_create(sp_cuda_kv **out, sp_cuda *g, int n_full, int n_swa, int block_size,
                            const unsigned char *sliding, sp_error *err) {
    (void)g, (void)n_full, (void)n_swa, (void)block_size, (void)sliding;
    *out = NULL;
    return sp_fail(err, SP_EUNSUPPORTED, "%s", NO_CUDA);
}

void sp_cuda_kv_free(sp_cuda *g, sp_cuda_kv *kv) {
    (void)g, (void)kv;
}

sp_status sp_cuda_forward(sp_cuda *g, sp_cuda_kv *kv, const sp_seq_input *seqs, int n_seqs,
                          float *logits, sp_error *err) {
    (void)g, (void)kv, (void)seqs, (void)n_seqs, (void)logits;
    return sp_fail(err, SP_EUNSUPPORTED, "%s", NO_CUDA);
}

sp_status sp_cuda_bench_probe(sp_cuda *g, size_t bytes, int dim, double *gbps, double *tflops,
                              sp_error *err) {
    (void)g, (void)bytes, (void)dim, (void)gbps, (void)tflops;
    return sp_fail(err, SP_EUNSUPPORTED, "%s", NO_CUDA);
}
