/* Fuzz target: the image decoders' entry points. Input: a flag byte, then
 * the payload. Flag bit 0: the payload is base64 text (a data: URL's body)
 * decoded first with sp_base64_decode; bit 1: the payload also goes to the
 * EXIF orientation reader as a TIFF block; bits 2-3 pick the preprocessing
 * applied to a decoded image of at most 64K pixels (none, Gemma 3 at 32 x
 * 32, Gemma 4 at the smallest patch budget). Decoding runs with a 256K-pixel limit (a bomb must
 * be refused from its header, not decoded).
 * Beyond "no crash / leak / UB": a decoded image has 1..limit pixels and a
 * buffer; a failure has a message and no buffer; orientation is 1..8; the
 * pixel tensor has the shape its dimensions say, values in the processor's
 * range, and a positive soft-token count. */
#include "fuzz_common.h"

#include <math.h>

#include "base/base64.h"
#include "media/preprocess.h"

#define FUZZ_IMAGE_MAX_PIXELS (1 << 18)

static void fuzz_image_preprocess(const sp_image *img, int which) {
    sp_image_proc p = {.do_resize = 1, .do_rescale = 1, .rescale_factor = 1.0 / 255};
    if (which == 1) {
        p.kind = SP_PROC_GEMMA3, p.do_normalize = 1, p.resample = SP_FILTER_BILINEAR;
        p.size_h = p.size_w = 32, p.soft_tokens = 4;
        for (int c = 0; c < 3; c++) p.mean[c] = p.std[c] = 0.5;
    } else {
        p.kind = SP_PROC_GEMMA4, p.resample = SP_FILTER_BICUBIC;
        p.patch = 16, p.pool_k = 3, p.max_soft_tokens = 70;
        for (int c = 0; c < 3; c++) p.std[c] = 1.0;
    }
    sp_pixels px;
    sp_error err = {0};
    if (sp_image_preprocess(&p, img, &px, &err) != SP_OK) {
        FUZZ_ASSERT(err.msg[0] && !px.data, "preprocess failure without a message");
        return;
    }
    size_t want = px.kind == SP_PROC_GEMMA3 ? (size_t)3 * px.height * px.width
                                            : (size_t)px.grid_h * px.grid_w * px.patch_dim;
    FUZZ_ASSERT(px.data && px.n_floats == want && px.n_soft > 0, "tensor of %zu floats, want %zu",
                px.n_floats, want);
    float lo = px.kind == SP_PROC_GEMMA3 ? -1.0f : 0.0f;
    for (size_t i = 0; i < px.n_floats; i++)
        FUZZ_ASSERT(px.data[i] >= lo && px.data[i] <= 1.0f, "value %g at %zu", px.data[i], i);
    if (px.kind == SP_PROC_GEMMA4)
        FUZZ_ASSERT(px.n_soft <= p.max_soft_tokens, "%d soft tokens over the budget", px.n_soft);
    sp_pixels_free(&px);
}

int fuzz_image(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int flags = data[0];
    data++, size--;
    uint8_t *decoded = NULL;
    sp_error err = {0};
    if (flags & 1) {
        size_t n = 0;
        if (sp_base64_decode((const char *)data, size, &decoded, &n, &err) != SP_OK) {
            FUZZ_ASSERT(!decoded && err.msg[0], "base64 failure without a message");
            return 0;
        }
        FUZZ_ASSERT(n <= size / 4 * 3 + 3, "%zu bytes from %zu base64 characters", n, size);
        data = decoded, size = n;
    }
    if (flags & 2) {
        int o = sp_exif_orientation(data, size);
        FUZZ_ASSERT(o >= 1 && o <= 8, "orientation %d", o);
    }
    sp_image img;
    sp_status s = sp_image_decode(data, size, FUZZ_IMAGE_MAX_PIXELS, &img, &err);
    if (s != SP_OK) {
        FUZZ_ASSERT(!img.rgb && err.msg[0], "decode failure without a message or with pixels");
    } else {
        FUZZ_ASSERT(img.rgb && img.width > 0 && img.height > 0 &&
                        (int64_t)img.width * img.height <= FUZZ_IMAGE_MAX_PIXELS,
                    "decoded %d x %d", img.width, img.height);
        volatile uint8_t sink = img.rgb[(size_t)img.width * img.height * 3 - 1];
        (void)sink;
        /* resampling big pictures under ASan is slow: preprocess the small ones */
        if (((flags >> 2) & 3) && (int64_t)img.width * img.height <= (1 << 16))
            fuzz_image_preprocess(&img, (flags >> 2) & 1 ? 1 : 2);
        sp_image_free(&img);
    }
    free(decoded);
    return 0;
}

#ifndef FUZZ_REGRESSION
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_image(data, size);
}
#endif
