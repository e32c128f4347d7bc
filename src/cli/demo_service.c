/*
 * gyrus demo-service: a small HTTP/1.1 service for demos and tests, built on the gyrus loop
 * and HTTP/1 codec: /echo, /fib/N, /delay/MS, /status/CODE, /bytes/N, /healthz.
 */
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "core/err.h"
#include "core/log.h"
#include "core/loop.h"
#include "http/h1.h"
#include "net/sock.h"

#define MAX_BODY (1024u * 1024u)
#define MAX_BUF (MAX_BODY + 65536u)

struct demo {
    struct gy_loop loop;
    struct gy_io lio, sio;
    struct gy_list conns;
    const char *name;
    unsigned long requests;
};

struct dconn {
    struct gy_io io;
    struct gy_list link;
    struct demo *d;
    struct gy_timer delay;
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_off, out_cap;
    bool closing, waiting;
};

static void dconn_free(struct dconn *c)
{
    gy_list_remove(&c->link);
    gy_io_stop(&c->io);
    close(c->io.fd);
    gy_timer_stop(&c->d->loop, &c->delay);
    free(c->in);
    free(c->out);
    free(c);
}

static bool out_add(struct dconn *c, const char *p, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        char *np = realloc(c->out, cap);
        if (np == NULL)
            return false;
        c->out = np;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return true;
}

static void respond(struct dconn *c, int status, const char *ctype, const char *body, size_t len, bool head_only,
                    bool keep)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\nx-served-by: %s\r\n%s\r\n", status,
                     gy_h1_reason(status), ctype, len, c->d->name, keep ? "" : "connection: close\r\n");

    out_add(c, head, (size_t)n);
    if (!head_only)
        out_add(c, body, len);
    if (!keep)
        c->closing = true;
    c->d->requests++;
}

static void respond_json(struct dconn *c, int status, json_t *o, bool head_only, bool keep)
{
    char *s = json_dumps(o, JSON_COMPACT);

    json_decref(o);
    if (s == NULL) {
        respond(c, 500, "text/plain", "out of memory\n", 14, head_only, keep);
        return;
    }
    size_t len = strlen(s);
    s[len] = '\n';
    respond(c, status, "application/json", s, len + 1, head_only, keep);
    free(s);
}

static json_t *echo(const struct gy_h1_request *r, const char *body, size_t blen, const char *name)
{
    json_t *h = json_object();

    for (unsigned i = 0; i < r->nheaders; i++) {
        char key[256];
        size_t kl = r->headers[i].name.len < sizeof(key) - 1 ? r->headers[i].name.len : sizeof(key) - 1;
        for (size_t k = 0; k < kl; k++)
            key[k] = (char)((r->headers[i].name.ptr[k] >= 'A' && r->headers[i].name.ptr[k] <= 'Z')
                                ? r->headers[i].name.ptr[k] + 32
                                : r->headers[i].name.ptr[k]);
        key[kl] = '\0';
        json_object_set_new(h, key, json_stringn(r->headers[i].value.ptr, r->headers[i].value.len));
    }
    return json_pack("{s:s,s:s%,s:s%,s:s%,s:o,s:s%,s:I}", "service", name, "method", r->method.ptr, r->method.len,
                     "path", r->path.ptr, r->path.len, "query", r->query.ptr, r->query.len, "headers", h, "body",
                     body, blen, "body_length", (json_int_t)blen);
}

static long path_number(struct gy_slice path, const char *prefix)
{
    size_t pl = strlen(prefix);
    struct gy_slice rest;

    if (path.len <= pl || memcmp(path.ptr, prefix, pl) != 0)
        return -1;
    rest = gy_slice(path.ptr + pl, path.len - pl);
    return (long)gy_slice_to_u63(rest);
}

static void delay_done(struct gy_timer *t);

static void serve(struct dconn *c, const struct gy_h1_request *r, const char *body, size_t blen)
{
    bool head = r->is_head, keep = r->keep_alive;
    long n;

    if (gy_slice_eq(r->path, GY_SLICE_LIT("/healthz"))) {
        respond(c, 200, "text/plain", "ok\n", 3, head, keep);
    } else if (gy_slice_has_prefix(r->path, GY_SLICE_LIT("/echo"))) {
        respond_json(c, 200, echo(r, body, blen, c->d->name), head, keep);
    } else if ((n = path_number(r->path, "/fib/")) >= 0) {
        if (n > 92) {
            respond(c, 400, "text/plain", "n must be at most 92\n", 21, head, keep);
            return;
        }
        unsigned long long a = 0, b = 1;
        for (long i = 0; i < n; i++) {
            unsigned long long t = a + b;
            a = b;
            b = t;
        }
        respond_json(c, 200, json_pack("{s:s,s:i,s:I}", "service", c->d->name, "n", (int)n, "fib", (json_int_t)a),
                     head, keep);
    } else if ((n = path_number(r->path, "/status/")) >= 0) {
        if (n < 200 || n > 599)
            n = 400;
        respond(c, (int)n, "text/plain", "status\n", 7, head, keep);
    } else if ((n = path_number(r->path, "/bytes/")) >= 0) {
        if (n > 64 * 1024 * 1024) {
            respond(c, 400, "text/plain", "at most 64 MiB\n", 15, head, keep);
            return;
        }
        char *buf = malloc((size_t)n + 1);
        if (buf == NULL)
            return;
        memset(buf, 'x', (size_t)n);
        respond(c, 200, "application/octet-stream", buf, (size_t)n, head, keep);
        free(buf);
    } else if ((n = path_number(r->path, "/delay/")) >= 0) {
        respond(c, 200, "text/plain", "delayed\n", 8, head, keep);
        /* Hold the response back: it is already in `out`, sent when the timer fires. */
        c->waiting = true;
        gy_timer_start(&c->d->loop, &c->delay, (uint64_t)(n > 600000 ? 600000 : n));
    } else if (gy_slice_eq(r->path, GY_SLICE_LIT("/"))) {
        static const char idx[] = "gyrus demo service: /echo /fib/N /delay/MS /status/CODE /bytes/N /healthz\n";
        respond(c, 200, "text/plain", idx, sizeof(idx) - 1, head, keep);
    } else {
        respond(c, 404, "text/plain", "not found\n", 10, head, keep);
    }
}

/* Returns bytes of input used, 0 if more is needed, -1 on a bad request (answered). */
static long handle_one(struct dconn *c)
{
    struct gy_header hdrs[100];
    struct gy_h1_request r;
    struct gy_h1_error err;
    int rc = gy_h1_parse_request(c->in, c->in_len, &r, hdrs, &gy_h1_default_limits, &err);

    if (rc == GY_EAGAIN)
        return 0;
    if (rc < 0) {
        respond(c, err.status, "text/plain", err.reason, strlen(err.reason), false, false);
        return -1;
    }
    size_t used = r.head_len, blen = 0;
    char *body = NULL;
    if (r.body == GY_H1_BODY_LENGTH) {
        if (r.content_length > MAX_BODY) {
            respond(c, 413, "text/plain", "body too large\n", 15, false, false);
            return -1;
        }
        if (c->in_len - used < r.content_length)
            return 0;
        body = c->in + used;
        blen = (size_t)r.content_length;
        used += blen;
    } else if (r.body == GY_H1_BODY_CHUNKED) {
        struct gy_h1_chunked d;
        bool done = false;
        body = malloc(MAX_BODY);
        if (body == NULL)
            return -1;
        gy_h1_chunked_init(&d);
        while (!done) {
            struct gy_slice data;
            long k = gy_h1_chunked_decode(&d, c->in + used, c->in_len - used, &data, &done);
            if (k < 0 || blen + data.len > MAX_BODY) {
                free(body);
                respond(c, 400, "text/plain", "bad chunked body\n", 17, false, false);
                return -1;
            }
            memcpy(body + blen, data.ptr, data.len);
            blen += data.len;
            used += (size_t)k;
            if (k == 0 && data.len == 0 && !done) {
                free(body);
                return 0;
            }
        }
        serve(c, &r, body, blen);
        free(body);
        return (long)used;
    }
    serve(c, &r, body ? body : "", blen);
    return (long)used;
}

static void flush(struct dconn *c)
{
    while (!c->waiting && c->out_off < c->out_len) {
        ssize_t n = send(c->io.fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            c->closing = true;
            c->out_off = c->out_len;
            break;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
}

static void process(struct dconn *c)
{
    for (;;) {
        if (!c->waiting && !c->closing && c->in_len > 0) {
            long used = handle_one(c);
            if (used < 0) {
                c->in_len = 0;
            } else if (used > 0) {
                memmove(c->in, c->in + used, c->in_len - (size_t)used);
                c->in_len -= (size_t)used;
                continue;
            }
        }
        flush(c);
        if (c->closing && c->out_len == 0) {
            dconn_free(c);
            return;
        }
        if (c->waiting || c->closing)
            return;
        if (c->in_len == c->in_cap) {
            if (c->in_cap >= MAX_BUF) {
                dconn_free(c);
                return;
            }
            size_t cap = c->in_cap ? c->in_cap * 2 : 16384;
            char *np = realloc(c->in, cap);
            if (np == NULL) {
                dconn_free(c);
                return;
            }
            c->in = np;
            c->in_cap = cap;
        }
        ssize_t n = recv(c->io.fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        dconn_free(c);
        return;
    }
}

static void delay_done(struct gy_timer *t)
{
    struct dconn *c = GY_CONTAINER_OF(t, struct dconn, delay);

    c->waiting = false;
    process(c);
}

static void conn_io(struct gy_io *io, unsigned events)
{
    (void)events;
    process(GY_CONTAINER_OF(io, struct dconn, io));
}

static void accept_io(struct gy_io *io, unsigned events)
{
    struct demo *d = GY_CONTAINER_OF(io, struct demo, lio);
    int one = 1;

    (void)events;
    for (;;) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct dconn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->d = d;
        gy_list_init(&c->link);
        gy_timer_init(&c->delay, delay_done);
        if (gy_io_start(&d->loop, &c->io, fd, GY_IO_READ | GY_IO_WRITE, conn_io) != 0) {
            close(fd);
            free(c);
            continue;
        }
        gy_list_insert_tail(&d->conns, &c->link);
    }
}

static void signal_io(struct gy_io *io, unsigned events)
{
    struct demo *d = GY_CONTAINER_OF(io, struct demo, sio);
    struct signalfd_siginfo si;

    (void)events;
    while (read(io->fd, &si, sizeof(si)) == sizeof(si))
        gy_loop_stop(&d->loop);
}

static const char usage[] = "usage: gyrus demo-service [--listen ADDR] [--name NAME]\n"
                            "\n"
                            "A small HTTP/1.1 service: /echo, /fib/N, /delay/MS, /status/CODE, /bytes/N, /healthz.\n"
                            "  --listen ADDR   default 127.0.0.1:8080\n"
                            "  --name NAME     reported in x-served-by and /echo, default \"demo\"\n";

int gy_cmd_demo_service(int argc, char **argv)
{
    static struct demo d;
    const char *listen_addr = "127.0.0.1:8080";
    struct sockaddr_storage ss;
    socklen_t len;
    struct gy_flags f;
    sigset_t set;

    d.name = "demo";
    gy_list_init(&d.conns);
    gy_flags_init(&f, argc, argv, usage);
    while (gy_flags_next(&f)) {
        if (gy_flag_is(&f, "-l", "--listen"))
            listen_addr = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--name"))
            d.name = gy_flag_value(&f);
        else if (!gy_flags_common(&f))
            gy_flags_unknown(&f);
    }
    if (gy_addr_parse(listen_addr, &ss, &len) != 0)
        gy_fatal("--listen: cannot parse \"%s\" (want IP:PORT)", listen_addr);
    signal(SIGPIPE, SIG_IGN);
    int fd = gy_listen((struct sockaddr *)&ss, len, false, 1024);
    if (fd < 0)
        gy_fatal("cannot listen on %s: %s", listen_addr, strerror(errno));
    if (gy_loop_init(&d.loop) != 0 || gy_io_start(&d.loop, &d.lio, fd, GY_IO_READ, accept_io) != 0)
        gy_fatal("cannot start the event loop");
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || gy_io_start(&d.loop, &d.sio, sfd, GY_IO_READ, signal_io) != 0)
        gy_fatal("cannot set up signals");
    gy_info("demo service \"%s\" listening on %s", d.name, listen_addr);
    gy_loop_run(&d.loop);
    while (!gy_list_empty(&d.conns))
        dconn_free(GY_CONTAINER_OF(d.conns.next, struct dconn, link));
    gy_io_stop(&d.lio);
    gy_io_stop(&d.sio);
    close(fd);
    close(sfd);
    gy_loop_dispose(&d.loop);
    gy_info("stopped after %lu requests", d.requests);
    return 0;
}
