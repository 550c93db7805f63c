/* Shared between gguf_hparams.c (metadata -> geometry and RoPE) and
 * gguf_model.c (tensor names -> weights). */
#ifndef SP_MODEL_GGUF_MODEL_INTERNAL_H
#define SP_MODEL_GGUF_MODEL_INTERNAL_H

#include "formats/gguf.h"
#include "model/desc.h"
#include "model/weights.h"

/* What distinguishes one llama.cpp architecture from another, as data.
 * Everything else (geometry, per-layer arrays, which tensors exist) is read
 * from the file. */
enum {
    GF_NORM_ROPE = 1 << 0, /* llama.cpp "NORM" RoPE: adjacent lanes pair up */
    GF_GEMMA = 1 << 1,     /* sandwich norms, GELU-tanh, embedding * sqrt(H) */
    GF_QK_NORM = 1 << 2,   /* per-head RMSNorm on q and k (required) */
    GF_QKV_BIAS = 1 << 3,  /* q/k/v biases (required) */
    GF_FUSED = 1 << 4,     /* attn_qkv holds q,k,v rows; ffn_up holds gate,up rows */
    GF_SWA_ROPE = 1 << 5,  /* SWA layers: own base (default 10000), no scaling */
    GF_GEMMA4 = 1 << 6,    /* attention scale 1, weightless V norm, K=V, PLE */
    GF_BIG_SCALE = 1 << 7, /* Gemma 2/3: the 27B size scales by 1/sqrt(H/heads) */
};

typedef struct sp_gguf_arch {
    const char *name;
    unsigned flags;
    int swa_period;     /* default sliding pattern (llama.cpp set_swa_pattern); 0: all */
    int default_window; /* window when the key is absent (Gemma 2: 4096) */
    int big_layers;     /* GF_BIG_SCALE: block_count of the 27B model */
} sp_gguf_arch;

typedef struct sp_gguf_map {
    const sp_gguf *g;
    sp_weights *w;
    sp_model_desc *d;
    const sp_gguf_arch *arch;
    const char *an;      /* architecture name: metadata key prefix */
    int *sliding;        /* [n_layers] */
    int first_kv_shared; /* layers from here reuse earlier K/V (Gemma 4) */
    int n_experts, n_experts_used, moe_norm;
    int *expert_ffn; /* [n_layers] */
} sp_gguf_map;

/* Metadata "{arch}.key" getters. */
sp_status sp_gguf_kv_u32(const sp_gguf_map *m, const char *key, uint32_t def, int req,
                         uint32_t *out, sp_error *err);
sp_status sp_gguf_kv_f32(const sp_gguf_map *m, const char *key, float def, float *out,
                         sp_error *err);

/* Fills the geometry of d (hidden, layers, per-layer heads / head dims /
 * windows / FFN widths, norms, caps, RoPE tables, MoE counts). */
sp_status sp_gguf_read_hparams(sp_gguf_map *m, sp_error *err);

#endif
