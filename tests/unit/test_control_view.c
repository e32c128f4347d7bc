/* Control plane views: contents, validity, versions, which views a change recomputes, and the
 * merge of static and discovered instances (src/control/view.c, control.c). No sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control/control.h"
#include "control/view.h"
#include "mesh/config.h"
#include "mesh/mesh.h"

/* JSON with ' for " so that the fixtures stay readable. */
static json_t *J(const char *text)
{
    char *s = strdup(text);
    json_error_t e;

    assert_non_null(s);
    for (char *p = s; *p != '\0'; p++)
        if (*p == '\'')
            *p = '"';
    json_t *j = json_loads(s, 0, &e);
    if (j == NULL)
        fail_msg("fixture: %s at line %d col %d", e.text, e.line, e.column);
    free(s);
    return j;
}

/* Two services, each with a proxy, listener, domain, route and cluster; b's route also sends
 * dark traffic to a shared "mirror" cluster through shared rules. */
static const char *const MESH = "["
    "{'kind':'zone','zone_key':'z'},"
    "{'kind':'zone','zone_key':'unused-zone'},"
    "{'kind':'proxy','proxy_key':'pa','name':'a','zone_key':'z','listener_keys':['la']},"
    "{'kind':'listener','listener_key':'la','ip':'127.0.0.1','port':10001,'domain_keys':['da']},"
    "{'kind':'domain','domain_key':'da','name':'*','port':10001},"
    "{'kind':'route','route_key':'ra','domain_key':'da','route_match':{'path':'/'},"
    "  'rules':[{'constraints':{'light':[{'cluster_key':'ca','weight':1}]}}]},"
    "{'kind':'cluster','cluster_key':'ca','name':'svc-a','instances':[{'host':'127.0.0.1','port':8001}]},"
    "{'kind':'proxy','proxy_key':'pb','name':'b','zone_key':'z','domain_keys':['db']},"
    "{'kind':'domain','domain_key':'db','name':'*','port':10002,'zone_key':'z'},"
    "{'kind':'route','route_key':'rb','domain_key':'db','route_match':{'path':'/'},'shared_rules_key':'srb'},"
    "{'kind':'shared_rules','shared_rules_key':'srb','default':{'light':[{'cluster_key':'cb','weight':1}],"
    "  'dark':[{'cluster_key':'mirror','weight':1}]}},"
    "{'kind':'cluster','cluster_key':'cb','name':'svc-b'},"
    "{'kind':'cluster','cluster_key':'mirror','zone_key':'z'},"
    "{'kind':'cluster','cluster_key':'lonely','name':'svc-a'}"
    "]";

static struct gy_control *setup_ctl(void)
{
    struct gy_control *ctl = calloc(1, sizeof(*ctl));
    json_t *mesh = J(MESH);
    struct gy_mesh_error err;

    assert_non_null(ctl);
    assert_int_equal(gy_mesh_validate(mesh, &err), 0);
    assert_int_equal(ctl_mesh_init(ctl), 0);
    ctl_views_init(ctl);
    ctl_map_init(&ctl->nodes);
    ctl_mesh_replace_all(ctl, mesh);
    json_decref(mesh);
    return ctl;
}

static void teardown_ctl(struct gy_control *ctl)
{
    for (size_t i = 0; i < ctl->nsources; i++) {
        free(ctl->sources[i].spec);
        json_decref(ctl->sources[i].snapshot);
    }
    free(ctl->sources);
    ctl_views_dispose(ctl);
    ctl_xds_dispose(ctl);
    ctl_mesh_dispose(ctl);
    free(ctl);
}

static json_t *view_json(const struct ctl_view *v)
{
    assert_non_null(v->body);
    json_t *j = json_loadb(v->body->data, v->body->len, 0, NULL);
    assert_non_null(j);
    return j;
}

/* "kind/key,kind/key,..." of a view, in its order. */
static void view_keys(const struct ctl_view *v, char *out, size_t len)
{
    json_t *j = view_json(v), *o;
    size_t i, off = 0;

    out[0] = '\0';
    json_array_foreach(json_object_get(j, "objects"), i, o) {
        const char *kind = json_string_value(json_object_get(o, "kind"));
        char kf[64];
        snprintf(kf, sizeof(kf), "%s_key", kind);
        off += (size_t)snprintf(out + off, len - off, "%s%s/%s", i ? "," : "", kind,
                                json_string_value(json_object_get(o, kf)));
    }
    json_decref(j);
}

static void test_view_contents_are_a_valid_mesh(void **state)
{
    struct gy_control *ctl = setup_ctl();
    struct ctl_view *a = ctl_view_get(ctl, "a", ""), *b = ctl_view_get(ctl, "b", "");
    char keys[2048];
    struct gy_mesh_error err;
    struct gy_config *cfg = NULL;

    (void)state;
    view_keys(a, keys, sizeof(keys));
    assert_string_equal(keys, "zone/z,proxy/pa,listener/la,domain/da,route/ra,cluster/ca");
    view_keys(b, keys, sizeof(keys));
    assert_string_equal(keys, "zone/z,proxy/pb,domain/db,route/rb,shared_rules/srb,cluster/cb,cluster/mirror");
    /* What a proxy gets validates and compiles on its own. */
    json_t *j = view_json(b);
    json_t *objs = json_object_get(j, "objects");
    assert_int_equal(gy_mesh_validate(objs, &err), 0);
    assert_int_equal(gy_config_compile(objs, "b", &cfg, &err), 0);
    assert_int_equal(cfg->nlisteners, 1);
    gy_config_unref(cfg);
    assert_string_equal(json_string_value(json_object_get(j, "version")), b->version);
    /* The view is assembled from cached text; it is exactly the canonical JSON of its objects. */
    char *canon = ctl_canonical(objs), version[CTL_VERSION_LEN + 1];
    ctl_sha256_hex(canon, strlen(canon), version, CTL_VERSION_LEN);
    assert_string_equal(version, b->version);
    assert_non_null(strstr(b->body->data, canon));
    free(canon);
    assert_string_equal(json_string_value(json_object_get(j, "proxy")), "b");
    json_decref(j);
    /* No proxy of that name or key. */
    assert_null(ctl_view_get(ctl, "nobody", "")->body);
    teardown_ctl(ctl);
}

static void put(struct gy_control *ctl, const char *obj)
{
    json_t *o = J(obj);
    const char *kind = json_string_value(json_object_get(o, "kind"));
    struct ctl_error err;
    char kf[64];
    /* Through the write path, with a store that accepts everything. */
    snprintf(kf, sizeof(kf), "%s_key", kind);
    struct ctl_write w = { CTL_UPSERT, ctl_kind_index(kind), json_string_value(json_object_get(o, kf)), o, NULL };
    if (ctl_mesh_write(ctl, &w, 1, NULL, &err) != 0)
        fail_msg("write: %s", err.message);
    json_decref(o);
}

static int null_commit(struct gy_store *s, const struct gy_store_change *c, size_t n, char *err, size_t errlen)
{
    (void)s, (void)c, (void)n, (void)err, (void)errlen;
    return 0;
}

static const struct gy_store_ops null_store = { .name = "null", .commit = null_commit };

static void test_only_touched_views_recompute(void **state)
{
    struct gy_control *ctl = setup_ctl();
    char va[CTL_VERSION_LEN + 1], vb[CTL_VERSION_LEN + 1];

    (void)state;
    ctl->store_ops = &null_store;
    struct ctl_view *a = ctl_view_get(ctl, "a", ""), *b = ctl_view_get(ctl, "b", "");
    memcpy(va, a->version, sizeof(va));
    memcpy(vb, b->version, sizeof(vb));
    uint64_t computes = ctl->view_computes;
    /* An object no view holds: nothing recomputed. */
    put(ctl, "{'kind':'cluster','cluster_key':'lonely','name':'svc-a','lb_policy':'random'}");
    put(ctl, "{'kind':'zone','zone_key':'unused-zone','name':'renamed'}");
    assert_int_equal(ctl->view_computes, computes);
    /* b's shared rules: only b. */
    put(ctl, "{'kind':'shared_rules','shared_rules_key':'srb','default':{'light':[{'cluster_key':'cb','weight':1}]}}");
    assert_int_equal(ctl->view_computes, computes + 1);
    assert_string_equal(a->version, va);
    assert_string_not_equal(b->version, vb);
    char keys[2048];
    view_keys(b, keys, sizeof(keys));
    assert_string_equal(keys, "zone/z,proxy/pb,domain/db,route/rb,shared_rules/srb,cluster/cb");
    /* The mirror is no longer in b's view: changing it touches nobody. */
    computes = ctl->view_computes;
    put(ctl, "{'kind':'cluster','cluster_key':'mirror','lb_policy':'random'}");
    assert_int_equal(ctl->view_computes, computes);
    /* A new route on a's domain joins a's view. */
    put(ctl, "{'kind':'route','route_key':'ra2','domain_key':'da','route_match':{'path':'/two'},"
             "'rules':[{'constraints':{'light':[{'cluster_key':'mirror','weight':1}]}}]}");
    view_keys(a, keys, sizeof(keys));
    assert_string_equal(keys, "zone/z,proxy/pa,listener/la,domain/da,route/ra,route/ra2,cluster/ca,cluster/mirror");
    /* The shared zone: both. */
    computes = ctl->view_computes;
    put(ctl, "{'kind':'zone','zone_key':'z','name':'zed'}");
    assert_int_equal(ctl->view_computes, computes + 2);
    /* Writing an object unchanged changes no version. */
    memcpy(va, a->version, sizeof(va));
    put(ctl, "{'kind':'zone','zone_key':'z','name':'zed'}");
    assert_string_equal(a->version, va);
    /* A proxy created later under a polled name is found. */
    struct ctl_view *late = ctl_view_get(ctl, "late", "");
    assert_null(late->body);
    put(ctl, "{'kind':'proxy','proxy_key':'late-proxy','name':'late','domain_keys':['da']}");
    assert_non_null(late->body);
    teardown_ctl(ctl);
}

static struct ctl_source *add_source(struct gy_control *ctl, const char *spec)
{
    struct ctl_source *s = realloc(ctl->sources, (ctl->nsources + 1) * sizeof(*s));

    assert_non_null(s);
    ctl->sources = s;
    s = &ctl->sources[ctl->nsources++];
    memset(s, 0, sizeof(*s));
    s->ctl = ctl;
    s->spec = strdup(spec);
    s->snapshot = json_object();
    return s;
}

static void discover(struct gy_control *ctl, struct ctl_source *s, const char *snapshot)
{
    json_t *j = J(snapshot);

    ctl_discovery_update(ctl, s, j); /* borrows */
    json_decref(j);
}

static const json_t *view_cluster(const struct ctl_view *v, const char *key, json_t **holder)
{
    json_t *j = view_json(v), *o;
    size_t i;

    *holder = j;
    json_array_foreach(json_object_get(j, "objects"), i, o)
        if (strcmp(json_string_value(json_object_get(o, "kind")), "cluster") == 0 &&
            strcmp(json_string_value(json_object_get(o, "cluster_key")), key) == 0)
            return o;
    fail_msg("no cluster %s in the view", key);
    return NULL;
}

static void test_discovery_merges_into_instances(void **state)
{
    struct gy_control *ctl = setup_ctl();
    struct ctl_view *a = ctl_view_get(ctl, "a", ""), *b = ctl_view_get(ctl, "b", "");
    json_t *holder;
    char vb[CTL_VERSION_LEN + 1];

    (void)state;
    memcpy(vb, b->version, sizeof(vb));
    add_source(ctl, "file:/one");
    add_source(ctl, "dns:two"); /* (add_source moves the array) */
    struct ctl_source *s1 = &ctl->sources[0], *s2 = &ctl->sources[1];
    discover(ctl, s1, ("{'svc-a':[{'host':'10.0.0.1','port':80},{'host':'127.0.0.1','port':8001},"
                                    "{'host':'','port':1},{'host':'bad-port','port':0}],"
                                    "'unknown':[{'host':'10.9.9.9','port':1}]}"));
    discover(ctl, s2, ("{'svc-a':[{'host':'10.0.0.2','port':80,'metadata':[{'key':'v','value':'2'}]},"
                                    "{'host':'10.0.0.1','port':80}]}"));
    /* static first, then each source in order, each host:port once, malformed ones dropped */
    const json_t *ca = view_cluster(a, "ca", &holder);
    json_t *want = J("[{'host':'127.0.0.1','port':8001},{'host':'10.0.0.1','port':80},"
                     "{'host':'10.0.0.2','port':80,'metadata':[{'key':'v','value':'2'}]}]");
    assert_true(json_equal(json_object_get(ca, "instances"), want));
    json_decref(want);
    json_decref(holder);
    assert_string_equal(b->version, vb); /* svc-b had no change */
    /* b's cluster has no static instances: discovery fills it. */
    discover(ctl, s2, ("{'svc-b':[{'host':'10.1.0.1','port':81}]}"));
    const json_t *cb = view_cluster(b, "cb", &holder);
    want = J("[{'host':'10.1.0.1','port':81}]");
    assert_true(json_equal(json_object_get(cb, "instances"), want));
    json_decref(want);
    json_decref(holder);
    /* s2 no longer reports svc-a: only s1's remain. */
    ca = view_cluster(a, "ca", &holder);
    assert_int_equal(json_array_size(json_object_get(ca, "instances")), 2);
    json_decref(holder);
    /* Everything gone: back to the static instances and the original version of b. */
    discover(ctl, s1, ("{}"));
    discover(ctl, s2, ("{}"));
    assert_string_equal(b->version, vb);
    ca = view_cluster(a, "ca", &holder);
    assert_int_equal(json_array_size(json_object_get(ca, "instances")), 1);
    json_decref(holder);
    teardown_ctl(ctl);
}

static void test_error_field_from_validator_message(void **state)
{
    struct ctl_error e;

    (void)state;
    ctl_error_from_mesh(&e, 400, "route \"api\": rules[0].constraints.light[0].cluster_key: no cluster \"pay\"");
    assert_string_equal(e.field, "rules[0].constraints.light[0].cluster_key");
    ctl_error_from_mesh(&e, 400, "domain \"d\": unknown field \"nmae\"");
    assert_string_equal(e.field, "");
    ctl_error_from_mesh(&e, 400, "object 3 (cluster): cluster_key: must be a string, got 5");
    assert_string_equal(e.field, "cluster_key");
    ctl_error_from_mesh(&e, 400, "apply:3:5: did not find expected key");
    assert_string_equal(e.field, "");
    assert_int_equal(e.code, 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_view_contents_are_a_valid_mesh),
        cmocka_unit_test(test_only_touched_views_recompute),
        cmocka_unit_test(test_discovery_merges_into_instances),
        cmocka_unit_test(test_error_field_from_validator_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
