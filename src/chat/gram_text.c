/* Canonical JSON text of enum / const values and property names: compact,
 * members in their order, strings in the one escaping grammar.h describes
 * (so a literal's bytes are the only spelling the grammar emits for it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/gram_internal.h"

static int put(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = (*len + n + 1) * 2 + 64;
        char *b = realloc(*buf, c);
        if (!b) return -1;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

static int put_string(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (put(buf, len, cap, "\"", 1)) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        int k = 0;
        switch (c) {
        case '"':
            k = snprintf(esc, sizeof esc, "\\\"");
            break;
        case '\\':
            k = snprintf(esc, sizeof esc, "\\\\");
            break;
        case '\b':
            k = snprintf(esc, sizeof esc, "\\b");
            break;
        case '\f':
            k = snprintf(esc, sizeof esc, "\\f");
            break;
        case '\n':
            k = snprintf(esc, sizeof esc, "\\n");
            break;
        case '\r':
            k = snprintf(esc, sizeof esc, "\\r");
            break;
        case '\t':
            k = snprintf(esc, sizeof esc, "\\t");
            break;
        default:
            if (c < 0x20) k = snprintf(esc, sizeof esc, "\\u%04x", c);
        }
        if (k ? put(buf, len, cap, esc, (size_t)k) : put(buf, len, cap, s + i, 1)) return -1;
    }
    return put(buf, len, cap, "\"", 1);
}

/* The shortest %g spelling that reads back as the same double. */
static int put_real(char **buf, size_t *len, size_t *cap, double x) {
    char t[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, x);
        if (strtod(t, NULL) == x) break;
    }
    return put(buf, len, cap, t, strlen(t));
}

long g_json_text(const json_t *v, char **buf, size_t *len, size_t *cap) {
    size_t start = *len;
    int rc = 0;
    char t[32];
    switch (json_typeof(v)) {
    case JSON_NULL:
        rc = put(buf, len, cap, "null", 4);
        break;
    case JSON_TRUE:
        rc = put(buf, len, cap, "true", 4);
        break;
    case JSON_FALSE:
        rc = put(buf, len, cap, "false", 5);
        break;
    case JSON_INTEGER:
        snprintf(t, sizeof t, "%lld", (long long)json_integer_value(v));
        rc = put(buf, len, cap, t, strlen(t));
        break;
    case JSON_REAL:
        rc = put_real(buf, len, cap, json_real_value(v));
        break;
    case JSON_STRING:
        rc = put_string(buf, len, cap, json_string_value(v), json_string_length(v));
        break;
    case JSON_ARRAY: {
        rc = put(buf, len, cap, "[", 1);
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (!rc && i) rc = put(buf, len, cap, ",", 1);
            if (!rc) rc = g_json_text(e, buf, len, cap) < 0;
        }
        if (!rc) rc = put(buf, len, cap, "]", 1);
        break;
    }
    case JSON_OBJECT: {
        rc = put(buf, len, cap, "{", 1);
        const char *k;
        json_t *e;
        int first = 1;
        json_object_foreach((json_t *)v, k, e) {
            if (!rc && !first) rc = put(buf, len, cap, ",", 1);
            first = 0;
            if (!rc) rc = put_string(buf, len, cap, k, strlen(k));
            if (!rc) rc = put(buf, len, cap, ":", 1);
            if (!rc) rc = g_json_text(e, buf, len, cap) < 0;
        }
        if (!rc) rc = put(buf, len, cap, "}", 1);
        break;
    }
    }
    return rc ? -1 : (long)(*len - start);
}
