/* safetensors reader/writer: the llama fixture, a write/read round trip,
 * every corruption the reader must name, and sharded directories. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "formats/safetensors.h"

static char tmpdir[256];

static char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

/* A safetensors file from a literal header and `data_len` bytes of data. */
static void write_raw(const char *path, const char *header, uint64_t hlen_field, size_t data_len) {
    FILE *fp = fopen(path, "wb");
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(hlen_field >> (8 * i));
    fwrite(len8, 1, 8, fp);
    fwrite(header, 1, strlen(header), fp);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i & 0xff), fp);
    fclose(fp);
}

static void write_hdr(const char *path, const char *header, size_t data_len) {
    write_raw(path, header, strlen(header), data_len);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (n) fwrite(p, 1, n, fp);
    fclose(fp);
}

/* Opens path expecting failure with status want and every needle in the message. */
static void expect_fail(const char *path, sp_status want, const char *n1, const char *n2,
                        const char *n3) {
    sp_safetensors *st = (sp_safetensors *)1;
    sp_error err = {0};
    sp_status s = sp_st_open(&st, path, &err);
    CHECKF(s == want, "%s: status %s, want %s (%s)", path, sp_status_name(s), sp_status_name(want),
           err.msg);
    CHECK(st == NULL);
    const char *needles[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i])
            CHECKF(strstr(err.msg, needles[i]) != NULL, "message \"%s\" lacks \"%s\"", err.msg,
                   needles[i]);
    if (s == SP_OK) sp_st_close(st);
}

static void test_fixture(void) {
    const char *dir = SP_SHARED_DIR "/fixtures/llama";
    const char *file = SP_SHARED_DIR "/fixtures/llama/model.safetensors";
    sp_error err = {0};
    for (int pass = 0; pass < 2; pass++) {
        sp_safetensors *st = NULL;
        sp_status s = sp_st_open(&st, pass ? dir : file, &err);
        CHECKF(s == SP_OK, "%s", err.msg);
        if (s != SP_OK) return;
        CHECK(sp_st_count(st) == 39);
        CHECK(sp_st_file_count(st) == 1);
        CHECK(strcmp(sp_st_file_path(st, 0), file) == 0 ||
              strstr(sp_st_file_path(st, 0), "model.safetensors"));
        const sp_st_tensor *e = sp_st_find(st, "model.embed_tokens.weight");
        CHECK(e && e->dtype == SP_BF16 && e->ndim == 2 && e->shape[0] == 512 && e->shape[1] == 64);
        /* header is 4040 bytes; embed_tokens spans data [65536, 131072) */
        CHECK(e && e->offset == 8 + 4040 + 65536 && e->nbytes == 65536 && e->file_index == 0);
        const sp_st_tensor *k = sp_st_find(st, "model.layers.3.self_attn.k_proj.weight");
        CHECK(k && k->dtype == SP_BF16 && k->shape[0] == 32 && k->shape[1] == 64 &&
              k->nbytes == 4096);
        const sp_st_tensor *n = sp_st_find(st, "model.norm.weight");
        CHECK(n && n->ndim == 1 && n->shape[0] == 64 && n->nbytes == 128);
        CHECK(sp_st_find(st, "model.embed_tokens") == NULL);
        CHECK(sp_st_find(st, "") == NULL);
        const sp_st_tensor *g;
        CHECK(sp_st_get(st, "nope", &g, &err) == SP_ENOTFOUND && strstr(err.msg, "nope"));
        CHECK(sp_st_get(st, "model.norm.weight", &g, &err) == SP_OK && g == n);
        CHECK(strcmp(sp_st_dtype_str(st, n), "BF16") == 0);
        const json_t *md = sp_st_metadata(st, 0);
        CHECK(md && json_is_string(json_object_get(md, "format")));
        /* Data pointer: compare with the bytes read independently at the offset. */
        if (e) {
            FILE *fp = fopen(file, "rb");
            uint8_t buf[256];
            fseek(fp, (long)e->offset, SEEK_SET);
            CHECK(fread(buf, 1, sizeof buf, fp) == sizeof buf);
            fclose(fp);
            CHECK(memcmp(buf, e->data, sizeof buf) == 0);
        }
        /* Iteration is in data order within the file: offsets increase. */
        for (int i = 1; i < sp_st_count(st); i++)
            CHECK(sp_st_at(st, i)->offset >= sp_st_at(st, i - 1)->offset);
        CHECK(sp_st_at(st, -1) == NULL && sp_st_at(st, 39) == NULL);
        sp_st_close(st);
    }
}

static void test_roundtrip(void) {
    float f32[6] = {1, -2, 3.5f, 4, 5, 6};
    uint16_t h16[4] = {0x3c00, 0xc000, 0x7bff, 1};
    double f64[2] = {1e300, -0.5};
    int64_t i64[3] = {INT64_MIN, 0, INT64_MAX};
    int32_t i32[2] = {-7, 7};
    int16_t i16[2] = {-300, 300};
    int8_t i8[3] = {-128, 0, 127};
    uint8_t u8[2] = {0, 255}, bl[3] = {1, 0, 1};
    sp_st_tensor ts[] = {
        {.name = "a.f32", .dtype = SP_F32, .ndim = 2, .shape = {2, 3}, .data = f32, .nbytes = 24},
        {.name = "b.bf16", .dtype = SP_BF16, .ndim = 1, .shape = {4}, .data = h16, .nbytes = 8},
        {.name = "c.f16", .dtype = SP_F16, .ndim = 3, .shape = {1, 2, 2}, .data = h16, .nbytes = 8},
        {.name = "d.f64", .dtype = SP_F64, .ndim = 1, .shape = {2}, .data = f64, .nbytes = 16},
        {.name = "e.i64", .dtype = SP_I64, .ndim = 1, .shape = {3}, .data = i64, .nbytes = 24},
        {.name = "f.i32", .dtype = SP_I32, .ndim = 1, .shape = {2}, .data = i32, .nbytes = 8},
        {.name = "g.i16", .dtype = SP_I16, .ndim = 1, .shape = {2}, .data = i16, .nbytes = 4},
        {.name = "h.i8", .dtype = SP_I8, .ndim = 1, .shape = {3}, .data = i8, .nbytes = 3},
        {.name = "i.u8", .dtype = SP_U8, .ndim = 1, .shape = {2}, .data = u8, .nbytes = 2},
        {.name = "j.bool", .dtype = SP_BOOL, .ndim = 1, .shape = {3}, .data = bl, .nbytes = 3},
        {.name = "k.scalar", .dtype = SP_F32, .ndim = 0, .data = f32, .nbytes = 4},
        {.name = "l.empty", .dtype = SP_F32, .ndim = 2, .shape = {0, 4}, .data = NULL, .nbytes = 0},
        {.name = "m.8d",
         .dtype = SP_U8,
         .ndim = 8,
         .shape = {1, 1, 1, 1, 1, 1, 1, 2},
         .data = u8,
         .nbytes = 2},
    };
    int n = (int)(sizeof ts / sizeof ts[0]);
    const char *path = tmp_path("rt.safetensors");
    sp_error err = {0};
    CHECKF(sp_st_write(path, ts, n, &err) == SP_OK, "%s", err.msg);
    sp_safetensors *st = NULL;
    CHECKF(sp_st_open(&st, path, &err) == SP_OK, "%s", err.msg);
    if (!st) return;
    CHECK(sp_st_count(st) == n);
    for (int i = 0; i < n; i++) {
        const sp_st_tensor *t = sp_st_find(st, ts[i].name);
        CHECKF(t != NULL, "%s missing", ts[i].name);
        if (!t) continue;
        CHECKF(t->dtype == ts[i].dtype && t->ndim == ts[i].ndim && t->nbytes == ts[i].nbytes, "%s",
               ts[i].name);
        for (int d = 0; d < ts[i].ndim; d++) CHECK(t->shape[d] == ts[i].shape[d]);
        CHECK(ts[i].nbytes == 0 || memcmp(t->data, ts[i].data, ts[i].nbytes) == 0);
        if (i == 0) CHECK(t->offset % 8 == 0); /* the writer pads the header to 8 bytes */
    }
    sp_st_close(st);
    /* The writer refuses a wrong nbytes and quantized dtypes. */
    sp_st_tensor bad = {
        .name = "x", .dtype = SP_F32, .ndim = 1, .shape = {3}, .data = f32, .nbytes = 8};
    CHECK(sp_st_write(tmp_path("bad.safetensors"), &bad, 1, &err) == SP_EINVAL);
    bad.dtype = SP_Q8_0;
    CHECK(sp_st_write(tmp_path("bad.safetensors"), &bad, 1, &err) == SP_EINVAL);
}

static void test_truncated(void) {
    /* A valid file, then every prefix class: < 8 bytes, inside the header, inside the data. */
    float f[16] = {0};
    sp_st_tensor ts[2] = {
        {.name = "w1", .dtype = SP_F32, .ndim = 1, .shape = {8}, .data = f, .nbytes = 32},
        {.name = "w2", .dtype = SP_F32, .ndim = 1, .shape = {8}, .data = f + 8, .nbytes = 32},
    };
    const char *full = tmp_path("full.safetensors");
    sp_error err;
    CHECK(sp_st_write(full, ts, 2, &err) == SP_OK);
    FILE *fp = fopen(full, "rb");
    uint8_t buf[4096];
    size_t size = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    const char *p = tmp_path("trunc.safetensors");
    size_t cuts[] = {0, 1, 5, 7};
    for (int i = 0; i < 4; i++) {
        write_bytes(p, buf, cuts[i]);
        expect_fail(p, SP_EFORMAT, p, "too short", NULL);
    }
    size_t hcuts[] = {8, 9, 20, size - 64 - 1};
    for (int i = 0; i < 4; i++) {
        write_bytes(p, buf, hcuts[i]);
        expect_fail(p, SP_EFORMAT, p, "header length", "past the end");
    }
    size_t dcuts[] = {size - 64, size - 33, size - 32, size - 1};
    for (int i = 0; i < 4; i++) {
        write_bytes(p, buf, dcuts[i]);
        expect_fail(p, SP_EFORMAT, p, i < 2 ? "tensor w1" : "tensor w2",
                    "past the end of the data section");
    }
    write_bytes(p, buf, size);
    sp_safetensors *st;
    CHECK(sp_st_open(&st, p, &err) == SP_OK);
    if (st) sp_st_close(st);
}

static void test_corrupt_headers(void) {
    const char *p = tmp_path("bad.safetensors");
    write_raw(p, "{}", 1000000, 0);
    expect_fail(p, SP_EFORMAT, p, "header length 1000000", "past the end");
    write_raw(p, "{}", (uint64_t)1 << 40, 0);
    expect_fail(p, SP_EFORMAT, p, "absurd", NULL);
    write_hdr(p, "{\"a\": {\"dtype\": \"F32\",\n \"shape\": [1], ", 4);
    expect_fail(p, SP_EFORMAT, p, "not valid JSON", "line 2");
    write_hdr(p, "[1, 2]", 0);
    expect_fail(p, SP_EFORMAT, p, "not an object", NULL);
    write_hdr(p, "{\"w\": 7}", 0);
    expect_fail(p, SP_EFORMAT, p, "tensor w", "not an object");
    write_hdr(p, "{\"w\": {\"dtype\": \"Q9\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8);
    expect_fail(p, SP_EFORMAT, p, "tensor w", "unknown dtype \"Q9\"");
    write_hdr(p, "{\"w\": {\"dtype\": 5, \"shape\": [2], \"data_offsets\": [0, 8]}}", 8);
    expect_fail(p, SP_EFORMAT, "tensor w", "dtype", "not a string");
    write_hdr(p, "{\"w\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 8);
    expect_fail(p, SP_EFORMAT, "tensor w", "no \"dtype\"", NULL);
    write_hdr(p, "{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 8]}}", 8);
    expect_fail(p, SP_EFORMAT, "tensor w", "no \"shape\"", NULL);
    write_hdr(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8);
    expect_fail(p, SP_EFORMAT, "tensor w", "no \"data_offsets\"", NULL);
    write_hdr(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": \"2\", \"data_offsets\": [0, 8]}}", 8);
    expect_fail(p, SP_EFORMAT, "tensor w", "shape is string", NULL);
    write_hdr(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 8);
    expect_fail(p, SP_EFORMAT, "tensor w", "shape[0]", NULL);
    write_hdr(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2.0], \"data_offsets\": [0, 8]}}", 8);
    expect_fail(p, SP_EFORMAT, "tensor w", "shape[0]", NULL);
    write_hdr(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0]}}", 8);
    expect_fail(p, SP_EFORMAT, "tensor w", "data_offsets", NULL);
    write_hdr(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", 8);
    expect_fail(p, SP_EFORMAT, "tensor w", "[8, 0]", NULL);
    write_hdr(
        p,
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,2], \"data_offsets\": [0, 8]}}",
        8);
    expect_fail(p, SP_EFORMAT, "tensor w", "9 dimensions", NULL);
    /* shape x dtype size != span */
    write_hdr(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 12]}}", 16);
    expect_fail(p, SP_EFORMAT, "tensor w", "16 bytes", "[0, 12]");
    write_hdr(p,
              "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": "
              "[0, 16]}}",
              16);
    expect_fail(p, SP_EFORMAT, "tensor w", "more than", NULL);
    /* span outside the data section: names file bytes */
    write_hdr(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [16], \"data_offsets\": [0, 64]}}", 32);
    expect_fail(p, SP_EFORMAT, "tensor w", "[0, 64]", "past the end of the data section");
    /* overlapping spans */
    write_hdr(p,
              "{\"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}, "
              "\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}",
              24);
    expect_fail(p, SP_EFORMAT, "tensors a [0, 16)", "b [8, 24)", "overlap");
    /* duplicate names in one header */
    write_hdr(p,
              "{\"a\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]}, "
              "\"a\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [1, 2]}}",
              2);
    expect_fail(p, SP_EFORMAT, p, "duplicate", NULL);
    write_hdr(p, "{\"__metadata__\": 3}", 0);
    expect_fail(p, SP_EFORMAT, "__metadata__", NULL, NULL);
    expect_fail(tmp_path("does-not-exist.safetensors"), SP_EIO, "does-not-exist", NULL, NULL);
}

static void test_valid_edge_cases(void) {
    const char *p = tmp_path("edge.safetensors");
    sp_error err = {0};
    sp_safetensors *st = NULL;
    /* Spec dtypes without an sp_dtype open fine and fail when used; sub-byte
     * F4 is sized in bits; empty tensors may share an offset; gaps are allowed;
     * the header may be padded with spaces. */
    const char *hdr =
        "{\"__metadata__\": {\"format\": \"pt\"}, "
        "\"f8\": {\"dtype\": \"F8_E4M3\", \"shape\": [2, 4], \"data_offsets\": [0, 8]}, "
        "\"u32\": {\"dtype\": \"U32\", \"shape\": [2], \"data_offsets\": [8, 16]}, "
        "\"f4\": {\"dtype\": \"F4\", \"shape\": [4], \"data_offsets\": [16, 18]}, "
        "\"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [16, 16]}, "
        "\"g\": {\"dtype\": \"I16\", \"shape\": [2], \"data_offsets\": [20, 24]}}    ";
    write_hdr(p, hdr, 24);
    CHECKF(sp_st_open(&st, p, &err) == SP_OK, "%s", err.msg);
    if (!st) return;
    CHECK(sp_st_count(st) == 5);
    const sp_st_tensor *t = sp_st_find(st, "f8");
    CHECK(t && t->dtype == SP_DTYPE_COUNT && t->nbytes == 8);
    CHECK(sp_st_get(st, "f8", &t, &err) == SP_EUNSUPPORTED && t == NULL);
    CHECKF(strstr(err.msg, "tensor f8") && strstr(err.msg, "unsupported dtype F8_E4M3") &&
               strstr(err.msg, p),
           "%s", err.msg);
    CHECK(sp_st_get(st, "u32", &t, &err) == SP_EUNSUPPORTED && strstr(err.msg, "U32"));
    CHECK(sp_st_get(st, "g", &t, &err) == SP_OK && t->dtype == SP_I16 &&
          t->offset == 8 + strlen(hdr) + 20);
    /* the data pointer is the file byte at that offset: write_raw fills byte i of the data with i
     */
    CHECK(t && ((const uint8_t *)t->data)[0] == 20 && ((const uint8_t *)t->data)[3] == 23);
    sp_st_close(st);
}

static void shard(const char *name, const char *t1, const char *t2) {
    float f[4] = {1, 2, 3, 4};
    sp_st_tensor ts[2] = {
        {.name = t1, .dtype = SP_F32, .ndim = 1, .shape = {2}, .data = f, .nbytes = 8},
        {.name = t2, .dtype = SP_F32, .ndim = 1, .shape = {2}, .data = f + 2, .nbytes = 8},
    };
    sp_error err;
    CHECK(sp_st_write(tmp_path(name), ts, 2, &err) == SP_OK);
}

static void write_text(const char *path, const char *text) {
    write_bytes(path, text, strlen(text));
}

static void test_sharded(void) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s/sharded", tmpdir);
    mkdir(dir, 0700);
    shard("sharded/model-00001-of-00002.safetensors", "x.a", "x.b");
    shard("sharded/model-00002-of-00002.safetensors", "y.a", "y.b");
    const char *index = tmp_path("sharded/model.safetensors.index.json");
    write_text(index, "{\"metadata\": {\"total_size\": 32}, \"weight_map\": {"
                      "\"x.a\": \"model-00001-of-00002.safetensors\", \"x.b\": "
                      "\"model-00001-of-00002.safetensors\","
                      "\"y.a\": \"model-00002-of-00002.safetensors\", \"y.b\": "
                      "\"model-00002-of-00002.safetensors\"}}");
    sp_error err = {0};
    sp_safetensors *st = NULL;
    CHECKF(sp_st_open(&st, dir, &err) == SP_OK, "%s", err.msg);
    if (st) {
        CHECK(sp_st_count(st) == 4 && sp_st_file_count(st) == 2);
        const sp_st_tensor *a = sp_st_find(st, "x.b"), *b = sp_st_find(st, "y.a");
        CHECK(a && b && a->file_index != b->file_index);
        CHECK(a && strstr(sp_st_file_path(st, a->file_index), "model-00001-of-00002"));
        CHECK(b && strstr(sp_st_file_path(st, b->file_index), "model-00002-of-00002"));
        CHECK(a && ((const float *)a->data)[1] == 4.0f);
        CHECK(b && ((const float *)b->data)[0] == 1.0f);
        sp_st_close(st);
    }
    /* index naming a missing shard */
    write_text(index, "{\"weight_map\": {\"x.a\": \"model-00001-of-00002.safetensors\", "
                      "\"z\": \"model-00003-of-00003.safetensors\"}}");
    expect_fail(dir, SP_ENOTFOUND, "model.safetensors.index.json",
                "model-00003-of-00003.safetensors", "tensor z");
    /* index naming a tensor absent from its shard */
    write_text(index, "{\"weight_map\": {\"x.a\": \"model-00001-of-00002.safetensors\", "
                      "\"ghost\": \"model-00002-of-00002.safetensors\"}}");
    expect_fail(dir, SP_ENOTFOUND, "tensor ghost", "model-00002-of-00002.safetensors",
                "no such tensor");
    /* tensor listed in the wrong shard */
    write_text(index, "{\"weight_map\": {\"x.a\": \"model-00002-of-00002.safetensors\", "
                      "\"y.a\": \"model-00001-of-00002.safetensors\"}}");
    expect_fail(dir, SP_EFORMAT, "tensor ", "is listed in shard", NULL);
    write_text(index, "{\"weight_map\": {\"x.a\": 1}}");
    expect_fail(dir, SP_EFORMAT, "weight_map.x.a", "not a string", NULL);
    write_text(index, "{\"weight_map\": []}");
    expect_fail(dir, SP_EFORMAT, "weight_map", "expected an object", NULL);
    write_text(index, "{\"weight_map\": ");
    expect_fail(dir, SP_EFORMAT, "index.json", "line 1", NULL);
    /* no index: every *.safetensors, sorted */
    unlink(index);
    CHECKF(sp_st_open(&st, dir, &err) == SP_OK, "%s", err.msg);
    if (st) {
        CHECK(sp_st_count(st) == 4 && strstr(sp_st_file_path(st, 0), "00001") &&
              strstr(sp_st_file_path(st, 1), "00002"));
        sp_st_close(st);
    }
    /* a tensor in two files */
    shard("sharded/model-00002-of-00002.safetensors", "y.a", "x.a");
    expect_fail(dir, SP_EFORMAT, "tensor x.a is in both", "00001", "00002");
    unlink(tmp_path("sharded/model-00001-of-00002.safetensors"));
    unlink(tmp_path("sharded/model-00002-of-00002.safetensors"));
    expect_fail(dir, SP_ENOTFOUND, "no .safetensors files", NULL, NULL);
    rmdir(dir);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sp_test_st_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_fixture();
    test_roundtrip();
    test_truncated();
    test_corrupt_headers();
    test_valid_edge_cases();
    test_sharded();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary("test_formats_safetensors");
}
