/*
 * HTTP/2 to upstreams: one multiplexed connection per host per worker, another one when the
 * streams in flight reach the peer's SETTINGS_MAX_CONCURRENT_STREAMS (or the cluster's). Each
 * stream's request body waits in a bounded buffer that nghttp2 reads as the upstream's windows
 * allow; the response body waits in another, and WINDOW_UPDATE goes back only as bytes leave
 * for the client, so a slow client slows only its own stream. Heads and trailers are copied
 * into the stream's pool and passed on by the stream's pump. A reset from the upstream fails the
 * attempt (retried like a connection reset) or, once the response started, resets the client's
 * stream with the same code.
 *
 * Over TLS the connection offers "h2" and "http/1.1" by ALPN. Until the handshake says which,
 * streams may queue their heads but take no body; when the server picks http/1.1 the session is
 * dropped unsent, the connection goes to the pool as an idle HTTP/1.1 one, and its streams start
 * over (each with the HTTP/1.1 head built for this case). No ALPN answer means HTTP/2, as the
 * cluster says.
 */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "http/h2.h"
#include "proxy/proxy.h"
#include "tls/tls.h"

struct gy_h2u {
    struct gy_h2 h2;
    struct gy_uconn *uc;
    struct gy_list streams;          /* gy_stream.ulink */
    unsigned nstreams;
    uint32_t max_streams;            /* the cluster's max_concurrent_streams */
    uint32_t window;                 /* per-stream buffer bound (our initial window) */
    uint32_t idle_ms;                /* the cluster's idle timeout (an HTTP/1.1 fallback keeps it) */
    struct gy_task flush;            /* output after a change made outside of our I/O */
    struct gy_list woken;            /* streams to wake once nghttp2 returns (gy_stream.uwake) */
    bool broken;                     /* GOAWAY received or the session failed: no new streams */
    bool alpn_pending;               /* TLS: the server has not said h2 yet (no body goes in) */
    unsigned nawait;                 /* tunnels waiting for the server's SETTINGS */
    unsigned answered;               /* streams that got a whole response */
};

/* A GOAWAY came (or went): no stream opens on this connection any more. */
static bool goaway(const struct gy_h2u *u)
{
    return u->h2.ng != NULL && !nghttp2_session_check_request_allowed(u->h2.ng);
}

/* The stream was not processed by the server: it may be sent again (free of count when the
 * connection was ended by GOAWAY after answering others). */
static void mark_refused(struct gy_h2u *u, struct gy_stream *s)
{
    s->refused = true;
    s->refused_free = u->answered > 0 && goaway(u);
}

static struct gy_h2u *sess(const struct gy_uconn *uc)
{
    return uc->h2;
}

static void schedule(struct gy_h2u *u)
{
    gy_task_schedule(&u->uc->w->loop, &u->flush);
}

/* Streams are never run from inside an nghttp2 callback: they are woken afterwards. */
static void notify(struct gy_h2u *u, struct gy_stream *s)
{
    if (!gy_list_linked(&s->uwake))
        gy_list_insert_tail(&u->woken, &s->uwake);
    schedule(u);
}

static void wake_all(struct gy_list *l)
{
    while (!gy_list_empty(l)) {
        struct gy_stream *s = GY_CONTAINER_OF(l->next, struct gy_stream, uwake);
        gy_list_remove(&s->uwake);
        s->down->wake(s);
    }
}

unsigned gy_h2u_streams(const struct gy_uconn *uc)
{
    return sess(uc)->nstreams;
}

/* Room for one more stream: not failed, no GOAWAY either way (one just read counts at once,
 * even from inside nghttp2's callbacks), below both stream limits. */
bool gy_h2u_has_room(struct gy_uconn *uc)
{
    struct gy_h2u *u = sess(uc);

    if (u->broken || uc->eof || u->h2.ng == NULL || goaway(u))
        return false;
    uint32_t peer = nghttp2_session_get_remote_settings(u->h2.ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    return u->nstreams < (peer < u->max_streams ? peer : u->max_streams);
}

/* Takes the stream off the session (its nghttp2 stream may live on until the RST is sent). */
static void unlink_stream(struct gy_h2u *u, struct gy_stream *s)
{
    size_t left = gy_buf_len(&s->uresp_buf);

    if (s->await_settings) {
        s->await_settings = false;
        u->nawait--;
    }
    if (s->usid > 0 && left > 0) /* bytes nobody will read: give the windows back */
        nghttp2_session_consume(u->h2.ng, s->usid, left);
    gy_buf_release(&u->uc->w->bufs, &s->uresp_buf);
    if (s->usid > 0 && !s->uclosed)
        nghttp2_session_set_stream_user_data(u->h2.ng, s->usid, NULL);
    if (gy_list_linked(&s->ulink)) {
        gy_list_remove(&s->ulink);
        u->nstreams--;
    }
    s->usid = 0;
    if (gy_list_linked(&s->uwake))
        gy_list_remove(&s->uwake);
    gy_buf_release(&u->uc->w->bufs, &s->ureq_buf);
    if (u->nstreams == 0 && !u->uc->eof)
        gy_timer_start(&u->uc->w->loop, &u->uc->timer, s->cluster->idle_timeout_ms ? s->cluster->idle_timeout_ms : 60000);
}

/* The connection is unusable: every stream on it fails (retried when the policy allows) and
 * goes on `wake` to be run once the connection is gone. With spare_complete, streams whose
 * whole response has arrived (a server that closes right after its last answer) stay, to be
 * passed on; the connection closes when they are done. */
static void fail_all(struct gy_h2u *u, bool connect, struct gy_list *wake, bool spare_complete)
{
    struct gy_list spared;

    u->broken = true;
    gy_list_init(&spared);
    for (struct gy_list *n = u->streams.next, *next; spare_complete && n != &u->streams; n = next) {
        struct gy_stream *s = GY_CONTAINER_OF(n, struct gy_stream, ulink);
        next = n->next;
        if (s->uclosed) {
            gy_list_remove(&s->ulink);
            gy_list_insert_tail(&spared, &s->ulink);
            if (wake != NULL && !gy_list_linked(&s->uwake))
                gy_list_insert_tail(wake, &s->uwake);
        }
    }
    /* One at a time from the head: a failure may end other streams of this connection. */
    while (!gy_list_empty(&u->streams)) {
        struct gy_stream *s = GY_CONTAINER_OF(u->streams.next, struct gy_stream, ulink);
        /* Never opened (still queued in nghttp2): nothing reached the server, it may go again. */
        bool unsent = s->usid <= 0 || (u->h2.ng != NULL && nghttp2_session_find_stream(u->h2.ng, s->usid) == NULL);
        unlink_stream(u, s);
        if (unsent && !connect)
            mark_refused(u, s);
        gy_attempt_failed(s, connect ? GY_FAIL_CONNECT : GY_FAIL_RESET);
        if (wake != NULL && !gy_list_linked(&s->uwake))
            gy_list_insert_tail(wake, &s->uwake);
    }
    gy_list_splice_tail(&u->streams, &spared);
}

/* ---- callbacks ---- */

/* The fields into the stream's pool: the header block at once, then each field moved into it. */
static struct gy_header *copy_fields(struct gy_stream *s, const struct gy_h2_head *head)
{
    struct gy_header *out = gy_pool_alloc(&s->pool, (head->nheaders + 1) * sizeof(*out));
    struct gy_pool_move m = gy_pool_move_begin(&s->pool, head->block);

    for (unsigned i = 0; out != NULL && i < head->nheaders; i++) {
        out[i].name = gy_pool_moved(&s->pool, &m, head->headers[i].name);
        out[i].value = gy_pool_moved(&s->pool, &m, head->headers[i].value);
        if (out[i].name.ptr == NULL || out[i].value.ptr == NULL)
            return NULL;
    }
    return out;
}

/* gRPC-Web: the content type goes back to grpc-web, the length is the translation's. */
static void grpcweb_head(struct gy_stream *s, struct gy_resp_head *r, struct gy_header *f)
{
    unsigned k = 0;

    for (unsigned i = 0; i < r->nheaders; i++) {
        if (gy_slice_eqi_cstr(f[i].name, "content-length"))
            continue;
        if (gy_slice_eqi_cstr(f[i].name, "content-type")) {
            char *ct = gy_pool_alloc(&s->pool, f[i].value.len + 16);
            if (ct != NULL)
                f[i].value = gy_grpcweb_from_grpc(&s->grpc_web, f[i].value, ct, f[i].value.len + 16);
        }
        f[k++] = f[i];
    }
    r->nheaders = k;
    r->content_length = -1;
}

static int on_head(struct gy_h2 *h2, int32_t sid, void *sud, const struct gy_h2_head *head, bool trailers, bool end)
{
    struct gy_stream *s = sud;

    (void)h2, (void)sid;
    if (s == NULL)
        return 0;
    s->any_response_byte = true;
    if (trailers) {
        struct gy_header *t = copy_fields(s, head);
        if (t != NULL)
            gy_stream_trailers(s, t, head->nheaders);
    } else if (head->status >= 200 && !head->too_large) {
        struct gy_resp_head *r = gy_pool_alloc(&s->pool, sizeof(*r));
        struct gy_header *f = copy_fields(s, head);
        if (r != NULL && f != NULL) {
            *r = (struct gy_resp_head){ .status = head->status, .headers = f, .nheaders = head->nheaders,
                                        .content_length = head->content_length, .body = !end };
            if (s->tunnel && head->status / 100 == 2 && !end) {
                /* RFC 8441: a 2xx opens the tunnel; an HTTP/1.1 client expects 101 and the
                 * accept for its key, which the HTTP/2 server never saw. */
                *r = (struct gy_resp_head){ .status = 101, .headers = f, .nheaders = head->nheaders,
                                            .content_length = -1, .body = true, .tunnel = true };
                if (s->ws_accept.len > 0)
                    f[r->nheaders++] = (struct gy_header){ GY_SLICE_LIT("sec-websocket-accept"), s->ws_accept };
            } else if (s->tunnel) {
                s->tunnel = false; /* refused: an ordinary answer */
            }
            if (s->grpc_web.mode)
                grpcweb_head(s, r, f);
            s->uresp_head = r;
        }
    } else if (head->status >= 200) {
        s->uresp_head = NULL;
        nghttp2_submit_rst_stream(h2->ng, NGHTTP2_FLAG_NONE, sid, NGHTTP2_INTERNAL_ERROR);
    } else if (head->status > 100 && !head->too_large && s->ninfo < GY_MAX_INFO) {
        /* 1xx (103 Early Hints...): passed on before the final head; 100 Continue is ours to
         * give or not, as with HTTP/1.1 upstreams */
        struct gy_info_head *i = gy_pool_alloc(&s->pool, sizeof(*i)), **tail = &s->uinfo;
        struct gy_header *f = copy_fields(s, head);
        if (i != NULL && f != NULL) {
            *i = (struct gy_info_head){ .head = { .status = head->status, .headers = f, .nheaders = head->nheaders,
                                                  .content_length = -1 } };
            while (*tail != NULL)
                tail = &(*tail)->next;
            *tail = i;
            s->ninfo++;
        }
    }
    if (end)
        s->resp_up_end = true;
    notify(GY_CONTAINER_OF(h2, struct gy_h2u, h2), s);
    return 0;
}

static int on_data(struct gy_h2 *h2, int32_t sid, void *sud, const uint8_t *p, size_t n)
{
    struct gy_h2u *u = GY_CONTAINER_OF(h2, struct gy_h2u, h2);
    struct gy_stream *s = sud;
    struct gy_bufpool *bufs = &u->uc->w->bufs;

    if (gy_buf_reserve(bufs, &s->uresp_buf) != 0 ||
        (gy_buf_room(&s->uresp_buf) < n && gy_buf_grow(bufs, &s->uresp_buf, u->window + 1) != 0) ||
        gy_buf_append(&s->uresp_buf, p, n) != n) {
        nghttp2_submit_rst_stream(h2->ng, NGHTTP2_FLAG_NONE, sid, NGHTTP2_FLOW_CONTROL_ERROR);
        nghttp2_session_consume(h2->ng, sid, n);
        return 0;
    }
    s->any_response_byte = true;
    gy_stat_add(s->cluster->stats, u->uc->w->id, GY_C_BYTES_RX, n);
    notify(u, s);
    return 0;
}

static void on_end(struct gy_h2 *h2, int32_t sid, void *sud)
{
    struct gy_stream *s = sud;

    (void)sid;
    s->resp_up_end = true;
    notify(GY_CONTAINER_OF(h2, struct gy_h2u, h2), s);
}

static void on_close(struct gy_h2 *h2, int32_t sid, void *sud, uint32_t code)
{
    struct gy_h2u *u = GY_CONTAINER_OF(h2, struct gy_h2u, h2);
    struct gy_stream *s = sud;

    (void)sid;
    if (s->resp_up_end && code == NGHTTP2_NO_ERROR) {
        u->answered++;
        nghttp2_session_set_stream_user_data(h2->ng, s->usid, NULL);
        s->uclosed = true; /* the rest is passed on by the stream's pump */
        notify(u, s);
        return;
    }
    unlink_stream(u, s);
    if (!s->resp_started) {
        if (code == NGHTTP2_REFUSED_STREAM && !s->any_response_byte)
            mark_refused(u, s);
        gy_attempt_failed(s, GY_FAIL_RESET);
    } else {
        s->rst_code = code == NGHTTP2_NO_ERROR ? NGHTTP2_INTERNAL_ERROR : code;
        gy_stream_reset(s, GY_RF_UC);
    }
    notify(u, s);
}

/* A request that never went out because a GOAWAY came first: refused, so it may be sent again
 * on another connection whatever the retry policy says. */
static void on_not_sent(struct gy_h2 *h2, int32_t sid)
{
    struct gy_h2u *u = GY_CONTAINER_OF(h2, struct gy_h2u, h2);

    for (struct gy_list *n = u->streams.next; n != &u->streams; n = n->next) {
        struct gy_stream *s = GY_CONTAINER_OF(n, struct gy_stream, ulink);
        if (s->usid != sid)
            continue;
        unlink_stream(u, s);
        mark_refused(u, s);
        gy_attempt_failed(s, GY_FAIL_RESET);
        notify(u, s);
        return;
    }
}

static ssize_t read_body(struct gy_h2 *h2, int32_t sid, void *sud, uint8_t *buf, size_t len, bool *eof, bool *trailers)
{
    struct gy_stream *s = sud;
    size_t n = gy_buf_len(&s->ureq_buf);

    (void)sid, (void)trailers;
    if (n > len)
        n = len;
    if (n > 0) {
        memcpy(buf, gy_buf_start(&s->ureq_buf), n);
        gy_buf_consume(&s->ureq_buf, n);
        notify(GY_CONTAINER_OF(h2, struct gy_h2u, h2), s); /* room for more of the client's body */
    }
    if (gy_buf_len(&s->ureq_buf) == 0 && s->req_done)
        *eof = true;
    return (ssize_t)n;
}

static const struct gy_h2_callbacks callbacks = {
    .on_head = on_head,
    .on_data = on_data,
    .on_end = on_end,
    .on_close = on_close,
    .on_not_sent = on_not_sent,
    .read_body = read_body,
};

/* ---- connection I/O ---- */

static int submit(struct gy_h2u *u, struct gy_stream *s);

/* The server does not take extended CONNECT: the tunnel's client gets a 502 saying so. */
static void no_websocket(struct gy_h2u *u, struct gy_stream *s)
{
    unlink_stream(u, s);
    gy_stream_local_reply(s, 502, GY_RF_UPE,
                          "the HTTP/2 upstream does not accept WebSocket (no SETTINGS_ENABLE_CONNECT_PROTOCOL)");
    notify(u, s);
}

/* The server's SETTINGS came: the tunnels waiting for them go (or are refused). */
static void release_tunnels(struct gy_h2u *u)
{
    bool ok = nghttp2_session_get_remote_settings(u->h2.ng, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL) == 1;

    for (struct gy_list *n = u->streams.next, *next; n != &u->streams; n = next) {
        struct gy_stream *s = GY_CONTAINER_OF(n, struct gy_stream, ulink);
        next = n->next;
        if (!s->await_settings)
            continue;
        s->await_settings = false;
        u->nawait--;
        if (!ok)
            no_websocket(u, s);
        else if (submit(u, s) != 0) {
            unlink_stream(u, s);
            gy_attempt_failed(s, GY_FAIL_CONNECT);
            notify(u, s);
        }
    }
}

static bool output(struct gy_h2u *u)
{
    struct gy_uconn *uc = u->uc;
    bool progress = false;

    if (uc->state != GY_UC_ACTIVE || uc->handshaking || uc->connect_failed || uc->eof)
        return false;
    for (int i = 0; i < 64; i++) {
        if (gy_buf_reserve(&uc->w->bufs, &uc->wbuf) != 0)
            break;
        if (gy_h2_send(&u->h2, &uc->wbuf) < 0)
            u->broken = uc->eof = true;
        if (gy_buf_len(&uc->wbuf) == 0 || !uc->can_write)
            break;
        ssize_t n = gy_conn_write(uc->io.fd, uc->transport, &uc->wbuf, &uc->can_write);
        if (n < 0) {
            uc->eof = true;
            break;
        }
        if (n == 0)
            break;
        gy_stat_add(uc->pool->stats, uc->w->id, GY_C_BYTES_TX, (uint64_t)n);
        progress = true;
    }
    gy_buf_release_if_empty(&uc->w->bufs, &uc->wbuf);
    return progress;
}

/* The server chose http/1.1: the connection becomes an idle HTTP/1.1 one, its streams start over. */
static void fall_back_to_h1(struct gy_h2u *u)
{
    struct gy_uconn *uc = u->uc;
    struct gy_upool *p = uc->pool;
    uint32_t idle_ms = u->idle_ms;
    struct gy_list moved;

    gy_list_init(&moved);
    while (!gy_list_empty(&u->streams)) {
        struct gy_stream *s = GY_CONTAINER_OF(u->streams.next, struct gy_stream, ulink);
        unlink_stream(u, s);
        gy_list_insert_tail(&moved, &s->uwake);
    }
    gy_list_remove(&uc->link); /* out of the pool's HTTP/2 connections */
    gy_list_init(&uc->link);
    gy_h2u_free(uc);
    uc->ops = &gy_up_h1;
    gy_uconn_release(uc, true, idle_ms); /* may close it (draining, pool full) */
    /* Remembered for the next attempts while the worker keeps a connection to the host (the
     * streams' config holds the pool; a closed uc is only freed after this batch). */
    if (uc->pool != NULL || !gy_list_empty(&moved))
        p->h1_alpn = true;
    while (!gy_list_empty(&moved)) {
        struct gy_stream *s = GY_CONTAINER_OF(moved.next, struct gy_stream, uwake);
        gy_list_remove(&s->uwake);
        gy_attempt_restart(s);
        s->down->wake(s);
    }
}

/* After the TLS handshake: which protocol the server chose. False when the connection is no
 * longer an HTTP/2 one. */
static bool check_alpn(struct gy_h2u *u, struct gy_list *wake)
{
    const char *alpn = gy_tls_alpn(u->uc->transport);

    u->alpn_pending = false;
    if (alpn != NULL && strcmp(alpn, "http/1.1") == 0) {
        fall_back_to_h1(u);
        return false;
    }
    for (struct gy_list *n = u->streams.next; n != &u->streams; n = n->next) {
        struct gy_stream *s = GY_CONTAINER_OF(n, struct gy_stream, ulink);
        if (!gy_list_linked(&s->uwake))
            gy_list_insert_tail(wake, &s->uwake); /* their bodies may go in now */
    }
    return true;
}

/* Reads what the server sent into nghttp2; true when the read budget ran out with bytes left. */
static bool input(struct gy_h2u *u)
{
    struct gy_uconn *uc = u->uc;
    int i;

    for (i = 0; i < 16 && uc->can_read && !uc->eof; i++) {
        if (gy_buf_reserve(&uc->w->bufs, &uc->rbuf) != 0)
            break;
        ssize_t n = gy_conn_read(uc->io.fd, uc->transport, &uc->rbuf, &uc->can_read, &uc->eof, uc->hup);
        if (n <= 0)
            break;
        long rc = gy_h2_recv(&u->h2, gy_buf_start(&uc->rbuf), gy_buf_len(&uc->rbuf), gy_loop_now(&uc->w->loop));
        gy_buf_consume(&uc->rbuf, gy_buf_len(&uc->rbuf));
        if (rc < 0) {
            gy_stat_inc(uc->pool->stats, uc->w->id, GY_C_CX_PROTOCOL_ERROR);
            uc->eof = true;
        }
    }
    gy_buf_release_if_empty(&uc->w->bufs, &uc->rbuf);
    return i == 16 && uc->can_read && !uc->eof;
}

void gy_h2u_event(struct gy_uconn *uc)
{
    struct gy_h2u *u = sess(uc);
    struct gy_list wake;

    gy_list_init(&wake);
    if (uc->state == GY_UC_CONNECTING || uc->handshaking)
        return;
    if (u->alpn_pending && !uc->connect_failed && !check_alpn(u, &wake))
        return;
    if (!uc->connect_failed) {
        if (input(u))
            schedule(u); /* bytes left after the read budget: edge-triggered epoll will not say so again */
        if (u->h2.settings_seen && u->nawait > 0)
            release_tunnels(u);
        output(u);
        if (goaway(u))
            u->broken = true; /* GOAWAY received: streams below its id finish, no new ones */
    }
    gy_list_splice_tail(&wake, &u->woken);
    if (uc->connect_failed || uc->eof || gy_h2_done(&u->h2) || (u->broken && u->nstreams == 0)) {
        fail_all(u, uc->connect_failed, &wake, true);
        if (u->nstreams == 0)
            gy_uconn_close(uc);
    }
    wake_all(&wake);
}

static void flush_task(struct gy_task *t)
{
    struct gy_h2u *u = GY_CONTAINER_OF(t, struct gy_h2u, flush);

    gy_h2u_event(u->uc);
}

void gy_h2u_timer(struct gy_uconn *uc)
{
    if (sess(uc)->nstreams == 0)
        gy_uconn_close(uc); /* idle for the cluster's idle timeout */
}

int gy_h2u_open(struct gy_uconn *uc, const struct gy_cluster *c)
{
    struct gy_h2u *u = calloc(1, sizeof(*u));

    if (u == NULL)
        return GY_ENOMEM;
    if (gy_h2_init(&u->h2, false, &c->h2, 1000, &callbacks, u, &uc->w->h2mem) != 0) {
        free(u);
        return GY_ENOMEM;
    }
    u->uc = uc;
    u->max_streams = c->h2.max_concurrent_streams;
    u->window = c->h2.initial_stream_window_size;
    u->idle_ms = c->idle_timeout_ms;
    u->alpn_pending = uc->transport != NULL;
    gy_list_init(&u->streams);
    gy_list_init(&u->woken);
    gy_task_init(&u->flush, flush_task);
    uc->h2 = u;
    uc->ops = &gy_up_h2;
    return 0;
}

void gy_h2u_free(struct gy_uconn *uc)
{
    struct gy_h2u *u = sess(uc);

    fail_all(u, false, NULL, false);
    while (!gy_list_empty(&u->woken))
        gy_list_remove(u->woken.next);
    gy_task_cancel(&u->flush);
    gy_h2_dispose(&u->h2);
    free(u);
    uc->h2 = NULL;
}

int gy_h2u_attach(struct gy_uconn *uc, struct gy_stream *s)
{
    struct gy_h2u *u = sess(uc);

    if (!gy_h2u_has_room(uc))
        return GY_EAGAIN;
    s->uc = uc;
    s->up = &gy_up_h2;
    s->usid = 0;
    s->uclosed = false;
    s->uresp_head = NULL;
    s->uinfo = NULL;
    s->ninfo = 0;
    s->resp_up_end = false;
    gy_list_insert_tail(&u->streams, &s->ulink);
    u->nstreams++;
    uc->nrequests++;
    if (uc->state == GY_UC_ACTIVE && !uc->handshaking)
        gy_timer_stop(&uc->w->loop, &uc->timer);
    return 0;
}

/* ---- the stream's side ---- */

static int submit(struct gy_h2u *u, struct gy_stream *s)
{
    nghttp2_data_provider body = gy_h2_body(s);
    int32_t sid = nghttp2_submit_request(u->h2.ng, NULL, s->unv, s->nunv, s->req_has_body ? &body : NULL, s);

    if (sid < 0)
        return GY_EIO;
    s->usid = sid;
    schedule(u);
    return 0;
}

static int start(struct gy_stream *s)
{
    struct gy_h2u *u = sess(s->uc);
    struct gy_bufpool *bufs = &s->uc->w->bufs;

    gy_buf_release(bufs, &s->ureq_buf);
    gy_buf_release(bufs, &s->uresp_buf);
    if (s->replay_len > 0 && (gy_buf_grow(bufs, &s->ureq_buf, s->replay_len + GY_BUF_BLOCK) != 0 ||
                              gy_buf_append(&s->ureq_buf, s->replay, s->replay_len) != s->replay_len))
        return GY_ENOMEM;
    /* An extended CONNECT may go only once the server said SETTINGS_ENABLE_CONNECT_PROTOCOL
     * (RFC 8441 §3): it goes (or is refused) from the session's next event, once the server's
     * SETTINGS are in, on a new connection too. */
    s->await_settings = s->tunnel;
    if (s->await_settings) {
        u->nawait++;
        schedule(u);
        return 0;
    }
    return submit(u, s);
}

static size_t req_room(struct gy_stream *s)
{
    if (sess(s->uc)->alpn_pending || gy_buf_reserve(&s->uc->w->bufs, &s->ureq_buf) != 0)
        return 0;
    size_t room = gy_buf_room(&s->ureq_buf);
    if (s->grpc_web.mode == GY_GRPCWEB_TEXT) /* base64 in, at most 3 bytes out for 4 */
        return room < 8 ? 0 : (room / 3) * 4 - 4;
    return room;
}

static void req_data(struct gy_stream *s, const char *p, size_t n)
{
    if (s->grpc_web.mode == GY_GRPCWEB_TEXT) {
        long k = gy_grpcweb_decode(&s->grpc_web, p, n, (uint8_t *)s->ureq_buf.data + s->ureq_buf.tail);
        if (k < 0) {
            gy_stream_local_reply(s, 400, GY_RF_DPE, "malformed grpc-web-text body");
            return;
        }
        s->ureq_buf.tail += (uint32_t)k;
    } else {
        gy_buf_append(&s->ureq_buf, p, n);
    }
    if (s->usid > 0)
        nghttp2_session_resume_data(sess(s->uc)->h2.ng, s->usid);
}

static int req_end(struct gy_stream *s)
{
    if (s->usid > 0 && s->req_has_body)
        nghttp2_session_resume_data(sess(s->uc)->h2.ng, s->usid);
    return 0;
}

/* Frames of all the streams go out together after the current batch of events. */
static bool flush(struct gy_stream *s)
{
    struct gy_h2u *u = sess(s->uc);

    if (gy_h2_want_write(&u->h2))
        schedule(u);
    return false;
}

/* gRPC-Web text: base64 out (n bytes become at most 4 * (n / 3 + 2) characters). */
static void text_out(struct gy_stream *s, const char *p, size_t n, bool final)
{
    char out[4 * (GY_BUF_BLOCK / 3 + 2) + 8];
    size_t done = 0;

    while (done < n || (final && done == n)) {
        size_t k = n - done < GY_BUF_BLOCK - 8 ? n - done : GY_BUF_BLOCK - 8;
        size_t m = gy_grpcweb_encode(&s->grpc_web, (const uint8_t *)p + done, k, final && done + k == n, out);
        if (m > 0)
            s->down->resp_data(s, out, m);
        done += k;
        if (k == 0)
            break;
    }
}

/* gRPC-Web: the upstream's trailers become the last frame of the body. False: no room yet. */
static bool grpcweb_trailers(struct gy_stream *s)
{
    char frame[4096];
    size_t room = s->down->resp_room(s);

    if (s->grpc_web.trailers_sent || (s->ntrailers == 0 && !s->resp_body_out))
        return true; /* trailers-only: the status is in the head */
    size_t n = gy_grpcweb_trailer_frame(s->trailers, s->ntrailers, frame, sizeof(frame));
    if (n == 0)
        n = gy_grpcweb_trailer_frame(NULL, 0, frame, sizeof(frame)); /* too big: an empty frame */
    if (room < (s->grpc_web.mode == GY_GRPCWEB_TEXT ? 4 * (n / 3 + 2) : n))
        return false;
    if (s->grpc_web.mode == GY_GRPCWEB_TEXT)
        text_out(s, frame, n, true);
    else
        s->down->resp_data(s, frame, n);
    s->grpc_web.trailers_sent = true;
    s->ntrailers = 0; /* not as HTTP trailers as well */
    return true;
}

static bool resp_pump(struct gy_stream *s)
{
    struct gy_h2u *u = sess(s->uc);
    bool progress = false;

    while (s->uinfo != NULL && !s->resp_started) {
        if (gy_stream_response_head(s, &s->uinfo->head) == 0)
            return progress; /* no room yet */
        s->uinfo = s->uinfo->next;
        progress = true;
    }
    if (s->uresp_head != NULL && !s->resp_started) {
        int rc = gy_stream_response_head(s, s->uresp_head);
        if (rc <= 0)
            return rc < 0;
        s->uresp_head = NULL;
        progress = true;
    }
    if (!s->resp_started)
        return progress;
    while (gy_buf_len(&s->uresp_buf) > 0) {
        size_t room = s->down->resp_room(s), n = gy_buf_len(&s->uresp_buf);
        if (s->grpc_web.mode == GY_GRPCWEB_TEXT)
            room = room < 16 ? 0 : (room - 8) / 4 * 3;
        if (room == 0)
            break;
        if (n > room)
            n = room;
        if (s->grpc_web.mode == GY_GRPCWEB_TEXT)
            text_out(s, gy_buf_start(&s->uresp_buf), n, false);
        else
            s->down->resp_data(s, gy_buf_start(&s->uresp_buf), n);
        s->bytes_tx += n;
        gy_buf_consume(&s->uresp_buf, n);
        if (s->usid > 0)
            nghttp2_session_consume(u->h2.ng, s->usid, n);
        progress = true;
    }
    gy_buf_release_if_empty(&s->uc->w->bufs, &s->uresp_buf);
    if (s->resp_up_end && gy_buf_len(&s->uresp_buf) == 0) {
        if (s->grpc_web.mode && !grpcweb_trailers(s))
            return progress; /* no room for the trailer frame yet */
        gy_stream_response_complete(s, true);
        return true;
    }
    if (progress)
        schedule(u); /* WINDOW_UPDATE */
    return progress;
}

static void abort_attempt(struct gy_stream *s)
{
    struct gy_h2u *u = sess(s->uc);

    if (s->usid > 0 && !s->uclosed)
        nghttp2_submit_rst_stream(u->h2.ng, NGHTTP2_FLAG_NONE, s->usid, NGHTTP2_CANCEL);
    unlink_stream(u, s);
    schedule(u);
}

static void done(struct gy_stream *s, bool reusable)
{
    struct gy_h2u *u = sess(s->uc);
    struct gy_worker *w = s->uc->w;

    (void)reusable;
    unlink_stream(u, s);
    if (u->nstreams == 0 && (w->draining || w->stopping || s->uc->pool->wrefs == 0))
        u->broken = true;
    schedule(u);
}

const struct gy_up_ops gy_up_h2 = {
    .name = "h2",
    .start = start,
    .req_room = req_room,
    .req_data = req_data,
    .req_end = req_end,
    .flush = flush,
    .resp_pump = resp_pump,
    .abort = abort_attempt,
    .done = done,
};
