/* Stop strings over streamed text. Generated text is appended to a held
 * buffer; text is released only once no stop string can still begin in it,
 * so a stop string that arrives split across tokens is cut exactly and never
 * leaks to a streaming client. Pure functions. */
#ifndef SP_ENGINE_STOP_H
#define SP_ENGINE_STOP_H

#include <stddef.h>

#define SP_STOP_NONE ((size_t)-1)

/* Returns the offset of the earliest complete stop string in buf[0..len)
 * (SP_STOP_NONE if none) and sets *safe to the length of the prefix that can
 * be released: buf minus its longest suffix that is a proper prefix of some
 * stop string. */
size_t sp_stop_scan(const char *buf, size_t len, char *const *stops, int n_stops, size_t *safe);

#endif
