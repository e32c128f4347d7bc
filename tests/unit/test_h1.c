/* Unit tests for the HTTP/1.1 codec (src/http/h1.c): table-driven vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "http/h1.h"

#define RAW(s) .raw = (s), .len = sizeof(s) - 1
#define MAXH 128

#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond))                                                  \
            fail_msg("case %zu (%s): %s", ci, tc->name, #cond);      \
    } while (0)

/* Exact-size heap copy so that ASan catches any read past len. */
static char *dup_exact(const char *s, size_t n)
{
    char *p = malloc(n > 0 ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

static bool slice_is(struct gy_slice s, const char *want)
{
    return s.len == strlen(want) && (s.len == 0 || memcmp(s.ptr, want, s.len) == 0);
}

static bool slice_inside(struct gy_slice s, const char *buf, size_t len)
{
    return s.len == 0 || (s.ptr >= buf && s.ptr + s.len <= buf + len);
}

static int parse_req(const char *raw, size_t len, struct gy_h1_request *req, struct gy_header *h,
                     const struct gy_h1_limits *lim, struct gy_h1_error *err)
{
    char *buf = dup_exact(raw, len);
    int rc = gy_h1_parse_request(buf, len, req, h, lim, err);
    if (rc > 0) {
        /* re-point slices at the caller's copy so they can be checked after free */
        assert_true((size_t)rc <= len);
        assert_true(slice_inside(req->method, buf, len) && slice_inside(req->target, buf, len));
        assert_true(slice_inside(req->path, buf, len) && slice_inside(req->query, buf, len));
        assert_true(slice_inside(req->host, buf, len));
        for (unsigned i = 0; i < req->nheaders; i++)
            assert_true(slice_inside(h[i].name, buf, len) && slice_inside(h[i].value, buf, len));
        ptrdiff_t shift = raw - buf;
#define REPOINT(s) ((s).ptr = (s).ptr != NULL ? (s).ptr + shift : NULL)
        REPOINT(req->method);
        REPOINT(req->target);
        REPOINT(req->path);
        REPOINT(req->query);
        REPOINT(req->host);
        for (unsigned i = 0; i < req->nheaders; i++) {
            REPOINT(h[i].name);
            REPOINT(h[i].value);
        }
    }
    free(buf);
    return rc;
}

/* ---- valid requests ---- */

struct req_case {
    const char *name;
    const char *raw;
    size_t len;
    const char *method, *target, *path, *query, *host;
    int minor;
    unsigned nheaders;
    enum gy_h1_body body;
    uint64_t cl;
    bool keep_alive, expect, upgrade, is_head, is_connect;
};

static const struct req_case valid_requests[] = {
    { "simple", RAW("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), "GET", "/", "/", "", "example.com", 1, 1,
      GY_H1_BODY_NONE, 0, true },
    { "query", RAW("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\n\r\n"), "GET", "/a/b?x=1&y=2", "/a/b", "x=1&y=2", "h",
      1, 1, GY_H1_BODY_NONE, 0, true },
    { "empty query", RAW("GET /a? HTTP/1.1\r\nHost: h\r\n\r\n"), "GET", "/a?", "/a", "", "h", 1, 1, GY_H1_BODY_NONE,
      0, true },
    { "LF only", RAW("GET /x HTTP/1.1\nHost: h\nA: b\n\n"), "GET", "/x", "/x", "", "h", 1, 2, GY_H1_BODY_NONE, 0,
      true },
    { "mixed line ends", RAW("GET /x HTTP/1.1\nHost: h\r\nA: b\n\r\n"), "GET", "/x", "/x", "", "h", 1, 2,
      GY_H1_BODY_NONE, 0, true },
    { "4 leading empty lines", RAW("\r\n\n\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), "GET", "/", "/", "", "h", 1, 1,
      GY_H1_BODY_NONE, 0, true },
    { "OWS and obs-text", RAW("GET / HTTP/1.1\r\nHost:h\r\nX-A: \t v\xe9\xff  x \t \r\nX-E:\r\nX-F:   \r\n\r\n"),
      "GET", "/", "/", "", "h", 1, 4, GY_H1_BODY_NONE, 0, true },
    { "HTTP/1.0 no Host", RAW("GET / HTTP/1.0\r\n\r\n"), "GET", "/", "/", "", "", 0, 0, GY_H1_BODY_NONE, 0, false },
    { "HTTP/1.0 keep-alive", RAW("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), "GET", "/", "/", "", "", 0, 1,
      GY_H1_BODY_NONE, 0, true },
    { "HTTP/1.0 keep-alive and close", RAW("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), "GET", "/",
      "/", "", "", 0, 1, GY_H1_BODY_NONE, 0, false },
    { "close", RAW("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"), "GET", "/", "/", "", "h", 1, 2,
      GY_H1_BODY_NONE, 0, false },
    { "close in list", RAW("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo ,CLOSE\r\n\r\n"), "GET", "/", "/", "", "h",
      1, 2, GY_H1_BODY_NONE, 0, false },
    { "close in 2nd Connection", RAW("GET / HTTP/1.1\r\nConnection: x-a\r\nHost: h\r\nconnection: close\r\n\r\n"),
      "GET", "/", "/", "", "h", 1, 3, GY_H1_BODY_NONE, 0, false },
    { "closed is not close", RAW("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed, xclose\r\n\r\n"), "GET", "/", "/",
      "", "h", 1, 2, GY_H1_BODY_NONE, 0, true },
    { "expect", RAW("POST /u HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 10\r\n\r\n"), "POST",
      "/u", "/u", "", "h", 1, 3, GY_H1_BODY_LENGTH, 10, true, true },
    { "expect 1.0 ignored", RAW("POST /u HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"), "POST",
      "/u", "/u", "", "", 0, 2, GY_H1_BODY_LENGTH, 1, false, false },
    { "upgrade", RAW("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"),
      "GET", "/ws", "/ws", "", "h", 1, 3, GY_H1_BODY_NONE, 0, true, false, true },
    { "upgrade header only", RAW("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"), "GET", "/ws", "/ws",
      "", "h", 1, 2, GY_H1_BODY_NONE, 0, true, false, false },
    { "connection upgrade only", RAW("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n"), "GET", "/ws",
      "/ws", "", "h", 1, 2, GY_H1_BODY_NONE, 0, true, false, false },
    { "upgrade in 1.0 ignored", RAW("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"), "GET", "/", "/",
      "", "", 0, 2, GY_H1_BODY_NONE, 0, false, false, false },
    { "HEAD", RAW("HEAD /i HTTP/1.1\r\nHost: h\r\n\r\n"), "HEAD", "/i", "/i", "", "h", 1, 1, GY_H1_BODY_NONE, 0, true,
      false, false, true },
    { "CONNECT", RAW("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), "CONNECT",
      "example.com:443", "", "", "example.com:443", 1, 1, GY_H1_BODY_NONE, 0, true, false, false, false, true },
    { "CONNECT IPv6 no Host", RAW("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n"), "CONNECT", "[::1]:8443", "", "",
      "[::1]:8443", 1, 0, GY_H1_BODY_NONE, 0, true, false, false, false, true },
    { "OPTIONS *", RAW("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), "OPTIONS", "*", "*", "", "h", 1, 1, GY_H1_BODY_NONE,
      0, true },
    { "absolute-form", RAW("GET http://example.com:8080/a/b?q=1 HTTP/1.1\r\nHost: other\r\n\r\n"), "GET",
      "http://example.com:8080/a/b?q=1", "/a/b", "q=1", "example.com:8080", 1, 1, GY_H1_BODY_NONE, 0, true },
    { "absolute-form no Host", RAW("GET https://h.example/x HTTP/1.1\r\n\r\n"), "GET", "https://h.example/x", "/x", "",
      "h.example", 1, 0, GY_H1_BODY_NONE, 0, true },
    { "absolute-form no path", RAW("GET http://h HTTP/1.0\r\n\r\n"), "GET", "http://h", "", "", "h", 0, 0,
      GY_H1_BODY_NONE, 0, false },
    { "absolute-form query only", RAW("GET HTTP://h?x HTTP/1.1\r\nHost: h\r\n\r\n"), "GET", "HTTP://h?x", "", "x", "h",
      1, 1, GY_H1_BODY_NONE, 0, true },
    { "OPTIONS absolute", RAW("OPTIONS http://h HTTP/1.1\r\nHost: h\r\n\r\n"), "OPTIONS", "http://h", "", "", "h", 1,
      1, GY_H1_BODY_NONE, 0, true },
    { "content-length 0", RAW("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"), "POST", "/", "/", "", "h",
      1, 2, GY_H1_BODY_NONE, 0, true },
    { "content-length zeros", RAW("POST / HTTP/1.1\r\nHost: h\r\ncontent-length:  007 \r\n\r\n"), "POST", "/", "/",
      "", "h", 1, 2, GY_H1_BODY_LENGTH, 7, true },
    { "content-length max", RAW("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n"), "PUT",
      "/", "/", "", "h", 1, 2, GY_H1_BODY_LENGTH, INT64_MAX, true },
    { "chunked", RAW("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"), "POST", "/", "/", "", "h",
      1, 2, GY_H1_BODY_CHUNKED, 0, true },
    { "chunked case and OWS", RAW("POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding:  Chunked \r\n\r\n"), "POST", "/",
      "/", "", "h", 1, 2, GY_H1_BODY_CHUNKED, 0, true },
    { "host IPv6 and port", RAW("GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n"), "GET", "/", "/", "",
      "[2001:db8::1]:8080", 1, 1, GY_H1_BODY_NONE, 0, true },
    { "empty Host", RAW("GET / HTTP/1.1\r\nHost:\r\n\r\n"), "GET", "/", "/", "", "", 1, 1, GY_H1_BODY_NONE, 0, true },
    { "extension method", RAW("M-SEARCH* /x HTTP/1.1\r\nHost: h\r\n\r\n"), "M-SEARCH*", "/x", "/x", "", "h", 1, 1,
      GY_H1_BODY_NONE, 0, true },
    { "token name chars", RAW("GET / HTTP/1.1\r\nHost: h\r\n!#$%&'*+-.^_`|~09az: v\r\n\r\n"), "GET", "/", "/", "",
      "h", 1, 2, GY_H1_BODY_NONE, 0, true },
};

static void test_valid_requests(void **state)
{
    (void)state;
    for (size_t ci = 0; ci < sizeof(valid_requests) / sizeof(valid_requests[0]); ci++) {
        const struct req_case *tc = &valid_requests[ci];
        struct gy_h1_request req;
        struct gy_header h[MAXH];
        struct gy_h1_error err = { 0, NULL };
        int rc = parse_req(tc->raw, tc->len, &req, h, &gy_h1_default_limits, &err);
        if (rc < 0)
            fail_msg("case %zu (%s): rc %d status %d %s", ci, tc->name, rc, err.status, err.reason);
        CHECK((size_t)rc == tc->len && req.head_len == tc->len);
        CHECK(slice_is(req.method, tc->method));
        CHECK(slice_is(req.target, tc->target));
        CHECK(slice_is(req.path, tc->path));
        CHECK(slice_is(req.query, tc->query));
        CHECK(slice_is(req.host, tc->host));
        CHECK(req.minor_version == tc->minor);
        CHECK(req.nheaders == tc->nheaders);
        CHECK(req.headers == h);
        CHECK(req.body == tc->body);
        CHECK(tc->body != GY_H1_BODY_LENGTH || req.content_length == tc->cl);
        CHECK(req.keep_alive == tc->keep_alive);
        CHECK(req.expect_continue == tc->expect);
        CHECK(req.upgrade == tc->upgrade);
        CHECK(req.is_head == tc->is_head);
        CHECK(req.is_connect == tc->is_connect);
    }
}

static void test_header_values(void **state)
{
    (void)state;
    static const char raw[] = "GET / HTTP/1.1\r\nHost:h\r\nX-A: \t v\xe9\xff  x \t \r\nX-E:\r\nX-F:   \r\n\r\n";
    struct gy_h1_request req;
    struct gy_header h[8];
    struct gy_h1_error err;

    assert_int_equal(gy_h1_parse_request(raw, sizeof(raw) - 1, &req, h, &gy_h1_default_limits, &err),
                     (int)sizeof(raw) - 1);
    assert_int_equal(req.nheaders, 4);
    assert_true(slice_is(h[0].name, "Host") && slice_is(h[0].value, "h"));
    assert_true(slice_is(h[1].name, "X-A") && slice_is(h[1].value, "v\xe9\xff  x"));
    assert_true(slice_is(h[2].name, "X-E") && h[2].value.len == 0);
    assert_true(slice_is(h[3].name, "X-F") && h[3].value.len == 0);
}

/* ---- rejected requests ---- */

struct bad_case {
    const char *name;
    const char *raw;
    size_t len;
    int status;
};

#define H11 "GET / HTTP/1.1\r\nHost: h\r\n"
#define P11 "POST / HTTP/1.1\r\nHost: h\r\n"

static const struct bad_case bad_requests[] = {
    /* framing and smuggling */
    { "CL+TE", RAW(P11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400 },
    { "TE+CL", RAW(P11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 400 },
    { "CL twice same", RAW(P11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), 400 },
    { "CL twice differ", RAW(P11 "Content-Length: 5\r\ncontent-length: 6\r\n\r\n"), 400 },
    { "CL list", RAW(P11 "Content-Length: 5, 5\r\n\r\n"), 400 },
    { "CL empty", RAW(P11 "Content-Length:\r\n\r\n"), 400 },
    { "CL spaces", RAW(P11 "Content-Length:   \r\n\r\n"), 400 },
    { "CL alpha", RAW(P11 "Content-Length: abc\r\n\r\n"), 400 },
    { "CL hex", RAW(P11 "Content-Length: 0x10\r\n\r\n"), 400 },
    { "CL negative", RAW(P11 "Content-Length: -1\r\n\r\n"), 400 },
    { "CL plus", RAW(P11 "Content-Length: +1\r\n\r\n"), 400 },
    { "CL inner space", RAW(P11 "Content-Length: 1 2\r\n\r\n"), 400 },
    { "CL overflow int64", RAW(P11 "Content-Length: 9223372036854775808\r\n\r\n"), 400 },
    { "CL overflow uint64", RAW(P11 "Content-Length: 18446744073709551616\r\n\r\n"), 400 },
    { "CL huge", RAW(P11 "Content-Length: 99999999999999999999999999\r\n\r\n"), 400 },
    { "TE gzip, chunked", RAW(P11 "Transfer-Encoding: gzip, chunked\r\n\r\n"), 501 },
    { "TE gzip then chunked headers", RAW(P11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"), 501 },
    { "TE chunked, gzip", RAW(P11 "Transfer-Encoding: chunked, gzip\r\n\r\n"), 400 },
    { "TE gzip", RAW(P11 "Transfer-Encoding: gzip\r\n\r\n"), 400 },
    { "TE chunked twice list", RAW(P11 "Transfer-Encoding: chunked, chunked\r\n\r\n"), 400 },
    { "TE chunked twice headers", RAW(P11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400 },
    { "TE empty", RAW(P11 "Transfer-Encoding:\r\n\r\n"), 400 },
    { "TE empty element", RAW(P11 "Transfer-Encoding: ,chunked\r\n\r\n"), 400 },
    { "TE trailing comma", RAW(P11 "Transfer-Encoding: chunked,\r\n\r\n"), 400 },
    { "TE chunked params", RAW(P11 "Transfer-Encoding: chunked;q=1\r\n\r\n"), 400 },
    { "TE xchunked", RAW(P11 "Transfer-Encoding: xchunked\r\n\r\n"), 400 },
    { "TE in HTTP/1.0", RAW("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400 },
    /* field syntax */
    { "obs-fold", RAW(H11 "X-A: a\r\n b\r\n\r\n"), 400 },
    { "obs-fold tab", RAW(H11 "X-A: a\r\n\tb\r\n\r\n"), 400 },
    { "space after start line", RAW("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), 400 },
    { "bare CR in value", RAW(H11 "X-A: a\rb\r\n\r\n"), 400 },
    { "bare CR at value end", RAW(H11 "X-A: a\r\r\n\r\n"), 400 },
    { "bare CR line", RAW(H11 "\rX: a\r\n\r\n"), 400 },
    { "bare CR in name", RAW(H11 "X\r: a\r\n\r\n"), 400 },
    { "bare CR before request", RAW("\rGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "bare CR in request line", RAW("GET /\r HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "bare CR after version", RAW("GET / HTTP/1.1\r\r\nHost: h\r\n\r\n"), 400 },
    { "NUL in value", RAW(H11 "X-A: a\0b\r\n\r\n"), 400 },
    { "CTL in value", RAW(H11 "X-A: a\x01" "b\r\n\r\n"), 400 },
    { "DEL in value", RAW(H11 "X-A: a\x7f\r\n\r\n"), 400 },
    { "ESC in value", RAW(H11 "X-A: \x1b[0m\r\n\r\n"), 400 },
    { "space before colon", RAW("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), 400 },
    { "tab before colon", RAW(H11 "X-A\t: a\r\n\r\n"), 400 },
    { "empty name", RAW(H11 ": a\r\n\r\n"), 400 },
    { "no colon", RAW(H11 "X-A\r\n\r\n"), 400 },
    { "space in name", RAW(H11 "X A: a\r\n\r\n"), 400 },
    { "name starts with non-token", RAW(H11 "@X: a\r\n\r\n"), 400 },
    { "non-token name", RAW(H11 "X(A): a\r\n\r\n"), 400 },
    { "obs-text name", RAW(H11 "X\xc3\xa9: a\r\n\r\n"), 400 },
    { "NUL in name", RAW(H11 "X\0A: a\r\n\r\n"), 400 },
    /* request line */
    { "method non-token", RAW("G@T / HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "method empty", RAW(" / HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "method tab", RAW("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "method NUL", RAW("GE\0T / HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "TLS hello", RAW("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"), 400 },
    { "target empty", RAW("GET  HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "target space", RAW("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "target CTL", RAW("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "target tab", RAW("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "target DEL", RAW("GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "target obs-text", RAW("GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "target NUL", RAW("GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "target fragment", RAW("GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "absolute fragment", RAW("GET http://h/#b HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "target relative", RAW("GET a/b HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "asterisk GET", RAW("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "authority GET", RAW("GET h:443 HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "CONNECT origin", RAW("CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "CONNECT absolute", RAW("CONNECT http://h:443/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "CONNECT no port", RAW("CONNECT h HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "CONNECT empty port", RAW("CONNECT h: HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "CONNECT bad port", RAW("CONNECT h:44a HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "CONNECT no host", RAW("CONNECT :443 HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "CONNECT userinfo", RAW("CONNECT u@h:443 HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "absolute empty authority", RAW("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "absolute userinfo", RAW("GET http://u:p@h/x HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "absolute no slashes", RAW("GET http:h/x HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "absolute bad scheme", RAW("GET 1http://h/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "version 2.0", RAW("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505 },
    { "version 1.2", RAW("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 505 },
    { "version 0.9", RAW("GET / HTTP/0.9\r\n\r\n"), 505 },
    { "version 10.0", RAW("GET / HTTP/10.0\r\n\r\n"), 505 },
    { "version 1.10", RAW("GET / HTTP/1.10\r\n\r\n"), 505 },
    { "version letters", RAW("GET / HTTP/a.b\r\nHost: h\r\n\r\n"), 400 },
    { "version no dot", RAW("GET / HTTP/11\r\nHost: h\r\n\r\n"), 400 },
    { "version 2", RAW("GET / HTTP/2\r\nHost: h\r\n\r\n"), 400 },
    { "version lower", RAW("GET / http/1.1\r\nHost: h\r\n\r\n"), 400 },
    { "version garbage", RAW("GET / FOO\r\nHost: h\r\n\r\n"), 400 },
    { "version trailing space", RAW("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"), 400 },
    { "version missing", RAW("GET /\r\nHost: h\r\n\r\n"), 400 },
    { "method only", RAW("GET\r\nHost: h\r\n\r\n"), 400 },
    { "version junk after", RAW("GET / HTTP/1.1x\r\nHost: h\r\n\r\n"), 400 },
    { "version 1.x", RAW("GET / HTTP/1.x\r\nHost: h\r\n\r\n"), 400 },
    { "5 empty lines", RAW("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
    /* Host */
    { "no Host", RAW("GET / HTTP/1.1\r\n\r\n"), 400 },
    { "no Host with others", RAW("GET / HTTP/1.1\r\nX-Host: h\r\n\r\n"), 400 },
    { "two Host", RAW("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400 },
    { "two Host 1.0", RAW("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), 400 },
    { "Host with space", RAW("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400 },
    { "Host with userinfo", RAW("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400 },
    { "Host with slash", RAW("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400 },
};

static void test_bad_requests(void **state)
{
    (void)state;
    for (size_t ci = 0; ci < sizeof(bad_requests) / sizeof(bad_requests[0]); ci++) {
        const struct bad_case *tc = &bad_requests[ci];
        struct gy_h1_request req;
        struct gy_header h[MAXH];
        struct gy_h1_error err = { 0, NULL };
        int rc = parse_req(tc->raw, tc->len, &req, h, &gy_h1_default_limits, &err);
        if (rc != GY_EPARSE || err.status != tc->status)
            fail_msg("case %zu (%s): rc %d status %d, want %d", ci, tc->name, rc, err.status, tc->status);
        CHECK(err.reason != NULL && err.reason[0] != '\0');
    }
}

/* Every byte value at every position of a value, a target, a name and a method (this crosses
 * the 8-byte fast paths at all alignments). */
static void test_char_classes(void **state)
{
    (void)state;
    char buf[256];
    struct gy_h1_request req;
    struct gy_header h[8];
    struct gy_h1_error err;

    for (int c = 0; c < 256; c++) {
        bool tchar = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
                     (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
        bool vchar = c == '\t' || (c >= 0x20 && c != 0x7f);
        bool tgt = c > 0x20 && c < 0x7f && c != '#';
        for (int k = 0; k < 20; k++) {
            int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\nX: %.*s", k, "aaaaaaaaaaaaaaaaaaaa");
            buf[n++] = (char)c;
            n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%.*s\r\n\r\n", 19 - k, "aaaaaaaaaaaaaaaaaaaa");
            int rc = gy_h1_parse_request(buf, (size_t)n, &req, h, &gy_h1_default_limits, &err);
            if (c == '\n' && k == 19) /* the LF ends the value: a shorter, valid head */
                vchar = rc > 0 && rc < n;
            if ((rc > 0) != vchar || (rc < 0 && err.status != 400))
                fail_msg("value byte 0x%02x at %d: rc %d", c, k, rc);
            bool trimmed = (c == ' ' || c == '\t' || c == '\n') && (k == 0 || k == 19); /* OWS */
            if (rc > 0 && !trimmed && (h[1].value.len != 20 || h[1].value.ptr[k] != (char)c))
                fail_msg("value byte 0x%02x at %d: bad value", c, k);

            n = snprintf(buf, sizeof(buf), "GET /%.*s", k, "aaaaaaaaaaaaaaaaaaaa");
            buf[n++] = (char)c;
            n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%.*s HTTP/1.1\r\nHost: h\r\n\r\n", 19 - k,
                          "aaaaaaaaaaaaaaaaaaaa");
            rc = gy_h1_parse_request(buf, (size_t)n, &req, h, &gy_h1_default_limits, &err);
            if ((rc > 0) != tgt || (rc < 0 && err.status != 400))
                fail_msg("target byte 0x%02x at %d: rc %d", c, k, rc);
        }
        if (c == ':')
            continue;
        int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\nX");
        buf[n++] = (char)c;
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "Y: v\r\n\r\n");
        int rc = gy_h1_parse_request(buf, (size_t)n, &req, h, &gy_h1_default_limits, &err);
        if ((rc > 0) != tchar || (rc < 0 && err.status != 400))
            fail_msg("name byte 0x%02x: rc %d", c, rc);
        n = snprintf(buf, sizeof(buf), "G");
        buf[n++] = (char)c;
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "T / HTTP/1.1\r\nHost: h\r\n\r\n");
        rc = gy_h1_parse_request(buf, (size_t)n, &req, h, &gy_h1_default_limits, &err);
        if ((rc > 0) != tchar || (rc < 0 && err.status != 400))
            fail_msg("method byte 0x%02x: rc %d", c, rc);
    }
}

/* ---- limits ---- */

static int parse_str(const char *s, size_t n, const struct gy_h1_limits *lim, struct gy_h1_error *err)
{
    struct gy_h1_request req;
    struct gy_header h[MAXH];
    return parse_req(s, n, &req, h, lim, err);
}

static void test_limit_request_line(void **state)
{
    (void)state;
    struct gy_h1_limits lim = { .max_request_line = 40, .max_head_bytes = 1000, .max_headers = 10 };
    char line[64], buf[128];
    struct gy_h1_error err;

    for (size_t n = 30; n <= 45; n++) {
        /* "GET /aaaa HTTP/1.1" with exactly n bytes */
        size_t path = n - strlen("GET  HTTP/1.1");
        snprintf(line, sizeof(line), "GET /%.*s HTTP/1.1", (int)(path - 1),
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_int_equal(strlen(line), n);
        int len = snprintf(buf, sizeof(buf), "%s\r\nHost: h\r\n\r\n", line);
        int rc = parse_str(buf, (size_t)len, &lim, &err);
        if (n <= 40) {
            assert_int_equal(rc, len);
            /* incomplete but within the limit, including a final CR */
            assert_int_equal(parse_str(buf, n, &lim, &err), GY_EAGAIN);
            assert_int_equal(parse_str(buf, n + 1, &lim, &err), GY_EAGAIN);
        } else {
            assert_int_equal(rc, GY_ETOOBIG);
            assert_int_equal(err.status, 414);
            /* also while incomplete: no line end within the limit */
            assert_int_equal(parse_str(buf, n, &lim, &err), GY_ETOOBIG);
            assert_int_equal(err.status, 414);
            assert_int_equal(parse_str(buf, 41, &lim, &err), GY_ETOOBIG);
            assert_int_equal(parse_str(buf, 40, &lim, &err), GY_EAGAIN);
        }
    }
    /* LF-only line end at the limit */
    static const char lf[] = "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\nHost: h\n\n";
    lim.max_request_line = (size_t)(strchr(lf, '\n') - lf);
    assert_int_equal(parse_str(lf, sizeof(lf) - 1, &lim, &err), (int)sizeof(lf) - 1);
    lim.max_request_line--;
    assert_int_equal(parse_str(lf, sizeof(lf) - 1, &lim, &err), GY_ETOOBIG);
    assert_int_equal(err.status, 414);
}

static void test_limit_headers(void **state)
{
    (void)state;
    struct gy_h1_limits lim = { .max_request_line = 100, .max_head_bytes = 10000, .max_headers = 5 };
    char buf[1024];
    struct gy_h1_error err;

    for (unsigned n = 1; n <= 8; n++) {
        int len = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\n");
        for (unsigned i = 1; i < n; i++)
            len += snprintf(buf + len, sizeof(buf) - (size_t)len, "X-%u: v\r\n", i);
        len += snprintf(buf + len, sizeof(buf) - (size_t)len, "\r\n");
        int rc = parse_str(buf, (size_t)len, &lim, &err);
        if (n <= 5) {
            assert_int_equal(rc, len);
        } else {
            assert_int_equal(rc, GY_ETOOBIG);
            assert_int_equal(err.status, 431);
        }
    }
    /* exactly max_headers field lines whose head is still incomplete: need more */
    lim.max_headers = 2;
    static const char two[] = "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n";
    assert_int_equal(parse_str(two, sizeof(two) - 1, &lim, &err), GY_EAGAIN);
    static const char three[] = "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\nC: d\r\n";
    assert_int_equal(parse_str(three, sizeof(three) - 1, &lim, &err), GY_ETOOBIG);
    assert_int_equal(err.status, 431);
}

static void test_limit_head_bytes(void **state)
{
    (void)state;
    static const char raw[] = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: 0123456789\r\n\r\n";
    size_t n = sizeof(raw) - 1;
    struct gy_h1_limits lim = { .max_request_line = 100, .max_head_bytes = n, .max_headers = 10 };
    struct gy_h1_error err;

    assert_int_equal(parse_str(raw, n, &lim, &err), (int)n);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(parse_str(raw, k, &lim, &err), GY_EAGAIN);

    lim.max_head_bytes = n - 1;
    assert_int_equal(parse_str(raw, n, &lim, &err), GY_ETOOBIG);
    assert_int_equal(err.status, 431);
    /* also while incomplete: max_head_bytes bytes and no end yet */
    assert_int_equal(parse_str(raw, n - 1, &lim, &err), GY_ETOOBIG);
    assert_int_equal(err.status, 431);
    assert_int_equal(parse_str(raw, n - 2, &lim, &err), GY_EAGAIN);

    /* a start line longer than the whole head limit */
    lim.max_head_bytes = 10;
    assert_int_equal(parse_str(raw, n, &lim, &err), GY_ETOOBIG);
    assert_int_equal(err.status, 431);
    assert_int_equal(parse_str(raw, 12, &lim, &err), GY_ETOOBIG);

    /* a body or a second request after the head does not count */
    static const char body[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n"
                               "0123456789012345678901234567890123456789012345678901234567890123456789";
    lim.max_head_bytes = sizeof("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n") - 1;
    assert_int_equal(parse_str(body, sizeof(body) - 1, &lim, &err), (int)lim.max_head_bytes);
}

/* ---- incomplete input ---- */

static const char *const complete_requests[] = {
    "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "\r\n\nPOST /upload?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
    "GET /x HTTP/1.1\nHost: h\nA: b\n\n",
    "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    "GET http://a.example/p?q HTTP/1.0\r\nX-A:\t v \r\nX-B:\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
};

static void test_incomplete_requests(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(complete_requests) / sizeof(complete_requests[0]); i++) {
        const char *s = complete_requests[i];
        size_t n = strlen(s);
        struct gy_h1_error err;
        assert_int_equal(parse_str(s, n, &gy_h1_default_limits, &err), (int)n);
        for (size_t k = 0; k < n; k++) {
            int rc = parse_str(s, k, &gy_h1_default_limits, &err);
            if (rc != GY_EAGAIN)
                fail_msg("request %zu prefix %zu: rc %d status %d %s", i, k, rc, err.status, err.reason);
        }
    }
}

/* Junk is refused before the head is complete, so a non-HTTP client does not sit on a buffer. */
static void test_early_rejection(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
    } v[] = {
        { "\x16\x03\x01", 3 }, { "GET\t", 4 }, { "GET /\x01", 6 }, { "GET / HTTQ", 10 }, { "\r\r", 2 },
        { "GET /a\rb", 8 },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct gy_h1_error err;
        assert_int_equal(parse_str(v[i].s, v[i].n, &gy_h1_default_limits, &err), GY_EPARSE);
        assert_int_equal(err.status, 400);
    }
}

static void test_pipelined(void **state)
{
    (void)state;
    static const char raw[] = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                              "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
                              "\r\nHEAD /c HTTP/1.1\nHost: h\n\n"
                              "GET /d HTTP/1.1\r\nHo";
    const char *p = raw, *end = raw + sizeof(raw) - 1;
    static const char *const paths[] = { "/a", "/b", "/c" };
    struct gy_h1_request req;
    struct gy_header h[MAXH];
    struct gy_h1_error err;

    for (size_t i = 0; i < 3; i++) {
        int rc = gy_h1_parse_request(p, (size_t)(end - p), &req, h, &gy_h1_default_limits, &err);
        assert_true(rc > 0);
        assert_int_equal((size_t)rc, req.head_len);
        assert_true(slice_is(req.path, paths[i]));
        p += rc;
        if (req.body == GY_H1_BODY_LENGTH)
            p += req.content_length;
    }
    assert_true(req.is_head);
    assert_int_equal(gy_h1_parse_request(p, (size_t)(end - p), &req, h, &gy_h1_default_limits, &err), GY_EAGAIN);
}

/* ---- responses ---- */

struct res_case {
    const char *name;
    const char *raw;
    size_t len;
    bool was_head, was_connect;
    int minor, status;
    const char *reason;
    enum gy_h1_body body;
    uint64_t cl;
    bool keep_alive;
    unsigned nheaders;
};

static const struct res_case valid_responses[] = {
    { "length", RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), false, false, 1, 200, "OK", GY_H1_BODY_LENGTH, 5,
      true, 1 },
    { "eof", RAW("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"), false, false, 1, 200, "OK", GY_H1_BODY_EOF, 0, false, 1 },
    { "length 0", RAW("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), false, false, 1, 200, "OK", GY_H1_BODY_NONE, 0,
      true, 1 },
    { "chunked", RAW("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"), false, false, 1, 404,
      "Not Found", GY_H1_BODY_CHUNKED, 0, true, 1 },
    { "1.0", RAW("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n"), false, false, 0, 200, "OK", GY_H1_BODY_LENGTH, 5,
      false, 1 },
    { "1.0 keep-alive", RAW("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\n"), false, false,
      0, 200, "OK", GY_H1_BODY_LENGTH, 5, true, 2 },
    { "close", RAW("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n"), false, false, 1, 200, "OK",
      GY_H1_BODY_LENGTH, 5, false, 2 },
    { "HEAD length", RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), true, false, 1, 200, "OK", GY_H1_BODY_NONE,
      5, true, 1 },
    { "HEAD chunked", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), true, false, 1, 200, "OK",
      GY_H1_BODY_NONE, 0, true, 1 },
    { "HEAD no length", RAW("HTTP/1.1 200 OK\r\n\r\n"), true, false, 1, 200, "OK", GY_H1_BODY_NONE, 0, true, 0 },
    { "204", RAW("HTTP/1.1 204 No Content\r\n\r\n"), false, false, 1, 204, "No Content", GY_H1_BODY_NONE, 0, true, 0 },
    { "304 with length", RAW("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"), false, false, 1, 304,
      "Not Modified", GY_H1_BODY_NONE, 100, true, 1 },
    { "100", RAW("HTTP/1.1 100 Continue\r\n\r\n"), false, false, 1, 100, "Continue", GY_H1_BODY_NONE, 0, true, 0 },
    { "103", RAW("HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"), false, false, 1, 103, "Early Hints",
      GY_H1_BODY_NONE, 0, true, 1 },
    { "101", RAW("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"), false,
      false, 1, 101, "Switching Protocols", GY_H1_BODY_TUNNEL, 0, false, 2 },
    { "CONNECT 200", RAW("HTTP/1.1 200 Connection Established\r\n\r\n"), false, true, 1, 200,
      "Connection Established", GY_H1_BODY_TUNNEL, 0, false, 0 },
    { "CONNECT 407", RAW("HTTP/1.1 407 Proxy Auth\r\nContent-Length: 3\r\n\r\n"), false, true, 1, 407, "Proxy Auth",
      GY_H1_BODY_LENGTH, 3, true, 1 },
    { "CONNECT 502 eof", RAW("HTTP/1.1 502 Bad Gateway\r\n\r\n"), false, true, 1, 502, "Bad Gateway", GY_H1_BODY_EOF,
      0, false, 0 },
    { "no reason", RAW("HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n"), false, false, 1, 200, "", GY_H1_BODY_LENGTH, 1,
      true, 1 },
    { "empty reason", RAW("HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n"), false, false, 1, 200, "", GY_H1_BODY_LENGTH,
      1, true, 1 },
    { "reason obs-text tab", RAW("HTTP/1.1 200 O\tK \xe9\nContent-Length: 1\n\n"), false, false, 1, 200,
      "O\tK \xe9", GY_H1_BODY_LENGTH, 1, true, 1 },
    { "status 999", RAW("HTTP/1.1 999 Odd\r\nContent-Length: 1\r\n\r\n"), false, false, 1, 999, "Odd",
      GY_H1_BODY_LENGTH, 1, true, 1 },
    { "Host ignored", RAW("HTTP/1.1 200 OK\r\nHost: a b\r\nHost: c\r\nContent-Length: 1\r\n\r\n"), false, false, 1,
      200, "OK", GY_H1_BODY_LENGTH, 1, true, 3 },
};

static void test_valid_responses(void **state)
{
    (void)state;
    for (size_t ci = 0; ci < sizeof(valid_responses) / sizeof(valid_responses[0]); ci++) {
        const struct res_case *tc = &valid_responses[ci];
        struct gy_h1_response res;
        struct gy_header h[MAXH];
        struct gy_h1_error err = { 0, NULL };
        char *buf = dup_exact(tc->raw, tc->len);
        int rc = gy_h1_parse_response(buf, tc->len, &res, h, &gy_h1_default_limits, tc->was_head, tc->was_connect,
                                      &err);
        if (rc < 0)
            fail_msg("case %zu (%s): rc %d status %d %s", ci, tc->name, rc, err.status, err.reason);
        CHECK((size_t)rc == tc->len && res.head_len == tc->len);
        CHECK(res.minor_version == tc->minor);
        CHECK(res.status == tc->status);
        CHECK(slice_is(res.reason, tc->reason));
        CHECK(res.body == tc->body);
        CHECK(res.content_length == tc->cl);
        CHECK(res.keep_alive == tc->keep_alive);
        CHECK(res.nheaders == tc->nheaders && res.headers == h);
        for (size_t k = 0; k < tc->len; k++) {
            rc = gy_h1_parse_response(buf, k, &res, h, &gy_h1_default_limits, tc->was_head, tc->was_connect, &err);
            if (rc != GY_EAGAIN)
                fail_msg("case %zu (%s): prefix %zu rc %d", ci, tc->name, k, rc);
        }
        free(buf);
    }
}

#define R200 "HTTP/1.1 200 OK\r\n"

static const struct bad_case bad_responses[] = {
    { "CL+TE", RAW(R200 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 502 },
    { "CL+TE 204", RAW("HTTP/1.1 204 No\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 502 },
    { "CL twice", RAW(R200 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), 502 },
    { "CL list", RAW(R200 "Content-Length: 5,5\r\n\r\n"), 502 },
    { "CL bad", RAW(R200 "Content-Length: x\r\n\r\n"), 502 },
    { "TE gzip", RAW(R200 "Transfer-Encoding: gzip\r\n\r\n"), 502 },
    { "TE gzip, chunked", RAW(R200 "Transfer-Encoding: gzip, chunked\r\n\r\n"), 502 },
    { "TE chunked twice", RAW(R200 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 502 },
    { "TE in 1.0", RAW("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), 502 },
    { "version 2.0", RAW("HTTP/2.0 200 OK\r\n\r\n"), 502 },
    { "version 1.2", RAW("HTTP/1.2 200 OK\r\n\r\n"), 502 },
    { "version lower", RAW("http/1.1 200 OK\r\n\r\n"), 502 },
    { "ICY", RAW("ICY 200 OK\r\n\r\n"), 502 },
    { "short status", RAW("HTTP/1.1 20 OK\r\n\r\n"), 502 },
    { "long status", RAW("HTTP/1.1 2000 OK\r\n\r\n"), 502 },
    { "status 099", RAW("HTTP/1.1 099 X\r\n\r\n"), 502 },
    { "status alpha", RAW("HTTP/1.1 2x0 X\r\n\r\n"), 502 },
    { "double space", RAW("HTTP/1.1  200 OK\r\n\r\n"), 502 },
    { "no space after status", RAW("HTTP/1.1 200OK\r\n\r\n"), 502 },
    { "no status", RAW("HTTP/1.1\r\n\r\n"), 502 },
    { "NUL in reason", RAW("HTTP/1.1 200 O\0K\r\n\r\n"), 502 },
    { "bare CR in reason", RAW("HTTP/1.1 200 O\rK\r\n\r\n"), 502 },
    { "leading empty line", RAW("\r\nHTTP/1.1 200 OK\r\n\r\n"), 502 },
    { "obs-fold", RAW(R200 "X-A: a\r\n b\r\n\r\n"), 502 },
    { "space before colon", RAW(R200 "X-A : a\r\n\r\n"), 502 },
    { "bare CR", RAW(R200 "X-A: a\rb\r\n\r\n"), 502 },
    { "CTL in value", RAW(R200 "X-A: \x02\r\n\r\n"), 502 },
    { "empty name", RAW(R200 ":a\r\n\r\n"), 502 },
};

static void test_bad_responses(void **state)
{
    (void)state;
    for (size_t ci = 0; ci < sizeof(bad_responses) / sizeof(bad_responses[0]); ci++) {
        const struct bad_case *tc = &bad_responses[ci];
        struct gy_h1_response res;
        struct gy_header h[MAXH];
        struct gy_h1_error err = { 0, NULL };
        char *buf = dup_exact(tc->raw, tc->len);
        int rc = gy_h1_parse_response(buf, tc->len, &res, h, &gy_h1_default_limits, false, false, &err);
        free(buf);
        if (rc != GY_EPARSE || err.status != tc->status)
            fail_msg("case %zu (%s): rc %d status %d, want %d", ci, tc->name, rc, err.status, tc->status);
        CHECK(err.reason != NULL);
    }
}

static void test_response_limits(void **state)
{
    (void)state;
    struct gy_h1_limits lim = { .max_request_line = 15, .max_head_bytes = 40, .max_headers = 2 };
    struct gy_h1_response res;
    struct gy_header h[4];
    struct gy_h1_error err;
    static const char ok[] = "HTTP/1.1 200 OK\r\nA: b\r\nC: d\r\n\r\n";
    static const char many[] = "HTTP/1.1 200 OK\r\nA: b\r\nC: d\r\nE: f\r\n\r\n";
    static const char longline[] = "HTTP/1.1 200 OKK\r\n\r\n";
    static const char big[] = "HTTP/1.1 200 OK\r\nA: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n\r\n";

    assert_int_equal(gy_h1_parse_response(ok, sizeof(ok) - 1, &res, h, &lim, false, false, &err), (int)sizeof(ok) - 1);
    assert_int_equal(gy_h1_parse_response(many, sizeof(many) - 1, &res, h, &lim, false, false, &err), GY_ETOOBIG);
    assert_int_equal(err.status, 502);
    assert_int_equal(gy_h1_parse_response(longline, sizeof(longline) - 1, &res, h, &lim, false, false, &err),
                     GY_ETOOBIG);
    assert_int_equal(err.status, 502);
    assert_int_equal(gy_h1_parse_response(longline, 16, &res, h, &lim, false, false, &err), GY_ETOOBIG);
    assert_int_equal(gy_h1_parse_response(big, sizeof(big) - 1, &res, h, &lim, false, false, &err), GY_ETOOBIG);
    assert_int_equal(err.status, 502);
    assert_int_equal(gy_h1_parse_response(big, 40, &res, h, &lim, false, false, &err), GY_ETOOBIG);
    assert_int_equal(gy_h1_parse_response(big, 39, &res, h, &lim, false, false, &err), GY_EAGAIN);
    /* early rejection of a non-HTTP upstream */
    assert_int_equal(gy_h1_parse_response("SSH-2.0", 7, &res, h, &lim, false, false, &err), GY_EPARSE);
    assert_int_equal(err.status, 502);
}

/* A 1xx has no body: the final response follows it in the same buffer. */
static void test_response_interim(void **state)
{
    (void)state;
    static const char raw[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\nLink: </s>\n\n"
                              "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    const char *p = raw, *end = raw + sizeof(raw) - 1;
    static const int want[] = { 100, 103, 200 };
    struct gy_h1_response res;
    struct gy_header h[4];
    struct gy_h1_error err;

    for (int i = 0; i < 3; i++) {
        int rc = gy_h1_parse_response(p, (size_t)(end - p), &res, h, &gy_h1_default_limits, false, false, &err);
        assert_true(rc > 0);
        assert_int_equal(res.status, want[i]);
        assert_int_equal(res.body, i < 2 ? GY_H1_BODY_NONE : GY_H1_BODY_LENGTH);
        p += rc;
    }
    assert_int_equal(end - p, 2);
}

/* ---- chunked decoding ---- */

struct chunk_case {
    const char *name;
    const char *raw;
    size_t len;
    const char *data;  /* NULL: must fail */
    size_t data_len;
    bool done;
    size_t consumed;   /* 0: all of raw */
};

#define CHUNK_OK(n, r, d) { n, RAW(r), d, sizeof(d) - 1, true, 0 }
#define CHUNK_BAD(n, r) { n, RAW(r), NULL, 0, false, 0 }

static const struct chunk_case chunk_cases[] = {
    CHUNK_OK("one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"),
    CHUNK_OK("several", "3\r\nabc\r\n4\r\ndefg\r\n1\r\nh\r\n0\r\n\r\n", "abcdefgh"),
    CHUNK_OK("LF only", "5\nhello\n0\n\n", "hello"),
    CHUNK_OK("upper hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
    CHUNK_OK("lower hex", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
    CHUNK_OK("16 digits", "000000000000000A\r\n0123456789\r\n0000000000000000\r\n\r\n", "0123456789"),
    CHUNK_OK("empty body", "0\r\n\r\n", ""),
    CHUNK_OK("extension", "5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello"),
    CHUNK_OK("extensions", "5 ; a = b ;c;d=\"q \\\" \\\\ s\"\t;e\r\nhello\r\n0\r\n\r\n", "hello"),
    CHUNK_OK("LF after extensions", "5;a\nhello\n3;b=c\nabc\n0;d=\"e\"\n\n", "helloabc"),
    CHUNK_OK("trailers", "5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\nZ: \t1 2\xff\r\n\r\n", "hello"),
    CHUNK_OK("trailers LF", "5\nhello\n0\nX-Sum: abc\n\n", "hello"),
    CHUNK_OK("binary data", "4\r\n\r\n\0\xff\r\n0\r\n\r\n", "\r\n\0\xff"),
    { "next message", RAW("2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), "hi", 2, true, 12 },
    { "incomplete", RAW("5\r\nhel"), "hel", 3, false, 0 },
    { "incomplete trailer", RAW("0\r\nX: y\r\n"), "", 0, false, 0 },
    CHUNK_BAD("empty size", "\r\nhello\r\n0\r\n\r\n"),
    CHUNK_BAD("non-hex", "x\r\n"),
    CHUNK_BAD("junk after size", "5x\r\nhello\r\n0\r\n\r\n"),
    CHUNK_BAD("0x prefix", "0x5\r\nhello\r\n"),
    CHUNK_BAD("negative", "-5\r\n"),
    CHUNK_BAD("plus", "+5\r\n"),
    CHUNK_BAD("leading space", " 5\r\n"),
    CHUNK_BAD("trailing space", "5 \r\nhello\r\n"),
    CHUNK_BAD("17 digits", "00000000000000005\r\nhello\r\n"),
    CHUNK_BAD("over 2^62", "4000000000000001\r\n"),
    CHUNK_BAD("2^64-1", "FFFFFFFFFFFFFFFF\r\n"),
    CHUNK_BAD("empty ext", "5;\r\nhello\r\n"),
    CHUNK_BAD("ext no name", "5;=x\r\nhello\r\n"),
    CHUNK_BAD("ext empty value", "5;a=\r\nhello\r\n"),
    CHUNK_BAD("ext bad char", "5;a@b\r\nhello\r\n"),
    CHUNK_BAD("ext NUL", "5;a\0\r\nhello\r\n"),
    CHUNK_BAD("ext bare CR", "5;a\rb\r\nhello\r\n"),
    CHUNK_BAD("CR in quoted ext", "5;a=\"x;y\r\"\r\nhello\r\n0\r\n\r\n"),
    CHUNK_BAD("ext unterminated quote", "5;a=\"b\r\nhello\r\n"),
    CHUNK_BAD("ext junk after quote", "5;a=\"b\"c\r\nhello\r\n"),
    CHUNK_BAD("bare CR in size line", "5\rhello\r\n"),
    CHUNK_BAD("data too long", "5\r\nhelloX\r\n0\r\n\r\n"),
    CHUNK_BAD("data CR junk", "5\r\nhello\rX"),
    CHUNK_BAD("data no CRLF", "5\r\nhello0\r\n\r\n"),
    CHUNK_BAD("junk instead of CRLF", "2\r\nhiX2\r\nyo\r\n0\r\n\r\n"),
    CHUNK_BAD("CR junk instead of CRLF", "2\r\nhi\r2\r\nyo\r\n0\r\n\r\n"),
    CHUNK_BAD("trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n"),
    CHUNK_BAD("trailer leading space", "0\r\n X: a\r\n\r\n"),
    CHUNK_BAD("trailer no colon", "0\r\nX\r\n\r\n"),
    CHUNK_BAD("trailer empty name", "0\r\n: a\r\n\r\n"),
    CHUNK_BAD("trailer space before colon", "0\r\nX : a\r\n\r\n"),
    CHUNK_BAD("trailer NUL", "0\r\nX: a\0\r\n\r\n"),
    CHUNK_BAD("trailer bare CR", "0\r\nX: a\rb\r\n\r\n"),
    CHUNK_BAD("final bare CR", "0\r\n\rX"),
};

struct chunk_result {
    int rc; /* 0 done, 1 wants more, -1 error */
    char *data;
    size_t data_len;
    size_t consumed;
};

/* Feeds `raw` to a fresh decoder in pieces cut at cuts[0..ncuts), each piece an exact heap copy. */
static struct chunk_result feed_chunked(const char *raw, size_t len, const size_t *cuts, size_t ncuts)
{
    struct chunk_result r = { 1, malloc(len + 1), 0, 0 };
    struct gy_h1_chunked d;
    size_t start = 0;

    assert_non_null(r.data);
    gy_h1_chunked_init(&d);
    for (size_t c = 0; c <= ncuts && r.rc == 1; c++) {
        size_t stop = c < ncuts ? cuts[c] : len;
        size_t plen = stop - start;
        char *piece = dup_exact(raw + start, plen);
        size_t off = 0;
        for (;;) {
            struct gy_slice data;
            bool done;
            long n = gy_h1_chunked_decode(&d, piece + off, plen - off, &data, &done);
            if (n < 0) {
                assert_int_equal(n, GY_EPARSE);
                assert_int_equal(data.len, 0);
                r.rc = -1;
                break;
            }
            assert_true((size_t)n <= plen - off);
            assert_true(data.len == 0 || (data.ptr >= piece + off && data.ptr + data.len <= piece + off + (size_t)n));
            memcpy(r.data + r.data_len, data.ptr, data.len);
            r.data_len += data.len;
            off += (size_t)n;
            if (done) {
                r.rc = 0;
                r.consumed = start + off;
                /* further calls consume nothing */
                n = gy_h1_chunked_decode(&d, piece + off, plen - off, &data, &done);
                assert_true(n == 0 && data.len == 0 && done);
                break;
            }
            if (n == 0 && data.len == 0) {
                assert_int_equal(off, plen); /* nothing consumed only when the piece is used up */
                break;
            }
        }
        free(piece);
        start = stop;
    }
    return r;
}

static void check_chunk_result(const struct chunk_case *tc, size_t ci, struct chunk_result r, const char *how)
{
    if (tc->data == NULL) {
        if (r.rc != -1)
            fail_msg("case %zu (%s) %s: rc %d, want error", ci, tc->name, how, r.rc);
        return;
    }
    if (r.rc != (tc->done ? 0 : 1))
        fail_msg("case %zu (%s) %s: rc %d", ci, tc->name, how, r.rc);
    if (tc->done)
        CHECK(r.consumed == (tc->consumed ? tc->consumed : tc->len));
    CHECK(r.data_len == tc->data_len && memcmp(r.data, tc->data, r.data_len) == 0);
}

static void test_chunked_vectors(void **state)
{
    (void)state;
    for (size_t ci = 0; ci < sizeof(chunk_cases) / sizeof(chunk_cases[0]); ci++) {
        const struct chunk_case *tc = &chunk_cases[ci];
        struct chunk_result r = feed_chunked(tc->raw, tc->len, NULL, 0);
        check_chunk_result(tc, ci, r, "whole");
        free(r.data);
    }
}

/* The same outcome for every way of splitting the input: at every position, byte by byte, at random. */
static void test_chunked_splits(void **state)
{
    (void)state;
    size_t cuts[4096];

    srand(12345);
    for (size_t ci = 0; ci < sizeof(chunk_cases) / sizeof(chunk_cases[0]); ci++) {
        const struct chunk_case *tc = &chunk_cases[ci];
        struct chunk_result r;
        for (size_t i = 0; i <= tc->len; i++) {
            cuts[0] = i;
            r = feed_chunked(tc->raw, tc->len, cuts, 1);
            check_chunk_result(tc, ci, r, "split once");
            free(r.data);
        }
        for (size_t i = 0; i < tc->len; i++)
            cuts[i] = i + 1;
        r = feed_chunked(tc->raw, tc->len, cuts, tc->len > 0 ? tc->len - 1 : 0);
        check_chunk_result(tc, ci, r, "byte by byte");
        free(r.data);
        for (int round = 0; round < 50; round++) {
            size_t n = 0, pos = 0;
            while (n < 16) {
                pos += (size_t)(rand() % 7);
                if (pos > tc->len)
                    break;
                cuts[n++] = pos;
            }
            r = feed_chunked(tc->raw, tc->len, cuts, n);
            check_chunk_result(tc, ci, r, "random");
            free(r.data);
        }
    }
}

/* A larger body with random chunk sizes and extensions, decoded under random splits. */
static void test_chunked_large(void **state)
{
    (void)state;
    enum { BODY = 20000 };
    char *body = malloc(BODY), *enc = malloc(BODY * 2 + 1024);
    size_t elen = 0, pos = 0;
    size_t *cuts = malloc(sizeof(size_t) * (BODY * 2 + 1024));

    srand(777);
    for (size_t i = 0; i < BODY; i++)
        body[i] = (char)rand();
    while (pos < BODY) {
        size_t n = 1 + (size_t)(rand() % 700);
        if (n > BODY - pos)
            n = BODY - pos;
        elen += gy_h1_chunk_header(enc + elen, n);
        if (rand() % 3 == 0) { /* replace CRLF by an extension and CRLF */
            elen -= 2;
            memcpy(enc + elen, ";x=\"1\"\r\n", 8);
            elen += 8;
        }
        memcpy(enc + elen, body + pos, n);
        elen += n;
        memcpy(enc + elen, "\r\n", 2);
        elen += 2;
        pos += n;
    }
    memcpy(enc + elen, "0\r\nT: v\r\n\r\n", 11);
    elen += 11;

    for (int round = 0; round < 200; round++) {
        size_t n = 0, p = 0;
        for (;;) {
            p += (size_t)(rand() % (round < 100 ? 5 : 3000));
            if (p > elen)
                break;
            cuts[n++] = p;
        }
        struct chunk_result r = feed_chunked(enc, elen, cuts, n);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.consumed, elen);
        assert_int_equal(r.data_len, BODY);
        assert_memory_equal(r.data, body, BODY);
        free(r.data);
    }
    free(cuts);
    free(enc);
    free(body);
}

static void test_chunked_limits(void **state)
{
    (void)state;
    static char buf[20000];
    struct chunk_result r;
    size_t n;

    /* extension: the size line may be 4096 bytes, not more */
    for (size_t total = 4095; total <= 4097; total++) {
        /* "1;a=" + value + "\r\n" == total bytes */
        n = 0;
        memcpy(buf, "1;a=", 4);
        n = 4;
        memset(buf + n, 'v', total - 6);
        n += total - 6;
        memcpy(buf + n, "\r\nx\r\n0\r\n\r\n", 10);
        n += 10;
        r = feed_chunked(buf, n, NULL, 0);
        assert_int_equal(r.rc, total <= 4096 ? 0 : -1);
        free(r.data);
    }
    /* trailer section: 8 KiB */
    for (size_t total = 8191; total <= 8193; total++) {
        memcpy(buf, "0\r\nX: ", 6);
        n = 6;
        size_t vlen = total - 3 /* "X: " */ - 2 /* CRLF */ - 2 /* final CRLF */;
        memset(buf + n, 'v', vlen);
        n += vlen;
        memcpy(buf + n, "\r\n\r\n", 4);
        n += 4;
        r = feed_chunked(buf, n, NULL, 0);
        assert_int_equal(r.rc, total <= 8192 ? 0 : -1);
        free(r.data);
    }
    /* 2^62 exactly is accepted (and then needs data) */
    r = feed_chunked("4000000000000000\r\nab", 20, NULL, 0);
    assert_int_equal(r.rc, 1);
    assert_int_equal(r.data_len, 2);
    free(r.data);
}

static void test_chunked_errors_sticky(void **state)
{
    (void)state;
    struct gy_h1_chunked d;
    struct gy_slice data;
    bool done;

    gy_h1_chunked_init(&d);
    assert_int_equal(gy_h1_chunked_decode(&d, "z", 1, &data, &done), GY_EPARSE);
    assert_int_equal(gy_h1_chunked_decode(&d, "0\r\n\r\n", 5, &data, &done), GY_EPARSE);
    assert_false(done);
    /* empty input: nothing consumed, nothing decoded */
    gy_h1_chunked_init(&d);
    assert_int_equal(gy_h1_chunked_decode(&d, "", 0, &data, &done), 0);
    assert_int_equal(data.len, 0);
    assert_false(done);
    /* one span per call: the second chunk waits for the next call */
    static const char two[] = "2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n";
    long n = gy_h1_chunked_decode(&d, two, sizeof(two) - 1, &data, &done);
    assert_int_equal(n, 10);
    assert_true(slice_is(data, "ab") && !done);
    n = gy_h1_chunked_decode(&d, two + 10, sizeof(two) - 11, &data, &done);
    assert_int_equal(n, (long)sizeof(two) - 11);
    assert_true(slice_is(data, "cd") && done);
}

/* ---- helpers ---- */

static void test_chunk_header(void **state)
{
    (void)state;
    static const struct {
        uint64_t n;
        const char *want;
    } v[] = {
        { 0, "0\r\n" },         { 1, "1\r\n" },       { 15, "f\r\n" },
        { 16, "10\r\n" },       { 0x1a2b, "1a2b\r\n" }, { UINT64_MAX, "ffffffffffffffff\r\n" },
        { (uint64_t)1 << 62, "4000000000000000\r\n" },
    };
    char out[20];
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        memset(out, 'X', sizeof(out));
        size_t n = gy_h1_chunk_header(out, v[i].n);
        assert_int_equal(n, strlen(v[i].want));
        assert_memory_equal(out, v[i].want, n);
        /* and it decodes back */
        if (v[i].n <= 10) {
            struct gy_h1_chunked d;
            struct gy_slice data;
            bool done;
            gy_h1_chunked_init(&d);
            assert_int_equal(gy_h1_chunked_decode(&d, out, n, &data, &done), (long)n);
            assert_int_equal(d.remaining, v[i].n);
        }
    }
}

static void test_hop_by_hop(void **state)
{
    (void)state;
    static const char *const yes[] = { "Connection", "keep-alive", "Proxy-Connection", "TE", "te", "Trailer",
                                       "TRANSFER-ENCODING", "Upgrade", "Proxy-Authenticate" };
    static const char *const no[] = { "Proxy-Authorization", "Host", "Content-Length", "Trailers", "T",
                                      "Connections", "Keep-Alive2", "X-Upgrade", "", "Tf" };
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(gy_h1_is_hop_by_hop(gy_slice_cstr(yes[i])));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(gy_h1_is_hop_by_hop(gy_slice_cstr(no[i])));
}

static void test_connection_lists(void **state)
{
    (void)state;
    const struct gy_header h[] = {
        { GY_SLICE_LIT("Connection"), GY_SLICE_LIT("keep-alive, X-Foo") },
        { GY_SLICE_LIT("X-Bar"), GY_SLICE_LIT("x") },
        { GY_SLICE_LIT("connection"), GY_SLICE_LIT(" ,x-bar ,,\tUpgrade\t") },
        { GY_SLICE_LIT("X-Connection"), GY_SLICE_LIT("x-baz") },
        { GY_SLICE_LIT("Connection"), GY_SLICE_NULL },
    };
    unsigned n = sizeof(h) / sizeof(h[0]);

    assert_true(gy_h1_connection_lists(h, n, GY_SLICE_LIT("x-foo")));
    assert_true(gy_h1_connection_lists(h, n, GY_SLICE_LIT("X-BAR")));
    assert_true(gy_h1_connection_lists(h, n, GY_SLICE_LIT("upgrade")));
    assert_true(gy_h1_connection_lists(h, n, GY_SLICE_LIT("Keep-Alive")));
    assert_false(gy_h1_connection_lists(h, n, GY_SLICE_LIT("x-baz")));
    assert_false(gy_h1_connection_lists(h, n, GY_SLICE_LIT("x-fo")));
    assert_false(gy_h1_connection_lists(h, n, GY_SLICE_LIT("")));
    assert_false(gy_h1_connection_lists(h, 1, GY_SLICE_LIT("upgrade")));
    assert_false(gy_h1_connection_lists(NULL, 0, GY_SLICE_LIT("close")));
}

static void test_reason_and_limits(void **state)
{
    (void)state;
    assert_string_equal(gy_h1_reason(200), "OK");
    assert_string_equal(gy_h1_reason(404), "Not Found");
    assert_string_equal(gy_h1_reason(431), "Request Header Fields Too Large");
    assert_string_equal(gy_h1_reason(502), "Bad Gateway");
    assert_string_equal(gy_h1_reason(505), "HTTP Version Not Supported");
    assert_string_equal(gy_h1_reason(299), "");
    assert_string_equal(gy_h1_reason(-1), "");
    assert_int_equal(gy_h1_default_limits.max_request_line, 8192);
    assert_int_equal(gy_h1_default_limits.max_head_bytes, 32768);
    assert_int_equal(gy_h1_default_limits.max_headers, 100);
}

/* Default limits with a head of exactly 100 headers and 32 KiB. */
static void test_default_limits_exact(void **state)
{
    (void)state;
    size_t cap = 40000;
    char *buf = malloc(cap);
    struct gy_header *h = malloc(sizeof(*h) * 100);
    struct gy_h1_request req;
    struct gy_h1_error err;
    /* Host and 99 headers "X-nn: <pad>\r\n" so that the head is exactly 32768 bytes */
    int n = snprintf(buf, cap, "GET / HTTP/1.1\r\nHost: h\r\n");
    size_t fixed = (size_t)n + 99 * strlen("X-00: \r\n") + 2;
    size_t pad = 32768 - fixed, each = pad / 99, extra = pad % 99;
    for (int i = 1; i < 100; i++) {
        size_t w = each + (i == 1 ? extra : 0);
        n += snprintf(buf + n, cap - (size_t)n, "X-%02d: ", i);
        memset(buf + n, 'v', w);
        n += (int)w;
        n += snprintf(buf + n, cap - (size_t)n, "\r\n");
    }
    n += snprintf(buf + n, cap - (size_t)n, "\r\n");
    assert_int_equal(n, 32768);
    assert_int_equal(gy_h1_parse_request(buf, (size_t)n, &req, h, &gy_h1_default_limits, &err), 32768);
    assert_int_equal(req.nheaders, 100);
    free(h);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_requests),
        cmocka_unit_test(test_header_values),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_char_classes),
        cmocka_unit_test(test_limit_request_line),
        cmocka_unit_test(test_limit_headers),
        cmocka_unit_test(test_limit_head_bytes),
        cmocka_unit_test(test_incomplete_requests),
        cmocka_unit_test(test_early_rejection),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_valid_responses),
        cmocka_unit_test(test_bad_responses),
        cmocka_unit_test(test_response_limits),
        cmocka_unit_test(test_response_interim),
        cmocka_unit_test(test_chunked_vectors),
        cmocka_unit_test(test_chunked_splits),
        cmocka_unit_test(test_chunked_large),
        cmocka_unit_test(test_chunked_limits),
        cmocka_unit_test(test_chunked_errors_sticky),
        cmocka_unit_test(test_chunk_header),
        cmocka_unit_test(test_hop_by_hop),
        cmocka_unit_test(test_connection_lists),
        cmocka_unit_test(test_reason_and_limits),
        cmocka_unit_test(test_default_limits_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
