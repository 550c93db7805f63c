/* Tensor-parallel partitioning (shard.h): per layer and GPU, which heads,
 * columns and experts it holds, then what that costs in bytes. */
#include "model/shard.h"

#include <stdlib.h>

#include "compute/dtype.h"

/* Part r of n equal parts of count (the caller checked divisibility). */
static sp_tp_range part(int64_t count, int n, int r) {
    int64_t each = count / n;
    return (sp_tp_range){(int64_t)r * each, each};
}

static const sp_tp_range no_range = {0, 0};

static int has(const sp_tensor *t) {
    return t->data != NULL;
}

/* A cut at columns [begin, begin + count) of t must not split a block. */
static sp_status check_cols(const sp_tensor *t, sp_tp_range cols, int n, const char *what,
                            int layer, sp_error *err) {
    if (!has(t)) return SP_OK;
    int b = sp_dtype_block(t->dtype);
    if (cols.begin % b == 0 && cols.count % b == 0) return SP_OK;
    return sp_fail(
        err, SP_EINVAL,
        "tensor parallel %d: layer %d's %s (%s, blocks of %d values) would be cut "
        "every %lld columns, inside a block; use a float or 32-value type, or fewer GPUs",
        n, layer, what, sp_dtype_name(t->dtype), b, (long long)cols.count);
}

/* Query and K/V heads of layer i for rank r. */
static sp_status plan_heads(const sp_layer_desc *L, int i, int n, int r, sp_tp_layer *out,
                            sp_error *err) {
    int nh = L->n_heads, nkv = L->n_kv_heads;
    if (nh % n != 0)
        return sp_fail(err, SP_EINVAL,
                       "tensor parallel %d: layer %d has %d query heads, which do not split "
                       "into %d equal parts",
                       n, i, nh, n);
    out->q_heads = part(nh, n, r);
    if (nkv % n == 0) {
        out->kv_heads = part(nkv, n, r);
    } else if (n % nkv == 0) {
        /* n / nkv GPUs share each K/V head: their query heads are exactly
         * that head's group (nh / nkv = (n / nkv) * (nh / n)) */
        out->kv_heads = (sp_tp_range){r / (n / nkv), 1};
    } else {
        return sp_fail(err, SP_EINVAL,
                       "tensor parallel %d: layer %d has %d K/V heads, which neither split into "
                       "%d equal parts nor divide %d (GPUs sharing a head)",
                       n, i, nkv, n, n);
    }
    return SP_OK;
}

static sp_status plan_dense(const sp_layer_desc *L, int i, int n, int r, sp_tp_layer *out,
                            sp_error *err) {
    out->ffn = no_range;
    if (!has(&L->w_down) || L->ffn_dim == 0) return SP_OK;
    if (L->ffn_dim % n != 0)
        return sp_fail(err, SP_EINVAL,
                       "tensor parallel %d: layer %d's MLP has %d intermediate columns, which "
                       "do not split into %d equal parts",
                       n, i, L->ffn_dim, n);
    out->ffn = part(L->ffn_dim, n, r);
    return check_cols(&L->w_down, out->ffn, n, "MLP down projection", i, err);
}

/* 1 if every MoE layer's expert width splits n ways on block boundaries. */
static int moe_shards(const sp_model_desc *d, int n) {
    for (int i = 0; i < d->n_layers; i++) {
        const sp_layer_desc *L = &d->layers[i];
        if (L->n_experts == 0) continue;
        int64_t each = L->expert_ffn_dim / n;
        if (L->expert_ffn_dim % n != 0 || each % sp_dtype_block(L->exp_down[0].dtype) != 0)
            return 0;
    }
    return 1;
}

static sp_status plan_moe(const sp_layer_desc *L, int i, int n, int r, sp_tp_moe moe,
                          sp_tp_layer *out, sp_error *err) {
    out->experts = (sp_tp_range){0, L->n_experts};
    out->expert_ffn = (sp_tp_range){0, L->expert_ffn_dim};
    if (L->n_experts == 0) return SP_OK;
    if (moe == SP_TP_MOE_EXPERTS) {
        if (L->n_experts % n != 0)
            return sp_fail(err, SP_EINVAL,
                           "tensor parallel %d: layer %d has %d experts, which do not split "
                           "into %d equal parts",
                           n, i, L->n_experts, n);
        out->experts = part(L->n_experts, n, r);
        return SP_OK;
    }
    if (L->expert_ffn_dim % n != 0)
        return sp_fail(err, SP_EINVAL,
                       "tensor parallel %d: layer %d's experts have %d intermediate columns, "
                       "which do not split into %d equal parts",
                       n, i, L->expert_ffn_dim, n);
    out->expert_ffn = part(L->expert_ffn_dim, n, r);
    return check_cols(&L->exp_down[0], out->expert_ffn, n, "expert down projection", i, err);
}

sp_tp_slice sp_tp_slice_of(const sp_tp_plan *p, const sp_model_desc *d, int rank, int layer,
                           sp_tp_weight w) {
    const sp_tp_rank *R = &p->ranks[rank];
    sp_tp_range all_h = {0, d->hidden};
    if (w == SP_TP_OUTPUT) return (sp_tp_slice){R->vocab, all_h};
    const sp_tp_layer *S = &R->layers[layer];
    int64_t hd = d->layers[layer].head_dim;
    sp_tp_range q = {S->q_heads.begin * hd, S->q_heads.count * hd};
    sp_tp_range kv = {S->kv_heads.begin * hd, S->kv_heads.count * hd};
    switch (w) {
    case SP_TP_WQ:
        return (sp_tp_slice){q, all_h};
    case SP_TP_WK:
    case SP_TP_WV:
        return (sp_tp_slice){kv, all_h};
    case SP_TP_WO:
        return (sp_tp_slice){all_h, q};
    case SP_TP_GATE:
    case SP_TP_UP:
        return (sp_tp_slice){S->ffn, all_h};
    case SP_TP_DOWN:
        return (sp_tp_slice){all_h, S->ffn};
    case SP_TP_EXP_GATE:
    case SP_TP_EXP_UP:
        return (sp_tp_slice){S->expert_ffn, all_h};
    default: /* SP_TP_EXP_DOWN */
        return (sp_tp_slice){all_h, S->expert_ffn};
    }
}

static uint64_t whole(const sp_tensor *t) {
    return has(t) ? (uint64_t)t->nbytes : 0;
}

static uint64_t piece(const sp_tensor *t, sp_tp_slice s) {
    return has(t) ? (uint64_t)s.rows.count * sp_dtype_row_bytes(t->dtype, s.cols.count) : 0;
}

/* Bytes of layer i's tensors that every GPU holds whole. */
static uint64_t layer_replicated(const sp_layer_desc *L) {
    const sp_tensor *t[] = {&L->attn_norm,
                            &L->post_attn_norm,
                            &L->pre_ffn_norm,
                            &L->post_ffn_norm,
                            &L->bq,
                            &L->bk,
                            &L->bv,
                            &L->bo,
                            &L->q_norm,
                            &L->k_norm,
                            &L->router,
                            &L->router_scale,
                            &L->expert_scale,
                            &L->pre_ffn_norm2,
                            &L->post_ffn_norm1,
                            &L->post_ffn_norm2,
                            &L->ple_gate,
                            &L->ple_proj,
                            &L->ple_post_norm};
    uint64_t b = 0;
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) b += whole(t[k]);
    return b;
}

/* Bytes of rank r's pieces of layer i. */
static uint64_t layer_pieces(const sp_tp_plan *p, const sp_model_desc *d, int r, int i) {
    const sp_layer_desc *L = &d->layers[i];
    const sp_tp_layer *S = &p->ranks[r].layers[i];
#define PIECE(t, w) piece(t, sp_tp_slice_of(p, d, r, i, w))
    uint64_t b = PIECE(&L->wq, SP_TP_WQ) + PIECE(&L->wo, SP_TP_WO);
    if (L->kv_source == i) b += PIECE(&L->wk, SP_TP_WK) + PIECE(&L->wv, SP_TP_WV);
    b += PIECE(&L->w_gate, SP_TP_GATE) + PIECE(&L->w_up, SP_TP_UP) + PIECE(&L->w_down, SP_TP_DOWN);
    for (int64_t e = S->experts.begin; e < S->experts.begin + S->experts.count; e++)
        b += PIECE(&L->exp_gate[e], SP_TP_EXP_GATE) + PIECE(&L->exp_up[e], SP_TP_EXP_UP) +
             PIECE(&L->exp_down[e], SP_TP_EXP_DOWN);
#undef PIECE
    return b;
}

static uint64_t replicated(const sp_model_desc *d) {
    uint64_t b = whole(&d->out_norm) + whole(&d->ple_embd) + whole(&d->ple_model_proj) +
                 whole(&d->ple_proj_norm);
    for (int i = 0; i < d->n_layers; i++) b += layer_replicated(&d->layers[i]);
    return b;
}

static uint64_t rank_bytes(const sp_tp_plan *p, const sp_model_desc *d, int r) {
    sp_tp_slice v = sp_tp_slice_of(p, d, r, 0, SP_TP_OUTPUT);
    uint64_t b = p->replicated_bytes + piece(&d->tok_embd, v);
    if (d->output.data != d->tok_embd.data) b += piece(&d->output, v);
    for (int i = 0; i < d->n_layers; i++) b += layer_pieces(p, d, r, i);
    return b;
}

static sp_status plan_layer(const sp_model_desc *d, int i, int n, int r, sp_tp_moe moe,
                            sp_tp_layer *out, sp_error *err) {
    const sp_layer_desc *L = &d->layers[i];
    SP_TRY(plan_heads(L, i, n, r, out, err));
    sp_tp_range q = {out->q_heads.begin * L->head_dim, out->q_heads.count * L->head_dim};
    SP_TRY(check_cols(&L->wo, q, n, "attention output", i, err));
    const sp_layer_desc *src = &d->layers[L->kv_source];
    if (src->n_kv_heads != L->n_kv_heads || src->head_dim != L->head_dim)
        return sp_fail(err, SP_EINTERNAL, "layer %d reads layer %d's K/V of another shape", i,
                       L->kv_source);
    SP_TRY(plan_dense(L, i, n, r, out, err));
    return plan_moe(L, i, n, r, moe, out, err);
}

void sp_tp_plan_free(sp_tp_plan *p) {
    if (!p->ranks) return;
    for (int r = 0; r < p->n_ranks; r++) free(p->ranks[r].layers);
    free(p->ranks);
    p->ranks = NULL;
}

sp_status sp_tp_plan_make(sp_tp_plan *p, const sp_model_desc *d, int n_ranks, sp_tp_moe moe,
                          sp_error *err) {
    *p = (sp_tp_plan){.n_ranks = n_ranks, .n_layers = d->n_layers};
    if (n_ranks < 1)
        return sp_fail(err, SP_EINVAL, "tensor parallel %d: needs 1 GPU or more", n_ranks);
    if (moe == SP_TP_MOE_AUTO) moe = moe_shards(d, n_ranks) ? SP_TP_MOE_SHARD : SP_TP_MOE_EXPERTS;
    p->moe = moe;
    p->ranks = calloc((size_t)n_ranks, sizeof *p->ranks);
    if (!p->ranks) return sp_fail(err, SP_ENOMEM, "tensor parallel plan: out of memory");
    sp_status s = SP_OK;
    for (int r = 0; r < n_ranks && s == SP_OK; r++) {
        sp_tp_rank *R = &p->ranks[r];
        R->layers = calloc((size_t)d->n_layers + 1, sizeof *R->layers);
        if (!R->layers) s = sp_fail(err, SP_ENOMEM, "tensor parallel plan: out of memory");
        for (int i = 0; i < d->n_layers && s == SP_OK; i++)
            s = plan_layer(d, i, n_ranks, r, moe, &R->layers[i], err);
        /* vocabulary rows: the first vocab % n GPUs take one more */
        int64_t each = d->vocab / n_ranks, extra = d->vocab % n_ranks;
        R->vocab = (sp_tp_range){r * each + (r < extra ? r : extra), each + (r < extra)};
    }
    if (s != SP_OK) {
        sp_tp_plan_free(p);
        return s;
    }
    p->replicated_bytes = replicated(d);
    for (int r = 0; r < n_ranks; r++) p->ranks[r].weight_bytes = rank_bytes(p, d, r);
    return SP_OK;
}
