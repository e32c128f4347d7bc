/* Unit tests for the HTTP/2 glue (http/h2.c) and the gRPC-Web helpers (proxy/grpcweb.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "http/h2.h"
#include "proxy/grpcweb.h"

static const struct gy_http2_options opts = {
    .max_concurrent_streams = 100,
    .initial_stream_window_size = 65535,
    .initial_connection_window_size = 1 << 20,
    .max_header_list_size = 4096,
    .hpack_table_size = 4096,
    .max_outbound_control_frames = 1000,
    .max_inbound_control_frames_per_s = 50,
    .max_resets_per_s = 10,
    .max_resets_burst = 20,
};

struct seen {
    int heads, too_large, data_bytes, ends, closes;
    char path[64];
    char last_field[64];
};

static struct seen seen;

static int on_head(struct gy_h2 *h, int32_t sid, void *sud, const struct gy_h2_head *head, bool trailers, bool end)
{
    (void)sud, (void)trailers, (void)end;
    nghttp2_session_set_stream_user_data(h->ng, sid, &seen); /* data goes to streams someone owns */
    seen.heads++;
    seen.too_large += head->too_large;
    snprintf(seen.path, sizeof(seen.path), "%.*s", GY_SLICE_ARG(head->path));
    if (head->nheaders > 0)
        snprintf(seen.last_field, sizeof(seen.last_field), "%.*s=%.*s", GY_SLICE_ARG(head->headers[head->nheaders - 1].name),
                 GY_SLICE_ARG(head->headers[head->nheaders - 1].value));
    return 0;
}

static int on_data(struct gy_h2 *h, int32_t sid, void *sud, const uint8_t *p, size_t n)
{
    (void)h, (void)sid, (void)sud, (void)p;
    seen.data_bytes += (int)n;
    return 0;
}

static void on_end(struct gy_h2 *h, int32_t sid, void *sud)
{
    (void)h, (void)sid, (void)sud;
    seen.ends++;
}

static void on_close(struct gy_h2 *h, int32_t sid, void *sud, uint32_t code)
{
    (void)h, (void)sid, (void)sud, (void)code;
    seen.closes++;
}

static ssize_t read_body(struct gy_h2 *h, int32_t sid, void *sud, uint8_t *buf, size_t len, bool *eof, bool *tr)
{
    (void)h, (void)sid, (void)sud, (void)buf, (void)len, (void)tr;
    *eof = true;
    return 0;
}

static const struct gy_h2_callbacks cbs = {
    .on_head = on_head, .on_data = on_data, .on_end = on_end, .on_close = on_close, .read_body = read_body,
};

/* A client session of nghttp2 to talk to the glue's server. */
static size_t client_bytes(nghttp2_session *c, uint8_t *out, size_t cap)
{
    size_t n = 0;
    const uint8_t *p;
    ssize_t k;

    while ((k = nghttp2_session_mem_send(c, &p)) > 0) {
        assert_true(n + (size_t)k <= cap);
        memcpy(out + n, p, (size_t)k);
        n += (size_t)k;
    }
    return n;
}

static nghttp2_session *new_client(void)
{
    nghttp2_session_callbacks *cb;
    nghttp2_session *c;

    assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
    assert_int_equal(nghttp2_session_client_new(&c, cb, NULL), 0);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(c, NGHTTP2_FLAG_NONE, NULL, 0);
    return c;
}

static ssize_t five_bytes(nghttp2_session *c, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
                          nghttp2_data_source *src, void *ud)
{
    (void)c, (void)sid, (void)len, (void)src, (void)ud;
    memcpy(buf, "hello", 5);
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 5;
}

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE }

static void test_request_head_and_body(void **state)
{
    (void)state;
    static uint8_t wire[65536];
    struct gy_h2 h;
    nghttp2_session *c = new_client();
    nghttp2_nv nv[] = { NV(":method", "POST"), NV(":scheme", "http"), NV(":authority", "x"), NV(":path", "/p?q=1"),
                        NV("x-a", "b") };

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(gy_h2_init(&h, true, &opts, 100, &cbs, NULL, NULL), 0);
    nghttp2_data_provider body = { .read_callback = five_bytes };
    assert_true(nghttp2_submit_request(c, NULL, nv, 5, &body, NULL) > 0);
    size_t n = client_bytes(c, wire, sizeof(wire));
    /* split the bytes anywhere: the glue takes any chunking */
    assert_true(gy_h2_recv(&h, (const char *)wire, 7, 1) >= 0);
    assert_true(gy_h2_recv(&h, (const char *)wire + 7, n - 7, 1) >= 0);
    assert_int_equal(seen.heads, 1);
    assert_string_equal(seen.path, "/p?q=1");
    assert_string_equal(seen.last_field, "x-a=b");
    assert_int_equal(seen.data_bytes, 5);
    assert_int_equal(seen.ends, 1);
    char out[16384];
    struct gy_buf b = { out, sizeof(out), 0, 0 };
    assert_int_equal(gy_h2_send(&h, &b), 0);
    assert_true(gy_buf_len(&b) > 0); /* SETTINGS, SETTINGS ack */
    gy_h2_dispose(&h);
    nghttp2_session_del(c);
}

static void test_header_list_limit_marks_too_large(void **state)
{
    (void)state;
    static uint8_t wire[65536];
    static char big[3000];
    struct gy_h2 h;
    nghttp2_session *c = new_client();

    memset(big, 'v', sizeof(big));
    nghttp2_nv nv[] = { NV(":method", "GET"), NV(":scheme", "http"), NV(":authority", "x"), NV(":path", "/"),
                        { (uint8_t *)"x-1", (uint8_t *)big, 3, sizeof(big), NGHTTP2_NV_FLAG_NONE },
                        { (uint8_t *)"x-2", (uint8_t *)big, 3, sizeof(big), NGHTTP2_NV_FLAG_NONE } };
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(gy_h2_init(&h, true, &opts, 100, &cbs, NULL, NULL), 0);
    nghttp2_submit_request(c, NULL, nv, 6, NULL, NULL);
    nghttp2_submit_request(c, NULL, nv, 4, NULL, NULL);
    size_t n = client_bytes(c, wire, sizeof(wire));
    assert_true(gy_h2_recv(&h, (const char *)wire, n, 1) >= 0);
    assert_int_equal(seen.heads, 2);
    assert_int_equal(seen.too_large, 1); /* the first one, 6 KB over a 4 KB limit; the second is fine */
    gy_h2_dispose(&h);
    nghttp2_session_del(c);
}

static void test_ping_flood_is_calmed(void **state)
{
    (void)state;
    static uint8_t wire[65536];
    struct gy_h2 h;
    nghttp2_session *c = new_client();

    assert_int_equal(gy_h2_init(&h, true, &opts, 100, &cbs, NULL, NULL), 0);
    for (int i = 0; i < 60; i++)
        nghttp2_submit_ping(c, NGHTTP2_FLAG_NONE, NULL);
    size_t n = client_bytes(c, wire, sizeof(wire));
    gy_h2_recv(&h, (const char *)wire, n, 5);
    assert_true(h.calm_sent);
    assert_true(gy_h2_done(&h) || gy_h2_want_write(&h));
    gy_h2_dispose(&h);
    nghttp2_session_del(c);
}

static void test_settings_decode(void **state)
{
    (void)state;
    uint8_t out[16];
    /* SETTINGS_MAX_CONCURRENT_STREAMS = 100: 00 03 00 00 00 64 */
    assert_int_equal(gy_h2_settings_decode("AAMAAABk", 8, out, sizeof(out)), 6);
    assert_int_equal(out[1], 3);
    assert_int_equal(out[5], 100);
    assert_int_equal(gy_h2_settings_decode("AA*A", 4, out, sizeof(out)), -1);
}

static void test_grpcweb_base64_any_chunking(void **state)
{
    (void)state;
    const char *msg = "hello gRPC-Web, base64 in odd chunks";
    size_t n = strlen(msg);
    char text[128];
    uint8_t back[128];
    struct gy_grpcweb g = { .mode = GY_GRPCWEB_TEXT };
    size_t k = 0;

    for (size_t i = 0; i < n; i += 5) /* encode in 5-byte pieces, pad at the end */
        k += gy_grpcweb_encode(&g, (const uint8_t *)msg + i, n - i < 5 ? n - i : 5, i + 5 >= n, text + k);
    assert_int_equal(k % 4, 0);
    struct gy_grpcweb d = { .mode = GY_GRPCWEB_TEXT };
    long m = 0;
    for (size_t i = 0; i < k; i += 3)
        m += gy_grpcweb_decode(&d, text + i, k - i < 3 ? k - i : 3, back + m);
    assert_int_equal(m, (long)n);
    assert_memory_equal(back, msg, n);
    assert_int_equal(gy_grpcweb_decode(&d, "ab!d", 4, back), -1);
}

static void test_grpcweb_types_and_trailers(void **state)
{
    (void)state;
    char buf[64];
    struct gy_grpcweb text = { .mode = GY_GRPCWEB_TEXT };
    struct gy_slice s = gy_grpcweb_to_grpc(GY_SLICE_LIT("application/grpc-web-text+proto"), buf, sizeof(buf));
    assert_true(gy_slice_eq(s, GY_SLICE_LIT("application/grpc+proto")));
    assert_int_equal(gy_grpcweb_mode(GY_SLICE_LIT("application/grpc-web")), GY_GRPCWEB_BINARY);
    assert_int_equal(gy_grpcweb_mode(GY_SLICE_LIT("application/grpc")), GY_GRPCWEB_NONE);
    s = gy_grpcweb_from_grpc(&text, GY_SLICE_LIT("application/grpc"), buf, sizeof(buf));
    assert_true(gy_slice_eq(s, GY_SLICE_LIT("application/grpc-web-text+proto")));
    struct gy_header t[] = { { GY_SLICE_LIT("Grpc-Status"), GY_SLICE_LIT("0") } };
    char frame[64];
    size_t n = gy_grpcweb_trailer_frame(t, 1, frame, sizeof(frame));
    assert_int_equal(n, 5 + 15);
    assert_int_equal((uint8_t)frame[0], 0x80);
    assert_int_equal(frame[4], 15);
    assert_memory_equal(frame + 5, "grpc-status:0\r\n", 15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_head_and_body),
        cmocka_unit_test(test_header_list_limit_marks_too_large),
        cmocka_unit_test(test_ping_flood_is_calmed),
        cmocka_unit_test(test_settings_decode),
        cmocka_unit_test(test_grpcweb_base64_any_chunking),
        cmocka_unit_test(test_grpcweb_types_and_trailers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
