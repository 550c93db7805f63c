/* Structured output request fields (docs/api.md, "Structured output"):
 * OpenAI's response_format, vLLM's guided_json / guided_choice /
 * guided_regex and llama-server's json_schema, compiled here (on the HTTP
 * thread) into the grammar the engine enforces token by token. A schema we
 * cannot enforce is a 400 naming the keyword and where it is. */
#include <stdlib.h>
#include <string.h>

#include "server/server_impl.h"

/* The JSON path for an error inside a schema given at field. */
static void fail_gram(api_error *err, const char *field, const sp_gram_error *ge) {
    char param[160];
    size_t n = strlen(field);
    if (n >= sizeof param) n = sizeof param - 1;
    memcpy(param, field, n);
    param[n] = 0;
    if (ge->path[0] && n + 1 < sizeof param) { /* field.path, cut to fit */
        param[n] = '.';
        size_t k = strlen(ge->path);
        if (k > sizeof param - n - 2) k = sizeof param - n - 2;
        memcpy(param + n + 1, ge->path, k);
        param[n + 1 + k] = 0;
    }
    if (ge->status == SP_GRAM_ENOMEM)
        api_fail(err, 500, param, "out of memory compiling %s", field);
    else
        api_fail(err, 400, param, "%s: %s", field, ge->msg);
}

static int from_schema(const json_t *schema, const char *field, sp_grammar **out, api_error *err) {
    json_t *parsed = NULL;
    if (json_is_string(schema)) { /* vLLM takes the schema as JSON text too */
        json_error_t je;
        parsed = json_loads(json_string_value(schema), JSON_DECODE_ANY, &je);
        if (!parsed) {
            api_fail(err, 400, field, "%s is not valid JSON: %s", field, je.text);
            return -1;
        }
        schema = parsed;
    }
    sp_gram_error ge;
    int rc = 0;
    if (!json_is_object(schema) && !json_is_boolean(schema)) {
        api_fail(err, 400, field, "%s must be a JSON Schema (an object)", field);
        rc = -1;
    } else if (sp_grammar_from_schema(schema, out, &ge) != SP_GRAM_OK) {
        fail_gram(err, field, &ge);
        rc = -1;
    }
    json_decref(parsed);
    return rc;
}

static int response_format(const json_t *rf, sp_grammar **out, api_error *err) {
    json_t *type = json_object_get(rf, "type");
    if (!json_is_object(rf) || !json_is_string(type)) {
        api_fail(err, 400, "response_format.type",
                 "response_format must be an object with a type (text, json_object or "
                 "json_schema)");
        return -1;
    }
    const char *t = json_string_value(type);
    if (!strcmp(t, "text")) return 0;
    sp_gram_error ge;
    if (!strcmp(t, "json_object")) {
        json_t *schema = json_object_get(rf, "schema"); /* llama-server's spelling */
        if (schema) return from_schema(schema, "response_format.schema", out, err);
        if (sp_grammar_json_object(out, &ge) != SP_GRAM_OK) {
            fail_gram(err, "response_format", &ge);
            return -1;
        }
        return 0;
    }
    if (!strcmp(t, "json_schema")) {
        json_t *js = json_object_get(rf, "json_schema");
        if (!json_is_object(js)) {
            api_fail(err, 400, "response_format.json_schema",
                     "response_format.json_schema must be an object with a schema");
            return -1;
        }
        json_t *schema = json_object_get(js, "schema");
        if (!schema) {
            api_fail(err, 400, "response_format.json_schema.schema",
                     "response_format.json_schema.schema is required");
            return -1;
        }
        return from_schema(schema, "response_format.json_schema.schema", out, err);
    }
    api_fail(err, 400, "response_format.type",
             "response_format.type must be text, json_object or json_schema, got '%s'", t);
    return -1;
}

static int guided_choice(const json_t *v, sp_grammar **out, api_error *err) {
    size_t n = json_array_size(v);
    if (!json_is_array(v) || !n || n > 4096) {
        api_fail(err, 400, "guided_choice", "guided_choice must be a non-empty array of strings");
        return -1;
    }
    const char **c = calloc(n, sizeof *c);
    if (!c) {
        api_fail(err, 500, "guided_choice", "out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        c[i] = json_string_value(json_array_get(v, i));
        if (!c[i] || !c[i][0]) {
            char p[48];
            snprintf(p, sizeof p, "guided_choice[%zu]", i);
            api_fail(err, 400, p, "%s must be a non-empty string", p);
            rc = -1;
        }
    }
    sp_gram_error ge;
    if (!rc && sp_grammar_from_choices(c, (int)n, out, &ge) != SP_GRAM_OK) {
        fail_gram(err, "guided_choice", &ge);
        rc = -1;
    }
    free(c);
    return rc;
}

/* Which field asks for structured output (NULL: none); two are a 400. */
static const char *which_field(const json_t *body, api_error *err) {
    static const char *fields[] = {"response_format", "guided_json", "guided_choice",
                                   "guided_regex", "json_schema"};
    const char *found = NULL;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        json_t *v = json_object_get(body, fields[i]);
        if (!v || json_is_null(v)) continue;
        if (found) {
            api_fail(err, 400, fields[i], "%s and %s both ask for structured output: give one",
                     found, fields[i]);
            return (const char *)-1;
        }
        found = fields[i];
    }
    return found;
}

/* Does the prompt already end with a closed reasoning block (Qwen 3 with
 * enable_thinking false)? Then no new block may open. */
static int prompt_closes_reasoning(const sp_engine_info *info, const gen_req *g,
                                   const char *close) {
    size_t n = g->n_prompt < 8 ? g->n_prompt : 8;
    char *tail = NULL;
    size_t len = 0;
    sp_error e;
    if (sp_tokenizer_decode(info->tokenizer, g->prompt + g->n_prompt - n, n, 0, &tail, &len, &e))
        return 0;
    while (len && strchr(" \t\r\n", tail[len - 1])) len--;
    size_t cl = strlen(close);
    int closed = len >= cl && !memcmp(tail + len - cl, close, cl);
    free(tail);
    return closed;
}

int structured_output_setup(const json_t *body, const sp_engine_info *info, gen_req *g,
                            api_error *err) {
    static const char *unsupported[] = {"grammar", "guided_grammar"};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(body, unsupported[i]);
        if (v && !json_is_null(v)) {
            api_fail(err, 400, unsupported[i],
                     "%s (GBNF / EBNF grammars) is not supported: use response_format with a JSON "
                     "Schema, guided_regex or guided_choice",
                     unsupported[i]);
            return -1;
        }
    }
    const char *field = which_field(body, err);
    if (field == (const char *)-1) return -1;
    if (!field) return 0;
    json_t *v = json_object_get(body, field);
    sp_grammar *gr = NULL;
    int rc;
    if (!strcmp(field, "response_format"))
        rc = response_format(v, &gr, err);
    else if (!strcmp(field, "guided_choice"))
        rc = guided_choice(v, &gr, err);
    else if (!strcmp(field, "guided_regex")) {
        sp_gram_error ge;
        rc = 0;
        if (!json_is_string(v)) {
            api_fail(err, 400, field, "guided_regex must be a string");
            rc = -1;
        } else if (sp_grammar_from_regex(json_string_value(v), &gr, &ge) != SP_GRAM_OK) {
            fail_gram(err, field, &ge);
            rc = -1;
        }
    } else
        rc = from_schema(v, field, &gr, err);
    /* tool_choice forcing keeps its own constraint; the test hook's text
     * replaces the output anyway */
    if (rc || !gr || g->constraint || g->forced) {
        sp_grammar_release(gr);
        return rc;
    }
    g->grammar = gr;
    g->params.grammar = gr;
    if (g->chat && g->out.think == SP_THINK_TAGS) {
        g->params.think_close = "</think>";
        g->params.think_open = "<think>";
    } else if (g->chat && g->out.think == SP_THINK_GEMMA4) {
        g->params.think_close = "<channel|>";
        g->params.think_open = "<|channel>";
    }
    if (g->params.think_close) {
        g->params.in_think = g->out.start_in_reasoning;
        if (g->params.in_think || prompt_closes_reasoning(info, g, g->params.think_close))
            g->params.think_open = NULL;
    }
    return 0;
}
