/* Filters gyrus.rbac, gm.inheaders, gm.impersonation and gm.listauth: configs (good, and bad with
 * their one-line errors), the decision each takes for requests from various peers, and the
 * header edits they leave for the request sent upstream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/pool.h"
#include "filter_fixtures.h"
#include "filters/rbac.h"
#include "mesh/config.h"
#include "proxy/filter.h"
#include "tls/tls.h"

extern const struct gy_filter_ops gy_filter_rbac, gy_filter_inheaders, gy_filter_impersonation, gy_filter_listauth;

#define MAXH 8

struct req {
    struct gy_header h[MAXH];
    struct gy_filter_edits edits;
    struct gy_pool pool;
    char first[2048];
    struct gy_tls_peer peer;
    struct gy_filter_call c;
};

/* A request from peer_ip with headers "name", "value", ... (NULL-terminated); no TLS peer. */
static struct gy_filter_call *req(struct req *r, const char *peer_ip, ...)
{
    va_list ap;
    const char *name;
    size_t n = 0;

    memset(r, 0, sizeof(*r));
    va_start(ap, peer_ip);
    while ((name = va_arg(ap, const char *)) != NULL && n < MAXH) {
        const char *value = va_arg(ap, const char *);
        r->h[n].name = gy_slice_cstr(name);
        r->h[n++].value = gy_slice_cstr(value);
    }
    va_end(ap);
    gy_pool_init(&r->pool, r->first, sizeof(r->first), 1 << 16);
    r->edits.pool = &r->pool;
    r->c.edits = &r->edits;
    r->c.method = GY_SLICE_LIT("GET");
    r->c.path = GY_SLICE_LIT("/");
    r->c.headers = r->h;
    r->c.nheaders = n;
    r->c.peer_ip = peer_ip;
    r->c.request_id = GY_SLICE_LIT("req-1");
    r->c.reply_grpc_status = -1;
    return &r->c;
}

/* The client's certificate as TLS verified it (or not). */
static void with_peer(struct req *r, bool verified, const char *subject, const char *spiffe_id)
{
    r->peer.verified = verified;
    r->peer.subject = subject;
    r->peer.spiffe_id = spiffe_id;
    r->c.peer = &r->peer;
}

static void done(struct req *r)
{
    gy_pool_dispose(&r->pool);
}

/* The header value the request carries upstream: a filter's value, the client's unless
 * dropped, or NULL. */
static const char *upstream_header(struct req *r, const char *name)
{
    static char buf[256];
    struct gy_slice v = gy_filter_header_get(&r->c, name);

    if (v.ptr == NULL)
        return NULL;
    snprintf(buf, sizeof(buf), "%.*s", (int)v.len, v.ptr);
    return buf;
}

static void assert_denied(struct gy_filter_call *c, int status, const char *body)
{
    assert_int_equal(c->reply_status, status);
    assert_string_equal(c->reply_body, body);
}

/* ---- gyrus.rbac: configs ---- */

static void test_rbac_config_good(void **state)
{
    static const char *const good[] = {
        NULL,
        "{}",
        "{'rules':{'action':'ALLOW','policies':{}}}",
        "{'rules':{'policies':{'p':{'permissions':[{'any':true}],'principals':[{'any':true}]}}}}",
        "{'rules':{'action':'DENY','policies':{'p':{'permissions':[{'url_path':{'path':{'prefix':'/admin'}}}],"
        "  'principals':[{'source_ip':{'address_prefix':'10.0.0.0','prefix_len':8}}]}}},'stat_prefix':'edge'}",
        "{'shadow_rules':{'policies':{'p':{'permissions':[{'header':{'name':':method','exact_match':'GET'}}],"
        "  'principals':[{'authenticated':{'principal_name':{'safe_regex':{'regex':'spiffe://td/.+'}}}}]}}}}",
        "{'rules':{'policies':{'p':{'permissions':[{'and_rules':{'rules':[{'method':'GET'},"
        "  {'not_rule':{'destination_port':9090}}]}},{'or_rules':{'rules':[{'route':'r1'}]}}],"
        "  'principals':[{'or_ids':{'ids':[{'authenticated':{}},{'remote_ip':{'address_prefix':'::1'}}]}},"
        "  {'not_id':{'header':{'name':'x-bot','present_match':true}}}]}}}}",
        "{'rules':{'policies':{'p':{'permissions':[{'header':{'name':'x','string_match':{'contains':'a',"
        "  'ignore_case':true}}}],'principals':[{'direct_remote_ip':{'address_prefix':'fd00::','prefix_len':8}}]}}}}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        gy_filter_rbac.destroy(compile_ok(&gy_filter_rbac, good[i]));
}

static void test_rbac_config_bad(void **state)
{
    static const char *const bad[][2] = {
        { "5", "want {rules, shadow_rules, stat_prefix}" },
        { "{'rulez':{}}", "unknown field \"rulez\"" },
        { "{'rules':[]}", "rules: want an object {action, policies}" },
        { "{'rules':{'action':'LOG'}}", "rules.action: want ALLOW or DENY, got \"LOG\"" },
        { "{'rules':{'policy':{}}}", "rules: unknown field \"policy\"" },
        { "{'rules':{'policies':[]}}", "rules.policies: want an object of named policies" },
        { "{'rules':{'policies':{'p':{'permissions':[{'any':true}]}}}}",
          "rules.policies.p.principals: want a non-empty list" },
        { "{'rules':{'policies':{'p':{'permissions':[],'principals':[{'any':true}]}}}}",
          "rules.policies.p.permissions: want a non-empty list" },
        { "{'rules':{'policies':{'p':{'permissions':[{'any':true}],'principals':[{'any':true}],'condition':{}}}}}",
          "rules.policies.p: unknown field \"condition\"" },
        { "{'rules':{'policies':{'p':{'permissions':[{'any':true,'method':'GET'}],'principals':[{'any':true}]}}}}",
          "rules.policies.p.permissions[0]: want an object with exactly one key (any, header, url_path, method...)" },
        { "{'rules':{'policies':{'p':{'permissions':[{'source_ip':{}}],'principals':[{'any':true}]}}}}",
          "rules.policies.p.permissions[0].source_ip: unknown permission" },
        { "{'rules':{'policies':{'p':{'permissions':[{'any':true}],'principals':[{'method':'GET'}]}}}}",
          "rules.policies.p.principals[0].method: unknown principal" },
        { "{'rules':{'policies':{'p':{'permissions':[{'header':{'name':'x'}}],'principals':[{'any':true}]}}}}",
          "rules.policies.p.permissions[0].header: want exactly one of exact_match, prefix_match, "
          "suffix_match, contains_match, safe_regex_match, present_match, string_match" },
        { "{'rules':{'policies':{'p':{'permissions':[{'header':{'name':'x','exact_match':'a','prefix_match':'b'}}],"
          "'principals':[{'any':true}]}}}}",
          "rules.policies.p.permissions[0].header: want exactly one of exact_match, prefix_match, "
          "suffix_match, contains_match, safe_regex_match, present_match, string_match" },
        { "{'rules':{'policies':{'p':{'permissions':[{'header':{'name':'x','exact':'a'}}],"
          "'principals':[{'any':true}]}}}}",
          "rules.policies.p.permissions[0].header: unknown field \"exact\"" },
        { "{'rules':{'policies':{'p':{'permissions':[{'header':{'name':'x','exact_match':5}}],"
          "'principals':[{'any':true}]}}}}",
          "rules.policies.p.permissions[0].header.exact_match: want a string" },
        { "{'rules':{'policies':{'p':{'permissions':[{'url_path':{'path':{'prefix':'/','exact':'/'}}}],"
          "'principals':[{'any':true}]}}}}",
          "rules.policies.p.permissions[0].url_path.path: want exactly one of exact, prefix, suffix, contains, "
          "safe_regex" },
        { "{'rules':{'policies':{'p':{'permissions':[{'url_path':{'path':{'safe_regex':{'regex':'(('}}}}],"
          "'principals':[{'any':true}]}}}}",
          "rules.policies.p.permissions[0].url_path.path.safe_regex.regex: bad regex \"((\"" },
        { "{'rules':{'policies':{'p':{'permissions':[{'any':true}],"
          "'principals':[{'source_ip':{'address_prefix':'10.0.0.300'}}]}}}}",
          "rules.policies.p.principals[0].source_ip.address_prefix: not an IP address: \"10.0.0.300\"" },
        { "{'rules':{'policies':{'p':{'permissions':[{'any':true}],"
          "'principals':[{'source_ip':{'address_prefix':'10.0.0.0','prefix_len':33}}]}}}}",
          "rules.policies.p.principals[0].source_ip.prefix_len: want 0..32" },
        { "{'rules':{'policies':{'p':{'permissions':[{'and_rules':{'rules':[]}}],'principals':[{'any':true}]}}}}",
          "rules.policies.p.permissions[0].and_rules.rules: want a non-empty list" },
        { "{'rules':{'policies':{'p':{'permissions':[{'any':true}],'principals':[{'and_ids':{'ids':[{'nope':1}]}}]}}}}",
          "rules.policies.p.principals[0].and_ids.ids[0].nope: unknown principal" },
        { "{'shadow_rules':{'action':'deny','policies':{'p':{'permissions':[{'method':7}],'principals':[{'any':true}]}}}}",
          "shadow_rules.policies.p.permissions[0].method: want a string" },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(&gy_filter_rbac, bad[i][0], bad[i][1]);
}

/* ---- gyrus.rbac: decisions ---- */

static void test_rbac_allow_by_spiffe_id(void **state)
{
    struct req r;
    struct gy_filter_call *c;
    void *f = compile_ok(&gy_filter_rbac,
                         "{'rules':{'action':'ALLOW','policies':{'api-readers':{"
                         "'permissions':[{'and_rules':{'rules':[{'url_path':{'path':{'prefix':'/api/'}}},"
                         "  {'header':{'name':':method','exact_match':'GET'}}]}}],"
                         "'principals':[{'authenticated':{'principal_name':{'exact':'spiffe://mesh.local/ns/a'}}}]}}}}");
    (void)state;

    c = req(&r, "127.0.0.1", NULL);
    c->path = GY_SLICE_LIT("/api/items");
    with_peer(&r, true, "CN=a", "spiffe://mesh.local/ns/a");
    assert_int_equal(gy_filter_rbac.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    assert_int_equal(c->reply_status, 0);
    done(&r);

    /* the wrong service, the wrong method, the wrong path, no certificate, an unverified one */
    c = req(&r, "127.0.0.1", NULL);
    c->path = GY_SLICE_LIT("/api/items");
    with_peer(&r, true, "CN=b", "spiffe://mesh.local/ns/b");
    assert_int_equal(gy_filter_rbac.on_request(c, f, NULL), GY_FILTER_STOP);
    assert_denied(c, 403, "RBAC: access denied");
    done(&r);
    c = req(&r, "127.0.0.1", NULL);
    c->path = GY_SLICE_LIT("/api/items");
    c->method = GY_SLICE_LIT("DELETE");
    with_peer(&r, true, "CN=a", "spiffe://mesh.local/ns/a");
    assert_int_equal(gy_filter_rbac.on_request(c, f, NULL), GY_FILTER_STOP);
    done(&r);
    c = req(&r, "127.0.0.1", NULL);
    c->path = GY_SLICE_LIT("/apiary");
    with_peer(&r, true, "CN=a", "spiffe://mesh.local/ns/a");
    assert_int_equal(gy_filter_rbac.on_request(c, f, NULL), GY_FILTER_STOP);
    done(&r);
    c = req(&r, "127.0.0.1", "x-forwarded-client-cert", "URI=spiffe://mesh.local/ns/a", NULL);
    c->path = GY_SLICE_LIT("/api/items");
    assert_int_equal(gy_filter_rbac.on_request(c, f, NULL), GY_FILTER_STOP);
    done(&r);
    c = req(&r, "127.0.0.1", NULL);
    c->path = GY_SLICE_LIT("/api/items");
    with_peer(&r, false, "CN=a", "spiffe://mesh.local/ns/a");
    assert_int_equal(gy_filter_rbac.on_request(c, f, NULL), GY_FILTER_STOP);
    done(&r);

    /* gRPC callers get PERMISSION_DENIED */
    c = req(&r, "127.0.0.1", NULL);
    c->grpc = true;
    assert_int_equal(gy_filter_rbac.on_request(c, f, NULL), GY_FILTER_STOP);
    assert_int_equal(c->reply_grpc_status, 7);
    done(&r);
    gy_filter_rbac.destroy(f);
}

static void test_rbac_deny_by_address(void **state)
{
    struct req r;
    struct gy_filter_call *c;
    void *f = compile_ok(&gy_filter_rbac,
                         "{'rules':{'action':'DENY','policies':{'no-outsiders':{'permissions':[{'any':true}],"
                         "'principals':[{'source_ip':{'address_prefix':'10.0.0.0','prefix_len':8}},"
                         "  {'source_ip':{'address_prefix':'192.168.1.128','prefix_len':25}},"
                         "  {'remote_ip':{'address_prefix':'fd00::','prefix_len':8}}]}}}}");
    static const struct {
        const char *ip;
        bool denied;
    } cases[] = {
        { "10.1.2.3", true },       { "11.0.0.1", false },      { "192.168.1.200", true },
        { "192.168.1.127", false }, { "fd12::1", true },        { "fe00::1", false },
        { "127.0.0.1", false },     { "::ffff:10.0.0.1", false }, /* v4-mapped: a different family */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        c = req(&r, cases[i].ip, NULL);
        enum gy_filter_result res = gy_filter_rbac.on_request(c, f, NULL);
        if (res != (cases[i].denied ? GY_FILTER_STOP : GY_FILTER_CONTINUE))
            fail_msg("%s: expected %s", cases[i].ip, cases[i].denied ? "denied" : "allowed");
        done(&r);
    }
    gy_filter_rbac.destroy(f);
}

static void test_rbac_headers_and_combinators(void **state)
{
    struct req r;
    struct gy_filter_call *c;
    void *f = compile_ok(&gy_filter_rbac,
                         "{'rules':{'policies':{'p':{'permissions':[{'not_rule':{'header':{'name':'X-Debug',"
                         "  'present_match':true}}}],"
                         "'principals':[{'or_ids':{'ids':[{'header':{'name':'x-team','safe_regex_match':"
                         "  {'regex':'(blue|green)'}}},{'header':{'name':'x-team','string_match':{'prefix':'ops-',"
                         "  'ignore_case':true}}}]}}]}}}}");
    static const struct {
        const char *team, *debug;
        bool allowed;
    } cases[] = {
        { "blue", NULL, true },      { "green", NULL, true },     { "bluegreen", NULL, false },
        { "OPS-night", NULL, true }, { "red", NULL, false },      { NULL, NULL, false },
        { "blue", "1", false },      { "xblue", NULL, false },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *h[6] = { NULL };
        size_t n = 0;
        if (cases[i].team) {
            h[n++] = "X-Team";
            h[n++] = cases[i].team;
        }
        if (cases[i].debug) {
            h[n++] = "x-debug";
            h[n++] = cases[i].debug;
        }
        c = req(&r, "127.0.0.1", h[0], h[1], h[2], h[3], NULL);
        enum gy_filter_result res = gy_filter_rbac.on_request(c, f, NULL);
        if (res != (cases[i].allowed ? GY_FILTER_CONTINUE : GY_FILTER_STOP))
            fail_msg("team=%s debug=%s: expected %s", cases[i].team ? cases[i].team : "(none)",
                     cases[i].debug ? cases[i].debug : "(none)", cases[i].allowed ? "allowed" : "denied");
        done(&r);
    }
    /* a header an earlier filter removed is not seen; one it set is */
    c = req(&r, "127.0.0.1", "x-team", "blue", NULL);
    assert_int_equal(gy_filter_header_remove(c, "x-team"), 0);
    assert_int_equal(gy_filter_rbac.on_request(c, f, NULL), GY_FILTER_STOP);
    done(&r);
    c = req(&r, "127.0.0.1", "x-team", "red", NULL);
    assert_int_equal(gy_filter_header_set(c, "x-team", GY_SLICE_LIT("green")), 0);
    assert_int_equal(gy_filter_rbac.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    done(&r);
    gy_filter_rbac.destroy(f);
}

static void test_rbac_route_and_port(void **state)
{
    struct req r;
    struct gy_filter_call *c;
    struct gy_route route = { .key = "route-admin" };
    struct gy_listener l9090 = { .name = "l", .port = 9090 }, l8080 = { .name = "l", .port = 8080 };
    void *f = compile_ok(&gy_filter_rbac,
                         "{'rules':{'action':'DENY','policies':{'p':{'permissions':[{'and_rules':{'rules':["
                         "{'route':'route-admin'},{'destination_port':9090}]}}],'principals':[{'any':true}]}}}}");
    (void)state;
    c = req(&r, "127.0.0.1", NULL);
    c->route = &route;
    c->listener = &l9090;
    assert_int_equal(gy_filter_rbac.on_request(c, f, NULL), GY_FILTER_STOP);
    done(&r);
    c = req(&r, "127.0.0.1", NULL);
    c->route = &route;
    c->listener = &l8080;
    assert_int_equal(gy_filter_rbac.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    done(&r);
    c = req(&r, "127.0.0.1", NULL);
    c->listener = &l9090; /* no route */
    assert_int_equal(gy_filter_rbac.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    done(&r);
    gy_filter_rbac.destroy(f);
}

static unsigned long long metric(const char *text, const char *prefix, const char *outcome)
{
    char key[200];
    const char *p;

    snprintf(key, sizeof(key), "gyrus_rbac_requests_total{stat_prefix=\"%s\",outcome=\"%s\"} ", prefix, outcome);
    if ((p = strstr(text, key)) == NULL)
        fail_msg("no %s in:\n%s", key, text);
    return strtoull(p + strlen(key), NULL, 10);
}

static void test_rbac_shadow_and_metrics(void **state)
{
    struct req r;
    struct gy_filter_call *c;
    /* shadow: would allow only /public; enforced: nothing (no rules) */
    void *f = compile_ok(&gy_filter_rbac,
                         "{'stat_prefix':'t-shadow','shadow_rules':{'policies':{'p':{'permissions':[{'url_path':"
                         "{'path':{'prefix':'/public'}}}],'principals':[{'any':true}]}}}}");
    void *g = compile_ok(&gy_filter_rbac, "{'stat_prefix':'t-enforced','rules':{'policies':{'p':{'permissions':"
                                          "[{'method':'GET'}],'principals':[{'any':true}]}}}}");
    char *text = NULL;
    size_t len = 0;
    FILE *m;
    (void)state;

    for (int i = 0; i < 5; i++) {
        c = req(&r, "127.0.0.1", NULL);
        c->path = i < 2 ? GY_SLICE_LIT("/public/x") : GY_SLICE_LIT("/private");
        assert_int_equal(gy_filter_rbac.on_request(c, f, NULL), GY_FILTER_CONTINUE); /* never enforced */
        done(&r);
    }
    for (int i = 0; i < 3; i++) {
        c = req(&r, "127.0.0.1", NULL);
        c->method = i == 0 ? GY_SLICE_LIT("POST") : GY_SLICE_LIT("GET");
        gy_filter_rbac.on_request(c, g, NULL);
        done(&r);
    }
    /* a per-route config replaces the listener's */
    c = req(&r, "127.0.0.1", NULL);
    c->method = GY_SLICE_LIT("POST");
    assert_int_equal(gy_filter_rbac.on_request(c, g, f), GY_FILTER_CONTINUE);
    done(&r);

    assert_non_null(m = open_memstream(&text, &len));
    gy_rbac_metrics(m);
    fclose(m);
    assert_int_equal(metric(text, "t-shadow", "shadow_allowed"), 2);
    assert_int_equal(metric(text, "t-shadow", "shadow_denied"), 4);
    assert_int_equal(metric(text, "t-shadow", "allowed"), 0);
    assert_int_equal(metric(text, "t-enforced", "allowed"), 2);
    assert_int_equal(metric(text, "t-enforced", "denied"), 1);
    free(text);
    gy_filter_rbac.destroy(f);
    gy_filter_rbac.destroy(g);
}

/* ---- gm.inheaders ---- */

static void test_inheaders_from_certificate(void **state)
{
    struct req r;
    struct gy_filter_call *c;
    void *f = compile_ok(&gy_filter_inheaders, "{'debug':false}");
    (void)state;

    /* the certificate's DN replaces whatever the client claimed */
    c = req(&r, "127.0.0.9", "SSL_CLIENT_S_DN", "CN=root", "external_sys_dn", "CN=root", "X-Real-IP", "1.2.3.4",
            NULL);
    with_peer(&r, true, "CN=alice,O=Example", NULL);
    assert_int_equal(gy_filter_inheaders.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    assert_string_equal(upstream_header(&r, "user_dn"), "CN=alice,O=Example");
    assert_string_equal(upstream_header(&r, "ssl_client_s_dn"), "CN=alice,O=Example");
    assert_null(upstream_header(&r, "external_sys_dn"));
    assert_string_equal(upstream_header(&r, "x-real-ip"), "127.0.0.9");
    assert_true(gy_filter_edits_drop(c->edits, GY_SLICE_LIT("SSL_CLIENT_S_DN")));
    assert_true(gy_filter_edits_drop(c->edits, GY_SLICE_LIT("External_Sys_Dn")));
    assert_true(gy_filter_edits_drop(c->edits, GY_SLICE_LIT("x-real-ip")));
    assert_false(gy_filter_edits_drop(c->edits, GY_SLICE_LIT("accept")));
    done(&r);

    /* a server acting for a user: USER_DN kept, the server's DN in EXTERNAL_SYS_DN */
    c = req(&r, "127.0.0.9", "user_dn", "CN=bob", NULL);
    with_peer(&r, true, "CN=edge", "spiffe://mesh.local/edge");
    assert_int_equal(gy_filter_inheaders.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    assert_string_equal(upstream_header(&r, "user_dn"), "CN=bob");
    assert_string_equal(upstream_header(&r, "external_sys_dn"), "CN=edge");
    assert_string_equal(upstream_header(&r, "ssl_client_s_dn"), "CN=edge");
    assert_false(gy_filter_edits_drop(c->edits, GY_SLICE_LIT("user_dn")));
    done(&r);

    /* no certificate, or one that did not verify: no identity at all */
    for (int verified = 0; verified < 2; verified++) {
        c = req(&r, "127.0.0.9", "USER_DN", "CN=admin", "ssl_client_s_dn", "CN=admin", NULL);
        if (verified == 0)
            with_peer(&r, false, "CN=admin", NULL);
        assert_int_equal(gy_filter_inheaders.on_request(c, f, NULL), GY_FILTER_CONTINUE);
        assert_null(upstream_header(&r, "user_dn"));
        assert_null(upstream_header(&r, "ssl_client_s_dn"));
        assert_true(gy_filter_edits_drop(c->edits, GY_SLICE_LIT("user_dn")));
        done(&r);
    }

    /* a caller that cannot change headers does not let a claimed identity through */
    c = req(&r, "127.0.0.9", "user_dn", "CN=admin", NULL);
    c->edits = NULL;
    assert_int_equal(gy_filter_inheaders.on_request(c, f, NULL), GY_FILTER_STOP);
    assert_denied(c, 500, "identity headers could not be set");
    done(&r);
    gy_filter_inheaders.destroy(f);

    expect_error(&gy_filter_inheaders, "{'debug':'yes'}", "debug: must be true or false, got \"yes\"");
    expect_error(&gy_filter_inheaders, "{'verbose':true}", "unknown field \"verbose\"");
}

/* ---- gm.impersonation ---- */

static void test_impersonation(void **state)
{
    struct req r;
    struct gy_filter_call *c;
    void *f = compile_ok(&gy_filter_impersonation,
                         "{'servers':'CN=edge, O=Example|CN=batch,O=Example|spiffe://mesh.local/ns/gateway'}");
    void *cs = compile_ok(&gy_filter_impersonation, "{'servers':['CN=Edge,O=Example'],'caseSensitive':true}");
    static const struct {
        const char *user, *ext, *subject, *spiffe;
        bool allowed;
        const void *which; /* NULL: f */
    } cases[] = {
        { NULL, NULL, "CN=alice", NULL, true, NULL },                     /* nobody impersonated */
        { "cn=alice", NULL, "CN=alice", NULL, true, NULL },               /* herself */
        { "CN=bob", "CN=edge,O=Example", "CN=edge,O=Example", NULL, true, NULL },
        { "CN=bob", "cn=edge,o=example", "CN=Edge, O=Example", NULL, true, NULL }, /* case, spaces */
        { "CN=bob", "CN=edge,O=Example", "CN=mallory", NULL, false, NULL },  /* header names a server, cert not */
        { "CN=bob", "CN=mallory", "CN=edge,O=Example", NULL, false, NULL },  /* cert a server, header not */
        { "CN=bob", NULL, "CN=batch,O=Example", NULL, true, NULL },
        { "CN=bob", NULL, "CN=mallory", NULL, false, NULL },
        { "CN=bob", NULL, NULL, NULL, false, NULL },                       /* no certificate */
        { "CN=bob", "CN=x", "CN=gw", "spiffe://mesh.local/ns/gateway", true, NULL },
        { "CN=bob", NULL, "CN=gw", "spiffe://mesh.local/ns/other", false, NULL },
        { "CN=bob", "CN=Edge,O=Example", "CN=Edge,O=Example", NULL, true, (void *)1 },
        { "CN=bob", "CN=edge,O=Example", "CN=edge,O=Example", NULL, false, (void *)1 }, /* case matters */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *h[4] = { NULL };
        size_t n = 0;
        if (cases[i].user) {
            h[n++] = "USER_DN";
            h[n++] = cases[i].user;
        }
        if (cases[i].ext) {
            h[n++] = "EXTERNAL_SYS_DN";
            h[n++] = cases[i].ext;
        }
        c = req(&r, "127.0.0.1", h[0], h[1], h[2], h[3], NULL);
        if (cases[i].subject != NULL)
            with_peer(&r, true, cases[i].subject, cases[i].spiffe);
        enum gy_filter_result res = gy_filter_impersonation.on_request(c, cases[i].which ? cs : f, NULL);
        if (res != (cases[i].allowed ? GY_FILTER_CONTINUE : GY_FILTER_STOP))
            fail_msg("case %zu (user %s by %s): expected %s", i, cases[i].user ? cases[i].user : "-",
                     cases[i].subject ? cases[i].subject : "-", cases[i].allowed ? "allowed" : "refused");
        if (!cases[i].allowed)
            assert_denied(c, 403, "impersonation not allowed");
        done(&r);
    }
    /* a client's SSL_CLIENT_S_DN header proves nothing */
    c = req(&r, "127.0.0.1", "user_dn", "CN=bob", "external_sys_dn", "CN=edge,O=Example", "ssl_client_s_dn",
            "CN=edge,O=Example", NULL);
    assert_int_equal(gy_filter_impersonation.on_request(c, f, NULL), GY_FILTER_STOP);
    done(&r);
    gy_filter_impersonation.destroy(f);
    gy_filter_impersonation.destroy(cs);

    expect_error(&gy_filter_impersonation, NULL, "needs a config: servers is required");
    expect_error(&gy_filter_impersonation, "{'servers':5}", "servers: want \"dn1|dn2\" or a list of names");
    expect_error(&gy_filter_impersonation, "{'servers':[5]}", "servers: want strings, at most 256");
}

/* ---- gm.listauth ---- */

static bool listauth_allows(void *f, void *route_f, const char *user)
{
    struct req r;
    struct gy_filter_call *c = user ? req(&r, "127.0.0.1", "user_dn", user, NULL) : req(&r, "127.0.0.1", NULL);
    enum gy_filter_result res = gy_filter_listauth.on_request(c, f, route_f);

    if (res == GY_FILTER_STOP)
        assert_denied(c, 403, "access denied");
    done(&r);
    return res == GY_FILTER_CONTINUE;
}

static void test_listauth(void **state)
{
    void *open = compile_ok(&gy_filter_listauth, NULL);
    void *allow = compile_ok(&gy_filter_listauth, "{'whitelist':'CN=alice,O=Example|CN=bob,O=Example'}");
    void *deny = compile_ok(&gy_filter_listauth, "{'denylist':['CN=mallory']}");
    void *both = compile_ok(&gy_filter_listauth, "{'allowlist':'CN=alice,O=Example','blacklist':'cn=alice, o=example'}");
    (void)state;

    assert_true(listauth_allows(open, NULL, "CN=anyone"));
    assert_true(listauth_allows(open, NULL, NULL));
    assert_true(listauth_allows(allow, NULL, "CN=alice,O=Example"));
    assert_true(listauth_allows(allow, NULL, "cn=bob, o=example"));
    assert_false(listauth_allows(allow, NULL, "CN=carol,O=Example"));
    assert_false(listauth_allows(allow, NULL, NULL));
    assert_false(listauth_allows(allow, NULL, "CN=alice,O=Example,OU=x"));
    assert_true(listauth_allows(deny, NULL, "CN=alice"));
    assert_true(listauth_allows(deny, NULL, NULL));
    assert_false(listauth_allows(deny, NULL, "CN=Mallory"));
    assert_false(listauth_allows(both, NULL, "CN=alice,O=Example")); /* the deny list wins */
    /* the route's lists replace the listener's */
    assert_true(listauth_allows(allow, open, "CN=carol,O=Example"));
    assert_false(listauth_allows(open, deny, "CN=mallory"));
    gy_filter_listauth.destroy(open);
    gy_filter_listauth.destroy(allow);
    gy_filter_listauth.destroy(deny);
    gy_filter_listauth.destroy(both);

    expect_error(&gy_filter_listauth, "{'whitelist':{}}", "whitelist: want \"dn1|dn2\" or a list of names");
    expect_error(&gy_filter_listauth, "{'greylist':'x'}", "unknown field \"greylist\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rbac_config_good),
        cmocka_unit_test(test_rbac_config_bad),
        cmocka_unit_test(test_rbac_allow_by_spiffe_id),
        cmocka_unit_test(test_rbac_deny_by_address),
        cmocka_unit_test(test_rbac_headers_and_combinators),
        cmocka_unit_test(test_rbac_route_and_port),
        cmocka_unit_test(test_rbac_shadow_and_metrics),
        cmocka_unit_test(test_inheaders_from_certificate),
        cmocka_unit_test(test_impersonation),
        cmocka_unit_test(test_listauth),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    gy_rbac_shutdown();
    return rc;
}
