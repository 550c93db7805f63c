/* Vision towers and projectors of multimodal checkpoints (DESIGN.md section
 * 7): SigLIP + Gemma3MultiModalProjector, and the Gemma 4 vision encoder +
 * embedder. They are model state: loaded and run on the engine thread (the
 * CLI, single-threaded, calls them directly), on the text model's compute
 * pool, in the same precision modes as the decoder. Their output rows replace
 * the embeddings of the image's soft tokens in the prompt. */
#ifndef SP_VISION_VISION_H
#define SP_VISION_VISION_H

#include <stdint.h>

#include "base/status.h"
#include "compute/pool.h"
#include "media/preprocess.h"
#include "model/model.h"

typedef struct sp_vision sp_vision;

typedef enum sp_vision_kind {
    SP_VISION_GEMMA3 =
        1,            /* SigLIP tower, average pool to mm_tokens_per_image, RMSNorm, projection */
    SP_VISION_GEMMA4, /* Gemma 4 encoder (2-D RoPE), 3x3 pooling, standardize, embedder */
} sp_vision_kind;

/* What the HTTP side needs to build prompts; immutable after load. */
typedef struct sp_vision_info {
    sp_vision_kind kind;
    int text_hidden;        /* width of a feature row */
    int32_t image_id;       /* the soft token the features replace */
    int32_t boi_id, eoi_id; /* the tokens around an image's soft tokens */
    int soft_tokens;        /* Gemma 3: soft tokens per image (mm_tokens_per_image) */
    sp_image_proc proc;     /* preprocessing (proc.soft_tokens filled for Gemma 3) */
} sp_vision_info;

/* 1 if dir/config.json describes a checkpoint with a vision tower. */
int sp_vision_present(const char *dir);

/* Loads the tower and projector of the checkpoint in dir (config.json,
 * preprocessor_config.json, *.safetensors). pool: the compute pool to run
 * on (the text model's; not owned). SP_ENOTFOUND when the checkpoint has no
 * vision tower; other errors name the file, key or tensor. */
sp_status sp_vision_load(sp_vision **out, const char *dir, const sp_model_opts *opts, sp_pool *pool,
                         sp_error *err);
void sp_vision_free(sp_vision *v);
const sp_vision_info *sp_vision_get_info(const sp_vision *v);

/* Encodes n images in one batch: out receives, image after image, each
 * image's n_soft rows of text_hidden floats. The pixels must come from this
 * model's processor (kind and shape are checked). */
sp_status sp_vision_encode(sp_vision *v, const sp_pixels *const *imgs, int n, float *out,
                           sp_error *err);

#endif
