/* GIF through giflib, first frame only (what PIL shows for Image.open):
 * the logical screen, filled with the background colour, the first image's
 * pixels drawn at their offset through the local (else global) colour map;
 * transparency ignored, as PIL's convert("RGB") of a palette image does.
 * Records are read one at a time, so later frames are never decoded. */
#include <gif_lib.h>
#include <stdlib.h>
#include <string.h>

#include "media/image.h"

typedef struct gif_src {
    const uint8_t *data;
    size_t n, off;
} gif_src;

static int on_read(GifFileType *g, GifByteType *out, int len) {
    gif_src *s = g->UserData;
    size_t k = len > 0 ? (size_t)len : 0;
    if (k > s->n - s->off) k = s->n - s->off;
    memcpy(out, s->data + s->off, k);
    s->off += k;
    return (int)k;
}

static sp_status gif_fail(sp_error *err, int code, const char *what) {
    const char *m = GifErrorString(code);
    return sp_fail(err, SP_EFORMAT, "corrupt GIF: %s (%s)", what, m ? m : "unknown error");
}

/* Skips extension blocks up to the first image descriptor. */
static sp_status to_first_image(GifFileType *g, sp_error *err) {
    for (;;) {
        GifRecordType t;
        if (DGifGetRecordType(g, &t) == GIF_ERROR) return gif_fail(err, g->Error, "record type");
        if (t == IMAGE_DESC_RECORD_TYPE) return SP_OK;
        if (t == TERMINATE_RECORD_TYPE)
            return sp_fail(err, SP_EFORMAT, "corrupt GIF: the file holds no image");
        if (t != EXTENSION_RECORD_TYPE) return sp_fail(err, SP_EFORMAT, "corrupt GIF: bad record");
        int code;
        GifByteType *ext;
        if (DGifGetExtension(g, &code, &ext) == GIF_ERROR)
            return gif_fail(err, g->Error, "extension");
        while (ext)
            if (DGifGetExtensionNext(g, &ext) == GIF_ERROR)
                return gif_fail(err, g->Error, "extension");
    }
}

static void fill_background(GifFileType *g, sp_image *out) {
    uint8_t bg[3] = {0, 0, 0};
    const ColorMapObject *cm = g->SColorMap;
    if (cm && g->SBackGroundColor < cm->ColorCount) {
        const GifColorType *c = &cm->Colors[g->SBackGroundColor];
        bg[0] = c->Red, bg[1] = c->Green, bg[2] = c->Blue;
    }
    for (size_t i = 0; i < (size_t)out->width * out->height; i++) memcpy(out->rgb + i * 3, bg, 3);
}

/* Decodes the first image's rows (interlaced: four passes) into out. */
static sp_status draw_frame(GifFileType *g, sp_image *out, GifPixelType *line, sp_error *err) {
    const GifImageDesc *d = &g->Image;
    const ColorMapObject *cm = d->ColorMap ? d->ColorMap : g->SColorMap;
    static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
    int passes = d->Interlace ? 4 : 1;
    for (int p = 0; p < passes; p++)
        for (int r = d->Interlace ? start[p] : 0; r < d->Height; r += d->Interlace ? step[p] : 1) {
            if (DGifGetLine(g, line, d->Width) == GIF_ERROR)
                return gif_fail(err, g->Error, "truncated or bad image data");
            int y = d->Top + r;
            if (y < 0 || y >= out->height) continue;
            for (int x = 0; x < d->Width; x++) {
                int X = d->Left + x;
                if (X < 0 || X >= out->width) continue;
                uint8_t *o = out->rgb + ((size_t)y * out->width + X) * 3;
                if (cm && line[x] < cm->ColorCount) {
                    const GifColorType *c = &cm->Colors[line[x]];
                    o[0] = c->Red, o[1] = c->Green, o[2] = c->Blue;
                } else {
                    o[0] = o[1] = o[2] = 0; /* PIL's palette pads with black */
                }
            }
        }
    return SP_OK;
}

sp_status sp_decode_gif(const uint8_t *data, size_t n, int64_t max_pixels, sp_image *out,
                        sp_error *err) {
    gif_src src = {.data = data, .n = n};
    int code = 0;
    GifFileType *g = DGifOpen(&src, on_read, &code);
    if (!g) return gif_fail(err, code, "header");
    sp_status s = sp_image_alloc(out, g->SWidth, g->SHeight, max_pixels, err);
    if (s == SP_OK) s = to_first_image(g, err);
    if (s == SP_OK && DGifGetImageDesc(g) == GIF_ERROR)
        s = gif_fail(err, g->Error, "image descriptor");
    GifPixelType *line = NULL;
    if (s == SP_OK && (g->Image.Width <= 0 || g->Image.Height <= 0 ||
                       g->Image.Width > SP_IMAGE_MAX_SIDE || g->Image.Height > SP_IMAGE_MAX_SIDE ||
                       (int64_t)g->Image.Width * g->Image.Height >
                           (max_pixels > 0 ? max_pixels : SP_IMAGE_MAX_PIXELS_DEFAULT)))
        s = sp_fail(err, SP_EFORMAT, "corrupt GIF: frame of %d x %d pixels", g->Image.Width,
                    g->Image.Height);
    if (s == SP_OK && !(line = malloc((size_t)g->Image.Width)))
        s = sp_fail(err, SP_ENOMEM, "GIF: line buffer");
    if (s == SP_OK) {
        fill_background(g, out);
        s = draw_frame(g, out, line, err);
    }
    free(line);
    DGifCloseFile(g, &code);
    return s;
}
