/* Image inputs of the CLI commands (logits, generate, image): repeated
 * --image / --pixels-in / --positions-in flags, decoding + preprocessing,
 * the vision tower, and the media spans of a token list whose k-th run of
 * image soft tokens takes the k-th image's features. */
#ifndef SP_CLI_MEDIA_H
#define SP_CLI_MEDIA_H

#include <stddef.h>
#include <stdint.h>

#include "media/preprocess.h"
#include "model/model.h"
#include "vision/vision.h"

#define CLI_MAX_IMAGES 64

typedef struct cli_images {
    const char *files[CLI_MAX_IMAGES];     /* --image */
    const char *pixels_in[CLI_MAX_IMAGES]; /* --pixels-in */
    const char *pos_in[CLI_MAX_IMAGES];    /* --positions-in (Gemma 4 --pixels-in) */
    int n_files, n_pixels, n_pos;
} cli_images;

/* Removes every `--image F`, `--pixels-in F`, `--positions-in F` pair from
 * argv (so the remaining flags parse as usual). 0 on a usage error. */
int cli_images_take(const char *cmd, int *argc, char **argv, cli_images *im);
int cli_images_count(const cli_images *im);

typedef struct cli_media {
    sp_vision *vision; /* owned */
    int n;
    sp_pixels px[CLI_MAX_IMAGES];
    float *features; /* image after image: n_soft x text_hidden each */
    sp_media_span spans[CLI_MAX_IMAGES];
} cli_media;

/* Loads the vision tower of model_dir and preprocesses the images (files,
 * or pixel tensors given directly), in the order given: all --image files
 * first, then all --pixels-in tensors. */
sp_status cli_media_load(cli_media *cm, const char *model_dir, const sp_model_opts *o,
                         sp_pool *pool, const cli_images *im, sp_error *err);
/* Encodes the images and builds the spans over ids: the k-th run of image
 * soft tokens gets the k-th image (counts must match, naming both). */
sp_status cli_media_spans(cli_media *cm, const int32_t *ids, size_t n, sp_error *err);
void cli_media_free(cli_media *cm);

/* Writes / reads a whole file of 4-byte values. */
int cli_write_f32(const char *path, const float *x, size_t n);
sp_status cli_read_words(const char *path, void **out, size_t *n, sp_error *err);

#endif
