/* Worker threads: one event loop each, its own listening sockets (SO_REUSEPORT), connections,
 * upstream pools and stat shards. The main thread talks to a worker only through messages. */
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "proxy/proxy.h"

#define ACCEPT_BUDGET 128
#define GY_HOUSEKEEPING_MS 5000
#define GY_TRIM_MIN_BYTES (256 * 1024)

/* Freed nghttp2 blocks a worker keeps for reuse. Sanitizer builds keep none, so that every
 * allocation and free still goes through (and is checked by) the sanitizer. */
#if defined(__SANITIZE_ADDRESS__)
#define GY_H2MEM_CACHE 0
#else
#define GY_H2MEM_CACHE (1024 * 1024)
#endif

struct adopt_msg {
    struct gy_config *cfg; /* a reference for the worker */
    int *fds;              /* per listener of cfg, this worker's socket */
};

uint64_t gy_worker_rand(struct gy_worker *w)
{
    return gy_lb_rand(&w->rng);
}

static void wcfg_free(struct gy_worker *w, struct gy_wcfg *wc)
{
    for (size_t i = 0; wc->clusters != NULL && i < wc->cfg->nclusters; i++) {
        struct gy_wcluster *c = &wc->clusters[i];
        if (c->lb != NULL)
            gy_lb_state_free(c->lb);
        for (size_t h = 0; c->hosts != NULL && h < wc->cfg->clusters[i].ninstances; h++)
            if (c->hosts[h] != NULL)
                gy_upool_put(w, c->hosts[h]);
        free(c->hosts);
        free(c->active);
    }
    free(wc->clusters);
    gy_config_unref(wc->cfg);
    free(wc);
}

void gy_wcfg_release(struct gy_worker *w, struct gy_wcfg *wc)
{
    if (--wc->refs == 0)
        wcfg_free(w, wc);
}

static struct gy_wcfg *wcfg_new(struct gy_worker *w, struct gy_config *cfg)
{
    struct gy_wcfg *wc = calloc(1, sizeof(*wc));

    if (wc == NULL)
        return NULL;
    wc->cfg = cfg;
    wc->refs = 1;
    wc->clusters = calloc(cfg->nclusters ? cfg->nclusters : 1, sizeof(*wc->clusters));
    if (wc->clusters == NULL)
        goto fail;
    for (size_t i = 0; i < cfg->nclusters; i++) {
        const struct gy_cluster *c = &cfg->clusters[i];
        struct gy_wcluster *wcl = &wc->clusters[i];
        size_t n = c->ninstances ? c->ninstances : 1;
        wcl->lb = gy_lb_state_new(c);
        wcl->hosts = calloc(n, sizeof(*wcl->hosts));
        wcl->active = calloc(n, sizeof(*wcl->active));
        if (wcl->lb == NULL || wcl->hosts == NULL || wcl->active == NULL)
            goto fail;
        for (size_t h = 0; h < c->ninstances; h++)
            if ((wcl->hosts[h] = gy_upool_get(w, c, &c->instances[h], c->stats)) == NULL)
                goto fail;
    }
    return wc;
fail:
    gy_config_ref(cfg); /* wcfg_free drops one */
    wcfg_free(w, wc);
    return NULL;
}

/* ---- listeners ---- */

static void accept_more(struct gy_wlistener *wl)
{
    struct sockaddr_storage peer;
    int one = 1;

    for (int i = 0; i < ACCEPT_BUDGET; i++) {
        socklen_t len = sizeof(peer);
        int fd = accept4(wl->io.fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                gy_warn("listener %s: cannot accept: %s; pausing 100 ms", wl->addrkey, strerror(errno));
                gy_timer_start(&wl->w->loop, &wl->retry, 100);
            }
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        gy_dconn_accept(wl, fd, &peer);
    }
    gy_task_schedule(&wl->w->loop, &wl->more);
}

static void accept_cb(struct gy_io *io, unsigned events)
{
    (void)events;
    accept_more(GY_CONTAINER_OF(io, struct gy_wlistener, io));
}

static void accept_task(struct gy_task *t)
{
    accept_more(GY_CONTAINER_OF(t, struct gy_wlistener, more));
}

static void accept_retry(struct gy_timer *t)
{
    accept_more(GY_CONTAINER_OF(t, struct gy_wlistener, retry));
}

static void wlistener_close(struct gy_wlistener *wl)
{
    gy_io_stop(&wl->io);
    close(wl->io.fd);
    gy_task_cancel(&wl->more);
    gy_timer_stop(&wl->w->loop, &wl->retry);
    gy_list_remove(&wl->link);
    /* An event for it may still be queued in this batch (a drain message came first): free after it. */
    gy_list_insert_tail(&wl->w->dead_listeners, &wl->link);
    gy_task_schedule(&wl->w->loop, &wl->w->reap);
}

static struct gy_wlistener *wlistener_find(struct gy_worker *w, const char *key)
{
    for (struct gy_list *n = w->listeners.next; n != &w->listeners; n = n->next) {
        struct gy_wlistener *wl = GY_CONTAINER_OF(n, struct gy_wlistener, link);
        if (strcmp(wl->addrkey, key) == 0)
            return wl;
    }
    return NULL;
}

static void sync_listeners(struct gy_worker *w, struct gy_config *cfg, const int *fds)
{
    struct gy_list keep;

    gy_list_init(&keep);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        char key[GY_ADDRSTRLEN];
        gy_addr_format((const struct sockaddr *)&cfg->listeners[i].addr, key, sizeof(key));
        struct gy_wlistener *wl = wlistener_find(w, key);
        if (wl == NULL) {
            if (fds[i] < 0 || (wl = calloc(1, sizeof(*wl))) == NULL)
                continue;
            wl->w = w;
            snprintf(wl->addrkey, sizeof(wl->addrkey), "%s", key);
            gy_task_init(&wl->more, accept_task);
            gy_timer_init(&wl->retry, accept_retry);
            gy_list_init(&wl->link);
            if (gy_io_start(&w->loop, &wl->io, fds[i], GY_IO_READ, accept_cb) != 0) {
                gy_error("worker %u: cannot watch listener %s", w->id, key);
                close(fds[i]);
                free(wl);
                continue;
            }
        } else {
            gy_list_remove(&wl->link);
        }
        wl->cfg = &cfg->listeners[i];
        gy_list_insert_tail(&keep, &wl->link);
    }
    /* Listeners no longer in the config stop accepting; their connections finish. */
    while (!gy_list_empty(&w->listeners))
        wlistener_close(GY_CONTAINER_OF(w->listeners.next, struct gy_wlistener, link));
    gy_list_splice_tail(&w->listeners, &keep);
}

/* Connections whose listener the new config removes, or changes in what a connection was set
 * up with, are retired at once (HTTP/2: GOAWAY now); the others follow the new config. */
static void retire_connections(struct gy_worker *w, const struct gy_config *cfg)
{
    const struct gy_listener *last = NULL; /* connections of one listener usually come together */
    bool retire = false;

    for (struct gy_list *n = w->conns.next, *next; n != &w->conns; n = next) {
        struct gy_dconn *dc = GY_CONTAINER_OF(n, struct gy_dconn, link);
        next = n->next;
        if (dc->lcfg != last) {
            const struct gy_listener *now = NULL;
            for (size_t i = 0; i < cfg->nlisteners && now == NULL; i++)
                if (strcmp(cfg->listeners[i].key, dc->lcfg->key) == 0)
                    now = &cfg->listeners[i];
            last = dc->lcfg;
            retire = now == NULL || (now != dc->lcfg && !gy_listener_same_setup(dc->lcfg, now));
        }
        if (retire)
            gy_dconn_retire(dc);
    }
}

/* ---- messages from the main thread ---- */

static void adopt(struct gy_loop *loop, void *arg)
{
    struct gy_worker *w = loop->data;
    struct adopt_msg *m = arg;
    struct gy_wcfg *wc = w->stopping ? NULL : wcfg_new(w, m->cfg);

    if (wc == NULL) {
        if (!w->stopping)
            gy_error("worker %u: out of memory adopting config generation %llu; keeping the previous one", w->id,
                     (unsigned long long)m->cfg->generation);
        for (size_t i = 0; i < m->cfg->nlisteners; i++) {
            char key[GY_ADDRSTRLEN];
            gy_addr_format((const struct sockaddr *)&m->cfg->listeners[i].addr, key, sizeof(key));
            if (m->fds[i] >= 0 && wlistener_find(w, key) == NULL)
                close(m->fds[i]);
        }
        gy_config_unref(m->cfg);
        free(m->fds);
        free(m);
        return;
    }
    if (!w->draining)
        sync_listeners(w, m->cfg, m->fds);
    struct gy_wcfg *old = w->wcfg;
    w->wcfg = wc;
    if (old != NULL) {
        if (!w->draining)
            retire_connections(w, m->cfg);
        gy_wcfg_release(w, old);
    }
    free(m->fds);
    free(m);
}

void gy_worker_post_config(struct gy_worker *w, struct gy_config *cfg, int *fds)
{
    struct adopt_msg *m = malloc(sizeof(*m));

    if (m == NULL) {
        gy_error("worker %u: cannot post config generation %llu", w->id, (unsigned long long)cfg->generation);
        free(fds);
        return;
    }
    m->cfg = gy_config_ref(cfg);
    m->fds = fds;
    if (gy_loop_post(&w->loop, adopt, m) != 0) {
        gy_error("worker %u: cannot post config generation %llu", w->id, (unsigned long long)cfg->generation);
        gy_config_unref(cfg);
        free(fds);
        free(m);
    }
}

static void maybe_exit(struct gy_worker *w)
{
    if ((w->draining && w->nconns == 0 && w->nshadows == 0) || w->stopping)
        gy_loop_stop(&w->loop);
}

static void drain(struct gy_loop *loop, void *arg)
{
    struct gy_worker *w = loop->data;

    (void)arg;
    w->draining = true;
    while (!gy_list_empty(&w->listeners))
        wlistener_close(GY_CONTAINER_OF(w->listeners.next, struct gy_wlistener, link));
    for (struct gy_list *n = w->conns.next, *next; n != &w->conns; n = next) {
        next = n->next;
        gy_dconn_drain(GY_CONTAINER_OF(n, struct gy_dconn, link));
    }
    gy_upools_close_idle(w);
    maybe_exit(w);
}

void gy_worker_post_drain(struct gy_worker *w)
{
    gy_loop_post(&w->loop, drain, NULL);
}

static void stop(struct gy_loop *loop, void *arg)
{
    struct gy_worker *w = loop->data;

    (void)arg;
    w->stopping = true;
    if (w->nconns > 0)
        gy_warn("worker %u: drain time is over; closing %zu connections", w->id, w->nconns);
    gy_loop_stop(&w->loop);
}

void gy_worker_post_stop(struct gy_worker *w)
{
    gy_loop_post(&w->loop, stop, NULL);
}

/* ---- lifecycle ---- */

static void reap(struct gy_task *t)
{
    struct gy_worker *w = GY_CONTAINER_OF(t, struct gy_worker, reap);

    while (!gy_list_empty(&w->dead)) {
        struct gy_uconn *uc = GY_CONTAINER_OF(w->dead.next, struct gy_uconn, link);
        gy_list_remove(&uc->link);
        free(uc);
    }
    while (!gy_list_empty(&w->dead_conns)) {
        struct gy_dconn *dc = GY_CONTAINER_OF(w->dead_conns.next, struct gy_dconn, link);
        gy_list_remove(&dc->link);
        gy_dconn_free(dc);
    }
    while (!gy_list_empty(&w->dead_listeners)) {
        struct gy_wlistener *wl = GY_CONTAINER_OF(w->dead_listeners.next, struct gy_wlistener, link);
        gy_list_remove(&wl->link);
        free(wl);
    }
    maybe_exit(w);
}

/* Every few seconds: the buffers and nghttp2 blocks cached during a burst of traffic and unused
 * since go back to the allocator, and the allocator gives its free pages back to the system. */
static void housekeeping(struct gy_timer *t)
{
    struct gy_worker *w = GY_CONTAINER_OF(t, struct gy_worker, housekeeping);
    size_t freed = gy_bufpool_trim(&w->bufs) + gy_memcache_trim(&w->h2mem);

    if (freed >= GY_TRIM_MIN_BYTES)
        malloc_trim(0);
    atomic_store_explicit(&w->cached_bytes, w->bufs.nfree * GY_BUF_BLOCK + w->h2mem.cached_bytes,
                          memory_order_relaxed);
    gy_timer_start(&w->loop, t, GY_HOUSEKEEPING_MS);
}

static void alog_flush_task(struct gy_task *t)
{
    gy_alog_flush(GY_CONTAINER_OF(t, struct gy_worker, alog_flush));
}

static void worker_cleanup(struct gy_worker *w)
{
    w->stopping = true;
    while (!gy_list_empty(&w->listeners))
        wlistener_close(GY_CONTAINER_OF(w->listeners.next, struct gy_wlistener, link));
    while (!gy_list_empty(&w->conns))
        gy_dconn_close(GY_CONTAINER_OF(w->conns.next, struct gy_dconn, link));
    gy_shadows_close(w);
    gy_upools_close_idle(w);
    if (w->wcfg != NULL) {
        gy_wcfg_release(w, w->wcfg);
        w->wcfg = NULL;
    }
    gy_alog_flush(w);
    reap(&w->reap);
    /* Messages still queued (a config posted during shutdown) hold config references. */
    gy_loop_run_once(&w->loop, 0);
    reap(&w->reap);
    for (size_t i = 0; i < w->nalog; i++)
        free(w->alog[i].data);
    free(w->alog);
    free(w->pool_table);
    free(w->hdrs);
    gy_bufpool_dispose(&w->bufs);
    gy_memcache_dispose(&w->h2mem);
}

static void worker_exited(struct gy_loop *loop, void *arg)
{
    struct gy_proxy *p = loop->data;

    (void)arg;
    if (--p->workers_running == 0)
        gy_loop_stop(&p->loop);
}

static void *worker_main(void *arg)
{
    struct gy_worker *w = arg;

    gy_timer_start(&w->loop, &w->housekeeping, GY_HOUSEKEEPING_MS);
    gy_loop_run(&w->loop);
    gy_timer_stop(&w->loop, &w->housekeeping);
    worker_cleanup(w);
    gy_loop_post(&w->proxy->loop, worker_exited, NULL);
    return NULL;
}

int gy_worker_start(struct gy_worker *w)
{
    /* w->loop was initialised by the main thread, which may already have posted to it. */
    w->loop.data = w;
    gy_bufpool_init(&w->bufs, 1024);
    /* GYRUS_H2_BLOCK_CACHE (bytes) overrides the default: tests turn the cache on under ASan. */
    const char *cache = getenv("GYRUS_H2_BLOCK_CACHE");
    gy_memcache_init(&w->h2mem, cache != NULL ? strtoull(cache, NULL, 10) : GY_H2MEM_CACHE);
    gy_list_init(&w->listeners);
    gy_list_init(&w->conns);
    gy_list_init(&w->dead);
    gy_list_init(&w->dead_conns);
    gy_list_init(&w->dead_listeners);
    gy_list_init(&w->shadows);
    gy_task_init(&w->reap, reap);
    gy_task_init(&w->alog_flush, alog_flush_task);
    gy_timer_init(&w->housekeeping, housekeeping);
    w->rng = (gy_now_ns() ^ ((uint64_t)w->id << 32) ^ (uint64_t)(uintptr_t)w) | 1;
    w->hdrs = calloc(GY_MAX_REQ_HEADERS, sizeof(*w->hdrs));
    if (w->hdrs == NULL)
        return GY_ENOMEM;
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        return GY_EIO;
    return 0;
}
