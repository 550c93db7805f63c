/* The CUDA backend (DESIGN.md section 8): one NVIDIA GPU running the same
 * decoder as model/forward.c, read from the same sp_model_desc.
 *
 * Ownership: sp_cuda_load makes the CUDA context current, creates the
 * stream, the cuBLAS handle, the device weights, the RoPE tables and every
 * scratch buffer, on the calling thread, which becomes the owner. Every
 * entry point below checks that it is called on that thread and aborts
 * with a message otherwise (the bug the design exists to prevent: GPU
 * state reached from a thread that did not create it). Nothing is created
 * lazily: after load a forward allocates nothing.
 *
 * model/ calls this layer; this layer reads only model_desc's data types
 * (model/desc.h, model/batch.h). A build without nvcc links cuda/stub.c,
 * whose functions say that the build has no CUDA backend. */
#ifndef SP_CUDA_CUDA_H
#define SP_CUDA_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "model/batch.h"
#include "model/desc.h"

typedef struct sp_cuda sp_cuda;
typedef struct sp_cuda_kv sp_cuda_kv;

typedef struct sp_cuda_opts {
    int device;        /* CUDA device number */
    int f32;           /* --precision f32: f32 arithmetic and K/V, no tensor cores, no TF32 */
    int dummy;         /* --load-format dummy: weights other than f32 get random values made
                          on the device (model/dummy.h), nothing is read from the host */
    int max_tokens;    /* tokens one forward chunk holds; scratch is sized for it at load */
    sp_dtype kv_dtype; /* K/V cache: SP_F16 (fast mode's default), SP_BF16 or SP_F32 */
    /* dummy: the key of a weight's first value (model/dummy.h), from its host address */
    uint64_t (*dummy_key)(const void *ctx, const void *host);
    const void *dummy_ctx;
} sp_cuda_opts;

/* 1 when this build has the CUDA backend. */
int sp_cuda_built(void);
/* Number of usable CUDA devices; 0 with the reason in why when there is
 * none (no driver, no device, a build without CUDA). Any thread. */
int sp_cuda_probe(char *why, size_t why_len);

/* Uploads every tensor of d (weights in their file dtype, tensor by tensor
 * through a pinned staging buffer) and creates the device state. Fails
 * with a message naming the bytes needed and free when the model does not
 * fit. The calling thread becomes the owner. */
sp_status sp_cuda_load(sp_cuda **out, const sp_model_desc *d, const sp_cuda_opts *o, sp_error *err);
void sp_cuda_free(sp_cuda *g);
/* "NVIDIA H100 80GB HBM3" */
const char *sp_cuda_name(const sp_cuda *g);
/* Bytes of one K or V element in the cache (2: f16/bf16, 4: f32). */
int sp_cuda_kv_elem_bytes(const sp_cuda *g);

typedef struct sp_cuda_mem {
    uint64_t weights, scratch, kv, total, free;
} sp_cuda_mem;
void sp_cuda_mem_info(sp_cuda *g, sp_cuda_mem *out);

/* K/V blocks on the device: layers with sliding[l] == 1 get n_swa blocks,
 * the other layers that own K/V get n_full (sliding may be NULL: all full);
 * layers reading another layer's K/V get none. */
sp_status sp_cuda_kv_create(sp_cuda_kv **out, sp_cuda *g, int n_full, int n_swa, int block_size,
                            const unsigned char *sliding, sp_error *err);
void sp_cuda_kv_free(sp_cuda *g, sp_cuda_kv *kv);

/* One batch, as sp_model_forward (the caller has checked the batch):
 * logits rows are copied back to host memory. */
sp_status sp_cuda_forward(sp_cuda *g, sp_cuda_kv *kv, const sp_seq_input *seqs, int n_seqs,
                          float *logits, sp_error *err);

/* Benchmarks: read bandwidth of the device (a device-to-device copy of
 * bytes, counting bytes read + written, best of reps) in GB/s, and the
 * bf16 dense GEMM rate (m = n = k = dim through cuBLAS) in TFLOP/s. */
sp_status sp_cuda_bench_probe(sp_cuda *g, size_t bytes, int dim, double *gbps, double *tflops,
                              sp_error *err);

#endif
