/*
 * HTTP/2 downstream connections: prior knowledge (`http2` listeners, or the preface on
 * `http_auto`), `Upgrade: h2c`, and ALPN "h2" on TLS listeners all end here. Each HTTP/2 stream
 * is a gy_stream; request bodies wait in the stream's bounded buffer (at most the stream window:
 * WINDOW_UPDATE goes out only as bytes leave for the upstream), response bodies in another, read
 * by nghttp2 as it frames DATA within the client's windows. One slow stream stalls only itself.
 * Streams touched by an event are put on a ready list and run by the connection, which then
 * sends what nghttp2 has to send.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "http/h2.h"
#include "proxy/proxy.h"

#define RUN_ROUNDS 64

struct gy_h2d {
    struct gy_h2 h2;
    struct gy_dconn *dc;
    struct gy_list streams;          /* gy_stream.link */
    struct gy_list ready;            /* gy_stream.ready */
    unsigned nstreams;
    bool goaway;                     /* GOAWAY queued: no new streams, close after the last */
    bool fatal;                      /* the session failed: send what is queued, then close */
};

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

bool gy_h2_preface_prefix(const char *buf, size_t len, bool *sure)
{
    size_t n = len < 24 ? len : 24;
    bool match = n > 0 && memcmp(buf, preface, n) == 0;

    *sure = len >= 24 || (n > 0 && !match);
    return match;
}

static struct gy_h2d *conn_of(struct gy_stream *s)
{
    return s->dc->h2;
}

static void mark_ready(struct gy_stream *s)
{
    if (!gy_list_linked(&s->ready) && !s->closed)
        gy_list_insert_tail(&conn_of(s)->ready, &s->ready);
}

static void schedule(struct gy_dconn *dc)
{
    gy_task_schedule(&dc->w->loop, &dc->run_task);
}

/* ---- name/value lists for the responses we send ---- */

struct nvs {
    nghttp2_nv *nv;
    size_t n, cap;
};

static void nv_push(void *arg, struct gy_slice name, struct gy_slice value)
{
    struct nvs *l = arg;

    if (l->n < l->cap && name.len > 0)
        gy_fwd_nv(name, value, NGHTTP2_NV_FLAG_NONE, &l->nv[l->n++]);
}

/* :status first (a literal name nghttp2 keeps without a copy). */
static void nv_status(struct nvs *l, struct gy_slice value)
{
    if (l->n < l->cap)
        gy_fwd_nv(GY_SLICE_LIT(":status"), value, NGHTTP2_NV_FLAG_NO_COPY_NAME, &l->nv[l->n++]);
}

static bool nvs_init(struct nvs *l, struct gy_stream *s, size_t cap)
{
    l->n = 0;
    l->cap = cap;
    l->nv = gy_pool_alloc(&s->pool, cap * sizeof(nghttp2_nv));
    return l->nv != NULL;
}

/* ---- request heads ---- */

static struct gy_slice dup(struct gy_stream *s, struct gy_slice v)
{
    return v.len ? gy_pool_dup(&s->pool, v) : GY_SLICE_LIT("");
}

/* Copies a request head into the stream's pool (it must outlive the header block): the block its
 * strings lie in at once when there is one (HTTP/2), else string by string (an h2c upgrade). */
static struct gy_req_head *save_head(struct gy_stream *s, const struct gy_req_head *in, struct gy_slice block)
{
    struct gy_req_head *r = gy_pool_alloc(&s->pool, sizeof(*r));
    struct gy_header *hs = gy_pool_alloc(&s->pool, (in->nheaders + 1) * sizeof(*hs));
    struct gy_pool_move m = gy_pool_move_begin(&s->pool, block);

    if (r == NULL || hs == NULL)
        return NULL;
    *r = *in;
    r->method = gy_pool_moved(&s->pool, &m, in->method);
    r->scheme = gy_pool_moved(&s->pool, &m, in->scheme);
    r->authority = gy_pool_moved(&s->pool, &m, in->authority);
    r->target = gy_pool_moved(&s->pool, &m, in->target);
    r->protocol = gy_pool_moved(&s->pool, &m, in->protocol);
    for (unsigned i = 0; i < in->nheaders; i++) {
        hs[i].name = gy_pool_moved(&s->pool, &m, in->headers[i].name);
        hs[i].value = gy_pool_moved(&s->pool, &m, in->headers[i].value);
        if (hs[i].name.ptr == NULL || hs[i].value.ptr == NULL)
            return NULL;
    }
    r->headers = hs;
    const char *q = memchr(r->target.ptr, '?', r->target.len);
    r->path = q ? gy_slice(r->target.ptr, (size_t)(q - r->target.ptr)) : r->target;
    r->query = q ? gy_slice(q + 1, r->target.len - (size_t)(q - r->target.ptr) - 1) : GY_SLICE_LIT("");
    if (r->method.ptr == NULL || r->scheme.ptr == NULL || r->authority.ptr == NULL || r->target.ptr == NULL ||
        r->protocol.ptr == NULL)
        return NULL;
    s->saved_head = r;
    return r;
}

static void head_from_h2(const struct gy_h2_head *h, bool end, struct gy_req_head *r)
{
    memset(r, 0, sizeof(*r));
    r->method = h->method;
    r->scheme = h->scheme;
    r->authority = h->authority;
    r->target = h->path;
    r->protocol = h->protocol;
    r->headers = h->headers;
    r->nheaders = h->nheaders;
    if (r->authority.len == 0) {
        const struct gy_header *host = gy_header_find(h->headers, h->nheaders, GY_SLICE_LIT("host"));
        if (host != NULL)
            r->authority = host->value;
    }
    r->content_length = h->content_length;
    r->body = !end;
    r->keep_alive = true;
    r->is_head = gy_slice_eq(h->method, GY_SLICE_LIT("HEAD"));
    r->is_connect = gy_slice_eq(h->method, GY_SLICE_LIT("CONNECT"));
    r->version = 20;
}

/* A new stream; NULL (refused) when the connection goes away or memory is short. */
static struct gy_stream *open_stream(struct gy_h2d *hd, int32_t sid)
{
    struct gy_dconn *dc = hd->dc;
    struct gy_stream *s;

    if (hd->goaway || !gy_dconn_follow_config(dc) || (s = gy_stream_new(dc)) == NULL) {
        if (!hd->goaway) {
            gy_h2_goaway(&hd->h2, NGHTTP2_NO_ERROR);
            hd->goaway = true;
        }
        nghttp2_submit_rst_stream(hd->h2.ng, NGHTTP2_FLAG_NONE, sid, NGHTTP2_REFUSED_STREAM);
        return NULL;
    }
    s->sid = sid;
    s->version = 20;
    nghttp2_session_set_stream_user_data(hd->h2.ng, sid, s);
    gy_list_insert_tail(&hd->streams, &s->link);
    hd->nstreams++;
    gy_dconn_set_timer(dc, GY_DT_NONE, 0);
    return s;
}

static int on_head(struct gy_h2 *h2, int32_t sid, void *sud, const struct gy_h2_head *head, bool trailers, bool end)
{
    struct gy_h2d *hd = GY_CONTAINER_OF(h2, struct gy_h2d, h2);
    struct gy_stream *s = sud;
    struct gy_req_head req, *saved;

    if (trailers) { /* request trailers are not forwarded; they end the body */
        if (s != NULL && end) {
            s->req_buf_end = true;
            mark_ready(s);
        }
        return 0;
    }
    if ((s = open_stream(hd, sid)) == NULL)
        return 0;
    head_from_h2(head, end, &req);
    s->req_buf_end = end;
    mark_ready(s);
    if (head->too_large || (saved = save_head(s, &req, head->block)) == NULL) {
        gy_stat_inc(s->lcfg->stats, hd->dc->w->id, GY_C_CX_PROTOCOL_ERROR);
        s->req_done = true;
        s->version = 20;
        s->method = dup(s, req.method);
        s->target = dup(s, req.target);
        gy_stream_local_reply(s, 431, GY_RF_DPE, "request headers too large");
        return 0;
    }
    gy_stream_start(s, saved);
    return 0;
}

static int on_data(struct gy_h2 *h2, int32_t sid, void *sud, const uint8_t *p, size_t n)
{
    struct gy_stream *s = sud;
    struct gy_bufpool *bufs = &s->dc->w->bufs;

    if (s->resp_done || s->reset || s->req_done) { /* nobody will read it: drop it, open the window */
        nghttp2_session_consume(h2->ng, sid, n);
        return 0;
    }
    uint32_t cap = s->lcfg->h2.initial_stream_window_size + 1;
    if (gy_buf_reserve(bufs, &s->req_buf) != 0 || (gy_buf_room(&s->req_buf) < n && gy_buf_grow(bufs, &s->req_buf, cap) != 0) ||
        gy_buf_append(&s->req_buf, p, n) != n) {
        s->rst_code = NGHTTP2_FLOW_CONTROL_ERROR;
        gy_stream_reset(s, GY_RF_DPE);
        nghttp2_session_consume(h2->ng, sid, n);
        return 0;
    }
    mark_ready(s);
    return 0;
}

static void on_end(struct gy_h2 *h2, int32_t sid, void *sud)
{
    struct gy_stream *s = sud;

    (void)h2, (void)sid;
    s->req_buf_end = true;
    mark_ready(s);
}

static void stream_gone(struct gy_h2d *hd, struct gy_stream *s)
{
    if (gy_buf_len(&s->req_buf) > 0) /* bytes nobody will read: give the connection window back */
        nghttp2_session_consume(hd->h2.ng, s->sid, gy_buf_len(&s->req_buf));
    nghttp2_session_set_stream_user_data(hd->h2.ng, s->sid, NULL);
    gy_list_remove(&s->link);
    if (gy_list_linked(&s->ready))
        gy_list_remove(&s->ready);
    hd->nstreams--;
    gy_stream_free(s);
}

static void on_close(struct gy_h2 *h2, int32_t sid, void *sud, uint32_t error_code)
{
    struct gy_h2d *hd = GY_CONTAINER_OF(h2, struct gy_h2d, h2);
    struct gy_stream *s = sud;

    (void)sid;
    s->closed = true;
    if (!s->resp_done || (error_code != NGHTTP2_NO_ERROR && !s->reset && gy_buf_len(&s->resp_buf) > 0))
        gy_stream_reset(s, GY_RF_DC); /* the client reset it: the upstream attempt is aborted too */
    stream_gone(hd, s);
    if (hd->nstreams == 0 && !hd->goaway)
        gy_dconn_set_timer(hd->dc, GY_DT_IDLE, hd->dc->lcfg->idle_timeout_ms);
}

static void submit_trailers(struct gy_h2d *hd, struct gy_stream *s)
{
    struct nvs l;

    if (!nvs_init(&l, s, s->ntrailers))
        return;
    for (unsigned i = 0; i < s->ntrailers; i++)
        if (!gy_h1_is_hop_by_hop(s->trailers[i].name))
            nv_push(&l, s->trailers[i].name, s->trailers[i].value);
    nghttp2_submit_trailer(hd->h2.ng, s->sid, l.nv, l.n);
}

static ssize_t read_body(struct gy_h2 *h2, int32_t sid, void *sud, uint8_t *buf, size_t len, bool *eof, bool *trailers)
{
    struct gy_h2d *hd = GY_CONTAINER_OF(h2, struct gy_h2d, h2);
    struct gy_stream *s = sud;
    size_t n = gy_buf_len(&s->resp_buf);

    (void)sid;
    if (n > len)
        n = len;
    if (n > 0) {
        memcpy(buf, gy_buf_start(&s->resp_buf), n);
        gy_buf_consume(&s->resp_buf, n);
        mark_ready(s); /* room for more */
    }
    if (gy_buf_len(&s->resp_buf) == 0) {
        gy_buf_release(&s->dc->w->bufs, &s->resp_buf);
        if (s->resp_done) {
            *eof = true;
            if (s->ntrailers > 0) {
                submit_trailers(hd, s);
                *trailers = true;
            }
        }
    }
    return (ssize_t)n;
}

static const struct gy_h2_callbacks callbacks = {
    .on_head = on_head,
    .on_data = on_data,
    .on_end = on_end,
    .on_close = on_close,
    .read_body = read_body,
};

/* ---- the stream's side ---- */

static int head_again(struct gy_stream *s, struct gy_req_head *req)
{
    if (s->saved_head == NULL)
        return GY_EINVAL;
    *req = *s->saved_head;
    return 0;
}

static void head_done(struct gy_stream *s, const struct gy_req_head *req)
{
    (void)s, (void)req;
}

static bool req_pump(struct gy_stream *s)
{
    struct gy_h2d *hd = conn_of(s);
    bool progress = false;

    while (gy_buf_len(&s->req_buf) > 0) {
        size_t room = s->up->req_room(s), n = gy_buf_len(&s->req_buf);
        if (room == 0)
            break;
        if (n > room)
            n = room;
        s->up->req_data(s, gy_buf_start(&s->req_buf), n);
        gy_attempt_replay_add(s, gy_buf_start(&s->req_buf), n);
        s->bytes_rx += n;
        gy_buf_consume(&s->req_buf, n);
        nghttp2_session_consume(hd->h2.ng, s->sid, n);
        progress = true;
    }
    gy_buf_release_if_empty(&s->dc->w->bufs, &s->req_buf);
    if (gy_buf_len(&s->req_buf) == 0 && s->req_buf_end) {
        s->req_done = true;
        progress = true;
    }
    return progress;
}

static size_t resp_room(struct gy_stream *s)
{
    if (gy_buf_reserve(&s->dc->w->bufs, &s->resp_buf) != 0)
        return 0;
    return gy_buf_room(&s->resp_buf);
}

/* A 1xx from an HTTP/1.1 upstream (103 Early Hints, 100 Continue...) as a non-final HEADERS frame,
 * with its fields less the connection-specific ones; nghttp2 copies the list. */
/* The :status value: three digits in the stream's pool (no printf on the response path). */
static struct gy_slice status_value(struct gy_stream *s, int status)
{
    char *p = gy_pool_alloc(&s->pool, 4);

    if (p == NULL || status < 100 || status > 999)
        return GY_SLICE_LIT("502");
    p[0] = (char)('0' + status / 100);
    p[1] = (char)('0' + status / 10 % 10);
    p[2] = (char)('0' + status % 10);
    p[3] = '\0';
    return gy_slice(p, 3);
}

static int informational(struct gy_stream *s, const struct gy_resp_head *h)
{
    struct gy_h2d *hd = conn_of(s);
    struct nvs l;

    if (h->status == 101 || !nvs_init(&l, s, h->nheaders + 1))
        return 0;
    nv_status(&l, status_value(s, h->status));
    for (unsigned i = 0; i < h->nheaders; i++)
        if (!gy_fwd_skip_response_header(s, &h->headers[i], h->headers, h->nheaders))
            nv_push(&l, h->headers[i].name, h->headers[i].value);
    if (nghttp2_submit_headers(hd->h2.ng, NGHTTP2_FLAG_NONE, s->sid, NULL, l.nv, l.n, NULL) < 0)
        return 0; /* not worth failing the stream for */
    schedule(s->dc);
    return 0;
}

static int resp_head(struct gy_stream *s, const struct gy_resp_head *h)
{
    struct gy_h2d *hd = conn_of(s);
    struct nvs l;

    if (h->status < 200 && !h->tunnel)
        return informational(s, h);
    size_t cap = h->nheaders + s->route.route->nresponse_headers_to_add + s->route.vhost->ncustom_headers + 4;
    if (!nvs_init(&l, s, cap))
        return GY_ENOMEM;
    nv_status(&l, status_value(s, h->tunnel ? 200 : h->status)); /* RFC 8441: 101 is 200 */
    gy_fwd_response_fields(s, h, nv_push, &l);
    s->resp_body_out = h->body;
    nghttp2_data_provider body = gy_h2_body(s);
    int rc = nghttp2_submit_response(hd->h2.ng, s->sid, l.nv, l.n, h->body ? &body : NULL);
    mark_ready(s);
    return rc == 0 ? 0 : GY_EPARSE;
}

static void resp_data(struct gy_stream *s, const char *p, size_t n)
{
    gy_buf_append(&s->resp_buf, p, n);
    nghttp2_session_resume_data(conn_of(s)->h2.ng, s->sid);
}

static int resp_end(struct gy_stream *s, const struct gy_header *trailers, unsigned ntrailers)
{
    (void)trailers, (void)ntrailers;
    if (s->resp_body_out)
        nghttp2_session_resume_data(conn_of(s)->h2.ng, s->sid);
    mark_ready(s);
    return 0;
}

/* "name: value\r\n" lines (the proxy's own extra headers) into the list. */
static void push_lines(struct nvs *l, struct gy_stream *s, const char *extra)
{
    while (extra != NULL && *extra) {
        const char *eol = strstr(extra, "\r\n"), *colon = strchr(extra, ':');
        if (eol == NULL || colon == NULL || colon > eol)
            break;
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        nv_push(l, gy_pool_dup(&s->pool, gy_slice(extra, (size_t)(colon - extra))),
                gy_pool_dup(&s->pool, gy_slice(v, (size_t)(eol - v))));
        extra = eol + 2;
    }
}

static int local_reply(struct gy_stream *s, int status, const char *extra, const char *body, size_t len, bool close)
{
    struct gy_h2d *hd = conn_of(s);
    struct gy_bufpool *bufs = &s->dc->w->bufs;
    char cl[24];
    struct nvs l;

    (void)close;
    if (s->closed || !nvs_init(&l, s, 24))
        return GY_ENOMEM;
    snprintf(cl, sizeof(cl), "%zu", len);
    nv_status(&l, status_value(s, status));
    nv_push(&l, GY_SLICE_LIT("server"), GY_SLICE_LIT("gyrus"));
    nv_push(&l, GY_SLICE_LIT("date"), gy_pool_dup(&s->pool, gy_slice_cstr(gy_http_date())));
    if (len > 0) {
        nv_push(&l, GY_SLICE_LIT("content-type"), GY_SLICE_LIT("text/plain; charset=utf-8"));
        nv_push(&l, GY_SLICE_LIT("content-length"), gy_pool_dup(&s->pool, gy_slice_cstr(cl)));
    }
    push_lines(&l, s, extra);
    bool has_body = len > 0 && !s->is_head;
    gy_buf_release(bufs, &s->resp_buf);
    if (has_body && (gy_buf_grow(bufs, &s->resp_buf, (uint32_t)len) != 0 || gy_buf_append(&s->resp_buf, body, len) != len))
        return GY_ENOMEM;
    s->resp_body_out = has_body;
    nghttp2_data_provider prov = gy_h2_body(s);
    int rc = nghttp2_submit_response(hd->h2.ng, s->sid, l.nv, l.n, has_body ? &prov : NULL);
    mark_ready(s);
    schedule(s->dc);
    return rc == 0 ? 0 : GY_EPARSE;
}

static bool flush(struct gy_stream *s)
{
    (void)s;
    return false;
}

static bool finished(const struct gy_stream *s)
{
    return s->closed;
}

static void reset(struct gy_stream *s)
{
    if (!s->closed)
        nghttp2_submit_rst_stream(conn_of(s)->h2.ng, NGHTTP2_FLAG_NONE, s->sid,
                                  s->rst_code ? s->rst_code : NGHTTP2_INTERNAL_ERROR);
    schedule(s->dc);
}

static void wake(struct gy_stream *s)
{
    mark_ready(s);
    schedule(s->dc);
}

const struct gy_down_ops gy_down_h2 = {
    .name = "h2",
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

/* Feeds what the client sent to nghttp2; true on progress. */
static bool input(struct gy_dconn *dc)
{
    struct gy_h2d *hd = dc->h2;
    bool progress = false;

    for (int i = 0; i < 16 && !hd->fatal; i++) {
        if (gy_buf_len(&dc->wbuf) >= GY_BUF_BLOCK / 2 && gy_h2_want_write(&hd->h2))
            break; /* the client does not read what we send: stop reading until it does */
        if (gy_buf_len(&dc->rbuf) == 0 && !gy_dconn_read(dc))
            break;
        long n = gy_h2_recv(&hd->h2, gy_buf_start(&dc->rbuf), gy_buf_len(&dc->rbuf), gy_loop_now(&dc->w->loop));
        gy_buf_consume(&dc->rbuf, gy_buf_len(&dc->rbuf));
        progress = true;
        if (n < 0) {
            gy_debug("conn %s: HTTP/2: %s", dc->peer_ip, nghttp2_strerror((int)n));
            gy_stat_inc(dc->lcfg->stats, dc->w->id, GY_C_CX_PROTOCOL_ERROR);
            hd->fatal = true;
        }
    }
    if (hd->h2.violations > 0) {
        gy_stat_add(dc->lcfg->stats, dc->w->id, GY_C_CX_PROTOCOL_ERROR, hd->h2.violations);
        hd->h2.violations = 0;
        hd->goaway = true;
    }
    return progress;
}

/* Frames to the socket; true on progress. */
static bool output(struct gy_dconn *dc)
{
    struct gy_h2d *hd = dc->h2;
    bool progress = false;

    for (int i = 0; i < 64; i++) {
        if (gy_buf_reserve(&dc->w->bufs, &dc->wbuf) != 0)
            break;
        size_t before = gy_buf_len(&dc->wbuf);
        if (gy_h2_send(&hd->h2, &dc->wbuf) < 0)
            hd->fatal = true;
        progress |= gy_buf_len(&dc->wbuf) != before;
        if (gy_buf_len(&dc->wbuf) == 0)
            break;
        before = gy_buf_len(&dc->wbuf);
        if (!gy_dconn_flush(dc)) {
            hd->fatal = dc->eof = true;
            break;
        }
        if (gy_buf_len(&dc->wbuf) == before)
            break; /* the socket is full: EPOLLOUT brings us back */
        progress = true;
    }
    return progress;
}

static void run_ready(struct gy_h2d *hd)
{
    struct gy_list batch;

    gy_list_init(&batch);
    gy_list_splice_tail(&batch, &hd->ready);
    while (!gy_list_empty(&batch)) {
        struct gy_stream *s = GY_CONTAINER_OF(batch.next, struct gy_stream, ready);
        gy_list_remove(&s->ready);
        if (!s->closed)
            gy_stream_pump(s);
    }
}

void gy_h2d_run(struct gy_dconn *dc)
{
    struct gy_h2d *hd = dc->h2;
    int round;

    for (round = 0; round < RUN_ROUNDS && !dc->freed; round++) {
        bool progress = input(dc);
        run_ready(hd);
        progress |= output(dc);
        if (!progress && gy_list_empty(&hd->ready))
            break;
    }
    if (dc->freed)
        return;
    if (round == RUN_ROUNDS)
        schedule(dc);
    bool flushed = gy_buf_len(&dc->wbuf) == 0 && !gy_h2_want_write(&hd->h2);
    if (dc->eof) {
        gy_dconn_close(dc);
        return;
    }
    if (hd->fatal || gy_h2_done(&hd->h2)) {
        /* GOAWAY sent (or being sent): close politely, so that the client reads it before a reset. */
        if (flushed)
            gy_dconn_begin_close(dc);
        else if (dc->timer_mode != GY_DT_LINGER)
            gy_dconn_set_timer(dc, GY_DT_LINGER, 2000);
        return;
    }
    if (hd->goaway && hd->nstreams == 0 && flushed) {
        gy_dconn_begin_close(dc);
        return;
    }
    gy_buf_release_if_empty(&dc->w->bufs, &dc->rbuf);
    gy_buf_release_if_empty(&dc->w->bufs, &dc->wbuf);
}

int gy_h2d_start(struct gy_dconn *dc, const struct gy_req_head *upgrade, const char *settings, size_t settings_len)
{
    struct gy_h2d *hd = calloc(1, sizeof(*hd));
    uint8_t sbuf[512];

    if (hd == NULL)
        return GY_ENOMEM;
    hd->dc = dc;
    gy_list_init(&hd->streams);
    gy_list_init(&hd->ready);
    if (gy_h2_init(&hd->h2, true, &dc->lcfg->h2, dc->lcfg->max_headers, &callbacks, hd, &dc->w->h2mem) != 0) {
        free(hd);
        return GY_ENOMEM;
    }
    dc->h2 = hd;
    dc->ops = &gy_down_h2;
    gy_dconn_set_timer(dc, GY_DT_HEADER, dc->lcfg->request_headers_timeout_ms);
    if (upgrade == NULL)
        return 0;
    long n = gy_h2_settings_decode(settings, settings_len, sbuf, sizeof(sbuf));
    if (n < 0 || nghttp2_session_upgrade2(hd->h2.ng, sbuf, (size_t)n, upgrade->is_head, NULL) != 0)
        return GY_EPARSE;
    struct gy_stream *s = open_stream(hd, 1);
    struct gy_req_head *req = s != NULL ? save_head(s, upgrade, GY_SLICE_NULL) : NULL;
    gy_buf_consume(&dc->rbuf, upgrade->head_len);
    if (req == NULL)
        return GY_ENOMEM;
    req->version = 20;
    req->path = upgrade->path.len ? gy_pool_dup(&s->pool, upgrade->path) : req->path;
    req->query = gy_pool_dup(&s->pool, upgrade->query);
    s->req_buf_end = true;
    mark_ready(s);
    gy_stream_start(s, req);
    return 0;
}

void gy_h2d_drain(struct gy_dconn *dc)
{
    struct gy_h2d *hd = dc->h2;

    if (!hd->goaway) {
        gy_h2_goaway(&hd->h2, NGHTTP2_NO_ERROR);
        hd->goaway = true;
    }
    schedule(dc);
}

void gy_h2d_timer(struct gy_dconn *dc)
{
    struct gy_h2d *hd = dc->h2;

    if (hd->nstreams > 0)
        return;
    if (hd->goaway) {
        gy_dconn_close(dc);
        return;
    }
    gy_h2d_drain(dc); /* idle: GOAWAY, then close once it is sent */
    gy_dconn_set_timer(dc, GY_DT_IDLE, 1000);
}

void gy_h2d_close(struct gy_dconn *dc)
{
    struct gy_h2d *hd = dc->h2;

    if (hd == NULL)
        return;
    while (!gy_list_empty(&hd->streams)) {
        struct gy_stream *s = GY_CONTAINER_OF(hd->streams.next, struct gy_stream, link);
        s->closed = true;
        if (!s->resp_done)
            gy_stream_reset(s, GY_RF_DC);
        stream_gone(hd, s);
    }
    gy_h2_dispose(&hd->h2);
    free(hd);
    dc->h2 = NULL;
}
