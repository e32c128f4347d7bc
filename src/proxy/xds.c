/* The long-poll thread of `gyrus proxy --control`. A blocking HTTP client (http/client.c) on its
 * own thread; the main thread only ever sees complete views, posted to its loop. */
#include "proxy/xds.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/bytes.h"
#include "core/err.h"
#include "core/log.h"
#include "core/time.h"
#include "http/client.h"
#include "proxy/identity.h"
#include "proxy/proxy.h"

#define POLL_WAIT_S 30
#define MAX_BODY (64u * 1024u * 1024u)
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

struct gy_xds {
    struct gy_proxy *proxy;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    bool waiting;              /* a view was posted; the main thread has not answered yet */
    char *base, *name, *zone, *node;
    char authorization[600];   /* "Bearer KEY" from $GYRUS_API_KEY, or "" */
    char version[256];         /* the version held */
    char status[8];            /* "", "ack" or "nack": the outcome of `version` */
    char error[512];
    char last_problem[256];    /* logged once until it changes */
    uint64_t rng;
};

struct view_msg {
    struct gy_proxy *proxy;
    struct gy_xds *x;       /* may be stopped and freed by the time the message is read */
    json_t *objects;
    char version[256];
};

static void problem(struct gy_xds *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct gy_xds *x, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (strcmp(msg, x->last_problem) != 0) {
        gy_warn("control plane %s: %s; serving the last good config and retrying", x->base, msg);
        snprintf(x->last_problem, sizeof(x->last_problem), "%s", msg);
    }
}

static void view_arrived(struct gy_loop *loop, void *arg)
{
    struct view_msg *m = arg;

    (void)loop;
    if (m->proxy->xds == m->x) /* else: the client was stopped (shutting down) */
        gy_proxy_xds_view(m->proxy, m->x, m->objects, m->version);
    else
        json_decref(m->objects);
    free(m);
}

static char *poll_url(struct gy_xds *x)
{
    char *v = gy_url_escape(x->version), *z = gy_url_escape(x->zone), *n = gy_url_escape(x->node);
    char *nm = gy_url_escape(x->name), *e = gy_url_escape(x->error);
    char *url = NULL;

    if (v != NULL && z != NULL && n != NULL && nm != NULL && e != NULL) {
        size_t len = strlen(x->base) + strlen(v) + strlen(z) + strlen(n) + strlen(nm) + strlen(e) + 128;
        if ((url = malloc(len)) != NULL) {
            int k = snprintf(url, len, "%s/v1.0/xds/%s?zone=%s&node=%s&version=%s&wait=%d", x->base, nm, z, n, v,
                             POLL_WAIT_S);
            if (x->status[0])
                snprintf(url + k, len - (size_t)k, "&status=%s%s%s", x->status, x->error[0] ? "&error=" : "",
                         x->error[0] ? e : "");
        }
    }
    free(v);
    free(z);
    free(n);
    free(nm);
    free(e);
    return url;
}

/* Parses a 200 answer and hands the view to the main thread; waits for its verdict. */
static void deliver(struct gy_xds *x, const struct gy_bytes *b)
{
    json_error_t je;
    json_t *root = json_loadb(b->p, b->len, 0, &je);
    const char *version = json_string_value(json_object_get(root, "version"));
    json_t *objects = json_object_get(root, "objects");
    struct view_msg *m;

    if (version == NULL || !json_is_array(objects) || strlen(version) >= sizeof(m->version)) {
        problem(x, "malformed view (%s)", root == NULL ? je.text : "no version or objects");
        json_decref(root);
        return;
    }
    m = malloc(sizeof(*m));
    if (m == NULL) {
        json_decref(root);
        return;
    }
    m->proxy = x->proxy;
    m->x = x;
    m->objects = json_incref(objects);
    snprintf(m->version, sizeof(m->version), "%s", version);
    json_decref(root);
    pthread_mutex_lock(&x->lock);
    x->waiting = true;
    pthread_mutex_unlock(&x->lock);
    if (gy_loop_post(&x->proxy->loop, view_arrived, m) != 0) {
        json_decref(m->objects);
        free(m);
        pthread_mutex_lock(&x->lock);
        x->waiting = false;
        pthread_mutex_unlock(&x->lock);
        return;
    }
    pthread_mutex_lock(&x->lock);
    while (x->waiting && !x->stop)
        pthread_cond_wait(&x->cond, &x->lock);
    pthread_mutex_unlock(&x->lock);
}

/* Sleeps up to ms, waking early on stop. */
static void nap(struct gy_xds *x, uint64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&x->lock);
    while (!x->stop && pthread_cond_timedwait(&x->cond, &x->lock, &ts) == 0) {
    }
    pthread_mutex_unlock(&x->lock);
}

static bool stopping(struct gy_xds *x)
{
    pthread_mutex_lock(&x->lock);
    bool s = x->stop;
    pthread_mutex_unlock(&x->lock);
    return s;
}

static bool cancelled(void *arg)
{
    return stopping(arg);
}

static void *xds_main(void *arg)
{
    struct gy_xds *x = arg;
    uint64_t backoff = BACKOFF_MIN_MS;

    while (!stopping(x)) {
        struct gy_bytes b = { .max = MAX_BODY };
        char *url = poll_url(x), why[300];
        int code = 0, rc = GY_ENOMEM;
        if (url != NULL) {
            struct gy_http_request req = {
                .method = "GET", .url = url, .user_agent = "gyrus-proxy/" GY_VERSION, .connect_timeout_ms = 5000,
                .timeout_ms = (POLL_WAIT_S + 15) * 1000, .cancel = cancelled, .cancel_arg = x,
                .ca_file = x->proxy->opt.control_ca,
                .authorization = x->authorization[0] ? x->authorization : NULL,
                /* the SVID, once there is one, proves the proxy to a control plane that asks */
                .cert_file = x->proxy->identity ? gy_identity_cert_path(x->proxy->identity) : NULL,
                .key_file = x->proxy->identity ? gy_identity_key_path(x->proxy->identity) : NULL,
            };
            rc = gy_http_fetch(&req, &code, &b, why, sizeof(why));
            free(url);
        } else {
            snprintf(why, sizeof(why), "out of memory");
        }
        if (rc == 0 && code == 200) {
            backoff = BACKOFF_MIN_MS;
            if (x->last_problem[0]) {
                gy_info("control plane %s: connected", x->base);
                x->last_problem[0] = '\0';
            }
            deliver(x, &b);
        } else if (rc == 0 && code == 304) {
            backoff = BACKOFF_MIN_MS;
            x->status[0] = '\0'; /* reported */
            x->error[0] = '\0';
        } else if (!stopping(x)) {
            json_t *doc = rc == 0 && b.p != NULL ? json_loadb(b.p, b.len, 0, NULL) : NULL;
            const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
            if (rc != 0)
                problem(x, "%s", why);
            else if (msg != NULL) /* the control plane's error: {"error": {"message": ...}} */
                problem(x, "HTTP %d: %.200s", code, msg);
            else
                problem(x, "HTTP %d%s%.*s", code, b.len ? ": " : "", (int)(b.len > 160 ? 160 : b.len),
                        b.p ? b.p : "");
            json_decref(doc);
            uint64_t jitter = gy_lb_rand(&x->rng) % (backoff / 2 + 1);
            nap(x, backoff / 2 + jitter);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        }
        gy_bytes_free(&b);
    }
    return NULL;
}

struct gy_xds *gy_xds_start(struct gy_proxy *p, const char *control_url, const char *name, const char *zone,
                            const char *node, const char *version)
{
    struct gy_xds *x = calloc(1, sizeof(*x));
    size_t bl;

    if (x == NULL)
        return NULL;
    x->proxy = p;
    x->base = strdup(control_url);
    x->name = strdup(name);
    x->zone = strdup(zone ? zone : "");
    x->node = strdup(node);
    if (x->base == NULL || x->name == NULL || x->zone == NULL || x->node == NULL)
        goto fail;
    bl = strlen(x->base);
    while (bl > 0 && x->base[bl - 1] == '/')
        x->base[--bl] = '\0';
    snprintf(x->version, sizeof(x->version), "%s", version ? version : "");
    if (p->opt.api_key != NULL)
        snprintf(x->authorization, sizeof(x->authorization), "Bearer %s", p->opt.api_key);
    x->rng = gy_now_ns() | 1;
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->cond, NULL);
    if (pthread_create(&x->thread, NULL, xds_main, x) != 0) {
        pthread_mutex_destroy(&x->lock);
        pthread_cond_destroy(&x->cond);
        goto fail;
    }
    return x;
fail:
    free(x->base);
    free(x->name);
    free(x->zone);
    free(x->node);
    free(x);
    return NULL;
}

void gy_xds_done(struct gy_xds *x, const char *version, bool applied, const char *error)
{
    pthread_mutex_lock(&x->lock);
    snprintf(x->version, sizeof(x->version), "%s", version);
    snprintf(x->status, sizeof(x->status), "%s", applied ? "ack" : "nack");
    snprintf(x->error, sizeof(x->error), "%s", applied ? "" : error);
    x->waiting = false;
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
}

void gy_xds_stop(struct gy_xds *x)
{
    if (x == NULL)
        return;
    pthread_mutex_lock(&x->lock);
    x->stop = true;
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
    pthread_join(x->thread, NULL);
    pthread_mutex_destroy(&x->lock);
    pthread_cond_destroy(&x->cond);
    free(x->base);
    free(x->name);
    free(x->zone);
    free(x->node);
    free(x);
}
