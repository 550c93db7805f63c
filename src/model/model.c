#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "base/log.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "model/gguf_model.h"
#include "model/hf.h"
#include "model/internal.h"
#include "model/rope.h"

void sp_model_scratch_free(sp_model *m); /* forward.c */

void sp_model_opts_default(sp_model_opts *o) {
    memset(o, 0, sizeof *o);
    o->precision = SP_PREC_FAST;
    o->quantize = SP_F32;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Widest layer dimensions, for sizing scratch once. */
static void measure(sp_model *m) {
    const sp_model_desc *d = &m->d;
    m->max_ffn = d->ple_dim;
    for (int i = 0; i < d->n_layers; i++) {
        const sp_layer_desc *L = &d->layers[i];
        int q = L->n_heads * L->head_dim, kv = L->n_kv_heads * L->head_dim;
        if (q > m->max_q) m->max_q = q;
        if (kv > m->max_kv) m->max_kv = kv;
        if (L->ffn_dim > m->max_ffn) m->max_ffn = L->ffn_dim;
        if (L->expert_ffn_dim > m->max_ffn) m->max_ffn = L->expert_ffn_dim;
        m->media_bidir |= L->media_bidir;
    }
    for (int r = 0; r < d->n_ropes; r++)
        if (d->ropes[r].n_pairs > m->max_pairs) m->max_pairs = d->ropes[r].n_pairs;
    if (m->max_pairs == 0) m->max_pairs = 1;
}

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

sp_status sp_model_load(sp_model **out, const char *path, const sp_model_opts *opts,
                        sp_error *err) {
    sp_ops_init();
    sp_model *m = calloc(1, sizeof *m);
    if (!m) return sp_fail(err, SP_ENOMEM, "model");
    if (opts)
        m->opts = *opts;
    else
        sp_model_opts_default(&m->opts);
    m->w.use_mmap = m->opts.use_mmap;
    m->w.quantize = m->opts.quantize;
    if (m->opts.quantize != SP_F32 && m->opts.quantize != SP_Q8_0 && m->opts.quantize != SP_Q4_K) {
        free(m);
        return sp_fail(err, SP_EINVAL, "--quantize supports q8_0 and q4_k");
    }
    sp_status s;
    if (sp_path_is_dir(path)) {
        s = sp_hf_load(&m->d, &m->w, &m->st, path, &m->opts, err);
        if (!m->opts.use_mmap && m->st) {
            sp_st_close(m->st); /* weights are resident copies now */
            m->st = NULL;
        }
    } else if (ends_with(path, ".gguf")) {
        s = sp_gguf_model_load(&m->d, &m->w, &m->gguf, path, &m->opts, err);
        if (!m->opts.use_mmap && m->gguf) {
            sp_gguf_close(m->gguf);
            m->gguf = NULL;
        }
    } else if (!sp_path_exists(path)) {
        s = sp_fail(err, SP_EIO, "%s: no such file or directory", path);
    } else {
        s = sp_fail(err, SP_EUNSUPPORTED,
                    "%s: not a model directory (config.json + *.safetensors) or .gguf file", path);
    }
    if (s == SP_OK && m->w.n_kept)
        SP_WARN("--quantize %s: %d weights kept their dtype (row length not a multiple of %d)",
                sp_dtype_name(m->opts.quantize), m->w.n_kept, sp_dtype_block(m->opts.quantize));
    if (s == SP_OK) {
        measure(m);
        int nt = m->opts.n_threads > 0 ? m->opts.n_threads : default_threads();
        m->pool = sp_pool_create(nt);
        if (!m->pool) s = sp_fail(err, SP_ENOMEM, "cannot start %d compute threads", nt);
    }
    if (s != SP_OK) {
        sp_model_free(m);
        return s;
    }
    *out = m;
    return SP_OK;
}

void sp_model_free(sp_model *m) {
    if (!m) return;
    sp_model_scratch_free(m);
    for (int r = 0; r < m->d.n_ropes; r++) sp_rope_free(&m->d.ropes[r]);
    free(m->d.layers);
    sp_weights_free(&m->w);
    if (m->st) sp_st_close(m->st);
    if (m->gguf) sp_gguf_close(m->gguf);
    sp_pool_destroy(m->pool);
    free(m);
}

const sp_model_desc *sp_model_get_desc(const sp_model *m) {
    return &m->d;
}
int sp_model_media_bidir(const sp_model *m) {
    return m->media_bidir;
}
uint64_t sp_model_weight_bytes(const sp_model *m) {
    return m->w.bytes;
}
sp_pool *sp_model_pool(sp_model *m) {
    return m->pool;
}
