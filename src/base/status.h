/* Errors are values: every fallible function returns an sp_status and, on
 * failure, fills an sp_error with one line that names what was wrong and where
 * (file, tensor, key, byte offset, JSON path). */
#ifndef SP_BASE_STATUS_H
#define SP_BASE_STATUS_H

#include <stdarg.h>

typedef enum sp_status {
    SP_OK = 0,
    SP_EIO,          /* could not open/read/map a file */
    SP_EFORMAT,      /* a file or document is malformed */
    SP_EINVAL,       /* a caller-supplied argument or request is invalid */
    SP_ENOMEM,       /* allocation failed */
    SP_EUNSUPPORTED, /* well-formed but not supported (dtype, architecture) */
    SP_ERANGE,       /* a value is outside its allowed range (context, ids) */
    SP_ENOTFOUND,    /* a required tensor/key/file is missing */
    SP_EBUSY,        /* queue full, try again */
    SP_ECANCELLED,   /* the request was cancelled */
    SP_EINTERNAL,    /* a bug in Spindle */
} sp_status;

#define SP_ERROR_MAX 1024

typedef struct sp_error {
    sp_status status;
    char msg[SP_ERROR_MAX];
} sp_error;

/* Records status + formatted message in err (if non-NULL); returns status so
 * callers can write `return sp_fail(err, SP_EFORMAT, "...", ...);`. */
sp_status sp_fail(sp_error *err, sp_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "context: " to an error already recorded (e.g. the file name). */
sp_status sp_wrap(sp_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *sp_status_name(sp_status s);

#define SP_TRY(expr)                                                                               \
    do {                                                                                           \
        sp_status sp_try_s_ = (expr);                                                              \
        if (sp_try_s_ != SP_OK) return sp_try_s_;                                                  \
    } while (0)

#endif
