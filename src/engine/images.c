#include "engine/images.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

int seq_images_init(seq_images *im, sp_pixels *px, const int *pos, int n) {
    memset(im, 0, sizeof *im);
    if (n <= 0) return 0;
    im->v = calloc((size_t)n, sizeof *im->v);
    im->spans = calloc((size_t)n, sizeof *im->spans);
    if (!im->v || !im->spans) {
        seq_images_free(im);
        return -1;
    }
    for (int i = 0; i < n; i++)
        im->v[i] = (seq_image){.px = &px[i], .pos = pos[i], .n = px[i].n_soft};
    im->n = n;
    return 0;
}

static void rebuild_spans(seq_images *im) {
    im->n_spans = 0;
    for (int i = 0; i < im->n; i++)
        if (im->v[i].feats)
            im->spans[im->n_spans++] =
                (sp_media_span){.pos = im->v[i].pos, .n = im->v[i].n, .embd = im->v[i].feats};
}

static void drop_pixels(seq_image *g) {
    free(g->px->data);
    g->px->data = NULL; /* the hash and shape stay: cache keys still need the hash */
}

void seq_images_free(seq_images *im) {
    for (int i = 0; i < im->n; i++) free(im->v[i].feats);
    free(im->v);
    free(im->spans);
    memset(im, 0, sizeof *im);
}

void seq_images_retire(seq_images *im, int computed) {
    int changed = 0;
    for (int i = 0; i < im->n; i++) {
        seq_image *g = &im->v[i];
        if (g->done || g->pos + g->n > computed) continue;
        drop_pixels(g);
        free(g->feats);
        g->feats = NULL;
        g->done = 1;
        changed = 1;
    }
    if (changed) rebuild_spans(im);
}

uint64_t seq_images_block_salt(const seq_images *im, int block, int bs) {
    uint64_t salt = 0;
    int lo = block * bs, hi = lo + bs;
    for (int i = 0; i < im->n; i++) {
        const seq_image *g = &im->v[i];
        if (g->pos >= hi || g->pos + g->n <= lo) continue;
        uint64_t id[2] = {g->px->hash, (uint64_t)g->pos};
        salt = XXH3_64bits_withSeed(id, sizeof id, salt);
    }
    return salt;
}

int seq_images_align(const seq_images *im, int from, int to) {
    for (int i = 0; i < im->n; i++) {
        const seq_image *g = &im->v[i];
        if (g->pos < to && g->pos + g->n > to) return g->pos > from ? g->pos : g->pos + g->n;
    }
    return to;
}

static int overlaps(const seq_image *g, int from, int to) {
    return g->pos < to && g->pos + g->n > from;
}

int seq_images_pending(const seq_images *im, int from, int to) {
    int n = 0;
    for (int i = 0; i < im->n; i++)
        n += !im->v[i].done && !im->v[i].feats && overlaps(&im->v[i], from, to);
    return n;
}

sp_status seq_images_encode(sp_vision *v, seq_images *const *list, const int *from, const int *to,
                            int n, sp_error *err) {
    int hidden = sp_vision_get_info(v)->text_hidden, count = 0;
    size_t rows = 0;
    for (int s = 0; s < n; s++) count += seq_images_pending(list[s], from[s], to[s]);
    if (!count) return SP_OK;
    const sp_pixels **px = malloc((size_t)count * sizeof *px);
    seq_image **dst = malloc((size_t)count * sizeof *dst);
    sp_status st = px && dst ? SP_OK : sp_fail(err, SP_ENOMEM, "image batch");
    count = 0;
    for (int s = 0; st == SP_OK && s < n; s++)
        for (int i = 0; i < list[s]->n; i++) {
            seq_image *g = &list[s]->v[i];
            if (g->done || g->feats || !overlaps(g, from[s], to[s])) continue;
            px[count] = g->px;
            dst[count++] = g;
            rows += (size_t)g->n;
        }
    float *out = st == SP_OK ? malloc(rows * (size_t)hidden * sizeof(float)) : NULL;
    if (st == SP_OK && !out) st = sp_fail(err, SP_ENOMEM, "features of %d images", count);
    if (st == SP_OK) st = sp_vision_encode(v, px, count, out, err);
    const float *f = out;
    for (int k = 0; st == SP_OK && k < count; k++) {
        size_t sz = (size_t)dst[k]->n * hidden * sizeof(float);
        if (!(dst[k]->feats = malloc(sz))) {
            st = sp_fail(err, SP_ENOMEM, "image features");
            break;
        }
        memcpy(dst[k]->feats, f, sz);
        f += (size_t)dst[k]->n * hidden;
        drop_pixels(dst[k]);
    }
    for (int s = 0; s < n; s++) rebuild_spans(list[s]);
    free(out);
    free(px);
    free(dst);
    return st;
}
