/*
 * The HTTP/1.1 upstream codec: one request at a time on a connection from the pool. The head is
 * built once per stream (s->uhead) and the body re-framed per attempt (chunked when the client's
 * length is unknown); the response is parsed strictly and its body decoded straight into the
 * downstream codec.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "proxy/proxy.h"

#define RESP_MAX_HEADERS 256
#define RESP_MAX_HEAD (64u * 1024u)

static const struct gy_h1_limits upstream_limits = {
    .max_request_line = 8192,
    .max_head_bytes = RESP_MAX_HEAD,
    .max_headers = RESP_MAX_HEADERS,
};

/* Queues the request head and what was taken of the body so far on the new connection. */
static int start(struct gy_stream *s)
{
    struct gy_uconn *uc = s->uc;
    struct gy_worker *w = uc->w;
    uint32_t need = (uint32_t)s->uhead.len + s->replay_len + 64;

    if (gy_buf_reserve(&w->bufs, &uc->wbuf) != 0 || (need > uc->wbuf.cap && gy_buf_grow(&w->bufs, &uc->wbuf, need) != 0))
        return GY_ENOMEM;
    gy_buf_append(&uc->wbuf, s->uhead.ptr, s->uhead.len);
    if (s->replay_len > 0)
        gy_h1_put_body(&uc->wbuf, s->replay, s->replay_len, s->req_chunked_up);
    return 0;
}

static size_t req_room(struct gy_stream *s)
{
    struct gy_uconn *uc = s->uc;
    size_t room = gy_buf_room(&uc->wbuf);

    if (room < 32)
        return 0;
    return s->req_chunked_up ? room - 24 : room;
}

static void req_data(struct gy_stream *s, const char *p, size_t n)
{
    gy_h1_put_body(&s->uc->wbuf, p, n, s->req_chunked_up);
}

static int req_end(struct gy_stream *s)
{
    struct gy_uconn *uc = s->uc;

    if (s->tunnel) { /* the client closed its side: so do we, once its last bytes are out */
        if (gy_buf_len(&uc->wbuf) > 0)
            return GY_EAGAIN;
        if (s->resp_started)
            shutdown(uc->io.fd, SHUT_WR);
        return 0;
    }
    if (!s->req_chunked_up)
        return 0;
    if (gy_buf_room(&uc->wbuf) < 5)
        return GY_EAGAIN;
    gy_buf_append(&uc->wbuf, "0\r\n\r\n", 5);
    return 0;
}

static bool flush(struct gy_stream *s)
{
    struct gy_uconn *uc = s->uc;

    if (uc->state != GY_UC_ACTIVE || uc->handshaking || uc->connect_failed || !uc->can_write ||
        gy_buf_len(&uc->wbuf) == 0)
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

static void complete(struct gy_stream *s)
{
    struct gy_uconn *uc = s->uc;

    gy_stream_response_complete(s, s->upstream_reusable && gy_buf_len(&uc->rbuf) == 0);
}

static int bad_response(struct gy_stream *s)
{
    gy_stat_inc(s->cluster->stats, s->dc->w->id, GY_C_CX_PROTOCOL_ERROR);
    gy_stream_local_reply(s, 502, GY_RF_UPE, "upstream sent an invalid response");
    return -1;
}

/* Returns 1 when a head was handled, 0 when more bytes are needed (or room downstream), -1 when
 * the attempt is over (retried, or the stream ended). */
static int parse_head(struct gy_stream *s)
{
    struct gy_uconn *uc = s->uc;
    struct gy_header hdrs[RESP_MAX_HEADERS];
    struct gy_h1_response res;
    struct gy_h1_error err;

    int rc = gy_h1_parse_response(gy_buf_start(&uc->rbuf), gy_buf_len(&uc->rbuf), &res, hdrs, &upstream_limits,
                                  s->is_head, false, &err);
    if (rc == GY_EAGAIN) {
        if (gy_buf_room(&uc->rbuf) == 0 && gy_buf_grow(&uc->w->bufs, &uc->rbuf, RESP_MAX_HEAD + 1024) != 0)
            return bad_response(s);
        return 0;
    }
    if (rc < 0 || (res.status == 101 && !s->tunnel)) /* we asked for no upgrade */
        return bad_response(s);
    struct gy_resp_head h = {
        .status = res.status,
        .reason = res.reason,
        .headers = res.headers,
        .nheaders = res.nheaders,
        .content_length = res.body == GY_H1_BODY_LENGTH ? (int64_t)res.content_length : -1,
        .body = res.body != GY_H1_BODY_NONE && !(res.body == GY_H1_BODY_LENGTH && res.content_length == 0),
        .keep_alive = res.keep_alive && res.body != GY_H1_BODY_EOF,
        .head_len = res.head_len,
        .tunnel = res.status == 101,
    };
    if (res.status < 200 && res.status != 101) {
        if (res.status != 100 && gy_stream_response_head(s, &h) == 0)
            return 0;
        gy_buf_consume(&uc->rbuf, res.head_len);
        return 1;
    }
    s->upstream_reusable = res.keep_alive && res.body != GY_H1_BODY_EOF && res.status != 101;
    if (s->tunnel && res.status != 101)
        s->tunnel = false; /* refused: an ordinary answer */
    rc = gy_stream_response_head(s, &h);
    if (rc <= 0)
        return rc;
    gy_h1_bodydec_init(&s->resp_dec, res.body, res.content_length);
    gy_buf_consume(&uc->rbuf, res.head_len);
    if (!h.body)
        complete(s);
    return 1;
}

/* Moves body bytes to the client side; returns -1 on a framing error, else 1 on progress, 0 without. */
static int move_body(struct gy_stream *s)
{
    struct gy_uconn *uc = s->uc;
    int progress = 0;

    while (gy_buf_len(&uc->rbuf) > 0) {
        size_t room = s->down->resp_room(s);
        struct gy_slice data = GY_SLICE_NULL;
        bool done = false;
        if (room == 0)
            return progress; /* the client is slower: stop reading the upstream */
        long used = gy_h1_bodydec_next(&s->resp_dec, gy_buf_start(&uc->rbuf), gy_buf_len(&uc->rbuf), room, &data, &done);
        if (used < 0)
            return -1;
        if (data.len > 0) {
            s->down->resp_data(s, data.ptr, data.len);
            s->bytes_tx += data.len;
        }
        gy_buf_consume(&uc->rbuf, (size_t)used);
        if (done) {
            complete(s);
            return 1;
        }
        if (used == 0 && data.len == 0)
            break;
        progress = 1;
    }
    return progress;
}

static bool resp_pump(struct gy_stream *s)
{
    struct gy_dconn *dc = s->dc;
    bool progress = false;

    while (s->uc != NULL && !s->resp_done) {
        struct gy_uconn *uc = s->uc;
        if (uc->state == GY_UC_CONNECTING || uc->handshaking)
            return progress;
        if (gy_buf_len(&uc->rbuf) > 0) {
            if (!s->resp_started) {
                if (parse_head(s) != 0) {
                    progress = true;
                    continue;
                }
            } else {
                int rc = move_body(s);
                if (rc < 0) {
                    gy_stat_inc(s->cluster->stats, dc->w->id, GY_C_CX_PROTOCOL_ERROR);
                    gy_stream_reset(s, GY_RF_UPE);
                    return true;
                }
                if (s->resp_done)
                    return true;
                progress |= rc > 0;
                if (gy_buf_len(&uc->rbuf) > 0)
                    return progress;
            }
        }
        if (s->resp_started && s->resp_dec.framing == GY_H1_BODY_LENGTH && s->resp_dec.remaining == 0) {
            complete(s);
            return true;
        }
        if (uc->eof) {
            if (s->resp_started && (s->resp_dec.framing == GY_H1_BODY_EOF || s->resp_dec.framing == GY_H1_BODY_TUNNEL) &&
                gy_buf_len(&uc->rbuf) == 0) {
                s->upstream_reusable = false;
                complete(s);
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

static void abort_attempt(struct gy_stream *s)
{
    gy_uconn_close(s->uc);
}

static void done(struct gy_stream *s, bool reusable)
{
    gy_uconn_release(s->uc, reusable, s->cluster->idle_timeout_ms);
}

const struct gy_up_ops gy_up_h1 = {
    .name = "http/1.1",
    .start = start,
    .req_room = req_room,
    .req_data = req_data,
    .req_end = req_end,
    .flush = flush,
    .resp_pump = resp_pump,
    .abort = abort_attempt,
    .done = done,
};
