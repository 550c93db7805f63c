/* PNG through libpng's low-level API, set up to give what PIL's
 * convert("RGB") gives: palettes expanded (tRNS ignored), low-bit gray
 * scaled to 8 bits, 16-bit samples reduced to their high byte, gray
 * replicated, alpha dropped without compositing, no gamma correction. (The
 * simplified png_image API would composite alpha and convert gamma.) */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media/image.h"

typedef struct png_ctx {
    const uint8_t *data;
    size_t n, off;
    char msg[200];
    png_bytep *rows; /* freed by the caller of the setjmp region */
} png_ctx;

static void on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    if (!c->msg[0]) snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* ancillary-chunk trouble: PIL reads past it too */
}

static void on_read(png_structp png, png_bytep out, size_t len) {
    png_ctx *c = png_get_io_ptr(png);
    if (len > c->n - c->off) {
        snprintf(c->msg, sizeof c->msg, "truncated PNG data (%zu bytes)", c->n);
        png_longjmp(png, 1);
    }
    memcpy(out, c->data + c->off, len);
    c->off += len;
}

/* Transformations towards 8-bit RGB; returns after png_read_update_info. */
static void setup_transforms(png_structp png, png_infop info) {
    int type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if ((type & PNG_COLOR_MASK_COLOR) == 0 && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);
    if (type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    if ((type & PNG_COLOR_MASK_COLOR) == 0) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
}

static sp_status read_png(png_structp png, png_infop info, png_ctx *c, int64_t max_pixels,
                          sp_image *out, sp_error *err) {
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    SP_TRY(sp_image_alloc(out, w, h, max_pixels, err));
    setup_transforms(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3)
        return sp_fail(err, SP_EFORMAT, "PNG: unexpected row layout after conversion to RGB");
    c->rows = malloc((size_t)h * sizeof *c->rows);
    if (!c->rows) return sp_fail(err, SP_ENOMEM, "PNG: row table");
    for (png_uint_32 y = 0; y < h; y++) c->rows[y] = out->rgb + (size_t)y * w * 3;
    png_read_image(png, c->rows);
    png_read_end(png, NULL); /* a file cut after the pixel data is still truncated */
    return SP_OK;
}

sp_status sp_decode_png(const uint8_t *data, size_t n, int64_t max_pixels, sp_image *out,
                        sp_error *err) {
    png_ctx c = {.data = data, .n = n};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return sp_fail(err, SP_ENOMEM, "PNG: cannot create the decoder");
    }
    sp_status s = SP_OK;
    if (setjmp(png_jmpbuf(png))) {
        s = sp_fail(err, SP_EFORMAT, "corrupt PNG: %s", c.msg[0] ? c.msg : "unknown error");
    } else {
        png_set_read_fn(png, &c, on_read);
        s = read_png(png, info, &c, max_pixels, out, err);
    }
    free(c.rows);
    png_destroy_read_struct(&png, &info, NULL);
    return s;
}
