/* Which device a test runs its models on. ctest registers the conformance
 * and engine tests a second time under the label `cuda` with
 * SPINDLE_TEST_DEVICE=cuda (CMakeLists.txt); without a usable GPU those
 * runs print why and exit 77, which ctest reports as skipped, never as a
 * pass. */
#ifndef SP_TEST_DEVICE_H
#define SP_TEST_DEVICE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda.h"
#include "model/model.h"

#define TEST_SKIPPED 77

static inline int test_on_cuda(void) {
    const char *d = getenv("SPINDLE_TEST_DEVICE");
    return d && !strcmp(d, "cuda");
}

/* Exits 77 (skipped) when the test was asked to run on a GPU that is not
 * there; call first thing in main. */
static inline void test_device_or_skip(const char *name) {
    char why[256];
    if (test_on_cuda() && sp_cuda_probe(why, sizeof why) <= 0) {
        printf("SKIPPED %s on cuda: %s\n", name, why);
        fprintf(stderr, "SKIPPED %s on cuda: %s\n", name, why);
        exit(TEST_SKIPPED);
    }
}

static inline void test_device_opts(sp_model_opts *o) {
    if (test_on_cuda()) o->device = SP_DEVICE_CUDA, o->device_index = 0;
}

#endif
