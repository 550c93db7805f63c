/* GGUF vocabularies (tokenizer.ggml.*), mapped onto the same pipeline as
 * tokenizer.json, following llama.cpp's reading of the metadata:
 *   - "llama" (SentencePiece): tokens + scores. llama.cpp merges the
 *     adjacent pair whose concatenation is a token with the highest score;
 *     that is BPE where every split (a, b) of a token t is a merge ranked by
 *     t's score. A space is prepended to each stretch of text (unless
 *     add_space_prefix is false), spaces become U+2581, unknown characters
 *     fall back to <0xXX> byte tokens; decoding is Llama 2's chain.
 *   - "gpt2" (byte-level BPE): tokens + merges, the pre-tokenizer regex
 *     chosen by tokenizer.ggml.pre (llama-bpe / llama3, qwen2, gpt-2).
 * Control tokens (type 3) are special added tokens, user-defined ones (4)
 * plain added tokens, both matched in text before the model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "tokenizer/tok_internal.h"

enum { TYPE_NORMAL = 1, TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER = 4, TYPE_BYTE = 6 };

static const char LLAMA3_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static sp_status oom(sp_error *err) {
    return sp_fail(err, SP_ENOMEM, "out of memory");
}

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n), p[n] = 0;
    return p;
}

/* Tokens -> pieces, vocab map and added tokens. */
static sp_status load_tokens(sp_tokenizer *tok, const sp_gguf *g, const sp_gguf_val *tokens,
                             const sp_gguf_val *types, sp_error *err) {
    uint64_t n = sp_gguf_arr_len(tokens);
    if (n == 0 || n >= (1u << 24))
        return sp_fail(err, SP_EFORMAT, "%s: tokenizer.ggml.tokens: %llu tokens", sp_gguf_path(g),
                       (unsigned long long)n);
    if (types && sp_gguf_arr_len(types) != n)
        return sp_fail(
            err, SP_EFORMAT, "%s: tokenizer.ggml.token_type: %llu entries for %llu tokens",
            sp_gguf_path(g), (unsigned long long)sp_gguf_arr_len(types), (unsigned long long)n);
    tok->n_ids = (int32_t)n;
    tok->pieces = calloc(n + 1, sizeof *tok->pieces);
    tok->piece_len = calloc(n + 1, sizeof *tok->piece_len);
    tok->is_special = calloc(n + 1, 1);
    tok->added = calloc(n + 1, sizeof *tok->added);
    if (!tok->pieces || !tok->piece_len || !tok->is_special || !tok->added ||
        tok_map_init(&tok->bpe.vocab, n))
        return oom(err);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = 0;
        const char *s = sp_gguf_arr_str(tokens, i, &len);
        if (!s)
            return sp_fail(err, SP_EFORMAT, "%s: tokenizer.ggml.tokens[%llu] is not a string",
                           sp_gguf_path(g), (unsigned long long)i);
        if (!(tok->pieces[i] = dup_n(s, len))) return oom(err);
        tok->piece_len[i] = (uint32_t)len;
        if (tok_map_put(&tok->bpe.vocab, tok->pieces[i], len, (int32_t)i)) return oom(err);
        int64_t type = types ? sp_gguf_arr_i64(types, i) : TYPE_NORMAL;
        if (type == TYPE_CONTROL || type == TYPE_USER || type == TYPE_UNKNOWN) {
            tok_added *a = &tok->added[tok->n_added++];
            a->id = (int32_t)i;
            if (!(a->content = dup_n(s, len))) return oom(err);
            a->len = len;
            a->special = type != TYPE_USER;
        }
    }
    return SP_OK;
}

/* SentencePiece scores -> BPE merges: rank = position by descending score. */
static int by_score_desc(const void *x, const void *y, void *ctx) {
    const float *score = ctx;
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    if (score[a] != score[b]) return score[a] > score[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

static sp_status spm_merges(sp_tokenizer *tok, const sp_gguf *g, const sp_gguf_val *scores,
                            sp_error *err) {
    int32_t n = tok->n_ids;
    if (!scores || sp_gguf_arr_len(scores) != (uint64_t)n)
        return sp_fail(err, SP_EFORMAT, "%s: tokenizer.ggml.scores missing or of the wrong length",
                       sp_gguf_path(g));
    float *score = malloc((size_t)n * sizeof *score);
    int32_t *order = malloc((size_t)n * sizeof *order);
    tok_bpe *bpe = &tok->bpe;
    bpe->merge_info = calloc((size_t)n + 1, sizeof *bpe->merge_info);
    if (!score || !order || !bpe->merge_info || tok_map64_init(&bpe->merges, (size_t)n * 4)) {
        free(score);
        free(order);
        return oom(err);
    }
    for (int32_t i = 0; i < n; i++) score[i] = sp_gguf_arr_f32(scores, (uint64_t)i), order[i] = i;
    qsort_r(order, (size_t)n, sizeof *order, by_score_desc, score);
    int rc = 0;
    for (int32_t r = 0; r < n && !rc; r++) {
        int32_t t = order[r];
        const char *s = tok->pieces[t];
        size_t len = tok->piece_len[t];
        bpe->merge_info[r] = (tok_merge){(uint32_t)r, t};
        for (size_t k = 1; k < len && !rc; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80) continue; /* split between characters */
            int32_t a = tok_map_get(&bpe->vocab, s, k),
                    b = tok_map_get(&bpe->vocab, s + k, len - k);
            if (a >= 0 && b >= 0)
                rc = tok_map64_put(&bpe->merges, ((uint64_t)(uint32_t)a << 32) | (uint32_t)b,
                                   (uint32_t)r);
        }
    }
    bpe->n_merges = (size_t)n;
    free(score);
    free(order);
    return rc ? oom(err) : SP_OK;
}

static sp_status bpe_merges(sp_tokenizer *tok, const sp_gguf *g, const sp_gguf_val *merges,
                            sp_error *err) {
    tok_bpe *bpe = &tok->bpe;
    uint64_t n = merges ? sp_gguf_arr_len(merges) : 0;
    bpe->merge_info = calloc(n + 1, sizeof *bpe->merge_info);
    if (!bpe->merge_info || tok_map64_init(&bpe->merges, n)) return oom(err);
    tok_buf t = {0};
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = 0;
        const char *s = sp_gguf_arr_str(merges, i, &len), *sp = s ? memchr(s, ' ', len) : NULL;
        if (!sp) {
            tok_buf_free(&t);
            return sp_fail(err, SP_EFORMAT, "%s: tokenizer.ggml.merges[%llu]: expected \"a b\"",
                           sp_gguf_path(g), (unsigned long long)i);
        }
        size_t al = (size_t)(sp - s), bl = len - al - 1;
        int32_t a = tok_map_get(&bpe->vocab, s, al), b = tok_map_get(&bpe->vocab, sp + 1, bl);
        tok_buf_clear(&t);
        if (tok_buf_append(&t, s, al) || tok_buf_append(&t, sp + 1, bl)) return oom(err);
        int32_t m = tok_map_get(&bpe->vocab, t.p, t.n);
        if (a < 0 || b < 0 || m < 0) {
            tok_buf_free(&t);
            return sp_fail(err, SP_EFORMAT, "%s: tokenizer.ggml.merges[%llu]: token not in vocab",
                           sp_gguf_path(g), (unsigned long long)i);
        }
        bpe->merge_info[i] = (tok_merge){(uint32_t)i, m};
        if (tok_map64_put(&bpe->merges, ((uint64_t)(uint32_t)a << 32) | (uint32_t)b, (uint32_t)i))
            return oom(err);
    }
    bpe->n_merges = n;
    tok_buf_free(&t);
    return SP_OK;
}

/* Llama 2's chain: optional space prefix, spaces as U+2581; decoding back. */
static sp_status spm_pipeline(sp_tokenizer *tok, int add_space_prefix, sp_error *err) {
    tok_norm *n = tok->normalizer = calloc(1, sizeof *n);
    tok_dec *d = tok->decoder = calloc(1, sizeof *d);
    if (!n || !d || !(n->children = calloc(2, sizeof *n->children)) ||
        !(d->children = calloc(4, sizeof *d->children)))
        return oom(err);
    n->kind = NORM_SEQUENCE;
    if (add_space_prefix) {
        n->children[n->n_children].kind = NORM_PREPEND;
        if (!(n->children[n->n_children++].content = dup_n("\xe2\x96\x81", 3))) return oom(err);
    }
    tok_norm *r = &n->children[n->n_children++];
    r->kind = NORM_REPLACE;
    if (!(r->content = dup_n("\xe2\x96\x81", 3))) return oom(err);
    SP_TRY(tok_pattern_compile(&r->pattern, " ", 1, 0, "gguf normalizer", err));
    d->kind = DEC_SEQUENCE;
    tok_dec *c = d->children;
    c[0].kind = DEC_REPLACE;
    if (!(c[0].content = dup_n(" ", 1))) return oom(err);
    SP_TRY(tok_pattern_compile(&c[0].pattern, "\xe2\x96\x81", 3, 0, "gguf decoder", err));
    c[1].kind = DEC_BYTE_FALLBACK;
    c[2].kind = DEC_FUSE;
    d->n_children = 3;
    if (add_space_prefix) {
        c[3].kind = DEC_STRIP;
        if (!(c[3].content = dup_n(" ", 1))) return oom(err);
        c[3].start = 1;
        d->n_children = 4;
    }
    return SP_OK;
}

/* Byte-level BPE: Split(regex) + ByteLevel, decoded by ByteLevel. */
static sp_status bpe_pipeline(sp_tokenizer *tok, const char *pre, sp_error *err) {
    const char *re = GPT2_REGEX;
    if (!strcmp(pre, "llama3") || !strcmp(pre, "llama-bpe") || !strcmp(pre, "llama-v3")) {
        re = LLAMA3_REGEX;
        tok->bpe.ignore_merges = 1;
    } else if (!strcmp(pre, "qwen2")) {
        re = QWEN2_REGEX;
    } else if (strcmp(pre, "default") && strcmp(pre, "gpt-2") && strcmp(pre, "gpt2")) {
        return sp_fail(err, SP_EUNSUPPORTED,
                       "tokenizer.ggml.pre: pre-tokenizer '%s' is not supported (llama-bpe, "
                       "qwen2, gpt-2)",
                       pre);
    }
    tok_pretok *p = tok->pretok = calloc(1, sizeof *p);
    tok_dec *d = tok->decoder = calloc(1, sizeof *d);
    if (!p || !d || !(p->children = calloc(2, sizeof *p->children))) return oom(err);
    p->kind = PT_SEQUENCE;
    p->n_children = 2;
    p->children[0].kind = PT_SPLIT;
    p->children[0].behavior = SPLIT_ISOLATED;
    SP_TRY(
        tok_pattern_compile(&p->children[0].pattern, re, strlen(re), 1, "gguf pre-tokenizer", err));
    p->children[1].kind = PT_BYTELEVEL;
    d->kind = DEC_BYTELEVEL;
    return SP_OK;
}

static int32_t get_id(const sp_gguf *g, const char *key, int32_t n) {
    uint32_t v = UINT32_MAX;
    sp_error ignored;
    if (sp_gguf_get_u32(g, key, UINT32_MAX, 0, &v, &ignored) != SP_OK) return -1;
    return v < (uint32_t)n ? (int32_t)v : -1;
}

static sp_status build(sp_tokenizer *tok, const sp_gguf *g, sp_error *err) {
    const char *model, *pre, *tmpl;
    const sp_gguf_val *tokens, *types, *scores, *merges;
    int is_spm, add_bos, add_eos, add_space;
    SP_TRY(sp_gguf_get_str(g, "tokenizer.ggml.model", NULL, 1, &model, err));
    is_spm = !strcmp(model, "llama");
    if (!is_spm && strcmp(model, "gpt2"))
        return sp_fail(err, SP_EUNSUPPORTED,
                       "%s: tokenizer.ggml.model '%s' is not supported (llama, gpt2)",
                       sp_gguf_path(g), model);
    SP_TRY(sp_gguf_get_arr(g, "tokenizer.ggml.tokens", SP_GGUF_STRING, 1, &tokens, err));
    SP_TRY(sp_gguf_get_arr(g, "tokenizer.ggml.token_type", -1, 0, &types, err));
    SP_TRY(sp_gguf_get_str(g, "tokenizer.ggml.pre", "default", 0, &pre, err));
    SP_TRY(sp_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", is_spm, 0, &add_bos, err));
    SP_TRY(sp_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", 0, 0, &add_eos, err));
    SP_TRY(sp_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", is_spm, 0, &add_space, err));
    SP_TRY(sp_gguf_get_str(g, "tokenizer.chat_template", NULL, 0, &tmpl, err));
    SP_TRY(load_tokens(tok, g, tokens, types, err));
    tok->bpe.prefix = dup_n("", 0);
    tok->bpe.suffix = dup_n("", 0);
    if (!tok->bpe.prefix || !tok->bpe.suffix) return oom(err);
    if (is_spm) {
        SP_TRY(sp_gguf_get_arr(g, "tokenizer.ggml.scores", -1, 1, &scores, err));
        SP_TRY(spm_merges(tok, g, scores, err));
        SP_TRY(spm_pipeline(tok, add_space, err));
        tok->bpe.byte_fallback = 1;
    } else {
        SP_TRY(sp_gguf_get_arr(g, "tokenizer.ggml.merges", SP_GGUF_STRING, 1, &merges, err));
        SP_TRY(bpe_merges(tok, g, merges, err));
        SP_TRY(bpe_pipeline(tok, pre, err));
    }
    if (tok_bpe_pack_merges(&tok->bpe)) return oom(err);
    tok->bpe.unk_id = get_id(g, "tokenizer.ggml.unknown_token_id", tok->n_ids);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        tok->bpe.byte_ids[b] = tok->bpe.byte_fallback ? tok_map_get(&tok->bpe.vocab, name, 6) : -1;
    }
    tok_bpe_fill_char_ids(&tok->bpe);
    int fused = 0;
    tok_dec_properties(tok, tok->decoder, &fused);
    tok->bos_id = get_id(g, "tokenizer.ggml.bos_token_id", tok->n_ids);
    tok->eos_id = get_id(g, "tokenizer.ggml.eos_token_id", tok->n_ids);
    if (tok->bos_id >= 0 &&
        !(tok->bos_token = dup_n(tok->pieces[tok->bos_id], tok->piece_len[tok->bos_id])))
        return oom(err);
    if (tok->eos_id >= 0 &&
        !(tok->eos_token = dup_n(tok->pieces[tok->eos_id], tok->piece_len[tok->eos_id])))
        return oom(err);
    if (tmpl && !(tok->chat_template = dup_n(tmpl, strlen(tmpl)))) return oom(err);
    tok_template *t = &tok->tmpl;
    t->before = malloc(sizeof(int32_t));
    t->after = malloc(sizeof(int32_t));
    if (!t->before || !t->after) return oom(err);
    if (add_bos && tok->bos_id >= 0) t->before[t->n_before++] = tok->bos_id;
    if (add_eos && tok->eos_id >= 0) t->after[t->n_after++] = tok->eos_id;
    t->present = 1;
    return tok_index_added(tok, sp_gguf_path(g), err);
}

sp_status tok_load_gguf(sp_tokenizer **out, const char *path, sp_error *err) {
    *out = NULL;
    tok_unicode_init();
    sp_gguf *g = NULL;
    SP_TRY(sp_gguf_open(&g, path, err));
    sp_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) {
        sp_gguf_close(g);
        return oom(err);
    }
    tok->bos_id = tok->eos_id = tok->bpe.unk_id = -1;
    tok_trie_init(&tok->trie_raw);
    tok_trie_init(&tok->trie_norm);
    tok->path = dup_n(path, strlen(path));
    sp_status st = tok->path ? build(tok, g, err) : oom(err);
    sp_gguf_close(g);
    if (st != SP_OK) {
        sp_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return SP_OK;
}
