#include "engine/stop.h"

#include <string.h>

static size_t find(const char *buf, size_t len, const char *s, size_t sl) {
    if (sl == 0 || sl > len) return SP_STOP_NONE;
    for (size_t i = 0; i + sl <= len; i++)
        if (buf[i] == s[0] && !memcmp(buf + i, s, sl)) return i;
    return SP_STOP_NONE;
}

size_t sp_stop_scan(const char *buf, size_t len, char *const *stops, int n_stops, size_t *safe) {
    size_t first = SP_STOP_NONE, hold = 0;
    for (int i = 0; i < n_stops; i++) {
        size_t sl = strlen(stops[i]);
        size_t at = find(buf, len, stops[i], sl);
        if (at < first) first = at;
        /* longest suffix of buf that is a proper prefix of this stop */
        size_t k = sl > 0 ? sl - 1 : 0;
        if (k > len) k = len;
        for (; k > hold; k--)
            if (!memcmp(buf + len - k, stops[i], k)) {
                hold = k;
                break;
            }
    }
    *safe = len - hold;
    return first;
}
