/* RoPE angles, per-head norm + RoPE, the K/V cache write and attention over
 * the block-paged cache: the device side of model/forward.c's
 * attention_block. K/V are f16 (or bf16, --kv-type) in fast mode and f32 in
 * f32 mode. */
#include <cuda_bf16.h>

#include "cuda/internal.cuh"

/* ---- RoPE angles (model/rope.c sp_rope_angles, per token and table) ----------- */

struct rope_params {
    const float *inv_freq, *inv_freq_long;
    int kind, n_pairs, rot_dim, orig_max, always_long;
    float theta, attn_factor, dyn_factor;
};

struct rope_set {
    rope_params r[SP_MAX_ROPE_TABLES];
    int n, max_pairs;
};

__global__ void rope_angles_kernel(rope_set rs, const int32_t *pos, const int32_t *len,
                                   float *cos_out, float *sin_out) {
    int t = blockIdx.x, r = blockIdx.y;
    const rope_params &p = rs.r[r];
    const float *w = p.inv_freq;
    int total = len[t];
    if (p.inv_freq_long && (p.always_long || total > p.orig_max)) w = p.inv_freq_long;
    int dynamic = p.kind == SP_ROPE_DYNAMIC && total > p.orig_max;
    float theta_scale = 1.0f;
    if (dynamic)
        theta_scale = (float)(p.theta * pow(p.dyn_factor * total / p.orig_max - (p.dyn_factor - 1),
                                            (double)p.rot_dim / (p.rot_dim - 2)));
    size_t off = ((size_t)t * rs.n + r) * rs.max_pairs;
    for (int i = threadIdx.x; i < p.n_pairs; i += blockDim.x) {
        float f = dynamic ? 1.0f / powf(theta_scale, (float)(2 * i) / (float)p.rot_dim) : w[i];
        float a = (float)pos[t] * f;
        cos_out[off + i] = cosf(a) * p.attn_factor;
        sin_out[off + i] = sinf(a) * p.attn_factor;
    }
}

void sp_cu_rope_angles(sp_cuda *g, const int32_t *pos, const int32_t *len, int T) {
    const sp_model_desc *d = g->d;
    if (!d->n_ropes || !T) return;
    rope_set rs = {};
    rs.n = d->n_ropes;
    rs.max_pairs = g->max_pairs;
    for (int r = 0; r < d->n_ropes; r++) {
        const sp_rope_table *h = &d->ropes[r];
        rs.r[r] = {g->ropes[r].inv_freq, g->ropes[r].inv_freq_long, (int)h->kind, h->n_pairs,
                   h->rot_dim, h->orig_max, h->always_long, h->theta, h->attn_factor,
                   h->dyn_factor};
    }
    dim3 grid(T, d->n_ropes);
    rope_angles_kernel<<<grid, 128, 0, g->st>>>(rs, pos, len, g->s.rope_cos, g->s.rope_sin);
}

/* ---- per-head RMSNorm and RoPE ---------------------------------------------------- */

struct head_args {
    float *x;
    const float *w; /* norm weight or NULL */
    const float *cos, *sin;
    int n_heads, hd, norm, rope, rot_dim, n_pairs, interleaved, n_ropes, max_pairs;
    float eps;
};

/* One block per (token, head), one thread per lane of the head. */
__global__ void head_norm_rope_kernel(head_args a) {
    int t = blockIdx.x, h = blockIdx.y, i = threadIdx.x;
    float *v = a.x + ((size_t)t * a.n_heads + h) * a.hd;
    __shared__ float row[1024];
    __shared__ double part[32];
    float x = i < a.hd ? v[i] : 0.0f;
    if (a.norm) {
        double ss = (double)(x * x);
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        if ((i & 31) == 0) part[i >> 5] = ss;
        __syncthreads();
        if (i == 0) {
            double s = 0.0;
            for (int w = 0; w < (int)(blockDim.x + 31) / 32; w++) s += part[w];
            part[0] = s;
        }
        __syncthreads();
        float r = 1.0f / sqrtf((float)(part[0] / a.hd) + a.eps);
        x = x * r;
        if (a.w && i < a.hd) x *= a.w[i];
    }
    if (i < a.hd) row[i] = x;
    __syncthreads();
    if (a.rope >= 0 && i < a.n_pairs) {
        size_t off = ((size_t)t * a.n_ropes + a.rope) * a.max_pairs;
        int half = a.rot_dim / 2;
        int i0 = a.interleaved ? 2 * i : i, i1 = a.interleaved ? 2 * i + 1 : i + half;
        float c = a.cos[off + i], s = a.sin[off + i], p = row[i0], q = row[i1];
        row[i0] = p * c - q * s;
        row[i1] = p * s + q * c;
    }
    __syncthreads();
    if (i < a.hd) v[i] = row[i];
}

void sp_cu_head_norm_rope(sp_cuda *g, float *x, int T, int n_heads, int hd, const float *w,
                          int norm, int rope) {
    if (!T || (!norm && rope < 0)) return;
    head_args a = {};
    a.x = x, a.w = w, a.cos = g->s.rope_cos, a.sin = g->s.rope_sin;
    a.n_heads = n_heads, a.hd = hd, a.norm = norm, a.rope = rope;
    a.n_ropes = g->d->n_ropes, a.max_pairs = g->max_pairs, a.eps = g->d->norm_eps;
    if (rope >= 0) {
        const sp_rope_table *r = &g->d->ropes[rope];
        a.rot_dim = r->rot_dim, a.n_pairs = r->n_pairs, a.interleaved = r->interleaved;
    }
    dim3 grid(T, n_heads);
    head_norm_rope_kernel<<<grid, ((hd + 31) / 32) * 32, 0, g->st>>>(a);
}

/* ---- the cache -------------------------------------------------------------------- */

template <typename KV> __device__ __forceinline__ KV to_kv(float v);
template <> __device__ __forceinline__ float to_kv<float>(float v) {
    return v;
}
template <> __device__ __forceinline__ __nv_bfloat16 to_kv<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}
template <> __device__ __forceinline__ __half to_kv<__half>(float v) {
    return __float2half_rn(v);
}
__device__ __forceinline__ float from_kv(float v) {
    return v;
}
__device__ __forceinline__ float from_kv(__nv_bfloat16 v) {
    return __bfloat162float(v);
}
__device__ __forceinline__ float from_kv(__half v) {
    return __half2float(v);
}

/* pos -> its row in the block-paged cache, through the token's table */
__device__ __forceinline__ size_t cache_row(const int32_t *table, int pos, int bs) {
    return (size_t)table[pos / bs] * bs + pos % bs;
}

template <typename KV>
__global__ void kv_write_kernel(KV *kc, KV *vc, const float *k, const float *v, int stride,
                                const int32_t *pos, const int32_t *tables, const int32_t *tab,
                                int bs) {
    int t = blockIdx.x;
    size_t row = cache_row(tables + tab[t], pos[t], bs) * stride;
    for (int j = threadIdx.x; j < stride; j += blockDim.x) {
        kc[row + j] = to_kv<KV>(k[(size_t)t * stride + j]);
        vc[row + j] = to_kv<KV>(v[(size_t)t * stride + j]);
    }
}

void sp_cu_kv_write(sp_cuda *g, sp_cuda_kv *kv, int l, const float *k, const float *v, int T,
                    const int32_t *pos, const int32_t *tables, const int32_t *tab) {
    const sp_layer_desc *L = &g->d->layers[l];
    int stride = L->n_kv_heads * L->head_dim;
    if (g->kv_dtype == SP_F32)
        kv_write_kernel<float><<<T, 128, 0, g->st>>>((float *)kv->k[l], (float *)kv->v[l], k, v,
                                                     stride, pos, tables, tab, kv->block_size);
    else if (g->kv_dtype == SP_F16)
        kv_write_kernel<__half><<<T, 128, 0, g->st>>>((__half *)kv->k[l], (__half *)kv->v[l], k, v,
                                                      stride, pos, tables, tab, kv->block_size);
    else
        kv_write_kernel<__nv_bfloat16><<<T, 128, 0, g->st>>>(
            (__nv_bfloat16 *)kv->k[l], (__nv_bfloat16 *)kv->v[l], k, v, stride, pos, tables, tab,
            kv->block_size);
}

/* ---- attention ---------------------------------------------------------------------- */

#define ATT_THREADS 128
#define ATT_TILE    64
#define ATT_MAX_HD  SP_CUDA_MAX_HEAD_DIM

struct attn_args {
    const float *q;
    float *out;
    const void *k, *v;
    const int32_t *pos, *span_end, *bidir_len, *tables, *tab;
    int n_heads, group, hd, stride, window, bs;
    float scale, softcap;
};

/* One block per (token, query head): the keys visible to the token are
 * scored a tile at a time (one warp per key), then an online softmax
 * folds the tile's values into each thread's lanes of the output. */
template <typename KV> __global__ void __launch_bounds__(ATT_THREADS) attn_kernel(attn_args a) {
    int t = blockIdx.x, h = blockIdx.y, kvh = h / a.group;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const KV *K = (const KV *)a.k, *V = (const KV *)a.v;
    const int32_t *table = a.tables + a.tab[t];
    int pos = a.pos[t], end = pos + 1, whole = a.bidir_len ? a.bidir_len[t] : 0;
    int begin = a.window > 0 && end > a.window ? end - a.window : 0;
    /* bidirectional (model/forward.c attn_worker): the whole input, or as
     * far ahead as the window reaches (|i - j| < window) */
    if (whole > 0) end = a.window > 0 && pos + a.window < whole ? pos + a.window : whole;
    if (a.span_end && a.span_end[t] > end) end = a.span_end[t]; /* inside an image */
    __shared__ float q[ATT_MAX_HD];
    __shared__ float p[ATT_TILE];
    const float *qg = a.q + ((size_t)t * a.n_heads + h) * a.hd;
    for (int i = threadIdx.x; i < a.hd; i += ATT_THREADS) q[i] = qg[i];
    float acc[ATT_MAX_HD / ATT_THREADS];
#pragma unroll
    for (int i = 0; i < ATT_MAX_HD / ATT_THREADS; i++) acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    __syncthreads();
    for (int k0 = begin; k0 < end; k0 += ATT_TILE) {
        int n = min(ATT_TILE, end - k0);
        for (int j = warp; j < n; j += ATT_THREADS / 32) {
            const KV *key = K + cache_row(table, k0 + j, a.bs) * a.stride + (size_t)kvh * a.hd;
            float s = 0.0f;
            for (int i = lane; i < a.hd; i += 32) s += q[i] * from_kv(key[i]);
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
            s *= a.scale;
            if (a.softcap > 0.0f) s = a.softcap * tanhf(s / a.softcap);
            if (lane == 0) p[j] = s;
        }
        __syncthreads();
        float tmax = -INFINITY;
        for (int j = 0; j < n; j++) tmax = fmaxf(tmax, p[j]);
        float newm = fmaxf(m, tmax);
        float corr = m == -INFINITY ? 0.0f : expf(m - newm);
        __syncthreads();
        if (threadIdx.x < n) p[threadIdx.x] = expf(p[threadIdx.x] - newm);
        __syncthreads();
        float psum = 0.0f;
        for (int j = 0; j < n; j++) psum += p[j];
        l = l * corr + psum;
#pragma unroll
        for (int i = 0; i < ATT_MAX_HD / ATT_THREADS; i++) {
            int d = threadIdx.x + i * ATT_THREADS;
            if (d >= a.hd) break;
            float s = acc[i] * corr;
            for (int j = 0; j < n; j++) {
                const KV *val =
                    V + cache_row(table, k0 + j, a.bs) * a.stride + (size_t)kvh * a.hd;
                s += p[j] * from_kv(val[d]);
            }
            acc[i] = s;
        }
        m = newm;
        __syncthreads();
    }
    float *o = a.out + ((size_t)t * a.n_heads + h) * a.hd;
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int i = 0; i < ATT_MAX_HD / ATT_THREADS; i++) {
        int d = threadIdx.x + i * ATT_THREADS;
        if (d < a.hd) o[d] = acc[i] * inv;
    }
}

void sp_cu_attention(sp_cuda *g, sp_cuda_kv *kv, int l, const float *q, float *out, int T,
                     const int32_t *pos, const int32_t *span_end, const int32_t *bidir_len,
                     const int32_t *tables, const int32_t *tab) {
    const sp_layer_desc *L = &g->d->layers[l];
    int src = L->kv_source;
    attn_args a = {};
    a.q = q, a.out = out, a.k = kv->k[src], a.v = kv->v[src];
    a.pos = pos, a.span_end = span_end, a.bidir_len = bidir_len, a.tables = tables, a.tab = tab;
    a.n_heads = L->n_heads, a.group = L->n_heads / L->n_kv_heads, a.hd = L->head_dim;
    a.stride = L->n_kv_heads * L->head_dim, a.window = L->sliding_window, a.bs = kv->block_size;
    a.scale = L->attn_scale, a.softcap = g->d->attn_softcap;
    dim3 grid(T, L->n_heads);
    if (g->kv_dtype == SP_F32)
        attn_kernel<float><<<grid, ATT_THREADS, 0, g->st>>>(a);
    else if (g->kv_dtype == SP_F16)
        attn_kernel<__half><<<grid, ATT_THREADS, 0, g->st>>>(a);
    else
        attn_kernel<__nv_bfloat16><<<grid, ATT_THREADS, 0, g->st>>>(a);
}
