/*
 * Upstream attempts of a stream: picking a host (skipping unhealthy, ejected and already tried
 * hosts, unless too few are healthy: the panic threshold), circuit breakers, retries with
 * jittered exponential backoff under a retry budget, per-try timeouts, and the outcome of each
 * attempt for outlier detection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "proxy/hosts.h"
#include "proxy/proxy.h"

#define DEFAULT_REPLAY (64u * 1024u)

static const char connect_failure_text[] =
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
static const char connect_timeout_text[] =
    "upstream connect error or disconnect/reset before headers. reset reason: connection timeout";
static const char reset_text[] =
    "upstream connect error or disconnect/reset before headers. reset reason: connection termination";

static void backoff_cb(struct gy_timer *t);
static void per_try_cb(struct gy_timer *t);
static void begin(struct gy_stream *s, bool fresh);

static struct gy_host *host_state(const struct gy_stream *s, int idx)
{
    return s->cluster->instances[idx].state;
}

static uint64_t request_hash(const struct gy_stream *s, const struct gy_req_head *req, bool *has)
{
    const struct gy_hash_policy *hp = &s->route.route->hash_policy;
    struct gy_slice v;
    const struct gy_header *h;

    *has = false;
    switch (hp->source) {
    case GY_HASH_HEADER:
        if ((h = gy_header_find(req->headers, req->nheaders, gy_slice_cstr(hp->name))) == NULL)
            return 0;
        v = h->value;
        break;
    case GY_HASH_COOKIE:
        if (!gy_header_cookie(req->headers, req->nheaders, gy_slice_cstr(hp->name), &v))
            return 0;
        break;
    case GY_HASH_SOURCE_IP:
        v = gy_slice_cstr(s->dc->peer_ip);
        break;
    default:
        return 0;
    }
    *has = true;
    return gy_lb_hash(v.ptr, v.len);
}

void gy_attempt_init(struct gy_stream *s, const struct gy_req_head *req)
{
    const struct gy_rule *rule = s->route.rule;

    s->cluster = s->route.cluster;
    s->wcluster = &s->wcfg->clusters[s->cluster->index];
    s->retry = s->route.route->retry;
    s->up_h2 = s->cluster->http2 || (s->cluster->use_downstream_protocol && req->version == 20);
    gy_timer_init(&s->backoff, backoff_cb);
    gy_timer_init(&s->per_try, per_try_cb);
    if (s->cluster->lb_policy == GY_LB_RING_HASH)
        s->lb_hash = request_hash(s, req, &s->has_hash);
    /* Retries and shadow copies replay the body: keep it, up to a limit. */
    s->keep_replay = req->body &&
                     (s->retry != NULL || (rule != NULL && (rule->ndark > 0 || rule->ntap > 0)));
    s->replay_limit = s->retry != NULL ? s->retry->max_request_bytes : DEFAULT_REPLAY;
    if (s->grpc_web.mode == GY_GRPCWEB_TEXT)
        s->keep_replay = false; /* the replay would be base64: no retries for these */
    if (!s->up_h2)
        s->grpc_web.mode = GY_GRPCWEB_NONE; /* translated only for gRPC (HTTP/2) upstreams */
    gy_stat_inc(s->cluster->stats, s->dc->w->id, GY_C_RQ_ACTIVE);
}

void gy_attempt_replay_add(struct gy_stream *s, const char *p, size_t n)
{
    if (!s->keep_replay || s->replay_overflow || n == 0)
        return;
    if (s->replay_len + n > s->replay_limit) {
        s->replay_overflow = true; /* too big to replay: no retries, no shadow copies */
        free(s->replay);
        s->replay = NULL;
        s->replay_len = 0;
        return;
    }
    char *np = realloc(s->replay, s->replay_len + n);
    if (np == NULL) {
        s->replay_overflow = true;
        return;
    }
    memcpy(np + s->replay_len, p, n);
    s->replay = np;
    s->replay_len += (uint32_t)n;
}

/* ---- picking ---- */

static bool tried(const struct gy_stream *s, int idx)
{
    for (unsigned i = 0; i < s->ntried; i++)
        if (s->tried[i] == idx)
            return true;
    return false;
}

static int pick(struct gy_stream *s)
{
    const struct gy_cluster *c = s->cluster;
    size_t n = c->ninstances, healthy = 0;
    uint8_t small[64], *ex = n <= sizeof(small) ? small : gy_pool_alloc(&s->pool, n);
    struct gy_lb_ctx ctx = {
        .hash = s->lb_hash,
        .has_hash = s->has_hash,
        .active = s->wcluster->active,
        .subset = s->route.constraint != NULL && s->route.constraint->nmetadata ? s->route.constraint : NULL,
        .rng = &s->dc->w->rng,
    };

    if (n == 0 || ex == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct gy_host *h = host_state(s, (int)i);
        ex[i] = h != NULL && !gy_host_usable(h);
        healthy += !ex[i];
    }
    /* Panic: with too few healthy hosts, spread over all of them rather than overload the few. */
    if (healthy * 100 < (size_t)c->panic_threshold * n)
        memset(ex, 0, n);
    for (size_t i = 0; i < n; i++)
        ex[i] |= tried(s, (int)i);
    ctx.excluded = ex;
    int idx = gy_lb_pick(c, s->wcluster->lb, &ctx);
    if (idx < 0 && s->ntried > 0) { /* every usable host was tried: try one again */
        for (size_t i = 0; i < n; i++)
            ex[i] = 0;
        idx = gy_lb_pick(c, s->wcluster->lb, &ctx);
    }
    return idx;
}

static void release_host(struct gy_stream *s)
{
    if (s->host_counted && s->wcluster->active[s->host] > 0)
        s->wcluster->active[s->host]--;
    s->host_counted = false;
}

/* ---- replies that end the stream ---- */

void gy_stream_overflow_reply(struct gy_stream *s)
{
    gy_stat_inc(s->cluster->stats, s->dc->w->id, GY_C_OVERFLOW);
    s->flags |= GY_RF_UO;
    gy_stream_reply_extra(s, 503, GY_RF_UO, "x-gyrus-overloaded: true\r\n", "upstream overflow");
}

static void final_failure(struct gy_stream *s, enum gy_attempt_failure why, bool timed_out)
{
    switch (why) {
    case GY_FAIL_CONNECT:
        gy_stream_local_reply(s, 503, GY_RF_UF, timed_out ? connect_timeout_text : connect_failure_text);
        break;
    case GY_FAIL_TIMEOUT:
        gy_stat_inc(s->cluster->stats, s->dc->w->id, GY_C_RQ_TIMEOUT);
        gy_stream_local_reply(s, 504, GY_RF_UT, "upstream request timeout");
        break;
    default:
        gy_stream_local_reply(s, 503, GY_RF_UC, reset_text);
        break;
    }
    if (s->attempts > 1)
        s->flags |= GY_RF_URX;
}

/* ---- retries ---- */

static uint32_t conditions_for(enum gy_attempt_failure why)
{
    uint32_t c = GY_RETRY_5XX | GY_RETRY_GATEWAY_ERROR | GY_RETRY_RESET;
    return why == GY_FAIL_CONNECT ? c | GY_RETRY_CONNECT_FAILURE : c;
}

static int grpc_status_of(const struct gy_resp_head *res)
{
    const struct gy_header *h = gy_header_find(res->headers, res->nheaders, GY_SLICE_LIT("grpc-status"));
    return h != NULL ? (int)gy_slice_to_u63(h->value) : -1;
}

static bool status_retriable(const struct gy_retry_policy *rp, const struct gy_resp_head *res)
{
    int st = res->status, g;

    if ((rp->retry_on & GY_RETRY_5XX) && st >= 500)
        return true;
    if ((rp->retry_on & GY_RETRY_GATEWAY_ERROR) && st >= 502 && st <= 504)
        return true;
    if ((rp->retry_on & GY_RETRY_RETRIABLE_4XX) && st == 409)
        return true;
    if (rp->retry_on & GY_RETRY_STATUS_CODES)
        for (size_t i = 0; i < rp->nstatus_codes; i++)
            if (rp->status_codes[i] == st)
                return true;
    if ((g = grpc_status_of(res)) > 0)
        return ((rp->retry_on & GY_RETRY_GRPC_CANCELLED) && g == 1) ||
               ((rp->retry_on & GY_RETRY_GRPC_DEADLINE_EXCEEDED) && g == 4) ||
               ((rp->retry_on & GY_RETRY_GRPC_RESOURCE_EXHAUSTED) && g == 8) ||
               ((rp->retry_on & GY_RETRY_GRPC_INTERNAL) && g == 13) ||
               ((rp->retry_on & GY_RETRY_GRPC_UNAVAILABLE) && g == 14);
    return false;
}

static void release_retry_unit(struct gy_stream *s)
{
    if (s->retry_unit) {
        gy_cb_give(s->cluster->stats, GY_CB_RETRIES);
        s->retry_unit = false;
    }
}

/* Budget: retries in flight at most percent of the requests in flight, but min_concurrency always. */
static bool take_retry_unit(struct gy_stream *s)
{
    struct gy_stats_scope *st = s->cluster->stats;
    int64_t rq = atomic_load_explicit(&st->cb_used[GY_CB_REQUESTS], memory_order_relaxed);
    int64_t rt = atomic_load_explicit(&st->cb_used[GY_CB_RETRIES], memory_order_relaxed);
    int64_t budget = rq * (int64_t)s->cluster->retry_budget.percent / 100;

    if (budget < (int64_t)s->cluster->retry_budget.min_concurrency)
        budget = s->cluster->retry_budget.min_concurrency;
    if (s->retry_unit)
        return true;
    if (rt >= budget || !gy_cb_take(st, GY_CB_RETRIES))
        return false;
    s->retry_unit = true;
    return true;
}

/* Schedules another attempt if the policy, the attempt count, the budget and the request allow. */
static bool retry(struct gy_stream *s, uint32_t conditions)
{
    const struct gy_retry_policy *rp = s->retry;
    struct gy_worker *w = s->dc->w;

    if (rp == NULL || !(rp->retry_on & conditions) || s->attempts > rp->num_retries || s->resp_started ||
        s->replay_overflow || (s->req_has_body && !s->keep_replay))
        return false;
    release_retry_unit(s);
    if (!take_retry_unit(s)) {
        gy_stat_inc(s->cluster->stats, w->id, GY_C_RETRY_OVERFLOW);
        return false;
    }
    if (s->host >= 0 && s->ntried < sizeof(s->tried) / sizeof(s->tried[0]))
        s->tried[s->ntried++] = s->host;
    /* Exponential backoff with jitter: a random point in the upper half of base × 2^(n-1), capped. */
    uint64_t ceiling = (uint64_t)rp->backoff_base_ms << (s->attempts - 1 < 20 ? s->attempts - 1 : 20);
    if (ceiling > rp->backoff_max_ms)
        ceiling = rp->backoff_max_ms;
    uint64_t delay = ceiling / 2 + gy_worker_rand(w) % (ceiling - ceiling / 2 + 1);
    gy_stat_inc(s->cluster->stats, w->id, GY_C_RETRY);
    gy_timer_start(&w->loop, &s->backoff, delay);
    return true;
}

void gy_attempt_detach(struct gy_stream *s)
{
    if (s->uc != NULL) {
        s->up->abort(s);
        s->uc = NULL;
        s->up = NULL;
    }
}

static void detach(struct gy_stream *s)
{
    gy_timer_stop(&s->dc->w->loop, &s->per_try);
    gy_attempt_detach(s);
    release_host(s);
}

/* After a retriable answer: if all of it is already buffered and the upstream keeps the
 * connection, drop the answer and pool the connection instead of closing it. */
static void detach_after_answer(struct gy_stream *s, const struct gy_resp_head *res)
{
    struct gy_uconn *uc = s->uc;
    uint64_t body = !res->body ? 0 : res->content_length >= 0 ? (uint64_t)res->content_length : UINT64_MAX;

    if (uc != NULL && s->up == &gy_up_h1 && res->keep_alive && body != UINT64_MAX &&
        gy_buf_len(&uc->rbuf) == res->head_len + body && gy_buf_len(&uc->wbuf) == 0 && s->req_sent) {
        gy_buf_consume(&uc->rbuf, gy_buf_len(&uc->rbuf));
        gy_timer_stop(&s->dc->w->loop, &s->per_try);
        s->up->done(s, true);
        s->uc = NULL;
        s->up = NULL;
    }
    detach(s);
}

void gy_attempt_failed(struct gy_stream *s, enum gy_attempt_failure why)
{
    struct gy_uconn *uc = s->uc;
    bool timed_out = uc != NULL && uc->connect_timed_out;
    bool stale = uc != NULL && (uc->reused || s->refused) && !s->any_response_byte && why == GY_FAIL_RESET;

    if (s->host >= 0)
        gy_host_outcome(s->dc->w->proxy, host_state(s, s->host), s->cluster, 0);
    detach(s);
    if (s->resp_started) {
        gy_stream_reset(s, GY_RF_UC);
        return;
    }
    /* A pooled connection the upstream had closed meanwhile: resend once on a fresh one, policy or
     * not. A stream the upstream refused (REFUSED_STREAM, or past its GOAWAY) was not processed:
     * it may go again a few times, as servers that end connections by GOAWAY refuse in bursts. */
    if (stale && (s->refused_free || s->stale_resends < (s->refused ? GY_MAX_REFUSED_RESENDS : 1)) &&
        (!s->req_has_body || (s->keep_replay && !s->replay_overflow))) {
        if (!s->refused_free)
            s->stale_resends++;
        s->attempts--; /* not a retry: it does not count against the policy */
        begin(s, true);
        return;
    }
    if (!retry(s, conditions_for(why)))
        final_failure(s, why, timed_out);
}

bool gy_attempt_response(struct gy_stream *s, const struct gy_resp_head *res)
{
    struct gy_worker *w = s->dc->w;

    gy_host_outcome(w->proxy, host_state(s, s->host), s->cluster, res->status);
    gy_timer_stop(&w->loop, &s->per_try);
    if (s->retry != NULL && status_retriable(s->retry, res)) {
        if (retry(s, GY_RETRY_5XX | GY_RETRY_GATEWAY_ERROR | GY_RETRY_RETRIABLE_4XX | GY_RETRY_STATUS_CODES |
                         GY_RETRY_GRPC_CANCELLED | GY_RETRY_GRPC_DEADLINE_EXCEEDED | GY_RETRY_GRPC_INTERNAL |
                         GY_RETRY_GRPC_RESOURCE_EXHAUSTED | GY_RETRY_GRPC_UNAVAILABLE)) {
            detach_after_answer(s, res);
            return true;
        }
        if (s->attempts > 1)
            s->flags |= GY_RF_URX;
    } else if (s->attempts > 1 && res->status < 500) {
        gy_stat_inc(s->cluster->stats, w->id, GY_C_RETRY_SUCCESS);
    }
    release_retry_unit(s);
    return false;
}

/* ---- beginning an attempt ---- */

static void per_try_cb(struct gy_timer *t)
{
    struct gy_stream *s = GY_CONTAINER_OF(t, struct gy_stream, per_try);

    gy_attempt_failed(s, GY_FAIL_TIMEOUT);
    s->down->wake(s);
}

static void backoff_cb(struct gy_timer *t)
{
    struct gy_stream *s = GY_CONTAINER_OF(t, struct gy_stream, backoff);

    gy_attempt_begin(s);
    s->down->wake(s);
}

static void begin(struct gy_stream *s, bool fresh)
{
    struct gy_worker *w = s->dc->w;
    bool overflow = false;
    int idx = pick(s);

    if (idx < 0) {
        gy_stat_inc(s->cluster->stats, w->id, GY_C_NO_HEALTHY);
        gy_stream_local_reply(s, 503, GY_RF_UH, "no healthy upstream");
        return;
    }
    if (!s->cb_request) {
        if (!gy_cb_take(s->cluster->stats, GY_CB_REQUESTS)) {
            gy_stream_overflow_reply(s);
            return;
        }
        s->cb_request = true;
    }
    s->host = idx;
    s->host_counted = true;
    s->wcluster->active[idx]++;
    s->attempts++;
    struct gy_upool *p = s->wcluster->hosts[idx];
    bool h2 = s->up_h2 && !p->h1_alpn; /* a TLS host that chose http/1.1 gets HTTP/1.1 */
    if (!h2 && s->uhead.ptr == NULL) {
        gy_attempt_failed(s, GY_FAIL_CONNECT); /* no HTTP/1.1 head was built (cannot happen) */
        return;
    }
    /* A fresh HTTP/1.1 connection for a resend (another pooled one may be stale too); HTTP/2
     * takes any connection with room, since a refused stream's connection has none left. */
    struct gy_uconn *uc = h2 ? gy_upool_take_h2(p) : fresh ? NULL : gy_upool_take(p);
    if (uc == NULL && (uc = gy_uconn_open(w, p, s->cluster, &s->cluster->instances[idx], h2 ? GY_UC_HTTP2 : GY_UC_HTTP1, &overflow)) == NULL) {
        if (overflow) {
            release_host(s);
            gy_stream_overflow_reply(s);
            return;
        }
        gy_attempt_failed(s, GY_FAIL_CONNECT);
        return;
    }
    if (uc->reused)
        gy_stat_inc(s->cluster->stats, w->id, GY_C_CX_REUSED);
    if (gy_uconn_attach(uc, s) != 0) {
        gy_uconn_close(uc); /* cannot happen: an idle or new connection takes a stream */
        gy_attempt_failed(s, GY_FAIL_CONNECT);
        return;
    }
    s->any_response_byte = false;
    s->req_sent = false;
    s->refused = s->refused_free = false;
    if (s->up->start(s) != 0) {
        gy_attempt_failed(s, GY_FAIL_CONNECT);
        return;
    }
    s->t_upstream_ns = gy_now_ns();
    if (s->retry != NULL && s->retry->per_try_timeout_ms > 0)
        gy_timer_start(&w->loop, &s->per_try, s->retry->per_try_timeout_ms);
}

void gy_attempt_begin(struct gy_stream *s)
{
    begin(s, false);
}

void gy_attempt_restart(struct gy_stream *s)
{
    gy_timer_stop(&s->dc->w->loop, &s->per_try);
    s->uc = NULL;
    s->up = NULL;
    release_host(s);
    s->attempts--; /* the same attempt, on another connection */
    begin(s, false);
}

void gy_attempt_cleanup(struct gy_stream *s)
{
    struct gy_worker *w = s->dc->w;

    gy_timer_stop(&w->loop, &s->backoff);
    gy_timer_stop(&w->loop, &s->per_try);
    release_host(s);
    release_retry_unit(s);
    if (s->cb_request) {
        gy_cb_give(s->cluster->stats, GY_CB_REQUESTS);
        s->cb_request = false;
    }
    free(s->replay);
    s->replay = NULL;
}
