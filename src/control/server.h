/*
 * The control plane's HTTP/1.1 server, on the control loop: keep-alive connections, request
 * bodies (Content-Length or chunked, bounded), one request at a time per connection, and
 * requests that the handler "parks" to answer later (the xds long-polls). Heads are parsed by
 * the strict codec of http/h1.h.
 *
 * The handler is called once per request and must call ctl_respond() exactly once, now or
 * later. A request answered later is parked with ctl_req_park(): if the client goes away
 * first, the abort callback runs (it must forget the request) and the request is freed.
 */
#ifndef GY_CONTROL_SERVER_H
#define GY_CONTROL_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/list.h"
#include "core/loop.h"
#include "net/sock.h"

/* A refcounted response body, shared by every parked poll answered with the same view. */
struct ctl_blob {
    unsigned refs;
    size_t len;
    char *data;
};

/* Takes ownership of `data` (malloc'ed, may be NULL when len is 0). Returns NULL on ENOMEM
 * (and frees data). */
struct ctl_blob *ctl_blob_take(char *data, size_t len);
struct ctl_blob *ctl_blob_copy(const char *data, size_t len);
static inline struct ctl_blob *ctl_blob_ref(struct ctl_blob *b)
{
    if (b != NULL)
        b->refs++;
    return b;
}
void ctl_blob_unref(struct ctl_blob *b);

struct ctl_conn;
struct ctl_req;

typedef void (*ctl_abort_cb)(struct ctl_req *r);

struct ctl_req {
    struct ctl_conn *conn;
    char *method;               /* "GET" */
    char *path;                 /* raw path, without the query, not decoded */
    char *query;                /* raw query without '?', "" if none */
    char *body;                 /* NUL-terminated, body_len bytes ("" if none) */
    size_t body_len;
    char peer[GY_ADDRSTRLEN];   /* "127.0.0.1:41234" */
    char *authorization;        /* the Authorization header's value, NULL if none */
    const char *peer_id;        /* HTTPS: the SPIFFE ID of a client certificate that verified against
                                 * the trust given to ctl_server_set_client_trust, else NULL */
    uint64_t started_ms;
    /* For the owner of a parked request. */
    bool parked;
    ctl_abort_cb on_abort;
    void *owner;
    struct gy_list park_link;
    struct gy_timer park_timer;
};

typedef void (*ctl_handler)(void *arg, struct ctl_req *r);

struct ctl_server;

/* Listens on addr ("IP:PORT"). Returns 0 or a GY_E* with a reason in err. */
int ctl_server_start(struct gy_loop *loop, const char *addr, ctl_handler handler, void *arg,
                     struct ctl_server **out, char *err, size_t errlen);
/* Serves HTTPS from now on with tls (gy_tls_endpoint_server; the server owns it, and frees the one
 * it had: connections accepted before keep theirs). NULL: plain HTTP. A plain HTTP request on a
 * TLS server is answered 400 in plain text, naming https://. */
struct ssl_ctx_st;
void ctl_server_set_tls(struct ctl_server *s, struct ssl_ctx_st *tls);
/* Stops accepting and closes idle connections; later responses close their connection. */
void ctl_server_drain(struct ctl_server *s);
/* Connections still open. */
size_t ctl_server_nconns(const struct ctl_server *s);
/* Closes everything (parked requests are aborted) and frees the server. */
void ctl_server_free(struct ctl_server *s);

/* Answers the request; takes a reference on body (may be NULL for an empty body). `headers`
 * are extra header lines, each ending in \r\n, or NULL. Frees the request when written. */
void ctl_respond(struct ctl_req *r, int status, const char *ctype, struct ctl_blob *body, const char *headers);
/* Convenience: copies the text. */
void ctl_respond_text(struct ctl_req *r, int status, const char *ctype, const char *text, size_t len);
/* Keeps the request open to answer later; on_abort runs if the client goes away first. */
void ctl_req_park(struct ctl_req *r, ctl_abort_cb on_abort, void *owner);

#endif
