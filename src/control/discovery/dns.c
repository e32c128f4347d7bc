/*
 * dns:NAME[:PORT]=CLUSTER[@RESOLVER]: CLUSTER's instances from DNS, through c-ares on an event
 * loop of the source's own thread.
 *   - with PORT: NAME's A and AAAA records, each address an instance at PORT;
 *   - without: NAME's SRV records (write the full name, e.g. _http._tcp.api.example.com), each
 *     target's A and AAAA records at the record's port.
 * Resolved again when the answer's smallest TTL runs out (clamped to 1..300 s); a name that does
 * not exist or has no records gives no instances, re-checked after the negative TTL of the
 * zone's SOA (5 s without one). A resolver failure (timeout, refused, SERVFAIL) keeps the last
 * snapshot and retries with backoff. RESOLVER (IP[:PORT], [IPv6][:PORT]; port 53 by default)
 * replaces the system's resolvers.
 *
 * Answers are read by a small parser of our own (c-ares 1.18's parsers drop SRV TTLs); names in
 * them are expanded by ares_expand_name, which checks the compression pointers.
 */
#include <ares.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/discovery/source.h"
#include "core/err.h"

#define RR_A 1
#define RR_CNAME 5
#define RR_SOA 6
#define RR_AAAA 28
#define RR_SRV 33
#define CLASS_IN 1

#define TTL_MIN_S 1u
#define TTL_MAX_S 300u
#define TTL_NEGATIVE_S 5u
#define MAX_SOCKS 16
#define MAX_TARGETS 256
#define NAME_MAX_LEN 253

struct dns_source;

struct dns_sock {
    struct dns_source *src;
    struct gy_io io;
    int fd;            /* -1: free slot */
    unsigned events;
};

/* One resolution: the SRV query (if any) and the address queries. */
struct round {
    struct dns_source *src;
    int pending;
    bool failed;
    char why[160];
    uint32_t ttl;
    json_t *instances;
};

struct addr_query {
    struct round *round;
    int port;
};

struct dns_source {
    struct gy_discovery *d;
    char *name;
    int port;          /* 0: SRV */
    char *cluster;
    char *resolver;    /* "IP:PORT" or NULL */
    struct gy_loop loop;
    ares_channel ch;
    bool have_channel;
    struct gy_timer ares_timer;  /* c-ares' own timeouts */
    struct gy_timer next_timer;  /* the next resolution */
    struct dns_sock socks[MAX_SOCKS];
    struct gy_backoff backoff;
    struct round *round;
};

static void start_round(struct dns_source *s);

/* ---- answers ---- */

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Skips a name at *pos; false if malformed. */
static bool skip_name(const unsigned char *msg, int len, int *pos, char **name)
{
    char *n = NULL;
    long enclen;

    if (*pos >= len || ares_expand_name(msg + *pos, msg, len, &n, &enclen) != ARES_SUCCESS)
        return false;
    *pos += (int)enclen;
    if (name != NULL)
        *name = n;
    else
        ares_free_string(n);
    return true;
}

static void lower_ttl(struct round *r, uint32_t ttl)
{
    if (ttl < r->ttl)
        r->ttl = ttl;
}

static void add_instance(struct round *r, const char *host, int port)
{
    json_t *inst = gy_instance_new(host, port, NULL);

    if (inst == NULL || json_array_append_new(r->instances, inst) != 0) {
        r->failed = true;
        snprintf(r->why, sizeof(r->why), "out of memory");
    }
}

static void query_addresses(struct round *r, const char *target, int port);

/*
 * Reads an answer: A/AAAA records become instances at `port`; SRV records start address
 * queries for their targets; the TTLs of the answer (or the SOA's negative TTL when there is no
 * answer) lower the round's TTL. False if the message is malformed.
 */
static bool read_answer(struct round *r, const unsigned char *msg, int len, int port)
{
    int pos = 12;
    unsigned qd, an, ns, targets = 0;
    bool answered = false;

    if (len < 12)
        return false;
    qd = get16(msg + 4), an = get16(msg + 6), ns = get16(msg + 8);
    for (unsigned i = 0; i < qd; i++) {
        if (!skip_name(msg, len, &pos, NULL) || pos + 4 > len)
            return false;
        pos += 4;
    }
    for (unsigned i = 0; i < an + ns; i++) {
        if (!skip_name(msg, len, &pos, NULL) || pos + 10 > len)
            return false;
        unsigned type = get16(msg + pos), cls = get16(msg + pos + 2), rdlen = get16(msg + pos + 8);
        uint32_t ttl = get32(msg + pos + 4);
        const unsigned char *rd = msg + pos + 10;
        char text[INET6_ADDRSTRLEN];
        pos += 10;
        if (pos + (int)rdlen > len)
            return false;
        if (cls != CLASS_IN)
            goto next;
        if (i < an && (type == RR_A || type == RR_AAAA || type == RR_SRV || type == RR_CNAME)) {
            lower_ttl(r, ttl);
            answered = true;
        }
        if (i < an && type == RR_A && rdlen == 4 && inet_ntop(AF_INET, rd, text, sizeof(text)) != NULL) {
            add_instance(r, text, port);
        } else if (i < an && type == RR_AAAA && rdlen == 16 && inet_ntop(AF_INET6, rd, text, sizeof(text)) != NULL) {
            add_instance(r, text, port);
        } else if (i < an && type == RR_SRV && rdlen > 6) {
            int tpos = pos + 6;
            char *target = NULL;
            if (!skip_name(msg, len, &tpos, &target))
                return false;
            if (target[0] != '\0' && get16(rd + 4) != 0 && targets++ < MAX_TARGETS) /* "." means no service */
                query_addresses(r, target, (int)get16(rd + 4));
            ares_free_string(target);
        } else if (i >= an && !answered && type == RR_SOA && rdlen >= 22) {
            uint32_t minimum = get32(rd + rdlen - 4);
            lower_ttl(r, ttl < minimum ? ttl : minimum);
        }
    next:
        pos += (int)rdlen;
    }
    return true;
}

/* ---- one resolution ---- */

static uint32_t clamp_ttl(uint32_t ttl)
{
    return ttl < TTL_MIN_S ? TTL_MIN_S : ttl > TTL_MAX_S ? TTL_MAX_S : ttl;
}

static void finish_round(struct round *r)
{
    struct dns_source *s = r->src;
    json_t *snap;

    s->round = NULL;
    if (gy_discovery_stopping(s->d)) {
        /* the channel is being destroyed: nothing to report */
    } else if (r->failed) {
        gy_discovery_fail(s->d, "%s: %s", s->name, r->why);
        gy_timer_start(&s->loop, &s->next_timer, gy_backoff_next(&s->backoff));
    } else if ((snap = json_object()) != NULL) {
        json_object_set(snap, s->cluster, r->instances);
        gy_snapshot_finish(snap);
        gy_discovery_publish(s->d, snap);
        gy_backoff_reset(&s->backoff);
        gy_timer_start(&s->loop, &s->next_timer, (uint64_t)clamp_ttl(r->ttl == UINT32_MAX ? TTL_NEGATIVE_S : r->ttl) * 1000);
    }
    json_decref(r->instances);
    free(r);
}

static void query_done(struct round *r)
{
    if (--r->pending == 0)
        finish_round(r);
}

/* The outcome of one query: its answer, or "no such records", or a failure of the round. */
static void on_answer(struct round *r, int status, unsigned char *abuf, int alen, int port)
{
    if (status == ARES_SUCCESS || status == ARES_ENODATA || status == ARES_ENOTFOUND) {
        if (abuf != NULL && !read_answer(r, abuf, alen, port) && status == ARES_SUCCESS) {
            r->failed = true;
            snprintf(r->why, sizeof(r->why), "malformed answer");
        }
    } else if (!r->failed) {
        r->failed = true;
        snprintf(r->why, sizeof(r->why), "%s", ares_strerror(status));
    }
}

static void on_addr(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct addr_query *q = arg;
    struct round *r = q->round;

    (void)timeouts;
    on_answer(r, status, abuf, alen, q->port);
    free(q);
    query_done(r);
}

static void query_addresses(struct round *r, const char *target, int port)
{
    static const int types[] = { RR_A, RR_AAAA };

    for (size_t i = 0; i < 2; i++) {
        struct addr_query *q = malloc(sizeof(*q));
        if (q == NULL) {
            r->failed = true;
            snprintf(r->why, sizeof(r->why), "out of memory");
            return;
        }
        q->round = r;
        q->port = port;
        r->pending++;
        if (r->src->port != 0) /* a name from the spec: the search list applies */
            ares_search(r->src->ch, target, CLASS_IN, types[i], on_addr, q);
        else
            ares_query(r->src->ch, target, CLASS_IN, types[i], on_addr, q);
    }
}

static void on_srv(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct round *r = arg;

    (void)timeouts;
    on_answer(r, status, abuf, alen, 0);
    query_done(r);
}

/* ---- c-ares on the loop ---- */

static void rearm_ares_timer(struct dns_source *s)
{
    struct timeval tv, *t = s->have_channel ? ares_timeout(s->ch, NULL, &tv) : NULL;

    if (t == NULL) {
        gy_timer_stop(&s->loop, &s->ares_timer);
        return;
    }
    gy_timer_start(&s->loop, &s->ares_timer, (uint64_t)t->tv_sec * 1000 + (uint64_t)t->tv_usec / 1000 + 1);
}

static void on_ares_timer(struct gy_timer *t)
{
    struct dns_source *s = GY_CONTAINER_OF(t, struct dns_source, ares_timer);

    ares_process_fd(s->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm_ares_timer(s);
}

static bool readable_now(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    return poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

/* The loop is edge-triggered and c-ares may read a TCP answer in several calls: keep calling
 * while the socket still has data and c-ares still wants it. */
static void on_sock(struct gy_io *io, unsigned events)
{
    struct dns_sock *k = GY_CONTAINER_OF(io, struct dns_sock, io);
    struct dns_source *s = k->src;
    int fd = k->fd;

    ares_process_fd(s->ch, (events & GY_IO_READ) ? fd : ARES_SOCKET_BAD,
                    (events & GY_IO_WRITE) && (k->events & GY_IO_WRITE) ? fd : ARES_SOCKET_BAD);
    for (int i = 0; i < 64 && k->fd == fd && (k->events & GY_IO_READ) && readable_now(fd); i++)
        ares_process_fd(s->ch, fd, ARES_SOCKET_BAD);
    rearm_ares_timer(s);
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns_source *s = data;
    unsigned events = (readable ? GY_IO_READ : 0) | (writable ? GY_IO_WRITE : 0);
    struct dns_sock *k = NULL, *free_slot = NULL;

    for (int i = 0; i < MAX_SOCKS; i++) {
        if (s->socks[i].fd == fd)
            k = &s->socks[i];
        else if (s->socks[i].fd < 0 && free_slot == NULL)
            free_slot = &s->socks[i];
    }
    if (k != NULL && k->events == events)
        return;
    if (k != NULL) {
        gy_io_stop(&k->io);
        k->fd = -1;
    } else {
        k = free_slot;
    }
    if (events == 0 || k == NULL)
        return; /* c-ares opens at most a few sockets per server; more would time out */
    k->fd = fd;
    k->events = events;
    if (gy_io_start(&s->loop, &k->io, fd, events, on_sock) != 0)
        k->fd = -1;
}

static int open_channel(struct dns_source *s)
{
    struct ares_options o = { 0 };
    int rc;

    o.sock_state_cb = sock_state;
    o.sock_state_cb_data = s;
    o.timeout = 2000;
    o.tries = 2;
    if ((rc = ares_init_options(&s->ch, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES)) != ARES_SUCCESS)
        return rc;
    s->have_channel = true;
    if (s->resolver != NULL && (rc = ares_set_servers_ports_csv(s->ch, s->resolver)) != ARES_SUCCESS)
        return rc;
    return ARES_SUCCESS;
}

static void start_round(struct dns_source *s)
{
    struct round *r;

    if (s->round != NULL || gy_discovery_stopping(s->d))
        return;
    if ((r = calloc(1, sizeof(*r))) == NULL || (r->instances = json_array()) == NULL) {
        free(r);
        gy_discovery_fail(s->d, "out of memory");
        gy_timer_start(&s->loop, &s->next_timer, gy_backoff_next(&s->backoff));
        return;
    }
    r->src = s;
    r->ttl = UINT32_MAX;
    r->pending = 1; /* held while the queries are being sent, so none can finish the round early */
    s->round = r;
    if (s->port != 0) {
        query_addresses(r, s->name, s->port);
    } else {
        r->pending++;
        ares_search(s->ch, s->name, CLASS_IN, RR_SRV, on_srv, r);
    }
    query_done(r);
    rearm_ares_timer(s);
}

static void on_next(struct gy_timer *t)
{
    start_round(GY_CONTAINER_OF(t, struct dns_source, next_timer));
}

/* ---- the source ---- */

static void on_stop(struct gy_loop *loop, void *arg)
{
    (void)arg;
    gy_loop_stop(loop);
}

static void dns_run(struct gy_discovery *d)
{
    struct dns_source *s = d->impl;
    int rc = open_channel(s);

    if (rc != ARES_SUCCESS) {
        gy_discovery_fail(d, "cannot set up the resolver: %s", ares_strerror(rc));
        gy_loop_run(&s->loop); /* until stopped: the spec was checked, so this is the environment */
    } else {
        start_round(s);
        if (!gy_discovery_stopping(d))
            gy_loop_run(&s->loop);
    }
    gy_timer_stop(&s->loop, &s->next_timer);
    gy_timer_stop(&s->loop, &s->ares_timer);
    if (s->have_channel)
        ares_destroy(s->ch); /* ends the queries in flight: their callbacks see `stopping` */
    s->have_channel = false;
}

static void dns_interrupt(struct gy_discovery *d)
{
    struct dns_source *s = d->impl;

    while (gy_loop_post(&s->loop, on_stop, NULL) != 0)
        usleep(1000);
}

static void dns_dispose(struct gy_discovery *d)
{
    struct dns_source *s = d->impl;

    if (s == NULL)
        return;
    gy_loop_dispose(&s->loop);
    free(s->name);
    free(s->cluster);
    free(s->resolver);
    free(s);
    d->impl = NULL;
}

static bool valid_hostname(const char *s, size_t len)
{
    if (len == 0 || len > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              c == '_'))
            return false;
    }
    return true;
}

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;

static void ares_global_init(void)
{
    ares_library_init(ARES_LIB_INIT_ALL);
}

static int dns_init(struct gy_discovery *d, const char *arg, char *err, size_t errlen)
{
    const char *eq = strchr(arg, '='), *at, *colon, *cluster;
    char resolver[64];
    struct dns_source *s;
    size_t nlen, clen;
    int port = 0;

    if (eq == NULL)
        return gy_discovery_bad_spec(err, errlen, "discovery source \"%s\": want dns:NAME[:PORT]=CLUSTER[@RESOLVER]",
                                     d->spec);
    colon = memchr(arg, ':', (size_t)(eq - arg));
    nlen = (size_t)((colon != NULL ? colon : eq) - arg);
    if (!valid_hostname(arg, nlen))
        return gy_discovery_bad_spec(err, errlen, "discovery source \"%s\": \"%.*s\" is not a DNS name", d->spec,
                                     (int)nlen, arg);
    if (colon != NULL && (port = gy_parse_port(colon + 1, (size_t)(eq - colon - 1))) < 0)
        return gy_discovery_bad_spec(err, errlen, "discovery source \"%s\": the port must be 1..65535", d->spec);
    cluster = eq + 1;
    at = strchr(cluster, '@');
    clen = at != NULL ? (size_t)(at - cluster) : strlen(cluster);
    if (clen == 0)
        return gy_discovery_bad_spec(err, errlen, "discovery source \"%s\": no cluster name after '='", d->spec);
    if (at != NULL && gy_parse_hostport(at + 1, resolver, sizeof(resolver), false) != 0)
        return gy_discovery_bad_spec(err, errlen, "discovery source \"%s\": resolver \"%s\" is not IP[:PORT]", d->spec,
                                     at + 1);
    pthread_once(&ares_once, ares_global_init);
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return gy_discovery_bad_spec(err, errlen, "out of memory");
    d->impl = s;
    s->d = d;
    s->port = port;
    for (int i = 0; i < MAX_SOCKS; i++) {
        s->socks[i].fd = -1;
        s->socks[i].src = s;
    }
    gy_timer_init(&s->ares_timer, on_ares_timer);
    gy_timer_init(&s->next_timer, on_next);
    gy_backoff_init(&s->backoff, d->rng);
    s->name = strndup(arg, nlen);
    s->cluster = strndup(cluster, clen);
    s->resolver = at != NULL ? strdup(resolver) : NULL;
    if (s->name == NULL || s->cluster == NULL || (at != NULL && s->resolver == NULL) || gy_loop_init(&s->loop) != 0) {
        free(s->name);
        free(s->cluster);
        free(s->resolver);
        free(s);
        d->impl = NULL;
        return gy_discovery_bad_spec(err, errlen, "out of resources");
    }
    return 0;
}

const struct gy_discovery_ops gy_discovery_dns_ops = {
    .scheme = "dns",
    .init = dns_init,
    .run = dns_run,
    .interrupt = dns_interrupt,
    .dispose = dns_dispose,
};
