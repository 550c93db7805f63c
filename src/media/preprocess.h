/* Image preprocessing exactly as each model's Hugging Face image processor
 * does it (transformers 5.x, default torchvision backend on the CPU; see
 * ../shared/spec/vision.md sections 1-3), read from the checkpoint's
 * preprocessor_config.json (or processor_config.json). Pure functions: the
 * HTTP threads preprocess, the engine thread only reads the result. */
#ifndef SP_MEDIA_PREPROCESS_H
#define SP_MEDIA_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "media/image.h"
#include "media/resize.h"

typedef enum sp_proc_kind {
    SP_PROC_NONE = 0,
    SP_PROC_GEMMA3, /* fixed square resize, bilinear, normalise: pixels [views][3][H][W] */
    SP_PROC_GEMMA4, /* aspect-preserving resize to a patch budget, bicubic: [patches][768] */
} sp_proc_kind;

typedef struct sp_image_proc {
    sp_proc_kind kind;
    int do_resize, do_rescale, do_normalize;
    sp_filter resample;
    double rescale_factor;
    double mean[3], std[3];
    int size_h, size_w; /* Gemma 3 */
    int soft_tokens;    /* Gemma 3: mm_tokens_per_image (config.json), set by the caller */
    int patch, pool_k;  /* Gemma 4 */
    int max_soft_tokens;
} sp_image_proc;

/* Reads dir/preprocessor_config.json (or the "image_processor" object of
 * dir/processor_config.json). SP_ENOTFOUND when neither exists;
 * SP_EUNSUPPORTED for a processor type or option we do not implement
 * (pan-and-scan), naming it. */
sp_status sp_image_proc_load(sp_image_proc *p, const char *dir, sp_error *err);
const char *sp_proc_kind_name(sp_proc_kind k);

/* A preprocessed image: the tensor the vision tower reads. */
typedef struct sp_pixels {
    sp_proc_kind kind;
    int n_views, height, width;    /* Gemma 3: data is [n_views][3][height][width] */
    int grid_h, grid_w, patch_dim; /* Gemma 4: [grid_h * grid_w][patch_dim], row-major grid */
    float *data;                   /* owned */
    size_t n_floats;
    int n_soft;    /* soft tokens the image becomes in the prompt */
    uint64_t hash; /* XXH3 of the pixel values: the image's identity for the prefix cache */
} sp_pixels;

sp_status sp_image_preprocess(const sp_image_proc *p, const sp_image *img, sp_pixels *out,
                              sp_error *err);
void sp_pixels_free(sp_pixels *px);
/* Deep copy (the engine keeps its own). */
sp_status sp_pixels_copy(sp_pixels *dst, const sp_pixels *src, sp_error *err);
/* Computes px->hash from the data and the shape. */
void sp_pixels_hash(sp_pixels *px);

/* Gemma 4's target size for an h x w image (spec 3.2): multiples of
 * pool_k * patch, at most max_soft_tokens * pool_k^2 patches. */
sp_status sp_gemma4_target_size(const sp_image_proc *p, int h, int w, int *th, int *tw,
                                sp_error *err);

/* The tensor transformers' processor returns for this image, float32 (the
 * `--pixels` file): Gemma 3 [n_views, 3, H, W]; Gemma 4 [max_patches, 768]
 * zero-padded. *n receives the float count; malloc'd. */
sp_status sp_pixels_export(const sp_image_proc *p, const sp_pixels *px, float **out, size_t *n,
                           sp_error *err);
/* The reverse (`--pixels-in`): Gemma 3 takes [1, 3, H, W]; Gemma 4 takes
 * [max_patches, 768] plus the processor's image_position_ids ([max_patches,
 * 2] int32, (x, y), -1 for padding), which must describe a row-major grid. */
sp_status sp_pixels_import(const sp_image_proc *p, const float *data, size_t n, const int32_t *pos,
                           size_t n_pos, sp_pixels *out, sp_error *err);

#endif
