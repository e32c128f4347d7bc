/* gRPC Health v1 check codec: protobuf vectors, then whole exchanges against an in-memory
 * nghttp2 server session answering SERVING, NOT_SERVING, error statuses, trailers-only
 * responses, resets and garbage. */
#include <nghttp2/nghttp2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "proxy/health_grpc.h"

/* ---- protobuf ---- */

static void test_encode_request(void **state)
{
    uint8_t out[512];
    char big[201];

    (void)state;
    assert_int_equal(gy_hc_grpc_encode_request("", out, sizeof(out)), 5);
    assert_memory_equal(out, "\0\0\0\0\0", 5);
    assert_int_equal(gy_hc_grpc_encode_request("a.B", out, sizeof(out)), 10);
    assert_memory_equal(out, "\0\0\0\0\x05\x0a\x03" "a.B", 10);
    memset(big, 'x', 200);
    big[200] = '\0';
    assert_int_equal(gy_hc_grpc_encode_request(big, out, sizeof(out)), 5 + 203);
    assert_memory_equal(out, "\0\0\0\0\xcb\x0a\xc8\x01xx", 10);
    assert_int_equal(gy_hc_grpc_encode_request(big, out, 100), 0);
}

static void test_decode_status(void **state)
{
    static const struct {
        const char *bytes;
        size_t len;
        int want;
    } v[] = {
        { "", 0, 0 },
        { "\x08\x01", 2, 1 },
        { "\x08\x02", 2, 2 },
        { "\x08\x03", 2, 3 },
        { "\x08\x07", 2, 0 },                               /* unknown enum value → UNKNOWN */
        { "\x12\x03" "abc\x08\x01", 7, 1 },                 /* unknown string field skipped */
        { "\x0d\x01\x02\x03\x04\x08\x01", 7, 1 },           /* fixed32 skipped */
        { "\x09" "12345678\x08\x02", 11, 2 },               /* fixed64 skipped */
        { "\x10\x05\x08\x01", 4, 1 },                       /* another varint field */
        { "\x08\x01\x08\x02", 4, 2 },                       /* last one wins */
        { "\x08", 1, GY_EPARSE },                           /* truncated varint */
        { "\x12\x05" "a", 3, GY_EPARSE },                   /* truncated string */
        { "\x0d\x01", 2, GY_EPARSE },                       /* truncated fixed32 */
        { "\x0b", 1, GY_EPARSE },                           /* groups are not accepted */
        { "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, GY_EPARSE }, /* varint too long */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        int got = gy_hc_grpc_decode_status((const uint8_t *)v[i].bytes, v[i].len);
        if (got != v[i].want)
            fail_msg("vector %zu: got %d, want %d", i, got, v[i].want);
    }
}

/* ---- exchanges with an nghttp2 server ---- */

enum answer { A_MESSAGE, A_TRAILERS_ONLY, A_RESET, A_GOAWAY_FIRST };

struct server {
    nghttp2_session *s;
    enum answer how;
    const char *status;         /* :status */
    const char *grpc_status;
    uint8_t msg[64];
    size_t msg_len, msg_off;
    char path[64], te[16], ctype[32], authority[64];
    uint8_t body[64];
    size_t body_len;
};

static void copy_hdr(char *dst, size_t cap, const uint8_t *v, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static int srv_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl, const uint8_t *value,
                      size_t vl, uint8_t flags, void *ud)
{
    struct server *sv = ud;

    (void)s, (void)f, (void)flags;
    if (nl == 5 && memcmp(name, ":path", 5) == 0)
        copy_hdr(sv->path, sizeof(sv->path), value, vl);
    else if (nl == 2 && memcmp(name, "te", 2) == 0)
        copy_hdr(sv->te, sizeof(sv->te), value, vl);
    else if (nl == 12 && memcmp(name, "content-type", 12) == 0)
        copy_hdr(sv->ctype, sizeof(sv->ctype), value, vl);
    else if (nl == 10 && memcmp(name, ":authority", 10) == 0)
        copy_hdr(sv->authority, sizeof(sv->authority), value, vl);
    return 0;
}

static int srv_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
    struct server *sv = ud;

    (void)s, (void)flags, (void)id;
    if (len <= sizeof(sv->body) - sv->body_len) {
        memcpy(sv->body + sv->body_len, data, len);
        sv->body_len += len;
    }
    return 0;
}

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }

static ssize_t srv_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *ud)
{
    struct server *sv = ud;
    size_t n = sv->msg_len - sv->msg_off;

    (void)src;
    if (n > len)
        n = len;
    memcpy(buf, sv->msg + sv->msg_off, n);
    sv->msg_off += n;
    if (sv->msg_off == sv->msg_len) {
        nghttp2_nv trailer[] = { NV("grpc-status", sv->grpc_status) };
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        assert_int_equal(nghttp2_submit_trailer(s, id, trailer, 1), 0);
    }
    return (ssize_t)n;
}

static int srv_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct server *sv = ud;
    int32_t id = f->hd.stream_id;

    if (id == 0 || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    if (sv->how == A_RESET)
        return nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
    if (sv->how == A_TRAILERS_ONLY) {
        nghttp2_nv h[] = { NV(":status", sv->status), NV("content-type", "application/grpc"),
                           NV("grpc-status", sv->grpc_status) };
        return nghttp2_submit_response(s, id, h, sv->grpc_status[0] ? 3 : 2, NULL);
    }
    nghttp2_nv h[] = { NV(":status", sv->status), NV("content-type", "application/grpc") };
    nghttp2_data_provider dp = { .read_callback = srv_read };
    return nghttp2_submit_response(s, id, h, 2, &dp);
}

static void srv_init(struct server *sv)
{
    nghttp2_session_callbacks *cb;

    assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_on_header_callback(cb, srv_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, srv_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, srv_frame);
    assert_int_equal(nghttp2_session_server_new(&sv->s, cb, sv), 0);
    nghttp2_session_callbacks_del(cb);
    assert_int_equal(nghttp2_submit_settings(sv->s, NGHTTP2_FLAG_NONE, NULL, 0), 0);
    if (sv->how == A_GOAWAY_FIRST)
        assert_int_equal(nghttp2_submit_goaway(sv->s, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0), 0);
}

/* Moves bytes both ways until the client has a verdict; returns it. */
static int exchange(struct server *sv, struct gy_hc_grpc *g)
{
    for (int round = 0; round < 20; round++) {
        const uint8_t *data;
        size_t len;
        do {
            assert_int_equal(gy_hc_grpc_output(g, &data, &len), 0);
            if (len > 0)
                assert_int_equal(nghttp2_session_mem_recv(sv->s, data, len), (ssize_t)len);
        } while (len > 0);
        ssize_t n;
        while ((n = nghttp2_session_mem_send(sv->s, &data)) > 0) {
            int rc = gy_hc_grpc_input(g, data, (size_t)n);
            if (rc != GY_EAGAIN)
                return rc;
        }
    }
    return gy_hc_grpc_eof(g);
}

static const struct {
    enum answer how;
    const char *status, *grpc_status;
    const char *msg;
    size_t msg_len;
    int want;
    const char *why;
} cases[] = {
    { A_MESSAGE, "200", "0", "\0\0\0\0\x02\x08\x01", 7, 0, "" },
    { A_MESSAGE, "200", "0", "\0\0\0\0\x02\x08\x02", 7, GY_EIO, "status NOT_SERVING" },
    { A_MESSAGE, "200", "0", "\0\0\0\0\x02\x08\x03", 7, GY_EIO, "status SERVICE_UNKNOWN" },
    { A_MESSAGE, "200", "0", "\0\0\0\0\0", 5, GY_EIO, "status UNKNOWN" },
    { A_MESSAGE, "200", "0", "\0\0\0\0\x03\x08\x01", 7, GY_EPARSE, "response message framing" },
    { A_MESSAGE, "200", "0", "\x01\0\0\0\x02\x08\x01", 7, GY_EPARSE, "no uncompressed response message" },
    { A_MESSAGE, "200", "0", "\0\0\0\0\x01\x08", 6, GY_EPARSE, "malformed HealthCheckResponse" },
    { A_MESSAGE, "200", "2", "\0\0\0\0\x02\x08\x01", 7, GY_EIO, "grpc-status 2" },
    { A_TRAILERS_ONLY, "200", "14", "", 0, GY_EIO, "grpc-status 14" },
    { A_TRAILERS_ONLY, "200", "12", "", 0, GY_EIO, "grpc-status 12" },
    { A_TRAILERS_ONLY, "503", "", "", 0, GY_EIO, "HTTP status 503" },
    { A_TRAILERS_ONLY, "200", "", "", 0, GY_EPARSE, "no grpc-status" },
    { A_RESET, "200", "0", "", 0, GY_EIO, "stream reset (HTTP/2 error 7)" },
    { A_GOAWAY_FIRST, "200", "0", "", 0, GY_EIO, "stream reset (HTTP/2 error 7)" }, /* refused */
};

static void test_exchanges(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct server sv = { .how = cases[i].how, .status = cases[i].status, .grpc_status = cases[i].grpc_status };
        memcpy(sv.msg, cases[i].msg, cases[i].msg_len);
        sv.msg_len = cases[i].msg_len;
        srv_init(&sv);
        struct gy_hc_grpc *g = gy_hc_grpc_new("backend", "svc");
        assert_non_null(g);
        int rc = exchange(&sv, g);
        if (rc != cases[i].want || strcmp(gy_hc_grpc_why(g), cases[i].why) != 0)
            fail_msg("case %zu: got %d \"%s\", want %d \"%s\"", i, rc, gy_hc_grpc_why(g), cases[i].want, cases[i].why);
        if (cases[i].how != A_GOAWAY_FIRST) {
            assert_string_equal(sv.path, "/grpc.health.v1.Health/Check");
            assert_string_equal(sv.te, "trailers");
            assert_string_equal(sv.ctype, "application/grpc");
            assert_string_equal(sv.authority, "backend");
            assert_int_equal(sv.body_len, 10);
            assert_memory_equal(sv.body, "\0\0\0\0\x05\x0a\x03svc", 10);
        }
        gy_hc_grpc_free(g);
        nghttp2_session_del(sv.s);
    }
}

static void test_garbage_and_eof(void **state)
{
    struct gy_hc_grpc *g = gy_hc_grpc_new("backend", "");
    const uint8_t *data;
    size_t len;

    (void)state;
    assert_int_equal(gy_hc_grpc_output(g, &data, &len), 0);
    assert_true(len >= 24);
    assert_memory_equal(data, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    static const char h1[] = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
    assert_int_equal(gy_hc_grpc_input(g, (const uint8_t *)h1, sizeof(h1) - 1), GY_EPARSE);
    assert_non_null(strstr(gy_hc_grpc_why(g), "HTTP/2"));
    gy_hc_grpc_free(g);

    g = gy_hc_grpc_new("backend", "");
    assert_int_equal(gy_hc_grpc_eof(g), GY_EIO);
    assert_string_equal(gy_hc_grpc_why(g), "connection closed before the answer");
    gy_hc_grpc_free(g);

    char huge[1100];
    memset(huge, 'x', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    assert_null(gy_hc_grpc_new("backend", huge));
}

/* reuse_connection: calls one after another on one session; PINGs between calls are answered;
 * a GOAWAY between calls ends the session's reuse. */
static void test_calls_on_one_session(void **state)
{
    struct server sv = { .how = A_MESSAGE, .status = "200", .grpc_status = "0" };
    const uint8_t *data;
    size_t len;
    ssize_t n;

    (void)state;
    memcpy(sv.msg, "\0\0\0\0\x02\x08\x01", 7);
    sv.msg_len = 7;
    srv_init(&sv);
    struct gy_hc_grpc *g = gy_hc_grpc_new("backend", "svc");
    assert_int_equal(exchange(&sv, g), 0);
    assert_true(gy_hc_grpc_reusable(g));
    for (int call = 0; call < 3; call++) {
        /* between calls the server pings: the client answers it */
        uint8_t opaque[8] = "idle-pi";
        assert_int_equal(nghttp2_submit_ping(sv.s, NGHTTP2_FLAG_NONE, opaque), 0);
        while ((n = nghttp2_session_mem_send(sv.s, &data)) > 0)
            assert_int_equal(gy_hc_grpc_idle_input(g, data, (size_t)n), 0);
        bool acked = false;
        do { /* frame by frame: a SETTINGS ack may come first */
            assert_int_equal(gy_hc_grpc_output(g, &data, &len), 0);
            for (size_t off = 0; off + 9 <= len; off += 9 + ((size_t)data[off] << 16 | (size_t)data[off + 1] << 8 | data[off + 2]))
                acked |= data[off + 3] == NGHTTP2_PING && data[off + 4] == NGHTTP2_FLAG_ACK;
            if (len > 0)
                assert_int_equal(nghttp2_session_mem_recv(sv.s, data, len), (ssize_t)len);
        } while (len > 0);
        if (!acked)
            fail_msg("call %d: the ping was not answered", call);
        /* the next call on the same session */
        sv.body_len = sv.msg_off = 0;
        sv.authority[0] = '\0';
        assert_int_equal(gy_hc_grpc_again(g), 0);
        assert_int_equal(exchange(&sv, g), 0);
        assert_string_equal(sv.authority, "backend");
        assert_memory_equal(sv.body, "\0\0\0\0\x05\x0a\x03svc", 10);
    }
    sv.grpc_status = "14"; /* a failed call ends cleanly: the session still serves */
    sv.msg_off = 0;
    assert_int_equal(gy_hc_grpc_again(g), 0);
    assert_int_equal(exchange(&sv, g), GY_EIO);
    assert_string_equal(gy_hc_grpc_why(g), "grpc-status 14");
    assert_true(gy_hc_grpc_reusable(g));
    /* GOAWAY while idle: no more calls on this session */
    assert_int_equal(nghttp2_submit_goaway(sv.s, NGHTTP2_FLAG_NONE, 7, NGHTTP2_NO_ERROR, NULL, 0), 0);
    while ((n = nghttp2_session_mem_send(sv.s, &data)) > 0)
        assert_int_equal(gy_hc_grpc_idle_input(g, data, (size_t)n), GY_ECLOSED);
    assert_false(gy_hc_grpc_reusable(g));
    assert_int_equal(gy_hc_grpc_again(g), GY_ECLOSED);
    gy_hc_grpc_free(g);
    nghttp2_session_del(sv.s);
    /* garbage while idle ends it too */
    g = gy_hc_grpc_new("backend", "");
    assert_int_equal(gy_hc_grpc_idle_input(g, (const uint8_t *)"HTTP/1.1 400 Bad\r\n\r\n", 21), GY_ECLOSED);
    gy_hc_grpc_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_request),
        cmocka_unit_test(test_decode_status),
        cmocka_unit_test(test_exchanges),
        cmocka_unit_test(test_garbage_and_eof),
        cmocka_unit_test(test_calls_on_one_session),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
