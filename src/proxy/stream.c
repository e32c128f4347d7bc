/*
 * A stream is one request/response exchange: routed, sent to an upstream host, and its response
 * relayed back, bodies streamed through bounded buffers in both directions (backpressure: a side
 * is read only while the other side's buffer has room).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "proxy/filter.h"
#include "proxy/hosts.h"
#include "proxy/proxy.h"

#define RESP_MAX_HEADERS 256
#define RESP_MAX_HEAD (64u * 1024u)
#define POOL_LIMIT (256u * 1024u)

static const struct gy_h1_limits upstream_limits = {
    .max_request_line = 8192,
    .max_head_bytes = RESP_MAX_HEAD,
    .max_headers = RESP_MAX_HEADERS,
};

static void timeout_cb(struct gy_timer *t);
static void idle_cb(struct gy_timer *t);
static void max_duration_cb(struct gy_timer *t);
static void filter_timer_cb(struct gy_timer *t);

struct gy_stream *gy_stream_new(struct gy_dconn *dc)
{
    struct gy_stream *s = malloc(sizeof(*s));

    if (s == NULL)
        return NULL;
    memset(s, 0, offsetof(struct gy_stream, pool_first));
    s->dc = dc;
    s->wcfg = gy_wcfg_acquire(dc->wcfg);
    s->lcfg = dc->lcfg;
    s->host = -1;
    gy_pool_init(&s->pool, s->pool_first, sizeof(s->pool_first), POOL_LIMIT);
    gy_timer_init(&s->timeout, timeout_cb);
    gy_timer_init(&s->idle, idle_cb);
    gy_timer_init(&s->max_duration, max_duration_cb);
    gy_timer_init(&s->filter_timer, filter_timer_cb);
    gy_timer_init(&s->backoff, NULL);
    gy_timer_init(&s->per_try, NULL);
    s->t_start_ns = gy_now_ns();
    s->wall_start_us = gy_wall_us();
    s->last_activity = gy_loop_now(&dc->w->loop);
    s->method = s->target = GY_SLICE_LIT("-");
    gy_stat_inc(s->lcfg->stats, dc->w->id, GY_C_RQ_ACTIVE);
    return s;
}

static bool valid_request_id(struct gy_slice id)
{
    if (id.len == 0 || id.len > 128)
        return false;
    for (size_t i = 0; i < id.len; i++) {
        char c = id.ptr[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
              c == '.'))
            return false;
    }
    return true;
}

static struct gy_slice new_request_id(struct gy_stream *s)
{
    uint64_t a = gy_worker_rand(s->dc->w), b = gy_worker_rand(s->dc->w);
    char *id = gy_pool_alloc(&s->pool, 37);

    if (id == NULL)
        return GY_SLICE_LIT("-");
    /* UUID version 4, variant 1. */
    a = (a & ~0xf000ull) | 0x4000ull;
    b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;
    snprintf(id, 37, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32), (unsigned)((a >> 16) & 0xffff),
             (unsigned)(a & 0xffff), (unsigned)(b >> 48), (unsigned long long)(b & 0xffffffffffffull));
    return gy_slice(id, 36);
}

static void copy_request_info(struct gy_stream *s, const struct gy_h1_request *req)
{
    const struct gy_header *h;

    s->method = gy_pool_dup(&s->pool, req->method);
    s->target = gy_pool_dup(&s->pool, req->target);
    s->host_hdr = gy_pool_dup(&s->pool, req->host);
    s->minor_version = req->minor_version;
    s->is_head = req->is_head;
    s->client_keep_alive = req->keep_alive;
    if ((h = gy_header_find(req->headers, req->nheaders, GY_SLICE_LIT("user-agent"))) != NULL)
        s->user_agent = gy_pool_dup(&s->pool, h->value);
    if ((h = gy_header_find(req->headers, req->nheaders, GY_SLICE_LIT("x-forwarded-for"))) != NULL)
        s->xff = gy_pool_dup(&s->pool, h->value);
    h = gy_header_find(req->headers, req->nheaders, GY_SLICE_LIT("x-request-id"));
    s->request_id = h != NULL && valid_request_id(h->value) ? gy_pool_dup(&s->pool, h->value) : new_request_id(s);
}

/* ---- ending ---- */

void gy_stream_reset(struct gy_stream *s, uint32_t flag)
{
    s->flags |= flag;
    s->reset = true;
    if (s->uc != NULL) {
        gy_uconn_close(s->uc);
        s->uc = NULL;
    }
    gy_timer_stop(&s->dc->w->loop, &s->timeout);
    gy_timer_stop(&s->dc->w->loop, &s->idle);
    s->dc->closing = true;
}

static void reply(struct gy_stream *s, int status, uint32_t flag, const char *extra, const char *body, size_t len)
{
    struct gy_dconn *dc = s->dc;
    struct gy_worker *w = dc->w;

    if (s->resp_started) {
        gy_stream_reset(s, flag);
        return;
    }
    s->flags |= flag;
    s->status = status;
    if (s->uc != NULL) {
        gy_uconn_close(s->uc);
        s->uc = NULL;
    }
    gy_timer_stop(&w->loop, &s->backoff);
    gy_timer_stop(&w->loop, &s->per_try);
    bool close = !s->client_keep_alive || !s->req_done || dc->closing || w->draining;
    if (gy_buf_reserve(&w->bufs, &dc->wbuf) != 0 ||
        gy_write_local_response(&dc->wbuf, status, extra, body, len, close, s->is_head) != 0) {
        gy_stream_reset(s, flag);
        return;
    }
    s->resp_started = s->resp_done = true;
    if (close)
        dc->closing = true;
    gy_timer_stop(&w->loop, &s->timeout);
    gy_timer_stop(&w->loop, &s->idle);
}

void gy_stream_reply_extra(struct gy_stream *s, int status, uint32_t flag, const char *extra, const char *body)
{
    char text[256];
    int n = snprintf(text, sizeof(text), "%s\n", body);

    reply(s, status, flag, extra, text, n > 0 ? (size_t)n : 0);
}

void gy_stream_local_reply(struct gy_stream *s, int status, uint32_t flag, const char *body)
{
    char text[256];
    int n = snprintf(text, sizeof(text), "%s\n", body);

    reply(s, status, flag, NULL, text, n > 0 ? (size_t)n : 0);
}

bool gy_stream_finished(const struct gy_stream *s)
{
    if (s->reset)
        return true;
    return s->resp_done && !s->need_last_chunk && gy_buf_len(&s->dc->wbuf) == 0;
}

static void record_stats(struct gy_stream *s)
{
    unsigned wid = s->dc->w->id;
    uint64_t now = gy_now_ns();
    uint64_t total_us = (now - s->t_start_ns) / 1000;
    int status = s->reset && !s->resp_done ? 0 : s->status;

    gy_stat_status(s->lcfg->stats, wid, status);
    gy_stat_observe(s->lcfg->stats, wid, GY_H_RQ_TIME, total_us);
    gy_stat_dec(s->lcfg->stats, wid, GY_C_RQ_ACTIVE);
    if (s->route.route != NULL && s->route.route->stats != NULL) {
        gy_stat_status(s->route.route->stats, wid, status);
        gy_stat_observe(s->route.route->stats, wid, GY_H_RQ_TIME, total_us);
    }
    if (s->cluster != NULL) {
        struct gy_stats_scope *cs = s->cluster->stats;
        gy_stat_dec(cs, wid, GY_C_RQ_ACTIVE);
        gy_stat_status(cs, wid, s->status_from_upstream ? s->status : 0);
        if (s->t_upstream_done_ns) {
            uint64_t up_us = (s->t_upstream_done_ns - s->t_upstream_ns) / 1000;
            gy_stat_observe(cs, wid, GY_H_UPSTREAM_TIME, up_us);
            if (s->route.route->stats != NULL)
                gy_stat_observe(s->route.route->stats, wid, GY_H_UPSTREAM_TIME, up_us);
        }
    }
    if (s->route.route != NULL && s->route.route->stats != NULL)
        gy_stat_dec(s->route.route->stats, wid, GY_C_RQ_ACTIVE);
}

void gy_stream_free(struct gy_stream *s)
{
    struct gy_worker *w = s->dc->w;

    if (s->uc != NULL) {
        gy_uconn_close(s->uc);
        s->uc = NULL;
    }
    if (!s->resp_done)
        s->flags |= s->flags ? 0 : GY_RF_DC;
    record_stats(s);
    gy_alog_record(w, s);
    if (s->cluster != NULL) {
        if (s->resp_done && s->route.rule != NULL && s->route.rule->ntap > 0)
            gy_shadow_tap(s);
        gy_attempt_cleanup(s);
    }
    gy_timer_stop(&w->loop, &s->timeout);
    gy_timer_stop(&w->loop, &s->idle);
    gy_timer_stop(&w->loop, &s->max_duration);
    gy_timer_stop(&w->loop, &s->filter_timer);
    gy_pool_dispose(&s->pool);
    gy_wcfg_release(w, s->wcfg);
    free(s);
}

/* ---- timers ---- */

static void timeout_cb(struct gy_timer *t)
{
    struct gy_stream *s = GY_CONTAINER_OF(t, struct gy_stream, timeout);
    struct gy_dconn *dc = s->dc;

    gy_stat_inc(s->lcfg->stats, dc->w->id, GY_C_RQ_TIMEOUT);
    if (s->cluster != NULL)
        gy_stat_inc(s->cluster->stats, dc->w->id, GY_C_RQ_TIMEOUT);
    if (s->uc != NULL && s->host >= 0) /* a host that does not answer in time counts as failing */
        gy_host_outcome(dc->w->proxy, s->cluster->instances[s->host].state, s->cluster, 0);
    gy_stream_local_reply(s, 504, GY_RF_UT, "upstream request timeout");
    gy_dconn_run(dc);
}

static uint32_t idle_timeout_ms(const struct gy_stream *s)
{
    if (s->route.route != NULL && s->route.route->idle_timeout_ms)
        return s->route.route->idle_timeout_ms;
    return s->lcfg->stream_idle_timeout_ms;
}

static void idle_cb(struct gy_timer *t)
{
    struct gy_stream *s = GY_CONTAINER_OF(t, struct gy_stream, idle);
    struct gy_dconn *dc = s->dc;
    uint64_t now = gy_loop_now(&dc->w->loop), limit = idle_timeout_ms(s);

    if (now - s->last_activity < limit) {
        gy_timer_start(&dc->w->loop, &s->idle, limit - (now - s->last_activity));
        return;
    }
    gy_stat_inc(s->lcfg->stats, dc->w->id, GY_C_RQ_TIMEOUT);
    if (!s->req_done)
        gy_stream_local_reply(s, 408, GY_RF_SI, "stream idle timeout");
    else
        gy_stream_local_reply(s, 504, GY_RF_SI | GY_RF_UT, "stream idle timeout");
    gy_dconn_run(dc);
}

/* ---- upstream connection ---- */

/* ---- start ---- */

static void reply_route(struct gy_stream *s)
{
    char extra[8300];
    const struct gy_direct_response *dr;

    switch (s->route.action) {
    case GY_ROUTE_REDIRECT:
        snprintf(extra, sizeof(extra), "location: %.*s\r\n", GY_SLICE_ARG(s->route.location));
        reply(s, s->route.status, 0, extra, NULL, 0);
        break;
    case GY_ROUTE_DIRECT:
        dr = s->route.route->direct_response;
        reply(s, dr->status, 0, NULL, dr->body, dr->body_len);
        break;
    default:
        gy_stat_inc(s->lcfg->stats, s->dc->w->id, GY_C_NO_ROUTE);
        gy_stream_local_reply(s, 404, GY_RF_NR, "no route");
        break;
    }
}

static void start_body_state(struct gy_stream *s, const struct gy_h1_request *req)
{
    s->req_body = req->body;
    s->req_remaining = req->content_length;
    gy_h1_chunked_init(&s->req_chunked);
    s->req_done = req->body == GY_H1_BODY_NONE;
}

/* After a route to a cluster (and the filters): build the upstream head, start the first attempt. */
static void start_upstream(struct gy_stream *s, const struct gy_h1_request *req)
{
    struct gy_dconn *dc = s->dc;
    struct gy_worker *w = dc->w;

    gy_attempt_init(s, req);
    int rc = gy_fwd_request_head(s, req, s->route.path);
    gy_buf_consume(&dc->rbuf, req->head_len);
    if (rc != 0) {
        gy_stream_local_reply(s, 431, GY_RF_DPE, "request headers too large");
        return;
    }
    gy_attempt_begin(s);
    if (s->resp_done || s->reset)
        return;
    if (req->expect_continue && !s->req_done && gy_buf_reserve(&w->bufs, &dc->wbuf) == 0)
        gy_buf_append(&dc->wbuf, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    gy_timer_start(&w->loop, &s->idle, idle_timeout_ms(s));
}

static bool is_grpc(const struct gy_h1_request *req)
{
    const struct gy_header *ct = gy_header_find(req->headers, req->nheaders, GY_SLICE_LIT("content-type"));
    return ct != NULL && gy_slice_has_prefix(ct->value, GY_SLICE_LIT("application/grpc"));
}

/* Runs the listener's filters; true when the request goes on now. */
static bool run_filters(struct gy_stream *s, const struct gy_h1_request *req)
{
    struct gy_dconn *dc = s->dc;
    const struct gy_filter_chain *chain = s->lcfg->filters;
    struct gy_filter_call c;
    char extra[700];

    if (chain == NULL)
        return true;
    memset(&c, 0, sizeof(c));
    c.method = req->method;
    c.path = req->path;
    c.query = req->query;
    c.host = req->host;
    c.headers = req->headers;
    c.nheaders = req->nheaders;
    c.peer_ip = dc->peer_ip;
    c.route = s->route.route;
    c.listener = s->lcfg;
    c.grpc = is_grpc(req);
    c.random = gy_worker_rand(dc->w);
    c.now_ms = gy_loop_now(&dc->w->loop);
    c.reply_grpc_status = -1;
    enum gy_filter_result r = gy_filter_chain_run(chain, s->route.route, &c, &s->filter_next);
    if (r == GY_FILTER_CONTINUE)
        return true;
    gy_stat_inc(s->lcfg->stats, dc->w->id, GY_C_FAULT);
    s->flags |= c.flags | GY_RF_FI;
    if (r == GY_FILTER_PAUSE) {
        gy_timer_start(&dc->w->loop, &s->filter_timer, c.delay_ms); /* the head stays in rbuf meanwhile */
        return false;
    }
    gy_buf_consume(&dc->rbuf, req->head_len);
    if (c.reply_grpc_status >= 0) {
        snprintf(extra, sizeof(extra), "content-type: application/grpc\r\ngrpc-status: %d\r\ngrpc-message: %s\r\n",
                 c.reply_grpc_status, c.reply_body);
        reply(s, 200, GY_RF_FI, extra, NULL, 0);
    } else {
        gy_stream_reply_extra(s, c.reply_status, GY_RF_FI, c.reply_extra, c.reply_body);
    }
    return false;
}

/* Routes the request and runs the filters (again after a filter's delay: `resumed`). */
static void proceed(struct gy_stream *s, const struct gy_h1_request *req, bool resumed)
{
    struct gy_dconn *dc = s->dc;
    char pathbuf[8192];
    struct gy_route_request rr = {
        .method = req->method,
        .host = req->host,
        .path = req->path.len ? req->path : GY_SLICE_LIT("/"), /* "http://host" has no path */
        .query = req->query,
        .headers = req->headers,
        .nheaders = req->nheaders,
        .random = s->route_random,
    };

    /* The same config and random number route a resumed request the same way. */
    if (gy_router_route(s->lcfg, &rr, &s->route, pathbuf, sizeof(pathbuf)) != 0) {
        gy_buf_consume(&dc->rbuf, req->head_len);
        gy_stream_local_reply(s, 414, GY_RF_DPE, "rewritten URI too long");
        return;
    }
    if (!resumed && s->route.route != NULL && s->route.route->stats != NULL)
        gy_stat_inc(s->route.route->stats, dc->w->id, GY_C_RQ_ACTIVE);
    if (s->route.action == GY_ROUTE_NOT_FOUND || s->route.route == NULL) { /* no route, or a domain redirect */
        gy_buf_consume(&dc->rbuf, req->head_len);
        reply_route(s);
        return;
    }
    if (!resumed && s->route.route->max_stream_duration_ms > 0)
        gy_timer_start(&dc->w->loop, &s->max_duration, s->route.route->max_stream_duration_ms);
    if (!run_filters(s, req))
        return;
    if (s->route.action != GY_ROUTE_CLUSTER) {
        /* The location or path may point into pathbuf: reply before it goes away. */
        gy_buf_consume(&dc->rbuf, req->head_len);
        reply_route(s);
        return;
    }
    start_upstream(s, req);
}

static void filter_timer_cb(struct gy_timer *t)
{
    struct gy_stream *s = GY_CONTAINER_OF(t, struct gy_stream, filter_timer);
    struct gy_dconn *dc = s->dc;
    struct gy_h1_request req;

    if (gy_dconn_parse_head(dc, &req) != 0) { /* cannot happen: it parsed before */
        gy_stream_reset(s, GY_RF_DPE);
    } else {
        proceed(s, &req, true);
    }
    gy_dconn_run(dc);
}

static void max_duration_cb(struct gy_timer *t)
{
    struct gy_stream *s = GY_CONTAINER_OF(t, struct gy_stream, max_duration);
    struct gy_dconn *dc = s->dc;

    gy_stat_inc(s->lcfg->stats, dc->w->id, GY_C_RQ_TIMEOUT);
    gy_stream_local_reply(s, 504, GY_RF_UT, "max stream duration reached");
    gy_dconn_run(dc);
}

void gy_stream_start(struct gy_stream *s, const struct gy_h1_request *req)
{
    struct gy_dconn *dc = s->dc;

    copy_request_info(s, req);
    start_body_state(s, req);
    if (req->is_connect) {
        gy_buf_consume(&dc->rbuf, req->head_len);
        gy_stream_local_reply(s, 405, GY_RF_NR, "CONNECT is not supported on this listener");
        return;
    }
    s->route_random = gy_worker_rand(dc->w);
    proceed(s, req, false);
}

/* ---- pumping ---- */

static bool pump_request(struct gy_stream *s)
{
    struct gy_dconn *dc = s->dc;
    struct gy_uconn *uc = s->uc;
    bool progress = false;

    if (s->req_sent || uc == NULL)
        return false;
    while (!s->req_done) {
        size_t before = gy_buf_len(&dc->rbuf);
        if (before > 0) {
            size_t queued = gy_buf_len(&uc->wbuf);
            long n = gy_fwd_body(&dc->rbuf, &uc->wbuf, s->req_body, &s->req_remaining, &s->req_chunked,
                                 s->req_body == GY_H1_BODY_CHUNKED, &s->req_done);
            if (n < 0) {
                gy_stat_inc(s->lcfg->stats, dc->w->id, GY_C_CX_PROTOCOL_ERROR);
                gy_stream_local_reply(s, 400, GY_RF_DPE, "malformed chunked request body");
                return true;
            }
            size_t added = gy_buf_len(&uc->wbuf) - queued; /* appended at the end, as sent upstream */
            gy_attempt_replay_add(s, uc->wbuf.data + uc->wbuf.tail - added, added);
            s->bytes_rx += (uint64_t)n;
            if (gy_buf_len(&dc->rbuf) != before)
                progress = true;
            if (s->req_done)
                break;
        }
        if (gy_buf_room(&uc->wbuf) < 32)
            return progress; /* upstream is slower: stop reading the client */
        if (gy_dconn_read(dc)) {
            progress = true;
            continue;
        }
        if (dc->eof) { /* the client went away in the middle of its request */
            gy_stream_reset(s, GY_RF_DC);
            return true;
        }
        return progress;
    }
    if (s->req_body == GY_H1_BODY_CHUNKED) {
        if (gy_buf_room(&uc->wbuf) < 5)
            return progress;
        gy_buf_append(&uc->wbuf, "0\r\n\r\n", 5);
        gy_attempt_replay_add(s, "0\r\n\r\n", 5);
    }
    s->req_sent = true;
    uint32_t tmo = s->retry != NULL && s->retry->timeout_ms ? s->retry->timeout_ms : s->route.route->timeout_ms;
    if (tmo > 0 && !s->resp_done)
        gy_timer_start(&dc->w->loop, &s->timeout, tmo);
    if (s->route.rule != NULL && s->route.rule->ndark > 0)
        gy_shadow_dark(s);
    return true;
}

static bool flush_upstream(struct gy_stream *s)
{
    struct gy_uconn *uc = s->uc;

    if (uc == NULL || uc->state != GY_UC_ACTIVE || uc->connect_failed || !uc->can_write || gy_buf_len(&uc->wbuf) == 0)
        return false;
    ssize_t n = gy_conn_write(uc->io.fd, uc->transport, &uc->wbuf, &uc->can_write);
    if (n < 0) {
        uc->eof = true;
        return true;
    }
    if (n > 0)
        gy_stat_add(s->cluster->stats, s->dc->w->id, GY_C_BYTES_TX, (uint64_t)n);
    return n > 0;
}

static bool flush_downstream(struct gy_stream *s)
{
    struct gy_dconn *dc = s->dc;

    if (s->need_last_chunk && gy_buf_room(&dc->wbuf) >= 5) {
        gy_buf_append(&dc->wbuf, "0\r\n\r\n", 5);
        s->need_last_chunk = false;
    }
    if (!dc->can_write || gy_buf_len(&dc->wbuf) == 0)
        return false;
    ssize_t n = gy_conn_write(dc->io.fd, dc->transport, &dc->wbuf, &dc->can_write);
    if (n < 0) {
        gy_stream_reset(s, GY_RF_DC);
        return true;
    }
    if (n > 0)
        gy_stat_add(s->lcfg->stats, dc->w->id, GY_C_BYTES_TX, (uint64_t)n);
    return n > 0;
}

static void response_complete(struct gy_stream *s)
{
    struct gy_uconn *uc = s->uc;

    s->resp_done = true;
    s->t_upstream_done_ns = gy_now_ns();
    if (s->resp_chunked_out)
        s->need_last_chunk = true;
    gy_timer_stop(&s->dc->w->loop, &s->timeout);
    gy_timer_stop(&s->dc->w->loop, &s->idle);
    bool reusable = s->upstream_reusable && s->req_sent && gy_buf_len(&uc->rbuf) == 0;
    gy_uconn_release(uc, reusable, s->cluster->idle_timeout_ms);
    s->uc = NULL;
    if (!s->req_done)
        s->dc->closing = true;
}

/* Decides how the body goes to the client and writes the response head. */
static int start_response(struct gy_stream *s, const struct gy_h1_response *res)
{
    struct gy_dconn *dc = s->dc;
    struct gy_worker *w = dc->w;

    s->status = res->status;
    s->status_from_upstream = true;
    s->resp_body = res->body;
    s->resp_remaining = res->content_length;
    gy_h1_chunked_init(&s->resp_chunked);
    if (res->body == GY_H1_BODY_CHUNKED || res->body == GY_H1_BODY_EOF) {
        s->resp_chunked_out = s->minor_version == 1;
        s->resp_eof_out = !s->resp_chunked_out;
    }
    bool keep = s->client_keep_alive && !s->resp_eof_out && !dc->closing && !w->draining && s->req_done;
    s->upstream_reusable = res->keep_alive && res->body != GY_H1_BODY_EOF;
    if (gy_buf_reserve(&w->bufs, &dc->wbuf) != 0)
        return GY_ENOMEM;
    int rc = gy_fwd_response_head(s, res, &dc->wbuf, keep);
    if (rc == GY_EAGAIN && gy_buf_len(&dc->wbuf) == 0)
        rc = gy_buf_grow(&w->bufs, &dc->wbuf, (uint32_t)res->head_len + 8192) == 0
                 ? gy_fwd_response_head(s, res, &dc->wbuf, keep)
                 : GY_ENOMEM;
    if (rc != 0)
        return rc;
    if (!keep)
        dc->closing = true;
    s->resp_started = true;
    return 0;
}

/* Returns 1 when a head was handled, 0 when more bytes are needed (or room downstream), -1 when the stream ended. */
static int parse_response_head(struct gy_stream *s)
{
    struct gy_uconn *uc = s->uc;
    struct gy_dconn *dc = s->dc;
    struct gy_header hdrs[RESP_MAX_HEADERS];
    struct gy_h1_response res;
    struct gy_h1_error err;

    int rc = gy_h1_parse_response(gy_buf_start(&uc->rbuf), gy_buf_len(&uc->rbuf), &res, hdrs, &upstream_limits,
                                  s->is_head, false, &err);
    if (rc == GY_EAGAIN) {
        if (gy_buf_room(&uc->rbuf) == 0 && gy_buf_grow(&dc->w->bufs, &uc->rbuf, RESP_MAX_HEAD + 1024) != 0)
            goto bad;
        return 0;
    }
    if (rc < 0)
        goto bad;
    if (res.status < 200) {
        if (res.status == 101)
            goto bad; /* we never ask for an upgrade */
        if (s->minor_version == 1 && res.status != 100) {
            if (gy_buf_reserve(&dc->w->bufs, &dc->wbuf) != 0 || gy_fwd_informational(&res, &dc->wbuf) != 0)
                return 0;
        }
        gy_buf_consume(&uc->rbuf, res.head_len);
        return 1;
    }
    if (!s->response_judged) {
        if (gy_attempt_response(s, &res))
            return 1; /* retried: this answer is dropped with its connection */
        s->response_judged = true;
    }
    size_t before = gy_buf_len(&dc->wbuf);
    if (start_response(s, &res) != 0)
        return 0;
    if (s->route.rule != NULL && s->route.rule->ntap > 0) /* taps get the head as forwarded */
        s->resp_head = gy_pool_dup(&s->pool, gy_slice(dc->wbuf.data + dc->wbuf.tail - (gy_buf_len(&dc->wbuf) - before),
                                                      gy_buf_len(&dc->wbuf) - before));
    gy_buf_consume(&uc->rbuf, res.head_len);
    if (res.body == GY_H1_BODY_NONE || (res.body == GY_H1_BODY_LENGTH && res.content_length == 0))
        response_complete(s);
    return 1;
bad:
    gy_stat_inc(s->cluster->stats, dc->w->id, GY_C_CX_PROTOCOL_ERROR);
    gy_stream_local_reply(s, 502, GY_RF_UPE, "upstream sent an invalid response");
    return -1;
}

static bool pump_response(struct gy_stream *s)
{
    struct gy_dconn *dc = s->dc;
    bool progress = false;

    while (s->uc != NULL && !s->resp_done) {
        struct gy_uconn *uc = s->uc;
        if (uc->state == GY_UC_CONNECTING)
            return progress;
        if (gy_buf_len(&uc->rbuf) > 0) {
            if (!s->resp_started) {
                int rc = parse_response_head(s);
                if (rc != 0) {
                    progress = true;
                    continue;
                }
            } else {
                bool done = false;
                size_t before = gy_buf_len(&uc->rbuf);
                long n = gy_fwd_body(&uc->rbuf, &dc->wbuf, s->resp_body, &s->resp_remaining, &s->resp_chunked,
                                     s->resp_chunked_out, &done);
                if (n < 0) {
                    gy_stat_inc(s->cluster->stats, dc->w->id, GY_C_CX_PROTOCOL_ERROR);
                    gy_stream_reset(s, GY_RF_UPE);
                    return true;
                }
                s->bytes_tx += (uint64_t)n;
                if (done) {
                    response_complete(s);
                    return true;
                }
                if (gy_buf_len(&uc->rbuf) != before)
                    progress = true;
                if (gy_buf_len(&uc->rbuf) > 0)
                    return progress; /* the client is slower: stop reading the upstream */
            }
        }
        if (s->resp_started && s->resp_body == GY_H1_BODY_LENGTH && s->resp_remaining == 0) {
            response_complete(s);
            return true;
        }
        if (uc->eof) {
            if (s->resp_started && s->resp_body == GY_H1_BODY_EOF && gy_buf_len(&uc->rbuf) == 0) {
                s->upstream_reusable = false;
                response_complete(s);
            } else {
                gy_attempt_failed(s, uc->connect_failed ? GY_FAIL_CONNECT : GY_FAIL_RESET);
            }
            return true;
        }
        if (!uc->can_read || gy_buf_reserve(&dc->w->bufs, &uc->rbuf) != 0)
            return progress;
        ssize_t n = gy_conn_read(uc->io.fd, uc->transport, &uc->rbuf, &uc->can_read, &uc->eof, uc->hup);
        if (n > 0) {
            s->any_response_byte = true;
            gy_stat_add(s->cluster->stats, dc->w->id, GY_C_BYTES_RX, (uint64_t)n);
            progress = true;
        } else if (!uc->eof) {
            return progress;
        }
    }
    return progress;
}

bool gy_stream_pump(struct gy_stream *s)
{
    struct gy_worker *w = s->dc->w;
    bool any = false;

    if (gy_buf_reserve(&w->bufs, &s->dc->wbuf) != 0) {
        gy_stream_reset(s, GY_RF_DC);
        return true;
    }
    for (int guard = 0; guard < 256 && !s->reset; guard++) {
        bool p = pump_request(s);
        p |= flush_upstream(s);
        p |= pump_response(s);
        p |= flush_downstream(s);
        if (!p)
            break;
        any = true;
    }
    if (any)
        s->last_activity = gy_loop_now(&w->loop);
    return any;
}

void gy_stream_upstream_event(struct gy_stream *s)
{
    gy_dconn_run(s->dc);
}
