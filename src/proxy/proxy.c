/*
 * The main thread of `gyrus proxy`: loads and compiles the mesh file, owns the listening
 * sockets, starts the workers, serves the admin listener, watches the config file and signals,
 * and publishes each new config to the workers. Reloads are all or nothing: an invalid file,
 * or a listener that cannot bind, leaves the running config in place.
 */
#include <errno.h>
#include <malloc.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "filters/rbac.h"
#include "mesh/mesh.h"
#include "core/fsutil.h"
#include "proxy/filter.h"
#include "proxy/health.h"
#include "proxy/hosts.h"
#include "proxy/identity.h"
#include "proxy/outlier.h"
#include "proxy/proxy.h"
#include "proxy/xds.h"
#include "tls/tls.h"

#define LISTEN_BACKLOG 4096

/* ---- config ---- */

static void release_runtime(struct gy_config *cfg)
{
    gy_filters_detach(cfg);
    gy_tls_detach(cfg);
}

static int attach_runtime(struct gy_proxy *p, struct gy_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        struct gy_listener *l = &cfg->listeners[i];
        if ((l->stats = gy_stats_scope(GY_STATS_LISTENER, l->name)) == NULL)
            goto nomem;
        for (size_t a = 0; a < l->naccess_logs; a++) {
            char e[300];
            l->access_logs[a].sink = gy_alog_sink_open(p, l->access_logs[a].path, l->access_logs[a].format, e, sizeof(e));
            if (l->access_logs[a].sink == NULL) {
                snprintf(err, errlen, "listener \"%s\": access_loggers: %s", l->key, e);
                return GY_ECONFIG;
            }
        }
    }
    for (size_t v = 0; v < cfg->nvhosts; v++)
        for (size_t r = 0; r < cfg->vhosts[v].nroutes; r++)
            if ((cfg->vhosts[v].routes[r].stats = gy_stats_scope(GY_STATS_ROUTE, cfg->vhosts[v].routes[r].key)) == NULL)
                goto nomem;
    for (size_t c = 0; c < cfg->nclusters; c++) {
        struct gy_cluster *cl = &cfg->clusters[c];
        struct gy_stats_scope *st = gy_stats_scope(GY_STATS_CLUSTER, cl->name);
        if ((cl->stats = st) == NULL)
            goto nomem;
        for (size_t i = 0; i < cl->ninstances; i++)
            if ((cl->instances[i].state = gy_host_get(cl->name, (const struct sockaddr *)&cl->instances[i].addr,
                                                      cl->instances[i].addrlen)) == NULL)
                goto nomem;
    }
    cfg->on_free = release_runtime;
    int rc = gy_filters_attach(cfg, err, errlen);
    return rc != 0 ? rc : gy_tls_attach(cfg, err, errlen);
nomem:
    snprintf(err, errlen, "out of memory");
    return GY_ENOMEM;
}

/* Validates and compiles mesh objects into a runtime config with stats and log sinks attached. */
static int build_config(struct gy_proxy *p, json_t *objects, struct gy_config **out, char *err, size_t errlen)
{
    struct gy_mesh_error me;
    struct gy_config *cfg = NULL;
    int rc = GY_ECONFIG;

    if (gy_mesh_validate(objects, &me) != 0 || gy_config_compile(objects, p->opt.name, &cfg, &me) != 0) {
        snprintf(err, errlen, "%s", me.msg);
        goto out;
    }
    if (cfg->nlisteners == 0) {
        snprintf(err, errlen, "proxy \"%s\": no listeners (give it listener_keys or domain_keys)", p->opt.name);
        goto out;
    }
    if ((rc = attach_runtime(p, cfg, err, errlen)) != 0)
        goto out;
    cfg->generation = p->generation + 1;
    *out = cfg;
    cfg = NULL;
    rc = 0;
out:
    if (cfg != NULL)
        gy_config_unref(cfg);
    return rc;
}

static int load_config(struct gy_proxy *p, struct gy_config **out, char *err, size_t errlen)
{
    struct gy_mesh_error me;
    json_t *objects = NULL;

    if (stat(p->opt.config_path, &p->config_stat) != 0) {
        snprintf(err, errlen, "%s: %s", p->opt.config_path, strerror(errno));
        return GY_ECONFIG;
    }
    if (gy_mesh_load_file(p->opt.config_path, &objects, &me) != 0) {
        snprintf(err, errlen, "%s", me.msg);
        return GY_ECONFIG;
    }
    int rc = build_config(p, objects, out, err, errlen);
    json_decref(objects);
    return rc;
}

/* ---- listening sockets ---- */

static struct gy_lsock *lsock_take(struct gy_lsock **list, const char *key)
{
    for (struct gy_lsock **pp = list; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->addrkey, key) == 0) {
            struct gy_lsock *s = *pp;
            *pp = s->next;
            s->next = NULL;
            return s;
        }
    }
    return NULL;
}

static void lsock_free(struct gy_lsock *s, unsigned nworkers, bool close_fds)
{
    for (unsigned w = 0; close_fds && w < nworkers; w++)
        if (s->fds[w] >= 0)
            close(s->fds[w]);
    free(s->fds);
    free(s);
}

static struct gy_lsock *lsock_open(struct gy_proxy *p, const struct gy_listener *l, const char *key, char *err,
                                   size_t errlen)
{
    struct gy_lsock *s = calloc(1, sizeof(*s));

    if (s == NULL || (s->fds = malloc(sizeof(int) * p->nworkers)) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(s->addrkey, sizeof(s->addrkey), "%s", key);
    for (unsigned w = 0; w < p->nworkers; w++)
        s->fds[w] = -1;
    for (unsigned w = 0; w < p->nworkers; w++) {
        s->fds[w] = gy_listen((const struct sockaddr *)&l->addr, l->addrlen, true, LISTEN_BACKLOG);
        if (s->fds[w] < 0) {
            snprintf(err, errlen, "listener \"%s\": cannot listen on %s: %s", l->key, key, strerror(errno));
            lsock_free(s, p->nworkers, true);
            return NULL;
        }
    }
    return s;
}

/*
 * Makes the socket table match cfg: keeps sockets of addresses still in use, opens the new
 * ones. On success returns per-worker fd arrays (fds[w][listener]); sockets of addresses no
 * longer used are left to the workers, which close their own when they adopt the config.
 */
static int sync_sockets(struct gy_proxy *p, const struct gy_config *cfg, int ***fds_out, char *err, size_t errlen)
{
    struct gy_lsock *next = NULL, **order = calloc(cfg->nlisteners + 1, sizeof(*order));
    bool *fresh = calloc(cfg->nlisteners + 1, sizeof(*fresh));
    int **fds = calloc(p->nworkers, sizeof(*fds));
    int rc = GY_ECONFIG;
    size_t i;

    if (order == NULL || fresh == NULL || fds == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (i = 0; i < cfg->nlisteners; i++) {
        const struct gy_listener *l = &cfg->listeners[i];
        char key[GY_ADDRSTRLEN];
        gy_addr_format((const struct sockaddr *)&l->addr, key, sizeof(key));
        for (size_t j = 0; j < i; j++) {
            if (strcmp(order[j]->addrkey, key) == 0) {
                snprintf(err, errlen, "listener \"%s\": address %s is also used by listener \"%s\"", l->key, key,
                         cfg->listeners[j].key);
                goto fail;
            }
        }
        order[i] = lsock_take(&p->socks, key);
        if (order[i] == NULL) {
            order[i] = lsock_open(p, l, key, err, errlen);
            if (order[i] == NULL)
                goto fail;
            fresh[i] = true;
        }
    }
    for (unsigned w = 0; w < p->nworkers; w++) {
        if ((fds[w] = malloc(sizeof(int) * (cfg->nlisteners + 1))) == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        for (i = 0; i < cfg->nlisteners; i++)
            fds[w][i] = order[i]->fds[w];
    }
    /* Commit: what is left in p->socks is no longer used; the workers close those fds. */
    while (p->socks != NULL) {
        struct gy_lsock *s = p->socks;
        p->socks = s->next;
        lsock_free(s, p->nworkers, false);
    }
    for (i = cfg->nlisteners; i-- > 0;) {
        order[i]->next = next;
        next = order[i];
    }
    p->socks = next;
    *fds_out = fds;
    fds = NULL;
    rc = 0;
fail:
    if (rc != 0) {
        for (i = 0; order != NULL && i < cfg->nlisteners && order[i] != NULL; i++) {
            if (fresh[i]) {
                lsock_free(order[i], p->nworkers, true);
            } else {
                order[i]->next = p->socks; /* give back */
                p->socks = order[i];
            }
        }
    }
    for (unsigned w = 0; fds != NULL && w < p->nworkers; w++)
        free(fds[w]);
    free(fds);
    free(order);
    free(fresh);
    return rc;
}

/* Circuit-breaker limits live with the cluster's (process-wide) counters. */
static void set_limits(const struct gy_config *cfg)
{
    for (size_t c = 0; c < cfg->nclusters; c++) {
        const struct gy_cluster *cl = &cfg->clusters[c];
        struct gy_stats_scope *st = cl->stats;
        atomic_store(&st->cb_max[GY_CB_CONNECTIONS], cl->cb.max_connections);
        atomic_store(&st->cb_max[GY_CB_PENDING], cl->cb.max_pending_requests);
        atomic_store(&st->cb_max[GY_CB_REQUESTS], cl->cb.max_requests);
        atomic_store(&st->cb_max[GY_CB_RETRIES], cl->cb.max_retries);
    }
}

static void publish(struct gy_proxy *p, struct gy_config *cfg, int **fds)
{
    set_limits(cfg);
    for (unsigned w = 0; w < p->nworkers; w++)
        gy_worker_post_config(&p->workers[w], cfg, fds[w]); /* takes fds[w] */
    free(fds);
    if (p->config != NULL)
        gy_config_unref(p->config);
    p->config = cfg;
    p->generation = cfg->generation;
    gy_health_sync(p, cfg);
    gy_outlier_sync(p, cfg);
}

static void refuse(struct gy_proxy *p, const char *why, const char *err)
{
    p->reload_failures++;
    snprintf(p->last_reload_error, sizeof(p->last_reload_error), "%s", err);
    gy_warn("config (%s) refused, still serving generation %llu: %s", why, (unsigned long long)p->generation, err);
}

/* Binds the new config's listeners and hands it to the workers; refuses it (keeping the running
 * one) if a listener cannot bind. Takes the reference to cfg. */
static int apply_config(struct gy_proxy *p, struct gy_config *cfg, const char *why, char *err, size_t errlen)
{
    int **fds = NULL;

    if (sync_sockets(p, cfg, &fds, err, errlen) != 0) {
        gy_config_unref(cfg);
        refuse(p, why, err);
        return GY_ECONFIG;
    }
    publish(p, cfg, fds);
    p->reloads++;
    p->last_reload_error[0] = '\0';
    gy_info("config generation %llu applied (%s): %zu listeners, %zu clusters", (unsigned long long)p->generation,
            why, cfg->nlisteners, cfg->nclusters);
    return 0;
}

int gy_proxy_reload(struct gy_proxy *p, const char *why)
{
    struct gy_config *cfg = NULL;
    char err[512];

    if (p->draining || p->opt.config_path == NULL)
        return 0;
    if (load_config(p, &cfg, err, sizeof(err)) != 0) {
        refuse(p, why, err);
        return GY_ECONFIG;
    }
    return apply_config(p, cfg, why, err, sizeof(err));
}

/* ---- signals, file watch, drain ---- */

static void drain_over(struct gy_timer *t)
{
    struct gy_proxy *p = GY_CONTAINER_OF(t, struct gy_proxy, drain_timer);

    for (unsigned w = 0; w < p->nworkers; w++)
        gy_worker_post_stop(&p->workers[w]);
}

void gy_proxy_begin_drain(struct gy_proxy *p, const char *why)
{
    if (p->draining) {
        gy_warn("%s while draining: stopping now", why);
        drain_over(&p->drain_timer);
        return;
    }
    p->draining = true;
    p->live = false;
    if (!p->serving) {
        gy_info("%s: stopping (nothing was being served yet)", why);
        gy_loop_stop(&p->loop);
        return;
    }
    gy_info("%s: draining (stop accepting, finish in-flight requests, at most %u ms)", why, p->opt.drain_time_ms);
    gy_timer_stop(&p->loop, &p->watch_timer);
    for (unsigned w = 0; w < p->nworkers; w++)
        gy_worker_post_drain(&p->workers[w]);
    gy_timer_start(&p->loop, &p->drain_timer, p->opt.drain_time_ms);
}

static void signal_io(struct gy_io *io, unsigned events)
{
    struct gy_proxy *p = GY_CONTAINER_OF(io, struct gy_proxy, signal_io);
    struct signalfd_siginfo si;

    (void)events;
    while (read(io->fd, &si, sizeof(si)) == sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGHUP:
            gy_proxy_reload(p, "SIGHUP");
            break;
        case SIGUSR1:
            gy_alog_reopen(p);
            break;
        case SIGTERM:
            gy_proxy_begin_drain(p, "SIGTERM");
            break;
        case SIGINT:
            gy_proxy_begin_drain(p, "SIGINT");
            break;
        default:
            break;
        }
    }
}

static bool stat_changed(const struct stat *a, const struct stat *b)
{
    return a->st_ino != b->st_ino || a->st_dev != b->st_dev || a->st_size != b->st_size ||
           a->st_mtim.tv_sec != b->st_mtim.tv_sec || a->st_mtim.tv_nsec != b->st_mtim.tv_nsec;
}

static void watch_tick(struct gy_timer *t)
{
    struct gy_proxy *p = GY_CONTAINER_OF(t, struct gy_proxy, watch_timer);
    struct stat st;

    if (stat(p->opt.config_path, &st) == 0 && stat_changed(&st, &p->config_stat)) {
        p->config_stat = st; /* a refused file is not retried until it changes again */
        gy_proxy_reload(p, "config file changed");
    }
    gy_timer_start(&p->loop, &p->watch_timer, p->opt.watch_interval_ms);
}

static int setup_signals(struct gy_proxy *p)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    /* Blocked before the workers start, so only the signalfd sees them. */
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return GY_EIO;
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return GY_EIO;
    return gy_io_start(&p->loop, &p->signal_io, fd, GY_IO_READ, signal_io);
}

/* ---- run ---- */

static void describe(const struct gy_proxy *p)
{
    const struct gy_config *cfg = p->config;

    for (size_t i = 0; i < cfg->nlisteners; i++) {
        char addr[GY_ADDRSTRLEN];
        gy_addr_format((const struct sockaddr *)&cfg->listeners[i].addr, addr, sizeof(addr));
        gy_info("listener \"%s\" on %s (%zu domains)", cfg->listeners[i].name, addr, cfg->listeners[i].nvhosts);
    }
}

static void shutdown_all(struct gy_proxy *p)
{
    gy_xds_stop(p->xds);
    p->xds = NULL;
    gy_identity_stop(p->identity);
    p->identity = NULL;
    for (unsigned w = 0; p->serving && w < p->nworkers; w++)
        pthread_join(p->workers[w].thread, NULL);
    for (unsigned w = 0; p->workers != NULL && w < p->nworkers; w++)
        gy_loop_dispose(&p->workers[w].loop);
    free(p->workers);
    gy_admin_stop(p);
    /* Views posted by the poller just before it stopped still hold references. */
    gy_loop_run_once(&p->loop, 0);
    while (p->socks != NULL) {
        struct gy_lsock *s = p->socks;
        p->socks = s->next;
        lsock_free(s, p->nworkers, false); /* the workers closed theirs */
    }
    while (p->sinks != NULL) {
        struct gy_alog_sink *s = p->sinks;
        p->sinks = s->next;
        close(s->fd);
        free(s->path);
        free(s->format);
        free(s);
    }
    if (p->config != NULL)
        gy_config_unref(p->config);
    gy_health_stop(p);
    gy_outlier_stop(p);
    gy_io_stop(&p->signal_io);
    close(p->signal_io.fd);
    gy_loop_dispose(&p->loop);
    gy_stats_shutdown();
    gy_hosts_shutdown();
    gy_rbac_shutdown();
    gy_tls_shutdown();
}

/* Opens the listeners of the first config and starts the workers with it. */
static int start_serving(struct gy_proxy *p, struct gy_config *cfg, char *err, size_t errlen)
{
    int **fds = NULL;

    if (sync_sockets(p, cfg, &fds, err, errlen) != 0) {
        gy_config_unref(cfg);
        return GY_ECONFIG;
    }
    p->workers = calloc(p->nworkers, sizeof(*p->workers));
    if (p->workers == NULL)
        gy_fatal("out of memory");
    for (unsigned w = 0; w < p->nworkers; w++) {
        p->workers[w].id = w;
        p->workers[w].proxy = p;
        /* The first config is queued before the threads start, so they begin with it. */
        if (gy_loop_init(&p->workers[w].loop) != 0)
            gy_fatal("cannot create an event loop: %s", strerror(errno));
    }
    publish(p, cfg, fds);
    for (unsigned w = 0; w < p->nworkers; w++) {
        if (gy_worker_start(&p->workers[w]) != 0)
            gy_fatal("cannot start worker %u: %s", w, strerror(errno));
        p->workers_running++;
    }
    p->serving = true;
    p->live = true;
    describe(p);
    gy_info("proxy \"%s\" serving config generation %llu with %u workers", p->opt.name,
            (unsigned long long)p->generation, p->nworkers);
    return 0;
}

/* ---- dynamic mode: views from the control plane, cached on disk ---- */

static void write_cache(struct gy_proxy *p, json_t *objects, const char *version)
{
    if (p->cache_path[0] == '\0')
        return;
    json_t *doc = json_pack("{s:s,s:s,s:O}", "version", version, "proxy", p->opt.name, "objects", objects);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (text == NULL || gy_write_file_atomic(p->cache_path, text, strlen(text)) != 0)
        gy_warn("cannot write the config cache %s: %s", p->cache_path, strerror(errno));
    free(text);
    json_decref(doc);
}

void gy_proxy_xds_view(struct gy_proxy *p, struct gy_xds *x, json_t *objects, const char *version)
{
    struct gy_config *cfg = NULL;
    char err[512] = "";
    char why[300];
    int rc;

    if (p->draining) {
        json_decref(objects);
        gy_xds_done(x, version, false, "draining");
        return;
    }
    snprintf(why, sizeof(why), "control plane version %s", version);
    rc = build_config(p, objects, &cfg, err, sizeof(err));
    if (rc != 0)
        refuse(p, why, err);
    else if (!p->serving)
        rc = start_serving(p, cfg, err, sizeof(err));
    else
        rc = apply_config(p, cfg, why, err, sizeof(err));
    if (rc == 0) {
        snprintf(p->version, sizeof(p->version), "%s", version);
        write_cache(p, objects, version);
    } else if (!p->serving) {
        gy_warn("first config from the control plane refused: %s; waiting for a valid one", err);
    }
    json_decref(objects);
    gy_xds_done(x, version, rc == 0, err);
}

/* Starts from the cached view when there is one; returns the cached version or NULL. */
static const char *start_from_cache(struct gy_proxy *p)
{
    json_error_t je;
    struct gy_config *cfg = NULL;
    char err[512];
    json_t *doc = json_load_file(p->cache_path, 0, &je);
    const char *version = json_string_value(json_object_get(doc, "version"));
    json_t *objects = json_object_get(doc, "objects");

    if (doc == NULL) {
        if (access(p->cache_path, F_OK) == 0)
            gy_warn("config cache %s unreadable (%s); waiting for the control plane", p->cache_path, je.text);
        return NULL;
    }
    if (version == NULL || !json_is_array(objects) || build_config(p, objects, &cfg, err, sizeof(err)) != 0 ||
        start_serving(p, cfg, err, sizeof(err)) != 0) {
        gy_warn("config cache %s not usable: %s; waiting for the control plane", p->cache_path,
                version == NULL ? "no version" : err);
        json_decref(doc);
        return NULL;
    }
    snprintf(p->version, sizeof(p->version), "%s", version);
    gy_info("serving the cached config version %s until the control plane answers", version);
    json_decref(doc);
    return p->version;
}

static void setup_cache(struct gy_proxy *p)
{
    const char *dir = p->opt.data_dir ? p->opt.data_dir : "/var/lib/gyrus";

    if (gy_mkdir_p(dir) != 0) {
        gy_warn("no config cache: cannot create %s: %s", dir, strerror(errno));
        return;
    }
    snprintf(p->cache_path, sizeof(p->cache_path), "%s/proxy-%s.json", dir, p->opt.name);
}

int gy_proxy_run(const struct gy_proxy_options *opt)
{
    struct gy_proxy *p = calloc(1, sizeof(*p));
    struct gy_config *cfg = NULL;
    char err[512], node[300];

    if (p == NULL)
        gy_fatal("out of memory");
    p->opt = *opt;
    p->nworkers = opt->workers;
    p->started_ms = gy_now_ms();
    signal(SIGPIPE, SIG_IGN);
    gy_raise_nofile();
    /* Streams come and go by the thousand per second: keep freed memory in the workers' arenas
     * instead of giving it back to the kernel and faulting it in again (a third of the HTTP/2
     * request cost was brk/madvise and page faults). Memory use stays bounded by the peak. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 4 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    gy_stats_init(p->nworkers);
    if (gy_loop_init(&p->loop) != 0)
        gy_fatal("cannot create the event loop: %s", strerror(errno));
    p->loop.data = p;
    gy_timer_init(&p->watch_timer, watch_tick);
    gy_timer_init(&p->drain_timer, drain_over);
    if (opt->access_log != NULL &&
        (p->global_sink = gy_alog_sink_open(p, opt->access_log, opt->access_log_format, err, sizeof(err))) == NULL)
        gy_fatal("--access-log: %s", err);
    if (setup_signals(p) != 0)
        gy_fatal("cannot set up signal handling: %s", strerror(errno));
    if (gy_tls_init(&p->loop, opt->fips, err, sizeof(err)) != 0)
        gy_fatal("%s", err);
    if (opt->config_path != NULL) {
        if (load_config(p, &cfg, err, sizeof(err)) != 0 || start_serving(p, cfg, err, sizeof(err)) != 0)
            gy_fatal("%s", err);
        if (opt->watch_interval_ms > 0)
            gy_timer_start(&p->loop, &p->watch_timer, opt->watch_interval_ms);
    } else {
        bool https = strncasecmp(opt->control_url, "https://", 8) == 0;
        if (!https && strncasecmp(opt->control_url, "http://", 7) != 0)
            gy_fatal("--control %s: want an http:// or https:// URL", opt->control_url);
        if (!https && opt->control_ca != NULL)
            gy_fatal("--control-ca is for an https:// control plane, not %s", opt->control_url);
        if (https) { /* the trust anchors must load now; they are read again for each request */
            SSL_CTX *probe = gy_tls_endpoint_client(opt->control_ca, err, sizeof(err));
            if (probe == NULL)
                gy_fatal("--control-ca: %s", err);
            SSL_CTX_free(probe);
        }
        setup_cache(p);
        struct gy_identity_options io = { opt->control_url, opt->control_ca, opt->data_dir ? opt->data_dir : "/var/lib/gyrus",
                                          opt->name, opt->zone, opt->join_token };
        p->identity = gy_identity_start(&io);
        if (p->identity != NULL) /* `secret` (SPIFFE) in views: TLS with the SVID files */
            gy_tls_set_identity(gy_identity_cert_path(p->identity), gy_identity_key_path(p->identity),
                                gy_identity_bundle_path(p->identity));
        const char *cached = p->cache_path[0] ? start_from_cache(p) : NULL;
        if (opt->node == NULL) {
            char host[256] = "localhost";
            gethostname(host, sizeof(host) - 1);
            snprintf(node, sizeof(node), "%s:%d", host, (int)getpid());
        }
        p->xds = gy_xds_start(p, opt->control_url, opt->name, opt->zone, opt->node ? opt->node : node, cached);
        if (p->xds == NULL)
            gy_fatal("cannot start the control plane client");
        if (!p->serving)
            gy_info("waiting for a config from the control plane %s", opt->control_url);
    }
    if (opt->admin_addr != NULL && strcmp(opt->admin_addr, "off") != 0 && gy_admin_start(p, opt->admin_addr) != 0)
        gy_fatal("admin: cannot serve on %s", opt->admin_addr);
    gy_loop_run(&p->loop);
    shutdown_all(p);
    gy_info("stopped");
    free(p);
    return 0;
}
