#include "proxy/hosts.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

static pthread_mutex_t hosts_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gy_host *hosts;

struct gy_host *gy_host_get(const char *cluster, const struct sockaddr *addr, socklen_t len)
{
    char key[GY_ADDRSTRLEN];
    struct gy_host *h;

    gy_addr_format(addr, key, sizeof(key));
    pthread_mutex_lock(&hosts_lock);
    for (h = hosts; h != NULL; h = h->next)
        if (strcmp(h->addr_str, key) == 0 && strcmp(h->cluster, cluster) == 0)
            goto out;
    h = calloc(1, sizeof(*h));
    if (h == NULL || (h->cluster = strdup(cluster)) == NULL) {
        free(h);
        h = NULL;
        goto out;
    }
    memcpy(h->addr_str, key, sizeof(key));
    memcpy(&h->addr, addr, len);
    h->addrlen = len;
    h->next = hosts;
    hosts = h;
out:
    pthread_mutex_unlock(&hosts_lock);
    return h;
}

void gy_hosts_shutdown(void)
{
    pthread_mutex_lock(&hosts_lock);
    while (hosts != NULL) {
        struct gy_host *h = hosts;
        hosts = h->next;
        free(h->cluster);
        free(h);
    }
    pthread_mutex_unlock(&hosts_lock);
}

void gy_hosts_foreach(void (*fn)(struct gy_host *h, void *arg), void *arg)
{
    pthread_mutex_lock(&hosts_lock);
    for (struct gy_host *h = hosts; h != NULL; h = h->next)
        fn(h, arg);
    pthread_mutex_unlock(&hosts_lock);
}

static void add(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

struct crossing {
    struct gy_proxy *proxy;
    struct gy_host *host;
    char cluster[256];
    bool gateway;
};

static void crossed_on_main(struct gy_loop *loop, void *arg)
{
    struct crossing *x = arg;
    struct gy_proxy *p = x->proxy;
    const struct gy_cluster *c = p->config ? gy_config_cluster_by_name(p->config, x->cluster) : NULL;

    (void)loop;
    if (c != NULL && c->outlier.enabled)
        gy_outlier_crossed(p, x->host, c, x->gateway);
    atomic_store_explicit(&x->host->reported, 0, memory_order_relaxed);
    free(x);
}

void gy_host_outcome(struct gy_proxy *p, struct gy_host *h, const struct gy_cluster *c, int status)
{
    const struct gy_outlier_detection *od = &c->outlier;

    if (!od->enabled)
        return;
    bool failure = status == 0 || status >= 500;
    bool gateway = status == 0 || status == 502 || status == 503 || status == 504;
    add(&h->rq_total);
    if (!failure) {
        add(&h->rq_success);
        atomic_store_explicit(&h->consecutive_5xx, 0, memory_order_relaxed);
        atomic_store_explicit(&h->consecutive_gateway, 0, memory_order_relaxed);
        return;
    }
    uint32_t n5 = atomic_fetch_add_explicit(&h->consecutive_5xx, 1, memory_order_relaxed) + 1;
    uint32_t ng = gateway ? atomic_fetch_add_explicit(&h->consecutive_gateway, 1, memory_order_relaxed) + 1
                          : (atomic_store_explicit(&h->consecutive_gateway, 0, memory_order_relaxed), 0u);
    bool hit5 = od->consecutive_5xx > 0 && n5 >= od->consecutive_5xx;
    bool hitg = od->consecutive_gateway > 0 && ng >= od->consecutive_gateway;
    if (!hit5 && !hitg)
        return;
    /* One message at a time per host: the main thread decides (ejection limits are cluster-wide). */
    uint32_t expected = 0;
    if (!atomic_compare_exchange_strong(&h->reported, &expected, 1))
        return;
    struct crossing *x = malloc(sizeof(*x));
    if (x == NULL) {
        atomic_store_explicit(&h->reported, 0, memory_order_relaxed);
        return;
    }
    x->proxy = p;
    x->host = h;
    x->gateway = !hit5;
    snprintf(x->cluster, sizeof(x->cluster), "%s", c->name);
    if (gy_loop_post(&p->loop, crossed_on_main, x) != 0) {
        atomic_store_explicit(&h->reported, 0, memory_order_relaxed);
        free(x);
    }
}
