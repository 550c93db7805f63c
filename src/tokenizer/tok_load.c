/* tokenizer.json: model (BPE), added tokens, normalizer, pre-tokenizer,
 * post-processor and decoder. Every error names the file and the JSON path
 * of the offending value (or the line/column for syntax errors). */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/utf8.h"
#include "tokenizer/tok_internal.h"

#define MAX_IDS (1 << 24) /* far above any real vocabulary; guards allocations */

/* snprintf for JSON paths in messages; long paths are cut, never overflow. */
__attribute__((format(printf, 3, 4))) static void pfmt(char *dst, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

typedef struct loader {
    sp_tokenizer *tok;
    const char *file;
    sp_error *err;
} loader;

static sp_status bad(loader *L, const char *path, const char *what) {
    return sp_fail(L->err, SP_EFORMAT, "%s: %s: %s", L->file, path, what);
}

static const char *get_str(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int get_bool(json_t *obj, const char *key, int dflt) {
    json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

static char *dup_mem(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n), p[n] = 0;
    return p;
}

/* A pattern object {"String": s} or {"Regex": r}. */
static sp_status load_pattern(loader *L, json_t *obj, const char *path, tok_pattern *out) {
    char where[300];
    pfmt(where, sizeof where, "%s: %s.pattern", L->file, path);
    json_t *p = json_object_get(obj, "pattern");
    json_t *s = json_object_get(p, "String"), *r = json_object_get(p, "Regex");
    if (json_is_string(s))
        return tok_pattern_compile(out, json_string_value(s), json_string_length(s), 0, where,
                                   L->err);
    if (json_is_string(r))
        return tok_pattern_compile(out, json_string_value(r), json_string_length(r), 1, where,
                                   L->err);
    return sp_fail(L->err, SP_EFORMAT, "%s: expected {\"String\": ...} or {\"Regex\": ...}", where);
}

static sp_status load_char(loader *L, json_t *obj, const char *key, const char *path,
                           uint32_t *out) {
    const char *s = get_str(obj, key);
    if (!s) {
        char p[300];
        pfmt(p, sizeof p, "%s.%s", path, key);
        return bad(L, p, "missing or not a string");
    }
    *out = 0;
    if (*s && sp_utf8_decode(s, strlen(s), out) == 0) return bad(L, path, "invalid UTF-8");
    return SP_OK;
}

static sp_status load_prepend_scheme(loader *L, json_t *obj, const char *path,
                                     tok_prepend_scheme *out) {
    const char *s = get_str(obj, "prepend_scheme");
    *out = PREPEND_ALWAYS;
    if (json_is_false(json_object_get(obj, "add_prefix_space"))) *out = PREPEND_NEVER;
    if (!s) return SP_OK;
    if (!strcmp(s, "always"))
        *out = PREPEND_ALWAYS;
    else if (!strcmp(s, "first"))
        *out = PREPEND_FIRST;
    else if (!strcmp(s, "never"))
        *out = PREPEND_NEVER;
    else
        return bad(L, path, "prepend_scheme must be first, always or never");
    return SP_OK;
}

/* Loads obj[key], an array of sub-objects, with the given element loader. */
#define LOAD_CHILDREN(L, obj, key, path, out_arr, out_n, elem_loader)                              \
    do {                                                                                           \
        json_t *arr_ = json_object_get(obj, key);                                                  \
        char p_[300];                                                                              \
        pfmt(p_, sizeof p_, "%s.%s", path, key);                                                   \
        if (!json_is_array(arr_)) return bad(L, p_, "missing or not an array");                    \
        *(out_n) = (int)json_array_size(arr_);                                                     \
        *(out_arr) = calloc(json_array_size(arr_) + 1, sizeof **(out_arr));                        \
        if (!*(out_arr)) return sp_fail(L->err, SP_ENOMEM, "%s: out of memory", L->file);          \
        for (size_t i_ = 0; i_ < json_array_size(arr_); i_++) {                                    \
            char pe_[300];                                                                         \
            pfmt(pe_, sizeof pe_, "%s[%zu]", p_, i_);                                              \
            SP_TRY(elem_loader(L, json_array_get(arr_, i_), pe_, &(*(out_arr))[i_]));              \
        }                                                                                          \
    } while (0)

/* ---- normalizers ---- */

static sp_status load_norm(loader *L, json_t *obj, const char *path, tok_norm *n) {
    const char *type = get_str(obj, "type");
    if (!json_is_object(obj) || !type) return bad(L, path, "expected an object with a \"type\"");
    if (!strcmp(type, "Sequence")) {
        n->kind = NORM_SEQUENCE;
        LOAD_CHILDREN(L, obj, "normalizers", path, &n->children, &n->n_children, load_norm);
    } else if (!strcmp(type, "NFC"))
        n->kind = NORM_NFC;
    else if (!strcmp(type, "NFD"))
        n->kind = NORM_NFD;
    else if (!strcmp(type, "NFKC"))
        n->kind = NORM_NFKC;
    else if (!strcmp(type, "NFKD"))
        n->kind = NORM_NFKD;
    else if (!strcmp(type, "Lowercase"))
        n->kind = NORM_LOWERCASE;
    else if (!strcmp(type, "StripAccents"))
        n->kind = NORM_STRIP_ACCENTS;
    else if (!strcmp(type, "Strip")) {
        n->kind = NORM_STRIP;
        n->strip_left = get_bool(obj, "strip_left", 1);
        n->strip_right = get_bool(obj, "strip_right", 1);
    } else if (!strcmp(type, "Prepend")) {
        n->kind = NORM_PREPEND;
        const char *s = get_str(obj, "prepend");
        if (!s) return bad(L, path, "Prepend without a \"prepend\" string");
        if (!(n->content = dup_str(s))) return sp_fail(L->err, SP_ENOMEM, "out of memory");
    } else if (!strcmp(type, "Replace")) {
        n->kind = NORM_REPLACE;
        const char *s = get_str(obj, "content");
        if (!s) return bad(L, path, "Replace without a \"content\" string");
        if (!(n->content = dup_str(s))) return sp_fail(L->err, SP_ENOMEM, "out of memory");
        SP_TRY(load_pattern(L, obj, path, &n->pattern));
    } else {
        return sp_fail(L->err, SP_EUNSUPPORTED, "%s: %s.type: normalizer '%s' is not supported",
                       L->file, path, type);
    }
    return SP_OK;
}

/* ---- pre-tokenizers ---- */

static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static sp_status load_behavior(loader *L, json_t *obj, const char *path, tok_split_behavior *b) {
    const char *s = get_str(obj, "behavior");
    if (!s) return bad(L, path, "missing \"behavior\"");
    if (!strcmp(s, "Removed"))
        *b = SPLIT_REMOVED;
    else if (!strcmp(s, "Isolated"))
        *b = SPLIT_ISOLATED;
    else if (!strcmp(s, "MergedWithPrevious"))
        *b = SPLIT_MERGED_PREV;
    else if (!strcmp(s, "MergedWithNext"))
        *b = SPLIT_MERGED_NEXT;
    else if (!strcmp(s, "Contiguous"))
        *b = SPLIT_CONTIGUOUS;
    else
        return bad(L, path, "unknown split behavior");
    return SP_OK;
}

static sp_status load_pretok(loader *L, json_t *obj, const char *path, tok_pretok *p) {
    const char *type = get_str(obj, "type");
    char where[300];
    pfmt(where, sizeof where, "%s: %s", L->file, path);
    if (!json_is_object(obj) || !type) return bad(L, path, "expected an object with a \"type\"");
    p->behavior = SPLIT_ISOLATED;
    if (!strcmp(type, "Sequence")) {
        p->kind = PT_SEQUENCE;
        LOAD_CHILDREN(L, obj, "pretokenizers", path, &p->children, &p->n_children, load_pretok);
    } else if (!strcmp(type, "Split")) {
        p->kind = PT_SPLIT;
        SP_TRY(load_pattern(L, obj, path, &p->pattern));
        SP_TRY(load_behavior(L, obj, path, &p->behavior));
        p->invert = get_bool(obj, "invert", 0);
    } else if (!strcmp(type, "ByteLevel")) {
        p->kind = PT_BYTELEVEL;
        p->add_prefix_space = get_bool(obj, "add_prefix_space", 1);
        p->use_regex = get_bool(obj, "use_regex", 1);
        SP_TRY(tok_pattern_compile(&p->pattern, GPT2_REGEX, strlen(GPT2_REGEX), 1, where, L->err));
    } else if (!strcmp(type, "Metaspace")) {
        p->kind = PT_METASPACE;
        SP_TRY(load_char(L, obj, "replacement", path, &p->replacement));
        SP_TRY(load_prepend_scheme(L, obj, path, &p->prepend));
        p->split = get_bool(obj, "split", 1);
    } else if (!strcmp(type, "Digits")) {
        p->kind = PT_DIGITS;
        p->individual_digits = get_bool(obj, "individual_digits", 0);
    } else if (!strcmp(type, "Whitespace")) {
        static const char re[] = "\\w+|[^\\w\\s]+";
        p->kind = PT_WHITESPACE;
        p->invert = 1; /* the matches are the words */
        p->behavior = SPLIT_REMOVED;
        SP_TRY(tok_pattern_compile(&p->pattern, re, strlen(re), 1, where, L->err));
    } else if (!strcmp(type, "WhitespaceSplit")) {
        p->kind = PT_WHITESPACE_SPLIT;
    } else if (!strcmp(type, "Punctuation")) {
        p->kind = PT_PUNCTUATION;
        if (json_object_get(obj, "behavior")) SP_TRY(load_behavior(L, obj, path, &p->behavior));
    } else {
        return sp_fail(L->err, SP_EUNSUPPORTED, "%s: %s.type: pre-tokenizer '%s' is not supported",
                       L->file, path, type);
    }
    return SP_OK;
}

/* ---- decoders ---- */

static sp_status load_dec(loader *L, json_t *obj, const char *path, tok_dec *d) {
    const char *type = get_str(obj, "type");
    if (!json_is_object(obj) || !type) return bad(L, path, "expected an object with a \"type\"");
    if (!strcmp(type, "Sequence")) {
        d->kind = DEC_SEQUENCE;
        LOAD_CHILDREN(L, obj, "decoders", path, &d->children, &d->n_children, load_dec);
    } else if (!strcmp(type, "ByteLevel"))
        d->kind = DEC_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback"))
        d->kind = DEC_BYTE_FALLBACK;
    else if (!strcmp(type, "Fuse"))
        d->kind = DEC_FUSE;
    else if (!strcmp(type, "Replace")) {
        d->kind = DEC_REPLACE;
        const char *s = get_str(obj, "content");
        if (!s) return bad(L, path, "Replace without a \"content\" string");
        if (!(d->content = dup_str(s))) return sp_fail(L->err, SP_ENOMEM, "out of memory");
        SP_TRY(load_pattern(L, obj, path, &d->pattern));
    } else if (!strcmp(type, "Strip")) {
        d->kind = DEC_STRIP;
        const char *s = get_str(obj, "content");
        if (!s || !*s) return bad(L, path, "Strip without a \"content\" character");
        if (!(d->content = dup_str(s))) return sp_fail(L->err, SP_ENOMEM, "out of memory");
        d->start = (int)json_integer_value(json_object_get(obj, "start"));
        d->stop = (int)json_integer_value(json_object_get(obj, "stop"));
    } else if (!strcmp(type, "Metaspace")) {
        d->kind = DEC_METASPACE;
        SP_TRY(load_char(L, obj, "replacement", path, &d->replacement));
        SP_TRY(load_prepend_scheme(L, obj, path, &d->prepend));
    } else if (!strcmp(type, "WordPiece")) {
        d->kind = DEC_WORDPIECE;
        const char *s = get_str(obj, "prefix");
        if (!(d->content = dup_str(s ? s : "##")))
            return sp_fail(L->err, SP_ENOMEM, "out of memory");
        d->cleanup = get_bool(obj, "cleanup", 1);
    } else if (!strcmp(type, "BPEDecoder")) {
        d->kind = DEC_BPE_SUFFIX;
        const char *s = get_str(obj, "suffix");
        if (!(d->content = dup_str(s ? s : "</w>")))
            return sp_fail(L->err, SP_ENOMEM, "out of memory");
    } else {
        return sp_fail(L->err, SP_EUNSUPPORTED, "%s: %s.type: decoder '%s' is not supported",
                       L->file, path, type);
    }
    return SP_OK;
}

/* What the streaming detokenizer must know about the chain. */
void tok_dec_properties(sp_tokenizer *tok, const tok_dec *d, int *fused) {
    switch (d->kind) {
    case DEC_SEQUENCE:
        for (int i = 0; i < d->n_children; i++) tok_dec_properties(tok, &d->children[i], fused);
        break;
    case DEC_BYTELEVEL:
        tok->stream_byte_level = 1;
        *fused = 1;
        break;
    case DEC_FUSE:
        *fused = 1;
        break;
    case DEC_BYTE_FALLBACK:
        tok->stream_byte_fallback = 1;
        break;
    case DEC_STRIP:
        if (*fused && d->stop > 0) tok->stream_hold_last = 1;
        break;
    case DEC_BPE_SUFFIX:
        tok->stream_hold_last = 1;
        break;
    default:
        break;
    }
}

/* ---- the BPE model ---- */

static sp_status load_vocab(loader *L, json_t *vocab, int32_t *max_id) {
    sp_tokenizer *tok = L->tok;
    if (!json_is_object(vocab)) return bad(L, "model.vocab", "missing or not an object");
    const char *key;
    json_t *val;
    *max_id = -1;
    json_object_foreach(vocab, key, val) {
        json_int_t id = json_integer_value(val);
        if (!json_is_integer(val) || id < 0 || id >= MAX_IDS) {
            char p[300];
            pfmt(p, sizeof p, "model.vocab[\"%.200s\"]", key);
            return bad(L, p, "id is not an integer in [0, 16777216)");
        }
        if (id > *max_id) *max_id = (int32_t)id;
    }
    if (tok_map_init(&tok->bpe.vocab, json_object_size(vocab)))
        return sp_fail(L->err, SP_ENOMEM, "%s: out of memory", L->file);
    return SP_OK;
}

/* Called once pieces[] exist: fills the piece -> id map from the vocab. */
static sp_status fill_vocab(loader *L, json_t *vocab) {
    sp_tokenizer *tok = L->tok;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        int32_t id = (int32_t)json_integer_value(val);
        size_t n = strlen(key);
        if (tok->pieces[id]) {
            char p[300];
            pfmt(p, sizeof p, "model.vocab[\"%.200s\"]", key);
            return bad(L, p, "id is already used by another piece");
        }
        if (!(tok->pieces[id] = malloc(n + 1)))
            return sp_fail(L->err, SP_ENOMEM, "%s: out of memory", L->file);
        memcpy(tok->pieces[id], key, n + 1);
        tok->piece_len[id] = (uint32_t)n;
        if (tok_map_put(&tok->bpe.vocab, tok->pieces[id], n, id))
            return sp_fail(L->err, SP_ENOMEM, "%s: out of memory", L->file);
    }
    return SP_OK;
}

static sp_status merge_ids(loader *L, size_t rank, const char *a, size_t al, const char *b,
                           size_t bl, tok_buf *tmp) {
    tok_bpe *bpe = &L->tok->bpe;
    int32_t ia = tok_map_get(&bpe->vocab, a, al), ib = tok_map_get(&bpe->vocab, b, bl);
    size_t pl = strlen(bpe->prefix);
    char p[300];
    pfmt(p, sizeof p, "model.merges[%zu]", rank);
    if (ia < 0 || ib < 0) return bad(L, p, "merge uses a token that is not in the vocab");
    if (bl >= pl && memcmp(b, bpe->prefix, pl) == 0) b += pl, bl -= pl;
    tok_buf_clear(tmp);
    if (tok_buf_append(tmp, a, al) || tok_buf_append(tmp, b, bl))
        return sp_fail(L->err, SP_ENOMEM, "out of memory");
    int32_t merged = tok_map_get(&bpe->vocab, tmp->p, tmp->n);
    if (merged < 0) return bad(L, p, "merged token is not in the vocab");
    bpe->merge_info[rank] = (tok_merge){(uint32_t)rank, merged};
    if (tok_map64_put(&bpe->merges, ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib, (uint32_t)rank))
        return sp_fail(L->err, SP_ENOMEM, "out of memory");
    return SP_OK;
}

static sp_status load_merges(loader *L, json_t *merges) {
    tok_bpe *bpe = &L->tok->bpe;
    if (!json_is_array(merges)) return bad(L, "model.merges", "missing or not an array");
    size_t n = json_array_size(merges);
    bpe->merge_info = calloc(n + 1, sizeof *bpe->merge_info);
    if (!bpe->merge_info || tok_map64_init(&bpe->merges, n))
        return sp_fail(L->err, SP_ENOMEM, "%s: out of memory", L->file);
    tok_buf tmp = {0};
    sp_status st = SP_OK;
    size_t rank = 0;
    for (size_t i = 0; i < n && st == SP_OK; i++) {
        json_t *m = json_array_get(merges, i);
        char p[300];
        pfmt(p, sizeof p, "model.merges[%zu]", i);
        if (json_is_string(m)) { /* legacy "a b" */
            const char *s = json_string_value(m), *sp = strchr(s, ' ');
            if (!strncmp(s, "#version", 8)) continue;
            if (!sp || strchr(sp + 1, ' '))
                st = bad(L, p, "expected \"left right\" with exactly one space");
            else
                st = merge_ids(L, rank++, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), &tmp);
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            json_t *a = json_array_get(m, 0), *b = json_array_get(m, 1);
            st = merge_ids(L, rank++, json_string_value(a), json_string_length(a),
                           json_string_value(b), json_string_length(b), &tmp);
        } else {
            st = bad(L, p, "a merge must be a string \"a b\" or a pair [\"a\", \"b\"]");
        }
    }
    bpe->n_merges = rank;
    tok_buf_free(&tmp);
    return st;
}

static sp_status load_model_opts(loader *L, json_t *model) {
    tok_bpe *bpe = &L->tok->bpe;
    const char *prefix = get_str(model, "continuing_subword_prefix");
    const char *suffix = get_str(model, "end_of_word_suffix");
    bpe->prefix = dup_str(prefix ? prefix : "");
    bpe->suffix = dup_str(suffix ? suffix : "");
    if (!bpe->prefix || !bpe->suffix) return sp_fail(L->err, SP_ENOMEM, "out of memory");
    bpe->byte_fallback = get_bool(model, "byte_fallback", 0);
    bpe->fuse_unk = get_bool(model, "fuse_unk", 0);
    bpe->ignore_merges = get_bool(model, "ignore_merges", 0);
    json_t *dropout = json_object_get(model, "dropout");
    if (json_is_number(dropout) && json_number_value(dropout) != 0.0)
        return sp_fail(L->err, SP_EUNSUPPORTED, "%s: model.dropout: BPE dropout is not supported",
                       L->file);
    return SP_OK;
}

static void resolve_model_ids(sp_tokenizer *tok, json_t *model) {
    tok_bpe *bpe = &tok->bpe;
    const char *unk = get_str(model, "unk_token");
    bpe->unk_id = unk ? tok_map_get(&bpe->vocab, unk, strlen(unk)) : -1;
    for (int b = 0; b < 256; b++) {
        char name[8];
        pfmt(name, sizeof name, "<0x%02X>", b);
        bpe->byte_ids[b] = bpe->byte_fallback ? tok_map_get(&bpe->vocab, name, 6) : -1;
    }
    tok_bpe_fill_char_ids(bpe);
}

/* ---- added tokens ---- */

static sp_status load_added(loader *L, json_t *arr, int32_t *max_id) {
    sp_tokenizer *tok = L->tok;
    if (!arr || json_is_null(arr)) return SP_OK;
    if (!json_is_array(arr)) return bad(L, "added_tokens", "not an array");
    tok->added = calloc(json_array_size(arr) + 1, sizeof *tok->added);
    if (!tok->added) return sp_fail(L->err, SP_ENOMEM, "out of memory");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *t = json_array_get(arr, i);
        json_t *id = json_object_get(t, "id");
        const char *content = get_str(t, "content");
        char p[300];
        pfmt(p, sizeof p, "added_tokens[%zu]", i);
        if (!json_is_object(t) || !content || !json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= MAX_IDS)
            return bad(L, p, "expected {\"id\": 0..16777215, \"content\": string, ...}");
        tok_added *a = &tok->added[tok->n_added++];
        a->id = (int32_t)json_integer_value(id);
        if (!(a->content = dup_str(content))) return sp_fail(L->err, SP_ENOMEM, "out of memory");
        a->len = strlen(content);
        a->special = get_bool(t, "special", 0);
        a->lstrip = get_bool(t, "lstrip", 0);
        a->rstrip = get_bool(t, "rstrip", 0);
        a->single_word = get_bool(t, "single_word", 0);
        a->normalized = get_bool(t, "normalized", !a->special);
        if (a->id > *max_id) *max_id = a->id;
    }
    return SP_OK;
}

/* Moves pieces[id] to the retired list (it may be a key of bpe.vocab). */
static int retire_piece(sp_tokenizer *tok, int32_t id) {
    char **r = realloc(tok->retired, ((size_t)tok->n_retired + 1) * sizeof *r);
    if (!r) return -1;
    tok->retired = r;
    r[tok->n_retired++] = tok->pieces[id];
    tok->pieces[id] = NULL;
    return 0;
}

/* Added tokens take precedence over the model vocab for id -> piece. Runs
 * after tokenizer_config.json may have added more of them. */
sp_status tok_index_added(sp_tokenizer *tok, const char *file, sp_error *err) {
    loader Lv = {tok, file, err}, *L = &Lv;
    if (tok_map_init(&tok->added_map, (size_t)tok->n_added + 1))
        return sp_fail(L->err, SP_ENOMEM, "out of memory");
    tok_buf norm = {0};
    pcre2_match_data *md = tok_match_data();
    sp_status st = md ? SP_OK : sp_fail(L->err, SP_ENOMEM, "out of memory");
    for (int i = 0; i < tok->n_added && st == SP_OK; i++) {
        tok_added *a = &tok->added[i];
        if (tok->pieces[a->id] && retire_piece(tok, a->id)) {
            st = sp_fail(L->err, SP_ENOMEM, "out of memory");
            break;
        }
        /* a->len bytes, not strlen: a GGUF token may hold NUL bytes */
        tok->pieces[a->id] = dup_mem(a->content, a->len);
        tok->piece_len[a->id] = (uint32_t)a->len;
        tok->is_special[a->id] = a->special;
        int rc = !tok->pieces[a->id] || tok_map_put(&tok->added_map, a->content, a->len, a->id);
        if (!rc && a->normalized) {
            /* matched against normalized text, so normalize the pattern too */
            tok_buf_clear(&norm);
            rc = tok_buf_append(&norm, a->content, a->len) ||
                 (tok->normalizer && tok_normalize(tok->normalizer, &norm, md)) ||
                 tok_trie_add(&tok->trie_norm, norm.p, norm.n, i);
        } else if (!rc) {
            rc = tok_trie_add(&tok->trie_raw, a->content, a->len, i);
        }
        if (rc) st = sp_fail(L->err, SP_ENOMEM, "out of memory");
    }
    tok_buf_free(&norm);
    if (md) pcre2_match_data_free(md);
    return st;
}

/* ---- post-processor ---- */

static sp_status push_special(loader *L, json_t *specials, const char *name, int32_t **v, size_t *n,
                              const char *path) {
    json_t *ids = json_object_get(json_object_get(specials, name), "ids");
    if (!json_is_array(ids)) return bad(L, path, "special token without \"ids\"");
    for (size_t i = 0; i < json_array_size(ids); i++) {
        json_int_t id = json_integer_value(json_array_get(ids, i));
        if (id < 0 || id >= L->tok->n_ids) return bad(L, path, "special token id out of range");
        int32_t *nv = realloc(*v, (*n + 1) * sizeof *nv);
        if (!nv) return sp_fail(L->err, SP_ENOMEM, "out of memory");
        *v = nv;
        nv[(*n)++] = (int32_t)id;
    }
    return SP_OK;
}

static sp_status load_template(loader *L, json_t *obj, const char *path) {
    tok_template *t = &L->tok->tmpl;
    json_t *single = json_object_get(obj, "single"),
           *specials = json_object_get(obj, "special_tokens");
    char p[300];
    pfmt(p, sizeof p, "%s.single", path);
    if (!json_is_array(single)) return bad(L, p, "missing or not an array");
    int seen_seq = 0;
    for (size_t i = 0; i < json_array_size(single); i++) {
        json_t *e = json_array_get(single, i), *sp = json_object_get(e, "SpecialToken");
        pfmt(p, sizeof p, "%s.single[%zu]", path, i);
        if (json_object_get(e, "Sequence")) {
            seen_seq = 1;
        } else if (sp && get_str(sp, "id")) {
            if (seen_seq)
                SP_TRY(push_special(L, specials, get_str(sp, "id"), &t->after, &t->n_after, p));
            else
                SP_TRY(push_special(L, specials, get_str(sp, "id"), &t->before, &t->n_before, p));
        } else {
            return bad(L, p, "expected {\"Sequence\": ...} or {\"SpecialToken\": {\"id\": ...}}");
        }
    }
    t->present = 1;
    return SP_OK;
}

/* RobertaProcessing / BertProcessing: cls A sep, with [token, id] pairs. */
static sp_status load_cls_sep(loader *L, json_t *obj, const char *path) {
    tok_template *t = &L->tok->tmpl;
    json_int_t cls = json_integer_value(json_array_get(json_object_get(obj, "cls"), 1));
    json_int_t sep = json_integer_value(json_array_get(json_object_get(obj, "sep"), 1));
    if (cls < 0 || sep < 0 || cls >= L->tok->n_ids || sep >= L->tok->n_ids)
        return bad(L, path, "cls/sep ids out of range");
    t->before = malloc(sizeof *t->before);
    t->after = malloc(sizeof *t->after);
    if (!t->before || !t->after) return sp_fail(L->err, SP_ENOMEM, "out of memory");
    t->before[0] = (int32_t)cls;
    t->after[0] = (int32_t)sep;
    t->n_before = t->n_after = 1;
    t->present = 1;
    return SP_OK;
}

static sp_status load_post(loader *L, json_t *obj, const char *path) {
    const char *type = get_str(obj, "type");
    if (!json_is_object(obj) || !type) return bad(L, path, "expected an object with a \"type\"");
    if (!strcmp(type, "TemplateProcessing")) return load_template(L, obj, path);
    if (!strcmp(type, "ByteLevel")) return SP_OK; /* offsets only */
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing"))
        return load_cls_sep(L, obj, path);
    if (!strcmp(type, "Sequence")) {
        json_t *arr = json_object_get(obj, "processors");
        if (!json_is_array(arr)) return bad(L, path, "Sequence without \"processors\"");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            char p[300];
            pfmt(p, sizeof p, "%s.processors[%zu]", path, i);
            SP_TRY(load_post(L, json_array_get(arr, i), p));
        }
        return SP_OK;
    }
    return sp_fail(L->err, SP_EUNSUPPORTED, "%s: %s.type: post-processor '%s' is not supported",
                   L->file, path, type);
}

/* ---- top level ---- */

static sp_status load_model(loader *L, json_t *root, json_t *model) {
    sp_tokenizer *tok = L->tok;
    if (!json_is_object(model)) return bad(L, "model", "missing or not an object");
    const char *type = get_str(model, "type");
    if (type && strcmp(type, "BPE") != 0)
        return sp_fail(L->err, SP_EUNSUPPORTED, "%s: model.type: '%s' is not supported (only BPE)",
                       L->file, type);
    if (!type && !json_object_get(model, "merges"))
        return bad(L, "model", "no \"type\" and no \"merges\": not a BPE model");
    int32_t max_vocab = -1, max_added = -1;
    json_t *vocab = json_object_get(model, "vocab");
    SP_TRY(load_model_opts(L, model));
    SP_TRY(load_vocab(L, vocab, &max_vocab));
    SP_TRY(load_added(L, json_object_get(root, "added_tokens"), &max_added));
    tok->n_ids = (max_vocab > max_added ? max_vocab : max_added) + 1;
    tok->pieces = calloc((size_t)tok->n_ids + 1, sizeof *tok->pieces);
    tok->piece_len = calloc((size_t)tok->n_ids + 1, sizeof *tok->piece_len);
    tok->is_special = calloc((size_t)tok->n_ids + 1, 1);
    if (!tok->pieces || !tok->piece_len || !tok->is_special)
        return sp_fail(L->err, SP_ENOMEM, "%s: out of memory", L->file);
    SP_TRY(fill_vocab(L, vocab));
    SP_TRY(load_merges(L, json_object_get(model, "merges")));
    if (tok_bpe_pack_merges(&tok->bpe)) return sp_fail(L->err, SP_ENOMEM, "out of memory");
    resolve_model_ids(tok, model);
    return SP_OK;
}

static sp_status load_root(loader *L, json_t *root) {
    sp_tokenizer *tok = L->tok;
    if (!json_is_object(root)) return bad(L, "(root)", "expected a JSON object");
    json_t *v;
    SP_TRY(load_model(L, root, json_object_get(root, "model")));
    if ((v = json_object_get(root, "normalizer")) && !json_is_null(v)) {
        if (!(tok->normalizer = calloc(1, sizeof *tok->normalizer)))
            return sp_fail(L->err, SP_ENOMEM, "out of memory");
        SP_TRY(load_norm(L, v, "normalizer", tok->normalizer));
    }
    if ((v = json_object_get(root, "pre_tokenizer")) && !json_is_null(v)) {
        if (!(tok->pretok = calloc(1, sizeof *tok->pretok)))
            return sp_fail(L->err, SP_ENOMEM, "out of memory");
        SP_TRY(load_pretok(L, v, "pre_tokenizer", tok->pretok));
    }
    if ((v = json_object_get(root, "decoder")) && !json_is_null(v)) {
        if (!(tok->decoder = calloc(1, sizeof *tok->decoder)))
            return sp_fail(L->err, SP_ENOMEM, "out of memory");
        SP_TRY(load_dec(L, v, "decoder", tok->decoder));
        int fused = 0;
        tok_dec_properties(tok, tok->decoder, &fused);
    }
    if ((v = json_object_get(root, "post_processor")) && !json_is_null(v))
        SP_TRY(load_post(L, v, "post_processor"));
    return SP_OK;
}

sp_status tok_load_json(sp_tokenizer *tok, const char *path, sp_error *err) {
    loader L = {tok, path, err};
    if (!sp_path_exists(path)) return sp_fail(err, SP_ENOTFOUND, "%s: file not found", path);
    /* Parse from memory: json_load_file reads one character at a time. */
    char *text = NULL;
    size_t len = 0;
    SP_TRY(sp_read_text(path, &text, &len, err));
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    free(text);
    if (!root)
        return sp_fail(err, SP_EFORMAT, "%s: invalid JSON at line %d, column %d: %s", path, je.line,
                       je.column, je.text);
    sp_status st = load_root(&L, root);
    json_decref(root);
    return st;
}

/* ---- freeing ---- */

void tok_norm_free(tok_norm *n) {
    for (int i = 0; i < n->n_children; i++) tok_norm_free(&n->children[i]);
    free(n->children);
    tok_pattern_free(&n->pattern);
    free(n->content);
}

void tok_pretok_free(tok_pretok *p) {
    for (int i = 0; i < p->n_children; i++) tok_pretok_free(&p->children[i]);
    free(p->children);
    tok_pattern_free(&p->pattern);
}

void tok_dec_free(tok_dec *d) {
    for (int i = 0; i < d->n_children; i++) tok_dec_free(&d->children[i]);
    free(d->children);
    tok_pattern_free(&d->pattern);
    free(d->content);
}
