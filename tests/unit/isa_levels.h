/* Kernel tests run at every ISA level: isa_enter() selects level lvl and
 * returns 1, or says loudly on stderr that this CPU lacks it (and which
 * features are missing) and returns 0, so a run on a smaller CPU shows
 * what it did not cover. */
#ifndef SP_TEST_ISA_LEVELS_H
#define SP_TEST_ISA_LEVELS_H

#include <stdio.h>
#include <stdlib.h>

#include "compute/ops.h"

static inline int isa_enter(const char *test, int lvl) {
    if (lvl > (int)sp_ops_cpu_max()) {
        char miss[128];
        sp_isa_missing((sp_isa)lvl, miss, sizeof miss);
        fprintf(stderr, "%s: *** level %s NOT TESTED: this CPU lacks %s ***\n", test,
                sp_isa_name((sp_isa)lvl), miss);
        return 0;
    }
    sp_ops_set_isa((sp_isa)lvl);
    fprintf(stderr, "%s: level %s\n", test, sp_isa_name((sp_isa)lvl));
    return 1;
}

/* Tests ctest runs once per level (SPINDLE_ISA=level): selects it and
 * returns -1 to go on; 77 (ctest's "skipped") after a loud line when this
 * CPU lacks the level; 1 when SPINDLE_ISA names no level. Unset: the best
 * level the CPU has. */
static inline int isa_from_env(const char *test) {
    const char *name = getenv("SPINDLE_ISA");
    sp_isa want = sp_ops_cpu_max();
    if (name && *name && !sp_isa_parse(name, &want)) {
        fprintf(stderr, "%s: SPINDLE_ISA=%s is not a level\n", test, name);
        return 1;
    }
    if (!isa_enter(test, (int)want)) return 77;
    sp_ops_init(); /* its start-up line; keeps the level isa_enter chose */
    return -1;
}

#endif
