/*
 * Active health checks on the main thread. One `checker` per (cluster, host, check) of the
 * current config; each runs at most one check at a time on its own short connection:
 *
 *   timer ─► connect ─► send (HTTP request / TCP bytes / HTTP/2 preface + gRPC request)
 *         ─► read until a verdict, EOF or the timeout ─► record ─► timer (interval + jitter)
 *
 * The checker's timer is the wait before the next check while idle and the timeout while a
 * check runs. Checkers removed by a reload are unlinked at once and freed by a task after the
 * current batch of events, since a later event of the same batch may still name their socket.
 */
#include "proxy/health.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "http/h1.h"
#include "proxy/health_grpc.h"
#include "proxy/proxy.h"
#include "tls/tls.h"

#define HC_HTTP_IN 16384  /* an HTTP response head must fit */
#define HC_TCP_IN 65536   /* a TCP answer is searched within this many bytes */
#define HC_GRPC_IN 16384  /* read chunk for HTTP/2 */
#define HC_OUT_MAX 65536  /* bytes queued to send */
#define HC_FIRST_SPREAD 1000 /* the first check of a new host runs within min(interval, this) ms */

struct gy_health_state {
    struct gy_proxy *proxy;
    struct gy_config *cfg;          /* referenced while checkers point into it */
    struct gy_list checkers;
    struct gy_list dead;            /* retired during a batch of events, freed by `reap` */
    struct gy_task reap;
    uint64_t rng;
};

struct checker {
    struct gy_list link;            /* in hs->checkers or hs->dead */
    struct gy_health_state *hs;
    struct gy_host *host;
    const struct gy_cluster *cluster;     /* in hs->cfg */
    size_t index;                         /* in cluster->health_checks */
    size_t inst;                          /* in cluster->instances */
    const struct gy_health_check *hc;     /* &cluster->health_checks[index] */
    bool unhealthy;
    int8_t edge;                    /* the host just turned healthy (1) or unhealthy (-1): the next interval is an edge one */
    bool seen;                      /* still in the config being synced */
    uint32_t failures, successes;   /* consecutive */
    struct gy_timer timer;          /* next check while idle; timeout while running */

    /* the running check */
    bool running, connected, handshaken;
    bool parked;                    /* no check running: its connection kept for the next (reuse_connection) */
    bool reused;                    /* the running check went on a kept connection */
    bool keepable;                  /* the answer was whole and left the connection open */
    bool heard;                     /* the server sent something during this check */
    enum gy_health_kind kind;       /* of the running check */
    struct gy_io io;
    struct gy_transport *tls;       /* clusters with TLS are checked over TLS, as traffic goes */
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    uint8_t *in;
    size_t in_len, in_cap;
    struct gy_hc_grpc *grpc;
    char why[160];                  /* why the running check failed */
};

/* ---- helpers ---- */

static uint64_t rng_next(struct gy_health_state *hs)
{
    uint64_t x = hs->rng; /* xorshift64* */

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    hs->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t rand_below(struct gy_health_state *hs, uint64_t n)
{
    return n == 0 ? 0 : rng_next(hs) % n;
}

static struct gy_loop *loop_of(const struct checker *ck)
{
    return &ck->hs->proxy->loop;
}

static int why(struct checker *ck, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int why(struct checker *ck, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(ck->why, sizeof(ck->why), fmt, ap);
    va_end(ap);
    return rc;
}

static const char *kind_name(enum gy_health_kind k)
{
    return k == GY_HC_TCP ? "tcp" : k == GY_HC_GRPC ? "grpc" : "http";
}

/* Sets or clears GY_HOST_FAILED_HC: failed while any of the host's checks says unhealthy. */
static void host_flag_update(struct gy_health_state *hs, struct gy_host *h)
{
    bool failed = false;

    for (struct gy_list *n = hs->checkers.next; n != &hs->checkers && !failed; n = n->next) {
        struct checker *ck = GY_CONTAINER_OF(n, struct checker, link);
        failed = ck->host == h && ck->unhealthy;
    }
    if (failed)
        atomic_fetch_or_explicit(&h->flags, GY_HOST_FAILED_HC, memory_order_relaxed);
    else
        atomic_fetch_and_explicit(&h->flags, ~GY_HOST_FAILED_HC, memory_order_relaxed);
}

/* ---- the result of a check ---- */

static void record(struct checker *ck, bool ok)
{
    const struct gy_health_check *hc = ck->hc;
    struct gy_host *h = ck->host;

    if (ok) {
        atomic_fetch_add_explicit(&h->hc_ok_total, 1, memory_order_relaxed);
        ck->failures = 0;
        ck->successes++;
        if (ck->unhealthy && ck->successes >= hc->healthy_threshold) {
            ck->unhealthy = false;
            ck->edge = 1;
            gy_info("health check: cluster \"%s\" host %s is healthy again after %u %s checks in a row",
                    h->cluster, h->addr_str, ck->successes, kind_name(ck->kind));
            host_flag_update(ck->hs, h);
        }
    } else {
        atomic_fetch_add_explicit(&h->hc_fail_total, 1, memory_order_relaxed);
        ck->successes = 0;
        ck->failures++;
        gy_debug("health check: cluster \"%s\" host %s: %s check failed: %s", h->cluster, h->addr_str,
                 kind_name(ck->kind), ck->why);
        if (!ck->unhealthy && ck->failures >= hc->unhealthy_threshold) {
            ck->unhealthy = true;
            ck->edge = -1;
            gy_info("health check: cluster \"%s\" host %s is unhealthy after %u failed %s checks in a row (%s)",
                    h->cluster, h->addr_str, ck->failures, kind_name(ck->kind), ck->why);
            host_flag_update(ck->hs, h);
        }
    }
    h->hc_failures = ck->failures;
    h->hc_successes = ck->successes;
}

/* Closes the check's connection (and its TLS). */
static void close_conn(struct checker *ck)
{
    if (ck->io.fd >= 0) {
        gy_io_stop(&ck->io);
        close(ck->io.fd);
        ck->io.fd = -1;
    }
    if (ck->tls != NULL)
        ck->tls->ops->destroy(ck->tls);
    ck->tls = NULL;
    ck->handshaken = ck->connected = false;
}

/* Frees the running check's buffers and ends it; the connection is left as it is. */
static void probe_finish(struct checker *ck)
{
    free(ck->out);
    free(ck->in);
    ck->out = ck->in = NULL;
    ck->out_len = ck->out_off = ck->out_cap = ck->in_len = ck->in_cap = 0;
    ck->running = ck->reused = ck->keepable = ck->heard = false;
}

/* Closes the running check's connection and frees its buffers; no result is recorded. */
static void probe_dispose(struct checker *ck)
{
    close_conn(ck);
    gy_hc_grpc_free(ck->grpc);
    ck->grpc = NULL;
    probe_finish(ck);
    ck->parked = false;
}

/* The check is over and its connection can serve the next one: the buffers go, the socket
 * stays, watched so that a server closing it meanwhile is noticed. */
static void probe_park(struct checker *ck)
{
    probe_finish(ck);
    ck->parked = true;
}

/* interval, unhealthy_interval for an unhealthy host, or the edge interval once right after
 * the host changed state (Envoy's meaning); plus jitter. */
static void schedule_next(struct checker *ck)
{
    const struct gy_health_check *hc = ck->hc;
    uint32_t base = ck->edge < 0 ? hc->unhealthy_edge_ms : ck->edge > 0 ? hc->healthy_edge_ms
                    : ck->unhealthy ? hc->unhealthy_interval_ms : hc->interval_ms;

    /* A cluster no request has gone to yet is checked at no_traffic_interval (Envoy). */
    if (!ck->unhealthy && ck->edge == 0 && hc->no_traffic_ms > 0 &&
        ck->cluster->stats != NULL && gy_stats_sum(ck->cluster->stats, GY_C_RQ_TOTAL) == 0)
        base = hc->no_traffic_ms;

    ck->edge = 0;
    gy_timer_start(loop_of(ck), &ck->timer, base + rand_below(ck->hs, (uint64_t)hc->jitter_ms + 1));
}

static void schedule_first(struct checker *ck)
{
    uint64_t spread = ck->hc->interval_ms < HC_FIRST_SPREAD ? ck->hc->interval_ms : HC_FIRST_SPREAD;

    gy_timer_start(loop_of(ck), &ck->timer, rand_below(ck->hs, spread + 1));
}

/* The check is over: rc 0 healthy, else failed with ck->why. */
static void probe_end(struct checker *ck, int rc)
{
    if (ck->keepable && ck->hc->reuse)
        probe_park(ck);
    else
        probe_dispose(ck);
    record(ck, rc == 0);
    schedule_next(ck);
}

/* ---- what each kind sends and how it judges the answer ---- */

static bool token_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
            return false;
    return true;
}

static int out_append(struct checker *ck, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (len > HC_OUT_MAX - (ck->out_len - ck->out_off))
        return why(ck, GY_ETOOBIG, "more than %d bytes to send", HC_OUT_MAX);
    if (ck->out_off > 0 && ck->out_off == ck->out_len)
        ck->out_off = ck->out_len = 0;
    if (ck->out_len + len > ck->out_cap) {
        size_t cap = ck->out_len + len < 512 ? 512 : ck->out_len + len;
        uint8_t *p = realloc(ck->out, cap);
        if (p == NULL)
            return why(ck, GY_ENOMEM, "out of memory");
        ck->out = p;
        ck->out_cap = cap;
    }
    memcpy(ck->out + ck->out_len, data, len);
    ck->out_len += len;
    return 0;
}

/* The request head: ours, then request_headers_to_add (the schema vetted names and values; one
 * with append: false replaces our user-agent). */
static int http_request(struct checker *ck, const struct gy_health_check *hc)
{
    char req[8192];
    bool own_agent = true;
    size_t len;
    int n;

    if (!token_ok(hc->path) || !token_ok(hc->host))
        return why(ck, GY_EINVAL, "path or host of the check has spaces or control characters");
    for (size_t i = 0; i < hc->nheaders; i++)
        if (!hc->headers[i].append && strcmp(hc->headers[i].name, "user-agent") == 0)
            own_agent = false;
    n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nhost: %s\r\n%s%s", hc->path, hc->host,
                 own_agent ? "user-agent: gyrus-health-check\r\n" : "", hc->reuse ? "" : "connection: close\r\n");
    for (size_t i = 0; i < hc->nheaders && n >= 0 && (size_t)n < sizeof(req); i++) {
        len = (size_t)n;
        n = snprintf(req + len, sizeof(req) - len, "%s: %s\r\n", hc->headers[i].name, hc->headers[i].value);
        n = n < 0 ? n : (int)(len + (size_t)n);
    }
    if (n >= 0 && (size_t)n < sizeof(req)) {
        len = (size_t)n;
        n = snprintf(req + len, sizeof(req) - len, "\r\n");
        n = n < 0 ? n : (int)(len + (size_t)n);
    }
    if (n < 0 || (size_t)n >= sizeof(req))
        return why(ck, GY_ETOOBIG, "request head over %zu bytes", sizeof(req));
    return out_append(ck, req, (size_t)n);
}

/* service_name: Envoy's check that the service that answered is the one meant. */
static int service_matches(struct checker *ck, const struct gy_h1_response *res)
{
    static const struct gy_slice name = GY_SLICE_LIT("x-envoy-upstream-healthchecked-cluster");
    const char *want = ck->hc->service_name;
    const struct gy_header *h = gy_header_find(res->headers, res->nheaders, name);
    size_t n = strlen(want);

    if (h != NULL && h->value.len >= n && memcmp(h->value.ptr, want, n) == 0)
        return 0;
    if (h == NULL)
        return why(ck, GY_EIO, "no x-envoy-upstream-healthchecked-cluster in the answer (service_name \"%s\")", want);
    return why(ck, GY_EIO, "x-envoy-upstream-healthchecked-cluster is \"%.*s\", not service_name \"%s\"",
               (int)(h->value.len > 128 ? 128 : h->value.len), h->value.ptr, want);
}

static int prepare(struct checker *ck)
{
    const struct gy_health_check *hc = ck->hc;

    ck->kind = hc->kind;
    ck->in_cap = hc->kind == GY_HC_HTTP ? HC_HTTP_IN : hc->kind == GY_HC_TCP ? HC_TCP_IN : HC_GRPC_IN;
    if ((ck->in = malloc(ck->in_cap)) == NULL)
        return why(ck, GY_ENOMEM, "out of memory");
    switch (hc->kind) {
    case GY_HC_HTTP:
        return http_request(ck, hc);
    case GY_HC_TCP:
        return out_append(ck, hc->send, hc->send_len);
    case GY_HC_GRPC:
        if (ck->parked && ck->grpc != NULL && hc->reuse && gy_hc_grpc_again(ck->grpc) == 0)
            return 0; /* the next call on the kept session */
        if (ck->parked) { /* it cannot take another call: a new connection */
            ck->parked = false;
            close_conn(ck);
        }
        gy_hc_grpc_free(ck->grpc);
        ck->grpc = gy_hc_grpc_new(hc->authority ? hc->authority : ck->cluster->name,
                                  hc->service_name ? hc->service_name : "");
        return ck->grpc != NULL ? 0 : why(ck, GY_ENOMEM, "cannot start an HTTP/2 session");
    }
    return why(ck, GY_EINVAL, "unknown check kind");
}

static int judge_http(struct checker *ck)
{
    static const struct gy_h1_limits lim = { 8192, HC_HTTP_IN, 64 };
    struct gy_header hdrs[64];
    struct gy_h1_response res;
    struct gy_h1_error err;

    for (;;) {
        int rc = gy_h1_parse_response((const char *)ck->in, ck->in_len, &res, hdrs, &lim, false, false, &err);
        if (rc == GY_EAGAIN)
            return ck->in_len < ck->in_cap ? GY_EAGAIN : why(ck, GY_ETOOBIG, "response head too large");
        if (rc < 0)
            return why(ck, GY_EPARSE, "invalid response: %s", err.reason);
        if (res.status >= 200)
            break;
        memmove(ck->in, ck->in + res.head_len, ck->in_len - res.head_len); /* 1xx: the final one follows */
        ck->in_len -= res.head_len;
    }
    /* With reuse_connection the whole answer is read, when it says its length and fits, so that
     * the connection is clean for the next check; otherwise the head is enough and it closes. */
    size_t whole = res.head_len + (res.body == GY_H1_BODY_LENGTH ? (size_t)res.content_length : 0);
    bool framed = res.body == GY_H1_BODY_NONE || (res.body == GY_H1_BODY_LENGTH && whole <= ck->in_cap);
    if (ck->hc->reuse && res.keep_alive && framed && ck->in_len < whole)
        return GY_EAGAIN;
    ck->keepable = ck->hc->reuse && res.keep_alive && framed && ck->in_len == whole;
    for (size_t i = 0; i < ck->hc->nexpected; i++)
        if (res.status >= ck->hc->expected[i].start && res.status < ck->hc->expected[i].end)
            return ck->hc->service_name != NULL ? service_matches(ck, &res) : 0;
    return why(ck, GY_EIO, "status %d", res.status);
}

/* Every `receive` block appears somewhere in what came back (the schema's rule). */
static bool tcp_matches(const struct checker *ck)
{
    for (size_t i = 0; i < ck->hc->nreceive; i++) {
        size_t n = ck->hc->receive_len[i];
        if (n > 0 && memmem(ck->in, ck->in_len, ck->hc->receive[i], n) == NULL)
            return false;
    }
    return true;
}

static int judge_tcp(struct checker *ck)
{
    if (tcp_matches(ck)) {
        ck->keepable = ck->hc->reuse; /* answered and still open: the next check sends again on it */
        return 0;
    }
    if (ck->in_len == ck->in_cap)
        return why(ck, GY_ETOOBIG, "expected bytes not in the first %zu received", ck->in_cap);
    return GY_EAGAIN;
}

/* New bytes are at the end of ck->in: GY_EAGAIN, 0 (healthy) or a failure. */
static int on_bytes(struct checker *ck, size_t n)
{
    int rc;

    switch (ck->kind) {
    case GY_HC_HTTP:
        return judge_http(ck);
    case GY_HC_TCP:
        return judge_tcp(ck);
    case GY_HC_GRPC:
        ck->in_len = 0; /* handed to nghttp2 */
        rc = gy_hc_grpc_input(ck->grpc, ck->in, n);
        if (rc != GY_EAGAIN) /* the call is over; the session may carry the next one */
            ck->keepable = ck->hc->reuse && gy_hc_grpc_reusable(ck->grpc);
        return rc == GY_EAGAIN || rc == 0 ? rc : why(ck, rc, "%s", gy_hc_grpc_why(ck->grpc));
    }
    return GY_EINVAL;
}

static int on_eof(struct checker *ck)
{
    int rc;

    switch (ck->kind) {
    case GY_HC_HTTP:
        return why(ck, GY_ECLOSED, "connection closed before a complete response head");
    case GY_HC_TCP:
        return tcp_matches(ck) ? 0 : why(ck, GY_ECLOSED, "connection closed before the expected bytes came");
    case GY_HC_GRPC:
        rc = gy_hc_grpc_eof(ck->grpc);
        return rc == 0 ? 0 : why(ck, rc, "%s", gy_hc_grpc_why(ck->grpc));
    }
    return GY_EINVAL;
}

/* ---- the connection ---- */

/* Sends what is queued: 0 when all is sent, GY_EAGAIN when the socket is full, or a failure. */
static int flush(struct checker *ck)
{
    if (ck->grpc != NULL) {
        const uint8_t *data;
        size_t len;
        do {
            if (gy_hc_grpc_output(ck->grpc, &data, &len) != 0)
                return why(ck, GY_EIO, "%s", gy_hc_grpc_why(ck->grpc));
            if (len > 0 && out_append(ck, data, len) != 0)
                return GY_ETOOBIG;
        } while (len > 0);
    }
    while (ck->out_off < ck->out_len) {
        if (ck->tls != NULL) {
            ssize_t n = ck->tls->ops->write(ck->tls, ck->io.fd, ck->out + ck->out_off, ck->out_len - ck->out_off);
            if (n == GY_EAGAIN)
                return GY_EAGAIN;
            if (n < 0)
                return why(ck, GY_EIO, "TLS write failed");
            ck->out_off += (size_t)n;
            continue;
        }
        ssize_t n = send(ck->io.fd, ck->out + ck->out_off, ck->out_len - ck->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return GY_EAGAIN;
        if (n < 0)
            return why(ck, GY_EIO, "send: %s", strerror(errno));
        ck->out_off += (size_t)n;
    }
    return 0;
}

/* Reads until the socket is drained or there is a verdict. */
static int receive(struct checker *ck)
{
    for (;;) {
        if (ck->in_len == ck->in_cap)
            return on_bytes(ck, 0);
        ssize_t n;
        if (ck->tls != NULL) {
            bool more = false;
            n = ck->tls->ops->read(ck->tls, ck->io.fd, ck->in + ck->in_len, ck->in_cap - ck->in_len, &more);
            if (n == GY_EAGAIN)
                return GY_EAGAIN;
            if (n < 0)
                return why(ck, GY_EIO, "TLS read failed");
        } else {
            n = recv(ck->io.fd, ck->in + ck->in_len, ck->in_cap - ck->in_len, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return GY_EAGAIN;
            if (n < 0)
                return why(ck, GY_EIO, "recv: %s", strerror(errno));
        }
        if (n == 0)
            return on_eof(ck);
        ck->heard = true;
        ck->in_len += (size_t)n;
        int rc = on_bytes(ck, (size_t)n);
        if (rc != GY_EAGAIN)
            return rc;
    }
}

static int probe_step(struct checker *ck, unsigned events)
{
    int rc;

    if (!ck->connected) {
        if ((events & (GY_IO_WRITE | GY_IO_HUP)) == 0)
            return GY_EAGAIN;
        int err = gy_connect_result(ck->io.fd);
        if (err != 0)
            return why(ck, GY_EIO, "connect: %s", strerror(err));
        ck->connected = true;
    }
    if (ck->tls != NULL && !ck->handshaken) {
        bool want_write = false;
        rc = ck->tls->ops->handshake(ck->tls, ck->io.fd, &want_write);
        if (rc == GY_EAGAIN)
            return GY_EAGAIN;
        if (rc != 0)
            return why(ck, GY_EIO, "TLS handshake failed");
        ck->handshaken = true;
    }
    rc = flush(ck);
    if (rc != 0 && rc != GY_EAGAIN)
        return rc;
    if (rc == 0 && ck->kind == GY_HC_TCP && ck->hc->nreceive == 0)
        return 0; /* connected and sent: nothing to expect */
    rc = receive(ck);
    if (rc != GY_EAGAIN)
        return rc;
    rc = flush(ck); /* HTTP/2 acknowledges settings and pings */
    return rc == 0 ? GY_EAGAIN : rc;
}

/* Between gRPC checks on a kept session: what the server sends (PING, SETTINGS, WINDOW_UPDATE)
 * is read and answered; 0 while the session stays usable. */
static int grpc_idle(struct checker *ck)
{
    uint8_t buf[2048];

    for (;;) {
        ssize_t n;
        if (ck->tls != NULL) {
            bool more = false;
            n = ck->tls->ops->read(ck->tls, ck->io.fd, buf, sizeof(buf), &more);
            if (n == GY_EAGAIN)
                break;
        } else {
            n = recv(ck->io.fd, buf, sizeof(buf), 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
        }
        if (n <= 0 || gy_hc_grpc_idle_input(ck->grpc, buf, (size_t)n) != 0)
            return GY_ECLOSED;
    }
    int rc = flush(ck);
    if (rc == 0) { /* all answered: an idle connection holds no buffer */
        free(ck->out);
        ck->out = NULL;
        ck->out_len = ck->out_off = ck->out_cap = 0;
    }
    return rc == GY_EAGAIN ? 0 : rc;
}

static void probe_start(struct checker *ck);

static void probe_io(struct gy_io *io, unsigned events)
{
    struct checker *ck = GY_CONTAINER_OF(io, struct checker, io);

    if (ck->parked && ck->grpc != NULL) { /* between gRPC checks: the session lives on */
        if ((events & GY_IO_HUP) || grpc_idle(ck) != 0)
            probe_dispose(ck);
        return;
    }
    if (ck->parked) { /* between checks: closed by the server, or it spoke unasked? */
        char c;
        ssize_t n = recv(ck->io.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if ((events & GY_IO_HUP) || n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            probe_dispose(ck);
        return;
    }
    int rc = probe_step(ck, events);
    if (rc == GY_EAGAIN)
        return;
    if (ck->keepable && ck->grpc != NULL && flush(ck) != 0)
        ck->keepable = false; /* what the session owes the server (a SETTINGS ack) did not go out */
    if (rc != 0 && ck->reused && !ck->heard) {
        /* the kept connection was gone before the answer (a server's keep-alive timeout): the
         * check goes again on a new one (with a new timeout), nothing recorded */
        probe_dispose(ck);
        probe_start(ck);
        return;
    }
    probe_end(ck, rc);
}

/* The next check on the kept connection: straight to sending. */
static void probe_resume(struct checker *ck)
{
    ck->parked = false;
    ck->reused = ck->running = true;
    gy_timer_start(loop_of(ck), &ck->timer, ck->hc->timeout_ms);
    probe_io(&ck->io, GY_IO_WRITE);
}

static void probe_start(struct checker *ck)
{
    int rc = prepare(ck), fd;

    ck->why[0] = '\0';
    ck->in_len = 0;
    if (rc != 0) {
        probe_end(ck, rc);
        return;
    }
    if (ck->parked) {
        if (ck->hc->reuse) { /* (a gRPC session that could not take another call was closed by prepare) */
            probe_resume(ck);
            return;
        }
        ck->parked = false; /* the check changed: a new connection */
        close_conn(ck);
    }
    if (ck->cluster->tls != NULL &&
        (ck->tls = gy_tls_client(ck->cluster->tls, ck->cluster->instances[ck->inst].host,
                                 ck->kind == GY_HC_GRPC ? GY_TLS_ALPN_H2 : GY_TLS_ALPN_HTTP11)) == NULL) {
        probe_end(ck, why(ck, GY_ENOMEM, "cannot start TLS"));
        return;
    }
    if ((fd = gy_connect((const struct sockaddr *)&ck->host->addr, ck->host->addrlen)) < 0) {
        probe_end(ck, why(ck, GY_EIO, "connect: %s", strerror(errno)));
        return;
    }
    if (gy_io_start(loop_of(ck), &ck->io, fd, GY_IO_READ | GY_IO_WRITE, probe_io) != 0) {
        close(fd);
        probe_end(ck, why(ck, GY_EIO, "cannot watch the socket"));
        return;
    }
    ck->running = true;
    gy_timer_start(loop_of(ck), &ck->timer, ck->hc->timeout_ms);
}

static void checker_timer(struct gy_timer *t)
{
    struct checker *ck = GY_CONTAINER_OF(t, struct checker, timer);

    if (!ck->running) { /* idle, or parked on a kept connection */
        probe_start(ck);
        return;
    }
    if (ck->why[0] == '\0')
        why(ck, GY_ETIMEDOUT, "timed out after %u ms%s", ck->hc->timeout_ms, ck->connected ? "" : " (connecting)");
    probe_end(ck, GY_ETIMEDOUT);
}

/* ---- config sync ---- */

static void reap(struct gy_task *t)
{
    struct gy_health_state *hs = GY_CONTAINER_OF(t, struct gy_health_state, reap);

    while (!gy_list_empty(&hs->dead)) {
        struct checker *ck = GY_CONTAINER_OF(hs->dead.next, struct checker, link);
        gy_list_remove(&ck->link);
        free(ck);
    }
}

static struct checker *checker_find(struct gy_health_state *hs, const struct gy_host *h, size_t index)
{
    for (struct gy_list *n = hs->checkers.next; n != &hs->checkers; n = n->next) {
        struct checker *ck = GY_CONTAINER_OF(n, struct checker, link);
        if (ck->host == h && ck->index == index)
            return ck;
    }
    return NULL;
}

static void checker_point(struct checker *ck, const struct gy_cluster *c, size_t index, size_t inst)
{
    ck->cluster = c;
    ck->index = index;
    ck->inst = inst;
    ck->hc = &c->health_checks[index];
    ck->seen = true;
}

static struct checker *checker_new(struct gy_health_state *hs, struct gy_host *h, const struct gy_cluster *c,
                                   size_t index, size_t inst)
{
    struct checker *ck = calloc(1, sizeof(*ck));

    if (ck == NULL)
        return NULL;
    ck->hs = hs;
    ck->host = h;
    ck->io.fd = -1;
    gy_timer_init(&ck->timer, checker_timer);
    checker_point(ck, c, index, inst);
    gy_list_insert_tail(&hs->checkers, &ck->link);
    schedule_first(ck);
    return ck;
}

static bool same(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The check of a host that stays: keep its state; a new kind, timing, gRPC authority or service
 * restarts its schedule (and a kept session, which was made for the old ones). */
static void checker_adopt(struct checker *ck, const struct gy_cluster *c, size_t index, size_t inst)
{
    const struct gy_health_check *old = ck->hc, *hc = &c->health_checks[index];
    bool retime = old->kind != hc->kind || old->interval_ms != hc->interval_ms || old->jitter_ms != hc->jitter_ms ||
                  old->timeout_ms != hc->timeout_ms || old->unhealthy_interval_ms != hc->unhealthy_interval_ms ||
                  old->unhealthy_edge_ms != hc->unhealthy_edge_ms || old->healthy_edge_ms != hc->healthy_edge_ms ||
                  !same(old->authority, hc->authority) || !same(old->service_name, hc->service_name);

    /* a running check keeps its connection (and TLS transport, which holds its own context) */
    checker_point(ck, c, index, inst);
    if (retime) {
        probe_dispose(ck);
        schedule_first(ck);
    }
}

static void checker_retire(struct gy_health_state *hs, struct checker *ck)
{
    probe_dispose(ck);
    gy_timer_stop(&hs->proxy->loop, &ck->timer);
    gy_list_remove(&ck->link);
    gy_list_insert_tail(&hs->dead, &ck->link);
    gy_task_schedule(&hs->proxy->loop, &hs->reap);
}

static bool any_checks(const struct gy_config *cfg)
{
    for (size_t i = 0; cfg != NULL && i < cfg->nclusters; i++)
        if (cfg->clusters[i].nhealth_checks > 0)
            return true;
    return false;
}

static struct gy_health_state *state_new(struct gy_proxy *p)
{
    struct gy_health_state *hs = calloc(1, sizeof(*hs));

    if (hs == NULL)
        return NULL;
    hs->proxy = p;
    gy_list_init(&hs->checkers);
    gy_list_init(&hs->dead);
    gy_task_init(&hs->reap, reap);
    hs->rng = gy_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)hs;
    if (hs->rng == 0)
        hs->rng = 1;
    return hs;
}

void gy_health_sync(struct gy_proxy *p, const struct gy_config *cfg)
{
    struct gy_health_state *hs = p->health;
    struct gy_config *old;

    if (hs == NULL) {
        if (!any_checks(cfg))
            return;
        if ((hs = p->health = state_new(p)) == NULL) {
            gy_error("health checks: out of memory; hosts are not checked");
            return;
        }
    }
    for (struct gy_list *n = hs->checkers.next; n != &hs->checkers; n = n->next)
        GY_CONTAINER_OF(n, struct checker, link)->seen = false;
    for (size_t i = 0; cfg != NULL && i < cfg->nclusters; i++) {
        const struct gy_cluster *c = &cfg->clusters[i];
        for (size_t k = 0; k < c->ninstances && c->nhealth_checks > 0; k++) {
            const struct gy_instance *in = &c->instances[k];
            struct gy_host *h = gy_host_get(c->name, (const struct sockaddr *)&in->addr, in->addrlen);
            for (size_t j = 0; h != NULL && j < c->nhealth_checks; j++) {
                struct checker *ck = checker_find(hs, h, j);
                if (ck == NULL && checker_new(hs, h, c, j, k) == NULL)
                    gy_error("health checks: out of memory; cluster \"%s\" host %s is not checked", c->name,
                             h->addr_str);
                else if (ck != NULL && !ck->seen)
                    checker_adopt(ck, c, j, k);
            }
        }
    }
    struct gy_list *n = hs->checkers.next;
    while (n != &hs->checkers) {
        struct checker *ck = GY_CONTAINER_OF(n, struct checker, link);
        n = n->next;
        if (!ck->seen) {
            checker_retire(hs, ck);
            host_flag_update(hs, ck->host); /* no longer checked (or by fewer checks) */
        }
    }
    old = hs->cfg;
    hs->cfg = gy_list_empty(&hs->checkers) || cfg == NULL ? NULL : gy_config_ref((struct gy_config *)cfg);
    if (old != NULL)
        gy_config_unref(old);
}

void gy_health_stop(struct gy_proxy *p)
{
    struct gy_health_state *hs = p->health;

    if (hs == NULL)
        return;
    while (!gy_list_empty(&hs->checkers))
        checker_retire(hs, GY_CONTAINER_OF(hs->checkers.next, struct checker, link));
    gy_task_cancel(&hs->reap);
    reap(&hs->reap);
    if (hs->cfg != NULL)
        gy_config_unref(hs->cfg);
    free(hs);
    p->health = NULL;
}

/* ---- state for /clusters and /stats/prometheus ---- */

const char *gy_host_health_string(const struct gy_host *h)
{
    uint32_t f = atomic_load_explicit(&h->flags, memory_order_relaxed) & (GY_HOST_FAILED_HC | GY_HOST_EJECTED);

    switch (f) {
    case 0:
        return "healthy";
    case GY_HOST_FAILED_HC:
        return "failed_active_hc";
    case GY_HOST_EJECTED:
        return "failed_outlier_check";
    default:
        return "failed_active_hc|failed_outlier_check";
    }
}

static void label(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fprintf(f, "\\%c", *v);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

enum host_metric { M_HC_OK, M_HC_FAIL, M_EJECTIONS, M_HEALTHY, M_NHOST };

static const struct {
    const char *name, *type, *help;
} host_metrics[M_NHOST] = {
    [M_HC_OK] = { "gyrus_cluster_health_check_success_total", "counter", "Active health checks that passed." },
    [M_HC_FAIL] = { "gyrus_cluster_health_check_failure_total", "counter", "Active health checks that failed." },
    [M_EJECTIONS] = { "gyrus_cluster_outlier_ejections_total", "counter", "Ejections by outlier detection." },
    [M_HEALTHY] = { "gyrus_cluster_host_healthy", "gauge",
                    "1 if the host takes traffic, 0 if it failed health checks or is ejected." },
};

struct metrics_walk {
    FILE *f;
    enum host_metric m;
    struct { const char *cluster; unsigned long active; } *clusters;
    size_t nclusters, cap;
    bool failed;
};

static void host_line(struct gy_host *h, void *arg)
{
    struct metrics_walk *w = arg;
    unsigned long long v = 0;

    switch (w->m) {
    case M_HC_OK:
        v = atomic_load_explicit(&h->hc_ok_total, memory_order_relaxed);
        break;
    case M_HC_FAIL:
        v = atomic_load_explicit(&h->hc_fail_total, memory_order_relaxed);
        break;
    case M_EJECTIONS:
        v = atomic_load_explicit(&h->ejections_total, memory_order_relaxed);
        break;
    default:
        v = gy_host_usable(h) ? 1 : 0;
        break;
    }
    fprintf(w->f, "%s{cluster=\"", host_metrics[w->m].name);
    label(w->f, h->cluster);
    fprintf(w->f, "\",host=\"");
    label(w->f, h->addr_str);
    fprintf(w->f, "\"} %llu\n", v);
}

static void count_ejected(struct gy_host *h, void *arg)
{
    struct metrics_walk *w = arg;
    bool ejected = (atomic_load_explicit(&h->flags, memory_order_relaxed) & GY_HOST_EJECTED) != 0;
    size_t i;

    for (i = 0; i < w->nclusters; i++)
        if (strcmp(w->clusters[i].cluster, h->cluster) == 0)
            break;
    if (i == w->nclusters) {
        if (w->nclusters == w->cap) {
            size_t cap = w->cap ? 2 * w->cap : 16;
            void *p = realloc(w->clusters, cap * sizeof(*w->clusters));
            if (p == NULL) {
                w->failed = true;
                return;
            }
            w->clusters = p;
            w->cap = cap;
        }
        w->clusters[i].cluster = h->cluster;
        w->clusters[i].active = 0;
        w->nclusters++;
    }
    w->clusters[i].active += ejected;
}

void gy_health_metrics(FILE *f)
{
    struct metrics_walk w = { .f = f };

    for (int m = 0; m < M_NHOST; m++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", host_metrics[m].name, host_metrics[m].help, host_metrics[m].name,
                host_metrics[m].type);
        w.m = (enum host_metric)m;
        gy_hosts_foreach(host_line, &w);
    }
    /* Host names stay valid: the registry never frees a host before exit. */
    gy_hosts_foreach(count_ejected, &w);
    fprintf(f, "# HELP gyrus_cluster_outlier_ejections_active Hosts ejected now.\n"
               "# TYPE gyrus_cluster_outlier_ejections_active gauge\n");
    for (size_t i = 0; i < w.nclusters && !w.failed; i++) {
        fprintf(f, "gyrus_cluster_outlier_ejections_active{cluster=\"");
        label(f, w.clusters[i].cluster);
        fprintf(f, "\"} %lu\n", w.clusters[i].active);
    }
    free(w.clusters);
}
