/*
 * HTTP filters (DESIGN.md §3): per listener, an ordered chain named by `active_http_filters` and
 * configured by `http_filters` (keyed by the filter name, or with '.' written as '_' in Grey
 * Matter style: `gm_metrics` for `gm.metrics`); a route may override a filter's config through
 * its `filter_configs` (same keys). The chain runs once per request, after routing and before an
 * upstream host is picked. A filter may let the request continue, answer it itself, or pause it
 * for a while (delays). Grey Matter filter names that gyrus does not implement yet are accepted
 * and skipped with a warning at config time.
 */
#ifndef GY_PROXY_FILTER_H
#define GY_PROXY_FILTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/header.h"
#include "mesh/config.h"
#include "tls/tls.h"

enum gy_filter_result {
    GY_FILTER_CONTINUE, /* next filter, then the upstream */
    GY_FILTER_STOP,     /* the filter answered with gy_filter_reply / gy_filter_grpc_reply */
    GY_FILTER_PAUSE,    /* gy_filter_delay was called: the chain resumes with the next filter later */
};

struct gy_pool;

/* Header changes filters ask for, applied to the request sent upstream: the request's own
 * headers of a removed or set name are dropped, set headers are added. Lives in the stream's
 * pool, so changes made before a filter's delay survive it. */
#define GY_FILTER_MAX_EDITS 16
struct gy_filter_edits {
    struct gy_pool *pool;
    struct gy_header set[GY_FILTER_MAX_EDITS];
    size_t nset;
    struct gy_slice removed[GY_FILTER_MAX_EDITS];
    size_t nremoved;
};

/* What a filter sees of a request and can do with it; valid only during on_request. */
struct gy_filter_call {
    struct gy_filter_edits *edits;      /* NULL: this caller cannot change headers */
    struct gy_slice method, path, query, host;
    const struct gy_header *headers;
    size_t nheaders;
    struct gy_slice request_id;         /* x-request-id, kept or generated */
    const char *peer_ip;
    const struct gy_tls_peer *peer;     /* what the client's certificate proved, NULL without TLS */
    const struct gy_route *route;
    const struct gy_listener *listener;
    bool grpc;                          /* content-type application/grpc... */
    uint64_t random;                    /* uniformly random, for percentages */
    uint64_t now_ms;                    /* monotonic */
    /* set by the helpers below */
    int reply_status;
    int reply_grpc_status;              /* -1: not a gRPC reply */
    char reply_extra[512];              /* extra response header lines ("retry-after: 1\r\n") */
    char reply_body[256];
    uint32_t delay_ms;
    uint32_t flags;                     /* GY_RF_* to add to the access log (e.g. fault injected) */
};

/* Answer with status and a short body; extra is header lines ending in \r\n (may be NULL). Returns STOP. */
enum gy_filter_result gy_filter_reply(struct gy_filter_call *c, int status, const char *extra, const char *body);
/* Answer a gRPC caller: HTTP 200 with grpc-status and grpc-message (trailers-only). Returns STOP. */
enum gy_filter_result gy_filter_grpc_reply(struct gy_filter_call *c, int grpc_status, const char *message);
/* Hold the request for ms, then continue with the next filter. Returns PAUSE. */
enum gy_filter_result gy_filter_delay(struct gy_filter_call *c, uint32_t ms);

/* Sets a request header (replacing the client's), or removes it; 0 or GY_ETOOBIG/GY_ENOMEM. */
int gy_filter_header_set(struct gy_filter_call *c, const char *name, struct gy_slice value);
int gy_filter_header_remove(struct gy_filter_call *c, const char *name);
/* A request header as the filters before have left it; .ptr NULL when absent. */
struct gy_slice gy_filter_header_get(const struct gy_filter_call *c, const char *name);

/* For the core building the upstream request: true if the request's own header `name` must not
 * be forwarded (removed or replaced by a filter). */
bool gy_filter_edits_drop(const struct gy_filter_edits *e, struct gy_slice name);

struct gy_filter_ops {
    const char *name;                   /* "gyrus.fault" */
    const char *const *aliases;         /* NULL-terminated: "envoy.fault", "envoy.filters.http.fault" */
    /* Compiles a config (from http_filters or a route's filter_configs; may be NULL when the
     * filter is listed without a config). Returns the compiled config or NULL with err set.
     * Called on the main thread; the result is shared read-only by the workers, except for
     * state the filter synchronises itself (token buckets). */
    void *(*compile)(const json_t *config, char *err, size_t errlen);
    void (*destroy)(void *compiled);
    /* route_compiled: the route's override from filter_configs, or NULL. Called on a worker. */
    enum gy_filter_result (*on_request)(struct gy_filter_call *c, void *compiled, void *route_compiled);
};

/* A compiled chain of one listener. */
struct gy_filter_chain;

/*
 * Builds the chain of listener `listener_json` (its active_http_filters and http_filters), and
 * the per-route overrides of every route of the config (stored in route->filters). Returns 0
 * or GY_ECONFIG with `listener "x": http_filters.gyrus_fault.abort.http_status: ...` in err.
 */
int gy_filters_attach(struct gy_config *cfg, char *err, size_t errlen);
/* Frees the chains and overrides attached to cfg (called before the config itself is freed). */
void gy_filters_detach(struct gy_config *cfg);

/* Runs the chain from filter index *next (0 at first); on PAUSE, *next is where to resume. */
enum gy_filter_result gy_filter_chain_run(const struct gy_filter_chain *chain, const struct gy_route *route,
                                          struct gy_filter_call *c, size_t *next);

/* The registry of filters gyrus implements (filter.c). */
extern const struct gy_filter_ops *const gy_filter_registry[];

#endif
