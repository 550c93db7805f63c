/* JSON helpers: getters on the llama fixture's config.json (values known from
 * the file), absent vs null vs wrong type, and parse errors with positions. */
#include <string.h>

#include "check.h"
#include "formats/json.h"

static void test_config(void) {
    json_t *cfg = NULL;
    sp_error err = {0};
    const char *path = SP_SHARED_DIR "/fixtures/llama/config.json";
    CHECKF(sp_json_load_file(&cfg, path, &err) == SP_OK, "%s", err.msg);
    if (!cfg) return;
    int64_t i = 0;
    double d = 0;
    int b = -1;
    const char *s = NULL;
    CHECK(sp_json_int(cfg, "hidden_size", 0, 1, &i, "config.json", &err) == SP_OK && i == 64);
    CHECK(sp_json_int(cfg, "num_key_value_heads", 0, 1, &i, "config.json", &err) == SP_OK &&
          i == 2);
    CHECK(sp_json_num(cfg, "rms_norm_eps", 0, 1, &d, "config.json", &err) == SP_OK && d == 1e-5);
    CHECK(sp_json_num(cfg, "hidden_size", 0, 1, &d, "config.json", &err) == SP_OK && d == 64.0);
    CHECK(sp_json_bool(cfg, "tie_word_embeddings", 1, 1, &b, "config.json", &err) == SP_OK &&
          b == 0);
    CHECK(sp_json_str(cfg, "model_type", NULL, 1, &s, "config.json", &err) == SP_OK &&
          strcmp(s, "llama") == 0);
    const json_t *rp = NULL, *arch = NULL;
    CHECK(sp_json_obj(cfg, "rope_parameters", 1, &rp, "config.json", &err) == SP_OK && rp);
    CHECK(sp_json_num(rp, "rope_theta", 0, 1, &d, "config.json:rope_parameters", &err) == SP_OK &&
          d == 10000.0);
    CHECK(sp_json_arr(cfg, "architectures", 1, &arch, "config.json", &err) == SP_OK &&
          json_array_size(arch) == 1);
    /* real where an int is required */
    CHECK(sp_json_int(cfg, "rms_norm_eps", 0, 1, &i, "config.json", &err) == SP_EFORMAT);
    CHECKF(strstr(err.msg, "config.json.rms_norm_eps") &&
               strstr(err.msg, "expected an integer, got real"),
           "%s", err.msg);
    CHECK(sp_json_num(rp, "rope_type", 0, 1, &d, "config.json:rope_parameters", &err) ==
          SP_EFORMAT);
    CHECKF(strstr(err.msg, "config.json:rope_parameters.rope_type: expected a number, got string"),
           "%s", err.msg);
    CHECK(sp_json_str(cfg, "hidden_size", NULL, 0, &s, "config.json", &err) == SP_EFORMAT);
    CHECK(sp_json_bool(cfg, "model_type", 0, 0, &b, "config.json", &err) == SP_EFORMAT);
    CHECK(sp_json_obj(cfg, "architectures", 0, &rp, "config.json", &err) == SP_EFORMAT);
    /* absent: default or ENOTFOUND */
    CHECK(sp_json_int(cfg, "sliding_window", 4096, 0, &i, "config.json", &err) == SP_OK &&
          i == 4096);
    CHECK(sp_json_int(cfg, "sliding_window", 4096, 1, &i, "config.json", &err) == SP_ENOTFOUND);
    CHECKF(strstr(err.msg, "config.json.sliding_window: missing"), "%s", err.msg);
    CHECK(sp_json_obj(cfg, "rope_scaling", 0, &rp, "config.json", &err) == SP_OK && rp == NULL);
    CHECK(sp_json_int_range(cfg, "hidden_size", 0, 1, 1, 32, &i, "config.json", &err) == SP_ERANGE);
    CHECK(sp_json_int_range(cfg, "hidden_size", 0, 1, 1, 64, &i, "config.json", &err) == SP_OK);
    /* int or list */
    int64_t ids[4];
    int n = -1;
    CHECK(sp_json_int_list(cfg, "eos_token_id", 1, ids, 4, &n, "config.json", &err) == SP_OK &&
          n == 1 && ids[0] == 2);
    CHECK(sp_json_int(NULL, "x", 5, 0, &i, NULL, &err) == SP_OK && i == 5);
    json_decref(cfg);
}

static void test_parse(void) {
    json_t *v = NULL;
    sp_error err = {0};
    const char *text =
        "{\"a\": null, \"b\": [1, 2, 3], \"c\": [1.5, 2], \"d\": [1, \"x\"], \"e\": 2.0}";
    CHECK(sp_json_parse(&v, text, strlen(text), "doc", &err) == SP_OK);
    int64_t i = 0, ids[2];
    double f[4];
    int n = 0;
    /* null counts as absent */
    CHECK(sp_json_int(v, "a", 9, 0, &i, "doc", &err) == SP_OK && i == 9);
    CHECK(sp_json_int(v, "a", 9, 1, &i, "doc", &err) == SP_ENOTFOUND);
    /* integral reals are still not integers */
    CHECK(sp_json_int(v, "e", 0, 1, &i, "doc", &err) == SP_EFORMAT);
    CHECK(sp_json_int_list(v, "b", 1, ids, 2, &n, "doc", &err) == SP_ERANGE);
    CHECK(sp_json_int_list(v, "d", 1, ids, 2, &n, "doc", &err) == SP_EFORMAT &&
          strstr(err.msg, "doc.d[1]"));
    CHECK(sp_json_num_list(v, "c", 1, f, 4, 2, &n, "doc", &err) == SP_OK && n == 2 && f[0] == 1.5 &&
          f[1] == 2);
    CHECK(sp_json_num_list(v, "c", 1, f, 4, 3, &n, "doc", &err) == SP_EFORMAT);
    CHECK(sp_json_num_list(v, "d", 1, f, 4, -1, &n, "doc", &err) == SP_EFORMAT &&
          strstr(err.msg, "doc.d[1]"));
    json_decref(v);
    const char *bad = "{\n  \"a\": 1,\n  \"b\": ]\n}";
    CHECK(sp_json_parse(&v, bad, strlen(bad), "bad.json", &err) == SP_EFORMAT && v == NULL);
    CHECKF(strstr(err.msg, "bad.json: invalid JSON at line 3 column"), "%s", err.msg);
    const char *dup = "{\"a\": 1, \"a\": 2}";
    CHECK(sp_json_parse(&v, dup, strlen(dup), "dup.json", &err) == SP_EFORMAT);
    CHECK(sp_json_load_file(&v, "/nonexistent/config.json", &err) == SP_EIO &&
          strstr(err.msg, "/nonexistent/config.json"));
}

int main(void) {
    test_config();
    test_parse();
    return check_summary("test_formats_json");
}
