#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "model/internal.h"

static size_t layer_token_floats(const sp_layer_desc *L) {
    return (size_t)L->n_kv_heads * (size_t)L->head_dim;
}

uint64_t sp_kv_bytes_per_block(const sp_model *m, int block_size) {
    uint64_t b = 0;
    for (int i = 0; i < m->d.n_layers; i++)
        if (m->d.layers[i].kv_source == i)
            b += 2 * layer_token_floats(&m->d.layers[i]) * sizeof(float) * (uint64_t)block_size;
    return b;
}

sp_status sp_kv_create(sp_kv **out, const sp_model *m, int n_blocks, int block_size,
                       sp_error *err) {
    if (n_blocks <= 0 || block_size <= 0)
        return sp_fail(err, SP_EINVAL, "kv cache: need at least one block of one token");
    sp_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return sp_fail(err, SP_ENOMEM, "kv cache");
    kv->n_blocks = n_blocks;
    kv->block_size = block_size;
    kv->n_layers = m->d.n_layers;
    kv->k = calloc((size_t)m->d.n_layers, sizeof(float *));
    kv->v = calloc((size_t)m->d.n_layers, sizeof(float *));
    if (!kv->k || !kv->v) goto oom;
    for (int i = 0; i < m->d.n_layers; i++) {
        const sp_layer_desc *L = &m->d.layers[i];
        if (L->kv_source != i) continue;
        size_t bytes =
            layer_token_floats(L) * sizeof(float) * (size_t)block_size * (size_t)n_blocks;
        kv->k[i] = sp_aligned_alloc(bytes);
        kv->v[i] = sp_aligned_alloc(bytes);
        if (!kv->k[i] || !kv->v[i]) goto oom;
    }
    *out = kv;
    return SP_OK;
oom:
    sp_kv_free(kv);
    return sp_fail(err, SP_ENOMEM, "kv cache: cannot allocate %d blocks of %d tokens", n_blocks,
                   block_size);
}

void sp_kv_free(sp_kv *kv) {
    if (!kv) return;
    for (int i = 0; i < kv->n_layers; i++) {
        if (kv->k) sp_aligned_free(kv->k[i]);
        if (kv->v) sp_aligned_free(kv->v[i]);
    }
    free(kv->k);
    free(kv->v);
    free(kv);
}

int sp_kv_block_size(const sp_kv *kv) {
    return kv->block_size;
}
int sp_kv_n_blocks(const sp_kv *kv) {
    return kv->n_blocks;
}
