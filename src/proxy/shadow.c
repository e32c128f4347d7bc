/*
 * Shadow copies: a `dark` constraint gets a copy of each request (when its body fit in the replay
 * buffer) and a `tap` constraint gets a JSON record of the request and response once the exchange
 * is over. Copies go out on their own upstream connections, their answers are read and thrown
 * away, and nothing about them can slow down or fail the real request: a copy that cannot be
 * sent is dropped and counted. A copy is written as an HTTP/1.1 request; to a cluster that speaks
 * HTTP/2 without TLS (h2c) it goes as one stream of its own HTTP/2 connection instead, made from
 * that request. To an HTTP/2 cluster over TLS the connection offers "h2" and "http/1.1" by ALPN
 * and the copy waits for the server's choice (no answer means h2, as for proxied requests).
 * HTTP/1.1 copies go back to the host's pool when their answer is read; an HTTP/2 copy's session
 * is parked when its stream is over and the next copy to the same host makes its stream there
 * (at most SHADOW_PARKED per worker, each closed after SHADOW_IDLE_MS unused), so that a mirrored
 * stream of requests does not open a connection per copy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "http/h2.h"
#include "proxy/hosts.h"
#include "proxy/proxy.h"
#include "tls/tls.h"

#define MAX_SHADOWS_PER_WORKER 256
#define SHADOW_TIMEOUT_MS 10000
#define TAP_BODY_MAX 4096
#define SHADOW_PARKED 64
#define SHADOW_IDLE_MS 5000

struct gy_shadow {
    struct gy_list link;
    struct gy_worker *w;
    struct gy_wcfg *wcfg;             /* referenced: the pools of the cluster */
    const struct gy_cluster *cluster;
    struct gy_upool *pool;            /* the host */
    struct gy_uconn *uc;
    struct gy_timer timer;
    char *data;                       /* the whole request */
    size_t len;
    bool alpn_pending;                /* HTTP/2 over TLS: nothing goes out before the server's ALPN choice */
    bool head_done;
    enum gy_h1_body body;
    uint64_t remaining;
    struct gy_h1_chunked chunked;
    /* HTTP/2 (h2c, or TLS when the server picks h2) */
    struct gy_h2 *h2;
    bool h2_closed;                   /* the stream is over */
    bool parked;                      /* no copy: the session waits for the next one to its host */
    const char *h2_body;              /* the request body still to send, in `data` */
    size_t h2_body_len;
};

static void shadow_free(struct gy_shadow *sh, bool reusable)
{
    struct gy_worker *w = sh->w;

    if (sh->uc != NULL) {
        if (reusable)
            gy_uconn_release(sh->uc, true, sh->cluster->idle_timeout_ms);
        else
            gy_uconn_close(sh->uc);
    }
    if (sh->h2 != NULL) {
        gy_h2_dispose(sh->h2);
        free(sh->h2);
    }
    gy_timer_stop(&w->loop, &sh->timer);
    gy_list_remove(&sh->link);
    if (sh->parked)
        w->nshadows_parked--;
    else
        w->nshadows--;
    gy_wcfg_release(w, sh->wcfg);
    free(sh->data);
    free(sh);
}

static void timeout_cb(struct gy_timer *t)
{
    shadow_free(GY_CONTAINER_OF(t, struct gy_shadow, timer), false);
}

/* Reads the answer and discards it; returns true when it is complete. */
static bool consume_answer(struct gy_shadow *sh)
{
    struct gy_uconn *uc = sh->uc;

    if (!sh->head_done) {
        struct gy_header hdrs[128];
        struct gy_h1_response res;
        struct gy_h1_error err;
        struct gy_h1_limits lim = { 8192, GY_BUF_BLOCK, 128 };
        int rc = gy_h1_parse_response(gy_buf_start(&uc->rbuf), gy_buf_len(&uc->rbuf), &res, hdrs, &lim, false, false,
                                      &err);
        if (rc == GY_EAGAIN)
            return false;
        if (rc < 0 || res.body == GY_H1_BODY_TUNNEL) {
            uc->eof = true; /* not reusable */
            return true;
        }
        gy_buf_consume(&uc->rbuf, res.head_len);
        if (res.status < 200)
            return consume_answer(sh);
        sh->head_done = true;
        sh->body = res.body;
        sh->remaining = res.content_length;
        gy_h1_chunked_init(&sh->chunked);
        if (!res.keep_alive)
            uc->eof = true;
    }
    if (sh->body == GY_H1_BODY_NONE)
        return true;
    if (sh->body == GY_H1_BODY_EOF) {
        gy_buf_consume(&uc->rbuf, gy_buf_len(&uc->rbuf));
        return uc->eof;
    }
    if (sh->body == GY_H1_BODY_LENGTH) {
        size_t n = gy_buf_len(&uc->rbuf) < sh->remaining ? gy_buf_len(&uc->rbuf) : (size_t)sh->remaining;
        gy_buf_consume(&uc->rbuf, n);
        sh->remaining -= n;
        return sh->remaining == 0;
    }
    for (;;) {
        struct gy_slice data;
        bool done = false;
        long k = gy_h1_chunked_decode(&sh->chunked, gy_buf_start(&uc->rbuf), gy_buf_len(&uc->rbuf), &data, &done);
        if (k < 0) {
            uc->eof = true;
            return true;
        }
        gy_buf_consume(&uc->rbuf, (size_t)k);
        if (done)
            return true;
        if (k == 0)
            return false;
    }
}

/* ---- HTTP/2: the copy as one stream; the answer is read and dropped ---- */

static int h2_on_head(struct gy_h2 *h, int32_t sid, void *sud, const struct gy_h2_head *head, bool trailers, bool end)
{
    (void)h, (void)sid, (void)sud, (void)head, (void)trailers, (void)end;
    return 0;
}

static int h2_on_data(struct gy_h2 *h, int32_t sid, void *sud, const uint8_t *p, size_t n)
{
    (void)sud, (void)p;
    nghttp2_session_consume(h->ng, sid, n); /* thrown away: the window goes back at once */
    return 0;
}

static void h2_on_end(struct gy_h2 *h, int32_t sid, void *sud)
{
    (void)h, (void)sid, (void)sud;
}

static void h2_on_close(struct gy_h2 *h, int32_t sid, void *sud, uint32_t code)
{
    struct gy_shadow *sh = h->ud;

    (void)sid, (void)sud, (void)code;
    sh->h2_closed = true;
}

static ssize_t h2_read_body(struct gy_h2 *h, int32_t sid, void *sud, uint8_t *buf, size_t len, bool *eof,
                            bool *trailers)
{
    struct gy_shadow *sh = h->ud;
    size_t n = sh->h2_body_len < len ? sh->h2_body_len : len;

    (void)sid, (void)sud, (void)trailers;
    memcpy(buf, sh->h2_body, n);
    sh->h2_body += n;
    sh->h2_body_len -= n;
    *eof = sh->h2_body_len == 0;
    return (ssize_t)n;
}

static const struct gy_h2_callbacks h2_callbacks = {
    .on_head = h2_on_head,
    .on_data = h2_on_data,
    .on_end = h2_on_end,
    .on_close = h2_on_close,
    .read_body = h2_read_body,
};

/* The HTTP/1.1 copy in sh->data becomes an HTTP/2 request on a new session: the head's fields
 * (less those HTTP/2 does without), the body decoded from its framing into place. */
static int h2_start(struct gy_shadow *sh)
{
    static const struct gy_h1_limits lim = { 16384, 65536, 128 };
    struct gy_header hdrs[128];
    nghttp2_nv nv[132];
    struct gy_h1_request req;
    struct gy_h1_error err;
    size_t n = 0;

    if (gy_h1_parse_request(sh->data, sh->len, &req, hdrs, &lim, &err) < 0 || req.body == GY_H1_BODY_EOF)
        return GY_EPARSE;
    char *body = sh->data + req.head_len;
    size_t left = sh->len - req.head_len, blen = 0;
    if (req.body == GY_H1_BODY_CHUNKED) {
        struct gy_h1_chunked ch;
        bool done = false;
        gy_h1_chunked_init(&ch);
        while (!done && left > 0) {
            struct gy_slice d;
            long k = gy_h1_chunked_decode(&ch, body + (sh->len - req.head_len - left), left, &d, &done);
            if (k < 0 || (k == 0 && !done))
                return GY_EPARSE;
            memmove(body + blen, d.ptr, d.len); /* decoded bytes never outrun the encoded ones */
            blen += d.len;
            left -= (size_t)k;
        }
    } else {
        blen = left;
    }
#define NV(name, nlen, value, vlen)                                                                        \
    (nv[n++] = (nghttp2_nv){ (uint8_t *)(name), (uint8_t *)(value), (nlen), (vlen), gy_h2_nv_flags((name), (nlen)) })
    NV(":method", 7, req.method.ptr, req.method.len);
    NV(":scheme", 7, sh->cluster->tls != NULL ? "https" : "http", sh->cluster->tls != NULL ? 5 : 4);
    struct gy_slice authority = req.host.len ? req.host : gy_slice_cstr(sh->cluster->name);
    NV(":authority", 10, authority.ptr, authority.len);
    NV(":path", 5, req.target.ptr, req.target.len);
    for (unsigned i = 0; i < req.nheaders; i++) {
        struct gy_slice name = req.headers[i].name;
        if (gy_h1_is_hop_by_hop(name) || gy_slice_eqi_cstr(name, "host") ||
            gy_slice_eqi_cstr(name, "content-length"))
            continue; /* the length is the DATA frames' (a chunked body has none in its head) */
        NV(name.ptr, name.len, req.headers[i].value.ptr, req.headers[i].value.len); /* nghttp2 lower-cases it */
    }
#undef NV
    if (sh->h2 == NULL && ((sh->h2 = calloc(1, sizeof(*sh->h2))) == NULL ||
                           gy_h2_init(sh->h2, false, &sh->cluster->h2, 1000, &h2_callbacks, sh, &sh->w->h2mem) != 0)) {
        free(sh->h2);
        sh->h2 = NULL;
        return GY_ENOMEM;
    }
    sh->h2_body = body;
    sh->h2_body_len = blen;
    nghttp2_data_provider prov = gy_h2_body(sh);
    if (nghttp2_submit_request(sh->h2->ng, NULL, nv, n, blen > 0 ? &prov : NULL, sh) < 0)
        return GY_EIO;
    return 0;
}

/* The copy's stream is over on a session that lives on: keep the session for the next copy to
 * this host; false when it cannot be kept (too many parked already). */
static bool park(struct gy_shadow *sh)
{
    struct gy_worker *w = sh->w;

    if (w->nshadows_parked >= SHADOW_PARKED || w->draining || w->stopping)
        return false;
    free(sh->data);
    sh->data = NULL;
    sh->parked = true;
    w->nshadows--;
    w->nshadows_parked++;
    gy_timer_start(&w->loop, &sh->timer, SHADOW_IDLE_MS);
    return true;
}

/* A parked session to this host of this cluster (config), taken for a new copy; NULL if none. */
static struct gy_shadow *unpark(struct gy_worker *w, const struct gy_cluster *c, struct gy_upool *pool)
{
    for (struct gy_list *n = w->shadows.next; n != &w->shadows; n = n->next) {
        struct gy_shadow *sh = GY_CONTAINER_OF(n, struct gy_shadow, link);
        if (!sh->parked || sh->cluster != c || sh->pool != pool || sh->uc->eof || gy_h2_done(sh->h2) ||
            !nghttp2_session_check_request_allowed(sh->h2->ng))
            continue;
        sh->parked = false;
        sh->h2_closed = false;
        w->nshadows_parked--;
        w->nshadows++;
        gy_timer_stop(&w->loop, &sh->timer);
        return sh;
    }
    return NULL;
}

static void h2_event(struct gy_shadow *sh)
{
    struct gy_uconn *uc = sh->uc;
    struct gy_worker *w = sh->w;

    for (int guard = 0; guard < 64; guard++) {
        if (gy_buf_reserve(&w->bufs, &uc->wbuf) != 0 || gy_buf_reserve(&w->bufs, &uc->rbuf) != 0 ||
            gy_h2_send(sh->h2, &uc->wbuf) < 0) {
            shadow_free(sh, false);
            return;
        }
        if (gy_buf_len(&uc->wbuf) > 0 && uc->can_write &&
            gy_conn_write(uc->io.fd, uc->transport, &uc->wbuf, &uc->can_write) < 0) {
            shadow_free(sh, false);
            return;
        }
        if (gy_h2_done(sh->h2) || uc->eof || (sh->h2_closed && !sh->parked && !park(sh))) {
            shadow_free(sh, false);
            return;
        }
        if (!uc->can_read) {
            if (sh->parked && gy_buf_len(&uc->wbuf) == 0) { /* an idle session holds no buffer */
                gy_buf_release(&w->bufs, &uc->wbuf);
                gy_buf_release(&w->bufs, &uc->rbuf);
            }
            return;
        }
        ssize_t got = gy_conn_read(uc->io.fd, uc->transport, &uc->rbuf, &uc->can_read, &uc->eof, uc->hup);
        if (got > 0) {
            long rc = gy_h2_recv(sh->h2, gy_buf_start(&uc->rbuf), gy_buf_len(&uc->rbuf), gy_loop_now(&w->loop));
            gy_buf_consume(&uc->rbuf, gy_buf_len(&uc->rbuf));
            if (rc < 0)
                uc->eof = true;
        } else if (got < 0 && !uc->eof) {
            return;
        }
    }
}

/* The HTTP/1.1 copy, queued whole on the connection. */
static int h1_queue(struct gy_shadow *sh)
{
    struct gy_uconn *uc = sh->uc;
    struct gy_worker *w = sh->w;

    if (gy_buf_reserve(&w->bufs, &uc->wbuf) != 0 ||
        (sh->len > uc->wbuf.cap && gy_buf_grow(&w->bufs, &uc->wbuf, (uint32_t)sh->len) != 0))
        return GY_ENOMEM;
    gy_buf_append(&uc->wbuf, sh->data, sh->len);
    return 0;
}

void gy_shadow_event(struct gy_shadow *sh)
{
    struct gy_uconn *uc = sh->uc;
    struct gy_worker *w = sh->w;

    if (uc->state == GY_UC_CONNECTING || uc->handshaking)
        return;
    if (uc->connect_failed) {
        shadow_free(sh, false);
        return;
    }
    if (sh->alpn_pending) {
        const char *alpn = gy_tls_alpn(uc->transport);
        bool h1 = alpn != NULL && strcmp(alpn, "http/1.1") == 0;
        sh->alpn_pending = false;
        if (h1)
            sh->pool->h1_alpn = true; /* as a proxied request would have learnt */
        if ((h1 ? h1_queue(sh) : h2_start(sh)) != 0) {
            shadow_free(sh, false);
            return;
        }
    }
    if (sh->h2 != NULL) {
        h2_event(sh);
        return;
    }
    for (int guard = 0; guard < 64; guard++) {
        if (gy_buf_len(&uc->wbuf) > 0 && uc->can_write && gy_conn_write(uc->io.fd, uc->transport, &uc->wbuf, &uc->can_write) < 0) {
            shadow_free(sh, false);
            return;
        }
        if (gy_buf_reserve(&w->bufs, &uc->rbuf) != 0) {
            shadow_free(sh, false);
            return;
        }
        bool done = gy_buf_len(&uc->rbuf) > 0 && consume_answer(sh);
        if (done) {
            shadow_free(sh, !uc->eof && gy_buf_len(&uc->rbuf) == 0 && gy_buf_len(&uc->wbuf) == 0);
            return;
        }
        if (uc->eof || (!uc->can_read)) {
            if (uc->eof)
                shadow_free(sh, false);
            return;
        }
        if (gy_conn_read(uc->io.fd, uc->transport, &uc->rbuf, &uc->can_read, &uc->eof, uc->hup) <= 0 && !uc->eof)
            return;
    }
}

/* Sends `data` (a whole request; ownership passes) to a host of cluster c. */
static void send_copy(struct gy_stream *s, const struct gy_cluster *c, char *data, size_t len)
{
    struct gy_worker *w = s->dc->w;
    struct gy_wcluster *wc = &s->wcfg->clusters[c->index];
    uint8_t small[64], *ex = c->ninstances <= sizeof(small) ? small : NULL;
    struct gy_lb_ctx ctx = { .rng = &w->rng, .active = wc->active };
    bool overflow;
    int idx;

    bool h2c = c->http2 && c->tls == NULL, alpn = c->http2 && c->tls != NULL;

    if (w->nshadows >= MAX_SHADOWS_PER_WORKER || ex == NULL)
        goto drop;
    for (size_t i = 0; i < c->ninstances; i++)
        ex[i] = c->instances[i].state != NULL && !gy_host_usable(c->instances[i].state);
    ctx.excluded = ex;
    if ((idx = gy_lb_pick(c, wc->lb, &ctx)) < 0)
        goto drop;
    if (alpn && wc->hosts[idx]->h1_alpn)
        alpn = false; /* the host chose http/1.1 before: a plain HTTP/1.1 copy, from the pool */
    /* an HTTP/2 copy goes on a parked session to the host if there is one, else on a new one */
    struct gy_shadow *sh = h2c || alpn ? unpark(w, c, wc->hosts[idx]) : NULL;
    if (sh == NULL) {
        if ((sh = calloc(1, sizeof(*sh))) == NULL)
            goto drop;
        struct gy_uconn *uc = h2c || alpn ? NULL : gy_upool_take(wc->hosts[idx]);
        if (uc == NULL && (uc = gy_uconn_open(w, wc->hosts[idx], c, &c->instances[idx],
                                              alpn ? GY_UC_ALPN : GY_UC_HTTP1, &overflow)) == NULL) {
            free(sh);
            goto drop;
        }
        sh->w = w;
        sh->wcfg = gy_wcfg_acquire(s->wcfg);
        sh->cluster = c;
        sh->pool = wc->hosts[idx];
        sh->uc = uc;
        uc->shadow = sh;
        gy_timer_init(&sh->timer, timeout_cb);
        gy_list_init(&sh->link);
        gy_list_insert_tail(&w->shadows, &sh->link);
        w->nshadows++;
        sh->alpn_pending = alpn;
    }
    sh->data = data;
    sh->len = len;
    gy_timer_start(&w->loop, &sh->timer, SHADOW_TIMEOUT_MS);
    if (!sh->alpn_pending && ((sh->h2 != NULL || h2c) ? h2_start(sh) : h1_queue(sh)) != 0) {
        shadow_free(sh, false);
        gy_stat_inc(c->stats, w->id, GY_C_SHADOW_DROPPED);
        return;
    }
    gy_stat_inc(c->stats, w->id, GY_C_SHADOW);
    gy_shadow_event(sh);
    return;
drop:
    free(data);
    gy_stat_inc(c->stats, w->id, GY_C_SHADOW_DROPPED);
}

void gy_shadow_dark(struct gy_stream *s)
{
    static const char mark[] = "x-gyrus-shadow: true\r\n\r\n";
    const struct gy_rule *rule = s->route.rule;

    for (size_t i = 0; i < rule->ndark; i++) {
        const struct gy_cluster *c = rule->dark[i].cluster;
        if (s->replay_overflow || (s->req_has_body && !s->keep_replay) || s->uhead.len == 0) {
            gy_stat_inc(c->stats, s->dc->w->id, GY_C_SHADOW_DROPPED);
            continue;
        }
        /* The upstream head with a marker header, then the body framed as the head says. */
        char hdr[24];
        size_t hl = s->req_chunked_up && s->replay_len ? gy_h1_chunk_header(hdr, s->replay_len) : 0;
        size_t head = s->uhead.len - 2, len = head + sizeof(mark) - 1 + hl + s->replay_len + (s->req_chunked_up ? 7 : 0);
        char *data = malloc(len), *p = data;
        if (data == NULL)
            continue;
        memcpy(p, s->uhead.ptr, head);
        p += head;
        memcpy(p, mark, sizeof(mark) - 1);
        p += sizeof(mark) - 1;
        memcpy(p, hdr, hl);
        p += hl;
        if (s->replay_len)
            memcpy(p, s->replay, s->replay_len);
        p += s->replay_len;
        if (s->req_chunked_up)
            memcpy(p, s->replay_len ? "\r\n0\r\n\r\n" : "0\r\n\r\n", s->replay_len ? 7 : 5);
        send_copy(s, c, data, s->req_chunked_up && !s->replay_len ? len - 2 : len);
    }
}

/* A tap record: the request and response heads as they crossed the proxy, the start of the body. */
static char *tap_record(struct gy_stream *s, size_t *len)
{
    char addr[GY_ADDRSTRLEN] = "";
    size_t blen = s->replay_len < TAP_BODY_MAX ? s->replay_len : TAP_BODY_MAX;

    if (s->host >= 0)
        gy_addr_format((const struct sockaddr *)&s->cluster->instances[s->host].addr, addr, sizeof(addr));
    json_t *o = json_pack("{s:s%,s:s%,s:{s:s%,s:s%,s:b},s:{s:i,s:s%},s:s,s:s,s:I}", "request_id", s->request_id.ptr,
                          s->request_id.len, "downstream_remote_address", s->dc->peer_ip, strlen(s->dc->peer_ip),
                          "request", "head", s->uhead.ptr, s->uhead.len, "body", s->replay ? s->replay : "", blen,
                          "body_truncated", s->replay_overflow || s->replay_len > TAP_BODY_MAX, "response", "status",
                          s->status, "head", s->resp_head.ptr ? s->resp_head.ptr : "", s->resp_head.len,
                          "upstream_cluster", s->cluster->name, "upstream_host", addr, "start_time_us",
                          (json_int_t)s->wall_start_us);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (body == NULL)
        return NULL;
    size_t bl = strlen(body);
    char *req = malloc(bl + 256);
    if (req != NULL)
        *len = (size_t)snprintf(req, bl + 256,
                                "POST / HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
                                "content-length: %zu\r\nx-gyrus-tap: true\r\n\r\n%s",
                                s->cluster->name, bl, body);
    free(body);
    return req;
}

void gy_shadow_tap(struct gy_stream *s)
{
    const struct gy_rule *rule = s->route.rule;

    for (size_t i = 0; i < rule->ntap; i++) {
        size_t len = 0;
        char *rec = tap_record(s, &len);
        if (rec != NULL)
            send_copy(s, rule->tap[i].cluster, rec, len);
    }
}

void gy_shadows_close(struct gy_worker *w)
{
    while (!gy_list_empty(&w->shadows))
        shadow_free(GY_CONTAINER_OF(w->shadows.next, struct gy_shadow, link), false);
}
