/*
 * The compiled runtime view of the mesh for one proxy: immutable once built, shared by all
 * workers through a reference count, swapped atomically on reload (DESIGN.md §3).
 *
 * gy_config_compile() takes validated objects (mesh.h) and the proxy name, and builds the
 * listeners of that proxy with their virtual hosts (domains), routes sorted for matching
 * (exact routes, then regex routes in file order, then prefix routes longest first), rules in
 * precedence order (route rules, then shared_rules rules, then the shared_rules default as a
 * final catch-all rule), and the clusters those routes reach, with instances resolved to
 * socket addresses. All strings are owned by the config. Fields marked (proxy) are filled in
 * by the proxy layer after compiling and are NULL/0 until then.
 */
#ifndef GY_MESH_CONFIG_H
#define GY_MESH_CONFIG_H

#include <jansson.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mesh/mesh.h"

struct pcre2_real_code_8;

enum gy_listener_protocol { GY_PROTO_HTTP_AUTO, GY_PROTO_HTTP, GY_PROTO_HTTP2, GY_PROTO_TCP };
/* x-forwarded-client-cert (Envoy's forward_client_cert_details); "mTLS" = a verified client cert. */
enum gy_xfcc_mode {
    GY_XFCC_SANITIZE,            /* never forwarded (the default) */
    GY_XFCC_FORWARD_ONLY,        /* the client's, over mTLS only */
    GY_XFCC_APPEND_FORWARD,      /* the client's plus ours, over mTLS only */
    GY_XFCC_SANITIZE_SET,        /* ours only, over mTLS only */
    GY_XFCC_ALWAYS_FORWARD_ONLY, /* the client's, always */
};
/* What our element carries besides By and Hash (set_current_client_cert_details). */
#define GY_XFCC_URI 0x01u
#define GY_XFCC_SUBJECT 0x02u
#define GY_XFCC_DNS 0x04u
#define GY_XFCC_CERT 0x08u
#define GY_XFCC_CHAIN 0x10u
enum gy_lb_policy { GY_LB_ROUND_ROBIN, GY_LB_LEAST_REQUEST, GY_LB_RANDOM, GY_LB_RING_HASH };
enum gy_path_match { GY_PATH_PREFIX, GY_PATH_EXACT, GY_PATH_REGEX };
enum gy_host_match { GY_HOST_ANY, GY_HOST_EXACT, GY_HOST_SUFFIX /* "*.example.com" */, GY_HOST_PREFIX /* "api.*" */ };
enum gy_match_kind { GY_MATCHKIND_HEADER, GY_MATCHKIND_COOKIE, GY_MATCHKIND_QUERY };
enum gy_match_behavior { GY_BEHAVIOR_EXACT, GY_BEHAVIOR_PREFIX, GY_BEHAVIOR_SUFFIX, GY_BEHAVIOR_REGEX, GY_BEHAVIOR_RANGE };
enum gy_hash_source { GY_HASH_NONE, GY_HASH_HEADER, GY_HASH_COOKIE, GY_HASH_SOURCE_IP };

struct gy_kv {
    char *key;
    char *value;
};

/* A header to add to a request or response. */
struct gy_header_op {
    char *name;  /* lower-case */
    char *value;
    bool append; /* false: replace an existing header of that name */
};

/* A host of a cluster. */
struct gy_instance {
    char *host;
    uint16_t port;
    uint32_t weight;                /* >= 1, default 1 */
    struct gy_kv *metadata;
    size_t nmetadata;
    struct sockaddr_storage addr;   /* resolved at compile time (numeric or getaddrinfo) */
    socklen_t addrlen;
    void *state;                    /* (proxy) struct gy_host, shared health and outlier state */
};

/* HTTP/2 settings of a listener or a cluster (`http2_protocol_options`, Envoy's names). */
struct gy_http2_options {
    uint32_t max_concurrent_streams;        /* default 100 */
    uint32_t initial_stream_window_size;    /* default 65535; also the per-stream buffer bound */
    uint32_t initial_connection_window_size; /* default 1 MiB */
    uint32_t max_header_list_size;          /* default: max_request_headers_kb (listeners), 64 KiB */
    uint32_t hpack_table_size;              /* default 4096 */
    bool allow_connect;                     /* extended CONNECT (RFC 8441), default false */
    uint32_t max_outbound_control_frames;   /* queued PING/SETTINGS acks before the peer is cut off, default 1000 */
    uint32_t max_inbound_control_frames_per_s; /* gyrus: SETTINGS/PING/empty frames per second, default 1000 */
    uint32_t max_resets_per_s;              /* gyrus: client resets per second (rapid reset), default 100 */
    uint32_t max_resets_burst;              /* gyrus: default 200 */
};

/* Circuit breakers: past a limit, requests get 503 `UO` with x-gyrus-overloaded: true. */
struct gy_circuit_breakers {
    uint32_t max_connections;       /* upstream connections open (all workers), default 1024 */
    uint32_t max_pending_requests;  /* requests waiting for a new connection, default 1024 */
    uint32_t max_requests;          /* requests in flight, default 1024 */
    uint32_t max_retries;           /* retries in flight, default 3 */
};

/* Outlier detection (Envoy's semantics); enabled when the cluster has `outlier_detection`. */
struct gy_outlier_detection {
    bool enabled;
    uint32_t interval_ms;           /* success-rate sweeps and un-ejection, default 10000 */
    uint32_t base_ejection_ms;      /* × the host's number of ejections, default 30000 */
    uint32_t max_ejection_percent;  /* default 10; at least one host may always be ejected */
    uint32_t consecutive_5xx;       /* default 5; 0 = off */
    uint32_t enforcing_5xx;         /* percent, default 100 */
    uint32_t consecutive_gateway;   /* default 5; 0 = off */
    uint32_t enforcing_gateway;     /* percent, default 0 */
    uint32_t sr_minimum_hosts;      /* default 5 */
    uint32_t sr_request_volume;     /* default 100 */
    uint32_t sr_stdev_factor;       /* ×1000, default 1900 */
    uint32_t enforcing_sr;          /* percent, default 100 */
};

enum gy_health_kind { GY_HC_HTTP, GY_HC_TCP, GY_HC_GRPC };

struct gy_status_range {
    uint16_t start, end;            /* start <= status < end */
};

/* An active health check, run by the main thread once per proxy for every host of the cluster. */
struct gy_health_check {
    enum gy_health_kind kind;
    uint32_t timeout_ms;            /* default 1000 */
    uint32_t interval_ms;           /* default 5000 */
    uint32_t jitter_ms;             /* extra random 0..jitter per interval */
    uint32_t unhealthy_interval_ms; /* between checks of an unhealthy host, default interval */
    uint32_t unhealthy_edge_ms;     /* the first one after a host turned unhealthy, default unhealthy_interval */
    uint32_t healthy_edge_ms;       /* the first one after it turned healthy again, default interval */
    uint32_t unhealthy_threshold;   /* consecutive failures to mark unhealthy, default 3 */
    uint32_t healthy_threshold;     /* consecutive successes to mark healthy again, default 2 */
    char *path;                     /* HTTP: default "/" */
    char *host;                     /* HTTP: Host header, default the cluster name */
    struct gy_status_range *expected; /* HTTP: default 200..399 */
    size_t nexpected;
    uint8_t *send;                  /* TCP: bytes to send (decoded from hex), may be empty */
    size_t send_len;
    uint8_t **receive;              /* TCP: each must appear in the answer (decoded from hex) */
    size_t *receive_len;
    size_t nreceive;
    char *service_name;             /* gRPC Health v1: the service asked about ("" = server); HTTP: the
                                     * prefix x-envoy-upstream-healthchecked-cluster must have (NULL: none) */
    char *authority;                /* gRPC: :authority of the check, default the cluster name */
    struct gy_header_op *headers;   /* HTTP: request_headers_to_add */
    size_t nheaders;
    bool reuse;                     /* HTTP: keep the connection between checks (default true) */
    uint32_t no_traffic_ms;         /* healthy hosts of a cluster that never had traffic: this interval (0: interval) */
};

/* Retry budget (Linkerd-style): retries in flight may be at most percent of the requests in
 * flight, but at least min_concurrency. */
struct gy_retry_budget {
    uint32_t percent;               /* default 20 */
    uint32_t min_concurrency;       /* default 3 */
};

struct gy_cluster {
    char *key;
    char *name;
    unsigned index;                 /* position in config->clusters */
    struct gy_instance *instances;
    size_t ninstances;
    enum gy_lb_policy lb_policy;
    uint32_t choice_count;          /* least_request: hosts sampled (default 2) */
    uint32_t ring_size;             /* ring_hash: entries on the ring (minimum_ring_size, default 1024) */
    uint64_t *ring_hashes;          /* ring_hash: sorted points ... */
    uint32_t *ring_hosts;           /* ... and the instance index of each point */
    uint32_t connect_timeout_ms;    /* default 5000 */
    uint32_t idle_timeout_ms;       /* upstream keep-alive idle timeout, default 60000 */
    uint32_t max_idle_per_host;     /* idle upstream connections kept per host per worker, default 64 */
    uint32_t panic_threshold;       /* percent healthy below which health is ignored, default 50 */
    bool http2;                     /* http2_protocol_options given: HTTP/2 to the instances */
    bool use_downstream_protocol;   /* protocol_selection USE_DOWNSTREAM_PROTOCOL: HTTP/2 for HTTP/2 clients */
    struct gy_http2_options h2;
    struct gy_circuit_breakers cb;
    struct gy_retry_budget retry_budget;
    struct gy_outlier_detection outlier;
    struct gy_health_check *health_checks;
    size_t nhealth_checks;
    void *stats;                    /* (proxy) */
    void *tls;                      /* (proxy) client TLS context, NULL: plain TCP */
};

/* `light` constraint: where a request goes. */
struct gy_constraint {
    struct gy_cluster *cluster;
    uint32_t weight;
    struct gy_kv *metadata;         /* instances must carry all of these (subset); may be empty */
    size_t nmetadata;
};

struct gy_match {
    enum gy_match_kind kind;
    enum gy_match_behavior behavior;
    char *key;
    char *value;                    /* for exact/prefix/suffix; the pattern for regex */
    struct pcre2_real_code_8 *re;   /* behavior == REGEX */
    int64_t range_start, range_end; /* behavior == RANGE: start <= value < end */
};

enum gy_cohort_type { GY_COHORT_NONE, GY_COHORT_HEADER, GY_COHORT_COOKIE, GY_COHORT_QUERY };

/* Sticky splits: the seed's hash, not a random number, picks among light constraints. */
struct gy_cohort_seed {
    enum gy_cohort_type type;
    char *name;
    bool use_zero_value_seed;       /* requests without the seed all go to one side (hash of "") */
};

struct gy_rule {
    uint32_t methods;               /* bit set of GY_METHOD_*; 0 = any */
    char **extra_methods;           /* methods without a bit (rare extension methods) */
    size_t nextra_methods;
    struct gy_match *matches;       /* all must match */
    size_t nmatches;
    struct gy_constraint *light;
    size_t nlight;
    uint32_t light_total_weight;
    struct gy_constraint *dark;     /* each gets a copy of the request; its answer is discarded */
    size_t ndark;
    struct gy_constraint *tap;      /* each gets a record of the request and response */
    size_t ntap;
    struct gy_cohort_seed cohort;   /* the rule's, else the route's, else the shared_rules' */
};

#define GY_RETRY_5XX (1u << 0)
#define GY_RETRY_GATEWAY_ERROR (1u << 1)
#define GY_RETRY_RESET (1u << 2)
#define GY_RETRY_CONNECT_FAILURE (1u << 3)
#define GY_RETRY_RETRIABLE_4XX (1u << 4)
#define GY_RETRY_REFUSED_STREAM (1u << 5)
#define GY_RETRY_STATUS_CODES (1u << 6)
#define GY_RETRY_GRPC_CANCELLED (1u << 7)
#define GY_RETRY_GRPC_DEADLINE_EXCEEDED (1u << 8)
#define GY_RETRY_GRPC_INTERNAL (1u << 9)
#define GY_RETRY_GRPC_RESOURCE_EXHAUSTED (1u << 10)
#define GY_RETRY_GRPC_UNAVAILABLE (1u << 11)

struct gy_retry_policy {
    uint32_t num_retries;           /* default 1 */
    uint32_t per_try_timeout_ms;    /* 0 = none */
    uint32_t timeout_ms;            /* all attempts; 0 = the route's timeout */
    uint32_t retry_on;              /* GY_RETRY_* */
    uint16_t *status_codes;         /* retriable_status_codes */
    size_t nstatus_codes;
    uint32_t backoff_base_ms;       /* default 25 */
    uint32_t backoff_max_ms;        /* default 10 × base */
    uint32_t max_request_bytes;     /* gyrus: request bodies up to this are kept for replay; default 65536 */
};

#define GY_METHOD_GET (1u << 0)
#define GY_METHOD_HEAD (1u << 1)
#define GY_METHOD_POST (1u << 2)
#define GY_METHOD_PUT (1u << 3)
#define GY_METHOD_DELETE (1u << 4)
#define GY_METHOD_CONNECT (1u << 5)
#define GY_METHOD_OPTIONS (1u << 6)
#define GY_METHOD_TRACE (1u << 7)
#define GY_METHOD_PATCH (1u << 8)

struct gy_redirect {
    char *name;
    struct pcre2_real_code_8 *from; /* matched against the request URL path (and query) */
    char *to;                       /* replacement; $1..$9 refer to groups of `from` */
    int status;                     /* permanent → 301, temporary → 302 (or an explicit 3xx) */
};

struct gy_direct_response {
    int status;
    char *body;
    size_t body_len;
};

struct gy_hash_policy {
    enum gy_hash_source source;
    char *name;                     /* header or cookie name */
};

struct gy_route {
    char *key;
    enum gy_path_match match_type;
    char *path;                     /* prefix or exact path, or the regex source */
    size_t path_len;
    struct pcre2_real_code_8 *re;   /* match_type == REGEX, anchored to the whole path */
    char *prefix_rewrite;           /* NULL if none: replaces the matched prefix */
    struct gy_rule *rules;          /* precedence order; the last is the shared_rules default */
    size_t nrules;
    struct gy_header_op *request_headers_to_add;
    size_t nrequest_headers_to_add;
    char **request_headers_to_remove;
    size_t nrequest_headers_to_remove;
    struct gy_header_op *response_headers_to_add;
    size_t nresponse_headers_to_add;
    char **response_headers_to_remove;
    size_t nresponse_headers_to_remove;
    struct gy_redirect *redirects;
    size_t nredirects;
    struct gy_direct_response *direct_response; /* NULL if none */
    struct gy_hash_policy hash_policy;
    uint32_t timeout_ms;            /* whole request; 0 = none; default 15000 (Envoy) */
    uint32_t idle_timeout_ms;       /* stream idle; 0 = listener's */
    uint32_t max_stream_duration_ms; /* gyrus: hard cap on a request's life, 0 = none */
    struct gy_retry_policy *retry;  /* the route's, else its shared_rules', else NULL */
    void *filters;                  /* (proxy) per-route filter configs (filter_configs) */
    void *stats;                    /* (proxy) */
};

struct gy_vhost {
    char *key;
    char *name;
    enum gy_host_match match;
    char *pattern;                  /* lower-case; for SUFFIX the part after "*" (".example.com"),
                                       for PREFIX the part before "*" ("api.") */
    size_t pattern_len;
    char **aliases;                 /* more names, same syntax, compiled into alias_match/alias_pattern */
    enum gy_host_match *alias_match;
    char **alias_pattern;
    size_t naliases;
    uint16_t port;
    bool force_https;
    struct gy_redirect *redirects;
    size_t nredirects;
    struct gy_header_op *custom_headers; /* added to responses */
    size_t ncustom_headers;
    struct gy_route *routes;        /* sorted for matching, see above */
    size_t nroutes;
};

struct gy_access_log {
    char *path;                     /* file path, or "/dev/stdout" */
    char *format;                   /* NULL: JSON lines; else a format string with %FIELD% tokens */
    void *sink;                     /* (proxy) */
};

struct gy_listener {
    char *key;
    char *name;
    char *ip;
    uint16_t port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    enum gy_listener_protocol protocol;
    struct gy_vhost **vhosts;       /* domains on this listener, most specific match first */
    size_t nvhosts;
    struct gy_access_log *access_logs;
    size_t naccess_logs;
    uint32_t stream_idle_timeout_ms;    /* default 300000 */
    uint32_t request_timeout_ms;        /* whole request from the client, 0 = none */
    uint32_t request_headers_timeout_ms;/* slow header delivery (slowloris), default 10000 */
    uint32_t idle_timeout_ms;           /* downstream keep-alive idle, default 60000 */
    uint32_t drain_timeout_ms;          /* default 5000 */
    uint32_t max_request_headers_kb;    /* default 32 */
    uint32_t max_headers;               /* default 100 */
    bool use_remote_address;            /* default true: x-forwarded-for appends the peer */
    bool generate_request_id;           /* default true: a request without a valid x-request-id gets one */
    uint8_t xfcc_mode;                  /* enum gy_xfcc_mode */
    uint8_t xfcc_fields;                /* GY_XFCC_* */
    struct gy_http2_options h2;         /* http2_protocol_options */
    void *stats;                        /* (proxy) */
    void *filters;                      /* (proxy) the HTTP filter chain (active_http_filters) */
    void *tls;                          /* (proxy) server TLS context, NULL: plain TCP */
};

struct gy_config {
    atomic_uint refs;
    uint64_t generation;            /* set by the caller; increases with every applied config */
    char *proxy_name;
    char *zone_key;
    json_t *objects;                /* the validated objects (all of them), for /config_dump */
    struct gy_listener *listeners;
    size_t nlisteners;
    struct gy_vhost *vhosts;
    size_t nvhosts;
    struct gy_cluster *clusters;    /* only those reachable from this proxy's routes */
    size_t nclusters;
    void (*on_free)(struct gy_config *c); /* (proxy) releases what the proxy attached */
};

/*
 * Builds the runtime view of proxy `proxy_name` (matching proxy.name, or proxy_key when no
 * proxy has that name) from validated objects. Takes a reference to `objects`.
 * Errors (no such proxy, an instance host that does not resolve, a regex that does not
 * compile) name the object and field in *err and return GY_ECONFIG. refs starts at 1.
 */
int gy_config_compile(json_t *objects, const char *proxy_name, struct gy_config **out, struct gy_mesh_error *err);

static inline struct gy_config *gy_config_ref(struct gy_config *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

/* Drops a reference; frees the config at zero. */
void gy_config_unref(struct gy_config *c);

/* Finds a cluster by name in a config (used to carry per-worker state across reloads). */
struct gy_cluster *gy_config_cluster_by_name(const struct gy_config *c, const char *name);

#endif
