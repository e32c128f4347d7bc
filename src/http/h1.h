/*
 * HTTP/1.1 codec: strict, zero-copy and I/O-free (RFC 9110/9112).
 *
 * The head parsers take the bytes received so far and either return the length of a complete
 * head, GY_EAGAIN when more bytes are needed, or an error with the HTTP status to answer.
 * All slices point into the caller's buffer, which must stay unchanged while they are used.
 * The chunked decoder is incremental and zero-copy: it returns spans of body data inside the
 * input. Nothing here allocates, reads a socket or keeps a pointer between calls.
 *
 * Request smuggling is rejected, never repaired: Content-Length together with
 * Transfer-Encoding, several or malformed Content-Length values, a Transfer-Encoding other than
 * a final "chunked", bad chunk sizes, obs-fold, bare CR, NUL and other control characters,
 * whitespace before the colon, invalid header names or values.
 */
#ifndef GY_HTTP_H1_H
#define GY_HTTP_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/slice.h"
#include "http/header.h"

struct gy_h1_limits {
    size_t max_request_line; /* request line or status line bytes, excluding CRLF (→ 414) */
    size_t max_head_bytes;   /* whole head, start line and headers and final CRLF (→ 431) */
    unsigned max_headers;    /* number of header fields (→ 431) */
};

/* 8 KiB request line, 32 KiB head, 100 headers. */
extern const struct gy_h1_limits gy_h1_default_limits;

enum gy_h1_body {
    GY_H1_BODY_NONE,    /* no body (or Content-Length: 0) */
    GY_H1_BODY_LENGTH,  /* content_length bytes */
    GY_H1_BODY_CHUNKED, /* chunked transfer coding, decode with gy_h1_chunked_* */
    GY_H1_BODY_EOF,     /* responses only: body ends when the connection closes */
    GY_H1_BODY_TUNNEL,  /* after a successful Upgrade/CONNECT, bytes flow both ways raw */
};

/* Why a head was refused: the status to answer and a short reason for logs. */
struct gy_h1_error {
    int status;         /* 400, 414, 431, 501, 505 (requests); 502 (responses) */
    const char *reason; /* static string, e.g. "both Content-Length and Transfer-Encoding" */
};

struct gy_h1_request {
    struct gy_slice method;
    struct gy_slice target;   /* request-target as sent */
    struct gy_slice path;     /* origin-form path without the query; for absolute-form the path part */
    struct gy_slice query;    /* after '?', without it; empty if none */
    struct gy_slice host;     /* Host header value (or authority of an absolute-form target) */
    int minor_version;        /* 0 or 1 */
    struct gy_header *headers; /* the caller's array, filled in order */
    unsigned nheaders;
    enum gy_h1_body body;
    uint64_t content_length;  /* when body == GY_H1_BODY_LENGTH */
    bool keep_alive;          /* per version default and Connection: close/keep-alive */
    bool expect_continue;     /* Expect: 100-continue */
    bool upgrade;             /* Connection: upgrade with an Upgrade header */
    bool is_head;             /* method is HEAD */
    bool is_connect;          /* method is CONNECT (authority-form target) */
    size_t head_len;          /* bytes of the head, including the final empty line */
};

struct gy_h1_response {
    int minor_version;
    int status;               /* 100..999 */
    struct gy_slice reason;
    struct gy_header *headers;
    unsigned nheaders;
    enum gy_h1_body body;
    uint64_t content_length;
    bool keep_alive;
    size_t head_len;
};

/*
 * Parses a request head from buf[0..len). `headers` has room for lim->max_headers entries.
 * Returns head_len (> 0) when complete, GY_EAGAIN when more bytes are needed (and the bytes so
 * far are within limits), or GY_EPARSE / GY_ETOOBIG with *err set (status 400/414/431/501/505).
 * Up to a few empty lines before the request line are skipped (RFC 9112 §2.2) and counted in
 * head_len. LF without CR ends a line; a CR not followed by LF is an error.
 */
int gy_h1_parse_request(const char *buf, size_t len, struct gy_h1_request *req, struct gy_header *headers,
                        const struct gy_h1_limits *lim, struct gy_h1_error *err);

/*
 * Parses a response head. `request_was_head` and `request_was_connect` decide the body of the
 * response (RFC 9112 §6.3): HEAD, 1xx, 204 and 304 have none; a 2xx to CONNECT and a 101 are
 * GY_H1_BODY_TUNNEL; without Content-Length or chunked the body runs to EOF.
 * Errors carry status 502.
 */
int gy_h1_parse_response(const char *buf, size_t len, struct gy_h1_response *res, struct gy_header *headers,
                         const struct gy_h1_limits *lim, bool request_was_head, bool request_was_connect,
                         struct gy_h1_error *err);

/* Incremental chunked-body decoder (RFC 9112 §7.1). Trailer fields are validated and skipped. */
struct gy_h1_chunked {
    int state;
    uint64_t remaining;  /* data bytes left in the current chunk */
    size_t line_bytes;   /* bytes of the current size line / trailer section so far (bounded) */
    unsigned digits;
};

void gy_h1_chunked_init(struct gy_h1_chunked *d);

/*
 * Consumes framing and at most one span of data from in[0..len).
 * Returns the number of input bytes consumed (>= 0), or GY_EPARSE on a malformed chunk
 * (bad hex, size over 2^62, missing CRLF after data, chunk extension or trailer section too long,
 * bad trailer field). On return *data is a span inside `in` of body data (possibly empty) and
 * *done is true once the last chunk and the trailer section have been consumed; bytes after that
 * belong to the next message and are not consumed. Call again with the rest of the input until it
 * returns 0 with an empty *data.
 */
long gy_h1_chunked_decode(struct gy_h1_chunked *d, const char *in, size_t len, struct gy_slice *data, bool *done);

/* Writes the chunk-size line for a chunk of n bytes ("1a2b\r\n") into out (>= 20 bytes); returns its length. */
size_t gy_h1_chunk_header(char *out, uint64_t n);

/* True if `name` is a hop-by-hop header a proxy must not forward (Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Authenticate,
 * Proxy-Authorization is NOT hop-by-hop here since it may be meant for the upstream). Also
 * names listed in the message's Connection header: see gy_h1_connection_lists. */
bool gy_h1_is_hop_by_hop(struct gy_slice name);

/* True if `name` appears as a token in any Connection header of the message. */
bool gy_h1_connection_lists(const struct gy_header *h, unsigned n, struct gy_slice name);

/* The standard reason phrase for a status code ("OK", "Not Found", ...), "" if unknown. */
const char *gy_h1_reason(int status);

#endif
