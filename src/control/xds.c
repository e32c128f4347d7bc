/*
 * The config distribution endpoint (docs/internals/xds.md):
 *
 *   GET /v1.0/xds/<NAME>?zone=&node=&version=&wait=[&status=ack|nack&error=]
 *
 * answers 200 with the view at once when the proxy's version differs, else parks the request
 * on its view until the view changes (200) or `wait` seconds pass (304); 404 when no proxy
 * object matches. Each poll records its node: the version it holds and whether it applied it
 * (ACK) or refused it (NACK, with the error), for `gyrus status` and /v1.0/status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/control.h"
#include "control/view.h"
#include "core/err.h"
#include "core/log.h"
#include "core/time.h"

#define WAIT_DEFAULT_S 30
#define WAIT_MAX_S 300
#define NODE_IDLE_MS (10u * 60u * 1000u)
#define CONNECTED_MS 5000u

struct ctl_node {
    char *name, *zone, *node, *peer;
    char version[257];     /* the version it says it holds */
    char status[8];        /* "", "ack" or "nack": the outcome of `version` */
    char error[512];       /* the NACK's error */
    char sent[CTL_VERSION_LEN + 1]; /* the last version answered to it */
    uint64_t last_seen_ms, last_seen_wall_us, polls;
    unsigned parked;       /* polls of this node waiting now */
};

static void node_free(void *p)
{
    struct ctl_node *n = p;

    free(n->name);
    free(n->zone);
    free(n->node);
    free(n->peer);
    free(n);
}

static struct ctl_node *node_get(struct gy_control *ctl, const char *name, const char *node)
{
    size_t len = strlen(name) + strlen(node) + 2;
    char *id = malloc(len);
    struct ctl_node *n;

    if (id == NULL)
        return NULL;
    snprintf(id, len, "%s\x1f%s", name, node);
    n = ctl_map_get(&ctl->nodes, id);
    if (n == NULL && (n = calloc(1, sizeof(*n))) != NULL) {
        n->name = strdup(name);
        n->node = strdup(node);
        n->zone = strdup("");
        n->peer = strdup("");
        if (n->name == NULL || n->node == NULL || n->zone == NULL || n->peer == NULL ||
            ctl_map_put(&ctl->nodes, id, n) != 0) {
            node_free(n);
            n = NULL;
        }
    }
    free(id);
    return n;
}

static void node_replace(char **field, const char *value)
{
    if (strcmp(*field, value) == 0)
        return;
    char *s = strdup(value);
    if (s != NULL) {
        free(*field);
        *field = s;
    }
}

/* Records what one poll says about its node. */
static void node_report(struct gy_control *ctl, struct ctl_node *n, const char *zone, const char *peer,
                        const char *version, const char *status, const char *error)
{
    node_replace(&n->zone, zone);
    node_replace(&n->peer, peer);
    n->last_seen_ms = gy_now_ms();
    n->last_seen_wall_us = gy_wall_us();
    n->polls++;
    bool news = strcmp(n->version, version) != 0 || strcmp(n->status, status) != 0;
    if (status[0] != '\0' && news) {
        if (strcmp(status, "ack") == 0) {
            ctl->acks++;
            n->error[0] = '\0';
            gy_debug("proxy \"%s\" node %s applied version %s", n->name, n->node, version);
        } else {
            ctl->nacks++;
            snprintf(n->error, sizeof(n->error), "%s", error ? error : "");
            gy_warn("proxy \"%s\" node %s refused version %s: %s", n->name, n->node, version, n->error);
        }
    }
    snprintf(n->version, sizeof(n->version), "%s", version);
    snprintf(n->status, sizeof(n->status), "%s", status);
}

static void unpark(struct ctl_req *r)
{
    struct ctl_node *n = r->owner;

    if (r->parked && n != NULL && n->parked > 0)
        n->parked--;
}

static void answer_view(struct gy_control *ctl, struct ctl_req *r, struct ctl_view *v, struct ctl_node *n)
{
    ctl->views_sent++;
    unpark(r);
    if (n != NULL)
        memcpy(n->sent, v->version, sizeof(n->sent));
    ctl_respond(r, 200, "application/json", v->body, NULL);
}

static void poll_timeout(struct gy_timer *t)
{
    struct ctl_req *r = GY_CONTAINER_OF(t, struct ctl_req, park_timer);

    unpark(r);
    ctl_respond(r, 304, "application/json", NULL, NULL);
}

static void poll_abort(struct ctl_req *r)
{
    r->parked = true; /* the server clears it before calling us */
    unpark(r);
    if (!gy_list_empty(&r->park_link))
        gy_list_remove(&r->park_link);
}

void ctl_xds_wake(struct gy_control *ctl, struct ctl_view *v)
{
    while (!gy_list_empty(&v->parked)) {
        struct ctl_req *r = GY_CONTAINER_OF(v->parked.next, struct ctl_req, park_link);
        gy_list_remove(&r->park_link);
        if (v->body != NULL) {
            answer_view(ctl, r, v, r->owner);
        } else {
            unpark(r);
            ctl_respond_errorf(r, 404, "no proxy \"%s\"", v->name);
        }
    }
}

static int parse_wait(const char *s, long *out)
{
    char *end;

    if (s == NULL) {
        *out = WAIT_DEFAULT_S;
        return 0;
    }
    long w = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || w < 0)
        return -1;
    *out = w > WAIT_MAX_S ? WAIT_MAX_S : w;
    return 0;
}

void ctl_xds_handle(struct gy_control *ctl, struct ctl_req *r, const char *name)
{
    char *zone = ctl_query_param(r->query, "zone"), *node = ctl_query_param(r->query, "node");
    char *version = ctl_query_param(r->query, "version"), *wait_s = ctl_query_param(r->query, "wait");
    char *status = ctl_query_param(r->query, "status"), *error = ctl_query_param(r->query, "error");
    struct ctl_node *n = NULL;
    struct ctl_view *v;
    long wait;

    ctl->polls++;
    if (strcmp(r->method, "GET") != 0) {
        ctl_respond_errorf(r, 405, "use GET");
        goto out;
    }
    if (parse_wait(wait_s, &wait) != 0) {
        ctl_respond_errorf(r, 400, "wait: want a number of seconds, got \"%s\"", wait_s);
        goto out;
    }
    if (status != NULL && status[0] != '\0' && strcmp(status, "ack") != 0 && strcmp(status, "nack") != 0) {
        ctl_respond_errorf(r, 400, "status: want ack or nack, got \"%s\"", status);
        goto out;
    }
    if (node == NULL || node[0] == '\0') { /* tell nodes without an id apart by address */
        free(node);
        node = strdup(r->peer);
        char *colon = node ? strrchr(node, ':') : NULL;
        if (colon != NULL)
            *colon = '\0';
    }
    if (node != NULL && (n = node_get(ctl, name, node)) != NULL)
        node_report(ctl, n, zone ? zone : "", r->peer, version ? version : "", status ? status : "", error);
    v = ctl_view_get(ctl, name, zone ? zone : "");
    if (v == NULL) {
        ctl_respond_errorf(r, 503, "out of memory");
    } else if (v->body == NULL) {
        ctl_respond_errorf(r, 404, "no proxy \"%s\"", name);
    } else if (version == NULL || strcmp(version, v->version) != 0) {
        answer_view(ctl, r, v, n);
    } else if (wait == 0 || ctl->draining) {
        ctl_respond(r, 304, "application/json", NULL, NULL);
    } else {
        ctl_req_park(r, poll_abort, n);
        if (n != NULL)
            n->parked++;
        gy_list_insert_tail(&v->parked, &r->park_link);
        gy_timer_init(&r->park_timer, poll_timeout);
        gy_timer_start(&ctl->loop, &r->park_timer, (uint64_t)wait * 1000u);
    }
out:
    free(zone);
    free(node);
    free(version);
    free(wait_s);
    free(status);
    free(error);
}

void ctl_xds_drain(struct gy_control *ctl)
{
    size_t pos = 0;
    const char *id;
    void *val;

    while (ctl_map_next(&ctl->views, &pos, &id, &val)) {
        struct ctl_view *v = val;
        while (!gy_list_empty(&v->parked)) {
            struct ctl_req *r = GY_CONTAINER_OF(v->parked.next, struct ctl_req, park_link);
            unpark(r);
            ctl_respond_errorf(r, 503, "the control plane is shutting down");
        }
    }
}

void ctl_xds_gc(struct gy_control *ctl, uint64_t now_ms)
{
    size_t pos = 0;
    const char *id;
    void *val;
    json_t *gone = json_array();

    while (ctl_map_next(&ctl->nodes, &pos, &id, &val)) {
        struct ctl_node *n = val;
        if (n->parked == 0 && now_ms - n->last_seen_ms > NODE_IDLE_MS)
            json_array_append_new(gone, json_string(id));
    }
    size_t i;
    json_t *g;
    json_array_foreach(gone, i, g)
        node_free(ctl_map_del(&ctl->nodes, json_string_value(g)));
    json_decref(gone);
}

void ctl_xds_dispose(struct gy_control *ctl)
{
    ctl_map_dispose(&ctl->nodes, node_free);
}

size_t ctl_xds_connected(struct gy_control *ctl)
{
    size_t pos = 0, count = 0;
    const char *id;
    void *val;
    uint64_t now = gy_now_ms();

    while (ctl_map_next(&ctl->nodes, &pos, &id, &val)) {
        struct ctl_node *n = val;
        if (n->parked > 0 || now - n->last_seen_ms < CONNECTED_MS)
            count++;
    }
    return count;
}

static int cmp_node(const void *a, const void *b)
{
    const struct ctl_node *x = *(const struct ctl_node *const *)a, *y = *(const struct ctl_node *const *)b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : strcmp(x->node, y->node);
}

static json_t *node_json(struct gy_control *ctl, const struct ctl_node *n, uint64_t now)
{
    char when[64] = "";
    time_t secs = (time_t)(n->last_seen_wall_us / 1000000u);
    struct tm tm;
    char idbuf[1024];
    const char *current = "";

    if (gmtime_r(&secs, &tm) != NULL)
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(idbuf, sizeof(idbuf), "%s\x1f%s", n->name, n->zone);
    struct ctl_view *v = ctl_map_get(&ctl->views, idbuf);
    if (v != NULL)
        current = v->version;
    const char *ack = strcmp(n->status, "ack") == 0 ? "ACK" : strcmp(n->status, "nack") == 0 ? "NACK" : "";
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:s,s:s?,s:s,s:f,s:b,s:I}", "name", n->name, "zone", n->zone,
                     "node", n->node, "address", n->peer, "version", n->version, "status", ack, "current_version",
                     current, "in_sync", current[0] != '\0' && strcmp(current, n->version) == 0 && ack[0] == 'A',
                     "sent_version", n->sent, "error", n->error[0] ? n->error : NULL, "last_seen", when,
                     "last_seen_seconds_ago", (double)(now - n->last_seen_ms) / 1000.0, "connected",
                     n->parked > 0 || now - n->last_seen_ms < CONNECTED_MS, "polls", (json_int_t)n->polls);
}

json_t *ctl_xds_status(struct gy_control *ctl)
{
    size_t pos = 0, i = 0;
    const char *id;
    void *val;
    struct ctl_node **all = malloc((ctl->nodes.n ? ctl->nodes.n : 1) * sizeof(*all));
    json_t *out = json_array();
    uint64_t now = gy_now_ms();

    if (all == NULL || out == NULL) {
        free(all);
        return out;
    }
    while (ctl_map_next(&ctl->nodes, &pos, &id, &val))
        all[i++] = val;
    qsort(all, i, sizeof(*all), cmp_node);
    for (size_t k = 0; k < i; k++)
        json_array_append_new(out, node_json(ctl, all[k], now));
    free(all);
    return out;
}
