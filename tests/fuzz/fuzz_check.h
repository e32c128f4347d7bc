/* CHECK(cond): an invariant of a fuzz target; a broken one aborts with the condition, so that
 * libFuzzer keeps the input that broke it. */
#ifndef GY_FUZZ_CHECK_H
#define GY_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

#endif
