#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "base/log.h"
#include "cuda/cuda.h"
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
    o->kv_dtype = SP_DTYPE_COUNT; /* the device's default */
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

/* AUTO: the first usable CUDA device, else the CPU; one log line says
 * which and why. */
static sp_status resolve_device(sp_model *m, sp_error *err) {
    char why[256] = "";
    if (m->opts.device == SP_DEVICE_AUTO) { /* logged once the load succeeded */
        int n = sp_cuda_probe(why, sizeof why);
        m->opts.device = n > 0 ? SP_DEVICE_CUDA : SP_DEVICE_CPU;
        if (n > 0)
            snprintf(m->device_why, sizeof m->device_why,
                     "the first of %d usable CUDA device%s; --device cpu overrides", n,
                     n > 1 ? "s" : "");
        else
            snprintf(m->device_why, sizeof m->device_why, "%s", why);
    } else if (m->opts.device == SP_DEVICE_CUDA) {
        int n = sp_cuda_probe(why, sizeof why);
        if (n <= 0) return sp_fail(err, SP_EUNSUPPORTED, "--device cuda: %s", why);
        if (m->opts.device_index < 0 || m->opts.device_index >= n)
            return sp_fail(err, SP_EINVAL, "--device cuda:%d: this machine has %d CUDA device%s",
                           m->opts.device_index, n, n == 1 ? "" : "s");
    }
    return SP_OK;
}

static sp_status load_weights(sp_model *m, const char *path, sp_error *err) {
    int dev = m->opts.device == SP_DEVICE_CUDA;
    m->w.use_mmap = m->opts.use_mmap;
    m->w.quantize = m->opts.quantize;
    m->w.device_upload = dev;
    m->w.dummy = m->opts.load_dummy;
    m->w.dummy_fill = m->opts.load_dummy && !dev;
    int keep_mapping = m->opts.use_mmap || dev; /* the device copies tensors out after */
    if (m->opts.quantize != SP_F32 && m->opts.quantize != SP_Q8_0 && m->opts.quantize != SP_Q4_K)
        return sp_fail(err, SP_EINVAL, "--quantize supports q8_0 and q4_k");
    if (m->opts.load_dummy && (m->opts.quantize != SP_F32 || !sp_path_is_dir(path)))
        return sp_fail(err, SP_EINVAL,
                       "--load-format dummy needs a directory with config.json and no --quantize");
    sp_status s;
    if (sp_path_is_dir(path)) {
        s = sp_hf_load(&m->d, &m->w, &m->st, path, &m->opts, err);
        if (!keep_mapping && m->st) {
            sp_st_close(m->st); /* weights are resident copies now */
            m->st = NULL;
        }
    } else if (ends_with(path, ".gguf")) {
        s = sp_gguf_model_load(&m->d, &m->w, &m->gguf, path, &m->opts, err);
        if (!keep_mapping && m->gguf) {
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
    return s;
}

static uint64_t dummy_key(const void *ctx, const void *host) {
    return sp_weights_dummy_key(ctx, host);
}

/* The device holds its own copy now: the file mapping goes (the host's
 * views of it must not be read again; only the CUDA backend runs). */
static sp_status load_device(sp_model *m, sp_error *err) {
    int f32 = m->opts.precision == SP_PREC_F32;
    sp_dtype kv = m->opts.kv_dtype;
    if (kv != SP_F32 && kv != SP_F16 && kv != SP_BF16) kv = f32 ? SP_F32 : SP_F16;
    /* an encoder's input runs whole in one chunk (its first tokens read its
     * last ones' keys): by default a chunk holds its context, up to 8192 */
    int max_tokens = m->opts.max_batch_tokens;
    if (!max_tokens && m->d.bidirectional)
        max_tokens = m->d.max_pos < 512 ? 512 : m->d.max_pos > 8192 ? 8192 : m->d.max_pos;
    sp_cuda_opts co = {.device = m->opts.device_index,
                       .f32 = f32,
                       .dummy = m->opts.load_dummy,
                       .max_tokens = max_tokens,
                       .kv_dtype = kv,
                       .dummy_key = dummy_key,
                       .dummy_ctx = &m->w};
    SP_TRY(sp_cuda_load(&m->gpu, &m->d, &co, err));
    if (!m->opts.use_mmap && m->st) sp_st_close(m->st), m->st = NULL;
    if (!m->opts.use_mmap && m->gguf) sp_gguf_close(m->gguf), m->gguf = NULL;
    m->kv_elem = sp_cuda_kv_elem_bytes(m->gpu);
    snprintf(m->device_name, sizeof m->device_name, "cuda:%d %s", m->opts.device_index,
             sp_cuda_name(m->gpu));
    return SP_OK;
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
    m->kv_elem = sizeof(float);
    snprintf(m->device_name, sizeof m->device_name, "cpu (%s)", sp_isa_name(sp_ops_isa()));
    sp_status s = resolve_device(m, err);
    if (s == SP_OK) s = load_weights(m, path, err);
    if (s == SP_OK) measure(m);
    if (s == SP_OK && m->opts.device == SP_DEVICE_CUDA) s = load_device(m, err);
    if (s == SP_OK) {
        /* on a GPU the pool runs the vision towers (src/vision) */
        int nt = m->opts.n_threads > 0 ? m->opts.n_threads : default_threads();
        m->pool = sp_pool_create(nt);
        if (!m->pool) s = sp_fail(err, SP_ENOMEM, "cannot start %d compute threads", nt);
    }
    if (s != SP_OK) {
        sp_model_free(m);
        return s;
    }
    if (m->device_why[0]) SP_INFO("device: %s (%s)", m->device_name, m->device_why);
    *out = m;
    return SP_OK;
}

void sp_model_free(sp_model *m) {
    if (!m) return;
    sp_cuda_free(m->gpu);
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
sp_device_kind sp_model_device(const sp_model *m) {
    return m->gpu ? SP_DEVICE_CUDA : SP_DEVICE_CPU;
}
const char *sp_model_device_name(const sp_model *m) {
    return m->device_name;
}
sp_status sp_model_device_probe(sp_model *m, double *gbps, double *tflops, sp_error *err) {
    if (!m->gpu) return sp_fail(err, SP_EUNSUPPORTED, "the model is not on a GPU");
    return sp_cuda_bench_probe(m->gpu, (size_t)1 << 31, 8192, gbps, tflops, err);
}

void sp_model_device_mem(const sp_model *m, sp_device_mem *out) {
    memset(out, 0, sizeof *out);
    if (!m->gpu) return;
    sp_cuda_mem g;
    sp_cuda_mem_info(m->gpu, &g);
    *out = (sp_device_mem){g.weights, g.scratch, g.kv, g.total, g.free};
}
