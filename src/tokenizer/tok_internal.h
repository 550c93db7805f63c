/* Internal layout of sp_tokenizer, shared by the tokenizer's .c files only.
 * The pipeline mirrors Hugging Face tokenizers: added tokens are split out
 * first, the rest is normalized, pre-tokenized into words, and each word goes
 * through the BPE model; decoding maps ids to pieces and runs the decoder
 * chain. Everything here is immutable after sp_tokenizer_load_dir returns. */
#ifndef SP_TOKENIZER_TOK_INTERNAL_H
#define SP_TOKENIZER_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "tokenizer/tok_buf.h"
#include "tokenizer/tok_map.h"
#include "tokenizer/tokenizer.h"

/* ---- regex / literal patterns (Split, Replace) ---- */

typedef struct tok_pattern {
    char *literal; /* non-NULL: plain string pattern */
    size_t literal_len;
    pcre2_code *re; /* non-NULL: compiled regex (JIT when available) */
} tok_pattern;

/* Finds the next match at or after `from`; returns 1 and fills [*ms, *me),
 * 0 when there is none, or -1 on a matcher failure. */
int tok_pattern_find(const tok_pattern *p, pcre2_match_data *md, const char *s, size_t n,
                     size_t from, size_t *ms, size_t *me);
sp_status tok_pattern_compile(tok_pattern *p, const char *text, size_t len, int is_regex,
                              const char *where, sp_error *err);
void tok_pattern_free(tok_pattern *p);

/* ---- normalizers ---- */

typedef enum {
    NORM_SEQUENCE,
    NORM_NFC,
    NORM_NFD,
    NORM_NFKC,
    NORM_NFKD,
    NORM_LOWERCASE,
    NORM_REPLACE,
    NORM_PREPEND,
    NORM_STRIP,
    NORM_STRIP_ACCENTS,
} tok_norm_kind;

typedef struct tok_norm {
    tok_norm_kind kind;
    struct tok_norm *children; /* NORM_SEQUENCE */
    int n_children;
    tok_pattern pattern; /* NORM_REPLACE */
    char *content;       /* NORM_REPLACE content, NORM_PREPEND text */
    int strip_left, strip_right;
} tok_norm;

/* ---- pre-tokenizers ---- */

typedef enum {
    PT_SEQUENCE,
    PT_SPLIT,
    PT_BYTELEVEL,
    PT_METASPACE,
    PT_DIGITS,
    PT_WHITESPACE,       /* \w+|[^\w\s]+ */
    PT_WHITESPACE_SPLIT, /* split on whitespace, drop it */
    PT_PUNCTUATION,
} tok_pt_kind;

typedef enum {
    SPLIT_REMOVED,
    SPLIT_ISOLATED,
    SPLIT_MERGED_PREV,
    SPLIT_MERGED_NEXT,
    SPLIT_CONTIGUOUS,
} tok_split_behavior;

typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } tok_prepend_scheme;

typedef struct tok_pretok {
    tok_pt_kind kind;
    struct tok_pretok *children; /* PT_SEQUENCE */
    int n_children;
    tok_pattern pattern; /* PT_SPLIT, PT_BYTELEVEL (GPT-2 regex), PT_WHITESPACE */
    tok_split_behavior behavior;
    int invert;
    int add_prefix_space; /* PT_BYTELEVEL */
    int use_regex;        /* PT_BYTELEVEL */
    uint32_t replacement; /* PT_METASPACE */
    tok_prepend_scheme prepend;
    int split;             /* PT_METASPACE */
    int individual_digits; /* PT_DIGITS */
} tok_pretok;

/* ---- decoders ---- */

typedef enum {
    DEC_SEQUENCE,
    DEC_BYTELEVEL,
    DEC_REPLACE,
    DEC_BYTE_FALLBACK,
    DEC_FUSE,
    DEC_STRIP,
    DEC_METASPACE,
    DEC_WORDPIECE,
    DEC_BPE_SUFFIX,
} tok_dec_kind;

typedef struct tok_dec {
    tok_dec_kind kind;
    struct tok_dec *children;
    int n_children;
    tok_pattern pattern; /* DEC_REPLACE */
    char *content;       /* DEC_REPLACE content, DEC_STRIP char, DEC_WORDPIECE prefix, suffix */
    int start, stop;     /* DEC_STRIP */
    uint32_t replacement;
    tok_prepend_scheme prepend;
    int cleanup; /* DEC_WORDPIECE */
} tok_dec;

/* ---- added tokens ---- */

typedef struct tok_added {
    int32_t id;
    char *content;
    size_t len;
    unsigned special : 1, lstrip : 1, rstrip : 1, single_word : 1, normalized : 1;
} tok_added;

/* Byte trie over added-token contents; leftmost-longest matching. */
typedef struct tok_trie_node {
    int32_t first_child, next_sibling;
    int32_t added; /* index into tok->added, -1 if no token ends here */
    uint8_t byte;
} tok_trie_node;

typedef struct tok_trie {
    tok_trie_node *nodes;
    int32_t n, cap;
    int32_t root_child[256]; /* direct table for the first byte */
} tok_trie;

/* ---- BPE model ---- */

typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;

typedef struct tok_merge {
    uint32_t rank;
    int32_t new_id;
} tok_merge;

typedef struct tok_bpe {
    tok_map vocab;    /* piece -> id (model vocabulary only) */
    tok_map64 merges; /* (left_id << 32 | right_id) -> rank (index into merge_info) */
    /* The same map packed into 8-byte slots (left:21 | right:21 | rank:22
     * bits; UINT64_MAX empty), half the memory of `merges` so more of it
     * stays in cache. NULL when ids or ranks do not fit. */
    uint64_t *packed;
    size_t packed_mask;
    tok_merge *merge_info;
    size_t n_merges;
    int32_t unk_id; /* -1: no unk token */
    int byte_fallback, fuse_unk, ignore_merges;
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix ("" if none) */
    int32_t byte_ids[256]; /* <0xXX> ids when byte_fallback, else -1 */
    /* Vocab id of each code point below 0x800 as a one-char piece (-1: not
     * in the vocab), so the byte-level alphabet needs no hashing. Only used
     * when there is no continuing_subword_prefix / end_of_word_suffix. */
    int32_t char_id[0x800];
} tok_bpe;

/* Per-call scratch of the BPE model (never shared between threads): word
 * buffers reused from word to word, and a small direct-mapped cache of
 * pair -> merge lookups, which keeps the big merges table out of the hot
 * loop (text repeats the same pairs over and over). */
#define TOK_PAIR_CACHE_BITS 12
#define TOK_PAIR_CACHE      (1 << TOK_PAIR_CACHE_BITS)
typedef struct tok_word_slot {
    uint64_t hash;
    uint32_t key_off, key_len; /* in words.p */
    uint32_t ids_off, n_ids;   /* in word_ids */
} tok_word_slot;

typedef struct tok_bpe_scratch {
    /* word -> ids cache for this call (short words only, bounded size) */
    tok_word_slot *slots;
    size_t mask, count;
    tok_buf words;
    tok_ids word_ids;
    int32_t *id, *prev, *next;
    struct tok_heap_entry *heap;
    size_t cap;
    uint64_t pair_key[TOK_PAIR_CACHE];
    uint32_t pair_rank[TOK_PAIR_CACHE]; /* UINT32_MAX: the pair does not merge */
    tok_buf tmp;
} tok_bpe_scratch;

tok_bpe_scratch *tok_bpe_scratch_new(void);
void tok_bpe_scratch_free(tok_bpe_scratch *s);
void tok_bpe_fill_char_ids(tok_bpe *bpe);
int tok_bpe_pack_merges(tok_bpe *bpe); /* -1: out of memory */

/* ---- post-processor (template for a single sequence) ---- */

typedef struct tok_template {
    int32_t *before, *after; /* ids placed before / after the sequence */
    size_t n_before, n_after;
    int present;
} tok_template;

struct sp_tokenizer {
    char *path; /* tokenizer.json path, for messages */
    tok_bpe bpe;
    /* id -> piece as stored (model vocab and added tokens). */
    char **pieces;
    uint32_t *piece_len;
    /* vocab pieces replaced by an added token's text: still keys of
     * bpe.vocab, so they live until the tokenizer is freed */
    char **retired;
    int n_retired;
    uint8_t *is_special; /* per id */
    int32_t n_ids;       /* max id + 1 */
    tok_map added_map;   /* added content -> id */
    tok_added *added;
    int n_added;
    tok_trie trie_raw, trie_norm; /* non-normalized / normalized added tokens */
    tok_norm *normalizer;         /* NULL: none */
    tok_pretok *pretok;           /* NULL: none */
    tok_dec *decoder;             /* NULL: join pieces with " " */
    tok_template tmpl;
    char *bos_token, *eos_token, *chat_template;
    int32_t bos_id, eos_id;
    /* Decoder properties the streaming detokenizer needs (tok_stream.c). */
    int stream_byte_level, stream_byte_fallback, stream_hold_last;
};

/* ---- shared helpers ---- */

/* Unicode classes as the Rust std/regex crates define them. */
int tok_is_whitespace(uint32_t cp);
int tok_is_word_char(uint32_t cp);
int tok_is_numeric(uint32_t cp);
int tok_is_punctuation(uint32_t cp);
/* Decodes one code point from valid UTF-8 (as produced by tok_utf8_repair). */
int tok_utf8_next(const char *s, size_t n, uint32_t *cp);
/* Length of the longest prefix of an invalid sequence at s (the "maximal
 * subpart" that becomes one U+FFFD), or 0 when a valid char starts at s. */
size_t tok_utf8_bad_len(const unsigned char *s, size_t n);
/* Appends s with every invalid sequence replaced by U+FFFD. */
int tok_utf8_repair(tok_buf *out, const char *s, size_t n);
/* Whether the bytes end inside an incomplete-but-valid-so-far sequence. */
int tok_utf8_ends_partial(const unsigned char *s, size_t n);

/* GPT-2 byte <-> unicode mapping used by ByteLevel. */
extern char tok_byte_char[256][3]; /* UTF-8 of the char for each byte */
extern uint8_t tok_byte_char_len[256];
void tok_unicode_init(void); /* fills the tables once (pthread_once) */
/* Maps a code point back to its byte; -1 if cp is not in the alphabet. */
int tok_char_byte(uint32_t cp);

/* Per-call scratch for a regex matcher (match data is not shareable). */
pcre2_match_data *tok_match_data(void);

/* Pipeline pieces (each returns 0 on success, -1 on allocation/matcher failure). */
int tok_normalize(const tok_norm *n, tok_buf *s, pcre2_match_data *md);

/* Pre-tokenizes s[0..n) (NULL pt: the text is one word) and calls fn on
 * each resulting word, in order. at_start: s begins the original text. */
typedef int (*tok_piece_fn)(void *ctx, const char *s, size_t n);
int tok_pretokenize_each(const tok_pretok *pt, const char *s, size_t n, int at_start,
                         pcre2_match_data *md, tok_piece_fn fn, void *ctx);

int tok_ids_push(tok_ids *ids, int32_t id);
/* Runs the BPE model on one word and appends its ids. */
int tok_bpe_word(const tok_bpe *bpe, tok_bpe_scratch *sc, const char *w, size_t n, tok_ids *out);
void tok_bpe_free(tok_bpe *bpe);

/* Trie */
int tok_trie_add(tok_trie *t, const char *s, size_t n, int32_t added_index);
void tok_trie_init(tok_trie *t);
void tok_trie_free(tok_trie *t);
/* Longest added token starting at s[0..n): returns its index in tok->added
 * and its length in *len, or -1. */
int32_t tok_trie_longest(const tok_trie *t, const char *s, size_t n, size_t *len);

/* Decoder chain over a list of strings. at_start: the list starts at the first
 * token of the whole output (Metaspace/Strip rules depend on it); at_end: it
 * ends the output (Strip's stop). The result is appended to out. */
typedef struct tok_strs {
    tok_buf text;
    size_t *off, *len;
    size_t n, cap;
} tok_strs;

int tok_strs_push(tok_strs *l, const char *s, size_t n);
void tok_strs_free(tok_strs *l);
int tok_decode_chain(const sp_tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                     int at_start, int at_end, tok_buf *out);

/* Loading */
sp_status tok_load_json(sp_tokenizer *tok, const char *path, sp_error *err);
sp_status tok_load_config(sp_tokenizer *tok, const char *path, sp_error *err);
sp_status tok_index_added(sp_tokenizer *tok, const char *file, sp_error *err);
/* Records what the streaming detokenizer must know about a decoder chain. */
void tok_dec_properties(sp_tokenizer *tok, const tok_dec *d, int *fused);
/* A tokenizer from a GGUF file's tokenizer.ggml.* metadata (tok_gguf.c). */
sp_status tok_load_gguf(sp_tokenizer **out, const char *path, sp_error *err);
void tok_norm_free(tok_norm *n);
void tok_pretok_free(tok_pretok *p);
void tok_dec_free(tok_dec *d);

#endif
