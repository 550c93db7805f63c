/* sp_matmul: y[T][out] = x[T][in] . W[out][in]^T (+ bias).
 *
 * Output rows are cut into work items (ITEMS_PER_THREAD per thread, in units
 * of 16 rows, so threads never write the same cache line of y) that the
 * pool's threads claim; a thread the OS is not running does not hold the
 * step back, and the thread that finishes first waits at most one small
 * item for the other (decode, 2 threads, alternating runs, 16 items per
 * thread against 4: F16 tg 15.3 -> 16.0 and 14.5 -> 15.9 tok/s, Q4_0 43.0 ->
 * 44.3, Q8_0 27.7 -> 26.8, within noise; pp512 unchanged). Paths:
 *   decode (T small), float weights (f32/f16/bf16): the ISA's gemm kernel
 *     (dot-product register tiles) converts exactly to f32 in registers.
 *   decode, quantized, SP_PREC_FAST: the caller quantizes every activation
 *     row once into the pool's shared scratch (the type's partner format);
 *     workers then call the type's integer dot per (row, token).
 *   quantized, SP_PREC_F32: chunks of 4 rows are dequantized exactly (the
 *     vector dequantizers are bit-identical to the reference) into a stack
 *     buffer, then the f32 gemm.
 *   prefill (T >= PANEL_MIN_T) where the level has a panel kernel (AVX2,
 *     AVX-512: 16 rows x 12 tokens of zmm FMAs, 2% over AVX2's tile),
 *     any weight type, both precisions: SP_PANEL rows x PANEL_K values are
 *     converted or dequantized once per token block (up to PANEL_GROUPS
 *     groups of 6 tokens: once per matmul for prompt chunks up to 516
 *     tokens) into a k-major f32 panel in L1, then register tiles of 6
 *     tokens x 16 rows (outer products, no horizontal sums) sweep the
 *     tokens past it. The activations are laid out once per call in groups
 *     of 6 tokens, k-major, so a tile's broadcasts read one contiguous run.
 *     Exact f32 arithmetic, so it serves the reference mode too. Against
 *     256-token blocks reading rows of x: F16, T = 512, 2 threads, 126-136
 *     -> 141-149 GFLOP/s (Zen 3; the register tile alone in L1: 77-81 ->
 *     85-92 GFLOP/s per thread).
 *   prefill of Q8_0 / Q4_0, SP_PREC_FAST, where the level has igemm (AVX2):
 *     the activations are quantized to Q8_0 once (threads split the token
 *     groups) into int16 pairs; per token block, per SP_PANEL rows, per
 *     IPANEL_BLOCKS blocks, the weights become an int16 panel once, then
 *     vpmaddwd tiles (16 products per instruction, twice an FMA's) sweep
 *     the token groups past it; one f32 scale step per 32-value block.
 *     Token blocks of up to 576 tokens: at T = 512 one block instead of two
 *     288-token ones packs each weight once, +11-14% for Q8_0 (2 threads);
 *     at T = 1024 blocks of 1026 tokens were slower (their pairs leave L2).
 *     Q4_0 keeps its nibbles unsigned and uses vpmaddubsw (32 products
 *     per instruction, int16 sums per block, the offset of 8 folded into
 *     a per-block activation sum). pp512 of a 0.85 B model, one thread,
 *     CPU seconds from the f32 panel path to this: Q8_0 13.0 -> 7.2,
 *     Q4_0 12.7 -> 8.7 (Zen 3).
 *   prefill on AVX-512 with VNNI: the same integer panels with vpdpbusd
 *     (64 u8 x s8 products per instruction) for Q8_0 (weights + 128), Q4_0
 *     and Q4_K (32-value sub-blocks with a per-row f32 scale and min,
 *     activations quantized to Q8_K as decode does): pp512 of the 0.85 B
 *     model, 2 threads, Zen 4, load ~3: Q4_K 24-28 -> 94-98 tok/s (pp256,
 *     it was integer dots per row and token), Q8_0 66-93 -> 139-171, Q4_0
 *     74-99 -> 114-184 (AVX2's vpmaddwd / vpmaddubsw tiles before).
 *   bf16, SP_PREC_FAST, AVX512_BF16: the caller rounds the activations to
 *     bf16 once (pool scratch); vdpbf16ps then does twice the products of
 *     an f32 FMA per instruction: dot-product tiles for decode, a bf16-pair
 *     panel GEMM (the panel scheme above) from PANEL_MIN_T tokens on (2048 x
 *     2048 x 256 tokens, 1 thread: 166 against 100 GFLOP/s for the f32
 *     panel). */
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
#define ITEMS_PER_THREAD 16  /* work items per thread: late threads get less */
#define PANEL_MIN_T      32  /* from this many tokens on: the packed-panel GEMM */
#define PANEL_K          256 /* values per panel slice: 16 KiB of f32, in L1 */
#define PANEL_GROUPS     86  /* token groups (SP_PGROUP) per block: 516 tokens, 516 KiB a slice */
#define PANEL_ROWS       4   /* f32 panels converted together: 64 KiB, in L2 */
#define PANEL_SWEEP      24  /* tokens meeting all panels at a time: 24 KiB of a slice */
#define IPANEL_BLOCKS    8   /* blocks per integer panel slice: 8 KiB of int16 pairs */
#define IPANEL_GROUPS    96  /* token groups per block at most: 576 tokens */
#define IPANEL_ROWS      4   /* panels packed together (32 KiB of int16) */
#define IPANEL_SWEEP     8   /* token groups meeting all panels at a time: 24 KiB of pairs */
_Static_assert(PANEL_SWEEP % SP_PGROUP == 0, "sweeps start at a group of gemm_panel's activations");

typedef enum mm_mode {
    MM_FLOAT,
    MM_BF16_PAIRS,
    MM_DEQUANT,
    MM_QDOT,
    MM_PANEL,
    MM_QPACK,
    MM_IPANEL
} mm_mode;

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
    int packed;                        /* W's rows interleaved in groups of 8 (quant.h) */
    const sp_quant_packed_kernels *pk; /* MM_QPACK (xq: prepared activation rows) */
    const int32_t *xg;                 /* MM_IPANEL: activation pairs, groups of SP_IGROUP */
    const float *xd;                   /* MM_IPANEL: their block scales */
    size_t xg_stride, xd_stride;       /* MM_IPANEL: elements per group */
    int u4;                            /* MM_IPANEL: Q4_0 on unsigned nibbles (ipack4) */
    int kq;                            /* MM_IPANEL: Q4_K on unsigned nibbles (kpack) */
    const float *xp;                   /* MM_PANEL: activations in groups of SP_PGROUP tokens */
    int bf;                            /* MM_PANEL on bf16 pairs (xp, panels: uint32 pairs) */
    size_t xp_stride;                  /* MM_PANEL: floats per group */
} mm_ctx;

/* The buffer a call prepares its activations in: the pool's shared scratch,
 * or (no pool) a malloc handed to *owned, which sp_matmul frees. */
static void *act_buffer(sp_pool *pool, size_t bytes, void **owned) {
    return pool ? sp_pool_scratch(pool, SP_POOL_SHARED, bytes) : (*owned = malloc(bytes));
}

/* Tokens per block when at most max_groups groups of `group` tokens fit one:
 * equal blocks (whole groups), so there is no short tail block. */
static int token_step(int T, int group, int max_groups) {
    int G = (T + group - 1) / group, nblk = (G + max_groups - 1) / max_groups;
    return (G + nblk - 1) / nblk * group;
}

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

/* Values [k0, k0+n) of weight row r as f32 (the same bits for packed W). */
static void dequant_row(const mm_ctx *c, int r, int k0, int n, float *dst) {
    if (c->packed) {
        sp_quant_packed_dequantize(c->wt, c->isa, c->w, c->in, r, k0, n, dst);
        return;
    }
    size_t off =
        (size_t)r * c->ws + (size_t)(k0 / sp_dtype_block(c->wt)) * sp_dtype_block_bytes(c->wt);
    sp_quant_dequantize_isa(c->wt, c->isa, c->w + off, dst, n);
}

static void run_dequant(const mm_ctx *c, int o0, int o1) {
    float buf[4 * DQ_CHUNK];
    for (int tb = 0; tb < c->T; tb += TOKEN_BLOCK) {
        int nt = c->T - tb < TOKEN_BLOCK ? c->T - tb : TOKEN_BLOCK;
        for (int r0 = o0; r0 < o1; r0 += 4) {
            int R = o1 - r0 < 4 ? o1 - r0 : 4;
            for (int k0 = 0; k0 < c->in; k0 += DQ_CHUNK) {
                int n = c->in - k0 < DQ_CHUNK ? c->in - k0 : DQ_CHUNK;
                for (int r = 0; r < R; r++) dequant_row(c, r0 + r, k0, n, buf + r * DQ_CHUNK);
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

/* Packed decode: each group of 8 rows meets every token while in L1/L2. */
static void run_qpack(const mm_ctx *c, int o0, int o1) {
    const char *end = c->w + (size_t)o1 * c->ws; /* this item's last byte + 1 */
    for (int o = o0; o < o1; o += SP_PACK_ROWS)
        for (int t = 0; t < c->T; t++)
            c->pk->gemv8(c->in, c->w + (size_t)o * c->ws, c->xq + (size_t)t * c->xq_stride,
                         c->y + (size_t)t * c->out + o, end);
}

/* Panel j of run_panel: rows r .. r+R-1, values k0 .. k0+n-1, as f32. */
static void panel_pack(const mm_ctx *c, int r, int R, int k0, int n, float *rows, float *panel) {
    if (c->bf) {
        c->k->pack_panel_bf16(R, n / 2, c->w + (size_t)r * c->ws + (size_t)k0 * 2, c->ws,
                              (uint32_t *)panel);
        return;
    }
    if (c->wt != SP_F32 && c->wt != SP_F16 && c->wt != SP_BF16) {
        for (int i = 0; i < R; i++) dequant_row(c, r + i, k0, n, rows + i * PANEL_K);
        c->k->pack_panel(SP_F32, R, n, rows, PANEL_K * sizeof(float), panel);
        return;
    }
    const char *w = c->w + (size_t)r * c->ws + (size_t)k0 * sp_dtype_block_bytes(c->wt);
    c->k->pack_panel(c->wt, R, n, w, c->ws, panel);
}

/* Prefill: per token block, per PANEL_ROWS panels of SP_PANEL rows,
 * per PANEL_K values: convert (or dequantize, then pack) the weights once
 * into k-major f32 panels (L2), then PANEL_SWEEP tokens at a time (L1) meet
 * every panel, so the activations come from L3 once per PANEL_ROWS panels.
 * Each output's sum runs over the same k order as with one panel at a time. */
static void run_panel(const mm_ctx *c, int o0, int o1) {
    float rows[SP_PANEL * PANEL_K], panel[PANEL_ROWS][SP_PANEL * PANEL_K];
    int step = token_step(c->T, SP_PGROUP, PANEL_GROUPS);
    for (int tb = 0; tb < c->T; tb += step) {
        int nt = c->T - tb < step ? c->T - tb : step;
        for (int r0 = o0; r0 < o1; r0 += PANEL_ROWS * SP_PANEL) {
            int np = (o1 - r0 + SP_PANEL - 1) / SP_PANEL, R[PANEL_ROWS];
            np = np < PANEL_ROWS ? np : PANEL_ROWS;
            for (int k0 = 0; k0 < c->in; k0 += PANEL_K) {
                int n = c->in - k0 < PANEL_K ? c->in - k0 : PANEL_K;
                for (int j = 0; j < np; j++) {
                    int r = r0 + j * SP_PANEL;
                    R[j] = o1 - r < SP_PANEL ? o1 - r : SP_PANEL;
                    panel_pack(c, r, R[j], k0, n, rows, panel[j]);
                }
                for (int t = tb; t < tb + nt; t += PANEL_SWEEP) {
                    int m = tb + nt - t < PANEL_SWEEP ? tb + nt - t : PANEL_SWEEP;
                    /* bf16 pairs: one uint32 slot holds values k, k+1 */
                    const float *xt = c->xp + (size_t)(t / SP_PGROUP) * c->xp_stride +
                                      (size_t)k0 / (c->bf ? 2 : 1) * SP_PGROUP;
                    for (int j = 0; j < np; j++) {
                        float *y = c->y + (size_t)t * c->out + r0 + j * SP_PANEL;
                        if (c->bf)
                            c->k->gemm_panel_bf16(R[j], m, n / 2, (const uint32_t *)panel[j],
                                                  (const uint32_t *)xt, c->xp_stride, y,
                                                  (size_t)c->out);
                        else
                            c->k->gemm_panel(R[j], m, n, panel[j], xt, c->xp_stride, y,
                                             (size_t)c->out);
                    }
                }
            }
        }
    }
}

/* Packs panel j (rows r, blocks [b0, b0+m)) for run_ipanel. */
static void ipanel_pack(const mm_ctx *c, int r, int R, int nb, int b0, int m, int16_t *p,
                        float *pd) {
    const char *w = c->w + (size_t)r * c->ws;
    if (c->kq)
        c->k->kpack(c->packed, R, w, c->ws, nb, b0, m, (uint8_t *)p, pd);
    else if (c->u4 && c->wt == SP_Q8_0)
        c->k->ipack8u(c->packed, R, w, c->ws, nb, b0, m, (uint8_t *)p, pd);
    else if (c->u4)
        c->k->ipack4(c->packed, R, w, c->ws, nb, b0, m, (uint8_t *)p, pd);
    else
        c->k->ipack(c->wt, c->packed, R, w, c->ws, nb, b0, m, p, pd);
}

/* Integer prefill (MM_IPANEL): per block of at most IPANEL_GROUPS token
 * groups, per IPANEL_ROWS panels of SP_PANEL rows, per IPANEL_BLOCKS
 * blocks: the weights become int16 (Q4_0: uint8) panels once (L1/L2), then
 * IPANEL_SWEEP token groups at a time (in L1) meet every panel, so the
 * activations come from L3 once per IPANEL_ROWS panels, not once per panel. */
static void run_ipanel(const mm_ctx *c, int o0, int o1) {
    _Alignas(32) int16_t p[IPANEL_ROWS][IPANEL_BLOCKS * 16 * SP_PANEL * 2]; /* u4: half */
    _Alignas(32) float pd[IPANEL_ROWS][IPANEL_BLOCKS * SP_PANEL * 2];       /* kq: scales, mins */
    int nb = c->in / 32, per_blk = c->u4 ? 9 : 16;
    int step = token_step(c->T, SP_IGROUP, IPANEL_GROUPS);
    for (int tb = 0; tb < c->T; tb += step) {
        int nt = c->T - tb < step ? c->T - tb : step;
        for (int r0 = o0; r0 < o1; r0 += IPANEL_ROWS * SP_PANEL) {
            int np = (o1 - r0 + SP_PANEL - 1) / SP_PANEL, R[IPANEL_ROWS];
            np = np < IPANEL_ROWS ? np : IPANEL_ROWS;
            for (int b0 = 0; b0 < nb; b0 += IPANEL_BLOCKS) {
                int m = nb - b0 < IPANEL_BLOCKS ? nb - b0 : IPANEL_BLOCKS;
                for (int j = 0; j < np; j++) {
                    int r = r0 + j * SP_PANEL;
                    R[j] = o1 - r < SP_PANEL ? o1 - r : SP_PANEL;
                    ipanel_pack(c, r, R[j], nb, b0, m, p[j], pd[j]);
                }
                for (int t = tb; t < tb + nt; t += IPANEL_SWEEP * SP_IGROUP) {
                    int n = tb + nt - t < IPANEL_SWEEP * SP_IGROUP ? tb + nt - t
                                                                   : IPANEL_SWEEP * SP_IGROUP;
                    const int32_t *xg = c->xg + (size_t)(t / SP_IGROUP) * c->xg_stride +
                                        (size_t)b0 * per_blk * SP_IGROUP;
                    const float *xd =
                        c->xd + (size_t)(t / SP_IGROUP) * c->xd_stride + (size_t)b0 * SP_IGROUP;
                    for (int j = 0; j < np; j++) {
                        float *y = c->y + (size_t)t * c->out + r0 + j * SP_PANEL;
                        if (c->kq)
                            c->k->kgemm(R[j], n, m, (const uint8_t *)p[j], pd[j], xg, c->xg_stride,
                                        xd, c->xd_stride, y, (size_t)c->out);
                        else if (c->u4)
                            c->k->igemm4(R[j], n, m, (const uint8_t *)p[j], pd[j], xg, c->xg_stride,
                                         xd, c->xd_stride, y, (size_t)c->out);
                        else
                            c->k->igemm(R[j], n, m, p[j], pd[j], xg, c->xg_stride, xd, c->xd_stride,
                                        y, (size_t)c->out);
                    }
                }
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
    else if (c->mode == MM_QPACK)
        run_qpack(c, o0, o1);
    else if (c->mode == MM_IPANEL)
        run_ipanel(c, o0, o1);
    else
        run_qdot(c, o0, o1);
}

/* Quantizes every activation row into the partner type; returns the buffer
 * (pool scratch, or *owned when there is no pool) or NULL on failure. */
static char *quantize_activations(sp_pool *pool, mm_ctx *c, void **owned) {
    c->xq_stride = sp_dtype_row_bytes(c->qk->act_type, c->in);
    size_t bytes = c->xq_stride * (size_t)c->T;
    char *xq = act_buffer(pool, bytes, owned);
    if (!xq) return NULL;
    for (int t = 0; t < c->T; t++)
        c->qk->quantize_act(c->x + (size_t)t * c->in, xq + (size_t)t * c->xq_stride, c->in);
    return xq;
}

/* SP_PREC_FAST prefill on quantized weights (the dequantizing paths):
 * every activation row is rounded to the weight type's partner format and
 * back to f32, block by block. The products then see the same activation
 * values as the integer dots of decode (and as llama.cpp, which quantizes
 * the activations of every quantized matmul), so a token's logits do not
 * depend on whether it was decoded alone or in a batch. */
typedef struct act_round {
    const sp_quant_kernels *qk;
    sp_isa isa;
    const float *x;
    float *xr;
    int T, in;
} act_round;

/* n values (one partner block) rounded to the partner type and back. */
static void round_block(const sp_quant_kernels *qk, sp_isa isa, const float *x, float *dst, int n) {
    _Alignas(64) char q[512]; /* one partner block: Q8_K is the largest (292 bytes) */
    qk->quantize_act(x, q, n);
    sp_quant_dequantize_isa(qk->act_type, isa, q, dst, n);
}

static void act_round_worker(void *arg, int item, int n_items) {
    const act_round *a = arg;
    int blk = sp_dtype_block(a->qk->act_type);
    int t0 = (int)((long long)a->T * item / n_items),
        t1 = (int)((long long)a->T * (item + 1) / n_items);
    for (size_t i = (size_t)t0 * a->in; i < (size_t)t1 * a->in; i += (size_t)blk)
        round_block(a->qk, a->isa, a->x + i, a->xr + i, blk);
}

/* Returns the rounded rows (pool scratch, or *owned) or NULL on failure. */
static float *round_activations_act(sp_pool *pool, mm_ctx *c, const sp_quant_kernels *qk,
                                    void **owned) {
    size_t n = (size_t)c->T * (size_t)c->in;
    float *xr = act_buffer(pool, n * 4, owned);
    if (!xr) return NULL;
    act_round a = {.qk = qk, .isa = c->isa, .x = c->x, .xr = xr, .T = c->T, .in = c->in};
    int nth = sp_pool_size(pool);
    sp_pool_run_n(pool, act_round_worker, &a, nth == 1 || c->T < 8 ? 1 : nth);
    return xr;
}

/* MM_PANEL activations: token groups [g0, g1) of the item in gemm_panel's
 * layout (kernels.h), rounded to the partner type first where qk is set
 * (what round_activations_act does for the other dequantizing paths);
 * tokens past T are zero. */
typedef struct panel_acts {
    const mm_ctx *c;
    const sp_quant_kernels *qk;
    float *xp;
} panel_acts;

static void panel_row(const panel_acts *a, const float *x, float *dst) {
    const mm_ctx *c = a->c;
    _Alignas(64) float r[256]; /* one partner block: at most a Q8_K's 256 values */
    int blk = a->qk ? sp_dtype_block(a->qk->act_type) : 256;
    for (int k0 = 0; k0 < c->in; k0 += blk) {
        int n = c->in - k0 < blk ? c->in - k0 : blk;
        const float *v = x + k0;
        if (a->qk) {
            round_block(a->qk, c->isa, v, r, n);
            v = r;
        }
        for (int k = 0; k < n; k++) dst[(size_t)(k0 + k) * SP_PGROUP] = v[k];
    }
}

/* bf16 pairs: token t's values k, k+1 rounded to bf16 in one uint32. */
static void panel_row_bf16(const mm_ctx *c, const float *x, uint32_t *dst) {
    for (int k = 0; k < c->in; k += 2)
        dst[(size_t)k / 2 * SP_PGROUP] =
            (uint32_t)sp_f32_to_bf16(x[k]) | (uint32_t)sp_f32_to_bf16(x[k + 1]) << 16;
}

static void panel_acts_worker(void *arg, int item, int n_items) {
    const panel_acts *a = arg;
    const mm_ctx *c = a->c;
    if (c->bf) {
        int G = (c->T + SP_PGROUP - 1) / SP_PGROUP;
        int g0 = (int)((long long)G * item / n_items),
            g1 = (int)((long long)G * (item + 1) / n_items);
        for (int g = g0; g < g1; g++)
            for (int i = 0; i < SP_PGROUP; i++) {
                int t = g * SP_PGROUP + i;
                uint32_t *dst = (uint32_t *)a->xp + (size_t)g * c->xp_stride + i;
                if (t < c->T) {
                    panel_row_bf16(c, c->x + (size_t)t * c->in, dst);
                    continue;
                }
                for (int k = 0; k < c->in / 2; k++) dst[(size_t)k * SP_PGROUP] = 0;
            }
        return;
    }
    int G = (c->T + SP_PGROUP - 1) / SP_PGROUP;
    int g0 = (int)((long long)G * item / n_items), g1 = (int)((long long)G * (item + 1) / n_items);
    for (int g = g0; g < g1; g++)
        for (int i = 0; i < SP_PGROUP; i++) {
            int t = g * SP_PGROUP + i;
            float *dst = a->xp + (size_t)g * c->xp_stride + i;
            if (t < c->T) {
                panel_row(a, c->x + (size_t)t * c->in, dst);
                continue;
            }
            for (int k = 0; k < c->in; k++) dst[(size_t)k * SP_PGROUP] = 0.0f;
        }
}

/* Lays the activations out for MM_PANEL (pool scratch, or *owned); NULL on
 * failure. */
static float *panel_activations(sp_pool *pool, mm_ctx *c, const sp_quant_kernels *qk,
                                void **owned) {
    size_t G = (size_t)(c->T + SP_PGROUP - 1) / SP_PGROUP;
    c->xp_stride = (size_t)c->in / (c->bf ? 2 : 1) * SP_PGROUP;
    size_t bytes = G * c->xp_stride * sizeof(float);
    float *xp = act_buffer(pool, bytes, owned);
    if (!xp) return NULL;
    panel_acts a = {.c = c, .qk = qk, .xp = xp};
    int nth = sp_pool_size(pool);
    sp_pool_run_n(pool, panel_acts_worker, &a, nth == 1 ? 1 : (int)(G < 8 ? G : 8));
    return xp;
}

/* MM_QPACK: every activation row prepared once for the packed kernel. */
static char *prepare_packed(sp_pool *pool, mm_ctx *c, void **owned) {
    c->xq_stride = (c->pk->act_bytes(c->in) + 63) & ~(size_t)63;
    size_t bytes = c->xq_stride * (size_t)c->T;
    char *xq = act_buffer(pool, bytes, owned);
    if (!xq) return NULL;
    for (int t = 0; t < c->T; t++)
        c->pk->prep_act(c->x + (size_t)t * c->in, xq + (size_t)t * c->xq_stride, c->in);
    return xq;
}

/* MM_IPANEL activations: token groups [g0, g1) of the item quantized to
 * Q8_0 (the type's own quantize_act: the same int8 values and scales as
 * decode) and laid out for igemm; tokens past T are zero. */
static void iact_worker(void *arg, int item, int n_items) {
    const mm_ctx *c = arg;
    enum { CHUNK = 64 * 32 };               /* values quantized at a time (whole Q8_K blocks too) */
    _Alignas(64) char q[CHUNK / 256 * 292]; /* Q8_K (292 bytes per 256), larger than Q8_0 */
    int G = (c->T + SP_IGROUP - 1) / SP_IGROUP, per_blk = c->u4 ? 9 : 16;
    int g0 = (int)((long long)G * item / n_items), g1 = (int)((long long)G * (item + 1) / n_items);
    for (int g = g0; g < g1; g++) {
        int32_t *xg = (int32_t *)c->xg + (size_t)g * c->xg_stride;
        float *xd = (float *)c->xd + (size_t)g * c->xd_stride;
        for (int i = 0; i < SP_IGROUP; i++) {
            int t = g * SP_IGROUP + i;
            for (int k0 = 0; k0 < c->in; k0 += CHUNK) {
                int n = c->in - k0 < CHUNK ? c->in - k0 : CHUNK;
                int32_t *xgk = xg + (size_t)k0 / 32 * per_blk * SP_IGROUP;
                if (t < c->T) {
                    c->qk->quantize_act(c->x + (size_t)t * c->in + k0, q, n);
                    if (c->kq)
                        c->k->kact(q, n, i, xgk, xd + (size_t)k0 / 32 * SP_IGROUP);
                    else if (c->u4 && c->wt == SP_Q8_0)
                        c->k->iact8u(q, n, i, xgk, xd + (size_t)k0 / 32 * SP_IGROUP);
                    else if (c->u4)
                        c->k->iact4(q, n, i, xgk, xd + (size_t)k0 / 32 * SP_IGROUP);
                    else
                        c->k->iact(q, n, i, xgk, xd + (size_t)k0 / 32 * SP_IGROUP);
                    continue;
                }
                for (int s = 0; s < n / 32 * per_blk; s++) xgk[(size_t)s * SP_IGROUP + i] = 0;
                for (int b = 0; b < n / 32; b++) xd[(size_t)(k0 / 32 + b) * SP_IGROUP + i] = 0.0f;
            }
        }
    }
}

/* Chooses MM_IPANEL (SP_PREC_FAST prefill of Q8_0 / Q4_0, and Q4_K where
 * the level has kgemm) and prepares its activations; 0 if not taken. */
static int setup_ipanel(sp_pool *pool, mm_ctx *c, sp_precision prec, void **owned) {
    int kq = c->wt == SP_Q4_K && c->k->kgemm && c->in % 256 == 0;
    if (prec != SP_PREC_FAST || c->T < PANEL_MIN_T || !c->k->igemm ||
        (c->wt != SP_Q8_0 && c->wt != SP_Q4_0 && !kq) || c->in % 32 != 0)
        return 0;
    if (c->packed && c->out % SP_PACK_ROWS != 0) return 0;
    c->qk = sp_quant_get(c->wt, c->isa);
    if (!c->qk || c->qk->act_type != (kq ? SP_Q8_K : SP_Q8_0)) return 0;
    size_t G = (size_t)(c->T + SP_IGROUP - 1) / SP_IGROUP;
    c->kq = kq;
    c->u4 = (c->wt == SP_Q4_0 && c->k->igemm4) || kq || (c->wt == SP_Q8_0 && c->k->ipack8u);
    c->xg_stride = (size_t)c->in / 32 * (c->u4 ? 9 : 16) * SP_IGROUP;
    c->xd_stride = (size_t)c->in / 32 * SP_IGROUP;
    size_t bytes = G * (c->xg_stride + c->xd_stride) * 4;
    char *buf = act_buffer(pool, bytes, owned);
    if (!buf) return 0;
    c->xg = (const int32_t *)buf;
    c->xd = (const float *)(buf + G * c->xg_stride * 4);
    int nth = sp_pool_size(pool);
    sp_pool_run_n(pool, iact_worker, c, nth == 1 || G < 2 ? 1 : (int)(G < 8 ? G : 8));
    return 1;
}

/* Rounds every activation to bf16 (nearest even) for MM_BF16_PAIRS. */
static char *round_activations_bf16(sp_pool *pool, mm_ctx *c, void **owned) {
    size_t n = (size_t)c->T * (size_t)c->in;
    uint16_t *xb = act_buffer(pool, n * 2, owned);
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
        .packed = W->packed,
    };
    if (T <= 0 || c.out <= 0) return;
    c.ws = sp_dtype_row_bytes(c.wt, c.in);
    void *owned = NULL;
    const sp_quant_kernels *ak = NULL;
    /* bf16 pairs: the panel GEMM for prefill, dot tiles below that */
    c.bf = c.wt == SP_BF16 && prec == SP_PREC_FAST && c.k->gemm_panel_bf16 && T >= PANEL_MIN_T &&
           c.in % 2 == 0;
    if (!c.bf && c.wt == SP_BF16 && prec == SP_PREC_FAST && c.k->gemm_bf16_pairs &&
        (c.xq = round_activations_bf16(pool, &c, &owned)) != NULL)
        c.mode = MM_BF16_PAIRS;
    if (setup_ipanel(pool, &c, prec, &owned))
        c.mode = MM_IPANEL;
    else if (c.wt != SP_F32 && c.wt != SP_F16 && c.wt != SP_BF16) {
        c.mode = MM_DEQUANT;
        /* prefill without an integer panel GEMM for the type (Q6_K, Q5_K,
         * ...): dequantizing a panel once per token block and running the
         * packed-panel f32 GEMM beats an integer dot per (row, token)
         * (measured on AVX2; on AVX-512, pp128 of the 0.85 B model: Q6_K
         * 92 -> 118 tok/s, Q5_K 63-68 -> 106). */
        /* packed Q4_0 / Q8_0 below the panel size (batched decode): the
         * 8-row kernel meets every token while a group is in L1, 1.7-2.7x
         * less CPU than dequantizing at T = 4..24 (measured, bench/README.md) */
        int qdot = prec == SP_PREC_FAST &&
                   (T < QDOT_MAX_T || !c.k->gemm_panel || (c.packed && T < PANEL_MIN_T));
        c.qk = qdot ? sp_quant_get(c.wt, c.isa) : NULL;
        c.pk = c.qk && c.packed ? sp_quant_packed_get(c.wt, c.isa) : NULL;
        if (c.pk && (c.xq = prepare_packed(pool, &c, &owned)) != NULL)
            c.mode = MM_QPACK;
        else if (c.qk && !c.packed && (c.xq = quantize_activations(pool, &c, &owned)) != NULL)
            c.mode = MM_QDOT;
        /* SP_PREC_FAST on the dequantizing paths: activations rounded to
         * the partner type (by panel_activations for the panel GEMM) */
        ak = prec == SP_PREC_FAST && !qdot ? sp_quant_get(c.wt, c.isa) : NULL;
    }
    /* exact f32 arithmetic: the panel GEMM serves both precisions */
    if (T >= PANEL_MIN_T && c.k->gemm_panel && (c.mode == MM_FLOAT || c.mode == MM_DEQUANT) &&
        (c.xp = panel_activations(pool, &c, ak, &owned)) != NULL) {
        c.mode = MM_PANEL;
    } else if (ak && c.mode == MM_DEQUANT) { /* in is a multiple of the partner's block */
        const float *xr = round_activations_act(pool, &c, ak, &owned);
        if (xr) c.x = xr; /* else: exact f32 activations, still correct */
    }
    int units = (c.out + ROW_UNIT - 1) / ROW_UNIT, nth = sp_pool_size(pool);
    int items = nth == 1 ? 1 : units < nth * ITEMS_PER_THREAD ? units : nth * ITEMS_PER_THREAD;
    sp_pool_run_n(pool, mm_worker, &c, items);
    free(owned);
}
