/* The request side of tool calling: the fixtures' tool conversations
 * (transformers renders, arguments as dicts) sent the way an OpenAI client
 * sends them — arguments as a JSON string, assistant content null — go
 * through the server's message handling (chat_message_tool_calls) and the
 * model's template, and must render byte for byte as transformers did. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"
#include "check.h"
#include "server/server_impl.h"

/* The message as a client sends it. */
static json_t *openai_shape(json_t *m) {
    json_t *c = json_deep_copy(m);
    json_t *calls = json_object_get(c, "tool_calls");
    size_t i;
    json_t *tc;
    json_array_foreach(calls, i, tc) {
        json_t *fn = json_object_get(tc, "function");
        char *s = json_dumps(json_object_get(fn, "arguments"), JSON_COMPACT); /* JSON.stringify */
        json_object_set_new(fn, "arguments", json_string(s));
        free(s);
    }
    if (calls && !strcmp(json_string_value(json_object_get(c, "content")), ""))
        json_object_set_new(c, "content", json_null());
    return c;
}

/* What params.c does: content null -> "", then the tool calls. */
static json_t *server_shape(json_t *m, size_t i) {
    json_t *c = json_copy(m);
    if (json_is_null(json_object_get(c, "content")))
        json_object_set_new(c, "content", json_string(""));
    api_error err = {0};
    CHECKF(chat_message_tool_calls(c, i, &err) == 0, "%s", err.message);
    return c;
}

static void run_model(const char *root, const char *name) {
    char fixture[512], dir[512];
    snprintf(fixture, sizeof fixture, "%s/fixtures/tokenizers/%s.json", SP_SHARED_DIR, name);
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    char *src = NULL, *bos = NULL, *eos = NULL;
    sp_error err = {0};
    sp_template *t = NULL;
    if (sp_chat_template_load(dir, &src, &bos, &eos, &err) != SP_OK || !src ||
        sp_template_parse(&t, src, &err) != SP_OK) {
        CHECKF(0, "%s: no usable template (run scripts/fetch-tokenizers.sh): %s", dir, err.msg);
        free(src), free(bos), free(eos);
        return;
    }
    json_t *fx = json_load_file(fixture, JSON_ALLOW_NUL, NULL);
    CHECKF(fx, "%s unreadable", fixture);
    size_t i, checked = 0;
    json_t *c;
    json_array_foreach(json_object_get(fx, "chat"), i, c) {
        json_t *msgs = json_object_get(c, "messages"), *tools = json_object_get(c, "tools");
        if (json_is_null(tools) || json_object_get(c, "error")) continue;
        json_t *sent = json_array();
        size_t k;
        json_t *m;
        json_array_foreach(msgs, k, m) {
            json_t *o = openai_shape(m);
            json_array_append_new(sent, server_shape(o, k));
            json_decref(o);
        }
        json_t *ctx = sp_chat_template_context(
            sent, tools, json_is_true(json_object_get(c, "add_generation_prompt")), bos, eos, NULL);
        char *out = NULL;
        sp_status st = sp_template_render(t, ctx, &out, &err);
        const char *want = json_string_value(json_object_get(c, "text"));
        CHECKF(st == SP_OK && want && !strcmp(out, want),
               "%s case %zu (%s): render differs\n--- want\n%s\n--- got\n%s", name, i,
               json_string_value(json_object_get(c, "name")), want, out ? out : err.msg);
        checked++;
        free(out);
        json_decref(ctx);
        json_decref(sent);
    }
    fprintf(stderr, "%s: %zu tool cases rendered as transformers does\n", name, checked);
    CHECKF(checked > 0, "%s: no tool cases", name);
    json_decref(fx);
    sp_template_free(t);
    free(src), free(bos), free(eos);
}

int main(void) {
    const char *env = getenv("SP_TOKENIZERS_DIR");
    const char *root = env && *env ? env : SP_SOURCE_DIR "/build/tokenizers";
    run_model(root, "qwen3");
    run_model(root, "llama3_1");
    run_model(root, "gemma3");
    return check_summary("test_toolcall_render");
}
