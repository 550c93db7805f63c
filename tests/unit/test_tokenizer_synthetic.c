/* Small hand-written tokenizer.json files for the paths the three real
 * tokenizers do not take: SentencePiece-style BPE (Llama 2 / Mistral:
 * Prepend + Replace normalizers, Strip decoder; Metaspace pre-tokenizer and
 * decoder), added-token lstrip / rstrip / single_word, Split behaviours,
 * ByteLevel with add_prefix_space and the GPT-2 regex. Expected ids follow
 * from the Hugging Face definitions by hand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tokenizer/tokenizer.h"

static char tmpdir[256];

static void write_file(const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static sp_tokenizer *make(const char *json, const char *config) {
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", tmpdir);
    unlink(path);
    write_file("tokenizer.json", json);
    if (config) write_file("tokenizer_config.json", config);
    sp_tokenizer *tok = NULL;
    sp_error err = {0};
    sp_status st = sp_tokenizer_load_dir(&tok, tmpdir, &err);
    CHECKF(st == SP_OK, "load: %s", err.msg);
    return tok;
}

/* Checks encode(text) == want (ids terminated by -1). */
static void expect_ids(const sp_tokenizer *tok, const char *text, int add_special,
                       int parse_special, const int32_t *want) {
    int32_t *ids = NULL;
    size_t n = 0, nw = 0;
    sp_error err = {0};
    while (want[nw] >= 0) nw++;
    CHECK(sp_tokenizer_encode(tok, text, strlen(text), add_special, parse_special, &ids, &n,
                              &err) == SP_OK);
    int same = n == nw && memcmp(ids, want, n * sizeof *ids) == 0;
    CHECKF(same, "encode \"%s\" (add=%d parse=%d)", text, add_special, parse_special);
    if (!same) {
        fprintf(stderr, "  got:");
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
}

/* Checks decode(ids) == want, and that streaming gives the same text. */
static void expect_text(const sp_tokenizer *tok, const int32_t *ids, int skip, const char *want) {
    size_t n = 0;
    while (ids[n] >= 0) n++;
    char *text = NULL;
    size_t len = 0;
    sp_error err = {0};
    CHECK(sp_tokenizer_decode(tok, ids, n, skip, &text, &len, &err) == SP_OK);
    CHECKF(text && !strcmp(text, want), "decode gives \"%s\", want \"%s\"", text, want);
    sp_detok *d = sp_detok_new(tok, skip);
    char acc[512] = "";
    for (size_t i = 0; i <= n; i++) {
        char *piece = NULL;
        size_t plen;
        if (i < n)
            CHECK(sp_detok_push(d, ids[i], &piece, &plen, &err) == SP_OK);
        else
            CHECK(sp_detok_flush(d, &piece, &plen, &err) == SP_OK);
        strncat(acc, piece, sizeof acc - strlen(acc) - 1);
        free(piece);
    }
    CHECKF(!strcmp(acc, want), "stream gives \"%s\", want \"%s\"", acc, want);
    sp_detok_free(d);
    free(text);
}

/* ids 3..258 are <0x00>..<0xFF>; the rest spell "hello", "world", "sw". */
static char *sp_vocab(void) {
    static char buf[16384];
    int n = snprintf(buf, sizeof buf, "{\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2");
    for (int b = 0; b < 256; b++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, ", \"<0x%02X>\": %d", b, 3 + b);
    snprintf(buf + n, sizeof buf - (size_t)n,
             ", \"\xe2\x96\x81\": 259, \"h\": 260, \"e\": 261, \"l\": 262, \"o\": 263,"
             " \"\xe2\x96\x81h\": 264, \"ll\": 265, \"\xe2\x96\x81he\": 266, \"llo\": 267,"
             " \"\xe2\x96\x81hello\": 268, \"w\": 269, \"r\": 270, \"d\": 271, \"s\": 275}");
    return buf;
}

#define SP_MERGES                                                                                  \
    "[\"\xe2\x96\x81 h\", \"l l\", [\"\xe2\x96\x81h\", \"e\"], \"ll o\", \"\xe2\x96\x81he llo\"]"

#define ADDED                                                                                      \
    "[{\"id\": 0, \"content\": \"<unk>\", \"special\": true, \"normalized\": false},"              \
    " {\"id\": 1, \"content\": \"<s>\", \"special\": true, \"normalized\": false},"                \
    " {\"id\": 2, \"content\": \"</s>\", \"special\": true, \"normalized\": false},"               \
    " {\"id\": 272, \"content\": \"<mask>\", \"special\": true, \"lstrip\": true},"                \
    " {\"id\": 273, \"content\": \"<r>\", \"special\": false, \"rstrip\": true, "                  \
    "\"normalized\": false},"                                                                      \
    " {\"id\": 274, \"content\": \"sw\", \"special\": false, \"single_word\": true, "              \
    "\"normalized\": false}]"

static void test_llama2_style(void) {
    char json[32768];
    snprintf(
        json, sizeof json,
        "{\"added_tokens\": %s,"
        " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": ["
        "   {\"type\": \"Prepend\", \"prepend\": \"\xe2\x96\x81\"},"
        "   {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": "
        "\"\xe2\x96\x81\"}]},"
        " \"pre_tokenizer\": null,"
        " \"post_processor\": {\"type\": \"TemplateProcessing\","
        "   \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}},"
        "                {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}],"
        "   \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [1], \"tokens\": [\"<s>\"]}}},"
        " \"decoder\": {\"type\": \"Sequence\", \"decoders\": ["
        "   {\"type\": \"Replace\", \"pattern\": {\"String\": \"\xe2\x96\x81\"}, \"content\": \" "
        "\"},"
        "   {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"},"
        "   {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]},"
        " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true,"
        "   \"byte_fallback\": true, \"vocab\": %s, \"merges\": %s}}",
        ADDED, sp_vocab(), SP_MERGES);
    sp_tokenizer *tok =
        make(json, "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\","
                   " \"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"},"
                   " {\"name\": \"default\", \"template\": \"D\"}]}");
    if (!tok) return;
    CHECK(sp_tokenizer_bos_id(tok) == 1 && sp_tokenizer_eos_id(tok) == 2);
    CHECK(!strcmp(sp_tokenizer_bos_token(tok), "<s>"));
    CHECK(sp_tokenizer_chat_template(tok) && !strcmp(sp_tokenizer_chat_template(tok), "D"));
    CHECK(sp_tokenizer_is_special(tok, 1) && !sp_tokenizer_is_special(tok, 268));
    expect_ids(tok, "hello", 1, 1, (const int32_t[]){1, 268, -1});
    expect_ids(tok, "hello hello", 0, 1, (const int32_t[]){268, 268, -1});
    /* é is not in the vocab: byte fallback <0xC3> <0xA9> */
    expect_ids(tok, "h\xc3\xa9", 0, 1, (const int32_t[]){264, 3 + 0xC3, 3 + 0xA9, -1});
    /* lstrip: the space before <mask> belongs to it */
    expect_ids(tok, "hello <mask> hello", 0, 1, (const int32_t[]){268, 272, 259, 268, -1});
    /* rstrip: the spaces after <r> belong to it */
    expect_ids(tok, "hello<r>  hello", 0, 1, (const int32_t[]){268, 273, 268, -1});
    /* single_word: "sw" only when not inside a word */
    expect_ids(tok, "sw hello", 0, 1, (const int32_t[]){274, 259, 268, -1});
    expect_ids(tok, "swhello", 0, 1, (const int32_t[]){259, 275, 269, 260, 261, 267, -1});
    /* parse_special=0: "<s>" is text (bytes for < and >) */
    expect_ids(tok, "<s>hello", 0, 0,
               (const int32_t[]){259, 3 + '<', 275, 3 + '>', 260, 261, 267, -1});
    /* Prepend applies to each stretch between added tokens */
    expect_ids(tok, "<s>hello", 0, 1, (const int32_t[]){1, 268, -1});
    expect_text(tok, (const int32_t[]){268, 268, -1}, 0, "hello hello");
    expect_text(tok, (const int32_t[]){1, 268, 268, -1}, 0, "<s> hello hello");
    expect_text(tok, (const int32_t[]){1, 268, 268, -1}, 1, "hello hello");
    /* Strip after Fuse removes one space of the whole text */
    expect_text(tok, (const int32_t[]){259, 259, 268, -1}, 0, "  hello");
    expect_text(tok, (const int32_t[]){264, 3 + 0xC3, 3 + 0xA9, 259, -1}, 0, "h\xc3\xa9 ");
    sp_tokenizer_free(tok);
}

static void test_metaspace_style(const char *split) {
    char json[32768];
    snprintf(json, sizeof json,
             "{\"added_tokens\": %s, \"normalizer\": null,"
             " \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"\xe2\x96\x81\","
             "   \"prepend_scheme\": \"first\", \"split\": %s},"
             " \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Metaspace\","
             "   \"replacement\": \"\xe2\x96\x81\", \"prepend_scheme\": \"first\"},"
             "   {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}]},"
             " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true,"
             "   \"byte_fallback\": true, \"vocab\": %s, \"merges\": %s}}",
             ADDED, split, sp_vocab(), SP_MERGES);
    sp_tokenizer *tok = make(json, "{\"add_bos_token\": true, \"bos_token\": \"<s>\"}");
    if (!tok) return;
    expect_ids(tok, "hello hello", 0, 1, (const int32_t[]){268, 268, -1});
    expect_ids(tok, "hello", 1, 1, (const int32_t[]){1, 268, -1}); /* from add_bos_token */
    /* "first": no ▁ for text that follows an added token */
    expect_ids(tok, "<s>hello", 0, 1, (const int32_t[]){1, 260, 261, 267, -1});
    expect_text(tok, (const int32_t[]){268, 268, -1}, 0, "hello hello");
    expect_text(tok, (const int32_t[]){1, 268, -1}, 0, "<s> hello");
    /* the first token loses every ▁ */
    expect_text(tok, (const int32_t[]){259, 268, -1}, 0, " hello");
    sp_tokenizer_free(tok);
}

/* Split on "-" with each behaviour, seen through merges of a-, -b, --. */
static void test_split(const char *behavior, int invert, const char *text, const int32_t *want) {
    char json[4096];
    snprintf(
        json, sizeof json,
        "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \"-\"},"
        "   \"behavior\": \"%s\", \"invert\": %s},"
        " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"-\": 2, \"a-\": 3,"
        "   \"-b\": 4, \"--\": 5, \"a-b\": 6}, \"merges\": [\"a -\", \"- b\", \"- -\", \"a- b\"]}}",
        behavior, invert ? "true" : "false");
    sp_tokenizer *tok = make(json, NULL);
    if (!tok) return;
    expect_ids(tok, text, 0, 1, want);
    sp_tokenizer_free(tok);
}

static void test_splits(void) {
    test_split("Isolated", 0, "a-b", (const int32_t[]){0, 2, 1, -1});
    test_split("Removed", 0, "a-b", (const int32_t[]){0, 1, -1});
    test_split("MergedWithPrevious", 0, "a-b", (const int32_t[]){3, 1, -1});
    test_split("MergedWithNext", 0, "a-b", (const int32_t[]){0, 4, -1});
    test_split("Contiguous", 0, "a--b", (const int32_t[]){0, 5, 1, -1});
    test_split("Isolated", 0, "a--b", (const int32_t[]){0, 2, 2, 1, -1});
    test_split("Removed", 1, "a-b", (const int32_t[]){2, -1});
    test_split("MergedWithPrevious", 0, "a--b", (const int32_t[]){3, 2, 1, -1});
}

/* GPT-2 style: ByteLevel with add_prefix_space and its own regex. */
static void test_gpt2_style(void) {
    const char *json =
        "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true,"
        "   \"use_regex\": true},"
        " \"decoder\": {\"type\": \"ByteLevel\"},"
        " \"model\": {\"type\": \"BPE\", \"vocab\": {\"h\": 0, \"e\": 1, \"l\": 2, \"o\": 3,"
        "   \"\xc4\xa0\": 4, \"w\": 5, \"r\": 6, \"d\": 7, \"\xc4\xa0h\": 8, \"\xc4\xa0w\": 9, "
        "\"'\": 10,"
        "   \"s\": 11, \"'s\": 12, \"1\": 13, \"\xc4\x8a\": 14},"
        "   \"merges\": [\"\xc4\xa0 h\", \"\xc4\xa0 w\", \"' s\"]}}";
    sp_tokenizer *tok = make(json, NULL);
    if (!tok) return;
    expect_ids(tok, "hello world", 0, 1, (const int32_t[]){8, 1, 2, 2, 3, 9, 3, 6, 2, 7, -1});
    /* 's is its own pre-token: no "o'" merge across it */
    expect_ids(tok, " w's\n", 0, 1, (const int32_t[]){9, 12, 14, -1});
    expect_text(tok, (const int32_t[]){8, 1, 2, 2, 3, 9, -1}, 0, " hello w");
    sp_tokenizer_free(tok);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sp_tok_synth_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_llama2_style();
    test_metaspace_style("false");
    test_metaspace_style("true");
    test_splits();
    test_gpt2_style();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CHECK(system(cmd) == 0);
    return check_summary("test_tokenizer_synthetic");
}
