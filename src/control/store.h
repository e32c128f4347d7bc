/*
 * Where the mesh objects live (DESIGN.md §4): a `const struct gy_store_ops` per backend.
 *
 *   sqlite  DIR/mesh.db, WAL, synchronous=FULL; one control plane per data dir (locked).
 *   etcd    keys PREFIX/objects/<kind>/<key> in an etcd v3 cluster, through its JSON gateway;
 *           several control planes share one mesh and see each other's changes by watching.
 *
 * Objects are stored as they are served: JSON with "kind" and "checksum". The control plane
 * keeps the whole mesh in memory; a store is read in full at start (and on resync) and then
 * written in atomic batches. All calls are made on the control loop's thread; a store that
 * watches (etcd) runs its own thread and posts what it sees to the loop.
 */
#ifndef GY_CONTROL_STORE_H
#define GY_CONTROL_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/loop.h"

struct gy_store;

/* One change of a batch: obj == NULL deletes kind/key. Borrowed. */
struct gy_store_change {
    const char *kind;
    const char *key;
    json_t *obj;
};

struct gy_store_options {
    const char *data_dir;        /* sqlite: the directory of mesh.db */
    const char *etcd_endpoints;  /* etcd: "http://127.0.0.1:2379[,http://...]" */
    const char *etcd_prefix;     /* etcd: key prefix, default "/gyrus" */
};

/* What a watching store reports, on the loop thread. */
struct gy_store_watcher {
    /* Changes made by someone else (another replica), in commit order. */
    void (*changed)(void *arg, const struct gy_store_change *changes, size_t n);
    /* The store lost track (etcd compaction, a reconnect): read everything again with load(). */
    void (*resync)(void *arg);
    void *arg;
};

struct gy_store_ops {
    const char *name;
    /* Opens (and creates) the store; errors are one line in err. */
    int (*open)(const struct gy_store_options *o, struct gy_store **out, char *err, size_t errlen);
    /* Every object, as a new array of objects each with "kind". */
    int (*load)(struct gy_store *s, json_t **objects, char *err, size_t errlen);
    /* Applies every change or none. GY_EAGAIN: someone else changed the mesh since this
     * process last saw it (etcd); the caller calls load(), revalidates and retries. */
    int (*commit)(struct gy_store *s, const struct gy_store_change *c, size_t n, char *err, size_t errlen);
    /* Starts reporting changes made by others (NULL when the store has a single writer). */
    int (*watch)(struct gy_store *s, struct gy_loop *loop, const struct gy_store_watcher *w, char *err,
                 size_t errlen);
    /* A short state for /ready and /v1.0/status: "ok" or why not. */
    const char *(*state)(struct gy_store *s);
    /* Stops watching and frees the store. */
    void (*close)(struct gy_store *s);
};

extern const struct gy_store_ops gy_store_sqlite_ops;
extern const struct gy_store_ops gy_store_etcd_ops;

/* The ops of a store name ("sqlite", "etcd"), or NULL. */
const struct gy_store_ops *gy_store_find(const char *name);

#endif
