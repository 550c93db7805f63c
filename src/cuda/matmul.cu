/* y[T][out] = x[T][in] . W^T for weights in any dtype.
 *
 * Paths, chosen per call:
 *  - GEMV (T <= 8, and quantized weights up to GEMV_MAX_T tokens in fast
 *    mode): one warp per output row streams the row once per group of 8
 *    tokens, dequantizing 32 values per lane and step; f32 activations,
 *    f32 accumulation. The decode path: it reads each weight once.
 *  - cuBLAS, f32 mode: the weight is dequantized to f32 a slice of rows at a
 *    time and multiplied with CUBLAS_COMPUTE_32F_PEDANTIC (no TF32).
 *  - cuBLAS, fast mode: activations and weights in bf16 (bf16 weights are
 *    used as they are, others dequantized a slice at a time), f32
 *    accumulation on the tensor cores.
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

template <int DT>
static void launch_gemv_dt(cudaStream_t st, const gemv_args &a, bool vec, int groups) {
    dim3 grid((a.rows + GEMV_WARPS - 1) / GEMV_WARPS, groups);
    if (vec)
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

static sp_status gemm_cublas(sp_cuda *g, float *y, const float *x, int T, const dmat *W,
                             sp_error *err) {
    dscratch *s = &g->s;
    int bf16 = !g->f32;
    const float one = 1.0f, zero = 0.0f;
    if (bf16) sp_cu_to_bf16(g->st, s->act16, x, (size_t)T * W->cols);
    const void *B = bf16 ? s->act16 : (const void *)x;
    cudaDataType ab = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasComputeType_t ct = bf16 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_PEDANTIC;
    int direct = (bf16 && W->dtype == SP_BF16) || (!bf16 && W->dtype == SP_F32);
    int slice = direct ? W->rows : (int)(s->wslice_elems / (size_t)W->cols);
    if (slice > W->rows) slice = W->rows;
    for (int r0 = 0; r0 < W->rows; r0 += slice) {
        int n = W->rows - r0 < slice ? W->rows - r0 : slice;
        const void *A = W->p + (size_t)r0 * W->row_bytes;
        if (!direct) {
            sp_cu_dequant_rows(g->st, W, r0, n, s->wslice, bf16);
            A = s->wslice;
        }
        /* column-major: C[n x T] = A^T[n x in] . B[in x T] */
        CUBLAS_TRY(cublasGemmEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, n, T, W->cols, &one, A, ab,
                                W->cols, B, ab, W->cols, &zero, y + r0, CUDA_R_32F, W->rows, ct,
                                CUBLAS_GEMM_DEFAULT),
                   err);
    }
    return SP_OK;
}

sp_status sp_cu_matmul(sp_cuda *g, float *y, const float *x, int T, const dmat *W,
                       const float *bias, sp_error *err) {
    int quant = !is_float_type(W->dtype);
    if (!g->f32 && quant && sp_cu_round_partner(g->st, g->s.xr, x, T, W->cols, W->dtype))
        x = g->s.xr;
    int gemv = T <= GEMV_NT || (quant && !g->f32 && T <= GEMV_MAX_T);
    if (gemv) {
        gemv_args a = {};
        a.w = W->p, a.x = x, a.bias = bias, a.y = y;
        a.rows = W->rows, a.cols = W->cols, a.T = T, a.x_div = 1, a.row_bytes = W->row_bytes;
        return launch_gemv(g->st, W->dtype, a, (T + GEMV_NT - 1) / GEMV_NT, err);
    }
    SP_TRY(gemm_cublas(g, y, x, T, W, err));
    if (bias) sp_cu_add_bias(g->st, y, bias, T, W->rows);
    return sp_cuda_check(cudaGetLastError(), "matmul", err);
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
