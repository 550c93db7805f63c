/* Test-only fault injection. The environment variable SPINDLE_TEST_FAULT,
 * read once when the engine starts, makes the engine misbehave on purpose so
 * that the tests can check that one request's failure stays that request's
 * and that a dead engine thread is noticed (docs/errors.md). Never set it in
 * production; unset, every hook below is a no-op.
 *
 *   SPINDLE_TEST_FAULT=KEY=VALUE[,KEY=VALUE...]
 *     engine_die_after_steps=N  the engine thread leaves its loop after N
 *                               forward steps, as if it had died
 *     engine_hang_after_steps=N the engine thread sleeps forever inside the
 *                               step after its N-th forward, as if it hung
 *                               (the watchdog's test)
 *     forward_fail_token=ID     a forward holding a sequence whose prompt
 *                               contains token ID fails
 *     nan_logits_token=ID       such a sequence's logits come out NaN */
#ifndef SP_ENGINE_FAULT_H
#define SP_ENGINE_FAULT_H

#include <stdint.h>

#include "base/status.h"

typedef struct sp_fault {
    long die_after_steps;       /* 0: never */
    long hang_after_steps;      /* 0: never */
    int32_t forward_fail_token; /* -1: off */
    int32_t nan_logits_token;   /* -1: off */
} sp_fault;

#define SP_FAULT_ENV "SPINDLE_TEST_FAULT"

/* Parses spec (NULL or "" turns every fault off). SP_EINVAL names the bad
 * entry, so a typo in a test fails loudly instead of testing nothing. */
sp_status sp_fault_parse(const char *spec, sp_fault *out, sp_error *err);

/* 1 if any fault is on. */
int sp_fault_any(const sp_fault *f);

/* Never returns: logs and sleeps forever (engine_hang_after_steps). */
_Noreturn void sp_fault_hang(const char *what, long n);

/* 1 if tokens[0..n) contain id (id < 0: never). */
int sp_fault_has_token(const int32_t *tokens, int n, int32_t id);

#endif
