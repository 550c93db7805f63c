/* Tokenizer following jinja2's lexer with transformers' settings
 * (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
 *  - "{%-" / "{{-" / "{#-" strip all whitespace before the tag; "-%}" etc.
 *    strip all whitespace after it.
 *  - lstrip_blocks: spaces/tabs between the start of a line and a "{%" or
 *    "{#" are removed ("{%+" opts out). A line starts after a newline in the
 *    text, or when the previous tag's match ended with a newline.
 *  - trim_blocks: one newline right after "%}" or "#}" is removed ("+%}"
 *    opts out). "{% raw %}" itself does not trim.
 *  - inside (), [] and {} a "}}" or "%}" is not an end tag. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "chat/tpl_internal.h"

typedef struct lexer {
    tpl_arena *a;
    const char *s; /* normalized source */
    size_t n, pos;
    tok *toks;
    size_t ntok, cap;
    tpl_parse_error *pe;
    int line_starting;
    char balance[1024];
    int nbalance;
    size_t lc_pos; /* line/col cache: tokens arrive in source order */
    int lc_line, lc_col;
} lexer;

static void advance_linecol(const char *s, size_t from, size_t pos, int *line, int *col) {
    int l = *line, c = *col;
    for (size_t i = from; i < pos; i++) {
        if (s[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)s[i] & 0xc0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static void pos_to_linecol(const char *s, size_t pos, int *line, int *col) {
    *line = 1;
    *col = 1;
    advance_linecol(s, 0, pos, line, col);
}

static int lex_fail(lexer *lx, size_t pos, const char *msg) {
    snprintf(lx->pe->msg, sizeof lx->pe->msg, "%s", msg);
    pos_to_linecol(lx->s, pos, &lx->pe->line, &lx->pe->col);
    return -1;
}

static tok *push(lexer *lx, int type, size_t pos) {
    if (lx->ntok == lx->cap) {
        size_t cap = lx->cap ? 2 * lx->cap : 256;
        tok *t = tpl_arena_alloc(lx->a, cap * sizeof *t);
        if (!t) return NULL;
        if (lx->ntok) memcpy(t, lx->toks, lx->ntok * sizeof *t);
        lx->toks = t;
        lx->cap = cap;
    }
    tok *t = &lx->toks[lx->ntok++];
    memset(t, 0, sizeof *t);
    t->type = type;
    t->p = lx->s + pos;
    if (pos < lx->lc_pos) {
        lx->lc_pos = 0;
        lx->lc_line = lx->lc_col = 1;
    }
    advance_linecol(lx->s, lx->lc_pos, pos, &lx->lc_line, &lx->lc_col);
    lx->lc_pos = pos;
    t->line = lx->lc_line;
    t->col = lx->lc_col;
    return t;
}

/* Python's \s and str.isspace(): the code point at s[i], length in *len */
static int space_at(const lexer *lx, size_t i, size_t *len) {
    if (i >= lx->n) return 0;
    size_t j = i;
    uint32_t c = u8_next(lx->s, lx->n, &j);
    *len = j - i;
    return py_isspace(c);
}

static size_t skip_space(const lexer *lx, size_t i) {
    size_t k;
    while (space_at(lx, i, &k)) i += k;
    return i;
}

static size_t rstrip_len(const char *p, size_t n) {
    val v = py_strip(v_str(p, n), 2, NULL, 0);
    return v.u.s.n;
}

/* Emits the text before a tag after applying "-" / lstrip_blocks. */
static int emit_text(lexer *lx, size_t start, size_t end, char sign, int lstrip_ok) {
    size_t n = end - start;
    const char *p = lx->s + start;
    if (sign == '-') {
        n = rstrip_len(p, n);
    } else if (sign != '+' && lstrip_ok) {
        size_t l_pos = 0;
        for (size_t i = n; i > 0; i--)
            if (p[i - 1] == '\n') {
                l_pos = i;
                break;
            }
        if (l_pos > 0 || lx->line_starting) {
            int only_ws = 1;
            for (size_t i = l_pos; i < n; i++)
                if (p[i] != ' ' && p[i] != '\t') only_ws = 0;
            if (only_ws) n = l_pos;
        }
    }
    if (n == 0) return 0;
    tok *t = push(lx, T_DATA, start);
    if (!t) return lex_fail(lx, start, "out of memory");
    t->n = n;
    return 0;
}

static int starts(const lexer *lx, size_t i, const char *lit) {
    size_t k = strlen(lit);
    return i + k <= lx->n && !memcmp(lx->s + i, lit, k);
}

/* "{%" sign? ws* "raw" ws* ("-%}" ws* | "%}") at i; returns the end or 0 */
static size_t match_raw_begin(const lexer *lx, size_t i, char *sign, const char *word) {
    if (!starts(lx, i, "{%")) return 0;
    i += 2;
    *sign = 0;
    if (i < lx->n && (lx->s[i] == '-' || lx->s[i] == '+')) *sign = lx->s[i++];
    i = skip_space(lx, i);
    if (!starts(lx, i, word)) return 0;
    i += strlen(word);
    size_t j = skip_space(lx, i);
    if (j == i && j < lx->n && lx->s[j] != '-' && lx->s[j] != '%' && lx->s[j] != '+') return 0;
    i = j;
    return i;
}

static int lex_raw(lexer *lx, size_t begin_end) {
    size_t i = begin_end;
    for (; i < lx->n; i++) {
        char sign;
        size_t j = match_raw_begin(lx, i, &sign, "endraw");
        if (!j) continue;
        size_t end;
        if (starts(lx, j, "+%}")) {
            end = j + 3;
        } else if (starts(lx, j, "-%}")) {
            end = skip_space(lx, j + 3);
        } else if (starts(lx, j, "%}")) {
            end = j + 2;
            if (end < lx->n && lx->s[end] == '\n') end++;
        } else {
            continue;
        }
        if (emit_text(lx, begin_end, i, sign, 1)) return -1;
        lx->line_starting = lx->s[end - 1] == '\n';
        lx->pos = end;
        return 0;
    }
    return lex_fail(lx, begin_end, "missing end of raw directive");
}

static int lex_comment(lexer *lx, size_t i) {
    for (; i < lx->n; i++) {
        size_t end = 0;
        if (starts(lx, i, "+#}"))
            end = i + 3;
        else if (starts(lx, i, "-#}"))
            end = skip_space(lx, i + 3);
        else if (starts(lx, i, "#}")) {
            end = i + 2;
            if (end < lx->n && lx->s[end] == '\n') end++;
        }
        if (end) {
            lx->line_starting = lx->s[end - 1] == '\n';
            lx->pos = end;
            return 0;
        }
    }
    return lex_fail(lx, i, "missing end of comment tag");
}

static int is_ident_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_ident(char c) {
    return is_ident_start(c) || (c >= '0' && c <= '9');
}
static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* digits with single underscores between them */
static size_t scan_digits(const lexer *lx, size_t i) {
    if (i >= lx->n || !is_digit(lx->s[i])) return i;
    i++;
    while (i < lx->n) {
        if (is_digit(lx->s[i]))
            i++;
        else if (lx->s[i] == '_' && i + 1 < lx->n && is_digit(lx->s[i + 1]))
            i += 2;
        else
            break;
    }
    return i;
}

static int lex_number(lexer *lx, size_t i) {
    size_t d = scan_digits(lx, i), end = d;
    int is_float = 0;
    if (d < lx->n && lx->s[d] == '.' && d + 1 < lx->n && is_digit(lx->s[d + 1])) {
        end = scan_digits(lx, d + 1);
        is_float = 1;
    }
    if (end < lx->n && (lx->s[end] == 'e' || lx->s[end] == 'E')) {
        size_t k = end + 1;
        if (k < lx->n && (lx->s[k] == '+' || lx->s[k] == '-')) k++;
        size_t e = scan_digits(lx, k);
        if (e > k) {
            end = e;
            is_float = 1;
        }
    }
    char buf[128];
    size_t m = 0;
    for (size_t k = i; k < end && m + 1 < sizeof buf; k++)
        if (lx->s[k] != '_') buf[m++] = lx->s[k];
    buf[m] = 0;
    tok *t = push(lx, is_float ? T_FLOAT : T_INT, i);
    if (!t) return lex_fail(lx, i, "out of memory");
    t->n = end - i;
    if (is_float) {
        t->f = strtod(buf, NULL);
    } else {
        int base = 10;
        const char *digits = buf;
        if (buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X' || buf[1] == 'o' || buf[1] == 'O' ||
                              buf[1] == 'b' || buf[1] == 'B')) {
            /* 0x/0o/0b: re-scan the raw text, the digit scanner stopped at the letter */
            base = (buf[1] | 32) == 'x' ? 16 : (buf[1] | 32) == 'o' ? 8 : 2;
            size_t k = i + 2;
            m = 0;
            while (k < lx->n && (isxdigit((unsigned char)lx->s[k]) || lx->s[k] == '_')) {
                if (lx->s[k] != '_' && m + 1 < sizeof buf) buf[m++] = lx->s[k];
                k++;
            }
            buf[m] = 0;
            end = k;
            t->n = end - i;
            digits = buf;
        }
        t->i = strtoll(digits, NULL, base);
    }
    lx->pos = end;
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 32;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Python's "unicode-escape" decoding of a string literal's body. */
static int lex_string(lexer *lx, size_t i) {
    char q = lx->s[i];
    size_t k = i + 1;
    while (k < lx->n && lx->s[k] != q) {
        if (lx->s[k] == '\\') k++;
        k++;
    }
    if (k >= lx->n) return lex_fail(lx, i, "unterminated string literal");
    size_t body = i + 1, blen = k - body;
    char *out = tpl_arena_alloc(lx->a, blen + 1);
    if (!out) return lex_fail(lx, i, "out of memory");
    size_t o = 0;
    const char *p = lx->s + body;
    for (size_t j = 0; j < blen; j++) {
        if (p[j] != '\\' || j + 1 >= blen) {
            out[o++] = p[j];
            continue;
        }
        char e = p[++j];
        int digits = 0;
        switch (e) {
        case '\n':
            break;
        case '\\':
            out[o++] = '\\';
            break;
        case '\'':
            out[o++] = '\'';
            break;
        case '"':
            out[o++] = '"';
            break;
        case 'a':
            out[o++] = '\a';
            break;
        case 'b':
            out[o++] = '\b';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'v':
            out[o++] = '\v';
            break;
        case 'x':
            digits = 2;
            break;
        case 'u':
            digits = 4;
            break;
        case 'U':
            digits = 8;
            break;
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = 0;
                int m = 0;
                j--;
                while (m < 3 && j + 1 < blen && p[j + 1] >= '0' && p[j + 1] <= '7') {
                    cp = cp * 8 + (uint32_t)(p[++j] - '0');
                    m++;
                }
                o += (size_t)sp_utf8_encode(cp, out + o);
            } else { /* unknown escape: kept as written */
                out[o++] = '\\';
                out[o++] = e;
            }
        }
        if (digits) {
            uint32_t cp = 0;
            for (int m = 0; m < digits; m++) {
                int h = j + 1 < blen ? hexval(p[j + 1]) : -1;
                if (h < 0) return lex_fail(lx, body + j, "truncated \\x/\\u escape in string");
                cp = cp * 16 + (uint32_t)h;
                j++;
            }
            if (cp > 0x10ffff) return lex_fail(lx, body + j, "illegal Unicode character");
            o += (size_t)sp_utf8_encode(cp, out + o);
        }
    }
    out[o] = 0;
    tok *t = push(lx, T_STRING, i);
    if (!t) return lex_fail(lx, i, "out of memory");
    t->p = out;
    t->n = o;
    lx->pos = k + 1;
    return 0;
}

static int lex_operator(lexer *lx, size_t i) {
    static const struct {
        const char *s;
        int op;
    } two[] = {{"//", OP_FLOORDIV}, {"**", OP_POW}, {"==", OP_EQ},
               {"!=", OP_NE},       {"<=", OP_LE},  {">=", OP_GE}};
    int op = 0;
    size_t len = 1;
    for (size_t k = 0; k < sizeof two / sizeof two[0]; k++)
        if (starts(lx, i, two[k].s)) {
            op = two[k].op;
            len = 2;
        }
    char c = lx->s[i];
    if (!op) {
        if (!strchr("+-/*%~[](){}=.:|,;<>", c) || c == 0) {
            char msg[64];
            snprintf(msg, sizeof msg, "unexpected char '%c'", c);
            return lex_fail(lx, i, msg);
        }
        op = c;
    }
    if (c == '(' || c == '[' || c == '{') {
        if (lx->nbalance == (int)sizeof lx->balance)
            return lex_fail(lx, i, "brackets nested too deep");
        lx->balance[lx->nbalance++] = c == '(' ? ')' : c == '[' ? ']' : '}';
    } else if (c == ')' || c == ']' || c == '}') {
        char msg[64];
        if (!lx->nbalance) {
            snprintf(msg, sizeof msg, "unexpected '%c'", c);
            return lex_fail(lx, i, msg);
        }
        char want = lx->balance[--lx->nbalance];
        if (want != c) {
            snprintf(msg, sizeof msg, "unexpected '%c', expected '%c'", c, want);
            return lex_fail(lx, i, msg);
        }
    }
    tok *t = push(lx, T_OP, i);
    if (!t) return lex_fail(lx, i, "out of memory");
    t->op = op;
    t->n = len;
    lx->pos = i + len;
    return 0;
}

/* The inside of {{ }} or {% %} up to and including the end tag. */
static int lex_tag(lexer *lx, int block, size_t tag_start) {
    lx->nbalance = 0;
    for (;;) {
        size_t i = lx->pos;
        if (i >= lx->n)
            return lex_fail(lx, tag_start,
                            block ? "unexpected end of template, expected '%}'"
                                  : "unexpected end of template, expected '}}'");
        if (lx->nbalance == 0) {
            size_t end = 0;
            if (block) {
                if (starts(lx, i, "+%}"))
                    end = i + 3;
                else if (starts(lx, i, "-%}"))
                    end = skip_space(lx, i + 3);
                else if (starts(lx, i, "%}")) {
                    end = i + 2;
                    if (end < lx->n && lx->s[end] == '\n') end++;
                }
            } else {
                if (starts(lx, i, "-}}"))
                    end = skip_space(lx, i + 3);
                else if (starts(lx, i, "}}"))
                    end = i + 2;
            }
            if (end) {
                if (!push(lx, block ? T_BLOCK_END : T_VAR_END, i))
                    return lex_fail(lx, i, "out of memory");
                lx->line_starting = lx->s[end - 1] == '\n';
                lx->pos = end;
                return 0;
            }
        }
        size_t k;
        char c = lx->s[i];
        int rc = 0;
        if (space_at(lx, i, &k)) {
            lx->pos = skip_space(lx, i);
        } else if (is_digit(c)) {
            rc = lex_number(lx, i);
        } else if (is_ident_start(c)) {
            size_t e = i;
            while (e < lx->n && is_ident(lx->s[e])) e++;
            tok *t = push(lx, T_NAME, i);
            if (!t) return lex_fail(lx, i, "out of memory");
            t->n = e - i;
            lx->pos = e;
        } else if (c == '\'' || c == '"') {
            rc = lex_string(lx, i);
        } else {
            rc = lex_operator(lx, i);
        }
        if (rc) return rc;
    }
}

/* Copies src with \r\n and \r turned into \n and one final newline dropped. */
static char *normalize(tpl_arena *a, const char *src, size_t n, size_t *out_n) {
    char *s = tpl_arena_alloc(a, n + 1);
    if (!s) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            s[o++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n') i++;
        } else {
            s[o++] = src[i];
        }
    }
    if (o > 0 && s[o - 1] == '\n') o--;
    s[o] = 0;
    *out_n = o;
    return s;
}

int tpl_lex(tpl_arena *a, const char *src, size_t n, tok **out, size_t *ntok, tpl_parse_error *pe) {
    lexer lx = {.a = a, .pe = pe, .line_starting = 1, .lc_line = 1, .lc_col = 1};
    lx.s = normalize(a, src, n, &lx.n);
    if (!lx.s) return lex_fail(&lx, 0, "out of memory");
    while (lx.pos < lx.n) {
        /* next "{{", "{%" or "{#" */
        size_t i = lx.pos;
        const char *hit = NULL;
        for (; i + 1 < lx.n; i++) {
            if (lx.s[i] == '{' &&
                (lx.s[i + 1] == '{' || lx.s[i + 1] == '%' || lx.s[i + 1] == '#')) {
                hit = lx.s + i;
                break;
            }
        }
        if (!hit) {
            if (emit_text(&lx, lx.pos, lx.n, 0, 0)) return -1;
            break;
        }
        char kind = lx.s[i + 1], sign = 0;
        size_t after = i + 2;
        if (after < lx.n && (lx.s[after] == '-' || lx.s[after] == '+')) sign = lx.s[after++];
        if (kind == '%') {
            char rsign;
            size_t j = match_raw_begin(&lx, i, &rsign, "raw");
            size_t end = 0;
            if (j) {
                if (starts(&lx, j, "-%}"))
                    end = skip_space(&lx, j + 3);
                else if (starts(&lx, j, "%}"))
                    end = j + 2;
            }
            if (end) {
                if (emit_text(&lx, lx.pos, i, rsign, 1)) return -1;
                lx.line_starting = lx.s[end - 1] == '\n';
                if (lex_raw(&lx, end)) return -1;
                continue;
            }
        }
        if (emit_text(&lx, lx.pos, i, sign, kind != '{')) return -1;
        lx.line_starting = 0; /* the match ended with the tag opener */
        lx.pos = after;
        if (kind == '#') {
            if (lex_comment(&lx, after)) return -1;
            continue;
        }
        if (!push(&lx, kind == '%' ? T_BLOCK_BEGIN : T_VAR_BEGIN, i))
            return lex_fail(&lx, i, "out of memory");
        if (lex_tag(&lx, kind == '%', i)) return -1;
    }
    tok *t = push(&lx, T_EOF, lx.n);
    if (!t) return lex_fail(&lx, lx.n, "out of memory");
    *out = lx.toks;
    *ntok = lx.ntok;
    return 0;
}
