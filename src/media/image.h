/* Decoded images (DESIGN.md section 7): PNG, JPEG, WebP and GIF (first
 * frame) into 8-bit RGB, as transformers sees a picture after its loader
 * (EXIF orientation applied to JPEGs, PIL's convert("RGB"): alpha dropped
 * without compositing, palettes and gray expanded). Pure functions: any
 * thread may call them. */
#ifndef SP_MEDIA_IMAGE_H
#define SP_MEDIA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct sp_image {
    int width, height;
    uint8_t *rgb; /* [height][width][3], owned (free with sp_image_free) */
} sp_image;

typedef enum sp_image_format {
    SP_IMG_UNKNOWN = 0,
    SP_IMG_PNG,
    SP_IMG_JPEG,
    SP_IMG_WEBP,
    SP_IMG_GIF,
} sp_image_format;

/* Decompression-bomb guard: the header's width x height is checked before
 * any pixel memory is allocated. */
#define SP_IMAGE_MAX_PIXELS_DEFAULT 40000000
#define SP_IMAGE_MAX_SIDE           65500

/* The format by its magic bytes (SP_IMG_UNKNOWN: none of ours). */
sp_image_format sp_image_sniff(const uint8_t *data, size_t n);
const char *sp_image_format_name(sp_image_format f);

/* Decodes one image. max_pixels <= 0 means the default. Errors say what was
 * wrong ("truncated PNG data", "JPEG: Not a JPEG file...", "image of
 * 20000 x 20000 pixels exceeds the limit of 40000000"), SP_EFORMAT for bad
 * data, SP_EUNSUPPORTED for a format we do not read, SP_ERANGE for the
 * pixel limit. */
sp_status sp_image_decode(const uint8_t *data, size_t n, int64_t max_pixels, sp_image *out,
                          sp_error *err);
void sp_image_free(sp_image *img);

/* Allocates out->rgb for w x h after checking the limits. */
sp_status sp_image_alloc(sp_image *out, int64_t w, int64_t h, int64_t max_pixels, sp_error *err);

/* Per-format decoders (decode_*.c): data is known to carry the format's
 * magic. */
sp_status sp_decode_png(const uint8_t *data, size_t n, int64_t max_pixels, sp_image *out,
                        sp_error *err);
sp_status sp_decode_jpeg(const uint8_t *data, size_t n, int64_t max_pixels, sp_image *out,
                         sp_error *err);
sp_status sp_decode_webp(const uint8_t *data, size_t n, int64_t max_pixels, sp_image *out,
                         sp_error *err);
sp_status sp_decode_gif(const uint8_t *data, size_t n, int64_t max_pixels, sp_image *out,
                        sp_error *err);

/* EXIF orientation (exif.c): the value of tag 0x0112 in a TIFF-structured
 * EXIF block (the bytes after "Exif\0\0"), 1 when absent or unreadable. */
int sp_exif_orientation(const uint8_t *tiff, size_t n);
/* Applies orientation 2..8 as PIL's ImageOps.exif_transpose does (1: no-op). */
sp_status sp_image_orient(sp_image *img, int orientation, sp_error *err);

#endif
