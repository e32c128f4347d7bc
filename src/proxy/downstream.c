/*
 * Downstream (client) connections: reading request heads, one stream at a time (pipelined
 * requests wait in the buffer), keep-alive, timeouts, and closing politely.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "proxy/proxy.h"

#define LINGER_MS 2000
#define RUN_BUDGET 32

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

static void set_timer(struct gy_dconn *dc, int mode, uint32_t ms)
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
    if (dc->stream != NULL) {
        gy_stream_free(dc->stream);
        dc->stream = NULL;
    }
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

static void begin_close(struct gy_dconn *dc)
{
    if (dc->eof) {
        close_now(dc);
        return;
    }
    shutdown(dc->io.fd, SHUT_WR);
    dc->lingering = true;
    gy_buf_release(&dc->w->bufs, &dc->rbuf);
    set_timer(dc, GY_DT_LINGER, LINGER_MS);
    linger(dc);
}

/* When the config changed under a keep-alive connection, the next request uses the new one. */
static void follow_config(struct gy_dconn *dc)
{
    struct gy_worker *w = dc->w;
    struct gy_config *cfg = w->wcfg->cfg;

    if (dc->wcfg == w->wcfg)
        return;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        if (strcmp(cfg->listeners[i].key, dc->lcfg->key) == 0) {
            gy_stat_dec(dc->lcfg->stats, w->id, GY_C_CX_ACTIVE);
            gy_wcfg_release(w, dc->wcfg);
            dc->wcfg = gy_wcfg_acquire(w->wcfg);
            dc->lcfg = &cfg->listeners[i];
            gy_stat_inc(dc->lcfg->stats, w->id, GY_C_CX_ACTIVE);
            return;
        }
    }
    dc->closing = true; /* its listener is gone: finish and close */
}

static void end_stream(struct gy_dconn *dc)
{
    struct gy_stream *s = dc->stream;
    bool reset = s->reset;

    dc->stream = NULL;
    dc->nrequests++;
    gy_stream_free(s);
    if (reset) {
        close_now(dc);
        return;
    }
    if (dc->w->draining)
        dc->closing = true;
    follow_config(dc);
    if (!dc->closing)
        set_timer(dc, gy_buf_len(&dc->rbuf) ? GY_DT_HEADER : GY_DT_IDLE,
                  gy_buf_len(&dc->rbuf) ? dc->lcfg->request_headers_timeout_ms : dc->lcfg->idle_timeout_ms);
}

/* Answers a request that never became a proper stream (bad head, header timeout). */
static void reject(struct gy_dconn *dc, int status, const char *reason)
{
    struct gy_stream *s = gy_stream_new(dc);

    if (s == NULL) {
        close_now(dc);
        return;
    }
    dc->stream = s;
    dc->closing = true;
    gy_buf_consume(&dc->rbuf, gy_buf_len(&dc->rbuf));
    gy_stat_inc(dc->lcfg->stats, dc->w->id, GY_C_CX_PROTOCOL_ERROR);
    gy_stream_local_reply(s, status, status == 408 ? 0 : GY_RF_DPE, reason);
}

static struct gy_h1_limits listener_limits(const struct gy_listener *l)
{
    return (struct gy_h1_limits){
        .max_request_line = gy_h1_default_limits.max_request_line,
        .max_head_bytes = (size_t)l->max_request_headers_kb * 1024,
        .max_headers = l->max_headers < GY_MAX_REQ_HEADERS ? l->max_headers : GY_MAX_REQ_HEADERS,
    };
}

int gy_dconn_parse_head(struct gy_dconn *dc, struct gy_h1_request *req)
{
    struct gy_h1_limits lim = listener_limits(dc->lcfg);
    struct gy_h1_error err;
    int rc = gy_h1_parse_request(gy_buf_start(&dc->rbuf), gy_buf_len(&dc->rbuf), req, dc->w->hdrs, &lim, &err);

    return rc > 0 ? 0 : rc;
}

/* Returns 1 when a stream was started, 0 when more bytes are needed. */
static int try_request(struct gy_dconn *dc)
{
    struct gy_worker *w = dc->w;
    const struct gy_listener *l = dc->lcfg;
    struct gy_h1_limits lim = listener_limits(l);
    struct gy_h1_request req;
    struct gy_h1_error err;

    if (gy_buf_len(&dc->rbuf) == 0)
        return 0;
    int rc = gy_h1_parse_request(gy_buf_start(&dc->rbuf), gy_buf_len(&dc->rbuf), &req, w->hdrs, &lim, &err);
    if (rc == GY_EAGAIN) {
        if (gy_buf_room(&dc->rbuf) == 0 &&
            gy_buf_grow(&w->bufs, &dc->rbuf, (uint32_t)lim.max_head_bytes + 1024) != 0) {
            reject(dc, 431, "request headers too large");
            return 1;
        }
        if (dc->timer_mode != GY_DT_HEADER)
            set_timer(dc, GY_DT_HEADER, l->request_headers_timeout_ms);
        return 0;
    }
    if (rc < 0) {
        gy_debug("conn %s: bad request: %d %s", dc->peer_ip, err.status, err.reason);
        reject(dc, err.status, err.reason);
        return 1;
    }
    struct gy_stream *s = gy_stream_new(dc);
    if (s == NULL) {
        close_now(dc);
        return 1;
    }
    dc->stream = s;
    set_timer(dc, GY_DT_NONE, 0);
    gy_stream_start(s, &req);
    return 1;
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

/* Between requests: flush, close if asked, else parse the next head. Returns true to go on. */
static bool run_between(struct gy_dconn *dc)
{
    struct gy_worker *w = dc->w;

    if (gy_buf_len(&dc->wbuf) > 0) {
        if (dc->can_write && gy_conn_write(dc->io.fd, dc->transport, &dc->wbuf, &dc->can_write) < 0) {
            close_now(dc);
            return false;
        }
        if (gy_buf_len(&dc->wbuf) > 0)
            return false;
    }
    if (dc->closing || (w->draining && gy_buf_len(&dc->rbuf) == 0)) {
        begin_close(dc);
        return false;
    }
    if (try_request(dc))
        return true;
    if (gy_dconn_read(dc))
        return true;
    if (dc->eof) {
        close_now(dc);
        return false;
    }
    return false;
}

void gy_dconn_run(struct gy_dconn *dc)
{
    struct gy_worker *w = dc->w;
    int budget = RUN_BUDGET;

    if (dc->freed)
        return;
    if (dc->lingering) {
        linger(dc);
        return;
    }
    for (; budget > 0; budget--) {
        if (dc->stream != NULL) {
            bool p = gy_stream_pump(dc->stream);
            if (gy_stream_finished(dc->stream)) {
                end_stream(dc);
                if (dc->freed)
                    return;
                continue;
            }
            if (!p)
                break;
            continue;
        }
        if (!run_between(dc))
            break;
    }
    if (dc->freed)
        return;
    if (budget == 0) {
        gy_task_schedule(&w->loop, &dc->run_task); /* let other connections run */
        return;
    }
    if (dc->stream == NULL) {
        gy_buf_release_if_empty(&w->bufs, &dc->rbuf);
        gy_buf_release_if_empty(&w->bufs, &dc->wbuf);
    }
}

static void on_io(struct gy_io *io, unsigned events)
{
    struct gy_dconn *dc = GY_CONTAINER_OF(io, struct gy_dconn, io);

    if (events & GY_IO_READ)
        dc->can_read = true;
    if (events & GY_IO_HUP)
        dc->hup = true;
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

    switch (dc->timer_mode) {
    case GY_DT_HEADER:
        if (dc->stream == NULL && gy_buf_len(&dc->rbuf) > 0) {
            gy_stat_inc(dc->lcfg->stats, dc->w->id, GY_C_RQ_TIMEOUT);
            reject(dc, 408, "request header timeout");
            gy_dconn_run(dc);
            return;
        }
        close_now(dc);
        return;
    default:
        close_now(dc);
        return;
    }
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
    if (gy_io_start(&w->loop, &dc->io, fd, GY_IO_READ | GY_IO_WRITE, on_io) != 0) {
        gy_wcfg_release(w, dc->wcfg);
        close(fd);
        free(dc);
        return;
    }
    gy_list_insert_tail(&w->conns, &dc->link);
    w->nconns++;
    gy_stat_inc(dc->lcfg->stats, w->id, GY_C_CX_TOTAL);
    gy_stat_inc(dc->lcfg->stats, w->id, GY_C_CX_ACTIVE);
    set_timer(dc, GY_DT_HEADER, dc->lcfg->request_headers_timeout_ms);
}

void gy_dconn_drain(struct gy_dconn *dc)
{
    if (dc->stream == NULL && gy_buf_len(&dc->wbuf) == 0) {
        close_now(dc);
        return;
    }
    dc->closing = true;
}
