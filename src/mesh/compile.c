/*
 * The config compiler: validated mesh objects + a proxy name → the immutable runtime view of
 * that proxy (config.h). This file holds the proxy, listener and virtual host steps and the
 * config's lifetime; routes, clusters and shared helpers are in compile_routes.c,
 * compile_clusters.c and compile_util.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "mesh/compile_int.h"

/* ---- virtual hosts ------------------------------------------------------------------------- */

static enum gy_host_match host_pattern(struct cc *cc, const char *name, char **pattern)
{
    size_t n = strlen(name);

    if (strcmp(name, "*") == 0 || n == 0) {
        *pattern = cc_strdup(cc, "");
        return GY_HOST_ANY;
    }
    if (name[0] == '*') {
        *pattern = cc_strdup_lower(cc, name + 1);
        return GY_HOST_SUFFIX;
    }
    if (name[n - 1] == '*') {
        *pattern = cc_strdup_lower(cc, name);
        if (*pattern != NULL)
            (*pattern)[n - 1] = '\0';
        return GY_HOST_PREFIX;
    }
    *pattern = cc_strdup_lower(cc, name);
    return GY_HOST_EXACT;
}

static int vhost_aliases(struct cc *cc, struct gy_vhost *v, const json_t *arr)
{
    size_t i, n = json_array_size(arr);
    const json_t *a;

    if (n == 0)
        return 0;
    v->aliases = cc_array(cc, n, sizeof(*v->aliases));
    v->alias_match = cc_array(cc, n, sizeof(*v->alias_match));
    v->alias_pattern = cc_array(cc, n, sizeof(*v->alias_pattern));
    if (v->aliases == NULL || v->alias_match == NULL || v->alias_pattern == NULL)
        return GY_ENOMEM;
    json_array_foreach(arr, i, a)
    {
        const char *s = json_string_value(a) ? json_string_value(a) : "";
        v->aliases[i] = cc_strdup(cc, s);
        v->alias_match[i] = host_pattern(cc, s, &v->alias_pattern[i]);
        if (v->aliases[i] == NULL || v->alias_pattern[i] == NULL)
            return GY_ENOMEM;
    }
    v->naliases = n;
    return 0;
}

static int build_vhost(struct cc *cc, struct gy_vhost *v, const char *key, const json_t *d)
{
    char what[300];
    int rc;

    snprintf(what, sizeof(what), "domain \"%s\"", key);
    v->key = cc_strdup(cc, key);
    v->name = cc_strdup(cc, cc_str(d, "name", "*"));
    if (v->key == NULL || v->name == NULL)
        return GY_ENOMEM;
    v->match = host_pattern(cc, v->name, &v->pattern);
    if (v->pattern == NULL)
        return GY_ENOMEM;
    v->pattern_len = strlen(v->pattern);
    v->port = (uint16_t)cc_int(d, "port", 0);
    v->force_https = cc_bool(d, "force_https", false);
    if ((rc = vhost_aliases(cc, v, json_object_get(d, "aliases"))) != 0 ||
        (rc = cc_redirects(cc, json_object_get(d, "redirects"), &v->redirects, &v->nredirects, what)) != 0 ||
        (rc = cc_header_ops(cc, json_object_get(d, "custom_headers"), &v->custom_headers, &v->ncustom_headers)) != 0)
        return rc;
    return cc_vhost_routes(cc, v, key);
}

/* The vhost of a domain, built once and shared by every listener that carries the domain. */
static int get_vhost(struct cc *cc, const char *key, struct gy_vhost **out)
{
    struct gy_config *cfg = cc->cfg;
    const json_t *pos = json_object_get(cc->vhost_pos, key);
    int rc;

    if (pos != NULL) {
        *out = &cfg->vhosts[json_integer_value(pos)];
        return 0;
    }
    const json_t *d = json_object_get(cc->index[CC_DOMAIN], key);
    if (d == NULL)
        return cc_fail(cc, "proxy \"%s\": no domain \"%s\"", cfg->proxy_name, key);
    if (cfg->nvhosts >= cc->vhosts_cap)
        return cc_fail(cc, "proxy \"%s\": too many domains", cfg->proxy_name);
    size_t idx = cfg->nvhosts++;
    if (json_object_set_new(cc->vhost_pos, key, json_integer((json_int_t)idx)) != 0)
        return cc_nomem(cc);
    if ((rc = build_vhost(cc, &cfg->vhosts[idx], key, d)) != 0)
        return rc;
    *out = &cfg->vhosts[idx];
    return 0;
}

/* Most specific first: exact, suffix wildcards (longest first), prefix wildcards (longest
 * first), then "*"; ties keep their order of attachment. */
struct vhost_ref {
    struct gy_vhost *v;
    size_t pos;
};

static int vhost_rank(const struct gy_vhost *v)
{
    switch (v->match) {
    case GY_HOST_EXACT:
        return 0;
    case GY_HOST_SUFFIX:
        return 1;
    case GY_HOST_PREFIX:
        return 2;
    default:
        return 3;
    }
}

static int vhost_ref_cmp(const void *pa, const void *pb)
{
    const struct vhost_ref *a = pa, *b = pb;
    int ra = vhost_rank(a->v), rb = vhost_rank(b->v);

    if (ra != rb)
        return ra - rb;
    if ((ra == 1 || ra == 2) && a->v->pattern_len != b->v->pattern_len)
        return a->v->pattern_len > b->v->pattern_len ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* ---- listeners ----------------------------------------------------------------------------- */

static enum gy_listener_protocol parse_protocol(const char *s)
{
    if (strcmp(s, "http") == 0 || strcmp(s, "http1") == 0)
        return GY_PROTO_HTTP;
    if (strcmp(s, "http2") == 0)
        return GY_PROTO_HTTP2;
    if (strcmp(s, "tcp") == 0)
        return GY_PROTO_TCP;
    return GY_PROTO_HTTP_AUTO;
}

static int listener_access_logs(struct cc *cc, struct gy_listener *l, const json_t *lo)
{
    const json_t *conn = json_object_get(json_object_get(lo, "access_loggers"), "http_connection_loggers");
    const json_t *files = json_object_get(conn, "file_loggers"), *f;
    size_t i, n = json_array_size(files);

    if (n == 0 || cc_bool(conn, "disabled", false))
        return 0;
    l->access_logs = cc_array(cc, n, sizeof(*l->access_logs));
    if (l->access_logs == NULL)
        return GY_ENOMEM;
    json_array_foreach(files, i, f)
    {
        struct gy_access_log *al = &l->access_logs[i];
        const char *fmt = cc_str(f, "format", NULL);
        al->path = cc_strdup(cc, cc_str(f, "path", "/dev/stdout"));
        if (al->path == NULL)
            return GY_ENOMEM;
        if (fmt != NULL && fmt[0] != '\0' && json_object_get(f, "json_format") == NULL &&
            (al->format = cc_strdup(cc, fmt)) == NULL)
            return GY_ENOMEM;
    }
    l->naccess_logs = n;
    return 0;
}

/* x-forwarded-client-cert: the listener's own fields (Envoy's names) or its secret's (Grey Matter's). */
static void listener_xfcc(struct gy_listener *l, const json_t *lo)
{
    static const char *const modes[] = { "SANITIZE", "FORWARD_ONLY", "APPEND_FORWARD", "SANITIZE_SET",
                                         "ALWAYS_FORWARD_ONLY" };
    const json_t *secret = json_object_get(lo, "secret");
    const json_t *from = json_object_get(lo, "forward_client_cert_details") != NULL ? lo : secret;
    const char *mode = json_string_value(json_object_get(from, "forward_client_cert_details"));
    const json_t *d = json_object_get(from, "set_current_client_cert_details");

    l->xfcc_mode = GY_XFCC_SANITIZE;
    for (size_t i = 0; mode != NULL && i < sizeof(modes) / sizeof(modes[0]); i++)
        if (strcmp(mode, modes[i]) == 0)
            l->xfcc_mode = (uint8_t)i;
    l->xfcc_fields = (json_is_true(json_object_get(d, "uri")) || json_is_true(json_object_get(d, "URI")) ? GY_XFCC_URI : 0) |
                     (json_is_true(json_object_get(d, "subject")) ? GY_XFCC_SUBJECT : 0) |
                     (json_is_true(json_object_get(d, "dns")) ? GY_XFCC_DNS : 0) |
                     (json_is_true(json_object_get(d, "cert")) ? GY_XFCC_CERT : 0) |
                     (json_is_true(json_object_get(d, "chain")) ? GY_XFCC_CHAIN : 0);
}

static int listener_settings(struct cc *cc, struct gy_listener *l, const json_t *lo)
{
    char what[300];
    int rc;

    snprintf(what, sizeof(what), "listener \"%s\"", l->key);
    l->protocol = parse_protocol(cc_str(lo, "protocol", "http_auto"));
    if ((rc = cc_duration(cc, lo, "stream_idle_timeout", 300000, &l->stream_idle_timeout_ms, what)) != 0 ||
        (rc = cc_duration(cc, lo, "request_timeout", 0, &l->request_timeout_ms, what)) != 0 ||
        (rc = cc_duration(cc, lo, "request_headers_timeout", 10000, &l->request_headers_timeout_ms, what)) != 0 ||
        (rc = cc_duration(cc, lo, "idle_timeout", 60000, &l->idle_timeout_ms, what)) != 0 ||
        (rc = cc_duration(cc, lo, "drain_timeout", 5000, &l->drain_timeout_ms, what)) != 0)
        return rc;
    l->max_request_headers_kb = (uint32_t)cc_int(lo, "max_request_headers_kb", 32);
    l->max_headers = (uint32_t)cc_int(lo, "max_headers_count", 100);
    l->use_remote_address = cc_bool(lo, "use_remote_address", true);
    l->generate_request_id = cc_bool(lo, "generate_request_id", true);
    listener_xfcc(l, lo);
    cc_http2_options(json_object_get(lo, "http2_protocol_options"), &l->h2, l->max_request_headers_kb * 1024);
    return listener_access_logs(cc, l, lo);
}

/* Adds `key` to the listener's domain list unless already there. */
static int add_domain_key(struct cc *cc, json_t *seen, json_t *list, const char *key)
{
    if (json_object_get(seen, key) != NULL)
        return 0;
    if (json_object_set_new(seen, key, json_true()) != 0 || json_array_append_new(list, json_string(key)) != 0)
        return cc_nomem(cc);
    return 0;
}

/* The listener's own domain_keys, then the proxy's domains on the listener's port. */
static int listener_domain_keys(struct cc *cc, const json_t *lo, const json_t *proxy, uint16_t port, json_t *list)
{
    json_t *seen = json_object(), *k;
    size_t i;
    int rc = 0;

    if (seen == NULL)
        return cc_nomem(cc);
    json_array_foreach(json_object_get(lo, "domain_keys"), i, k)
    {
        if (rc == 0 && json_is_string(k))
            rc = add_domain_key(cc, seen, list, json_string_value(k));
    }
    json_array_foreach(json_object_get(proxy, "domain_keys"), i, k)
    {
        const json_t *d = json_object_get(cc->index[CC_DOMAIN], json_string_value(k) ? json_string_value(k) : "");
        if (rc == 0 && d != NULL && cc_int(d, "port", 0) == port)
            rc = add_domain_key(cc, seen, list, json_string_value(k));
    }
    json_decref(seen);
    return rc;
}

static int listener_vhosts(struct cc *cc, struct gy_listener *l, const json_t *lo, const json_t *proxy)
{
    json_t *list = json_array(), *k;
    struct vhost_ref *refs = NULL;
    size_t i, n;
    int rc;

    if (list == NULL)
        return cc_nomem(cc);
    if ((rc = listener_domain_keys(cc, lo, proxy, l->port, list)) != 0 || (n = json_array_size(list)) == 0)
        goto out;
    rc = GY_ENOMEM;
    if ((refs = calloc(n, sizeof(*refs))) == NULL || (l->vhosts = cc_array(cc, n, sizeof(*l->vhosts))) == NULL) {
        cc_nomem(cc);
        goto out;
    }
    json_array_foreach(list, i, k)
    {
        if ((rc = get_vhost(cc, json_string_value(k), &refs[i].v)) != 0)
            goto out;
        refs[i].pos = i;
    }
    qsort(refs, n, sizeof(*refs), vhost_ref_cmp);
    for (i = 0; i < n; i++)
        l->vhosts[i] = refs[i].v;
    l->nvhosts = n;
    rc = 0;
out:
    free(refs);
    json_decref(list);
    return rc;
}

/* lo == NULL: the default listener "default-<port>" of a port that has none. */
static int build_listener(struct cc *cc, struct gy_listener *l, const json_t *lo, const json_t *proxy, uint16_t port)
{
    char dflt[32];
    const char *why = NULL;
    int rc;

    snprintf(dflt, sizeof(dflt), "default-%u", (unsigned)port);
    l->key = cc_strdup(cc, lo ? cc_str(lo, "listener_key", dflt) : dflt);
    l->name = cc_strdup(cc, lo ? cc_str(lo, "name", l->key ? l->key : "") : dflt);
    l->ip = cc_strdup(cc, cc_str(lo, "ip", "0.0.0.0"));
    if (l->key == NULL || l->name == NULL || l->ip == NULL)
        return GY_ENOMEM;
    l->port = lo ? (uint16_t)cc_int(lo, "port", 0) : port;
    if (cc_resolve(l->ip, l->port, &l->addr, &l->addrlen, &why) != 0)
        return cc_fail(cc, "listener \"%s\": ip: cannot resolve \"%s\": %s", l->key, l->ip, why);
    if ((rc = listener_settings(cc, l, lo)) != 0)
        return rc;
    return listener_vhosts(cc, l, lo, proxy);
}

/* True when a listener among the first n is on `port`. */
static bool port_has_listener(const struct gy_config *cfg, size_t n, long long port)
{
    for (size_t i = 0; i < n; i++)
        if (cfg->listeners[i].port == port)
            return true;
    return false;
}

static int build_listeners(struct cc *cc, const json_t *proxy)
{
    struct gy_config *cfg = cc->cfg;
    const json_t *lkeys = json_object_get(proxy, "listener_keys");
    const json_t *dkeys = json_object_get(proxy, "domain_keys"), *k;
    size_t i, cap = json_array_size(lkeys) + json_array_size(dkeys);
    int rc;

    if (cap > 0 && (cfg->listeners = cc_array(cc, cap, sizeof(*cfg->listeners))) == NULL)
        return GY_ENOMEM;
    json_array_foreach(lkeys, i, k)
    {
        const json_t *lo = json_object_get(cc->index[CC_LISTENER], json_string_value(k) ? json_string_value(k) : "");
        if (lo == NULL)
            return cc_fail(cc, "proxy \"%s\": listener_keys[%zu]: no listener \"%s\"", cfg->proxy_name, i,
                           json_string_value(k) ? json_string_value(k) : "");
        if ((rc = build_listener(cc, &cfg->listeners[cfg->nlisteners++], lo, proxy, 0)) != 0)
            return rc;
    }
    json_array_foreach(dkeys, i, k)
    {
        const json_t *d = json_object_get(cc->index[CC_DOMAIN], json_string_value(k) ? json_string_value(k) : "");
        long long port = cc_int(d, "port", 0);
        if (d == NULL || port <= 0 || port > 65535 || port_has_listener(cfg, cfg->nlisteners, port))
            continue;
        if ((rc = build_listener(cc, &cfg->listeners[cfg->nlisteners++], NULL, proxy, (uint16_t)port)) != 0)
            return rc;
    }
    return 0;
}

/* ---- the whole compile --------------------------------------------------------------------- */

static int kind_index(const char *kind)
{
    static const char *const kinds[CC_NKINDS] = { "zone", "proxy", "listener", "domain", "route", "shared_rules",
                                                  "cluster" };
    for (int i = 0; i < CC_NKINDS; i++)
        if (kind != NULL && strcmp(kind, kinds[i]) == 0)
            return i;
    return -1;
}

static int build_indexes(struct cc *cc, json_t *objects)
{
    static const char *const keys[CC_NKINDS] = { "zone_key",  "proxy_key",        "listener_key", "domain_key",
                                                 "route_key", "shared_rules_key", "cluster_key" };
    size_t i;
    json_t *o;

    for (int k = 0; k < CC_NKINDS; k++)
        if ((cc->index[k] = json_object()) == NULL)
            return cc_nomem(cc);
    if ((cc->routes_by_domain = json_object()) == NULL || (cc->vhost_pos = json_object()) == NULL ||
        (cc->cluster_pos = json_object()) == NULL)
        return cc_nomem(cc);
    json_array_foreach(objects, i, o)
    {
        int k = kind_index(cc_str(o, "kind", NULL));
        const char *key = k >= 0 ? cc_str(o, keys[k], NULL) : NULL;
        if (key == NULL)
            continue;
        if (json_object_set(cc->index[k], key, o) != 0)
            return cc_nomem(cc);
        if (k == CC_ROUTE) {
            const char *dk = cc_str(o, "domain_key", "");
            json_t *list = json_object_get(cc->routes_by_domain, dk);
            if (list == NULL && json_object_set_new(cc->routes_by_domain, dk, list = json_array()) != 0)
                return cc_nomem(cc);
            if (json_array_append(list, o) != 0)
                return cc_nomem(cc);
        }
    }
    cc->vhosts_cap = json_object_size(cc->index[CC_DOMAIN]);
    cc->clusters_cap = json_object_size(cc->index[CC_CLUSTER]);
    return 0;
}

static const json_t *find_proxy(json_t *objects, const char *proxy_name)
{
    size_t i;
    json_t *o;

    json_array_foreach(objects, i, o)
    {
        if (strcmp(cc_str(o, "kind", ""), "proxy") == 0 && strcmp(cc_str(o, "name", ""), proxy_name) == 0)
            return o;
    }
    json_array_foreach(objects, i, o)
    {
        if (strcmp(cc_str(o, "kind", ""), "proxy") == 0 && strcmp(cc_str(o, "proxy_key", ""), proxy_name) == 0)
            return o;
    }
    return NULL;
}

static int compile_proxy(struct cc *cc, json_t *objects, const char *proxy_name)
{
    struct gy_config *cfg = cc->cfg;
    const json_t *proxy = find_proxy(objects, proxy_name);
    int rc;

    if (proxy == NULL)
        return cc_fail(cc, "proxy \"%s\": no proxy with that name or key", proxy_name);
    cfg->proxy_name = cc_strdup(cc, cc_str(proxy, "name", proxy_name));
    if (cfg->proxy_name == NULL || (rc = build_indexes(cc, objects)) != 0)
        return cfg->proxy_name == NULL ? GY_ENOMEM : rc;
    const char *zone = cc_str(proxy, "zone_key", NULL);
    if (zone != NULL && zone[0] != '\0' && (cfg->zone_key = cc_strdup(cc, zone)) == NULL)
        return GY_ENOMEM;
    cfg->vhosts = cc_array(cc, cc->vhosts_cap, sizeof(*cfg->vhosts));
    cfg->clusters = cc_array(cc, cc->clusters_cap, sizeof(*cfg->clusters));
    if ((cc->vhosts_cap && cfg->vhosts == NULL) || (cc->clusters_cap && cfg->clusters == NULL))
        return GY_ENOMEM;
    return build_listeners(cc, proxy);
}

static void free_impl(struct config_impl *impl)
{
    json_decref(impl->pub.objects);
    cc_arena_dispose(&impl->arena);
    free(impl);
}

int gy_config_compile(json_t *objects, const char *proxy_name, struct gy_config **out, struct gy_mesh_error *err)
{
    struct gy_mesh_error local;
    struct cc cc = { 0 };
    struct config_impl *impl = calloc(1, sizeof(*impl));
    int rc;

    *out = NULL;
    cc.err = err != NULL ? err : &local;
    cc.err->msg[0] = '\0';
    if (impl == NULL) {
        snprintf(cc.err->msg, sizeof(cc.err->msg), "proxy \"%s\": out of memory", proxy_name);
        return GY_ENOMEM;
    }
    atomic_init(&impl->pub.refs, 1);
    impl->pub.objects = json_incref(objects);
    cc.arena = &impl->arena;
    cc.cfg = &impl->pub;
    rc = compile_proxy(&cc, objects, proxy_name);
    for (int k = 0; k < CC_NKINDS; k++)
        json_decref(cc.index[k]);
    json_decref(cc.routes_by_domain);
    json_decref(cc.vhost_pos);
    json_decref(cc.cluster_pos);
    if (rc != 0) {
        if (cc.err->msg[0] == '\0')
            cc_nomem(&cc);
        free_impl(impl);
        return rc == GY_ENOMEM ? GY_ENOMEM : GY_ECONFIG;
    }
    *out = &impl->pub;
    return 0;
}

void gy_config_unref(struct gy_config *c)
{
    if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (c->on_free != NULL)
        c->on_free(c);
    free_impl((struct config_impl *)((char *)c - offsetof(struct config_impl, pub)));
}

struct gy_cluster *gy_config_cluster_by_name(const struct gy_config *c, const char *name)
{
    for (size_t i = 0; c != NULL && name != NULL && i < c->nclusters; i++)
        if (strcmp(c->clusters[i].name, name) == 0)
            return &c->clusters[i];
    return NULL;
}
