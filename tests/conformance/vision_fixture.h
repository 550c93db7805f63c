/* The image-input references (tests/fixtures/vision/README.md): the
 * gemma3_vision checkpoint in ../shared/fixtures/vision, gemma4_vision
 * unpacked by CMake into the build tree, the test images, and helpers to read
 * their reference.json and binary arrays. */
#ifndef SP_TEST_VISION_FIXTURE_H
#define SP_TEST_VISION_FIXTURE_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const vision_models[] = {"gemma3_vision", "gemma4_vision"};
static const char *const vision_images[] = {"scene.png", "photo.jpg", "alpha.png"};

static inline void vision_dir(char *out, size_t cap, const char *model) {
    if (!strcmp(model, "gemma4_vision"))
        snprintf(out, cap, "%s/fixtures/vision/%s", SP_BUILD_DIR, model);
    else
        snprintf(out, cap, "%s/fixtures/vision/%s", SP_SHARED_DIR, model);
}

static inline void vision_image_path(char *out, size_t cap, const char *image) {
    snprintf(out, cap, "%s/fixtures/vision/images/%s", SP_SHARED_DIR, image);
}

static inline json_t *vision_reference(const char *dir) {
    char path[1200];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) fprintf(stderr, "%s: %s\n", path, je.text);
    return root;
}

/* Reads `count` 4-byte values of dir/file (NULL on any mismatch). */
static inline void *vision_read(const char *dir, const char *file, size_t count) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    void *x = malloc(count * 4 + 4);
    size_t got = f && x ? fread(x, 4, count + 1, f) : 0;
    if (f) fclose(f);
    if (got != count) {
        fprintf(stderr, "%s: expected %zu values, read %zu\n", path, count, got);
        free(x);
        return NULL;
    }
    return x;
}

/* Element count of an entry {"file", "shape"} of reference.json. */
static inline size_t vision_numel(const json_t *entry) {
    size_t n = 1;
    const json_t *shape = json_object_get(entry, "shape");
    for (size_t i = 0; i < json_array_size(shape); i++)
        n *= (size_t)json_integer_value(json_array_get(shape, i));
    return n;
}

/* The array that reference.json names under images[image][key]. */
static inline void *vision_array(const char *dir, const json_t *ref, const char *image,
                                 const char *key, size_t *n) {
    const json_t *e = json_object_get(json_object_get(json_object_get(ref, "images"), image), key);
    if (!e) {
        fprintf(stderr, "%s: reference.json has no images[%s][%s]\n", dir, image, key);
        return NULL;
    }
    *n = vision_numel(e);
    return vision_read(dir, json_string_value(json_object_get(e, "file")), *n);
}

/* "scene" for "scene.png". */
static inline void vision_stem(char *out, size_t cap, const char *image) {
    snprintf(out, cap, "%s", image);
    char *dot = strrchr(out, '.');
    if (dot) *dot = 0;
}

#endif
