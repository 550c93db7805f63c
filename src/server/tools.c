/* Tool calling on the request side: validating tools / tool_choice /
 * parallel_tool_calls and assistant tool_calls, and choosing how the output
 * is parsed (chatout.c applies it).
 *
 * Decisions (docs/api.md, "Tools and reasoning"):
 *  - assistant tool_calls[].function.arguments arrive as JSON strings (the
 *    OpenAI shape); a string that parses as a JSON object is handed to the
 *    template as that object, since templates (Qwen 3: `arguments | tojson`)
 *    are written for transformers, where arguments are dicts. vLLM and
 *    llama-server do the same.
 *  - tool_choice "none" leaves the tools out of the prompt and parses no
 *    calls; "required" and a named function are enforced by constrained
 *    decoding (engine/constrain.h), as vLLM and llama-server do with their
 *    grammars: the output is a call in the model's own format (hermes,
 *    llama3, gemma4, json), the name one of the tools (the named one), the
 *    arguments one JSON object (in gemma4's own syntax for it). "required" allows several
 *    calls unless parallel_tool_calls is false; a named function, one.
 *  - the output formats come from --tool-parser, else from what the model's
 *    own template writes when rendering a probe conversation with a tool call
 *    and with reasoning (its markers), else the generic JSON parser. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/log.h"
#include "server/server_impl.h"

static int fail_type(api_error *err, const char *path, const char *what) {
    api_fail(err, 400, path, "%s must be %s", path, what);
    return -1;
}

static int check_tool(const json_t *t, size_t i, api_error *err) {
    char path[96];
    snprintf(path, sizeof path, "tools[%zu]", i);
    if (!json_is_object(t)) return fail_type(err, path, "an object");
    json_t *type = json_object_get(t, "type");
    snprintf(path, sizeof path, "tools[%zu].type", i);
    if (type && !(json_is_string(type) && !strcmp(json_string_value(type), "function")))
        return fail_type(err, path, "\"function\"");
    json_t *fn = json_object_get(t, "function");
    snprintf(path, sizeof path, "tools[%zu].function", i);
    if (!json_is_object(fn)) return fail_type(err, path, "an object");
    json_t *name = json_object_get(fn, "name");
    snprintf(path, sizeof path, "tools[%zu].function.name", i);
    if (!json_is_string(name) || !json_string_length(name))
        return fail_type(err, path, "a non-empty string");
    json_t *params = json_object_get(fn, "parameters");
    snprintf(path, sizeof path, "tools[%zu].function.parameters", i);
    if (params && !json_is_null(params) && !json_is_object(params))
        return fail_type(err, path, "an object (a JSON Schema)");
    return 0;
}

static int has_tool(const json_t *tools, const char *name) {
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        const char *n = json_string_value(json_object_get(json_object_get(t, "function"), "name"));
        if (n && !strcmp(n, name)) return 1;
    }
    return 0;
}

static int check_tool_choice(const json_t *tc, const json_t *tools, int *choice, api_error *err) {
    *choice = TOOL_CHOICE_AUTO;
    if (!tc || json_is_null(tc)) return 0;
    size_t n_tools = tools ? json_array_size(tools) : 0;
    if (json_is_string(tc)) {
        const char *v = json_string_value(tc);
        if (!strcmp(v, "auto")) return 0;
        if (!strcmp(v, "none")) {
            *choice = TOOL_CHOICE_NONE;
            return 0;
        }
        if (!strcmp(v, "required")) {
            *choice = TOOL_CHOICE_REQUIRED;
            if (n_tools) return 0;
            api_fail(err, 400, "tool_choice", "tool_choice \"required\" needs tools");
            return -1;
        }
        return fail_type(err, "tool_choice",
                         "\"auto\", \"none\", \"required\" or {\"type\": \"function\", "
                         "\"function\": {\"name\": ...}}");
    }
    json_t *name = json_object_get(json_object_get(tc, "function"), "name");
    if (!json_is_object(tc) || !json_is_string(name))
        return fail_type(err, "tool_choice.function.name", "a string");
    if (!n_tools || !has_tool(tools, json_string_value(name))) {
        api_fail(err, 400, "tool_choice.function.name",
                 "tool_choice names '%s', which is not in tools", json_string_value(name));
        return -1;
    }
    *choice = TOOL_CHOICE_NAMED;
    return 0;
}

int chat_tools_check(const json_t *body, json_t **template_tools, int *tool_choice,
                     api_error *err) {
    *template_tools = NULL;
    *tool_choice = TOOL_CHOICE_AUTO;
    json_t *tools = json_object_get(body, "tools");
    if (tools && !json_is_null(tools)) {
        if (!json_is_array(tools)) return fail_type(err, "tools", "an array of tools");
        size_t i;
        json_t *t;
        json_array_foreach(tools, i, t) {
            if (check_tool(t, i, err)) return -1;
        }
    } else {
        tools = NULL;
    }
    json_t *ptc = json_object_get(body, "parallel_tool_calls");
    if (ptc && !json_is_null(ptc) && !json_is_boolean(ptc))
        return fail_type(err, "parallel_tool_calls", "a boolean");
    json_t *kw = json_object_get(body, "chat_template_kwargs");
    if (kw && !json_is_null(kw) && !json_is_object(kw))
        return fail_type(err, "chat_template_kwargs", "an object");
    if (check_tool_choice(json_object_get(body, "tool_choice"), tools, tool_choice, err)) return -1;
    if (tools && json_array_size(tools) && *tool_choice != TOOL_CHOICE_NONE)
        *template_tools = json_incref(tools);
    return 0;
}

int chat_message_tool_calls(json_t *msg, size_t i, api_error *err) {
    json_t *calls = json_object_get(msg, "tool_calls");
    char path[128];
    if (!calls || json_is_null(calls)) return 0;
    snprintf(path, sizeof path, "messages[%zu].tool_calls", i);
    if (!json_is_array(calls)) return fail_type(err, path, "an array");
    calls = json_deep_copy(calls); /* the request body stays as it came */
    json_object_set_new(msg, "tool_calls", calls);
    size_t k;
    json_t *c;
    json_array_foreach(calls, k, c) {
        json_t *fn = json_object_get(c, "function");
        snprintf(path, sizeof path, "messages[%zu].tool_calls[%zu].function", i, k);
        if (!json_is_object(c) || !json_is_object(fn)) return fail_type(err, path, "an object");
        snprintf(path, sizeof path, "messages[%zu].tool_calls[%zu].function.name", i, k);
        if (!json_is_string(json_object_get(fn, "name"))) return fail_type(err, path, "a string");
        json_t *args = json_object_get(fn, "arguments");
        snprintf(path, sizeof path, "messages[%zu].tool_calls[%zu].function.arguments", i, k);
        if (args && !json_is_string(args) && !json_is_object(args))
            return fail_type(err, path, "a string of JSON");
        if (json_is_string(args)) {
            json_t *obj = json_loadb(json_string_value(args), json_string_length(args), 0, NULL);
            if (json_is_object(obj))
                json_object_set_new(fn, "arguments", obj);
            else
                json_decref(obj); /* not an object: the template gets the string */
        }
    }
    return 0;
}

/* ---- output formats ---- */

static char *probe_render(const sp_engine_info *info, json_t *msgs, json_t *tools, int agp,
                          json_t *kwargs) {
    json_t *ctx =
        sp_chat_template_context(msgs, tools, agp, info->bos_token, info->eos_token, kwargs);
    char *out = NULL;
    sp_error e = {0};
    if (sp_template_render(info->chat_template, ctx, &out, &e) != SP_OK) out = NULL;
    json_decref(ctx);
    return out;
}

/* Renders a conversation with a tool call and one with reasoning, and reads
 * the markers the template wrote. */
static void probe_formats(const sp_engine_info *info, sp_tool_format *tools,
                          sp_think_format *think) {
    json_t *tl = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"spindle_probe\", "
                            "\"description\": \"d\", \"parameters\": {\"type\": \"object\", "
                            "\"properties\": {\"a\": {\"type\": \"string\"}}}}}]",
                            0, NULL);
    json_t *m1 = json_loads(
        "[{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"\", "
        "\"tool_calls\": [{\"id\": \"call_0\", \"type\": \"function\", \"function\": {\"name\": "
        "\"spindle_probe\", \"arguments\": {\"a\": \"b\"}}}]}, {\"role\": \"tool\", "
        "\"tool_call_id\": \"call_0\", \"content\": \"ok\"}]",
        0, NULL);
    json_t *m2 = json_loads("[{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": "
                            "\"assistant\", \"content\": \"yes\", \"reasoning_content\": \"r\"}]",
                            0, NULL);
    json_t *m3 = json_loads("[{\"role\": \"user\", \"content\": \"hi\"}]", 0, NULL);
    json_t *on = json_pack("{s:b}", "enable_thinking", 1),
           *off = json_pack("{s:b}", "enable_thinking", 0);
    char *r[4] = {probe_render(info, m1, tl, 1, NULL), probe_render(info, m2, NULL, 0, NULL),
                  probe_render(info, m3, NULL, 1, on), probe_render(info, m3, NULL, 1, off)};
    size_t len = 0;
    for (int i = 0; i < 4; i++) len += r[i] ? strlen(r[i]) + 1 : 0;
    char *all = calloc(1, len + 1);
    for (int i = 0; i < 4 && all; i++)
        if (r[i]) strcat(strcat(all, r[i]), "\n");
    sp_chat_detect_formats(all, tools, think);
    for (int i = 0; i < 4; i++) free(r[i]);
    free(all);
    json_decref(tl), json_decref(m1), json_decref(m2), json_decref(m3);
    json_decref(on), json_decref(off);
}

static pthread_mutex_t formats_mu = PTHREAD_MUTEX_INITIALIZER;

static void server_formats(sp_server *s, const sp_engine_info *info) {
    pthread_mutex_lock(&formats_mu);
    if (!s->chat_formats_known) {
        sp_tool_format forced;
        probe_formats(info, &s->tool_format, &s->think_format);
        if (s->opts.tool_parser && !sp_tool_format_from_name(s->opts.tool_parser, &forced))
            s->tool_format = forced;
        s->chat_formats_known = 1;
        SP_INFO("chat output: tool calls '%s', reasoning %s", sp_tool_format_name(s->tool_format),
                s->think_format == SP_THINK_TAGS     ? "<think>"
                : s->think_format == SP_THINK_GEMMA4 ? "<|channel>"
                                                     : "none");
    }
    pthread_mutex_unlock(&formats_mu);
}

/* Does the prompt end inside an open reasoning block? Its last tokens say. */
static int prompt_opens_reasoning(const sp_engine_info *info, const gen_req *g) {
    if (g->out.think == SP_THINK_NONE || !g->n_prompt) return 0;
    size_t n = g->n_prompt < 16 ? g->n_prompt : 16;
    char *tail = NULL;
    size_t len = 0;
    sp_error e;
    if (sp_tokenizer_decode(info->tokenizer, g->prompt + g->n_prompt - n, n, 0, &tail, &len, &e))
        return 0;
    int open = sp_chat_prompt_opens_reasoning(g->out.think, tail, len);
    free(tail);
    return open;
}

static uint64_t random_seed(void) {
    uint64_t x = 0;
    if (getrandom(&x, sizeof x, 0) != sizeof x) x = (uint64_t)time(NULL) ^ (uint64_t)clock();
    return x;
}

/* Test hook (tests/e2e/tools.test.mjs): with SPINDLE_TEST_HOOKS=1 in the
 * server's environment, "spindle_debug_force_output": TEXT makes the
 * response carry the tokenization of TEXT instead of the model's tokens
 * (the model still runs one step per token). Never honoured otherwise;
 * compiled out with -DSP_NO_TEST_HOOKS. */
static int force_output(const json_t *body, const sp_engine_info *info, gen_req *g,
                        api_error *err) {
#ifdef SP_NO_TEST_HOOKS
    (void)body, (void)info, (void)g, (void)err;
    return 0;
#endif
    json_t *f = json_object_get(body, "spindle_debug_force_output");
    const char *env = getenv("SPINDLE_TEST_HOOKS");
    if (!json_is_string(f) || !env || strcmp(env, "1")) return 0;
    sp_error e = {0};
    if (sp_tokenizer_encode(info->tokenizer, json_string_value(f), json_string_length(f), 0, 1,
                            &g->forced, &g->n_forced, &e) != SP_OK) {
        api_fail(err, 400, "spindle_debug_force_output", "cannot tokenize: %s", e.msg);
        return -1;
    }
    g->params.max_tokens = g->n_forced ? (int)g->n_forced : 1;
    g->params.ignore_eos = 1;
    return 0;
}

/* A tool name as it is written inside a JSON string (malloc'd). */
static char *json_inner(const char *name) {
    json_t *v = json_string(name);
    char *d = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    if (d) {
        size_t n = strlen(d);
        memmove(d, d + 1, n - 2);
        d[n - 2] = 0;
    }
    return d;
}

/* The call syntax of each format, as the parser (chat/toolcall.h) reads it
 * and as the templates render calls. */
static int call_syntax(sp_tool_format f, sp_tool_constraint *c) {
    switch (f) {
    case SP_TOOLS_HERMES:
        c->open = "<tool_call>\n{\"name\": \"";
        c->mid = "\", \"arguments\": ";
        c->close = "}\n</tool_call>";
        c->sep = "\n";
        return 0;
    case SP_TOOLS_GEMMA4: /* call:NAME{key:<|"|>text<|"|>} */
        c->open = "<|tool_call>call:";
        c->mid = "{";
        c->close = "<tool_call|>";
        c->sep = NULL;
        c->quote = "<|\"|>";
        return 0;
    case SP_TOOLS_LLAMA3:
    case SP_TOOLS_JSON:
        c->open = "{\"name\": \"";
        c->mid = f == SP_TOOLS_LLAMA3 ? "\", \"parameters\": " : "\", \"arguments\": ";
        c->close = "}";
        c->sep = NULL; /* one call: the parser reads a single JSON answer */
        return 0;
    default:
        return -1;
    }
}

/* tool_choice "required" / named: the constraint the engine enforces. */
static int tool_constraint(const json_t *body, gen_req *g) {
    if (g->tool_choice != TOOL_CHOICE_REQUIRED && g->tool_choice != TOOL_CHOICE_NAMED) return 0;
    if (g->forced) return 0; /* the test hook's text replaces the model's anyway */
    sp_tool_constraint c = {0};
    if (call_syntax(g->out.tools, &c)) {
        SP_WARN("tool_choice is not enforced for the '%s' tool format",
                sp_tool_format_name(g->out.tools));
        return 0;
    }
    c.prefix = !g->out.start_in_reasoning        ? ""
               : g->out.think == SP_THINK_TAGS   ? "</think>\n\n"
               : g->out.think == SP_THINK_GEMMA4 ? "<channel|>"
                                                 : "";
    json_t *tools = json_object_get(body, "tools");
    size_t n = json_array_size(tools), k = 0;
    char **names = calloc(n ? n : 1, sizeof *names);
    if (!names) return -1;
    const char *named = json_string_value(
        json_object_get(json_object_get(json_object_get(body, "tool_choice"), "function"), "name"));
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(
            json_object_get(json_object_get(json_array_get(tools, i), "function"), "name"));
        if (g->tool_choice == TOOL_CHOICE_NAMED && strcmp(name, named)) continue;
        if (!(names[k++] = json_inner(name))) break;
    }
    c.names = (const char *const *)names;
    c.n_names = (int)k;
    if (g->tool_choice == TOOL_CHOICE_NAMED || g->out.max_calls == 1) c.sep = NULL;
    int rc = k && names[k - 1] && (g->constraint = sp_tool_constraint_copy(&c)) ? 0 : -1;
    for (size_t i = 0; i < k; i++) free(names[i]);
    free(names);
    g->params.constraint = g->constraint;
    return rc;
}

int chat_output_setup(sp_server *s, const json_t *body, const sp_engine_info *info, gen_req *g,
                      api_error *err) {
    if (force_output(body, info, g, err)) return -1;
    if (!g->chat) return 0;
    server_formats(s, info);
    json_t *tools = json_object_get(body, "tools");
    int want_tools =
        json_is_array(tools) && json_array_size(tools) > 0 && g->tool_choice != TOOL_CHOICE_NONE;
    g->out.tools = want_tools ? s->tool_format : SP_TOOLS_NONE;
    g->out.think = s->think_format;
    g->out.max_calls = json_is_false(json_object_get(body, "parallel_tool_calls")) ? 1 : 0;
    g->out.id_seed = random_seed();
    g->out.start_in_reasoning = prompt_opens_reasoning(info, g);
    /* special-token markers must reach the parser: the engine keeps them
     * in the text (its stop strings then see them too) */
    g->keep_special = sp_chat_formats_need_special(g->out.tools, g->out.think);
    g->params.keep_special = g->keep_special;
    if (tool_constraint(body, g)) {
        api_fail(err, 500, "tool_choice", "out of memory building the tool_choice constraint");
        return -1;
    }
    return 0;
}
