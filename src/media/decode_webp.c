/* WebP through libwebp's animation decoder, as Pillow reads every WebP
 * (still or animated): the first frame's canvas as RGBA, alpha then dropped
 * without compositing (PIL's convert("RGB")). */
#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>
#include <webp/demux.h>

#include "media/image.h"

sp_status sp_decode_webp(const uint8_t *data, size_t n, int64_t max_pixels, sp_image *out,
                         sp_error *err) {
    int w = 0, h = 0;
    if (!WebPGetInfo(data, n, &w, &h))
        return sp_fail(err, SP_EFORMAT, "corrupt WebP: the header cannot be read (%zu bytes)", n);
    SP_TRY(sp_image_alloc(out, w, h, max_pixels, err));
    WebPAnimDecoderOptions opt;
    if (!WebPAnimDecoderOptionsInit(&opt))
        return sp_fail(err, SP_EINTERNAL, "WebP: library version mismatch");
    opt.color_mode = MODE_RGBA;
    opt.use_threads = 0;
    WebPData wd = {.bytes = data, .size = n};
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&wd, &opt);
    if (!dec) return sp_fail(err, SP_EFORMAT, "corrupt or truncated WebP data (%zu bytes)", n);
    WebPAnimInfo info;
    uint8_t *rgba = NULL;
    int ts = 0;
    sp_status s = SP_OK;
    if (!WebPAnimDecoderGetInfo(dec, &info) || (int)info.canvas_width != w ||
        (int)info.canvas_height != h)
        s = sp_fail(err, SP_EFORMAT, "corrupt WebP: inconsistent canvas size");
    else if (!WebPAnimDecoderGetNext(dec, &rgba, &ts) || !rgba)
        s = sp_fail(err, SP_EFORMAT,
                    "corrupt or truncated WebP data: the first frame does not "
                    "decode");
    if (s == SP_OK)
        for (size_t i = 0; i < (size_t)w * h; i++) memcpy(out->rgb + i * 3, rgba + i * 4, 3);
    WebPAnimDecoderDelete(dec);
    return s;
}
