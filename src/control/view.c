/*
 * Per-proxy views (view.h, docs/internals/xds.md). A view holds the proxy object, its listeners
 * and domains (the listeners' and the proxy's own domain_keys, inline listeners' too), the
 * routes on those domains, the shared_rules they use, the clusters their constraints reach
 * (light, dark and tap) with instances = static ∪ discovered, and every zone those objects name.
 * Objects go out in kind order, keys sorted, as canonical JSON; the version is a hash of it,
 * so it changes exactly when the content does and is the same on every replica.
 */
#include "control/view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/ca.h"
#include "core/err.h"
#include "core/log.h"
#include "core/time.h"

#define VIEW_IDLE_MS (10u * 60u * 1000u)

/* ---- dependencies ---- */

static const char *dep_name(char *buf, size_t len, const char *prefix, const char *a, const char *b)
{
    /* A cut name can only make more views recompute than needed, never fewer. */
    snprintf(buf, len, "%s/%s%s%s", prefix, a, b ? "/" : "", b ? b : "");
    return buf;
}

static void deps_mark(struct gy_control *ctl, const char *dep)
{
    struct ctl_ptrset *set = ctl_map_get(&ctl->deps, dep);

    for (size_t i = 0; set != NULL && i < set->n; i++) {
        struct ctl_view *v = set->items[i];
        if (!gy_list_linked(&v->dirty_link))
            gy_list_insert_tail(&ctl->dirty, &v->dirty_link);
    }
}

static void deps_unregister(struct gy_control *ctl, struct ctl_view *v)
{
    size_t i;
    json_t *d;

    json_array_foreach(v->deps, i, d) {
        struct ctl_ptrset *set = ctl_map_get(&ctl->deps, json_string_value(d));
        if (set == NULL)
            continue;
        ctl_ptrset_remove(set, v);
        if (set->n == 0) {
            ctl_map_del(&ctl->deps, json_string_value(d));
            ctl_ptrset_dispose(set);
            free(set);
        }
    }
    json_array_clear(v->deps);
}

static void deps_register(struct gy_control *ctl, struct ctl_view *v, json_t *deps)
{
    const char *dep;
    json_t *tmp;

    json_object_foreach(deps, dep, tmp) {
        struct ctl_ptrset *set = ctl_map_get(&ctl->deps, dep);
        if (set == NULL) {
            if ((set = calloc(1, sizeof(*set))) == NULL || ctl_map_put(&ctl->deps, dep, set) != 0) {
                free(set);
                continue;
            }
        }
        if (ctl_ptrset_add(set, v) == 0)
            json_array_append_new(v->deps, json_string(dep));
    }
}

void ctl_views_object_changed(struct gy_control *ctl, int ki, const char *key, const json_t *old_obj,
                              const json_t *new_obj)
{
    char buf[1024];

    deps_mark(ctl, dep_name(buf, sizeof(buf), "k", ctl_kind_name(ki), key));
    if (ki == CTL_ROUTE) { /* a route joins the views of its domain */
        const char *d = json_string_value(json_object_get(new_obj, "domain_key"));
        if (d != NULL)
            deps_mark(ctl, dep_name(buf, sizeof(buf), "k", "domain", d));
    } else if (ki == CTL_PROXY) { /* a proxy may now answer a name */
        const json_t *objs[2] = { old_obj, new_obj };
        for (int i = 0; i < 2; i++) {
            const char *name = json_string_value(json_object_get(objs[i], "name"));
            if (name != NULL)
                deps_mark(ctl, dep_name(buf, sizeof(buf), "n", name, NULL));
        }
        deps_mark(ctl, dep_name(buf, sizeof(buf), "n", key, NULL));
    }
}

void ctl_views_name_changed(struct gy_control *ctl, const char *name)
{
    char dep[600];

    deps_mark(ctl, dep_name(dep, sizeof(dep), "n", name, NULL));
}

void ctl_views_cluster_name_changed(struct gy_control *ctl, const char *name)
{
    char buf[1024];

    deps_mark(ctl, dep_name(buf, sizeof(buf), "c", name, NULL));
}

/* ---- collecting a view ---- */

struct collect {
    struct gy_control *ctl;
    const char *viewer;         /* the name the view is polled under */
    json_t *picked[CTL_NKINDS]; /* key → object */
    json_t *deps;               /* dependency → true */
};

static void dep_add(struct collect *c, const char *prefix, const char *a, const char *b)
{
    char buf[1024];

    json_object_set_new(c->deps, dep_name(buf, sizeof(buf), prefix, a, b), json_true());
}

static void pick(struct collect *c, int ki, const char *key);

static void pick_ref(void *arg, int ki, const char *key)
{
    pick(arg, ki, key);
}

/* An object, what it refers to, and for a domain the routes on it. */
static void pick(struct collect *c, int ki, const char *key)
{
    json_t *o;

    if (key == NULL || key[0] == '\0')
        return;
    dep_add(c, "k", ctl_kind_name(ki), key);
    if (json_object_get(c->picked[ki], key) != NULL || (o = ctl_mesh_get(c->ctl, ki, key)) == NULL)
        return;
    json_object_set(c->picked[ki], key, o);
    ctl_refs(ki, o, pick_ref, c);
    if (ki == CTL_DOMAIN) {
        const char *rk;
        json_t *t;
        json_object_foreach(json_object_get(c->ctl->routes_by_domain, key), rk, t)
            pick(c, CTL_ROUTE, rk);
    } else if (ki == CTL_CLUSTER) {
        const char *name = json_string_value(json_object_get(o, "name"));
        dep_add(c, "c", name && name[0] ? name : key, NULL);
    }
}

/* The proxy a (name, zone) poll gets: a proxy named `name` (the one in `zone` if several, else
 * the smallest key, so that every replica picks the same), else the proxy whose key is `name`. */
static const char *resolve_proxy(struct gy_control *ctl, const char *name, const char *zone)
{
    json_t *keys = json_object_get(ctl->proxies_by_name, name), *t;
    const char *k, *best = NULL, *best_zone = NULL;

    json_object_foreach(keys, k, t) {
        const char *z = json_string_value(json_object_get(ctl_mesh_get(ctl, CTL_PROXY, k), "zone_key"));
        if (zone[0] != '\0' && z != NULL && strcmp(z, zone) == 0) {
            if (best_zone == NULL || strcmp(k, best_zone) < 0)
                best_zone = k;
        }
        if (best == NULL || strcmp(k, best) < 0)
            best = k;
    }
    if (best_zone != NULL)
        return best_zone;
    if (best != NULL)
        return best;
    json_t *byname = ctl_mesh_get(ctl, CTL_PROXY, name);
    return byname != NULL ? json_string_value(json_object_get(byname, "proxy_key")) : NULL;
}

static const char *str_or(const json_t *v, const char *dflt)
{
    const char *s = json_string_value(v);
    return s != NULL ? s : dflt;
}

json_t *ctl_cluster_instances(struct gy_control *ctl, const json_t *cluster)
{
    const char *name = json_string_value(json_object_get(cluster, "name"));
    const json_t *stat = json_object_get(cluster, "instances"), *disc;
    json_t *in;
    json_t *out, *seen;
    size_t i;

    if (name == NULL || name[0] == '\0')
        name = json_string_value(json_object_get(cluster, "cluster_key"));
    disc = name ? json_object_get(ctl->discovered, name) : NULL;
    if (disc == NULL)
        return json_is_array(stat) ? json_incref((json_t *)stat) : json_array();
    out = json_is_array(stat) ? json_copy((json_t *)stat) : json_array();
    seen = json_object();
    json_array_foreach(out, i, in) {
        char hp[600];
        snprintf(hp, sizeof(hp), "%s:%" JSON_INTEGER_FORMAT, str_or(json_object_get(in, "host"), ""),
                 json_integer_value(json_object_get(in, "port")));
        json_object_set_new(seen, hp, json_true());
    }
    json_array_foreach((json_t *)disc, i, in) {
        char hp[600];
        snprintf(hp, sizeof(hp), "%s:%" JSON_INTEGER_FORMAT, str_or(json_object_get(in, "host"), ""),
                 json_integer_value(json_object_get(in, "port")));
        if (json_object_get(seen, hp) == NULL) {
            json_object_set_new(seen, hp, json_true());
            json_array_append(out, in);
        }
    }
    json_decref(seen);
    return out;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Automatic mTLS: when the CA issued SVIDs both to the viewing proxy and to a meshed service
 * (a proxy whose name is a cluster name), the viewer's clusters to that service present the
 * viewer's SVID and check the service's SPIFFE ID, and the service's listeners require a client
 * SVID of the trust domain. Objects with their own TLS settings are left as they are.
 * Returns a decorated copy, or NULL. */
static json_t *mtls_decorate(struct collect *c, int k, const json_t *o)
{
    struct gy_control *ctl = c->ctl;
    const char *vz = json_string_value(json_object_get(ctl->identities, c->viewer)), *td;
    char me[700], trust[400], peer[700];

    if (ctl->ca == NULL || vz == NULL || (k != CTL_CLUSTER && k != CTL_LISTENER) ||
        json_object_get(o, "secret") != NULL || json_object_get(o, "ssl_config") != NULL ||
        json_is_true(json_object_get(o, "require_tls")))
        return NULL;
    td = ctl_ca_trust_domain(ctl->ca);
    snprintf(me, sizeof(me), "spiffe://%s/%s/%s", td, vz, c->viewer);
    snprintf(trust, sizeof(trust), "spiffe://%s", td);
    if (k == CTL_LISTENER) {
        if (json_object_get(ctl->clusters_by_name, c->viewer) == NULL) /* nobody in the mesh calls it */
            return NULL;
        json_t *copy = json_copy((json_t *)o);
        /* The service behind learns who called: x-forwarded-client-cert with the caller's SPIFFE ID
         * (unless the listener says otherwise with its own forward_client_cert_details). */
        json_object_set_new(copy, "secret", json_pack("{s:s,s:s,s:s,s:{s:b}}", "secret_name", me, "secret_validation_name",
                                                      trust, "forward_client_cert_details", "SANITIZE_SET",
                                                      "set_current_client_cert_details", "uri", 1));
        return copy;
    }
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *tz = name ? json_string_value(json_object_get(ctl->identities, name)) : NULL;
    if (tz == NULL)
        return NULL;
    snprintf(peer, sizeof(peer), "spiffe://%s/%s/%s", td, tz, name);
    json_t *copy = json_copy((json_t *)o);
    json_object_set_new(copy, "secret", json_pack("{s:s,s:s,s:[s]}", "secret_name", me, "secret_validation_name",
                                                  trust, "subject_names", peer));
    return copy;
}

/* One object of a view as canonical JSON: its cached text, or (a cluster whose instances
 * discovery changes, an object decorated for mTLS, an object without cached text) serialized now. */
static void write_object(struct collect *c, FILE *out, int k, const char *key, const json_t *o)
{
    const struct ctl_canon *cached = ctl_mesh_canon(c->ctl, k, key);
    json_t *copy = mtls_decorate(c, k, o);

    if (copy != NULL) {
        cached = NULL;
        o = copy;
    }

    if (k == CTL_CLUSTER) {
        json_t *inst = ctl_cluster_instances(c->ctl, o);
        const json_t *have = json_object_get(o, "instances");
        if (!json_equal(inst, have) && !(json_array_size(inst) == 0 && have == NULL)) {
            if (copy == NULL)
                copy = json_copy((json_t *)o);
            json_object_set(copy, "instances", inst);
            cached = NULL;
        }
        json_decref(inst);
    }
    if (cached != NULL) {
        fwrite(cached->text, 1, cached->len, out);
        return;
    }
    char *text = ctl_canonical(copy ? copy : o);
    fputs(text ? text : "null", out);
    free(text);
    json_decref(copy);
}

/* The view's objects as one canonical JSON array, in output order: kinds in order, keys
 * sorted. The same text json_dumps(JSON_COMPACT | JSON_SORT_KEYS) would give. */
static char *view_canonical(struct collect *c, size_t *nobjects)
{
    char *buf = NULL;
    size_t len = 0, n = 0;
    FILE *out = open_memstream(&buf, &len);

    if (out == NULL)
        return NULL;
    fputc('[', out);
    for (int k = 0; k < CTL_NKINDS; k++) {
        size_t cnt = json_object_size(c->picked[k]), i = 0;
        const char **keys = malloc((cnt ? cnt : 1) * sizeof(*keys)), *key;
        json_t *o;
        if (keys == NULL) {
            fclose(out);
            free(buf);
            return NULL;
        }
        json_object_foreach(c->picked[k], key, o)
            keys[i++] = key;
        qsort(keys, cnt, sizeof(*keys), cmp_str);
        for (i = 0; i < cnt; i++) {
            if (n++ > 0)
                fputc(',', out);
            write_object(c, out, k, keys[i], json_object_get(c->picked[k], keys[i]));
        }
        free(keys);
    }
    fputc(']', out);
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    *nobjects = n;
    return buf;
}

static struct ctl_blob *view_body(const char *version, const char *name, const char *objects)
{
    json_t *jn = json_string(name);
    char *qname = jn ? json_dumps(jn, JSON_ENCODE_ANY) : NULL;
    size_t len = strlen(objects) + (qname ? strlen(qname) : 0) + 64;
    char *body = malloc(len);
    int n;

    json_decref(jn);
    if (body == NULL || qname == NULL) {
        free(body);
        free(qname);
        return NULL;
    }
    n = snprintf(body, len, "{\"version\":\"%s\",\"proxy\":%s,\"objects\":%s}", version, qname, objects);
    free(qname);
    return ctl_blob_take(body, (size_t)n);
}

/* Recomputes a view; true if its version changed. */
static bool view_compute(struct gy_control *ctl, struct ctl_view *v)
{
    struct collect c = { .ctl = ctl, .viewer = v->name };
    const char *pk = resolve_proxy(ctl, v->name, v->zone);
    char version[CTL_VERSION_LEN + 1] = "";
    struct ctl_blob *body = NULL;
    size_t nobjects = 0;
    bool changed;

    ctl->view_computes++;
    c.deps = json_object();
    for (int k = 0; k < CTL_NKINDS; k++)
        c.picked[k] = json_object();
    dep_add(&c, "n", v->name, NULL);
    pick(&c, CTL_PROXY, pk);
    if (pk != NULL) {
        char *canon = view_canonical(&c, &nobjects);
        if (canon != NULL) {
            ctl_sha256_hex(canon, strlen(canon), version, CTL_VERSION_LEN);
            if (strcmp(version, v->version) != 0)
                body = view_body(version, v->name, canon);
        } else {
            gy_error("view of \"%s\": out of memory", v->name);
        }
        free(canon);
    }
    changed = strcmp(version, v->version) != 0;
    if (changed) {
        ctl_blob_unref(v->body);
        v->body = body;
        memcpy(v->version, version, sizeof(version));
        v->nobjects = nobjects;
        if (v->body == NULL)
            v->version[0] = '\0';
    }
    free(v->proxy_key);
    v->proxy_key = pk ? strdup(pk) : NULL;
    deps_unregister(ctl, v);
    deps_register(ctl, v, c.deps);
    json_decref(c.deps);
    for (int k = 0; k < CTL_NKINDS; k++)
        json_decref(c.picked[k]);
    return changed;
}

/* ---- the views ---- */

static void view_free(struct gy_control *ctl, struct ctl_view *v)
{
    deps_unregister(ctl, v);
    if (gy_list_linked(&v->dirty_link))
        gy_list_remove(&v->dirty_link);
    ctl_blob_unref(v->body);
    json_decref(v->deps);
    free(v->id);
    free(v->name);
    free(v->zone);
    free(v->proxy_key);
    free(v);
}

struct ctl_view *ctl_view_get(struct gy_control *ctl, const char *name, const char *zone)
{
    size_t len = strlen(name) + strlen(zone) + 2;
    char *id = malloc(len);
    struct ctl_view *v;

    if (id == NULL)
        return NULL;
    snprintf(id, len, "%s\x1f%s", name, zone);
    if ((v = ctl_map_get(&ctl->views, id)) != NULL) {
        free(id);
        v->last_used_ms = gy_now_ms();
        return v;
    }
    if ((v = calloc(1, sizeof(*v))) == NULL || (v->name = strdup(name)) == NULL || (v->zone = strdup(zone)) == NULL ||
        (v->deps = json_array()) == NULL || ctl_map_put(&ctl->views, id, v) != 0) {
        if (v != NULL) {
            json_decref(v->deps);
            free(v->name);
            free(v->zone);
        }
        free(v);
        free(id);
        return NULL;
    }
    v->id = id;
    gy_list_init(&v->parked);
    gy_list_init(&v->dirty_link);
    v->last_used_ms = gy_now_ms();
    view_compute(ctl, v);
    return v;
}

void ctl_views_init(struct gy_control *ctl)
{
    ctl_map_init(&ctl->views);
    ctl_map_init(&ctl->deps);
    gy_list_init(&ctl->dirty);
}

void ctl_views_flush(struct gy_control *ctl)
{
    while (!gy_list_empty(&ctl->dirty)) {
        struct ctl_view *v = GY_CONTAINER_OF(ctl->dirty.next, struct ctl_view, dirty_link);
        gy_list_remove(&v->dirty_link);
        if (view_compute(ctl, v))
            ctl_xds_wake(ctl, v);
    }
}

void ctl_views_gc(struct gy_control *ctl, uint64_t now_ms)
{
    size_t pos = 0;
    const char *id;
    void *val;
    json_t *gone = json_array();

    while (ctl_map_next(&ctl->views, &pos, &id, &val)) {
        struct ctl_view *v = val;
        if (gy_list_empty(&v->parked) && now_ms - v->last_used_ms > VIEW_IDLE_MS)
            json_array_append_new(gone, json_string(id));
    }
    size_t i;
    json_t *g;
    json_array_foreach(gone, i, g)
        view_free(ctl, ctl_map_del(&ctl->views, json_string_value(g)));
    json_decref(gone);
}

void ctl_views_dispose(struct gy_control *ctl)
{
    size_t pos = 0;
    const char *id;
    void *val;

    while (ctl_map_next(&ctl->views, &pos, &id, &val)) {
        struct ctl_view *v = val;
        deps_unregister(ctl, v);
    }
    pos = 0;
    while (ctl_map_next(&ctl->views, &pos, &id, &val))
        view_free(ctl, val);
    ctl_map_dispose(&ctl->views, NULL);
    ctl_map_dispose(&ctl->deps, NULL);
}
