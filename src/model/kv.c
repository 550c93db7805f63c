#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "cuda/cuda.h"
#include "model/internal.h"

static size_t layer_token_floats(const sp_layer_desc *L) {
    return (size_t)L->n_kv_heads * (size_t)L->head_dim;
}

/* The window of the K/V that layer src owns: the largest sliding window of
 * the layers reading it, or 0 if any of them attends to everything (then
 * nothing it holds may ever be dropped). */
static int source_window(const sp_model_desc *d, int src) {
    int w = 0;
    for (int l = 0; l < d->n_layers; l++) {
        if (d->layers[l].kv_source != src) continue;
        if (d->layers[l].sliding_window <= 0) return 0;
        if (d->layers[l].sliding_window > w) w = d->layers[l].sliding_window;
    }
    return w;
}

int sp_model_swa_window(const sp_model *m) {
    int w = 0;
    for (int i = 0; i < m->d.n_layers; i++) {
        if (m->d.layers[i].kv_source != i) continue;
        int s = source_window(&m->d, i);
        if (s > w) w = s;
    }
    return w;
}

/* K and V of one block, in the model's device's cache type */
static uint64_t layer_block_bytes(const sp_model *m, const sp_layer_desc *L, int block_size) {
    return 2 * layer_token_floats(L) * (uint64_t)m->kv_elem * (uint64_t)block_size;
}

uint64_t sp_kv_bytes_per_block(const sp_model *m, int block_size) {
    uint64_t b = 0;
    for (int i = 0; i < m->d.n_layers; i++)
        if (m->d.layers[i].kv_source == i) b += layer_block_bytes(m, &m->d.layers[i], block_size);
    return b;
}

uint64_t sp_kv_group_bytes_per_block(const sp_model *m, int block_size, int sliding) {
    uint64_t b = 0;
    for (int i = 0; i < m->d.n_layers; i++)
        if (m->d.layers[i].kv_source == i && (source_window(&m->d, i) > 0) == (sliding != 0))
            b += layer_block_bytes(m, &m->d.layers[i], block_size);
    return b;
}

/* grouped: layers of the sliding group get n_swa blocks, the rest n_full;
 * on the model's device. */
static sp_status kv_create(sp_kv **out, const sp_model *m, int n_full, int n_swa, int block_size,
                           int grouped, sp_error *err) {
    if (n_full <= 0 || block_size <= 0 || (grouped && n_swa <= 0))
        return sp_fail(err, SP_EINVAL, "kv cache: need at least one block of one token");
    sp_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return sp_fail(err, SP_ENOMEM, "kv cache");
    kv->n_blocks = n_full;
    kv->block_size = block_size;
    kv->n_layers = m->d.n_layers;
    kv->k = calloc((size_t)m->d.n_layers, sizeof(float *));
    kv->v = calloc((size_t)m->d.n_layers, sizeof(float *));
    if (!kv->k || !kv->v) goto oom;
    if (grouped) {
        kv->sliding = calloc((size_t)m->d.n_layers, 1);
        if (!kv->sliding) goto oom;
        kv->n_swa_blocks = n_swa;
        kv->swa_window = sp_model_swa_window(m);
        for (int i = 0; i < m->d.n_layers; i++)
            kv->sliding[i] = m->d.layers[i].kv_source == i && source_window(&m->d, i) > 0;
    }
    if (m->gpu) {
        sp_status s =
            sp_cuda_kv_create(&kv->gpu, m->gpu, n_full, n_swa, block_size, kv->sliding, err);
        kv->dev = m->gpu;
        if (s != SP_OK) sp_kv_free(kv);
        if (s == SP_OK) *out = kv;
        return s;
    }
    for (int i = 0; i < m->d.n_layers; i++) {
        const sp_layer_desc *L = &m->d.layers[i];
        if (L->kv_source != i) continue;
        int n = kv->sliding && kv->sliding[i] ? n_swa : n_full;
        size_t bytes = layer_token_floats(L) * sizeof(float) * (size_t)block_size * (size_t)n;
        kv->k[i] = sp_aligned_alloc(bytes);
        kv->v[i] = sp_aligned_alloc(bytes);
        if (!kv->k[i] || !kv->v[i]) goto oom;
    }
    *out = kv;
    return SP_OK;
oom:
    sp_kv_free(kv);
    return sp_fail(err, SP_ENOMEM, "kv cache: cannot allocate %d + %d blocks of %d tokens", n_full,
                   grouped ? n_swa : 0, block_size);
}

sp_status sp_kv_create(sp_kv **out, const sp_model *m, int n_blocks, int block_size,
                       sp_error *err) {
    return kv_create(out, m, n_blocks, 0, block_size, 0, err);
}

sp_status sp_kv_create_groups(sp_kv **out, const sp_model *m, int n_full, int n_swa, int block_size,
                              sp_error *err) {
    if (sp_model_swa_window(m) <= 0) return kv_create(out, m, n_full, 0, block_size, 0, err);
    return kv_create(out, m, n_full, n_swa, block_size, 1, err);
}

void sp_kv_free(sp_kv *kv) {
    if (!kv) return;
    if (kv->gpu) sp_cuda_kv_free(kv->dev, kv->gpu);
    for (int i = 0; i < kv->n_layers; i++) {
        if (kv->k) sp_aligned_free(kv->k[i]);
        if (kv->v) sp_aligned_free(kv->v[i]);
    }
    free(kv->k);
    free(kv->v);
    free(kv->sliding);
    free(kv);
}

int sp_kv_block_size(const sp_kv *kv) {
    return kv->block_size;
}
int sp_kv_n_blocks(const sp_kv *kv) {
    return kv->n_blocks;
}
