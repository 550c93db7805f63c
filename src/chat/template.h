/* Jinja chat templates as transformers renders them (trim_blocks,
 * lstrip_blocks). A parsed template is immutable: safe to render from many
 * threads at once. */
#ifndef SP_CHAT_TEMPLATE_H
#define SP_CHAT_TEMPLATE_H

#include <jansson.h>

#include "base/status.h"

typedef struct sp_template sp_template;

/* Syntax errors name line and column. */
sp_status sp_template_parse(sp_template **out, const char *source, sp_error *err);
void sp_template_free(sp_template *t);

/* ctx is the template's variables as transformers passes them: "messages",
 * "tools" (or null), "add_generation_prompt", "bos_token", "eos_token" and any
 * extra kwargs (e.g. "enable_thinking"). *out is malloc'd. Errors (including
 * raise_exception, with the template's message) are SP_EINVAL. */
sp_status sp_template_render(const sp_template *t, const json_t *ctx, char **out, sp_error *err);

/* The chat template of a model folder as transformers finds it: DIR/chat_template.jinja
 * if present (transformers >= 4.43), else tokenizer_config.json's "chat_template"
 * (a string, or a list of {"name", "template"} from which "default" is taken).
 * *bos_token / *eos_token come from tokenizer_config.json (a string, or an
 * object with "content"); NULL when absent or null. All outputs malloc'd;
 * bos_token/eos_token may be NULL pointers when not wanted. */
sp_status sp_chat_template_load(const char *model_dir, char **source, char **bos_token,
                                char **eos_token, sp_error *err);

/* The render context transformers builds: messages, tools (null when none),
 * documents (null), add_generation_prompt, bos_token/eos_token (omitted when
 * NULL), then every key of kwargs (may be NULL). Returns a new reference. */
json_t *sp_chat_template_context(json_t *messages, json_t *tools, int add_generation_prompt,
                                 const char *bos_token, const char *eos_token,
                                 const json_t *kwargs);

#endif
