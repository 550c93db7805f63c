/* Public entry points: loading a directory, freeing, and lookups. */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "tokenizer/tok_internal.h"

sp_status sp_tokenizer_load_dir(sp_tokenizer **out, const char *dir, sp_error *err) {
    *out = NULL;
    if (!sp_path_is_dir(dir))
        return sp_fail(err, sp_path_exists(dir) ? SP_EUNSUPPORTED : SP_ENOTFOUND,
                       "%s: not a directory holding tokenizer.json (GGUF vocabularies are not "
                       "supported yet)",
                       dir);
    tok_unicode_init();
    sp_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return sp_fail(err, SP_ENOMEM, "out of memory");
    tok->bos_id = tok->eos_id = -1;
    tok->bpe.unk_id = -1;
    tok_trie_init(&tok->trie_raw);
    tok_trie_init(&tok->trie_norm);
    char *json = sp_path_join(dir, "tokenizer.json");
    char *config = sp_path_join(dir, "tokenizer_config.json");
    sp_status st = json && config ? SP_OK : sp_fail(err, SP_ENOMEM, "out of memory");
    if (st == SP_OK) st = tok_load_json(tok, json, err);
    if (st == SP_OK && sp_path_exists(config)) st = tok_load_config(tok, config, err);
    if (st == SP_OK) st = tok_index_added(tok, json, err);
    if (st == SP_OK && !sp_path_exists(config)) {
        /* no config: BOS/EOS only from the template, if any */
        tok->bos_id = tok->tmpl.n_before ? tok->tmpl.before[0] : -1;
    }
    tok->path = json;
    free(config);
    if (st != SP_OK) {
        sp_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return SP_OK;
}

void sp_tokenizer_free(sp_tokenizer *tok) {
    if (!tok) return;
    free(tok->path);
    tok_bpe_free(&tok->bpe);
    for (int32_t i = 0; i < tok->n_ids; i++) free(tok->pieces ? tok->pieces[i] : NULL);
    free(tok->pieces);
    for (int i = 0; i < tok->n_retired; i++) free(tok->retired[i]);
    free(tok->retired);
    free(tok->piece_len);
    free(tok->is_special);
    tok_map_free(&tok->added_map);
    for (int i = 0; i < tok->n_added; i++) free(tok->added[i].content);
    free(tok->added);
    tok_trie_free(&tok->trie_raw);
    tok_trie_free(&tok->trie_norm);
    if (tok->normalizer) tok_norm_free(tok->normalizer);
    if (tok->pretok) tok_pretok_free(tok->pretok);
    if (tok->decoder) tok_dec_free(tok->decoder);
    free(tok->normalizer);
    free(tok->pretok);
    free(tok->decoder);
    free(tok->tmpl.before);
    free(tok->tmpl.after);
    free(tok->bos_token);
    free(tok->eos_token);
    free(tok->chat_template);
    free(tok);
}

int sp_tokenizer_vocab_size(const sp_tokenizer *tok) {
    return tok->n_ids;
}

const char *sp_tokenizer_piece(const sp_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->n_ids ? tok->pieces[id] : NULL;
}

int sp_tokenizer_is_special(const sp_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->n_ids && tok->is_special[id];
}

int32_t sp_tokenizer_token_id(const sp_tokenizer *tok, const char *piece) {
    size_t n = strlen(piece);
    int32_t id = tok_map_get(&tok->added_map, piece, n);
    return id >= 0 ? id : tok_map_get(&tok->bpe.vocab, piece, n);
}

int32_t sp_tokenizer_bos_id(const sp_tokenizer *tok) {
    return tok->bos_id;
}
int32_t sp_tokenizer_eos_id(const sp_tokenizer *tok) {
    return tok->eos_id;
}
const char *sp_tokenizer_bos_token(const sp_tokenizer *tok) {
    return tok->bos_token;
}
const char *sp_tokenizer_eos_token(const sp_tokenizer *tok) {
    return tok->eos_token;
}
const char *sp_tokenizer_chat_template(const sp_tokenizer *tok) {
    return tok->chat_template;
}
