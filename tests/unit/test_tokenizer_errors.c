/* Malformed tokenizer.json / tokenizer_config.json files give a named error:
 * the status class, the file, and the JSON path (or line/column). */
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

#define OK_MODEL                                                                                   \
    "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a " \
    "b\"]}"

/* Loads json (+ config) and expects status st with every needle in the message. */
static void expect_error(const char *json, const char *config, sp_status want, const char *n1,
                         const char *n2) {
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", tmpdir);
    unlink(path);
    write_file("tokenizer.json", json);
    if (config) write_file("tokenizer_config.json", config);
    sp_tokenizer *tok = NULL;
    sp_error err = {0};
    sp_status st = sp_tokenizer_load_dir(&tok, tmpdir, &err);
    CHECKF(st == want, "want %s, got %s (%s) for %.60s", sp_status_name(want), sp_status_name(st),
           err.msg, json);
    CHECKF(tok == NULL, "tokenizer returned on error");
    CHECKF(strstr(err.msg, n1) != NULL, "\"%s\" lacks \"%s\"", err.msg, n1);
    if (n2) CHECKF(strstr(err.msg, n2) != NULL, "\"%s\" lacks \"%s\"", err.msg, n2);
    sp_tokenizer_free(tok);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sp_tok_err_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;

    /* sanity: the base document loads */
    write_file("tokenizer.json", "{" OK_MODEL "}");
    sp_tokenizer *tok = NULL;
    sp_error err = {0};
    CHECKF(sp_tokenizer_load_dir(&tok, tmpdir, &err) == SP_OK, "%s", err.msg);
    sp_tokenizer_free(tok);

    expect_error("{\"model\": {\n  \"type\": \"BPE\",,\n}}", NULL, SP_EFORMAT, "tokenizer.json",
                 "line 2");
    expect_error("not json at all", NULL, SP_EFORMAT, "tokenizer.json", "line 1");
    expect_error("[1, 2]", NULL, SP_EFORMAT, "tokenizer.json", "object");
    expect_error("{}", NULL, SP_EFORMAT, "tokenizer.json", "model");
    expect_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", NULL, SP_EUNSUPPORTED,
                 "model.type", "Unigram");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": 5}}", NULL,
                 SP_EFORMAT, "model.merges", "array");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"aa\": 1}, \"merges\": "
                 "[\"a a\", 3]}}",
                 NULL, SP_EFORMAT, "model.merges[1]", NULL);
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a  a\"]}}",
                 NULL, SP_EFORMAT, "model.merges[0]", "one space");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a x\"]}}",
                 NULL, SP_EFORMAT, "model.merges[0]", "not in the vocab");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}", NULL,
                 SP_EFORMAT, "model.vocab[\"a\"]", NULL);
    expect_error(
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999999}, \"merges\": []}}", NULL,
        SP_EFORMAT, "model.vocab[\"a\"]", NULL);
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"zero\"}, \"merges\": []}}",
                 NULL, SP_EFORMAT, "model.vocab[\"a\"]", NULL);
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}", NULL,
                 SP_EFORMAT, "model.vocab", NULL);
    expect_error("{" OK_MODEL ", \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
                 "{\"type\": \"Digits\"}, {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"},"
                 " \"behavior\": \"Isolated\"}]}}",
                 NULL, SP_EFORMAT, "pre_tokenizer.pretokenizers[1].pattern", "regex");
    expect_error("{" OK_MODEL ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\":"
                 " \"x\"}, \"behavior\": \"Sideways\"}}",
                 NULL, SP_EFORMAT, "pre_tokenizer", "behavior");
    expect_error("{" OK_MODEL ", \"pre_tokenizer\": {\"type\": \"UnicodeScripts\"}}", NULL,
                 SP_EUNSUPPORTED, "pre_tokenizer.type", "UnicodeScripts");
    expect_error("{" OK_MODEL ", \"normalizer\": {\"type\": \"Precompiled\"}}", NULL,
                 SP_EUNSUPPORTED, "normalizer.type", "Precompiled");
    expect_error("{" OK_MODEL ", \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{}]}}", NULL,
                 SP_EFORMAT, "decoder.decoders[0]", NULL);
    expect_error("{" OK_MODEL ", \"added_tokens\": [{\"id\": \"x\", \"content\": \"<s>\"}]}", NULL,
                 SP_EFORMAT, "added_tokens[0]", NULL);
    expect_error("{" OK_MODEL ", \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\":"
                 " [{\"SpecialToken\": {\"id\": \"<s>\"}}], \"special_tokens\": {}}}",
                 NULL, SP_EFORMAT, "post_processor.single[0]", NULL);
    expect_error("{" OK_MODEL "}", "{\"bos_token\": ", SP_EFORMAT, "tokenizer_config.json", "line");
    expect_error("{" OK_MODEL "}", "{\"chat_template\": 7}", SP_EFORMAT, "tokenizer_config.json",
                 "chat_template");

    /* a missing folder, and a file that is not a folder */
    CHECK(sp_tokenizer_load_dir(&tok, "/nonexistent/dir", &err) == SP_ENOTFOUND);
    CHECK(strstr(err.msg, "/nonexistent/dir") != NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", tmpdir);
    CHECK(sp_tokenizer_load_dir(&tok, path, &err) != SP_OK);
    unlink(path);
    CHECK(sp_tokenizer_load_dir(&tok, tmpdir, &err) == SP_ENOTFOUND);
    CHECK(strstr(err.msg, "tokenizer.json") != NULL);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CHECK(system(cmd) == 0);
    return check_summary("test_tokenizer_errors");
}
