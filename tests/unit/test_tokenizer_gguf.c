/* GGUF vocabulary (SentencePiece "llama" model) of stories260K against
 * llama.cpp: the prompt ids it produced (BOS included) and the text of its
 * greedy continuation (shared/models/stories260K.llamacpp-greedy.json). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "formats/gguf_write.h"
#include "tokenizer/tokenizer.h"

static int32_t *ids_of(json_t *arr, size_t *n) {
    *n = json_array_size(arr);
    int32_t *v = malloc((*n + 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++) v[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return v;
}

static char *decode(const sp_tokenizer *tok, const int32_t *ids, size_t n) {
    char *text = NULL;
    size_t len;
    sp_error err = {0};
    CHECKF(sp_tokenizer_decode(tok, ids, n, 1, &text, &len, &err) == SP_OK, "%s", err.msg);
    return text;
}

static char *stream(const sp_tokenizer *tok, const int32_t *ids, size_t n) {
    sp_detok *d = sp_detok_new(tok, 1);
    sp_error err = {0};
    size_t used = 0;
    char *acc = calloc(1, 1);
    for (size_t i = 0; i <= n; i++) {
        char *piece = NULL;
        size_t plen = 0;
        CHECK((i < n ? sp_detok_push(d, ids[i], &piece, &plen, &err)
                     : sp_detok_flush(d, &piece, &plen, &err)) == SP_OK);
        acc = realloc(acc, used + plen + 1);
        memcpy(acc + used, piece, plen);
        used += plen;
        acc[used] = 0;
        free(piece);
    }
    sp_detok_free(d);
    return acc;
}

/* Writes Llama 3's tokenizer.json vocabulary as a "gpt2" GGUF vocabulary
 * (tokens, token types, merges, pre = llama-bpe), the way llama.cpp's
 * converter lays it out. */
static int write_llama3_gguf(const char *json_path, const char *out) {
    json_error_t je;
    json_t *root = json_load_file(json_path, 0, &je);
    if (!root) return 0;
    json_t *model = json_object_get(root, "model"), *vocab = json_object_get(model, "vocab");
    json_t *added = json_object_get(root, "added_tokens"),
           *merges = json_object_get(model, "merges");
    size_t n = json_object_size(vocab) + json_array_size(added), nm = json_array_size(merges);
    const char **tokens = calloc(n, sizeof *tokens), **mstr = calloc(nm, sizeof *mstr);
    int32_t *types = calloc(n, sizeof *types);
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        tokens[json_integer_value(val)] = key;
        types[json_integer_value(val)] = 1;
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *a = json_array_get(added, i);
        json_int_t id = json_integer_value(json_object_get(a, "id"));
        tokens[id] = json_string_value(json_object_get(a, "content"));
        types[id] = json_is_true(json_object_get(a, "special")) ? 3 : 4;
    }
    for (size_t i = 0; i < nm; i++) mstr[i] = json_string_value(json_array_get(merges, i));
    sp_gguf_writer *w = sp_gguf_writer_new();
    sp_error err = {0};
    int ok = w && sp_gguf_w_str(w, "general.architecture", "llama") == SP_OK &&
             sp_gguf_w_str(w, "tokenizer.ggml.model", "gpt2") == SP_OK &&
             sp_gguf_w_str(w, "tokenizer.ggml.pre", "llama-bpe") == SP_OK &&
             sp_gguf_w_str_arr(w, "tokenizer.ggml.tokens", tokens, n) == SP_OK &&
             sp_gguf_w_arr(w, "tokenizer.ggml.token_type", SP_GGUF_I32, types, n) == SP_OK &&
             sp_gguf_w_str_arr(w, "tokenizer.ggml.merges", mstr, nm) == SP_OK &&
             sp_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 128000) == SP_OK &&
             sp_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 128009) == SP_OK &&
             sp_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", 1) == SP_OK &&
             sp_gguf_w_write(w, out, &err) == SP_OK;
    CHECKF(ok, "writing %s: %s", out, err.msg);
    sp_gguf_writer_free(w);
    free(tokens);
    free(mstr);
    free(types);
    json_decref(root);
    return ok;
}

/* The byte-level GGUF path against the transformers fixtures of Llama 3. */
static void test_gpt2_gguf(void) {
    char json[1024], out[] = "/tmp/sp_tok_llama3_XXXXXX.gguf";
    const char *env = getenv("SP_TOKENIZERS_DIR");
    snprintf(json, sizeof json, "%s/llama3_1/tokenizer.json",
             env && *env ? env : SP_SOURCE_DIR "/build/tokenizers");
    int fd = mkstemps(out, 5);
    CHECK(fd >= 0);
    if (fd < 0) return;
    close(fd);
    if (!write_llama3_gguf(json, out)) {
        CHECKF(0, "cannot build a GGUF from %s (run scripts/fetch-tokenizers.sh)", json);
        unlink(out);
        return;
    }
    sp_tokenizer *tok = NULL;
    sp_error err = {0};
    CHECKF(sp_tokenizer_load(&tok, out, &err) == SP_OK, "%s", err.msg);
    unlink(out);
    json_error_t je;
    json_t *fx =
        json_load_file(SP_SHARED_DIR "/fixtures/tokenizers/llama3_1.json", JSON_ALLOW_NUL, &je);
    CHECKF(fx != NULL, "%s", je.text);
    json_t *cases = json_object_get(fx, "encode");
    for (size_t i = 0; tok && i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i), *text = json_object_get(c, "text");
        for (int add = 0; add < 2; add++) {
            size_t nw, n = 0;
            int32_t *want = ids_of(json_object_get(c, add ? "ids_with_special" : "ids"), &nw);
            int32_t *ids = NULL;
            CHECK(sp_tokenizer_encode(tok, json_string_value(text), json_string_length(text), add,
                                      1, &ids, &n, &err) == SP_OK);
            CHECKF(n == nw && !memcmp(ids, want, n * sizeof *ids), "gguf llama3: \"%s\" add=%d",
                   json_string_value(text), add);
            free(ids);
            free(want);
        }
    }
    sp_tokenizer_free(tok);
    json_decref(fx);
}

int main(void) {
    test_gpt2_gguf();
    const char *model = SP_SHARED_DIR "/models/stories260K.gguf";
    json_error_t je;
    json_t *runs = json_load_file(SP_SHARED_DIR "/models/stories260K.llamacpp-greedy.json", 0, &je);
    CHECKF(runs != NULL, "%s", je.text);
    sp_tokenizer *tok = NULL;
    sp_error err = {0};
    CHECKF(sp_tokenizer_load(&tok, model, &err) == SP_OK, "%s", err.msg);
    if (!tok || !runs) return check_summary("test_tokenizer_gguf");
    CHECK(sp_tokenizer_vocab_size(tok) == 512);
    CHECK(sp_tokenizer_bos_id(tok) == 1 && sp_tokenizer_eos_id(tok) == 2);
    for (size_t r = 0; r < json_array_size(runs); r++) {
        json_t *run = json_array_get(runs, r);
        const char *prompt = json_string_value(json_object_get(run, "prompt"));
        size_t np, ng, n = 0;
        int32_t *want = ids_of(json_object_get(run, "prompt_token_ids"), &np);
        int32_t *gen = ids_of(json_object_get(run, "generated_token_ids"), &ng);
        int32_t *ids = NULL;
        CHECK(sp_tokenizer_encode(tok, prompt, strlen(prompt), 1, 1, &ids, &n, &err) == SP_OK);
        CHECKF(n == np && !memcmp(ids, want, n * sizeof *ids), "prompt \"%s\"", prompt);
        /* the continuation's text = decode(prompt + generated) minus decode(prompt) */
        int32_t *all = malloc((np + ng) * sizeof *all);
        memcpy(all, want, np * sizeof *all);
        memcpy(all + np, gen, ng * sizeof *all);
        char *head = decode(tok, want, np), *full = decode(tok, all, np + ng);
        char *streamed = stream(tok, all, np + ng);
        const char *gen_text = json_string_value(json_object_get(run, "generated_text"));
        size_t hl = strlen(head);
        CHECKF(!strncmp(full, head, hl) && !strcmp(full + hl, gen_text),
               "continuation \"%s\", want \"%s\"", full + hl, gen_text);
        CHECKF(!strcmp(streamed, full), "stream \"%s\"", streamed);
        CHECK(!strcmp(head, prompt));
        free(head);
        free(full);
        free(streamed);
        free(all);
        free(ids);
        free(want);
        free(gen);
    }
    /* Random sequences over the whole vocabulary (byte runs, ▁-words,
     * <s>): streaming equals decode for the Replace/ByteFallback/Fuse/Strip
     * chain, whose leading-space rule depends on the first text. */
    uint64_t state = 12345;
    int bad = 0;
    for (int round = 0; round < 400; round++) {
        int32_t seq[24];
        size_t len = 1 + round % 24;
        for (size_t i = 0; i < len; i++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t r = (uint32_t)(state >> 33);
            seq[i] = r % 4 == 0   ? 3 + (int32_t)(r / 4 % 256)
                     : r % 5 == 1 ? 259
                                  : (int32_t)(r % 512);
        }
        char *full = decode(tok, seq, len), *streamed = stream(tok, seq, len);
        bad += strcmp(full, streamed) != 0;
        free(full);
        free(streamed);
    }
    CHECKF(bad == 0, "%d random sequences stream differently from decode", bad);
    /* byte fallback: characters outside the 512-token vocabulary */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(sp_tokenizer_encode(tok, "\xe2\x82\xac!", 4, 0, 1, &ids, &n, &err) == SP_OK);
    char *back = decode(tok, ids, n);
    CHECKF(back && !strcmp(back, "\xe2\x82\xac!"), "round trip gives \"%s\"", back);
    free(back);
    free(ids);
    sp_tokenizer_free(tok);
    json_decref(runs);
    /* a GGUF file that is not one */
    CHECK(sp_tokenizer_load(&tok, SP_SHARED_DIR "/models/README.md", &err) != SP_OK);
    return check_summary("test_tokenizer_gguf");
}
