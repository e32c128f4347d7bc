/*
 * gyrus control: the control plane's context and the functions its modules share
 * (DESIGN.md §4, docs/control.md, docs/internals/xds.md).
 *
 *   control.c   the daemon: flags → store, mesh, discovery, server; signals, drain
 *   server.c    HTTP/1.1 server on the loop, keep-alive, parked requests
 *   api.c       /v1.0/<kind>[/<key>] CRUD, /v1.0/apply, routing of every path
 *   state.c     the mesh in memory, checksums, the write path (validate → commit → apply)
 *   view.c      per-proxy views, their versions, which views a change touches
 *   xds.c       the long-poll endpoint, parked polls, ACK/NACK records per node
 *   status.c    /ready, /metrics, /v1.0/status, /v1.0/version
 *   store_*.c   where the mesh is kept (store.h)
 *
 * Everything runs on one loop thread; stores and discovery sources that block do so on their
 * own threads and post results to the loop.
 */
#ifndef GY_CONTROL_CONTROL_H
#define GY_CONTROL_CONTROL_H

#include <jansson.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <stdint.h>

#include "control/map.h"
#include "control/server.h"
#include "control/store.h"
#include "core/loop.h"

#define CTL_NKINDS 7 /* zone, proxy, listener, domain, route, shared_rules, cluster (gy_mesh_kinds order) */
enum { CTL_ZONE, CTL_PROXY, CTL_LISTENER, CTL_DOMAIN, CTL_ROUTE, CTL_SHARED_RULES, CTL_CLUSTER };

struct gy_control_options {
    const char *listen;          /* default 127.0.0.1:5555 */
    const char *data_dir;
    const char *store;           /* "sqlite" (default) or "etcd" */
    const char *etcd_endpoints;
    const char *etcd_prefix;
    const char **discovery;      /* --discovery specs */
    size_t ndiscovery;
    uint32_t drain_ms;           /* how long SIGTERM waits for responses in flight */
    const char *trust_domain;    /* the mesh CA's SPIFFE trust domain, default gyrus.local */
    uint32_t svid_ttl_s;         /* lifetime of issued SVIDs, default 3600 */
    const char *ca_cert;         /* an intermediate CA to sign with, instead of a self-signed root */
    const char *ca_key;
    const char *fips;            /* --fips: NULL/"off", "on", "required" */
    const char *tls_cert;        /* --tls-cert/--tls-key: serve the API over HTTPS (re-read when changed) */
    const char *tls_key;
    bool tls_auto;               /* --tls-auto: HTTPS with a certificate the mesh CA issues and renews */
    const char *tls_sans;        /* --tls-san: more names for it, comma-separated */
    uint32_t tls_ttl_s;          /* --tls-ttl: its lifetime, default 24 h (renewed at two thirds) */
    const char *api_key_file;    /* --api-key-file: API keys, one per line; callers must authenticate */
};

struct gy_discovery;

struct gy_control;

struct ctl_source {
    struct gy_control *ctl;
    char *spec;
    struct gy_discovery *d;
    json_t *snapshot;            /* cluster name → instances, as last reported */
    uint64_t updates;
};

struct gy_control {
    struct gy_control_options opt;
    struct gy_loop loop;
    struct gy_io signal_io;
    struct gy_timer drain_timer, gc_timer, tls_timer;
    struct stat tls_seen[2];     /* --tls-cert and --tls-key as last loaded */
    char **tls_names;            /* --tls-auto: what its certificate names */
    size_t ntls_names;
    uint64_t tls_renew_ms;       /* --tls-auto: when to issue the next one */
    struct ctl_auth *auth;       /* --api-key-file; NULL: no authentication */
    struct ctl_server *server;
    const struct gy_store_ops *store_ops;
    struct gy_store *store;
    struct ctl_ca *ca;

    /* The mesh, in memory. */
    json_t *objects[CTL_NKINDS]; /* key → object (with "kind" and "checksum") */
    struct ctl_map canon[CTL_NKINDS]; /* key → struct ctl_canon: each object's canonical JSON */
    json_t *routes_by_domain;    /* domain_key → { route_key: true } */
    json_t *proxies_by_name;     /* name → { proxy_key: true } */
    json_t *clusters_by_name;    /* name → { cluster_key: true } */
    json_t *identities;          /* service → zone of the SVIDs the CA issued (automatic mTLS) */

    /* Discovery. */
    struct ctl_source *sources;
    size_t nsources;
    json_t *discovered;          /* cluster name → instances, the union over sources */

    /* Views and the proxies polling them. */
    struct ctl_map views;        /* view id ("name\x1fzone") → struct ctl_view */
    struct ctl_map deps;         /* dependency ("k/cluster/x", "c/name", "n/name") → struct ctl_ptrset of views */
    struct gy_list dirty;        /* views to recompute (ctl_views_flush) */
    struct ctl_map nodes;        /* "name\x1fnode" → struct ctl_node */

    /* Counters for /metrics. */
    uint64_t views_sent, acks, nacks, store_errors, writes, view_computes, polls, requests, auth_refused;
    uint64_t started_ms, drain_deadline;
    bool draining;
};

/* ---- errors answered by the API ---- */

struct ctl_error {
    int code;           /* 400, 404, 409, 503 */
    char message[600];
    char field[320];    /* the field path of a validation error, "" if none */
};

void ctl_error_set(struct ctl_error *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A validation message `kind "key": path: message` → code, message and field. */
void ctl_error_from_mesh(struct ctl_error *e, int code, const char *msg);

/* ---- state.c: the mesh ---- */

/* Index of a kind name in gy_mesh_kinds, or -1. */
int ctl_kind_index(const char *kind);
const char *ctl_kind_name(int ki);
const char *ctl_kind_key_field(int ki);

int ctl_mesh_init(struct gy_control *ctl);
void ctl_mesh_dispose(struct gy_control *ctl);
static inline json_t *ctl_mesh_get(const struct gy_control *ctl, int ki, const char *key)
{
    return key != NULL ? json_object_get(ctl->objects[ki], key) : NULL;
}
size_t ctl_mesh_count(const struct gy_control *ctl, int ki);

/* An object's canonical JSON (ctl_canonical), kept beside it so that views are assembled
 * from text instead of being serialized again. */
struct ctl_canon {
    size_t len;
    char text[];
};
static inline const struct ctl_canon *ctl_mesh_canon(const struct gy_control *ctl, int ki, const char *key)
{
    return ctl_map_get(&ctl->canon[ki], key);
}

/* Sets "checksum" to the hex SHA-1 of the object's canonical JSON without it. */
int ctl_checksum_set(json_t *obj);
/* Compact JSON with sorted keys (the form hashed and stored). Caller frees. */
char *ctl_canonical(const json_t *v);
/* Lower-case hex of a SHA-1 (40 chars) or SHA-256 truncated (hexlen chars) of data. */
void ctl_sha1_hex(const char *data, size_t len, char out[41]);
void ctl_sha256_hex(const char *data, size_t len, char *out, size_t hexlen);

enum ctl_op { CTL_CREATE, CTL_REPLACE, CTL_UPSERT, CTL_DELETE };

struct ctl_write {
    enum ctl_op op;
    int kind;              /* kind index */
    const char *key;
    json_t *obj;           /* the new object, with "kind" and its key (not for DELETE); gets "checksum" */
    const char *checksum;  /* REPLACE/DELETE: the checksum the caller read; NULL = unconditional */
};

/* Validates the mesh that the writes would produce as one unit, commits them to the store
 * atomically and applies them. Appends {kind, key, action, checksum} per write to `outcome`
 * (if not NULL). Returns 0, or -1 with err set (400 invalid, 404 missing, 409 conflict or
 * referential integrity, 503 store failure). */
int ctl_mesh_write(struct gy_control *ctl, const struct ctl_write *w, size_t n, json_t *outcome,
                   struct ctl_error *err);

/* Makes the in-memory mesh equal to `objects` (an array; from the store), touching only what
 * differs, and recomputes the affected views. */
void ctl_mesh_replace_all(struct gy_control *ctl, json_t *objects);
/* Applies changes made elsewhere (another replica). */
void ctl_mesh_apply_changes(struct gy_control *ctl, const struct gy_store_change *c, size_t n);
/* Reads the whole store again; 0 or -1 (logged, counted). */
int ctl_mesh_resync(struct gy_control *ctl);

/* ---- refs.c: references between objects ---- */

typedef void (*ctl_ref_cb)(void *arg, int ki, const char *key);
/* Calls cb for every key an object of kind ki refers to (zone_key, listener_keys, domain_keys,
 * domain_key, shared_rules_key, the cluster_key of every constraint). */
void ctl_refs(int ki, const json_t *obj, ctl_ref_cb cb, void *arg);

/* ---- view.c: per-proxy views ---- */

void ctl_views_init(struct gy_control *ctl);
void ctl_views_dispose(struct gy_control *ctl);
/* Marks the views a change of one object touches (old and/or new may be NULL). */
void ctl_views_object_changed(struct gy_control *ctl, int ki, const char *key, const json_t *old_obj,
                              const json_t *new_obj);
/* Marks the views that hold clusters named `name` (their discovered instances changed). */
void ctl_views_cluster_name_changed(struct gy_control *ctl, const char *name);
/* Marks the views polled under `name` (something about that proxy's own view changed). */
void ctl_views_name_changed(struct gy_control *ctl, const char *name);
/* The CA issued an SVID to service in zone: views start using mTLS towards and from it. */
void ctl_identity_seen(struct gy_control *ctl, const char *zone, const char *service);
/* Recomputes the marked views and answers the polls parked on those whose version changed. */
void ctl_views_flush(struct gy_control *ctl);
/* Drops views nobody polled for a while. */
void ctl_views_gc(struct gy_control *ctl, uint64_t now_ms);
/* The instances of a cluster as served: static ∪ discovered (new reference). */
json_t *ctl_cluster_instances(struct gy_control *ctl, const json_t *cluster);

/* ---- discovery (control.c) ---- */

/* A snapshot from one source: merges it and marks the views whose clusters changed. */
void ctl_discovery_update(struct gy_control *ctl, struct ctl_source *src, json_t *snapshot);

/* ---- api.c, xds.c, status.c ---- */

void ctl_handle(void *arg, struct ctl_req *r);
void ctl_respond_json(struct ctl_req *r, int status, json_t *body); /* steals body */
void ctl_respond_result(struct ctl_req *r, int status, json_t *result); /* {"result": ...}; steals */
void ctl_respond_error(struct ctl_req *r, const struct ctl_error *e);
void ctl_respond_errorf(struct ctl_req *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The value of a query parameter, percent-decoded (caller frees), or NULL. */
char *ctl_query_param(const char *query, const char *name);
/* Percent-decodes s[0..n) into a new string; NULL if malformed. */
char *ctl_url_decode(const char *s, size_t n);

void ctl_xds_handle(struct gy_control *ctl, struct ctl_req *r, const char *name);

/* ---- auth.c ---- */

struct ctl_auth;
/* Reads the API keys of --api-key-file; NULL with the reason in err. */
struct ctl_auth *ctl_auth_load(const char *path, char *err, size_t errlen);
void ctl_auth_free(struct ctl_auth *a);
size_t ctl_auth_nkeys(const struct ctl_auth *a);
/* Whether the request may go on (xds_name: the proxy a /v1.0/xds/ request is for, else NULL).
 * If not, it has been answered 401 or 403. Always true without --api-key-file. */
bool ctl_auth_allow(struct gy_control *ctl, struct ctl_req *r, const char *xds_name);
/* Answers every parked poll of the view (its version changed). */
struct ctl_view;
void ctl_xds_wake(struct gy_control *ctl, struct ctl_view *v);
/* Answers every parked poll with 503 (shutting down). */
void ctl_xds_drain(struct gy_control *ctl);
void ctl_xds_dispose(struct gy_control *ctl);
void ctl_xds_gc(struct gy_control *ctl, uint64_t now_ms);
/* The proxies part of /v1.0/status (new reference). */
json_t *ctl_xds_status(struct gy_control *ctl);
size_t ctl_xds_connected(struct gy_control *ctl);

void ctl_status_ready(struct gy_control *ctl, struct ctl_req *r);
void ctl_status_metrics(struct gy_control *ctl, struct ctl_req *r);
void ctl_status_json(struct gy_control *ctl, struct ctl_req *r);
void ctl_status_version(struct gy_control *ctl, struct ctl_req *r);

/* ---- control.c ---- */

int gy_control_run(const struct gy_control_options *opt);

#endif
