/* UTF-8 helpers shared by the tokenizer, templates and the server. */
#ifndef SP_BASE_UTF8_H
#define SP_BASE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Returns the byte offset of the first invalid sequence, or -1 if s[0..n) is
 * valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
long sp_utf8_invalid_at(const char *s, size_t n);
/* Length of the complete-UTF-8 prefix of s[0..n): a trailing partial
 * sequence is excluded (used to hold back streamed bytes). */
size_t sp_utf8_complete_prefix(const char *s, size_t n);
/* Decodes one code point at s (n bytes available); returns its byte length,
 * or 0 if invalid. */
int sp_utf8_decode(const char *s, size_t n, uint32_t *cp);
/* Encodes cp into out (>= 4 bytes); returns the byte length. */
int sp_utf8_encode(uint32_t cp, char *out);

#endif
