/* Fuzz target: arbitrary bytes as a model's config.json -> the HF config
 * mapping (sp_hf_config: family, geometry, per-layer attention layout, RoPE
 * tables). Parsed as the loader parses it (sp_json_parse) and with the same
 * text_config handling as model/hf.c's load_config. Beyond "no crash": a
 * config that maps has sane geometry and finite RoPE tables. */
#include "fuzz_common.h"

#include <math.h>

#include "formats/json.h"
#include "model/hf_config.h"
#include "model/rope.h"

/* model/hf.c: multimodal configs nest the text model under text_config;
 * a few keys may sit only at the top level. */
static const json_t *fuzz_cfg_text(json_t *root) {
    json_t *tc = json_object_get(root, "text_config");
    if (!json_is_object(tc)) return root;
    const char *keys[] = {"tie_word_embeddings", "eos_token_id", "bos_token_id"};
    for (size_t i = 0; i < 3; i++)
        if (!json_object_get(tc, keys[i]) && json_object_get(root, keys[i]))
            json_object_set(tc, keys[i], json_object_get(root, keys[i]));
    return tc;
}

static void fuzz_cfg_check(const sp_model_desc *d) {
    FUZZ_ASSERT(d->n_layers > 0 && d->layers, "n_layers %d", d->n_layers);
    FUZZ_ASSERT(d->hidden > 0 && d->vocab > 0, "hidden %d vocab %d", d->hidden, d->vocab);
    FUZZ_ASSERT(d->n_ropes >= 0 && d->n_ropes <= SP_MAX_ROPE_TABLES, "n_ropes %d", d->n_ropes);
    for (int r = 0; r < d->n_ropes && r < SP_MAX_ROPE_TABLES; r++) {
        const sp_rope_table *t = &d->ropes[r];
        FUZZ_ASSERT(t->n_pairs >= 0 && 2 * t->n_pairs <= t->head_dim, "rope %d: %d pairs, head %d",
                    r, t->n_pairs, t->head_dim);
        for (int i = 0; i < t->n_pairs && t->inv_freq; i++)
            FUZZ_ASSERT(isfinite(t->inv_freq[i]), "rope %d inv_freq[%d] = %g", r, i,
                        (double)t->inv_freq[i]);
        FUZZ_ASSERT(isfinite(t->attn_factor), "rope %d attn_factor %g", r, (double)t->attn_factor);
    }
    for (int i = 0; i < d->n_layers && d->layers; i++) {
        const sp_layer_desc *L = &d->layers[i];
        FUZZ_ASSERT(L->n_heads > 0 && L->n_kv_heads > 0 && L->head_dim > 0,
                    "layer %d: %d heads, %d kv heads, head_dim %d", i, L->n_heads, L->n_kv_heads,
                    L->head_dim);
        FUZZ_ASSERT(L->n_kv_heads <= 0 || L->n_heads % L->n_kv_heads == 0,
                    "layer %d: %d heads not a multiple of %d kv heads", i, L->n_heads,
                    L->n_kv_heads);
        FUZZ_ASSERT(L->rope >= -1 && L->rope < d->n_ropes, "layer %d: rope %d of %d", i, L->rope,
                    d->n_ropes);
        FUZZ_ASSERT(L->kv_source >= 0 && L->kv_source <= i, "layer %d: kv_source %d", i,
                    L->kv_source);
        FUZZ_ASSERT(L->sliding_window >= 0, "layer %d: window %d", i, L->sliding_window);
    }
}

int fuzz_json_config(const uint8_t *data, size_t size) {
    json_t *root = NULL;
    sp_error err = {0};
    if (sp_json_parse(&root, (const char *)data, size, "config.json", &err) != SP_OK) return 0;
    sp_model_desc d;
    memset(&d, 0, sizeof d);
    sp_hf_info info;
    sp_model_opts opts;
    sp_model_opts_default(&opts);
    opts.longrope_always_long = (int)(size & 1);
    sp_status s = SP_EFORMAT;
    if (json_is_object(root))
        s = sp_hf_config(&d, &info, fuzz_cfg_text(root), "config.json", &opts, &err);
    if (s == SP_OK)
        fuzz_cfg_check(&d);
    else
        FUZZ_ASSERT(err.msg[0] || !json_is_object(root), "failure without a message");
    /* as sp_model_free: the caller owns ropes and layers, even on failure */
    for (int r = 0; r < d.n_ropes && r < SP_MAX_ROPE_TABLES; r++) sp_rope_free(&d.ropes[r]);
    free(d.layers);
    json_decref(root);
    return 0;
}

#ifndef FUZZ_REGRESSION
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_json_config(data, size);
}
#endif
