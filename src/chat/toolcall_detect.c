/* Which parsers a model needs, read from its chat template's markers, and
 * where its generation prompt leaves the output (inside a reasoning block?). */
#include <string.h>

#include "chat/toolcall_internal.h"

void sp_chat_detect_formats(const char *src, sp_tool_format *tools, sp_think_format *think) {
    *tools = SP_TOOLS_JSON;
    *think = SP_THINK_NONE;
    if (!src) return;
    if (strstr(src, "<|tool_call>"))
        *tools = SP_TOOLS_GEMMA4;
    else if (strstr(src, "<tool_call>"))
        *tools = SP_TOOLS_HERMES;
    else if (strstr(src, "<|python_tag|>") || strstr(src, "<|start_header_id|>"))
        *tools = SP_TOOLS_LLAMA3;
    if (strstr(src, "<|channel>"))
        *think = SP_THINK_GEMMA4;
    else if (strstr(src, "<think>") || strstr(src, "</think>"))
        *think = SP_THINK_TAGS;
}

static const char *const names[] = {"none", "hermes", "llama3", "gemma4", "json"};

int sp_tool_format_from_name(const char *name, sp_tool_format *out) {
    for (int i = 0; i < 5; i++) {
        if (!strcmp(name, names[i])) {
            *out = (sp_tool_format)i;
            return 0;
        }
    }
    return -1;
}

const char *sp_tool_format_name(sp_tool_format f) {
    return (unsigned)f < 5 ? names[f] : "?";
}

/* s[0..n) ends with m, ignoring trailing whitespace. */
static int ends_with(const char *s, size_t n, const char *m) {
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
    size_t ml = strlen(m);
    return n >= ml && !memcmp(s + n - ml, m, ml);
}

int sp_chat_prompt_opens_reasoning(sp_think_format f, const char *prompt, size_t len) {
    if (f == SP_THINK_TAGS) return ends_with(prompt, len, "<think>");
    if (f == SP_THINK_GEMMA4) return ends_with(prompt, len, "<|channel>thought");
    return 0;
}

int sp_chat_formats_need_special(sp_tool_format tools, sp_think_format think) {
    return tools == SP_TOOLS_GEMMA4 || tools == SP_TOOLS_LLAMA3 || think == SP_THINK_GEMMA4;
}
