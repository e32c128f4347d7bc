/* Upstream connections and the per-worker pools of idle keep-alive connections. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "proxy/proxy.h"
#include "tls/tls.h"

#define POOL_BUCKETS 256

static size_t key_hash(const char *k)
{
    size_t h = 1469598103934665603ull;

    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return h;
}

struct gy_upool *gy_upool_get(struct gy_worker *w, const struct gy_cluster *c, const struct gy_instance *in,
                              struct gy_stats_scope *stats)
{
    char addr[GY_ADDRSTRLEN], key[512];
    struct gy_upool *p;

    if (w->pool_table == NULL) {
        w->pool_table = calloc(POOL_BUCKETS, sizeof(*w->pool_table));
        if (w->pool_table == NULL)
            return NULL;
        w->pool_buckets = POOL_BUCKETS;
    }
    gy_addr_format((const struct sockaddr *)&in->addr, addr, sizeof(addr));
    snprintf(key, sizeof(key), "%s|%s%s", c->name, addr, c->tls != NULL ? "|tls" : "");
    size_t b = key_hash(key) % w->pool_buckets;
    for (p = w->pool_table[b]; p != NULL; p = p->next) {
        if (strcmp(p->key, key) == 0) {
            p->wrefs++;
            p->max_idle = c->max_idle_per_host;
            p->stats = stats;
            return p;
        }
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL || (p->key = strdup(key)) == NULL) {
        free(p);
        return NULL;
    }
    gy_list_init(&p->idle);
    gy_list_init(&p->h2conns);
    p->wrefs = 1;
    p->max_idle = c->max_idle_per_host;
    p->stats = stats;
    memcpy(&p->addr, &in->addr, sizeof(p->addr));
    p->addrlen = in->addrlen;
    p->next = w->pool_table[b];
    w->pool_table[b] = p;
    return p;
}

static void upool_maybe_free(struct gy_worker *w, struct gy_upool *p)
{
    if (p->wrefs > 0 || p->crefs > 0)
        return;
    size_t b = key_hash(p->key) % w->pool_buckets;
    for (struct gy_upool **pp = &w->pool_table[b]; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    free(p->key);
    free(p);
}

static void upool_close_idle(struct gy_upool *p)
{
    while (!gy_list_empty(&p->idle))
        gy_uconn_close(GY_CONTAINER_OF(p->idle.next, struct gy_uconn, link));
    for (struct gy_list *n = p->h2conns.next, *next; n != &p->h2conns; n = next) {
        struct gy_uconn *uc = GY_CONTAINER_OF(n, struct gy_uconn, link);
        next = n->next;
        if (gy_h2u_streams(uc) == 0)
            gy_uconn_close(uc);
    }
}

struct gy_uconn *gy_upool_take_h2(struct gy_upool *p)
{
    for (struct gy_list *n = p->h2conns.next; n != &p->h2conns; n = n->next) {
        struct gy_uconn *uc = GY_CONTAINER_OF(n, struct gy_uconn, link);
        if (gy_h2u_has_room(uc))
            return uc;
    }
    return NULL;
}

void gy_upool_put(struct gy_worker *w, struct gy_upool *p)
{
    if (--p->wrefs == 0) {
        p->crefs++; /* keep p alive while its idle connections close */
        upool_close_idle(p);
        p->crefs--;
    }
    upool_maybe_free(w, p);
}

void gy_upools_close_idle(struct gy_worker *w)
{
    for (size_t b = 0; b < w->pool_buckets; b++) {
        struct gy_upool *p = w->pool_table[b];
        while (p != NULL) {
            struct gy_upool *next = p->next;
            p->crefs++;
            upool_close_idle(p);
            p->crefs--;
            upool_maybe_free(w, p);
            p = next;
        }
    }
}

static void connect_settled(struct gy_uconn *uc)
{
    if (uc->cb_pending) {
        gy_cb_give(uc->pool->stats, GY_CB_PENDING);
        uc->cb_pending = false;
    }
}

static void notify(struct gy_uconn *uc)
{
    if (uc->h2 != NULL)
        gy_h2u_event(uc);
    else if (uc->stream != NULL)
        gy_stream_upstream_event(uc->stream);
    else if (uc->shadow != NULL)
        gy_shadow_event(uc->shadow);
}

static void uconn_timer(struct gy_timer *t)
{
    struct gy_uconn *uc = GY_CONTAINER_OF(t, struct gy_uconn, timer);

    if (uc->state == GY_UC_IDLE) {
        gy_uconn_close(uc);
        return;
    }
    if (uc->state == GY_UC_ACTIVE && !uc->handshaking && uc->h2 != NULL) {
        gy_h2u_timer(uc);
        return;
    }
    if (uc->state == GY_UC_CONNECTING || uc->handshaking) {
        uc->handshaking = false;
        gy_stat_inc(uc->pool->stats, uc->w->id, GY_C_CX_CONNECT_TIMEOUT);
        uc->eof = uc->connect_failed = uc->connect_timed_out = true;
        uc->can_read = uc->can_write = false;
        uc->state = GY_UC_ACTIVE;
        connect_settled(uc);
        notify(uc);
    }
}

/* An idle pooled connection became readable: the upstream closed it or sent garbage. */
static void uconn_idle_event(struct gy_uconn *uc)
{
    char scratch[512];
    bool more = false;
    ssize_t n;

    /* Through TLS, records that carry no data (a TLS 1.3 session ticket, a key update) are
     * consumed and the connection stays; data, EOF or an error while idle closes it. */
    if (uc->transport != NULL)
        n = uc->transport->ops->read(uc->transport, uc->io.fd, scratch, sizeof(scratch), &more);
    else if ((n = recv(uc->io.fd, scratch, sizeof(scratch), MSG_DONTWAIT)) < 0)
        n = errno == EAGAIN || errno == EINTR ? GY_EAGAIN : GY_EIO;
    if (n == GY_EAGAIN)
        return;
    gy_uconn_close(uc);
}

/* Returns true once the TLS handshake is over (done or failed). */
static bool drive_handshake(struct gy_uconn *uc)
{
    bool want_write = false;
    int rc = uc->transport->ops->handshake(uc->transport, uc->io.fd, &want_write);

    if (rc == GY_EAGAIN)
        return false;
    uc->handshaking = false;
    gy_timer_stop(&uc->w->loop, &uc->timer);
    connect_settled(uc);
    if (rc != 0) {
        gy_stat_inc(uc->pool->stats, uc->w->id, GY_C_CX_CONNECT_FAIL);
        uc->eof = uc->connect_failed = true;
        uc->can_read = uc->can_write = false;
    } else {
        uc->can_read = uc->can_write = true;
    }
    return true;
}

static void uconn_on_io(struct gy_io *io, unsigned events)
{
    struct gy_uconn *uc = GY_CONTAINER_OF(io, struct gy_uconn, io);

    if (events & GY_IO_READ)
        uc->can_read = true;
    if (events & GY_IO_WRITE)
        uc->can_write = true;
    if (events & GY_IO_HUP)
        uc->hup = true;
    if (uc->state == GY_UC_IDLE) {
        if (events & (GY_IO_READ | GY_IO_HUP))
            uconn_idle_event(uc);
        return;
    }
    if (uc->state == GY_UC_CONNECTING) {
        if (!(events & (GY_IO_WRITE | GY_IO_HUP)))
            return;
        int err = gy_connect_result(io->fd);
        if (err == 0 && uc->transport != NULL) {
            uc->handshaking = true; /* still "connecting" for timeouts and breakers until TLS is up */
        } else {
            gy_timer_stop(&uc->w->loop, &uc->timer);
            connect_settled(uc);
        }
        uc->state = GY_UC_ACTIVE;
        if (err != 0) {
            gy_stat_inc(uc->pool->stats, uc->w->id, GY_C_CX_CONNECT_FAIL);
            uc->eof = uc->connect_failed = true;
            uc->can_read = uc->can_write = false;
        }
    }
    if (uc->handshaking && !drive_handshake(uc))
        return;
    notify(uc);
}

struct gy_uconn *gy_uconn_open(struct gy_worker *w, struct gy_upool *p, const struct gy_cluster *c,
                               const struct gy_instance *in, enum gy_uc_kind kind, bool *overflow)
{
    bool h2 = kind == GY_UC_HTTP2;
    uint32_t connect_timeout_ms = c->connect_timeout_ms;
    struct gy_uconn *uc;
    int fd;

    *overflow = false;
    if (!gy_cb_take(p->stats, GY_CB_CONNECTIONS)) {
        *overflow = true;
        return NULL;
    }
    if (!gy_cb_take(p->stats, GY_CB_PENDING)) {
        gy_cb_give(p->stats, GY_CB_CONNECTIONS);
        *overflow = true;
        return NULL;
    }
    fd = gy_connect((const struct sockaddr *)&p->addr, p->addrlen);
    if (fd < 0 || (uc = calloc(1, sizeof(*uc))) == NULL) {
        if (fd >= 0)
            close(fd);
        gy_stat_inc(p->stats, w->id, GY_C_CX_CONNECT_FAIL);
        gy_cb_give(p->stats, GY_CB_PENDING);
        gy_cb_give(p->stats, GY_CB_CONNECTIONS);
        return NULL;
    }
    uc->w = w;
    uc->pool = p;
    uc->ops = &gy_up_h1;
    uc->state = GY_UC_CONNECTING;
    uc->cb_pending = true;
    if (c->tls != NULL &&
        (uc->transport = gy_tls_client(c->tls, in->host, kind == GY_UC_HTTP1 ? GY_TLS_ALPN_HTTP11 : GY_TLS_ALPN_H2_HTTP11)) == NULL) {
        close(fd);
        free(uc);
        gy_stat_inc(p->stats, w->id, GY_C_CX_CONNECT_FAIL);
        gy_cb_give(p->stats, GY_CB_PENDING);
        gy_cb_give(p->stats, GY_CB_CONNECTIONS);
        return NULL;
    }
    gy_list_init(&uc->link);
    gy_timer_init(&uc->timer, uconn_timer);
    if (gy_io_start(&w->loop, &uc->io, fd, GY_IO_READ | GY_IO_WRITE, uconn_on_io) != 0) {
        if (uc->transport != NULL)
            uc->transport->ops->destroy(uc->transport);
        close(fd);
        free(uc);
        gy_cb_give(p->stats, GY_CB_PENDING);
        gy_cb_give(p->stats, GY_CB_CONNECTIONS);
        return NULL;
    }
    if (h2 && gy_h2u_open(uc, c) != 0) {
        gy_io_stop(&uc->io);
        if (uc->transport != NULL)
            uc->transport->ops->destroy(uc->transport);
        close(fd);
        free(uc);
        gy_cb_give(p->stats, GY_CB_PENDING);
        gy_cb_give(p->stats, GY_CB_CONNECTIONS);
        return NULL;
    }
    if (h2)
        gy_list_insert_tail(&p->h2conns, &uc->link);
    p->crefs++;
    gy_stat_inc(p->stats, w->id, GY_C_CX_TOTAL);
    gy_stat_inc(p->stats, w->id, GY_C_CX_ACTIVE);
    if (connect_timeout_ms > 0)
        gy_timer_start(&w->loop, &uc->timer, connect_timeout_ms);
    return uc;
}

int gy_uconn_attach(struct gy_uconn *uc, struct gy_stream *s)
{
    if (uc->h2 != NULL)
        return gy_h2u_attach(uc, s);
    uc->stream = s;
    uc->nrequests++;
    s->uc = uc;
    s->up = uc->ops;
    return 0;
}

struct gy_uconn *gy_upool_take(struct gy_upool *p)
{
    struct gy_uconn *uc;

    if (gy_list_empty(&p->idle))
        return NULL;
    uc = GY_CONTAINER_OF(p->idle.next, struct gy_uconn, link);
    gy_list_remove(&uc->link);
    p->nidle--;
    gy_stat_dec(p->stats, uc->w->id, GY_C_CX_IDLE);
    gy_timer_stop(&uc->w->loop, &uc->timer);
    uc->state = GY_UC_ACTIVE;
    uc->reused = true;
    return uc;
}

void gy_uconn_release(struct gy_uconn *uc, bool reusable, uint32_t idle_timeout_ms)
{
    struct gy_upool *p = uc->pool;
    struct gy_worker *w = uc->w;

    uc->stream = NULL;
    uc->shadow = NULL;
    if (!reusable || uc->eof || uc->hup || w->stopping || w->draining || p->wrefs == 0 || p->nidle >= p->max_idle ||
        gy_buf_len(&uc->rbuf) != 0 || gy_buf_len(&uc->wbuf) != 0) {
        gy_uconn_close(uc);
        return;
    }
    gy_buf_release(&w->bufs, &uc->rbuf);
    gy_buf_release(&w->bufs, &uc->wbuf);
    uc->state = GY_UC_IDLE;
    gy_list_insert_head(&p->idle, &uc->link);
    p->nidle++;
    gy_stat_inc(p->stats, w->id, GY_C_CX_IDLE);
    if (idle_timeout_ms > 0)
        gy_timer_start(&w->loop, &uc->timer, idle_timeout_ms);
    /* Something may have arrived already (a close): look once. */
    if (uc->can_read)
        uconn_idle_event(uc);
}

void gy_uconn_close(struct gy_uconn *uc)
{
    struct gy_worker *w = uc->w;
    struct gy_upool *p = uc->pool;

    if (uc->state == GY_UC_IDLE) {
        gy_list_remove(&uc->link);
        p->nidle--;
        gy_stat_dec(p->stats, w->id, GY_C_CX_IDLE);
    }
    if (uc->h2 != NULL) {
        gy_list_remove(&uc->link);
        gy_h2u_free(uc);
    }
    gy_timer_stop(&w->loop, &uc->timer);
    connect_settled(uc);
    gy_cb_give(p->stats, GY_CB_CONNECTIONS);
    gy_io_stop(&uc->io);
    if (uc->transport != NULL) {
        uc->transport->ops->destroy(uc->transport);
        uc->transport = NULL;
    }
    close(uc->io.fd);
    uc->io.fd = -1;
    gy_buf_release(&w->bufs, &uc->rbuf);
    gy_buf_release(&w->bufs, &uc->wbuf);
    gy_stat_dec(p->stats, w->id, GY_C_CX_ACTIVE);
    uc->stream = NULL;
    uc->shadow = NULL;
    uc->pool = NULL;
    if (--p->crefs == 0)
        p->h1_alpn = false; /* the next HTTP/2 attempt offers h2 again */
    upool_maybe_free(w, p);
    /* Events for it may still be queued in this batch: free after it. */
    gy_list_insert_tail(&w->dead, &uc->link);
    gy_task_schedule(&w->loop, &w->reap);
}
