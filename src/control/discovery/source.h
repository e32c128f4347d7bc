/*
 * Inside the discovery sources (the public side is control/discovery.h).
 *
 * Every source runs one thread of its own. discovery.c parses the spec's scheme, hands the rest
 * to the source's ops->init (no I/O there), starts the thread on ops->run, and on
 * gy_discovery_stop sets `stopping`, calls ops->interrupt so a blocked run returns at once,
 * joins the thread and calls ops->dispose.
 *
 * A source thread talks to the caller's loop only through gy_discovery_publish (a complete
 * snapshot) and gy_discovery_fail (why it has nothing new and is retrying). Both log state
 * changes once, not per retry; publish drops a snapshot equal to the last one delivered, and a
 * snapshot not yet taken by the loop is replaced by a newer one (each is complete).
 */
#ifndef GY_CONTROL_DISCOVERY_SOURCE_H
#define GY_CONTROL_DISCOVERY_SOURCE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/discovery.h"
#include "core/loop.h"

#define GY_DISCOVERY_REASON_MAX 256

struct gy_discovery_mailbox;

struct gy_discovery {
    const struct gy_discovery_ops *ops;
    const char *spec;                  /* owned by the mailbox, which may outlive this struct */
    struct gy_discovery_mailbox *box;  /* shared with the caller's loop */
    pthread_t thread;
    atomic_bool stopping;
    void *impl;                        /* the source's own state, from ops->init */
    char state_view[GY_DISCOVERY_REASON_MAX + 32]; /* gy_discovery_state's answer (caller's thread) */
    /* source thread only */
    json_t *last;                      /* last snapshot published */
    char reason[GY_DISCOVERY_REASON_MAX]; /* current failure, "" when fine */
    bool ever_ok;
    uint64_t rng;
};

struct gy_discovery_ops {
    const char *scheme; /* "file" for specs "file:..." */
    /* Parses the spec after "scheme:" into d->impl. One-line reason in err on failure. No I/O. */
    int (*init)(struct gy_discovery *d, const char *arg, char *err, size_t errlen);
    /* The thread's body: returns soon after d->stopping becomes true. */
    void (*run)(struct gy_discovery *d);
    /* Any thread: wakes a run blocked in I/O or a sleep so that it sees d->stopping. */
    void (*interrupt)(struct gy_discovery *d);
    /* Frees d->impl (the thread has been joined, or never started). */
    void (*dispose)(struct gy_discovery *d);
};

extern const struct gy_discovery_ops gy_discovery_file_ops;
extern const struct gy_discovery_ops gy_discovery_dns_ops;
extern const struct gy_discovery_ops gy_discovery_etcd_ops;
extern const struct gy_discovery_ops gy_discovery_consul_ops;
extern const struct gy_discovery_ops gy_discovery_kubernetes_ops;

static inline bool gy_discovery_stopping(const struct gy_discovery *d)
{
    return atomic_load(&d->stopping);
}

/* Checks a spec as gy_discovery_start would, without starting anything; 0 or GY_EINVAL with err.
 * (For commands that check all their specs before starting any.) */
int gy_discovery_check(const char *spec, char *err, size_t errlen);

/* Source thread: delivers a complete snapshot (takes ownership; see snapshot helpers below). */
void gy_discovery_publish(struct gy_discovery *d, json_t *snapshot);
/* Source thread: the source has nothing new and will retry; logged when the reason changes. */
void gy_discovery_fail(struct gy_discovery *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Source thread: a warning about one entry (a malformed record), logged with the spec. */
void gy_discovery_warn(struct gy_discovery *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Snprintf into err (for init); returns GY_EINVAL. */
int gy_discovery_bad_spec(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- retry backoff: 0.5 s doubling to 30 s, plus up to half again of random jitter ---- */

#define GY_BACKOFF_MIN_MS 500u
#define GY_BACKOFF_MAX_MS 30000u

struct gy_backoff {
    uint32_t base_ms;
    uint64_t rng;
};

void gy_backoff_init(struct gy_backoff *b, uint64_t seed);
static inline void gy_backoff_reset(struct gy_backoff *b)
{
    b->base_ms = GY_BACKOFF_MIN_MS;
}
/* The delay before the next attempt (never above GY_BACKOFF_MAX_MS), and doubles the base. */
uint32_t gy_backoff_next(struct gy_backoff *b);

/* ---- snapshots and instances (snapshot.c) ---- */

/*
 * Checks one instance and returns a new normalised copy {"host","port"[,"weight"][,"metadata"]},
 * or NULL with a reason. metadata may be Grey Matter's [{key, value}] list or a {key: value}
 * object; values that are not strings are written as JSON text.
 */
json_t *gy_instance_normalize(const json_t *in, char *why, size_t whylen);
/* A new instance from its parts; metadata is borrowed (NULL or an array of {key, value}). */
json_t *gy_instance_new(const char *host, long long port, const json_t *metadata);
/* Appends {key, value} to an instance's metadata list (created on first use). */
int gy_instance_add_metadata(json_t *inst, const char *key, const char *value);

/* Adds an instance (reference stolen) to snapshot[cluster]. */
int gy_snapshot_add(json_t *snapshot, const char *cluster, json_t *inst);
/* Sorts each cluster's instances by host then port and drops repeated host:port pairs, so that
 * equal views compare equal. */
void gy_snapshot_finish(json_t *snapshot);
/* Counts the instances of a snapshot. */
size_t gy_snapshot_instances(const json_t *snapshot);

/* ---- specs ---- */

/* Parses "host:port" or "[v6]:port" into a string c-ares and curl accept; 0 or GY_EINVAL. */
int gy_parse_hostport(const char *s, char *out, size_t outlen, bool need_port);
/* A decimal port 1..65535 from [s, s+len); -1 if malformed. */
int gy_parse_port(const char *s, size_t len);

/*
 * A "URL[?k=v&k=v]" spec: checks the URL is http:// or https:// with a host and returns its
 * base (scheme://host:port, no trailing slash), its path ("" for none) and its query parameters,
 * checked against `allowed` (NULL-terminated). Values are URL-decoded copies. Caller frees with
 * gy_spec_url_dispose.
 */
#define GY_SPEC_MAX_PARAMS 8
struct gy_spec_url {
    char *base;
    char *path;
    const char *names[GY_SPEC_MAX_PARAMS];
    char *values[GY_SPEC_MAX_PARAMS];
    size_t nparams;
};
int gy_spec_url_parse(const char *s, const char *const *allowed, struct gy_spec_url *u, char *err, size_t errlen);
/* The value of a parameter, or `def` when absent. */
const char *gy_spec_url_param(const struct gy_spec_url *u, const char *name, const char *def);
void gy_spec_url_dispose(struct gy_spec_url *u);

#endif
