/*
 * Metrics: counters, gauges and latency histograms per listener, route and cluster. Every
 * scope has one shard per worker; a worker writes only its own shard with plain relaxed
 * stores (no locked instruction on the request path) and the admin thread sums the shards on
 * scrape. Scopes live for the process: a reload that keeps a name keeps its counters.
 */
#ifndef GY_PROXY_STATS_H
#define GY_PROXY_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gy_stats_kind { GY_STATS_LISTENER, GY_STATS_ROUTE, GY_STATS_CLUSTER, GY_STATS_NKINDS };

enum gy_counter {
    GY_C_RQ_TOTAL,
    GY_C_RQ_1XX,
    GY_C_RQ_2XX,
    GY_C_RQ_3XX,
    GY_C_RQ_4XX,
    GY_C_RQ_5XX,
    GY_C_RQ_ACTIVE,         /* gauge */
    GY_C_RQ_TIMEOUT,
    GY_C_RQ_RESET,          /* ended without a complete response */
    GY_C_CX_TOTAL,
    GY_C_CX_ACTIVE,         /* gauge */
    GY_C_CX_CONNECT_FAIL,
    GY_C_CX_CONNECT_TIMEOUT,
    GY_C_CX_PROTOCOL_ERROR, /* malformed messages */
    GY_C_CX_IDLE,           /* gauge: upstream idle pooled connections */
    GY_C_CX_REUSED,         /* requests sent on a reused upstream connection */
    GY_C_NO_ROUTE,
    GY_C_NO_HEALTHY,
    GY_C_BYTES_RX,
    GY_C_BYTES_TX,
    GY_C_RETRY,             /* retries made */
    GY_C_RETRY_SUCCESS,     /* requests that succeeded after a retry */
    GY_C_RETRY_OVERFLOW,    /* retries refused by the budget or max_retries */
    GY_C_OVERFLOW,          /* requests refused by a circuit breaker (503 UO) */
    GY_C_SHADOW,            /* copies sent to dark and tap clusters */
    GY_C_SHADOW_DROPPED,    /* copies not sent (body over the replay limit, too many in flight) */
    GY_C_FAULT,             /* requests answered or delayed by a filter (fault, rate limit) */
    GY_NCOUNTERS
};

/* Circuit-breaker resources of a cluster: current use (all workers, atomics) against limits. */
enum gy_cb_resource { GY_CB_CONNECTIONS, GY_CB_PENDING, GY_CB_REQUESTS, GY_CB_RETRIES, GY_CB_N };

enum gy_hist { GY_H_RQ_TIME, GY_H_UPSTREAM_TIME, GY_NHISTS };

#define GY_HIST_NBUCKETS 16 /* plus +Inf */

struct gy_hist_shard {
    _Atomic uint64_t buckets[GY_HIST_NBUCKETS + 1];
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
};

#define GY_GRPC_NSTATUS 18 /* grpc-status 0..16, then "other" (and none) */

struct gy_stats_shard {
    _Atomic uint64_t c[GY_NCOUNTERS];
    _Atomic uint64_t grpc[GY_GRPC_NSTATUS]; /* gRPC calls by grpc-status */
    struct gy_hist_shard h[GY_NHISTS];
} __attribute__((aligned(64)));

struct gy_stats_scope {
    enum gy_stats_kind kind;
    char *name;
    struct gy_stats_scope *next;
    struct gy_stats_shard *shards; /* nworkers of them */
    _Atomic int64_t cb_used[GY_CB_N];  /* clusters: circuit-breaker use, shared by the workers */
    _Atomic uint32_t cb_max[GY_CB_N];  /* clusters: the limits of the current config */
};

/* Takes one unit of a circuit-breaker resource; false (nothing taken) when at the limit. */
static inline bool gy_cb_take(struct gy_stats_scope *s, enum gy_cb_resource r)
{
    int64_t used = atomic_fetch_add_explicit(&s->cb_used[r], 1, memory_order_relaxed);
    if (used >= (int64_t)atomic_load_explicit(&s->cb_max[r], memory_order_relaxed)) {
        atomic_fetch_sub_explicit(&s->cb_used[r], 1, memory_order_relaxed);
        return false;
    }
    return true;
}

static inline void gy_cb_give(struct gy_stats_scope *s, enum gy_cb_resource r)
{
    atomic_fetch_sub_explicit(&s->cb_used[r], 1, memory_order_relaxed);
}

/* Sets up the registry for n workers (once, at startup). */
int gy_stats_init(unsigned nworkers);
void gy_stats_shutdown(void);
/* Finds or creates the scope (thread-safe; used by the main thread when adopting a config). */
struct gy_stats_scope *gy_stats_scope(enum gy_stats_kind kind, const char *name);

static inline void gy_stat_add(struct gy_stats_scope *s, unsigned w, enum gy_counter c, uint64_t n)
{
    _Atomic uint64_t *p = &s->shards[w].c[c];
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + n, memory_order_relaxed);
}

static inline void gy_stat_inc(struct gy_stats_scope *s, unsigned w, enum gy_counter c)
{
    gy_stat_add(s, w, c, 1);
}

/* Gauges are kept as per-shard deltas; a worker's shard may go negative (stored as wrap). */
static inline void gy_stat_dec(struct gy_stats_scope *s, unsigned w, enum gy_counter c)
{
    gy_stat_add(s, w, c, (uint64_t)-1);
}

void gy_stat_observe(struct gy_stats_scope *s, unsigned w, enum gy_hist h, uint64_t us);

/* Counts a finished gRPC call by its grpc-status (-1: none, e.g. a reset). */
static inline void gy_stat_grpc(struct gy_stats_scope *s, unsigned w, int grpc_status)
{
    _Atomic uint64_t *p = &s->shards[w].grpc[grpc_status >= 0 && grpc_status < 17 ? grpc_status : 17];
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + 1, memory_order_relaxed);
}

/* Counts a finished request by status class (status 0 = reset). */
void gy_stat_status(struct gy_stats_scope *s, unsigned w, int status);

/* Writes the Prometheus text exposition of every scope (plus `extra`, already formatted) into
 * a malloc'ed string; returns NULL on failure. */
char *gy_stats_prometheus(const char *extra);
/* Writes every scope as a JSON object string (malloc'ed). */
char *gy_stats_json(void);
/* Sum of one counter of a scope across shards. */
int64_t gy_stats_sum(const struct gy_stats_scope *s, enum gy_counter c);

#endif
