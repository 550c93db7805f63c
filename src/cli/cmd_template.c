/* spindle template: render a model's chat template for a messages file, the
 * way transformers' apply_chat_template(tokenize=False) does. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "chat/template.h"
#include "cli/args.h"
#include "cli/commands.h"

static void usage(FILE *f) {
    fprintf(f, "usage: spindle template --model DIR --messages FILE.json [--tools FILE.json]\n"
               "                        [--add-generation-prompt] [--kwargs JSON]\n"
               "                        [--template FILE]\n"
               "Prints the rendered chat template (no trailing newline added).\n"
               "FILE.json holds a JSON array of messages (or an object with \"messages\").\n");
}

static json_t *load_json(const char *path, const char *what) {
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) fprintf(stderr, "spindle template: %s %s: line %d: %s\n", what, path, je.line, je.text);
    return j;
}

int cmd_template(int argc, char **argv) {
    const char *model = NULL, *messages_path = NULL, *tools_path = NULL, *kwargs_text = NULL,
               *template_path = NULL;
    int add_gen = 0;
    const arg_flag flags[] = {{"--model", &model, NULL},
                              {"--messages", &messages_path, NULL},
                              {"--tools", &tools_path, NULL},
                              {"--kwargs", &kwargs_text, NULL},
                              {"--template", &template_path, NULL},
                              {"--add-generation-prompt", NULL, &add_gen},
                              {NULL}};
    int parsed = arg_parse(argc, argv, flags, NULL, usage);
    if (parsed >= 0) return parsed;
    if (!messages_path || (!model && !template_path)) {
        fprintf(stderr, "spindle template: --messages and --model (or --template) are required\n");
        usage(stderr);
        return 2;
    }

    int rc = 1;
    sp_error err = {0};
    char *source = NULL, *bos = NULL, *eos = NULL, *out = NULL;
    json_t *messages = NULL, *tools = NULL, *kwargs = NULL, *ctx = NULL;
    sp_template *tpl = NULL;

    if (model) {
        sp_status st =
            template_path ? SP_OK : sp_chat_template_load(model, &source, &bos, &eos, &err);
        if (st != SP_OK) goto fail;
        if (template_path) {
            /* tokens still come from the model folder when one is given */
            char *ignored = NULL;
            if (sp_chat_template_load(model, &ignored, &bos, &eos, &err) != SP_OK) {
                bos = eos = NULL;
            }
            free(ignored);
        }
    }
    if (template_path) {
        size_t len;
        if (sp_read_text(template_path, &source, &len, &err) != SP_OK) goto fail;
    }
    if (kwargs_text) {
        json_error_t je;
        kwargs = json_loads(kwargs_text, 0, &je);
        if (!json_is_object(kwargs)) {
            fprintf(stderr, "spindle template: --kwargs must be a JSON object%s%s\n",
                    kwargs ? "" : ": ", kwargs ? "" : je.text);
            rc = 2;
            goto done;
        }
    }
    if (!(messages = load_json(messages_path, "messages"))) goto done;
    if (json_is_object(messages)) {
        json_t *m = json_incref(json_object_get(messages, "messages"));
        json_decref(messages);
        messages = m;
    }
    if (!json_is_array(messages)) {
        fprintf(stderr, "spindle template: %s: expected a JSON array of messages\n", messages_path);
        goto done;
    }
    if (tools_path && !(tools = load_json(tools_path, "tools"))) goto done;

    if (sp_template_parse(&tpl, source, &err) != SP_OK) goto fail;
    ctx = sp_chat_template_context(messages, tools, add_gen, bos, eos, kwargs);
    if (!ctx || sp_template_render(tpl, ctx, &out, &err) != SP_OK) goto fail;
    fwrite(out, 1, strlen(out), stdout);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "spindle template: %s\n", err.msg[0] ? err.msg : "failed");
done:
    sp_template_free(tpl);
    json_decref(ctx);
    json_decref(messages);
    json_decref(tools);
    json_decref(kwargs);
    free(source);
    free(bos);
    free(eos);
    free(out);
    return rc;
}
