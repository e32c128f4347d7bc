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
#include "core/list.h"
#include "core/loop.h"
#include "core/pool.h"
#include "http/h1.h"
#include "mesh/config.h"
#include "net/sock.h"
#include "net/transport.h"
#include "proxy/lb.h"
#include "proxy/router.h"
#include "proxy/stats.h"

struct gy_proxy_options {
    const char *config_path;         /* static mode: the mesh file */
    const char *control_url;         /* dynamic mode: the control plane */
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
    uint32_t nidle;
    uint32_t max_idle;
    unsigned wrefs;                  /* wclusters pointing here */
    unsigned crefs;                  /* connections to this host (idle or busy) */
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

struct gy_uconn {
    struct gy_io io;
    struct gy_worker *w;
    struct gy_upool *pool;           /* holds a reference while the connection lives */
    struct gy_stream *stream;        /* NULL when idle */
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

struct gy_dconn {
    struct gy_io io;
    struct gy_worker *w;
    struct gy_list link;             /* in w->conns */
    struct gy_wcfg *wcfg;            /* referenced */
    const struct gy_listener *lcfg;  /* in wcfg */
    struct gy_buf rbuf, wbuf;
    struct gy_timer timer;           /* header timeout, keep-alive idle, lingering close */
    struct gy_task run_task;
    struct gy_stream *stream;
    struct gy_transport *transport;  /* NULL: raw TCP */
    struct sockaddr_storage peer;
    char peer_ip[48];
    bool can_read, can_write, eof;
    bool hup;                        /* epoll saw the peer close: read until EOF */
    bool handshaking;                /* TLS handshake under way */
    bool closing;                    /* close once wbuf is flushed */
    bool lingering;                  /* write side shut, discarding input until the timer */
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

struct gy_stream {
    struct gy_dconn *dc;
    struct gy_uconn *uc;
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
    int minor_version;
    bool is_head, client_keep_alive;
    enum gy_h1_body req_body;
    uint64_t req_remaining;
    struct gy_h1_chunked req_chunked;
    bool req_done;                   /* the whole request has been taken from the client */
    bool req_sent;                   /* ... and handed to the upstream buffer (incl. last chunk) */
    struct gy_slice uhead;           /* the upstream request head, kept to resend on a stale reused connection */
    bool retried;

    /* response */
    int status;
    enum gy_h1_body resp_body;
    uint64_t resp_remaining;
    struct gy_h1_chunked resp_chunked;
    bool resp_started;               /* a final response head is in dc->wbuf */
    bool resp_done;                  /* the whole response is in dc->wbuf */
    bool resp_chunked_out;           /* re-encoding as chunked for the client */
    bool resp_eof_out;               /* close-delimited to the client */
    bool upstream_reusable;
    bool any_response_byte;          /* something came back from the upstream */
    bool status_from_upstream;
    bool need_last_chunk;            /* "0\r\n\r\n" still to be queued for the client */
    bool reset;                      /* ended abnormally: the connection closes */

    /* upstream attempts (attempt.c) */
    const struct gy_retry_policy *retry;
    uint32_t attempts;               /* attempts begun */
    int tried[8];                    /* hosts of failed attempts, avoided by the next pick */
    unsigned ntried;
    bool host_counted;               /* s->host holds a unit of wcluster->active[] */
    bool cb_request;                 /* holds a GY_CB_REQUESTS unit */
    bool retry_unit;                 /* holds a GY_CB_RETRIES unit (a retry is in flight) */
    bool stale_resent;               /* resent once on a fresh connection after a stale pooled one */
    bool response_judged;            /* the final response head was checked for a retry */
    bool has_hash;
    uint64_t lb_hash;
    struct gy_timer backoff;         /* waiting before the next attempt */
    struct gy_timer per_try;         /* per-try timeout */
    struct gy_timer max_duration;    /* max_stream_duration */
    char *replay;                    /* request body bytes as sent upstream (framed), malloc'ed */
    uint32_t replay_len, replay_limit;
    bool keep_replay, replay_overflow;
    struct gy_slice resp_head;       /* the response head as forwarded, kept for taps */
    /* filters */
    uint64_t route_random;           /* the same routing decision when a filter's delay ends */
    size_t filter_next;
    struct gy_timer filter_timer;

    uint32_t flags;                  /* GY_RF_* */
    uint64_t t_start_ns, t_upstream_ns, t_upstream_done_ns;
    uint64_t wall_start_us;
    uint64_t bytes_rx, bytes_tx;     /* body bytes from / to the client */
    char pool_first[1024];
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
    struct gy_list shadows;          /* shadow copies in flight */
    size_t nshadows;
    struct gy_list dead;             /* closed upstream connections, freed after the event batch */
    struct gy_list dead_conns;       /* closed downstream connections, likewise */
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

/* downstream.c */
void gy_dconn_free(struct gy_dconn *dc);
void gy_dconn_accept(struct gy_wlistener *wl, int fd, const struct sockaddr_storage *peer);
void gy_dconn_run(struct gy_dconn *dc);
void gy_dconn_close(struct gy_dconn *dc);
void gy_dconn_drain(struct gy_dconn *dc);
/* Parses the request head at the start of rbuf again (after a filter's delay); 0 or an error. */
int gy_dconn_parse_head(struct gy_dconn *dc, struct gy_h1_request *req);
/* Reads more of the client's bytes if the socket may have some and rbuf has room; true if any came. */
bool gy_dconn_read(struct gy_dconn *dc);
/* Reads what the socket has into rbuf (up to its room); returns bytes read, 0 at EOF or nothing.
 * A short read means the socket is drained, unless the peer already closed (`hup`): then the
 * next read returns the EOF, which edge-triggered epoll will not announce again. */
ssize_t gy_conn_read(int fd, struct gy_transport *t, struct gy_buf *b, bool *can_read, bool *eof, bool hup);
/* Writes as much of b as the socket takes; returns bytes written or -1 on a hard error. */
ssize_t gy_conn_write(int fd, struct gy_transport *t, struct gy_buf *b, bool *can_write);

/* stream.c */
struct gy_stream *gy_stream_new(struct gy_dconn *dc);
void gy_stream_start(struct gy_stream *s, const struct gy_h1_request *req);
bool gy_stream_pump(struct gy_stream *s);
bool gy_stream_finished(const struct gy_stream *s);
void gy_stream_free(struct gy_stream *s);
/* Answers locally (status, flag, short body) if no response has started; else resets. */
void gy_stream_local_reply(struct gy_stream *s, int status, uint32_t flag, const char *body);
/* The same with extra header lines ("x-a: b\r\n"). */
void gy_stream_reply_extra(struct gy_stream *s, int status, uint32_t flag, const char *extra, const char *body);
/* Ends the stream abnormally: the upstream connection and then the client connection close. */
void gy_stream_reset(struct gy_stream *s, uint32_t flag);
void gy_stream_upstream_event(struct gy_stream *s);

/* forward.c */
int gy_fwd_request_head(struct gy_stream *s, const struct gy_h1_request *req, struct gy_slice path);
int gy_fwd_response_head(struct gy_stream *s, const struct gy_h1_response *res, struct gy_buf *out, bool keep);
int gy_fwd_informational(const struct gy_h1_response *res, struct gy_buf *out);
long gy_fwd_body(struct gy_buf *in, struct gy_buf *out, enum gy_h1_body framing, uint64_t *remaining,
                 struct gy_h1_chunked *dec, bool chunk_out, bool *done);

/* respond.c: whole responses the proxy writes itself */
int gy_write_local_response(struct gy_buf *b, int status, const char *extra_headers, const char *body,
                            size_t body_len, bool close, bool head_only);

/* attempt.c: upstream attempts, retries, circuit breakers */
enum gy_attempt_failure { GY_FAIL_CONNECT, GY_FAIL_RESET, GY_FAIL_TIMEOUT };
void gy_attempt_init(struct gy_stream *s, const struct gy_h1_request *req);
/* Begins an attempt (the first, or a retry after its backoff); replies itself on failure. */
void gy_attempt_begin(struct gy_stream *s);
/* The current attempt failed before a response: retry, or answer (503/504) or reset. */
void gy_attempt_failed(struct gy_stream *s, enum gy_attempt_failure why);
/* A final response head arrived: true if the attempt is retried instead (drop the response). */
bool gy_attempt_response(struct gy_stream *s, const struct gy_h1_response *res);
/* Body bytes queued for the upstream, kept for replays and shadows. */
void gy_attempt_replay_add(struct gy_stream *s, const char *p, size_t n);
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
/* Opens a new connection (connecting). NULL on immediate failure, with *overflow set when a
 * circuit breaker (max_connections, max_pending_requests) refused it. */
struct gy_uconn *gy_uconn_open(struct gy_worker *w, struct gy_upool *p, const struct gy_cluster *c,
                               const struct gy_instance *in, bool *overflow);
/* The stream is done with the connection: back to the pool if reusable, else closed. */
void gy_uconn_release(struct gy_uconn *uc, bool reusable, uint32_t idle_timeout_ms);
void gy_uconn_close(struct gy_uconn *uc);
void gy_upools_close_idle(struct gy_worker *w);

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
