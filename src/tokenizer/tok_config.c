/* tokenizer_config.json: BOS/EOS strings, add_bos_token/add_eos_token, the
 * chat template and added_tokens_decoder. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "tokenizer/tok_internal.h"

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

/* A token given as "text" or {"content": "text", ...}; NULL otherwise. */
static const char *token_text(json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v) && json_is_string(json_object_get(v, "content")))
        return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static int32_t piece_to_id(const sp_tokenizer *tok, const char *s) {
    int32_t id = tok_map_get(&tok->added_map, s, strlen(s));
    if (id < 0)
        for (int i = 0; i < tok->n_added; i++)
            if (!strcmp(tok->added[i].content, s)) return tok->added[i].id;
    return id >= 0 ? id : tok_map_get(&tok->bpe.vocab, s, strlen(s));
}

static sp_status grow_ids(sp_tokenizer *tok, int32_t n, sp_error *err) {
    if (n <= tok->n_ids) return SP_OK;
    char **pieces = realloc(tok->pieces, (size_t)n * sizeof *pieces);
    if (pieces) tok->pieces = pieces;
    uint32_t *lens = realloc(tok->piece_len, (size_t)n * sizeof *lens);
    if (lens) tok->piece_len = lens;
    uint8_t *spec = realloc(tok->is_special, (size_t)n);
    if (spec) tok->is_special = spec;
    if (!pieces || !lens || !spec) return sp_fail(err, SP_ENOMEM, "out of memory");
    for (int32_t i = tok->n_ids; i < n; i++) pieces[i] = NULL, lens[i] = 0, spec[i] = 0;
    tok->n_ids = n;
    return SP_OK;
}

/* Tokens listed only in added_tokens_decoder are added like transformers
 * does; ones tokenizer.json already has are left as they are. */
static sp_status load_added_decoder(sp_tokenizer *tok, json_t *dec, const char *path,
                                    sp_error *err) {
    if (!json_is_object(dec)) return SP_OK;
    const char *key;
    json_t *val;
    json_object_foreach(dec, key, val) {
        char *end;
        long id = strtol(key, &end, 10);
        const char *content = token_text(val);
        if (*end || id < 0 || id >= (1 << 24) || !content)
            return sp_fail(err, SP_EFORMAT, "%s: added_tokens_decoder[\"%.100s\"]: bad entry", path,
                           key);
        int known = 0;
        for (int i = 0; i < tok->n_added && !known; i++) known = tok->added[i].id == id;
        if (known) continue;
        tok_added *grown = realloc(tok->added, (size_t)(tok->n_added + 1) * sizeof *grown);
        if (!grown) return sp_fail(err, SP_ENOMEM, "out of memory");
        tok->added = grown;
        SP_TRY(grow_ids(tok, (int32_t)id + 1, err));
        tok_added *a = &tok->added[tok->n_added];
        memset(a, 0, sizeof *a);
        a->id = (int32_t)id;
        if (!(a->content = dup_str(content))) return sp_fail(err, SP_ENOMEM, "out of memory");
        a->len = strlen(content);
        a->special = json_is_true(json_object_get(val, "special"));
        a->lstrip = json_is_true(json_object_get(val, "lstrip"));
        a->rstrip = json_is_true(json_object_get(val, "rstrip"));
        a->single_word = json_is_true(json_object_get(val, "single_word"));
        a->normalized = json_is_true(json_object_get(val, "normalized"));
        tok->n_added++;
    }
    return SP_OK;
}

/* chat_template: a string, or a list of {"name", "template"} (take "default"). */
static sp_status load_chat_template(sp_tokenizer *tok, json_t *v, const char *path, sp_error *err) {
    const char *text = NULL;
    if (json_is_string(v)) text = json_string_value(v);
    for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        json_t *name = json_object_get(e, "name"), *tmpl = json_object_get(e, "template");
        if (json_is_string(name) && json_is_string(tmpl) &&
            !strcmp(json_string_value(name), "default"))
            text = json_string_value(tmpl);
    }
    if (!v || json_is_null(v)) return SP_OK;
    if (!text)
        return sp_fail(err, SP_EFORMAT,
                       "%s: chat_template: expected a string or a list with a \"default\" entry",
                       path);
    if (!(tok->chat_template = dup_str(text))) return sp_fail(err, SP_ENOMEM, "out of memory");
    return SP_OK;
}

/* transformers' Llama/Gemma tokenizers rebuild the post-processor from
 * add_bos_token / add_eos_token when the config states them. */
static sp_status override_template(sp_tokenizer *tok, json_t *root, sp_error *err) {
    json_t *ab = json_object_get(root, "add_bos_token"),
           *ae = json_object_get(root, "add_eos_token");
    if (!json_is_boolean(ab) && !json_is_boolean(ae)) return SP_OK;
    int add_bos = json_is_boolean(ab) ? json_is_true(ab) : 0;
    int add_eos = json_is_boolean(ae) ? json_is_true(ae) : 0;
    tok_template *t = &tok->tmpl;
    free(t->before);
    free(t->after);
    memset(t, 0, sizeof *t);
    t->before = malloc(sizeof(int32_t));
    t->after = malloc(sizeof(int32_t));
    if (!t->before || !t->after) return sp_fail(err, SP_ENOMEM, "out of memory");
    if (add_bos && tok->bos_id >= 0) t->before[t->n_before++] = tok->bos_id;
    if (add_eos && tok->eos_id >= 0) t->after[t->n_after++] = tok->eos_id;
    t->present = 1;
    return SP_OK;
}

sp_status tok_load_config(sp_tokenizer *tok, const char *path, sp_error *err) {
    json_error_t je;
    json_t *root = json_load_file(path, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &je);
    if (!root)
        return sp_fail(err, SP_EFORMAT, "%s: invalid JSON at line %d, column %d: %s", path, je.line,
                       je.column, je.text);
    sp_status st =
        load_added_decoder(tok, json_object_get(root, "added_tokens_decoder"), path, err);
    const char *bos = token_text(json_object_get(root, "bos_token"));
    const char *eos = token_text(json_object_get(root, "eos_token"));
    if (st == SP_OK && bos && !(tok->bos_token = dup_str(bos))) st = sp_fail(err, SP_ENOMEM, "oom");
    if (st == SP_OK && eos && !(tok->eos_token = dup_str(eos))) st = sp_fail(err, SP_ENOMEM, "oom");
    if (st == SP_OK)
        st = load_chat_template(tok, json_object_get(root, "chat_template"), path, err);
    if (st == SP_OK) {
        tok->bos_id = bos ? piece_to_id(tok, bos) : -1;
        tok->eos_id = eos ? piece_to_id(tok, eos) : -1;
        st = override_template(tok, root, err);
    }
    json_decref(root);
    return st;
}
