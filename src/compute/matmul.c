/* sp_matmul: y[T][out] = x[T][in] . W[out][in]^T (+ bias).
 *
 * Output rows are split into equal shares across the pool (in units of 16
 * rows, so threads never write the same cache line of y). Each thread walks
 * its rows in blocks of TOKEN_BLOCK tokens; inside a block a few weight rows
 * stay in cache while all the block's tokens pass by (kernels.h gemm), so
 * prefill reads each weight row once per token block instead of once per
 * token. Three paths:
 *   float weights (f32/f16/bf16): the ISA's gemm kernel converts exactly
 *     to f32 in registers; same arithmetic for both precisions.
 *   quantized, SP_PREC_F32: chunks of 4 rows are dequantized with the
 *     reference sp_quant_dequantize into a stack buffer, then the f32 gemm.
 *   bf16, SP_PREC_FAST, AVX512_BF16: the caller rounds the activations to
 *     bf16 once (pool scratch); vdpbf16ps then does twice the products of
 *     an f32 FMA per instruction.
 *   quantized, SP_PREC_FAST: the caller quantizes every activation row once
 *     into the pool's shared scratch (the type's partner format); workers
 *     then call the type's integer dot per (row, token). */
#include <stdint.h>
#include <stdlib.h>

#include "compute/ops.h"
#include "compute/ops_internal.h"
#include "compute/quant.h"

#define ROW_UNIT    16           /* rows per share unit: 64 bytes of y */
#define TOKEN_BLOCK 64           /* tokens whose activations are kept hot together */
#define X_BUDGET    (256 * 1024) /* bytes of activations one gemm call sweeps */
#define DQ_CHUNK    512          /* columns dequantized at a time (multiple of 256) */

typedef enum mm_mode { MM_FLOAT, MM_BF16_PAIRS, MM_DEQUANT, MM_QDOT } mm_mode;

typedef struct mm_ctx {
    const sp_kernel_table *k;
    mm_mode mode;
    float *y;
    const float *x;
    int T, out, in;
    sp_dtype wt;
    const char *w;
    size_t ws; /* bytes per weight row */
    const float *bias;
    const sp_quant_kernels *qk; /* MM_QDOT */
    const char *xq;             /* MM_QDOT: quantized rows; MM_BF16_PAIRS: bf16 rows */
    size_t xq_stride;
} mm_ctx;

static void thread_rows(const mm_ctx *c, int ith, int nth, int *o0, int *o1) {
    int units = (c->out + ROW_UNIT - 1) / ROW_UNIT;
    int u0 = (int)((long long)units * ith / nth), u1 = (int)((long long)units * (ith + 1) / nth);
    *o0 = u0 * ROW_UNIT < c->out ? u0 * ROW_UNIT : c->out;
    *o1 = u1 * ROW_UNIT < c->out ? u1 * ROW_UNIT : c->out;
}

static void init_rows(const mm_ctx *c, int o0, int o1) {
    for (int t = 0; t < c->T; t++) {
        float *yt = c->y + (size_t)t * c->out;
        for (int o = o0; o < o1; o++) yt[o] = c->bias ? c->bias[o] : 0.0f;
    }
}

/* Columns per gemm call: the whole row when the block's activations fit the
 * budget, otherwise a slice, so the activations stay in L2 while the weight
 * rows of the slice stream past. */
static int float_chunk(int in, int nt) {
    if ((size_t)nt * (size_t)in * 4 <= X_BUDGET) return in;
    int kc = (int)(X_BUDGET / ((size_t)nt * 4)) & ~63;
    return kc < 256 ? 256 : kc;
}

static void run_float(const mm_ctx *c, int o0, int o1) {
    size_t esz = sp_dtype_block_bytes(c->wt);
    for (int tb = 0; tb < c->T; tb += TOKEN_BLOCK) {
        int nt = c->T - tb < TOKEN_BLOCK ? c->T - tb : TOKEN_BLOCK;
        int kc = float_chunk(c->in, nt);
        for (int k0 = 0; k0 < c->in; k0 += kc) {
            int n = c->in - k0 < kc ? c->in - k0 : kc;
            c->k->gemm(c->wt, o1 - o0, nt, n, c->w + (size_t)o0 * c->ws + (size_t)k0 * esz, c->ws,
                       c->x + (size_t)tb * c->in + k0, (size_t)c->in,
                       c->y + (size_t)tb * c->out + o0, (size_t)c->out);
        }
    }
}

static void run_bf16_pairs(const mm_ctx *c, int o0, int o1) {
    const uint16_t *xb = (const uint16_t *)c->xq;
    for (int tb = 0; tb < c->T; tb += TOKEN_BLOCK) {
        int nt = c->T - tb < TOKEN_BLOCK ? c->T - tb : TOKEN_BLOCK;
        int kc = float_chunk(c->in, nt);
        for (int k0 = 0; k0 < c->in; k0 += kc) {
            int n = c->in - k0 < kc ? c->in - k0 : kc;
            c->k->gemm_bf16_pairs(o1 - o0, nt, n,
                                  (const uint16_t *)(c->w + (size_t)o0 * c->ws) + k0, c->ws,
                                  xb + (size_t)tb * c->in + k0, (size_t)c->in,
                                  c->y + (size_t)tb * c->out + o0, (size_t)c->out);
        }
    }
}

static void run_dequant(const mm_ctx *c, int o0, int o1) {
    float buf[4 * DQ_CHUNK];
    int blk = sp_dtype_block(c->wt);
    size_t bb = sp_dtype_block_bytes(c->wt);
    for (int tb = 0; tb < c->T; tb += TOKEN_BLOCK) {
        int nt = c->T - tb < TOKEN_BLOCK ? c->T - tb : TOKEN_BLOCK;
        for (int r0 = o0; r0 < o1; r0 += 4) {
            int R = o1 - r0 < 4 ? o1 - r0 : 4;
            for (int k0 = 0; k0 < c->in; k0 += DQ_CHUNK) {
                int n = c->in - k0 < DQ_CHUNK ? c->in - k0 : DQ_CHUNK;
                for (int r = 0; r < R; r++)
                    sp_quant_dequantize(c->wt,
                                        c->w + (size_t)(r0 + r) * c->ws + (size_t)(k0 / blk) * bb,
                                        buf + r * DQ_CHUNK, n);
                c->k->gemm(SP_F32, R, nt, n, buf, DQ_CHUNK * sizeof(float),
                           c->x + (size_t)tb * c->in + k0, (size_t)c->in,
                           c->y + (size_t)tb * c->out + r0, (size_t)c->out);
            }
        }
    }
}

static void run_qdot(const mm_ctx *c, int o0, int o1) {
    for (int tb = 0; tb < c->T; tb += TOKEN_BLOCK) {
        int nt = c->T - tb < TOKEN_BLOCK ? c->T - tb : TOKEN_BLOCK;
        for (int o = o0; o < o1; o++) {
            const char *wr = c->w + (size_t)o * c->ws;
            for (int t = tb; t < tb + nt; t++)
                c->y[(size_t)t * c->out + o] +=
                    c->qk->dot(c->in, wr, c->xq + (size_t)t * c->xq_stride);
        }
    }
}

static void mm_worker(void *arg, int ith, int nth) {
    const mm_ctx *c = arg;
    int o0, o1;
    thread_rows(c, ith, nth, &o0, &o1);
    if (o0 >= o1) return;
    init_rows(c, o0, o1);
    if (c->mode == MM_FLOAT)
        run_float(c, o0, o1);
    else if (c->mode == MM_BF16_PAIRS)
        run_bf16_pairs(c, o0, o1);
    else if (c->mode == MM_DEQUANT)
        run_dequant(c, o0, o1);
    else
        run_qdot(c, o0, o1);
}

/* Quantizes every activation row into the partner type; returns the buffer
 * (pool scratch, or *owned when there is no pool) or NULL on failure. */
static char *quantize_activations(sp_pool *pool, mm_ctx *c, void **owned) {
    c->xq_stride = sp_dtype_row_bytes(c->qk->act_type, c->in);
    size_t bytes = c->xq_stride * (size_t)c->T;
    char *xq =
        pool ? sp_pool_scratch(pool, SP_POOL_SHARED, bytes) : (char *)(*owned = malloc(bytes));
    if (!xq) return NULL;
    for (int t = 0; t < c->T; t++)
        c->qk->quantize_act(c->x + (size_t)t * c->in, xq + (size_t)t * c->xq_stride, c->in);
    return xq;
}

/* Rounds every activation to bf16 (nearest even) for MM_BF16_PAIRS. */
static char *round_activations_bf16(sp_pool *pool, mm_ctx *c, void **owned) {
    size_t n = (size_t)c->T * (size_t)c->in;
    uint16_t *xb = pool ? sp_pool_scratch(pool, SP_POOL_SHARED, n * 2) : (*owned = malloc(n * 2));
    if (!xb) return NULL;
    for (size_t i = 0; i < n; i++) xb[i] = sp_f32_to_bf16(c->x[i]);
    return (char *)xb;
}

void sp_matmul(sp_pool *pool, float *y, const float *x, int T, const sp_tensor *W,
               const float *bias, sp_precision prec) {
    mm_ctx c = {
        .k = sp_ops_kernels(),
        .mode = MM_FLOAT,
        .y = y,
        .x = x,
        .T = T,
        .out = (int)sp_tensor_rows(W), /* outer dims flattened */
        .in = (int)sp_tensor_cols(W),
        .wt = W->dtype,
        .w = W->data,
        .bias = bias,
    };
    if (T <= 0 || c.out <= 0) return;
    c.ws = sp_dtype_row_bytes(c.wt, c.in);
    void *owned = NULL;
    if (c.wt == SP_BF16 && prec == SP_PREC_FAST && c.k->gemm_bf16_pairs &&
        (c.xq = round_activations_bf16(pool, &c, &owned)) != NULL)
        c.mode = MM_BF16_PAIRS;
    if (c.wt != SP_F32 && c.wt != SP_F16 && c.wt != SP_BF16) {
        c.mode = MM_DEQUANT;
        c.qk = prec == SP_PREC_FAST ? sp_quant_get(c.wt, sp_ops_isa()) : NULL;
        if (c.qk && (c.xq = quantize_activations(pool, &c, &owned)) != NULL) c.mode = MM_QDOT;
    }
    sp_pool_run(pool, mm_worker, &c);
    free(owned);
}
