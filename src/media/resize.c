/* The uint8 anti-aliased resampler (see resize.h). Each output sample of a
 * pass is a weighted sum over a window of input samples; the window and its
 * weights depend only on the output index, so they are computed once per
 * pass ("coefs") and shared by every row (or column). */
#include "media/resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct coefs {
    int kmax;   /* weights per output index */
    int prec;   /* fixed-point bits of the int16 weights */
    int *xmin;  /* [out] first input index */
    int *xsize; /* [out] window length */
    int16_t *k; /* [out][kmax] */
} coefs;

static double filter_linear(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Keys cubic with a = -0.5 (PyTorch's antialias filter, Pillow's bicubic). */
static double filter_cubic(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    return 0.0;
}

static void coefs_free(coefs *c) {
    free(c->xmin);
    free(c->xsize);
    free(c->k);
}

/* Normalised double weights of one output index; returns their maximum. */
static double window(int i, int in, double scale, double support, int kmax, double (*f)(double),
                     double *w, int *xmin, int *xsize) {
    double center = scale * (i + 0.5), invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
    int64_t lo = (int64_t)(center - support + 0.5), hi = (int64_t)(center + support + 0.5);
    if (lo < 0) lo = 0;
    if (hi > in) hi = in;
    int64_t n = hi - lo;
    if (n < 0) n = 0;
    if (n > kmax) n = kmax;
    double total = 0.0, wmax = 0.0;
    for (int j = 0; j < n; j++) total += w[j] = f((j + lo - center + 0.5) * invscale);
    for (int j = 0; j < n && total != 0.0; j++) {
        w[j] /= total;
        if (w[j] > wmax) wmax = w[j];
    }
    for (int j = (int)n; j < kmax; j++) w[j] = 0.0;
    *xmin = (int)lo;
    *xsize = (int)n;
    return wmax;
}

static sp_status coefs_make(coefs *c, int in, int out, sp_filter filter, sp_error *err) {
    memset(c, 0, sizeof *c);
    double scale = (double)in / out, interp = filter == SP_FILTER_BICUBIC ? 4.0 : 2.0;
    double support = scale >= 1.0 ? interp * 0.5 * scale : interp * 0.5;
    c->kmax = (int)ceil(support) * 2 + 1;
    double *w = malloc((size_t)out * c->kmax * sizeof *w);
    c->xmin = malloc((size_t)out * sizeof *c->xmin);
    c->xsize = malloc((size_t)out * sizeof *c->xsize);
    c->k = malloc((size_t)out * c->kmax * sizeof *c->k);
    if (!w || !c->xmin || !c->xsize || !c->k) {
        free(w);
        coefs_free(c);
        return sp_fail(err, SP_ENOMEM, "resize: no memory for the filter weights");
    }
    double (*f)(double) = filter == SP_FILTER_BICUBIC ? filter_cubic : filter_linear, wmax = 0.0;
    for (int i = 0; i < out; i++) {
        double m = window(i, in, scale, support, c->kmax, f, w + (size_t)i * c->kmax, &c->xmin[i],
                          &c->xsize[i]);
        if (m > wmax) wmax = m;
    }
    /* the most fraction bits that keep the largest weight below 2^15 */
    for (c->prec = 0; c->prec < 22; c->prec++)
        if ((int)(0.5 + wmax * (1 << (c->prec + 1))) >= (1 << 15)) break;
    for (size_t j = 0; j < (size_t)out * c->kmax; j++) {
        double v = w[j] * (1 << c->prec);
        c->k[j] = (int16_t)(v < 0 ? (int)(-0.5 + v) : (int)(0.5 + v));
    }
    free(w);
    return SP_OK;
}

static uint8_t clip8(int32_t acc, int prec) {
    int32_t v = acc >> prec;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One pass along x (stride 3 samples per pixel) for every row. */
static void pass_h(const uint8_t *src, int w, int h, uint8_t *dst, int ow, const coefs *c) {
    for (int y = 0; y < h; y++) {
        const uint8_t *row = src + (size_t)y * w * 3;
        for (int x = 0; x < ow; x++) {
            const int16_t *k = c->k + (size_t)x * c->kmax;
            for (int ch = 0; ch < 3; ch++) {
                int32_t acc = 1 << (c->prec - 1);
                for (int j = 0; j < c->xsize[x]; j++)
                    acc += (int32_t)row[(size_t)(c->xmin[x] + j) * 3 + ch] * k[j];
                dst[((size_t)y * ow + x) * 3 + ch] = clip8(acc, c->prec);
            }
        }
    }
}

/* One pass along y for every column. */
static void pass_v(const uint8_t *src, int w, uint8_t *dst, int oh, const coefs *c) {
    size_t stride = (size_t)w * 3;
    for (int y = 0; y < oh; y++) {
        const int16_t *k = c->k + (size_t)y * c->kmax;
        for (size_t i = 0; i < stride; i++) {
            int32_t acc = 1 << (c->prec - 1);
            for (int j = 0; j < c->xsize[y]; j++)
                acc += (int32_t)src[(size_t)(c->xmin[y] + j) * stride + i] * k[j];
            dst[(size_t)y * stride + i] = clip8(acc, c->prec);
        }
    }
}

sp_status sp_resize_rgb(const uint8_t *src, int w, int h, uint8_t *dst, int ow, int oh,
                        sp_filter filter, sp_error *err) {
    if (w <= 0 || h <= 0 || ow <= 0 || oh <= 0)
        return sp_fail(err, SP_EINVAL, "resize: %d x %d to %d x %d", w, h, ow, oh);
    if (filter != SP_FILTER_BILINEAR && filter != SP_FILTER_BICUBIC)
        return sp_fail(err, SP_EUNSUPPORTED,
                       "resize: resample filter %d (supported: 2 bilinear, "
                       "3 bicubic)",
                       (int)filter);
    if (w == ow && h == oh) {
        memcpy(dst, src, (size_t)w * h * 3);
        return SP_OK;
    }
    coefs ch = {0}, cv = {0};
    uint8_t *mid = NULL;
    sp_status s = SP_OK;
    if (w != ow) s = coefs_make(&ch, w, ow, filter, err);
    if (s == SP_OK && h != oh) s = coefs_make(&cv, h, oh, filter, err);
    /* the horizontal pass writes straight to dst when no vertical pass follows */
    if (s == SP_OK && w != ow && h != oh && !(mid = malloc((size_t)ow * h * 3)))
        s = sp_fail(err, SP_ENOMEM, "resize: no memory for %d x %d", ow, h);
    if (s == SP_OK) {
        const uint8_t *v_in = src;
        if (w != ow) {
            pass_h(src, w, h, h != oh ? mid : dst, ow, &ch);
            v_in = mid;
        }
        if (h != oh) pass_v(v_in, ow, dst, oh, &cv);
    }
    free(mid);
    coefs_free(&ch);
    coefs_free(&cv);
    return s;
}
