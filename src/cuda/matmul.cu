/* y[T][out] = x[T][in] . W^T for weights in any dtype.
 *
 * Paths, chosen per call:
 *  - GEMV (T <= 8, and quantized weights up to GEMV_MAX_T tokens in fast
 *    mode): one warp per output row streams the row once per group of 8
 *    tokens, dequantizing 32 values per lane and step; f32 activations,
 *    f32 accumulation. The decode path: it reads each weight once.
 *  - cuBLAS, f32 mode: the weight is dequantized to f32 a slice of rows at a
 *    time and multiplied with CUBLAS_COMPUTE_32F_PEDANTIC (no TF32).
 *  - cuBLAS, fast mode, bf16 weights: bf16 tensor cores, the activations
 *    split in two bf16 parts (see gemm_cublas), f32 accumulation. f16 and
 *    quantized weights past the GEMV sizes take the f32 path.
 * In fast mode, activations meeting a quantized weight are first rounded
 * to its partner type (Q8_0/Q8_1/Q8_K) as the CPU path and llama.cpp do. */
#include "cuda/dequant.cuh"
#include "cuda/internal.cuh"

#define GEMV_WARPS 4
#define GEMV_NT    8  /* tokens per pass over the weights */
#define GEMV_MAX_T 64 /* quantized weights in fast mode: GEMV up to here */

struct gemv_args {
    const uint8_t *w;                /* dense: the matrix */
    const uint8_t *const *w_experts; /* experts: pointer per expert */
    const int *sel;                  /* experts: expert of each slot */
    const float *x;
    const float *bias;
    float *y;
    int rows, cols, T, x_div;
    size_t row_bytes;
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float dot32(const float w[32], const float *x, int base, int n,
                                       bool vec) {
    float s = 0.0f;
    if (vec) {
#pragma unroll
        for (int i = 0; i < 8; i++) {
            float4 v = ((const float4 *)(x + base))[i];
            s += w[4 * i] * v.x + w[4 * i + 1] * v.y + w[4 * i + 2] * v.z + w[4 * i + 3] * v.w;
        }
    } else {
#pragma unroll
        for (int i = 0; i < 32; i++)
            if (base + i < n) s += w[i] * x[base + i];
    }
    return s;
}

/* Dense: blockIdx.y is a group of GEMV_NT tokens. Experts (sel != NULL):
 * blockIdx.y is one slot, reading x row slot / x_div. */
template <int DT, bool VEC>
__global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_kernel(gemv_args a) {
    int lane = threadIdx.x & 31;
    int o = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    if (o >= a.rows) return;
    const uint8_t *w = a.w;
    int t0 = blockIdx.y * GEMV_NT, nt = min(GEMV_NT, a.T - t0);
    const float *x = a.x;
    float *y = a.y;
    if (a.sel) {
        int slot = blockIdx.y;
        w = a.w_experts[a.sel[slot]];
        x += (size_t)(slot / a.x_div) * a.cols;
        y += (size_t)slot * a.rows;
        t0 = 0, nt = 1;
    } else {
        x += (size_t)t0 * a.cols;
        y += (size_t)t0 * a.rows;
    }
    const uint8_t *row = w + (size_t)o * a.row_bytes;
    float acc[GEMV_NT];
#pragma unroll
    for (int t = 0; t < GEMV_NT; t++) acc[t] = 0.0f;
    int nch = (a.cols + 31) / 32;
    for (int c = lane; c < nch; c += 32) {
        float wv[32];
        deq_chunk<DT, VEC>(row, c, a.cols, wv);
#pragma unroll
        for (int t = 0; t < GEMV_NT; t++)
            if (t < nt) acc[t] += dot32(wv, x + (size_t)t * a.cols, 32 * c, a.cols, VEC);
    }
#pragma unroll
    for (int t = 0; t < GEMV_NT; t++) {
        if (t >= nt) break;
        float s = warp_sum(acc[t]);
        if (lane == 0) y[(size_t)t * a.rows + o] = s + (a.bias ? a.bias[o] : 0.0f);
    }
}

/* 16-bit weights whose rows are a multiple of 256 values: lane l reads the
 * 16 bytes at values 8l + 256k, so each load instruction of the warp covers
 * 512 contiguous bytes, four of them in flight per lane (the decode path of
 * bf16 checkpoints, where the weights' bandwidth is the speed limit). */
#define H16_UNROLL 4

template <int DT>
__device__ __forceinline__ void unpack8(uint4 v, float w[8]) {
    uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
        if (DT == SP_BF16) {
            w[2 * j] = bf16_bits(u[j] & 0xffff);
            w[2 * j + 1] = bf16_bits(u[j] >> 16);
        } else {
            __half2_raw h;
            h.x = (unsigned short)(u[j] & 0xffff);
            h.y = (unsigned short)(u[j] >> 16);
            float2 f = __half22float2(__half2(h));
            w[2 * j] = f.x, w[2 * j + 1] = f.y;
        }
    }
}

template <int DT> __global__ void __launch_bounds__(GEMV_WARPS * 32) gemv16_kernel(gemv_args a) {
    int lane = threadIdx.x & 31;
    int o = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    if (o >= a.rows) return;
    int t0 = blockIdx.y * GEMV_NT, nt = min(GEMV_NT, a.T - t0);
    const float *x = a.x + (size_t)t0 * a.cols;
    float *y = a.y + (size_t)t0 * a.rows;
    const uint8_t *w = a.w;
    if (a.sel) { /* experts: blockIdx.y is a slot (see gemv_kernel) */
        int slot = blockIdx.y;
        w = a.w_experts[a.sel[slot]];
        x = a.x + (size_t)(slot / a.x_div) * a.cols;
        y = a.y + (size_t)slot * a.rows;
        nt = 1;
    }
    const uint4 *row = (const uint4 *)(w + (size_t)o * a.row_bytes);
    float acc[GEMV_NT];
#pragma unroll
    for (int t = 0; t < GEMV_NT; t++) acc[t] = 0.0f;
    int n16 = a.cols / 8; /* 16-byte words in the row */
    for (int i0 = lane; i0 < n16; i0 += 32 * H16_UNROLL) {
        uint4 v[H16_UNROLL];
#pragma unroll
        for (int u = 0; u < H16_UNROLL; u++)
            if (i0 + 32 * u < n16) v[u] = row[i0 + 32 * u];
#pragma unroll
        for (int u = 0; u < H16_UNROLL; u++) {
            int i = i0 + 32 * u;
            if (i >= n16) break;
            float w[8];
            unpack8<DT>(v[u], w);
#pragma unroll
            for (int t = 0; t < GEMV_NT; t++) {
                if (t >= nt) break;
                const float4 *xp = (const float4 *)(x + (size_t)t * a.cols + 8 * i);
                float4 p = xp[0], q = xp[1];
                acc[t] += w[0] * p.x + w[1] * p.y + w[2] * p.z + w[3] * p.w + w[4] * q.x +
                          w[5] * q.y + w[6] * q.z + w[7] * q.w;
            }
        }
    }
#pragma unroll
    for (int t = 0; t < GEMV_NT; t++) {
        if (t >= nt) break;
        float s = warp_sum(acc[t]);
        if (lane == 0) y[(size_t)t * a.rows + o] = s + (a.bias ? a.bias[o] : 0.0f);
    }
}

template <int DT>
static void launch_gemv_dt(cudaStream_t st, const gemv_args &a, bool vec, int groups) {
    dim3 grid((a.rows + GEMV_WARPS - 1) / GEMV_WARPS, groups);
    if ((DT == SP_BF16 || DT == SP_F16) && vec)
        gemv16_kernel<DT><<<grid, GEMV_WARPS * 32, 0, st>>>(a);
    else if (vec)
        gemv_kernel<DT, true><<<grid, GEMV_WARPS * 32, 0, st>>>(a);
    else
        gemv_kernel<DT, false><<<grid, GEMV_WARPS * 32, 0, st>>>(a);
}

static int is_float_type(sp_dtype t) {
    return t == SP_F32 || t == SP_F16 || t == SP_BF16;
}

static sp_status launch_gemv(cudaStream_t st, sp_dtype dt, const gemv_args &a, int groups,
                             sp_error *err) {
    /* 16-byte loads need aligned rows (the arena aligns every tensor) */
    bool vec = a.cols % 32 == 0 && a.row_bytes % 16 == 0;
    switch (dt) {
    case SP_F32: launch_gemv_dt<SP_F32>(st, a, vec, groups); break;
    case SP_F16: launch_gemv_dt<SP_F16>(st, a, vec, groups); break;
    case SP_BF16: launch_gemv_dt<SP_BF16>(st, a, vec, groups); break;
    case SP_Q8_0: launch_gemv_dt<SP_Q8_0>(st, a, vec, groups); break;
    case SP_Q4_0: launch_gemv_dt<SP_Q4_0>(st, a, vec, groups); break;
    case SP_Q4_1: launch_gemv_dt<SP_Q4_1>(st, a, vec, groups); break;
    case SP_Q5_0: launch_gemv_dt<SP_Q5_0>(st, a, vec, groups); break;
    case SP_Q4_K: launch_gemv_dt<SP_Q4_K>(st, a, vec, groups); break;
    case SP_Q5_K: launch_gemv_dt<SP_Q5_K>(st, a, vec, groups); break;
    case SP_Q6_K: launch_gemv_dt<SP_Q6_K>(st, a, vec, groups); break;
    default:
        return sp_fail(err, SP_EUNSUPPORTED, "cuda: no kernel for %s weights", sp_dtype_name(dt));
    }
    return sp_cuda_check(cudaGetLastError(), "gemv launch", err);
}

/* ---- dequantized slices for cuBLAS ------------------------------------------ */

template <int DT>
__global__ void dequant_rows_kernel(const uint8_t *w, size_t row_bytes, int cols, int r0, int n,
                                    void *dst, int to_bf16) {
    int nch = (cols + 31) / 32;
    size_t item = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (item >= (size_t)n * nch) return;
    int r = (int)(item / nch), c = (int)(item % nch);
    float v[32];
    deq_chunk<DT, false>(w + (size_t)(r0 + r) * row_bytes, c, cols, v);
    size_t base = (size_t)r * cols + 32 * c;
    for (int i = 0; i < 32 && 32 * c + i < cols; i++) {
        if (to_bf16)
            ((__nv_bfloat16 *)dst)[base + i] = __float2bfloat16_rn(v[i]);
        else
            ((float *)dst)[base + i] = v[i];
    }
}

void sp_cu_dequant_rows(cudaStream_t st, const dmat *W, int r0, int n, void *dst, int to_bf16) {
    size_t items = (size_t)n * ((W->cols + 31) / 32);
    unsigned blocks = (unsigned)((items + 255) / 256);
#define DQ(T)                                                                                      \
    case T:                                                                                        \
        dequant_rows_kernel<T><<<blocks, 256, 0, st>>>(W->p, W->row_bytes, W->cols, r0, n, dst,    \
                                                       to_bf16);                                   \
        break
    switch (W->dtype) {
        DQ(SP_F32);
        DQ(SP_F16);
        DQ(SP_BF16);
        DQ(SP_Q8_0);
        DQ(SP_Q4_0);
        DQ(SP_Q4_1);
        DQ(SP_Q5_0);
        DQ(SP_Q4_K);
        DQ(SP_Q5_K);
        DQ(SP_Q6_K);
    default:
        break;
    }
#undef DQ
}

/* ---- embeddings --------------------------------------------------------------- */

template <int DT>
__global__ void embed_kernel(const uint8_t *w, size_t row_bytes, int cols, const int32_t *ids,
                             float scale, float *out, int out_stride) {
    int t = blockIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
    if (32 * c >= cols) return;
    float v[32];
    deq_chunk<DT, false>(w + (size_t)ids[t] * row_bytes, c, cols, v);
    float *o = out + (size_t)t * out_stride + 32 * c;
    for (int i = 0; i < 32 && 32 * c + i < cols; i++) o[i] = v[i] * scale;
}

void sp_cu_embed(cudaStream_t st, const dmat *W, const int32_t *ids, int T, float scale,
                 float *out, int out_stride) {
    int nch = (W->cols + 31) / 32;
    dim3 grid((nch + 63) / 64, T);
#define EM(D)                                                                                      \
    case D:                                                                                        \
        embed_kernel<D><<<grid, 64, 0, st>>>(W->p, W->row_bytes, W->cols, ids, scale, out,          \
                                             out_stride);                                          \
        break
    switch (W->dtype) {
        EM(SP_F32);
        EM(SP_F16);
        EM(SP_BF16);
        EM(SP_Q8_0);
        EM(SP_Q4_0);
        EM(SP_Q4_1);
        EM(SP_Q5_0);
        EM(SP_Q4_K);
        EM(SP_Q5_K);
        EM(SP_Q6_K);
    default:
        break;
    }
#undef EM
}

/* ---- activation rounding to the partner type ------------------------------------ */

/* One block of 32 (Q8_0/Q8_1: scale amax/127 stored as f16, round half to
 * even) or 256 (Q8_K: scale -127/max of the signed extreme, d = 1/iscale in
 * f32, capped at 127) values per thread. */
__global__ void round_partner_kernel(float *xr, const float *x, int T, int n, int qk) {
    int nb = n / qk;
    int item = blockIdx.x * blockDim.x + threadIdx.x;
    if (item >= T * nb) return;
    const float *v = x + (size_t)(item / nb) * n + (size_t)(item % nb) * qk;
    float *o = xr + (size_t)(item / nb) * n + (size_t)(item % nb) * qk;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < qk; j++) {
        float a = fabsf(v[j]);
        if (a > amax) amax = a, max = v[j];
    }
    if (qk == 32) {
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        float d = __half2float(__float2half_rn(amax / 127.0f));
        for (int j = 0; j < qk; j++) o[j] = d * rintf(v[j] * id);
    } else {
        if (amax == 0.0f) {
            for (int j = 0; j < qk; j++) o[j] = 0.0f;
            return;
        }
        float iscale = -127.0f / max, d = 1.0f / iscale;
        for (int j = 0; j < qk; j++) o[j] = d * fminf(rintf(iscale * v[j]), 127.0f);
    }
}

int sp_cu_round_partner(cudaStream_t st, float *xr, const float *x, int T, int n, sp_dtype wt) {
    int qk;
    switch (wt) {
    case SP_Q8_0:
    case SP_Q4_0:
    case SP_Q5_0:
    case SP_Q4_1:
        qk = 32;
        break;
    case SP_Q4_K:
    case SP_Q5_K:
    case SP_Q6_K:
        qk = 256;
        break;
    default:
        return 0;
    }
    if (n % qk) return 0;
    int items = T * (n / qk);
    round_partner_kernel<<<(items + 127) / 128, 128, 0, st>>>(xr, x, T, n, qk);
    return 1;
}

/* ---- the matmul ----------------------------------------------------------------- */

/* f32: the weight (dequantized to f32 slices unless it is f32) times f32
 * activations, CUBLAS_COMPUTE_32F_PEDANTIC. Otherwise (bf16 weights, fast
 * mode): bf16 tensor cores on the activations split in two bf16 parts,
 * x = hi + lo, both multiplied into the same f32 result, so the
 * activations keep 16 bits of mantissa rather than 8 (one bf16 pass moved
 * the fixtures' logits by ~1e-2 of their range and flipped MoE routing). */
static sp_status gemm_cublas(sp_cuda *g, float *y, const float *x, int T, const dmat *W, int f32,
                             sp_error *err) {
    dscratch *s = &g->s;
    const float one = 1.0f, zero = 0.0f;
    size_t n_act = (size_t)T * W->cols;
    if (!f32) sp_cu_split_bf16(g->st, s->act16, (char *)s->act16 + 2 * n_act, x, n_act);
    cudaDataType ab = f32 ? CUDA_R_32F : CUDA_R_16BF;
    cublasComputeType_t ct = f32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
    int direct = f32 ? W->dtype == SP_F32 : W->dtype == SP_BF16;
    int slice = direct ? W->rows : (int)(s->wslice_elems / (size_t)W->cols);
    if (slice > W->rows) slice = W->rows;
    for (int r0 = 0; r0 < W->rows; r0 += slice) {
        int n = W->rows - r0 < slice ? W->rows - r0 : slice;
        const void *A = W->p + (size_t)r0 * W->row_bytes;
        if (!direct) {
            sp_cu_dequant_rows(g->st, W, r0, n, s->wslice, !f32);
            A = s->wslice;
        }
        /* column-major: C[n x T] = A^T[n x in] . B[in x T], once per part */
        for (int part = 0; part < (f32 ? 1 : 2); part++) {
            const void *B = f32 ? (const void *)x : (const char *)s->act16 + part * 2 * n_act;
            CUBLAS_TRY(cublasGemmEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, n, T, W->cols, &one, A, ab,
                                    W->cols, B, ab, W->cols, part ? &one : &zero, y + r0,
                                    CUDA_R_32F, W->rows, ct, CUBLAS_GEMM_DEFAULT),
                       err);
        }
    }
    return SP_OK;
}

/* exact: f32 arithmetic whatever the mode (MoE routers: a rounded router
 * logit flips which experts run). */
static sp_status matmul(sp_cuda *g, float *y, const float *x, int T, const dmat *W,
                        const float *bias, int exact, sp_error *err) {
    int quant = !is_float_type(W->dtype), fast = !g->f32 && !exact;
    if (fast && quant && sp_cu_round_partner(g->st, g->s.xr, x, T, W->cols, W->dtype))
        x = g->s.xr;
    if (T <= GEMV_NT || (quant && T <= GEMV_MAX_T)) {
        gemv_args a = {};
        a.w = W->p, a.x = x, a.bias = bias, a.y = y;
        a.rows = W->rows, a.cols = W->cols, a.T = T, a.x_div = 1, a.row_bytes = W->row_bytes;
        return launch_gemv(g->st, W->dtype, a, (T + GEMV_NT - 1) / GEMV_NT, err);
    }
    /* tensor cores for bf16 weights in fast mode; f32 for the rest (f32 and
     * f16 weights, quantized weights past GEMV_MAX_T tokens) */
    SP_TRY(gemm_cublas(g, y, x, T, W, !(fast && W->dtype == SP_BF16), err));
    if (bias) sp_cu_add_bias(g->st, y, bias, T, W->rows);
    return sp_cuda_check(cudaGetLastError(), "matmul", err);
}

sp_status sp_cu_matmul(sp_cuda *g, float *y, const float *x, int T, const dmat *W,
                       const float *bias, sp_error *err) {
    return matmul(g, y, x, T, W, bias, 0, err);
}

sp_status sp_cu_matmul_exact(sp_cuda *g, float *y, const float *x, int T, const dmat *W,
                             sp_error *err) {
    return matmul(g, y, x, T, W, NULL, 1, err);
}

sp_status sp_cu_matmul_experts(sp_cuda *g, float *y, const float *x, int x_div, int n_slots,
                               const int *sel, const dexperts *W, sp_error *err) {
    int quant = !is_float_type(W->dtype);
    int n_x = (n_slots + x_div - 1) / x_div;
    if (!g->f32 && quant && sp_cu_round_partner(g->st, g->s.xr, x, n_x, W->cols, W->dtype))
        x = g->s.xr;
    gemv_args a = {};
    a.w_experts = W->p, a.sel = sel, a.x = x, a.y = y;
    a.rows = W->rows, a.cols = W->cols, a.T = 1, a.x_div = x_div, a.row_bytes = W->row_bytes;
    return launch_gemv(g->st, W->dtype, a, n_slots, err);
}
