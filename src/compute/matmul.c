/* sp_matmul: y[T][out] = x[T][in] . W[out][in]^T (+ bias).
 *
 * Output rows are cut into work items (ITEMS_PER_THREAD per thread, in units
 * of 16 rows, so threads never write the same cache line of y) that the
 * pool's threads claim; a thread the OS is not running does not hold the
 * step back. Paths:
 *   decode (T small), float weights (f32/f16/bf16): the ISA's gemm kernel
 *     (dot-product register tiles) converts exactly to f32 in registers.
 *   decode, quantized, SP_PREC_FAST: the caller quantizes every activation
 *     row once into the pool's shared scratch (the type's partner format);
 *     workers then call the type's integer dot per (row, token).
 *   quantized, SP_PREC_F32: chunks of 4 rows are dequantized exactly (the
 *     vector dequantizers are bit-identical to the reference) into a stack
 *     buffer, then the f32 gemm.
 *   prefill (T >= PANEL_MIN_T) where the level has a panel kernel (AVX2),
 *     any weight type, both precisions: SP_PANEL rows x PANEL_K values are
 *     converted or dequantized once per PANEL_TOKENS tokens into a k-major
 *     f32 panel in L1, then register tiles of 6 tokens x 16 rows (outer
 *     products, no horizontal sums) sweep the tokens past it. Exact f32
 *     arithmetic, so it serves the reference mode too.
 *   bf16, SP_PREC_FAST, AVX512_BF16: the caller rounds the activations to
 *     bf16 once (pool scratch); vdpbf16ps then does twice the products of
 *     an f32 FMA per instruction. */
#include <stdint.h>
#include <stdlib.h>

#include "compute/ops.h"
#include "compute/ops_internal.h"
#include "compute/quant.h"

#define ROW_UNIT         16           /* rows per share unit: 64 bytes of y */
#define TOKEN_BLOCK      64           /* tokens whose activations are kept hot together */
#define X_BUDGET         (256 * 1024) /* bytes of activations one gemm call sweeps */
#define DQ_CHUNK         512          /* columns dequantized at a time (multiple of 256) */
#define QDOT_MAX_T       4   /* fewer tokens than this: integer dots on quantized weights */
#define ITEMS_PER_THREAD 4   /* work items per thread: late threads get less */
#define PANEL_MIN_T      32  /* from this many tokens on: the packed-panel GEMM */
#define PANEL_K          256 /* values per panel slice: 16 KiB of f32, in L1 */
#define PANEL_TOKENS     256 /* tokens per sweep: 256 KiB of activations, in L2 */

typedef enum mm_mode { MM_FLOAT, MM_BF16_PAIRS, MM_DEQUANT, MM_QDOT, MM_PANEL } mm_mode;

typedef struct mm_ctx {
    const sp_kernel_table *k;
    sp_isa isa;
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

/* Rows of work item i of n: equal shares in units of ROW_UNIT rows. */
static void item_rows(const mm_ctx *c, int i, int n, int *o0, int *o1) {
    int units = (c->out + ROW_UNIT - 1) / ROW_UNIT;
    int u0 = (int)((long long)units * i / n), u1 = (int)((long long)units * (i + 1) / n);
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
                    sp_quant_dequantize_isa(
                        c->wt, c->isa, c->w + (size_t)(r0 + r) * c->ws + (size_t)(k0 / blk) * bb,
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

/* Prefill: per PANEL_TOKENS tokens, per SP_PANEL rows, per PANEL_K values:
 * convert (or dequantize, then pack) the weights once into a k-major f32
 * panel that stays in L1, then sweep the block's tokens past it. */
static void run_panel(const mm_ctx *c, int o0, int o1) {
    float rows[SP_PANEL * PANEL_K], panel[SP_PANEL * PANEL_K];
    int quant = c->wt != SP_F32 && c->wt != SP_F16 && c->wt != SP_BF16;
    int blk = sp_dtype_block(c->wt);
    size_t bb = sp_dtype_block_bytes(c->wt);
    for (int tb = 0; tb < c->T; tb += PANEL_TOKENS) {
        int nt = c->T - tb < PANEL_TOKENS ? c->T - tb : PANEL_TOKENS;
        for (int r0 = o0; r0 < o1; r0 += SP_PANEL) {
            int R = o1 - r0 < SP_PANEL ? o1 - r0 : SP_PANEL;
            for (int k0 = 0; k0 < c->in; k0 += PANEL_K) {
                int n = c->in - k0 < PANEL_K ? c->in - k0 : PANEL_K;
                const char *w = c->w + (size_t)r0 * c->ws + (size_t)(k0 / blk) * bb;
                if (quant) {
                    for (int r = 0; r < R; r++)
                        sp_quant_dequantize_isa(c->wt, c->isa, w + (size_t)r * c->ws,
                                                rows + r * PANEL_K, n);
                    c->k->pack_panel(SP_F32, R, n, rows, PANEL_K * sizeof(float), panel);
                } else {
                    c->k->pack_panel(c->wt, R, n, w, c->ws, panel);
                }
                c->k->gemm_panel(R, nt, n, panel, c->x + (size_t)tb * c->in + k0, (size_t)c->in,
                                 c->y + (size_t)tb * c->out + r0, (size_t)c->out);
            }
        }
    }
}

static void mm_worker(void *arg, int item, int n_items) {
    const mm_ctx *c = arg;
    int o0, o1;
    item_rows(c, item, n_items, &o0, &o1);
    if (o0 >= o1) return;
    init_rows(c, o0, o1);
    if (c->mode == MM_FLOAT)
        run_float(c, o0, o1);
    else if (c->mode == MM_BF16_PAIRS)
        run_bf16_pairs(c, o0, o1);
    else if (c->mode == MM_DEQUANT)
        run_dequant(c, o0, o1);
    else if (c->mode == MM_PANEL)
        run_panel(c, o0, o1);
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
        .isa = sp_ops_isa(),
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
        /* prefill on AVX2: dequantizing a panel once per token block and
         * running the packed-panel f32 GEMM beats an integer dot per (row,
         * token) (measured). AVX-512 has no panel kernel yet and VNNI's
         * dots are 4x wider than its FMAs: it keeps the integer dots until
         * measured there. */
        int qdot = prec == SP_PREC_FAST && (T < QDOT_MAX_T || !c.k->gemm_panel);
        c.qk = qdot ? sp_quant_get(c.wt, c.isa) : NULL;
        if (c.qk && (c.xq = quantize_activations(pool, &c, &owned)) != NULL) c.mode = MM_QDOT;
    }
    if (T >= PANEL_MIN_T && c.k->gemm_panel && (c.mode == MM_FLOAT || c.mode == MM_DEQUANT))
        c.mode = MM_PANEL; /* exact f32 arithmetic: serves both precisions */
    int units = (c.out + ROW_UNIT - 1) / ROW_UNIT, nth = sp_pool_size(pool);
    int items = nth == 1 ? 1 : units < nth * ITEMS_PER_THREAD ? units : nth * ITEMS_PER_THREAD;
    sp_pool_run_n(pool, mm_worker, &c, items);
    free(owned);
}
