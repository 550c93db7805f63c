/* GGUF reader against damaged files: truncations at 21 offsets spread over
 * every section, targeted field edits (each must fail with SP_EFORMAT or
 * SP_EUNSUPPORTED and a message naming the problem), and a few hundred
 * random byte flips in the header area (any outcome but a crash or an empty
 * message). Section positions are found by a small parser here, not by the
 * reader under test. Run this under -DSP_SANITIZE=address now and then. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "formats/gguf.h"

static char tmpdir[256], tmpfile_[300];

typedef struct blob {
    uint8_t *p;
    size_t n;
} blob;

static blob load(const char *path) {
    blob b = {0};
    FILE *fp = fopen(path, "rb");
    if (!fp) return b;
    fseek(fp, 0, SEEK_END);
    b.n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    b.p = malloc(b.n);
    if (fread(b.p, 1, b.n, fp) != b.n) b.n = 0;
    fclose(fp);
    return b;
}

static void save(const uint8_t *p, size_t n) {
    FILE *fp = fopen(tmpfile_, "wb");
    if (n) fwrite(p, 1, n, fp);
    fclose(fp);
}

static uint64_t rd(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static void wr(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Positions of one tensor info's fields. */
typedef struct info_pos {
    size_t name, ndims, dims, type, offset;
} info_pos;

/* Skips one metadata value of type t at p; returns the position after it. */
static size_t skip_val(const uint8_t *b, size_t p, uint32_t t) {
    static const int fixed[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (t == 8) return p + 8 + rd(b + p, 8);
    if (t != 9) return p + (size_t)fixed[t];
    uint32_t et = (uint32_t)rd(b + p, 4);
    uint64_t n = rd(b + p + 4, 8);
    p += 12;
    if (et != 8 && et != 9) return p + n * (size_t)fixed[et];
    for (uint64_t i = 0; i < n; i++) p = skip_val(b, p, et);
    return p;
}

/* Layout of a valid file: kv start/end, tensor infos. */
typedef struct layout {
    size_t kv_end, infos_end;
    int n_tensors;
    info_pos info[64];
} layout;

static void parse_layout(const blob *b, layout *l) {
    uint64_t nt = rd(b->p + 8, 8), nkv = rd(b->p + 16, 8);
    size_t p = 24;
    for (uint64_t i = 0; i < nkv; i++) {
        p += 8 + rd(b->p + p, 8);
        uint32_t t = (uint32_t)rd(b->p + p, 4);
        p = skip_val(b->p, p + 4, t);
    }
    l->kv_end = p;
    l->n_tensors = (int)nt;
    for (int i = 0; i < (int)nt && i < 64; i++) {
        info_pos *ip = &l->info[i];
        ip->name = p;
        p += 8 + rd(b->p + p, 8);
        ip->ndims = p;
        uint32_t nd = (uint32_t)rd(b->p + p, 4);
        ip->dims = p + 4;
        ip->type = ip->dims + 8 * nd;
        ip->offset = ip->type + 4;
        p = ip->offset + 8;
    }
    l->infos_end = p;
}

/* Opens the temp file expecting failure with one of two statuses and needles in the message. */
static void expect_fail(const char *what, sp_status want, const char *n1, const char *n2) {
    sp_gguf *g = (sp_gguf *)1;
    sp_error err = {0};
    sp_status s = sp_gguf_open(&g, tmpfile_, &err);
    CHECKF(s == want, "%s: got %s (%s)", what, sp_status_name(s), err.msg);
    CHECKF(s == SP_OK || g == NULL, "%s: out set on failure", what);
    CHECKF(s == SP_OK || strstr(err.msg, tmpfile_), "%s: message lacks the path: %s", what,
           err.msg);
    if (n1) CHECKF(strstr(err.msg, n1), "%s: message \"%s\" lacks \"%s\"", what, err.msg, n1);
    if (n2) CHECKF(strstr(err.msg, n2), "%s: message \"%s\" lacks \"%s\"", what, err.msg, n2);
    if (s == SP_OK) sp_gguf_close(g);
}

static void test_truncations(const blob *b, const layout *l, uint64_t data_end) {
    size_t kv = l->kv_end - 24, inf = l->infos_end - l->kv_end;
    size_t cuts[] = {
        0,
        2,
        4,
        6,
        8,
        12,
        16,
        20,
        24,
        30, /* header */
        24 + kv / 4,
        24 + kv / 2,
        24 + 3 * kv / 4,
        l->kv_end - 1, /* metadata */
        l->kv_end,
        l->kv_end + 5,
        l->kv_end + inf / 2,
        l->infos_end - 1, /* tensor infos */
        l->infos_end + 1, /* before the aligned data start */
        (size_t)(l->infos_end + 100 + (data_end - l->infos_end) / 2),
        (size_t)data_end - 1, /* data */
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "truncated at %zu", cuts[i]);
        save(b->p, cuts[i]);
        expect_fail(what, SP_EFORMAT, NULL, NULL);
    }
}

/* Applies an edit to a copy, expects failure, nothing else changed. */
#define EDIT(what, want, n1, n2, stmt)                                                             \
    do {                                                                                           \
        memcpy(c, b->p, b->n);                                                                     \
        stmt;                                                                                      \
        save(c, b->n);                                                                             \
        expect_fail(what, want, n1, n2);                                                           \
    } while (0)

static void test_edits(const blob *b, const layout *l) {
    uint8_t *c = malloc(b->n);
    const info_pos *t0 = &l->info[0], *t1 = &l->info[1];
    /* kv 0 is tokenizer.ggml.tokens: key length at 24, type at 53, elem type 57, count 61 */
    CHECK(rd(b->p + 24, 8) == 21 && !memcmp(b->p + 32, "tokenizer.ggml.tokens", 21) &&
          rd(b->p + 53, 4) == 9);
    EDIT("magic", SP_EFORMAT, "not a GGUF file", NULL, c[0] = 'X');
    EDIT("version 1", SP_EUNSUPPORTED, "version 1", NULL, wr(c + 4, 1, 4));
    EDIT("version 4", SP_EFORMAT, "unknown GGUF version 4", NULL, wr(c + 4, 4, 4));
    EDIT("big-endian", SP_EUNSUPPORTED, "big-endian", NULL, wr(c + 4, 0x03000000u, 4));
    EDIT("tensor count", SP_EFORMAT, "tensor count 1099511627776", "cannot fit",
         wr(c + 8, 1ull << 40, 8));
    EDIT("kv count", SP_EFORMAT, "metadata count", "cannot fit", wr(c + 16, UINT64_MAX, 8));
    EDIT("key length", SP_EFORMAT, "key", "past the end", wr(c + 24, 1ull << 40, 8));
    EDIT("value type", SP_EFORMAT, "tokenizer.ggml.tokens", "unknown value type 13",
         wr(c + 53, 13, 4));
    EDIT("array elem type", SP_EFORMAT, "unknown array element type 99", NULL, wr(c + 57, 99, 4));
    EDIT("array count", SP_EFORMAT, "array of 4294967296 string", "past the end",
         wr(c + 61, 1ull << 32, 8));
    EDIT("string length", SP_EFORMAT, "tokenizer.ggml.tokens", "past the end",
         wr(c + 69, 1ull << 33, 8));
    EDIT("nesting", SP_EFORMAT, "tokenizer.ggml.tokens", NULL,
         wr(c + 57, 9, 4)); /* strings read as arrays */
    /* duplicate key: tokenizer.ggml.bos_token_id -> eos_token_id */
    uint8_t *bos = memmem(b->p, l->kv_end, "tokenizer.ggml.bos_token_id", 27);
    CHECK(bos != NULL);
    if (bos)
        EDIT("dup key", SP_EFORMAT, "tokenizer.ggml.eos_token_id appears twice", NULL,
             c[bos - b->p + 15] = 'e');
    char name0[64] = {0};
    memcpy(name0, b->p + t0->name + 8, rd(b->p + t0->name, 8) < 63 ? rd(b->p + t0->name, 8) : 63);
    EDIT("tensor type", SP_EFORMAT, name0, "unknown ggml type id 99", wr(c + t0->type, 99, 4));
    EDIT("removed type 4", SP_EFORMAT, "unknown ggml type id 4", NULL, wr(c + t0->type, 4, 4));
    EDIT("misaligned", SP_EFORMAT, "not a multiple of the alignment 32", name0,
         wr(c + t0->offset, rd(b->p + t0->offset, 8) + 1, 8));
    EDIT("offset past end", SP_EFORMAT, name0, "past the end", wr(c + t0->offset, 1ull << 40, 8));
    EDIT("overlap", SP_EFORMAT, "overlap", NULL, wr(c + t1->offset, rd(b->p + t0->offset, 8), 8));
    EDIT("n_dims 5", SP_EFORMAT, "n_dims 5", name0, wr(c + t0->ndims, 5, 4));
    EDIT("n_dims 0", SP_EFORMAT, "n_dims 0", name0, wr(c + t0->ndims, 0, 4));
    EDIT("dims overflow", SP_EFORMAT, "overflows", name0, wr(c + t0->dims + 8, 1ull << 62, 8));
    EDIT("dim > INT64_MAX", SP_EFORMAT, "overflows", name0, wr(c + t0->dims, UINT64_MAX, 8));
    EDIT("row not whole blocks", SP_EFORMAT, "not a multiple of the Q8_0 block size 32", name0,
         wr(c + t0->dims, 65, 8));
    EDIT("tensor grows", SP_EFORMAT, name0, NULL, wr(c + t0->dims + 8, 100000, 8));
    EDIT("name length", SP_EFORMAT, "tensor name", "past the end", wr(c + t0->name, 1ull << 50, 8));
    /* duplicate tensor name: make tensor 1's name equal to tensor 0's when lengths agree */
    for (int i = 1; i < l->n_tensors; i++) {
        const info_pos *ti = &l->info[i];
        if (rd(b->p + ti->name, 8) != rd(b->p + t0->name, 8)) continue;
        EDIT("dup tensor", SP_EFORMAT, name0, "appears twice",
             memcpy(c + ti->name + 8, name0, strlen(name0)));
        break;
    }
    free(c);
}

static void test_alignment_key(void) {
    blob b = load(SP_SHARED_DIR "/fixtures/gguf/synth-d256-q4_k.gguf");
    CHECK(b.n > 0);
    if (!b.n) return;
    uint8_t *k = memmem(b.p, 4096, "general.alignment", 17);
    CHECK(k && rd(k + 17, 4) == 4 && rd(k + 21, 4) == 32);
    if (k) {
        size_t at = (size_t)(k - b.p) + 21;
        wr(b.p + at, 3, 4);
        save(b.p, b.n);
        expect_fail("alignment 3", SP_EFORMAT, "general.alignment", "power of two");
        wr(b.p + at, 0, 4);
        save(b.p, b.n);
        expect_fail("alignment 0", SP_EFORMAT, "general.alignment", NULL);
        wr(b.p + at, 64, 4); /* tensors at multiples of 32 only: some misaligned now */
        save(b.p, b.n);
        expect_fail("alignment 64", SP_EFORMAT, NULL, NULL);
    }
    free(b.p);
}

/* Random flips of 1-4 bytes in the header area; the file is edited in place. */
static void test_random_flips(const blob *b, size_t limit) {
    save(b->p, b->n);
    int fd = open(tmpfile_, O_WRONLY);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int ok = 0, failed = 0, bad = 0;
    for (int it = 0; it < 400; it++) {
        size_t pos[4];
        int n = 1 + (int)(it % 4);
        for (int j = 0; j < n; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            pos[j] = (size_t)(x % limit);
            uint8_t v = (uint8_t)(x >> 40);
            if (it % 3 == 0) v = 0xff;
            if (pwrite(fd, &v, 1, (off_t)pos[j]) != 1) bad++;
        }
        sp_gguf *g = NULL;
        sp_error err = {0};
        sp_status s = sp_gguf_open(&g, tmpfile_, &err);
        if (s == SP_OK)
            ok++, sp_gguf_close(g);
        else
            failed++, bad += err.msg[0] == 0 || g != NULL;
        for (int j = n - 1; j >= 0; j--)
            if (pwrite(fd, b->p + pos[j], 1, (off_t)pos[j]) != 1) bad++;
    }
    close(fd);
    CHECKF(bad == 0, "%d flips without a message", bad);
    fprintf(stderr, "random flips: %d opened, %d rejected\n", ok, failed);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sp_test_gguf_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    snprintf(tmpfile_, sizeof tmpfile_, "%s/damaged.gguf", tmpdir);
    blob b = load(SP_SHARED_DIR "/fixtures/gguf/stories260K-q8_0.gguf");
    CHECK(b.n == 489248);
    if (b.n) {
        layout l;
        parse_layout(&b, &l);
        CHECK(l.n_tensors == 48);
        /* the reader agrees with the independent layout, and the copy opens */
        save(b.p, b.n);
        sp_gguf *g = NULL;
        sp_error err = {0};
        CHECKF(sp_gguf_open(&g, tmpfile_, &err) == SP_OK, "%s", err.msg);
        uint64_t data_end = 0;
        if (g) {
            CHECK(sp_gguf_data_offset(g) == (l.infos_end + 31) / 32 * 32);
            for (int i = 0; i < sp_gguf_tensor_count(g); i++) {
                const sp_gguf_tensor *t = sp_gguf_tensor_at(g, i);
                CHECK(t->offset == sp_gguf_data_offset(g) + rd(b.p + l.info[i].offset, 8));
                if (t->offset + t->nbytes > data_end) data_end = t->offset + t->nbytes;
            }
            sp_gguf_close(g);
        }
        test_truncations(&b, &l, data_end);
        test_edits(&b, &l);
        test_random_flips(&b, l.infos_end);
        free(b.p);
    }
    test_alignment_key();
    unlink(tmpfile_);
    rmdir(tmpdir);
    return check_summary("test_gguf_corrupt");
}
