/* Format sniffing, limits and dispatch to the per-format decoders. */
#include <stdlib.h>
#include <string.h>

#include "media/image.h"

sp_image_format sp_image_sniff(const uint8_t *d, size_t n) {
    if (n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8)) return SP_IMG_PNG;
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return SP_IMG_JPEG;
    if (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4)) return SP_IMG_WEBP;
    if (n >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6))) return SP_IMG_GIF;
    return SP_IMG_UNKNOWN;
}

const char *sp_image_format_name(sp_image_format f) {
    switch (f) {
    case SP_IMG_PNG:
        return "PNG";
    case SP_IMG_JPEG:
        return "JPEG";
    case SP_IMG_WEBP:
        return "WebP";
    case SP_IMG_GIF:
        return "GIF";
    default:
        return "unknown";
    }
}

/* What a few common non-image or unsupported payloads are, for the error. */
static const char *guess_other(const uint8_t *d, size_t n) {
    if (n >= 2 && (!memcmp(d, "BM", 2))) return "BMP";
    if (n >= 4 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4))) return "TIFF";
    if (n >= 12 && !memcmp(d + 4, "ftyp", 4)) return "HEIF/AVIF or MP4";
    if (n >= 5 && (!memcmp(d, "<?xml", 5) || !memcmp(d, "<svg", 4))) return "SVG/XML";
    if (n >= 4 && !memcmp(d, "%PDF", 4)) return "PDF";
    return NULL;
}

sp_status sp_image_alloc(sp_image *out, int64_t w, int64_t h, int64_t max_pixels, sp_error *err) {
    if (max_pixels <= 0) max_pixels = SP_IMAGE_MAX_PIXELS_DEFAULT;
    if (w <= 0 || h <= 0)
        return sp_fail(err, SP_EFORMAT, "image has no pixels (%lld x %lld)", (long long)w,
                       (long long)h);
    if (w > SP_IMAGE_MAX_SIDE || h > SP_IMAGE_MAX_SIDE || w * h > max_pixels)
        return sp_fail(err, SP_ERANGE,
                       "image of %lld x %lld pixels exceeds the limit of %lld pixels", (long long)w,
                       (long long)h, (long long)max_pixels);
    out->rgb = malloc((size_t)w * (size_t)h * 3);
    if (!out->rgb)
        return sp_fail(err, SP_ENOMEM, "no memory for an image of %lld x %lld pixels", (long long)w,
                       (long long)h);
    out->width = (int)w;
    out->height = (int)h;
    return SP_OK;
}

sp_status sp_image_decode(const uint8_t *data, size_t n, int64_t max_pixels, sp_image *out,
                          sp_error *err) {
    memset(out, 0, sizeof *out);
    if (!data || n == 0) return sp_fail(err, SP_EFORMAT, "the image is empty (0 bytes)");
    sp_status s;
    switch (sp_image_sniff(data, n)) {
    case SP_IMG_PNG:
        s = sp_decode_png(data, n, max_pixels, out, err);
        break;
    case SP_IMG_JPEG:
        s = sp_decode_jpeg(data, n, max_pixels, out, err);
        break;
    case SP_IMG_WEBP:
        s = sp_decode_webp(data, n, max_pixels, out, err);
        break;
    case SP_IMG_GIF:
        s = sp_decode_gif(data, n, max_pixels, out, err);
        break;
    default: {
        const char *other = guess_other(data, n);
        if (other)
            return sp_fail(err, SP_EUNSUPPORTED,
                           "unsupported image format (%s); supported: PNG, JPEG, WebP, GIF", other);
        return sp_fail(err, SP_EUNSUPPORTED,
                       "not an image in a supported format (PNG, JPEG, WebP, GIF): the data "
                       "starts with none of their signatures");
    }
    }
    if (s != SP_OK) sp_image_free(out);
    return s;
}

void sp_image_free(sp_image *img) {
    if (!img) return;
    free(img->rgb);
    memset(img, 0, sizeof *img);
}
