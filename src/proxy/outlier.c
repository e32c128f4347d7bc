/* Placeholder until outlier detection lands: crossings are ignored. */
#include "proxy/hosts.h"

void gy_outlier_crossed(struct gy_proxy *p, struct gy_host *h, const struct gy_cluster *c, bool gateway)
{
    (void)p, (void)h, (void)c, (void)gateway;
}
