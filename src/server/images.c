/* Images in chat requests, on the HTTP thread (DESIGN.md section 7): each
 * image part is fetched, decoded and preprocessed into an immutable pixel
 * tensor; the chat template writes one placeholder per image; the rendered
 * text gets each placeholder expanded to the image's token run exactly as
 * the Hugging Face processor does, then is tokenized; the runs of soft
 * tokens locate the images for the engine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media/prompt.h"
#include "server/server_impl.h"

void req_images_free(req_images *im) {
    for (int i = 0; i < im->n; i++) sp_pixels_free(&im->px[i]);
    free(im->px);
    free(im->items);
    memset(im, 0, sizeof *im);
}

int is_image_part(const json_t *part) {
    const char *t = json_string_value(json_object_get(part, "type"));
    return t && (!strcmp(t, "image_url") || !strcmp(t, "image"));
}

/* The URL of an OpenAI image_url part ({"url": ..., "detail": ...} or a
 * bare string), or an Anthropic-style image part's source (base64 or url). */
static const char *part_url(const json_t *part, char **owned, char *where, size_t wcap,
                            const char *path, api_error *err) {
    const json_t *iu = json_object_get(part, "image_url");
    if (iu) {
        const json_t *u = json_is_object(iu) ? json_object_get(iu, "url") : iu;
        snprintf(where, wcap, "%s.image_url%s", path, json_is_object(iu) ? ".url" : "");
        if (json_is_string(u)) return json_string_value(u);
        api_fail(err, 400, where, "%s must be a string (a data:, http(s):// or file:// URL)",
                 where);
        return NULL;
    }
    const json_t *src = json_object_get(part, "source");
    const char *st = json_string_value(json_object_get(src, "type"));
    snprintf(where, wcap, "%s.source", path);
    if (st && !strcmp(st, "url") && json_is_string(json_object_get(src, "url")))
        return json_string_value(json_object_get(src, "url"));
    const char *data = json_string_value(json_object_get(src, "data"));
    if (st && !strcmp(st, "base64") && data) { /* as a data: URL */
        size_t n = strlen(data) + 32;
        *owned = malloc(n);
        if (*owned) snprintf(*owned, n, "data:image;base64,%s", data);
        return *owned;
    }
    api_fail(err, 400, where,
             "%s must be {\"type\": \"image_url\", \"image_url\": {\"url\": ...}} (or an image "
             "part with a base64 or url source)",
             path);
    return NULL;
}

static int grow(req_images *im) {
    if (im->n < im->cap) return 0;
    int cap = im->cap ? im->cap * 2 : 4;
    sp_pixels *px = realloc(im->px, (size_t)cap * sizeof *px);
    if (!px) return -1;
    im->px = px;
    im->cap = cap;
    return 0;
}

int image_part_load(const json_t *part, const char *path, const sp_engine_info *info,
                    const sp_media_opts *mo, req_images *im, api_error *err) {
    if (!info->vision) {
        api_fail(err, 400, path, "%s: %s", path,
                 info->vision_missing ? info->vision_missing : "the model takes no image input");
        return -1;
    }
    if (im->n >= mo->max_images) {
        api_fail(err, 400, path, "%s: more than %d images in one request", path, mo->max_images);
        return -1;
    }
    char where[200];
    char *owned = NULL;
    const char *url = part_url(part, &owned, where, sizeof where, path, err);
    uint8_t *data = NULL;
    size_t n = 0;
    if (!url || image_fetch(url, mo, &data, &n, where, err)) {
        free(owned);
        return -1;
    }
    free(owned);
    sp_image img;
    sp_error e = {0};
    int rc = -1;
    if (sp_image_decode(data, n, mo->max_pixels, &img, &e) != SP_OK) {
        api_fail(err, 400, path, "%s: %s", path, e.msg);
    } else if (grow(im) != 0) {
        api_fail(err, 500, path, "%s: out of memory", path);
    } else if (sp_image_preprocess(&info->vision->proc, &img, &im->px[im->n], &e) != SP_OK) {
        api_fail(err, 400, path, "%s: %s", path, e.msg);
    } else {
        im->n++;
        rc = 0;
    }
    if (img.rgb) sp_image_free(&img);
    free(data);
    return rc;
}

/* Replaces the template's placeholders with the images' token runs. */
static int expand(const char *text, const sp_engine_info *info, const req_images *im, char **out,
                  api_error *err) {
    const sp_vision_info *vi = info->vision;
    const char *boi = sp_tokenizer_piece(info->tokenizer, vi->boi_id);
    const char *eoi = sp_tokenizer_piece(info->tokenizer, vi->eoi_id);
    const char *soft = sp_tokenizer_piece(info->tokenizer, vi->image_id);
    if (!boi || !eoi || !soft) {
        api_fail(err, 400, "messages", "the tokenizer has no image tokens (ids %d, %d, %d)",
                 vi->boi_id, vi->image_id, vi->eoi_id);
        return -1;
    }
    char **exp = calloc((size_t)im->n, sizeof *exp);
    int rc = exp ? 0 : -1;
    for (int k = 0; rc == 0 && k < im->n; k++)
        if (!(exp[k] = sp_image_expansion(vi->proc.kind, boi, soft, eoi, im->px[k].n_soft)))
            rc = -1;
    sp_error e = {0};
    if (rc == 0 && sp_image_expand_text(text, sp_image_placeholder(vi->proc.kind, boi, soft),
                                        (const char *const *)exp, im->n, out, &e) != SP_OK) {
        api_fail(err, 400, "messages",
                 "%s: the chat template must write one placeholder per "
                 "image part",
                 e.msg);
        rc = -1;
    } else if (rc != 0) {
        api_fail(err, 500, "messages", "out of memory expanding the images");
    }
    for (int k = 0; exp && k < im->n; k++) free(exp[k]);
    free(exp);
    return rc;
}

int images_locate(const int32_t *ids, size_t n, const sp_engine_info *info, req_images *im,
                  api_error *err) {
    int32_t soft = info->vision->image_id;
    im->items = calloc((size_t)im->n, sizeof *im->items);
    if (!im->items) {
        api_fail(err, 500, "messages", "out of memory");
        return -1;
    }
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] != soft || (i > 0 && ids[i - 1] == soft)) continue;
        size_t j = i;
        while (j < n && ids[j] == soft) j++;
        if (k >= im->n || (int)(j - i) != im->px[k].n_soft) {
            api_fail(err, 400, "messages",
                     "the prompt's image tokens do not match its %d image(s): a run of %zu at "
                     "token %zu (does the text contain image tokens?)",
                     im->n, j - i, i);
            return -1;
        }
        im->items[k] = (sp_request_image){.pixels = &im->px[k], .pos = (int)i};
        k++;
    }
    if (k != im->n) {
        api_fail(err, 400, "messages", "the prompt holds %d runs of image tokens for %d images", k,
                 im->n);
        return -1;
    }
    return 0;
}

int images_tokenize(const char *text, const sp_engine_info *info, req_images *im, int32_t **ids,
                    size_t *n, api_error *err) {
    char *full = NULL;
    if (expand(text, info, im, &full, err)) return -1;
    sp_error e = {0};
    sp_status st = sp_tokenizer_encode(info->tokenizer, full, strlen(full), 1, 1, ids, n, &e);
    free(full);
    if (st != SP_OK) {
        api_fail(err, 400, "messages", "cannot tokenize the rendered chat: %s", e.msg);
        return -1;
    }
    return 0;
}
