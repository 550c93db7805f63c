/* GGUF models: llama.cpp architecture metadata and tensor names mapped onto
 * model_desc (llama/mistral, qwen2, qwen3, qwen3moe, phi3, gemma2, gemma3,
 * gemma4 dense and MoE). Weights stay in the file's types; norms are used
 * as stored (llama.cpp's converter already folds Gemma 2/3's 1 + w). */
#ifndef SP_MODEL_GGUF_MODEL_H
#define SP_MODEL_GGUF_MODEL_H

#include "model/desc.h"
#include "model/model.h"
#include "model/weights.h"

struct sp_gguf;

sp_status sp_gguf_model_load(sp_model_desc *d, sp_weights *w, struct sp_gguf **g, const char *path,
                             const sp_model_opts *opts, sp_error *err);

#endif
