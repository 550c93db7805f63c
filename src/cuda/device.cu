/* The device: probing, the context, stream and cuBLAS handle, the owner
 * check, memory accounting and the K/V blocks. */
#include <string.h>

#include "cuda/internal.cuh"

extern "C" {
#include "base/log.h"
}

void sp_cuda_not_owner(const char *fn) {
    fprintf(stderr,
            "spindle: FATAL: %s called from a thread that does not own the CUDA backend "
            "(DESIGN.md section 1: only the engine thread that loaded the model may touch it)\n",
            fn);
    abort();
}

sp_status sp_cuda_check(cudaError_t e, const char *what, sp_error *err) {
    if (e == cudaSuccess) return SP_OK;
    sp_status s = e == cudaErrorMemoryAllocation ? SP_ENOMEM : SP_EINTERNAL;
    return sp_fail(err, s, "cuda: %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

sp_status sp_cublas_check(cublasStatus_t st, const char *what, sp_error *err) {
    if (st == CUBLAS_STATUS_SUCCESS) return SP_OK;
    return sp_fail(err, SP_EINTERNAL, "cublas: %s: %s", what, cublasGetStatusString(st));
}

extern "C" int sp_cuda_built(void) {
    return 1;
}

extern "C" int sp_cuda_probe(char *why, size_t why_len) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n <= 0) {
        if (why && why_len)
            snprintf(why, why_len, "no usable CUDA device: %s",
                     e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports none");
        return 0;
    }
    return n;
}

extern "C" const char *sp_cuda_name(const sp_cuda *g) {
    return g->name;
}

extern "C" int sp_cuda_kv_elem_bytes(const sp_cuda *g) {
    return g->kv_dtype == SP_F32 ? 4 : 2;
}

extern "C" void sp_cuda_mem_info(sp_cuda *g, sp_cuda_mem *out) {
    SP_CUDA_OWNED(g);
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    out->weights = g->arena_bytes;
    out->scratch = g->scratch_bytes;
    out->kv = g->kv_bytes;
    out->total = tot;
    out->free = fr;
}

/* ---- K/V blocks ------------------------------------------------------------------ */

extern "C" void sp_cuda_kv_free(sp_cuda *g, sp_cuda_kv *kv) {
    if (!kv) return;
    SP_CUDA_OWNED(g);
    for (int i = 0; i < kv->n_layers; i++) {
        if (kv->k && kv->k[i]) cudaFree(kv->k[i]);
        if (kv->v && kv->v[i]) cudaFree(kv->v[i]);
    }
    g->kv_bytes -= kv->bytes;
    for (int t = 0; t <= SP_CUDA_GRAPH_MAX; t++)
        if (kv->graph[t]) cudaGraphExecDestroy(kv->graph[t]);
    cudaFree(kv->meta);
    cudaFreeHost(kv->meta_host);
    free(kv->k);
    free(kv->v);
    free(kv->sliding);
    free(kv);
}

static sp_status kv_alloc(sp_cuda *g, sp_cuda_kv *kv, const unsigned char *sliding,
                          sp_error *err) {
    const sp_model_desc *d = g->d;
    size_t elem = (size_t)sp_cuda_kv_elem_bytes(g);
    for (int i = 0; i < d->n_layers; i++) {
        const sp_layer_desc *L = &d->layers[i];
        if (L->kv_source != i) continue;
        kv->sliding[i] = sliding ? sliding[i] : 0;
        int n = kv->sliding[i] ? kv->n_swa : kv->n_full;
        size_t bytes = (size_t)L->n_kv_heads * L->head_dim * elem * kv->block_size * n;
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        if (bytes * 2 > fr)
            return sp_fail(err, SP_ENOMEM,
                           "cuda: the KV cache does not fit: layer %d needs %.2f GiB for %d "
                           "blocks of %d tokens, %.2f GiB of GPU memory are free (lower "
                           "--kv-memory, --ctx-size or --parallel)",
                           i, 2.0 * bytes / (1 << 30), n, kv->block_size, fr / 1073741824.0);
        CU_TRY(cudaMalloc(&kv->k[i], bytes), err);
        CU_TRY(cudaMalloc(&kv->v[i], bytes), err);
        kv->bytes += 2 * bytes;
        g->kv_bytes += 2 * bytes;
    }
    /* one step's metadata: META_PER_TOKEN ints per token, then block tables */
    size_t ints = (size_t)META_PER_TOKEN * g->max_tokens + (size_t)kv->table_cap;
    CU_TRY(cudaMalloc(&kv->meta, ints * sizeof(int32_t)), err);
    CU_TRY(cudaMallocHost(&kv->meta_host, ints * sizeof(int32_t)), err);
    return SP_OK;
}

extern "C" sp_status sp_cuda_kv_create(sp_cuda_kv **out, sp_cuda *g, int n_full, int n_swa,
                                       int block_size, const unsigned char *sliding,
                                       sp_error *err) {
    SP_CUDA_OWNED(g);
    *out = NULL;
    sp_cuda_kv *kv = (sp_cuda_kv *)calloc(1, sizeof *kv);
    if (!kv) return sp_fail(err, SP_ENOMEM, "cuda: kv cache");
    int L = g->d->n_layers;
    kv->n_layers = L, kv->n_full = n_full, kv->n_swa = n_swa, kv->block_size = block_size;
    /* a step uploads, per sequence, the table entries up to its last new
     * token: a sequence never has more blocks than the pools hold */
    kv->table_cap = 2 * (n_full + n_swa) + 64;
    kv->k = (void **)calloc((size_t)L, sizeof(void *));
    kv->v = (void **)calloc((size_t)L, sizeof(void *));
    kv->sliding = (unsigned char *)calloc((size_t)L, 1);
    sp_status s = kv->k && kv->v && kv->sliding ? kv_alloc(g, kv, sliding, err)
                                                : sp_fail(err, SP_ENOMEM, "cuda: kv cache");
    if (s == SP_OK && !getenv("SPINDLE_NO_CUDA_GRAPHS")) s = sp_cu_capture_decode(g, kv, err);
    if (s != SP_OK) {
        sp_cuda_kv_free(g, kv);
        return s;
    }
    *out = kv;
    return SP_OK;
}

/* ---- bandwidth and GEMM probes (spindle bench --device cuda) -------------------- */

extern "C" sp_status sp_cuda_bench_probe(sp_cuda *g, size_t bytes, int dim, double *gbps,
                                         double *tflops, sp_error *err) {
    SP_CUDA_OWNED(g);
    void *a = NULL, *b = NULL, *c = NULL;
    cudaEvent_t e0, e1;
    CU_TRY(cudaEventCreate(&e0), err);
    CU_TRY(cudaEventCreate(&e1), err);
    sp_status s = sp_cuda_check(cudaMalloc(&a, bytes), "probe buffer", err);
    if (s == SP_OK) s = sp_cuda_check(cudaMalloc(&b, bytes), "probe buffer", err);
    float best = 1e30f, ms;
    for (int r = 0; s == SP_OK && r < 8; r++) {
        cudaEventRecord(e0, g->st);
        cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, g->st);
        cudaEventRecord(e1, g->st);
        s = sp_cuda_check(cudaEventSynchronize(e1), "probe copy", err);
        cudaEventElapsedTime(&ms, e0, e1);
        if (r > 0 && ms < best) best = ms; /* the first pass warms up */
    }
    *gbps = s == SP_OK ? 2.0 * bytes / (best * 1e-3) / 1e9 : 0.0;
    cudaFree(a), cudaFree(b);
    a = b = NULL;
    size_t n = (size_t)dim * dim;
    if (s == SP_OK) s = sp_cuda_check(cudaMalloc(&a, n * 2), "gemm probe", err);
    if (s == SP_OK) s = sp_cuda_check(cudaMalloc(&b, n * 2), "gemm probe", err);
    if (s == SP_OK) s = sp_cuda_check(cudaMalloc(&c, n * 4), "gemm probe", err);
    if (s == SP_OK) { /* random-ish bf16 data: zeros run faster than real data */
        sp_cu_dummy_fill(g->st, a, n, SP_BF16, 0x1000, 1.0f);
        sp_cu_dummy_fill(g->st, b, n, SP_BF16, 0x1000 + 2 * n, 1.0f);
    }
    const float one = 1.0f, zero = 0.0f;
    best = 1e30f;
    for (int r = 0; s == SP_OK && r < 6; r++) {
        cudaEventRecord(e0, g->st);
        s = sp_cublas_check(cublasGemmEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, dim, dim, dim, &one, a,
                                         CUDA_R_16BF, dim, b, CUDA_R_16BF, dim, &zero, c,
                                         CUDA_R_32F, dim, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                            "gemm probe", err);
        cudaEventRecord(e1, g->st);
        if (s == SP_OK) s = sp_cuda_check(cudaEventSynchronize(e1), "gemm probe", err);
        cudaEventElapsedTime(&ms, e0, e1);
        if (r > 0 && ms < best) best = ms;
    }
    *tflops = s == SP_OK ? 2.0 * (double)n * dim / (best * 1e-3) / 1e12 : 0.0;
    cudaFree(a), cudaFree(b), cudaFree(c);
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    return s;
}
