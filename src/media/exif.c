/* EXIF orientation: reading tag 0x0112 from IFD0 of the TIFF structure in
 * a JPEG's APP1 segment, and turning the picture upright the way PIL's
 * ImageOps.exif_transpose does. One tag of one directory, so a small
 * bounds-checked reader (fuzzed through the JPEG decoder) rather than a
 * whole EXIF library. */
#include <stdlib.h>
#include <string.h>

#include "media/image.h"

static unsigned rd16(const uint8_t *p, int be) {
    return be ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0];
}

static uint32_t rd32(const uint8_t *p, int be) {
    return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
              : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

int sp_exif_orientation(const uint8_t *t, size_t n) {
    if (n < 8) return 1;
    int be;
    if (!memcmp(t, "II*\0", 4))
        be = 0;
    else if (!memcmp(t, "MM\0*", 4))
        be = 1;
    else
        return 1;
    uint32_t ifd = rd32(t + 4, be);
    if (ifd > n - 2) return 1;
    unsigned count = rd16(t + ifd, be);
    for (unsigned i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > n) return 1;
        if (rd16(t + e, be) != 0x0112) continue;
        unsigned type = rd16(t + e + 2, be), v = rd16(t + e + 8, be);
        if (type != 3 || rd32(t + e + 4, be) != 1) return 1; /* SHORT, one value */
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

/* Source pixel of output (x, y) for each orientation; out is W'xH'. */
static void source_of(int o, int x, int y, int w, int h, int *sx, int *sy) {
    switch (o) {
    case 2: /* mirror left-right */
        *sx = w - 1 - x, *sy = y;
        break;
    case 3: /* 180 degrees */
        *sx = w - 1 - x, *sy = h - 1 - y;
        break;
    case 4: /* mirror top-bottom */
        *sx = x, *sy = h - 1 - y;
        break;
    case 5: /* transpose */
        *sx = y, *sy = x;
        break;
    case 6: /* 90 degrees clockwise */
        *sx = y, *sy = h - 1 - x;
        break;
    case 7: /* transverse */
        *sx = w - 1 - y, *sy = h - 1 - x;
        break;
    default: /* 8: 90 degrees counter-clockwise */
        *sx = w - 1 - y, *sy = x;
        break;
    }
}

sp_status sp_image_orient(sp_image *img, int o, sp_error *err) {
    if (o < 2 || o > 8) return SP_OK;
    int w = img->width, h = img->height, swap = o >= 5;
    int ow = swap ? h : w, oh = swap ? w : h;
    uint8_t *out = malloc((size_t)w * h * 3);
    if (!out) return sp_fail(err, SP_ENOMEM, "no memory to apply the EXIF orientation");
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            source_of(o, x, y, w, h, &sx, &sy);
            memcpy(out + ((size_t)y * ow + x) * 3, img->rgb + ((size_t)sy * w + sx) * 3, 3);
        }
    free(img->rgb);
    img->rgb = out;
    img->width = ow;
    img->height = oh;
    return SP_OK;
}
