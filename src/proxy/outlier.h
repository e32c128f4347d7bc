/*
 * Outlier detection (Envoy's semantics), on the main thread. Workers count each upstream
 * attempt's outcome on the shared gy_host (gy_host_outcome in hosts.c) and post a message when a
 * host crosses consecutive_5xx or consecutive_gateway_failure; gy_outlier_crossed (declared in
 * hosts.h) then decides the ejection. Every interval, a success-rate sweep per cluster ejects
 * hosts far below the others. An ejection sets GY_HOST_EJECTED for base_ejection_time × the
 * host's number of ejections (capped at max(300 s, base)); a per-cluster timer un-ejects at the
 * exact time. At most max_ejection_percent of a cluster's hosts are ejected at once, but one host
 * always may be. See docs/resilience.md.
 */
#ifndef GY_PROXY_OUTLIER_H
#define GY_PROXY_OUTLIER_H

#include "mesh/config.h"
#include "proxy/hosts.h"

struct gy_proxy;

/*
 * Main thread, after every config is published (the first one included): one detector per
 * cluster of cfg with outlier_detection. A cluster that stays keeps its state and ejections;
 * hosts and clusters that went (or lost outlier_detection) are un-ejected and forgotten.
 */
void gy_outlier_sync(struct gy_proxy *p, const struct gy_config *cfg);

/* At shutdown, before the main loop is disposed: stops the timers and frees everything. */
void gy_outlier_stop(struct gy_proxy *p);

/*
 * One success-rate sweep of a cluster now (what the interval timer does), for tests and tools.
 * Returns the number of hosts ejected, or -1 if the cluster has no detector.
 */
int gy_outlier_sweep(struct gy_proxy *p, const char *cluster);

#endif
