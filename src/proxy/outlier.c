/*
 * Outlier detection on the main thread: one detector per cluster with outlier_detection, holding
 * the cluster's hosts (shared gy_host objects), an interval timer for success-rate sweeps and
 * for decaying the ejection multiplier, and an un-ejection timer armed for the earliest return.
 */
#include "proxy/outlier.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/time.h"
#include "proxy/proxy.h"

#define MAX_EJECTION_MS 300000u /* Envoy's default max_ejection_time; the cap is max(this, base) */

struct gy_outlier_state {
    struct gy_proxy *proxy;
    struct gy_list clusters;        /* struct detector */
    uint64_t rng;
};

struct detector {
    struct gy_list link;
    struct gy_outlier_state *os;
    char *name;
    struct gy_outlier_detection od;
    struct gy_host **hosts;         /* distinct hosts of the cluster */
    double *rate;                   /* scratch for sweeps, parallel to hosts */
    size_t nhosts;
    struct gy_timer interval;       /* success-rate sweep, multiplier decay */
    struct gy_timer uneject;        /* the earliest ejected_until_ms */
    bool seen;
};

/* ---- helpers ---- */

static uint64_t rand_below(struct gy_outlier_state *os, uint64_t n)
{
    uint64_t x = os->rng; /* xorshift64* */

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    os->rng = x;
    return n == 0 ? 0 : (x * 0x2545F4914F6CDD1Dull) % n;
}

static uint64_t now_ms(const struct detector *d)
{
    return gy_loop_now(&d->os->proxy->loop);
}

static bool is_ejected(const struct gy_host *h)
{
    return (atomic_load_explicit(&h->flags, memory_order_relaxed) & GY_HOST_EJECTED) != 0;
}

static struct detector *detector_find(struct gy_outlier_state *os, const char *name)
{
    for (struct gy_list *n = os->clusters.next; n != &os->clusters; n = n->next) {
        struct detector *d = GY_CONTAINER_OF(n, struct detector, link);
        if (strcmp(d->name, name) == 0)
            return d;
    }
    return NULL;
}

static bool has_host(const struct detector *d, const struct gy_host *h)
{
    for (size_t i = 0; i < d->nhosts; i++)
        if (d->hosts[i] == h)
            return true;
    return false;
}

static size_t count_ejected(const struct detector *d)
{
    size_t n = 0;

    for (size_t i = 0; i < d->nhosts; i++)
        n += is_ejected(d->hosts[i]);
    return n;
}

/* ---- ejection and return ---- */

static void arm_uneject(struct detector *d)
{
    uint64_t earliest = UINT64_MAX, now = now_ms(d);

    for (size_t i = 0; i < d->nhosts; i++)
        if (is_ejected(d->hosts[i]) && d->hosts[i]->ejected_until_ms < earliest)
            earliest = d->hosts[i]->ejected_until_ms;
    if (earliest == UINT64_MAX)
        gy_timer_stop(&d->os->proxy->loop, &d->uneject);
    else
        gy_timer_start(&d->os->proxy->loop, &d->uneject, earliest > now ? earliest - now : 0);
}

static void release(struct gy_host *h)
{
    atomic_fetch_and_explicit(&h->flags, ~GY_HOST_EJECTED, memory_order_relaxed);
    atomic_store_explicit(&h->consecutive_5xx, 0, memory_order_relaxed);
    atomic_store_explicit(&h->consecutive_gateway, 0, memory_order_relaxed);
}

static void uneject_due(struct gy_timer *t)
{
    struct detector *d = GY_CONTAINER_OF(t, struct detector, uneject);
    uint64_t now = now_ms(d);

    for (size_t i = 0; i < d->nhosts; i++) {
        struct gy_host *h = d->hosts[i];
        if (is_ejected(h) && h->ejected_until_ms <= now) {
            release(h);
            gy_info("outlier detection: cluster \"%s\" host %s returns to service", d->name, h->addr_str);
        }
    }
    arm_uneject(d);
}

/* Ejects h unless max_ejection_percent forbids it; returns true if it did. */
static bool eject(struct detector *d, struct gy_host *h, const char *reason)
{
    size_t ejected = count_ejected(d);
    uint64_t base = d->od.base_ejection_ms, cap = base > MAX_EJECTION_MS ? base : MAX_EJECTION_MS;
    uint64_t max_mult = base > 0 ? cap / base : 1;

    if (ejected > 0 && (ejected + 1) * 100 > (uint64_t)d->od.max_ejection_percent * d->nhosts) {
        gy_info("outlier detection: cluster \"%s\" host %s not ejected (%s): %zu of %zu hosts already are, "
                "max_ejection_percent %u", d->name, h->addr_str, reason, ejected, d->nhosts, d->od.max_ejection_percent);
        return false;
    }
    if (h->ejections < max_mult)
        h->ejections++;
    uint64_t ms = base * h->ejections;
    h->ejected_until_ms = now_ms(d) + ms;
    atomic_fetch_or_explicit(&h->flags, GY_HOST_EJECTED, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->ejections_total, 1, memory_order_relaxed);
    atomic_store_explicit(&h->consecutive_5xx, 0, memory_order_relaxed);
    atomic_store_explicit(&h->consecutive_gateway, 0, memory_order_relaxed);
    gy_info("outlier detection: cluster \"%s\" host %s ejected for %llu ms (%s; ejection multiplier %u)", d->name,
            h->addr_str, (unsigned long long)ms, reason, h->ejections);
    arm_uneject(d);
    return true;
}

void gy_outlier_crossed(struct gy_proxy *p, struct gy_host *h, const struct gy_cluster *c, bool gateway)
{
    struct detector *d = p->outlier != NULL ? detector_find(p->outlier, c->name) : NULL;
    const char *reason = gateway ? "consecutive gateway failures" : "consecutive 5xx";

    atomic_store_explicit(&h->consecutive_5xx, 0, memory_order_relaxed);
    atomic_store_explicit(&h->consecutive_gateway, 0, memory_order_relaxed);
    if (d == NULL || !has_host(d, h) || is_ejected(h))
        return;
    uint32_t enforcing = gateway ? d->od.enforcing_gateway : d->od.enforcing_5xx;
    if (rand_below(d->os, 100) >= enforcing) {
        gy_debug("outlier detection: cluster \"%s\" host %s: %s detected, not enforced (%u%%)", d->name, h->addr_str,
                 reason, enforcing);
        return;
    }
    eject(d, h, reason);
}

/* ---- success rate ---- */

static int sweep(struct detector *d)
{
    const struct gy_outlier_detection *od = &d->od;
    size_t qualifying = 0;
    double sum = 0, var = 0;
    int ejected = 0;

    for (size_t i = 0; i < d->nhosts; i++) {
        struct gy_host *h = d->hosts[i];
        uint64_t total = atomic_load_explicit(&h->rq_total, memory_order_relaxed);
        uint64_t ok = atomic_load_explicit(&h->rq_success, memory_order_relaxed);
        uint64_t dt = total - h->sr_total_seen, dok = ok - h->sr_success_seen;
        h->sr_total_seen = total;
        h->sr_success_seen = ok;
        d->rate[i] = -1;
        if (is_ejected(h) || dt == 0 || dt < od->sr_request_volume)
            continue;
        d->rate[i] = 100.0 * (double)(dok > dt ? dt : dok) / (double)dt;
        sum += d->rate[i];
        qualifying++;
    }
    if (qualifying == 0 || qualifying < od->sr_minimum_hosts)
        return 0;
    double mean = sum / (double)qualifying;
    for (size_t i = 0; i < d->nhosts; i++)
        if (d->rate[i] >= 0)
            var += (d->rate[i] - mean) * (d->rate[i] - mean);
    double threshold = mean - sqrt(var / (double)qualifying) * od->sr_stdev_factor / 1000.0;
    for (size_t i = 0; i < d->nhosts; i++) {
        if (d->rate[i] < 0 || d->rate[i] >= threshold)
            continue;
        if (rand_below(d->os, 100) >= od->enforcing_sr) {
            gy_debug("outlier detection: cluster \"%s\" host %s: success rate %.1f%% below %.1f%%, not enforced",
                     d->name, d->hosts[i]->addr_str, d->rate[i], threshold);
            continue;
        }
        char reason[96];
        snprintf(reason, sizeof(reason), "success rate %.1f%% below %.1f%%", d->rate[i], threshold);
        ejected += eject(d, d->hosts[i], reason);
    }
    return ejected;
}

/* A host that stayed in service for a whole interval since it returned: one ejection less. */
static void decay(struct detector *d)
{
    uint64_t now = now_ms(d);

    for (size_t i = 0; i < d->nhosts; i++) {
        struct gy_host *h = d->hosts[i];
        if (h->ejections > 0 && !is_ejected(h) && now >= h->ejected_until_ms + d->od.interval_ms)
            h->ejections--;
    }
}

static void interval_tick(struct gy_timer *t)
{
    struct detector *d = GY_CONTAINER_OF(t, struct detector, interval);

    sweep(d);
    decay(d);
    gy_timer_start(&d->os->proxy->loop, &d->interval, d->od.interval_ms);
}

int gy_outlier_sweep(struct gy_proxy *p, const char *cluster)
{
    struct detector *d = p->outlier != NULL ? detector_find(p->outlier, cluster) : NULL;

    return d != NULL ? sweep(d) : -1;
}

/* ---- config sync ---- */

static void forget(struct detector *d, struct gy_host *h)
{
    if (is_ejected(h))
        gy_info("outlier detection: cluster \"%s\" host %s is no longer watched: un-ejected", d->name, h->addr_str);
    release(h);
    h->ejections = 0;
    h->ejected_until_ms = 0;
}

static void detector_free(struct detector *d, bool release_hosts)
{
    for (size_t i = 0; release_hosts && i < d->nhosts; i++)
        forget(d, d->hosts[i]);
    gy_timer_stop(&d->os->proxy->loop, &d->interval);
    gy_timer_stop(&d->os->proxy->loop, &d->uneject);
    gy_list_remove(&d->link);
    free(d->hosts);
    free(d->rate);
    free(d->name);
    free(d);
}

/* Replaces the detector's hosts with the cluster's; returns 0 or -1 (out of memory: unchanged). */
static int set_hosts(struct detector *d, const struct gy_cluster *c)
{
    struct gy_host **hosts = calloc(c->ninstances ? c->ninstances : 1, sizeof(*hosts));
    double *rate = calloc(c->ninstances ? c->ninstances : 1, sizeof(*rate));
    size_t n = 0;

    if (hosts == NULL || rate == NULL) {
        free(hosts);
        free(rate);
        return -1;
    }
    for (size_t i = 0; i < c->ninstances; i++) {
        const struct gy_instance *in = &c->instances[i];
        struct gy_host *h = gy_host_get(c->name, (const struct sockaddr *)&in->addr, in->addrlen);
        bool dup = false;
        for (size_t k = 0; h != NULL && k < n; k++)
            dup = dup || hosts[k] == h;
        if (h == NULL || dup)
            continue;
        if (!has_host(d, h)) { /* new here: its success rate counts from now */
            h->sr_total_seen = atomic_load_explicit(&h->rq_total, memory_order_relaxed);
            h->sr_success_seen = atomic_load_explicit(&h->rq_success, memory_order_relaxed);
        }
        hosts[n++] = h;
    }
    for (size_t i = 0; i < d->nhosts; i++) {
        bool stays = false;
        for (size_t k = 0; k < n && !stays; k++)
            stays = hosts[k] == d->hosts[i];
        if (!stays)
            forget(d, d->hosts[i]);
    }
    free(d->hosts);
    free(d->rate);
    d->hosts = hosts;
    d->rate = rate;
    d->nhosts = n;
    return 0;
}

static struct detector *detector_new(struct gy_outlier_state *os, const char *name)
{
    struct detector *d = calloc(1, sizeof(*d));

    if (d == NULL || (d->name = strdup(name)) == NULL) {
        free(d);
        return NULL;
    }
    d->os = os;
    gy_timer_init(&d->interval, interval_tick);
    gy_timer_init(&d->uneject, uneject_due);
    gy_list_insert_tail(&os->clusters, &d->link);
    return d;
}

static void sync_cluster(struct gy_outlier_state *os, const struct gy_cluster *c)
{
    struct detector *d = detector_find(os, c->name);
    bool fresh = d == NULL;

    if (fresh && (d = detector_new(os, c->name)) == NULL) {
        gy_error("outlier detection: out of memory; cluster \"%s\" is not watched", c->name);
        return;
    }
    d->seen = true;
    if (set_hosts(d, c) != 0) {
        gy_error("outlier detection: out of memory; cluster \"%s\" keeps its previous hosts", c->name);
        if (fresh)
            detector_free(d, false);
        return;
    }
    if (fresh || d->od.interval_ms != c->outlier.interval_ms)
        gy_timer_start(&os->proxy->loop, &d->interval, c->outlier.interval_ms);
    d->od = c->outlier;
    arm_uneject(d);
}

void gy_outlier_sync(struct gy_proxy *p, const struct gy_config *cfg)
{
    struct gy_outlier_state *os = p->outlier;

    if (os == NULL) {
        bool any = false;
        for (size_t i = 0; cfg != NULL && i < cfg->nclusters; i++)
            any = any || cfg->clusters[i].outlier.enabled;
        if (!any)
            return;
        if ((os = p->outlier = calloc(1, sizeof(*os))) == NULL) {
            gy_error("outlier detection: out of memory; hosts are not watched");
            return;
        }
        os->proxy = p;
        gy_list_init(&os->clusters);
        os->rng = (gy_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)os) | 1;
    }
    for (struct gy_list *n = os->clusters.next; n != &os->clusters; n = n->next)
        GY_CONTAINER_OF(n, struct detector, link)->seen = false;
    for (size_t i = 0; cfg != NULL && i < cfg->nclusters; i++)
        if (cfg->clusters[i].outlier.enabled)
            sync_cluster(os, &cfg->clusters[i]);
    struct gy_list *n = os->clusters.next;
    while (n != &os->clusters) {
        struct detector *d = GY_CONTAINER_OF(n, struct detector, link);
        n = n->next;
        if (!d->seen)
            detector_free(d, true);
    }
}

void gy_outlier_stop(struct gy_proxy *p)
{
    struct gy_outlier_state *os = p->outlier;

    if (os == NULL)
        return;
    while (!gy_list_empty(&os->clusters))
        detector_free(GY_CONTAINER_OF(os->clusters.next, struct detector, link), false);
    free(os);
    p->outlier = NULL;
}
