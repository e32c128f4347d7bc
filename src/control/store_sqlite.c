/*
 * The SQLite store: DIR/mesh.db with one table of objects, WAL journal and synchronous=FULL, so
 * a committed batch survives a crash or power loss. The data directory is locked (flock on
 * DIR/control.lock) so that two control planes never write one file without seeing each
 * other's changes: several replicas need the etcd store.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/store.h"
#include "core/err.h"
#include "core/log.h"

struct gy_store {
    sqlite3 *db;
    sqlite3_stmt *put, *del;
    int lock_fd;
    char path[4096];
    char state[256];
};

static int mkdirs(const char *dir)
{
    char buf[4096];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, dir, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int exec(struct gy_store *s, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;

    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    snprintf(err, errlen, "%s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return GY_EIO;
}

static void sqlite_close(struct gy_store *s)
{
    if (s == NULL)
        return;
    sqlite3_finalize(s->put);
    sqlite3_finalize(s->del);
    sqlite3_close(s->db);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
}

static int lock_dir(struct gy_store *s, const char *dir, char *err, size_t errlen)
{
    char path[4200];

    snprintf(path, sizeof(path), "%s/control.lock", dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return GY_EIO;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "--data-dir %s is in use by another gyrus control (use --store etcd for several replicas)",
                 dir);
        return GY_EIO;
    }
    return 0;
}

static int sqlite_open(const struct gy_store_options *o, struct gy_store **out, char *err, size_t errlen)
{
    struct gy_store *s = calloc(1, sizeof(*s));
    int rc = GY_EIO;

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return GY_ENOMEM;
    }
    s->lock_fd = -1;
    if (o->data_dir == NULL || mkdirs(o->data_dir) != 0) {
        snprintf(err, errlen, "--data-dir %s: %s", o->data_dir ? o->data_dir : "(none)",
                 o->data_dir ? strerror(errno) : "required");
        goto out;
    }
    if ((rc = lock_dir(s, o->data_dir, err, errlen)) != 0)
        goto out;
    snprintf(s->path, sizeof(s->path), "%s/mesh.db", o->data_dir);
    rc = GY_EIO;
    if (sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", s->path, s->db ? sqlite3_errmsg(s->db) : "cannot open");
        goto out;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if (exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                "CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,"
                " PRIMARY KEY (kind, key)) WITHOUT ROWID;", err, errlen) != 0)
        goto out;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO objects (kind, key, body) VALUES (?1, ?2, ?3)", -1,
                           &s->put, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "DELETE FROM objects WHERE kind = ?1 AND key = ?2", -1, &s->del, NULL) !=
            SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", s->path, sqlite3_errmsg(s->db));
        goto out;
    }
    snprintf(s->state, sizeof(s->state), "ok");
    *out = s;
    s = NULL;
    rc = 0;
out:
    sqlite_close(s);
    return rc;
}

static int sqlite_load(struct gy_store *s, json_t **objects, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    int rc = GY_EIO, step;

    if (arr == NULL || sqlite3_prepare_v2(s->db, "SELECT kind, key, body FROM objects ORDER BY kind, key", -1, &st,
                                          NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", s->path, arr ? sqlite3_errmsg(s->db) : "out of memory");
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *body = (const char *)sqlite3_column_text(st, 2);
        json_error_t je;
        json_t *o = json_loads(body ? body : "", 0, &je);
        if (!json_is_object(o)) {
            snprintf(err, errlen, "%s: %s \"%s\": stored JSON is corrupt: %s", s->path, sqlite3_column_text(st, 0),
                     sqlite3_column_text(st, 1), je.text);
            json_decref(o);
            goto out;
        }
        json_array_append_new(arr, o);
    }
    if (step != SQLITE_DONE) {
        snprintf(err, errlen, "%s: %s", s->path, sqlite3_errmsg(s->db));
        goto out;
    }
    *objects = arr;
    arr = NULL;
    rc = 0;
out:
    sqlite3_finalize(st);
    json_decref(arr);
    return rc;
}

static int put_one(struct gy_store *s, const struct gy_store_change *c)
{
    sqlite3_stmt *st = c->obj ? s->put : s->del;
    char *body = NULL;
    int rc;

    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, c->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->key, -1, SQLITE_STATIC);
    if (c->obj != NULL) {
        if ((body = json_dumps(c->obj, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
            return SQLITE_NOMEM;
        sqlite3_bind_text(st, 3, body, -1, SQLITE_STATIC);
    }
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    free(body);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int sqlite_commit(struct gy_store *s, const struct gy_store_change *c, size_t n, char *err, size_t errlen)
{
    if (exec(s, "BEGIN IMMEDIATE", err, errlen) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (put_one(s, &c[i]) != SQLITE_OK) {
            snprintf(err, errlen, "%s: %s", s->path, sqlite3_errmsg(s->db));
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            goto fail;
        }
    }
    if (exec(s, "COMMIT", err, errlen) != 0) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        goto fail;
    }
    snprintf(s->state, sizeof(s->state), "ok");
    return 0;
fail:
    snprintf(s->state, sizeof(s->state), "error: %.200s", err);
    return GY_EIO;
}

static const char *sqlite_state(struct gy_store *s)
{
    return s->state;
}

const struct gy_store_ops gy_store_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .load = sqlite_load,
    .commit = sqlite_commit,
    .watch = NULL,
    .state = sqlite_state,
    .close = sqlite_close,
};

const struct gy_store_ops *gy_store_find(const char *name)
{
    if (strcmp(name, "sqlite") == 0)
        return &gy_store_sqlite_ops;
    if (strcmp(name, "etcd") == 0)
        return &gy_store_etcd_ops;
    return NULL;
}
