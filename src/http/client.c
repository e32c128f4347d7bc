/* A blocking HTTP/1.1 client on our own codec; see client.h. */
#include "http/client.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
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
#include "tls/tls.h"

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
    bool tls;                   /* https:// */
};

/* A connection: the socket, and TLS over it for https://. */
struct conn {
    int fd;
    SSL *ssl;
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
    t->tls = strncasecmp(url, "https://", 8) == 0;
    if (!t->tls && strncasecmp(url, "http://", 7) != 0)
        return fail(why, whylen, GY_EINVAL, "not an http:// or https:// URL: \"%.100s\"", url);
    const char *a = url + (t->tls ? 8 : 7), *end = a + strcspn(a, "/?#");
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
        port = t->tls ? "443" : "80";
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

struct lookup {
    bool done;
    int status;
    struct ares_addrinfo *res;
};

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct lookup *l = arg;

    (void)timeouts;
    l->done = true;
    l->status = status;
    l->res = res;
}

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;

static void ares_start(void)
{
    ares_library_init(ARES_LIB_INIT_ALL);
}

/* One round of waiting on c-ares' sockets, at most TICK_MS and never past `until`. */
static int ares_wait(ares_channel ch, uint64_t until)
{
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    struct pollfd p[ARES_GETSOCK_MAXNUM];
    /* the bits as unsigned: c-ares' ARES_GETSOCK_WRITABLE shifts a signed 1 into the sign bit */
    unsigned bits = (unsigned)ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
    nfds_t n = 0;

    for (unsigned i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
        short ev = (short)((bits & (1u << i) ? POLLIN : 0) | (bits & (1u << (i + ARES_GETSOCK_MAXNUM)) ? POLLOUT : 0));
        if (ev != 0)
            p[n++] = (struct pollfd){ .fd = socks[i], .events = ev };
    }
    uint64_t now = gy_now_ms(), left = until > now ? until - now : 0;
    struct timeval tick = { .tv_sec = 0, .tv_usec = (left < TICK_MS ? (long)left : TICK_MS) * 1000 }, tv;
    const struct timeval *t = ares_timeout(ch, &tick, &tv);
    int k = poll(p, n, (int)(t->tv_sec * 1000 + t->tv_usec / 1000));
    if (k < 0 && errno != EINTR)
        return GY_EIO;
    if (k <= 0) {
        ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* c-ares' own timeouts and retries */
        return 0;
    }
    for (nfds_t i = 0; i < n; i++)
        ares_process_fd(ch, p[i].revents & (POLLIN | POLLERR | POLLHUP) ? p[i].fd : ARES_SOCKET_BAD,
                        p[i].revents & POLLOUT ? p[i].fd : ARES_SOCKET_BAD);
    return 0;
}

/*
 * The host's addresses for t->port, by c-ares (/etc/hosts, then the resolvers of resolv.conf):
 * unlike getaddrinfo, the lookup is bounded by `until` and ends when the caller cancels, so that
 * a resolver that does not answer cannot hold up a proxy's shutdown. *out: free with
 * ares_freeaddrinfo.
 */
static int resolve(const struct target *t, const struct gy_http_request *req, uint64_t until,
                   struct ares_addrinfo **out, char *why, size_t whylen)
{
    struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct lookup l = { 0 };
    ares_channel ch;
    int rc = 0;

    pthread_once(&ares_once, ares_start);
    int arc = ares_init(&ch);
    if (arc != ARES_SUCCESS)
        return fail(why, whylen, GY_EIO, "cannot resolve %s: no resolver: %s", t->host, ares_strerror(arc));
    ares_getaddrinfo(ch, t->host, t->port, &hints, on_addrinfo, &l);
    while (!l.done && rc == 0) {
        if (req->cancel != NULL && req->cancel(req->cancel_arg))
            rc = fail(why, whylen, GY_ECANCELED, "cancelled");
        else if (gy_now_ms() >= until)
            rc = fail(why, whylen, GY_ETIMEDOUT, "cannot resolve %s: timed out", t->host);
        else if (ares_wait(ch, until) != 0)
            rc = fail(why, whylen, GY_EIO, "cannot resolve %s: %s", t->host, strerror(errno));
    }
    ares_destroy(ch); /* a lookup still running ends here (its callback gets ARES_EDESTRUCTION) */
    if (rc == 0 && l.status != ARES_SUCCESS)
        rc = fail(why, whylen, GY_EIO, "cannot resolve %s: %s", t->host, ares_strerror(l.status));
    if (rc == 0 && (l.res == NULL || l.res->nodes == NULL))
        rc = fail(why, whylen, GY_EIO, "cannot resolve %s: no address", t->host);
    if (rc != 0) {
        ares_freeaddrinfo(l.res);
        return rc;
    }
    *out = l.res;
    return 0;
}

static int open_conn(const struct target *t, const struct gy_http_request *req, uint64_t until, char *why,
                     size_t whylen)
{
    struct ares_addrinfo *res = NULL;
    uint64_t per = req->connect_timeout_ms ? req->connect_timeout_ms : 5000;
    int rc = resolve(t, req, until, &res, why, whylen), fd = -1, err = 0;

    if (rc != 0)
        return rc;
    for (struct ares_addrinfo_node *ai = res->nodes; ai != NULL; ai = ai->ai_next) {
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
            ares_freeaddrinfo(res);
            return fail(why, whylen, GY_ECANCELED, "cancelled");
        }
        if (w != 0)
            err = ETIMEDOUT;
    }
    ares_freeaddrinfo(res);
    if (fd < 0)
        return fail(why, whylen, GY_EIO, "cannot connect to %s: %s", t->authority, strerror(err ? err : EIO));
    return fd;
}

/* After an SSL call returned rc: the poll events to wait for before trying again, or 0 (failed,
 * or the peer closed: SSL_get_error tells). */
static short tls_wants(SSL *ssl, int rc)
{
    int e = SSL_get_error(ssl, rc);

    return e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
}

/* The TLS handshake for https://: the server's chain must verify against req->ca_file (or the
 * system's trust store) and name the URL's host (DNS name or IP address). */
static int tls_start(struct conn *c, const struct target *t, const struct gy_http_request *req, uint64_t until,
                     char *why, size_t whylen)
{
    char err[300];
    SSL_CTX *ctx = gy_tls_endpoint_client(req->ca_file, err, sizeof(err));
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, t->host, ip) == 1 || inet_pton(AF_INET6, t->host, ip) == 1;

    if (ctx == NULL)
        return fail(why, whylen, GY_ECONFIG, "%s", err);
    if (req->cert_file != NULL && req->key_file != NULL &&
        gy_tls_endpoint_client_cert(ctx, req->cert_file, req->key_file, err, sizeof(err)) != 0) {
        SSL_CTX_free(ctx); /* a certificate that does not load is not presented (none yet, a renewal mid-write) */
        if ((ctx = gy_tls_endpoint_client(req->ca_file, err, sizeof(err))) == NULL)
            return fail(why, whylen, GY_ECONFIG, "%s", err);
    }
    c->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL keeps its reference */
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
        (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), t->host) != 1
               : SSL_set1_host(c->ssl, t->host) != 1 || SSL_set_tlsext_host_name(c->ssl, t->host) != 1)) {
        ERR_clear_error();
        return fail(why, whylen, GY_ENOMEM, "cannot set up TLS for %s", t->authority);
    }
    SSL_set_connect_state(c->ssl);
    for (;;) {
        int rc = SSL_do_handshake(c->ssl);
        if (rc == 1)
            return 0;
        short ev = tls_wants(c->ssl, rc);
        if (ev == 0)
            break;
        int w = wait_fd(c->fd, ev, until, req);
        if (w == GY_ECANCELED)
            return fail(why, whylen, w, "cancelled");
        if (w != 0)
            return fail(why, whylen, w, "TLS handshake with %s: %s", t->authority,
                        w == GY_ETIMEDOUT ? "timed out" : strerror(errno));
    }
    long v = SSL_get_verify_result(c->ssl);
    unsigned long e = ERR_peek_error();
    if (v != X509_V_OK)
        fail(why, whylen, GY_EIO, "TLS handshake with %s: the server's certificate does not verify: %s", t->authority,
             X509_verify_cert_error_string(v));
    else
        fail(why, whylen, GY_EIO, "TLS handshake with %s failed: %s", t->authority,
             e != 0 ? ERR_reason_error_string(e) : "the connection closed");
    ERR_clear_error();
    return GY_EIO;
}

static int send_all(struct conn *c, const char *p, size_t n, uint64_t until, const struct gy_http_request *req)
{
    int fd = c->fd;

    while (n > 0) {
        if (c->ssl != NULL) {
            int k = SSL_write(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
            short ev = k > 0 ? 0 : tls_wants(c->ssl, k);
            if (k > 0) {
                p += k;
                n -= (size_t)k;
            } else if (ev == 0) {
                ERR_clear_error();
                return GY_EIO;
            } else {
                int w = wait_fd(fd, ev, until, req);
                if (w != 0)
                    return w;
            }
            continue;
        }
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

/* Reads what there is: bytes, 0 at the end, or a negative errno-like GY_EAGAIN with *ev set to
 * what to wait for, or GY_EIO with why set. */
static ssize_t recv_some(struct conn *c, char *buf, size_t n, short *ev, char *why, size_t whylen)
{
    *ev = POLLIN;
    if (c->ssl != NULL) {
        errno = 0;
        int k = SSL_read(c->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
        if (k > 0)
            return k;
        int e = SSL_get_error(c->ssl, k);
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0))
            return 0; /* a close_notify, or a close without one: the answer's framing decides */
        if ((*ev = tls_wants(c->ssl, k)) != 0)
            return GY_EAGAIN;
        unsigned long err = ERR_peek_error();
        ERR_clear_error();
        return fail(why, whylen, GY_EIO, "TLS: %s", err != 0 ? ERR_reason_error_string(err) : strerror(errno));
    }
    for (;;) {
        ssize_t k = recv(c->fd, buf, n, 0);
        if (k >= 0)
            return k;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return GY_EAGAIN;
        return fail(why, whylen, GY_EIO, "%s", strerror(errno));
    }
}

static int exchange(struct conn *c, const struct target *t, const struct gy_http_request *req, uint64_t until, int *status,
                    struct gy_bytes *out, char *why, size_t whylen)
{
    char head[REQUEST_HEAD_MAX];
    int n = snprintf(head, sizeof(head), "%s %s%.*s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
                                         "Accept: application/json\r\nConnection: close\r\n",
                     req->method, t->path[0] == '/' ? "" : "/", (int)t->path_len, t->path, t->authority,
                     req->user_agent ? req->user_agent : "gyrus");
    if (n > 0 && (size_t)n < sizeof(head) && req->authorization != NULL) {
        if (strpbrk(req->authorization, "\r\n") != NULL)
            return fail(why, whylen, GY_EINVAL, "a line break in the Authorization value");
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Authorization: %s\r\n", req->authorization);
    }
    if (n > 0 && (size_t)n < sizeof(head) && req->body != NULL)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                      req->content_type ? req->content_type : "application/octet-stream", req->body_len);
    if (n > 0 && (size_t)n < sizeof(head))
        n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    if (n <= 0 || (size_t)n >= sizeof(head))
        return fail(why, whylen, GY_ETOOBIG, "request head over %d bytes", REQUEST_HEAD_MAX);
    int rc = send_all(c, head, (size_t)n, until, req);
    if (rc == 0 && req->body != NULL)
        rc = send_all(c, req->body, req->body_len, until, req);
    if (rc != 0 && rc != GY_EIO)
        return rc;
    /* A failed send may still leave an answer to read (a server that refuses the body early). */
    char buf[READ_CHUNK];
    struct gy_http_answer r;
    int res = 0;
    gy_http_answer_init(&r, strcmp(req->method, "HEAD") == 0);
    while (res == 0 && !r.done) {
        short ev;
        ssize_t k = recv_some(c, buf, sizeof(buf), &ev, why, whylen);
        if (k > 0) {
            res = gy_http_answer_feed(&r, buf, (size_t)k, out, why, whylen);
        } else if (k == 0) {
            res = gy_http_answer_eof(&r, why, whylen);
        } else if (k == GY_EAGAIN) {
            res = wait_fd(c->fd, ev, until, req);
        } else {
            res = (int)k;
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
    struct conn c = { fd, NULL };
    rc = t.tls ? tls_start(&c, &t, req, until, why, whylen) : 0;
    if (rc == 0)
        rc = exchange(&c, &t, req, until, status, out, why, whylen);
    if (c.ssl != NULL) {
        if (rc == 0)
            SSL_shutdown(c.ssl); /* best effort: the socket is non-blocking */
        SSL_free(c.ssl);
        ERR_clear_error();
    }
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
