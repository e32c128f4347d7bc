/* Router: host matching, path matching and order, methods, header/cookie/query matches,
 * weighted splits, prefix_rewrite, redirects, force_https, direct responses, not found. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "proxy/lb.h"
#include "proxy/router.h"

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

#define LIGHT(c) "'constraints':{'light':[{'cluster_key':'" c "'}]}"
#define MATCH(kind, behavior, key, value, c)                                                                      \
    "{'matches':[{'kind':'" kind "','behavior':'" behavior "','from':{'key':'" key "','value':'" value "'}}]," \
    LIGHT(c) "}"
#define ROUTE(key, domain, path, type, rest)                                                                      \
    "{'kind':'route','route_key':'" key "','domain_key':'" domain "','route_match':{'path':'" path             \
    "','match_type':'" type "'}" rest "},"

static const char *const MESH = "["
    "{'kind':'proxy','proxy_key':'p','name':'p','listener_keys':['l','l2'],'domain_keys':[]},"
    "{'kind':'listener','listener_key':'l','ip':'127.0.0.1','port':8080,"
    "  'domain_keys':['d-any','d-api','d-wild','d-pre','d-secure','d-redir']},"
    "{'kind':'listener','listener_key':'l2','ip':'127.0.0.1','port':8081,'domain_keys':['d-api']},"
    "{'kind':'domain','domain_key':'d-any','name':'*','port':8080},"
    "{'kind':'domain','domain_key':'d-api','name':'api.example.com','port':8080,"
    "  'aliases':['api.example.org','*.api.internal']},"
    "{'kind':'domain','domain_key':'d-wild','name':'*.example.com','port':8080},"
    "{'kind':'domain','domain_key':'d-pre','name':'staging.*','port':8080},"
    "{'kind':'domain','domain_key':'d-secure','name':'secure.example.com','port':8080,'force_https':true},"
    "{'kind':'domain','domain_key':'d-redir','name':'old.example.com','port':8080,"
    "  'redirects':[{'name':'docs','from':'^/docs/(.*)$','to':'https://docs.example.com/$1',"
    "                'redirect_type':'permanent'}]},"
    ROUTE("r-api-host", "d-api", "/", "prefix", ",'shared_rules_key':'sr-api'")
    ROUTE("r-wild", "d-wild", "/", "prefix", ",'rules':[{" LIGHT("c-wild") "}]")
    ROUTE("r-pre", "d-pre", "/", "exact", ",'rules':[{" LIGHT("c-pre") "}]")
    ROUTE("r-secure", "d-secure", "/", "prefix", ",'rules':[{" LIGHT("c-secure") "}]")
    ROUTE("r-redir", "d-redir", "/", "prefix", ",'rules':[{" LIGHT("c-redir") "}]")
    ROUTE("r-root", "d-any", "/", "prefix", ",'shared_rules_key':'sr-default'")
    ROUTE("r-api", "d-any", "/api/", "prefix", ",'rules':[{" LIGHT("c-api") "}]")
    ROUTE("r-v2", "d-any", "/api/v2/", "prefix", ",'rules':[{" LIGHT("c-v2") "}]")
    ROUTE("r-api-exact", "d-any", "/api/", "exact", ",'rules':[{" LIGHT("c-exact") "}]")
    ROUTE("r-items", "d-pre", "/items/[0-9]+", "regex", ",'rules':[{" LIGHT("c-items") "}]")
    ROUTE("r-methods", "d-any", "/methods", "exact",
          ",'rules':[{'methods':['POST','PUT']," LIGHT("c-write") "},{'methods':['GET']," LIGHT("c-read") "},"
          "{'methods':['PURGE']," LIGHT("c-purge") "}]")
    ROUTE("r-match", "d-any", "/match/", "prefix", ",'rules':["
          MATCH("header", "exact", "x-env", "prod", "c-m0") ","
          MATCH("header", "prefix", "x-pre", "ab", "c-m1") ","
          MATCH("header", "suffix", "x-suf", "yz", "c-m2") ","
          MATCH("header", "regex", "x-re", "v[0-9]+", "c-m3") ","
          MATCH("header", "range", "x-range", "10,20", "c-m4") ","
          MATCH("cookie", "exact", "session", "abc", "c-m5") ","
          MATCH("cookie", "prefix", "flavor", "choc", "c-m6") ","
          MATCH("cookie", "suffix", "tag", "-beta", "c-m7") ","
          MATCH("cookie", "regex", "user", "u[0-9]{3}", "c-m8") ","
          MATCH("query", "exact", "q", "1", "c-m9") ","
          MATCH("query", "prefix", "lang", "en", "c-m10") ","
          MATCH("query", "suffix", "file", ".json", "c-m11") ","
          MATCH("query", "regex", "id", "[a-f]+", "c-m12") ","
          MATCH("query", "range", "page", "-3,3", "c-m13") ","
          MATCH("header", "exact", "x-present", "", "c-m14") ","
          MATCH("header", "regex", "x-redos", "(a|aa)+", "c-m16") ","
          "{'matches':[{'kind':'header','from':{'key':'x-a','value':'1'}},"
          "            {'kind':'query','behavior':'exact','from':{'key':'b','value':'2'}}]," LIGHT("c-m15") "}]")
    ROUTE("r-echo-slash", "d-any", "/services/echo/", "prefix", ",'prefix_rewrite':'/','rules':[{" LIGHT("c-echo") "}]")
    ROUTE("r-echo", "d-any", "/services/echo", "prefix",
          ",'prefix_rewrite':'/services/echo/','rules':[{" LIGHT("c-echo") "}]")
    ROUTE("r-exact-rw", "d-any", "/exact-rw", "exact", ",'prefix_rewrite':'/zzz','rules':[{" LIGHT("c-echo") "}]")
    ROUTE("r-split", "d-any", "/split", "prefix",
          ",'rules':[{'constraints':{'light':[{'cluster_key':'c-a','weight':1},{'cluster_key':'c-zero','weight':0},"
          "{'cluster_key':'c-b','weight':3}]}}]")
    ROUTE("r-old", "d-any", "/old/", "prefix",
          ",'redirects':[{'name':'o','from':'^/old/([^?]*)(\\\\?.*)?$','to':'/new/$1$2','redirect_type':'temporary'}],"
          "'rules':[{" LIGHT("c-default") "}]")
    ROUTE("r-nomatch-redirect", "d-any", "/keep/", "prefix",
          ",'redirects':[{'name':'n','from':'^/never','to':'/x'}],'rules':[{" LIGHT("c-keep") "}]")
    ROUTE("r-direct", "d-any", "/direct", "exact", ",'direct_response':{'status':503,'body':'down'}")
    "{'kind':'shared_rules','shared_rules_key':'sr-default','default':{'light':[{'cluster_key':'c-default'}]}},"
    "{'kind':'shared_rules','shared_rules_key':'sr-api','default':{'light':[{'cluster_key':'c-api-host'}]}}"
    "]";

static const char *const CLUSTERS[] = {
    "c-wild", "c-pre", "c-secure", "c-redir", "c-default", "c-api", "c-v2", "c-exact", "c-items", "c-write",
    "c-read", "c-purge", "c-m0", "c-m1", "c-m2", "c-m3", "c-m4", "c-m5", "c-m6", "c-m7", "c-m8", "c-m9",
    "c-m10", "c-m11", "c-m12", "c-m13", "c-m14", "c-m15", "c-m16", "c-echo", "c-a", "c-b", "c-zero", "c-keep",
    "c-api-host",
};

struct fixture {
    json_t *objects;
    struct gy_config *cfg;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct gy_mesh_error err;

    f->objects = J(MESH);
    for (size_t i = 0; i < sizeof(CLUSTERS) / sizeof(CLUSTERS[0]); i++)
        json_array_append_new(f->objects, json_pack("{s:s, s:s, s:s, s:[]}", "kind", "cluster", "cluster_key",
                                                     CLUSTERS[i], "name", CLUSTERS[i], "instances"));
    if (gy_config_compile(f->objects, "p", &f->cfg, &err) != 0) {
        fprintf(stderr, "compile: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    gy_config_unref(f->cfg);
    json_decref(f->objects);
    free(f);
    return 0;
}

/* A request: "METHOD target" with headers "name: value\n..." (and Host from `host`, NULL = none). */
struct req {
    struct gy_header h[16];
    char hdrbuf[1024];
    char target[512];
    struct gy_route_request r;
};

static void mkreq(struct req *q, const char *method, const char *host, const char *target, const char *headers)
{
    memset(q, 0, sizeof(*q));
    snprintf(q->target, sizeof(q->target), "%s", target);
    char *qm = strchr(q->target, '?');
    q->r.method = gy_slice_cstr(method);
    q->r.host = host ? gy_slice_cstr(host) : GY_SLICE_NULL;
    q->r.path = gy_slice(q->target, qm ? (size_t)(qm - q->target) : strlen(q->target));
    q->r.query = qm ? gy_slice_cstr(qm + 1) : GY_SLICE_NULL;
    snprintf(q->hdrbuf, sizeof(q->hdrbuf), "%s", headers ? headers : "");
    for (char *line = q->hdrbuf, *next; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        char *colon = strchr(line, ':');
        assert_non_null(colon);
        struct gy_header *h = &q->h[q->r.nheaders++];
        h->name = gy_slice(line, (size_t)(colon - line));
        h->value = gy_slice_trim(gy_slice_cstr(colon + 1));
    }
    q->r.headers = q->h;
}

static const struct gy_listener *L(void **state, const char *key)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < f->cfg->nlisteners; i++)
        if (strcmp(f->cfg->listeners[i].key, key) == 0)
            return &f->cfg->listeners[i];
    fail_msg("no listener %s", key);
    return NULL;
}

struct rcase {
    const char *method, *host, *target, *headers;
    enum gy_route_action action;
    const char *want; /* cluster key (CLUSTER), location (REDIRECT), route key (DIRECT), NULL (NOT_FOUND) */
    const char *path; /* expected upstream path for CLUSTER, or NULL for unchanged; status for REDIRECT */
    int status;
};

static void run_cases(void **state, const char *listener, const struct rcase *cases, size_t n, bool tls)
{
    const struct gy_listener *l = L(state, listener);
    char buf[8192];

    for (size_t i = 0; i < n; i++) {
        const struct rcase *c = &cases[i];
        struct req q;
        struct gy_route_result res;
        mkreq(&q, c->method ? c->method : "GET", c->host, c->target, c->headers);
        q.r.tls = tls;
        assert_int_equal(gy_router_route(l, &q.r, &res, buf, sizeof(buf)), 0);
        if (res.action != c->action)
            fail_msg("case %zu (%s %s): action %d, want %d", i, c->host ? c->host : "-", c->target, res.action,
                     c->action);
        switch (c->action) {
        case GY_ROUTE_CLUSTER: {
            if (strcmp(res.cluster->key, c->want) != 0)
                fail_msg("case %zu (%s %s): cluster %s, want %s", i, c->host ? c->host : "-", c->target,
                         res.cluster->key, c->want);
            assert_ptr_equal(res.cluster, res.constraint->cluster);
            assert_non_null(res.rule);
            assert_non_null(res.vhost);
            const char *want_path = c->path ? c->path : c->target;
            size_t wl = strcspn(want_path, "?");
            if (res.path.len != wl || memcmp(res.path.ptr, want_path, wl) != 0)
                fail_msg("case %zu: path " GY_SLICE_FMT ", want %.*s", i, GY_SLICE_ARG(res.path), (int)wl, want_path);
            break;
        }
        case GY_ROUTE_REDIRECT:
            assert_int_equal(res.status, c->status);
            if (!gy_slice_eq(res.location, gy_slice_cstr(c->want)))
                fail_msg("case %zu: location " GY_SLICE_FMT ", want %s", i, GY_SLICE_ARG(res.location), c->want);
            break;
        case GY_ROUTE_DIRECT:
            assert_string_equal(res.route->key, c->want);
            assert_non_null(res.route->direct_response);
            break;
        default:
            assert_null(res.cluster);
            break;
        }
    }
}

#define RUN(state, listener, cases, tls) run_cases(state, listener, cases, sizeof(cases) / sizeof(cases[0]), tls)

static void test_hosts(void **state)
{
    static const struct rcase cases[] = {
        { NULL, "api.example.com", "/", NULL, GY_ROUTE_CLUSTER, "c-api-host", NULL, 0 },
        { NULL, "API.Example.COM:8080", "/", NULL, GY_ROUTE_CLUSTER, "c-api-host", NULL, 0 },
        { NULL, "api.example.org", "/", NULL, GY_ROUTE_CLUSTER, "c-api-host", NULL, 0 },  /* alias */
        { NULL, "x.api.internal:1", "/", NULL, GY_ROUTE_CLUSTER, "c-api-host", NULL, 0 }, /* wildcard alias */
        { NULL, "foo.example.com", "/", NULL, GY_ROUTE_CLUSTER, "c-wild", NULL, 0 },
        { NULL, "a.b.EXAMPLE.com:443", "/", NULL, GY_ROUTE_CLUSTER, "c-wild", NULL, 0 },
        { NULL, "example.com", "/", NULL, GY_ROUTE_CLUSTER, "c-default", NULL, 0 }, /* "*.x" needs a label */
        { NULL, "staging.foo", "/", NULL, GY_ROUTE_CLUSTER, "c-pre", NULL, 0 },
        { NULL, "STAGING.foo:99", "/", NULL, GY_ROUTE_CLUSTER, "c-pre", NULL, 0 },
        { NULL, "staging.example.com", "/", NULL, GY_ROUTE_CLUSTER, "c-wild", NULL, 0 }, /* suffix beats prefix */
        { NULL, "staging.", "/", NULL, GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "api.example.com.evil", "/", NULL, GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "[::1]:8080", "/", NULL, GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, NULL, "/", NULL, GY_ROUTE_CLUSTER, "c-default", NULL, 0 }, /* no Host: only "*" */
        { NULL, "staging.foo", "/nothing", NULL, GY_ROUTE_NOT_FOUND, NULL, NULL, 0 }, /* vhost, no route */
    };
    static const struct rcase only_api[] = {
        { NULL, "api.example.com:8081", "/x", NULL, GY_ROUTE_CLUSTER, "c-api-host", NULL, 0 },
        { NULL, NULL, "/", NULL, GY_ROUTE_NOT_FOUND, NULL, NULL, 0 },
        { NULL, "other.example.com", "/", NULL, GY_ROUTE_NOT_FOUND, NULL, NULL, 0 },
    };
    RUN(state, "l", cases, false);
    RUN(state, "l2", only_api, false);

    const struct gy_listener *l = L(state, "l");
    const struct gy_vhost *api = NULL;
    for (size_t i = 0; i < l->nvhosts; i++)
        if (strcmp(l->vhosts[i]->key, "d-api") == 0)
            api = l->vhosts[i];
    assert_non_null(api);
    assert_true(gy_router_host_matches(api, GY_SLICE_LIT("API.example.ORG")));
    assert_true(gy_router_host_matches(api, GY_SLICE_LIT("a.api.internal")));
    assert_false(gy_router_host_matches(api, GY_SLICE_LIT("api.internal")));
    assert_false(gy_router_host_matches(api, GY_SLICE_LIT("example.com")));
}

static void test_paths(void **state)
{
    static const struct rcase cases[] = {
        { NULL, "h", "/api/v2/users", NULL, GY_ROUTE_CLUSTER, "c-v2", NULL, 0 }, /* longest prefix */
        { NULL, "h", "/api/v2/", NULL, GY_ROUTE_CLUSTER, "c-v2", NULL, 0 },
        { NULL, "h", "/api/v2", NULL, GY_ROUTE_CLUSTER, "c-api", NULL, 0 },
        { NULL, "h", "/api/", NULL, GY_ROUTE_CLUSTER, "c-exact", NULL, 0 }, /* exact before prefix */
        { NULL, "h", "/api/x?y=1", NULL, GY_ROUTE_CLUSTER, "c-api", NULL, 0 },
        { NULL, "h", "/api", NULL, GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "h", "/API/", NULL, GY_ROUTE_CLUSTER, "c-default", NULL, 0 }, /* paths are case-sensitive */
        /* d-any has no regex route; staging.x (d-pre) has one */
        { NULL, "h", "/items/42", NULL, GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "staging.x", "/items/42", NULL, GY_ROUTE_CLUSTER, "c-items", NULL, 0 },
        { NULL, "staging.x", "/items/42/more", NULL, GY_ROUTE_NOT_FOUND, NULL, NULL, 0 }, /* anchored */
        { NULL, "staging.x", "/x/items/42", NULL, GY_ROUTE_NOT_FOUND, NULL, NULL, 0 },
        { NULL, "staging.x", "/items/abc", NULL, GY_ROUTE_NOT_FOUND, NULL, NULL, 0 },
        { NULL, "h", "/methods/x", NULL, GY_ROUTE_CLUSTER, "c-default", NULL, 0 }, /* exact only */
        { NULL, "h", "", NULL, GY_ROUTE_NOT_FOUND, NULL, NULL, 0 },
    };
    RUN(state, "l", cases, false);
}

static void test_methods(void **state)
{
    static const struct rcase cases[] = {
        { "POST", "h", "/methods", NULL, GY_ROUTE_CLUSTER, "c-write", NULL, 0 },
        { "PUT", "h", "/methods", NULL, GY_ROUTE_CLUSTER, "c-write", NULL, 0 },
        { "GET", "h", "/methods", NULL, GY_ROUTE_CLUSTER, "c-read", NULL, 0 },
        { "PURGE", "h", "/methods", NULL, GY_ROUTE_CLUSTER, "c-purge", NULL, 0 },
        /* no rule of the route matches: the next route ("/") gets the request */
        { "DELETE", "h", "/methods", NULL, GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { "get", "h", "/methods", NULL, GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
    };
    RUN(state, "l", cases, false);
    assert_int_equal(gy_method_bit(GY_SLICE_LIT("GET")), GY_METHOD_GET);
    assert_int_equal(gy_method_bit(GY_SLICE_LIT("PATCH")), GY_METHOD_PATCH);
    assert_int_equal(gy_method_bit(GY_SLICE_LIT("OPTIONS")), GY_METHOD_OPTIONS);
    assert_int_equal(gy_method_bit(GY_SLICE_LIT("GETX")), 0);
    assert_int_equal(gy_method_bit(GY_SLICE_NULL), 0);
}

static void test_matches(void **state)
{
    static const struct rcase cases[] = {
        { NULL, "h", "/match/", "x-env: prod", GY_ROUTE_CLUSTER, "c-m0", NULL, 0 },
        { NULL, "h", "/match/", "X-Env: prod", GY_ROUTE_CLUSTER, "c-m0", NULL, 0 }, /* header names: any case */
        { NULL, "h", "/match/", "x-env: production", GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "h", "/match/", "x-pre: abc", GY_ROUTE_CLUSTER, "c-m1", NULL, 0 },
        { NULL, "h", "/match/", "x-pre: xab", GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "h", "/match/", "x-suf: xyz", GY_ROUTE_CLUSTER, "c-m2", NULL, 0 },
        { NULL, "h", "/match/", "x-suf: yzx", GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "h", "/match/", "x-re: v12", GY_ROUTE_CLUSTER, "c-m3", NULL, 0 },
        { NULL, "h", "/match/", "x-re: v12x", GY_ROUTE_CLUSTER, "c-default", NULL, 0 }, /* whole value */
        { NULL, "h", "/match/", "x-range: 10", GY_ROUTE_CLUSTER, "c-m4", NULL, 0 },
        { NULL, "h", "/match/", "x-range: 19", GY_ROUTE_CLUSTER, "c-m4", NULL, 0 },
        { NULL, "h", "/match/", "x-range: 20", GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "h", "/match/", "x-range: 9", GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "h", "/match/", "x-range: 1x", GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "h", "/match/", "cookie: a=1; session=abc", GY_ROUTE_CLUSTER, "c-m5", NULL, 0 },
        { NULL, "h", "/match/", "cookie: session=abcd", GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "h", "/match/", "cookie: flavor=chocolate", GY_ROUTE_CLUSTER, "c-m6", NULL, 0 },
        { NULL, "h", "/match/", "cookie: tag=v2-beta", GY_ROUTE_CLUSTER, "c-m7", NULL, 0 },
        { NULL, "h", "/match/", "cookie: user=u123", GY_ROUTE_CLUSTER, "c-m8", NULL, 0 },
        { NULL, "h", "/match/", "cookie: user=u12", GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "h", "/match/?q=1", NULL, GY_ROUTE_CLUSTER, "c-m9", NULL, 0 },
        { NULL, "h", "/match/?a=b&q=1", NULL, GY_ROUTE_CLUSTER, "c-m9", NULL, 0 },
        { NULL, "h", "/match/?q=10", NULL, GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "h", "/match/?lang=en-GB", NULL, GY_ROUTE_CLUSTER, "c-m10", NULL, 0 },
        { NULL, "h", "/match/?file=a.json", NULL, GY_ROUTE_CLUSTER, "c-m11", NULL, 0 },
        { NULL, "h", "/match/?id=beef", NULL, GY_ROUTE_CLUSTER, "c-m12", NULL, 0 },
        { NULL, "h", "/match/?id=beefy", NULL, GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "h", "/match/?page=-3", NULL, GY_ROUTE_CLUSTER, "c-m13", NULL, 0 },
        { NULL, "h", "/match/?page=2", NULL, GY_ROUTE_CLUSTER, "c-m13", NULL, 0 },
        { NULL, "h", "/match/?page=3", NULL, GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "h", "/match/", "x-present: anything", GY_ROUTE_CLUSTER, "c-m14", NULL, 0 },
        { NULL, "h", "/match/?b=2", "x-a: 1", GY_ROUTE_CLUSTER, "c-m15", NULL, 0 }, /* all matches */
        { NULL, "h", "/match/?b=2", "x-a: 2", GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "h", "/match/", "x-a: 1", GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "h", "/match/", "x-redos: aaaaaaaa", GY_ROUTE_CLUSTER, "c-m16", NULL, 0 },
        /* catastrophic backtracking: the match limit ends it, as no match */
        { NULL, "h", "/match/", "x-redos: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", GY_ROUTE_CLUSTER,
          "c-default", NULL, 0 },
        /* the first rule that matches wins */
        { NULL, "h", "/match/?q=1", "x-pre: ab\nx-env: prod", GY_ROUTE_CLUSTER, "c-m0", NULL, 0 },
    };
    RUN(state, "l", cases, false);
}

static void test_weighted_split(void **state)
{
    const struct gy_listener *l = L(state, "l");
    struct req q;
    struct gy_route_result res;
    char buf[8192];
    uint64_t rng = 42;
    int a = 0, b = 0;
    const int n = 10000;

    mkreq(&q, "GET", "h", "/split", NULL);
    for (int i = 0; i < n; i++) {
        q.r.random = gy_lb_rand(&rng);
        assert_int_equal(gy_router_route(l, &q.r, &res, buf, sizeof(buf)), 0);
        assert_int_equal(res.action, GY_ROUTE_CLUSTER);
        assert_string_not_equal(res.cluster->key, "c-zero"); /* weight 0: never */
        if (strcmp(res.cluster->key, "c-a") == 0)
            a++;
        else
            b++;
    }
    assert_in_range(a, n / 4 - n / 50, n / 4 + n / 50); /* 1:3 within 2 points */
    assert_int_equal(a + b, n);
    /* extremes of the random value */
    q.r.random = 0;
    assert_int_equal(gy_router_route(l, &q.r, &res, buf, sizeof(buf)), 0);
    assert_string_equal(res.cluster->key, "c-a");
    q.r.random = UINT64_MAX;
    assert_int_equal(gy_router_route(l, &q.r, &res, buf, sizeof(buf)), 0);
    assert_string_equal(res.cluster->key, "c-b");
}

static void test_prefix_rewrite(void **state)
{
    static const struct rcase cases[] = {
        { NULL, "h", "/services/echo/x", NULL, GY_ROUTE_CLUSTER, "c-echo", "/x", 0 },
        { NULL, "h", "/services/echo/x/y?a=1", NULL, GY_ROUTE_CLUSTER, "c-echo", "/x/y", 0 },
        { NULL, "h", "/services/echo/", NULL, GY_ROUTE_CLUSTER, "c-echo", "/", 0 },
        { NULL, "h", "/services/echo", NULL, GY_ROUTE_CLUSTER, "c-echo", "/services/echo/", 0 },
        { NULL, "h", "/services/echox", NULL, GY_ROUTE_CLUSTER, "c-echo", "/services/echo/x", 0 },
        { NULL, "h", "/exact-rw", NULL, GY_ROUTE_CLUSTER, "c-echo", "/exact-rw", 0 }, /* prefix routes only */
        { NULL, "h", "/api/x", NULL, GY_ROUTE_CLUSTER, "c-api", "/api/x", 0 },
    };
    RUN(state, "l", cases, false);

    /* A buffer too small for the rewritten path. */
    struct req q;
    struct gy_route_result res;
    char tiny[4];
    mkreq(&q, "GET", "h", "/services/echo/xyzzy", NULL);
    assert_int_equal(gy_router_route(L(state, "l"), &q.r, &res, tiny, sizeof(tiny)), GY_ETOOBIG);
}

static void test_redirects(void **state)
{
    static const struct rcase plain[] = {
        { NULL, "old.example.com", "/docs/intro", NULL, GY_ROUTE_REDIRECT, "https://docs.example.com/intro", NULL,
          301 },
        { NULL, "old.example.com:8080", "/docs/a?b=1", NULL, GY_ROUTE_REDIRECT, "https://docs.example.com/a?b=1", NULL,
          301 },
        { NULL, "old.example.com", "/other", NULL, GY_ROUTE_CLUSTER, "c-redir", NULL, 0 },
        { NULL, "h", "/old/a/b?x=1", NULL, GY_ROUTE_REDIRECT, "/new/a/b?x=1", NULL, 302 },
        { NULL, "h", "/old/z", NULL, GY_ROUTE_REDIRECT, "/new/z", NULL, 302 },
        { NULL, "h", "/keep/z", NULL, GY_ROUTE_CLUSTER, "c-keep", NULL, 0 }, /* redirect did not match */
        { NULL, "secure.example.com:8080", "/p?q=1", NULL, GY_ROUTE_REDIRECT, "https://secure.example.com/p?q=1",
          NULL, 301 },
        { NULL, "secure.example.com", "/", NULL, GY_ROUTE_REDIRECT, "https://secure.example.com/", NULL, 301 },
    };
    static const struct rcase over_tls[] = {
        { NULL, "secure.example.com", "/p", NULL, GY_ROUTE_CLUSTER, "c-secure", NULL, 0 },
    };
    RUN(state, "l", plain, false);
    RUN(state, "l", over_tls, true);

    /* Path and query in separate buffers: the subject is assembled in buf. */
    const struct gy_listener *l = L(state, "l");
    struct req q;
    struct gy_route_result res;
    char buf[256], path[] = "/docs/guide", query[] = "lang=fr";
    mkreq(&q, "GET", "old.example.com", "/", NULL);
    q.r.path = gy_slice_cstr(path);
    q.r.query = gy_slice_cstr(query);
    assert_int_equal(gy_router_route(l, &q.r, &res, buf, sizeof(buf)), 0);
    assert_int_equal(res.action, GY_ROUTE_REDIRECT);
    assert_true(gy_slice_eq(res.location, GY_SLICE_LIT("https://docs.example.com/guide?lang=fr")));
    assert_int_equal(gy_router_route(l, &q.r, &res, buf, 20), GY_ETOOBIG);
}

static void test_direct_and_not_found(void **state)
{
    static const struct rcase cases[] = {
        { NULL, "h", "/direct", NULL, GY_ROUTE_DIRECT, "r-direct", NULL, 0 },
        { NULL, "h", "/direct/x", NULL, GY_ROUTE_CLUSTER, "c-default", NULL, 0 },
        { NULL, "staging.x", "/missing", NULL, GY_ROUTE_NOT_FOUND, NULL, NULL, 0 },
    };
    RUN(state, "l", cases, false);

    struct req q;
    struct gy_route_result res;
    char buf[64];
    mkreq(&q, "GET", "h", "/direct", NULL);
    assert_int_equal(gy_router_route(L(state, "l"), &q.r, &res, buf, sizeof(buf)), 0);
    assert_int_equal(res.route->direct_response->status, 503);
    assert_int_equal(res.route->direct_response->body_len, 4);
    mkreq(&q, "GET", "nope.example.net", "/", NULL);
    assert_int_equal(gy_router_route(L(state, "l2"), &q.r, &res, buf, sizeof(buf)), 0);
    assert_int_equal(res.action, GY_ROUTE_NOT_FOUND);
    assert_null(res.vhost);
    assert_null(res.route);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hosts),          cmocka_unit_test(test_paths),
        cmocka_unit_test(test_methods),        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_weighted_split), cmocka_unit_test(test_prefix_rewrite),
        cmocka_unit_test(test_redirects),      cmocka_unit_test(test_direct_and_not_found),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
