/* Real tokenizers (Gemma 3, Llama 3.1, Qwen 3) against the transformers
 * fixtures in shared/fixtures/tokenizers: encode with and without special
 * tokens, decode, chat prompts, and the streaming detokenizer. The
 * tokenizer.json files come from scripts/fetch-tokenizers.sh. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tokenizer/tokenizer.h"

static const char *tokenizers_dir(char *buf, size_t n) {
    const char *env = getenv("SP_TOKENIZERS_DIR");
    if (env && *env) return env;
    snprintf(buf, n, "%s/build/tokenizers", SP_SOURCE_DIR);
    return buf;
}

static int ids_equal(const int32_t *a, size_t na, json_t *want) {
    if (na != json_array_size(want)) return 0;
    for (size_t i = 0; i < na; i++)
        if (a[i] != json_integer_value(json_array_get(want, i))) return 0;
    return 1;
}

static void print_ids(const char *label, const int32_t *a, size_t n) {
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n && i < 60; i++) fprintf(stderr, " %d", a[i]);
    fprintf(stderr, "\n");
}

static void check_encode(const sp_tokenizer *tok, const char *name, json_t *text_json,
                         int add_special, json_t *want) {
    const char *text = json_string_value(text_json);
    int32_t *ids = NULL;
    size_t n = 0;
    sp_error err = {0};
    sp_status st = sp_tokenizer_encode(tok, text, json_string_length(text_json), add_special, 1,
                                       &ids, &n, &err);
    CHECKF(st == SP_OK, "%s: encode failed: %s", name, err.msg);
    int ok = st == SP_OK && ids_equal(ids, n, want);
    CHECKF(ok, "%s: encode(add_special=%d) of \"%.80s\" differs", name, add_special, text);
    if (!ok) {
        print_ids("got ", ids, n);
        fprintf(stderr, "  want: %s\n", json_dumps(want, JSON_COMPACT));
    }
    free(ids);
}

/* Full decode, and the streaming detokenizer fed one id at a time. */
static void check_decode(const sp_tokenizer *tok, const char *name, json_t *ids_json,
                         json_t *want_json) {
    const char *want = json_string_value(want_json);
    size_t want_len = json_string_length(want_json);
    size_t n = json_array_size(ids_json);
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(ids_json, i));
    char *text = NULL;
    size_t len = 0;
    sp_error err = {0};
    CHECK(sp_tokenizer_decode(tok, ids, n, 0, &text, &len, &err) == SP_OK);
    if (want)
        CHECKF(text && len == want_len && memcmp(text, want, len) == 0,
               "%s: decode gives \"%.80s\", want \"%.80s\"", name, text ? text : "", want);
    for (int skip = 0; skip < 2; skip++) {
        char *full = NULL;
        size_t full_len = 0;
        sp_tokenizer_decode(tok, ids, n, skip, &full, &full_len, &err);
        sp_detok *d = sp_detok_new(tok, skip);
        size_t cap = 64, used = 0;
        char *acc = malloc(cap);
        for (size_t i = 0; i <= n; i++) {
            char *piece = NULL;
            size_t plen = 0;
            sp_status st = i < n ? sp_detok_push(d, ids[i], &piece, &plen, &err)
                                 : sp_detok_flush(d, &piece, &plen, &err);
            CHECK(st == SP_OK);
            while (used + plen + 1 > cap) acc = realloc(acc, cap *= 2);
            memcpy(acc + used, piece, plen);
            used += plen;
            free(piece);
        }
        CHECKF(used == full_len && memcmp(acc, full, used) == 0,
               "%s: streaming (skip_special=%d) gives \"%.*s\", decode \"%s\"", name, skip,
               (int)used, acc, full);
        sp_detok_free(d);
        free(acc);
        free(full);
    }
    free(text);
    free(ids);
}

static void run_fixture(const char *dir, const char *name) {
    char path[1024], tdir[1024];
    snprintf(path, sizeof path, "%s/fixtures/tokenizers/%s.json", SP_SHARED_DIR, name);
    snprintf(tdir, sizeof tdir, "%s/%s", dir, name);
    json_error_t je;
    json_t *fx = json_load_file(path, JSON_ALLOW_NUL, &je);
    CHECKF(fx != NULL, "%s: %s", path, je.text);
    if (!fx) return;
    sp_tokenizer *tok = NULL;
    sp_error err = {0};
    sp_status st = sp_tokenizer_load_dir(&tok, tdir, &err);
    CHECKF(st == SP_OK, "%s: %s (run scripts/fetch-tokenizers.sh)", name, err.msg);
    if (st != SP_OK) {
        json_decref(fx);
        return;
    }
    json_t *cases = json_object_get(fx, "encode");
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        json_t *text = json_object_get(c, "text");
        check_encode(tok, name, text, 0, json_object_get(c, "ids"));
        check_encode(tok, name, text, 1, json_object_get(c, "ids_with_special"));
        check_decode(tok, name, json_object_get(c, "ids"), json_object_get(c, "decoded"));
        check_decode(tok, name, json_object_get(c, "ids_with_special"), NULL);
    }
    json_t *chats = json_object_get(fx, "chat");
    for (size_t i = 0; i < json_array_size(chats); i++) {
        json_t *c = json_array_get(chats, i);
        json_t *text = json_object_get(c, "text");
        check_encode(tok, name, text, 0, json_object_get(c, "ids"));
        check_decode(tok, name, json_object_get(c, "ids"), text);
    }
    fprintf(stderr, "%s: %zu encode cases, %zu chat cases\n", name, json_array_size(cases),
            json_array_size(chats));
    sp_tokenizer_free(tok);
    json_decref(fx);
}

int main(void) {
    char buf[1024];
    const char *dir = tokenizers_dir(buf, sizeof buf);
    run_fixture(dir, "gemma3");
    run_fixture(dir, "llama3_1");
    run_fixture(dir, "qwen3");
    return check_summary("test_tokenizer_fixtures");
}
