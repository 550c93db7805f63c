/* Hugging Face checkpoints: config.json + safetensors mapped onto model_desc
 * for every supported family (llama, mistral, qwen2, qwen3, phi3, mixtral,
 * qwen3_moe, gemma2, gemma3, gemma4; text models of multimodal checkpoints). */
#ifndef SP_MODEL_HF_H
#define SP_MODEL_HF_H

#include "model/desc.h"
#include "model/model.h"
#include "model/weights.h"

struct sp_safetensors;

/* Reads dir/config.json and the weights; *st receives the opened files
 * (caller closes them after the weights are resident). */
sp_status sp_hf_load(sp_model_desc *d, sp_weights *w, struct sp_safetensors **st, const char *dir,
                     const sp_model_opts *opts, sp_error *err);

#endif
