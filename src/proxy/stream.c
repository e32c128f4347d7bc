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

#define POOL_LIMIT (256u * 1024u)

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
    s->down = dc->ops;
    s->grpc_status = -1;
    gy_list_init(&s->link);
    gy_list_init(&s->ready);
    gy_list_init(&s->ulink);
    gy_list_init(&s->uwake);
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

/* Writes the low 4*n bits of v as n lowercase hex digits. */
static char *put_hex(char *p, uint64_t v, int n)
{
    static const char digits[] = "0123456789abcdef";

    for (int i = n - 1; i >= 0; i--, v >>= 4)
        p[i] = digits[v & 0xf];
    return p + n;
}

static struct gy_slice new_request_id(struct gy_stream *s)
{
    uint64_t a = gy_worker_rand(s->dc->w), b = gy_worker_rand(s->dc->w);
    char *id = gy_pool_alloc(&s->pool, 36), *p = id;

    if (id == NULL)
        return GY_SLICE_LIT("-");
    /* UUID version 4, variant 1: 8-4-4-4-12 hex digits (not snprintf: this runs for every request). */
    a = (a & ~0xf000ull) | 0x4000ull;
    b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;
    p = put_hex(p, a >> 32, 8);
    *p++ = '-';
    p = put_hex(p, a >> 16, 4);
    *p++ = '-';
    p = put_hex(p, a, 4);
    *p++ = '-';
    p = put_hex(p, b >> 48, 4);
    *p++ = '-';
    put_hex(p, b, 12);
    return gy_slice(id, 36);
}

static void copy_request_info(struct gy_stream *s, const struct gy_req_head *req)
{
    const struct gy_header *h;

    s->method = gy_pool_dup(&s->pool, req->method);
    s->target = gy_pool_dup(&s->pool, req->target);
    s->host_hdr = gy_pool_dup(&s->pool, req->authority);
    s->version = req->version;
    s->is_head = req->is_head;
    s->client_keep_alive = req->keep_alive;
    if ((h = gy_header_find(req->headers, req->nheaders, GY_SLICE_LIT("user-agent"))) != NULL)
        s->user_agent = gy_pool_dup(&s->pool, h->value);
    if ((h = gy_header_find(req->headers, req->nheaders, GY_SLICE_LIT("x-forwarded-for"))) != NULL)
        s->xff = gy_pool_dup(&s->pool, h->value);
    h = gy_header_find(req->headers, req->nheaders, GY_SLICE_LIT("x-request-id"));
    if (h != NULL && valid_request_id(h->value))
        s->request_id = gy_pool_dup(&s->pool, h->value);
    else if (s->lcfg->generate_request_id)
        s->request_id = new_request_id(s);
    else
        s->request_id = GY_SLICE_LIT(""); /* none is sent upstream; the access log shows "-" */
    h = gy_header_find(req->headers, req->nheaders, GY_SLICE_LIT("content-type"));
    s->grpc = h != NULL && gy_slice_has_prefix(h->value, GY_SLICE_LIT("application/grpc"));
    s->grpc_web.mode = h != NULL ? (uint8_t)gy_grpcweb_mode(h->value) : GY_GRPCWEB_NONE;
}

/* ---- ending ---- */

void gy_stream_reset(struct gy_stream *s, uint32_t flag)
{
    s->flags |= flag;
    if (s->reset)
        return;
    s->reset = true;
    gy_attempt_detach(s);
    gy_timer_stop(&s->dc->w->loop, &s->timeout);
    gy_timer_stop(&s->dc->w->loop, &s->idle);
    s->down->reset(s);
}

/* gRPC status for an HTTP status the proxy answers with (the gRPC HTTP mapping). */
static int grpc_status_for(int status, uint32_t flag)
{
    if (flag & (GY_RF_UT | GY_RF_SI))
        return 4; /* DEADLINE_EXCEEDED */
    switch (status) {
    case 400:
        return 13;
    case 401:
        return 16;
    case 403:
        return 7;
    case 404:
        return 12;
    case 429:
    case 502:
    case 503:
    case 504:
        return 14;
    default:
        return 2;
    }
}

static void reply(struct gy_stream *s, int status, uint32_t flag, const char *extra, const char *body, size_t len);

/* A gRPC error for a gRPC caller: HTTP 200, the status in a trailers-only response. */
static void grpc_reply(struct gy_stream *s, int code, uint32_t flag, const char *message)
{
    char extra[700], msg[300];
    size_t n = 0;

    /* grpc-message is percent-encoded (gRPC over HTTP/2). */
    for (const char *p = message; *p && n + 4 < sizeof(msg); p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c < 0x7f && c != '%')
            msg[n++] = (char)c;
        else if (c != '\n')
            n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%%%02X", c);
    }
    msg[n] = '\0';
    snprintf(extra, sizeof(extra), "content-type: application/grpc\r\ngrpc-status: %d\r\ngrpc-message: %s\r\n", code,
             msg);
    s->grpc_status = code;
    reply(s, 200, flag, extra, NULL, 0);
}

static void reply(struct gy_stream *s, int status, uint32_t flag, const char *extra, const char *body, size_t len)
{
    struct gy_dconn *dc = s->dc;
    struct gy_worker *w = dc->w;

    if (s->resp_started || s->reset) {
        gy_stream_reset(s, flag);
        return;
    }
    if (s->grpc && status != 200) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%.*s", (int)(len && body[len - 1] == '\n' ? len - 1 : len), body ? body : "");
        grpc_reply(s, grpc_status_for(status, flag), flag, msg);
        return;
    }
    s->flags |= flag;
    s->status = status;
    if (s->uc != NULL)
        gy_attempt_detach(s);
    gy_timer_stop(&w->loop, &s->backoff);
    gy_timer_stop(&w->loop, &s->per_try);
    bool close = !s->client_keep_alive || !s->req_done || dc->closing || w->draining;
    if (s->down->local_reply(s, status, extra, body, len, close) != 0) {
        gy_stream_reset(s, flag);
        return;
    }
    s->resp_started = s->resp_done = true;
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
    gy_stream_reply_extra(s, status, flag, NULL, body);
}

bool gy_stream_finished(const struct gy_stream *s)
{
    return s->down->finished(s);
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
    if (s->grpc)
        gy_stat_grpc(s->lcfg->stats, wid, s->grpc_status);
    if (s->route.route != NULL && s->route.route->stats != NULL) {
        gy_stat_status(s->route.route->stats, wid, status);
        gy_stat_observe(s->route.route->stats, wid, GY_H_RQ_TIME, total_us);
        if (s->grpc)
            gy_stat_grpc(s->route.route->stats, wid, s->grpc_status);
    }
    if (s->cluster != NULL) {
        struct gy_stats_scope *cs = s->cluster->stats;
        gy_stat_dec(cs, wid, GY_C_RQ_ACTIVE);
        gy_stat_status(cs, wid, s->status_from_upstream ? s->status : 0);
        if (s->grpc && s->status_from_upstream)
            gy_stat_grpc(cs, wid, s->grpc_status);
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

    if (s->uc != NULL)
        gy_attempt_detach(s);
    if (gy_list_linked(&s->uwake))
        gy_list_remove(&s->uwake);
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
    gy_buf_release(&w->bufs, &s->req_buf);
    gy_buf_release(&w->bufs, &s->resp_buf);
    gy_buf_release(&w->bufs, &s->ureq_buf);
    gy_buf_release(&w->bufs, &s->uresp_buf);
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
    s->down->wake(s);
}

uint32_t gy_stream_idle_timeout_ms(const struct gy_stream *s)
{
    if (s->route.route != NULL && s->route.route->idle_timeout_ms)
        return s->route.route->idle_timeout_ms;
    return s->lcfg->stream_idle_timeout_ms;
}

static void idle_cb(struct gy_timer *t)
{
    struct gy_stream *s = GY_CONTAINER_OF(t, struct gy_stream, idle);
    struct gy_dconn *dc = s->dc;
    uint64_t now = gy_loop_now(&dc->w->loop), limit = gy_stream_idle_timeout_ms(s);

    if (now - s->last_activity < limit) {
        gy_timer_start(&dc->w->loop, &s->idle, limit - (now - s->last_activity));
        return;
    }
    gy_stat_inc(s->lcfg->stats, dc->w->id, GY_C_RQ_TIMEOUT);
    if (!s->req_done)
        gy_stream_local_reply(s, 408, GY_RF_SI, "stream idle timeout");
    else
        gy_stream_local_reply(s, 504, GY_RF_SI | GY_RF_UT, "stream idle timeout");
    s->down->wake(s);
}

/* grpc-timeout (gRPC over HTTP/2): up to 8 digits and a unit (H M S m u n); 0 if absent or invalid. */
static uint64_t grpc_timeout_ms(const struct gy_req_head *req)
{
    const struct gy_header *h = gy_header_find(req->headers, req->nheaders, GY_SLICE_LIT("grpc-timeout"));
    uint64_t v = 0;

    if (h == NULL || h->value.len < 2 || h->value.len > 9)
        return 0;
    for (size_t i = 0; i + 1 < h->value.len; i++) {
        char c = h->value.ptr[i];
        if (c < '0' || c > '9')
            return 0;
        v = v * 10 + (uint64_t)(c - '0');
    }
    switch (h->value.ptr[h->value.len - 1]) {
    case 'H':
        return v * 3600000;
    case 'M':
        return v * 60000;
    case 'S':
        return v * 1000;
    case 'm':
        return v ? v : 1;
    case 'u':
        return v / 1000 ? v / 1000 : 1;
    case 'n':
        return v / 1000000 ? v / 1000000 : 1;
    default:
        return 0;
    }
}

/* max_stream_duration, or the caller's gRPC deadline when it is sooner. */
static void start_deadline(struct gy_stream *s, const struct gy_req_head *req)
{
    uint64_t ms = s->route.route->max_stream_duration_ms;

    if (s->grpc) {
        uint64_t g = grpc_timeout_ms(req);
        if (g > 0 && (ms == 0 || g < ms))
            ms = g;
    }
    if (ms > 0)
        gy_timer_start(&s->dc->w->loop, &s->max_duration, ms);
}

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

static void start_body_state(struct gy_stream *s, const struct gy_req_head *req)
{
    s->req_has_body = req->body;
    s->req_length = req->content_length;
    gy_h1_bodydec_init(&s->req_dec,
                       !req->body      ? GY_H1_BODY_NONE
                       : req->chunked  ? GY_H1_BODY_CHUNKED
                       : req->content_length >= 0 ? GY_H1_BODY_LENGTH
                                                   : GY_H1_BODY_EOF,
                       req->content_length > 0 ? (uint64_t)req->content_length : 0);
    s->req_done = !req->body;
}

/* After a route to a cluster (and the filters): build the upstream head, start the first attempt. */
static void start_upstream(struct gy_stream *s, const struct gy_req_head *req)
{
    struct gy_worker *w = s->dc->w;

    gy_attempt_init(s, req);
    s->req_chunked_up = req->body && req->content_length < 0 && !s->tunnel;
    if (s->tunnel && s->up_h2 && !req->is_connect) { /* HTTP/1.1 Upgrade to an extended CONNECT */
        const struct gy_header *key = gy_header_find(req->headers, req->nheaders, GY_SLICE_LIT("sec-websocket-key"));
        s->ws_accept = key != NULL ? gy_fwd_ws_accept(&s->pool, key->value) : GY_SLICE_NULL;
        if (s->ws_accept.ptr == NULL) {
            s->down->head_done(s, req);
            gy_stream_local_reply(s, 400, GY_RF_DPE, "a WebSocket upgrade needs a valid Sec-WebSocket-Key");
            return;
        }
    }
    int rc = s->up_h2 ? gy_fwd_request_nv(s, req, s->route.path) : gy_fwd_request_head(s, req, s->route.path);
    /* Shadow copies and taps go over HTTP/1.1; a TLS host may choose http/1.1 by ALPN. */
    if (rc == 0 && s->up_h2 &&
        (s->cluster->tls != NULL || (s->route.rule != NULL && (s->route.rule->ndark > 0 || s->route.rule->ntap > 0))))
        rc = gy_fwd_request_head(s, req, s->route.path);
    s->down->head_done(s, req);
    if (rc != 0) {
        gy_stream_local_reply(s, 431, GY_RF_DPE, "request headers too large");
        return;
    }
    gy_attempt_begin(s);
    if (s->resp_done || s->reset)
        return;
    if (req->expect_continue && !s->req_done) {
        struct gy_resp_head cont = { .status = 100, .content_length = -1 };
        s->down->resp_head(s, &cont);
    }
    gy_timer_start(&w->loop, &s->idle, gy_stream_idle_timeout_ms(s));
}

/* Runs the listener's filters; true when the request goes on now. */
static bool run_filters(struct gy_stream *s, const struct gy_req_head *req)
{
    struct gy_dconn *dc = s->dc;
    const struct gy_filter_chain *chain = s->lcfg->filters;
    struct gy_filter_call c;

    if (chain == NULL)
        return true;
    if (s->edits == NULL) {
        if ((s->edits = gy_pool_alloc(&s->pool, sizeof(*s->edits))) == NULL) {
            s->down->head_done(s, req);
            gy_stream_local_reply(s, 500, 0, "out of memory");
            return false;
        }
        memset(s->edits, 0, sizeof(*s->edits));
        s->edits->pool = &s->pool;
    }
    memset(&c, 0, sizeof(c));
    c.edits = s->edits;
    c.request_id = s->request_id;
    c.method = req->method;
    c.path = req->path;
    c.query = req->query;
    c.host = req->authority;
    c.headers = req->headers;
    c.nheaders = req->nheaders;
    c.peer_ip = dc->peer_ip;
    c.peer = dc->transport != NULL ? gy_tls_peer(dc->transport) : NULL;
    c.route = s->route.route;
    c.listener = s->lcfg;
    c.grpc = s->grpc;
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
    s->down->head_done(s, req);
    if (c.reply_grpc_status >= 0)
        grpc_reply(s, c.reply_grpc_status, GY_RF_FI, c.reply_body);
    else
        gy_stream_reply_extra(s, c.reply_status, GY_RF_FI, c.reply_extra, c.reply_body);
    return false;
}

/* Routes the request and runs the filters (again after a filter's delay: `resumed`). */
static void proceed(struct gy_stream *s, const struct gy_req_head *req, bool resumed)
{
    struct gy_dconn *dc = s->dc;
    char pathbuf[8192];
    struct gy_route_request rr = {
        .method = req->method,
        .host = req->authority,
        .path = req->path.len ? req->path : GY_SLICE_LIT("/"), /* "http://host" has no path */
        .query = req->query,
        .headers = req->headers,
        .nheaders = req->nheaders,
        .random = s->route_random,
        .tls = dc->transport != NULL,
    };

    /* The same config and random number route a resumed request the same way. */
    if (gy_router_route(s->lcfg, &rr, &s->route, pathbuf, sizeof(pathbuf)) != 0) {
        s->down->head_done(s, req);
        gy_stream_local_reply(s, 414, GY_RF_DPE, "rewritten URI too long");
        return;
    }
    if (!resumed && s->route.route != NULL && s->route.route->stats != NULL)
        gy_stat_inc(s->route.route->stats, dc->w->id, GY_C_RQ_ACTIVE);
    if (s->route.action == GY_ROUTE_NOT_FOUND || s->route.route == NULL) { /* no route, or a domain redirect */
        s->down->head_done(s, req);
        reply_route(s);
        return;
    }
    if (!resumed)
        start_deadline(s, req);
    if (!run_filters(s, req))
        return;
    if (s->route.action != GY_ROUTE_CLUSTER) {
        /* The location or path may point into pathbuf: reply before it goes away. */
        s->down->head_done(s, req);
        reply_route(s);
        return;
    }
    start_upstream(s, req);
}

static void filter_timer_cb(struct gy_timer *t)
{
    struct gy_stream *s = GY_CONTAINER_OF(t, struct gy_stream, filter_timer);
    struct gy_req_head req;

    if (s->down->head_again(s, &req) != 0) /* cannot happen: it parsed before */
        gy_stream_reset(s, GY_RF_DPE);
    else
        proceed(s, &req, true);
    s->down->wake(s);
}

static void max_duration_cb(struct gy_timer *t)
{
    struct gy_stream *s = GY_CONTAINER_OF(t, struct gy_stream, max_duration);
    struct gy_dconn *dc = s->dc;

    gy_stat_inc(s->lcfg->stats, dc->w->id, GY_C_RQ_TIMEOUT);
    gy_stream_local_reply(s, 504, GY_RF_UT, "max stream duration reached");
    s->down->wake(s);
}

/* WebSocket: an h1 Upgrade or an h2 extended CONNECT (RFC 8441) becomes a tunnel. */
static bool start_tunnel(struct gy_stream *s, const struct gy_req_head *req)
{
    bool ws = gy_slice_eqi(req->protocol, GY_SLICE_LIT("websocket"));

    if (req->is_connect && !ws) {
        s->down->head_done(s, req);
        gy_stream_local_reply(s, req->protocol.len ? 501 : 405, GY_RF_NR,
                              req->protocol.len ? "only the websocket protocol can be tunnelled"
                                                : "CONNECT is not supported on this listener");
        return false;
    }
    if (ws && (req->upgrade || req->is_connect)) {
        s->tunnel = true;
        s->req_has_body = true;
        s->req_length = -1;
        s->req_done = false;
        gy_h1_bodydec_init(&s->req_dec, GY_H1_BODY_TUNNEL, 0);
    }
    return true;
}

void gy_stream_start(struct gy_stream *s, const struct gy_req_head *req)
{
    copy_request_info(s, req);
    start_body_state(s, req);
    if (!start_tunnel(s, req))
        return;
    s->route_random = gy_worker_rand(s->dc->w);
    proceed(s, req, false);
}

/* ---- pumping ---- */

static bool pump_request(struct gy_stream *s)
{
    bool progress = false;

    if (s->req_sent || s->uc == NULL)
        return false;
    if (!s->req_done) {
        progress = s->down->req_pump(s);
        if (s->reset || s->uc == NULL)
            return true;
        if (!s->req_done)
            return progress;
    }
    if (s->up->req_end(s) != 0)
        return progress;
    s->req_sent = true;
    if (!s->req_complete_seen) {
        s->req_complete_seen = true;
        uint32_t tmo = s->retry != NULL && s->retry->timeout_ms ? s->retry->timeout_ms : s->route.route->timeout_ms;
        if (tmo > 0 && !s->resp_done)
            gy_timer_start(&s->dc->w->loop, &s->timeout, tmo);
        if (s->route.rule != NULL && s->route.rule->ndark > 0)
            gy_shadow_dark(s);
    }
    return true;
}

void gy_stream_response_complete(struct gy_stream *s, bool reusable)
{
    struct gy_loop *loop = &s->dc->w->loop;

    s->resp_done = true;
    s->t_upstream_done_ns = gy_now_ns();
    gy_timer_stop(loop, &s->timeout);
    gy_timer_stop(loop, &s->idle);
    s->up->done(s, reusable && s->req_sent);
    s->uc = NULL;
    s->up = NULL;
    s->down->resp_end(s, s->trailers, s->ntrailers);
}

static int grpc_status_in(const struct gy_header *h, unsigned n)
{
    const struct gy_header *g = gy_header_find(h, n, GY_SLICE_LIT("grpc-status"));
    long long v = g != NULL ? gy_slice_to_u63(g->value) : -1;

    return v >= 0 && v < 1000 ? (int)v : -1;
}

void gy_stream_trailers(struct gy_stream *s, const struct gy_header *h, unsigned n)
{
    int g = grpc_status_in(h, n);

    s->trailers = h;
    s->ntrailers = n;
    if (g >= 0)
        s->grpc_status = g;
}

int gy_stream_response_head(struct gy_stream *s, const struct gy_resp_head *h)
{
    if (h->status < 200 && !h->tunnel) {
        int rc = s->down->resp_head(s, h);
        return rc == GY_EAGAIN ? 0 : 1;
    }
    if (!s->response_judged) {
        if (gy_attempt_response(s, h))
            return -1; /* retried: this answer is dropped with its attempt */
        s->response_judged = true;
    }
    s->status = h->status;
    s->status_from_upstream = true;
    int g = grpc_status_in(h->headers, h->nheaders);
    if (g >= 0)
        s->grpc_status = g;
    int rc = s->down->resp_head(s, h);
    if (rc == GY_EAGAIN)
        return 0;
    if (rc != 0) {
        gy_stream_reset(s, GY_RF_DC);
        return -1;
    }
    s->resp_started = true;
    return 1;
}

bool gy_stream_pump(struct gy_stream *s)
{
    struct gy_worker *w = s->dc->w;
    bool any = false;

    for (int guard = 0; guard < 256 && !s->reset; guard++) {
        bool p = pump_request(s);
        if (s->uc != NULL && !s->reset)
            p |= s->up->flush(s);
        if (s->uc != NULL && !s->reset && !s->resp_done)
            p |= s->up->resp_pump(s);
        if (!s->reset)
            p |= s->down->flush(s);
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
    s->down->wake(s);
}
