/*
 * gRPC Health v1 over h2c with libnghttp2, I/O-free: the session writes into nghttp2's output
 * (gy_hc_grpc_output) and reads what the caller feeds it (gy_hc_grpc_input). The two protobuf
 * messages are a field each, so they are encoded and decoded by hand.
 */
#include "proxy/health_grpc.h"

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define MAX_SERVICE 1024
#define MAX_RESPONSE 1024 /* a HealthCheckResponse is a few bytes */

struct gy_hc_grpc {
    nghttp2_session *session;
    int32_t stream_id;
    uint8_t req[MAX_SERVICE + 16];
    size_t req_len, req_off;
    uint8_t resp[MAX_RESPONSE];
    size_t resp_len;
    bool resp_too_big;
    int http_status;   /* 0 until seen */
    int grpc_status;   /* -1 until seen */
    bool closed;
    uint32_t close_error;
    bool conn_error;   /* nghttp2 reported a connection error (it sends GOAWAY and stops) */
    bool goaway;       /* the server said GOAWAY: no new call on this session */
    char *authority;   /* kept for the next call on the session */
    char why[96];
};

/* ---- protobuf ---- */

static size_t put_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;

    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
    return n;
}

static int get_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*off >= len)
            return GY_EPARSE;
        uint8_t b = p[(*off)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0)
            return 0;
    }
    return GY_EPARSE;
}

size_t gy_hc_grpc_encode_request(const char *service, uint8_t *out, size_t cap)
{
    size_t slen = strlen(service), n = 5;
    uint8_t len_bytes[10];
    size_t nlen = put_varint(len_bytes, slen);
    size_t body = slen == 0 ? 0 : 1 + nlen + slen; /* proto3: an empty string is not sent */

    if (cap < 5 + body)
        return 0;
    if (body > 0) {
        out[n++] = 0x0a; /* field 1, wire type 2 */
        memcpy(out + n, len_bytes, nlen);
        n += nlen;
        memcpy(out + n, service, slen);
        n += slen;
    }
    out[0] = 0; /* not compressed */
    out[1] = (uint8_t)(body >> 24);
    out[2] = (uint8_t)(body >> 16);
    out[3] = (uint8_t)(body >> 8);
    out[4] = (uint8_t)body;
    return n;
}

int gy_hc_grpc_decode_status(const uint8_t *msg, size_t len)
{
    size_t off = 0;
    uint64_t status = 0;

    while (off < len) {
        uint64_t key, v;
        if (get_varint(msg, len, &off, &key) != 0)
            return GY_EPARSE;
        switch (key & 7) {
        case 0:
            if (get_varint(msg, len, &off, &v) != 0)
                return GY_EPARSE;
            if (key >> 3 == 1)
                status = v;
            break;
        case 1:
            if (len - off < 8)
                return GY_EPARSE;
            off += 8;
            break;
        case 2:
            if (get_varint(msg, len, &off, &v) != 0 || v > len - off)
                return GY_EPARSE;
            off += (size_t)v;
            break;
        case 5:
            if (len - off < 4)
                return GY_EPARSE;
            off += 4;
            break;
        default:
            return GY_EPARSE;
        }
    }
    return status > 3 ? 0 : (int)status; /* unknown enum values read as UNKNOWN */
}

/* ---- nghttp2 callbacks ---- */

static int parse_int(const uint8_t *v, size_t len)
{
    int n = 0;

    if (len == 0 || len > 6)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (v[i] - '0');
    }
    return n;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    struct gy_hc_grpc *g = ud;

    (void)s;
    (void)flags;
    if (frame->hd.stream_id != g->stream_id)
        return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0)
        g->http_status = parse_int(value, valuelen);
    else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
        g->grpc_status = parse_int(value, valuelen);
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len, void *ud)
{
    struct gy_hc_grpc *g = ud;

    (void)s;
    (void)flags;
    if (stream_id != g->stream_id)
        return 0;
    if (len > sizeof(g->resp) - g->resp_len) {
        g->resp_too_big = true;
        return 0;
    }
    memcpy(g->resp + g->resp_len, data, len);
    g->resp_len += len;
    return 0;
}

static int on_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *ud)
{
    struct gy_hc_grpc *g = ud;

    (void)s;
    if (stream_id == g->stream_id) {
        g->closed = true;
        g->close_error = error_code;
    }
    return 0;
}

static int on_error(nghttp2_session *s, int lib_error, const char *msg, size_t len, void *ud)
{
    struct gy_hc_grpc *g = ud;

    (void)s;
    (void)lib_error;
    if (!g->conn_error)
        snprintf(g->why, sizeof(g->why), "HTTP/2: %.*s", (int)(len < 80 ? len : 80), msg);
    g->conn_error = true;
    return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct gy_hc_grpc *g = ud;

    (void)s;
    if (frame->hd.type == NGHTTP2_GOAWAY)
        g->goaway = true;
    return 0;
}

static ssize_t read_request(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t len, uint32_t *flags,
                            nghttp2_data_source *src, void *ud)
{
    struct gy_hc_grpc *g = ud;
    size_t n = g->req_len - g->req_off;

    (void)s;
    (void)stream_id;
    (void)src;
    if (n > len)
        n = len;
    memcpy(buf, g->req + g->req_off, n);
    g->req_off += n;
    if (g->req_off == g->req_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* ---- session ---- */

#define HDR(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }

/* Queues one Check call on the session (nghttp2 copies the fields). */
static int submit_call(struct gy_hc_grpc *g)
{
    const nghttp2_nv hdrs[] = {
        HDR(":method", "POST"),
        HDR(":scheme", "http"),
        HDR(":path", "/grpc.health.v1.Health/Check"),
        HDR(":authority", g->authority),
        HDR("content-type", "application/grpc"),
        HDR("te", "trailers"),
        HDR("user-agent", "gyrus-health-check"),
    };
    nghttp2_data_provider body = { .source.ptr = NULL, .read_callback = read_request };

    g->grpc_status = -1;
    g->http_status = 0;
    g->req_off = g->resp_len = 0;
    g->resp_too_big = g->closed = false;
    g->close_error = 0;
    g->why[0] = '\0';
    g->stream_id = nghttp2_submit_request(g->session, NULL, hdrs, sizeof(hdrs) / sizeof(hdrs[0]), &body, NULL);
    return g->stream_id < 0 ? GY_EIO : 0;
}

struct gy_hc_grpc *gy_hc_grpc_new(const char *authority, const char *service)
{
    struct gy_hc_grpc *g = NULL, *res = NULL;
    nghttp2_session_callbacks *cb = NULL;

    if (strlen(service) > MAX_SERVICE || (g = calloc(1, sizeof(*g))) == NULL ||
        (g->authority = strdup(authority)) == NULL)
        goto out;
    g->req_len = gy_hc_grpc_encode_request(service, g->req, sizeof(g->req));
    if (nghttp2_session_callbacks_new(&cb) != 0)
        goto out;
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    nghttp2_session_callbacks_set_error_callback2(cb, on_error);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
    if (nghttp2_session_client_new(&g->session, cb, g) != 0)
        goto out;
    nghttp2_settings_entry settings[] = { { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 } };
    if (nghttp2_submit_settings(g->session, NGHTTP2_FLAG_NONE, settings, 1) != 0 || submit_call(g) != 0)
        goto out;
    res = g;
    g = NULL;
out:
    nghttp2_session_callbacks_del(cb);
    gy_hc_grpc_free(g);
    return res;
}

void gy_hc_grpc_free(struct gy_hc_grpc *g)
{
    if (g == NULL)
        return;
    nghttp2_session_del(g->session);
    free(g->authority);
    free(g);
}

bool gy_hc_grpc_reusable(const struct gy_hc_grpc *g)
{
    return g->closed && !g->conn_error && !g->goaway && nghttp2_session_want_read(g->session) &&
           nghttp2_session_get_next_stream_id(g->session) < (1u << 30);
}

int gy_hc_grpc_again(struct gy_hc_grpc *g)
{
    if (!gy_hc_grpc_reusable(g))
        return GY_ECLOSED;
    return submit_call(g);
}

int gy_hc_grpc_idle_input(struct gy_hc_grpc *g, const uint8_t *in, size_t len)
{
    ssize_t n = nghttp2_session_mem_recv(g->session, in, len);

    if (n < 0 || g->conn_error || g->goaway || !nghttp2_session_want_read(g->session))
        return GY_ECLOSED;
    return 0;
}

int gy_hc_grpc_output(struct gy_hc_grpc *g, const uint8_t **data, size_t *len)
{
    ssize_t n = nghttp2_session_mem_send(g->session, data);

    *len = 0;
    if (n < 0) {
        snprintf(g->why, sizeof(g->why), "HTTP/2: %s", nghttp2_strerror((int)n));
        return GY_EIO;
    }
    *len = (size_t)n;
    return 0;
}

static int fail_msg(struct gy_hc_grpc *g, int rc, const char *msg)
{
    snprintf(g->why, sizeof(g->why), "%s", msg);
    return rc;
}

static int fail(struct gy_hc_grpc *g, int rc, const char *fmt, int v) __attribute__((format(printf, 3, 0)));
static int fail(struct gy_hc_grpc *g, int rc, const char *fmt, int v)
{
    snprintf(g->why, sizeof(g->why), fmt, v);
    return rc;
}

static int verdict(struct gy_hc_grpc *g)
{
    if (g->close_error != NGHTTP2_NO_ERROR)
        return fail(g, GY_EIO, "stream reset (HTTP/2 error %d)", (int)g->close_error);
    if (g->http_status != 200)
        return fail(g, GY_EIO, "HTTP status %d", g->http_status);
    if (g->grpc_status != 0)
        return g->grpc_status < 0 ? fail_msg(g, GY_EPARSE, "no grpc-status")
                                  : fail(g, GY_EIO, "grpc-status %d", g->grpc_status);
    if (g->resp_too_big)
        return fail(g, GY_EPARSE, "response over %d bytes", MAX_RESPONSE);
    if (g->resp_len < 5 || g->resp[0] != 0)
        return fail_msg(g, GY_EPARSE, "no uncompressed response message");
    size_t mlen = (size_t)g->resp[1] << 24 | (size_t)g->resp[2] << 16 | (size_t)g->resp[3] << 8 | g->resp[4];
    if (mlen != g->resp_len - 5)
        return fail_msg(g, GY_EPARSE, "response message framing");
    int status = gy_hc_grpc_decode_status(g->resp + 5, mlen);
    if (status < 0)
        return fail_msg(g, GY_EPARSE, "malformed HealthCheckResponse");
    if (status != 1) {
        static const char *const names[] = { "UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN" };
        snprintf(g->why, sizeof(g->why), "status %s", names[status]);
        return GY_EIO;
    }
    return 0;
}

int gy_hc_grpc_input(struct gy_hc_grpc *g, const uint8_t *in, size_t len)
{
    ssize_t n = nghttp2_session_mem_recv(g->session, in, len);

    if (n < 0) {
        snprintf(g->why, sizeof(g->why), "HTTP/2: %s", nghttp2_strerror((int)n));
        return GY_EPARSE;
    }
    if (g->closed)
        return verdict(g);
    if (g->conn_error)
        return GY_EPARSE;
    if (!nghttp2_session_want_read(g->session))
        return fail_msg(g, GY_EIO, "HTTP/2 session ended before the answer");
    return GY_EAGAIN;
}

int gy_hc_grpc_eof(struct gy_hc_grpc *g)
{
    if (g->closed)
        return verdict(g);
    return fail_msg(g, GY_EIO, "connection closed before the answer");
}

const char *gy_hc_grpc_why(const struct gy_hc_grpc *g)
{
    return g->why;
}
