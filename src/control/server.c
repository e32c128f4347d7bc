/*
 * The control plane's HTTP/1.1 server (see server.h). One state machine per connection:
 *
 *   HEAD ─► BODY ─► HANDLER ─► WRITE ─► HEAD (keep-alive) or close
 *
 * Bytes are read into one bounded input buffer; the head is parsed there by gy_h1_parse_request,
 * the body is copied out of it into its own allocation (bounded by CTL_MAX_BODY). While a request
 * is with the handler (parked or not) the connection still reads, so a client that closes is seen
 * at once and its parked request aborted. Pipelined bytes wait in the input buffer.
 */
#include "control/server.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "http/h1.h"
#include "tls/tls.h"

#define CTL_MAX_HEAD 65536u
#define CTL_MAX_HEADERS 100u
#define CTL_MAX_BODY ((size_t)64 << 20)
#define CTL_IN_CHUNK 4096u
#define CTL_IDLE_MS 120000u   /* keep-alive connection with no request */
#define CTL_IO_MS 30000u      /* reading a request, or writing a response */

enum conn_state { C_HEAD, C_BODY, C_HANDLER, C_WRITE };

struct ctl_server {
    struct gy_io io;
    struct gy_loop *loop;
    ctl_handler handler;
    void *arg;
    struct gy_list conns;
    struct gy_list dead;        /* closed, freed by `reap` after the current batch of events */
    struct gy_task reap;
    size_t nconns;
    bool draining;
    SSL_CTX *tls;               /* NULL: plain HTTP */
};

struct ctl_conn {
    struct gy_io io;
    struct gy_list link;
    struct ctl_server *srv;
    struct gy_timer timer;
    enum conn_state state;
    char *in;
    size_t in_len, in_cap;
    struct ctl_req req;
    /* body */
    enum gy_h1_body body_kind;
    uint64_t body_need;
    struct gy_h1_chunked chunked;
    size_t body_cap;
    bool keep_alive;
    /* response */
    char head[512];
    size_t head_len, out_off;
    struct ctl_blob *out;
    bool close_after;
    bool in_run;
    bool dead;
    SSL *ssl;                   /* TLS connections */
    bool handshaken;
    char *peer_id;              /* the client certificate's SPIFFE ID, when it verified */
};

/* ---- blobs ---- */

struct ctl_blob *ctl_blob_take(char *data, size_t len)
{
    struct ctl_blob *b = malloc(sizeof(*b));

    if (b == NULL) {
        free(data);
        return NULL;
    }
    b->refs = 1;
    b->len = len;
    b->data = data;
    return b;
}

struct ctl_blob *ctl_blob_copy(const char *data, size_t len)
{
    char *p = malloc(len + 1);

    if (p == NULL)
        return NULL;
    if (len > 0)
        memcpy(p, data, len);
    p[len] = '\0';
    return ctl_blob_take(p, len);
}

void ctl_blob_unref(struct ctl_blob *b)
{
    if (b == NULL || --b->refs > 0)
        return;
    free(b->data);
    free(b);
}

/* ---- connections ---- */

static void conn_run(struct ctl_conn *c);

static void req_reset(struct ctl_req *r)
{
    free(r->method);
    free(r->path);
    free(r->query);
    free(r->body);
    free(r->authorization);
    r->authorization = NULL;
    r->method = r->path = r->query = r->body = NULL;
    r->body_len = 0;
    r->parked = false;
    r->on_abort = NULL;
    r->owner = NULL;
}

static void conn_close(struct ctl_conn *c)
{
    struct ctl_server *s = c->srv;

    if (c->dead)
        return;
    if (c->state == C_HANDLER && c->req.parked && c->req.on_abort != NULL) {
        c->req.parked = false;
        c->req.on_abort(&c->req);
    }
    gy_list_remove(&c->link);
    s->nconns--;
    gy_io_stop(&c->io);
    if (c->ssl != NULL) {
        if (c->handshaken)
            SSL_shutdown(c->ssl); /* a close_notify, if the socket takes it now */
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    close(c->io.fd);
    gy_timer_stop(s->loop, &c->timer);
    gy_timer_stop(s->loop, &c->req.park_timer);
    ctl_blob_unref(c->out);
    c->out = NULL;
    req_reset(&c->req);
    free(c->in);
    c->in = NULL;
    free(c->peer_id);
    c->peer_id = NULL;
    c->req.peer_id = NULL;
    c->dead = true;
    /* The loop may still hold an event for this connection in the current batch. */
    gy_list_insert_tail(&s->dead, &c->link);
    gy_task_schedule(s->loop, &s->reap);
}

static void reap_dead(struct gy_task *t)
{
    struct ctl_server *s = GY_CONTAINER_OF(t, struct ctl_server, reap);

    while (!gy_list_empty(&s->dead)) {
        struct ctl_conn *c = GY_CONTAINER_OF(s->dead.next, struct ctl_conn, link);
        gy_list_remove(&c->link);
        free(c);
    }
}

static void conn_timeout(struct gy_timer *t)
{
    struct ctl_conn *c = GY_CONTAINER_OF(t, struct ctl_conn, timer);

    gy_debug("%s: connection timed out in state %d", c->req.peer, (int)c->state);
    conn_close(c);
}

/* ---- socket I/O, plain or TLS ---- */

/* What an SSL call that returned rc means: GY_EAGAIN (the socket will tell us when to go on),
 * 0 (the peer closed), or GY_EIO. */
static int tls_result(struct ctl_conn *c, int rc, const char *what)
{
    int e = SSL_get_error(c->ssl, rc);

    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return GY_EAGAIN;
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        return errno == EINTR ? GY_EAGAIN : errno == 0 ? 0 : GY_EIO; /* 0: closed without close_notify */
    gy_debug("%s: TLS %s: %s", c->req.peer, what, ERR_reason_error_string(ERR_peek_error()));
    ERR_clear_error();
    return GY_EIO;
}

/* Returns bytes read, 0 at EOF, GY_EAGAIN or GY_EIO. */
static ssize_t conn_recv(struct ctl_conn *c, char *p, size_t n)
{
    for (;;) {
        if (c->ssl != NULL) {
            errno = 0;
            int k = SSL_read(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
            return k > 0 ? k : tls_result(c, k, "read");
        }
        ssize_t k = recv(c->io.fd, p, n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? GY_EAGAIN : GY_EIO;
        return k;
    }
}

/* Returns bytes written, GY_EAGAIN or GY_EIO. TLS writes one piece at a time; the caller retries
 * the same bytes after GY_EAGAIN, as OpenSSL wants. */
static ssize_t conn_send(struct ctl_conn *c, const struct iovec *iov, int n)
{
    for (;;) {
        if (c->ssl != NULL) {
            errno = 0;
            int k = SSL_write(c->ssl, iov[0].iov_base, iov[0].iov_len > INT_MAX ? INT_MAX : (int)iov[0].iov_len);
            if (k > 0)
                return k;
            k = tls_result(c, k, "write");
            return k == 0 ? GY_EIO : k;
        }
        struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };
        ssize_t w = sendmsg(c->io.fd, &mh, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? GY_EAGAIN : GY_EIO;
        return w > 0 ? w : GY_EIO;
    }
}

/* Runs the TLS handshake: 1 when done, GY_EAGAIN, or GY_EIO. A plain HTTP request on the TLS port
 * is answered in plain text, as nginx does, so that whoever sent it learns why. */
static int conn_handshake(struct ctl_conn *c)
{
    errno = 0;
    int rc = SSL_do_handshake(c->ssl);

    if (rc == 1) {
        c->handshaken = true;
        X509 *x = SSL_get0_peer_certificate(c->ssl);
        if (x != NULL && SSL_get_verify_result(c->ssl) == X509_V_OK)
            c->req.peer_id = c->peer_id = gy_tls_spiffe_id(x);
        return 1;
    }
    unsigned long e = ERR_peek_error();
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST) {
        static const char body[] = "{\"error\":{\"code\":400,\"message\":\"this is an HTTPS port: "
                                   "use https:// to reach it\"}}\n";
        char msg[256];
        int n = snprintf(msg, sizeof(msg), "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                                           "content-length: %zu\r\nconnection: close\r\n\r\n%s",
                         sizeof(body) - 1, body);
        ssize_t w = send(c->io.fd, msg, (size_t)n, MSG_NOSIGNAL);
        (void)w;
        gy_debug("%s: a plain HTTP request on the TLS port", c->req.peer);
        ERR_clear_error();
        return GY_EIO;
    }
    rc = tls_result(c, rc, "handshake");
    return rc == 0 ? GY_EIO : rc;
}

/* Reads what the socket has. Returns 1 (read some), 0 (EOF), GY_EAGAIN, or GY_EIO. */
static int conn_fill(struct ctl_conn *c)
{
    bool got = false;

    for (;;) {
        if (c->in_len == c->in_cap) {
            size_t cap = c->in_cap ? c->in_cap * 2 : CTL_IN_CHUNK;
            if (cap > CTL_MAX_HEAD + CTL_IN_CHUNK)
                return got ? 1 : GY_EAGAIN; /* full: stop reading until the request is done */
            char *in = realloc(c->in, cap);
            if (in == NULL)
                return GY_EIO;
            c->in = in;
            c->in_cap = cap;
        }
        ssize_t n = conn_recv(c, c->in + c->in_len, c->in_cap - c->in_len);
        if (n == GY_EAGAIN)
            return got ? 1 : GY_EAGAIN;
        if (n < 0)
            return GY_EIO;
        if (n == 0)
            return got ? 1 : 0;
        c->in_len += (size_t)n;
        got = true;
    }
}

static void conn_consume(struct ctl_conn *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

static void respond_error(struct ctl_conn *c, int status, const char *why)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"error\":{\"code\":%d,\"message\":\"%s\"}}\n", status, why);

    c->keep_alive = false;
    c->state = C_HANDLER;
    ctl_respond_text(&c->req, status, "application/json", body, (size_t)n);
}

static char *slice_dup(struct gy_slice s)
{
    char *p = malloc(s.len + 1);

    if (p != NULL) {
        if (s.len > 0)
            memcpy(p, s.ptr, s.len);
        p[s.len] = '\0';
    }
    return p;
}

static void dispatch(struct ctl_conn *c)
{
    if (c->req.body == NULL && (c->req.body = strdup("")) == NULL) {
        respond_error(c, 500, "out of memory");
        return;
    }
    c->state = C_HANDLER;
    gy_timer_stop(c->srv->loop, &c->timer);
    c->req.started_ms = gy_now_ms();
    c->srv->handler(c->srv->arg, &c->req);
}

/* Parses a head from the input. Returns 1 when the request moved on, 0 when more bytes are needed. */
static int parse_head(struct ctl_conn *c)
{
    struct gy_header hdrs[CTL_MAX_HEADERS];
    struct gy_h1_request hr;
    struct gy_h1_error he;
    struct gy_h1_limits lim = { 8192, CTL_MAX_HEAD, CTL_MAX_HEADERS };
    int rc;

    if (c->in_len == 0)
        return 0;
    rc = gy_h1_parse_request(c->in, c->in_len, &hr, hdrs, &lim, &he);
    if (rc == GY_EAGAIN)
        return 0;
    if (rc < 0) {
        gy_debug("%s: bad request: %s", c->req.peer, he.reason);
        respond_error(c, he.status, he.reason);
        return 1;
    }
    gy_timer_start(c->srv->loop, &c->timer, CTL_IO_MS);
    c->req.method = slice_dup(hr.method);
    c->req.path = slice_dup(hr.path);
    c->req.query = slice_dup(hr.query);
    c->keep_alive = hr.keep_alive;
    const struct gy_header *auth = gy_header_find(hr.headers, hr.nheaders, GY_SLICE_LIT("authorization"));
    if (auth != NULL && (c->req.authorization = slice_dup(auth->value)) == NULL) {
        respond_error(c, 500, "out of memory");
        return 1;
    }
    conn_consume(c, hr.head_len);
    if (c->req.method == NULL || c->req.path == NULL || c->req.query == NULL) {
        respond_error(c, 500, "out of memory");
        return 1;
    }
    if (hr.is_connect || hr.body == GY_H1_BODY_TUNNEL) {
        respond_error(c, 501, "not implemented");
        return 1;
    }
    c->body_kind = hr.body;
    if (hr.body == GY_H1_BODY_NONE) {
        dispatch(c);
        return 1;
    }
    if (hr.body == GY_H1_BODY_LENGTH && hr.content_length > CTL_MAX_BODY) {
        respond_error(c, 413, "request body larger than 64 MiB");
        return 1;
    }
    c->body_need = hr.body == GY_H1_BODY_LENGTH ? hr.content_length : 0;
    c->body_cap = hr.body == GY_H1_BODY_LENGTH ? (size_t)hr.content_length : 65536;
    if ((c->req.body = malloc(c->body_cap + 1)) == NULL) {
        respond_error(c, 500, "out of memory");
        return 1;
    }
    c->req.body_len = 0;
    gy_h1_chunked_init(&c->chunked);
    c->state = C_BODY;
    if (hr.expect_continue && c->in_len < c->body_need) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        struct iovec iov = { (void *)cont, sizeof(cont) - 1 };
        ssize_t w = conn_send(c, &iov, 1); /* small: a fresh connection's buffer takes it */
        (void)w;
    }
    return 1;
}

static int body_append(struct ctl_conn *c, const char *p, size_t n)
{
    if (c->req.body_len + n > c->body_cap) {
        size_t cap = c->body_cap * 2;
        while (cap < c->req.body_len + n)
            cap *= 2;
        if (c->req.body_len + n > CTL_MAX_BODY)
            return GY_ETOOBIG;
        char *b = realloc(c->req.body, cap + 1);
        if (b == NULL)
            return GY_ENOMEM;
        c->req.body = b;
        c->body_cap = cap;
    }
    memcpy(c->req.body + c->req.body_len, p, n);
    c->req.body_len += n;
    return 0;
}

/* Moves body bytes out of the input. Returns 1 when the request moved on, 0 when more are needed. */
static int parse_body(struct ctl_conn *c)
{
    if (c->body_kind == GY_H1_BODY_LENGTH) {
        size_t n = c->in_len < c->body_need ? c->in_len : (size_t)c->body_need;
        memcpy(c->req.body + c->req.body_len, c->in, n);
        c->req.body_len += n;
        c->body_need -= n;
        conn_consume(c, n);
        if (c->body_need > 0)
            return 0;
    } else {
        for (;;) {
            struct gy_slice data;
            bool done = false;
            long used = gy_h1_chunked_decode(&c->chunked, c->in, c->in_len, &data, &done);
            if (used < 0) {
                respond_error(c, 400, "malformed chunked body");
                return 1;
            }
            if (data.len > 0 && body_append(c, data.ptr, data.len) != 0) {
                respond_error(c, 413, "request body larger than 64 MiB");
                return 1;
            }
            conn_consume(c, (size_t)used);
            if (done)
                break;
            if (used == 0 && data.len == 0)
                return 0;
        }
    }
    c->req.body[c->req.body_len] = '\0';
    dispatch(c);
    return 1;
}

/* Writes the pending response. Returns 1 when all is written, GY_EAGAIN, or GY_EIO. */
static int conn_flush(struct ctl_conn *c)
{
    size_t body_len = c->out ? c->out->len : 0, total = c->head_len + body_len;

    while (c->out_off < total) {
        struct iovec iov[2];
        int n = 0;
        if (c->out_off < c->head_len)
            iov[n++] = (struct iovec){ c->head + c->out_off, c->head_len - c->out_off };
        size_t boff = c->out_off > c->head_len ? c->out_off - c->head_len : 0;
        if (body_len > boff)
            iov[n++] = (struct iovec){ c->out->data + boff, body_len - boff };
        ssize_t w = conn_send(c, iov, n);
        if (w < 0)
            return (int)w;
        c->out_off += (size_t)w;
    }
    return 1;
}

/* After a response: back to reading the next request, or close. Returns false if closed. */
static bool conn_next(struct ctl_conn *c)
{
    ctl_blob_unref(c->out);
    c->out = NULL;
    c->head_len = c->out_off = 0;
    req_reset(&c->req);
    if (c->close_after) {
        conn_close(c);
        return false;
    }
    c->state = C_HEAD;
    c->close_after = false;
    gy_timer_start(c->srv->loop, &c->timer, c->in_len > 0 ? CTL_IO_MS : CTL_IDLE_MS);
    if (c->in_len == 0 && c->in_cap > CTL_IN_CHUNK) { /* give back a big buffer */
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
    return true;
}

static void conn_run(struct ctl_conn *c)
{
    if (c->ssl != NULL && !c->handshaken) {
        int rc = conn_handshake(c);
        if (rc == GY_EAGAIN)
            return;
        if (rc < 0) {
            conn_close(c);
            return;
        }
    }
    c->in_run = true;
    for (;;) {
        int rc;
        if (c->state == C_WRITE) {
            rc = conn_flush(c);
            if (rc == GY_EAGAIN)
                break;
            if (rc < 0 || !conn_next(c)) {
                if (rc < 0)
                    conn_close(c);
                return;
            }
            continue;
        }
        if (c->state == C_HANDLER) {
            rc = conn_fill(c);
            if (rc == 0 || rc == GY_EIO) {
                conn_close(c);
                return;
            }
            if (c->state == C_HANDLER) /* still with the handler: wait for it */
                break;
            continue;
        }
        rc = c->state == C_HEAD ? parse_head(c) : parse_body(c);
        if (rc == 1)
            continue;
        if (c->state == C_HEAD && c->in_len == 0 && c->srv->draining) {
            conn_close(c);
            return;
        }
        rc = conn_fill(c);
        if (rc == GY_EAGAIN)
            break;
        if (rc <= 0) {
            conn_close(c);
            return;
        }
    }
    c->in_run = false;
}

static void conn_io(struct gy_io *io, unsigned events)
{
    (void)events;
    conn_run(GY_CONTAINER_OF(io, struct ctl_conn, io));
}

void ctl_respond(struct ctl_req *r, int status, const char *ctype, struct ctl_blob *body, const char *headers)
{
    struct ctl_conn *c = r->conn;
    size_t len = body ? body->len : 0;

    if (c->state != C_HANDLER) {
        gy_error("internal: response to a request not with the handler");
        return;
    }
    r->parked = false;
    gy_timer_stop(c->srv->loop, &r->park_timer);
    if (!gy_list_empty(&r->park_link))
        gy_list_remove(&r->park_link);
    c->close_after = !c->keep_alive || c->srv->draining;
    int n = snprintf(c->head, sizeof(c->head),
                     "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\ncache-control: no-cache\r\n%s%s\r\n",
                     status, gy_h1_reason(status), ctype, len, headers ? headers : "",
                     c->close_after ? "connection: close\r\n" : "");
    c->head_len = n > 0 && (size_t)n < sizeof(c->head) ? (size_t)n : 0;
    c->out = r->method != NULL && strcmp(r->method, "HEAD") == 0 ? NULL : ctl_blob_ref(body); /* HEAD: no body */
    c->out_off = 0;
    c->state = C_WRITE;
    gy_timer_start(c->srv->loop, &c->timer, CTL_IO_MS);
    gy_debug("%s %s %s -> %d (%zu bytes, %llu ms)", r->peer, r->method ? r->method : "-",
             r->path ? r->path : "-", status, len, (unsigned long long)(gy_now_ms() - r->started_ms));
    if (!c->in_run)
        conn_run(c);
}

void ctl_respond_text(struct ctl_req *r, int status, const char *ctype, const char *text, size_t len)
{
    struct ctl_blob *b = ctl_blob_copy(text, len);

    ctl_respond(r, b ? status : 500, ctype, b, NULL);
    ctl_blob_unref(b);
}

void ctl_req_park(struct ctl_req *r, ctl_abort_cb on_abort, void *owner)
{
    r->parked = true;
    r->on_abort = on_abort;
    r->owner = owner;
}

/* ---- listener ---- */

static void accept_io(struct gy_io *io, unsigned events)
{
    struct ctl_server *s = GY_CONTAINER_OF(io, struct ctl_server, io);

    (void)events;
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                gy_warn("cannot accept: %s", strerror(errno));
            return;
        }
        struct ctl_conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->srv = s;
        c->req.conn = c;
        gy_list_init(&c->link);
        gy_list_init(&c->req.park_link);
        gy_timer_init(&c->timer, conn_timeout);
        gy_timer_init(&c->req.park_timer, NULL);
        gy_addr_format((struct sockaddr *)&ss, c->req.peer, sizeof(c->req.peer));
        if (s->tls != NULL && ((c->ssl = SSL_new(s->tls)) == NULL || SSL_set_fd(c->ssl, fd) != 1)) {
            gy_warn("cannot start TLS for %s: %s", c->req.peer, ERR_reason_error_string(ERR_peek_error()));
            ERR_clear_error();
            SSL_free(c->ssl);
            close(fd);
            free(c);
            continue;
        }
        if (c->ssl != NULL)
            SSL_set_accept_state(c->ssl);
        if (gy_io_start(s->loop, &c->io, fd, GY_IO_READ | GY_IO_WRITE, conn_io) != 0) {
            SSL_free(c->ssl);
            close(fd);
            free(c);
            continue;
        }
        gy_list_insert_tail(&s->conns, &c->link);
        s->nconns++;
        gy_timer_start(s->loop, &c->timer, CTL_IO_MS);
    }
}

int ctl_server_start(struct gy_loop *loop, const char *addr, ctl_handler handler, void *arg,
                     struct ctl_server **out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct ctl_server *s;

    if (gy_addr_parse(addr, &ss, &len) != 0) {
        snprintf(err, errlen, "--listen: cannot parse \"%s\" (want IP:PORT)", addr);
        return GY_EINVAL;
    }
    int fd = gy_listen((struct sockaddr *)&ss, len, false, 4096);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        return GY_EIO;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return GY_ENOMEM;
    }
    s->loop = loop;
    s->handler = handler;
    s->arg = arg;
    gy_list_init(&s->conns);
    gy_list_init(&s->dead);
    gy_task_init(&s->reap, reap_dead);
    if (gy_io_start(loop, &s->io, fd, GY_IO_READ, accept_io) != 0) {
        close(fd);
        free(s);
        snprintf(err, errlen, "cannot watch the listening socket");
        return GY_EIO;
    }
    *out = s;
    return 0;
}

void ctl_server_drain(struct ctl_server *s)
{
    if (s->draining)
        return;
    s->draining = true;
    gy_io_stop(&s->io);
    close(s->io.fd);
    s->io.fd = -1;
    for (struct gy_list *l = s->conns.next, *next; l != &s->conns; l = next) {
        struct ctl_conn *c = GY_CONTAINER_OF(l, struct ctl_conn, link);
        next = l->next;
        if (c->state == C_HEAD && c->in_len == 0)
            conn_close(c);
    }
}

void ctl_server_set_tls(struct ctl_server *s, struct ssl_ctx_st *tls)
{
    if (s->tls != NULL)
        SSL_CTX_free(s->tls); /* connections keep a reference of their own */
    s->tls = tls;
}

size_t ctl_server_nconns(const struct ctl_server *s)
{
    return s->nconns;
}

void ctl_server_free(struct ctl_server *s)
{
    if (s == NULL)
        return;
    while (!gy_list_empty(&s->conns))
        conn_close(GY_CONTAINER_OF(s->conns.next, struct ctl_conn, link));
    gy_task_cancel(&s->reap);
    reap_dead(&s->reap);
    if (s->io.fd >= 0) {
        gy_io_stop(&s->io);
        close(s->io.fd);
    }
    ctl_server_set_tls(s, NULL);
    free(s);
}
