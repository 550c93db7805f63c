/* Fuzz target: bytes as a Jinja chat template [FUZZ_SEP JSON] ->
 * sp_template_parse, then sp_template_render. The JSON part is the render
 * context when it is an object, the messages when it is an array (wrapped as
 * transformers does by sp_chat_template_context); without it a short
 * conversation is used. Must never crash or hang: the interpreter caps loops,
 * recursion and output (a hang shows up as a libFuzzer timeout).
 * Beyond "no crash": a parsed template is immutable, so rendering it twice
 * gives the same result; errors carry a message. */
#include "fuzz_common.h"

#include "chat/template.h"

static json_t *fuzz_tpl_context(const uint8_t *p, size_t n) {
    json_t *j = p ? json_loadb((const char *)p, n, 0, NULL) : NULL;
    if (json_is_object(j)) return j;
    json_t *msgs = json_is_array(j) ? j : NULL;
    if (!msgs) {
        json_decref(j);
        msgs = json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]", "role", "system", "content",
                         "Be brief.", "role", "user", "content", "Hi <b>there</b>", "role",
                         "assistant", "content", "Hello!");
    }
    json_t *kw = json_pack("{s:b}", "enable_thinking", 0);
    json_t *ctx = sp_chat_template_context(msgs, NULL, 1, "<s>", "</s>", kw);
    json_decref(kw);
    json_decref(msgs);
    return ctx;
}

int fuzz_template(const uint8_t *data, size_t size) {
    size_t len1, len2;
    const uint8_t *p2;
    fuzz_split(data, size, &len1, &p2, &len2);
    char *src = fuzz_strndup(data, len1);
    sp_template *t = NULL;
    sp_error err = {0};
    sp_status s = sp_template_parse(&t, src, &err);
    free(src);
    if (s != SP_OK) {
        FUZZ_ASSERT(t == NULL && err.msg[0], "failed parse must set an error and no template");
        return 0;
    }
    json_t *ctx = fuzz_tpl_context(p2, len2);
    char *out1 = NULL, *out2 = NULL;
    sp_error e1 = {0}, e2 = {0};
    sp_status s1 = sp_template_render(t, ctx, &out1, &e1);
    sp_status s2 = sp_template_render(t, ctx, &out2, &e2);
    FUZZ_ASSERT(s1 == s2, "render twice: %s then %s", sp_status_name(s1), sp_status_name(s2));
    if (s1 == SP_OK && s2 == SP_OK)
        FUZZ_ASSERT(out1 && out2 && !strcmp(out1, out2), "render twice gave different text");
    if (s1 != SP_OK) FUZZ_ASSERT(e1.msg[0], "render failed without a message");
    free(out1);
    free(out2);
    json_decref(ctx);
    sp_template_free(t);
    return 0;
}

#ifndef FUZZ_REGRESSION
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_template(data, size);
}
#endif
