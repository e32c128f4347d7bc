/* Built only when src/control/discovery/ has no sources yet (see CMakeLists.txt): every
 * --discovery spec is refused with a clear reason. */
#include <stdio.h>

#include "control/discovery.h"

struct gy_discovery *gy_discovery_start(struct gy_loop *loop, const char *spec, gy_discovery_cb cb, void *arg,
                                        char *err, size_t errlen)
{
    (void)loop;
    (void)cb;
    (void)arg;
    snprintf(err, errlen, "--discovery %s: discovery sources are not part of this build", spec);
    return NULL;
}

void gy_discovery_stop(struct gy_discovery *d)
{
    (void)d;
}

const char *gy_discovery_state(const struct gy_discovery *d)
{
    (void)d;
    return "not built";
}
