/* Image decoders: every format round-trips a synthetic picture made with the
 * format's own encoder library (lossless ones exactly), PNG alpha / palette /
 * gray / 16-bit convert as PIL's convert("RGB") does, the EXIF orientation
 * of a JPEG turns the picture as PIL's exif_transpose does, and truncated,
 * corrupt, oversized and unsupported inputs fail with a message saying what
 * was wrong. */
#include <gif_lib.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <webp/encode.h>

#include <jpeglib.h>

#include "check.h"
#include "media/image.h"

enum { W = 23, H = 17 };

static uint8_t pix(int x, int y, int c) {
    return (uint8_t)((x * 11 + y * 7 + c * 85) & 0xFF);
}

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void buf_put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void png_write_cb(png_structp png, png_bytep d, size_t n) {
    buf_put(png_get_io_ptr(png), d, n);
}
static void png_flush_cb(png_structp png) {
    (void)png;
}

/* A PNG of the test picture in one of libpng's colour types. */
static buf make_png(int color_type, int depth, const png_color *palette, int n_palette) {
    buf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_set_write_fn(png, &b, png_write_cb, png_flush_cb);
    png_set_IHDR(png, info, W, H, depth, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, n_palette);
    png_write_info(png, info);
    int ch = color_type == PNG_COLOR_TYPE_RGB_ALPHA ? 4 : color_type == PNG_COLOR_TYPE_RGB ? 3 : 1;
    int bpc = depth == 16 ? 2 : 1;
    uint8_t row[W * 8];
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++)
            for (int c = 0; c < ch; c++) {
                uint8_t v = color_type == PNG_COLOR_TYPE_PALETTE ? (uint8_t)((x + y) % n_palette)
                                                                 : pix(x, y, c);
                if (c == 3) v = (uint8_t)(x * 10); /* alpha: must not matter */
                row[(x * ch + c) * bpc] = v;
                if (bpc == 2) row[(x * ch + c) * 2 + 1] = 0x5A; /* low byte dropped */
            }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return b;
}

static void check_rgb_exact(const sp_image *img, const char *what) {
    int bad = 0;
    for (int y = 0; y < H && img->rgb; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) bad += img->rgb[(y * W + x) * 3 + c] != pix(x, y, c);
    CHECKF(img->width == W && img->height == H && bad == 0, "%s: %d wrong samples", what, bad);
}

static sp_status decode(const buf *b, sp_image *img, sp_error *err) {
    return sp_image_decode(b->p, b->n, 0, img, err);
}

static void test_png(void) {
    sp_image img;
    sp_error err = {0};
    const int types[] = {PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    for (int t = 0; t < 2; t++) {
        buf b = make_png(types[t], 8, NULL, 0);
        CHECKF(decode(&b, &img, &err) == SP_OK, "%s", err.msg);
        check_rgb_exact(&img, t ? "PNG RGBA (alpha dropped, not composited)" : "PNG RGB");
        sp_image_free(&img);
        /* truncation anywhere fails with a message, never a partial picture */
        for (size_t cut = 8; cut < b.n; cut += b.n / 7) {
            sp_status s = sp_image_decode(b.p, cut, 0, &img, &err);
            CHECKF(s == SP_EFORMAT && strstr(err.msg, "PNG"), "cut at %zu: %d %s", cut, s, err.msg);
        }
        free(b.p);
    }
    buf b16 = make_png(PNG_COLOR_TYPE_RGB, 16, NULL, 0);
    CHECK(decode(&b16, &img, &err) == SP_OK);
    check_rgb_exact(&img, "PNG 16-bit (high byte)");
    sp_image_free(&img);
    free(b16.p);
    png_color pal[3] = {{10, 20, 30}, {200, 100, 0}, {1, 2, 3}};
    buf bp = make_png(PNG_COLOR_TYPE_PALETTE, 8, pal, 3);
    CHECK(decode(&bp, &img, &err) == SP_OK);
    CHECK(img.rgb && img.rgb[0] == 10 && img.rgb[3] == 200 && img.rgb[3 * W] == 200 &&
          img.rgb[(2 * W + 0) * 3 + 2] == 3);
    sp_image_free(&img);
    free(bp.p);
    buf bg = make_png(PNG_COLOR_TYPE_GRAY, 8, NULL, 0);
    CHECK(decode(&bg, &img, &err) == SP_OK);
    CHECK(img.rgb && img.rgb[5 * 3] == pix(5, 0, 0) && img.rgb[5 * 3 + 2] == pix(5, 0, 0));
    sp_image_free(&img);
    /* a flipped byte in the image data: CRC error */
    bg.p[bg.n - 20] ^= 0x40;
    CHECKF(decode(&bg, &img, &err) == SP_EFORMAT, "%s", err.msg);
    free(bg.p);
}

static buf make_jpeg(int quality, const uint8_t *app1, size_t app1_len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    unsigned char *out = NULL;
    unsigned long n = 0;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &n);
    c.image_width = W, c.image_height = H, c.input_components = 3, c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    if (app1) jpeg_write_marker(&c, JPEG_APP0 + 1, app1, (unsigned)app1_len);
    uint8_t row[W * 3];
    while (c.next_scanline < H) {
        for (int x = 0; x < W; x++)
            for (int ch = 0; ch < 3; ch++) row[x * 3 + ch] = pix(x, (int)c.next_scanline, ch);
        JSAMPROW rp = row;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    buf b = {out, n, n};
    return b;
}

/* "Exif\0\0" + a little-endian TIFF with IFD0 holding one Orientation tag. */
static size_t exif_block(uint8_t *out, int orientation) {
    static const uint8_t head[] = {'E', 'x', 'i', 'f', 0,    0,    'I', 'I', 42, 0, 8, 0,
                                   0,   0,   1,   0,   0x12, 0x01, 3,   0,   1,  0, 0, 0};
    memcpy(out, head, sizeof head);
    uint8_t tail[] = {(uint8_t)orientation, 0, 0, 0, 0, 0, 0, 0};
    memcpy(out + sizeof head, tail, sizeof tail);
    return sizeof head + sizeof tail;
}

static void test_jpeg(void) {
    sp_image plain, rot;
    sp_error err = {0};
    buf b = make_jpeg(100, NULL, 0);
    CHECKF(decode(&b, &plain, &err) == SP_OK, "%s", err.msg);
    double err_sum = 0; /* lossy (and chroma-subsampled): close on average */
    for (int i = 0; plain.rgb && i < W * H * 3; i++)
        err_sum += abs((int)plain.rgb[i] - pix(i / 3 % W, i / 3 / W, i % 3));
    CHECKF(plain.width == W && plain.height == H && err_sum / (W * H * 3) < 24,
           "JPEG q100: mean error %.1f", err_sum / (W * H * 3));
    sp_status s = sp_image_decode(b.p, b.n * 2 / 3, 0, &rot, &err);
    CHECKF(s == SP_EFORMAT && strstr(err.msg, "truncated JPEG"), "%s", err.msg);
    free(b.p);
    /* orientation 6 (rotate 90 degrees clockwise): out(x, y) = in(y, H-1-x) */
    uint8_t ex[64];
    size_t exn = exif_block(ex, 6);
    buf b6 = make_jpeg(100, ex, exn);
    CHECKF(decode(&b6, &rot, &err) == SP_OK, "%s", err.msg);
    CHECK(rot.width == H && rot.height == W);
    int same = 1;
    for (int y = 0; rot.rgb && plain.rgb && y < rot.height; y++)
        for (int x = 0; x < rot.width; x++)
            same &= !memcmp(rot.rgb + (y * rot.width + x) * 3,
                            plain.rgb + ((H - 1 - x) * W + y) * 3, 3);
    CHECK(same);
    sp_image_free(&rot);
    free(b6.p);
    /* orientation 3 (180 degrees) keeps the size */
    exif_block(ex, 3);
    buf b3 = make_jpeg(100, ex, exn);
    CHECK(decode(&b3, &rot, &err) == SP_OK);
    CHECK(rot.width == W && rot.rgb && plain.rgb &&
          !memcmp(rot.rgb, plain.rgb + ((H - 1) * W + W - 1) * 3, 3));
    sp_image_free(&rot);
    free(b3.p);
    sp_image_free(&plain);
    /* garbage after the signature */
    uint8_t junk[64] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 3, 1, 2, 3, 4};
    CHECKF(sp_image_decode(junk, sizeof junk, 0, &rot, &err) == SP_EFORMAT, "%s", err.msg);
}

static void test_webp(void) {
    uint8_t rgb[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) rgb[i] = pix(i / 3 % W, i / 3 / W, i % 3);
    uint8_t *out = NULL;
    size_t n = WebPEncodeLosslessRGB(rgb, W, H, W * 3, &out);
    CHECK(n > 0);
    buf b = {out, n, n};
    sp_image img;
    sp_error err = {0};
    CHECKF(decode(&b, &img, &err) == SP_OK, "%s", err.msg);
    check_rgb_exact(&img, "WebP lossless");
    sp_image_free(&img);
    CHECKF(sp_image_decode(out, n / 2, 0, &img, &err) == SP_EFORMAT, "%s", err.msg);
    WebPFree(out);
}

static int gif_write_cb(GifFileType *g, const GifByteType *d, int n) {
    buf_put(g->UserData, d, (size_t)n);
    return n;
}

/* A GIF whose first frame covers part of the screen, then a second frame
 * that must not be drawn. */
static buf make_gif(void) {
    buf b = {0};
    int e;
    GifFileType *g = EGifOpen(&b, gif_write_cb, &e);
    GifColorType cols[4] = {{9, 9, 9}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    ColorMapObject *cm = GifMakeMapObject(4, cols);
    EGifPutScreenDesc(g, 8, 6, 2, 0, cm);
    GifByteType line[8];
    EGifPutImageDesc(g, 2, 1, 4, 3, false, NULL);
    for (int y = 0; y < 3; y++) {
        for (int x = 0; x < 4; x++) line[x] = (GifByteType)(1 + (x + y) % 3);
        EGifPutLine(g, line, 4);
    }
    EGifPutImageDesc(g, 0, 0, 8, 6, false, NULL);
    for (int y = 0; y < 6; y++) {
        memset(line, 3, sizeof line);
        EGifPutLine(g, line, 8);
    }
    EGifCloseFile(g, &e);
    GifFreeMapObject(cm);
    return b;
}

static void test_gif(void) {
    buf b = make_gif();
    sp_image img;
    sp_error err = {0};
    CHECKF(decode(&b, &img, &err) == SP_OK, "%s", err.msg);
    CHECK(img.width == 8 && img.height == 6);
    if (img.rgb) {
        CHECK(img.rgb[0] == 9 && img.rgb[1] == 9);  /* background */
        CHECK(img.rgb[(1 * 8 + 2) * 3 + 0] == 255); /* frame (0,0): index 1 */
        CHECK(img.rgb[(1 * 8 + 3) * 3 + 1] == 255); /* frame (1,0): index 2 */
        CHECK(img.rgb[(5 * 8 + 7) * 3 + 2] == 9);   /* second frame ignored */
    }
    sp_image_free(&img);
    CHECKF(sp_image_decode(b.p, 40, 0, &img, &err) == SP_EFORMAT, "%s", err.msg);
    free(b.p);
}

static uint32_t crc32_of(const uint8_t *d, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= d[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return ~c;
}

static void test_limits_and_formats(void) {
    sp_image img;
    sp_error err = {0};
    buf b = make_png(PNG_COLOR_TYPE_RGB, 8, NULL, 0);
    sp_status s = sp_image_decode(b.p, b.n, W * H - 1, &img, &err);
    CHECKF(s == SP_ERANGE && strstr(err.msg, "exceeds the limit"), "%s", err.msg);
    CHECK(img.rgb == NULL);
    free(b.p);
    /* a PNG header that claims 60000 x 60000: refused before any allocation */
    uint8_t bomb[] = {0x89, 'P', 'N', 'G',  '\r', '\n', 0x1a, '\n', 0,    0, 0, 13, 'I', 'H', 'D',
                      'R',  0,   0,   0xEA, 0x60, 0,    0,    0xEA, 0x60, 8, 2, 0,  0,   0};
    uint32_t crc = crc32_of(bomb + 12, 17);
    uint8_t file[64];
    memcpy(file, bomb, sizeof bomb);
    file[29] = (uint8_t)(crc >> 24), file[30] = (uint8_t)(crc >> 16);
    file[31] = (uint8_t)(crc >> 8), file[32] = (uint8_t)crc;
    memcpy(file + 33, "\0\0\0\0IDAT", 8); /* png_read_info stops at the first IDAT */
    crc = crc32_of(file + 37, 4);
    file[41] = (uint8_t)(crc >> 24), file[42] = (uint8_t)(crc >> 16);
    file[43] = (uint8_t)(crc >> 8), file[44] = (uint8_t)crc;
    s = sp_image_decode(file, 45, 0, &img, &err);
    CHECKF(s == SP_ERANGE, "%d %s", s, err.msg);
    const char *bmp = "BM\x36\x00\x00\x00\x00\x00";
    s = sp_image_decode((const uint8_t *)bmp, 8, 0, &img, &err);
    CHECKF(s == SP_EUNSUPPORTED && strstr(err.msg, "BMP"), "%s", err.msg);
    s = sp_image_decode((const uint8_t *)"hello world", 11, 0, &img, &err);
    CHECKF(s == SP_EUNSUPPORTED && strstr(err.msg, "supported"), "%s", err.msg);
    CHECK(sp_image_decode(NULL, 0, 0, &img, &err) == SP_EFORMAT);
}

int main(void) {
    test_png();
    test_jpeg();
    test_webp();
    test_gif();
    test_limits_and_formats();
    return check_summary("media_decode");
}
