/*
 * Upstream hosts as the whole proxy sees them: one gy_host per (cluster name, address), shared
 * by the workers and the main thread and kept across reloads. Workers read the health flags when
 * they pick a host and report each request's outcome; the main thread runs active health checks
 * (health.c) and outlier detection (outlier.c), and sets the flags. Flags and counters are
 * atomics: a worker touches them once per request, never under a lock.
 */
#ifndef GY_PROXY_HOSTS_H
#define GY_PROXY_HOSTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mesh/config.h"
#include "net/sock.h"

#define GY_HOST_FAILED_HC 0x1u      /* failed active health checks */
#define GY_HOST_EJECTED 0x2u        /* ejected by outlier detection */

struct gy_proxy;

struct gy_host {
    struct gy_host *next;           /* registry chain */
    char *cluster;                  /* cluster name */
    char addr_str[GY_ADDRSTRLEN];
    struct sockaddr_storage addr;
    socklen_t addrlen;
    _Atomic uint32_t flags;         /* GY_HOST_*: 0 = usable */
    /* written by workers */
    _Atomic uint32_t consecutive_5xx;
    _Atomic uint32_t consecutive_gateway;
    _Atomic uint64_t rq_total;      /* outcomes reported, for success-rate detection */
    _Atomic uint64_t rq_success;
    _Atomic uint32_t reported;      /* a threshold crossing is on its way to the main thread */
    /* main thread only (outlier.c, health.c) */
    uint32_t ejections;
    uint64_t ejected_until_ms;
    uint64_t sr_total_seen, sr_success_seen;
    uint32_t hc_failures, hc_successes;
    _Atomic uint64_t ejections_total;   /* for metrics */
    _Atomic uint64_t hc_ok_total, hc_fail_total;
};

/* Finds or creates the host (main thread, while attaching a config). Never freed before exit. */
struct gy_host *gy_host_get(const char *cluster, const struct sockaddr *addr, socklen_t len);
/* Frees every host (at exit). */
void gy_hosts_shutdown(void);
/* Calls fn for each host of the registry (main thread). */
void gy_hosts_foreach(void (*fn)(struct gy_host *h, void *arg), void *arg);

static inline bool gy_host_usable(const struct gy_host *h)
{
    return atomic_load_explicit(&h->flags, memory_order_relaxed) == 0;
}

/* Outcome of one upstream attempt, reported by a worker: the upstream's status, or 0 when the
 * connection failed, was reset or timed out. Feeds outlier detection when the cluster has it. */
void gy_host_outcome(struct gy_proxy *p, struct gy_host *h, const struct gy_cluster *c, int status);

/* Implemented by outlier.c (main thread): a host crossed a consecutive-failure threshold. */
void gy_outlier_crossed(struct gy_proxy *p, struct gy_host *h, const struct gy_cluster *c, bool gateway);

#endif
