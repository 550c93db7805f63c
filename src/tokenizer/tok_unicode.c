/* Unicode helpers: character classes with the meaning the Rust tokenizers
 * give them, lossy UTF-8 repair, and the GPT-2 byte <-> char alphabet. */
#include <pthread.h>
#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

int tok_is_whitespace(uint32_t c) {
    /* Unicode White_Space, as Rust's char::is_whitespace and regex \s. */
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

int tok_is_word_char(uint32_t c) {
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_';
    if (c == 0x200C || c == 0x200D) return 1; /* Join_Control */
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

int tok_is_numeric(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

int tok_is_punctuation(uint32_t c) {
    if (c < 0x80)
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
               (c >= 0x7B && c <= 0x7E);
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

/* Validates the sequence at s against the table of well-formed UTF-8.
 * Returns its length when valid, or minus the length of the maximal subpart
 * when not; *truncated says the input ended inside a well-formed prefix. */
static int utf8_scan(const unsigned char *s, size_t n, int *truncated) {
    unsigned c = s[0];
    *truncated = 0;
    if (c < 0x80) return 1;
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c == 0xE0)
        need = 2, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
        need = 2;
    else if (c == 0xED)
        need = 2, hi = 0x9F;
    else if (c == 0xF0)
        need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        need = 3;
    else if (c == 0xF4)
        need = 3, hi = 0x8F;
    else
        return -1;
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n) {
            *truncated = 1;
            return -i;
        }
        if (s[i] < lo || s[i] > hi) return -i;
        lo = 0x80, hi = 0xBF;
    }
    return need + 1;
}

size_t tok_utf8_bad_len(const unsigned char *s, size_t n) {
    int truncated;
    int k = utf8_scan(s, n, &truncated);
    return k > 0 ? 0 : (size_t)-k;
}

int tok_utf8_next(const char *str, size_t n, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str;
    unsigned c = s[0];
    /* a lead byte whose sequence is cut by the end (n): one byte, never a
     * read past s + n */
    if (c < 0x80 || n < 2 || (c >= 0xE0 && n < 3)) {
        *cp = c;
        return 1;
    }
    if (c < 0xE0) {
        *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        return 2;
    }
    if (c < 0xF0 || n < 4) {
        *cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        return 3;
    }
    *cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
    return 4;
}

int tok_utf8_repair(tok_buf *out, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0; /* run: start of the pending valid stretch */
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int truncated;
        int k = utf8_scan(s + i, n - i, &truncated);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        if (tok_buf_append(out, s + run, i - run) || tok_buf_append(out, "\xEF\xBF\xBD", 3))
            return -1;
        i += (size_t)-k;
        run = i;
    }
    return tok_buf_append(out, s + run, n - run);
}

int tok_utf8_ends_partial(const unsigned char *s, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        if ((s[n - back] & 0xC0) == 0x80) continue;
        int truncated;
        utf8_scan(s + n - back, back, &truncated);
        return truncated;
    }
    return 0;
}

/* ---- GPT-2 byte-level alphabet ---- */

char tok_byte_char[256][3];
uint8_t tok_byte_char_len[256];

static int byte_is_printable(unsigned b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

/* Bytes outside the printable ranges take code points 256, 257, ... in
 * byte order. */
static uint32_t byte_to_cp(unsigned b) {
    if (byte_is_printable(b)) return b;
    if (b <= 0x20) return 256 + b;
    if (b >= 0x7F && b <= 0xA0) return 256 + 33 + (b - 0x7F);
    return 256 + 33 + 34; /* 0xAD */
}

int tok_char_byte(uint32_t cp) {
    if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 67) return (int)(cp - 256 - 33 + 0x7F);
    if (cp == 256 + 67) return 0xAD;
    return -1;
}

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void fill_tables(void) {
    for (unsigned b = 0; b < 256; b++) {
        uint32_t cp = byte_to_cp(b);
        char *o = tok_byte_char[b];
        if (cp < 0x80) {
            o[0] = (char)cp;
            tok_byte_char_len[b] = 1;
        } else {
            o[0] = (char)(0xC0 | (cp >> 6));
            o[1] = (char)(0x80 | (cp & 0x3F));
            tok_byte_char_len[b] = 2;
        }
    }
}

void tok_unicode_init(void) {
    pthread_once(&tables_once, fill_tables);
}
