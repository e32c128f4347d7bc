/*
 * The mesh in memory and the one write path every API call and `apply` goes through:
 *
 *   1. check each write against what is stored (exists? checksum?) and give the new objects
 *      their checksums;
 *   2. validate the whole mesh the writes would produce with gy_mesh_validate (the one
 *      validator; order does not matter), so an error is reported exactly as `gyrus validate`
 *      reports it;
 *   3. commit the batch to the store atomically (etcd: with a compare on the mesh revision;
 *      a concurrent write elsewhere makes us reload, revalidate and retry);
 *   4. apply it in memory, recompute the views it touches and answer their parked polls.
 */
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "control/control.h"
#include "core/err.h"
#include "core/log.h"
#include "mesh/mesh.h"

#define WRITE_RETRIES 8
#define BIG_BATCH 1000 /* after this many objects, give the transient memory back to the system */

/* ---- kinds ---- */

int ctl_kind_index(const char *kind)
{
    for (size_t i = 0; kind != NULL && i < gy_mesh_nkinds && i < CTL_NKINDS; i++)
        if (strcmp(gy_mesh_kinds[i], kind) == 0)
            return (int)i;
    return -1;
}

const char *ctl_kind_name(int ki)
{
    return gy_mesh_kinds[ki];
}

const char *ctl_kind_key_field(int ki)
{
    return gy_mesh_key_field(gy_mesh_kinds[ki]);
}

/* ---- errors ---- */

void ctl_error_set(struct ctl_error *e, int code, const char *fmt, ...)
{
    va_list ap;

    e->code = code;
    e->field[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

/* `route "api": rules[0].constraints.light[0].cluster_key: no cluster "pay"` → field
 * "rules[0].constraints.light[0].cluster_key". The object part ends at the first `": ` after
 * its quoted key (keys are quoted with '"' replaced), or is `object N (kind)`. */
void ctl_error_from_mesh(struct ctl_error *e, int code, const char *msg)
{
    const char *rest = NULL, *q = strchr(msg, '"');

    ctl_error_set(e, code, "%s", msg);
    if (q != NULL && (q = strstr(q + 1, "\": ")) != NULL)
        rest = q + 3;
    else if (strncmp(msg, "object ", 7) == 0 && (q = strstr(msg, "): ")) != NULL)
        rest = q + 3;
    if (rest == NULL)
        return;
    const char *end = strstr(rest, ": ");
    if (end == NULL || (size_t)(end - rest) >= sizeof(e->field))
        return;
    for (const char *p = rest; p < end; p++)
        if (*p == ' ' || *p == '"')
            return; /* a message, not a path */
    memcpy(e->field, rest, (size_t)(end - rest));
    e->field[end - rest] = '\0';
}

/* ---- hashing ---- */

static void hex_digest(const EVP_MD *md, const char *data, size_t len, char *out, size_t hexlen)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    static const char hx[] = "0123456789abcdef";

    if (EVP_Digest(data, len, d, &dl, md, NULL) != 1)
        dl = 0;
    size_t i = 0;
    for (; i < hexlen && i / 2 < dl; i++)
        out[i] = hx[(i & 1) ? (d[i / 2] & 15) : (d[i / 2] >> 4)];
    out[i] = '\0';
}

void ctl_sha1_hex(const char *data, size_t len, char out[41])
{
    hex_digest(EVP_sha1(), data, len, out, 40);
}

void ctl_sha256_hex(const char *data, size_t len, char *out, size_t hexlen)
{
    hex_digest(EVP_sha256(), data, len, out, hexlen);
}

char *ctl_canonical(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

int ctl_checksum_set(json_t *obj)
{
    json_t *copy = json_copy(obj);
    char sum[41];
    char *s;

    if (copy == NULL)
        return GY_ENOMEM;
    json_object_del(copy, "checksum");
    s = ctl_canonical(copy);
    json_decref(copy);
    if (s == NULL)
        return GY_ENOMEM;
    ctl_sha1_hex(s, strlen(s), sum);
    free(s);
    return json_object_set_new(obj, "checksum", json_string(sum)) == 0 ? 0 : GY_ENOMEM;
}

static const char *checksum_of(const json_t *obj)
{
    const char *s = json_string_value(json_object_get(obj, "checksum"));
    return s ? s : "";
}

/* ---- the mesh in memory ---- */

int ctl_mesh_init(struct gy_control *ctl)
{
    for (int k = 0; k < CTL_NKINDS; k++) {
        ctl_map_init(&ctl->canon[k]);
        if ((ctl->objects[k] = json_object()) == NULL)
            return GY_ENOMEM;
    }
    ctl->routes_by_domain = json_object();
    ctl->proxies_by_name = json_object();
    ctl->clusters_by_name = json_object();
    if (ctl->identities == NULL)
        ctl->identities = json_object();
    ctl->discovered = json_object();
    return ctl->routes_by_domain && ctl->proxies_by_name && ctl->clusters_by_name && ctl->identities &&
                   ctl->discovered
               ? 0
               : GY_ENOMEM;
}

void ctl_mesh_dispose(struct gy_control *ctl)
{
    for (int k = 0; k < CTL_NKINDS; k++) {
        json_decref(ctl->objects[k]);
        ctl_map_dispose(&ctl->canon[k], free);
    }
    json_decref(ctl->routes_by_domain);
    json_decref(ctl->proxies_by_name);
    json_decref(ctl->clusters_by_name);
    json_decref(ctl->identities);
    json_decref(ctl->discovered);
}

size_t ctl_mesh_count(const struct gy_control *ctl, int ki)
{
    return json_object_size(ctl->objects[ki]);
}

static void index_add(json_t *index, const char *group, const char *key)
{
    json_t *set;

    if (group == NULL)
        return;
    set = json_object_get(index, group);
    if (set == NULL) {
        set = json_object();
        json_object_set_new(index, group, set);
    }
    json_object_set_new(set, key, json_true());
}

static void index_del(json_t *index, const char *group, const char *key)
{
    json_t *set;

    if (group == NULL || (set = json_object_get(index, group)) == NULL)
        return;
    json_object_del(set, key);
    if (json_object_size(set) == 0)
        json_object_del(index, group);
}

static const char *str_field(const json_t *o, const char *f)
{
    return json_string_value(json_object_get(o, f));
}

/* Replaces (obj != NULL) or removes one object, keeping the indexes and marking views. */
static void mesh_set(struct gy_control *ctl, int ki, const char *key, json_t *obj)
{
    json_t *old = json_incref(json_object_get(ctl->objects[ki], key));
    char *k = strdup(key); /* key may point into old */

    if (k == NULL) {
        json_decref(old);
        return;
    }
    ctl_views_object_changed(ctl, ki, k, old, obj);
    if (ki == CTL_ROUTE) {
        index_del(ctl->routes_by_domain, str_field(old, "domain_key"), k);
        if (obj)
            index_add(ctl->routes_by_domain, str_field(obj, "domain_key"), k);
    } else if (ki == CTL_PROXY) {
        index_del(ctl->proxies_by_name, str_field(old, "name"), k);
        if (obj)
            index_add(ctl->proxies_by_name, str_field(obj, "name"), k);
    } else if (ki == CTL_CLUSTER) {
        /* A proxy whose name gains or loses its first cluster name changes its listeners' mTLS. */
        const char *on = str_field(old, "name"), *nn = str_field(obj, "name");
        index_del(ctl->clusters_by_name, on, k);
        if (obj)
            index_add(ctl->clusters_by_name, nn, k);
        if (on != NULL)
            ctl_views_name_changed(ctl, on);
        if (nn != NULL && (on == NULL || strcmp(on, nn) != 0))
            ctl_views_name_changed(ctl, nn);
    }
    free(ctl_map_del(&ctl->canon[ki], k));
    if (obj != NULL) {
        json_object_set(ctl->objects[ki], k, obj);
        char *text = ctl_canonical(obj);
        size_t len = text ? strlen(text) : 0;
        struct ctl_canon *c = text ? malloc(sizeof(*c) + len + 1) : NULL;
        if (c != NULL) {
            c->len = len;
            memcpy(c->text, text, len + 1);
            if (ctl_map_put(&ctl->canon[ki], k, c) != 0)
                free(c);
        }
        free(text); /* without it (ENOMEM), views serialize the object themselves */
    } else {
        json_object_del(ctl->objects[ki], k);
    }
    json_decref(old);
    free(k);
}

/* A stored object from elsewhere (store load, another replica): kind known, key present,
 * checksum filled in if it has none. Returns the kind index or -1. */
static int accept_stored(json_t *o, const char **key)
{
    int ki = ctl_kind_index(str_field(o, "kind"));

    if (ki < 0 || (*key = str_field(o, ctl_kind_key_field(ki))) == NULL)
        return -1;
    if (json_object_get(o, "checksum") == NULL || !json_is_string(json_object_get(o, "checksum")) ||
        json_string_length(json_object_get(o, "checksum")) == 0)
        ctl_checksum_set(o);
    return ki;
}

void ctl_mesh_replace_all(struct gy_control *ctl, json_t *objects)
{
    json_t *next[CTL_NKINDS];
    json_t *o;
    size_t i;

    for (int k = 0; k < CTL_NKINDS; k++)
        next[k] = json_object();
    json_array_foreach(objects, i, o) {
        const char *key;
        int ki = accept_stored(o, &key);
        if (ki < 0) {
            gy_warn("store: skipping object %zu: no known kind and key", i);
            continue;
        }
        json_object_set(next[ki], key, o);
    }
    for (int k = 0; k < CTL_NKINDS; k++) {
        const char *key;
        json_t *cur, *tmp;
        json_t *gone = json_array();
        json_object_foreach(ctl->objects[k], key, cur)
            if (json_object_get(next[k], key) == NULL)
                json_array_append_new(gone, json_string(key));
        json_array_foreach(gone, i, tmp)
            mesh_set(ctl, k, json_string_value(tmp), NULL);
        json_decref(gone);
        json_object_foreach_safe(next[k], tmp, key, o) {
            cur = json_object_get(ctl->objects[k], key);
            if (cur == NULL || !json_equal(cur, o))
                mesh_set(ctl, k, key, o);
        }
        json_decref(next[k]);
    }
    ctl_views_flush(ctl);
    malloc_trim(0);
}

void ctl_mesh_apply_changes(struct gy_control *ctl, const struct gy_store_change *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int ki = ctl_kind_index(c[i].kind);
        const char *key;
        if (ki < 0)
            continue;
        if (c[i].obj == NULL) {
            if (ctl_mesh_get(ctl, ki, c[i].key) != NULL)
                mesh_set(ctl, ki, c[i].key, NULL);
            continue;
        }
        if (accept_stored(c[i].obj, &key) != ki || strcmp(key, c[i].key) != 0) {
            gy_warn("store: ignoring %s \"%s\": its body does not match its key", c[i].kind, c[i].key);
            continue;
        }
        json_t *cur = ctl_mesh_get(ctl, ki, key);
        if (cur == NULL || !json_equal(cur, c[i].obj))
            mesh_set(ctl, ki, key, c[i].obj);
    }
    ctl_views_flush(ctl);
    if (n >= BIG_BATCH)
        malloc_trim(0);
}

int ctl_mesh_resync(struct gy_control *ctl)
{
    json_t *objects = NULL;
    char err[512];

    if (ctl->store_ops->load(ctl->store, &objects, err, sizeof(err)) != 0) {
        ctl->store_errors++;
        gy_error("store: cannot reload the mesh: %s", err);
        return -1;
    }
    ctl_mesh_replace_all(ctl, objects);
    json_decref(objects);
    return 0;
}

/* ---- the write path ---- */

/* True if the validator's message is about `kind "key"` (its quoting replaces '"', '\\' and
 * control characters with '?' and may cut long keys with "..."). */
static bool message_names(const char *msg, const char *kind, const char *key)
{
    size_t kl = strlen(kind);

    if (strncmp(msg, kind, kl) != 0 || msg[kl] != ' ' || msg[kl + 1] != '"')
        return false;
    const char *p = msg + kl + 2;
    for (const char *k = key; *k; k++, p++) {
        unsigned char c = (unsigned char)*k;
        char want = (c < 0x20 || c == 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
        if (*p == '.' && strncmp(p, "...\": ", 6) == 0)
            return true;
        if (*p != want)
            return false;
    }
    return strncmp(p, "\": ", 3) == 0 || strcmp(p, "\"") == 0;
}

struct batch {
    struct gy_store_change *changes;
    int *kinds;
    const char **actions;  /* per write */
    bool *changed;         /* per write: in `changes` */
    size_t nchanges;
    json_t *seen;          /* "kind\x1fkey" → write index */
};

static void batch_free(struct batch *b)
{
    free(b->changes);
    free(b->kinds);
    free(b->actions);
    free(b->changed);
    json_decref(b->seen);
}

/* Step 1: each write against the stored object. Returns 0 or -1 with err. */
static int prepare(struct gy_control *ctl, const struct ctl_write *w, size_t n, struct batch *b, struct ctl_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const char *kind = ctl_kind_name(w[i].kind);
        json_t *cur = ctl_mesh_get(ctl, w[i].kind, w[i].key);
        char id[1024];

        snprintf(id, sizeof(id), "%s\x1f%s", kind, w[i].key);
        json_t *prev = json_object_get(b->seen, id);
        if (prev != NULL) {
            ctl_error_set(err, 400, "%s \"%s\": duplicate %s (also object %" JSON_INTEGER_FORMAT ")", kind, w[i].key,
                          ctl_kind_key_field(w[i].kind), json_integer_value(prev));
            return -1;
        }
        json_object_set_new(b->seen, id, json_integer((json_int_t)i));
        if (w[i].op == CTL_CREATE && cur != NULL) {
            ctl_error_set(err, 409, "%s \"%s\" already exists", kind, w[i].key);
            return -1;
        }
        if ((w[i].op == CTL_REPLACE || w[i].op == CTL_DELETE) && cur == NULL) {
            ctl_error_set(err, 404, "no %s \"%s\"", kind, w[i].key);
            return -1;
        }
        if (w[i].checksum != NULL && cur != NULL && strcmp(w[i].checksum, checksum_of(cur)) != 0) {
            ctl_error_set(err, 409, "%s \"%s\": checksum mismatch: it was changed since it was read (checksum now %s)",
                          kind, w[i].key, checksum_of(cur));
            snprintf(err->field, sizeof(err->field), "checksum");
            return -1;
        }
        if (w[i].op == CTL_DELETE) {
            b->actions[i] = "deleted";
        } else {
            if (ctl_checksum_set(w[i].obj) != 0) {
                ctl_error_set(err, 500, "out of memory");
                return -1;
            }
            if (cur != NULL && strcmp(checksum_of(cur), checksum_of(w[i].obj)) == 0) {
                b->actions[i] = "unchanged";
                continue;
            }
            b->actions[i] = cur ? "updated" : "created";
        }
        b->changed[i] = true;
        b->changes[b->nchanges] = (struct gy_store_change){ kind, w[i].key, w[i].op == CTL_DELETE ? NULL : w[i].obj };
        b->kinds[b->nchanges++] = w[i].kind;
    }
    return 0;
}

/* Step 2: validation of the mesh the batch would produce.
 *
 * The validator's checks are per object plus "every key reference resolves", so when a batch
 * only creates or replaces objects (no key disappears) the objects it does not touch stay
 * valid, and it is enough to validate the batch's objects together with what they refer to,
 * transitively (so that every reference in that set resolves inside it): a few objects instead
 * of the whole mesh. If that fails, or the batch deletes, the whole resulting mesh is
 * validated, and that answer is the one given. Either way the batch's objects come first, so
 * the first error reported is the same. */
struct closure {
    struct gy_control *ctl;
    json_t *all;    /* the objects to validate */
    json_t *seen;   /* "kind\x1fkey" of those */
};

static void closure_add(void *arg, int ki, const char *key)
{
    struct closure *c = arg;
    char id[1024];
    json_t *o;

    snprintf(id, sizeof(id), "%s\x1f%s", ctl_kind_name(ki), key);
    if (json_object_get(c->seen, id) != NULL || (o = ctl_mesh_get(c->ctl, ki, key)) == NULL)
        return;
    json_object_set_new(c->seen, id, json_true());
    json_array_append(c->all, o);
}

static int validate_closure(struct gy_control *ctl, struct batch *b, struct gy_mesh_error *me)
{
    struct closure c = { ctl, json_array(), json_object() };
    int rc = GY_ENOMEM;

    if (c.all == NULL || c.seen == NULL)
        goto out;
    for (size_t i = 0; i < b->nchanges; i++) {
        char id[1024];
        snprintf(id, sizeof(id), "%s\x1f%s", b->changes[i].kind, b->changes[i].key);
        json_object_set_new(c.seen, id, json_true());
        json_array_append(c.all, b->changes[i].obj);
    }
    for (size_t i = 0; i < json_array_size(c.all); i++) { /* grows while walking */
        json_t *o = json_array_get(c.all, i);
        int ki = ctl_kind_index(json_string_value(json_object_get(o, "kind")));
        if (ki >= 0)
            ctl_refs(ki, o, closure_add, &c);
    }
    rc = gy_mesh_validate(c.all, me);
out:
    json_decref(c.all);
    json_decref(c.seen);
    return rc;
}

static int validate_all(struct gy_control *ctl, struct batch *b, struct gy_mesh_error *me)
{
    json_t *all = json_array();
    int rc;

    if (all == NULL)
        return GY_ENOMEM;
    for (size_t i = 0; i < b->nchanges; i++)
        if (b->changes[i].obj != NULL)
            json_array_append(all, b->changes[i].obj);
    for (int k = 0; k < CTL_NKINDS; k++) {
        const char *key;
        json_t *o;
        json_object_foreach(ctl->objects[k], key, o) {
            char id[1024];
            snprintf(id, sizeof(id), "%s\x1f%s", ctl_kind_name(k), key);
            json_t *pos = json_object_get(b->seen, id);
            if (pos == NULL || !b->changed[json_integer_value(pos)])
                json_array_append(all, o);
        }
    }
    rc = gy_mesh_validate(all, me);
    json_decref(all);
    return rc;
}

static int validate(struct gy_control *ctl, struct batch *b, struct ctl_error *err)
{
    struct gy_mesh_error me;
    bool deletes = false;

    size_t total = 0;

    for (size_t i = 0; i < b->nchanges; i++)
        deletes |= b->changes[i].obj == NULL;
    for (int k = 0; k < CTL_NKINDS; k++)
        total += ctl_mesh_count(ctl, k);
    /* (a batch about as large as the mesh is validated whole at once) */
    if (!deletes && b->nchanges * 4 < total && validate_closure(ctl, b, &me) == 0)
        return 0;
    if (validate_all(ctl, b, &me) == 0)
        return 0;
    /* An error in an object of the batch is the request's fault (400); one in an object the
     * batch did not touch can only come from what the batch removed: referential integrity. */
    bool in_batch = strncmp(me.msg, "object ", 7) == 0;
    for (size_t i = 0; !in_batch && i < b->nchanges; i++)
        if (b->changes[i].obj != NULL && message_names(me.msg, b->changes[i].kind, b->changes[i].key))
            in_batch = true;
    ctl_error_from_mesh(err, in_batch ? 400 : 409, me.msg);
    return -1;
}

static int try_write(struct gy_control *ctl, const struct ctl_write *w, size_t n, struct batch *b,
                     struct ctl_error *err)
{
    char serr[512];
    int rc;

    b->nchanges = 0;
    memset(b->changed, 0, n * sizeof(*b->changed));
    json_object_clear(b->seen);
    if (prepare(ctl, w, n, b, err) != 0)
        return -1;
    if (b->nchanges == 0)
        return 0;
    if (validate(ctl, b, err) != 0)
        return -1;
    rc = ctl->store_ops->commit(ctl->store, b->changes, b->nchanges, serr, sizeof(serr));
    if (rc == GY_EAGAIN)
        return GY_EAGAIN;
    if (rc != 0) {
        ctl->store_errors++;
        gy_error("store: commit failed: %s", serr);
        ctl_error_set(err, 503, "store: %s", serr);
        return -1;
    }
    ctl->writes++;
    for (size_t i = 0; i < b->nchanges; i++)
        mesh_set(ctl, b->kinds[i], b->changes[i].key, b->changes[i].obj);
    ctl_views_flush(ctl);
    return 0;
}

int ctl_mesh_write(struct gy_control *ctl, const struct ctl_write *w, size_t n, json_t *outcome,
                   struct ctl_error *err)
{
    struct batch b = { 0 };
    int rc = -1;

    b.changes = calloc(n ? n : 1, sizeof(*b.changes));
    b.kinds = calloc(n ? n : 1, sizeof(*b.kinds));
    b.actions = calloc(n ? n : 1, sizeof(*b.actions));
    b.changed = calloc(n ? n : 1, sizeof(*b.changed));
    b.seen = json_object();
    if (b.changes == NULL || b.kinds == NULL || b.actions == NULL || b.changed == NULL || b.seen == NULL) {
        ctl_error_set(err, 500, "out of memory");
        goto out;
    }
    for (int attempt = 0;; attempt++) {
        rc = try_write(ctl, w, n, &b, err);
        if (rc != GY_EAGAIN)
            break;
        /* Contention between replicas: back off a little (a few ms, jittered) before reloading. */
        struct timespec ts = { 0, (long)(1 + (unsigned)rand() % (2u << attempt)) * 1000000L };
        if (attempt < WRITE_RETRIES)
            nanosleep(&ts, NULL);
        if (attempt == WRITE_RETRIES || ctl_mesh_resync(ctl) != 0) {
            ctl_error_set(err, 409, "the mesh kept changing through other control planes; try again");
            rc = -1;
            goto out;
        }
        gy_info("the mesh changed through another control plane; revalidating (attempt %d)", attempt + 2);
    }
    if (rc != 0)
        goto out;
    for (size_t i = 0; outcome != NULL && i < n; i++) {
        json_t *cur = ctl_mesh_get(ctl, w[i].kind, w[i].key);
        json_array_append_new(outcome, json_pack("{s:s,s:s,s:s,s:s?}", "kind", ctl_kind_name(w[i].kind), "key",
                                                 w[i].key, "action", b.actions[i], "checksum",
                                                 cur ? checksum_of(cur) : NULL));
    }
out:
    batch_free(&b);
    if (n >= BIG_BATCH)
        malloc_trim(0);
    return rc;
}
