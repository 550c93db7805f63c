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

#endif
