/* Anthropic Messages requests (POST /v1/messages and count_tokens) as
 * chat-completions bodies: system and messages with text, tool_use,
 * tool_result and thinking blocks, tools, tool_choice, thinking, sampling
 * and stop_sequences. The chat body then goes through the same validation,
 * template and engine as /v1/chat/completions (anthropic_out.c answers).
 * Every refusal is a 400 naming the field in Anthropic's terms. */
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

/* An array of strings joined with "\n" (as chat completions joins text
 * parts); steals parts. */
static json_t *joined(json_t *parts, api_error *err) {
    size_t i, len = 0;
    json_t *b;
    json_array_foreach(parts, i, b) len += json_string_length(b) + 1;
    char *buf = malloc(len + 1), *o = buf;
    if (!buf) {
        json_decref(parts);
        api_fail(err, 500, NULL, "out of memory");
        return NULL;
    }
    json_array_foreach(parts, i, b) {
        if (i) *o++ = '\n';
        memcpy(o, json_string_value(b), json_string_length(b));
        o += json_string_length(b);
    }
    json_t *s = json_stringn(buf, (size_t)(o - buf));
    free(buf);
    json_decref(parts);
    return s;
}

/* Text of a string or of an array of text blocks. */
static json_t *text_of(const json_t *v, const char *path, api_error *err) {
    if (json_is_string(v)) return json_incref((json_t *)v);
    if (!json_is_array(v)) {
        bad(err, path, "must be a string or an array of text blocks");
        return NULL;
    }
    json_t *parts = json_array();
    size_t i;
    json_t *b;
    json_array_foreach(v, i, b) {
        const char *type = json_string_value(json_object_get(b, "type"));
        json_t *t = json_object_get(b, "text");
        if (!type || strcmp(type, "text") || !json_is_string(t)) {
            char p[160];
            snprintf(p, sizeof p, "%s[%zu]", path, i);
            json_decref(parts);
            bad(err, p, "must be a text block {\"type\": \"text\", \"text\": string}%s",
                type && !strcmp(type, "image") ? " (images are not supported)" : "");
            return NULL;
        }
        json_array_append(parts, t);
    }
    return joined(parts, err);
}

/* One assistant message's blocks: text, thinking, tool_use. */
static int assistant_blocks(const json_t *content, const char *path, json_t *msg, json_t *names,
                            api_error *err) {
    json_t *calls = json_array(), *texts = json_array(), *thinking = json_array();
    json_object_set_new(msg, "tool_calls", calls);
    size_t i;
    json_t *b;
    json_array_foreach(content, i, b) {
        char p[160];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        const char *type = json_string_value(json_object_get(b, "type"));
        if (!type) goto bad_block;
        if (!strcmp(type, "text") && json_is_string(json_object_get(b, "text"))) {
            json_array_append(texts, json_object_get(b, "text"));
        } else if (!strcmp(type, "thinking") && json_is_string(json_object_get(b, "thinking"))) {
            json_array_append(thinking, json_object_get(b, "thinking"));
        } else if (!strcmp(type, "redacted_thinking")) {
            continue; /* encrypted: nothing a local template can use */
        } else if (!strcmp(type, "tool_use")) {
            json_t *id = json_object_get(b, "id"), *name = json_object_get(b, "name"),
                   *input = json_object_get(b, "input");
            if (!json_is_string(id) || !json_is_string(name) || !json_is_object(input)) {
                json_decref(texts), json_decref(thinking);
                return bad(err, p, "a tool_use block needs string id and name, object input");
            }
            json_array_append_new(calls, json_pack("{s:O, s:s, s:{s:O, s:O}}", "id", id, "type",
                                                   "function", "function", "name", name,
                                                   "arguments", input));
            json_object_set(names, json_string_value(id), name);
        } else {
            goto bad_block;
        }
        continue;
    bad_block:
        json_decref(texts), json_decref(thinking);
        return bad(err, p,
                   "an assistant message holds text, thinking and tool_use blocks (got %s%s%s)",
                   type ? "\"" : "", type ? type : "no type", type ? "\"" : "");
    }
    json_t *t = joined(texts, err), *r = joined(thinking, err);
    if (!t || !r) return json_decref(t), json_decref(r), -1;
    json_object_set_new(msg, "content", t);
    if (json_string_length(r))
        json_object_set_new(msg, "reasoning_content", r);
    else
        json_decref(r);
    if (!json_array_size(calls)) json_object_del(msg, "tool_calls");
    return 0;
}

/* A tool_result block as a "tool" message (named after its tool_use). */
static int tool_result(const json_t *b, const char *path, const json_t *names, json_t *out,
                       api_error *err) {
    json_t *id = json_object_get(b, "tool_use_id");
    if (!json_is_string(id)) return bad(err, path, "a tool_result block needs tool_use_id");
    json_t *c = json_object_get(b, "content");
    char p[200];
    snprintf(p, sizeof p, "%s.content", path);
    json_t *text = c ? text_of(c, p, err) : json_string("");
    if (!text) return -1;
    json_t *m = json_pack("{s:s, s:O, s:o}", "role", "tool", "tool_call_id", id, "content", text);
    json_t *name = json_object_get(names, json_string_value(id));
    if (name) json_object_set(m, "name", name);
    json_array_append_new(out, m);
    return 0;
}

/* A user message's blocks: tool results first (as tool messages), then the
 * text as one user message; with image blocks, the text and images as
 * chat content parts in their order (server/images.c reads Anthropic's
 * image blocks as they are). */
static int user_blocks(const json_t *content, const char *path, const json_t *names, json_t *out,
                       api_error *err) {
    json_t *texts = json_array(), *parts = json_array();
    int images = 0;
    size_t i;
    json_t *b;
    json_array_foreach(content, i, b) {
        char p[160];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        const char *type = json_string_value(json_object_get(b, "type"));
        if (type && !strcmp(type, "tool_result")) {
            if (tool_result(b, p, names, out, err)) goto fail;
        } else if (type && !strcmp(type, "text") && json_is_string(json_object_get(b, "text"))) {
            json_array_append(texts, json_object_get(b, "text"));
            json_array_append_new(
                parts, json_pack("{s:s, s:O}", "type", "text", "text", json_object_get(b, "text")));
        } else if (type && !strcmp(type, "image")) {
            json_array_append(parts, b);
            images++;
        } else {
            bad(err, p, "a user message holds text, image and tool_result blocks (got %s)",
                type ? type : "no type");
            goto fail;
        }
    }
    if (images) {
        json_decref(texts);
        json_array_append_new(out, json_pack("{s:s, s:o}", "role", "user", "content", parts));
        return 0;
    }
    json_decref(parts);
    if (!json_array_size(texts) && json_array_size(out)) return json_decref(texts), 0;
    json_t *t = joined(texts, err);
    if (!t) return -1;
    json_array_append_new(out, json_pack("{s:s, s:o}", "role", "user", "content", t));
    return 0;
fail:
    json_decref(texts);
    json_decref(parts);
    return -1;
}

static int convert_message(const json_t *m, size_t i, json_t *names, json_t *out, api_error *err) {
    char path[64];
    snprintf(path, sizeof path, "messages[%zu]", i);
    if (!json_is_object(m)) return bad(err, path, "must be an object");
    const char *role = json_string_value(json_object_get(m, "role"));
    snprintf(path, sizeof path, "messages[%zu].role", i);
    if (!role || (strcmp(role, "user") && strcmp(role, "assistant")))
        return bad(err, path, "must be \"user\" or \"assistant\"%s%s%s", role ? ", got \"" : "",
                   role ? role : "",
                   role && !strcmp(role, "system") ? "\" (use the top-level system field)"
                   : role                          ? "\""
                                                   : "");
    const json_t *c = json_object_get(m, "content");
    snprintf(path, sizeof path, "messages[%zu].content", i);
    if (json_is_string(c)) {
        json_array_append_new(out, json_pack("{s:s, s:O}", "role", role, "content", c));
        return 0;
    }
    if (!json_is_array(c)) return bad(err, path, "must be a string or an array of content blocks");
    if (!strcmp(role, "user")) {
        json_t *tmp = json_array();
        int rc = user_blocks(c, path, names, tmp, err);
        if (!rc) json_array_extend(out, tmp);
        json_decref(tmp);
        return rc;
    }
    json_t *msg = json_pack("{s:s}", "role", "assistant");
    if (assistant_blocks(c, path, msg, names, err)) return json_decref(msg), -1;
    json_array_append_new(out, msg);
    return 0;
}

static int convert_messages(const json_t *body, json_t *chat, api_error *err) {
    const json_t *msgs = json_object_get(body, "messages");
    if (!json_is_array(msgs) || !json_array_size(msgs))
        return bad(err, "messages", msgs ? "must be a non-empty array" : "is required");
    json_t *out = json_array(), *names = json_object();
    json_object_set_new(chat, "messages", out);
    const json_t *sys = json_object_get(body, "system");
    if (sys && !json_is_null(sys)) {
        json_t *t = text_of(sys, "system", err);
        if (!t) return json_decref(names), -1;
        json_array_append_new(out, json_pack("{s:s, s:o}", "role", "system", "content", t));
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        if (convert_message(m, i, names, out, err)) return json_decref(names), -1;
    }
    json_decref(names);
    const char *last = json_string_value(json_object_get(json_array_get(msgs, i - 1), "role"));
    if (!strcmp(last, "assistant")) {
        char p[48];
        snprintf(p, sizeof p, "messages[%zu]", i - 1);
        return bad(err, p,
                   "a final assistant message (prefill) is not supported: end with a user "
                   "message");
    }
    return 0;
}

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
        json_t *name = json_object_get(t, "name"), *schema = json_object_get(t, "input_schema");
        if (type && strcmp(type, "custom"))
            return bad(err, p, "server tools (type \"%s\") are not supported", type);
        if (!json_is_object(t) || !json_is_string(name) || !json_string_length(name))
            return bad(err, p, "needs a non-empty string name");
        if (!json_is_object(schema)) {
            snprintf(p, sizeof p, "tools[%zu].input_schema", i);
            return bad(err, p, "must be an object (a JSON Schema)");
        }
        /* keys in the order OpenAI clients send them: templates print tools as JSON */
        json_t *fn = json_pack("{s:O}", "name", name);
        json_t *desc = json_object_get(t, "description");
        if (json_is_string(desc)) json_object_set(fn, "description", desc);
        json_object_set(fn, "parameters", schema);
        json_array_append_new(out, json_pack("{s:s, s:o}", "type", "function", "function", fn));
    }
    return 0;
}

/* tool_choice {type: auto | any | tool | none, name, disable_parallel_tool_use}. */
static int convert_tool_choice(const json_t *body, json_t *chat, api_error *err) {
    const json_t *tc = json_object_get(body, "tool_choice");
    if (!tc || json_is_null(tc)) return 0;
    const char *type = json_string_value(json_object_get(tc, "type"));
    if (!json_is_object(tc) || !type)
        return bad(err, "tool_choice", "must be an object with a type");
    json_t *dp = json_object_get(tc, "disable_parallel_tool_use");
    if (dp && !json_is_boolean(dp))
        return bad(err, "tool_choice.disable_parallel_tool_use", "must be a boolean");
    if (json_is_true(dp)) json_object_set_new(chat, "parallel_tool_calls", json_false());
    if (!strcmp(type, "auto") || !strcmp(type, "none")) {
        json_object_set_new(chat, "tool_choice", json_string(type));
    } else if (!strcmp(type, "any")) {
        json_object_set_new(chat, "tool_choice", json_string("required"));
    } else if (!strcmp(type, "tool")) {
        json_t *name = json_object_get(tc, "name");
        if (!json_is_string(name)) return bad(err, "tool_choice.name", "must be a string");
        json_object_set_new(
            chat, "tool_choice",
            json_pack("{s:s, s:{s:O}}", "type", "function", "function", "name", name));
    } else {
        return bad(err, "tool_choice.type", "must be \"auto\", \"any\", \"tool\" or \"none\"");
    }
    return 0;
}

/* thinking {type: enabled | disabled | adaptive, budget_tokens}: the chat
 * template's enable_thinking (the budget is not enforced). */
static int convert_thinking(const json_t *body, json_t *chat, api_error *err) {
    const json_t *th = json_object_get(body, "thinking");
    if (!th || json_is_null(th)) return 0;
    const char *type = json_string_value(json_object_get(th, "type"));
    if (!json_is_object(th) || !type) return bad(err, "thinking", "must be an object with a type");
    const json_t *budget = json_object_get(th, "budget_tokens");
    if (budget && !json_is_integer(budget))
        return bad(err, "thinking.budget_tokens", "must be an integer");
    int on = !strcmp(type, "enabled") || !strcmp(type, "adaptive");
    if (!on && strcmp(type, "disabled"))
        return bad(err, "thinking.type", "must be \"enabled\", \"adaptive\" or \"disabled\"");
    json_object_set_new(chat, "chat_template_kwargs", json_pack("{s:b}", "enable_thinking", on));
    return 0;
}

/* max_tokens, sampling, stop_sequences, metadata: checked here so that the
 * errors name Anthropic's fields; copied under the chat names. */
static int convert_params(const json_t *body, int count_only, json_t *chat, api_error *err) {
    const json_t *mt = json_object_get(body, "max_tokens");
    if (!count_only && (!json_is_integer(mt) || json_integer_value(mt) < 1))
        return bad(err, "max_tokens", mt ? "must be an integer >= 1" : "is required");
    if (!count_only) json_object_set(chat, "max_tokens", (json_t *)mt);
    const char *nums[] = {"temperature", "top_p"};
    for (int i = 0; i < 2; i++) {
        const json_t *v = json_object_get(body, nums[i]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1)
            return bad(err, nums[i], "must be a number between 0 and 1");
        json_object_set(chat, nums[i], (json_t *)v);
    }
    const json_t *k = json_object_get(body, "top_k");
    if (k && !json_is_null(k)) {
        if (!json_is_integer(k) || json_integer_value(k) < 0)
            return bad(err, "top_k", "must be an integer >= 0");
        json_object_set(chat, "top_k", (json_t *)k);
    }
    const json_t *stop = json_object_get(body, "stop_sequences");
    if (stop && !json_is_null(stop)) {
        if (!json_is_array(stop) || json_array_size(stop) > 16)
            return bad(err, "stop_sequences", "must be an array of at most 16 strings");
        for (size_t i = 0; i < json_array_size(stop); i++)
            if (!json_is_string(json_array_get(stop, i)))
                return bad(err, "stop_sequences", "item %zu is not a string", i);
        json_object_set(chat, "stop", (json_t *)stop);
    }
    const json_t *md = json_object_get(body, "metadata");
    if (md && !json_is_null(md) && !json_is_object(md))
        return bad(err, "metadata", "must be an object");
    const json_t *st = json_object_get(body, "stream");
    if (st && !json_is_null(st) && !json_is_boolean(st))
        return bad(err, "stream", "must be a boolean");
    return 0;
}

int anthropic_to_chat(const json_t *body, int count_only, json_t **chat, api_error *err) {
    *chat = NULL;
    if (!json_is_object(body)) return bad(err, NULL, "the request body must be a JSON object");
    const json_t *model = json_object_get(body, "model");
    if (model && !json_is_string(model)) return bad(err, "model", "must be a string");
    json_t *c = json_object();
    const json_t *hook = json_object_get(body, "spindle_debug_force_output"); /* tests only */
    if (hook) json_object_set(c, "spindle_debug_force_output", (json_t *)hook);
    if (convert_params(body, count_only, c, err) || convert_messages(body, c, err) ||
        convert_tools(body, c, err) || convert_tool_choice(body, c, err) ||
        convert_thinking(body, c, err)) {
        json_decref(c);
        return -1;
    }
    *chat = c;
    return 0;
}
