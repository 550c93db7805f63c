/* Incremental JSON prefix validator: fed one byte at a time, it says whether
 * the text so far can still be the start of one JSON object (RFC 8259, the
 * subset jansson accepts: no lone surrogates, no \u0000), and what the
 * shortest text is that would complete it. Constrained decoding of tool-call
 * arguments (engine/constrain.c) checks candidate tokens with it.
 *
 * The state is a small value type: copy it to try a token and throw the copy
 * away when the token does not fit. Non-ASCII bytes are accepted inside
 * strings only (their UTF-8 is the detokenizer's business). */
#ifndef SP_CHAT_JSON_PREFIX_H
#define SP_CHAT_JSON_PREFIX_H

#include <stddef.h>
#include <stdint.h>

#define SP_JP_MAX_DEPTH 64 /* nesting of objects and arrays */
#define SP_JP_MAX_WS    32 /* whitespace bytes in a row (stops endless padding) */
/* Numbers that every parser reads: an integer part that fits int64 and an
 * exponent that keeps a double finite (jansson refuses both otherwise). */
#define SP_JP_MAX_INT_DIGITS 18
#define SP_JP_MAX_EXP_DIGITS 2

typedef struct sp_jp {
    uint64_t objs; /* bit d: the container at depth d+1 is an object */
    uint16_t cp;   /* the \u escape read so far */
    uint8_t st;    /* internal state */
    uint8_t depth;
    uint8_t key;  /* the string being read is an object key */
    uint8_t hex;  /* hex digits still expected in a \u escape */
    uint8_t pair; /* a high surrogate wants its low half: 1 '\', 2 'u', 3 in the hex */
    uint8_t lit;  /* true / false / null: which one */
    uint8_t pos;  /* and how much of it was read */
    uint8_t ws;   /* whitespace bytes in a row */
    uint8_t err;  /* sticky: the text is not a JSON object prefix */
} sp_jp;

void sp_jp_init(sp_jp *j);
/* 0 if the byte keeps the text a valid prefix; -1 (and sticky) if not. */
int sp_jp_byte(sp_jp *j, unsigned char c);
int sp_jp_feed(sp_jp *j, const char *s, size_t n);
/* 1 inside a string; 1 where an object key (or the object's end) must come. */
int sp_jp_in_string(const sp_jp *j);
int sp_jp_wants_key(const sp_jp *j);
/* 1 once the object is complete (no byte may follow). */
int sp_jp_done(const sp_jp *j);
/* Writes the shortest completion (NUL-terminated, truncated to cap) and
 * returns its full length; 0 when done. */
size_t sp_jp_completion(const sp_jp *j, char *buf, size_t cap);

#endif
