/* Tensor-parallel plans (model/shard.h) over the fixtures' real
 * descriptions and over hand-made big shapes: the ranks' pieces partition
 * every head, column, expert and vocabulary row exactly once, a GPU's query
 * heads read only K/V heads it holds, the bytes add up to the model's (an
 * independent walk over every tensor), and a geometry or block size that
 * does not divide fails naming the layer and the tensor. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model/model.h"
#include "model/shard.h"

/* Every weight byte of d, each tensor once (a tied output head is the
 * embedding). */
static uint64_t model_bytes(const sp_model_desc *d) {
#define B(t) ((t).data ? (uint64_t)(t).nbytes : 0)
    uint64_t b = B(d->tok_embd) + B(d->out_norm) + B(d->ple_embd) + B(d->ple_model_proj) +
                 B(d->ple_proj_norm);
    if (d->output.data != d->tok_embd.data) b += B(d->output);
    for (int i = 0; i < d->n_layers; i++) {
        const sp_layer_desc *L = &d->layers[i];
        const sp_tensor *t[] = {&L->attn_norm,
                                &L->post_attn_norm,
                                &L->pre_ffn_norm,
                                &L->post_ffn_norm,
                                &L->wq,
                                &L->wk,
                                &L->wv,
                                &L->wo,
                                &L->bq,
                                &L->bk,
                                &L->bv,
                                &L->bo,
                                &L->q_norm,
                                &L->k_norm,
                                &L->w_gate,
                                &L->w_up,
                                &L->w_down,
                                &L->router,
                                &L->router_scale,
                                &L->expert_scale,
                                &L->pre_ffn_norm2,
                                &L->post_ffn_norm1,
                                &L->post_ffn_norm2,
                                &L->ple_gate,
                                &L->ple_proj,
                                &L->ple_post_norm};
        for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
            /* KV-shared layers' K/V are their source's */
            if ((t[k] == &L->wk || t[k] == &L->wv) && L->kv_source != i) continue;
            b += B(*t[k]);
        }
        for (int e = 0; e < L->n_experts; e++)
            b += B(L->exp_gate[e]) + B(L->exp_up[e]) + B(L->exp_down[e]);
    }
#undef B
    return b;
}

/* ranges[r] over r partition [0, total) in order */
static int partitions(const sp_tp_range *ranges, int n, int64_t total) {
    int64_t at = 0;
    for (int r = 0; r < n; r++) {
        if (ranges[r].begin != at || ranges[r].count < 0) return 0;
        at += ranges[r].count;
    }
    return at == total;
}

enum { MAX_RANKS = 16 };

/* Checks every invariant of plan p for d (n ranks). */
static void check_plan(const char *name, const sp_model_desc *d, const sp_tp_plan *p) {
    int n = p->n_ranks;
    sp_tp_range q[MAX_RANKS], f[MAX_RANKS], e[MAX_RANKS], v[MAX_RANKS];
    for (int i = 0; i < d->n_layers; i++) {
        const sp_layer_desc *L = &d->layers[i];
        int group = L->n_heads / L->n_kv_heads;
        for (int r = 0; r < n; r++) {
            const sp_tp_layer *S = &p->ranks[r].layers[i];
            q[r] = S->q_heads;
            f[r] = S->ffn;
            e[r] = p->moe == SP_TP_MOE_EXPERTS ? S->experts : S->expert_ffn;
            int64_t h0 = S->q_heads.begin, h1 = h0 + S->q_heads.count - 1;
            CHECKF(h0 / group >= S->kv_heads.begin &&
                       h1 / group < S->kv_heads.begin + S->kv_heads.count,
                   "%s n=%d layer %d rank %d: query heads %lld..%lld outside K/V heads %lld+%lld",
                   name, n, i, r, (long long)h0, (long long)h1, (long long)S->kv_heads.begin,
                   (long long)S->kv_heads.count);
        }
        CHECKF(partitions(q, n, L->n_heads), "%s n=%d layer %d: query heads", name, n, i);
        if (L->w_down.data && L->ffn_dim)
            CHECKF(partitions(f, n, L->ffn_dim), "%s n=%d layer %d: MLP columns", name, n, i);
        if (L->n_experts)
            CHECKF(partitions(e, n, p->moe == SP_TP_MOE_EXPERTS ? L->n_experts : L->expert_ffn_dim),
                   "%s n=%d layer %d: experts", name, n, i);
    }
    for (int r = 0; r < n; r++) v[r] = p->ranks[r].vocab;
    CHECKF(partitions(v, n, d->vocab), "%s n=%d: vocabulary rows", name, n);

    /* Without shared K/V heads the pieces hold every byte exactly once. */
    int shared = 0;
    for (int i = 0; i < d->n_layers; i++) shared |= d->layers[i].n_kv_heads < n;
    uint64_t sum = 0;
    for (int r = 0; r < n; r++) sum += p->ranks[r].weight_bytes - p->replicated_bytes;
    uint64_t want = model_bytes(d) - p->replicated_bytes;
    if (!shared)
        CHECKF(sum == want, "%s n=%d: pieces %llu bytes, model %llu", name, n,
               (unsigned long long)sum, (unsigned long long)want);
    else
        CHECKF(sum > want, "%s n=%d: shared K/V heads are held twice", name, n);
}

static void plan_ok(const char *name, const sp_model_desc *d, int n, sp_tp_moe moe,
                    sp_tp_moe want_moe) {
    sp_tp_plan p;
    sp_error err = {0};
    sp_status s = sp_tp_plan_make(&p, d, n, moe, &err);
    CHECKF(s == SP_OK, "%s n=%d: %s", name, n, err.msg);
    if (s != SP_OK) return;
    if (want_moe) CHECKF(p.moe == want_moe, "%s n=%d: moe mode %d", name, n, p.moe);
    check_plan(name, d, &p);
    if (n == 1)
        CHECKF(p.ranks[0].weight_bytes == model_bytes(d), "%s: one GPU holds the model", name);
    sp_tp_plan_free(&p);
}

static void plan_fails(const char *name, const sp_model_desc *d, int n, sp_tp_moe moe,
                       const char *want1, const char *want2) {
    sp_tp_plan p;
    sp_error err = {0};
    sp_status s = sp_tp_plan_make(&p, d, n, moe, &err);
    CHECKF(s == SP_EINVAL, "%s n=%d: expected an error", name, n);
    CHECKF(strstr(err.msg, want1) && strstr(err.msg, want2), "%s n=%d: message \"%s\"", name, n,
           err.msg);
    CHECK(p.ranks == NULL);
}

/* ---- hand-made big shapes (no weights: data points at a dummy byte) ---- */

static char stand_in;

static sp_tensor mat(sp_dtype t, int64_t rows, int64_t cols) {
    sp_tensor x = {.dtype = t, .ndim = 2, .shape = {rows, cols}, .data = &stand_in};
    x.nbytes = (size_t)rows * sp_dtype_row_bytes(t, cols);
    return x;
}

static sp_tensor vec(int64_t n) {
    return mat(SP_F32, 1, n);
}

typedef struct shape {
    int layers, hidden, vocab, heads, ffn;
    int kv, hd;            /* sliding / every layer */
    int g_kv, g_hd, every; /* every `every`-th layer global (0: none): K = V */
    int experts, exp_ffn;
    sp_dtype w, wexp;
} shape;

/* Fills d from s; free with free_desc. */
static void make_desc(sp_model_desc *d, const shape *s) {
    memset(d, 0, sizeof *d);
    d->n_layers = s->layers;
    d->hidden = s->hidden;
    d->vocab = s->vocab;
    d->tok_embd = mat(s->w, s->vocab, s->hidden);
    d->output = d->tok_embd; /* tied */
    d->out_norm = vec(s->hidden);
    d->layers = calloc((size_t)s->layers, sizeof *d->layers);
    for (int i = 0; i < s->layers; i++) {
        sp_layer_desc *L = &d->layers[i];
        int global = s->every && (i + 1) % s->every == 0;
        L->n_heads = s->heads;
        L->n_kv_heads = global ? s->g_kv : s->kv;
        L->head_dim = global ? s->g_hd : s->hd;
        L->k_eq_v = global;
        L->kv_source = i;
        int64_t H = s->hidden, q = (int64_t)L->n_heads * L->head_dim,
                kv = (int64_t)L->n_kv_heads * L->head_dim;
        L->attn_norm = vec(H);
        L->wq = mat(s->w, q, H);
        L->wk = mat(s->w, kv, H);
        if (!global) L->wv = mat(s->w, kv, H);
        L->wo = mat(s->w, H, q);
        L->ffn_dim = s->ffn;
        L->w_gate = mat(s->w, s->ffn, H);
        L->w_up = mat(s->w, s->ffn, H);
        L->w_down = mat(s->w, H, s->ffn);
        if (!s->experts) continue;
        L->n_experts = s->experts;
        L->expert_ffn_dim = s->exp_ffn;
        L->router = mat(SP_BF16, s->experts, H);
        L->exp_gate = calloc((size_t)s->experts, sizeof(sp_tensor));
        L->exp_up = calloc((size_t)s->experts, sizeof(sp_tensor));
        L->exp_down = calloc((size_t)s->experts, sizeof(sp_tensor));
        for (int e = 0; e < s->experts; e++) {
            L->exp_gate[e] = mat(s->wexp, s->exp_ffn, H);
            L->exp_up[e] = mat(s->wexp, s->exp_ffn, H);
            L->exp_down[e] = mat(s->wexp, H, s->exp_ffn);
        }
    }
}

static void free_desc(sp_model_desc *d) {
    for (int i = 0; i < d->n_layers; i++) {
        free(d->layers[i].exp_gate);
        free(d->layers[i].exp_up);
        free(d->layers[i].exp_down);
    }
    free(d->layers);
}

static void big_shapes(void) {
    sp_model_desc d;
    /* Llama-3-8B-shaped, Q4_K */
    shape llama = {32, 4096, 128256, 32, 14336, 8, 128, 0, 0, 0, 0, 0, SP_Q4_K, SP_Q4_K};
    make_desc(&d, &llama);
    for (int n = 1; n <= 8; n *= 2) plan_ok("llama3-8b q4_k", &d, n, SP_TP_MOE_AUTO, 0);
    /* 16 GPUs: K/V heads shared by pairs, but 14336 / 16 = 896 columns cut a 256-value block */
    plan_fails("llama3-8b q4_k", &d, 16, SP_TP_MOE_AUTO, "MLP down projection (q4_k", "layer 0");
    plan_fails("llama3-8b q4_k", &d, 3, SP_TP_MOE_AUTO, "32 query heads", "3 equal parts");
    free_desc(&d);

    /* Gemma-4-31B-shaped, bf16: global layers (every 6th) have 4 K/V heads of 512 */
    shape g31 = {60, 5376, 262144, 32, 21504, 16, 256, 4, 512, 6, 0, 0, SP_BF16, SP_BF16};
    make_desc(&d, &g31);
    for (int n = 1; n <= 8; n *= 2) plan_ok("gemma4-31b", &d, n, SP_TP_MOE_AUTO, 0);
    sp_tp_plan p;
    sp_error err = {0};
    CHECK(sp_tp_plan_make(&p, &d, 8, SP_TP_MOE_AUTO, &err) == SP_OK);
    /* layer 5 is global: GPUs 4 and 5 share its K/V head 2 */
    CHECK(p.ranks[5].layers[5].kv_heads.begin == 2 && p.ranks[5].layers[5].kv_heads.count == 1);
    CHECK(p.ranks[4].layers[5].kv_heads.begin == 2);
    CHECK(p.ranks[5].layers[0].kv_heads.begin == 10 && p.ranks[5].layers[0].kv_heads.count == 2);
    sp_tp_plan_free(&p);
    CHECK(sp_tp_plan_make(&p, &d, 2, SP_TP_MOE_AUTO, &err) == SP_OK);
    uint64_t total = model_bytes(&d);
    /* each of 2 GPUs holds half the weights plus the replicated norms */
    CHECKF(p.ranks[0].weight_bytes == (total - p.replicated_bytes) / 2 + p.replicated_bytes,
           "%llu of %llu", (unsigned long long)p.ranks[0].weight_bytes, (unsigned long long)total);
    sp_tp_plan_free(&p);
    free_desc(&d);

    /* Qwen2.5-7B-shaped: 28 query heads and 4 K/V heads; 7 GPUs divide the
     * queries but neither split nor share the K/V heads */
    shape qwen = {28, 3584, 152064, 28, 18944, 4, 128, 0, 0, 0, 0, 0, SP_BF16, SP_BF16};
    make_desc(&d, &qwen);
    plan_ok("qwen2.5-7b", &d, 4, SP_TP_MOE_AUTO, 0);
    plan_fails("qwen2.5-7b", &d, 7, SP_TP_MOE_AUTO, "layer 0 has 4 K/V heads", "7 equal parts");
    free_desc(&d);

    /* Gemma-4-26B-A4B-shaped: 128 experts of 704 columns beside a dense MLP */
    shape g26 = {30, 2816, 262144, 16, 2112, 8, 256, 2, 512, 6, 128, 704, SP_BF16, SP_BF16};
    make_desc(&d, &g26);
    plan_ok("gemma4-26b-a4b bf16", &d, 2, SP_TP_MOE_AUTO, SP_TP_MOE_SHARD);
    plan_ok("gemma4-26b-a4b bf16", &d, 4, SP_TP_MOE_EXPERTS, SP_TP_MOE_EXPERTS);
    free_desc(&d);
    /* Q4_K experts: 352 columns cut a block, so the GPUs take whole experts */
    g26.wexp = SP_Q4_K;
    make_desc(&d, &g26);
    plan_ok("gemma4-26b-a4b q4_k", &d, 2, SP_TP_MOE_AUTO, SP_TP_MOE_EXPERTS);
    plan_ok("gemma4-26b-a4b q4_k", &d, 8, SP_TP_MOE_AUTO, SP_TP_MOE_EXPERTS);
    plan_fails("gemma4-26b-a4b q4_k", &d, 2, SP_TP_MOE_SHARD, "expert down projection (q4_k",
               "layer 0");
    free_desc(&d);
}

/* ---- the fixtures' real descriptions (4 heads, 2 K/V heads) ---- */

static void fixture(const char *name, sp_dtype quantize) {
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/%s", SP_SHARED_DIR, name);
    sp_model_opts o;
    sp_model_opts_default(&o);
    o.quantize = quantize;
    sp_model *m = NULL;
    sp_error err = {0};
    if (sp_model_load(&m, path, &o, &err) != SP_OK) {
        CHECKF(0, "%s: %s", name, err.msg);
        return;
    }
    const sp_model_desc *d = sp_model_get_desc(m);
    char label[128];
    snprintf(label, sizeof label, "%s %s", name, quantize == SP_F32 ? "" : sp_dtype_name(quantize));
    if (quantize == SP_F32) {
        for (int n = 1; n <= 4; n *= 2) plan_ok(label, d, n, SP_TP_MOE_AUTO, 0);
        plan_fails(label, d, 3, SP_TP_MOE_AUTO, "4 query heads", "layer 0");
    } else {
        /* Q8_0: 2 GPUs cut wo at 32 columns (one block); 4 GPUs at 16 */
        plan_ok(label, d, 2, SP_TP_MOE_AUTO, 0);
        plan_fails(label, d, 4, SP_TP_MOE_AUTO, "attention output (q8_0", "blocks of 32");
    }
    sp_model_free(m);
}

int main(void) {
    big_shapes();
    const char *fixtures[] = {"llama",        "qwen2",         "qwen3_moe",
                              "mixtral",      "phi3_longrope", "gemma3",
                              "gemma4_dense", "gemma4_moe",    "gemma4_ple_kvshare"};
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) fixture(fixtures[i], SP_F32);
    fixture("llama", SP_Q8_0);
    return check_summary("test_model_shard");
}
