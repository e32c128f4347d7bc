/*
 * The mesh object API (docs/control.md), Grey Matter / Turbine Labs style:
 *
 *   GET    /v1.0/<kind>[?field=value...][&filters=[{...}]]   list
 *   POST   /v1.0/<kind>                                      create (409 if the key exists)
 *   GET    /v1.0/<kind>/<key>                                one object
 *   PUT    /v1.0/<kind>/<key>                                replace (checksum in the body: 409 if stale)
 *   DELETE /v1.0/<kind>/<key>[?checksum=]                    delete (409 if still referenced)
 *   POST   /v1.0/apply[?prune=true]                          a whole mesh file, all or nothing
 *
 * Answers are {"result": ...} or {"error": {"code", "message", "field"}}. Every write goes
 * through ctl_mesh_write (state.c). This file also routes every path of the server.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "control/ca.h"
#include "control/control.h"
#include "core/err.h"
#include "core/log.h"
#include "mesh/mesh.h"

/* ---- responses ---- */

void ctl_respond_json(struct ctl_req *r, int status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    size_t len = s ? strlen(s) : 0;

    json_decref(body);
    if (s == NULL) {
        ctl_respond_text(r, 500, "application/json", "{\"error\":{\"code\":500,\"message\":\"out of memory\"}}", 47);
        return;
    }
    s[len] = '\0';
    struct ctl_blob *b = ctl_blob_take(s, len);
    ctl_respond(r, b ? status : 500, "application/json", b, NULL);
    ctl_blob_unref(b);
}

void ctl_respond_result(struct ctl_req *r, int status, json_t *result)
{
    ctl_respond_json(r, status, json_pack("{s:o}", "result", result ? result : json_null()));
}

void ctl_respond_error(struct ctl_req *r, const struct ctl_error *e)
{
    json_t *err = json_pack("{s:i,s:s}", "code", e->code, "message", e->message);

    if (err != NULL && e->field[0] != '\0')
        json_object_set_new(err, "field", json_string(e->field));
    ctl_respond_json(r, e->code, json_pack("{s:o}", "error", err ? err : json_null()));
}

void ctl_respond_errorf(struct ctl_req *r, int code, const char *fmt, ...)
{
    struct ctl_error e = { .code = code };
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    ctl_respond_error(r, &e);
}

/* ---- URLs ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static char *decode(const char *s, size_t n, bool plus_is_space)
{
    char *out = malloc(n + 1);
    size_t o = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int a = i + 1 < n ? hexval(s[i + 1]) : -1;
            int b = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (a < 0 || b < 0 || a * 16 + b == 0) { /* malformed, or a NUL byte */
                free(out);
                return NULL;
            }
            out[o++] = (char)(a * 16 + b);
            i += 2;
        } else {
            out[o++] = plus_is_space && s[i] == '+' ? ' ' : s[i];
        }
    }
    out[o] = '\0';
    return out;
}

char *ctl_url_decode(const char *s, size_t n)
{
    return decode(s, n, false);
}

char *ctl_query_param(const char *query, const char *name)
{
    size_t nl = strlen(name);

    for (const char *p = query; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        if ((size_t)(kend - p) == nl && memcmp(p, name, nl) == 0)
            return eq ? decode(eq + 1, (size_t)(end - eq - 1), true) : strdup("");
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* ---- objects from request bodies ---- */

static bool key_ok(const json_t *k)
{
    return json_is_string(k) && json_string_length(k) > 0;
}

static void new_key(char out[17])
{
    unsigned char r[8];
    static const char hx[] = "0123456789abcdef";

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        memset(r, 0, sizeof(r));
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hx[r[i] >> 4];
        out[2 * i + 1] = hx[r[i] & 15];
    }
    out[16] = '\0';
}

/* The JSON object of a POST/PUT body, with "kind" set from the URL. */
static json_t *body_object(struct ctl_req *r, int ki, struct ctl_error *err)
{
    json_error_t je;
    json_t *o = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
    const json_t *kind;

    if (o == NULL) {
        ctl_error_set(err, 400, "body: %d:%d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        ctl_error_set(err, 400, "body: must be a JSON object (one %s)", ctl_kind_name(ki));
        return NULL;
    }
    kind = json_object_get(o, "kind");
    if (kind != NULL && !json_is_null(kind) &&
        (!json_is_string(kind) || strcmp(json_string_value(kind), ctl_kind_name(ki)) != 0)) {
        ctl_error_set(err, 400, "kind: the body is not a %s", ctl_kind_name(ki));
        snprintf(err->field, sizeof(err->field), "kind");
        json_decref(o);
        return NULL;
    }
    json_object_set_new(o, "kind", json_string(ctl_kind_name(ki)));
    return o;
}

static void key_error(struct ctl_error *err, int ki, const json_t *k)
{
    const char *f = ctl_kind_key_field(ki);

    ctl_error_set(err, 400, "%s object: %s: %s", ctl_kind_name(ki), f,
                  k == NULL || json_is_null(k) ? "missing" : "must be a non-empty string");
    snprintf(err->field, sizeof(err->field), "%s", f);
}

/* ---- handlers ---- */

static void do_write(struct gy_control *ctl, struct ctl_req *r, struct ctl_write *w, int ok_status)
{
    struct ctl_error err;
    json_t *outcome = json_array();

    if (ctl_mesh_write(ctl, w, 1, outcome, &err) != 0) {
        json_decref(outcome);
        ctl_respond_error(r, &err);
        return;
    }
    json_decref(outcome);
    json_t *o = ctl_mesh_get(ctl, w->kind, w->key);
    if (w->op == CTL_DELETE || o == NULL)
        ctl_respond_result(r, ok_status, json_pack("{s:s,s:s}", "kind", ctl_kind_name(w->kind), "key", w->key));
    else
        ctl_respond_result(r, ok_status, json_incref(o));
}

static void create(struct gy_control *ctl, struct ctl_req *r, int ki)
{
    struct ctl_error err;
    json_t *o = body_object(r, ki, &err);
    const char *f = ctl_kind_key_field(ki);
    json_t *k;

    if (o == NULL) {
        ctl_respond_error(r, &err);
        return;
    }
    k = json_object_get(o, f);
    if (k == NULL || json_is_null(k) || (json_is_string(k) && json_string_length(k) == 0)) {
        char key[17];
        new_key(key);
        json_object_set_new(o, f, json_string(key));
    } else if (!key_ok(k)) {
        key_error(&err, ki, k);
        ctl_respond_error(r, &err);
        json_decref(o);
        return;
    }
    struct ctl_write w = { CTL_CREATE, ki, json_string_value(json_object_get(o, f)), o, NULL };
    do_write(ctl, r, &w, 200);
    json_decref(o);
}

static void replace(struct gy_control *ctl, struct ctl_req *r, int ki, const char *key)
{
    struct ctl_error err;
    json_t *o = body_object(r, ki, &err), *k, *sum;
    const char *f = ctl_kind_key_field(ki);
    char *qsum = ctl_query_param(r->query, "checksum");
    char *expect = NULL;

    if (o == NULL) {
        ctl_respond_error(r, &err);
        goto out;
    }
    k = json_object_get(o, f);
    if (k == NULL || json_is_null(k)) {
        json_object_set_new(o, f, json_string(key));
    } else if (!json_is_string(k) || strcmp(json_string_value(k), key) != 0) {
        ctl_error_set(&err, 400, "%s \"%s\": %s: does not match the key in the URL", ctl_kind_name(ki), key, f);
        snprintf(err.field, sizeof(err.field), "%s", f);
        ctl_respond_error(r, &err);
        goto out;
    }
    sum = json_object_get(o, "checksum");
    if (json_is_string(sum) && json_string_length(sum) > 0)
        expect = strdup(json_string_value(sum));
    else if (qsum != NULL && qsum[0] != '\0')
        expect = strdup(qsum);
    struct ctl_write w = { CTL_REPLACE, ki, key, o, expect };
    do_write(ctl, r, &w, 200);
out:
    free(expect);
    free(qsum);
    json_decref(o);
}

static void delete_one(struct gy_control *ctl, struct ctl_req *r, int ki, const char *key)
{
    char *sum = ctl_query_param(r->query, "checksum");
    struct ctl_write w = { CTL_DELETE, ki, key, NULL, sum && sum[0] ? sum : NULL };

    do_write(ctl, r, &w, 200);
    free(sum);
}

/* Field filters: ?name=x&zone_key=y (string forms compared), and Turbine's
 * ?filters=[{"name":"x"},{"name":"y"}] (any filter matches; all fields of one filter must). */
static bool field_matches(const json_t *have, const char *want)
{
    char buf[64];

    switch (json_typeof(have)) {
    case JSON_STRING:
        return strcmp(json_string_value(have), want) == 0;
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(have));
        return strcmp(buf, want) == 0;
    case JSON_TRUE:
        return strcmp(want, "true") == 0;
    case JSON_FALSE:
        return strcmp(want, "false") == 0;
    default:
        return false;
    }
}

static bool filter_matches(const json_t *o, const json_t *filter)
{
    const char *f;
    json_t *want;

    json_object_foreach((json_t *)filter, f, want) {
        if (json_is_null(want) || (json_is_string(want) && json_string_length(want) == 0))
            continue; /* zero values do not filter (Turbine) */
        const json_t *have = json_object_get(o, f);
        if (have == NULL || !json_equal(have, want))
            if (!(json_is_string(want) && have != NULL && field_matches(have, json_string_value(want))))
                return false;
    }
    return true;
}

static int cmp_obj_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void list(struct gy_control *ctl, struct ctl_req *r, int ki)
{
    char *filters_s = ctl_query_param(r->query, "filters");
    json_t *filters = NULL, *simple = json_object(), *out = NULL;
    const char **keys = NULL;
    size_t n = ctl_mesh_count(ctl, ki), i = 0;

    if (filters_s != NULL && filters_s[0] != '\0') {
        json_error_t je;
        filters = json_loads(filters_s, 0, &je);
        if (json_is_object(filters)) {
            json_t *arr = json_array();
            json_array_append_new(arr, filters);
            filters = arr;
        }
        if (!json_is_array(filters)) {
            ctl_respond_errorf(r, 400, "filters: want a JSON list of objects, like [{\"name\":\"x\"}]");
            goto out;
        }
    }
    for (const char *p = r->query; p != NULL && *p != '\0';) { /* the simple field=value form */
        const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p), *eq = memchr(p, '=', (size_t)(end - p));
        if (eq != NULL) {
            char *k = ctl_url_decode(p, (size_t)(eq - p)), *v = NULL;
            if (k != NULL && strcmp(k, "filters") != 0 && (v = ctl_query_param(r->query, k)) != NULL)
                json_object_set_new(simple, k, json_string(v));
            free(k);
            free(v);
        }
        p = amp ? amp + 1 : NULL;
    }
    if ((keys = malloc((n ? n : 1) * sizeof(*keys))) == NULL || (out = json_array()) == NULL) {
        ctl_respond_errorf(r, 500, "out of memory");
        goto out;
    }
    const char *key;
    json_t *o;
    json_object_foreach(ctl->objects[ki], key, o)
        keys[i++] = key;
    qsort(keys, n, sizeof(*keys), cmp_obj_key);
    for (i = 0; i < n; i++) {
        o = json_object_get(ctl->objects[ki], keys[i]);
        if (!filter_matches(o, simple))
            continue;
        bool any = filters == NULL || json_array_size(filters) == 0;
        size_t fi;
        json_t *f;
        json_array_foreach(filters, fi, f)
            if (json_is_object(f) && filter_matches(o, f))
                any = true;
        if (any)
            json_array_append(out, o);
    }
    ctl_respond_result(r, 200, out);
    out = NULL;
out:
    json_decref(out);
    json_decref(filters);
    json_decref(simple);
    free(keys);
    free(filters_s);
}

/* ---- apply ---- */

/* The writes of a mesh file; NULL with err on an object without a usable kind or key (the
 * messages are the validator's). */
static struct ctl_write *apply_writes(json_t *objs, size_t *n, struct ctl_error *err)
{
    struct ctl_write *w = calloc(json_array_size(objs) + 1, sizeof(*w));
    size_t i;
    json_t *o;

    if (w == NULL) {
        ctl_error_set(err, 500, "out of memory");
        return NULL;
    }
    json_array_foreach(objs, i, o) {
        const char *kind = json_string_value(json_object_get(o, "kind"));
        int ki = ctl_kind_index(kind);
        if (ki < 0) {
            ctl_error_set(err, 400, "object %zu: unknown kind \"%.64s\"", i, kind ? kind : "");
            free(w);
            return NULL;
        }
        const json_t *k = json_object_get(o, ctl_kind_key_field(ki));
        if (!key_ok(k)) {
            ctl_error_set(err, 400, "object %zu (%s): %s %s", i, kind,
                          k == NULL || json_is_null(k) ? "missing required field" : "must be a non-empty string:",
                          ctl_kind_key_field(ki));
            snprintf(err->field, sizeof(err->field), "%s", ctl_kind_key_field(ki));
            free(w);
            return NULL;
        }
        w[i] = (struct ctl_write){ CTL_UPSERT, ki, json_string_value(k), o, NULL };
    }
    *n = json_array_size(objs);
    return w;
}

static void apply(struct gy_control *ctl, struct ctl_req *r)
{
    struct gy_mesh_error me;
    struct ctl_error err;
    json_t *objs = NULL, *outcome = NULL, *in_file = NULL, *doomed = json_array();
    struct ctl_write *w = NULL;
    size_t n = 0, nfile;
    char *prune = ctl_query_param(r->query, "prune");

    if (gy_mesh_parse(r->body, r->body_len, "apply", &objs, &me) != 0) {
        ctl_error_from_mesh(&err, 400, me.msg);
        ctl_respond_error(r, &err);
        goto out;
    }
    if ((w = apply_writes(objs, &nfile, &err)) == NULL) {
        ctl_respond_error(r, &err);
        goto out;
    }
    n = nfile;
    if (prune != NULL && (strcmp(prune, "true") == 0 || strcmp(prune, "1") == 0)) {
        in_file = json_object();
        for (size_t i = 0; i < nfile; i++) {
            char id[1024];
            snprintf(id, sizeof(id), "%d\x1f%s", w[i].kind, w[i].key);
            json_object_set_new(in_file, id, json_true());
        }
        size_t total = nfile;
        for (int k = 0; k < CTL_NKINDS; k++)
            total += ctl_mesh_count(ctl, k);
        struct ctl_write *more = realloc(w, (total + 1) * sizeof(*w));
        if (more == NULL) {
            ctl_respond_errorf(r, 500, "out of memory");
            goto out;
        }
        w = more;
        for (int k = 0; k < CTL_NKINDS; k++) {
            const char *key;
            json_t *o;
            json_object_foreach(ctl->objects[k], key, o) {
                char id[1024];
                snprintf(id, sizeof(id), "%d\x1f%s", k, key);
                if (json_object_get(in_file, id) != NULL)
                    continue;
                /* The key must outlive the object it names, which the write deletes. */
                json_t *copy = json_string(key);
                json_array_append_new(doomed, copy);
                w[n++] = (struct ctl_write){ CTL_DELETE, k, json_string_value(copy), NULL, NULL };
            }
        }
    }
    outcome = json_array();
    if (ctl_mesh_write(ctl, w, n, outcome, &err) != 0) {
        ctl_respond_error(r, &err);
        goto out;
    }
    json_int_t counts[4] = { 0 };
    static const char *const names[4] = { "created", "updated", "unchanged", "deleted" };
    size_t i;
    json_t *oc;
    json_array_foreach(outcome, i, oc) {
        const char *a = json_string_value(json_object_get(oc, "action"));
        for (int c = 0; c < 4; c++)
            if (a != NULL && strcmp(a, names[c]) == 0)
                counts[c]++;
    }
    gy_info("apply: %" JSON_INTEGER_FORMAT " created, %" JSON_INTEGER_FORMAT " updated, %" JSON_INTEGER_FORMAT
            " unchanged, %" JSON_INTEGER_FORMAT " deleted", counts[0], counts[1], counts[2], counts[3]);
    ctl_respond_result(r, 200, json_pack("{s:I,s:I,s:I,s:I,s:O}", "created", counts[0], "updated", counts[1],
                                         "unchanged", counts[2], "deleted", counts[3], "objects", outcome));
out:
    free(prune);
    free(w);
    json_decref(doomed);
    json_decref(in_file);
    json_decref(outcome);
    json_decref(objs);
}

/* ---- routing ---- */

static bool path_is(const char *path, const char *want)
{
    return strcmp(path, want) == 0;
}

static void objects_endpoint(struct gy_control *ctl, struct ctl_req *r, const char *rest)
{
    const char *slash = strchr(rest, '/');
    char kind[64];
    size_t kl = slash ? (size_t)(slash - rest) : strlen(rest);
    int ki;

    if (kl == 0 || kl >= sizeof(kind)) {
        ctl_respond_errorf(r, 404, "no such endpoint; see /v1.0/<kind> in docs/control.md");
        return;
    }
    memcpy(kind, rest, kl);
    kind[kl] = '\0';
    if ((ki = ctl_kind_index(kind)) < 0) {
        ctl_respond_errorf(r, 404, "unknown kind \"%s\" (zone, proxy, listener, domain, route, shared_rules, cluster)",
                           kind);
        return;
    }
    if (slash == NULL || slash[1] == '\0') {
        if (path_is(r->method, "GET"))
            list(ctl, r, ki);
        else if (path_is(r->method, "POST"))
            create(ctl, r, ki);
        else
            ctl_respond_errorf(r, 405, "%s /v1.0/%s: use GET or POST", r->method, kind);
        return;
    }
    char *key = ctl_url_decode(slash + 1, strlen(slash + 1));
    if (key == NULL || key[0] == '\0') {
        free(key);
        ctl_respond_errorf(r, 400, "malformed key in the URL");
        return;
    }
    if (path_is(r->method, "GET")) {
        json_t *o = ctl_mesh_get(ctl, ki, key);
        if (o != NULL)
            ctl_respond_result(r, 200, json_incref(o));
        else
            ctl_respond_errorf(r, 404, "no %s \"%s\"", kind, key);
    } else if (path_is(r->method, "PUT")) {
        replace(ctl, r, ki, key);
    } else if (path_is(r->method, "DELETE")) {
        delete_one(ctl, r, ki, key);
    } else {
        ctl_respond_errorf(r, 405, "%s /v1.0/%s/<key>: use GET, PUT or DELETE", r->method, kind);
    }
    free(key);
}

void ctl_handle(void *arg, struct ctl_req *r)
{
    struct gy_control *ctl = arg;
    const char *p = r->path;

    ctl->requests++;
    if (strncmp(p, "/v1.0/xds/", 10) != 0 && !ctl_auth_allow(ctl, r, NULL))
        return;
    if (path_is(p, "/ready")) {
        ctl_status_ready(ctl, r);
    } else if (path_is(p, "/metrics") || path_is(p, "/stats/prometheus")) {
        ctl_status_metrics(ctl, r);
    } else if (path_is(p, "/v1.0/status")) {
        ctl_status_json(ctl, r);
    } else if (path_is(p, "/v1.0/version") || path_is(p, "/version")) {
        ctl_status_version(ctl, r);
    } else if (strncmp(p, "/v1.0/xds/", 10) == 0) {
        char *name = ctl_url_decode(p + 10, strlen(p + 10));
        if (name == NULL || name[0] == '\0' || strchr(name, '/') != NULL)
            ctl_respond_errorf(r, 400, "want /v1.0/xds/<proxy name>");
        else if (ctl_auth_allow(ctl, r, name))
            ctl_xds_handle(ctl, r, name);
        free(name);
    } else if (strncmp(p, "/v1.0/ca/", 9) == 0) {
        ctl_ca_handle(ctl, r, p + 9);
    } else if (path_is(p, "/v1.0/apply")) {
        if (!path_is(r->method, "POST"))
            ctl_respond_errorf(r, 405, "use POST with a mesh file (YAML or JSON)");
        else
            apply(ctl, r);
    } else if (strncmp(p, "/v1.0/", 6) == 0) {
        objects_endpoint(ctl, r, p + 6);
    } else {
        ctl_respond_errorf(r, 404, "no such endpoint; see docs/control.md");
    }
}
