/* Config compiler: proxy selection, listeners (and default listeners), vhost and route order,
 * rule precedence, clusters and instance resolution, errors, reference counting. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "mesh/config.h"

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

static const char *const MESH = "["
    "{'kind':'zone','zone_key':'z','name':'zone'},"
    "{'kind':'proxy','proxy_key':'p1','name':'svc','zone_key':'z','listener_keys':['l1','l2'],"
    "  'domain_keys':['d-exact','d-star','d-9090','d-9090b','d-suffix']},"
    "{'kind':'proxy','proxy_key':'other','name':'p1','zone_key':'z','listener_keys':[],'domain_keys':[]},"
    "{'kind':'proxy','proxy_key':'edge','name':'edge','zone_key':'z','listener_keys':[],'domain_keys':['d-9090']},"
    "{'kind':'listener','listener_key':'l1','name':'ingress','ip':'127.0.0.1','port':8080,'protocol':'http2',"
    "  'domain_keys':['d-prefix-www','d-star','d-prefix-api','d-long-suffix','d-exact','d-elsewhere'],"
    "  'stream_idle_timeout':'250ms','request_timeout':'1.5s','request_headers_timeout':'2m',"
    "  'idle_timeout':7,'drain_timeout':'1h','max_request_headers_kb':64,'max_headers_count':50,"
    "  'use_remote_address':false,'generate_request_id':false,"
    "  'access_loggers':{'http_connection_loggers':{'file_loggers':["
    "     {'path':'/tmp/a.log'},{'path':'/tmp/b.log','format':'%START_TIME% %PATH%'},"
    "     {'path':'/tmp/c.log','format':'x','json_format':{'a':'b'}}]}}},"
    "{'kind':'listener','listener_key':'l2','name':'egress','ip':'::1','port':10909,'domain_keys':['d-exact'],"
    "  'access_loggers':{'http_connection_loggers':{'disabled':true,'file_loggers':[{'path':'/tmp/x.log'}]}}},"
    "{'kind':'domain','domain_key':'d-exact','name':'API.example.com','port':8080,'aliases':['alias.example.org']},"
    "{'kind':'domain','domain_key':'d-star','name':'*','port':8080},"
    "{'kind':'domain','domain_key':'d-suffix','name':'*.example.com','port':8080},"
    "{'kind':'domain','domain_key':'d-long-suffix','name':'*.b.example.com','port':8080},"
    "{'kind':'domain','domain_key':'d-prefix-www','name':'www.*','port':8080},"
    "{'kind':'domain','domain_key':'d-prefix-api','name':'api.*','port':8080},"
    "{'kind':'domain','domain_key':'d-elsewhere','name':'other.example.net','port':7000},"
    "{'kind':'domain','domain_key':'d-9090','name':'*','port':9090},"
    "{'kind':'domain','domain_key':'d-9090b','name':'nine.example.com','port':9090},"
    "{'kind':'route','route_key':'r-root','domain_key':'d-star','route_match':{'path':'/','match_type':'prefix'},"
    "  'shared_rules_key':'sr'},"
    "{'kind':'route','route_key':'r-re1','domain_key':'d-star','route_match':{'path':'/r/[0-9]+','match_type':'regex'},"
    "  'shared_rules_key':'sr'},"
    "{'kind':'route','route_key':'r-api-prefix','domain_key':'d-star','route_match':{'path':'/api/'},"
    "  'shared_rules_key':'sr'},"
    "{'kind':'route','route_key':'r-api-exact','domain_key':'d-star',"
    "  'route_match':{'path':'/api/','match_type':'exact'},"
    "  'shared_rules_key':'sr'},"
    "{'kind':'route','route_key':'r-re2','domain_key':'d-star','route_match':{'path':'/x.*','match_type':'regex'},"
    "  'shared_rules_key':'sr'},"
    "{'kind':'route','route_key':'r-v1','domain_key':'d-star','route_match':{'path':'/api/v1/','match_type':'prefix'},"
    "  'shared_rules_key':'sr'},"
    "{'kind':'route','route_key':'r-flat','domain_key':'d-star','path':'/a','shared_rules_key':'sr'},"
    "{'kind':'route','route_key':'r-rules','domain_key':'d-exact','route_match':{'path':'/'},"
    "  'prefix_rewrite':'/svc/','timeout':'1.5s','idle_timeout':'30s',"
    "  'rules':[{'matches':[{'kind':'header','behavior':'exact','from':{'key':'x-canary','value':'1'}}],"
    "            'constraints':{'light':[{'cluster_key':'c-canary','weight':3},{'cluster_key':'c-main'}]}}],"
    "  'shared_rules_key':'sr2',"
    "  'request_headers_to_add':[{'key':'X-A','value':'1'},{'header':{'key':'X-B','value':'2'}},"
    "                            {'header':{'key':'x-c','value':'3'},'append':false}],"
    "  'response_headers_to_add':[{'key':'x-r','value':'v'}],"
    "  'request_headers_to_remove':['X-Drop'],'response_headers_to_remove':['server'],"
    "  'hash_policy':[{'header':{'header_name':'X-User'}},{'cookie':{'name':'ignored'}}],"
    "  'redirects':[{'name':'old','from':'^/old/(.*)','to':'/new/$1','redirect_type':'temporary'}]},"
    "{'kind':'route','route_key':'r-direct','domain_key':'d-9090',"
    "  'route_match':{'path':'/health','match_type':'exact'},"
    "  'direct_response':{'status':200,'body':'ok'},'hash_policy':[{'connection_properties':{'source_ip':true}}]},"
    "{'kind':'route','route_key':'r-cookie','domain_key':'d-9090b','route_match':{'path':'/'},'rules':["
    "  {'methods':['get','PURGE'],'constraints':{'light':[{'cluster_key':'c-main','weight':0},"
    "    {'cluster_key':'c-ring','metadata':[{'key':'version','value':'v2'}]}]}}],"
    "  'hash_policy':[{'cookie':{'name':'session'}}]},"
    "{'kind':'shared_rules','shared_rules_key':'sr','default':{'light':[{'cluster_key':'c-main','weight':1}]}},"
    "{'kind':'shared_rules','shared_rules_key':'sr2',"
    "  'rules':[{'methods':['POST'],'constraints':{'light':[{'cluster_key':'c-post'}]}}],"
    "  'default':{'light':[{'cluster_key':'c-main'}]}},"
    "{'kind':'cluster','cluster_key':'c-main','name':'main','instances':[{'host':'127.0.0.1','port':9001},"
    "  {'host':'::1','port':9002,'weight':3,'metadata':[{'key':'version','value':'v2'}]},"
    "  {'host':'localhost','port':9003}]},"
    "{'kind':'cluster','cluster_key':'c-canary','name':'canary','lb_policy':'least_request',"
    "  'least_request_lb_config':{'choice_count':3},'connect_timeout':'250ms','idle_timeout':'2m',"
    "  'max_idle_connections_per_host':8,'instances':[{'host':'10.1.2.3','port':80}]},"
    "{'kind':'cluster','cluster_key':'c-post','name':'post','lb_policy':'random','instances':[]},"
    "{'kind':'cluster','cluster_key':'c-ring','name':'ring','lb_policy':'maglev',"
    "  'ring_hash_lb_config':{'minimum_ring_size':64},"
    "  'instances':[{'host':'10.0.0.1','port':1},{'host':'10.0.0.2','port':1}]},"
    "{'kind':'cluster','cluster_key':'c-unused','name':'unused','instances':[{'host':'no-such-host.invalid','port':1}]}"
    "]";

static struct gy_config *compile_ok(json_t *objects, const char *name)
{
    struct gy_config *cfg = NULL;
    struct gy_mesh_error err;
    int rc = gy_config_compile(objects, name, &cfg, &err);

    if (rc != 0)
        fail_msg("compile %s: %d %s", name, rc, err.msg);
    assert_non_null(cfg);
    return cfg;
}

static void expect_error(const char *mesh, const char *name, const char *want_prefix)
{
    json_t *objects = J(mesh);
    struct gy_config *cfg = (struct gy_config *)1;
    struct gy_mesh_error err;

    assert_int_equal(gy_config_compile(objects, name, &cfg, &err), GY_ECONFIG);
    assert_null(cfg);
    if (strncmp(err.msg, want_prefix, strlen(want_prefix)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", err.msg, want_prefix);
    assert_int_equal(objects->refcount, 1);
    json_decref(objects);
}

static const struct gy_listener *listener(const struct gy_config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (strcmp(cfg->listeners[i].key, key) == 0)
            return &cfg->listeners[i];
    fail_msg("no listener %s", key);
    return NULL;
}

static const struct gy_vhost *vhost(const struct gy_config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->nvhosts; i++)
        if (strcmp(cfg->vhosts[i].key, key) == 0)
            return &cfg->vhosts[i];
    fail_msg("no vhost %s", key);
    return NULL;
}

static void test_proxy_selection(void **state)
{
    static const struct {
        const char *ask, *want_name;
        size_t nlisteners;
    } cases[] = {
        { "svc", "svc", 3 },  /* by name */
        { "p1", "p1", 0 },    /* a proxy named "p1" wins over proxy_key "p1" */
        { "edge", "edge", 1 },
        { "other", "p1", 0 }, /* by key when no proxy has that name */
    };
    json_t *objects = J(MESH);

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gy_config *cfg = compile_ok(objects, cases[i].ask);
        assert_string_equal(cfg->proxy_name, cases[i].want_name);
        assert_string_equal(cfg->zone_key, "z");
        assert_int_equal(cfg->nlisteners, cases[i].nlisteners);
        assert_ptr_equal(cfg->objects, objects);
        assert_int_equal(cfg->generation, 0);
        gy_config_unref(cfg);
    }
    json_decref(objects);
    expect_error(MESH, "nope", "proxy \"nope\": no proxy with that name or key");
}

static void test_listeners(void **state)
{
    json_t *objects = J(MESH);
    struct gy_config *cfg = compile_ok(objects, "svc");
    const struct gy_listener *l1 = listener(cfg, "l1"), *l2 = listener(cfg, "l2"), *d = listener(cfg, "default-9090");
    struct sockaddr_in *sin = (struct sockaddr_in *)&l1->addr;

    (void)state;
    assert_string_equal(cfg->listeners[0].key, "l1"); /* explicit listeners first, then defaults */
    assert_string_equal(cfg->listeners[2].key, "default-9090");
    assert_string_equal(l1->name, "ingress");
    assert_int_equal(l1->protocol, GY_PROTO_HTTP2);
    assert_int_equal(sin->sin_family, AF_INET);
    assert_int_equal(ntohs(sin->sin_port), 8080);
    assert_int_equal(l1->addrlen, sizeof(struct sockaddr_in));
    assert_int_equal(l1->stream_idle_timeout_ms, 250);
    assert_int_equal(l1->request_timeout_ms, 1500);
    assert_int_equal(l1->request_headers_timeout_ms, 120000);
    assert_int_equal(l1->idle_timeout_ms, 7000);
    assert_int_equal(l1->drain_timeout_ms, 3600000);
    assert_int_equal(l1->max_request_headers_kb, 64);
    assert_int_equal(l1->max_headers, 50);
    assert_false(l1->use_remote_address);
    assert_false(l1->generate_request_id);
    assert_int_equal(l1->naccess_logs, 3);
    assert_string_equal(l1->access_logs[0].path, "/tmp/a.log");
    assert_null(l1->access_logs[0].format);
    assert_string_equal(l1->access_logs[1].format, "%START_TIME% %PATH%");
    assert_null(l1->access_logs[2].format); /* json_format → JSON lines */

    assert_int_equal(l2->addr.ss_family, AF_INET6);
    assert_int_equal(l2->protocol, GY_PROTO_HTTP_AUTO);
    assert_int_equal(l2->naccess_logs, 0); /* disabled */
    assert_int_equal(l2->nvhosts, 1);
    assert_ptr_equal(l2->vhosts[0], vhost(cfg, "d-exact")); /* shared with l1 */

    /* No listener on 9090: a default one with every proxy domain of that port. */
    assert_string_equal(d->name, "default-9090");
    assert_string_equal(d->ip, "0.0.0.0");
    assert_int_equal(d->port, 9090);
    assert_int_equal(d->protocol, GY_PROTO_HTTP_AUTO);
    assert_int_equal(d->stream_idle_timeout_ms, 300000);
    assert_int_equal(d->request_timeout_ms, 0);
    assert_int_equal(d->request_headers_timeout_ms, 10000);
    assert_int_equal(d->idle_timeout_ms, 60000);
    assert_int_equal(d->drain_timeout_ms, 5000);
    assert_int_equal(d->max_request_headers_kb, 32);
    assert_int_equal(d->max_headers, 100);
    assert_true(d->use_remote_address);
    assert_true(d->generate_request_id);
    assert_int_equal(d->nvhosts, 2);
    assert_string_equal(d->vhosts[0]->key, "d-9090b"); /* exact before "*" */
    assert_string_equal(d->vhosts[1]->key, "d-9090");
    gy_config_unref(cfg);
    json_decref(objects);
}

static void test_vhost_order(void **state)
{
    /* l1 lists its own domains, then gets the proxy's 8080 domains (d-suffix; the others are
     * already there); d-elsewhere (port 7000) stays because the listener names it. */
    static const char *const want[] = { "d-exact",      "d-elsewhere",  "d-long-suffix", "d-suffix",
                                        "d-prefix-www", "d-prefix-api", "d-star" };
    json_t *objects = J(MESH);
    struct gy_config *cfg = compile_ok(objects, "svc");
    const struct gy_listener *l1 = listener(cfg, "l1");
    const struct gy_vhost *v;

    (void)state;
    assert_int_equal(l1->nvhosts, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < l1->nvhosts; i++)
        assert_string_equal(l1->vhosts[i]->key, want[i]);
    v = vhost(cfg, "d-exact");
    assert_int_equal(v->match, GY_HOST_EXACT);
    assert_string_equal(v->pattern, "api.example.com"); /* lower-cased */
    assert_string_equal(v->name, "API.example.com");
    assert_int_equal(v->naliases, 1);
    assert_int_equal(v->alias_match[0], GY_HOST_EXACT);
    assert_string_equal(v->alias_pattern[0], "alias.example.org");
    v = vhost(cfg, "d-suffix");
    assert_int_equal(v->match, GY_HOST_SUFFIX);
    assert_string_equal(v->pattern, ".example.com");
    assert_int_equal(v->pattern_len, 12);
    v = vhost(cfg, "d-prefix-api");
    assert_int_equal(v->match, GY_HOST_PREFIX);
    assert_string_equal(v->pattern, "api.");
    assert_int_equal(vhost(cfg, "d-star")->match, GY_HOST_ANY);
    assert_int_equal(vhost(cfg, "d-star")->port, 8080);
    gy_config_unref(cfg);
    json_decref(objects);
}

static void test_route_order(void **state)
{
    static const struct {
        const char *key;
        enum gy_path_match type;
        const char *path;
    } want[] = {
        /* exact, then regex in file order, then prefix longest first (nginx's order) */
        { "r-api-exact", GY_PATH_EXACT, "/api/" }, { "r-re1", GY_PATH_REGEX, "/r/[0-9]+" },
        { "r-re2", GY_PATH_REGEX, "/x.*" },        { "r-v1", GY_PATH_PREFIX, "/api/v1/" },
        { "r-api-prefix", GY_PATH_PREFIX, "/api/" }, { "r-flat", GY_PATH_PREFIX, "/a" },
        { "r-root", GY_PATH_PREFIX, "/" },
    };
    json_t *objects = J(MESH);
    struct gy_config *cfg = compile_ok(objects, "svc");
    const struct gy_vhost *v = vhost(cfg, "d-star");

    (void)state;
    assert_int_equal(v->nroutes, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < v->nroutes; i++) {
        assert_string_equal(v->routes[i].key, want[i].key);
        assert_int_equal(v->routes[i].match_type, want[i].type);
        assert_string_equal(v->routes[i].path, want[i].path);
        assert_int_equal(v->routes[i].path_len, strlen(want[i].path));
        assert_true((v->routes[i].re != NULL) == (want[i].type == GY_PATH_REGEX));
        assert_int_equal(v->routes[i].timeout_ms, 15000);
        assert_null(v->routes[i].prefix_rewrite);
    }
    gy_config_unref(cfg);
    json_decref(objects);
}

static void test_rules_and_route_fields(void **state)
{
    json_t *objects = J(MESH);
    struct gy_config *cfg = compile_ok(objects, "svc");
    const struct gy_route *r = &vhost(cfg, "d-exact")->routes[0];

    (void)state;
    /* route rules → shared_rules rules → shared_rules default */
    assert_int_equal(r->nrules, 3);
    assert_int_equal(r->rules[0].nmatches, 1);
    assert_int_equal(r->rules[0].matches[0].kind, GY_MATCHKIND_HEADER);
    assert_string_equal(r->rules[0].matches[0].key, "x-canary");
    assert_int_equal(r->rules[0].nlight, 2);
    assert_int_equal(r->rules[0].light_total_weight, 4);
    assert_string_equal(r->rules[0].light[0].cluster->key, "c-canary");
    assert_int_equal(r->rules[0].light[1].weight, 1);
    assert_int_equal(r->rules[1].methods, GY_METHOD_POST);
    assert_string_equal(r->rules[1].light[0].cluster->key, "c-post");
    assert_int_equal(r->rules[2].methods, 0);
    assert_int_equal(r->rules[2].nmatches, 0);
    assert_string_equal(r->rules[2].light[0].cluster->key, "c-main");

    assert_string_equal(r->prefix_rewrite, "/svc/");
    assert_int_equal(r->timeout_ms, 1500);
    assert_int_equal(r->idle_timeout_ms, 30000);
    assert_int_equal(r->nrequest_headers_to_add, 3);
    assert_string_equal(r->request_headers_to_add[0].name, "x-a");
    assert_false(r->request_headers_to_add[0].append); /* {key,value}: replace */
    assert_string_equal(r->request_headers_to_add[1].name, "x-b");
    assert_true(r->request_headers_to_add[1].append); /* Envoy shape: append by default */
    assert_false(r->request_headers_to_add[2].append);
    assert_string_equal(r->response_headers_to_add[0].value, "v");
    assert_string_equal(r->request_headers_to_remove[0], "x-drop");
    assert_string_equal(r->response_headers_to_remove[0], "server");
    assert_int_equal(r->hash_policy.source, GY_HASH_HEADER);
    assert_string_equal(r->hash_policy.name, "x-user");
    assert_int_equal(r->nredirects, 1);
    assert_int_equal(r->redirects[0].status, 302);
    assert_string_equal(r->redirects[0].to, "/new/$1");

    r = &vhost(cfg, "d-9090")->routes[0];
    assert_non_null(r->direct_response);
    assert_int_equal(r->direct_response->status, 200);
    assert_int_equal(r->direct_response->body_len, 2);
    assert_int_equal(r->hash_policy.source, GY_HASH_SOURCE_IP);
    assert_int_equal(r->nrules, 0);

    r = &vhost(cfg, "d-9090b")->routes[0];
    assert_int_equal(r->hash_policy.source, GY_HASH_COOKIE);
    assert_string_equal(r->hash_policy.name, "session");
    assert_int_equal(r->rules[0].methods, GY_METHOD_GET);
    assert_int_equal(r->rules[0].nextra_methods, 1);
    assert_string_equal(r->rules[0].extra_methods[0], "PURGE");
    assert_int_equal(r->rules[0].light[0].weight, 0);
    assert_int_equal(r->rules[0].light_total_weight, 1);
    assert_int_equal(r->rules[0].light[1].nmetadata, 1);
    assert_string_equal(r->rules[0].light[1].metadata[0].value, "v2");
    gy_config_unref(cfg);
    json_decref(objects);
}

static void test_clusters(void **state)
{
    json_t *objects = J(MESH);
    struct gy_config *cfg = compile_ok(objects, "svc");
    struct gy_cluster *c;

    (void)state;
    assert_int_equal(cfg->nclusters, 4); /* c-unused is not reachable (and would not resolve) */
    for (size_t i = 0; i < cfg->nclusters; i++)
        assert_int_equal(cfg->clusters[i].index, i);
    assert_null(gy_config_cluster_by_name(cfg, "unused"));
    assert_null(gy_config_cluster_by_name(cfg, "c-main")); /* by name, not key */

    c = gy_config_cluster_by_name(cfg, "main");
    assert_non_null(c);
    assert_string_equal(c->key, "c-main");
    assert_int_equal(c->lb_policy, GY_LB_ROUND_ROBIN);
    assert_int_equal(c->connect_timeout_ms, 5000);
    assert_int_equal(c->idle_timeout_ms, 60000);
    assert_int_equal(c->max_idle_per_host, 64);
    assert_int_equal(c->choice_count, 2);
    assert_int_equal(c->ninstances, 3);
    assert_int_equal(c->instances[0].weight, 1);
    assert_int_equal(c->instances[1].weight, 3);
    assert_string_equal(c->instances[1].metadata[0].key, "version");
    assert_int_equal(c->instances[0].addr.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&c->instances[0].addr)->sin_port), 9001);
    assert_int_equal(c->instances[1].addr.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&c->instances[1].addr)->sin6_port), 9002);
    assert_int_equal(c->instances[1].addrlen, sizeof(struct sockaddr_in6));
    assert_true(c->instances[2].addrlen > 0); /* "localhost" through getaddrinfo */

    c = gy_config_cluster_by_name(cfg, "canary");
    assert_int_equal(c->lb_policy, GY_LB_LEAST_REQUEST);
    assert_int_equal(c->choice_count, 3);
    assert_int_equal(c->connect_timeout_ms, 250);
    assert_int_equal(c->idle_timeout_ms, 120000);
    assert_int_equal(c->max_idle_per_host, 8);
    assert_int_equal(gy_config_cluster_by_name(cfg, "post")->lb_policy, GY_LB_RANDOM);
    assert_int_equal(gy_config_cluster_by_name(cfg, "post")->ninstances, 0);

    c = gy_config_cluster_by_name(cfg, "ring"); /* maglev = ring hash */
    assert_int_equal(c->lb_policy, GY_LB_RING_HASH);
    assert_true(c->ring_size >= 64 && c->ring_size < 128);
    for (uint32_t i = 1; i < c->ring_size; i++)
        assert_true(c->ring_hashes[i - 1] <= c->ring_hashes[i]);
    gy_config_unref(cfg);
    json_decref(objects);
}

static void test_errors(void **state)
{
    static const struct {
        const char *mesh, *want;
    } cases[] = {
        { "[{'kind':'proxy','proxy_key':'p','name':'p','listener_keys':[],'domain_keys':['d']},"
          "{'kind':'domain','domain_key':'d','name':'*','port':80},"
          "{'kind':'route','route_key':'r','domain_key':'d','route_match':{'path':'/'},"
          " 'rules':[{'constraints':{'light':[{'cluster_key':'bad'}]}}]},"
          "{'kind':'cluster','cluster_key':'bad','name':'bad','instances':[{'host':'127.0.0.1','port':1},"
          " {'host':'no-such-host.invalid','port':80}]}]",
          "cluster \"bad\": instances[1].host: cannot resolve \"no-such-host.invalid\": " },
        { "[{'kind':'proxy','proxy_key':'p','name':'p','listener_keys':[],'domain_keys':['d']},"
          "{'kind':'domain','domain_key':'d','name':'*','port':80},"
          "{'kind':'route','route_key':'bad-re','domain_key':'d','route_match':{'path':'/(','match_type':'regex'}}]",
          "route \"bad-re\": route_match.path: bad regex \"/(\": " },
        { "[{'kind':'proxy','proxy_key':'p','name':'p','listener_keys':[],'domain_keys':['d']},"
          "{'kind':'domain','domain_key':'d','name':'*','port':80,"
          " 'redirects':[{'name':'x','from':'[','to':'/'}]}]",
          "domain \"d\": redirects[0].from: bad regex" },
        { "[{'kind':'proxy','proxy_key':'p','name':'p','listener_keys':[],'domain_keys':['d']},"
          "{'kind':'domain','domain_key':'d','name':'*','port':80},"
          "{'kind':'route','route_key':'r','domain_key':'d','route_match':{'path':'/'},'rules':[{"
          " 'matches':[{'kind':'header','behavior':'range','from':{'key':'x','value':'10-20'}}],"
          " 'constraints':{'light':[]}}]}]",
          "route \"r\": rules[0].matches[0].from.value: range \"10-20\" is not \"start,end\"" },
        { "[{'kind':'proxy','proxy_key':'p','name':'p','listener_keys':[],'domain_keys':['d']},"
          "{'kind':'domain','domain_key':'d','name':'*','port':80},"
          "{'kind':'route','route_key':'r','domain_key':'d','timeout':'5 parsecs'}]",
          "route \"r\": timeout: not a duration" },
        { "[{'kind':'proxy','proxy_key':'p','name':'p','listener_keys':['l'],'domain_keys':[]},"
          "{'kind':'listener','listener_key':'l','ip':'0.0.0.0','port':80,'idle_timeout':-1}]",
          "listener \"l\": idle_timeout: not a duration" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i].mesh, "p", cases[i].want);
}

static void test_refcount(void **state)
{
    json_t *objects = J(MESH);
    struct gy_config *cfg = compile_ok(objects, "svc");

    (void)state;
    assert_int_equal(objects->refcount, 2); /* the config keeps the objects */
    assert_int_equal(atomic_load(&cfg->refs), 1);
    assert_ptr_equal(gy_config_ref(cfg), cfg);
    assert_int_equal(atomic_load(&cfg->refs), 2);
    gy_config_unref(cfg);
    assert_int_equal(objects->refcount, 2);
    gy_config_unref(cfg); /* freed here: ASan/LSan check the rest */
    assert_int_equal(objects->refcount, 1);
    gy_config_unref(NULL);
    json_decref(objects);
}

static void test_empty_and_defaults(void **state)
{
    json_t *objects = J("[{'kind':'proxy','proxy_key':'p','name':'p','listener_keys':['l'],'domain_keys':['d']},"
                        "{'kind':'listener','listener_key':'l','port':80},"
                        "{'kind':'domain','domain_key':'d','port':80},"
                        "{'kind':'route','route_key':'r','domain_key':'d'}]");
    struct gy_config *cfg = compile_ok(objects, "p");

    (void)state;
    assert_null(cfg->zone_key);
    assert_int_equal(cfg->nlisteners, 1);
    assert_string_equal(cfg->listeners[0].ip, "0.0.0.0");
    assert_string_equal(cfg->listeners[0].name, "l");
    assert_int_equal(cfg->listeners[0].nvhosts, 1);
    assert_int_equal(cfg->listeners[0].vhosts[0]->match, GY_HOST_ANY);
    assert_int_equal(cfg->listeners[0].vhosts[0]->routes[0].match_type, GY_PATH_PREFIX);
    assert_string_equal(cfg->listeners[0].vhosts[0]->routes[0].path, "/");
    assert_int_equal(cfg->listeners[0].vhosts[0]->routes[0].nrules, 0);
    assert_int_equal(cfg->nclusters, 0);
    gy_config_unref(cfg);
    json_decref(objects);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxy_selection),
        cmocka_unit_test(test_listeners),
        cmocka_unit_test(test_vhost_order),
        cmocka_unit_test(test_route_order),
        cmocka_unit_test(test_rules_and_route_fields),
        cmocka_unit_test(test_clusters),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_empty_and_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
