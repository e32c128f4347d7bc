/*
 * The HTTP/1.1 side of a downstream connection: request heads one at a time (pipelined requests
 * wait in the buffer), request bodies decoded straight into the upstream codec, response heads
 * and bodies written straight into the connection buffer (re-chunked when the length is not
 * known), keep-alive, and `Upgrade: h2c` to HTTP/2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "proxy/proxy.h"

#define RUN_BUDGET 32
#define RESP_HEAD_MAX (64u * 1024u)

static struct gy_h1_limits listener_limits(const struct gy_listener *l)
{
    return (struct gy_h1_limits){
        .max_request_line = gy_h1_default_limits.max_request_line,
        .max_head_bytes = (size_t)l->max_request_headers_kb * 1024,
        .max_headers = l->max_headers < GY_MAX_REQ_HEADERS ? l->max_headers : GY_MAX_REQ_HEADERS,
    };
}

static void to_head(const struct gy_h1_request *r, struct gy_req_head *h)
{
    memset(h, 0, sizeof(*h));
    h->method = r->method;
    h->scheme = GY_SLICE_LIT("http");
    h->authority = r->host;
    h->path = r->path;
    h->query = r->query;
    h->target = r->target;
    h->headers = r->headers;
    h->nheaders = r->nheaders;
    h->body = r->body != GY_H1_BODY_NONE;
    h->chunked = r->body == GY_H1_BODY_CHUNKED;
    h->content_length = r->body == GY_H1_BODY_LENGTH ? (int64_t)r->content_length : -1;
    h->keep_alive = r->keep_alive;
    h->expect_continue = r->expect_continue;
    h->is_head = r->is_head;
    h->is_connect = r->is_connect;
    h->upgrade = r->upgrade;
    h->version = r->minor_version == 0 ? 10 : 11;
    if (r->upgrade) {
        const struct gy_header *up = gy_header_find(r->headers, r->nheaders, GY_SLICE_LIT("upgrade"));
        h->protocol = up != NULL ? gy_slice_trim(up->value) : GY_SLICE_NULL;
    }
    h->head_len = r->head_len;
}

static int parse(struct gy_dconn *dc, struct gy_h1_request *r, struct gy_h1_error *err)
{
    struct gy_h1_limits lim = listener_limits(dc->lcfg);

    return gy_h1_parse_request(gy_buf_start(&dc->rbuf), gy_buf_len(&dc->rbuf), r, dc->w->hdrs, &lim, err);
}

/* ---- the stream's side ---- */

static int head_again(struct gy_stream *s, struct gy_req_head *req)
{
    struct gy_h1_request r;
    struct gy_h1_error err;
    int rc = parse(s->dc, &r, &err);

    if (rc <= 0)
        return rc < 0 ? rc : GY_EPARSE;
    to_head(&r, req);
    return 0;
}

static void head_done(struct gy_stream *s, const struct gy_req_head *req)
{
    gy_buf_consume(&s->dc->rbuf, req->head_len);
}

static bool req_pump(struct gy_stream *s)
{
    struct gy_dconn *dc = s->dc;
    bool progress = false;

    for (;;) {
        while (gy_buf_len(&dc->rbuf) > 0) {
            size_t room = s->up->req_room(s);
            struct gy_slice data = GY_SLICE_NULL;
            bool done = false;
            if (room == 0)
                return progress; /* upstream is slower: stop reading the client */
            long used = gy_h1_bodydec_next(&s->req_dec, gy_buf_start(&dc->rbuf), gy_buf_len(&dc->rbuf), room, &data,
                                           &done);
            if (used < 0) {
                gy_stat_inc(s->lcfg->stats, dc->w->id, GY_C_CX_PROTOCOL_ERROR);
                gy_stream_local_reply(s, 400, GY_RF_DPE, "malformed chunked request body");
                return true;
            }
            if (data.len > 0) {
                s->up->req_data(s, data.ptr, data.len);
                gy_attempt_replay_add(s, data.ptr, data.len);
                s->bytes_rx += data.len;
            }
            gy_buf_consume(&dc->rbuf, (size_t)used);
            progress |= used > 0;
            if (done) {
                s->req_done = true;
                return true;
            }
            if (used == 0 && data.len == 0)
                break;
        }
        if (s->up->req_room(s) == 0)
            return progress;
        if (gy_dconn_read(dc)) {
            progress = true;
            continue;
        }
        if (dc->eof && s->req_dec.framing == GY_H1_BODY_TUNNEL) { /* the client closed its side of a tunnel */
            s->req_done = true;
            return true;
        }
        if (dc->eof) { /* the client went away in the middle of its request */
            gy_stream_reset(s, GY_RF_DC);
            return true;
        }
        return progress;
    }
}

static size_t resp_room(struct gy_stream *s)
{
    struct gy_dconn *dc = s->dc;

    if (gy_buf_reserve(&dc->w->bufs, &dc->wbuf) != 0)
        return 0;
    size_t room = gy_buf_room(&dc->wbuf);
    if (s->resp_chunked_out)
        return room < 32 ? 0 : room - 24;
    return room;
}

static int informational(struct gy_stream *s, const struct gy_resp_head *h)
{
    struct gy_dconn *dc = s->dc;

    if (s->version != 11)
        return 0;
    if (gy_buf_reserve(&dc->w->bufs, &dc->wbuf) != 0)
        return GY_EAGAIN;
    if (h->status == 100) { /* ours, for Expect: 100-continue */
        if (gy_buf_room(&dc->wbuf) < 25)
            return GY_EAGAIN;
        gy_buf_append(&dc->wbuf, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        return 0;
    }
    return gy_fwd_informational(h, &dc->wbuf) == 0 ? 0 : GY_EAGAIN;
}

static int resp_head(struct gy_stream *s, const struct gy_resp_head *h)
{
    struct gy_dconn *dc = s->dc;
    struct gy_worker *w = dc->w;

    if (h->status < 200 && !h->tunnel)
        return informational(s, h);
    s->resp_chunked_out = s->resp_eof_out = false;
    if (h->body && h->content_length < 0 && !h->tunnel) {
        s->resp_chunked_out = s->version == 11;
        s->resp_eof_out = !s->resp_chunked_out;
    }
    s->resp_body_out = h->body;
    bool keep = s->client_keep_alive && !s->resp_eof_out && !dc->closing && !w->draining && s->req_done && !h->tunnel;
    if (gy_buf_reserve(&w->bufs, &dc->wbuf) != 0)
        return GY_EAGAIN;
    size_t before = gy_buf_len(&dc->wbuf);
    int rc = gy_fwd_response_head(s, h, &dc->wbuf, keep);
    if (rc == GY_EAGAIN && gy_buf_len(&dc->wbuf) == 0)
        rc = gy_buf_grow(&w->bufs, &dc->wbuf, RESP_HEAD_MAX + 8192) == 0 ? gy_fwd_response_head(s, h, &dc->wbuf, keep)
                                                                          : GY_ENOMEM;
    if (rc != 0)
        return rc;
    if (!keep || h->tunnel)
        dc->closing = true;
    if (s->route.rule != NULL && s->route.rule->ntap > 0) { /* taps get the head as forwarded */
        size_t n = gy_buf_len(&dc->wbuf) - before;
        s->resp_head = gy_pool_dup(&s->pool, gy_slice(dc->wbuf.data + dc->wbuf.tail - n, n));
    }
    return 0;
}

static void resp_data(struct gy_stream *s, const char *p, size_t n)
{
    gy_h1_put_body(&s->dc->wbuf, p, n, s->resp_chunked_out);
}

static int resp_end(struct gy_stream *s, const struct gy_header *trailers, unsigned ntrailers)
{
    (void)trailers, (void)ntrailers;
    if (s->resp_chunked_out)
        s->need_last_chunk = true;
    if (!s->req_done)
        s->dc->closing = true;
    return 0;
}

static int local_reply(struct gy_stream *s, int status, const char *extra, const char *body, size_t len, bool close)
{
    struct gy_dconn *dc = s->dc;

    if (gy_buf_reserve(&dc->w->bufs, &dc->wbuf) != 0 ||
        gy_write_local_response(&dc->wbuf, status, extra, body, len, close, s->is_head) != 0)
        return GY_ENOMEM;
    if (close)
        dc->closing = true;
    return 0;
}

static bool flush(struct gy_stream *s)
{
    struct gy_dconn *dc = s->dc;

    if (s->need_last_chunk && gy_buf_reserve(&dc->w->bufs, &dc->wbuf) == 0 && gy_buf_room(&dc->wbuf) >= 5) {
        gy_buf_append(&dc->wbuf, "0\r\n\r\n", 5);
        s->need_last_chunk = false;
    }
    if (!dc->can_write || gy_buf_len(&dc->wbuf) == 0)
        return false;
    size_t before = gy_buf_len(&dc->wbuf);
    if (!gy_dconn_flush(dc)) {
        gy_stream_reset(s, GY_RF_DC);
        return true;
    }
    return gy_buf_len(&dc->wbuf) != before;
}

static bool finished(const struct gy_stream *s)
{
    if (s->reset)
        return true;
    return s->resp_done && !s->need_last_chunk && gy_buf_len(&s->dc->wbuf) == 0;
}

static void reset(struct gy_stream *s)
{
    s->dc->closing = true;
}

static void wake(struct gy_stream *s)
{
    gy_dconn_run(s->dc);
}

const struct gy_down_ops gy_down_h1 = {
    .name = "http/1.1",
    .head_again = head_again,
    .head_done = head_done,
    .req_pump = req_pump,
    .resp_room = resp_room,
    .resp_head = resp_head,
    .resp_data = resp_data,
    .resp_end = resp_end,
    .local_reply = local_reply,
    .flush = flush,
    .finished = finished,
    .reset = reset,
    .wake = wake,
};

/* ---- the connection ---- */

static void end_stream(struct gy_dconn *dc)
{
    struct gy_stream *s = dc->stream;
    bool reset = s->reset;

    dc->stream = NULL;
    dc->nrequests++;
    gy_stream_free(s);
    if (reset) {
        gy_dconn_close(dc);
        return;
    }
    if (dc->w->draining || !gy_dconn_follow_config(dc))
        dc->closing = true;
    if (!dc->closing)
        gy_dconn_set_timer(dc, gy_buf_len(&dc->rbuf) ? GY_DT_HEADER : GY_DT_IDLE,
                           gy_buf_len(&dc->rbuf) ? dc->lcfg->request_headers_timeout_ms : dc->lcfg->idle_timeout_ms);
}

/* Answers a request that never became a proper stream (bad head, header timeout). */
static void reject(struct gy_dconn *dc, int status, const char *reason)
{
    struct gy_stream *s = gy_stream_new(dc);

    if (s == NULL) {
        gy_dconn_close(dc);
        return;
    }
    dc->stream = s;
    dc->closing = true;
    gy_buf_consume(&dc->rbuf, gy_buf_len(&dc->rbuf));
    gy_stat_inc(dc->lcfg->stats, dc->w->id, GY_C_CX_PROTOCOL_ERROR);
    gy_stream_local_reply(s, status, status == 408 ? 0 : GY_RF_DPE, reason);
}

/* `Upgrade: h2c` with HTTP2-Settings on a bodiless request of an http_auto listener: answers 101
 * and goes on in HTTP/2, the request becoming stream 1. Returns true when it did. */
static bool upgrade_h2c(struct gy_dconn *dc, const struct gy_req_head *req)
{
    const struct gy_header *up = gy_header_find(req->headers, req->nheaders, GY_SLICE_LIT("upgrade"));
    const struct gy_header *st = gy_header_find(req->headers, req->nheaders, GY_SLICE_LIT("http2-settings"));
    static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n";

    if (!req->upgrade || up == NULL || st == NULL || req->body || dc->lcfg->protocol != GY_PROTO_HTTP_AUTO ||
        dc->transport != NULL || !gy_slice_eqi(gy_slice_trim(up->value), GY_SLICE_LIT("h2c")))
        return false;
    if (gy_buf_reserve(&dc->w->bufs, &dc->wbuf) != 0 || gy_buf_room(&dc->wbuf) < sizeof(resp))
        return false;
    gy_buf_append(&dc->wbuf, resp, sizeof(resp) - 1);
    dc->ops = &gy_down_h2;
    if (gy_h2d_start(dc, req, st->value.ptr, st->value.len) != 0) {
        gy_dconn_close(dc);
        return true;
    }
    return true;
}

/* Returns 1 when a stream was started (or the connection changed), 0 when more bytes are needed. */
static int try_request(struct gy_dconn *dc)
{
    struct gy_worker *w = dc->w;
    struct gy_h1_request r;
    struct gy_h1_error err;
    struct gy_req_head req;

    if (gy_buf_len(&dc->rbuf) == 0)
        return 0;
    /* A reload while the connection was idle: the request that starts now gets the new config
     * (a connection whose listener is gone keeps the old one and closes after this request). */
    gy_dconn_follow_config(dc);
    const struct gy_listener *l = dc->lcfg;
    struct gy_h1_limits lim = listener_limits(l);
    int rc = parse(dc, &r, &err);
    if (rc == GY_EAGAIN) {
        if (gy_buf_room(&dc->rbuf) == 0 &&
            gy_buf_grow(&w->bufs, &dc->rbuf, (uint32_t)lim.max_head_bytes + 1024) != 0) {
            reject(dc, 431, "request headers too large");
            return 1;
        }
        if (dc->timer_mode != GY_DT_HEADER)
            gy_dconn_set_timer(dc, GY_DT_HEADER, l->request_headers_timeout_ms);
        return 0;
    }
    if (rc < 0) {
        gy_debug("conn %s: bad request: %d %s", dc->peer_ip, err.status, err.reason);
        reject(dc, err.status, err.reason);
        return 1;
    }
    to_head(&r, &req);
    if (dc->nrequests == 0 && upgrade_h2c(dc, &req))
        return 1;
    struct gy_stream *s = gy_stream_new(dc);
    if (s == NULL) {
        gy_dconn_close(dc);
        return 1;
    }
    dc->stream = s;
    gy_dconn_set_timer(dc, GY_DT_NONE, 0);
    gy_stream_start(s, &req);
    return 1;
}

/* Between requests: flush, close if asked, else parse the next head. Returns true to go on. */
static bool run_between(struct gy_dconn *dc)
{
    struct gy_worker *w = dc->w;

    if (gy_buf_len(&dc->wbuf) > 0) {
        if (!gy_dconn_flush(dc)) {
            gy_dconn_close(dc);
            return false;
        }
        if (gy_buf_len(&dc->wbuf) > 0)
            return false;
    }
    if (dc->closing || (w->draining && gy_buf_len(&dc->rbuf) == 0)) {
        gy_dconn_begin_close(dc);
        return false;
    }
    if (try_request(dc))
        return true;
    if (gy_dconn_read(dc))
        return true;
    if (dc->eof) {
        gy_dconn_close(dc);
        return false;
    }
    return false;
}

void gy_h1d_run(struct gy_dconn *dc)
{
    struct gy_worker *w = dc->w;
    int budget = RUN_BUDGET;

    for (; budget > 0; budget--) {
        if (dc->ops != &gy_down_h1) { /* upgraded to HTTP/2 */
            gy_dconn_run(dc);
            return;
        }
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

void gy_h1d_timer(struct gy_dconn *dc)
{
    if (dc->timer_mode == GY_DT_HEADER && dc->stream == NULL && gy_buf_len(&dc->rbuf) > 0) {
        gy_stat_inc(dc->lcfg->stats, dc->w->id, GY_C_RQ_TIMEOUT);
        reject(dc, 408, "request header timeout");
        gy_dconn_run(dc);
        return;
    }
    gy_dconn_close(dc);
}

void gy_h1d_close(struct gy_dconn *dc)
{
    if (dc->stream != NULL) {
        gy_stream_free(dc->stream);
        dc->stream = NULL;
    }
}
