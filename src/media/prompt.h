/* Image placeholders in rendered prompts, as each family's Hugging Face
 * processor expands them (spec/vision.md 2.3, 3.3): the chat template
 * writes one placeholder per image; each becomes the image's token run.
 *   Gemma 3: "<start_of_image>" -> "\n\n<start_of_image>" + N x
 *            "<image_soft_token>" + "<end_of_image>\n\n"
 *   Gemma 4: "<|image|>" -> "<|image>" + N x "<|image|>" + "<image|>"
 * The expansion happens on the text, before tokenization, as transformers
 * does (the newlines then merge with their neighbours). Pure functions. */
#ifndef SP_MEDIA_PROMPT_H
#define SP_MEDIA_PROMPT_H

#include "base/status.h"
#include "media/preprocess.h"

/* The placeholder the chat template writes for one image. */
const char *sp_image_placeholder(sp_proc_kind kind, const char *boi, const char *soft);
/* The text one image of n_soft soft tokens becomes (malloc'd). */
char *sp_image_expansion(sp_proc_kind kind, const char *boi, const char *soft, const char *eoi,
                         int n_soft);
/* Counts the placeholders in text. */
int sp_image_count_placeholders(const char *text, const char *placeholder);
/* Replaces the i-th placeholder by expansions[i]; the count must be n
 * (the error names both numbers). *out is malloc'd. */
sp_status sp_image_expand_text(const char *text, const char *placeholder,
                               const char *const *expansions, int n, char **out, sp_error *err);

#endif
