/* Fuzz target: bytes as tokenizer.json [FUZZ_SEP tokenizer_config.json] in
 * a scratch directory -> sp_tokenizer_load_dir. A tokenizer that loads is
 * then used: probe texts are encoded (with and without special-token
 * parsing and the post-processor), decoded, streamed through the
 * detokenizer, and every vocabulary entry is looked up. Beyond "no crash":
 * the streaming detokenizer agrees with decode, ids are in range. */
#include "fuzz_common.h"

#include <jansson.h>

#include "tokenizer/tokenizer.h"

/* Plain ASCII, digits, punctuation, newlines, multi-byte UTF-8 (CJK,
 * emoji), the SentencePiece space mark and likely special tokens. */
static const char *const fuzz_tokload_probes[] = {
    "Hello, world! It's 2024.\n\n  indented\ttab",
    "\xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 caf\xc3\xa9 \xe2\x96\x81x",
    "<s><|im_start|>user\n<bos>hi</s><|endoftext|><unk>",
    "",
};

static void fuzz_tokload_use(const sp_tokenizer *tok, const char *text, int add, int parse) {
    sp_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (sp_tokenizer_encode(tok, text, strlen(text), add, parse, &ids, &n, &err) != SP_OK) {
        free(ids);
        return;
    }
    int vocab = sp_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < n; i++)
        FUZZ_ASSERT(ids[i] >= 0 && ids[i] < vocab, "id %d outside the vocabulary of %d",
                    (int)ids[i], vocab);
    char *whole = NULL;
    size_t whole_len = 0;
    sp_status ds = sp_tokenizer_decode(tok, ids, n, 0, &whole, &whole_len, &err);
#ifdef FUZZ_WORKAROUND_EMPTY_FLUSH /* see fuzz_common.h */
    if (n == 0) {
        free(whole);
        free(ids);
        return;
    }
#endif
    /* streamed: concatenation equals decode */
    sp_detok *dt = sp_detok_new(tok, 0);
    size_t cap = 64, len = 0;
    char *cat = malloc(cap);
    sp_status ss = dt ? SP_OK : SP_ENOMEM;
    for (size_t i = 0; i <= n && ss == SP_OK; i++) {
        char *piece = NULL;
        size_t pl = 0;
        ss = i < n ? sp_detok_push(dt, ids[i], &piece, &pl, &err)
                   : sp_detok_flush(dt, &piece, &pl, &err);
        if (ss == SP_OK && len + pl + 1 > cap) cat = realloc(cat, cap = 2 * (len + pl + 1));
        if (ss == SP_OK) memcpy(cat + len, piece, pl), len += pl;
        free(piece);
    }
    if (ds == SP_OK && ss == SP_OK)
        FUZZ_ASSERT(len == whole_len && !memcmp(cat, whole, len), "streamed %zu bytes, decoded %zu",
                    len, whole_len);
    sp_detok_free(dt);
    free(cat);
    free(whole);
    free(ids);
}

static void fuzz_tokload_vocab(const sp_tokenizer *tok) {
    int vocab = sp_tokenizer_vocab_size(tok);
    FUZZ_ASSERT(vocab >= 0, "vocab %d", vocab);
    for (int32_t id = -1; id <= vocab; id++) {
        const char *p = sp_tokenizer_piece(tok, id);
        (void)sp_tokenizer_is_special(tok, id);
        if (id < 0 || id >= vocab) continue;
        if (p) (void)sp_tokenizer_token_id(tok, p);
    }
    int32_t bos = sp_tokenizer_bos_id(tok), eos = sp_tokenizer_eos_id(tok);
    FUZZ_ASSERT(bos >= -1 && bos < vocab, "bos %d", (int)bos);
    FUZZ_ASSERT(eos >= -1 && eos < vocab, "eos %d", (int)eos);
    (void)sp_tokenizer_bos_token(tok);
    (void)sp_tokenizer_eos_token(tok);
    (void)sp_tokenizer_chat_template(tok);
}

#ifdef FUZZ_WORKAROUND_DUP_VOCAB_ID
/* 1 if model.vocab maps two pieces to one id (see fuzz_common.h). */
static int fuzz_tokload_dup_ids(const uint8_t *data, size_t size) {
    json_t *root = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_t *vocab = json_object_get(json_object_get(root, "model"), "vocab");
    json_t *seen = json_object();
    const char *k;
    json_t *v;
    int dup = 0;
    json_object_foreach(vocab, k, v) {
        char id[32];
        snprintf(id, sizeof id, "%lld", (long long)json_integer_value(v));
        dup |= json_object_get(seen, id) != NULL;
        json_object_set_new(seen, id, json_true());
    }
    json_decref(seen);
    json_decref(root);
    return dup;
}
#endif

int fuzz_tokenizer_load(const uint8_t *data, size_t size) {
    size_t len1, len2;
    const uint8_t *p2;
    fuzz_split(data, size, &len1, &p2, &len2);
#ifdef FUZZ_WORKAROUND_DUP_VOCAB_ID
    if (fuzz_tokload_dup_ids(data, len1)) return 0;
#endif
    fuzz_write("tokenizer.json", data, len1);
    if (p2)
        fuzz_write("tokenizer_config.json", p2, len2);
    else
        fuzz_remove("tokenizer_config.json");
    sp_tokenizer *tok = NULL;
    sp_error err = {0};
    if (sp_tokenizer_load_dir(&tok, fuzz_dir(), &err) != SP_OK) {
        FUZZ_ASSERT(tok == NULL && err.msg[0], "failed load must set an error and no handle");
        return 0;
    }
    fuzz_tokload_vocab(tok);
    for (size_t i = 0; i < sizeof fuzz_tokload_probes / sizeof *fuzz_tokload_probes; i++)
        for (int mode = 0; mode < 4; mode++)
            fuzz_tokload_use(tok, fuzz_tokload_probes[i], mode & 1, mode >> 1);
    sp_tokenizer_free(tok);
    return 0;
}

#ifndef FUZZ_REGRESSION
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_tokenizer_load(data, size);
}
#endif
