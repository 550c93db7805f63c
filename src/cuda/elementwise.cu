/* Row and element kernels of the forward pass: norms, activations, adds,
 * soft-caps, MoE routing, Gemma 4's per-layer inputs. Each follows its CPU
 * reference in compute/kernels_scalar.c (same formula, same order of the
 * rounding steps that matter: RMSNorm sums squares in double). */
#include "cuda/internal.cuh"
#include "model/dummy.h"

static unsigned blocks_for(size_t n, int per) {
    return (unsigned)((n + per - 1) / per);
}

/* ---- RMSNorm: one block per row ----------------------------------------------- */

__global__ void rmsnorm_kernel(float *y, const float *x, const float *w, int n, int stride,
                               float eps) {
    const float *xr = x + (size_t)blockIdx.x * stride;
    float *yr = y + (size_t)blockIdx.x * stride;
    double ss = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) ss += (double)(xr[i] * xr[i]);
    __shared__ double part[32];
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        ss = threadIdx.x < (blockDim.x + 31) / 32 ? part[threadIdx.x] : 0.0;
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        if (threadIdx.x == 0) part[0] = ss;
    }
    __syncthreads();
    float r = 1.0f / sqrtf((float)(part[0] / n) + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = xr[i] * r;
        yr[i] = w ? v * w[i] : v;
    }
}

void sp_cu_rmsnorm(cudaStream_t st, float *y, const float *x, const float *w, int rows, int n,
                   int stride, float eps) {
    if (rows <= 0) return;
    int threads = n >= 1024 ? 1024 : ((n + 31) / 32) * 32;
    rmsnorm_kernel<<<rows, threads, 0, st>>>(y, x, w, n, stride, eps);
}

/* ---- element-wise ------------------------------------------------------------- */

__global__ void add_kernel(float *y, const float *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += x[i];
}

void sp_cu_add(cudaStream_t st, float *y, const float *x, size_t n) {
    if (n) add_kernel<<<blocks_for(n, 256), 256, 0, st>>>(y, x, n);
}

__global__ void scale_kernel(float *y, float a, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] *= a;
}

void sp_cu_scale(cudaStream_t st, float *y, float a, size_t n) {
    if (n) scale_kernel<<<blocks_for(n, 256), 256, 0, st>>>(y, a, n);
}

__device__ __forceinline__ float act(float x, int gelu) {
    if (!gelu) return x / (1.0f + expf(-x));
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

__global__ void act_mul_kernel(float *g, int gs, const float *u, int us, int rows, int n,
                               int gelu) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * n) return;
    size_t r = i / n, c = i % n;
    float *gp = g + r * gs + c;
    *gp = act(*gp, gelu) * u[r * us + c];
}

void sp_cu_act_mul_strided(cudaStream_t st, float *g, int g_stride, const float *u, int u_stride,
                           int rows, int n, int gelu) {
    size_t total = (size_t)rows * n;
    if (total)
        act_mul_kernel<<<blocks_for(total, 256), 256, 0, st>>>(g, g_stride, u, u_stride, rows, n,
                                                                gelu);
}

void sp_cu_act_mul(cudaStream_t st, float *g, const float *u, size_t n, int gelu) {
    sp_cu_act_mul_strided(st, g, (int)n, u, (int)n, 1, (int)n, gelu);
}

__global__ void softcap_kernel(float *x, size_t n, float cap) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = cap * tanhf(x[i] / cap);
}

void sp_cu_softcap(cudaStream_t st, float *x, size_t n, float cap) {
    if (n) softcap_kernel<<<blocks_for(n, 256), 256, 0, st>>>(x, n, cap);
}

__global__ void add_bias_kernel(float *y, const float *b, int rows, int n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)rows * n) y[i] += b[i % n];
}

void sp_cu_add_bias(cudaStream_t st, float *y, const float *b, int rows, int n) {
    size_t total = (size_t)rows * n;
    if (total) add_bias_kernel<<<blocks_for(total, 256), 256, 0, st>>>(y, b, rows, n);
}

/* y[r][i] *= w[i] * a (Gemma 4's router input scale) */
__global__ void scale_cols_kernel(float *y, const float *w, float a, int rows, int n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)rows * n) y[i] *= w[i % n] * a;
}

void sp_cu_scale_cols(cudaStream_t st, float *y, const float *w, float a, int rows, int n) {
    size_t total = (size_t)rows * n;
    if (total) scale_cols_kernel<<<blocks_for(total, 256), 256, 0, st>>>(y, w, a, rows, n);
}

__global__ void gather_rows_kernel(float *dst, const float *src, const int32_t *rows, int n_rows,
                                   int n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)n_rows * n) return;
    size_t r = i / n, c = i % n;
    dst[i] = src[(size_t)rows[r] * n + c];
}

void sp_cu_gather_rows(cudaStream_t st, float *dst, const float *src, const int32_t *rows,
                       int n_rows, int n) {
    size_t total = (size_t)n_rows * n;
    if (total)
        gather_rows_kernel<<<blocks_for(total, 256), 256, 0, st>>>(dst, src, rows, n_rows, n);
}

__global__ void split_bf16_kernel(__nv_bfloat16 *hi, __nv_bfloat16 *lo, const float *src,
                                  size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    __nv_bfloat16 h = __float2bfloat16_rn(src[i]);
    hi[i] = h;
    lo[i] = __float2bfloat16_rn(src[i] - __bfloat162float(h));
}

void sp_cu_split_bf16(cudaStream_t st, void *hi, void *lo, const float *src, size_t n) {
    if (n)
        split_bf16_kernel<<<blocks_for(n, 256), 256, 0, st>>>((__nv_bfloat16 *)hi,
                                                              (__nv_bfloat16 *)lo, src, n);
}

/* ---- MoE ------------------------------------------------------------------------ */

/* One thread per token: softmax over E experts, top-K with the lowest
 * index winning ties, optional renormalisation, per-expert scale
 * (model/forward.c route). E is small (at most a few hundred). */
__global__ void route_kernel(const float *logits, int T, int E, int K, int norm_topk,
                             const float *expert_scale, int *sel, float *selw) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= T) return;
    const float *p = logits + (size_t)t * E;
    float m = p[0];
    for (int e = 1; e < E; e++) m = fmaxf(m, p[e]);
    float s = 0.0f;
    for (int e = 0; e < E; e++) s += expf(p[e] - m);
    float inv = 1.0f / s, sum = 0.0f;
    int *st = sel + (size_t)t * K;
    float *wt = selw + (size_t)t * K;
    for (int k = 0; k < K; k++) {
        int best = -1;
        float bv = 0.0f;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int j = 0; j < k; j++) taken |= st[j] == e;
            float v = expf(p[e] - m) * inv;
            if (!taken && (best < 0 || v > bv)) best = e, bv = v;
        }
        st[k] = best;
        wt[k] = bv;
        sum += bv;
    }
    for (int k = 0; k < K; k++) {
        if (norm_topk) wt[k] /= sum;
        if (expert_scale) wt[k] *= expert_scale[st[k]];
    }
}

void sp_cu_route(cudaStream_t st, const float *logits, int T, int E, int K, int norm_topk,
                 const float *expert_scale, int *sel, float *selw) {
    if (T) route_kernel<<<blocks_for(T, 64), 64, 0, st>>>(logits, T, E, K, norm_topk, expert_scale,
                                                          sel, selw);
}

__global__ void moe_combine_kernel(float *out, const float *e, const float *w, int T, int K,
                                   int H) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * H) return;
    size_t t = i / H, c = i % H;
    float s = 0.0f;
    for (int k = 0; k < K; k++) s += w[t * K + k] * e[(t * K + k) * H + c];
    out[i] = s;
}

void sp_cu_moe_combine(cudaStream_t st, float *out, const float *e, const float *w, int T, int K,
                       int H) {
    size_t total = (size_t)T * H;
    if (total) moe_combine_kernel<<<blocks_for(total, 256), 256, 0, st>>>(out, e, w, T, K, H);
}

/* ---- Gemma 4 per-layer inputs ------------------------------------------------------ */

/* One block per (token, layer): p = norm(p / sqrt(H)) then
 * (p + emb * sqrt(P)) / sqrt(2). */
__global__ void ple_kernel(float *ple, const float *emb, const float *norm_w, int L, int P, int H,
                           float eps) {
    int t = blockIdx.x, l = blockIdx.y;
    float *p = ple + ((size_t)t * L + l) * P;
    const float *e = emb + ((size_t)t * L + l) * P;
    float ps = 1.0f / sqrtf((float)H), es = sqrtf((float)P);
    __shared__ double part[32];
    double ss = 0.0;
    for (int i = threadIdx.x; i < P; i += blockDim.x) {
        float v = p[i] * ps;
        ss += (double)(v * v);
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0.0;
        for (int w = 0; w < (int)(blockDim.x + 31) / 32; w++) s += part[w];
        part[0] = s;
    }
    __syncthreads();
    float r = 1.0f / sqrtf((float)(part[0] / P) + eps);
    for (int i = threadIdx.x; i < P; i += blockDim.x) {
        float v = p[i] * ps * r * norm_w[i];
        p[i] = (v + e[i] * es) * 0.70710678118654752f;
    }
}

void sp_cu_ple_combine(cudaStream_t st, float *ple, const float *emb, const float *norm_w, int T,
                       int L, int P, int H, float eps) {
    if (!T) return;
    dim3 grid(T, L);
    int threads = P >= 256 ? 256 : ((P + 31) / 32) * 32;
    ple_kernel<<<grid, threads, 0, st>>>(ple, emb, norm_w, L, P, H, eps);
}

/* ---- --load-format dummy ------------------------------------------------------------ */

__global__ void dummy_kernel(uint16_t *dst, size_t n, int f16, uint64_t key, float a) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint16_t b = sp_dummy_bf16(key + 2 * i, a);
    dst[i] = f16 ? __half_as_ushort(__float2half_rn(__uint_as_float((uint32_t)b << 16))) : b;
}

void sp_cu_dummy_fill(cudaStream_t st, void *dst, size_t n, sp_dtype dt, uint64_t key,
                      float a) {
    if (n)
        dummy_kernel<<<blocks_for(n, 256), 256, 0, st>>>((uint16_t *)dst, n, dt == SP_F16, key,
                                                         a);
}
