/* HTTP/2 glue over libnghttp2: see h2.h. */
#include "http/h2.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define MAX_CONTINUATIONS 8

static struct gy_h2 *glue(void *ud)
{
    return ud;
}

/* ---- defenses ---- */

static void calm_down(struct gy_h2 *h)
{
    if (h->calm_sent)
        return;
    h->calm_sent = true;
    h->violations++;
    nghttp2_session_terminate_session(h->ng, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* SETTINGS, PING, PRIORITY and empty frames: at most control_per_s in any second. */
static void count_control(struct gy_h2 *h)
{
    if (h->now_ms - h->window_start_ms >= 1000) {
        h->window_start_ms = h->now_ms;
        h->control_in_window = 0;
    }
    if (++h->control_in_window > h->control_per_s)
        calm_down(h);
}

/* Client resets: a token bucket of resets_burst refilled at resets_per_s. */
static void count_reset(struct gy_h2 *h)
{
    double refill = (double)(h->now_ms - h->reset_refill_ms) * h->resets_per_s / 1000.0;

    h->reset_refill_ms = h->now_ms;
    h->reset_tokens += refill;
    if (h->reset_tokens > h->resets_burst)
        h->reset_tokens = h->resets_burst;
    if (h->reset_tokens < 1.0) {
        calm_down(h);
        return;
    }
    h->reset_tokens -= 1.0;
}

/* ---- header blocks ---- */

static void block_reset(struct gy_h2 *h)
{
    memset(&h->cur, 0, sizeof(h->cur));
    h->cur.content_length = -1;
    h->alen = 0;
    h->nfields = 0;
    h->cur_size = 0;
}

static void block_release(struct gy_h2 *h)
{
    free(h->arena);
    free(h->fields);
    h->arena = NULL;
    h->fields = NULL;
    h->acap = h->capfields = 0;
    block_reset(h);
}

/* Copies bytes into the arena, NUL-terminated; slices taken before a move are fixed up when the
 * block is done. */
static long arena_put(struct gy_h2 *h, const uint8_t *p, size_t n)
{
    if (h->alen + n + 1 > h->acap) {
        size_t cap = h->acap ? h->acap * 2 : 4096;
        while (cap < h->alen + n + 1)
            cap *= 2;
        char *a = realloc(h->arena, cap);
        if (a == NULL)
            return -1;
        h->arena = a;
        h->acap = cap;
    }
    memcpy(h->arena + h->alen, p, n);
    h->arena[h->alen + n] = '\0';
    h->alen += n + 1;
    return (long)(h->alen - n - 1);
}

/* Slices are stored as offsets into the arena until the block is complete. */
#define OFF(x) ((const char *)(uintptr_t)(x))

static struct gy_slice fix(const struct gy_h2 *h, struct gy_slice s)
{
    return s.len || s.ptr ? gy_slice(h->arena + (uintptr_t)s.ptr, s.len) : s;
}

static int store_field(struct gy_h2 *h, const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen)
{
    long no = arena_put(h, name, nlen), vo = arena_put(h, value, vlen);
    struct gy_slice v = gy_slice(OFF(vo), vlen);

    if (no < 0 || vo < 0)
        return -1;
    if (nlen > 0 && name[0] == ':') {
        if (nlen == 7 && memcmp(name, ":method", 7) == 0)
            h->cur.method = v;
        else if (nlen == 7 && memcmp(name, ":scheme", 7) == 0)
            h->cur.scheme = v;
        else if (nlen == 10 && memcmp(name, ":authority", 10) == 0)
            h->cur.authority = v;
        else if (nlen == 5 && memcmp(name, ":path", 5) == 0)
            h->cur.path = v;
        else if (nlen == 9 && memcmp(name, ":protocol", 9) == 0)
            h->cur.protocol = v;
        else if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
            long long st = gy_slice_to_u63(gy_slice((const char *)value, vlen));
            h->cur.status = st >= 100 && st <= 999 ? (int)st : 0;
        }
        return 0;
    }
    if (nlen == 14 && memcmp(name, "content-length", 14) == 0)
        h->cur.content_length = gy_slice_to_u63(gy_slice((const char *)value, vlen));
    if (h->nfields == h->capfields) {
        unsigned cap = h->capfields ? h->capfields * 2 : 32;
        struct gy_header *f = realloc(h->fields, cap * sizeof(*f));
        if (f == NULL)
            return -1;
        h->fields = f;
        h->capfields = cap;
    }
    h->fields[h->nfields++] = (struct gy_header){ gy_slice(OFF(no), nlen), v };
    return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    (void)ng, (void)frame;
    block_reset(glue(ud));
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    struct gy_h2 *h = glue(ud);

    (void)ng, (void)frame, (void)flags;
    if (h->cur.too_large)
        return 0; /* keep decoding (HPACK state), store nothing */
    h->cur_size += nlen + vlen + 32;
    if (h->cur_size > h->max_header_list_size || h->nfields >= h->max_headers) {
        h->cur.too_large = true;
        return 0;
    }
    return store_field(h, name, nlen, value, vlen) == 0 ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

static int deliver_head(struct gy_h2 *h, const nghttp2_frame *frame)
{
    int32_t sid = frame->hd.stream_id;
    void *sud = nghttp2_session_get_stream_user_data(h->ng, sid);
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    bool trailers = h->server ? frame->headers.cat == NGHTTP2_HCAT_HEADERS : h->cur.status == 0;
    struct gy_h2_head head = h->cur;

    head.method = fix(h, head.method);
    head.scheme = fix(h, head.scheme);
    head.authority = fix(h, head.authority);
    head.path = fix(h, head.path);
    head.protocol = fix(h, head.protocol);
    for (unsigned i = 0; i < h->nfields; i++) {
        h->fields[i].name = fix(h, h->fields[i].name);
        h->fields[i].value = fix(h, h->fields[i].value);
    }
    head.headers = h->fields;
    head.nheaders = h->nfields;
    head.block = gy_slice(h->arena, h->alen);
    int rc = h->cb->on_head(h, sid, sud, &head, trailers, end);
    if (h->acap > 16384) /* a big block: give the memory back */
        block_release(h);
    else
        block_reset(h);
    return rc;
}

/* ---- frames ---- */

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    struct gy_h2 *h = glue(ud);
    int32_t sid = frame->hd.stream_id;

    (void)ng;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (deliver_head(h, frame) != 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        return 0;
    case NGHTTP2_DATA:
        if (frame->hd.length == 0 && !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            count_control(h);
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
            void *sud = nghttp2_session_get_stream_user_data(h->ng, sid);
            if (sud != NULL)
                h->cb->on_end(h, sid, sud);
        }
        return 0;
    case NGHTTP2_RST_STREAM:
        if (h->server)
            count_reset(h);
        return 0;
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
            h->settings_seen = true;
        /* fall through */
    case NGHTTP2_PING:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
            count_control(h);
        return 0;
    case NGHTTP2_PRIORITY:
    case NGHTTP2_WINDOW_UPDATE:
        if (frame->hd.type == NGHTTP2_PRIORITY || frame->window_update.window_size_increment == 0)
            count_control(h);
        return 0;
    default:
        return 0;
    }
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t sid, const uint8_t *data, size_t len, void *ud)
{
    struct gy_h2 *h = glue(ud);
    void *sud = nghttp2_session_get_stream_user_data(ng, sid);

    (void)flags;
    if (sud == NULL) { /* a stream we are done with: give the window back */
        nghttp2_session_consume(ng, sid, len);
        return 0;
    }
    return h->cb->on_data(h, sid, sud, data, len) == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_stream_close(nghttp2_session *ng, int32_t sid, uint32_t error_code, void *ud)
{
    struct gy_h2 *h = glue(ud);
    void *sud = nghttp2_session_get_stream_user_data(ng, sid);

    if (sud != NULL)
        h->cb->on_close(h, sid, sud, error_code);
    return 0;
}

/* A server that ended its response while the client still sends: RST_STREAM NO_ERROR. */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    struct gy_h2 *h = glue(ud);
    int32_t sid = frame->hd.stream_id;

    if (h->server && sid > 0 && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
        nghttp2_session_get_stream_remote_close(ng, sid) == 0)
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, sid, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_frame_not_send(nghttp2_session *ng, const nghttp2_frame *frame, int lib_error, void *ud)
{
    struct gy_h2 *h = glue(ud);

    (void)ng, (void)lib_error;
    if (!h->server && frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
        h->cb->on_not_sent != NULL)
        h->cb->on_not_sent(h, frame->hd.stream_id);
    return 0;
}

static ssize_t read_body(nghttp2_session *ng, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    struct gy_h2 *h = glue(ud);
    bool eof = false, trailers = false;

    (void)ng;
    ssize_t n = h->cb->read_body(h, sid, src->ptr, buf, len, &eof, &trailers);
    if (n < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (trailers)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        return n;
    }
    return n > 0 ? n : NGHTTP2_ERR_DEFERRED;
}

/* ---- session ---- */

/* A callback table for a new session (nghttp2 copies it). */
static nghttp2_session_callbacks *callbacks(void)
{
    nghttp2_session_callbacks *cbs = NULL;

    if (nghttp2_session_callbacks_new(&cbs) == 0) {
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
        nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
        nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
    }
    return cbs;
}

nghttp2_data_provider gy_h2_body(void *sud)
{
    nghttp2_data_provider p = { .source = { .ptr = sud }, .read_callback = read_body };
    return p;
}

/* nghttp2's allocator over a worker's memcache. */
static void *mc_malloc(size_t n, void *mc)
{
    return gy_memcache_alloc(mc, n);
}

static void mc_free(void *p, void *mc)
{
    gy_memcache_free(mc, p);
}

static void *mc_calloc(size_t nmemb, size_t size, void *mc)
{
    return gy_memcache_calloc(mc, nmemb, size);
}

static void *mc_realloc(void *p, size_t n, void *mc)
{
    return gy_memcache_realloc(mc, p, n);
}

int gy_h2_init(struct gy_h2 *h, bool server, const struct gy_http2_options *o, unsigned max_headers,
               const struct gy_h2_callbacks *cb, void *ud, struct gy_memcache *mc)
{
    nghttp2_mem mem = { mc, mc_malloc, mc_free, mc_calloc, mc_realloc }; /* nghttp2 keeps a copy */
    nghttp2_session_callbacks *cbs = callbacks();
    nghttp2_option *opt = NULL;
    int rc;

    memset(h, 0, sizeof(*h));
    h->cb = cb;
    h->ud = ud;
    h->server = server;
    h->max_header_list_size = o->max_header_list_size;
    h->max_headers = max_headers ? max_headers : 1000;
    h->control_per_s = o->max_inbound_control_frames_per_s;
    h->resets_per_s = o->max_resets_per_s;
    h->resets_burst = o->max_resets_burst;
    h->reset_tokens = o->max_resets_burst;
    block_reset(h);
    if (cbs == NULL || nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return GY_ENOMEM;
    }
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, o->max_outbound_control_frames);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_continuations(opt, MAX_CONTINUATIONS);
    /* nghttp2's own rapid-reset bucket stays as a backstop behind ours. */
    nghttp2_option_set_stream_reset_rate_limit(opt, (uint64_t)o->max_resets_burst * 2, (uint64_t)o->max_resets_per_s * 2);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    if (!server)
        nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
    rc = server ? nghttp2_session_server_new3(&h->ng, cbs, h, opt, mc != NULL ? &mem : NULL)
                : nghttp2_session_client_new3(&h->ng, cbs, h, opt, mc != NULL ? &mem : NULL);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0)
        return GY_ENOMEM;
    nghttp2_settings_entry iv[8];
    size_t niv = 0;
    if (server)
        iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, o->max_concurrent_streams };
    iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, o->initial_stream_window_size };
    iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, o->max_header_list_size };
    iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, o->hpack_table_size };
    if (!server)
        iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 };
    if (server && o->allow_connect)
        iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1 };
    if (nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, niv) != 0 ||
        nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, (int32_t)o->initial_connection_window_size) != 0) {
        gy_h2_dispose(h);
        return GY_ENOMEM;
    }
    return 0;
}

void gy_h2_dispose(struct gy_h2 *h)
{
    if (h->ng != NULL)
        nghttp2_session_del(h->ng);
    h->ng = NULL;
    block_release(h);
}

long gy_h2_recv(struct gy_h2 *h, const char *in, size_t len, uint64_t now_ms)
{
    h->now_ms = now_ms;
    if (h->window_start_ms == 0)
        h->window_start_ms = h->reset_refill_ms = now_ms;
    ssize_t n = nghttp2_session_mem_recv(h->ng, (const uint8_t *)in, len);
    if (n < 0) {
        /* A fatal error: say why in a GOAWAY before the connection goes (best effort). */
        uint32_t code = n == NGHTTP2_ERR_FLOODED || n == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS ? NGHTTP2_ENHANCE_YOUR_CALM
                        : n == NGHTTP2_ERR_BAD_CLIENT_MAGIC                                  ? NGHTTP2_PROTOCOL_ERROR
                                                                                             : NGHTTP2_INTERNAL_ERROR;
        h->violations++;
        nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->ng), code, NULL, 0);
        return (long)n;
    }
    return (long)len;
}

int gy_h2_send(struct gy_h2 *h, struct gy_buf *out)
{
    for (;;) {
        if (h->npending == 0) {
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(h->ng, &p);
            if (n < 0)
                return (int)n;
            if (n == 0)
                return 0;
            h->pending = p;
            h->npending = (size_t)n;
        }
        size_t k = gy_buf_append(out, h->pending, h->npending);
        h->pending += k;
        h->npending -= k;
        if (h->npending > 0)
            return 0; /* out is full */
    }
}

bool gy_h2_want_write(const struct gy_h2 *h)
{
    return h->npending > 0 || nghttp2_session_want_write(h->ng);
}

bool gy_h2_done(const struct gy_h2 *h)
{
    return h->npending == 0 && !nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng);
}

void gy_h2_goaway(struct gy_h2 *h, uint32_t error_code)
{
    nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->ng), error_code, NULL,
                          0);
}

long gy_h2_settings_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        int v = c >= 'A' && c <= 'Z' ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '-' || c == '+' ? 62
                : c == '_' || c == '/' ? 63
                : c == '=' ? -2 : -1;
        if (v == -2)
            break;
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap)
                return -1;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return (long)n;
}

uint8_t gy_h2_nv_flags(const char *name, size_t len)
{
#define IS(lit) gy_slice_eqi(gy_slice(name, len), GY_SLICE_LIT(lit))
    bool unique = false;

    switch (len) { /* by length first: this runs for every header of every message */
    case 2:
        unique = IS("b3");
        break;
    case 10:
        unique = IS("tracestate") || IS("set-cookie");
        break;
    case 11:
        unique = IS("traceparent") || IS("x-b3-spanid");
        break;
    case 12:
        unique = IS("x-request-id") || IS("x-b3-traceid");
        break;
    case 13:
        unique = IS("uber-trace-id");
        break;
    case 15:
        unique = IS("x-amzn-trace-id");
        break;
    case 17:
        unique = IS("x-b3-parentspanid") || IS("x-client-trace-id");
        break;
    case 21:
        unique = IS("x-cloud-trace-context");
        break;
    default:
        break;
    }
#undef IS
    return unique ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE;
}
