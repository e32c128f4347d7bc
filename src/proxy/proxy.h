/*
 * gyrus proxy internals: the main thread (config, listeners' sockets, admin, signals) and the
 * workers (one event loop each, shared-nothing), with downstream connections, streams and
 * upstream connection pools. See docs/internals/proxy.md for the life of a request.
 */
#ifndef GY_PROXY_PROXY_H
#define GY_PROXY_PROXY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/memcache.h"
#include "core/list.h"
#include "core/loop.h"
#include "core/pool.h"
#include "http/h1.h"
#include "mesh/config.h"
#include "net/sock.h"
#include "net/transport.h"
#include "proxy/grpcweb.h"
#include "proxy/lb.h"
#include "proxy/router.h"
#include "proxy/stats.h"

struct gy_proxy_options {
    const char *config_path;         /* static mode: the mesh file */
    const char *control_url;         /* dynamic mode: the control plane, http:// or https:// */
    const char *control_ca;          /* https: PEM trust anchors for it; NULL: the system's store */
    const char *api_key;             /* $GYRUS_API_KEY: sent to a control plane that asks for a key */
    const char *name;
    const char *zone;
    const char *node;                /* this instance's id for the control plane, default host:pid */
    const char *data_dir;            /* the view cache in dynamic mode, default /var/lib/gyrus */
    const char *join_token;          /* dynamic mode: proves the proxy to the mesh CA the first time */
    const char *admin_addr;          /* default 127.0.0.1:8001; "off" disables */
    unsigned workers;                /* default: CPU count */
    uint32_t drain_time_ms;          /* default 10 s */
    uint32_t watch_interval_ms;      /* config file poll; 0 = off; default 1000 */
    const char *access_log;          /* extra access log for every listener: path or "-" */
    const char *access_log_format;
    const char *fips;                /* --fips on|required (tls/fips.c); NULL: off */
};

#define GY_MAX_REQ_HEADERS 1000

struct gy_proxy;
struct gy_worker;
struct gy_stream;

/* An access log destination, opened by the main thread and kept for the process. */
struct gy_alog_sink {
    struct gy_alog_sink *next;
    char *path;
    char *format;                    /* NULL: JSON lines */
    int fd;
    unsigned index;                  /* slot in each worker's buffers */
};

/* A config as one worker sees it: the shared compiled config plus per-worker cluster state.
 * Referenced by the worker (while current), its connections and streams; freed at zero. */
struct gy_wcfg {
    struct gy_config *cfg;
    unsigned refs;
    struct gy_wcluster *clusters;    /* parallel to cfg->clusters */
};

struct gy_upool;

struct gy_wcluster {
    struct gy_lb_state *lb;
    struct gy_upool **hosts;         /* per instance: idle connections to it, kept across reloads */
    uint32_t *active;                /* per instance: requests in flight from this worker */
};

/* Idle upstream connections of one worker to one host of one cluster. */
struct gy_upool {
    struct gy_upool *next;           /* hash chain */
    char *key;                       /* "cluster|addr" */
    struct gy_list idle;             /* struct gy_uconn, most recently used first */
    struct gy_list h2conns;          /* HTTP/2 connections (multiplexed; none of them in idle) */
    uint32_t nidle;
    uint32_t max_idle;
    unsigned wrefs;                  /* wclusters pointing here */
    unsigned crefs;                  /* connections to this host (idle or busy) */
    bool h1_alpn;                    /* TLS: the host chose http/1.1 over h2 by ALPN; HTTP/2 attempts
                                        use HTTP/1.1 here until the worker has no connection to it */
    struct gy_stats_scope *stats;    /* the cluster's */
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

struct gy_wlistener {
    struct gy_list link;
    struct gy_io io;
    struct gy_worker *w;
    struct gy_task more;             /* accept budget ran out: continue after other work */
    struct gy_timer retry;           /* out of file descriptors: try again shortly */
    char addrkey[GY_ADDRSTRLEN];
    const struct gy_listener *cfg;   /* in the worker's current config */
};

enum gy_uconn_state { GY_UC_CONNECTING, GY_UC_ACTIVE, GY_UC_IDLE };

struct gy_shadow;
struct gy_h2u;
struct gy_up_ops;

struct gy_uconn {
    struct gy_io io;
    struct gy_worker *w;
    struct gy_upool *pool;           /* holds a reference while the connection lives */
    const struct gy_up_ops *ops;     /* the codec: HTTP/1.1 (one stream at a time) or HTTP/2 */
    struct gy_h2u *h2;               /* HTTP/2: the multiplexed session (up_h2.c) */
    struct gy_stream *stream;        /* HTTP/1.1: NULL when idle */
    struct gy_shadow *shadow;        /* or a shadow copy (dark, tap) uses it */
    struct gy_transport *transport;  /* NULL: raw TCP */
    bool cb_pending;                 /* holds a GY_CB_PENDING unit until connected */
    struct gy_list link;             /* in pool->idle */
    struct gy_buf rbuf, wbuf;
    struct gy_timer timer;           /* connect timeout, or idle timeout in the pool */
    enum gy_uconn_state state;
    bool can_read, can_write, eof, reused;
    bool hup;                        /* epoll saw the peer close: read until EOF */
    bool connect_failed;             /* refused, unreachable, timed out, or the TLS handshake failed */
    bool handshaking;                /* TLS handshake under way after the TCP connect */
    bool connect_timed_out;
    uint32_t nrequests;
};

struct gy_h2d;
struct gy_down_ops;

struct gy_dconn {
    struct gy_io io;
    struct gy_worker *w;
    struct gy_list link;             /* in w->conns */
    struct gy_wcfg *wcfg;            /* referenced */
    const struct gy_listener *lcfg;  /* in wcfg */
    const struct gy_down_ops *ops;   /* the codec: HTTP/1.1 or HTTP/2 (after detection) */
    struct gy_h2d *h2;               /* HTTP/2: the session and its streams (down_h2.c) */
    struct gy_buf rbuf, wbuf;
    struct gy_timer timer;           /* header timeout, keep-alive idle, lingering close */
    struct gy_task run_task;
    struct gy_stream *stream;        /* HTTP/1.1: the current stream */
    struct gy_transport *transport;  /* NULL: raw TCP */
    struct sockaddr_storage peer;
    char peer_ip[48];
    bool can_read, can_write, eof;
    bool hup;                        /* epoll saw the peer close: read until EOF */
    bool reset;                      /* epoll saw a socket error (the peer reset) */
    bool handshaking;                /* TLS handshake under way */
    bool closing;                    /* close once wbuf is flushed */
    bool lingering;                  /* write side shut, discarding input until the timer */
    bool retired;                    /* a reload removed or changed its listener: no new requests */
    enum { GY_DT_NONE, GY_DT_IDLE, GY_DT_HEADER, GY_DT_LINGER } timer_mode;
    bool freed;
    uint32_t nrequests;
};

/* Response flags for the access log (Envoy's letters). */
#define GY_RF_NR 0x01u  /* no route */
#define GY_RF_UH 0x02u  /* no healthy upstream */
#define GY_RF_UF 0x04u  /* upstream connect failure */
#define GY_RF_UT 0x08u  /* upstream request timeout */
#define GY_RF_UC 0x10u  /* upstream connection termination */
#define GY_RF_DC 0x20u  /* downstream connection termination */
#define GY_RF_DPE 0x40u /* downstream protocol error */
#define GY_RF_UPE 0x80u /* upstream protocol error */
#define GY_RF_SI 0x100u /* stream idle timeout */
#define GY_RF_FI 0x200u /* fault injected (or rate limited) by a filter */
#define GY_RF_UO 0x400u /* upstream overflow: a circuit breaker refused the request */
#define GY_RF_URX 0x800u /* retries exhausted: the answer of the last attempt was passed on */

/* How often a request the upstream refused unprocessed (HTTP/2 REFUSED_STREAM, or past the GOAWAY
 * of a connection that answered nothing) is sent again without counting as a retry. Past the
 * GOAWAY of a connection that did answer (a server ending connections after N requests), it is
 * sent again without limit: every round trip gets some requests answered. */
#define GY_MAX_REFUSED_RESENDS 3

/* A request or response head in protocol-neutral form. Slices point into the downstream or
 * upstream connection's buffer, or into the stream's pool; valid while the head is handled. */
struct gy_req_head {
    struct gy_slice method, scheme, authority, path, query;
    struct gy_slice target;          /* as the client sent it (h1 request-target, h2 :path) */
    struct gy_slice protocol;        /* h2 extended CONNECT :protocol, or the h1 Upgrade token */
    const struct gy_header *headers; /* regular fields, no pseudo-headers */
    unsigned nheaders;
    int64_t content_length;          /* -1: not given */
    bool body;                       /* a body follows the head */
    bool chunked;                    /* h1: chunked transfer coding */
    bool keep_alive, expect_continue, is_head, is_connect, upgrade;
    uint8_t version;                 /* 10, 11 or 20 */
    size_t head_len;                 /* h1: bytes of the head in the connection buffer */
};

struct gy_resp_head {
    int status;
    struct gy_slice reason;
    const struct gy_header *headers;
    unsigned nheaders;
    int64_t content_length;          /* -1: not given */
    bool body;                       /* a body follows (false: HEAD, 204, 304, END_STREAM) */
    bool tunnel;                     /* 101 Switching Protocols or 2xx to CONNECT: bytes both ways */
    bool keep_alive;                 /* HTTP/1.1 upstream: the connection may be reused after it */
    size_t head_len;                 /* HTTP/1.1 upstream: bytes of the head in the connection buffer */
};

/* Incremental HTTP/1 body framing (Content-Length, chunked or until EOF). */
struct gy_h1_bodydec {
    enum gy_h1_body framing;
    uint64_t remaining;
    struct gy_h1_chunked chunked;
};

/*
 * A downstream codec (DESIGN.md §3): what a stream asks of the client side. HTTP/1.1
 * (down_h1.c) writes straight into the connection buffer; HTTP/2 (down_h2.c) keeps per-stream
 * body buffers and frames them with nghttp2.
 */
struct gy_down_ops {
    const char *name;
    /* The request head again (after a filter's delay); 0 or an error. */
    int (*head_again)(struct gy_stream *s, struct gy_req_head *req);
    /* The head has been used: the connection buffer may drop it. */
    void (*head_done)(struct gy_stream *s, const struct gy_req_head *req);
    /* Moves request body bytes to the upstream (s->up), within its room; sets s->req_done at the
     * end of the body. True on progress. May reset or answer the stream on a bad body. */
    bool (*req_pump)(struct gy_stream *s);
    /* Room for response body bytes now (0: the client is slower; wait). */
    size_t (*resp_room)(struct gy_stream *s);
    /* Response head (final or 1xx); 0, GY_EAGAIN (no room yet) or an error. */
    int (*resp_head)(struct gy_stream *s, const struct gy_resp_head *h);
    /* Body bytes, n <= resp_room(). */
    void (*resp_data)(struct gy_stream *s, const char *p, size_t n);
    /* The body is over; trailers may follow it (HTTP/2 clients). 0 or GY_EAGAIN. */
    int (*resp_end)(struct gy_stream *s, const struct gy_header *trailers, unsigned ntrailers);
    /* A whole response made by the proxy (extra: header lines "name: value\r\n"). */
    int (*local_reply)(struct gy_stream *s, int status, const char *extra, const char *body, size_t len, bool close);
    /* Sends what is queued; true on progress. */
    bool (*flush)(struct gy_stream *s);
    /* True once the stream is over on this side and may be freed. */
    bool (*finished)(const struct gy_stream *s);
    /* The stream ended abnormally: reset it (HTTP/2) or close the connection (HTTP/1.1). */
    void (*reset)(struct gy_stream *s);
    /* Something happened to the stream outside of the connection's own events (upstream I/O,
     * a timer): run it soon. */
    void (*wake)(struct gy_stream *s);
};

/* An upstream codec: one request at a time per connection (h1) or multiplexed (h2). */
struct gy_up_ops {
    const char *name;
    /* Queues the request head and the body replayed so far on a new attempt; 0 or an error. */
    int (*start)(struct gy_stream *s);
    size_t (*req_room)(struct gy_stream *s);
    void (*req_data)(struct gy_stream *s, const char *p, size_t n);
    /* The request body is complete; 0 or GY_EAGAIN (no room for the end yet). */
    int (*req_end)(struct gy_stream *s);
    bool (*flush)(struct gy_stream *s);
    /* Moves response head and body to the downstream; true on progress. */
    bool (*resp_pump)(struct gy_stream *s);
    /* The attempt is abandoned: close the connection (h1) or reset the stream (h2). */
    void (*abort)(struct gy_stream *s);
    /* The response is complete: the connection goes back to the pool (if reusable) or closes. */
    void (*done)(struct gy_stream *s, bool reusable);
};

extern const struct gy_down_ops gy_down_h1, gy_down_h2;
extern const struct gy_up_ops gy_up_h1, gy_up_h2;

struct gy_filter_edits;

/* A 1xx response head waiting to be passed on (HTTP/2 upstreams). */
struct gy_info_head {
    struct gy_resp_head head;
    struct gy_info_head *next;
};

#define GY_MAX_INFO 4 /* 1xx heads kept per response; an upstream sending more loses the rest */

struct gy_stream {
    struct gy_dconn *dc;
    const struct gy_down_ops *down;  /* dc->ops */
    int32_t sid;                     /* HTTP/2 downstream stream id */
    struct gy_list link;             /* HTTP/2: in the connection's streams */
    struct gy_list ready;            /* HTTP/2: waiting to be run by the connection */
    struct gy_uconn *uc;
    const struct gy_up_ops *up;      /* uc->ops while an attempt is attached */
    int32_t usid;                    /* HTTP/2 upstream stream id */
    struct gy_list ulink;            /* HTTP/2 upstream: in the session's streams */
    struct gy_list uwake;            /* HTTP/2 upstream: to be woken once nghttp2 is out of the way */
    struct gy_wcfg *wcfg;            /* referenced */
    const struct gy_listener *lcfg;
    struct gy_route_result route;
    const struct gy_cluster *cluster;
    struct gy_wcluster *wcluster;
    int host;                        /* instance index, -1 before picking */
    struct gy_pool pool;
    struct gy_timer timeout;         /* route timeout, armed once the request is complete */
    struct gy_timer idle;            /* stream idle timeout (lazy: checks last_activity) */
    uint64_t last_activity;

    /* request */
    struct gy_slice method, target, host_hdr, request_id, user_agent, xff;
    uint8_t version;                 /* 10, 11, 20 */
    bool is_head, client_keep_alive;
    bool req_has_body;
    int64_t req_length;              /* content-length or -1 */
    struct gy_h1_bodydec req_dec;    /* HTTP/1.1 downstream: the body's framing */
    bool req_chunked_up;             /* sent chunked to an HTTP/1.1 upstream */
    bool req_done;                   /* the whole request has been taken from the client */
    bool req_sent;                   /* ... and handed to the current upstream attempt (incl. its end) */
    bool req_complete_seen;          /* the request was complete once: timers and shadows started */
    struct gy_req_head *saved_head;  /* HTTP/2: the head in the pool (for a filter's delay) */
    struct gy_slice uhead;           /* HTTP/1.1 upstream request head, kept for retries */
    void *unv;                       /* HTTP/2 upstream request headers (nghttp2_nv[]) in the pool */
    size_t nunv;
    struct gy_buf req_buf;           /* decoded request body between an HTTP/2 side and the other */
    bool req_buf_end;                /* HTTP/2 downstream: END_STREAM received */
    bool up_h2;                      /* the attempts speak HTTP/2 to the upstream */
    struct gy_buf ureq_buf;          /* HTTP/2 upstream: request body waiting for nghttp2 */
    struct gy_buf uresp_buf;         /* HTTP/2 upstream: response body waiting for the client side */
    struct gy_resp_head *uresp_head; /* HTTP/2 upstream: a response head to pass on (in the pool) */
    struct gy_info_head *uinfo;      /* HTTP/2 upstream: 1xx heads to pass on first, in order */
    uint8_t ninfo;                   /* 1xx heads received (at most GY_MAX_INFO are kept) */
    bool uclosed;                    /* HTTP/2 upstream: nghttp2 closed the stream (usid kept for windows) */
    bool refused;                    /* HTTP/2 upstream: REFUSED_STREAM (or past a GOAWAY): not processed */
    bool refused_free;               /* refused by a GOAWAY of a connection that answered others:
                                      * sent again without counting against GY_MAX_REFUSED_RESENDS */
    bool grpc;                       /* content-type application/grpc* */
    bool tunnel;                     /* WebSocket: h1 Upgrade or h2 extended CONNECT; raw bytes both ways */
    bool await_settings;             /* tunnel to HTTP/2: waits for the server's SETTINGS (RFC 8441 §3) */
    struct gy_slice ws_accept;       /* tunnel from HTTP/1.1 to HTTP/2: our Sec-WebSocket-Accept */
    struct gy_grpcweb grpc_web;      /* gRPC-Web caller, translated to gRPC for an HTTP/2 upstream */
    bool retried;

    /* response */
    int status;
    int grpc_status;                 /* -1: none seen */
    struct gy_h1_bodydec resp_dec;   /* HTTP/1.1 upstream */
    struct gy_buf resp_buf;          /* decoded response body between an HTTP/2 side and the other */
    const struct gy_header *trailers; /* from an HTTP/2 upstream, in the pool */
    unsigned ntrailers;
    bool resp_up_end;                /* HTTP/2 upstream: the response is complete in resp_buf */
    bool resp_started;               /* a final response head went to the client side */
    bool resp_done;                  /* the whole response went to the client side */
    bool resp_chunked_out;           /* re-encoding as chunked for the client */
    bool resp_eof_out;               /* close-delimited to the client */
    bool resp_body_out;              /* a body goes to the client (HTTP/2: DATA frames) */
    bool upstream_reusable;
    bool any_response_byte;          /* something came back from the upstream */
    bool status_from_upstream;
    bool need_last_chunk;            /* "0\r\n\r\n" still to be queued for the client */
    bool reset;                      /* ended abnormally */
    bool closed;                     /* HTTP/2: nghttp2 closed the stream */
    uint32_t rst_code;               /* HTTP/2: the code to reset the client's stream with (0: INTERNAL_ERROR) */

    /* upstream attempts (attempt.c) */
    const struct gy_retry_policy *retry;
    uint32_t attempts;               /* attempts begun */
    int tried[8];                    /* hosts of failed attempts, avoided by the next pick */
    unsigned ntried;
    bool host_counted;               /* s->host holds a unit of wcluster->active[] */
    bool cb_request;                 /* holds a GY_CB_REQUESTS unit */
    bool retry_unit;                 /* holds a GY_CB_RETRIES unit (a retry is in flight) */
    uint8_t stale_resends;           /* resent after a stale pooled connection or a refused stream */
    bool response_judged;            /* the final response head was checked for a retry */
    bool has_hash;
    uint64_t lb_hash;
    struct gy_timer backoff;         /* waiting before the next attempt */
    struct gy_timer per_try;         /* per-try timeout */
    struct gy_timer max_duration;    /* max_stream_duration, or the gRPC deadline */
    char *replay;                    /* decoded request body bytes sent so far, malloc'ed */
    uint32_t replay_len, replay_limit;
    bool keep_replay, replay_overflow;
    struct gy_slice resp_head;       /* the response head as forwarded, kept for taps */
    /* filters */
    uint64_t route_random;           /* the same routing decision when a filter's delay ends */
    size_t filter_next;
    struct gy_timer filter_timer;
    struct gy_filter_edits *edits;  /* header changes the filters asked for (in the pool), or NULL */

    uint32_t flags;                  /* GY_RF_* */
    uint64_t t_start_ns, t_upstream_ns, t_upstream_done_ns;
    uint64_t wall_start_us;
    uint64_t bytes_rx, bytes_tx;     /* body bytes from / to the client */
    char pool_first[4096];           /* a request through the proxy takes 2-2.5 KiB: no second block */
};

struct gy_alog_buf {
    char *data;
    size_t len;
    int fd;
};

struct gy_worker {
    unsigned id;
    struct gy_proxy *proxy;
    pthread_t thread;
    struct gy_loop loop;
    struct gy_bufpool bufs;
    struct gy_memcache h2mem;        /* nghttp2's allocations (both sides) */
    struct gy_timer housekeeping;    /* gives memory cached for a burst back after it */
    _Atomic size_t cached_bytes;     /* buffers and nghttp2 blocks kept for reuse, at the last housekeeping */
    struct gy_wcfg *wcfg;            /* current */
    struct gy_list listeners;        /* struct gy_wlistener */
    struct gy_list conns;            /* struct gy_dconn */
    size_t nconns;
    struct gy_upool **pool_table;    /* hash table of upools */
    size_t pool_buckets;
    uint64_t rng;
    bool draining;
    bool stopping;
    struct gy_alog_buf *alog;        /* per sink index */
    size_t nalog;
    struct gy_task alog_flush;
    struct gy_header *hdrs;          /* scratch for parsing request heads (GY_MAX_REQ_HEADERS) */
    struct gy_list shadows;          /* shadow copies in flight, and HTTP/2 ones' parked sessions */
    size_t nshadows;                 /* copies in flight */
    size_t nshadows_parked;          /* HTTP/2 sessions kept for the next copy to their host */
    struct gy_list dead;             /* closed upstream connections, freed after the event batch */
    struct gy_list dead_conns;       /* closed downstream connections, likewise */
    struct gy_list dead_listeners;   /* closed listeners, likewise */
    struct gy_task reap;
};

/* An open listening address: one SO_REUSEPORT socket per worker. */
struct gy_lsock {
    struct gy_lsock *next;
    char addrkey[GY_ADDRSTRLEN];
    int *fds;
};

struct gy_admin;
struct gy_xds;
struct gy_identity;

struct gy_proxy {
    struct gy_proxy_options opt;
    struct gy_loop loop;
    struct gy_worker *workers;
    unsigned nworkers;
    struct gy_config *config;        /* current, referenced */
    uint64_t generation;
    struct gy_lsock *socks;
    struct gy_alog_sink *sinks;
    unsigned nsinks;
    struct gy_alog_sink *global_sink; /* --access-log, for every listener */
    struct gy_admin *admin;
    struct gy_io signal_io;
    struct gy_timer watch_timer;
    struct gy_timer drain_timer;
    struct stat config_stat;
    bool draining;
    bool live;
    bool serving;                    /* workers started (dynamic mode waits for a first view) */
    struct gy_xds *xds;
    struct gy_identity *identity;    /* dynamic mode with a mesh CA: the SVID */
    struct gy_health_state *health;   /* health.c: active health checks (main thread) */
    struct gy_outlier_state *outlier; /* outlier.c: outlier detection (main thread) */
    char cache_path[4096];           /* dynamic mode: last applied view, "" if none */
    char version[256];               /* dynamic mode: version of the view being served */
    unsigned workers_running;        /* atomically updated by exiting workers */
    uint64_t reloads, reload_failures;
    char last_reload_error[512];
    uint64_t started_ms;
};

/* proxy.c */
int gy_proxy_run(const struct gy_proxy_options *opt);
void gy_proxy_begin_drain(struct gy_proxy *p, const char *why);
int gy_proxy_reload(struct gy_proxy *p, const char *why);

/* worker.c */
int gy_worker_start(struct gy_worker *w);
void gy_worker_post_config(struct gy_worker *w, struct gy_config *cfg, int *fds);
void gy_worker_post_drain(struct gy_worker *w);
void gy_worker_post_stop(struct gy_worker *w);
void gy_wcfg_release(struct gy_worker *w, struct gy_wcfg *wc);
static inline struct gy_wcfg *gy_wcfg_acquire(struct gy_wcfg *wc)
{
    wc->refs++;
    return wc;
}
uint64_t gy_worker_rand(struct gy_worker *w);

/* downstream.c: accepted connections, whatever their protocol */
void gy_dconn_free(struct gy_dconn *dc);
void gy_dconn_accept(struct gy_wlistener *wl, int fd, const struct sockaddr_storage *peer);
void gy_dconn_run(struct gy_dconn *dc);
void gy_dconn_close(struct gy_dconn *dc);
void gy_dconn_drain(struct gy_dconn *dc);
/* Its listener was removed or changed by a reload: HTTP/2 gets GOAWAY now and closes after its
 * streams; HTTP/1.1 closes now when idle, else after the request under way. */
void gy_dconn_retire(struct gy_dconn *dc);
/* Whether a connection of listener `old` can go on under `now` (same key in the new config):
 * the address, protocol, TLS and HTTP/2 settings it was set up with are unchanged. */
bool gy_listener_same_setup(const struct gy_listener *old, const struct gy_listener *now);
/* Starts closing politely: shut the write side, discard input for a while. */
void gy_dconn_begin_close(struct gy_dconn *dc);
void gy_dconn_set_timer(struct gy_dconn *dc, int mode, uint32_t ms);
/* When the config changed, the next request uses the new one; false when the listener is gone
 * (or the connection was retired). */
bool gy_dconn_follow_config(struct gy_dconn *dc);
/* Reads more of the client's bytes if the socket may have some and rbuf has room; true if any came. */
bool gy_dconn_read(struct gy_dconn *dc);
/* Writes wbuf out; false on a hard error. */
bool gy_dconn_flush(struct gy_dconn *dc);
/* Reads what the socket has into rbuf (up to its room); returns bytes read, 0 at EOF or nothing.
 * A short read means the socket is drained, unless the peer already closed (`hup`): then the
 * next read returns the EOF, which edge-triggered epoll will not announce again. */
ssize_t gy_conn_read(int fd, struct gy_transport *t, struct gy_buf *b, bool *can_read, bool *eof, bool hup);
/* Writes as much of b as the socket takes; returns bytes written or -1 on a hard error. */
ssize_t gy_conn_write(int fd, struct gy_transport *t, struct gy_buf *b, bool *can_write);

/* down_h1.c: the HTTP/1.1 side of a downstream connection */
/* Runs an HTTP/1.1 connection: the current stream, then the next request head. */
void gy_h1d_run(struct gy_dconn *dc);
void gy_h1d_close(struct gy_dconn *dc);
void gy_h1d_timer(struct gy_dconn *dc);

/* down_h2.c: HTTP/2 downstream connections (prior knowledge, Upgrade: h2c, ALPN h2) */
/* Turns dc into an HTTP/2 connection; `upgrade` is the h1 request that asked for h2c (its
 * stream 1), else NULL. 0 or an error (the connection is then closed by the caller). */
int gy_h2d_start(struct gy_dconn *dc, const struct gy_req_head *upgrade, const char *settings, size_t settings_len);
void gy_h2d_run(struct gy_dconn *dc);
void gy_h2d_drain(struct gy_dconn *dc);
void gy_h2d_close(struct gy_dconn *dc);
void gy_h2d_timer(struct gy_dconn *dc);
/* True if buf starts like the HTTP/2 connection preface (enough bytes to tell: *sure). */
bool gy_h2_preface_prefix(const char *buf, size_t len, bool *sure);

/* stream.c */
struct gy_stream *gy_stream_new(struct gy_dconn *dc);
void gy_stream_start(struct gy_stream *s, const struct gy_req_head *req);
bool gy_stream_pump(struct gy_stream *s);
bool gy_stream_finished(const struct gy_stream *s);
void gy_stream_free(struct gy_stream *s);
/* Answers locally (status, flag, short body) if no response has started; else resets. */
void gy_stream_local_reply(struct gy_stream *s, int status, uint32_t flag, const char *body);
/* The same with extra header lines ("x-a: b\r\n"). */
void gy_stream_reply_extra(struct gy_stream *s, int status, uint32_t flag, const char *extra, const char *body);
/* Ends the stream abnormally: the upstream attempt is aborted and the client side reset. */
void gy_stream_reset(struct gy_stream *s, uint32_t flag);
void gy_stream_upstream_event(struct gy_stream *s);
/* A final (or 1xx) response head from the upstream codec: retry decision, then to the client.
 * Returns 1 when handled, 0 to try again later (no room), -1 when the stream ended or retried. */
int gy_stream_response_head(struct gy_stream *s, const struct gy_resp_head *h);
/* The upstream response is complete. */
void gy_stream_response_complete(struct gy_stream *s, bool reusable);
/* Trailers of the upstream response (in the stream's pool), passed on with its end. */
void gy_stream_trailers(struct gy_stream *s, const struct gy_header *h, unsigned n);
/* The idle timeout of a stream (route's, else the listener's). */
uint32_t gy_stream_idle_timeout_ms(const struct gy_stream *s);

/* forward.c: header rules (one place for both protocols) and HTTP/1 framing helpers */
/* True when a request header must not be forwarded as received. */
bool gy_fwd_skip_request_header(const struct gy_stream *s, const struct gy_header *h, const struct gy_header *all,
                                unsigned n);
bool gy_fwd_skip_response_header(const struct gy_stream *s, const struct gy_header *h, const struct gy_header *all,
                                 unsigned n);
/* The HTTP/1.1 request head for the upstream, into the stream's pool (s->uhead). */
int gy_fwd_request_head(struct gy_stream *s, const struct gy_req_head *req, struct gy_slice path);
/* The HTTP/2 request headers for the upstream, into the stream's pool (s->unv, s->nunv); a
 * WebSocket tunnel becomes an extended CONNECT (RFC 8441) without the HTTP/1.1 handshake fields. */
int gy_fwd_request_nv(struct gy_stream *s, const struct gy_req_head *req, struct gy_slice path);
/* An HTTP/2 header for nghttp2 into *out (an nghttp2_nv) with the HPACK flags of gy_h2_nv_flags
 * and `keep` (NGHTTP2_NV_FLAG_NO_COPY_NAME/VALUE for literals only). nghttp2 lower-cases the names
 * it copies; a name it keeps must be lower case already. */
void gy_fwd_nv(struct gy_slice name, struct gy_slice value, uint8_t keep, void *out);
/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2), into the pool; NULL slice on
 * failure. */
struct gy_slice gy_fwd_ws_accept(struct gy_pool *pool, struct gy_slice key);
int gy_fwd_response_head(struct gy_stream *s, const struct gy_resp_head *res, struct gy_buf *out, bool keep);
int gy_fwd_informational(const struct gy_resp_head *res, struct gy_buf *out);
/* Calls fn(arg, name, value) for each response header to send (route and domain ops applied,
 * hop-by-hop dropped, via added), for an HTTP/2 client. */
void gy_fwd_response_fields(struct gy_stream *s, const struct gy_resp_head *res,
                            void (*fn)(void *arg, struct gy_slice name, struct gy_slice value), void *arg);
void gy_h1_bodydec_init(struct gy_h1_bodydec *d, enum gy_h1_body framing, uint64_t length);
/* Takes the next span of body data from in[0..len), at most max bytes of data, decoding the
 * framing. Returns input bytes consumed or GY_EPARSE; *data is inside `in`; *done at the end. */
long gy_h1_bodydec_next(struct gy_h1_bodydec *d, const char *in, size_t len, size_t max, struct gy_slice *data,
                        bool *done);
/* Appends body data to an HTTP/1.1 buffer, as a chunk when `chunked` (room checked by the caller). */
void gy_h1_put_body(struct gy_buf *out, const char *p, size_t n, bool chunked);

/* respond.c: whole responses the proxy writes itself */
int gy_write_local_response(struct gy_buf *b, int status, const char *extra_headers, const char *body,
                            size_t body_len, bool close, bool head_only);
const char *gy_http_date(void);

/* attempt.c: upstream attempts, retries, circuit breakers */
enum gy_attempt_failure { GY_FAIL_CONNECT, GY_FAIL_RESET, GY_FAIL_TIMEOUT };
void gy_attempt_init(struct gy_stream *s, const struct gy_req_head *req);
/* Begins an attempt (the first, or a retry after its backoff); replies itself on failure. */
void gy_attempt_begin(struct gy_stream *s);
/* The current attempt failed before a response: retry, or answer (503/504) or reset. */
void gy_attempt_failed(struct gy_stream *s, enum gy_attempt_failure why);
/* A final response head arrived: true if the attempt is retried instead (drop the response). */
bool gy_attempt_response(struct gy_stream *s, const struct gy_resp_head *res);
/* Body bytes queued for the upstream, kept for replays and shadows. */
void gy_attempt_replay_add(struct gy_stream *s, const char *p, size_t n);
/* Detaches the current attempt from its upstream (aborting it). */
void gy_attempt_detach(struct gy_stream *s);
/* The attempt's connection turned out to speak HTTP/1.1 (ALPN) before anything was sent: the
 * stream is off it (s->uc is stale) and starts over, not counted as a retry. */
void gy_attempt_restart(struct gy_stream *s);
void gy_attempt_cleanup(struct gy_stream *s);
void gy_stream_overflow_reply(struct gy_stream *s);

/* shadow.c: copies for dark and tap clusters, answers discarded */
void gy_shadow_dark(struct gy_stream *s);
void gy_shadow_tap(struct gy_stream *s);
void gy_shadow_event(struct gy_shadow *sh);
void gy_shadows_close(struct gy_worker *w);

/* upstream.c */
struct gy_upool *gy_upool_get(struct gy_worker *w, const struct gy_cluster *c, const struct gy_instance *in,
                              struct gy_stats_scope *stats);
void gy_upool_put(struct gy_worker *w, struct gy_upool *p);
/* Takes an idle connection (or NULL). */
struct gy_uconn *gy_upool_take(struct gy_upool *p);
/* What a new upstream connection is for; over TLS it decides what ALPN offers. */
enum gy_uc_kind {
    GY_UC_HTTP1, /* HTTP/1.1 ("http/1.1") */
    GY_UC_HTTP2, /* a pooled HTTP/2 session ("h2", then "http/1.1": gy_h2u_* handles the answer) */
    GY_UC_ALPN,  /* "h2", then "http/1.1", for an owner that reads gy_tls_alpn() itself (a shadow copy) */
};

/* Opens a new connection (connecting). NULL on immediate failure, with *overflow set when a
 * circuit breaker (max_connections, max_pending_requests) refused it. */
struct gy_uconn *gy_uconn_open(struct gy_worker *w, struct gy_upool *p, const struct gy_cluster *c,
                               const struct gy_instance *in, enum gy_uc_kind kind, bool *overflow);
/* An HTTP/2 connection to the host with room for one more stream (or NULL). */
struct gy_uconn *gy_upool_take_h2(struct gy_upool *p);
/* Gives the connection (idle, new, or an HTTP/2 one with room) to a stream's attempt. */
int gy_uconn_attach(struct gy_uconn *uc, struct gy_stream *s);
/* The stream is done with the connection: back to the pool if reusable, else closed. */
void gy_uconn_release(struct gy_uconn *uc, bool reusable, uint32_t idle_timeout_ms);
void gy_uconn_close(struct gy_uconn *uc);
void gy_upools_close_idle(struct gy_worker *w);

/* up_h2.c: multiplexed HTTP/2 upstream connections */
int gy_h2u_open(struct gy_uconn *uc, const struct gy_cluster *c);
void gy_h2u_event(struct gy_uconn *uc);
void gy_h2u_timer(struct gy_uconn *uc);
int gy_h2u_attach(struct gy_uconn *uc, struct gy_stream *s);
bool gy_h2u_has_room(struct gy_uconn *uc);
unsigned gy_h2u_streams(const struct gy_uconn *uc);
/* Fails the streams still on it and frees the session (from gy_uconn_close). */
void gy_h2u_free(struct gy_uconn *uc);

/* accesslog.c */
struct gy_alog_sink *gy_alog_sink_open(struct gy_proxy *p, const char *path, const char *format, char *err,
                                       size_t errlen);
void gy_alog_reopen(struct gy_proxy *p);
void gy_alog_record(struct gy_worker *w, const struct gy_stream *s);
void gy_alog_flush(struct gy_worker *w);

/* admin.c */
int gy_admin_start(struct gy_proxy *p, const char *addr);
void gy_admin_stop(struct gy_proxy *p);

#endif
