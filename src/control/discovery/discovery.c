/*
 * Discovery sources: spec dispatch through the ops table, the source thread, and the mailbox
 * that carries snapshots from a source thread to the caller's loop.
 *
 * The mailbox is reference counted: the source holds one reference and each message posted to
 * the loop holds one. gy_discovery_stop closes it (a message that runs later delivers nothing)
 * and takes back the messages still queued on the loop, so none is left to leak when the loop
 * is disposed. start, stop and state are called on the loop's thread.
 */
#include "control/discovery/source.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"

struct gy_discovery_mailbox {
    pthread_mutex_t lock;
    int refs;
    bool closed;
    bool posted;                       /* a deliver message is queued */
    json_t *pending;                   /* newest snapshot the loop has not taken */
    char state[GY_DISCOVERY_REASON_MAX + 32];
    struct gy_loop *loop;
    gy_discovery_cb cb;
    void *arg;
    char spec[];
};

static const struct gy_discovery_ops *const sources[] = {
    &gy_discovery_file_ops, &gy_discovery_dns_ops, &gy_discovery_etcd_ops,
    &gy_discovery_consul_ops, &gy_discovery_kubernetes_ops,
};

/* ---- mailbox ---- */

static void box_unref(struct gy_discovery_mailbox *b)
{
    bool last;

    pthread_mutex_lock(&b->lock);
    last = --b->refs == 0;
    pthread_mutex_unlock(&b->lock);
    if (!last)
        return;
    json_decref(b->pending);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* Runs on the caller's loop. */
static void box_deliver(struct gy_loop *loop, void *arg)
{
    struct gy_discovery_mailbox *b = arg;
    json_t *snap;
    bool closed;

    (void)loop;
    pthread_mutex_lock(&b->lock);
    snap = b->pending;
    b->pending = NULL;
    b->posted = false;
    closed = b->closed;
    pthread_mutex_unlock(&b->lock);
    if (!closed && snap != NULL)
        b->cb(b->arg, b->spec, snap); /* may stop the source: b stays alive through our reference */
    else
        json_decref(snap);
    box_unref(b);
}

/* Takes back the deliver messages still queued on the loop (the loop would free them unrun). */
static void box_unqueue(struct gy_discovery_mailbox *b)
{
    struct gy_loop *l = b->loop;
    struct gy_list *n, *next;
    int taken = 0;

    pthread_mutex_lock(&l->msg_lock);
    for (n = l->msgs.next; n != &l->msgs; n = next) {
        struct gy_loop_msg *m = GY_CONTAINER_OF(n, struct gy_loop_msg, link);
        next = n->next;
        if (m->fn == box_deliver && m->arg == b) {
            gy_list_remove(n);
            free(m);
            taken++;
        }
    }
    pthread_mutex_unlock(&l->msg_lock);
    while (taken-- > 0)
        box_unref(b);
}

static void set_state(struct gy_discovery *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_state(struct gy_discovery *d, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&d->box->lock);
    va_start(ap, fmt);
    vsnprintf(d->box->state, sizeof(d->box->state), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&d->box->lock);
}

/* ---- what source threads call ---- */

void gy_discovery_publish(struct gy_discovery *d, json_t *snapshot)
{
    struct gy_discovery_mailbox *b = d->box;
    size_t nclusters = json_object_size(snapshot), ninst = gy_snapshot_instances(snapshot);
    bool post = false;

    if (d->reason[0] != '\0' || !d->ever_ok)
        gy_info("discovery %s: ok, %zu clusters, %zu instances", d->spec, nclusters, ninst);
    d->reason[0] = '\0';
    d->ever_ok = true;
    set_state(d, "ok, %zu clusters, %zu instances", nclusters, ninst);
    if (d->last != NULL && json_equal(d->last, snapshot)) {
        json_decref(snapshot);
        return;
    }
    json_decref(d->last);
    d->last = json_incref(snapshot);
    pthread_mutex_lock(&b->lock);
    json_decref(b->pending);
    b->pending = snapshot;
    if (!b->posted && !b->closed) {
        b->posted = post = true;
        b->refs++;
    }
    pthread_mutex_unlock(&b->lock);
    if (post && gy_loop_post(b->loop, box_deliver, b) != 0) {
        pthread_mutex_lock(&b->lock);
        b->posted = false;
        pthread_mutex_unlock(&b->lock);
        box_unref(b);
        gy_error("discovery %s: cannot post an update (out of memory); it goes with the next", d->spec);
    }
}

void gy_discovery_fail(struct gy_discovery *d, const char *fmt, ...)
{
    char reason[GY_DISCOVERY_REASON_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (gy_discovery_stopping(d) || strcmp(reason, d->reason) == 0)
        return;
    memcpy(d->reason, reason, sizeof(reason));
    gy_warn("discovery %s: %s; retrying%s", d->spec, reason, d->ever_ok ? " (keeping the last snapshot)" : "");
    set_state(d, "retrying: %s", reason);
}

void gy_discovery_warn(struct gy_discovery *d, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gy_warn("discovery %s: %s", d->spec, msg);
}

int gy_discovery_bad_spec(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return GY_EINVAL;
}

/* ---- backoff ---- */

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

void gy_backoff_init(struct gy_backoff *b, uint64_t seed)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    b->rng = (seed ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32)) | 1u;
    gy_backoff_reset(b);
}

uint32_t gy_backoff_next(struct gy_backoff *b)
{
    uint32_t delay = b->base_ms + (uint32_t)(xorshift(&b->rng) % (b->base_ms / 2 + 1));

    b->base_ms = b->base_ms >= GY_BACKOFF_MAX_MS / 2 ? GY_BACKOFF_MAX_MS : b->base_ms * 2;
    return delay < GY_BACKOFF_MAX_MS ? delay : GY_BACKOFF_MAX_MS;
}

/* ---- start, stop, state ---- */

static void *source_thread(void *arg)
{
    struct gy_discovery *d = arg;

    d->ops->run(d);
    return NULL;
}

static const struct gy_discovery_ops *find_source(const char *spec, const char **rest, char *err, size_t errlen)
{
    const char *colon = strchr(spec, ':');

    for (size_t i = 0; colon != NULL && i < sizeof(sources) / sizeof(sources[0]); i++) {
        size_t n = strlen(sources[i]->scheme);
        if ((size_t)(colon - spec) == n && memcmp(spec, sources[i]->scheme, n) == 0) {
            *rest = colon + 1;
            return sources[i];
        }
    }
    gy_discovery_bad_spec(err, errlen, "discovery source \"%.200s\": unknown kind (want file:, dns:, etcd:, consul: "
                          "or kubernetes:)", spec);
    return NULL;
}

int gy_discovery_check(const char *spec, char *err, size_t errlen)
{
    struct gy_discovery *d;
    const struct gy_discovery_ops *ops;
    const char *rest = NULL;
    int rc;

    if ((ops = find_source(spec, &rest, err, errlen)) == NULL)
        return GY_EINVAL;
    if ((d = calloc(1, sizeof(*d))) == NULL)
        return gy_discovery_bad_spec(err, errlen, "out of memory");
    d->ops = ops;
    d->spec = spec;
    atomic_init(&d->stopping, false);
    if ((rc = ops->init(d, rest, err, errlen)) == 0)
        ops->dispose(d);
    free(d);
    return rc;
}

struct gy_discovery *gy_discovery_start(struct gy_loop *loop, const char *spec, gy_discovery_cb cb, void *arg,
                                        char *err, size_t errlen)
{
    struct gy_discovery *d = NULL, *ret = NULL;
    struct gy_discovery_mailbox *b = NULL;
    const struct gy_discovery_ops *ops;
    const char *rest = NULL;
    size_t speclen = strlen(spec);
    int rc;

    if ((ops = find_source(spec, &rest, err, errlen)) == NULL)
        goto out;
    d = calloc(1, sizeof(*d));
    b = calloc(1, sizeof(*b) + speclen + 1);
    if (d == NULL || b == NULL) {
        gy_discovery_bad_spec(err, errlen, "discovery source \"%.200s\": out of memory", spec);
        goto out;
    }
    pthread_mutex_init(&b->lock, NULL);
    b->refs = 1;
    b->loop = loop;
    b->cb = cb;
    b->arg = arg;
    memcpy(b->spec, spec, speclen + 1);
    snprintf(b->state, sizeof(b->state), "starting");
    d->ops = ops;
    d->box = b;
    d->spec = b->spec;
    b = NULL;
    atomic_init(&d->stopping, false);
    d->rng = (uint64_t)(uintptr_t)d ^ 0x9e3779b97f4a7c15ull;
    if (ops->init(d, rest, err, errlen) != 0)
        goto out;
    if ((rc = pthread_create(&d->thread, NULL, source_thread, d)) != 0) {
        gy_discovery_bad_spec(err, errlen, "discovery source \"%.200s\": cannot start a thread: %s", spec,
                              strerror(rc));
        ops->dispose(d);
        goto out;
    }
    ret = d;
    d = NULL;
out:
    if (d != NULL) {
        box_unref(d->box);
        free(d);
    }
    free(b);
    return ret;
}

void gy_discovery_stop(struct gy_discovery *d)
{
    struct gy_discovery_mailbox *b;

    if (d == NULL)
        return;
    b = d->box;
    atomic_store(&d->stopping, true);
    if (d->ops->interrupt != NULL)
        d->ops->interrupt(d);
    pthread_join(d->thread, NULL);
    d->ops->dispose(d);
    pthread_mutex_lock(&b->lock);
    b->closed = true;
    json_decref(b->pending);
    b->pending = NULL;
    pthread_mutex_unlock(&b->lock);
    box_unqueue(b);
    box_unref(b);
    json_decref(d->last);
    free(d);
}

const char *gy_discovery_state(const struct gy_discovery *d)
{
    struct gy_discovery *md = (struct gy_discovery *)d; /* state_view is the caller's cache */

    pthread_mutex_lock(&d->box->lock);
    memcpy(md->state_view, d->box->state, sizeof(md->state_view));
    pthread_mutex_unlock(&d->box->lock);
    return md->state_view;
}
