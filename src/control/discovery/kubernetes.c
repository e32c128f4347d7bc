/*
 * kubernetes:URL[?namespace=NS&label=KEY&port=NAME]: pods as Grey Matter's control plane reads
 * them. A pod with label KEY (default greymatter.io/cluster) belongs to the cluster that label
 * names; it is an instance at its pod IP and the container port named NAME (default "proxy")
 * while it is Ready and not being deleted. Its other labels become instance metadata.
 *
 * Pods rather than EndpointSlices: the cluster is a pod label, which EndpointSlices do not
 * carry (they are labelled by Service), and an EndpointSlice endpoint's "ready" is the pod's
 * Ready condition with deletion taken into account, which is what is checked here. One
 * list+watch of pods in one namespace is all it takes; run one source per namespace.
 *
 * List (paginated), then watch from the list's resourceVersion with bookmarks; a watch the
 * server ends is resumed from the last resourceVersion seen; 410 Gone (on the request or as an
 * ERROR event) lists again at once; other failures retry with backoff. $KUBERNETES_TOKEN, when
 * set, is sent as a bearer token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/discovery/http.h"
#include "control/discovery/source.h"
#include "core/err.h"
#include "core/time.h"

#define DEFAULT_NAMESPACE "default"
#define DEFAULT_LABEL "greymatter.io/cluster"
#define DEFAULT_PORT_NAME "proxy"
#define LIST_TIMEOUT_MS 30000L
#define WATCH_TIMEOUT_S 290
#define LIST_PAGE 500

struct k8s_source {
    struct gy_discovery *d;
    struct gy_http http;
    struct gy_http_req req;
    struct gy_backoff backoff;
    char *pods_url;      /* URL/api/v1/namespaces/NS/pods?labelSelector=KEY */
    char *label;
    char *port_name;
    json_t *pods;        /* uid → {"cluster", "instance"} of the pods that are instances */
    char rv[128];        /* resourceVersion to watch from; "" = list first */
    bool dirty;
    bool listing;        /* a list is being read: no partial views */
    bool gone;           /* 410: the resourceVersion is too old */
    char stream_err[160];
};

/* ---- pods ---- */

static bool pod_ready(const json_t *pod)
{
    const json_t *c;
    size_t i;

    json_array_foreach(json_object_get(json_object_get(pod, "status"), "conditions"), i, c) {
        const char *type = json_string_value(json_object_get(c, "type"));
        const char *status = json_string_value(json_object_get(c, "status"));
        if (type != NULL && strcmp(type, "Ready") == 0)
            return status != NULL && strcmp(status, "True") == 0;
    }
    return false;
}

static json_int_t pod_port(const json_t *pod, const char *name)
{
    const json_t *ctr, *p;
    size_t i, j;

    json_array_foreach(json_object_get(json_object_get(pod, "spec"), "containers"), i, ctr) {
        json_array_foreach(json_object_get(ctr, "ports"), j, p) {
            const char *n = json_string_value(json_object_get(p, "name"));
            if (n != NULL && strcmp(n, name) == 0)
                return json_integer_value(json_object_get(p, "containerPort"));
        }
    }
    return 0;
}

/* The pod as {"cluster", "instance"}, or NULL when it is not an instance (yet, or any more). */
static json_t *pod_entry(struct k8s_source *k, const json_t *pod)
{
    const json_t *meta = json_object_get(pod, "metadata"), *labels = json_object_get(meta, "labels"), *v;
    const char *cluster = json_string_value(json_object_get(labels, k->label));
    const char *ip = json_string_value(json_object_get(json_object_get(pod, "status"), "podIP"));
    const json_t *deleting = json_object_get(meta, "deletionTimestamp");
    json_int_t port;
    json_t *inst;
    const char *key;

    if (cluster == NULL || *cluster == '\0' || ip == NULL || *ip == '\0' || (deleting != NULL && !json_is_null(deleting)) ||
        !pod_ready(pod))
        return NULL;
    if ((port = pod_port(pod, k->port_name)) < 1 || port > 65535)
        return NULL;
    if ((inst = gy_instance_new(ip, port, NULL)) == NULL)
        return NULL;
    json_object_foreach((json_t *)labels, key, v) {
        if (strcmp(key, k->label) != 0 && json_is_string(v))
            gy_instance_add_metadata(inst, key, json_string_value(v));
    }
    return json_pack("{s:s, s:o}", "cluster", cluster, "instance", inst);
}

/* The pod's uid (or namespace/name if it has none), NULL for an object that is not a pod. */
static const char *pod_key(const json_t *pod, char *buf, size_t len)
{
    const json_t *meta = json_object_get(pod, "metadata");
    const char *uid = json_string_value(json_object_get(meta, "uid"));
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    const char *name = json_string_value(json_object_get(meta, "name"));

    if (uid != NULL && *uid != '\0')
        return uid;
    if (name == NULL)
        return NULL;
    snprintf(buf, len, "%s/%s", ns != NULL ? ns : "", name);
    return buf;
}

static void apply_pod(struct k8s_source *k, const json_t *pod, bool deleted)
{
    char buf[512];
    const char *key = pod_key(pod, buf, sizeof(buf));
    json_t *entry, *old;

    if (key == NULL)
        return;
    entry = deleted ? NULL : pod_entry(k, pod);
    old = json_object_get(k->pods, key);
    if (entry == NULL) {
        if (old != NULL) {
            json_object_del(k->pods, key);
            k->dirty = true;
        }
        return;
    }
    if (old == NULL || !json_equal(old, entry))
        k->dirty = true;
    json_object_set_new(k->pods, key, entry);
}

static void set_rv(struct k8s_source *k, const json_t *obj)
{
    const char *rv = json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));

    if (rv != NULL && *rv != '\0' && strlen(rv) < sizeof(k->rv))
        memcpy(k->rv, rv, strlen(rv) + 1);
}

static void publish(struct k8s_source *k)
{
    json_t *snap = json_object(), *v;
    const char *key;

    if (snap == NULL)
        return;
    json_object_foreach(k->pods, key, v)
        gy_snapshot_add(snap, json_string_value(json_object_get(v, "cluster")),
                        json_incref(json_object_get(v, "instance")));
    gy_snapshot_finish(snap);
    gy_discovery_publish(k->d, snap);
    k->dirty = false;
}

/* ---- list and watch ---- */

static bool wait_req(struct k8s_source *k)
{
    while (!gy_discovery_stopping(k->d)) {
        struct gy_http_req *done = gy_http_run(&k->http, 1000);
        if (k->dirty && !k->listing)
            publish(k);
        if (done != NULL)
            return true;
    }
    return false;
}

/* One page of the list into k->pods; cont gets the token of the next page, "" after the last. */
static int list_page(struct k8s_source *k, char *cont, size_t contlen)
{
    char url[4096], why[200];
    char *esc = cont[0] ? curl_easy_escape(NULL, cont, 0) : NULL;
    json_t *doc, *pod;
    const char *next;
    size_t i;

    snprintf(url, sizeof(url), "%s&limit=%d%s%s", k->pods_url, LIST_PAGE, esc ? "&continue=" : "", esc ? esc : "");
    curl_free(esc);
    k->req.on_line = NULL;
    if (gy_http_start(&k->http, &k->req, url, NULL, LIST_TIMEOUT_MS) != 0 || !wait_req(k))
        return GY_EIO;
    if (!gy_http_ok(&k->req)) {
        gy_http_describe(&k->req, why, sizeof(why));
        gy_discovery_fail(k->d, "list pods: %s", why);
        return k->req.status == 410 ? GY_EAGAIN : GY_EIO;
    }
    if ((doc = json_loadb(k->req.body, k->req.len, 0, NULL)) == NULL || !json_is_array(json_object_get(doc, "items"))) {
        json_decref(doc);
        gy_discovery_fail(k->d, "list pods: the answer is not a PodList");
        return GY_EPARSE;
    }
    json_array_foreach(json_object_get(doc, "items"), i, pod)
        apply_pod(k, pod, false);
    set_rv(k, doc);
    next = json_string_value(json_object_get(json_object_get(doc, "metadata"), "continue"));
    snprintf(cont, contlen, "%s", next != NULL ? next : "");
    json_decref(doc);
    return 0;
}

static int list(struct k8s_source *k)
{
    char cont[2048] = "";
    int rc, restarts = 0;

    json_object_clear(k->pods);
    k->rv[0] = '\0';
    k->listing = true;
    do {
        if ((rc = list_page(k, cont, sizeof(cont))) == GY_EAGAIN && restarts++ < 3) {
            json_object_clear(k->pods); /* the continue token expired: from the start */
            k->rv[0] = cont[0] = '\0';
            rc = 0;
            continue;
        }
    } while (rc == 0 && cont[0] != '\0' && !gy_discovery_stopping(k->d));
    k->listing = false;
    if (rc != 0 || k->rv[0] == '\0') {
        if (rc == 0)
            gy_discovery_fail(k->d, "list pods: no resourceVersion in the answer");
        k->rv[0] = '\0';
        return GY_EIO;
    }
    k->dirty = true;
    publish(k);
    return 0;
}

static int on_event(void *arg, const char *line, size_t len)
{
    struct k8s_source *k = arg;
    json_t *doc = json_loadb(line, len, 0, NULL), *obj = json_object_get(doc, "object");
    const char *type = json_string_value(json_object_get(doc, "type"));
    int rc = 0;

    if (type == NULL || !json_is_object(obj)) {
        snprintf(k->stream_err, sizeof(k->stream_err), "watch pods: malformed event");
        rc = -1;
    } else if (strcmp(type, "ERROR") == 0) {
        const char *msg = json_string_value(json_object_get(obj, "message"));
        k->gone = json_integer_value(json_object_get(obj, "code")) == 410;
        snprintf(k->stream_err, sizeof(k->stream_err), "watch pods: %s", msg != NULL ? msg : "error event");
        rc = -1;
    } else if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0 || strcmp(type, "DELETED") == 0) {
        apply_pod(k, obj, type[0] == 'D');
        set_rv(k, obj);
    } else if (strcmp(type, "BOOKMARK") == 0) {
        set_rv(k, obj);
    }
    json_decref(doc);
    return rc;
}

/* Watches until the stream ends; 0 if it ended cleanly (resume), else a failure was reported. */
static int watch(struct k8s_source *k)
{
    char url[4096], why[200];

    snprintf(url, sizeof(url), "%s&watch=1&allowWatchBookmarks=true&timeoutSeconds=%d&resourceVersion=%s",
             k->pods_url, WATCH_TIMEOUT_S, k->rv);
    k->req.on_line = on_event;
    k->req.arg = k;
    k->gone = false;
    k->stream_err[0] = '\0';
    if (gy_http_start(&k->http, &k->req, url, NULL, 0) != 0 || !wait_req(k))
        return GY_EIO;
    if (k->req.status == 410)
        k->gone = true;
    if (k->gone) {
        gy_discovery_warn(k->d, "resourceVersion %s expired (410 Gone); listing again", k->rv);
        k->rv[0] = '\0';
        return GY_EAGAIN;
    }
    if (k->stream_err[0] != '\0') {
        gy_discovery_fail(k->d, "%s", k->stream_err);
        return GY_EIO;
    }
    if (!gy_http_ok(&k->req)) {
        gy_http_describe(&k->req, why, sizeof(why));
        gy_discovery_fail(k->d, "watch pods: %s", why);
        return GY_EIO;
    }
    return 0;
}

static void k8s_run(struct gy_discovery *d)
{
    struct k8s_source *k = d->impl;

    while (!gy_discovery_stopping(d)) {
        uint64_t started = gy_now_ms();
        int rc = k->rv[0] == '\0' ? list(k) : 0;
        if (rc == 0) {
            if ((rc = watch(k)) == GY_EAGAIN)
                continue;
            if (rc == 0 && gy_now_ms() - started >= 1000) { /* the server's timeout: resume */
                gy_backoff_reset(&k->backoff);
                continue;
            }
        }
        gy_http_cancel(&k->req);
        if (!gy_http_sleep(&k->http, gy_backoff_next(&k->backoff)))
            break;
    }
    gy_http_req_dispose(&k->req);
}

static void k8s_interrupt(struct gy_discovery *d)
{
    struct k8s_source *k = d->impl;

    gy_http_wakeup(&k->http);
}

static void k8s_dispose(struct gy_discovery *d)
{
    struct k8s_source *k = d->impl;

    if (k == NULL)
        return;
    gy_http_req_dispose(&k->req);
    gy_http_dispose(&k->http);
    json_decref(k->pods);
    free(k->pods_url);
    free(k->label);
    free(k->port_name);
    free(k);
    d->impl = NULL;
}

/* Kubernetes names: namespace and port names are DNS labels; label keys may add '.', '_', '/'. */
static bool valid_name(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
              (extra != NULL && strchr(extra, c) != NULL)))
            return false;
    }
    return true;
}

static int k8s_init(struct gy_discovery *d, const char *arg, char *err, size_t errlen)
{
    static const char *const allowed[] = { "namespace", "label", "port", NULL };
    const char *token = getenv("KUBERNETES_TOKEN"), *ns, *label, *port;
    struct gy_spec_url u;
    struct k8s_source *k;
    char why[200];
    int rc = GY_EINVAL;

    if (gy_spec_url_parse(arg, allowed, &u, why, sizeof(why)) != 0)
        return gy_discovery_bad_spec(err, errlen, "discovery source \"%s\": %s (want kubernetes:https://HOST:PORT"
                                     "[?namespace=NS&label=KEY&port=NAME])", d->spec, why);
    ns = gy_spec_url_param(&u, "namespace", DEFAULT_NAMESPACE);
    label = gy_spec_url_param(&u, "label", DEFAULT_LABEL);
    port = gy_spec_url_param(&u, "port", DEFAULT_PORT_NAME);
    if (!valid_name(ns, 63, NULL)) {
        gy_discovery_bad_spec(err, errlen, "discovery source \"%s\": namespace \"%.64s\" is not a valid name", d->spec, ns);
        goto out;
    }
    if (!valid_name(label, 316, "ABCDEFGHIJKLMNOPQRSTUVWXYZ._/")) {
        gy_discovery_bad_spec(err, errlen, "discovery source \"%s\": label \"%.64s\" is not a valid label key", d->spec,
                              label);
        goto out;
    }
    if (!valid_name(port, 15, NULL)) {
        gy_discovery_bad_spec(err, errlen, "discovery source \"%s\": port \"%.64s\" is not a valid port name", d->spec,
                              port);
        goto out;
    }
    if ((k = calloc(1, sizeof(*k))) == NULL) {
        gy_discovery_bad_spec(err, errlen, "out of memory");
        goto out;
    }
    d->impl = k;
    k->d = d;
    gy_backoff_init(&k->backoff, d->rng);
    char *esc = curl_easy_escape(NULL, label, 0);
    size_t len = strlen(u.base) + strlen(u.path) + strlen(ns) + (esc ? strlen(esc) : 0) + 64;
    if ((k->pods_url = malloc(len)) != NULL)
        snprintf(k->pods_url, len, "%s%s/api/v1/namespaces/%s/pods?labelSelector=%s", u.base, u.path, ns,
                 esc ? esc : "");
    bool nomem = esc == NULL;
    curl_free(esc);
    k->label = strdup(label);
    k->port_name = strdup(port);
    if (nomem || k->pods_url == NULL || k->label == NULL || k->port_name == NULL ||
        (k->pods = json_object()) == NULL || gy_http_init(&k->http, &d->stopping) != 0) {
        k8s_dispose(d);
        gy_discovery_bad_spec(err, errlen, "out of memory");
        goto out;
    }
    if (token != NULL && *token != '\0') {
        size_t tlen = strlen(token) + 32;
        char *line = malloc(tlen);
        if (line != NULL)
            snprintf(line, tlen, "Authorization: Bearer %s", token);
        if (line == NULL || gy_http_add_header(&k->http, line) != 0) {
            free(line);
            k8s_dispose(d);
            gy_discovery_bad_spec(err, errlen, "out of memory");
            goto out;
        }
        free(line);
    }
    rc = 0;
out:
    gy_spec_url_dispose(&u);
    return rc;
}

const struct gy_discovery_ops gy_discovery_kubernetes_ops = {
    .scheme = "kubernetes",
    .init = k8s_init,
    .run = k8s_run,
    .interrupt = k8s_interrupt,
    .dispose = k8s_dispose,
};
