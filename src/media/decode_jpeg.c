/* JPEG through libjpeg-turbo with its default (PIL's) decoding settings:
 * islow DCT, fancy upsampling. Gray and YCbCr come out as RGB; CMYK/YCCK
 * is converted as PIL's convert("RGB") does. A truncated file is an error
 * (PIL raises "image file is truncated"), not a gray-filled picture. The
 * EXIF orientation is applied afterwards, as transformers' load_image does
 * (ImageOps.exif_transpose). */
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE and size_t */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include <jerror.h>

#include "media/image.h"

typedef struct jpeg_ctx {
    struct jpeg_error_mgr mgr;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX + 32];
    uint8_t *cmyk_row; /* freed by the caller of the setjmp region */
} jpeg_ctx;

static void on_error(j_common_ptr cinfo) {
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    if (!c->msg[0]) c->mgr.format_message(cinfo, c->msg);
    longjmp(c->jmp, 1);
}

/* Warnings are ignored as PIL ignores them, except running out of data. */
static void on_message(j_common_ptr cinfo, int level) {
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    if (level == -1 && c->mgr.msg_code == JWRN_JPEG_EOF) {
        snprintf(c->msg, sizeof c->msg, "truncated JPEG data");
        longjmp(c->jmp, 1);
    }
}

/* Pillow's MULDIV255: a * b / 255 rounded, in integers. */
static int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

static void cmyk_to_rgb(const uint8_t *in, uint8_t *out, int w, int adobe) {
    for (int x = 0; x < w; x++, in += 4, out += 3) {
        int k = adobe ? 255 - in[3] : in[3], nk = 255 - k;
        for (int ch = 0; ch < 3; ch++) {
            int v = adobe ? 255 - in[ch] : in[ch];
            int r = nk - muldiv255(v, nk);
            out[ch] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
        }
    }
}

static int find_orientation(struct jpeg_decompress_struct *d) {
    for (jpeg_saved_marker_ptr m = d->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length > 6 && !memcmp(m->data, "Exif\0\0", 6))
            return sp_exif_orientation(m->data + 6, m->data_length - 6);
    return 1;
}

static sp_status read_jpeg(struct jpeg_decompress_struct *d, jpeg_ctx *c, int64_t max_pixels,
                           sp_image *out, int *orientation, sp_error *err) {
    jpeg_save_markers(d, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(d, TRUE);
    SP_TRY(sp_image_alloc(out, d->image_width, d->image_height, max_pixels, err));
    int cmyk = d->jpeg_color_space == JCS_CMYK || d->jpeg_color_space == JCS_YCCK;
    d->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(d);
    if (d->output_width != (JDIMENSION)out->width || d->output_height != (JDIMENSION)out->height ||
        d->output_components != (cmyk ? 4 : 3))
        return sp_fail(err, SP_EFORMAT, "JPEG: unexpected output layout");
    if (cmyk && !(c->cmyk_row = malloc((size_t)out->width * 4)))
        return sp_fail(err, SP_ENOMEM, "JPEG: row buffer");
    while (d->output_scanline < d->output_height) {
        uint8_t *row = out->rgb + (size_t)d->output_scanline * out->width * 3;
        JSAMPROW rp = cmyk ? c->cmyk_row : row;
        if (jpeg_read_scanlines(d, &rp, 1) != 1)
            return sp_fail(err, SP_EFORMAT, "truncated JPEG data");
        if (cmyk) cmyk_to_rgb(c->cmyk_row, row, out->width, d->saw_Adobe_marker);
    }
    *orientation = find_orientation(d);
    jpeg_finish_decompress(d);
    return SP_OK;
}

sp_status sp_decode_jpeg(const uint8_t *data, size_t n, int64_t max_pixels, sp_image *out,
                         sp_error *err) {
    struct jpeg_decompress_struct d;
    jpeg_ctx c;
    memset(&d, 0, sizeof d); /* jpeg_destroy_decompress is then safe at any point */
    memset(&c, 0, sizeof c);
    d.err = jpeg_std_error(&c.mgr);
    c.mgr.error_exit = on_error;
    c.mgr.emit_message = on_message;
    sp_status s = SP_OK;
    int orientation = 1;
    if (setjmp(c.jmp)) {
        s = sp_fail(err, SP_EFORMAT, "corrupt JPEG: %s", c.msg[0] ? c.msg : "unknown error");
    } else {
        jpeg_create_decompress(&d);
        jpeg_mem_src(&d, data, (unsigned long)n);
        s = read_jpeg(&d, &c, max_pixels, out, &orientation, err);
    }
    free(c.cmyk_row);
    jpeg_destroy_decompress(&d);
    if (s == SP_OK) s = sp_image_orient(out, orientation, err);
    return s;
}
