/*
 * A small blocking HTTP/1.1 client for the proxy's own calls to the control plane: the config long
 * poll (proxy/xds.c) and certificate signing (proxy/identity.c). http:// or https:// (OpenSSL, the
 * server's certificate verified against `ca_file` and the URL's host), one connection per request,
 * run on the caller's thread; names are looked up by c-ares, so that the lookup too ends at the
 * timeout or when the caller cancels (getaddrinfo cannot be stopped); answers are parsed by our
 * own codec (http/h1.c). With it a
 * sidecar never loads libcurl and the 27 libraries it pulls in: an idle `--control` proxy went from
 * 11.8 to 7.4 MiB resident (0.7 MiB of it its own memory). The control plane and the CLI still use
 * libcurl.
 */
#ifndef GY_HTTP_CLIENT_H
#define GY_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bytes.h"
#include "http/h1.h"

struct gy_http_request {
    const char *method;          /* "GET", "POST" */
    const char *url;             /* http[s]://host[:port][/path][?query]; host may be [IPv6] */
    const char *ca_file;         /* https: PEM trust anchors for the server; NULL: the system's store */
    const char *cert_file;       /* https: a client certificate chain and key to present (PEM), when */
    const char *key_file;        /*   both load; else none is presented */
    const char *authorization;   /* the Authorization header's value, or NULL (printable, no CR/LF) */
    const char *content_type;    /* sent with a body */
    const void *body;
    size_t body_len;
    const char *user_agent;      /* NULL: "gyrus" */
    uint32_t connect_timeout_ms; /* per address tried; 0: 5000 */
    uint32_t timeout_ms;         /* the whole exchange, connect included; 0: 30000 */
    bool (*cancel)(void *arg);   /* asked a few times a second while waiting; true ends the request */
    void *cancel_arg;
};

/*
 * Performs the request. 0: *status is the final status and the body is in *out (its max bounds
 * it; 1xx answers are skipped). Else a negative GY_E* and a one-line reason in why
 * ("cannot connect to 127.0.0.1:5555: Connection refused", "timed out after 10000 ms", "malformed
 * answer: ...", "answer over 1048576 bytes", "cancelled").
 */
int gy_http_fetch(const struct gy_http_request *req, int *status, struct gy_bytes *out, char *why, size_t whylen);

/* The answer as it arrives, I/O-free (what gy_http_fetch runs, and what fuzz_http_client feeds):
 * the head is gathered until it parses (1xx answers skipped, an upgrade refused), then the body
 * is decoded by its framing into `out`. */
struct gy_http_answer {
    struct gy_bytes head;
    bool head_done, done;
    bool is_head;                /* the request was HEAD: no body follows */
    int status;
    enum gy_h1_body body;
    uint64_t left;               /* GY_H1_BODY_LENGTH: bytes still to come */
    struct gy_h1_chunked chunked;
};

void gy_http_answer_init(struct gy_http_answer *a, bool request_was_head);
/* n more bytes: 0 (a->done once the answer is whole) or a GY_E* with why. */
int gy_http_answer_feed(struct gy_http_answer *a, const char *p, size_t n, struct gy_bytes *out, char *why,
                        size_t whylen);
/* The peer closed: 0 when that ends the answer (a body delimited by the close), else GY_ECLOSED. */
int gy_http_answer_eof(struct gy_http_answer *a, char *why, size_t whylen);
void gy_http_answer_free(struct gy_http_answer *a);

/* s percent-encoded for a URL's query or path segment (unreserved characters kept); malloc'ed,
 * NULL when out of memory. */
char *gy_url_escape(const char *s);

#endif
