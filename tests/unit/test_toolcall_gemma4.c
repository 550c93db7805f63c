/* Gemma 4 outputs (spec/models.md 2.7): the thought channel
 * <|channel>thought\n...<channel|> and calls
 * <|tool_call>call:NAME{key:<|"|>text<|"|>,n:1}<tool_call|>, converted to
 * JSON arguments, in every chunking (toolcall_harness.h). */
#include "toolcall_harness.h"

#define Q "<|\"|>"

static const tc_case cases[] = {
    {.name = "thought + call",
     .tools = SP_TOOLS_GEMMA4,
     .think = SP_THINK_GEMMA4,
     .text = "<|channel>thought\nThe user asks for weather.<channel|><|tool_call>call:get_weather{"
             "city:" Q "Tokyo" Q ",days:3}<tool_call|>",
     .reasoning = "The user asks for weather.",
     .n_calls = 1,
     .call_name = {"get_weather"},
     .call_args = {"{\"city\":\"Tokyo\",\"days\":3}"}},
    {.name = "nested values, quotes and newlines in strings",
     .tools = SP_TOOLS_GEMMA4,
     .think = SP_THINK_GEMMA4,
     .text = "<|tool_call>call:search{query:" Q "a \"quoted\" {x}\nline\\" Q ",filters:{lang:" Q
             "en" Q ",tags:[" Q "a" Q "," Q "b" Q "]},exact:true,none:null}<tool_call|>",
     .n_calls = 1,
     .call_name = {"search"},
     .call_args = {"{\"query\":\"a \\\"quoted\\\" {x}\\nline\\\\\",\"filters\":{\"lang\":\"en\","
                   "\"tags\":[\"a\",\"b\"]},\"exact\":true,\"none\":null}"}},
    {.name = "content then two calls",
     .tools = SP_TOOLS_GEMMA4,
     .think = SP_THINK_GEMMA4,
     .text = "Checking.<|tool_call>call:a{}<tool_call|><|tool_call>call:b{n:1.5,s:" Q "<b>" Q
             "}<tool_call|>",
     .content = "Checking.",
     .n_calls = 2,
     .call_name = {"a", "b"},
     .call_args = {"{}", "{\"n\":1.5,\"s\":\"<b>\"}"}},
    {.name = "quoted keys",
     .tools = SP_TOOLS_GEMMA4,
     .think = SP_THINK_GEMMA4,
     .text = "<|tool_call>call:f{" Q "my key" Q ":" Q "v" Q "}<tool_call|>",
     .n_calls = 1,
     .call_name = {"f"},
     .call_args = {"{\"my key\":\"v\"}"}},
    {.name = "not call syntax degrades to content",
     .tools = SP_TOOLS_GEMMA4,
     .think = SP_THINK_GEMMA4,
     .text = "<|tool_call>get_weather(city=Tokyo)<tool_call|> done",
     .content = "<|tool_call>get_weather(city=Tokyo)<tool_call|> done",
     .malformed = 1},
    {.name = "prompt opened the thought channel",
     .tools = SP_TOOLS_GEMMA4,
     .think = SP_THINK_GEMMA4,
     .start_in_reasoning = 1,
     .text = "Let me think.\n<channel|>The answer.",
     .content = "The answer.",
     .reasoning = "Let me think."},
    {.name = "empty thought channel (thinking off)",
     .tools = SP_TOOLS_GEMMA4,
     .think = SP_THINK_GEMMA4,
     .text = "<|channel>thought\n<channel|>Hello <|x",
     .content = "Hello <|x"},
    {.name = "output ends inside a string",
     .tools = SP_TOOLS_GEMMA4,
     .think = SP_THINK_GEMMA4,
     .text = "<|tool_call>call:f{a:" Q "abc<|",
     .n_calls = 1,
     .call_name = {"f"},
     .call_args = {"{\"a\":\"abc<|"}},
};

int main(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) tc_check_case(&cases[i]);
    return check_summary("test_toolcall_gemma4");
}
