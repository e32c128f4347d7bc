/*
 * Downstream (client) connections, whatever their protocol: accepting, socket I/O, the TLS
 * handshake, telling HTTP/1.1 from HTTP/2 (listener protocol, ALPN, or the connection preface),
 * timers, and closing politely. The codecs (down_h1.c, down_h2.c) do the rest.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "proxy/proxy.h"
#include "tls/tls.h"

#define LINGER_MS 2000

ssize_t gy_conn_read(int fd, struct gy_transport *t, struct gy_buf *b, bool *can_read, bool *eof, bool hup)
{
    size_t room = gy_buf_room(b);

    if (room == 0)
        return 0;
    for (;;) {
        bool more = false;
        ssize_t n;
        if (t != NULL) {
            n = t->ops->read(t, fd, b->data + b->tail, room, &more);
        } else {
            n = recv(fd, b->data + b->tail, room, 0);
            if (n < 0)
                n = errno == EINTR ? -EINTR : (errno == EAGAIN || errno == EWOULDBLOCK) ? GY_EAGAIN : GY_EIO;
        }
        if (n > 0) {
            b->tail += (uint32_t)n;
            if ((size_t)n < room && !hup && !more)
                *can_read = false; /* drained: edge-triggered epoll tells us about new data */
            return n;
        }
        if (n == 0) {
            *eof = true;
            *can_read = false;
            return 0;
        }
        if (n == -EINTR)
            continue;
        *can_read = false;
        if (n != GY_EAGAIN) {
            *eof = true;
            return -1;
        }
        return 0;
    }
}

ssize_t gy_conn_write(int fd, struct gy_transport *t, struct gy_buf *b, bool *can_write)
{
    ssize_t total = 0;

    while (gy_buf_len(b) > 0) {
        ssize_t n;
        if (t != NULL) {
            n = t->ops->write(t, fd, gy_buf_start(b), gy_buf_len(b));
        } else {
            n = send(fd, gy_buf_start(b), gy_buf_len(b), MSG_NOSIGNAL);
            if (n < 0)
                n = errno == EINTR ? -EINTR : (errno == EAGAIN || errno == EWOULDBLOCK) ? GY_EAGAIN : GY_EIO;
        }
        if (n > 0) {
            gy_buf_consume(b, (size_t)n);
            total += n;
            continue;
        }
        if (n == -EINTR)
            continue;
        if (n == GY_EAGAIN) {
            *can_write = false;
            return total;
        }
        return -1;
    }
    return total;
}

void gy_dconn_set_timer(struct gy_dconn *dc, int mode, uint32_t ms)
{
    dc->timer_mode = mode;
    if (ms == 0 || mode == GY_DT_NONE)
        gy_timer_stop(&dc->w->loop, &dc->timer);
    else
        gy_timer_start(&dc->w->loop, &dc->timer, ms);
}

void gy_dconn_free(struct gy_dconn *dc)
{
    free(dc);
}

static void close_now(struct gy_dconn *dc)
{
    struct gy_worker *w = dc->w;

    if (dc->freed)
        return;
    dc->freed = true;
    if (dc->ops == &gy_down_h2)
        gy_h2d_close(dc);
    else if (dc->ops != NULL)
        gy_h1d_close(dc);
    gy_timer_stop(&w->loop, &dc->timer);
    gy_task_cancel(&dc->run_task);
    gy_io_stop(&dc->io);
    if (dc->transport != NULL) {
        dc->transport->ops->destroy(dc->transport);
        dc->transport = NULL;
    }
    close(dc->io.fd);
    gy_buf_release(&w->bufs, &dc->rbuf);
    gy_buf_release(&w->bufs, &dc->wbuf);
    gy_stat_dec(dc->lcfg->stats, w->id, GY_C_CX_ACTIVE);
    gy_list_remove(&dc->link);
    w->nconns--;
    gy_wcfg_release(w, dc->wcfg);
    gy_list_insert_tail(&w->dead_conns, &dc->link);
    gy_task_schedule(&w->loop, &w->reap);
}

void gy_dconn_close(struct gy_dconn *dc)
{
    close_now(dc);
}

/* Discards whatever the client still sends after we shut our side, until EOF or the timer. */
static void linger(struct gy_dconn *dc)
{
    char scratch[4096];

    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(dc->io.fd, scratch, sizeof(scratch), 0);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        break;
    }
    close_now(dc);
}

void gy_dconn_begin_close(struct gy_dconn *dc)
{
    if (dc->eof) {
        close_now(dc);
        return;
    }
    if (dc->transport != NULL && !dc->handshaking)
        dc->transport->ops->shutdown(dc->transport, dc->io.fd);
    shutdown(dc->io.fd, SHUT_WR);
    dc->lingering = true;
    gy_buf_release(&dc->w->bufs, &dc->rbuf);
    gy_dconn_set_timer(dc, GY_DT_LINGER, LINGER_MS);
    linger(dc);
}

bool gy_dconn_follow_config(struct gy_dconn *dc)
{
    struct gy_worker *w = dc->w;
    struct gy_config *cfg = w->wcfg->cfg;

    if (dc->retired)
        return false;
    if (dc->wcfg == w->wcfg)
        return true;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        if (strcmp(cfg->listeners[i].key, dc->lcfg->key) == 0) {
            gy_stat_dec(dc->lcfg->stats, w->id, GY_C_CX_ACTIVE);
            gy_wcfg_release(w, dc->wcfg);
            dc->wcfg = gy_wcfg_acquire(w->wcfg);
            dc->lcfg = &cfg->listeners[i];
            gy_stat_inc(dc->lcfg->stats, w->id, GY_C_CX_ACTIVE);
            return true;
        }
    }
    return false;
}

bool gy_dconn_read(struct gy_dconn *dc)
{
    struct gy_worker *w = dc->w;

    if (!dc->can_read || dc->eof || gy_buf_reserve(&w->bufs, &dc->rbuf) != 0)
        return false;
    ssize_t n = gy_conn_read(dc->io.fd, dc->transport, &dc->rbuf, &dc->can_read, &dc->eof, dc->hup);
    if (n > 0)
        gy_stat_add(dc->lcfg->stats, w->id, GY_C_BYTES_RX, (uint64_t)n);
    return n > 0;
}

bool gy_dconn_flush(struct gy_dconn *dc)
{
    if (gy_buf_len(&dc->wbuf) == 0 || !dc->can_write)
        return true;
    ssize_t n = gy_conn_write(dc->io.fd, dc->transport, &dc->wbuf, &dc->can_write);
    if (n < 0)
        return false;
    if (n > 0)
        gy_stat_add(dc->lcfg->stats, dc->w->id, GY_C_BYTES_TX, (uint64_t)n);
    return true;
}

/* Returns true once the TLS handshake is done; a failed one closes the connection. */
static bool drive_handshake(struct gy_dconn *dc)
{
    bool want_write = false;

    /* A client that reset the connection (a scanner, a probe, a load tester that hangs up once
     * its side is done) will never read our Finished or tickets: do not compute them. */
    if (dc->reset && dc->transport->ops->abort_handshake != NULL) {
        dc->transport->ops->abort_handshake(dc->transport);
        close_now(dc);
        return false;
    }
    int rc = dc->transport->ops->handshake(dc->transport, dc->io.fd, &want_write);

    if (rc == GY_EAGAIN)
        return false;
    if (rc != 0) {
        gy_stat_inc(dc->lcfg->stats, dc->w->id, GY_C_CX_PROTOCOL_ERROR);
        close_now(dc);
        return false;
    }
    dc->handshaking = false;
    dc->can_read = dc->can_write = true; /* records may already wait in the TLS buffers */
    return true;
}

/* http_auto without ALPN: the HTTP/2 preface or anything else (HTTP/1.1). Returns false
 * while it cannot tell yet. */
static bool detect(struct gy_dconn *dc)
{
    const char *alpn = dc->transport != NULL ? gy_tls_alpn(dc->transport) : NULL;
    bool sure = false;

    if (dc->lcfg->protocol == GY_PROTO_HTTP2 || (alpn != NULL && strcmp(alpn, "h2") == 0)) {
        dc->ops = &gy_down_h2;
    } else if (dc->lcfg->protocol == GY_PROTO_HTTP || alpn != NULL) {
        dc->ops = &gy_down_h1;
    } else {
        while (gy_buf_len(&dc->rbuf) < 24 && gy_dconn_read(dc))
            ;
        bool h2 = gy_h2_preface_prefix(gy_buf_start(&dc->rbuf), gy_buf_len(&dc->rbuf), &sure);
        if (!sure && !dc->eof)
            return false;
        dc->ops = h2 && sure ? &gy_down_h2 : &gy_down_h1;
    }
    if (dc->ops == &gy_down_h2 && gy_h2d_start(dc, NULL, NULL, 0) != 0) {
        dc->ops = NULL;
        close_now(dc);
        return false;
    }
    if (dc->retired && dc->ops == &gy_down_h2)
        gy_h2d_drain(dc); /* retired during the handshake: GOAWAY right after the preface */
    return true;
}

void gy_dconn_run(struct gy_dconn *dc)
{
    if (dc->freed)
        return;
    if (dc->lingering) {
        linger(dc);
        return;
    }
    if (dc->handshaking && !drive_handshake(dc))
        return;
    if (dc->ops == NULL && !detect(dc)) {
        if (!dc->freed && dc->eof)
            close_now(dc);
        return;
    }
    if (dc->ops == &gy_down_h2)
        gy_h2d_run(dc);
    else
        gy_h1d_run(dc);
}

static void on_io(struct gy_io *io, unsigned events)
{
    struct gy_dconn *dc = GY_CONTAINER_OF(io, struct gy_dconn, io);

    if (events & GY_IO_READ)
        dc->can_read = true;
    if (events & GY_IO_HUP)
        dc->hup = true;
    if (events & GY_IO_ERR)
        dc->reset = true;
    if (events & GY_IO_WRITE)
        dc->can_write = true;
    gy_dconn_run(dc);
}

static void run_task(struct gy_task *t)
{
    gy_dconn_run(GY_CONTAINER_OF(t, struct gy_dconn, run_task));
}

static void on_timer(struct gy_timer *t)
{
    struct gy_dconn *dc = GY_CONTAINER_OF(t, struct gy_dconn, timer);

    if (dc->timer_mode == GY_DT_LINGER || dc->ops == NULL)
        close_now(dc);
    else if (dc->ops == &gy_down_h2)
        gy_h2d_timer(dc);
    else
        gy_h1d_timer(dc);
}

void gy_dconn_accept(struct gy_wlistener *wl, int fd, const struct sockaddr_storage *peer)
{
    struct gy_worker *w = wl->w;
    struct gy_dconn *dc = calloc(1, sizeof(*dc));

    if (dc == NULL) {
        close(fd);
        return;
    }
    dc->w = w;
    dc->wcfg = gy_wcfg_acquire(w->wcfg);
    dc->lcfg = wl->cfg;
    memcpy(&dc->peer, peer, sizeof(*peer));
    gy_addr_format_ip((const struct sockaddr *)peer, dc->peer_ip, sizeof(dc->peer_ip));
    gy_timer_init(&dc->timer, on_timer);
    gy_task_init(&dc->run_task, run_task);
    gy_list_init(&dc->link);
    if (wl->cfg->tls != NULL) {
        if ((dc->transport = gy_tls_server(wl->cfg->tls)) == NULL) {
            gy_wcfg_release(w, dc->wcfg);
            close(fd);
            free(dc);
            return;
        }
        dc->handshaking = true;
    }
    if (gy_io_start(&w->loop, &dc->io, fd, GY_IO_READ | GY_IO_WRITE, on_io) != 0) {
        if (dc->transport != NULL)
            dc->transport->ops->destroy(dc->transport);
        gy_wcfg_release(w, dc->wcfg);
        close(fd);
        free(dc);
        return;
    }
    gy_list_insert_tail(&w->conns, &dc->link);
    w->nconns++;
    gy_stat_inc(dc->lcfg->stats, w->id, GY_C_CX_TOTAL);
    gy_stat_inc(dc->lcfg->stats, w->id, GY_C_CX_ACTIVE);
    gy_dconn_set_timer(dc, GY_DT_HEADER, dc->lcfg->request_headers_timeout_ms);
    if (!dc->handshaking && dc->lcfg->protocol != GY_PROTO_HTTP_AUTO)
        detect(dc);
}

bool gy_listener_same_setup(const struct gy_listener *old, const struct gy_listener *now)
{
    const struct gy_http2_options *a = &old->h2, *b = &now->h2;

    if (old->addrlen != now->addrlen || memcmp(&old->addr, &now->addr, old->addrlen) != 0 ||
        old->protocol != now->protocol || (old->tls == NULL) != (now->tls == NULL) ||
        (old->tls != NULL && !gy_tls_same_setup(old->tls, now->tls)))
        return false;
    return a->max_concurrent_streams == b->max_concurrent_streams &&
           a->initial_stream_window_size == b->initial_stream_window_size &&
           a->initial_connection_window_size == b->initial_connection_window_size &&
           a->max_header_list_size == b->max_header_list_size && a->hpack_table_size == b->hpack_table_size &&
           a->allow_connect == b->allow_connect && a->max_outbound_control_frames == b->max_outbound_control_frames &&
           a->max_inbound_control_frames_per_s == b->max_inbound_control_frames_per_s &&
           a->max_resets_per_s == b->max_resets_per_s && a->max_resets_burst == b->max_resets_burst;
}

void gy_dconn_retire(struct gy_dconn *dc)
{
    if (dc->retired || dc->lingering || dc->freed)
        return;
    dc->retired = true;
    if (dc->ops == &gy_down_h2) {
        gy_h2d_drain(dc);
        return;
    }
    if (dc->ops == NULL)
        return; /* handshake or detection under way: decided after it */
    if (dc->stream != NULL)
        dc->closing = true; /* the answer says connection: close */
    else if (gy_buf_len(&dc->rbuf) == 0 && gy_buf_len(&dc->wbuf) == 0)
        gy_dconn_begin_close(dc);
    /* else a head is arriving: it is served, then the connection closes (follow_config fails) */
}

void gy_dconn_drain(struct gy_dconn *dc)
{
    if (dc->ops == &gy_down_h2) {
        gy_h2d_drain(dc);
        return;
    }
    if (dc->stream == NULL && gy_buf_len(&dc->wbuf) == 0) {
        close_now(dc);
        return;
    }
    dc->closing = true;
}
