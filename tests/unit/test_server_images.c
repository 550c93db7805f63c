/* The server's prompt building with images against transformers'
 * Gemma3Processor (tests/fixtures/vision/gemma3_processor): with the real
 * Gemma 3 tokenizer and chat template (scripts/fetch-tokenizers.sh), both
 * conversations, their images sent as data: URLs, give exactly the
 * processor's input_ids (placeholders expanded to "\n\n" + boi + 256 soft
 * tokens + eoi + "\n\n" before tokenization), and the images sit where its
 * token_type_ids mark image tokens. Runs server/params.c's render_chat, the
 * function the chat route and /tokenize call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"
#include "base/file.h"
#include "check.h"
#include "server/server_impl.h"

static char *data_url(const char *image) {
    char path[1200];
    snprintf(path, sizeof path, "%s/fixtures/vision/images/%s", SP_SHARED_DIR, image);
    sp_file f;
    sp_error err = {0};
    if (sp_file_read(&f, path, &err) != SP_OK) return NULL;
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = f.size, o = strlen("data:image/x;base64,");
    char *out = malloc(o + (n + 2) / 3 * 4 + 1);
    memcpy(out, "data:image/x;base64,", o);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)f.data[i] << 16 | (i + 1 < n ? (uint32_t)f.data[i + 1] << 8 : 0) |
                     (i + 2 < n ? f.data[i + 2] : 0);
        out[o++] = tbl[v >> 18 & 63], out[o++] = tbl[v >> 12 & 63];
        out[o++] = i + 1 < n ? tbl[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = 0;
    sp_file_close(&f);
    /* the decoder must give the bytes back */
    uint8_t *back;
    size_t bn;
    CHECK(sp_base64_decode(out + 20, strlen(out + 20), &back, &bn, &err) == SP_OK && bn == n);
    free(back);
    return out;
}

/* The case's messages with each {"type": "image"} as an image_url part. */
static json_t *request_body(const json_t *c) {
    json_t *msgs = json_deep_copy(json_object_get(c, "messages"));
    const json_t *imgs = json_object_get(c, "images");
    size_t k = 0, i, j;
    json_t *m, *part;
    json_array_foreach(msgs, i, m) {
        json_array_foreach(json_object_get(m, "content"), j, part) {
            if (strcmp(json_string_value(json_object_get(part, "type")), "image")) continue;
            char *url = data_url(json_string_value(json_array_get(imgs, k++)));
            json_object_set_new(part, "type", json_string("image_url"));
            json_object_set_new(part, "image_url", json_pack("{s:s}", "url", url ? url : ""));
            free(url);
        }
    }
    return json_pack("{s:o}", "messages", msgs);
}

static void run_case(const json_t *c, const sp_engine_info *info) {
    const char *name = json_string_value(json_object_get(c, "name"));
    json_t *body = request_body(c);
    sp_media_opts mo = {.max_bytes = 1 << 22, .max_pixels = 1 << 24, .max_images = 8};
    req_images im = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    api_error err = {0};
    int rc = render_chat(body, info, &mo, &im, &ids, &n, &err);
    CHECKF(rc == 0, "%s: %s", name, err.message);
    const json_t *want = json_object_get(c, "input_ids"),
                 *types = json_object_get(c, "token_type_ids");
    int same = rc == 0 && n == json_array_size(want);
    for (size_t i = 0; same && i < n; i++)
        same = ids[i] == json_integer_value(json_array_get(want, i));
    CHECKF(same, "%s: %zu ids, transformers %zu, or they differ", name, n, json_array_size(want));
    /* image k's soft tokens are the k-th run of token type 1 */
    int k = 0;
    for (size_t i = 0; rc == 0 && i < json_array_size(types); i++) {
        int t = (int)json_integer_value(json_array_get(types, i));
        int prev = i ? (int)json_integer_value(json_array_get(types, i - 1)) : 0;
        if (t == 1 && prev == 0) {
            CHECKF(k < im.n && im.items[k].pos == (int)i && im.px[k].n_soft == 256,
                   "%s: image %d is not at %zu", name, k, i);
            k++;
        }
    }
    CHECKF(rc != 0 || k == im.n, "%s: %d image runs, %d images", name, k, im.n);
    fprintf(stderr, "%s: %zu ids, %d images: %s\n", name, n, im.n, same ? "identical" : "DIFFER");
    req_images_free(&im);
    free(ids);
    json_decref(body);
}

int main(void) {
    const char *env = getenv("SP_TOKENIZERS_DIR");
    char dir[512], ref_path[1024];
    snprintf(dir, sizeof dir, "%s/gemma3", env && *env ? env : SP_SOURCE_DIR "/build/tokenizers");
    snprintf(ref_path, sizeof ref_path, "%s/tests/fixtures/vision/gemma3_processor/reference.json",
             SP_SOURCE_DIR);
    json_t *ref = json_load_file(ref_path, 0, NULL);
    sp_tokenizer *tok = NULL;
    sp_template *tmpl = NULL;
    char *src = NULL, *bos = NULL, *eos = NULL;
    sp_error e = {0};
    CHECKF(ref, "%s", ref_path);
    CHECKF(sp_tokenizer_load(&tok, dir, &e) == SP_OK, "%s (run scripts/fetch-tokenizers.sh): %s",
           dir, e.msg);
    CHECKF(tok && sp_chat_template_load(dir, &src, &bos, &eos, &e) == SP_OK &&
               sp_template_parse(&tmpl, src, &e) == SP_OK,
           "%s", e.msg);
    if (ref && tok && tmpl) {
        /* the real checkpoint's facts (config.json, preprocessor_config.json) */
        sp_vision_info vi = {.kind = SP_VISION_GEMMA3,
                             .image_id = 262144,
                             .boi_id = 255999,
                             .eoi_id = 256000,
                             .soft_tokens = 256};
        vi.proc = (sp_image_proc){.kind = SP_PROC_GEMMA3,
                                  .do_resize = 1,
                                  .do_rescale = 1,
                                  .do_normalize = 1,
                                  .resample = SP_FILTER_BILINEAR,
                                  .rescale_factor = 1.0 / 255,
                                  .mean = {0.5, 0.5, 0.5},
                                  .std = {0.5, 0.5, 0.5},
                                  .size_h = 224,
                                  .size_w = 224,
                                  .soft_tokens = 256};
        sp_engine_info info = {.tokenizer = tok,
                               .chat_template = tmpl,
                               .bos_token = bos,
                               .eos_token = eos,
                               .vocab = sp_tokenizer_vocab_size(tok),
                               .ctx_size = 8192,
                               .vision = &vi,
                               .max_image_tokens = 256};
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(ref, "cases"), i, c) run_case(c, &info);
    }
    sp_template_free(tmpl);
    sp_tokenizer_free(tok);
    free(src), free(bos), free(eos);
    json_decref(ref);
    return check_summary("server_images");
}
