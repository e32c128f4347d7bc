/* placeholder */
#include <stdio.h>
#include "control/store.h"
#include "core/err.h"
static int etcd_open(const struct gy_store_options *o, struct gy_store **out, char *err, size_t errlen)
{
    (void)o; (void)out;
    snprintf(err, errlen, "etcd: not yet");
    return GY_EUNSUPPORTED;
}
const struct gy_store_ops gy_store_etcd_ops = { .name = "etcd", .open = etcd_open };
