/* Stop strings: earliest match, and how much text can be released. */
#include <string.h>

#include "check.h"
#include "engine/stop.h"

static size_t scan(const char *buf, char *const *stops, int n, size_t *safe) {
    return sp_stop_scan(buf, strlen(buf), stops, n, safe);
}

int main(void) {
    char *stops[] = {"END", "\n\n", "ab"};
    size_t safe;
    CHECK(scan("hello", stops, 3, &safe) == SP_STOP_NONE && safe == 5);
    CHECK(scan("hello E", stops, 3, &safe) == SP_STOP_NONE && safe == 6);
    CHECK(scan("hello EN", stops, 3, &safe) == SP_STOP_NONE && safe == 6);
    CHECK(scan("hello END more", stops, 3, &safe) == 6);
    CHECK(scan("x\n", stops, 3, &safe) == SP_STOP_NONE && safe == 1);
    CHECK(scan("xab ENDab", stops, 3, &safe) == 1); /* earliest wins */
    CHECK(scan("a", stops, 3, &safe) == SP_STOP_NONE && safe == 0);
    CHECK(scan("", stops, 3, &safe) == SP_STOP_NONE && safe == 0);
    CHECK(scan("anything", stops, 0, &safe) == SP_STOP_NONE && safe == 8);
    /* UTF-8: a multi-byte stop string split mid-character is held */
    char *u[] = {"\xc3\xa9t\xc3\xa9"}; /* "été" */
    CHECK(scan("l'\xc3", u, 1, &safe) == SP_STOP_NONE && safe == 2);
    CHECK(scan("l'\xc3\xa9t\xc3\xa9!", u, 1, &safe) == 2);
    return check_summary("test_engine_stop");
}
