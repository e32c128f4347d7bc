/*
 * The TLS transport (net/transport.h) over a non-blocking socket driven by edge-triggered epoll.
 *
 * Reads loop until OpenSSL wants more bytes from the socket (or the buffer is full): with
 * read-ahead on, OpenSSL may hold whole records that epoll will never announce again, so
 * "fewer bytes than asked" has to mean "the socket is drained". WANT_READ/WANT_WRITE map to
 * GY_EAGAIN, a close_notify (or a close without one) to EOF. The connection keeps a reference to
 * the set of contexts it was made with, so certificate reloads do not touch it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "tls/tls_int.h"

#define WARN_EVERY_MS 10000

struct tls_conn {
    struct gy_transport base;
    SSL *ssl;
    struct tls_set *set;
    bool server;
    bool fd_set;
    bool done;                      /* handshake over */
    bool failed;                    /* a fatal error: no more I/O, no close_notify */
    bool peer_ready;
    int pending;                    /* read: 0, or the EOF (1) / error (-1) seen after returning bytes */
    struct gy_tls_peer peer;
    char *subject;
    char *spiffe;
    char *xfcc;                     /* our x-forwarded-client-cert element, once asked for */
    unsigned xfcc_fields;           /* the fields it was made with (a reload may change them) */
};

static _Atomic uint64_t last_client_warn_ms;

static struct tls_conn *conn_of(struct gy_transport *t)
{
    return GY_CONTAINER_OF(t, struct tls_conn, base);
}

static int attach_fd(struct tls_conn *c, int fd)
{
    if (c->fd_set)
        return 0;
    if (SSL_set_fd(c->ssl, fd) != 1)
        return -1;
    c->fd_set = true;
    return 0;
}

/* Upstream handshake failures are what an operator needs to see (503 UF); rate-limited. */
static void warn_client_failure(struct tls_conn *c, int e, unsigned long err)
{
    uint64_t now = gy_now_ms(), last = atomic_load(&last_client_warn_ms);
    const char *reason = err != 0 ? ERR_reason_error_string(err) : NULL;
    long vr = SSL_get_verify_result(c->ssl);
    const char *host = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);

    if (now - last < WARN_EVERY_MS || !atomic_compare_exchange_strong(&last_client_warn_ms, &last, now))
        return;
    gy_warn("cluster \"%s\": TLS handshake with an instance%s%s failed: %s%s%s", c->set->ctr->name,
            host != NULL ? " named " : "", host != NULL ? host : "",
            reason != NULL ? reason : e == SSL_ERROR_SYSCALL ? "connection closed" : "error",
            vr != X509_V_OK ? ": " : "", vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
}

static int tc_handshake(struct gy_transport *t, int fd, bool *want_write)
{
    struct tls_conn *c = conn_of(t);

    if (c->done)
        return 0;
    if (c->failed || attach_fd(c, fd) != 0) {
        c->failed = true;
        return GY_EIO;
    }
    ERR_clear_error();
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        c->done = true;
        atomic_fetch_add_explicit(&c->set->ctr->handshakes, 1, memory_order_relaxed);
        if (SSL_session_reused(c->ssl))
            atomic_fetch_add_explicit(&c->set->ctr->resumed, 1, memory_order_relaxed);
        return 0;
    }
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *want_write = e == SSL_ERROR_WANT_WRITE;
        return GY_EAGAIN;
    }
    unsigned long err = ERR_peek_error();
    c->failed = true;
    tls_count_failure(c->set->ctr, c->ssl, e, err);
    if (!c->server)
        warn_client_failure(c, e, err);
    else
        gy_debug("listener \"%s\": TLS handshake failed: %s", c->set->ctr->name,
                 err != 0 ? ERR_reason_error_string(err) : "connection closed");
    ERR_clear_error();
    return GY_EIO;
}

static void tc_abort_handshake(struct gy_transport *t)
{
    struct tls_conn *c = conn_of(t);

    if (c->done || c->failed)
        return;
    c->failed = true;
    tls_count_failure(c->set->ctr, c->ssl, SSL_ERROR_SYSCALL, 0);
}

static ssize_t tc_read(struct gy_transport *t, int fd, void *buf, size_t len, bool *more)
{
    struct tls_conn *c = conn_of(t);
    size_t got = 0;

    *more = false;
    if (c->pending != 0 || c->failed)
        return c->pending > 0 ? 0 : GY_EIO;
    if (attach_fd(c, fd) != 0)
        return GY_EIO;
    ERR_clear_error();
    while (got < len) {
        size_t n = 0;
        if (SSL_read_ex(c->ssl, (char *)buf + got, len - got, &n) == 1) {
            got += n;
            continue;
        }
        int e = SSL_get_error(c->ssl, 0);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return got > 0 ? (ssize_t)got : GY_EAGAIN;
        if (e == SSL_ERROR_ZERO_RETURN)
            c->pending = 1;
        else
            c->pending = -1, c->failed = true;
        ERR_clear_error();
        if (got > 0)
            return (ssize_t)got; /* the EOF or error comes with the next call */
        return c->pending > 0 ? 0 : GY_EIO;
    }
    *more = SSL_has_pending(c->ssl) == 1;
    return (ssize_t)got;
}

static ssize_t tc_write(struct gy_transport *t, int fd, const void *buf, size_t len)
{
    struct tls_conn *c = conn_of(t);
    size_t n = 0;

    if (c->failed || attach_fd(c, fd) != 0)
        return GY_EIO;
    ERR_clear_error();
    if (SSL_write_ex(c->ssl, buf, len, &n) == 1)
        return (ssize_t)n;
    int e = SSL_get_error(c->ssl, 0);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
        return GY_EAGAIN;
    c->failed = true;
    ERR_clear_error();
    return GY_EIO;
}

static void tc_shutdown(struct gy_transport *t, int fd)
{
    struct tls_conn *c = conn_of(t);

    if (!c->done || c->failed || attach_fd(c, fd) != 0)
        return;
    ERR_clear_error();
    SSL_shutdown(c->ssl); /* sends close_notify; we do not wait for the peer's */
    ERR_clear_error();
}

static void tc_destroy(struct gy_transport *t)
{
    struct tls_conn *c = conn_of(t);

    SSL_free(c->ssl);
    tls_set_unref(c->set);
    free(c->subject);
    free(c->spiffe);
    free(c->xfcc);
    free(c);
}

static const struct gy_transport_ops tls_ops = {
    .read = tc_read,
    .write = tc_write,
    .handshake = tc_handshake,
    .abort_handshake = tc_abort_handshake,
    .shutdown = tc_shutdown,
    .destroy = tc_destroy,
};

struct gy_transport *tls_conn_new(struct tls_set *set, SSL *ssl, bool server)
{
    struct tls_conn *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        SSL_free(ssl);
        tls_set_unref(set);
        return NULL;
    }
    c->base.ops = &tls_ops;
    c->ssl = ssl;
    c->set = set;
    c->server = server;
    return &c->base;
}

const char *gy_tls_alpn(struct gy_transport *t)
{
    const unsigned char *p = NULL;
    unsigned len = 0;

    if (t == NULL || t->ops != &tls_ops)
        return NULL;
    SSL_get0_alpn_selected(conn_of(t)->ssl, &p, &len);
    if (len == 2 && memcmp(p, "h2", 2) == 0)
        return "h2";
    if (len == 8 && memcmp(p, "http/1.1", 8) == 0)
        return "http/1.1";
    return NULL;
}

const struct gy_tls_peer *gy_tls_peer(struct gy_transport *t)
{
    struct tls_conn *c;

    if (t == NULL || t->ops != &tls_ops)
        return NULL;
    c = conn_of(t);
    if (!c->peer_ready && c->done) {
        X509 *x = SSL_get0_peer_certificate(c->ssl);
        c->peer_ready = true;
        if (x != NULL && SSL_get_verify_result(c->ssl) == X509_V_OK) {
            c->subject = tls_name_string(X509_get_subject_name(x));
            c->spiffe = tls_spiffe_id(x);
            c->peer.verified = true;
            c->peer.subject = c->subject;
            c->peer.spiffe_id = c->spiffe;
        }
    }
    return &c->peer;
}

const char *gy_tls_xfcc(struct gy_transport *t, unsigned fields)
{
    const struct gy_tls_peer *peer = gy_tls_peer(t);
    struct tls_conn *c;

    if (peer == NULL || !peer->verified)
        return NULL;
    c = conn_of(t);
    if (c->xfcc != NULL && c->xfcc_fields != fields) { /* the listener's fields changed by a reload */
        free(c->xfcc);
        c->xfcc = NULL;
    }
    if (c->xfcc == NULL) {
        c->xfcc = tls_xfcc_element(SSL_get0_peer_certificate(c->ssl), SSL_get_peer_cert_chain(c->ssl),
                                   SSL_get_certificate(c->ssl), fields);
        c->xfcc_fields = fields;
    }
    return c->xfcc;
}
