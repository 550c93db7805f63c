/* Standard base64 (RFC 4648, '+' '/', '=' padding), as data: URLs carry
 * images. Whitespace inside is skipped (wrapped encoders); anything else
 * outside the alphabet is an error naming its offset. */
#ifndef SP_BASE_BASE64_H
#define SP_BASE_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

/* Decodes src[0..n) into a malloc'd buffer (*out, *out_len). */
sp_status sp_base64_decode(const char *src, size_t n, uint8_t **out, size_t *out_len,
                           sp_error *err);

#endif
