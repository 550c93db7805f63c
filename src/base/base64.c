#include "base/base64.h"

#include <stdlib.h>

static int value_of(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62; /* '-' '_': the URL-safe alphabet, also seen in data URLs */
    if (c == '/' || c == '_') return 63;
    return -1;
}

static int is_space(unsigned char c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

sp_status sp_base64_decode(const char *src, size_t n, uint8_t **out, size_t *out_len,
                           sp_error *err) {
    *out = NULL;
    *out_len = 0;
    uint8_t *buf = malloc(n / 4 * 3 + 4);
    if (!buf) return sp_fail(err, SP_ENOMEM, "base64: no memory for %zu bytes", n);
    size_t len = 0, pad = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (is_space(c)) continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = value_of(c);
        if (v < 0 || pad) {
            free(buf);
            return sp_fail(err, SP_EFORMAT, "invalid base64 at byte %zu (0x%02x)", i, c);
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[len++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits >= 6 || pad > 2) { /* a lone sixth of a byte: truncated */
        free(buf);
        return sp_fail(err, SP_EFORMAT, "truncated base64 (%zu characters)", n);
    }
    *out = buf;
    *out_len = len;
    return SP_OK;
}
