#include "cli/media.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"

static int take_flag(const char *cmd, const char *flag, int *argc, char **argv, const char **dst,
                     int *n) {
    for (int i = 1; i < *argc;) {
        if (strcmp(argv[i], flag) != 0) {
            i++;
            continue;
        }
        if (i + 1 >= *argc) {
            fprintf(stderr, "spindle %s: option %s needs a value\n", cmd, flag);
            return 0;
        }
        if (*n == CLI_MAX_IMAGES) {
            fprintf(stderr, "spindle %s: at most %d %s\n", cmd, CLI_MAX_IMAGES, flag);
            return 0;
        }
        dst[(*n)++] = argv[i + 1];
        memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2) * sizeof *argv);
        *argc -= 2;
    }
    return 1;
}

int cli_images_take(const char *cmd, int *argc, char **argv, cli_images *im) {
    memset(im, 0, sizeof *im);
    return take_flag(cmd, "--image", argc, argv, im->files, &im->n_files) &&
           take_flag(cmd, "--pixels-in", argc, argv, im->pixels_in, &im->n_pixels) &&
           take_flag(cmd, "--positions-in", argc, argv, im->pos_in, &im->n_pos);
}

int cli_images_count(const cli_images *im) {
    return im->n_files + im->n_pixels;
}

sp_status cli_read_words(const char *path, void **out, size_t *n, sp_error *err) {
    sp_file f;
    SP_TRY(sp_file_read(&f, path, err));
    if (f.size % 4) {
        sp_file_close(&f);
        return sp_fail(err, SP_EFORMAT, "%s: %zu bytes is not a whole number of 4-byte values",
                       path, f.size);
    }
    *n = f.size / 4;
    *out = malloc(f.size ? f.size : 1);
    if (*out) memcpy(*out, f.data, f.size);
    sp_file_close(&f);
    return *out ? SP_OK : sp_fail(err, SP_ENOMEM, "%s", path);
}

int cli_write_f32(const char *path, const float *x, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = fwrite(x, sizeof(float), n, f);
    return fclose(f) == 0 && w == n;
}

static sp_status from_file(const sp_vision_info *vi, const char *path, sp_pixels *px,
                           sp_error *err) {
    sp_file f;
    SP_TRY(sp_file_read(&f, path, err));
    sp_image img;
    sp_status s = sp_image_decode(f.data, f.size, 0, &img, err);
    sp_file_close(&f);
    if (s == SP_OK) {
        s = sp_image_preprocess(&vi->proc, &img, px, err);
        sp_image_free(&img);
    }
    return s == SP_OK ? s : sp_wrap(err, "%s", path);
}

static sp_status from_pixels(const sp_vision_info *vi, const cli_images *im, int k, sp_pixels *px,
                             sp_error *err) {
    void *data = NULL, *pos = NULL;
    size_t n = 0, n_pos = 0;
    sp_status s = cli_read_words(im->pixels_in[k], &data, &n, err);
    if (s == SP_OK && k < im->n_pos) s = cli_read_words(im->pos_in[k], &pos, &n_pos, err);
    if (s == SP_OK) s = sp_pixels_import(&vi->proc, data, n, pos, n_pos, px, err);
    free(data);
    free(pos);
    return s == SP_OK ? s : sp_wrap(err, "%s", im->pixels_in[k]);
}

sp_status cli_media_load(cli_media *cm, const char *model_dir, const sp_model_opts *o,
                         sp_pool *pool, const cli_images *im, sp_error *err) {
    memset(cm, 0, sizeof *cm);
    if (im->n_pos > im->n_pixels)
        return sp_fail(err, SP_EINVAL, "%d --positions-in for %d --pixels-in", im->n_pos,
                       im->n_pixels);
    SP_TRY(sp_vision_load(&cm->vision, model_dir, o, pool, err));
    const sp_vision_info *vi = sp_vision_get_info(cm->vision);
    for (int k = 0; k < im->n_files; k++, cm->n++)
        SP_TRY(from_file(vi, im->files[k], &cm->px[cm->n], err));
    for (int k = 0; k < im->n_pixels; k++, cm->n++)
        SP_TRY(from_pixels(vi, im, k, &cm->px[cm->n], err));
    return SP_OK;
}

static sp_status encode_all(cli_media *cm, sp_error *err) {
    const sp_vision_info *vi = sp_vision_get_info(cm->vision);
    size_t rows = 0;
    const sp_pixels *list[CLI_MAX_IMAGES];
    for (int k = 0; k < cm->n; k++) {
        rows += (size_t)cm->px[k].n_soft;
        list[k] = &cm->px[k];
    }
    cm->features = malloc((rows ? rows : 1) * (size_t)vi->text_hidden * sizeof(float));
    if (!cm->features) return sp_fail(err, SP_ENOMEM, "image features");
    return sp_vision_encode(cm->vision, list, cm->n, cm->features, err);
}

sp_status cli_media_spans(cli_media *cm, const int32_t *ids, size_t n, sp_error *err) {
    const sp_vision_info *vi = sp_vision_get_info(cm->vision);
    int runs = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == vi->image_id && (i == 0 || ids[i - 1] != vi->image_id)) runs++;
    if (runs != cm->n)
        return sp_fail(err, SP_EINVAL,
                       "the tokens hold %d run(s) of image soft tokens (id %d) but %d image(s) "
                       "were given",
                       runs, vi->image_id, cm->n);
    SP_TRY(encode_all(cm, err));
    const float *f = cm->features;
    int k = 0;
    for (size_t i = 0; i < n; k++) {
        while (i < n && ids[i] != vi->image_id) i++;
        if (i >= n) break;
        size_t j = i;
        while (j < n && ids[j] == vi->image_id) j++;
        if ((int)(j - i) != cm->px[k].n_soft)
            return sp_fail(err, SP_EINVAL,
                           "image %d makes %d soft tokens but the run of image tokens at "
                           "position %zu has %zu",
                           k + 1, cm->px[k].n_soft, i, j - i);
        cm->spans[k] = (sp_media_span){.pos = (int)i, .n = (int)(j - i), .embd = f};
        f += (size_t)cm->px[k].n_soft * vi->text_hidden;
        i = j;
    }
    return SP_OK;
}

void cli_media_free(cli_media *cm) {
    for (int k = 0; k < cm->n; k++) sp_pixels_free(&cm->px[k]);
    free(cm->features);
    sp_vision_free(cm->vision);
    memset(cm, 0, sizeof *cm);
}
