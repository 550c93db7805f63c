/* SPINDLE_TEST_FAULT parsing (see fault.h). */
#include "engine/fault.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

static int parse_long(const char *s, size_t n, long lo, long *out) {
    char buf[32];
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    long v = strtol(buf, &end, 10);
    if (*end || v < lo) return -1;
    *out = v;
    return 0;
}

/* One KEY=VALUE entry of length n. */
static sp_status parse_entry(const char *s, size_t n, sp_fault *f, sp_error *err) {
    const char *eq = memchr(s, '=', n);
    size_t klen = eq ? (size_t)(eq - s) : n;
    const char *v = eq ? eq + 1 : s + n;
    size_t vlen = (size_t)(s + n - v);
    long x;
    if (klen == 22 && !memcmp(s, "engine_die_after_steps", klen) && !parse_long(v, vlen, 1, &x))
        f->die_after_steps = x;
    else if (klen == 23 && !memcmp(s, "engine_hang_after_steps", klen) &&
             !parse_long(v, vlen, 1, &x))
        f->hang_after_steps = x;
    else if (klen == 18 && !memcmp(s, "forward_fail_token", klen) && !parse_long(v, vlen, 0, &x))
        f->forward_fail_token = (int32_t)x;
    else if (klen == 16 && !memcmp(s, "nan_logits_token", klen) && !parse_long(v, vlen, 0, &x))
        f->nan_logits_token = (int32_t)x;
    else
        return sp_fail(err, SP_EINVAL,
                       "%s: cannot use '%.*s' (expected engine_die_after_steps=N, "
                       "engine_hang_after_steps=N, forward_fail_token=ID or "
                       "nan_logits_token=ID)",
                       SP_FAULT_ENV, (int)n, s);
    return SP_OK;
}

sp_status sp_fault_parse(const char *spec, sp_fault *f, sp_error *err) {
    memset(f, 0, sizeof *f);
    f->forward_fail_token = -1;
    f->nan_logits_token = -1;
    if (!spec) return SP_OK;
    const char *p = spec;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n > 0) SP_TRY(parse_entry(p, n, f, err));
        p += n;
        if (*p == ',') p++;
    }
    return SP_OK;
}

int sp_fault_any(const sp_fault *f) {
    return f->die_after_steps > 0 || f->hang_after_steps > 0 || f->forward_fail_token >= 0 ||
           f->nan_logits_token >= 0;
}

int sp_fault_has_token(const int32_t *tokens, int n, int32_t id) {
    if (id < 0) return 0;
    for (int i = 0; i < n; i++)
        if (tokens[i] == id) return 1;
    return 0;
}

void sp_fault_hang(const char *what, long n) {
    SP_WARN("injected fault: %s=%ld: the engine thread hangs now", what, n);
    for (;;) sleep(3600);
}
