/* Loading onto the device: the context, stream and cuBLAS handle, every
 * weight of the description uploaded in its file dtype into one arena
 * (tensor by tensor through two pinned staging buffers, so host memory
 * never holds a second copy of the model), the RoPE tables, and scratch
 * for max_tokens tokens. All on the calling thread, which then owns it. */
#include <math.h>
#include <string.h>

#include "cuda/internal.cuh"

extern "C" {
#include "base/clock.h"
#include "base/log.h"
}

#define ALIGN      256
#define STAGE      (64u << 20) /* bytes per pinned staging buffer */
#define WSLICE_MAX (64u << 20) /* elements of a dequantized weight slice */

static size_t align_up(size_t n) {
    return (n + ALIGN - 1) / ALIGN * ALIGN;
}

/* ---- the upload walk ---------------------------------------------------------- */

struct seen_t {
    const void *host;
    size_t bytes;
    const uint8_t *dev;
};

/* Two passes over the description: pass 0 sizes the arena, pass 1 fills
 * it. A host region seen before (tied embeddings) is uploaded once. */
struct upload {
    sp_cuda *g;
    int pass, dummy;
    uint64_t (*key)(const void *ctx, const void *host); /* dummy values' keys */
    const void *key_ctx;
    size_t off;
    seen_t *seen;
    int n_seen, cap_seen;
    uint8_t *stage[2];
    cudaEvent_t ev[2];
    int cur;
    size_t done;
    double t0;
    int shown;
    sp_error *err;
    sp_status s;
};

static const uint8_t *find_seen(upload *u, const void *h, size_t n) {
    for (int i = 0; i < u->n_seen; i++)
        if (u->seen[i].host == h && u->seen[i].bytes == n) return u->seen[i].dev;
    return NULL;
}

static void remember(upload *u, const void *h, size_t n, const uint8_t *d) {
    if (u->n_seen == u->cap_seen) {
        int cap = u->cap_seen ? 2 * u->cap_seen : 256;
        seen_t *p = (seen_t *)realloc(u->seen, (size_t)cap * sizeof *p);
        if (!p) return; /* only costs a duplicate upload */
        u->seen = p, u->cap_seen = cap;
    }
    u->seen[u->n_seen++] = {h, n, d};
}

static void progress(upload *u, size_t n) {
    u->done += n;
    int pct = (int)(100.0 * u->done / (double)(u->g->arena_bytes ? u->g->arena_bytes : 1));
    if (pct / 10 > u->shown / 10 && u->done > (256u << 20)) {
        u->shown = pct;
        SP_INFO("cuda: uploading weights: %.1f of %.1f GiB (%d%%)", u->done / 1073741824.0,
                u->g->arena_bytes / 1073741824.0, pct);
    }
}

/* Host bytes into device memory through the pinned buffers, alternating so
 * that one is filled while the other is in flight. */
static sp_status copy_in(upload *u, uint8_t *dst, const uint8_t *src, size_t n) {
    for (size_t o = 0; o < n; o += STAGE) {
        size_t c = n - o < STAGE ? n - o : STAGE;
        int b = u->cur;
        u->cur ^= 1;
        CU_TRY(cudaEventSynchronize(u->ev[b]), u->err);
        memcpy(u->stage[b], src + o, c);
        CU_TRY(cudaMemcpyAsync(dst + o, u->stage[b], c, cudaMemcpyHostToDevice, u->g->st), u->err);
        CU_TRY(cudaEventRecord(u->ev[b], u->g->st), u->err);
    }
    return SP_OK;
}

/* The device address of n host bytes (placed and filled in pass 1).
 * cols: the row length of a weight (for dummy values), 0 for raw data. */
static const uint8_t *place(upload *u, const void *host, size_t n, sp_dtype dt, int64_t cols) {
    if (!host || !n || u->s != SP_OK) return NULL;
    const uint8_t *d = find_seen(u, host, n);
    if (d) return d;
    uint8_t *dst = u->g->arena + u->off;
    u->off += align_up(n);
    if (u->pass == 1) {
        if (u->dummy && cols > 0 && dt != SP_F32)
            sp_cu_dummy_fill(u->g->st, dst, n / 2, dt, u->key(u->key_ctx, host),
                             sqrtf(3.0f / (float)cols));
        else
            u->s = copy_in(u, dst, (const uint8_t *)host, n);
        progress(u, n);
    }
    remember(u, host, n, dst);
    return dst;
}

static void mat(upload *u, const sp_tensor *t, dmat *out) {
    memset(out, 0, sizeof *out);
    if (!t->data) return;
    if (t->packed && u->s == SP_OK)
        u->s = sp_fail(u->err, SP_EINTERNAL, "cuda: a weight was repacked for the CPU");
    out->dtype = t->dtype;
    out->rows = (int)sp_tensor_rows(t);
    out->cols = (int)sp_tensor_cols(t);
    out->row_bytes = sp_dtype_row_bytes(t->dtype, out->cols);
    out->p = place(u, t->data, out->row_bytes * (size_t)out->rows, t->dtype, out->cols);
}

static const float *vec(upload *u, const sp_tensor *t) {
    if (!t->data) return NULL;
    if (t->dtype != SP_F32 && u->s == SP_OK)
        u->s = sp_fail(u->err, SP_EINTERNAL, "cuda: a norm or bias is not f32");
    return (const float *)place(u, t->data, t->nbytes, SP_F32, 0);
}

/* E views of one shape and dtype, and a device array of their addresses. */
static void experts(upload *u, const sp_tensor *v, int E, dexperts *out) {
    memset(out, 0, sizeof *out);
    const uint8_t **ptrs = (const uint8_t **)calloc((size_t)E, sizeof *ptrs);
    if (!ptrs) {
        if (u->s == SP_OK) u->s = sp_fail(u->err, SP_ENOMEM, "cuda: expert table");
        return;
    }
    dmat m;
    for (int e = 0; e < E; e++) {
        mat(u, &v[e], &m);
        if (e == 0) out->dtype = m.dtype, out->rows = m.rows, out->cols = m.cols;
        if ((m.dtype != out->dtype || m.rows != out->rows || m.cols != out->cols) && u->s == SP_OK)
            u->s = sp_fail(u->err, SP_EUNSUPPORTED,
                           "cuda: expert %d of a layer differs in dtype or shape from expert 0", e);
        ptrs[e] = m.p;
    }
    out->row_bytes = sp_dtype_row_bytes(out->dtype, out->cols);
    uint8_t *dst = u->g->arena + u->off;
    u->off += align_up((size_t)E * sizeof *ptrs);
    if (u->pass == 1 && u->s == SP_OK)
        u->s = sp_cuda_check(cudaMemcpyAsync(dst, ptrs, (size_t)E * sizeof *ptrs,
                                             cudaMemcpyHostToDevice, u->g->st),
                             "expert table", u->err);
    if (u->pass == 1 && u->s == SP_OK) /* ptrs is freed next: wait for the copy */
        u->s = sp_cuda_check(cudaStreamSynchronize(u->g->st), "expert table", u->err);
    out->p = (const uint8_t *const *)dst;
    free(ptrs);
}

static void walk_layer(upload *u, int i) {
    const sp_layer_desc *L = &u->g->d->layers[i];
    dlayer *D = &u->g->L[i];
    D->attn_norm = vec(u, &L->attn_norm), D->post_attn_norm = vec(u, &L->post_attn_norm);
    D->pre_ffn_norm = vec(u, &L->pre_ffn_norm), D->post_ffn_norm = vec(u, &L->post_ffn_norm);
    D->q_norm = vec(u, &L->q_norm), D->k_norm = vec(u, &L->k_norm);
    D->bq = vec(u, &L->bq), D->bk = vec(u, &L->bk), D->bv = vec(u, &L->bv), D->bo = vec(u, &L->bo);
    D->router_scale = vec(u, &L->router_scale), D->expert_scale = vec(u, &L->expert_scale);
    D->pre_ffn_norm2 = vec(u, &L->pre_ffn_norm2), D->post_ffn_norm1 = vec(u, &L->post_ffn_norm1);
    D->post_ffn_norm2 = vec(u, &L->post_ffn_norm2), D->ple_post_norm = vec(u, &L->ple_post_norm);
    mat(u, &L->wq, &D->wq), mat(u, &L->wk, &D->wk), mat(u, &L->wv, &D->wv);
    mat(u, &L->wo, &D->wo);
    mat(u, &L->w_gate, &D->gate), mat(u, &L->w_up, &D->up), mat(u, &L->w_down, &D->down);
    mat(u, &L->router, &D->router);
    mat(u, &L->ple_gate, &D->ple_gate), mat(u, &L->ple_proj, &D->ple_proj);
    if (L->n_experts) {
        experts(u, L->exp_gate, L->n_experts, &D->eg);
        experts(u, L->exp_up, L->n_experts, &D->eu);
        experts(u, L->exp_down, L->n_experts, &D->ed);
    }
}

static void walk(upload *u) {
    sp_cuda *g = u->g;
    const sp_model_desc *d = g->d;
    u->off = 0;
    u->n_seen = 0;
    mat(u, &d->tok_embd, &g->tok_embd);
    g->out_norm = vec(u, &d->out_norm);
    mat(u, &d->output, &g->output);
    if (d->ple_dim) {
        mat(u, &d->ple_embd, &g->ple_embd);
        mat(u, &d->ple_model_proj, &g->ple_model_proj);
        g->ple_proj_norm = vec(u, &d->ple_proj_norm);
    }
    for (int r = 0; r < d->n_ropes; r++) {
        size_t n = (size_t)d->ropes[r].n_pairs * sizeof(float);
        g->ropes[r].inv_freq = (const float *)place(u, d->ropes[r].inv_freq, n, SP_F32, 0);
        g->ropes[r].inv_freq_long = (const float *)place(u, d->ropes[r].inv_freq_long, n, SP_F32, 0);
    }
    for (int i = 0; i < d->n_layers && u->s == SP_OK; i++) walk_layer(u, i);
}

static sp_status upload_weights(sp_cuda *g, const sp_cuda_opts *o, sp_error *err) {
    int dummy = o->dummy;
    upload u = {};
    u.g = g, u.dummy = dummy, u.err = err, u.s = SP_OK;
    u.key = o->dummy_key, u.key_ctx = o->dummy_ctx;
    if (dummy && !u.key) return sp_fail(err, SP_EINVAL, "cuda: dummy weights need a key function");
    walk(&u); /* pass 0: sizes (arena is NULL; only offsets are computed) */
    SP_TRY(u.s);
    g->arena_bytes = u.off;
    size_t fr = 0, tot = 0;
    CU_TRY(cudaMemGetInfo(&fr, &tot), err);
    if (g->arena_bytes + (256u << 20) > fr)
        return sp_fail(err, SP_ENOMEM,
                       "cuda:%d: the model does not fit: its weights need %.2f GiB, %.2f GiB of "
                       "the GPU's %.2f GiB are free",
                       g->device, g->arena_bytes / 1073741824.0, fr / 1073741824.0,
                       tot / 1073741824.0);
    CU_TRY(cudaMalloc(&g->arena, g->arena_bytes), err);
    for (int b = 0; b < 2; b++) {
        CU_TRY(cudaMallocHost(&u.stage[b], STAGE), err);
        CU_TRY(cudaEventCreateWithFlags(&u.ev[b], cudaEventDisableTiming), err);
        CU_TRY(cudaEventRecord(u.ev[b], g->st), err);
    }
    u.pass = 1;
    u.t0 = sp_now_ms();
    walk(&u);
    sp_status s = u.s;
    if (s == SP_OK) s = sp_cuda_check(cudaStreamSynchronize(g->st), "weight upload", err);
    for (int b = 0; b < 2; b++) {
        cudaFreeHost(u.stage[b]);
        cudaEventDestroy(u.ev[b]);
    }
    free(u.seen);
    if (s == SP_OK) {
        double sec = (sp_now_ms() - u.t0) / 1e3;
        SP_INFO("cuda: %.2f GiB of weights %s in %.1f s (%.1f GB/s)",
                g->arena_bytes / 1073741824.0, dummy ? "made (--load-format dummy)" : "uploaded",
                sec, sec > 0 ? g->arena_bytes / sec / 1e9 : 0.0);
    }
    return s;
}

/* ---- scratch -------------------------------------------------------------------- */

static void measure(sp_cuda *g) {
    const sp_model_desc *d = g->d;
    g->max_ffn = d->ple_dim;
    g->max_experts = 1, g->max_used = 1;
    for (int i = 0; i < d->n_layers; i++) {
        const sp_layer_desc *L = &d->layers[i];
        int q = L->n_heads * L->head_dim, kv = L->n_kv_heads * L->head_dim;
        if (q > g->max_q) g->max_q = q;
        if (kv > g->max_kv) g->max_kv = kv;
        if (L->ffn_dim > g->max_ffn) g->max_ffn = L->ffn_dim;
        if (L->expert_ffn_dim > g->max_ffn) g->max_ffn = L->expert_ffn_dim;
        if (L->n_experts > g->max_experts) g->max_experts = L->n_experts;
        if (L->n_experts_used > g->max_used) g->max_used = L->n_experts_used;
    }
    for (int i = 0; i < d->n_layers; i++) g->media_bidir |= d->layers[i].media_bidir;
    g->max_pairs = 1;
    for (int r = 0; r < d->n_ropes; r++)
        if (d->ropes[r].n_pairs > g->max_pairs) g->max_pairs = d->ropes[r].n_pairs;
}

/* Largest matrix that takes the cuBLAS path with a dequantized slice. */
static size_t max_matrix(const sp_cuda *g) {
    const sp_model_desc *d = g->d;
    size_t m = (size_t)d->vocab * d->hidden;
    for (int i = 0; i < d->n_layers; i++) {
        const sp_layer_desc *L = &d->layers[i];
        size_t f = (size_t)(L->ffn_dim > L->n_heads * L->head_dim ? L->ffn_dim
                                                                   : L->n_heads * L->head_dim);
        if (f * d->hidden > m) m = f * d->hidden;
    }
    return m;
}

/* Carves the scratch out of base (NULL: only counts); returns its bytes. */
static size_t scratch_plan(sp_cuda *g, uint8_t *base) {
    const sp_model_desc *d = g->d;
    dscratch *s = &g->s;
    size_t N = (size_t)g->max_tokens, H = (size_t)d->hidden, I = (size_t)g->max_ffn;
    size_t W = H > (size_t)g->max_q ? H : (size_t)g->max_q, K = (size_t)g->max_used;
    size_t LP = (size_t)d->n_layers * (size_t)d->ple_dim, E = (size_t)g->max_experts;
    size_t R = (size_t)(d->n_ropes ? d->n_ropes : 1) * (size_t)g->max_pairs;
    int moe = g->max_experts > 1;
    size_t XE = moe ? N * K : 1, widest = W > I ? W : I;
    size_t off = 0;
    auto take = [&](size_t bytes) -> void * {
        void *p = base ? base + off : NULL;
        off += align_up(bytes ? bytes : 1);
        return p;
    };
    size_t f = sizeof(float);
    s->x = (float *)take(N * H * f), s->xb = (float *)take(N * W * f);
    s->xb2 = (float *)take(N * W * f);
    s->xr = (float *)take((moe && XE * I > N * widest ? XE * I : N * widest) * f);
    s->q = (float *)take(N * g->max_q * f), s->k = (float *)take(N * g->max_kv * f);
    s->v = (float *)take(N * g->max_kv * f), s->att = (float *)take(N * g->max_q * f);
    s->gate = (float *)take(N * I * f), s->up = (float *)take(N * I * f);
    s->ffn_out = (float *)take(N * H * f), s->moe_out = (float *)take(N * H * f);
    s->router = (float *)take(N * E * f);
    s->ple = (float *)take(N * LP * f), s->ple_tmp = (float *)take(N * LP * f);
    s->rope_cos = (float *)take(N * R * f), s->rope_sin = (float *)take(N * R * f);
    s->sel = (int *)take(N * K * sizeof(int)), s->selw = (float *)take(N * K * f);
    s->eg = (float *)take(XE * I * f), s->eu = (float *)take(XE * I * f);
    s->eo = (float *)take(XE * H * f);
    /* logits: as many rows as fit in 256 MiB, at least one */
    size_t rows = ((size_t)256 << 20) / ((size_t)d->vocab * f);
    s->logit_rows = (int)(rows < 1 ? 1 : rows > N ? N : rows);
    s->logits = (float *)take((size_t)s->logit_rows * d->vocab * f);
    s->act16 = take(N * widest * 4); /* bf16 activations, high and low parts */
    size_t mm = max_matrix(g);
    s->wslice_elems = mm < WSLICE_MAX ? mm : WSLICE_MAX;
    s->wslice = take(s->wslice_elems * 4); /* f32 slices (bf16 ones take half) */
    return off;
}

static sp_status alloc_scratch(sp_cuda *g, sp_error *err) {
    g->scratch_bytes = scratch_plan(g, NULL);
    size_t fr = 0, tot = 0;
    CU_TRY(cudaMemGetInfo(&fr, &tot), err);
    if (g->scratch_bytes > fr)
        return sp_fail(err, SP_ENOMEM,
                       "cuda:%d: scratch for %d tokens needs %.2f GiB, %.2f GiB are free after "
                       "the weights",
                       g->device, g->max_tokens, g->scratch_bytes / 1073741824.0,
                       fr / 1073741824.0);
    uint8_t *base;
    CU_TRY(cudaMalloc(&base, g->scratch_bytes), err);
    scratch_plan(g, base);
    CU_TRY(cudaMallocHost(&g->logits_host, (size_t)g->s.logit_rows * g->d->vocab * sizeof(float)),
           err);
    return SP_OK;
}

/* ---- load and free ------------------------------------------------------------- */

static sp_status create_context(sp_cuda *g, sp_error *err) {
    CU_TRY(cudaSetDevice(g->device), err);
    CU_TRY(cudaFree(0), err); /* creates the primary context on this thread */
    cudaDeviceProp p;
    CU_TRY(cudaGetDeviceProperties(&p, g->device), err);
    snprintf(g->name, sizeof g->name, "%s", p.name);
    CU_TRY(cudaStreamCreateWithFlags(&g->st, cudaStreamNonBlocking), err);
    CUBLAS_TRY(cublasCreate(&g->blas), err);
    CUBLAS_TRY(cublasSetStream(g->blas, g->st), err);
    /* f32 mode: no TF32 anywhere, even where a compute type would allow it */
    CUBLAS_TRY(cublasSetMathMode(g->blas, g->f32 ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH),
               err);
    return SP_OK;
}

extern "C" sp_status sp_cuda_load(sp_cuda **out, const sp_model_desc *d, const sp_cuda_opts *o,
                                  sp_error *err) {
    *out = NULL;
    sp_cuda *g = (sp_cuda *)calloc(1, sizeof *g);
    if (!g) return sp_fail(err, SP_ENOMEM, "cuda: backend");
    g->owner = pthread_self();
    g->device = o->device, g->f32 = o->f32, g->d = d;
    g->kv_dtype = o->kv_dtype == SP_F16 || o->kv_dtype == SP_BF16 ? o->kv_dtype : SP_F32;
    g->max_tokens = o->max_tokens > 0 ? o->max_tokens : 512;
    g->L = (dlayer *)calloc((size_t)d->n_layers, sizeof *g->L);
    measure(g);
    sp_status s = g->L ? SP_OK : sp_fail(err, SP_ENOMEM, "cuda: layers");
    for (int i = 0; s == SP_OK && i < d->n_layers; i++)
        if (d->layers[i].head_dim > SP_CUDA_MAX_HEAD_DIM)
            s = sp_fail(err, SP_EUNSUPPORTED,
                        "cuda: layer %d has head_dim %d; the attention kernels take at most %d",
                        i, d->layers[i].head_dim, SP_CUDA_MAX_HEAD_DIM);
    if (s == SP_OK) s = create_context(g, err);
    if (s == SP_OK) s = upload_weights(g, o, err);
    if (s == SP_OK) s = alloc_scratch(g, err);
    if (s != SP_OK) {
        sp_cuda_free(g);
        return s;
    }
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    SP_INFO("cuda:%d %s: %.2f GiB weights, %.0f MiB scratch for %d tokens, %.2f of %.2f GiB free",
            g->device, g->name, g->arena_bytes / 1073741824.0, g->scratch_bytes / 1048576.0,
            g->max_tokens, fr / 1073741824.0, tot / 1073741824.0);
    *out = g;
    return SP_OK;
}

extern "C" void sp_cuda_free(sp_cuda *g) {
    if (!g) return;
    SP_CUDA_OWNED(g);
    if (g->st) cudaStreamSynchronize(g->st);
    if (g->blas) cublasDestroy(g->blas);
    cudaFree(g->arena);
    cudaFree(g->s.x); /* the scratch block starts with x */
    cudaFreeHost(g->logits_host);
    if (g->st) cudaStreamDestroy(g->st);
    free(g->L);
    free(g);
}
