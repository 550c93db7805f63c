#include "model/rope.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void sp_rope_params_default(sp_rope_params *p) {
    memset(p, 0, sizeof *p);
    p->kind = SP_ROPE_DEFAULT;
    p->theta = 10000.0;
    p->partial_rotary_factor = 1.0;
    p->truncate = 1;
}

/* omega0_i = theta^(-2i/dim) computed in f32 as HF does (arange in int64,
 * then float division, then pow in f32). */
static float base_freq(double theta, int i, int dim) {
    float expo = (float)(2 * i) / (float)dim;
    return 1.0f / powf((float)theta, expo);
}

static void fill_default(float *w, int n, double theta, int dim) {
    for (int i = 0; i < n; i++) w[i] = base_freq(theta, i, dim);
}

static void fill_llama3(float *w, int n, const sp_rope_params *p, int dim) {
    double factor = p->factor > 0 ? p->factor : 8.0;
    double lo = p->low_freq_factor > 0 ? p->low_freq_factor : 1.0;
    double hi = p->high_freq_factor > 0 ? p->high_freq_factor : 4.0;
    double old = p->orig_max > 0 ? p->orig_max : 8192;
    double low_wavelen = old / lo, high_wavelen = old / hi;
    for (int i = 0; i < n; i++) {
        float w0 = base_freq(p->theta, i, dim);
        double wavelen = 2.0 * M_PI / w0;
        if (wavelen > low_wavelen)
            w[i] = (float)(w0 / factor);
        else if (wavelen < high_wavelen)
            w[i] = w0;
        else {
            double s = (old / wavelen - lo) / (hi - lo);
            w[i] = (float)((1.0 - s) * w0 / factor + s * w0);
        }
    }
}

static double yarn_mscale(double s, double m) {
    return s <= 1.0 ? 1.0 : 0.1 * m * log(s) + 1.0;
}

static double yarn_corr_dim(double n_rot, double beta, double old, double theta) {
    return n_rot * log(old / (beta * 2.0 * M_PI)) / (2.0 * log(theta));
}

static void fill_yarn(float *w, int n, const sp_rope_params *p, int dim, float *attn) {
    double old = p->orig_max > 0 ? p->orig_max : p->max_pos;
    double factor = p->factor > 0 ? p->factor : p->max_pos / old;
    double bf = p->beta_fast > 0 ? p->beta_fast : 32.0;
    double bs = p->beta_slow > 0 ? p->beta_slow : 1.0;
    double lo = yarn_corr_dim(dim, bf, old, p->theta);
    double hi = yarn_corr_dim(dim, bs, old, p->theta);
    if (p->truncate) lo = floor(lo), hi = ceil(hi);
    if (lo < 0) lo = 0;
    if (hi > dim - 1) hi = dim - 1;
    if (lo == hi) hi += 0.001;
    for (int i = 0; i < n; i++) {
        float w0 = base_freq(p->theta, i, dim);
        float ramp = (float)((i - lo) / (hi - lo));
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        float keep = 1.0f - ramp;
        float interp = (float)(w0 / factor);
        w[i] = interp * (1.0f - keep) + w0 * keep;
    }
    if (p->attention_factor > 0)
        *attn = (float)p->attention_factor;
    else if (p->mscale != 0 && p->mscale_all_dim != 0)
        *attn = (float)(yarn_mscale(factor, p->mscale) / yarn_mscale(factor, p->mscale_all_dim));
    else
        *attn = (float)yarn_mscale(factor, 1.0);
}

static sp_status fill_longrope(sp_rope_table *r, const sp_rope_params *p, int dim, sp_error *err) {
    int n = r->n_pairs;
    if (p->n_short != n || p->n_long != n)
        return sp_fail(err, SP_EFORMAT,
                       "rope_parameters: longrope short_factor/long_factor need %d values "
                       "(rotary dim %d / 2), got %d and %d",
                       n, dim, p->n_short, p->n_long);
    r->inv_freq_long = calloc((size_t)n, sizeof(float));
    if (!r->inv_freq_long) return sp_fail(err, SP_ENOMEM, "rope table");
    for (int i = 0; i < n; i++) {
        float w0 = base_freq(p->theta, i, dim);
        r->inv_freq[i] = (float)(w0 / p->short_factor[i]);
        r->inv_freq_long[i] = (float)(w0 / p->long_factor[i]);
    }
    int old = p->orig_max > 0 ? p->orig_max : p->max_pos;
    r->orig_max = old;
    double f = p->factor > 0 ? p->factor : (double)p->max_pos / old;
    if (p->attention_factor > 0)
        r->attn_factor = (float)p->attention_factor;
    else
        r->attn_factor = f <= 1.0 ? 1.0f : (float)sqrt(1.0 + log(f) / log((double)old));
    return SP_OK;
}

static void fill_proportional(float *w, int n, const sp_rope_params *p, int head_dim) {
    /* only the first k frequencies rotate; exponents use the full head dim */
    int k = (int)(p->partial_rotary_factor * head_dim / 2);
    double factor = p->factor > 0 ? p->factor : 1.0;
    for (int i = 0; i < n; i++)
        w[i] = i < k ? (float)(base_freq(p->theta, i, head_dim) / factor) : 0;
}

static sp_status rope_fill(sp_rope_table *r, const sp_rope_params *p, int head_dim, sp_error *err) {
    memset(r, 0, sizeof *r);
    r->kind = p->kind;
    r->head_dim = head_dim;
    r->theta = (float)p->theta;
    r->interleaved = p->interleaved;
    r->attn_factor = 1.0f;
    /* checked before any product with it becomes an int */
    if (!(p->partial_rotary_factor > 0 && p->partial_rotary_factor <= 1))
        return sp_fail(err, SP_EFORMAT, "rope: partial_rotary_factor %g is outside (0, 1]",
                       p->partial_rotary_factor);
    if (p->kind == SP_ROPE_PROPORTIONAL)
        r->rot_dim = head_dim;
    else
        r->rot_dim = (int)(head_dim * p->partial_rotary_factor) & ~1;
    if (r->rot_dim <= 0 || r->rot_dim > head_dim)
        return sp_fail(err, SP_EFORMAT, "rope: partial_rotary_factor %g gives rotary dim %d of %d",
                       p->partial_rotary_factor, r->rot_dim, head_dim);
    if (!(p->theta > 0)) return sp_fail(err, SP_EFORMAT, "rope: rope_theta must be > 0");
    r->n_pairs = r->rot_dim / 2;
    r->inv_freq = calloc((size_t)r->n_pairs, sizeof(float));
    if (!r->inv_freq) return sp_fail(err, SP_ENOMEM, "rope table");
    float *w = r->inv_freq;
    int n = r->n_pairs, dim = r->rot_dim;
    switch (p->kind) {
    case SP_ROPE_DEFAULT:
        fill_default(w, n, p->theta, dim);
        break;
    case SP_ROPE_LINEAR:
        fill_default(w, n, p->theta, dim);
        for (int i = 0; i < n; i++) w[i] = (float)(w[i] / (p->factor > 0 ? p->factor : 1.0));
        break;
    case SP_ROPE_DYNAMIC:
        fill_default(w, n, p->theta, dim);
        r->orig_max = p->max_pos;
        r->dyn_factor = (float)(p->factor > 0 ? p->factor : 1.0);
        break;
    case SP_ROPE_LLAMA3:
        fill_llama3(w, n, p, dim);
        break;
    case SP_ROPE_YARN:
        fill_yarn(w, n, p, dim, &r->attn_factor);
        break;
    case SP_ROPE_LONGROPE:
        SP_TRY(fill_longrope(r, p, dim, err));
        break;
    case SP_ROPE_PROPORTIONAL:
        fill_proportional(w, n, p, head_dim);
        break;
    }
    for (int i = 0; i < n; i++)
        if (!isfinite(w[i]) || (r->inv_freq_long && !isfinite(r->inv_freq_long[i])))
            return sp_fail(err, SP_EFORMAT, "rope: inverse frequency %d is not finite", i);
    if (!isfinite(r->attn_factor))
        return sp_fail(err, SP_EFORMAT, "rope: attention factor is not finite");
    return SP_OK;
}

/* Builds the table; on failure nothing stays allocated. */
sp_status sp_rope_build(sp_rope_table *r, const sp_rope_params *p, int head_dim, sp_error *err) {
    sp_status s = rope_fill(r, p, head_dim, err);
    if (s != SP_OK) sp_rope_free(r);
    return s;
}

void sp_rope_free(sp_rope_table *r) {
    free(r->inv_freq);
    free(r->inv_freq_long);
    r->inv_freq = r->inv_freq_long = NULL;
}

void sp_rope_angles(const sp_rope_table *r, int pos, int total_len, float *c, float *s) {
    const float *w = r->inv_freq;
    if (r->inv_freq_long && (r->always_long || total_len > r->orig_max)) w = r->inv_freq_long;
    float theta_scale = 1.0f;
    int dynamic = r->kind == SP_ROPE_DYNAMIC && total_len > r->orig_max;
    if (dynamic) {
        /* theta' = theta * (f*S/M - (f-1))^(d/(d-2)); frequencies follow */
        double base = r->theta * pow(r->dyn_factor * total_len / r->orig_max - (r->dyn_factor - 1),
                                     (double)r->rot_dim / (r->rot_dim - 2));
        theta_scale = (float)base;
    }
    for (int i = 0; i < r->n_pairs; i++) {
        float f = dynamic ? base_freq(theta_scale, i, r->rot_dim) : w[i];
        float a = (float)pos * f;
        c[i] = cosf(a) * r->attn_factor;
        s[i] = sinf(a) * r->attn_factor;
    }
}
