/* HTTP filter chains: built per listener from active_http_filters/http_filters, with per-route
 * overrides from filter_configs, and run once per request after routing. */
#include "proxy/filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/pool.h"

extern const struct gy_filter_ops gy_filter_fault, gy_filter_ratelimit, gy_filter_rbac, gy_filter_inheaders,
    gy_filter_impersonation, gy_filter_listauth;

const struct gy_filter_ops *const gy_filter_registry[] = {
    &gy_filter_fault,      &gy_filter_ratelimit,     &gy_filter_rbac,
    &gy_filter_inheaders,  &gy_filter_impersonation, &gy_filter_listauth,
    NULL,
};

/* Grey Matter and Envoy filters accepted in configs, not implemented yet: skipped with a warning. */
static const char *const known_unimplemented[] = {
    "gm.metrics", "gm.jwtsecurity", "gm.oauth", "gm.observables", "gm.ensure-variables", "envoy.cors",
    "envoy.router", "envoy.filters.http.router", NULL,
};

struct link {
    const struct gy_filter_ops *ops;
    const char *name;       /* as configured */
    void *compiled;
};

struct gy_filter_chain {
    size_t n;
    struct link links[];
};

/* A route's overrides: one slot per registry entry. */
struct route_overrides {
    void *compiled[16];
};

enum gy_filter_result gy_filter_reply(struct gy_filter_call *c, int status, const char *extra, const char *body)
{
    c->reply_status = status;
    c->reply_grpc_status = -1;
    snprintf(c->reply_extra, sizeof(c->reply_extra), "%s", extra ? extra : "");
    snprintf(c->reply_body, sizeof(c->reply_body), "%s", body ? body : "");
    return GY_FILTER_STOP;
}

enum gy_filter_result gy_filter_grpc_reply(struct gy_filter_call *c, int grpc_status, const char *message)
{
    c->reply_status = 200;
    c->reply_grpc_status = grpc_status;
    c->reply_extra[0] = '\0';
    snprintf(c->reply_body, sizeof(c->reply_body), "%s", message ? message : "");
    return GY_FILTER_STOP;
}

enum gy_filter_result gy_filter_delay(struct gy_filter_call *c, uint32_t ms)
{
    c->delay_ms = ms;
    return GY_FILTER_PAUSE;
}

/* ---- header edits ---- */

static bool edits_has(const struct gy_slice *names, size_t n, struct gy_slice name)
{
    for (size_t i = 0; i < n; i++)
        if (gy_slice_eqi(names[i], name))
            return true;
    return false;
}

bool gy_filter_edits_drop(const struct gy_filter_edits *e, struct gy_slice name)
{
    if (e == NULL)
        return false;
    if (edits_has(e->removed, e->nremoved, name))
        return true;
    for (size_t i = 0; i < e->nset; i++)
        if (gy_slice_eqi(e->set[i].name, name))
            return true;
    return false;
}

int gy_filter_header_remove(struct gy_filter_call *c, const char *name)
{
    struct gy_filter_edits *e = c->edits;
    struct gy_slice n = gy_slice_cstr(name);

    if (e == NULL)
        return GY_EINVAL;
    for (size_t i = 0; i < e->nset; i++) { /* a removal undoes an earlier set */
        if (gy_slice_eqi(e->set[i].name, n)) {
            e->set[i] = e->set[--e->nset];
            i--;
        }
    }
    if (edits_has(e->removed, e->nremoved, n))
        return 0;
    if (e->nremoved >= GY_FILTER_MAX_EDITS)
        return GY_ETOOBIG;
    struct gy_slice copy = gy_pool_dup(e->pool, n);
    if (copy.ptr == NULL)
        return GY_ENOMEM;
    e->removed[e->nremoved++] = copy;
    return 0;
}

int gy_filter_header_set(struct gy_filter_call *c, const char *name, struct gy_slice value)
{
    struct gy_filter_edits *e = c->edits;
    struct gy_slice n = gy_slice_cstr(name);

    if (e == NULL)
        return GY_EINVAL;
    for (size_t i = 0; i < e->nset; i++) {
        if (gy_slice_eqi(e->set[i].name, n)) {
            struct gy_slice v = gy_pool_dup(e->pool, value);
            if (v.ptr == NULL)
                return GY_ENOMEM;
            e->set[i].value = v;
            return 0;
        }
    }
    if (e->nset >= GY_FILTER_MAX_EDITS)
        return GY_ETOOBIG;
    struct gy_slice nn = gy_pool_dup(e->pool, n), v = gy_pool_dup(e->pool, value);
    if (nn.ptr == NULL || v.ptr == NULL)
        return GY_ENOMEM;
    e->set[e->nset].name = nn;
    e->set[e->nset].value = v;
    e->nset++;
    return 0;
}

struct gy_slice gy_filter_header_get(const struct gy_filter_call *c, const char *name)
{
    const struct gy_filter_edits *e = c->edits;
    struct gy_slice n = gy_slice_cstr(name);
    const struct gy_header *h;

    if (e != NULL) {
        for (size_t i = 0; i < e->nset; i++)
            if (gy_slice_eqi(e->set[i].name, n))
                return e->set[i].value;
        if (edits_has(e->removed, e->nremoved, n))
            return GY_SLICE_NULL;
    }
    h = gy_header_find(c->headers, c->nheaders, n);
    return h != NULL ? h->value : GY_SLICE_NULL;
}

static int registry_index(const char *name)
{
    for (int i = 0; gy_filter_registry[i] != NULL; i++) {
        const struct gy_filter_ops *ops = gy_filter_registry[i];
        if (strcmp(ops->name, name) == 0)
            return i;
        for (const char *const *a = ops->aliases; a != NULL && *a != NULL; a++)
            if (strcmp(*a, name) == 0)
                return i;
    }
    return -1;
}

static bool unimplemented(const char *name)
{
    for (const char *const *u = known_unimplemented; *u != NULL; u++)
        if (strcmp(*u, name) == 0)
            return true;
    return false;
}

/* The config of `name` in a map keyed by the name or by the name with '.' as '_'; also
 * accepts any alias of the same filter. *key is set to the key that matched. */
static const json_t *config_for(const json_t *map, const struct gy_filter_ops *ops, const char *name, const char **key)
{
    const char *candidates[8] = { name, ops->name };
    size_t nc = 2;
    char under[128];
    const char *k;
    const json_t *v;

    for (const char *const *a = ops->aliases; a != NULL && *a != NULL && nc < 6; a++)
        candidates[nc++] = *a;
    for (size_t i = 0; i < nc; i++) {
        snprintf(under, sizeof(under), "%s", candidates[i]);
        for (char *p = under; *p; p++)
            if (*p == '.' || *p == '-')
                *p = '_';
        json_object_foreach((json_t *)map, k, v)
        {
            if (strcmp(k, candidates[i]) == 0 || strcmp(k, under) == 0) {
                *key = k;
                return v;
            }
        }
    }
    *key = name;
    return NULL;
}

/* "where.KEY" joined to a filter's error: "path: message" continues the path with '.'. */
static void filter_error(char *err, size_t errlen, const char *where, const char *key, const char *e)
{
    size_t n = strcspn(e, ": ");
    bool path = n > 0 && e[n] == ':' && strspn(e, "abcdefghijklmnopqrstuvwxyz0123456789_.[]") >= n;

    snprintf(err, errlen, "%s.%s%s%s", where, key, path ? "." : ": ", e);
}

static const json_t *find_object(const struct gy_config *cfg, const char *kind, const char *key_field, const char *key)
{
    size_t i;
    const json_t *o;

    json_array_foreach(cfg->objects, i, o)
    {
        const char *k = json_string_value(json_object_get(o, key_field));
        if (k != NULL && strcmp(k, key) == 0 && strcmp(json_string_value(json_object_get(o, "kind")), kind) == 0)
            return o;
    }
    return NULL;
}

static void chain_free(struct gy_filter_chain *ch)
{
    for (size_t i = 0; ch != NULL && i < ch->n; i++)
        if (ch->links[i].compiled != NULL)
            ch->links[i].ops->destroy(ch->links[i].compiled);
    free(ch);
}

static int build_chain(const json_t *lo, const char *lkey, struct gy_filter_chain **out, char *err, size_t errlen)
{
    const json_t *active = json_object_get(lo, "active_http_filters"), *filters = json_object_get(lo, "http_filters");
    size_t n = json_array_size(active), i;
    const json_t *name_j;
    struct gy_filter_chain *ch = calloc(1, sizeof(*ch) + n * sizeof(struct link));

    if (ch == NULL) {
        snprintf(err, errlen, "out of memory");
        return GY_ENOMEM;
    }
    json_array_foreach(active, i, name_j)
    {
        const char *name = json_string_value(name_j);
        int idx = name ? registry_index(name) : -1;
        if (idx < 0) {
            if (name != NULL && unimplemented(name)) {
                gy_warn("listener \"%s\": filter %s is not implemented yet; skipped", lkey, name);
                continue;
            }
            snprintf(err, errlen, "listener \"%s\": active_http_filters[%zu]: unknown filter \"%s\"", lkey, i,
                     name ? name : "");
            chain_free(ch);
            return GY_ECONFIG;
        }
        const struct gy_filter_ops *ops = gy_filter_registry[idx];
        char e[400] = "", where[300];
        const char *key;
        struct link *l = &ch->links[ch->n];
        l->ops = ops;
        l->name = name;
        l->compiled = ops->compile(config_for(filters, ops, name, &key), e, sizeof(e));
        if (l->compiled == NULL) {
            snprintf(where, sizeof(where), "listener \"%s\": http_filters", lkey);
            filter_error(err, errlen, where, key, e);
            chain_free(ch);
            return GY_ECONFIG;
        }
        ch->n++;
    }
    *out = ch;
    return 0;
}

static int build_overrides(struct gy_route *r, const json_t *ro, char *err, size_t errlen)
{
    const json_t *fc = json_object_get(ro, "filter_configs");
    struct route_overrides *ov = NULL;

    if (!json_is_object(fc) || json_object_size(fc) == 0)
        return 0;
    for (int i = 0; gy_filter_registry[i] != NULL; i++) {
        const struct gy_filter_ops *ops = gy_filter_registry[i];
        const char *key;
        const json_t *conf = config_for(fc, ops, ops->name, &key);
        if (conf == NULL)
            continue;
        if (ov == NULL && (ov = calloc(1, sizeof(*ov))) == NULL) {
            snprintf(err, errlen, "out of memory");
            return GY_ENOMEM;
        }
        char e[400] = "";
        ov->compiled[i] = ops->compile(conf, e, sizeof(e));
        if (ov->compiled[i] == NULL) {
            char where[300];
            snprintf(where, sizeof(where), "route \"%s\": filter_configs", r->key);
            filter_error(err, errlen, where, key, e);
            r->filters = ov;
            return GY_ECONFIG;
        }
    }
    r->filters = ov;
    return 0;
}

static void overrides_free(struct route_overrides *ov)
{
    for (int i = 0; ov != NULL && gy_filter_registry[i] != NULL; i++)
        if (ov->compiled[i] != NULL)
            gy_filter_registry[i]->destroy(ov->compiled[i]);
    free(ov);
}

void gy_filters_detach(struct gy_config *cfg)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        chain_free(cfg->listeners[i].filters);
        cfg->listeners[i].filters = NULL;
    }
    for (size_t v = 0; v < cfg->nvhosts; v++) {
        for (size_t r = 0; r < cfg->vhosts[v].nroutes; r++) {
            overrides_free(cfg->vhosts[v].routes[r].filters);
            cfg->vhosts[v].routes[r].filters = NULL;
        }
    }
}

int gy_filters_attach(struct gy_config *cfg, char *err, size_t errlen)
{
    int rc;

    for (size_t i = 0; i < cfg->nlisteners; i++) {
        struct gy_listener *l = &cfg->listeners[i];
        const json_t *lo = find_object(cfg, "listener", "listener_key", l->key);
        if (lo != NULL && (rc = build_chain(lo, l->key, (struct gy_filter_chain **)&l->filters, err, errlen)) != 0)
            return rc;
    }
    for (size_t v = 0; v < cfg->nvhosts; v++) {
        for (size_t r = 0; r < cfg->vhosts[v].nroutes; r++) {
            struct gy_route *route = &cfg->vhosts[v].routes[r];
            const json_t *ro = find_object(cfg, "route", "route_key", route->key);
            if (ro != NULL && (rc = build_overrides(route, ro, err, errlen)) != 0)
                return rc;
        }
    }
    return 0;
}

enum gy_filter_result gy_filter_chain_run(const struct gy_filter_chain *chain, const struct gy_route *route,
                                          struct gy_filter_call *c, size_t *next)
{
    const struct route_overrides *ov = route ? route->filters : NULL;

    for (; chain != NULL && *next < chain->n; (*next)++) {
        const struct link *l = &chain->links[*next];
        void *rc_conf = NULL;
        if (ov != NULL)
            for (int i = 0; gy_filter_registry[i] != NULL; i++)
                if (gy_filter_registry[i] == l->ops)
                    rc_conf = ov->compiled[i];
        enum gy_filter_result r = l->ops->on_request(c, l->compiled, rc_conf);
        if (r == GY_FILTER_STOP)
            return r;
        if (r == GY_FILTER_PAUSE) {
            (*next)++;
            return r;
        }
    }
    return GY_FILTER_CONTINUE;
}
