/*
 * Shadow copies: a `dark` constraint gets a copy of each request (when its body fit in the replay
 * buffer) and a `tap` constraint gets a JSON record of the request and response once the exchange
 * is over. Copies go out on their own upstream connections, their answers are read and thrown
 * away, and nothing about them can slow down or fail the real request: a copy that cannot be
 * sent is dropped and counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "proxy/hosts.h"
#include "proxy/proxy.h"

#define MAX_SHADOWS_PER_WORKER 256
#define SHADOW_TIMEOUT_MS 10000
#define TAP_BODY_MAX 4096

struct gy_shadow {
    struct gy_list link;
    struct gy_worker *w;
    struct gy_wcfg *wcfg;             /* referenced: the pools of the cluster */
    const struct gy_cluster *cluster;
    struct gy_uconn *uc;
    struct gy_timer timer;
    char *data;                       /* the whole request */
    size_t len;
    bool head_done;
    enum gy_h1_body body;
    uint64_t remaining;
    struct gy_h1_chunked chunked;
};

static void shadow_free(struct gy_shadow *sh, bool reusable)
{
    struct gy_worker *w = sh->w;

    if (sh->uc != NULL) {
        if (reusable)
            gy_uconn_release(sh->uc, true, sh->cluster->idle_timeout_ms);
        else
            gy_uconn_close(sh->uc);
    }
    gy_timer_stop(&w->loop, &sh->timer);
    gy_list_remove(&sh->link);
    w->nshadows--;
    gy_wcfg_release(w, sh->wcfg);
    free(sh->data);
    free(sh);
}

static void timeout_cb(struct gy_timer *t)
{
    shadow_free(GY_CONTAINER_OF(t, struct gy_shadow, timer), false);
}

/* Reads the answer and discards it; returns true when it is complete. */
static bool consume_answer(struct gy_shadow *sh)
{
    struct gy_uconn *uc = sh->uc;

    if (!sh->head_done) {
        struct gy_header hdrs[128];
        struct gy_h1_response res;
        struct gy_h1_error err;
        struct gy_h1_limits lim = { 8192, GY_BUF_BLOCK, 128 };
        int rc = gy_h1_parse_response(gy_buf_start(&uc->rbuf), gy_buf_len(&uc->rbuf), &res, hdrs, &lim, false, false,
                                      &err);
        if (rc == GY_EAGAIN)
            return false;
        if (rc < 0 || res.body == GY_H1_BODY_TUNNEL) {
            uc->eof = true; /* not reusable */
            return true;
        }
        gy_buf_consume(&uc->rbuf, res.head_len);
        if (res.status < 200)
            return consume_answer(sh);
        sh->head_done = true;
        sh->body = res.body;
        sh->remaining = res.content_length;
        gy_h1_chunked_init(&sh->chunked);
        if (!res.keep_alive)
            uc->eof = true;
    }
    if (sh->body == GY_H1_BODY_NONE)
        return true;
    if (sh->body == GY_H1_BODY_EOF) {
        gy_buf_consume(&uc->rbuf, gy_buf_len(&uc->rbuf));
        return uc->eof;
    }
    if (sh->body == GY_H1_BODY_LENGTH) {
        size_t n = gy_buf_len(&uc->rbuf) < sh->remaining ? gy_buf_len(&uc->rbuf) : (size_t)sh->remaining;
        gy_buf_consume(&uc->rbuf, n);
        sh->remaining -= n;
        return sh->remaining == 0;
    }
    for (;;) {
        struct gy_slice data;
        bool done = false;
        long k = gy_h1_chunked_decode(&sh->chunked, gy_buf_start(&uc->rbuf), gy_buf_len(&uc->rbuf), &data, &done);
        if (k < 0) {
            uc->eof = true;
            return true;
        }
        gy_buf_consume(&uc->rbuf, (size_t)k);
        if (done)
            return true;
        if (k == 0)
            return false;
    }
}

void gy_shadow_event(struct gy_shadow *sh)
{
    struct gy_uconn *uc = sh->uc;
    struct gy_worker *w = sh->w;

    if (uc->state == GY_UC_CONNECTING || uc->handshaking)
        return;
    if (uc->connect_failed) {
        shadow_free(sh, false);
        return;
    }
    for (int guard = 0; guard < 64; guard++) {
        if (gy_buf_len(&uc->wbuf) > 0 && uc->can_write && gy_conn_write(uc->io.fd, uc->transport, &uc->wbuf, &uc->can_write) < 0) {
            shadow_free(sh, false);
            return;
        }
        if (gy_buf_reserve(&w->bufs, &uc->rbuf) != 0) {
            shadow_free(sh, false);
            return;
        }
        bool done = gy_buf_len(&uc->rbuf) > 0 && consume_answer(sh);
        if (done) {
            shadow_free(sh, !uc->eof && gy_buf_len(&uc->rbuf) == 0 && gy_buf_len(&uc->wbuf) == 0);
            return;
        }
        if (uc->eof || (!uc->can_read)) {
            if (uc->eof)
                shadow_free(sh, false);
            return;
        }
        if (gy_conn_read(uc->io.fd, uc->transport, &uc->rbuf, &uc->can_read, &uc->eof, uc->hup) <= 0 && !uc->eof)
            return;
    }
}

/* Sends `data` (a whole request; ownership passes) to a host of cluster c. */
static void send_copy(struct gy_stream *s, const struct gy_cluster *c, char *data, size_t len)
{
    struct gy_worker *w = s->dc->w;
    struct gy_wcluster *wc = &s->wcfg->clusters[c->index];
    uint8_t small[64], *ex = c->ninstances <= sizeof(small) ? small : NULL;
    struct gy_lb_ctx ctx = { .rng = &w->rng, .active = wc->active };
    bool overflow;
    int idx;

    if (w->nshadows >= MAX_SHADOWS_PER_WORKER || ex == NULL || c->http2) /* copies go over HTTP/1.1 only */
        goto drop;
    for (size_t i = 0; i < c->ninstances; i++)
        ex[i] = c->instances[i].state != NULL && !gy_host_usable(c->instances[i].state);
    ctx.excluded = ex;
    if ((idx = gy_lb_pick(c, wc->lb, &ctx)) < 0)
        goto drop;
    struct gy_shadow *sh = calloc(1, sizeof(*sh));
    if (sh == NULL)
        goto drop;
    struct gy_uconn *uc = gy_upool_take(wc->hosts[idx]);
    if (uc == NULL && (uc = gy_uconn_open(w, wc->hosts[idx], c, &c->instances[idx], false, &overflow)) == NULL) {
        free(sh);
        goto drop;
    }
    sh->w = w;
    sh->wcfg = gy_wcfg_acquire(s->wcfg);
    sh->cluster = c;
    sh->uc = uc;
    sh->data = data;
    sh->len = len;
    uc->shadow = sh;
    gy_timer_init(&sh->timer, timeout_cb);
    gy_list_init(&sh->link);
    gy_list_insert_tail(&w->shadows, &sh->link);
    w->nshadows++;
    gy_timer_start(&w->loop, &sh->timer, SHADOW_TIMEOUT_MS);
    if (gy_buf_reserve(&w->bufs, &uc->wbuf) != 0 || (len > uc->wbuf.cap && gy_buf_grow(&w->bufs, &uc->wbuf, (uint32_t)len) != 0)) {
        shadow_free(sh, false);
        gy_stat_inc(c->stats, w->id, GY_C_SHADOW_DROPPED);
        return;
    }
    gy_buf_append(&uc->wbuf, data, len);
    gy_stat_inc(c->stats, w->id, GY_C_SHADOW);
    gy_shadow_event(sh);
    return;
drop:
    free(data);
    gy_stat_inc(c->stats, w->id, GY_C_SHADOW_DROPPED);
}

void gy_shadow_dark(struct gy_stream *s)
{
    static const char mark[] = "x-gyrus-shadow: true\r\n\r\n";
    const struct gy_rule *rule = s->route.rule;

    for (size_t i = 0; i < rule->ndark; i++) {
        const struct gy_cluster *c = rule->dark[i].cluster;
        if (s->replay_overflow || (s->req_has_body && !s->keep_replay) || s->uhead.len == 0) {
            gy_stat_inc(c->stats, s->dc->w->id, GY_C_SHADOW_DROPPED);
            continue;
        }
        /* The upstream head with a marker header, then the body framed as the head says. */
        char hdr[24];
        size_t hl = s->req_chunked_up && s->replay_len ? gy_h1_chunk_header(hdr, s->replay_len) : 0;
        size_t head = s->uhead.len - 2, len = head + sizeof(mark) - 1 + hl + s->replay_len + (s->req_chunked_up ? 7 : 0);
        char *data = malloc(len), *p = data;
        if (data == NULL)
            continue;
        memcpy(p, s->uhead.ptr, head);
        p += head;
        memcpy(p, mark, sizeof(mark) - 1);
        p += sizeof(mark) - 1;
        memcpy(p, hdr, hl);
        p += hl;
        if (s->replay_len)
            memcpy(p, s->replay, s->replay_len);
        p += s->replay_len;
        if (s->req_chunked_up)
            memcpy(p, s->replay_len ? "\r\n0\r\n\r\n" : "0\r\n\r\n", s->replay_len ? 7 : 5);
        send_copy(s, c, data, s->req_chunked_up && !s->replay_len ? len - 2 : len);
    }
}

/* A tap record: the request and response heads as they crossed the proxy, the start of the body. */
static char *tap_record(struct gy_stream *s, size_t *len)
{
    char addr[GY_ADDRSTRLEN] = "";
    size_t blen = s->replay_len < TAP_BODY_MAX ? s->replay_len : TAP_BODY_MAX;

    if (s->host >= 0)
        gy_addr_format((const struct sockaddr *)&s->cluster->instances[s->host].addr, addr, sizeof(addr));
    json_t *o = json_pack("{s:s%,s:s%,s:{s:s%,s:s%,s:b},s:{s:i,s:s%},s:s,s:s,s:I}", "request_id", s->request_id.ptr,
                          s->request_id.len, "downstream_remote_address", s->dc->peer_ip, strlen(s->dc->peer_ip),
                          "request", "head", s->uhead.ptr, s->uhead.len, "body", s->replay ? s->replay : "", blen,
                          "body_truncated", s->replay_overflow || s->replay_len > TAP_BODY_MAX, "response", "status",
                          s->status, "head", s->resp_head.ptr ? s->resp_head.ptr : "", s->resp_head.len,
                          "upstream_cluster", s->cluster->name, "upstream_host", addr, "start_time_us",
                          (json_int_t)s->wall_start_us);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (body == NULL)
        return NULL;
    size_t bl = strlen(body);
    char *req = malloc(bl + 256);
    if (req != NULL)
        *len = (size_t)snprintf(req, bl + 256,
                                "POST / HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
                                "content-length: %zu\r\nx-gyrus-tap: true\r\n\r\n%s",
                                s->cluster->name, bl, body);
    free(body);
    return req;
}

void gy_shadow_tap(struct gy_stream *s)
{
    const struct gy_rule *rule = s->route.rule;

    for (size_t i = 0; i < rule->ntap; i++) {
        size_t len = 0;
        char *rec = tap_record(s, &len);
        if (rec != NULL)
            send_copy(s, rule->tap[i].cluster, rec, len);
    }
}

void gy_shadows_close(struct gy_worker *w)
{
    while (!gy_list_empty(&w->shadows))
        shadow_free(GY_CONTAINER_OF(w->shadows.next, struct gy_shadow, link), false);
}
