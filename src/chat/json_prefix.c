/* The JSON prefix validator: a byte-level state machine (see json_prefix.h).
 * Containers are tracked as a bit stack; every state knows the shortest
 * text that completes it, so a caller with a token budget can refuse text
 * that could no longer be closed in time. */
#include "chat/json_prefix.h"

#include <string.h>

enum {
    J_START = 0, /* before the top-level object */
    J_OBJ_FIRST, /* after '{': a key or '}' */
    J_OBJ_KEY,   /* after ',' in an object: a key */
    J_COLON,     /* after a key */
    J_VALUE,     /* a value is required */
    J_ARR_FIRST, /* after '[': a value or ']' */
    J_AFTER,     /* after a value inside a container: ',' or its closer */
    J_STR,       /* inside a string */
    J_ESC,       /* after '\' in a string */
    J_HEX,       /* inside \uXXXX */
    J_NUM_MINUS, /* "-" */
    J_NUM_ZERO,  /* "0" (terminal) */
    J_NUM_INT,   /* "12" (terminal) */
    J_NUM_DOT,   /* "1." */
    J_NUM_FRAC,  /* "1.5" (terminal) */
    J_NUM_E,     /* "1e" */
    J_NUM_ESIGN, /* "1e-" */
    J_NUM_EXP,   /* "1e5" (terminal) */
    J_LIT,       /* inside true / false / null */
    J_DONE,
};

static const char *const lits[3] = {"true", "false", "null"};

void sp_jp_init(sp_jp *j) {
    memset(j, 0, sizeof *j);
    j->st = J_START;
}

int sp_jp_in_string(const sp_jp *j) {
    return j->st == J_STR || j->st == J_ESC || j->st == J_HEX;
}

int sp_jp_wants_key(const sp_jp *j) {
    return j->st == J_OBJ_FIRST || j->st == J_OBJ_KEY;
}

int sp_jp_done(const sp_jp *j) {
    return !j->err && j->st == J_DONE;
}

static int fail(sp_jp *j) {
    j->err = 1;
    return -1;
}

static int is_ws(unsigned char c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static int hex_val(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int top_is_obj(const sp_jp *j) {
    return (int)((j->objs >> (j->depth - 1)) & 1u);
}

static int open_container(sp_jp *j, int obj) {
    if (j->depth >= SP_JP_MAX_DEPTH) return fail(j);
    if (obj)
        j->objs |= 1ull << j->depth;
    else
        j->objs &= ~(1ull << j->depth);
    j->depth++;
    j->st = obj ? J_OBJ_FIRST : J_ARR_FIRST;
    return 0;
}

static void value_done(sp_jp *j) {
    j->st = j->depth ? J_AFTER : J_DONE;
}

static int close_container(sp_jp *j) {
    j->depth--;
    value_done(j);
    return 0;
}

static int value_start(sp_jp *j, unsigned char c) {
    switch (c) {
    case '{':
        return open_container(j, 1);
    case '[':
        return open_container(j, 0);
    case '"':
        j->st = J_STR;
        j->key = 0;
        return 0;
    case '-':
        j->st = J_NUM_MINUS;
        return 0;
    case '0':
        j->st = J_NUM_ZERO;
        j->pos = 1;
        return 0;
    case 't':
    case 'f':
    case 'n':
        j->st = J_LIT;
        j->lit = c == 't' ? 0 : c == 'f' ? 1 : 2;
        j->pos = 1;
        return 0;
    default:
        if (c >= '1' && c <= '9') {
            j->st = J_NUM_INT;
            j->pos = 1;
            return 0;
        }
        return fail(j);
    }
}

/* Between tokens: whitespace or the state's own structural bytes. */
static int structural(sp_jp *j, unsigned char c) {
    if (is_ws(c)) return ++j->ws > SP_JP_MAX_WS ? fail(j) : 0;
    j->ws = 0;
    switch (j->st) {
    case J_START:
        return c == '{' ? open_container(j, 1) : fail(j);
    case J_OBJ_FIRST:
        if (c == '}') return close_container(j);
        /* fall through */
    case J_OBJ_KEY:
        if (c != '"') return fail(j);
        j->st = J_STR;
        j->key = 1;
        return 0;
    case J_COLON:
        if (c != ':') return fail(j);
        j->st = J_VALUE;
        return 0;
    case J_ARR_FIRST:
        if (c == ']') return close_container(j);
        /* fall through */
    case J_VALUE:
        return value_start(j, c);
    default: /* J_AFTER */
        if (c == ',') {
            j->st = top_is_obj(j) ? J_OBJ_KEY : J_VALUE;
            return 0;
        }
        if (c == (top_is_obj(j) ? '}' : ']')) return close_container(j);
        return fail(j);
    }
}

static int string_byte(sp_jp *j, unsigned char c) {
    if (j->pair == 1) { /* only the low surrogate's escape may follow */
        if (c != '\\') return fail(j);
        j->pair = 2;
        j->st = J_ESC;
        return 0;
    }
    if (c == '"') {
        if (j->key)
            j->st = J_COLON;
        else
            value_done(j);
        return 0;
    }
    if (c == '\\') {
        j->st = J_ESC;
        return 0;
    }
    return c < 0x20 ? fail(j) : 0;
}

static int escape_byte(sp_jp *j, unsigned char c) {
    if (c == 'u') {
        j->st = J_HEX;
        j->hex = 4;
        j->cp = 0;
        if (j->pair == 2) j->pair = 3;
        return 0;
    }
    if (j->pair == 2 || !strchr("\"\\/bfnrt", c) || !c) return fail(j);
    j->st = J_STR;
    return 0;
}

static int hex_byte(sp_jp *j, unsigned char c) {
    int d = hex_val(c);
    if (d < 0) return fail(j);
    j->cp = (uint16_t)(j->cp << 4 | d);
    j->hex--;
    if (j->pair == 3) { /* must be DC00..DFFF */
        if (j->hex == 3 && d != 0xD) return fail(j);
        if (j->hex == 2 && d < 0xC) return fail(j);
        if (j->hex == 0) j->pair = 0, j->st = J_STR;
        return 0;
    }
    if (j->hex == 2 && j->cp >= 0xDC && j->cp <= 0xDF) return fail(j); /* lone low half */
    if (j->hex == 0) {
        if (j->cp == 0) return fail(j); /* jansson refuses NUL in strings */
        if (j->cp >= 0xD800 && j->cp <= 0xDBFF) j->pair = 1;
        j->st = J_STR;
    }
    return 0;
}

/* Numbers end at the first byte that cannot continue them; that byte is
 * then read as structure. */
static int number_byte(sp_jp *j, unsigned char c) {
    int digit = c >= '0' && c <= '9';
    switch (j->st) {
    case J_NUM_MINUS:
        if (!digit) return fail(j);
        j->st = c == '0' ? J_NUM_ZERO : J_NUM_INT;
        j->pos = 1;
        return 0;
    case J_NUM_DOT:
        if (!digit) return fail(j);
        j->st = J_NUM_FRAC;
        return 0;
    case J_NUM_E:
        if (c == '+' || c == '-') {
            j->st = J_NUM_ESIGN;
            return 0;
        }
        /* fall through */
    case J_NUM_ESIGN:
        if (!digit) return fail(j);
        j->st = J_NUM_EXP;
        j->pos = 1;
        return 0;
    case J_NUM_INT:
        if (digit) return ++j->pos > SP_JP_MAX_INT_DIGITS ? fail(j) : 0;
        /* fall through */
    case J_NUM_ZERO:
        if (c == '.') {
            j->st = J_NUM_DOT;
            return 0;
        }
        /* fall through */
    case J_NUM_FRAC:
        if (digit && j->st == J_NUM_FRAC) return 0;
        if (c == 'e' || c == 'E') {
            j->st = J_NUM_E;
            return 0;
        }
        /* fall through */
    default: /* J_NUM_EXP */
        if (digit && j->st == J_NUM_EXP) return ++j->pos > SP_JP_MAX_EXP_DIGITS ? fail(j) : 0;
        j->st = J_AFTER;
        return structural(j, c);
    }
}

int sp_jp_byte(sp_jp *j, unsigned char c) {
    if (j->err) return -1;
    switch (j->st) {
    case J_STR:
        return string_byte(j, c);
    case J_ESC:
        return escape_byte(j, c);
    case J_HEX:
        return hex_byte(j, c);
    case J_LIT:
        if (c != (unsigned char)lits[j->lit][j->pos]) return fail(j);
        if (!lits[j->lit][++j->pos]) value_done(j);
        return 0;
    case J_DONE:
        return fail(j);
    default:
        if (j->st >= J_NUM_MINUS && j->st <= J_NUM_EXP) return number_byte(j, c);
        return structural(j, c);
    }
}

int sp_jp_feed(sp_jp *j, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (sp_jp_byte(j, (unsigned char)s[i])) return -1;
    return 0;
}

/* The rest of a \u escape: non-zero, and a high half gets its low half. */
static size_t finish_hex(const sp_jp *j, char *t) {
    size_t n = 0;
    uint16_t cp = j->cp;
    for (int k = j->hex; k > 0; k--) {
        int d = j->pair == 3 ? (k == 4 ? 0xD : k == 3 ? 0xC : 0) : (k == 1 && cp == 0 ? 1 : 0);
        t[n++] = "0123456789abcdef"[d];
        cp = (uint16_t)(cp << 4 | d);
    }
    if (j->pair != 3 && cp >= 0xD800 && cp <= 0xDBFF) {
        memcpy(t + n, "\\udc00", 6);
        n += 6;
    }
    return n;
}

static size_t finish_string(const sp_jp *j, char *t) {
    size_t n = 0;
    if (j->st == J_ESC) {
        const char *e = j->pair == 2 ? "udc00" : "n";
        memcpy(t, e, strlen(e));
        n = strlen(e);
    } else if (j->st == J_HEX) {
        n = finish_hex(j, t);
    } else if (j->pair == 1) {
        memcpy(t, "\\udc00", 6);
        n = 6;
    }
    t[n++] = '"';
    if (j->key) t[n++] = ':', t[n++] = '0';
    return n;
}

size_t sp_jp_completion(const sp_jp *j, char *buf, size_t cap) {
    char t[32 + SP_JP_MAX_DEPTH];
    size_t n = 0;
    const char *fixed = "";
    switch (j->st) {
    case J_START:
        fixed = "{}";
        break;
    case J_OBJ_KEY:
        fixed = "\"\":0";
        break;
    case J_COLON:
        fixed = ":0";
        break;
    case J_VALUE:
    case J_NUM_MINUS:
    case J_NUM_DOT:
    case J_NUM_E:
    case J_NUM_ESIGN:
        fixed = "0";
        break;
    case J_LIT:
        fixed = lits[j->lit] + j->pos;
        break;
    case J_STR:
    case J_ESC:
    case J_HEX:
        n = finish_string(j, t);
        break;
    default:
        break;
    }
    memcpy(t + n, fixed, strlen(fixed));
    n += strlen(fixed);
    for (int d = j->depth - 1; d >= 0; d--) t[n++] = (j->objs >> d) & 1u ? '}' : ']';
    if (cap) {
        size_t k = n < cap - 1 ? n : cap - 1;
        memcpy(buf, t, k);
        buf[k] = 0;
    }
    return n;
}
