#include "proxy/stats.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gy_stats_scope *scopes;
static unsigned stats_nworkers;

/* Bucket upper bounds in microseconds (Prometheus `le` in seconds). */
static const uint64_t bucket_us[GY_HIST_NBUCKETS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};
static const char *const bucket_le[GY_HIST_NBUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "5", "10", "30", "60",
};

static const char *const kind_names[GY_STATS_NKINDS] = { "listener", "route", "cluster" };

int gy_stats_init(unsigned nworkers)
{
    stats_nworkers = nworkers ? nworkers : 1;
    return 0;
}

void gy_stats_shutdown(void)
{
    pthread_mutex_lock(&stats_lock);
    while (scopes != NULL) {
        struct gy_stats_scope *s = scopes;
        scopes = s->next;
        free(s->shards);
        free(s->name);
        free(s);
    }
    pthread_mutex_unlock(&stats_lock);
}

struct gy_stats_scope *gy_stats_scope(enum gy_stats_kind kind, const char *name)
{
    struct gy_stats_scope *s, **tail;

    pthread_mutex_lock(&stats_lock);
    for (tail = &scopes; (s = *tail) != NULL; tail = &s->next)
        if (s->kind == kind && strcmp(s->name, name) == 0)
            goto out;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto out;
    s->kind = kind;
    s->name = strdup(name);
    s->shards = aligned_alloc(64, sizeof(struct gy_stats_shard) * stats_nworkers);
    if (s->name == NULL || s->shards == NULL) {
        free(s->name);
        free(s->shards);
        free(s);
        s = NULL;
        goto out;
    }
    memset(s->shards, 0, sizeof(struct gy_stats_shard) * stats_nworkers);
    *tail = s; /* appended: scrape order follows creation order */
out:
    pthread_mutex_unlock(&stats_lock);
    return s;
}

void gy_stat_observe(struct gy_stats_scope *s, unsigned w, enum gy_hist h, uint64_t us)
{
    struct gy_hist_shard *hs = &s->shards[w].h[h];
    unsigned i = 0;

    while (i < GY_HIST_NBUCKETS && us > bucket_us[i])
        i++;
    atomic_store_explicit(&hs->buckets[i], atomic_load_explicit(&hs->buckets[i], memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&hs->count, atomic_load_explicit(&hs->count, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&hs->sum_us, atomic_load_explicit(&hs->sum_us, memory_order_relaxed) + us,
                          memory_order_relaxed);
}

void gy_stat_status(struct gy_stats_scope *s, unsigned w, int status)
{
    gy_stat_inc(s, w, GY_C_RQ_TOTAL);
    if (status >= 100 && status < 600)
        gy_stat_inc(s, w, (enum gy_counter)(GY_C_RQ_1XX + status / 100 - 1));
    else
        gy_stat_inc(s, w, GY_C_RQ_RESET);
}

int64_t gy_stats_sum(const struct gy_stats_scope *s, enum gy_counter c)
{
    uint64_t sum = 0;

    for (unsigned w = 0; w < stats_nworkers; w++)
        sum += atomic_load_explicit(&s->shards[w].c[c], memory_order_relaxed);
    return (int64_t)sum;
}

/* ---- output ---- */

struct out {
    char *p;
    size_t len, cap;
    bool failed;
};

__attribute__((format(printf, 2, 3))) static void out_printf(struct out *o, const char *fmt, ...)
{
    va_list ap;

    for (;;) {
        if (o->failed)
            return;
        va_start(ap, fmt);
        int n = vsnprintf(o->p ? o->p + o->len : NULL, o->p ? o->cap - o->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if (o->p != NULL && o->len + (size_t)n < o->cap) {
            o->len += (size_t)n;
            return;
        }
        size_t ncap = o->cap ? o->cap * 2 : 16384;
        while (ncap < o->len + (size_t)n + 1)
            ncap *= 2;
        char *np = realloc(o->p, ncap);
        if (np == NULL) {
            o->failed = true;
            return;
        }
        o->p = np;
        o->cap = ncap;
    }
}

struct metric_def {
    enum gy_counter c;
    const char *name;     /* after gyrus_<kind>_ */
    const char *type;     /* counter or gauge */
    const char *help;
};

static const struct metric_def listener_metrics[] = {
    { GY_C_CX_TOTAL, "downstream_cx_total", "counter", "Downstream connections accepted." },
    { GY_C_CX_ACTIVE, "downstream_cx_active", "gauge", "Downstream connections open." },
    { GY_C_CX_PROTOCOL_ERROR, "downstream_cx_protocol_error_total", "counter", "Malformed requests." },
    { GY_C_RQ_ACTIVE, "downstream_rq_active", "gauge", "Requests in flight." },
    { GY_C_RQ_TIMEOUT, "downstream_rq_timeout_total", "counter", "Requests that timed out." },
    { GY_C_NO_ROUTE, "downstream_rq_no_route_total", "counter", "Requests with no matching route." },
    { GY_C_BYTES_RX, "downstream_cx_rx_bytes_total", "counter", "Bytes received from clients." },
    { GY_C_BYTES_TX, "downstream_cx_tx_bytes_total", "counter", "Bytes sent to clients." },
    { GY_C_FAULT, "downstream_rq_filtered_total", "counter",
      "Requests answered or delayed by a filter (fault injection, rate limit)." },
};

static const struct metric_def route_metrics[] = {
    { GY_C_RQ_ACTIVE, "rq_active", "gauge", "Requests in flight on the route." },
    { GY_C_RQ_TIMEOUT, "rq_timeout_total", "counter", "Requests on the route that timed out." },
};

static const struct metric_def cluster_metrics[] = {
    { GY_C_CX_TOTAL, "upstream_cx_total", "counter", "Upstream connections opened." },
    { GY_C_CX_ACTIVE, "upstream_cx_active", "gauge", "Upstream connections open." },
    { GY_C_CX_IDLE, "upstream_cx_idle", "gauge", "Upstream connections idle in the pool." },
    { GY_C_CX_CONNECT_FAIL, "upstream_cx_connect_fail_total", "counter", "Upstream connect failures." },
    { GY_C_CX_CONNECT_TIMEOUT, "upstream_cx_connect_timeout_total", "counter", "Upstream connect timeouts." },
    { GY_C_CX_PROTOCOL_ERROR, "upstream_cx_protocol_error_total", "counter", "Malformed upstream responses." },
    { GY_C_CX_REUSED, "upstream_rq_reused_total", "counter", "Requests sent on a reused connection." },
    { GY_C_RQ_ACTIVE, "upstream_rq_active", "gauge", "Upstream requests in flight." },
    { GY_C_RQ_TIMEOUT, "upstream_rq_timeout_total", "counter", "Upstream requests that timed out." },
    { GY_C_NO_HEALTHY, "upstream_rq_no_healthy_total", "counter", "Requests with no usable host." },
    { GY_C_BYTES_RX, "upstream_cx_rx_bytes_total", "counter", "Bytes received from upstreams." },
    { GY_C_BYTES_TX, "upstream_cx_tx_bytes_total", "counter", "Bytes sent to upstreams." },
    { GY_C_RETRY, "upstream_rq_retry_total", "counter", "Retries made." },
    { GY_C_RETRY_SUCCESS, "upstream_rq_retry_success_total", "counter", "Requests that succeeded on a retry." },
    { GY_C_RETRY_OVERFLOW, "upstream_rq_retry_overflow_total", "counter",
      "Retries not made: retry budget or max_retries reached." },
    { GY_C_OVERFLOW, "upstream_rq_overflow_total", "counter", "Requests refused by a circuit breaker (503 UO)." },
    { GY_C_SHADOW, "upstream_rq_shadow_total", "counter", "Copies of requests sent to dark and tap clusters." },
    { GY_C_SHADOW_DROPPED, "upstream_rq_shadow_dropped_total", "counter",
      "Copies not sent (body over the replay limit, or too many in flight)." },
};

struct kind_def {
    const struct metric_def *metrics;
    size_t nmetrics;
    const char *rq_name;      /* requests by status class */
    const char *hist_names[GY_NHISTS];
};

static const struct kind_def kinds[GY_STATS_NKINDS] = {
    [GY_STATS_LISTENER] = { listener_metrics, sizeof(listener_metrics) / sizeof(listener_metrics[0]),
                            "downstream_rq_total", { "downstream_rq_time_seconds", NULL } },
    [GY_STATS_ROUTE] = { route_metrics, sizeof(route_metrics) / sizeof(route_metrics[0]), "rq_total",
                         { "rq_time_seconds", "upstream_rq_time_seconds" } },
    [GY_STATS_CLUSTER] = { cluster_metrics, sizeof(cluster_metrics) / sizeof(cluster_metrics[0]),
                           "upstream_rq_total", { NULL, "upstream_rq_time_seconds" } },
};

static const char *const status_classes[] = { "1xx", "2xx", "3xx", "4xx", "5xx", "reset" };

/* Label values are names from the mesh file: escape backslash, quote and newline. */
static void out_label(struct out *o, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            out_printf(o, "\\%c", *v);
        else if (*v == '\n')
            out_printf(o, "\\n");
        else
            out_printf(o, "%c", *v);
    }
}

static void prom_counters(struct out *o, enum gy_stats_kind k)
{
    const struct kind_def *kd = &kinds[k];

    for (size_t m = 0; m < kd->nmetrics; m++) {
        const struct metric_def *md = &kd->metrics[m];
        out_printf(o, "# HELP gyrus_%s_%s %s\n# TYPE gyrus_%s_%s %s\n", kind_names[k], md->name, md->help,
                   kind_names[k], md->name, md->type);
        for (struct gy_stats_scope *s = scopes; s; s = s->next) {
            if (s->kind != k)
                continue;
            out_printf(o, "gyrus_%s_%s{%s=\"", kind_names[k], md->name, kind_names[k]);
            out_label(o, s->name);
            out_printf(o, "\"} %lld\n", (long long)gy_stats_sum(s, md->c));
        }
    }
    out_printf(o, "# HELP gyrus_%s_%s Requests by status class.\n# TYPE gyrus_%s_%s counter\n", kind_names[k],
               kd->rq_name, kind_names[k], kd->rq_name);
    for (struct gy_stats_scope *s = scopes; s; s = s->next) {
        if (s->kind != k)
            continue;
        for (int c = 0; c < 6; c++) {
            out_printf(o, "gyrus_%s_%s{%s=\"", kind_names[k], kd->rq_name, kind_names[k]);
            out_label(o, s->name);
            out_printf(o, "\",status_class=\"%s\"} %lld\n", status_classes[c],
                       (long long)gy_stats_sum(s, c == 5 ? GY_C_RQ_RESET : (enum gy_counter)(GY_C_RQ_1XX + c)));
        }
    }
}

static void prom_hist(struct out *o, enum gy_stats_kind k, enum gy_hist h)
{
    const char *hn = kinds[k].hist_names[h];

    if (hn == NULL)
        return;
    out_printf(o, "# HELP gyrus_%s_%s Request latency.\n# TYPE gyrus_%s_%s histogram\n", kind_names[k], hn,
               kind_names[k], hn);
    for (struct gy_stats_scope *s = scopes; s; s = s->next) {
        uint64_t cum = 0, count = 0, sum = 0;
        if (s->kind != k)
            continue;
        for (unsigned b = 0; b <= GY_HIST_NBUCKETS; b++) {
            for (unsigned w = 0; w < stats_nworkers; w++)
                cum += atomic_load_explicit(&s->shards[w].h[h].buckets[b], memory_order_relaxed);
            out_printf(o, "gyrus_%s_%s_bucket{%s=\"", kind_names[k], hn, kind_names[k]);
            out_label(o, s->name);
            out_printf(o, "\",le=\"%s\"} %llu\n", b < GY_HIST_NBUCKETS ? bucket_le[b] : "+Inf",
                       (unsigned long long)cum);
        }
        for (unsigned w = 0; w < stats_nworkers; w++) {
            count += atomic_load_explicit(&s->shards[w].h[h].count, memory_order_relaxed);
            sum += atomic_load_explicit(&s->shards[w].h[h].sum_us, memory_order_relaxed);
        }
        out_printf(o, "gyrus_%s_%s_sum{%s=\"", kind_names[k], hn, kind_names[k]);
        out_label(o, s->name);
        out_printf(o, "\"} %.6f\ngyrus_%s_%s_count{%s=\"", (double)sum / 1e6, kind_names[k], hn, kind_names[k]);
        out_label(o, s->name);
        out_printf(o, "\"} %llu\n", (unsigned long long)count);
    }
}

/* gRPC calls by grpc-status, for the scopes that saw any. */
static void prom_grpc(struct out *o, enum gy_stats_kind k)
{
    static const char *const prefix[GY_STATS_NKINDS] = { "downstream_", "", "upstream_" };

    out_printf(o, "# HELP gyrus_%s_%sgrpc_total gRPC calls by grpc-status.\n# TYPE gyrus_%s_%sgrpc_total counter\n",
               kind_names[k], prefix[k], kind_names[k], prefix[k]);
    for (struct gy_stats_scope *s = scopes; s; s = s->next) {
        if (s->kind != k)
            continue;
        for (int g = 0; g < GY_GRPC_NSTATUS; g++) {
            uint64_t n = 0;
            for (unsigned w = 0; w < stats_nworkers; w++)
                n += atomic_load_explicit(&s->shards[w].grpc[g], memory_order_relaxed);
            if (n == 0)
                continue;
            out_printf(o, "gyrus_%s_%sgrpc_total{%s=\"", kind_names[k], prefix[k], kind_names[k]);
            out_label(o, s->name);
            if (g < 17)
                out_printf(o, "\",grpc_status=\"%d\"} %llu\n", g, (unsigned long long)n);
            else
                out_printf(o, "\",grpc_status=\"other\"} %llu\n", (unsigned long long)n);
        }
    }
}

static void prom_breakers(struct out *o)
{
    static const char *const res[GY_CB_N] = { "connections", "pending_requests", "requests", "retries" };

    out_printf(o, "# HELP gyrus_cluster_circuit_breakers_remaining Capacity left before a circuit breaker opens.\n"
                  "# TYPE gyrus_cluster_circuit_breakers_remaining gauge\n");
    for (struct gy_stats_scope *s = scopes; s; s = s->next) {
        if (s->kind != GY_STATS_CLUSTER)
            continue;
        for (int r = 0; r < GY_CB_N; r++) {
            int64_t left = (int64_t)atomic_load_explicit(&s->cb_max[r], memory_order_relaxed) -
                           atomic_load_explicit(&s->cb_used[r], memory_order_relaxed);
            out_printf(o, "gyrus_cluster_circuit_breakers_remaining{cluster=\"");
            out_label(o, s->name);
            out_printf(o, "\",resource=\"%s\"} %lld\n", res[r], (long long)(left < 0 ? 0 : left));
        }
    }
}

char *gy_stats_prometheus(const char *extra)
{
    struct out o = { 0 };

    out_printf(&o, "%s", extra ? extra : "");
    pthread_mutex_lock(&stats_lock);
    for (int k = 0; k < GY_STATS_NKINDS; k++) {
        prom_counters(&o, (enum gy_stats_kind)k);
        prom_grpc(&o, (enum gy_stats_kind)k);
        for (int h = 0; h < GY_NHISTS; h++)
            prom_hist(&o, (enum gy_stats_kind)k, (enum gy_hist)h);
    }
    prom_breakers(&o);
    pthread_mutex_unlock(&stats_lock);
    if (o.failed) {
        free(o.p);
        return NULL;
    }
    return o.p;
}

static void json_str(struct out *o, const char *v)
{
    out_printf(o, "\"");
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        if (c == '"' || c == '\\')
            out_printf(o, "\\%c", c);
        else if (c < 0x20)
            out_printf(o, "\\u%04x", c);
        else
            out_printf(o, "%c", c);
    }
    out_printf(o, "\"");
}

char *gy_stats_json(void)
{
    struct out o = { 0 };

    out_printf(&o, "{");
    pthread_mutex_lock(&stats_lock);
    for (int k = 0; k < GY_STATS_NKINDS; k++) {
        const struct kind_def *kd = &kinds[k];
        bool first = true;
        out_printf(&o, "%s\"%ss\":{", k ? "," : "", kind_names[k]);
        for (struct gy_stats_scope *s = scopes; s; s = s->next) {
            if ((int)s->kind != k)
                continue;
            out_printf(&o, "%s", first ? "" : ",");
            first = false;
            json_str(&o, s->name);
            out_printf(&o, ":{");
            for (size_t m = 0; m < kd->nmetrics; m++) {
                const char *n = kd->metrics[m].name;
                size_t nl = strlen(n);
                if (nl > 6 && strcmp(n + nl - 6, "_total") == 0)
                    nl -= 6;
                out_printf(&o, "\"%.*s\":%lld,", (int)nl, n, (long long)gy_stats_sum(s, kd->metrics[m].c));
            }
            for (int c = 0; c < 6; c++)
                out_printf(&o, "\"rq_%s\":%lld,", status_classes[c],
                           (long long)gy_stats_sum(s, c == 5 ? GY_C_RQ_RESET : (enum gy_counter)(GY_C_RQ_1XX + c)));
            out_printf(&o, "\"rq_total\":%lld}", (long long)gy_stats_sum(s, GY_C_RQ_TOTAL));
        }
        out_printf(&o, "}");
    }
    pthread_mutex_unlock(&stats_lock);
    out_printf(&o, "}");
    if (o.failed) {
        free(o.p);
        return NULL;
    }
    return o.p;
}
