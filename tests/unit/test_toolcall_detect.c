/* Format detection from the real chat templates (gemma3, llama3_1, qwen3 from
 * scripts/fetch-tokenizers.sh), from Gemma 4 / DeepSeek-style markers, and
 * the "prompt opened a reasoning block" rule. */
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "chat/template.h"
#include "chat/toolcall.h"
#include "check.h"

static void check_model(const char *root, const char *name, sp_tool_format want_tools,
                        sp_think_format want_think) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    char *src = NULL;
    sp_error err = {0};
    if (sp_chat_template_load(dir, &src, NULL, NULL, &err) != SP_OK || !src) {
        CHECKF(0, "%s: no chat template (run scripts/fetch-tokenizers.sh): %s", dir, err.msg);
        return;
    }
    sp_tool_format t;
    sp_think_format k;
    sp_chat_detect_formats(src, &t, &k);
    CHECKF(t == want_tools, "%s: tools %s, want %s", name, sp_tool_format_name(t),
           sp_tool_format_name(want_tools));
    CHECKF(k == want_think, "%s: think %d, want %d", name, (int)k, (int)want_think);
    free(src);
}

int main(void) {
    const char *env = getenv("SP_TOKENIZERS_DIR");
    const char *root = env && *env ? env : SP_SOURCE_DIR "/build/tokenizers";
    check_model(root, "qwen3", SP_TOOLS_HERMES, SP_THINK_TAGS);
    check_model(root, "llama3_1", SP_TOOLS_LLAMA3, SP_THINK_NONE);
    check_model(root, "gemma3", SP_TOOLS_JSON, SP_THINK_NONE);

    sp_tool_format t;
    sp_think_format k;
    sp_chat_detect_formats("{{ '<|turn>model\\n' }}<|tool_call>call:{{ n }}<tool_call|>"
                           "<|channel>thought\\n<channel|>",
                           &t, &k);
    CHECK(t == SP_TOOLS_GEMMA4 && k == SP_THINK_GEMMA4);
    sp_chat_detect_formats("{{ '<｜Assistant｜><think>\\n' }}", &t, &k);
    CHECK(t == SP_TOOLS_JSON && k == SP_THINK_TAGS);
    sp_chat_detect_formats(NULL, &t, &k);
    CHECK(t == SP_TOOLS_JSON && k == SP_THINK_NONE);

    const char *p1 = "<|im_start|>assistant\n<think>\n";
    const char *p2 = "<|im_start|>assistant\n<think>\n\n</think>\n\n";
    const char *p3 = "<|turn>model\n<|channel>thought\n";
    CHECK(sp_chat_prompt_opens_reasoning(SP_THINK_TAGS, p1, strlen(p1)) == 1);
    CHECK(sp_chat_prompt_opens_reasoning(SP_THINK_TAGS, p2, strlen(p2)) == 0);
    CHECK(sp_chat_prompt_opens_reasoning(SP_THINK_GEMMA4, p3, strlen(p3)) == 1);
    CHECK(sp_chat_prompt_opens_reasoning(SP_THINK_NONE, p1, strlen(p1)) == 0);

    sp_tool_format f;
    CHECK(sp_tool_format_from_name("gemma4", &f) == 0 && f == SP_TOOLS_GEMMA4);
    CHECK(sp_tool_format_from_name("none", &f) == 0 && f == SP_TOOLS_NONE);
    CHECK(sp_tool_format_from_name("xml", &f) == -1);
    CHECK(sp_chat_formats_need_special(SP_TOOLS_GEMMA4, SP_THINK_NONE));
    CHECK(!sp_chat_formats_need_special(SP_TOOLS_HERMES, SP_THINK_TAGS));
    return check_summary("test_toolcall_detect");
}
