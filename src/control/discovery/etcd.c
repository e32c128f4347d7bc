/*
 * etcd:URL/PREFIX: keys PREFIX/<cluster>/<instance-id> holding JSON {host, port, metadata},
 * read through etcd v3's JSON gateway: a range over the prefix, then a watch streaming from the
 * range's revision + 1. Every change is applied to the view and a snapshot published. A watch
 * cancelled by compaction re-syncs at once (range again); a failed range or a broken stream
 * retries with backoff and then re-syncs. Keys and values are base64 in the gateway's JSON.
 */
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/discovery/http.h"
#include "control/discovery/source.h"
#include "core/err.h"

#define RANGE_TIMEOUT_MS 15000L
#define KEY_MAX 4096

struct etcd_source {
    struct gy_discovery *d;
    struct gy_http http;
    struct gy_http_req req;
    struct gy_backoff backoff;
    char *base;          /* http://host:port */
    char *prefix;        /* "/gyrus/instances/" */
    char *key_b64;       /* the range [prefix, prefix_end) in base64 */
    char *end_b64;
    json_t *kvs;         /* base64 key → {"cluster", "instance"} of the valid entries */
    int64_t revision;
    bool dirty;          /* kvs changed since the last publish */
    bool compacted;      /* the watch was cancelled by compaction */
    char stream_err[160];
};

/* ---- base64 ---- */

static char *b64_encode(const char *s, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);

    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)len);
    return out;
}

/* Decodes into a new NUL-terminated buffer; NULL if malformed. */
static char *b64_decode(const char *s, size_t len, size_t *outlen)
{
    size_t pad = 0;
    char *out;
    int n;

    if (len % 4 != 0 || len > (size_t)16 << 20)
        return NULL;
    while (pad < 2 && pad < len && s[len - 1 - pad] == '=')
        pad++;
    if ((out = malloc(len / 4 * 3 + 1)) == NULL)
        return NULL;
    if ((n = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)len)) < 0 || (size_t)n < pad) {
        free(out);
        return NULL;
    }
    *outlen = (size_t)n - pad;
    out[*outlen] = '\0';
    return out;
}

/* ---- the view ---- */

static int64_t int64_field(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);

    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

/* Applies one key-value (a PUT) to the view; a malformed one is logged and left out. */
static void apply_put(struct etcd_source *e, const json_t *kv)
{
    const char *kb = json_string_value(json_object_get(kv, "key"));
    const char *vb = json_string_value(json_object_get(kv, "value"));
    char *key = NULL, *value = NULL, *cluster = NULL, why[160];
    size_t klen = 0, vlen = 0, plen = strlen(e->prefix);
    json_t *doc = NULL, *inst = NULL;
    const char *slash;

    if (kb == NULL)
        return;
    json_object_del(e->kvs, kb);
    e->dirty = true;
    if ((key = b64_decode(kb, strlen(kb), &klen)) == NULL || klen > KEY_MAX || strlen(key) != klen ||
        klen <= plen || memcmp(key, e->prefix, plen) != 0)
        goto out;
    slash = strchr(key + plen, '/');
    if (slash == NULL || slash == key + plen || slash[1] == '\0') {
        gy_discovery_warn(e->d, "key %s: want %s<cluster>/<instance-id>; ignored", key, e->prefix);
        goto out;
    }
    if ((value = b64_decode(vb != NULL ? vb : "", vb != NULL ? strlen(vb) : 0, &vlen)) == NULL ||
        (doc = json_loadb(value, vlen, 0, NULL)) == NULL) {
        gy_discovery_warn(e->d, "key %s: the value is not JSON {host, port, metadata}; ignored", key);
        goto out;
    }
    if ((inst = gy_instance_normalize(doc, why, sizeof(why))) == NULL) {
        gy_discovery_warn(e->d, "key %s: %s; ignored", key, why);
        goto out;
    }
    cluster = strndup(key + plen, (size_t)(slash - key - plen));
    if (cluster != NULL)
        json_object_set_new(e->kvs, kb, json_pack("{s:s, s:O}", "cluster", cluster, "instance", inst));
out:
    json_decref(inst);
    json_decref(doc);
    free(cluster);
    free(value);
    free(key);
}

static void publish(struct etcd_source *e)
{
    json_t *snap = json_object(), *v;
    const char *k;

    if (snap == NULL)
        return;
    json_object_foreach(e->kvs, k, v)
        gy_snapshot_add(snap, json_string_value(json_object_get(v, "cluster")),
                        json_incref(json_object_get(v, "instance")));
    gy_snapshot_finish(snap);
    gy_discovery_publish(e->d, snap);
    e->dirty = false;
}

/* ---- range and watch ---- */

/* Waits for the request to finish; false when stopping. Publishes changes as they come. */
static bool wait_req(struct etcd_source *e)
{
    while (!gy_discovery_stopping(e->d)) {
        struct gy_http_req *done = gy_http_run(&e->http, 1000);
        if (e->dirty)
            publish(e);
        if (done != NULL)
            return true;
    }
    return false;
}

static int range(struct etcd_source *e)
{
    char url[1024], body[KEY_MAX * 3], why[200];
    json_t *doc, *kv;
    size_t i;

    snprintf(url, sizeof(url), "%s/v3/kv/range", e->base);
    snprintf(body, sizeof(body), "{\"key\":\"%s\",\"range_end\":\"%s\"}", e->key_b64, e->end_b64);
    e->req.on_line = NULL;
    if (gy_http_start(&e->http, &e->req, url, body, RANGE_TIMEOUT_MS) != 0 || !wait_req(e))
        return GY_EIO;
    if (!gy_http_ok(&e->req)) {
        gy_http_describe(&e->req, why, sizeof(why));
        gy_discovery_fail(e->d, "range %s: %s", url, why);
        return GY_EIO;
    }
    if ((doc = json_loadb(e->req.body, e->req.len, 0, NULL)) == NULL || !json_is_object(json_object_get(doc, "header"))) {
        json_decref(doc);
        gy_discovery_fail(e->d, "range %s: the answer is not an etcd range response", url);
        return GY_EPARSE;
    }
    json_object_clear(e->kvs);
    e->revision = int64_field(json_object_get(doc, "header"), "revision");
    json_array_foreach(json_object_get(doc, "kvs"), i, kv)
        apply_put(e, kv);
    json_decref(doc);
    publish(e);
    return 0;
}

static int on_watch_line(void *arg, const char *line, size_t len)
{
    struct etcd_source *e = arg;
    json_t *doc = json_loadb(line, len, 0, NULL), *res, *ev;
    int rc = -1;
    size_t i;

    if (doc == NULL || !json_is_object(res = json_object_get(doc, "result"))) {
        const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
        snprintf(e->stream_err, sizeof(e->stream_err), "watch: %s", msg != NULL ? msg : "malformed stream");
        goto out;
    }
    if (json_is_true(json_object_get(res, "canceled"))) {
        e->compacted = int64_field(res, "compact_revision") > 0;
        const char *why = json_string_value(json_object_get(res, "cancel_reason"));
        snprintf(e->stream_err, sizeof(e->stream_err), "watch cancelled: %s",
                 why != NULL && *why ? why : e->compacted ? "compacted" : "no reason given");
        goto out;
    }
    json_array_foreach(json_object_get(res, "events"), i, ev) {
        const json_t *kv = json_object_get(ev, "kv");
        const char *type = json_string_value(json_object_get(ev, "type"));
        const char *kb = json_string_value(json_object_get(kv, "key"));
        if (type != NULL && strcmp(type, "DELETE") == 0) {
            if (kb != NULL && json_object_del(e->kvs, kb) == 0)
                e->dirty = true;
        } else {
            apply_put(e, kv); /* PUT is the default: the gateway leaves it out */
        }
    }
    rc = 0;
out:
    json_decref(doc);
    return rc;
}

static void watch(struct etcd_source *e)
{
    char url[1024], body[KEY_MAX * 3 + 128], why[200];

    snprintf(url, sizeof(url), "%s/v3/watch", e->base);
    snprintf(body, sizeof(body),
             "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\",\"start_revision\":\"%" PRId64 "\"}}",
             e->key_b64, e->end_b64, e->revision + 1);
    e->req.on_line = on_watch_line;
    e->req.arg = e;
    e->compacted = false;
    e->stream_err[0] = '\0';
    if (gy_http_start(&e->http, &e->req, url, body, 0) != 0 || !wait_req(e))
        return;
    if (e->compacted) {
        gy_discovery_warn(e->d, "%s; re-syncing", e->stream_err);
        return;
    }
    if (e->stream_err[0] != '\0') {
        gy_discovery_fail(e->d, "%s", e->stream_err);
        return;
    }
    gy_http_describe(&e->req, why, sizeof(why));
    gy_discovery_fail(e->d, "watch %s ended: %s", url, gy_http_ok(&e->req) ? "connection closed" : why);
}

static void etcd_run(struct gy_discovery *d)
{
    struct etcd_source *e = d->impl;

    while (!gy_discovery_stopping(d)) {
        if (range(e) == 0) {
            gy_backoff_reset(&e->backoff);
            watch(e);
            gy_http_cancel(&e->req);
            if (e->compacted)
                continue;
        }
        gy_http_cancel(&e->req);
        if (!gy_http_sleep(&e->http, gy_backoff_next(&e->backoff)))
            break;
    }
    gy_http_req_dispose(&e->req);
}

static void etcd_interrupt(struct gy_discovery *d)
{
    struct etcd_source *e = d->impl;

    gy_http_wakeup(&e->http);
}

static void etcd_dispose(struct gy_discovery *d)
{
    struct etcd_source *e = d->impl;

    if (e == NULL)
        return;
    gy_http_req_dispose(&e->req);
    gy_http_dispose(&e->http);
    json_decref(e->kvs);
    free(e->base);
    free(e->prefix);
    free(e->key_b64);
    free(e->end_b64);
    free(e);
    d->impl = NULL;
}

static int etcd_init(struct gy_discovery *d, const char *arg, char *err, size_t errlen)
{
    static const char *const allowed[] = { NULL };
    struct gy_spec_url u;
    struct etcd_source *e;
    char why[200];
    size_t plen;

    if (gy_spec_url_parse(arg, allowed, &u, why, sizeof(why)) != 0)
        return gy_discovery_bad_spec(err, errlen, "discovery source \"%s\": %s (want etcd:http://HOST:PORT/PREFIX)",
                                     d->spec, why);
    if (u.path[0] == '\0' || strlen(u.path) > KEY_MAX - 2) {
        gy_spec_url_dispose(&u);
        return gy_discovery_bad_spec(err, errlen, "discovery source \"%s\": no key prefix (want "
                                     "etcd:http://HOST:PORT/PREFIX)", d->spec);
    }
    if ((e = calloc(1, sizeof(*e))) == NULL) {
        gy_spec_url_dispose(&u);
        return gy_discovery_bad_spec(err, errlen, "out of memory");
    }
    d->impl = e;
    e->d = d;
    e->base = u.base;
    plen = strlen(u.path);
    if ((e->prefix = malloc(plen + 2)) != NULL) {
        memcpy(e->prefix, u.path, plen);
        memcpy(e->prefix + plen, "/", 2);
        e->key_b64 = b64_encode(e->prefix, plen + 1);
        e->prefix[plen] = '0'; /* '/' + 1: the end of the range */
        e->end_b64 = b64_encode(e->prefix, plen + 1);
        e->prefix[plen] = '/';
    }
    free(u.path);
    u.base = u.path = NULL;
    gy_spec_url_dispose(&u);
    gy_backoff_init(&e->backoff, d->rng);
    if (e->prefix == NULL || e->key_b64 == NULL || e->end_b64 == NULL || (e->kvs = json_object()) == NULL ||
        gy_http_init(&e->http, &d->stopping) != 0) {
        etcd_dispose(d);
        return gy_discovery_bad_spec(err, errlen, "out of memory");
    }
    return 0;
}

const struct gy_discovery_ops gy_discovery_etcd_ops = {
    .scheme = "etcd",
    .init = etcd_init,
    .run = etcd_run,
    .interrupt = etcd_interrupt,
    .dispose = etcd_dispose,
};
