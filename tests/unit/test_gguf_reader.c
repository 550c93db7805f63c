/* GGUF reader on real files (llama.cpp fixtures, checked against
 * reference.json and against the same model in llama2.c's formats), and a
 * writer -> reader round trip over every metadata type and several dtypes. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "formats/json.h"

#define GGUF_DIR SP_SHARED_DIR "/fixtures/gguf"

static char tmpdir[256];

/* Name of the GGUF tensor for a role of reference.json's tensor_types. */
static void role_name(char *buf, size_t n, const char *role, int layer) {
    if (!strcmp(role, "token_embd") || !strcmp(role, "output") || !strcmp(role, "output_norm"))
        snprintf(buf, n, "%s.weight", role);
    else
        snprintf(buf, n, "blk.%d.%s.weight", layer, role);
}

static void check_model(const json_t *m) {
    const char *file = json_string_value(json_object_get(m, "file"));
    char path[512];
    snprintf(path, sizeof path, "%s/%s", GGUF_DIR, file);
    sp_gguf *g = NULL;
    sp_error err = {0};
    CHECKF(sp_gguf_open(&g, path, &err) == SP_OK, "%s", err.msg);
    if (!g) return;
    int stories = strstr(file, "stories") != NULL;
    int dim = stories ? 64 : 256, ffn = stories ? 172 : 768, layers = stories ? 5 : 2;
    CHECK(sp_gguf_version(g) == 3 && sp_gguf_alignment(g) == 32 &&
          sp_gguf_data_offset(g) % 32 == 0);
    CHECK(sp_gguf_tensor_count(g) == json_integer_value(json_object_get(m, "n_tensors")));
    const char *arch = NULL;
    uint32_t u = 0;
    float f = 0;
    CHECK(sp_gguf_get_str(g, "general.architecture", NULL, 1, &arch, &err) == SP_OK && arch &&
          !strcmp(arch, "llama"));
    CHECK(sp_gguf_get_u32(g, "llama.block_count", 0, 1, &u, &err) == SP_OK &&
          u == (uint32_t)layers);
    CHECK(sp_gguf_get_u32(g, "llama.embedding_length", 0, 1, &u, &err) == SP_OK &&
          u == (uint32_t)dim);
    CHECK(sp_gguf_get_u32(g, "llama.feed_forward_length", 0, 1, &u, &err) == SP_OK &&
          u == (uint32_t)ffn);
    CHECK(sp_gguf_get_u32(g, "llama.attention.head_count", 0, 1, &u, &err) == SP_OK &&
          u == (stories ? 8u : 4u));
    CHECK(sp_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", 0, 1, &f, &err) == SP_OK &&
          f == 1e-5f);
    const json_t *ft = json_object_get(m, "general.file_type");
    if (json_is_integer(ft))
        CHECK(sp_gguf_get_u32(g, "general.file_type", 0, 1, &u, &err) == SP_OK &&
              u == json_integer_value(ft));
    const sp_gguf_val *tok = NULL;
    CHECK(sp_gguf_get_arr(g, "tokenizer.ggml.tokens", SP_GGUF_STRING, 1, &tok, &err) == SP_OK);
    CHECK(tok && sp_gguf_arr_len(tok) == 512);
    CHECK(tok && !strcmp(sp_gguf_arr_str(tok, 0, NULL), "<unk>") &&
          !strcmp(sp_gguf_arr_str(tok, 1, NULL), "<s>"));
    /* every role's type, and the shape convention (outermost first) */
    const char *role;
    json_t *tv;
    json_object_foreach((json_t *)json_object_get(m, "tensor_types"), role, tv) {
        for (int l = 0; l < layers; l++) {
            char name[128];
            role_name(name, sizeof name, role, l);
            const sp_gguf_tensor *t = sp_gguf_find_tensor(g, name);
            CHECKF(t != NULL, "%s: no %s", file, name);
            if (!t) continue;
            CHECKF(!strcmp(sp_ggml_type_name(t->ggml_type), json_string_value(tv)),
                   "%s %s: %s vs %s", file, name, sp_ggml_type_name(t->ggml_type),
                   json_string_value(tv));
            const sp_gguf_tensor *u2;
            CHECK(sp_gguf_get_tensor(g, name, &u2, &err) == SP_OK && u2 == t &&
                  t->dtype != SP_DTYPE_COUNT);
            CHECK(t->offset % 32 == 0 && t->offset + t->nbytes <= (uint64_t)1 << 32);
            if (!strcmp(role, "token_embd") || !strcmp(role, "output"))
                CHECK(t->ndim == 2 && t->shape[0] == 512 && t->shape[1] == dim && t->ne[0] == dim &&
                      t->ne[1] == 512);
            if (!strcmp(role, "ffn_down"))
                CHECK(t->ndim == 2 && t->shape[0] == dim && t->shape[1] == ffn);
            if (!strcmp(role, "ffn_gate"))
                CHECK(t->ndim == 2 && t->shape[0] == ffn && t->shape[1] == dim);
            if (strstr(role, "norm"))
                CHECK(t->ndim == 1 && t->shape[0] == dim && t->dtype == SP_F32 &&
                      t->nbytes == (size_t)dim * 4);
            if (!strcmp(json_string_value(tv), "Q4_K") && t->ndim == 2)
                CHECK(t->dtype == SP_Q4_K &&
                      t->nbytes == (size_t)(t->shape[0] * t->shape[1] / 256 * 144));
            if (!strcmp(role, "token_embd") || !strcmp(role, "output") ||
                !strcmp(role, "output_norm"))
                break;
        }
    }
    sp_gguf_close(g);
}

static void test_reference_models(void) {
    json_t *ref = NULL;
    sp_error err = {0};
    CHECKF(sp_json_load_file(&ref, GGUF_DIR "/reference.json", &err) == SP_OK, "%s", err.msg);
    if (!ref) return;
    const json_t *models = json_object_get(ref, "models");
    CHECK(json_array_size(models) == 13);
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m) check_model(m);
    json_decref(ref);
}

static float *read_floats(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    float *p = malloc((size_t)size);
    *n = fread(p, 1, (size_t)size, fp) / 4;
    fclose(fp);
    return p;
}

/* stories260K.gguf vs the same weights in llama2.c's checkpoint layout:
 * ints dim, hidden, layers, heads, kv_heads, vocab, seq_len; then
 * token_embedding [vocab][dim], rms_att [L][dim], wq, wk, wv, wo, rms_ffn,
 * w1 [L][hidden][dim], w2 [L][dim][hidden], w3, rms_final [dim]. */
static void test_stories_vs_llama2c(void) {
    sp_gguf *g = NULL;
    sp_error err = {0};
    CHECKF(sp_gguf_open(&g, SP_SHARED_DIR "/models/stories260K.gguf", &err) == SP_OK, "%s",
           err.msg);
    size_t n = 0;
    float *ck = read_floats(SP_SHARED_DIR "/models/stories260K-llama2c-from-gguf.bin", &n);
    CHECK(ck != NULL && n > 7);
    if (!g || !ck) return;
    int32_t cfg[7];
    memcpy(cfg, ck, sizeof cfg);
    int dim = cfg[0], hid = cfg[1], L = cfg[2], kv = cfg[0] * cfg[4] / cfg[3], vocab = abs(cfg[5]);
    CHECK(dim == 64 && hid == 172 && L == 5 && vocab == 512);
    const float *p = ck + 7;
    const float *emb = p, *rms_att = emb + vocab * dim, *wq = rms_att + L * dim,
                *wk = wq + L * dim * dim;
    const float *wv = wk + L * dim * kv, *wo = wv + L * dim * kv, *rms_ffn = wo + L * dim * dim;
    const float *w1 = rms_ffn + L * dim, *w2 = w1 + L * hid * dim, *w3 = w2 + L * dim * hid;
    const float *rms_final = w3 + L * hid * dim;
    CHECK((size_t)(rms_final + dim - ck) <= n);
    struct {
        const char *name;
        const float *ref;
        size_t per_layer;
    } cmp[] = {
        {"token_embd.weight", emb, 0},      {"output_norm.weight", rms_final, 0},
        {"attn_norm.weight", rms_att, dim}, {"ffn_norm.weight", rms_ffn, dim},
        {"attn_v.weight", wv, dim * kv},    {"attn_output.weight", wo, dim * dim},
        {"ffn_gate.weight", w1, hid * dim}, {"ffn_down.weight", w2, dim * hid},
        {"ffn_up.weight", w3, hid * dim},
    };
    for (size_t c = 0; c < sizeof cmp / sizeof cmp[0]; c++) {
        for (int l = 0; l < (cmp[c].per_layer ? L : 1); l++) {
            char name[128];
            if (cmp[c].per_layer)
                snprintf(name, sizeof name, "blk.%d.%s", l, cmp[c].name);
            else
                snprintf(name, sizeof name, "%s", cmp[c].name);
            const sp_gguf_tensor *t = sp_gguf_find_tensor(g, name);
            CHECKF(t && t->dtype == SP_F32, "%s", name);
            if (!t) continue;
            size_t count = cmp[c].per_layer ? cmp[c].per_layer : (size_t)(t->nbytes / 4);
            CHECK(t->nbytes == count * 4);
            CHECKF(memcmp(t->data, cmp[c].ref + l * cmp[c].per_layer, count * 4) == 0,
                   "%s data differs", name);
        }
    }
    const sp_gguf_tensor *down = sp_gguf_find_tensor(g, "blk.2.ffn_down.weight");
    if (down) { /* row r of [dim][hid] is w2[2][r][:] */
        sp_tensor v = sp_gguf_tensor_view(down);
        CHECK(v.ndim == 2 && v.shape[0] == dim && v.shape[1] == hid && v.dtype == SP_F32);
        CHECK(((const float *)v.data)[5 * hid + 7] == w2[2 * dim * hid + 5 * hid + 7]);
    }
    free(ck);

    /* tokenizer: llama2.c tok512 = int max_len, then per token {f32 score, i32 len, bytes} */
    FILE *fp = fopen(SP_SHARED_DIR "/models/tok512-from-gguf.bin", "rb");
    CHECK(fp != NULL);
    const sp_gguf_val *tok = NULL, *scores = NULL, *types = NULL;
    CHECK(sp_gguf_get_arr(g, "tokenizer.ggml.tokens", SP_GGUF_STRING, 1, &tok, &err) == SP_OK);
    CHECK(sp_gguf_get_arr(g, "tokenizer.ggml.scores", SP_GGUF_F32, 1, &scores, &err) == SP_OK);
    CHECK(sp_gguf_get_arr(g, "tokenizer.ggml.token_type", SP_GGUF_I32, 1, &types, &err) == SP_OK);
    if (fp && tok && scores && types) {
        int32_t maxlen;
        CHECK(fread(&maxlen, 4, 1, fp) == 1);
        int mismatches = 0;
        for (uint64_t i = 0; i < 512; i++) {
            float sc;
            int32_t len;
            char s[256] = {0};
            if (fread(&sc, 4, 1, fp) != 1 || fread(&len, 4, 1, fp) != 1 || len < 0 || len > 255 ||
                fread(s, 1, (size_t)len, fp) != (size_t)len) {
                mismatches++;
                break;
            }
            uint64_t glen;
            const char *gs = sp_gguf_arr_str(tok, i, &glen);
            if (sc != sp_gguf_arr_f32(scores, i)) mismatches++;
            /* llama2.c spells BOS/EOS "\n<s>\n" / "\n</s>\n" and U+2581 as a space */
            char conv[256];
            size_t cn = 0;
            for (uint64_t k = 0; k < glen && cn < sizeof conv; k++) {
                if (k + 2 < glen && !memcmp(gs + k, "\xe2\x96\x81", 3)) {
                    conv[cn++] = ' ';
                    k += 2;
                } else
                    conv[cn++] = gs[k];
            }
            if (i >= 3 && (cn != (size_t)len || memcmp(conv, s, (size_t)len) != 0)) mismatches++;
        }
        CHECKF(mismatches == 0, "%d tokenizer mismatches", mismatches);
        CHECK(sp_gguf_arr_i64(types, 0) == 2 && sp_gguf_arr_i64(types, 1) == 3 &&
              sp_gguf_arr_i64(types, 300) == 1);
    }
    if (fp) fclose(fp);
    /* getters: conversions and named errors */
    uint32_t u;
    int64_t i64;
    float f;
    int b;
    const char *s;
    CHECK(sp_gguf_get_u32(g, "tokenizer.ggml.seperator_token_id", 0, 1, &u, &err) == SP_OK &&
          u == UINT32_MAX);
    CHECK(sp_gguf_get_i64(g, "llama.block_count", 0, 1, &i64, &err) == SP_OK && i64 == 5);
    CHECK(sp_gguf_get_f32(g, "llama.block_count", 0, 1, &f, &err) == SP_OK && f == 5.0f);
    CHECK(sp_gguf_get_u32(g, "llama.rope.freq_base", 7, 0, &u, &err) == SP_OK && u == 7);
    CHECK(sp_gguf_get_u32(g, "llama.rope.freq_base", 7, 1, &u, &err) == SP_ENOTFOUND);
    CHECKF(strstr(err.msg, "stories260K.gguf") &&
               strstr(err.msg, "llama.rope.freq_base is missing"),
           "%s", err.msg);
    CHECK(sp_gguf_get_u32(g, "general.name", 0, 1, &u, &err) == SP_EFORMAT);
    CHECKF(strstr(err.msg, "general.name is string"), "%s", err.msg);
    CHECK(sp_gguf_get_bool(g, "llama.block_count", 0, 1, &b, &err) == SP_EFORMAT &&
          strstr(err.msg, "u32 5"));
    CHECK(sp_gguf_get_str(g, "llama.block_count", NULL, 1, &s, &err) == SP_EFORMAT);
    CHECK(sp_gguf_get_arr(g, "tokenizer.ggml.scores", SP_GGUF_I32, 1, &tok, &err) == SP_EFORMAT &&
          strstr(err.msg, "array of f32"));
    CHECK(sp_gguf_find(g, "nope") == NULL && sp_gguf_find_tensor(g, "nope") == NULL);
    const sp_gguf_tensor *t;
    CHECK(sp_gguf_get_tensor(g, "nope", &t, &err) == SP_ENOTFOUND && strstr(err.msg, "nope"));
    sp_gguf_close(g);
}

/* ---- round trip ---- */

static sp_status fill_pattern(void *ctx, const char *name, void *buf, size_t n, sp_error *err) {
    for (size_t i = 0; i < n; i++) ((uint8_t *)buf)[i] = (uint8_t)(i * 7 + *(int *)ctx);
    return SP_OK;
}

static void test_roundtrip(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/rt.gguf", tmpdir);
    sp_gguf_writer *w = sp_gguf_writer_new();
    uint8_t u8s[3] = {0, 1, 255};
    int8_t i8s[2] = {-128, 127};
    uint16_t u16s[2] = {0, 65535};
    int16_t i16s[2] = {-32768, 32767};
    uint32_t u32s[2] = {0, UINT32_MAX};
    int32_t i32s[3] = {INT32_MIN, -1, INT32_MAX};
    float f32s[3] = {1.5f, -0.0f, INFINITY};
    uint8_t bools[2] = {1, 0};
    uint64_t u64s[1] = {UINT64_MAX};
    int64_t i64s[2] = {INT64_MIN, INT64_MAX};
    double f64s[2] = {1e-300, -2.5};
    const char *strs[3] = {"a", "", "héllo"};
    CHECK(sp_gguf_w_u32(w, "general.alignment", 64) == SP_OK);
    sp_gguf_w_u8(w, "t.u8", 200);
    sp_gguf_w_i8(w, "t.i8", -5);
    sp_gguf_w_u16(w, "t.u16", 60000);
    sp_gguf_w_i16(w, "t.i16", -30000);
    sp_gguf_w_u32(w, "t.u32", 4000000000u);
    sp_gguf_w_i32(w, "t.i32", -2000000000);
    sp_gguf_w_f32(w, "t.f32", 0.1f);
    sp_gguf_w_bool(w, "t.bool", 1);
    sp_gguf_w_str(w, "t.str", "llama");
    sp_gguf_w_strn(w, "t.nul", "a\0b", 3);
    sp_gguf_w_u64(w, "t.u64", UINT64_MAX);
    sp_gguf_w_i64(w, "t.i64", INT64_MIN);
    sp_gguf_w_f64(w, "t.f64", 3.141592653589793);
    sp_gguf_w_arr(w, "a.u8", SP_GGUF_U8, u8s, 3);
    sp_gguf_w_arr(w, "a.i8", SP_GGUF_I8, i8s, 2);
    sp_gguf_w_arr(w, "a.u16", SP_GGUF_U16, u16s, 2);
    sp_gguf_w_arr(w, "a.i16", SP_GGUF_I16, i16s, 2);
    sp_gguf_w_arr(w, "a.u32", SP_GGUF_U32, u32s, 2);
    sp_gguf_w_arr(w, "a.i32", SP_GGUF_I32, i32s, 3);
    sp_gguf_w_arr(w, "a.f32", SP_GGUF_F32, f32s, 3);
    sp_gguf_w_arr(w, "a.bool", SP_GGUF_BOOL, bools, 2);
    sp_gguf_w_arr(w, "a.u64", SP_GGUF_U64, u64s, 1);
    sp_gguf_w_arr(w, "a.i64", SP_GGUF_I64, i64s, 2);
    sp_gguf_w_arr(w, "a.f64", SP_GGUF_F64, f64s, 2);
    sp_gguf_w_arr(w, "a.empty", SP_GGUF_F32, NULL, 0);
    sp_gguf_w_str_arr(w, "a.str", strs, 3);
    /* nested: [[i32 x3], [i32 x0]], [[str x3]], [[[u8 x3]]] */
    sp_gguf_w_begin_arr(w, "n.i32", SP_GGUF_ARRAY, 2);
    sp_gguf_w_arr(w, NULL, SP_GGUF_I32, i32s, 3);
    sp_gguf_w_arr(w, NULL, SP_GGUF_I32, NULL, 0);
    sp_gguf_w_begin_arr(w, "n.str", SP_GGUF_ARRAY, 1);
    sp_gguf_w_str_arr(w, NULL, strs, 3);
    sp_gguf_w_begin_arr(w, "n.deep", SP_GGUF_ARRAY, 1);
    sp_gguf_w_begin_arr(w, NULL, SP_GGUF_ARRAY, 1);
    sp_gguf_w_arr(w, NULL, SP_GGUF_U8, u8s, 3);
    CHECK(sp_gguf_w_u8(w, "after.nested", 9) == SP_OK); /* all arrays closed */

    float wf32[3 * 4];
    for (int i = 0; i < 12; i++) wf32[i] = (float)i - 5.5f;
    uint16_t wf16[2 * 8];
    for (int i = 0; i < 16; i++) wf16[i] = (uint16_t)(0x3c00 + i);
    uint8_t q8[2 * 2 * 34], q4k[144], q2k[84];
    for (size_t i = 0; i < sizeof q8; i++) q8[i] = (uint8_t)(i * 13);
    for (size_t i = 0; i < sizeof q4k; i++) q4k[i] = (uint8_t)(i * 5 + 1);
    for (size_t i = 0; i < sizeof q2k; i++) q2k[i] = (uint8_t)(i * 3 + 2);
    int32_t wi32[5] = {1, -2, 3, -4, 5};
    int seed = 3;
    struct {
        const char *name;
        uint32_t type;
        int ndim;
        int64_t shape[4];
        const void *data;
        size_t nbytes;
        sp_dtype want;
    } ts[] = {
        {"w.f32", SP_GGML_F32, 2, {3, 4}, wf32, sizeof wf32, SP_F32},
        {"w.f16", SP_GGML_F16, 2, {2, 8}, wf16, sizeof wf16, SP_F16},
        {"w.bf16", SP_GGML_BF16, 3, {2, 2, 4}, wf16, sizeof wf16, SP_BF16},
        {"w.q8_0", SP_GGML_Q8_0, 2, {2, 64}, q8, sizeof q8, SP_Q8_0},
        {"w.q4_k", SP_GGML_Q4_K, 4, {1, 1, 1, 256}, q4k, sizeof q4k, SP_Q4_K},
        {"w.q2_k", SP_GGML_Q2_K, 1, {256}, q2k, sizeof q2k, SP_DTYPE_COUNT},
        {"w.i32", SP_GGML_I32, 1, {5}, wi32, sizeof wi32, SP_I32},
    };
    int nt = (int)(sizeof ts / sizeof ts[0]);
    for (int i = 0; i < nt; i++)
        CHECKF(sp_gguf_w_tensor(w, ts[i].name, ts[i].type, ts[i].ndim, ts[i].shape, ts[i].data,
                                ts[i].nbytes) == SP_OK,
               "%s", ts[i].name);
    int64_t fshape[2] = {3, 32};
    CHECK(sp_gguf_w_tensor_fill(w, "w.filled", SP_GGML_Q4_0, 2, fshape, fill_pattern, &seed) ==
          SP_OK);
    sp_error err = {0};
    CHECKF(sp_gguf_w_write(w, path, &err) == SP_OK, "%s", err.msg);
    sp_gguf_writer_free(w);

    sp_gguf *g = NULL;
    CHECKF(sp_gguf_open(&g, path, &err) == SP_OK, "%s", err.msg);
    if (!g) return;
    CHECK(sp_gguf_version(g) == 3 && sp_gguf_alignment(g) == 64 &&
          sp_gguf_data_offset(g) % 64 == 0);
    CHECK(sp_gguf_kv_count(g) == 31 && sp_gguf_tensor_count(g) == nt + 1);
    CHECK(!strcmp(sp_gguf_kv_key(g, 0), "general.alignment") &&
          !strcmp(sp_gguf_kv_key(g, 30), "after.nested"));
    int64_t i64 = 0;
    uint64_t u64 = 0;
    double d = 0;
    int b = 0;
    uint64_t len = 0;
#define VAL(k) sp_gguf_find(g, k)
    CHECK(sp_gguf_val_type(VAL("t.u8")) == SP_GGUF_U8 && sp_gguf_val_i64(VAL("t.u8"), &i64) &&
          i64 == 200);
    CHECK(sp_gguf_val_type(VAL("t.i8")) == SP_GGUF_I8 && sp_gguf_val_i64(VAL("t.i8"), &i64) &&
          i64 == -5);
    CHECK(!sp_gguf_val_u64(VAL("t.i8"), &u64));
    CHECK(sp_gguf_val_type(VAL("t.u16")) == SP_GGUF_U16 && sp_gguf_val_i64(VAL("t.u16"), &i64) &&
          i64 == 60000);
    CHECK(sp_gguf_val_type(VAL("t.i16")) == SP_GGUF_I16 && sp_gguf_val_i64(VAL("t.i16"), &i64) &&
          i64 == -30000);
    CHECK(sp_gguf_val_type(VAL("t.u32")) == SP_GGUF_U32 && sp_gguf_val_i64(VAL("t.u32"), &i64) &&
          i64 == 4000000000);
    CHECK(sp_gguf_val_type(VAL("t.i32")) == SP_GGUF_I32 && sp_gguf_val_i64(VAL("t.i32"), &i64) &&
          i64 == -2000000000);
    CHECK(sp_gguf_val_type(VAL("t.f32")) == SP_GGUF_F32 && sp_gguf_val_f64(VAL("t.f32"), &d) &&
          d == (double)0.1f);
    CHECK(sp_gguf_val_type(VAL("t.bool")) == SP_GGUF_BOOL && sp_gguf_val_bool(VAL("t.bool"), &b) &&
          b == 1);
    CHECK(sp_gguf_val_type(VAL("t.str")) == SP_GGUF_STRING &&
          !strcmp(sp_gguf_val_str(VAL("t.str"), &len), "llama") && len == 5);
    CHECK(sp_gguf_val_str(VAL("t.nul"), &len) && len == 3 &&
          !memcmp(sp_gguf_val_str(VAL("t.nul"), NULL), "a\0b", 4));
    CHECK(sp_gguf_val_type(VAL("t.u64")) == SP_GGUF_U64 && sp_gguf_val_u64(VAL("t.u64"), &u64) &&
          u64 == UINT64_MAX);
    CHECK(!sp_gguf_val_i64(VAL("t.u64"), &i64));
    CHECK(sp_gguf_val_type(VAL("t.i64")) == SP_GGUF_I64 && sp_gguf_val_i64(VAL("t.i64"), &i64) &&
          i64 == INT64_MIN);
    CHECK(sp_gguf_val_type(VAL("t.f64")) == SP_GGUF_F64 && sp_gguf_val_f64(VAL("t.f64"), &d) &&
          d == 3.141592653589793);
    uint32_t u32;
    CHECK(sp_gguf_get_u32(g, "t.i8", 0, 1, &u32, &err) == SP_EFORMAT &&
          strstr(err.msg, "t.i8 is i8 -5"));
    CHECK(sp_gguf_get_u32(g, "t.u64", 0, 1, &u32, &err) == SP_EFORMAT);
    CHECK(sp_gguf_get_u32(g, "t.u16", 0, 1, &u32, &err) == SP_OK && u32 == 60000);
    const sp_gguf_val *a;
    a = VAL("a.u8");
    CHECK(sp_gguf_arr_type(a) == SP_GGUF_U8 && sp_gguf_arr_len(a) == 3 &&
          sp_gguf_arr_i64(a, 2) == 255);
    CHECK(!memcmp(sp_gguf_arr_raw(a), u8s, 3));
    a = VAL("a.i8");
    CHECK(sp_gguf_arr_i64(a, 0) == -128 && sp_gguf_arr_i64(a, 1) == 127);
    a = VAL("a.u16");
    CHECK(sp_gguf_arr_type(a) == SP_GGUF_U16 && sp_gguf_arr_i64(a, 1) == 65535);
    a = VAL("a.i16");
    CHECK(sp_gguf_arr_i64(a, 0) == -32768 && sp_gguf_arr_i64(a, 1) == 32767);
    a = VAL("a.u32");
    CHECK(sp_gguf_arr_i64(a, 1) == UINT32_MAX);
    a = VAL("a.i32");
    CHECK(sp_gguf_arr_type(a) == SP_GGUF_I32 && sp_gguf_arr_i64(a, 0) == INT32_MIN &&
          sp_gguf_arr_i64(a, 1) == -1 && sp_gguf_arr_i64(a, 2) == INT32_MAX);
    a = VAL("a.f32");
    CHECK(sp_gguf_arr_f32(a, 0) == 1.5f && signbit(sp_gguf_arr_f32(a, 1)) &&
          isinf(sp_gguf_arr_f32(a, 2)));
    a = VAL("a.bool");
    CHECK(sp_gguf_arr_type(a) == SP_GGUF_BOOL && sp_gguf_arr_i64(a, 0) == 1 &&
          sp_gguf_arr_i64(a, 1) == 0);
    a = VAL("a.u64");
    CHECK(sp_gguf_arr_type(a) == SP_GGUF_U64 && sp_gguf_arr_f64(a, 0) == (double)UINT64_MAX);
    a = VAL("a.i64");
    CHECK(sp_gguf_arr_i64(a, 0) == INT64_MIN && sp_gguf_arr_i64(a, 1) == INT64_MAX);
    a = VAL("a.f64");
    CHECK(sp_gguf_arr_f64(a, 0) == 1e-300 && sp_gguf_arr_f64(a, 1) == -2.5);
    CHECK(sp_gguf_arr_len(VAL("a.empty")) == 0 && sp_gguf_arr_type(VAL("a.empty")) == SP_GGUF_F32);
    a = VAL("a.str");
    CHECK(sp_gguf_arr_type(a) == SP_GGUF_STRING && sp_gguf_arr_len(a) == 3);
    CHECK(!strcmp(sp_gguf_arr_str(a, 0, NULL), "a") && !strcmp(sp_gguf_arr_str(a, 1, &len), "") &&
          len == 0);
    CHECK(!strcmp(sp_gguf_arr_str(a, 2, &len), "héllo") && len == strlen("héllo"));
    CHECK(sp_gguf_arr_str(a, 3, NULL) == NULL && sp_gguf_arr_raw(a) == NULL);
    a = VAL("n.i32");
    CHECK(sp_gguf_arr_type(a) == SP_GGUF_ARRAY && sp_gguf_arr_len(a) == 2);
    const sp_gguf_val *e0 = sp_gguf_arr_at(a, 0), *e1 = sp_gguf_arr_at(a, 1);
    CHECK(e0 && sp_gguf_arr_type(e0) == SP_GGUF_I32 && sp_gguf_arr_len(e0) == 3 &&
          sp_gguf_arr_i64(e0, 0) == INT32_MIN);
    CHECK(e1 && sp_gguf_arr_len(e1) == 0);
    a = VAL("n.str");
    e0 = sp_gguf_arr_at(a, 0);
    CHECK(e0 && sp_gguf_arr_type(e0) == SP_GGUF_STRING &&
          !strcmp(sp_gguf_arr_str(e0, 2, NULL), "héllo"));
    a = VAL("n.deep");
    e0 = a ? sp_gguf_arr_at(a, 0) : NULL;
    e1 = e0 ? sp_gguf_arr_at(e0, 0) : NULL;
    CHECK(e1 && sp_gguf_arr_type(e1) == SP_GGUF_U8 && sp_gguf_arr_i64(e1, 2) == 255);
    CHECK(sp_gguf_val_i64(VAL("after.nested"), &i64) && i64 == 9);
#undef VAL
    for (int i = 0; i < nt; i++) {
        const sp_gguf_tensor *t = sp_gguf_find_tensor(g, ts[i].name);
        CHECKF(t != NULL, "%s", ts[i].name);
        if (!t) continue;
        CHECKF(t->ggml_type == ts[i].type && t->dtype == ts[i].want && t->ndim == ts[i].ndim &&
                   t->nbytes == ts[i].nbytes,
               "%s", ts[i].name);
        for (int dd = 0; dd < ts[i].ndim; dd++) {
            CHECK(t->shape[dd] == ts[i].shape[dd]);
            CHECK(t->ne[ts[i].ndim - 1 - dd] == ts[i].shape[dd]);
        }
        CHECK(t->offset % 64 == 0 && ((uintptr_t)t->data % 64) == 0);
        CHECKF(memcmp(t->data, ts[i].data, ts[i].nbytes) == 0, "%s data", ts[i].name);
    }
    const sp_gguf_tensor *t;
    CHECK(sp_gguf_get_tensor(g, "w.q2_k", &t, &err) == SP_EUNSUPPORTED && t == NULL);
    CHECKF(strstr(err.msg, "unsupported tensor type Q2_K for tensor w.q2_k"), "%s", err.msg);
    t = sp_gguf_find_tensor(g, "w.filled");
    CHECK(t && t->nbytes == 3 * 18 && ((const uint8_t *)t->data)[10] == (uint8_t)(70 + 3));
    CHECK(sp_gguf_tensor_at(g, 0) && !strcmp(sp_gguf_tensor_at(g, 0)->name, "w.f32") &&
          sp_gguf_tensor_at(g, nt + 1) == NULL);
    sp_gguf_close(g);
    /* Version 2 has the same layout: patch the version field and reopen. */
    FILE *fp = fopen(path, "r+b");
    uint8_t v2[4] = {2, 0, 0, 0};
    CHECK(fp && fseek(fp, 4, SEEK_SET) == 0 && fwrite(v2, 1, 4, fp) == 4);
    if (fp) fclose(fp);
    CHECKF(sp_gguf_open(&g, path, &err) == SP_OK, "%s", err.msg);
    if (g) {
        CHECK(sp_gguf_version(g) == 2 && sp_gguf_tensor_count(g) == nt + 1);
        sp_gguf_close(g);
    }
    unlink(path);
}

static void test_writer_misuse(void) {
    sp_error err = {0};
    char path[300];
    snprintf(path, sizeof path, "%s/bad.gguf", tmpdir);
    sp_gguf_writer *w = sp_gguf_writer_new();
    int32_t x = 1;
    sp_gguf_w_begin_arr(w, "a", SP_GGUF_I32, 2);
    CHECK(sp_gguf_w_i32(w, NULL, 1) == SP_OK);
    CHECK(sp_gguf_w_f32(w, NULL, 1.0f) == SP_EINVAL); /* wrong element type */
    CHECK(sp_gguf_w_write(w, path, &err) == SP_EINVAL && strstr(err.msg, "element type"));
    sp_gguf_writer_free(w);
    w = sp_gguf_writer_new();
    sp_gguf_w_begin_arr(w, "a", SP_GGUF_I32, 2);
    sp_gguf_w_arr(w, NULL, SP_GGUF_I32, &x, 1); /* an array where an i32 is due */
    CHECK(sp_gguf_w_write(w, path, &err) == SP_EINVAL);
    sp_gguf_writer_free(w);
    w = sp_gguf_writer_new();
    sp_gguf_w_begin_arr(w, "a", SP_GGUF_I32, 2);
    sp_gguf_w_i32(w, NULL, 1);
    CHECK(sp_gguf_w_write(w, path, &err) == SP_EINVAL && strstr(err.msg, "misses 1"));
    sp_gguf_writer_free(w);
    w = sp_gguf_writer_new();
    int64_t shape[2] = {2, 33};
    CHECK(sp_gguf_w_tensor(w, "q", SP_GGML_Q8_0, 2, shape, NULL, 0) == SP_EINVAL); /* 33 % 32 */
    sp_gguf_writer_free(w);
    w = sp_gguf_writer_new();
    shape[1] = 32;
    CHECK(sp_gguf_w_tensor(w, "q", SP_GGML_Q8_0, 2, shape, NULL, 10) == SP_EINVAL); /* bytes */
    CHECK(sp_gguf_w_u32(w, "general.alignment", 3) != SP_OK);
    sp_gguf_writer_free(w);
    CHECK(!strcmp(sp_ggml_type_name(SP_GGML_Q6_K), "Q6_K") && sp_ggml_type_name(4) == NULL);
    CHECK(sp_ggml_from_dtype(SP_Q5_K) == SP_GGML_Q5_K && sp_ggml_to_dtype(SP_GGML_BF16) == SP_BF16);
    CHECK(sp_ggml_from_dtype(SP_BOOL) == SP_GGML_NONE);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sp_test_gguf_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_reference_models();
    test_stories_vs_llama2c();
    test_roundtrip();
    test_writer_misuse();
    rmdir(tmpdir);
    return check_summary("test_gguf_reader");
}
