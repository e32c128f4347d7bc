/*
 * libFuzzer target for the HTTP/1.1 codec: the request and response head parsers (default and
 * tiny limits) and the chunked decoder (whole and split at a position taken from the first byte).
 * Checks invariants with abort(): results within the input, slices inside the buffer, prefixes of
 * a complete head are "need more", and a split input decodes to the same bytes as a whole one.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "http/h1.h"
#include "fuzz_check.h"

#define MAX_HEADERS 128

static bool inside(struct gy_slice s, const char *buf, size_t len)
{
    return s.len == 0 || (s.ptr >= buf && s.len <= len && s.ptr <= buf + len - s.len);
}

static char *copy(const uint8_t *data, size_t n)
{
    char *p = malloc(n > 0 ? n : 1);
    CHECK(p != NULL);
    if (n > 0)
        memcpy(p, data, n);
    return p;
}

static void check_error(int rc, const struct gy_h1_error *err, bool request)
{
    CHECK(rc == GY_EPARSE || rc == GY_ETOOBIG);
    CHECK(err->reason != NULL);
    if (!request) {
        CHECK(err->status == 502);
    } else if (rc == GY_ETOOBIG) {
        CHECK(err->status == 414 || err->status == 431);
    } else {
        CHECK(err->status == 400 || err->status == 501 || err->status == 505);
    }
}

static int request(const char *buf, size_t len, const struct gy_h1_limits *lim, struct gy_header *h)
{
    struct gy_h1_request req;
    struct gy_h1_error err = { 0, NULL };
    int rc = gy_h1_parse_request(buf, len, &req, h, lim, &err);

    if (rc == GY_EAGAIN)
        return rc;
    if (rc < 0) {
        check_error(rc, &err, true);
        return rc;
    }
    CHECK((size_t)rc == req.head_len && req.head_len <= len && req.head_len <= lim->max_head_bytes);
    CHECK(req.headers == h && req.nheaders <= lim->max_headers);
    CHECK(req.minor_version == 0 || req.minor_version == 1);
    CHECK(req.method.len > 0 && req.target.len > 0);
    CHECK(inside(req.method, buf, len) && inside(req.target, buf, len) && inside(req.path, buf, len));
    CHECK(inside(req.query, buf, len) && inside(req.host, buf, len));
    CHECK(req.body == GY_H1_BODY_NONE || req.body == GY_H1_BODY_LENGTH || req.body == GY_H1_BODY_CHUNKED);
    CHECK(req.body != GY_H1_BODY_LENGTH || req.content_length > 0);
    for (unsigned i = 0; i < req.nheaders; i++) {
        CHECK(h[i].name.len > 0 && inside(h[i].name, buf, len) && inside(h[i].value, buf, len));
        CHECK(h[i].name.ptr + h[i].name.len <= buf + rc && h[i].value.ptr + h[i].value.len <= buf + rc);
    }
    return rc;
}

static int response(const char *buf, size_t len, const struct gy_h1_limits *lim, struct gy_header *h, bool head,
                    bool connect)
{
    struct gy_h1_response res;
    struct gy_h1_error err = { 0, NULL };
    int rc = gy_h1_parse_response(buf, len, &res, h, lim, head, connect, &err);

    if (rc == GY_EAGAIN)
        return rc;
    if (rc < 0) {
        check_error(rc, &err, false);
        return rc;
    }
    CHECK((size_t)rc == res.head_len && res.head_len <= len);
    CHECK(res.status >= 100 && res.status <= 999 && (res.minor_version == 0 || res.minor_version == 1));
    CHECK(inside(res.reason, buf, len) && res.nheaders <= lim->max_headers);
    CHECK(res.body != GY_H1_BODY_EOF || !res.keep_alive);
    CHECK(!head || res.body == GY_H1_BODY_NONE || res.body == GY_H1_BODY_TUNNEL);
    for (unsigned i = 0; i < res.nheaders; i++)
        CHECK(h[i].name.len > 0 && inside(h[i].name, buf, len) && inside(h[i].value, buf, len));
    return rc;
}

/* A complete head also parses alone, and every shorter prefix of it needs more bytes. */
static void check_prefixes(const uint8_t *data, int rc, size_t cut, const struct gy_h1_limits *lim,
                           struct gy_header *h, bool is_request)
{
    size_t n = (size_t)rc;
    size_t ks[3] = { n, n - 1, cut % n };

    for (int i = 0; i < 3; i++) {
        char *p = copy(data, ks[i]);
        int r = is_request ? request(p, ks[i], lim, h) : response(p, ks[i], lim, h, false, false);
        free(p);
        CHECK(i == 0 ? r == rc : r == GY_EAGAIN);
    }
}

struct decoded {
    int rc; /* 0 done, 1 needs more, -1 error */
    size_t consumed, len;
    char *out;
};

static struct decoded decode(const uint8_t *data, size_t len, size_t split)
{
    struct decoded r = { 1, 0, 0, malloc(len + 1) };
    struct gy_h1_chunked d;
    size_t bounds[2] = { split, len };
    size_t start = 0;

    CHECK(r.out != NULL);
    gy_h1_chunked_init(&d);
    for (int k = 0; k < 2 && r.rc == 1; k++) {
        size_t plen = bounds[k] - start;
        char *piece = copy(data + start, plen);
        size_t off = 0;
        for (int calls = 0;; calls++) {
            struct gy_slice span;
            bool done;
            long n = gy_h1_chunked_decode(&d, piece + off, plen - off, &span, &done);
            CHECK(calls <= (int)plen + 2);
            if (n < 0) {
                CHECK(n == GY_EPARSE && span.len == 0 && !done);
                r.rc = -1;
                break;
            }
            CHECK((size_t)n <= plen - off);
            CHECK(span.len == 0 || (span.ptr >= piece + off && span.ptr + span.len <= piece + off + (size_t)n));
            memcpy(r.out + r.len, span.ptr, span.len);
            r.len += span.len;
            off += (size_t)n;
            if (done) {
                r.rc = 0;
                r.consumed = start + off;
                break;
            }
            if (n == 0 && span.len == 0) {
                CHECK(off == plen);
                break;
            }
        }
        free(piece);
        start = bounds[k];
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct gy_header h[MAX_HEADERS];
    const char *buf = (const char *)data;
    uint8_t b0 = size > 0 ? data[0] : 0, b1 = size > 1 ? data[1] : 0;
    struct gy_h1_limits tiny = {
        .max_request_line = 1 + b0 % 64,
        .max_head_bytes = 1 + (size_t)b1 * 2,
        .max_headers = b0 % 8,
    };
    size_t cut = size > 0 ? (size_t)b0 * size / 256 : 0;

    int rc = request(buf, size, &gy_h1_default_limits, h);
    if (rc > 0)
        check_prefixes(data, rc, cut, &gy_h1_default_limits, h, true);
    rc = request(buf, size, &tiny, h);
    if (rc > 0)
        check_prefixes(data, rc, cut, &tiny, h, true);

    rc = response(buf, size, &gy_h1_default_limits, h, b0 & 1, b0 & 2);
    if (rc > 0)
        check_prefixes(data, rc, cut, &gy_h1_default_limits, h, false);
    response(buf, size, &tiny, h, false, false);

    /* chunked: the same result whole and split; also after a head if there is one */
    struct decoded whole = decode(data, size, 0);
    struct decoded split = decode(data, size, cut);
    CHECK(whole.rc == split.rc);
    if (whole.rc >= 0) {
        CHECK(whole.len == split.len && memcmp(whole.out, split.out, whole.len) == 0);
        CHECK(whole.consumed == split.consumed);
    }
    free(whole.out);
    free(split.out);
    if (size > 1) {
        struct decoded tail = decode(data + 1, size - 1, cut > 0 ? cut - 1 : 0);
        free(tail.out);
    }
    return 0;
}
