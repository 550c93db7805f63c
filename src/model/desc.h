/* model_desc: one decoder, described by data (DESIGN.md section 3). Family
 * mappings (HF config.json + tensor names, GGUF metadata) fill it; the
 * forward pass reads nothing else. */
#ifndef SP_MODEL_DESC_H
#define SP_MODEL_DESC_H

#include <stdint.h>

#include "compute/tensor.h"

#define SP_MAX_ROPE_TABLES 4

typedef enum sp_rope_kind {
    SP_ROPE_DEFAULT = 0,
    SP_ROPE_LINEAR,
    SP_ROPE_DYNAMIC,
    SP_ROPE_LLAMA3,
    SP_ROPE_YARN,
    SP_ROPE_LONGROPE,
    SP_ROPE_PROPORTIONAL,
} sp_rope_kind;

/* A RoPE table, computed and finite-checked at load (model/rope.c). */
typedef struct sp_rope_table {
    sp_rope_kind kind;
    int head_dim;    /* lanes in a head */
    int rot_dim;     /* lanes that form pairs: pairs are (i, i + rot_dim/2) */
    int n_pairs;     /* rot_dim / 2 */
    int interleaved; /* pairs (2i, 2i+1) instead */
    float theta;
    float *inv_freq;      /* [n_pairs]; 0 = identity pair (proportional tail) */
    float *inv_freq_long; /* longrope: used when total length > orig_max; else NULL */
    float attn_factor;    /* multiplies cos and sin ("mscale") */
    int orig_max;         /* longrope switch point; dynamic NTK: max_position_embeddings */
    float dyn_factor;     /* dynamic NTK factor */
    int always_long;      /* longrope: always use the long factors (mlx-lm) */
} sp_rope_table;

typedef enum sp_act { SP_ACT_SILU = 0, SP_ACT_GELU_TANH } sp_act;

typedef struct sp_layer_desc {
    /* attention geometry */
    int n_heads, n_kv_heads, head_dim;
    int sliding_window; /* 0: full attention */
    int rope;           /* index into sp_model_desc.ropes, -1: no rope */
    float attn_scale;   /* multiplies q.k */
    int k_eq_v;         /* no v_proj: values are the raw key projection */
    int kv_source;      /* layer whose K/V this layer reads (itself unless KV-shared) */
    int has_v_norm;     /* weightless RMSNorm on values (Gemma 4) */
    int media_bidir;    /* tokens of one media span (sp_media_span) also see the span's later
                           tokens: Gemma 3 every layer, Gemma 4 "vision" its sliding layers */

    /* weights (views into the loaded files; NULL data = absent) */
    sp_tensor attn_norm, post_attn_norm, pre_ffn_norm, post_ffn_norm;
    sp_tensor wq, wk, wv, wo;
    sp_tensor bq, bk, bv, bo; /* biases (Qwen2, Llama attention_bias), f32 */
    sp_tensor q_norm, k_norm;
    /* dense MLP: gate/up may be one fused [2I, H] tensor (Phi-3) */
    sp_tensor w_gate, w_up, w_down;
    int ffn_dim;
    /* MoE */
    int n_experts, n_experts_used, expert_ffn_dim;
    int moe_norm_topk;      /* renormalise the selected probabilities */
    int moe_has_dense;      /* Gemma 4: dense MLP beside the experts */
    sp_tensor router;       /* [E, H] */
    sp_tensor router_scale; /* Gemma 4 [H] */
    sp_tensor expert_scale; /* Gemma 4 per_expert_scale [E] */
    /* experts as 2-D views [I, H], [I, H], [H, I] (owned arrays of E views;
     * packed [E, 2I, H] files are sliced into views at load) */
    sp_tensor *exp_gate, *exp_up, *exp_down;
    sp_tensor pre_ffn_norm2, post_ffn_norm1, post_ffn_norm2; /* Gemma 4 MoE norms */
    /* Gemma 4 extras */
    float layer_scalar; /* multiplies the residual stream after the layer; 1 if none */
    sp_tensor ple_gate, ple_proj, ple_post_norm; /* per-layer input embeddings */
} sp_layer_desc;

typedef struct sp_model_desc {
    char arch[64]; /* e.g. "llama", "gemma4" */
    int n_layers;
    int hidden;
    int vocab;
    int max_pos;
    float norm_eps;
    int norm_one_plus;  /* RMSNorm scales by (1 + w) (Gemma 1-3) */
    int sandwich_norms; /* post-attention and pre/post-feedforward norms */
    sp_act act;
    float embed_scale;                 /* multiplies the embedding (1 if none) */
    float attn_softcap, final_softcap; /* 0: none */
    int tied_embeddings;
    /* an encoder (config use_bidirectional_attention: EmbeddingGemma):
     * inputs attend both ways (sp_seq_input.bidirectional); no generation */
    int bidirectional;

    sp_tensor tok_embd, out_norm, output; /* output = tok_embd when tied */

    /* Gemma 4 per-layer input embeddings (0: none) */
    int ple_dim;
    sp_tensor ple_embd, ple_model_proj, ple_proj_norm;

    int n_ropes;
    sp_rope_table ropes[SP_MAX_ROPE_TABLES];

    sp_layer_desc *layers; /* [n_layers], owned */

    /* token ids */
    int bos_id, eos_ids[8], n_eos;
    /* multimodal checkpoints served as text: media placeholder ids are
     * embedded as pad_id (as transformers does when no media is given) */
    int media_ids[4], n_media, media_pad_id;
} sp_model_desc;

#endif
