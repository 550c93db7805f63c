/* Fuzz target: a sharded safetensors model directory -> sp_st_open(dir).
 * Input: index JSON [FUZZ_SEP shard 1 [FUZZ_SEP shard 2 ...]] (at most
 * four shards, written as s1.safetensors .. s4.safetensors next to
 * model.safetensors.index.json). An empty index part writes no index, so the
 * directory path without one (every *.safetensors, sorted) is fuzzed too.
 * Beyond "no crash": every tensor lies inside its own shard, names are
 * unique across shards, and each weight_map entry is found in the shard the
 * index names. */
#include "fuzz_common.h"

#include <errno.h>
#include <jansson.h>
#include <sys/stat.h>

#include "formats/safetensors.h"

#define FUZZ_SHARD_MAX 4
static const char *const fuzz_shard_names[FUZZ_SHARD_MAX] = {"s1.safetensors", "s2.safetensors",
                                                             "s3.safetensors", "s4.safetensors"};
static const char fuzz_shard_index[] = "model.safetensors.index.json";
static char fuzz_shard_dir_[512];

static void fuzz_shard_clear(void) {
    char p[600];
    for (int i = 0; i < FUZZ_SHARD_MAX; i++) {
        snprintf(p, sizeof p, "%s/%s", fuzz_shard_dir_, fuzz_shard_names[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/%s", fuzz_shard_dir_, fuzz_shard_index);
    unlink(p);
}

/* Runs before fuzz_dir's own cleanup (atexit is LIFO), which removes the
 * then empty parent. */
static void fuzz_shard_cleanup(void) {
    fuzz_shard_clear();
    rmdir(fuzz_shard_dir_);
}

/* DIR/sharded, created once per process. */
static const char *fuzz_shard_dir(void) {
    if (fuzz_shard_dir_[0]) return fuzz_shard_dir_;
    snprintf(fuzz_shard_dir_, sizeof fuzz_shard_dir_, "%s/sharded", fuzz_dir());
    if (mkdir(fuzz_shard_dir_, 0700) && errno != EEXIST) {
        perror(fuzz_shard_dir_);
        abort();
    }
    atexit(fuzz_shard_cleanup);
    return fuzz_shard_dir_;
}

static void fuzz_shard_put(const char *name, const uint8_t *data, size_t size) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", fuzz_shard_dir(), name);
    FILE *f = fopen(p, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) {
        perror(p);
        abort();
    }
}

/* Which written shard a path is (by its file name), or -1. */
static int fuzz_shard_of(const char *path) {
    const char *slash = path ? strrchr(path, '/') : NULL;
    const char *base = slash ? slash + 1 : path;
    for (int i = 0; base && i < FUZZ_SHARD_MAX; i++)
        if (!strcmp(base, fuzz_shard_names[i])) return i;
    return -1;
}

static void fuzz_shard_check(const sp_safetensors *st, const size_t *sizes, int n_shards,
                             const uint8_t *index, size_t index_len) {
    int nf = sp_st_file_count(st);
    FUZZ_ASSERT(nf >= 1 && nf <= n_shards, "%d files from %d shards", nf, n_shards);
    size_t dl = strlen(fuzz_shard_dir_);
    for (int f = 0; f < nf; f++) { /* never a file outside the directory */
        const char *p = sp_st_file_path(st, f);
        FUZZ_ASSERT(p && !strncmp(p, fuzz_shard_dir_, dl) && p[dl] == '/' && !strstr(p, "/../"),
                    "opened %s, outside %s", p ? p : "?", fuzz_shard_dir_);
    }
    for (int i = 0; i < sp_st_count(st); i++) {
        const sp_st_tensor *t = sp_st_at(st, i);
        FUZZ_ASSERT(t->name != NULL, "tensor without a name");
        int k = fuzz_shard_of(sp_st_file_path(st, t->file_index));
        FUZZ_ASSERT(k >= 0 && k < n_shards, "tensor %s in file %s", t->name,
                    sp_st_file_path(st, t->file_index));
        if (k < 0 || k >= n_shards) continue;
        FUZZ_ASSERT(t->offset <= sizes[k] && t->nbytes <= sizes[k] - t->offset,
                    "tensor %s spans [%llu, +%zu) in a %zu-byte shard", t->name,
                    (unsigned long long)t->offset, t->nbytes, sizes[k]);
        FUZZ_ASSERT(sp_st_find(st, t->name) == t, "find(%s) is another entry", t->name);
        if (t->nbytes && t->data) {
            volatile uint8_t sink = ((const uint8_t *)t->data)[0];
            sink ^= ((const uint8_t *)t->data)[t->nbytes - 1];
            (void)sink;
        }
        const sp_st_tensor *got = NULL;
        sp_error err = {0};
        sp_status s = sp_st_get(st, t->name, &got, &err);
        FUZZ_ASSERT((s == SP_OK) == (t->dtype != SP_DTYPE_COUNT), "get(%s): %s", t->name, err.msg);
    }
    if (!index_len) return;
    /* opened through the index: it named every tensor's shard correctly */
    json_t *root = json_loadb((const char *)index, index_len, 0, NULL);
    json_t *wm = json_object_get(root, "weight_map");
    FUZZ_ASSERT(json_is_object(wm), "opened although the index has no weight_map object");
    const char *name;
    json_t *v;
    json_object_foreach(wm, name, v) {
        const sp_st_tensor *t = sp_st_find(st, name);
        FUZZ_ASSERT(t != NULL, "weight_map names %s, which did not open", name);
        const char *shard = json_string_value(v);
        const char *file = t ? sp_st_file_path(st, t->file_index) : NULL;
        FUZZ_ASSERT(shard && file && fuzz_shard_of(file) >= 0 &&
                        !strcmp(fuzz_shard_names[fuzz_shard_of(file)], shard),
                    "weight_map puts %s in %s, it opened from %s", name, shard ? shard : "?",
                    file ? file : "?");
    }
    json_decref(root);
}

int fuzz_safetensors_sharded(const uint8_t *data, size_t size) {
    const char *dir = fuzz_shard_dir();
    fuzz_shard_clear();
    size_t index_len, rest_len;
    const uint8_t *rest;
    fuzz_split(data, size, &index_len, &rest, &rest_len);
    if (index_len) fuzz_shard_put(fuzz_shard_index, data, index_len);
    size_t sizes[FUZZ_SHARD_MAX] = {0};
    int n_shards = 0;
    while (rest && n_shards < FUZZ_SHARD_MAX) {
        size_t len;
        const uint8_t *next;
        size_t next_len;
        fuzz_split(rest, rest_len, &len, &next, &next_len);
        if (n_shards == FUZZ_SHARD_MAX - 1) len = rest_len; /* the last takes the rest */
        fuzz_shard_put(fuzz_shard_names[n_shards], rest, len);
        sizes[n_shards++] = len;
        rest = next, rest_len = next_len;
    }
    sp_safetensors *st = NULL;
    sp_error err = {0};
    if (sp_st_open(&st, dir, &err) != SP_OK) {
        FUZZ_ASSERT(st == NULL && err.msg[0], "failed open must set an error and no handle");
        return 0;
    }
    fuzz_shard_check(st, sizes, n_shards, data, index_len);
    sp_st_close(st);
    return 0;
}

#ifndef FUZZ_REGRESSION
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_safetensors_sharded(data, size);
}
#endif
