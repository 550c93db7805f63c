/* safetensors: 8-byte little-endian header length N, N bytes of JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}),
 * then the data section; offsets are relative to its start (byte 8 + N). */
#include "formats/safetensors.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "formats/json.h"
#include "formats/name_index.h"

#define MAX_HEADER_BYTES (100u * 1000u * 1000u)

typedef struct st_dtype_info {
    const char *name;
    sp_dtype dtype; /* SP_DTYPE_COUNT: valid in safetensors, no sp_dtype */
    int bits;
} st_dtype_info;

static const st_dtype_info DTYPES[] = {
    {"F64", SP_F64, 64},
    {"F32", SP_F32, 32},
    {"F16", SP_F16, 16},
    {"BF16", SP_BF16, 16},
    {"I64", SP_I64, 64},
    {"I32", SP_I32, 32},
    {"I16", SP_I16, 16},
    {"I8", SP_I8, 8},
    {"U8", SP_U8, 8},
    {"BOOL", SP_BOOL, 8},
    {"U64", SP_DTYPE_COUNT, 64},
    {"U32", SP_DTYPE_COUNT, 32},
    {"U16", SP_DTYPE_COUNT, 16},
    {"F8_E4M3", SP_DTYPE_COUNT, 8},
    {"F8_E5M2", SP_DTYPE_COUNT, 8},
    {"F8_E8M0", SP_DTYPE_COUNT, 8},
    {"F6_E2M3", SP_DTYPE_COUNT, 6},
    {"F6_E3M2", SP_DTYPE_COUNT, 6},
    {"F4", SP_DTYPE_COUNT, 4},
    {"C64", SP_DTYPE_COUNT, 64},
};
#define N_DTYPES ((int)(sizeof DTYPES / sizeof DTYPES[0]))

/* The public struct first, so sp_st_tensor pointers convert back. */
typedef struct st_entry {
    sp_st_tensor t;
    const char *dtype_str; /* borrowed from the header JSON */
    uint64_t begin, end;   /* data_offsets, relative to the data section */
} st_entry;

struct sp_safetensors {
    int nfiles;
    sp_file *files;
    json_t **headers; /* owns tensor names and dtype strings */
    st_entry *entries;
    int count, cap;
    sp_name_index ix;
};

const char *sp_st_dtype_name(sp_dtype t) {
    for (int i = 0; i < N_DTYPES; i++)
        if (DTYPES[i].dtype == t && t != SP_DTYPE_COUNT) return DTYPES[i].name;
    return NULL;
}

static const st_dtype_info *dtype_lookup(const char *s) {
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(DTYPES[i].name, s) == 0) return &DTYPES[i];
    return NULL;
}

static uint64_t read_u64le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static st_entry *push_entry(sp_safetensors *st) {
    if (st->count == st->cap) {
        int cap = st->cap ? 2 * st->cap : 64;
        st_entry *e = realloc(st->entries, (size_t)cap * sizeof *e);
        if (!e) return NULL;
        st->entries = e;
        st->cap = cap;
    }
    st_entry *e = &st->entries[st->count++];
    memset(e, 0, sizeof *e);
    return e;
}

/* A JSON integer >= 0, else -1. */
static int64_t json_nonneg(const json_t *v) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    return (int64_t)json_integer_value(v);
}

/* Fills e's dtype/shape from one header entry; checks the span size. */
static sp_status parse_entry(st_entry *e, const char *path, const char *name, const json_t *v,
                             uint64_t data_len, uint64_t data_start, sp_error *err) {
    if (!json_is_object(v))
        return sp_fail(err, SP_EFORMAT, "%s: tensor %s: header entry is %s, not an object", path,
                       name, sp_json_type_name(v));
    const json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    const json_t *offs = json_object_get(v, "data_offsets");
    if (!dt || !shape || !offs)
        return sp_fail(err, SP_EFORMAT, "%s: tensor %s: header entry has no \"%s\"", path, name,
                       !dt      ? "dtype"
                       : !shape ? "shape"
                                : "data_offsets");
    if (!json_is_string(dt))
        return sp_fail(err, SP_EFORMAT, "%s: tensor %s: dtype is %s, not a string", path, name,
                       sp_json_type_name(dt));
    const st_dtype_info *info = dtype_lookup(json_string_value(dt));
    if (!info)
        return sp_fail(err, SP_EFORMAT, "%s: tensor %s: unknown dtype \"%s\"", path, name,
                       json_string_value(dt));
    if (!json_is_array(shape))
        return sp_fail(err, SP_EFORMAT, "%s: tensor %s: shape is %s, not an array", path, name,
                       sp_json_type_name(shape));
    if (json_array_size(shape) > SP_ST_MAX_DIMS)
        return sp_fail(err, SP_EFORMAT, "%s: tensor %s: %zu dimensions, at most %d supported", path,
                       name, json_array_size(shape), SP_ST_MAX_DIMS);
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        json_nonneg(json_array_get(offs, 0)) < 0 || json_nonneg(json_array_get(offs, 1)) < 0)
        return sp_fail(err, SP_EFORMAT,
                       "%s: tensor %s: data_offsets must be an array of two non-negative integers",
                       path, name);
    e->t.name = name;
    e->t.dtype = info->dtype;
    e->dtype_str = info->name;
    e->t.ndim = (int)json_array_size(shape);
    uint64_t numel = 1, overflow = 0;
    for (int d = 0; d < e->t.ndim; d++) {
        int64_t n = json_nonneg(json_array_get(shape, (size_t)d));
        if (n < 0)
            return sp_fail(err, SP_EFORMAT,
                           "%s: tensor %s: shape[%d] is not a non-negative integer", path, name, d);
        e->t.shape[d] = n;
        if (n && numel > UINT64_MAX / 64 / (uint64_t)n) overflow = 1;
        numel *= (uint64_t)n;
    }
    e->begin = (uint64_t)json_nonneg(json_array_get(offs, 0));
    e->end = (uint64_t)json_nonneg(json_array_get(offs, 1));
    if (e->end < e->begin)
        return sp_fail(err, SP_EFORMAT,
                       "%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64
                       "] end before they begin",
                       path, name, e->begin, e->end);
    uint64_t bits = numel * (uint64_t)info->bits;
    if (overflow || bits % 8 || bits / 8 != e->end - e->begin)
        return sp_fail(err, SP_EFORMAT,
                       "%s: tensor %s: shape (%" PRIu64 " values) x %s needs %s%" PRIu64
                       " bytes but data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64 " bytes",
                       path, name, numel, info->name, overflow ? "more than " : "",
                       overflow ? UINT64_MAX / 8 : bits / 8, e->begin, e->end, e->end - e->begin);
    if (e->end > data_len)
        return sp_fail(err, SP_EFORMAT,
                       "%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64 "] (file bytes %" PRIu64
                       "..%" PRIu64 ") run past the end of the data section (%" PRIu64
                       " bytes from byte %" PRIu64 ")",
                       path, name, e->begin, e->end, data_start + e->begin, data_start + e->end,
                       data_len, data_start);
    e->t.nbytes = (size_t)(e->end - e->begin);
    e->t.offset = data_start + e->begin;
    return SP_OK;
}

static int cmp_span(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->t.name, y->t.name);
}

/* Sorts a file's entries by span and rejects overlaps (empty tensors never overlap). */
static sp_status check_overlaps(st_entry *e, int n, const char *path, sp_error *err) {
    qsort(e, (size_t)n, sizeof *e, cmp_span);
    const st_entry *prev = NULL;
    for (int i = 0; i < n; i++) {
        if (e[i].begin == e[i].end) continue;
        if (prev && e[i].begin < prev->end)
            return sp_fail(err, SP_EFORMAT,
                           "%s: tensors %s [%" PRIu64 ", %" PRIu64 ") and %s [%" PRIu64 ", %" PRIu64
                           ") overlap (file bytes %" PRIu64 "..%" PRIu64 ")",
                           path, prev->t.name, prev->begin, prev->end, e[i].t.name, e[i].begin,
                           e[i].end, e[i].t.offset, prev->t.offset + (prev->end - prev->begin));
        if (!prev || e[i].end > prev->end) prev = &e[i];
    }
    return SP_OK;
}

/* Reads the header of mapped file fi and appends its tensors. */
static sp_status parse_file(sp_safetensors *st, int fi, sp_error *err) {
    const sp_file *f = &st->files[fi];
    const char *path = f->path;
    if (f->size < 8)
        return sp_fail(err, SP_EFORMAT,
                       "%s: file is %zu bytes, too short for the 8-byte header length", path,
                       f->size);
    uint64_t hlen = read_u64le(f->data);
    if (hlen > MAX_HEADER_BYTES)
        return sp_fail(err, SP_EFORMAT,
                       "%s: header length %" PRIu64 " (bytes 0..7) is absurd (more than 100 MB)",
                       path, hlen);
    if (hlen > f->size - 8)
        return sp_fail(err, SP_EFORMAT,
                       "%s: header length %" PRIu64
                       " (bytes 0..7) runs past the end of the file (%zu bytes)",
                       path, hlen, f->size);
    json_error_t je;
    json_t *h = json_loadb((const char *)f->data + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!h)
        return sp_fail(err, SP_EFORMAT,
                       "%s: header is not valid JSON: %s at line %d column %d (header byte %d, "
                       "file byte %d)",
                       path, je.text, je.line, je.column, je.position, je.position + 8);
    st->headers[fi] = h;
    if (!json_is_object(h))
        return sp_fail(err, SP_EFORMAT, "%s: header is a JSON %s, not an object", path,
                       sp_json_type_name(h));
    uint64_t data_start = 8 + hlen, data_len = f->size - data_start;
    int first = st->count;
    const char *name;
    json_t *v;
    json_object_foreach(h, name, v) {
        if (strcmp(name, "__metadata__") == 0) {
            if (!json_is_object(v))
                return sp_fail(err, SP_EFORMAT, "%s: __metadata__ is %s, not an object", path,
                               sp_json_type_name(v));
            const char *mk; /* the format: a map of strings to strings */
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv))
                    return sp_fail(err, SP_EFORMAT, "%s: __metadata__.%s is %s, not a string", path,
                                   mk, sp_json_type_name(mv));
            }
            continue;
        }
        st_entry *e = push_entry(st);
        if (!e) return sp_fail(err, SP_ENOMEM, "%s: out of memory", path);
        SP_TRY(parse_entry(e, path, name, v, data_len, data_start, err));
        e->t.file_index = fi;
        e->t.data = f->data + e->t.offset;
    }
    return check_overlaps(st->entries + first, st->count - first, path, err);
}

/* Maps every file in paths (in order) and parses it. */
static sp_status open_files(sp_safetensors *st, char **paths, int n, sp_error *err) {
    st->files = calloc((size_t)n, sizeof *st->files);
    st->headers = calloc((size_t)n, sizeof *st->headers);
    if (!st->files || !st->headers) return sp_fail(err, SP_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        SP_TRY(sp_file_map(&st->files[i], paths[i], err));
        st->nfiles = i + 1;
        SP_TRY(parse_file(st, i, err));
    }
    return SP_OK;
}

static sp_status build_index(sp_safetensors *st, sp_error *err) {
    int dup;
    const void *names = st->count ? (const void *)&st->entries[0].t.name : NULL;
    if (!sp_name_index_build(&st->ix, names, sizeof(st_entry), st->count, &dup))
        return sp_fail(err, SP_ENOMEM, "out of memory");
    if (dup >= 0) {
        const st_entry *b = &st->entries[dup];
        const st_entry *a = &st->entries[sp_name_index_find(&st->ix, b->t.name)];
        return sp_fail(err, SP_EFORMAT, "tensor %s is in both %s and %s", b->t.name,
                       st->files[a->t.file_index].path, st->files[b->t.file_index].path);
    }
    return SP_OK;
}

static void free_paths(char **paths, int n) {
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Every *.safetensors in dir, sorted. */
static sp_status list_dir(const char *dir, char ***paths, int *n, sp_error *err) {
    DIR *d = opendir(dir);
    if (!d) return sp_fail(err, SP_EIO, "%s: cannot open directory", dir);
    int cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!ends_with(de->d_name, ".safetensors") || de->d_name[0] == '.') continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            char **p = realloc(*paths, (size_t)cap * sizeof *p);
            if (!p) break;
            *paths = p;
        }
        (*paths)[(*n)++] = sp_path_join(dir, de->d_name);
    }
    closedir(d);
    if (*n == 0)
        return sp_fail(err, SP_ENOTFOUND, "%s: no .safetensors files in the directory", dir);
    qsort(*paths, (size_t)*n, sizeof **paths, cmp_str);
    return SP_OK;
}

/* A shard name must stay inside the model directory: not absolute, no ".."
 * component (a downloaded index must not make the loader open other files). */
static int shard_name_ok(const char *s) {
    if (!*s || *s == '/') return 0;
    while (*s) {
        size_t n = strcspn(s, "/");
        if (n == 2 && s[0] == '.' && s[1] == '.') return 0;
        s += n;
        if (*s) s++;
    }
    return 1;
}

/* The shard files named by an index's weight_map, in order of first mention. */
static sp_status index_shards(const json_t *wm, const char *index_path, const char *dir,
                              char ***paths, int *n, sp_error *err) {
    size_t cap = json_object_size(wm) + 1;
    *paths = calloc(cap, sizeof **paths);
    const char **names = calloc(cap, sizeof *names);
    if (!*paths || !names) {
        free(names);
        return sp_fail(err, SP_ENOMEM, "out of memory");
    }
    const char *tensor;
    json_t *v;
    sp_status s = SP_OK;
    json_object_foreach((json_t *)wm, tensor, v) {
        if (!json_is_string(v)) {
            s = sp_fail(err, SP_EFORMAT, "%s: weight_map.%s is %s, not a string", index_path,
                        tensor, sp_json_type_name(v));
            break;
        }
        const char *shard = json_string_value(v);
        if (!shard_name_ok(shard)) {
            s = sp_fail(err, SP_EFORMAT,
                        "%s: weight_map.%s names shard '%s', which is not a file inside the "
                        "model directory",
                        index_path, tensor, shard);
            break;
        }
        int seen = 0;
        for (int i = 0; i < *n && !seen; i++) seen = strcmp(names[i], shard) == 0;
        if (seen) continue;
        char *p = sp_path_join(dir, shard);
        if (!sp_path_exists(p)) {
            s = sp_fail(err, SP_ENOTFOUND,
                        "%s: weight_map names shard %s (for tensor %s), but %s does not exist",
                        index_path, shard, tensor, p);
            free(p);
            break;
        }
        names[*n] = shard;
        (*paths)[(*n)++] = p;
    }
    free(names);
    return s;
}

/* Every tensor the index names must be in the shard it names. */
static sp_status check_index(const sp_safetensors *st, const json_t *wm, const char *dir,
                             const char *index_path, sp_error *err) {
    const char *tensor;
    json_t *v;
    json_object_foreach((json_t *)wm, tensor, v) {
        const sp_st_tensor *t = sp_st_find(st, tensor);
        const char *shard = json_string_value(v);
        if (!t)
            return sp_fail(err, SP_ENOTFOUND,
                           "%s: tensor %s is listed in shard %s, but that file has no such tensor",
                           index_path, tensor, shard);
        const char *file = st->files[t->file_index].path;
        char *want = sp_path_join(dir, shard);
        int same = want && strcmp(want, file) == 0;
        free(want);
        if (!same)
            return sp_fail(err, SP_EFORMAT, "%s: tensor %s is listed in shard %s, but it is in %s",
                           index_path, tensor, shard, file);
    }
    return SP_OK;
}

static sp_status open_index(sp_safetensors *st, const char *dir, const char *index_path,
                            sp_error *err) {
    json_t *index;
    SP_TRY(sp_json_load_file(&index, index_path, err));
    const json_t *wm;
    sp_status s = sp_json_obj(index, "weight_map", 1, &wm, index_path, err);
    char **paths = NULL;
    int n = 0;
    if (s == SP_OK) s = index_shards(wm, index_path, dir, &paths, &n, err);
    if (s == SP_OK && n == 0) s = sp_fail(err, SP_EFORMAT, "%s: weight_map is empty", index_path);
    if (s == SP_OK) s = open_files(st, paths, n, err);
    if (s == SP_OK) s = build_index(st, err);
    if (s == SP_OK) s = check_index(st, wm, dir, index_path, err);
    free_paths(paths, n);
    json_decref(index);
    return s;
}

static sp_status open_path(sp_safetensors *st, const char *path, sp_error *err) {
    if (!sp_path_is_dir(path)) {
        char *p = (char *)path;
        SP_TRY(open_files(st, &p, 1, err));
        return build_index(st, err);
    }
    char *index_path = sp_path_join(path, "model.safetensors.index.json");
    if (sp_path_exists(index_path)) {
        sp_status s = open_index(st, path, index_path, err);
        free(index_path);
        return s;
    }
    free(index_path);
    char **paths = NULL;
    int n = 0;
    char *single = sp_path_join(path, "model.safetensors");
    sp_status s;
    if (sp_path_exists(single)) {
        paths = malloc(sizeof *paths);
        paths[0] = single;
        n = 1;
        s = SP_OK;
    } else {
        free(single);
        s = list_dir(path, &paths, &n, err);
    }
    if (s == SP_OK) s = open_files(st, paths, n, err);
    if (s == SP_OK) s = build_index(st, err);
    free_paths(paths, n);
    return s;
}

sp_status sp_st_open(sp_safetensors **out, const char *path, sp_error *err) {
    *out = NULL;
    sp_safetensors *st = calloc(1, sizeof *st);
    if (!st) return sp_fail(err, SP_ENOMEM, "out of memory");
    sp_status s = open_path(st, path, err);
    if (s != SP_OK) {
        sp_st_close(st);
        return s;
    }
    /* Data pointers were taken per file before any realloc moved entries:
     * they point into the mappings, which never move. */
    *out = st;
    return SP_OK;
}

const sp_st_tensor *sp_st_find(const sp_safetensors *st, const char *name) {
    int i = sp_name_index_find(&st->ix, name);
    return i < 0 ? NULL : &st->entries[i].t;
}

sp_status sp_st_get(const sp_safetensors *st, const char *name, const sp_st_tensor **out,
                    sp_error *err) {
    *out = sp_st_find(st, name);
    if (!*out)
        return sp_fail(err, SP_ENOTFOUND, "%s: no tensor named %s",
                       st->nfiles == 1 ? st->files[0].path : "safetensors model", name);
    if ((*out)->dtype == SP_DTYPE_COUNT) {
        const st_entry *e = (const st_entry *)*out;
        sp_status s = sp_fail(err, SP_EUNSUPPORTED, "%s: tensor %s: unsupported dtype %s",
                              st->files[e->t.file_index].path, name, e->dtype_str);
        *out = NULL;
        return s;
    }
    return SP_OK;
}

int sp_st_count(const sp_safetensors *st) {
    return st->count;
}

const sp_st_tensor *sp_st_at(const sp_safetensors *st, int i) {
    return (i < 0 || i >= st->count) ? NULL : &st->entries[i].t;
}

int sp_st_file_count(const sp_safetensors *st) {
    return st->nfiles;
}

const char *sp_st_file_path(const sp_safetensors *st, int file_index) {
    return (file_index < 0 || file_index >= st->nfiles) ? NULL : st->files[file_index].path;
}

const char *sp_st_dtype_str(const sp_safetensors *st, const sp_st_tensor *t) {
    return ((const st_entry *)t)->dtype_str;
}

const json_t *sp_st_metadata(const sp_safetensors *st, int file_index) {
    if (file_index < 0 || file_index >= st->nfiles || !st->headers[file_index]) return NULL;
    return json_object_get(st->headers[file_index], "__metadata__");
}

void sp_st_close(sp_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->nfiles; i++) {
        sp_file_close(&st->files[i]);
        if (st->headers[i]) json_decref(st->headers[i]);
    }
    free(st->files);
    free(st->headers);
    free(st->entries);
    sp_name_index_free(&st->ix);
    free(st);
}
