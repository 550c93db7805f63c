/* config.json -> model_desc geometry, per-layer attention layout and RoPE
 * tables (no tensors). */
#ifndef SP_MODEL_HF_CONFIG_H
#define SP_MODEL_HF_CONFIG_H

#include <jansson.h>

#include "model/desc.h"
#include "model/model.h"

typedef enum sp_family {
    SP_FAM_LLAMA,
    SP_FAM_MISTRAL,
    SP_FAM_QWEN2,
    SP_FAM_QWEN3,
    SP_FAM_PHI3,
    SP_FAM_MIXTRAL,
    SP_FAM_QWEN3_MOE,
    SP_FAM_GEMMA2,
    SP_FAM_GEMMA3,
    SP_FAM_GEMMA4,
} sp_family;

/* What the tensor mapping needs beyond model_desc. */
typedef struct sp_hf_info {
    sp_family family;
    int ffn_dim;    /* intermediate_size */
    int moe_every;  /* Qwen3-MoE decoder_sparse_step */
    int n_mlp_only; /* Qwen3-MoE mlp_only_layers */
    int mlp_only[256];
    int first_kv_shared; /* Gemma 4: layers >= this reuse earlier K/V */
    int double_wide_mlp; /* Gemma 4: KV-shared layers have 2x intermediate */
    int attention_bias;
} sp_hf_info;

/* cfg is the text config object; ctx names it in errors. */
sp_status sp_hf_config(sp_model_desc *d, sp_hf_info *info, const json_t *cfg, const char *ctx,
                       const sp_model_opts *opts, sp_error *err);

#endif
