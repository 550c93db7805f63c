#include "base/status.h"

#include <stdio.h>
#include <string.h>

sp_status sp_fail(sp_error *err, sp_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

sp_status sp_wrap(sp_error *err, const char *fmt, ...) {
    if (!err) return SP_EINTERNAL;
    char prefix[SP_ERROR_MAX], old[SP_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t n = strnlen(prefix, sizeof prefix - 3);
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    n += 2;
    size_t m = strnlen(old, sizeof err->msg - n - 1);
    memcpy(err->msg + n, old, m);
    err->msg[n + m] = 0;
    return err->status;
}

const char *sp_status_name(sp_status s) {
    switch (s) {
    case SP_OK:
        return "ok";
    case SP_EIO:
        return "io error";
    case SP_EFORMAT:
        return "format error";
    case SP_EINVAL:
        return "invalid argument";
    case SP_ENOMEM:
        return "out of memory";
    case SP_EUNSUPPORTED:
        return "unsupported";
    case SP_ERANGE:
        return "out of range";
    case SP_ENOTFOUND:
        return "not found";
    case SP_EBUSY:
        return "busy";
    case SP_ECANCELLED:
        return "cancelled";
    case SP_EINTERNAL:
        return "internal error";
    }
    return "unknown error";
}
