/*
 * Active health checks (HTTP, TCP, gRPC Health v1), run by the main thread once per proxy, not
 * once per worker. Every (cluster, host, check) of the current config has a checker: a timer
 * (interval plus a random 0..jitter), one short connection per check with a timeout, and
 * consecutive-result thresholds. A host fails after unhealthy_threshold failures in a row
 * (GY_HOST_FAILED_HC is set on its shared gy_host, which the workers' load balancers read) and
 * is healthy again after healthy_threshold successes. Hosts start healthy. See
 * docs/resilience.md.
 */
#ifndef GY_PROXY_HEALTH_H
#define GY_PROXY_HEALTH_H

#include <stdio.h>

#include "mesh/config.h"
#include "proxy/hosts.h"

struct gy_proxy;

/*
 * Main thread, after every config is published (the first one included): starts checking the
 * (cluster, host) pairs of cfg's clusters that have health_checks, keeps the state (thresholds,
 * counters, the next check time) of those that stay, and stops checking the ones that went
 * (their GY_HOST_FAILED_HC flag is cleared). Takes its own reference to cfg while it checks
 * hosts of it. Safe to call from any callback of the main loop.
 */
void gy_health_sync(struct gy_proxy *p, const struct gy_config *cfg);

/* At shutdown, before the main loop is disposed: stops every check and frees everything. */
void gy_health_stop(struct gy_proxy *p);

/* "healthy", "failed_active_hc", "failed_outlier_check" or "failed_active_hc|failed_outlier_check". */
const char *gy_host_health_string(const struct gy_host *h);

/*
 * Prometheus lines (with HELP and TYPE) for every host the proxy knows, from the shared host
 * registry (main thread):
 *   gyrus_cluster_health_check_success_total{cluster,host}, ..._failure_total{cluster,host},
 *   gyrus_cluster_outlier_ejections_total{cluster,host}, gyrus_cluster_host_healthy{cluster,host}
 *   (1 when usable, 0 when failed or ejected), gyrus_cluster_outlier_ejections_active{cluster}.
 */
void gy_health_metrics(FILE *f);

#endif
