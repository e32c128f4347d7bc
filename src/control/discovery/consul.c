/*
 * consul:URL[?dc=DC]: the Consul catalog as Grey Matter reads it. Services tagged "tbn-cluster"
 * are clusters of the same name; their instances are the health-passing service instances.
 *
 * Blocking queries all the way: one on /v1/catalog/services (which services exist, with which
 * tags) and one per tagged service on /v1/health/service/NAME?passing, each re-issued with the
 * X-Consul-Index of its last answer, all on one curl multi handle. A snapshot is published once
 * every tagged service has answered, and again on every change. Any failure drops all queries
 * and starts over from index 0 after a backoff; the last snapshot stays in place meanwhile.
 *
 * An instance is the entry's Service.Address (or the node's Address when empty) and
 * Service.Port; its metadata are Service.Meta's pairs and the service tags ("key=value" as a
 * pair, a bare tag as key with an empty value; "tbn-cluster" itself is left out).
 * $CONSUL_HTTP_TOKEN, when set, is sent as X-Consul-Token.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/discovery/http.h"
#include "control/discovery/source.h"
#include "core/err.h"

#define CLUSTER_TAG "tbn-cluster"
#define WAIT_S 60
#define QUERY_TIMEOUT_MS ((WAIT_S + WAIT_S / 16 + 15) * 1000L)
#define MAX_SERVICES 10000

struct service {
    char *name;
    struct gy_http_req req;
    uint64_t index;
    json_t *instances;   /* NULL until the first answer */
    bool listed;         /* in the latest catalog answer */
};

struct consul_source {
    struct gy_discovery *d;
    struct gy_http http;
    struct gy_backoff backoff;
    char *base;
    char *dc_param;      /* "&dc=DC" or "" */
    struct gy_http_req catalog;
    uint64_t catalog_index;
    bool catalog_answered;
    struct service **svcs;
    size_t nsvcs;
    bool dirty;
};

/* ---- answers ---- */

/* The X-Consul-Index of an answer, with Consul's sanity rules; 0 if missing. */
static uint64_t next_index(const struct gy_http_req *r, uint64_t prev)
{
    char *end;
    unsigned long long v = strtoull(r->captured, &end, 10);

    if (r->captured[0] == '\0' || *end != '\0')
        return 0;
    if (v == 0) /* never valid; blocking on it would spin */
        return 1;
    if (v < prev) /* went backwards (a restore, a new leader): start over */
        return 0;
    return v;
}

static void add_tags(json_t *inst, const json_t *tags)
{
    const json_t *t;
    size_t i;

    json_array_foreach((json_t *)tags, i, t) {
        const char *s = json_string_value(t), *eq;
        if (s == NULL || *s == '\0' || strcmp(s, CLUSTER_TAG) == 0)
            continue;
        if ((eq = strchr(s, '=')) != NULL && eq != s) {
            char *key = strndup(s, (size_t)(eq - s));
            if (key != NULL)
                gy_instance_add_metadata(inst, key, eq + 1);
            free(key);
        } else {
            gy_instance_add_metadata(inst, s, "");
        }
    }
}

/* What ?passing asks of Consul, checked again: every check of the entry passes. */
static bool all_passing(const json_t *entry)
{
    const json_t *c;
    size_t i;

    json_array_foreach(json_object_get(entry, "Checks"), i, c) {
        const char *st = json_string_value(json_object_get(c, "Status"));
        if (st == NULL || strcmp(st, "passing") != 0)
            return false;
    }
    return true;
}

/* The passing instances of one service from /v1/health/service; NULL if malformed. */
static json_t *parse_health(struct consul_source *c, const struct service *s, const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL), *list = NULL, *entry;
    size_t i;

    if (!json_is_array(doc))
        goto out;
    if ((list = json_array()) == NULL)
        goto out;
    json_array_foreach(doc, i, entry) {
        const json_t *svc = json_object_get(entry, "Service"), *node = json_object_get(entry, "Node");
        const char *host = json_string_value(json_object_get(svc, "Address"));
        json_int_t port = json_integer_value(json_object_get(svc, "Port"));
        json_t *inst, *meta = json_object_get(svc, "Meta"), *v;
        const char *k;

        if (!all_passing(entry))
            continue;
        if (host == NULL || *host == '\0')
            host = json_string_value(json_object_get(node, "Address"));
        if (host == NULL || *host == '\0' || port < 1 || port > 65535) {
            gy_discovery_warn(c->d, "service %s: an instance without address or port; ignored", s->name);
            continue;
        }
        if ((inst = gy_instance_new(host, port, NULL)) == NULL)
            continue;
        json_object_foreach(meta, k, v) {
            if (json_is_string(v))
                gy_instance_add_metadata(inst, k, json_string_value(v));
        }
        add_tags(inst, json_object_get(svc, "Tags"));
        json_array_append_new(list, inst);
    }
out:
    json_decref(doc);
    return list;
}

static bool has_cluster_tag(const json_t *tags)
{
    const json_t *t;
    size_t i;

    json_array_foreach((json_t *)tags, i, t) {
        if (json_is_string(t) && strcmp(json_string_value(t), CLUSTER_TAG) == 0)
            return true;
    }
    return false;
}

/* ---- queries ---- */

static int start_health(struct consul_source *c, struct service *s)
{
    char url[2048];
    char *esc = curl_easy_escape(NULL, s->name, 0);
    int rc;

    if (esc == NULL)
        return GY_ENOMEM;
    snprintf(url, sizeof(url), "%s/v1/health/service/%s?passing&index=%" PRIu64 "&wait=%ds%s", c->base, esc,
             s->index, WAIT_S, c->dc_param);
    curl_free(esc);
    s->req.capture = "X-Consul-Index";
    s->req.owner = s;
    rc = gy_http_start(&c->http, &s->req, url, NULL, QUERY_TIMEOUT_MS);
    return rc;
}

static int start_catalog(struct consul_source *c)
{
    char url[1024];

    snprintf(url, sizeof(url), "%s/v1/catalog/services?index=%" PRIu64 "&wait=%ds%s", c->base, c->catalog_index,
             WAIT_S, c->dc_param);
    c->catalog.capture = "X-Consul-Index";
    return gy_http_start(&c->http, &c->catalog, url, NULL, QUERY_TIMEOUT_MS);
}

static void service_free(struct service *s)
{
    gy_http_req_dispose(&s->req);
    json_decref(s->instances);
    free(s->name);
    free(s);
}

static void drop_all(struct consul_source *c)
{
    gy_http_cancel(&c->catalog);
    for (size_t i = 0; i < c->nsvcs; i++)
        service_free(c->svcs[i]);
    free(c->svcs);
    c->svcs = NULL;
    c->nsvcs = 0;
    c->catalog_index = 0;
    c->catalog_answered = false;
}

static struct service *find_service(struct consul_source *c, const char *name)
{
    for (size_t i = 0; i < c->nsvcs; i++)
        if (strcmp(c->svcs[i]->name, name) == 0)
            return c->svcs[i];
    return NULL;
}

/* Applies a catalog answer: watches the new tagged services, forgets the gone ones. */
static int on_catalog(struct consul_source *c)
{
    json_t *doc = json_loadb(c->catalog.body, c->catalog.len, 0, NULL), *tags;
    const char *name;
    size_t kept = 0;
    int rc = GY_EPARSE;

    if (!json_is_object(doc))
        goto out;
    for (size_t i = 0; i < c->nsvcs; i++)
        c->svcs[i]->listed = false;
    json_object_foreach(doc, name, tags) {
        struct service *s;
        if (!has_cluster_tag(tags))
            continue;
        if ((s = find_service(c, name)) == NULL) {
            struct service **v = c->nsvcs < MAX_SERVICES ? realloc(c->svcs, (c->nsvcs + 1) * sizeof(*v)) : NULL;
            if (v == NULL || (s = calloc(1, sizeof(*s))) == NULL || (s->name = strdup(name)) == NULL) {
                free(s);
                rc = GY_ENOMEM;
                goto out;
            }
            c->svcs = v;
            c->svcs[c->nsvcs++] = s;
            if ((rc = start_health(c, s)) != 0)
                goto out;
        }
        s->listed = true;
    }
    for (size_t i = 0; i < c->nsvcs; i++) {
        if (c->svcs[i]->listed)
            c->svcs[kept++] = c->svcs[i];
        else
            service_free(c->svcs[i]);
    }
    c->dirty |= kept != c->nsvcs || !c->catalog_answered;
    c->nsvcs = kept;
    c->catalog_answered = true;
    rc = 0;
out:
    json_decref(doc);
    return rc;
}

/* Publishes once every tagged service has answered. */
static void maybe_publish(struct consul_source *c)
{
    json_t *snap;

    if (!c->dirty || !c->catalog_answered)
        return;
    for (size_t i = 0; i < c->nsvcs; i++)
        if (c->svcs[i]->instances == NULL)
            return;
    if ((snap = json_object()) == NULL)
        return;
    for (size_t i = 0; i < c->nsvcs; i++)
        json_object_set_new(snap, c->svcs[i]->name, json_deep_copy(c->svcs[i]->instances));
    gy_snapshot_finish(snap);
    gy_discovery_publish(c->d, snap);
    c->dirty = false;
}

/* Handles a finished query; non-zero to start over. */
static int on_done(struct consul_source *c, struct gy_http_req *r)
{
    struct service *s = r == &c->catalog ? NULL : r->owner;
    char why[200];
    uint64_t idx;
    json_t *list;

    if (!gy_http_ok(r)) {
        gy_http_describe(r, why, sizeof(why));
        gy_discovery_fail(c->d, "%s: %s", s != NULL ? s->name : "catalog", why);
        return GY_EIO;
    }
    idx = next_index(r, s != NULL ? s->index : c->catalog_index);
    if (r->captured[0] == '\0') {
        gy_discovery_fail(c->d, "%s: no X-Consul-Index in the answer (is %s a Consul agent?)",
                          s != NULL ? s->name : "catalog", c->base);
        return GY_EPARSE;
    }
    if (s == NULL) {
        int rc = on_catalog(c);
        if (rc != 0) {
            gy_discovery_fail(c->d, "catalog: %s", rc == GY_ENOMEM ? "out of memory" : "malformed answer");
            return rc;
        }
        c->catalog_index = idx;
        return start_catalog(c);
    }
    if ((list = parse_health(c, s, r->body, r->len)) == NULL) {
        gy_discovery_fail(c->d, "%s: malformed health answer", s->name);
        return GY_EPARSE;
    }
    if (s->instances == NULL || !json_equal(s->instances, list)) {
        json_decref(s->instances);
        s->instances = list;
        c->dirty = true;
    } else {
        json_decref(list);
    }
    s->index = idx;
    return start_health(c, s);
}

static void consul_run(struct gy_discovery *d)
{
    struct consul_source *c = d->impl;

    while (!gy_discovery_stopping(d)) {
        int rc = start_catalog(c);
        while (rc == 0 && !gy_discovery_stopping(d)) {
            struct gy_http_req *r = gy_http_run(&c->http, 1000);
            if (r != NULL && (rc = on_done(c, r)) == 0) {
                maybe_publish(c);
                if (!c->dirty)
                    gy_backoff_reset(&c->backoff);
            }
        }
        drop_all(c);
        if (!gy_http_sleep(&c->http, gy_backoff_next(&c->backoff)))
            break;
    }
    drop_all(c);
}

static void consul_interrupt(struct gy_discovery *d)
{
    struct consul_source *c = d->impl;

    gy_http_wakeup(&c->http);
}

static void consul_dispose(struct gy_discovery *d)
{
    struct consul_source *c = d->impl;

    if (c == NULL)
        return;
    drop_all(c);
    gy_http_req_dispose(&c->catalog);
    gy_http_dispose(&c->http);
    free(c->base);
    free(c->dc_param);
    free(c);
    d->impl = NULL;
}

static int consul_init(struct gy_discovery *d, const char *arg, char *err, size_t errlen)
{
    static const char *const allowed[] = { "dc", NULL };
    const char *dc, *token = getenv("CONSUL_HTTP_TOKEN");
    struct gy_spec_url u;
    struct consul_source *c;
    char why[200];

    if (gy_spec_url_parse(arg, allowed, &u, why, sizeof(why)) != 0)
        return gy_discovery_bad_spec(err, errlen, "discovery source \"%s\": %s (want consul:http://HOST:PORT[?dc=DC])",
                                     d->spec, why);
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        gy_spec_url_dispose(&u);
        return gy_discovery_bad_spec(err, errlen, "out of memory");
    }
    d->impl = c;
    c->d = d;
    dc = gy_spec_url_param(&u, "dc", NULL);
    size_t blen = strlen(u.base) + strlen(u.path) + 1;
    char *esc = dc != NULL ? curl_easy_escape(NULL, dc, 0) : NULL;
    if ((c->base = malloc(blen)) != NULL)
        snprintf(c->base, blen, "%s%s", u.base, u.path);
    size_t dlen = esc != NULL ? strlen(esc) + 5 : 1;
    if ((c->dc_param = malloc(dlen)) != NULL)
        snprintf(c->dc_param, dlen, "%s%s", esc != NULL ? "&dc=" : "", esc != NULL ? esc : "");
    bool nomem = c->base == NULL || c->dc_param == NULL || (dc != NULL && esc == NULL);
    curl_free(esc);
    gy_spec_url_dispose(&u);
    gy_backoff_init(&c->backoff, d->rng);
    if (nomem || gy_http_init(&c->http, &d->stopping) != 0) {
        consul_dispose(d);
        return gy_discovery_bad_spec(err, errlen, "out of memory");
    }
    if (token != NULL && *token != '\0') {
        char line[1024];
        snprintf(line, sizeof(line), "X-Consul-Token: %s", token);
        if (gy_http_add_header(&c->http, line) != 0) {
            consul_dispose(d);
            return gy_discovery_bad_spec(err, errlen, "out of memory");
        }
    }
    return 0;
}

const struct gy_discovery_ops gy_discovery_consul_ops = {
    .scheme = "consul",
    .init = consul_init,
    .run = consul_run,
    .interrupt = consul_interrupt,
    .dispose = consul_dispose,
};
