/*
 * The admin listener (loopback by default), served by the main thread: /ready, /stats,
 * /stats/prometheus (/metrics), /clusters, /config_dump, /quitquitquit. One request per
 * connection; answers are built whole (they are small) and the connection closes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "filters/rbac.h"
#include "proxy/health.h"
#include "proxy/identity.h"
#include "proxy/proxy.h"
#include "tls/tls.h"

#define ADMIN_MAX_REQ 16384

struct gy_admin {
    struct gy_io io;
    struct gy_proxy *proxy;
    struct gy_list conns;
    char addr[GY_ADDRSTRLEN];
};

struct admin_conn {
    struct gy_io io;
    struct gy_list link;
    struct gy_proxy *proxy;
    struct gy_timer timer;
    char req[ADMIN_MAX_REQ];
    size_t req_len;
    char *resp;
    size_t resp_len, resp_off;
    bool done;
};

static void conn_close(struct admin_conn *c)
{
    gy_list_remove(&c->link);
    gy_io_stop(&c->io);
    close(c->io.fd);
    gy_timer_stop(&c->proxy->loop, &c->timer);
    free(c->resp);
    free(c);
}

static void respond(struct admin_conn *c, int status, const char *ctype, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\nconnection: close\r\n"
                     "cache-control: no-cache\r\n\r\n",
                     status, gy_h1_reason(status), ctype, len);

    c->resp = malloc((size_t)n + len);
    if (c->resp == NULL) {
        c->done = true;
        return;
    }
    memcpy(c->resp, head, (size_t)n);
    memcpy(c->resp + n, body, len);
    c->resp_len = (size_t)n + len;
    c->resp_off = 0;
}

static void respond_text(struct admin_conn *c, int status, const char *text)
{
    respond(c, status, "text/plain; charset=utf-8", text, strlen(text));
}

static void respond_owned(struct admin_conn *c, const char *ctype, char *body)
{
    if (body == NULL) {
        respond_text(c, 500, "out of memory\n");
        return;
    }
    respond(c, 200, ctype, body, strlen(body));
    free(body);
}

static long rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * sysconf(_SC_PAGESIZE);
}

static char *server_metrics(struct gy_proxy *p)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    if (f == NULL)
        return NULL;
    fprintf(f, "# HELP gyrus_server_live 1 while serving, 0 while draining.\n# TYPE gyrus_server_live gauge\n"
               "gyrus_server_live %d\n", p->live ? 1 : 0);
    fprintf(f, "# HELP gyrus_server_uptime_seconds Seconds since start.\n# TYPE gyrus_server_uptime_seconds gauge\n"
               "gyrus_server_uptime_seconds %llu\n", (unsigned long long)((gy_now_ms() - p->started_ms) / 1000));
    fprintf(f, "# HELP gyrus_server_workers Worker threads.\n# TYPE gyrus_server_workers gauge\n"
               "gyrus_server_workers %u\n", p->nworkers);
    fprintf(f, "# HELP gyrus_config_generation Generation of the config being served.\n"
               "# TYPE gyrus_config_generation gauge\ngyrus_config_generation %llu\n",
            (unsigned long long)p->generation);
    fprintf(f, "# HELP gyrus_config_reloads_total Configs applied after the first.\n"
               "# TYPE gyrus_config_reloads_total counter\ngyrus_config_reloads_total %llu\n",
            (unsigned long long)p->reloads);
    fprintf(f, "# HELP gyrus_config_reload_failures_total Reloads refused (invalid config).\n"
               "# TYPE gyrus_config_reload_failures_total counter\ngyrus_config_reload_failures_total %llu\n",
            (unsigned long long)p->reload_failures);
    fprintf(f, "# HELP process_resident_memory_bytes Resident memory.\n# TYPE process_resident_memory_bytes gauge\n"
               "process_resident_memory_bytes %ld\n", rss_bytes());
    size_t cached = 0;
    for (unsigned i = 0; i < p->nworkers; i++)
        cached += atomic_load_explicit(&p->workers[i].cached_bytes, memory_order_relaxed);
    fprintf(f, "# HELP gyrus_worker_cached_bytes Freed buffers and HTTP/2 blocks the workers keep for reuse "
               "(given back a few seconds after a burst; sampled every 5 s).\n"
               "# TYPE gyrus_worker_cached_bytes gauge\ngyrus_worker_cached_bytes %zu\n", cached);
    gy_health_metrics(f);
    gy_rbac_metrics(f);
    gy_identity_metrics(p->identity, f);
    gy_tls_metrics(f);
    fclose(f);
    return out;
}

/* The SVID (identity.c) and the certificates TLS loaded from files (tls/metrics.c). */
static char *certs_json(struct gy_proxy *p)
{
    char *svid = p->identity ? gy_identity_json(p->identity) : NULL, *tls = gy_tls_certs_json(), *out = NULL;
    json_t *doc = tls != NULL ? json_loads(tls, 0, NULL) : NULL;
    json_t *sv = svid != NULL ? json_loads(svid, 0, NULL) : NULL;

    if (doc != NULL && json_object_set_new(doc, "svid", sv != NULL ? sv : json_null()) == 0)
        out = json_dumps(doc, JSON_INDENT(2));
    else
        json_decref(sv);
    json_decref(doc);
    free(svid);
    free(tls);
    return out;
}

static char *clusters_text(struct gy_proxy *p, bool json)
{
    static const struct gy_config none;
    const struct gy_config *cfg = p->config ? p->config : &none;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    static const char *const lb_names[] = { "round_robin", "least_request", "random", "ring_hash" };

    if (f == NULL)
        return NULL;
    if (json)
        fprintf(f, "{\"clusters\":[");
    for (size_t i = 0; i < cfg->nclusters; i++) {
        const struct gy_cluster *c = &cfg->clusters[i];
        struct gy_stats_scope *st = c->stats;
        if (json) {
            json_t *hosts = json_array();
            for (size_t h = 0; h < c->ninstances; h++) {
                char addr[GY_ADDRSTRLEN];
                gy_addr_format((const struct sockaddr *)&c->instances[h].addr, addr, sizeof(addr));
                json_array_append_new(hosts, json_pack("{s:s,s:s,s:i,s:i,s:s}", "address", addr, "hostname",
                                                       c->instances[h].host, "port", c->instances[h].port, "weight",
                                                       (int)c->instances[h].weight, "health",
                                                       gy_host_health_string(c->instances[h].state)));
            }
            json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:I}", "name", c->name, "key", c->key, "lb_policy",
                                  lb_names[c->lb_policy], "hosts", hosts, "upstream_cx_active",
                                  (json_int_t)gy_stats_sum(st, GY_C_CX_ACTIVE), "upstream_rq_active",
                                  (json_int_t)gy_stats_sum(st, GY_C_RQ_ACTIVE), "upstream_rq_total",
                                  (json_int_t)gy_stats_sum(st, GY_C_RQ_TOTAL), "upstream_cx_connect_fail",
                                  (json_int_t)gy_stats_sum(st, GY_C_CX_CONNECT_FAIL));
            char *s = json_dumps(o, JSON_COMPACT);
            fprintf(f, "%s%s", i ? "," : "", s ? s : "{}");
            free(s);
            json_decref(o);
            continue;
        }
        fprintf(f, "%s::lb_policy::%s\n", c->name, lb_names[c->lb_policy]);
        fprintf(f, "%s::upstream_cx_active::%lld\n", c->name, (long long)gy_stats_sum(st, GY_C_CX_ACTIVE));
        fprintf(f, "%s::upstream_rq_active::%lld\n", c->name, (long long)gy_stats_sum(st, GY_C_RQ_ACTIVE));
        for (size_t h = 0; h < c->ninstances; h++) {
            char addr[GY_ADDRSTRLEN];
            gy_addr_format((const struct sockaddr *)&c->instances[h].addr, addr, sizeof(addr));
            fprintf(f, "%s::%s::hostname::%s\n", c->name, addr, c->instances[h].host);
            fprintf(f, "%s::%s::weight::%u\n", c->name, addr, c->instances[h].weight);
            fprintf(f, "%s::%s::health_flags::%s\n", c->name, addr, gy_host_health_string(c->instances[h].state));
        }
    }
    if (json)
        fprintf(f, "]}\n");
    fclose(f);
    return out;
}

static char *config_dump(struct gy_proxy *p)
{
    if (p->config == NULL)
        return strdup("{\"generation\": 0, \"objects\": []}\n");
    json_t *o = json_pack("{s:s,s:I,s:s,s:O}", "proxy", p->config->proxy_name, "generation",
                          (json_int_t)p->generation, "version", p->version, "objects", p->config->objects);
    char *s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;

    json_decref(o);
    return s;
}

static void handle(struct admin_conn *c, struct gy_slice method, struct gy_slice path, struct gy_slice query)
{
    struct gy_proxy *p = c->proxy;
    bool json = query.len >= 11 && memmem(query.ptr, query.len, "format=json", 11) != NULL;

    if (gy_slice_eq(path, GY_SLICE_LIT("/ready"))) {
        respond_text(c, p->live ? 200 : 503, p->live ? "LIVE\n" : "DRAINING\n");
    } else if (gy_slice_eq(path, GY_SLICE_LIT("/stats/prometheus")) || gy_slice_eq(path, GY_SLICE_LIT("/metrics"))) {
        char *extra = server_metrics(p);
        respond_owned(c, "text/plain; version=0.0.4; charset=utf-8", gy_stats_prometheus(extra));
        free(extra);
    } else if (gy_slice_eq(path, GY_SLICE_LIT("/stats"))) {
        respond_owned(c, "application/json", gy_stats_json());
    } else if (gy_slice_eq(path, GY_SLICE_LIT("/clusters"))) {
        respond_owned(c, json ? "application/json" : "text/plain; charset=utf-8", clusters_text(p, json));
    } else if (gy_slice_eq(path, GY_SLICE_LIT("/certs"))) {
        respond_owned(c, "application/json", certs_json(p));
    } else if (gy_slice_eq(path, GY_SLICE_LIT("/config_dump"))) {
        respond_owned(c, "application/json", config_dump(p));
    } else if (gy_slice_eq(path, GY_SLICE_LIT("/quitquitquit"))) {
        if (!gy_slice_eq(method, GY_SLICE_LIT("POST"))) {
            respond_text(c, 405, "use POST\n");
            return;
        }
        respond_text(c, 200, "OK\n");
        gy_proxy_begin_drain(p, "/quitquitquit");
    } else if (gy_slice_eq(path, GY_SLICE_LIT("/")) || gy_slice_eq(path, GY_SLICE_LIT("/help"))) {
        respond_text(c, 200,
                     "gyrus admin\n  /ready\n  /stats\n  /stats/prometheus (/metrics)\n  /clusters[?format=json]\n"
                     "  /config_dump\n  /certs\n  POST /quitquitquit\n");
    } else {
        respond_text(c, 404, "not found; see /help\n");
    }
}

static void conn_io(struct gy_io *io, unsigned events)
{
    struct admin_conn *c = GY_CONTAINER_OF(io, struct admin_conn, io);

    (void)events;
    while (c->resp == NULL && !c->done) {
        ssize_t n = recv(io->fd, c->req + c->req_len, sizeof(c->req) - c->req_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->req_len += (size_t)n;
        struct gy_header hdrs[64];
        struct gy_h1_request req;
        struct gy_h1_error err;
        struct gy_h1_limits lim = { 8192, sizeof(c->req), 64 };
        int rc = gy_h1_parse_request(c->req, c->req_len, &req, hdrs, &lim, &err);
        if (rc == GY_EAGAIN)
            continue;
        if (rc < 0)
            respond_text(c, err.status, "bad request\n");
        else
            handle(c, req.method, req.path, req.query);
    }
    while (c->resp != NULL && c->resp_off < c->resp_len) {
        ssize_t n = send(io->fd, c->resp + c->resp_off, c->resp_len - c->resp_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0)
            break;
        c->resp_off += (size_t)n;
    }
    conn_close(c);
}

static void conn_timeout(struct gy_timer *t)
{
    conn_close(GY_CONTAINER_OF(t, struct admin_conn, timer));
}

static void accept_io(struct gy_io *io, unsigned events)
{
    struct gy_admin *a = GY_CONTAINER_OF(io, struct gy_admin, io);

    (void)events;
    for (;;) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        struct admin_conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->proxy = a->proxy;
        gy_list_init(&c->link);
        gy_timer_init(&c->timer, conn_timeout);
        if (gy_io_start(&a->proxy->loop, &c->io, fd, GY_IO_READ | GY_IO_WRITE, conn_io) != 0) {
            close(fd);
            free(c);
            continue;
        }
        gy_list_insert_tail(&a->conns, &c->link);
        gy_timer_start(&a->proxy->loop, &c->timer, 10000);
    }
}

int gy_admin_start(struct gy_proxy *p, const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct gy_admin *a;

    if (gy_addr_parse(addr, &ss, &len) != 0) {
        gy_error("admin: cannot parse address \"%s\" (want IP:PORT)", addr);
        return GY_EINVAL;
    }
    int fd = gy_listen((struct sockaddr *)&ss, len, false, 128);
    if (fd < 0) {
        gy_error("admin: cannot listen on %s: %s", addr, strerror(errno));
        return GY_EIO;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        close(fd);
        return GY_ENOMEM;
    }
    a->proxy = p;
    gy_list_init(&a->conns);
    snprintf(a->addr, sizeof(a->addr), "%s", addr);
    if (gy_io_start(&p->loop, &a->io, fd, GY_IO_READ, accept_io) != 0) {
        close(fd);
        free(a);
        return GY_EIO;
    }
    p->admin = a;
    return 0;
}

void gy_admin_stop(struct gy_proxy *p)
{
    if (p->admin == NULL)
        return;
    while (!gy_list_empty(&p->admin->conns))
        conn_close(GY_CONTAINER_OF(p->admin->conns.next, struct admin_conn, link));
    gy_io_stop(&p->admin->io);
    close(p->admin->io.fd);
    free(p->admin);
    p->admin = NULL;
}
