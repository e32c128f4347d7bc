/* A blocking HTTP/1.1 client on our own codec; see client.h. */
#include "http/client.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "core/time.h"
#include "http/h1.h"
#include "net/sock.h"

#define TICK_MS 200             /* how often a waiting request asks `cancel` */
#define HEAD_MAX 65536          /* the answer's head */
#define REQUEST_HEAD_MAX 16384
#define READ_CHUNK 16384

struct target {
    char authority[300];        /* host[:port] as in the URL: the Host header */
    char host[256];             /* without brackets */
    char port[6];
    const char *path;           /* into the URL: "/..." or "?..." or "" */
    size_t path_len;            /* up to a fragment */
};

static int fail(char *why, size_t whylen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *why, size_t whylen, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return rc;
}

static int parse_url(const char *url, struct target *t, char *why, size_t whylen)
{
    if (strncasecmp(url, "https://", 8) == 0)
        return fail(why, whylen, GY_EUNSUPPORTED, "https:// is not supported here: the proxy reaches the control "
                                                  "plane over plain http:// (%.100s)", url);
    if (strncasecmp(url, "http://", 7) != 0)
        return fail(why, whylen, GY_EINVAL, "not an http:// URL: \"%.100s\"", url);
    const char *a = url + 7, *end = a + strcspn(a, "/?#");
    size_t alen = (size_t)(end - a), hlen;
    const char *port = NULL;

    if (alen == 0 || alen >= sizeof(t->authority))
        return fail(why, whylen, GY_EINVAL, "no usable host in \"%.100s\"", url);
    memcpy(t->authority, a, alen);
    t->authority[alen] = '\0';
    if (strchr(t->authority, '@') != NULL)
        return fail(why, whylen, GY_EINVAL, "user info in a URL is not supported: \"%.100s\"", url);
    if (t->authority[0] == '[') {
        const char *rb = strchr(t->authority, ']');
        if (rb == NULL || (rb[1] != '\0' && rb[1] != ':'))
            return fail(why, whylen, GY_EINVAL, "bad IPv6 host in \"%.100s\"", url);
        hlen = (size_t)(rb - t->authority - 1);
        memcpy(t->host, t->authority + 1, hlen);
        port = rb[1] == ':' ? rb + 2 : NULL;
    } else {
        const char *colon = strchr(t->authority, ':');
        hlen = colon != NULL ? (size_t)(colon - t->authority) : alen;
        memcpy(t->host, t->authority, hlen);
        port = colon != NULL ? colon + 1 : NULL;
    }
    t->host[hlen] = '\0';
    if (hlen == 0)
        return fail(why, whylen, GY_EINVAL, "no host in \"%.100s\"", url);
    if (port == NULL)
        port = "80";
    size_t plen = strlen(port);
    long pn = 0;
    for (size_t i = 0; i < plen && pn <= 65535; i++)
        pn = port[i] >= '0' && port[i] <= '9' ? pn * 10 + (port[i] - '0') : 65536;
    if (plen == 0 || plen > 5 || pn < 1 || pn > 65535)
        return fail(why, whylen, GY_EINVAL, "bad port in \"%.100s\"", url);
    memcpy(t->port, port, plen + 1);
    t->path = end;
    t->path_len = strcspn(end, "#");
    for (size_t i = 0; i < t->path_len; i++)
        if ((unsigned char)end[i] <= 0x20 || (unsigned char)end[i] == 0x7f)
            return fail(why, whylen, GY_EINVAL, "spaces or control characters in \"%.100s\"", url);
    return 0;
}

/* Waits until fd is ready for `events`: 0, or GY_ETIMEDOUT at `until`, GY_ECANCELED when the
 * caller says so, GY_EIO when poll fails. */
static int wait_fd(int fd, short events, uint64_t until, const struct gy_http_request *req)
{
    for (;;) {
        if (req->cancel != NULL && req->cancel(req->cancel_arg))
            return GY_ECANCELED;
        uint64_t now = gy_now_ms();
        if (now >= until)
            return GY_ETIMEDOUT;
        struct pollfd p = { .fd = fd, .events = events };
        int n = poll(&p, 1, (int)(until - now < TICK_MS ? until - now : TICK_MS));
        if (n > 0)
            return 0; /* readable, writable, or an error the next call reports */
        if (n < 0 && errno != EINTR)
            return GY_EIO;
    }
}

static int open_conn(const struct target *t, const struct gy_http_request *req, uint64_t until, char *why,
                     size_t whylen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
    uint64_t per = req->connect_timeout_ms ? req->connect_timeout_ms : 5000;
    int rc = getaddrinfo(t->host, t->port, &hints, &res), fd = -1, err = 0;

    if (rc != 0)
        return fail(why, whylen, GY_EIO, "cannot resolve %s: %s", t->host,
                    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if ((fd = gy_connect(ai->ai_addr, ai->ai_addrlen)) < 0) {
            err = errno;
            continue;
        }
        uint64_t now = gy_now_ms();
        int w = wait_fd(fd, POLLOUT, now + per < until ? now + per : until, req);
        if (w == 0 && (err = gy_connect_result(fd)) == 0)
            break;
        close(fd);
        fd = -1;
        if (w == GY_ECANCELED) {
            freeaddrinfo(res);
            return fail(why, whylen, GY_ECANCELED, "cancelled");
        }
        if (w != 0)
            err = ETIMEDOUT;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return fail(why, whylen, GY_EIO, "cannot connect to %s: %s", t->authority, strerror(err ? err : EIO));
    return fd;
}

static int send_all(int fd, const char *p, size_t n, uint64_t until, const struct gy_http_request *req)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = wait_fd(fd, POLLOUT, until, req);
            if (w != 0)
                return w;
        } else {
            return GY_EIO;
        }
    }
    return 0;
}

void gy_http_answer_init(struct gy_http_answer *a, bool request_was_head)
{
    /* the head, and what came with it in the same read */
    *a = (struct gy_http_answer){ .head = { .max = HEAD_MAX + READ_CHUNK }, .is_head = request_was_head };
}

void gy_http_answer_free(struct gy_http_answer *a)
{
    gy_bytes_free(&a->head);
}

static int body_feed(struct gy_http_answer *a, const char *p, size_t n, struct gy_bytes *out)
{
    switch (a->body) {
    case GY_H1_BODY_NONE:
        a->done = true;
        return 0;
    case GY_H1_BODY_LENGTH: {
        size_t take = n < a->left ? n : (size_t)a->left;
        if (take > 0 && !gy_bytes_append(out, p, take))
            return GY_ETOOBIG;
        a->left -= take;
        a->done = a->left == 0;
        return 0;
    }
    case GY_H1_BODY_CHUNKED:
        while (n > 0 && !a->done) {
            struct gy_slice d;
            long k = gy_h1_chunked_decode(&a->chunked, p, n, &d, &a->done);
            if (k < 0)
                return GY_EPARSE;
            if (d.len > 0 && !gy_bytes_append(out, d.ptr, d.len))
                return GY_ETOOBIG;
            if (k == 0)
                break;
            p += k;
            n -= (size_t)k;
        }
        return 0;
    case GY_H1_BODY_EOF:
        return n > 0 && !gy_bytes_append(out, p, n) ? GY_ETOOBIG : 0;
    case GY_H1_BODY_TUNNEL:
        break;
    }
    return GY_EPARSE;
}

int gy_http_answer_feed(struct gy_http_answer *a, const char *p, size_t n, struct gy_bytes *out, char *why,
                        size_t whylen)
{
    static const struct gy_h1_limits lim = { 8192, HEAD_MAX, 100 };

    if (a->done)
        return 0; /* bytes after the answer: ignored (the request said Connection: close) */
    if (a->head_done) {
        int rc = body_feed(a, p, n, out);
        return rc == 0 ? 0 : rc == GY_ETOOBIG ? fail(why, whylen, rc, "answer over %zu bytes", out->max)
                                              : fail(why, whylen, rc, "malformed answer: bad chunked body");
    }
    if (!gy_bytes_append(&a->head, p, n))
        return fail(why, whylen, GY_ETOOBIG, "answer head over %d bytes", HEAD_MAX);
    for (;;) {
        struct gy_header hdrs[100];
        struct gy_h1_response res;
        struct gy_h1_error err;
        int rc = gy_h1_parse_response(a->head.p, a->head.len, &res, hdrs, &lim, a->is_head, false, &err);
        if (rc == GY_EAGAIN)
            return 0;
        if (rc < 0)
            return fail(why, whylen, GY_EPARSE, "malformed answer: %s", err.reason);
        size_t rest = a->head.len - res.head_len;
        if (res.body == GY_H1_BODY_TUNNEL || res.status == 101)
            return fail(why, whylen, GY_EPARSE, "malformed answer: an upgrade nobody asked for");
        if (res.status < 200) { /* 1xx: the final answer follows */
            memmove(a->head.p, a->head.p + res.head_len, rest + 1);
            a->head.len = rest;
            continue;
        }
        a->head_done = true;
        a->status = res.status;
        a->body = res.body;
        a->left = res.content_length;
        gy_h1_chunked_init(&a->chunked);
        a->done = a->body == GY_H1_BODY_NONE || (a->body == GY_H1_BODY_LENGTH && a->left == 0);
        return rest > 0 && !a->done ? gy_http_answer_feed(a, a->head.p + res.head_len, rest, out, why, whylen) : 0;
    }
}

int gy_http_answer_eof(struct gy_http_answer *a, char *why, size_t whylen)
{
    if (a->done)
        return 0;
    if (a->head_done && a->body == GY_H1_BODY_EOF) {
        a->done = true;
        return 0;
    }
    return fail(why, whylen, GY_ECLOSED, a->head_done ? "connection closed in the middle of the answer"
                                                      : "connection closed before an answer");
}

static int exchange(int fd, const struct target *t, const struct gy_http_request *req, uint64_t until, int *status,
                    struct gy_bytes *out, char *why, size_t whylen)
{
    char head[REQUEST_HEAD_MAX];
    int n = snprintf(head, sizeof(head), "%s %s%.*s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
                                         "Accept: application/json\r\nConnection: close\r\n",
                     req->method, t->path[0] == '/' ? "" : "/", (int)t->path_len, t->path, t->authority,
                     req->user_agent ? req->user_agent : "gyrus");
    if (n > 0 && (size_t)n < sizeof(head) && req->body != NULL)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                      req->content_type ? req->content_type : "application/octet-stream", req->body_len);
    if (n > 0 && (size_t)n < sizeof(head))
        n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    if (n <= 0 || (size_t)n >= sizeof(head))
        return fail(why, whylen, GY_ETOOBIG, "request head over %d bytes", REQUEST_HEAD_MAX);
    int rc = send_all(fd, head, (size_t)n, until, req);
    if (rc == 0 && req->body != NULL)
        rc = send_all(fd, req->body, req->body_len, until, req);
    if (rc != 0 && rc != GY_EIO)
        return rc;
    /* A failed send may still leave an answer to read (a server that refuses the body early). */
    char buf[READ_CHUNK];
    struct gy_http_answer r;
    int res = 0;
    gy_http_answer_init(&r, strcmp(req->method, "HEAD") == 0);
    while (res == 0 && !r.done) {
        ssize_t k = recv(fd, buf, sizeof(buf), 0);
        if (k > 0) {
            res = gy_http_answer_feed(&r, buf, (size_t)k, out, why, whylen);
        } else if (k == 0) {
            res = gy_http_answer_eof(&r, why, whylen);
        } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            int w = errno == EINTR ? 0 : wait_fd(fd, POLLIN, until, req);
            if (w != 0)
                res = w;
        } else {
            res = fail(why, whylen, GY_EIO, "%s", strerror(errno));
        }
    }
    gy_http_answer_free(&r);
    if (res == GY_ETIMEDOUT || res == GY_ECANCELED || res == GY_EIO) {
        if (res == GY_ETIMEDOUT)
            fail(why, whylen, res, "timed out after %u ms", req->timeout_ms ? req->timeout_ms : 30000);
        else if (res == GY_ECANCELED)
            fail(why, whylen, res, "cancelled");
        else if (why[0] == '\0')
            fail(why, whylen, res, "%s", strerror(errno));
        return res;
    }
    if (res == 0)
        *status = r.status;
    return res;
}

int gy_http_fetch(const struct gy_http_request *req, int *status, struct gy_bytes *out, char *why, size_t whylen)
{
    struct target t;
    uint64_t until = gy_now_ms() + (req->timeout_ms ? req->timeout_ms : 30000);
    int rc, fd;

    why[0] = '\0';
    *status = 0;
    if ((rc = parse_url(req->url, &t, why, whylen)) != 0)
        return rc;
    if ((fd = open_conn(&t, req, until, why, whylen)) < 0)
        return fd;
    rc = exchange(fd, &t, req, until, status, out, why, whylen);
    close(fd);
    return rc;
}

char *gy_url_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 1), *p = out;

    if (out == NULL)
        return NULL;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-._~", c)) {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = '\0';
    return out;
}
