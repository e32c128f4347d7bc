/*
 * HTTP/2 glue over libnghttp2, I/O-free like the HTTP/1 codec: bytes in (gy_h2_recv), bytes
 * out (gy_h2_send into a bounded buffer), events through a callback table. nghttp2 does the
 * framing, HPACK, flow control and message validation (pseudo-headers, connection-specific
 * fields, content-length); the glue adds what a proxy needs on top:
 *   - header blocks collected per connection (blocks are never interleaved) into one bounded
 *     arena, with max_header_list_size enforced as the fields are decoded (HPACK bombs stop
 *     growing at the limit; the head arrives marked too_large);
 *   - flood defenses: a token bucket on streams the client resets (rapid reset,
 *     CVE-2023-44487), a per-second budget of SETTINGS/PING/PRIORITY/empty frames, nghttp2's own
 *     limits on queued acks and CONTINUATION frames; over budget, GOAWAY ENHANCE_YOUR_CALM;
 *   - a server that ends its response while the client still sends resets the stream with
 *     NO_ERROR (RFC 9113 §8.1).
 * The same glue serves downstream (server) and upstream (client) connections and the fuzzer.
 */
#ifndef GY_HTTP_H2_H
#define GY_HTTP_H2_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/memcache.h"
#include "http/header.h"
#include "mesh/config.h"

/* A decoded header block; slices valid only during the on_head callback. */
struct gy_h2_head {
    struct gy_slice method, scheme, authority, path, protocol;
    int status;                       /* responses, 0 for requests and trailers */
    struct gy_header *headers;        /* regular fields */
    unsigned nheaders;
    int64_t content_length;           /* -1: absent */
    bool too_large;                   /* over max_header_list_size or max_headers: fields are missing */
    struct gy_slice block;            /* all the strings above, NUL-terminated (for gy_pool_move_begin) */
};

struct gy_h2;

struct gy_h2_callbacks {
    /* A complete header block: a request (server), a response or 1xx (client), or trailers. */
    int (*on_head)(struct gy_h2 *h, int32_t sid, void *sud, const struct gy_h2_head *head, bool trailers,
                   bool end_stream);
    int (*on_data)(struct gy_h2 *h, int32_t sid, void *sud, const uint8_t *p, size_t n);
    /* END_STREAM received after the data (not called when it came on the head: see end_stream). */
    void (*on_end)(struct gy_h2 *h, int32_t sid, void *sud);
    void (*on_close)(struct gy_h2 *h, int32_t sid, void *sud, uint32_t error_code);
    /* Client: a request's HEADERS will never go out (a GOAWAY came first); its stream was never
     * opened, so on_close does not follow. Optional. */
    void (*on_not_sent)(struct gy_h2 *h, int32_t sid);
    /* Body of a stream we send: copies up to len bytes; returns the count, 0 to wait (deferred
     * until nghttp2_session_resume_data), or sets *eof (with *trailers when the caller submitted
     * trailers and END_STREAM must not be set on the last DATA frame). */
    ssize_t (*read_body)(struct gy_h2 *h, int32_t sid, void *sud, uint8_t *buf, size_t len, bool *eof,
                         bool *trailers);
};

struct gy_h2 {
    nghttp2_session *ng;
    const struct gy_h2_callbacks *cb;
    void *ud;                         /* the owner (a connection) */
    bool server;
    uint32_t max_header_list_size;
    unsigned max_headers;
    /* the header block being received */
    char *arena;
    size_t alen, acap;
    struct gy_header *fields;
    unsigned nfields, capfields;
    struct gy_h2_head cur;
    size_t cur_size;
    /* output not yet copied out */
    const uint8_t *pending;
    size_t npending;
    /* defenses */
    uint64_t now_ms;
    uint64_t window_start_ms;
    uint32_t control_in_window;
    uint32_t control_per_s;
    double reset_tokens;
    uint64_t reset_refill_ms;
    uint32_t resets_per_s, resets_burst;
    bool calm_sent;                   /* GOAWAY ENHANCE_YOUR_CALM queued */
    bool settings_seen;               /* the peer's SETTINGS (not an ACK) came: its settings are known */
    uint32_t violations;              /* counted by the owner (stats) */
};

/* Sets up a server or client session with the options (SETTINGS queued); nghttp2 allocates
 * through mc (the worker's cache, used on the worker's thread only), or malloc when NULL.
 * 0 or GY_ENOMEM. */
int gy_h2_init(struct gy_h2 *h, bool server, const struct gy_http2_options *o, unsigned max_headers,
               const struct gy_h2_callbacks *cb, void *ud, struct gy_memcache *mc);
void gy_h2_dispose(struct gy_h2 *h);

/* Feeds bytes received; returns how many were used (all of them) or a negative nghttp2 error
 * when the connection must end (send what gy_h2_send still gives, then close). */
long gy_h2_recv(struct gy_h2 *h, const char *in, size_t len, uint64_t now_ms);

/* Copies frames to send into out (up to its room); returns 0, or a negative nghttp2 error. */
int gy_h2_send(struct gy_h2 *h, struct gy_buf *out);

/* Frames are waiting to be sent (in nghttp2 or in the glue). */
bool gy_h2_want_write(const struct gy_h2 *h);
/* The session is over: nothing more to read or write. */
bool gy_h2_done(const struct gy_h2 *h);

/* A data provider whose reads go to cb->read_body with this stream pointer. */
nghttp2_data_provider gy_h2_body(void *sud);

/* GOAWAY with the last stream id processed (graceful: streams below it finish). */
void gy_h2_goaway(struct gy_h2 *h, uint32_t error_code);

/* Decodes the base64url HTTP2-Settings header of an h2c upgrade into out; returns its length or -1. */
long gy_h2_settings_decode(const char *in, size_t len, uint8_t *out, size_t cap);

/* The nghttp2_nv flags for a header we send, by its name (any case): NGHTTP2_NV_FLAG_NO_INDEX
 * for headers whose value is new in every message (x-request-id, trace ids, set-cookie). HPACK
 * would add each of them to the dynamic table, where it evicts entries that do repeat, and
 * nghttp2 keeps entries of one name in one hash chain: with a table full of request ids, every
 * new one is compared against all of them (a tenth of the proxy's instructions per request). */
uint8_t gy_h2_nv_flags(const char *name, size_t len);

#endif
