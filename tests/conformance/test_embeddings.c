/* Embedding models against sentence-transformers (issue 18): each fixture's
 * texts tokenize to the reference ids, and the model's final hidden states,
 * pooled by the directory's modules (model/pooling.c), match the reference
 * embeddings in f32 within 1e-4 (cosine >= 0.9999), one input per forward
 * and all inputs in one batched forward (bidirectional attention must stay
 * inside each input). Fixtures: the shared qwen3_lasttoken (causal,
 * last-token pooling) and tests/fixtures/embeddings/gemma3_bidir_mean_dense
 * (bidirectional with sliding windows, mean pooling, two Dense layers),
 * assembled into build/ by tests/fixtures/embeddings/assemble.sh.
 *
 * Both were saved by sentence-transformers 6 with a "message" modality, so
 * its encode() renders each text as one user message through the chat
 * template (reference.json's token_ids are the plain tokenization): the
 * inputs here are rendered the same way, as the server does.
 *
 * Registered for the GPU suite too (test_device.h): on --device cuda the
 * same checks cover forward.cu's bidirectional attention and hidden rows. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"
#include "check.h"
#include "fixture.h"
#include "model/internal.h"
#include "model/pooling.h"
#include "isa_levels.h"
#include "test_device.h"
#include "tokenizer/tokenizer.h"

#define MAX_TEXTS 16

typedef struct ref {
    json_t *root;
    int n;
    int32_t *ids[MAX_TEXTS]; /* the plain tokenization (reference.json) */
    int n_ids[MAX_TEXTS];
    int32_t *in[MAX_TEXTS]; /* what the model reads (chat-rendered for message inputs) */
    int n_in[MAX_TEXTS];
    float *emb; /* [n][dim] */
    int dim;
} ref;

static int ref_load(ref *r, const char *dir) {
    memset(r, 0, sizeof *r);
    char path[1200];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    r->root = json_load_file(path, 0, NULL);
    json_t *ids = json_object_get(r->root, "token_ids");
    json_t *shape = json_object_get(json_object_get(r->root, "embeddings"), "shape");
    if (!json_is_array(ids) || json_array_size(ids) > MAX_TEXTS) return 0;
    r->n = (int)json_array_size(ids);
    r->dim = (int)json_integer_value(json_array_get(shape, 1));
    for (int i = 0; i < r->n; i++) {
        json_t *a = json_array_get(ids, (size_t)i);
        r->n_ids[i] = (int)json_array_size(a);
        r->ids[i] = malloc((size_t)r->n_ids[i] * sizeof(int32_t));
        for (int j = 0; j < r->n_ids[i]; j++)
            r->ids[i][j] = (int32_t)json_integer_value(json_array_get(a, (size_t)j));
    }
    r->emb = read_f32(dir, "embeddings.f32", (size_t)r->n * r->dim);
    return r->emb != NULL && (int)json_integer_value(json_array_get(shape, 0)) == r->n;
}

static void ref_free(ref *r) {
    for (int i = 0; i < r->n; i++) free(r->ids[i]), free(r->in[i]);
    free(r->emb);
    json_decref(r->root);
}

/* One text as the user message of a chat, rendered (malloc'd). */
static char *render_message(const char *dir, const char *text, sp_embed_input how, int agp) {
    char *src = NULL, *bos = NULL, *eos = NULL, *out = NULL;
    sp_template *t = NULL;
    sp_error err = {0};
    if (sp_chat_template_load(dir, &src, &bos, &eos, &err) == SP_OK &&
        sp_template_parse(&t, src, &err) == SP_OK) {
        json_t *content = how == SP_EMBED_MESSAGE_STRUCTURED
                              ? json_pack("[{s:s, s:s}]", "type", "text", "text", text)
                              : json_string(text);
        json_t *msgs = json_pack("[{s:s, s:o}]", "role", "user", "content", content);
        json_t *ctx =
            sp_chat_template_context(msgs, NULL, agp, bos ? bos : "", eos ? eos : "", NULL);
        if (sp_template_render(t, ctx, &out, &err) != SP_OK) out = NULL;
        json_decref(ctx);
        json_decref(msgs);
    }
    CHECKF(out != NULL, "%s: chat template: %s", dir, err.msg);
    sp_template_free(t);
    free(src), free(bos), free(eos);
    return out;
}

/* The texts tokenize to the reference ids; r->in gets what the model reads. */
static void tokenize_inputs(const char *name, const char *dir, ref *r, sp_embed_input how,
                            int agp) {
    sp_tokenizer *tok = NULL;
    sp_error err = {0};
    CHECKF(sp_tokenizer_load(&tok, dir, &err) == SP_OK, "%s tokenizer: %s", name, err.msg);
    if (!tok) return;
    json_t *texts = json_object_get(r->root, "texts");
    for (int i = 0; i < r->n; i++) {
        const char *t = json_string_value(json_array_get(texts, (size_t)i));
        int32_t *ids = NULL;
        size_t n = 0;
        sp_status s = sp_tokenizer_encode(tok, t, strlen(t), 1, 1, &ids, &n, &err);
        CHECKF(s == SP_OK && (int)n == r->n_ids[i] && !memcmp(ids, r->ids[i], n * sizeof(int32_t)),
               "%s text %d: token ids differ from the reference (%zu vs %d)", name, i, n,
               r->n_ids[i]);
        if (how != SP_EMBED_TEXT) { /* as transformers' apply_chat_template: no extra specials */
            free(ids);
            ids = NULL;
            char *chat = render_message(dir, t, how, agp);
            s = chat ? sp_tokenizer_encode(tok, chat, strlen(chat), 0, 1, &ids, &n, &err)
                     : SP_EINVAL;
            free(chat);
        }
        r->in[i] = ids;
        r->n_in[i] = s == SP_OK ? (int)n : 0;
    }
    sp_tokenizer_free(tok);
}

/* Worst |diff| and lowest cosine of one vector against the reference. */
static void compare(const float *a, const float *b, int n, float *worst, float *cos_min) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (d > *worst) *worst = d;
        ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    }
    float c = (float)(ab / sqrt(aa * bb));
    if (c < *cos_min) *cos_min = c;
}

/* Runs `count` inputs from `first` in one forward; pools each into out. */
static sp_status embed(sp_model *m, sp_pooler *p, const ref *r, int first, int count, float *out,
                       sp_error *err) {
    int bs = 16, blocks = 0, tokens = 0;
    for (int i = first; i < first + count; i++) {
        blocks += (r->n_in[i] + bs - 1) / bs;
        tokens += r->n_in[i];
    }
    sp_kv *kv = NULL;
    SP_TRY(sp_kv_create(&kv, m, blocks, bs, err));
    sp_seq_input in[MAX_TEXTS];
    int32_t table[256];
    float *hidden = malloc((size_t)tokens * m->d.hidden * sizeof(float));
    int b0 = 0, t0 = 0;
    for (int k = 0; k < count; k++) {
        int i = first + k, nb = (r->n_in[i] + bs - 1) / bs;
        for (int j = 0; j < nb; j++) table[b0 + j] = b0 + j;
        in[k] = (sp_seq_input){.tokens = r->in[i],
                               .n_tokens = r->n_in[i],
                               .block_table = table + b0,
                               .n_blocks = nb,
                               .bidirectional = m->d.bidirectional,
                               .hidden = hidden + (size_t)t0 * m->d.hidden};
        b0 += nb;
        t0 += r->n_in[i];
    }
    sp_status s = sp_model_forward(m, kv, in, count, NULL, err);
    for (int k = 0; s == SP_OK && k < count; k++)
        sp_pooler_run(p, in[k].hidden, in[k].n_tokens, out + (size_t)(first + k) * r->dim);
    free(hidden);
    sp_kv_free(kv);
    return s;
}

static void check_model(const char *name, const char *dir) {
    ref r;
    CHECKF(ref_load(&r, dir), "%s: cannot read the reference", dir);
    if (!r.emb) return ref_free(&r);
    sp_model_opts o;
    sp_model_opts_default(&o);
    o.precision = SP_PREC_F32;
    test_device_opts(&o);
    o.n_threads = 2;
    sp_model *m = NULL;
    sp_pooler *p = NULL;
    sp_error err = {0};
    sp_status s = sp_model_load(&m, dir, &o, &err);
    if (s == SP_OK) s = sp_pooler_load(&p, dir, m->d.hidden, &err);
    CHECKF(s == SP_OK, "%s: %s", name, err.msg);
    if (p) tokenize_inputs(name, dir, &r, sp_pooler_input(p), sp_pooler_generation_prompt(p));
    for (int i = 0; p && i < r.n; i++) CHECKF(r.n_in[i] > 0, "%s text %d: no input", name, i);
    CHECKF(!p || sp_pooler_dim(p) == r.dim, "%s: dim %d, reference %d", name, sp_pooler_dim(p),
           r.dim);
    if (s == SP_OK && sp_pooler_dim(p) == r.dim) {
        float *one = malloc((size_t)r.n * r.dim * sizeof(float));
        float *all = malloc((size_t)r.n * r.dim * sizeof(float));
        for (int i = 0; s == SP_OK && i < r.n; i++) s = embed(m, p, &r, i, 1, one, &err);
        if (s == SP_OK) s = embed(m, p, &r, 0, r.n, all, &err);
        CHECKF(s == SP_OK, "%s: %s", name, err.msg);
        float worst = 0, cos_min = 1, worst_b = 0, cos_b = 1;
        for (int i = 0; s == SP_OK && i < r.n; i++) {
            compare(one + (size_t)i * r.dim, r.emb + (size_t)i * r.dim, r.dim, &worst, &cos_min);
            compare(all + (size_t)i * r.dim, r.emb + (size_t)i * r.dim, r.dim, &worst_b, &cos_b);
        }
        printf("| %-24s | %s | %d texts | one by one: max %.2e cos %.7f | batched: max %.2e "
               "cos %.7f |\n",
               name, sp_pooler_describe(p), r.n, worst, cos_min, worst_b, cos_b);
        CHECKF(worst <= 1e-4f && cos_min >= 0.9999f, "%s: max %g cos %g", name, worst, cos_min);
        CHECKF(worst_b <= 1e-4f && cos_b >= 0.9999f, "%s batched: max %g cos %g", name, worst_b,
               cos_b);
        free(one);
        free(all);
    }
    sp_pooler_free(p);
    sp_model_free(m);
    ref_free(&r);
}

int main(void) {
    test_device_or_skip("test_embeddings");
    int rc = isa_from_env("test_embeddings");
    if (rc >= 0) return rc;
    char dir[1200], cmd[3000];
    snprintf(dir, sizeof dir, "%s/fixtures/embeddings/qwen3_lasttoken", SP_SHARED_DIR);
    check_model("qwen3_lasttoken", dir);
    /* the GPU run and the run at each kernel level may go in parallel
     * (ctest -j): one copy each */
    snprintf(dir, sizeof dir, "%s/fixtures/gemma3_bidir_mean_dense_%s", SP_BUILD_DIR,
             test_on_cuda() ? "cuda" : sp_isa_name(sp_ops_isa()));
    snprintf(cmd, sizeof cmd, "bash '%s/tests/fixtures/embeddings/assemble.sh' '%s' '%s'",
             SP_SOURCE_DIR, dir, getenv("SP_TOKENIZERS_DIR") ? getenv("SP_TOKENIZERS_DIR") : "");
    CHECKF(system(cmd) == 0, "%s failed", cmd);
    check_model("gemma3_bidir_mean_dense", dir);
    return check_summary("test_embeddings");
}
