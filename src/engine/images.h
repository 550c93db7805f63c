/* The images of a running sequence (engine thread only): where their soft
 * tokens sit, their features once the vision tower ran, the media spans the
 * forward pass reads, the prefix-cache salt of each KV block, and the rule
 * that a prefill chunk never ends inside an image whose tokens attend to
 * each other both ways. */
#ifndef SP_ENGINE_IMAGES_H
#define SP_ENGINE_IMAGES_H

#include <stdint.h>

#include "media/preprocess.h"
#include "model/model.h"
#include "vision/vision.h"

typedef struct seq_image {
    sp_pixels *px; /* the request's copy; its data is freed once encoded */
    int pos, n;    /* soft tokens [pos, pos + n) */
    float *feats;  /* [n][text hidden], owned; NULL until encoded */
    int done;      /* wholly in the cache: never needed again */
} seq_image;

typedef struct seq_images {
    seq_image *v;
    int n;
    sp_media_span *spans; /* one per image with features */
    int n_spans;
} seq_images;

/* Refers to the request's pixel copies (px[i] at prompt position pos[i]). */
int seq_images_init(seq_images *im, sp_pixels *px, const int *pos, int n);
void seq_images_free(seq_images *im);
/* Images wholly before position `computed` (a prefix-cache hit, or done
 * prefilling) are never encoded again: their pixels and features go. */
void seq_images_retire(seq_images *im, int computed);
/* Identifies the images in KV block `block` (0: none): content hash and
 * position of each image that overlaps it. */
uint64_t seq_images_block_salt(const seq_images *im, int block, int block_size);
/* The end of a chunk [from, to) moved off the inside of an image: back to
 * the image's start, or (when the chunk starts at or inside it) on to its
 * end. */
int seq_images_align(const seq_images *im, int from, int to);
/* Images overlapping [from, to) still without features. */
int seq_images_pending(const seq_images *im, int from, int to);

/* Encodes, in one vision batch, the pending images overlapping [from[i],
 * to[i]) of every list[i], and rebuilds their spans. */
sp_status seq_images_encode(sp_vision *v, seq_images *const *list, const int *from, const int *to,
                            int n, sp_error *err);

#endif
