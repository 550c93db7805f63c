/* Python str semantics on UTF-8: code-point lengths and offsets, isspace,
 * case mapping (ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic: what chat
 * templates meet; other scripts pass through unchanged), strip. */
#include <string.h>

#include "base/utf8.h"
#include "chat/tpl_internal.h"

int py_isspace(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
    return c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 ||
           c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

uint32_t u8_next(const char *p, size_t n, size_t *i) {
    uint32_t cp;
    int k = sp_utf8_decode(p + *i, n - *i, &cp);
    if (k <= 0) { /* not valid UTF-8: treat the byte as a code point */
        cp = (unsigned char)p[*i];
        k = 1;
    }
    *i += (size_t)k;
    return cp;
}

size_t u8_len(const char *p, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)p[i] & 0xc0) != 0x80) count++;
    return count;
}

size_t u8_offset(const char *p, size_t n, size_t k) {
    size_t i = 0;
    while (k > 0 && i < n) {
        u8_next(p, n, &i);
        k--;
    }
    return i;
}

void u8_put(rctx *r, tbuf *b, uint32_t cp) {
    char tmp[4];
    int k = sp_utf8_encode(cp, tmp);
    tbuf_put(r, b, tmp, (size_t)k);
}

uint32_t py_upper(uint32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
    if (c == 0xb5) return 0x39c;
    if (c == 0xff) return 0x178;
    if (c >= 0xe0 && c <= 0xfe && c != 0xf7) return c - 32;
    if (c >= 0x100 && c <= 0x17f) {
        if (c == 0x131) return 'I';
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) return (c & 1) ? c : c - 1;
        if (c == 0x138 || c == 0x149 || c == 0x17f) return c == 0x17f ? 'S' : c;
        return (c & 1) ? c - 1 : c;
    }
    if (c >= 0x3b1 && c <= 0x3c9 && c != 0x3c2) return c - 32;
    if (c == 0x3c2) return 0x3a3;
    if (c >= 0x3ac && c <= 0x3af) return c == 0x3ac ? 0x386 : c - 37;
    if (c >= 0x430 && c <= 0x44f) return c - 32;
    if (c >= 0x450 && c <= 0x45f) return c - 80;
    return c;
}

uint32_t py_lower(uint32_t c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    if (c >= 0xc0 && c <= 0xde && c != 0xd7) return c + 32;
    if (c == 0x178) return 0xff;
    if (c >= 0x100 && c <= 0x17f) {
        if (c == 0x130) return 'i';
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) return (c & 1) ? c + 1 : c;
        if (c == 0x138 || c == 0x149 || c == 0x17f) return c;
        return (c & 1) ? c : c + 1;
    }
    if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) return c + 32;
    if (c == 0x386) return 0x3ac;
    if (c >= 0x388 && c <= 0x38a) return c + 37;
    if (c >= 0x410 && c <= 0x42f) return c + 32;
    if (c >= 0x400 && c <= 0x40f) return c + 80;
    return c;
}

int py_isalpha(uint32_t c) {
    if (c < 0x80) return (c | 32) >= 'a' && (c | 32) <= 'z';
    if (c == 0xaa || c == 0xb5 || c == 0xba) return 1;
    if (c >= 0xc0 && c <= 0x24f) return c != 0xd7 && c != 0xf7;
    if (py_upper(c) != c || py_lower(c) != c) return 1;
    return (c >= 0x3040 && c <= 0x30ff) || (c >= 0x3400 && c <= 0x9fff) ||
           (c >= 0xac00 && c <= 0xd7a3) || (c >= 0x5d0 && c <= 0x5ea) ||
           (c >= 0x620 && c <= 0x64a) || (c >= 0xe01 && c <= 0xe30);
}

int py_isdigit(uint32_t c) {
    return c >= '0' && c <= '9';
}

int py_isprintable(uint32_t c) {
    if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad) return 0;
    if (c >= 0x2000 && c <= 0x200f) return 0;
    if (c >= 0x2028 && c <= 0x202f) return 0;
    if (c >= 0x205f && c <= 0x206f) return 0;
    if (c == 0x1680 || c == 0x3000 || c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb)) return 0;
    if (c >= 0xd800 && c <= 0xf8ff) return 0; /* surrogates, private use */
    if (c == 0xfffe || c == 0xffff || c > 0x10ffff) return 0;
    if (c >= 0xe0000 && c <= 0xe007f) return 0;
    return 1;
}

static int in_chars(uint32_t c, const char *chars, size_t nchars) {
    if (!chars) return py_isspace(c);
    size_t i = 0;
    while (i < nchars)
        if (u8_next(chars, nchars, &i) == c) return 1;
    return 0;
}

val py_strip(val s, int mode, const char *chars, size_t nchars) {
    const char *p = s.u.s.p;
    size_t b = 0, e = s.u.s.n;
    if (mode & 1) {
        while (b < e) {
            size_t j = b;
            uint32_t c = u8_next(p, e, &j);
            if (!in_chars(c, chars, nchars)) break;
            b = j;
        }
    }
    if (mode & 2) {
        while (e > b) {
            size_t j = e - 1;
            while (j > b && ((unsigned char)p[j] & 0xc0) == 0x80) j--;
            size_t k = j;
            uint32_t c = u8_next(p, e, &k);
            if (!in_chars(c, chars, nchars)) break;
            e = j;
        }
    }
    return v_str(p + b, e - b);
}
