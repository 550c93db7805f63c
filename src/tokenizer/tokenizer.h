/* Tokenizers: Hugging Face tokenizer.json (byte-level BPE and
 * SentencePiece-style BPE with byte fallback) and GGUF vocabularies.
 * Immutable after load: safe to share read-only between threads. */
#ifndef SP_TOKENIZER_TOKENIZER_H
#define SP_TOKENIZER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct sp_tokenizer sp_tokenizer;

/* Loads tokenizer.json (+ tokenizer_config.json if present) from dir. */
sp_status sp_tokenizer_load_dir(sp_tokenizer **out, const char *dir, sp_error *err);
/* The tokenizer of a model path: a directory (as above) or a .gguf file
 * (its tokenizer.ggml.* metadata). */
sp_status sp_tokenizer_load(sp_tokenizer **out, const char *path, sp_error *err);
void sp_tokenizer_free(sp_tokenizer *tok);

/* add_special: apply the post-processor (e.g. BOS) as transformers'
 * add_special_tokens=True does. parse_special: match special added tokens in
 * text (transformers' default); when 0 they are tokenized as plain text.
 * *ids is malloc'd (caller frees). */
sp_status sp_tokenizer_encode(const sp_tokenizer *tok, const char *text, size_t len,
                              int add_special, int parse_special, int32_t **ids, size_t *n_ids,
                              sp_error *err);
/* Decodes ids to malloc'd UTF-8 text; skip_special drops special tokens. */
sp_status sp_tokenizer_decode(const sp_tokenizer *tok, const int32_t *ids, size_t n_ids,
                              int skip_special, char **text, size_t *len, sp_error *err);

int sp_tokenizer_vocab_size(const sp_tokenizer *tok);
/* The token's string as stored in the vocabulary (NULL if out of range). */
const char *sp_tokenizer_piece(const sp_tokenizer *tok, int32_t id);
int sp_tokenizer_is_special(const sp_tokenizer *tok, int32_t id);
/* -1 if absent */
int32_t sp_tokenizer_token_id(const sp_tokenizer *tok, const char *piece);
int32_t sp_tokenizer_bos_id(const sp_tokenizer *tok);
int32_t sp_tokenizer_eos_id(const sp_tokenizer *tok);
/* Strings from tokenizer_config.json (NULL if absent). */
const char *sp_tokenizer_bos_token(const sp_tokenizer *tok);
const char *sp_tokenizer_eos_token(const sp_tokenizer *tok);
const char *sp_tokenizer_chat_template(const sp_tokenizer *tok);

/* Streaming detokenizer: feeds ids one at a time and returns the text that is
 * complete (whole UTF-8, no pending byte-fallback run); flush returns the
 * rest. Never drops or duplicates bytes: concatenating all outputs equals
 * sp_tokenizer_decode of all ids. One per request; not shared. */
typedef struct sp_detok sp_detok;
sp_detok *sp_detok_new(const sp_tokenizer *tok, int skip_special);
/* Appends the newly completed text to *out (malloc'd, NUL-terminated,
 * possibly empty; caller frees). */
sp_status sp_detok_push(sp_detok *d, int32_t id, char **out, size_t *len, sp_error *err);
sp_status sp_detok_flush(sp_detok *d, char **out, size_t *len, sp_error *err);
void sp_detok_free(sp_detok *d);

#endif
