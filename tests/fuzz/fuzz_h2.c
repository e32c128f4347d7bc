/*
 * libFuzzer target for the HTTP/2 glue (http/h2.c) over nghttp2: the input is frames as a peer
 * sends them, fed in pieces. The first byte picks the side: even, a server that answers every
 * request (with a body, and trailers every other time); odd, a client that sent two requests and
 * reads responses. The output is drained through gy_h2_send into a bounded buffer as the proxy
 * does, so header collection, the flood defenses, deferred bodies and trailers all run.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h2.h"

struct fuzz_stream {
    int32_t sid;
    size_t sent;
    bool trailers;
};

static const char body[] = "hello from the fuzzer\n";

/* Streams still open when the session is freed get no close callback: free them here. */
static struct fuzz_stream *live[512];

static void forget(struct fuzz_stream *fs)
{
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
        if (live[i] == fs)
            live[i] = NULL;
    free(fs);
}

static int on_head(struct gy_h2 *h, int32_t sid, void *sud, const struct gy_h2_head *head, bool trailers, bool end)
{
    (void)end;
    if (!h->server || trailers || sud != NULL)
        return 0;
    struct fuzz_stream *fs = calloc(1, sizeof(*fs));
    size_t slot = 0;
    while (slot < sizeof(live) / sizeof(live[0]) && live[slot] != NULL)
        slot++;
    if (fs == NULL || slot == sizeof(live) / sizeof(live[0])) {
        free(fs);
        nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, sid, NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    live[slot] = fs;
    fs->sid = sid;
    fs->trailers = sid % 4 == 1;
    nghttp2_session_set_stream_user_data(h->ng, sid, fs);
    nghttp2_nv nv[] = {
        { (uint8_t *)":status", (uint8_t *)(head->too_large ? "431" : "200"), 7, 3, NGHTTP2_NV_FLAG_NONE },
        { (uint8_t *)"content-type", (uint8_t *)"text/plain", 12, 10, NGHTTP2_NV_FLAG_NONE },
    };
    nghttp2_data_provider prov = gy_h2_body(fs);
    nghttp2_submit_response(h->ng, sid, nv, 2, &prov);
    return 0;
}

static int on_data(struct gy_h2 *h, int32_t sid, void *sud, const uint8_t *p, size_t n)
{
    (void)sud, (void)p;
    nghttp2_session_consume(h->ng, sid, n);
    return 0;
}

static void on_end(struct gy_h2 *h, int32_t sid, void *sud)
{
    (void)h, (void)sid, (void)sud;
}

static void on_close(struct gy_h2 *h, int32_t sid, void *sud, uint32_t code)
{
    (void)code;
    if (h->server && sud != NULL)
        forget(sud);
    nghttp2_session_set_stream_user_data(h->ng, sid, NULL);
}

static ssize_t read_body(struct gy_h2 *h, int32_t sid, void *sud, uint8_t *buf, size_t len, bool *eof, bool *trailers)
{
    struct fuzz_stream *fs = sud;
    size_t n = sizeof(body) - 1 - fs->sent;

    if (!h->server) { /* a client request body */
        *eof = true;
        return 0;
    }
    if (n > len)
        n = len;
    memcpy(buf, body + fs->sent, n);
    fs->sent += n;
    if (fs->sent == sizeof(body) - 1) {
        *eof = true;
        if (fs->trailers) {
            nghttp2_nv t = { (uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE };
            nghttp2_submit_trailer(h->ng, sid, &t, 1);
            *trailers = true;
        }
    }
    return (ssize_t)n;
}

static const struct gy_h2_callbacks callbacks = {
    .on_head = on_head, .on_data = on_data, .on_end = on_end, .on_close = on_close, .read_body = read_body,
};

static const struct gy_http2_options options = {
    .max_concurrent_streams = 100,
    .initial_stream_window_size = 65535,
    .initial_connection_window_size = 1 << 20,
    .max_header_list_size = 16384,
    .hpack_table_size = 4096,
    .allow_connect = true,
    .max_outbound_control_frames = 1000,
    .max_inbound_control_frames_per_s = 1000,
    .max_resets_per_s = 100,
    .max_resets_burst = 200,
};

static void drain(struct gy_h2 *h, struct gy_buf *out)
{
    for (int i = 0; i < 64 && gy_h2_want_write(h); i++) {
        out->head = out->tail = 0;
        if (gy_h2_send(h, out) < 0)
            return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char storage[4096];
    struct gy_buf out = { storage, sizeof(storage), 0, 0 };
    struct gy_h2 h;
    struct gy_memcache mc; /* the workers' allocator for nghttp2, when the input's bit 1 says so */

    if (size == 0)
        return 0;
    bool server = (data[0] & 1) == 0;
    gy_memcache_init(&mc, 64 * 1024);
    if (gy_h2_init(&h, server, &options, 100, &callbacks, NULL, (data[0] & 2) ? &mc : NULL) != 0) {
        gy_memcache_dispose(&mc);
        return 0;
    }
    if (!server) {
        nghttp2_nv nv[] = {
            { (uint8_t *)":method", (uint8_t *)"GET", 7, 3, NGHTTP2_NV_FLAG_NONE },
            { (uint8_t *)":scheme", (uint8_t *)"http", 7, 4, NGHTTP2_NV_FLAG_NONE },
            { (uint8_t *)":authority", (uint8_t *)"fuzz", 10, 4, NGHTTP2_NV_FLAG_NONE },
            { (uint8_t *)":path", (uint8_t *)"/", 5, 1, NGHTTP2_NV_FLAG_NONE },
        };
        nghttp2_submit_request(h.ng, NULL, nv, 4, NULL, NULL);
        nghttp2_submit_request(h.ng, NULL, nv, 4, NULL, NULL);
    }
    drain(&h, &out);
    /* Feed in pieces whose sizes come from the input itself. */
    size_t off = 1;
    uint64_t now = 1000;
    while (off < size) {
        size_t piece = 1 + data[off] % 97;
        if (piece > size - off)
            piece = size - off;
        if (gy_h2_recv(&h, (const char *)data + off, piece, now) < 0)
            break;
        off += piece;
        now += data[off - 1] % 3;
        drain(&h, &out);
    }
    drain(&h, &out);
    gy_h2_dispose(&h);
    gy_memcache_dispose(&mc);
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
        free(live[i]);
        live[i] = NULL;
    }
    return 0;
}
