/*
 * A small libcurl helper for the HTTP sources (etcd, Consul, Kubernetes): one multi handle per
 * source thread drives its requests, so that gy_http_wakeup from gy_discovery_stop ends any wait
 * at once, and a wait with no request is an interruptible sleep.
 *
 * A request either collects its body (up to a cap) or hands it over line by line (watch streams:
 * one JSON document per line, each up to the same cap). Responses are (ptr, len) slices of the
 * request's buffer; nothing is NUL-terminated for the caller's benefit.
 */
#ifndef GY_CONTROL_DISCOVERY_HTTP_H
#define GY_CONTROL_DISCOVERY_HTTP_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define GY_HTTP_BODY_MAX (64u << 20)

struct gy_http {
    CURLM *multi;
    const atomic_bool *stopping;
    struct curl_slist *headers; /* sent with every request (auth, content type) */
};

/* Returns non-zero to abort the transfer (a malformed stream). */
typedef int (*gy_http_line_cb)(void *arg, const char *line, size_t len);

struct gy_http_req {
    CURL *easy;
    struct gy_http *http;
    bool active;
    /* the response */
    long status;
    CURLcode result;
    char error[CURL_ERROR_SIZE];
    char *body;
    size_t len, cap;
    const char *capture;        /* a response header to keep, e.g. "X-Consul-Index" */
    char captured[64];
    gy_http_line_cb on_line;    /* NULL: collect the whole body */
    void *arg;
    bool aborted;               /* on_line asked to stop, or the body was too big */
    bool streaming;             /* a 2xx answer going to on_line */
    void *owner;                /* for the caller */
};

/* Process-wide curl initialisation, once. */
void gy_http_global_init(void);

int gy_http_init(struct gy_http *h, const atomic_bool *stopping);
void gy_http_dispose(struct gy_http *h);
/* Adds a header line ("Authorization: Bearer ...") to every request of h. */
int gy_http_add_header(struct gy_http *h, const char *line);
/* Any thread: ends the current gy_http_run/gy_http_sleep at once. */
void gy_http_wakeup(struct gy_http *h);

/*
 * Starts a GET (post_body NULL) or a POST of JSON. timeout_ms 0 means none (a watch stream: it
 * ends on stop, close, or the cancel of its owner). The request must not be active.
 */
int gy_http_start(struct gy_http *h, struct gy_http_req *r, const char *url, const char *post_body, long timeout_ms);
/* Aborts an active request; harmless on an inactive one. */
void gy_http_cancel(struct gy_http_req *r);
/* Frees the request's handle and buffer (cancels it first). */
void gy_http_req_dispose(struct gy_http_req *r);

/*
 * Drives the active requests for at most timeout_ms (and less if something finished). Returns a
 * finished request (no longer active; its result, status and body are set) or NULL: timeout,
 * wakeup, or stopping.
 */
struct gy_http_req *gy_http_run(struct gy_http *h, int timeout_ms);
/* Sleeps ms, driving nothing new; returns false when the source is stopping. */
bool gy_http_sleep(struct gy_http *h, unsigned ms);

/* One line describing a failed request for logs: "connection refused", "HTTP 500: ...". */
void gy_http_describe(const struct gy_http_req *r, char *out, size_t outlen);
/* True if the request finished with a 2xx status and no transport error. */
bool gy_http_ok(const struct gy_http_req *r);

#endif
