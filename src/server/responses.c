/* OpenAI Responses requests (POST /v1/responses) as chat-completions
 * bodies: input as a string or as items (messages, function_call,
 * function_call_output, reasoning), instructions, function tools,
 * tool_choice, max_output_tokens, sampling. Nothing is stored server-side:
 * store is accepted, but previous_response_id, conversation and
 * item_reference (which need stored state) are 400s naming the field.
 * responses_out.c answers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_impl.h"

static int bad(api_error *err, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(api_error *err, const char *param, const char *fmt, ...) {
    char msg[1000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_fail(err, 400, param, "%s", msg);
    return -1;
}

/* text.format: the one place structured output plugs in. Plain text is
 * what generation gives; JSON output needs the structured-output work
 * (issue 17) and is refused until it lands. */
/* text.format becomes the chat body's response_format (structured output,
 * server/structured.c): json_schema's name/schema/strict move under
 * "json_schema", as chat completions nest them. */
static int text_format(const json_t *body, json_t *chat, api_error *err) {
    const json_t *text = json_object_get(body, "text");
    if (!text || json_is_null(text)) return 0;
    if (!json_is_object(text)) return bad(err, "text", "must be an object");
    const json_t *fmt = json_object_get(text, "format");
    if (!fmt || json_is_null(fmt)) return 0;
    const char *type = json_string_value(json_object_get(fmt, "type"));
    if (!json_is_object(fmt) || !type) return bad(err, "text.format.type", "is required");
    if (!strcmp(type, "text")) return 0;
    if (!strcmp(type, "json_object")) {
        json_object_set_new(chat, "response_format", json_pack("{s:s}", "type", "json_object"));
        return 0;
    }
    if (!strcmp(type, "json_schema")) {
        json_t *js = json_object();
        const char *keys[] = {"name", "schema", "strict", "description"};
        for (size_t i = 0; i < 4; i++) {
            json_t *v = json_object_get(fmt, keys[i]);
            if (v) json_object_set(js, keys[i], v);
        }
        json_object_set_new(chat, "response_format",
                            json_pack("{s:s,s:o}", "type", "json_schema", "json_schema", js));
        return 0;
    }
    return bad(err, "text.format.type", "must be \"text\", \"json_schema\" or \"json_object\"");
}

/* Fields that need server-side state (none is kept) or features not served. */
static int unsupported(const json_t *body, api_error *err) {
    static const char *stateful[] = {"previous_response_id", "conversation", "prompt"};
    for (size_t i = 0; i < 3; i++) {
        const json_t *v = json_object_get(body, stateful[i]);
        if (v && !json_is_null(v))
            return bad(err, stateful[i],
                       "is not supported: this server stores no responses, conversations or "
                       "prompts; send the whole input each time");
    }
    if (json_is_true(json_object_get(body, "background")))
        return bad(err, "background", "background responses are not supported");
    const json_t *store = json_object_get(body, "store");
    if (store && !json_is_null(store) && !json_is_boolean(store))
        return bad(err, "store", "must be a boolean");
    return 0;
}

/* Text of a string or of an array of input_text / output_text parts. */
static json_t *content_text(const json_t *c, const char *path, api_error *err) {
    if (json_is_string(c)) return json_incref((json_t *)c);
    if (!json_is_array(c)) {
        bad(err, path, "must be a string or an array of text parts");
        return NULL;
    }
    size_t cap = 64, len = 0;
    char *buf = malloc(cap);
    for (size_t i = 0; buf && i < json_array_size(c); i++) {
        json_t *p = json_array_get(c, i);
        const char *type = json_string_value(json_object_get(p, "type"));
        json_t *t = json_object_get(p, "text");
        int ok = type && json_is_string(t) &&
                 (!strcmp(type, "input_text") || !strcmp(type, "output_text") ||
                  !strcmp(type, "text") || !strcmp(type, "reasoning_text"));
        if (!ok) {
            char pp[200];
            snprintf(pp, sizeof pp, "%s[%zu]", path, i);
            free(buf);
            bad(err, pp, "must be a text part (input_text or output_text)%s",
                type && (!strcmp(type, "input_image") || !strcmp(type, "input_file"))
                    ? ": images and files are not supported"
                    : "");
            return NULL;
        }
        size_t tl = json_string_length(t);
        if (len + tl + 2 > cap) {
            cap = (len + tl + 2) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) break;
            buf = nb;
        }
        if (i) buf[len++] = '\n';
        memcpy(buf + len, json_string_value(t), tl);
        len += tl;
    }
    if (!buf) {
        api_fail(err, 500, NULL, "out of memory");
        return NULL;
    }
    json_t *s = json_stringn(buf, len);
    free(buf);
    return s;
}

/* The assistant message function calls and reasoning attach to: the last
 * message when it is the assistant's, else a new one. */
static json_t *assistant_tail(json_t *msgs) {
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    const char *role = json_string_value(json_object_get(last, "role"));
    if (role && !strcmp(role, "assistant")) return last;
    json_t *m = json_pack("{s:s, s:s}", "role", "assistant", "content", "");
    json_array_append_new(msgs, m);
    return m;
}

static int item_message(const json_t *it, const char *path, json_t *msgs, json_t **reasoning,
                        api_error *err) {
    const char *role = json_string_value(json_object_get(it, "role"));
    char p[160];
    snprintf(p, sizeof p, "%s.role", path);
    if (!role || (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "system") &&
                  strcmp(role, "developer")))
        return bad(err, p, "must be \"user\", \"assistant\", \"system\" or \"developer\"");
    snprintf(p, sizeof p, "%s.content", path);
    json_t *text = content_text(json_object_get(it, "content"), p, err);
    if (!text) return -1;
    json_t *m = json_pack("{s:s, s:o}", "role", !strcmp(role, "developer") ? "system" : role,
                          "content", text);
    if (*reasoning && !strcmp(role, "assistant")) {
        json_object_set_new(m, "reasoning_content", *reasoning);
        *reasoning = NULL;
    }
    json_array_append_new(msgs, m);
    return 0;
}

static int item_call(const json_t *it, const char *path, json_t *msgs, json_t *names,
                     json_t **reasoning, api_error *err) {
    json_t *id = json_object_get(it, "call_id"), *name = json_object_get(it, "name"),
           *args = json_object_get(it, "arguments");
    if (!json_is_string(id) || !json_is_string(name) || !json_is_string(args))
        return bad(err, path, "a function_call needs string call_id, name and arguments");
    json_t *m = assistant_tail(msgs);
    if (*reasoning) {
        json_object_set_new(m, "reasoning_content", *reasoning);
        *reasoning = NULL;
    }
    json_t *calls = json_object_get(m, "tool_calls");
    if (!calls) json_object_set_new(m, "tool_calls", calls = json_array());
    json_array_append_new(calls, json_pack("{s:O, s:s, s:{s:O, s:O}}", "id", id, "type", "function",
                                           "function", "name", name, "arguments", args));
    json_object_set(names, json_string_value(id), name);
    return 0;
}

static int item_output(const json_t *it, const char *path, json_t *msgs, const json_t *names,
                       api_error *err) {
    json_t *id = json_object_get(it, "call_id");
    if (!json_is_string(id)) return bad(err, path, "a function_call_output needs a call_id");
    char p[160];
    snprintf(p, sizeof p, "%s.output", path);
    json_t *text = content_text(json_object_get(it, "output"), p, err);
    if (!text) return -1;
    json_t *m = json_pack("{s:s, s:O, s:o}", "role", "tool", "tool_call_id", id, "content", text);
    json_t *name = json_object_get(names, json_string_value(id));
    if (name) json_object_set(m, "name", name);
    json_array_append_new(msgs, m);
    return 0;
}

static int convert_item(const json_t *it, size_t i, json_t *msgs, json_t *names, json_t **reasoning,
                        api_error *err) {
    char path[48];
    snprintf(path, sizeof path, "input[%zu]", i);
    if (!json_is_object(it)) return bad(err, path, "must be an object");
    const char *type = json_string_value(json_object_get(it, "type"));
    if (!type || !strcmp(type, "message")) return item_message(it, path, msgs, reasoning, err);
    if (!strcmp(type, "function_call")) return item_call(it, path, msgs, names, reasoning, err);
    if (!strcmp(type, "function_call_output")) return item_output(it, path, msgs, names, err);
    if (!strcmp(type, "reasoning")) { /* its text goes to the next assistant turn */
        json_t *c = json_object_get(it, "content");
        if (!c || json_is_null(c)) return 0;
        char p[64];
        snprintf(p, sizeof p, "%s.content", path);
        json_decref(*reasoning);
        *reasoning = content_text(c, p, err);
        return *reasoning ? 0 : -1;
    }
    if (!strcmp(type, "item_reference"))
        return bad(err, path, "item_reference is not supported: no items are stored");
    return bad(err, path, "items of type \"%s\" are not supported", type);
}

static int convert_input(const json_t *body, json_t *chat, api_error *err) {
    const json_t *input = json_object_get(body, "input");
    json_t *msgs = json_array();
    json_object_set_new(chat, "messages", msgs);
    const json_t *ins = json_object_get(body, "instructions");
    if (ins && !json_is_null(ins)) {
        if (!json_is_string(ins)) return bad(err, "instructions", "must be a string");
        json_array_append_new(msgs, json_pack("{s:s, s:O}", "role", "system", "content", ins));
    }
    if (json_is_string(input)) {
        json_array_append_new(msgs, json_pack("{s:s, s:O}", "role", "user", "content", input));
        return 0;
    }
    if (!json_is_array(input) || !json_array_size(input))
        return bad(err, "input",
                   input ? "must be a string or a non-empty array of items" : "is required");
    json_t *names = json_object(), *reasoning = NULL;
    size_t i;
    json_t *it;
    int rc = 0;
    json_array_foreach(input, i, it) {
        if ((rc = convert_item(it, i, msgs, names, &reasoning, err))) break;
    }
    json_decref(names);
    json_decref(reasoning);
    return rc;
}

/* Responses tools are flat: {type: "function", name, description, parameters}. */
static int convert_tools(const json_t *body, json_t *chat, api_error *err) {
    const json_t *tools = json_object_get(body, "tools");
    if (!tools || json_is_null(tools)) return 0;
    if (!json_is_array(tools)) return bad(err, "tools", "must be an array");
    json_t *out = json_array();
    json_object_set_new(chat, "tools", out);
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        char p[64];
        snprintf(p, sizeof p, "tools[%zu]", i);
        const char *type = json_string_value(json_object_get(t, "type"));
        json_t *name = json_object_get(t, "name"), *params = json_object_get(t, "parameters");
        if (!type || strcmp(type, "function"))
            return bad(err, p, "only function tools are supported (got %s)",
                       type ? type : "no type");
        if (!json_is_string(name) || !json_string_length(name))
            return bad(err, p, "needs a non-empty string name");
        /* keys in the order OpenAI clients send them: templates print tools as JSON */
        json_t *fn = json_pack("{s:O}", "name", name);
        json_t *desc = json_object_get(t, "description");
        if (json_is_string(desc)) json_object_set(fn, "description", desc);
        if (params && !json_is_null(params)) json_object_set(fn, "parameters", params);
        json_array_append_new(out, json_pack("{s:s, s:o}", "type", "function", "function", fn));
    }
    return 0;
}

static int convert_tool_choice(const json_t *body, json_t *chat, api_error *err) {
    const json_t *tc = json_object_get(body, "tool_choice");
    if (!tc || json_is_null(tc)) return 0;
    if (json_is_string(tc)) {
        json_object_set(chat, "tool_choice", (json_t *)tc); /* checked as chat's */
        return 0;
    }
    const char *type = json_string_value(json_object_get(tc, "type"));
    json_t *name = json_object_get(tc, "name");
    if (!type || strcmp(type, "function") || !json_is_string(name))
        return bad(err, "tool_choice",
                   "must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"name\": "
                   "...}");
    json_object_set_new(chat, "tool_choice",
                        json_pack("{s:s, s:{s:O}}", "type", "function", "function", "name", name));
    return 0;
}

/* Sampling and limits under their chat names (checked there). */
static int convert_params(const json_t *body, json_t *chat, api_error *err) {
    const json_t *mot = json_object_get(body, "max_output_tokens");
    if (mot && !json_is_null(mot)) {
        if (!json_is_integer(mot) || json_integer_value(mot) < 1)
            return bad(err, "max_output_tokens", "must be an integer >= 1");
        json_object_set(chat, "max_tokens", (json_t *)mot);
    }
    const char *copy[] = {"temperature", "top_p", "parallel_tool_calls", "seed"};
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_object_get(body, copy[i]);
        if (v) json_object_set(chat, copy[i], v);
    }
    const json_t *st = json_object_get(body, "stream");
    if (st && !json_is_null(st) && !json_is_boolean(st))
        return bad(err, "stream", "must be a boolean");
    const json_t *r = json_object_get(body, "reasoning");
    if (r && !json_is_null(r)) {
        if (!json_is_object(r)) return bad(err, "reasoning", "must be an object");
        const char *effort = json_string_value(json_object_get(r, "effort"));
        if (effort && !strcmp(effort, "none")) /* the template's switch, where it has one */
            json_object_set_new(chat, "chat_template_kwargs",
                                json_pack("{s:b}", "enable_thinking", 0));
    }
    return 0;
}

int responses_to_chat(const json_t *body, json_t **chat, api_error *err) {
    *chat = NULL;
    if (!json_is_object(body)) return bad(err, NULL, "the request body must be a JSON object");
    const json_t *model = json_object_get(body, "model");
    if (model && !json_is_string(model)) return bad(err, "model", "must be a string");
    if (unsupported(body, err)) return -1;
    json_t *c = json_object();
    if (text_format(body, c, err)) {
        json_decref(c);
        return -1;
    }
    const json_t *hook = json_object_get(body, "spindle_debug_force_output"); /* tests only */
    if (hook) json_object_set(c, "spindle_debug_force_output", (json_t *)hook);
    if (convert_input(body, c, err) || convert_tools(body, c, err) ||
        convert_tool_choice(body, c, err) || convert_params(body, c, err)) {
        json_decref(c);
        return -1;
    }
    *chat = c;
    return 0;
}
