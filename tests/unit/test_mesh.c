/* Mesh object model: loading (YAML/JSON), validation, durations, and docs kept in sync. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "mesh/mesh.h"
#include "mesh/schema.h"

static json_t *parse_ok(const char *text, const char *name)
{
    struct gy_mesh_error err;
    json_t *out = NULL;
    int rc = gy_mesh_parse(text, strlen(text), name, &out, &err);

    if (rc != 0)
        print_error("unexpected parse error: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(out);
    return out;
}

static void expect_parse_error(const char *text, size_t len, const char *name, const char *want)
{
    struct gy_mesh_error err;
    json_t *out = NULL;
    int rc = gy_mesh_parse(text, len, name, &out, &err);

    if (rc == 0 || strstr(err.msg, want) == NULL)
        print_error("input %.60s...\n  want error containing: %s\n  got (%d): %s\n", text, want, rc, rc ? err.msg : "");
    assert_int_equal(rc, GY_ECONFIG);
    assert_null(out);
    assert_non_null(strstr(err.msg, want));
}

static void expect_err(const char *text, const char *name, const char *want)
{
    expect_parse_error(text, strlen(text), name, want);
}

static json_t *json_ok(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);

    if (v == NULL)
        print_error("bad test JSON: %s: %s\n", text, je.text);
    assert_non_null(v);
    return v;
}

/* ---- YAML and JSON ---- */

static const char mesh_yaml[] =
    "# a comment\n"
    "- kind: cluster\n"
    "  cluster_key: c1\n"
    "  instances:\n"
    "    - {host: 127.0.0.1, port: 8080, weight: 2}\n"
    "  connect_timeout: 250ms\n"
    "- kind: route\n"
    "  route_key: r1\n"
    "  domain_key: d1\n"
    "  route_match: {path: /api/, match_type: prefix}\n"
    "  rules:\n"
    "    - methods: [GET, POST]\n"
    "      constraints:\n"
    "        light:\n"
    "          - cluster_key: c1\n"
    "            weight: 1\n"
    "- kind: domain\n"
    "  domain_key: d1\n"
    "  name: '*'\n"
    "  port: 8080\n"
    "  force_https: false\n"
    "  aliases: ~\n";

static const char mesh_json[] =
    "[{\"kind\": \"cluster\", \"cluster_key\": \"c1\",\n"
    "  \"instances\": [{\"host\": \"127.0.0.1\", \"port\": 8080, \"weight\": 2}], \"connect_timeout\": \"250ms\"},\n"
    " {\"kind\": \"route\", \"route_key\": \"r1\", \"domain_key\": \"d1\",\n"
    "  \"route_match\": {\"path\": \"/api/\", \"match_type\": \"prefix\"},\n"
    "  \"rules\": [{\"methods\": [\"GET\", \"POST\"], \"constraints\": {\"light\": [{\"cluster_key\": \"c1\", \"weight\": 1}]}}]},\n"
    " {\"kind\": \"domain\", \"domain_key\": \"d1\", \"name\": \"*\", \"port\": 8080, \"force_https\": false, \"aliases\": null}]\n";

static void test_yaml_json_equal(void **state)
{
    struct gy_mesh_error err;
    json_t *y = parse_ok(mesh_yaml, "m.yaml"), *j = parse_ok(mesh_json, "m.json");

    (void)state;
    assert_true(json_equal(y, j));
    assert_int_equal(gy_mesh_validate(y, &err), 0);
    json_decref(y);
    json_decref(j);
}

static void test_kind_map(void **state)
{
    json_t *a = parse_ok("zone:\n  - zone_key: z1\ncluster:\n  - cluster_key: c1\n    zone_key: z1\nroute: ~\n", "k.yaml");
    json_t *b = json_ok("[{\"kind\":\"zone\",\"zone_key\":\"z1\"},{\"kind\":\"cluster\",\"cluster_key\":\"c1\",\"zone_key\":\"z1\"}]");
    json_t *c = parse_ok("{\"zone\": [{\"zone_key\": \"z1\"}], \"cluster\": [{\"kind\": \"cluster\", \"cluster_key\": \"c1\", "
                         "\"zone_key\": \"z1\"}]}",
                         "k.json");

    (void)state;
    assert_true(json_equal(a, b));
    assert_true(json_equal(c, b));
    json_decref(a);
    json_decref(b);
    json_decref(c);
    expect_err("zone:\n  - kind: cluster\n    zone_key: z\n", "k.yaml", "k.yaml: zone 0: kind \"cluster\" differs from its list");
    expect_err("zone: 5\n", "k.yaml", "k.yaml: zone: must be a list of objects");
}

static const struct {
    const char *yaml;
    const char *json;
} scalar_vectors[] = {
    { "42", "42" }, { "-7", "-7" }, { "+3", "3" }, { "08080", "8080" }, { "\"42\"", "\"42\"" }, { "'42'", "\"42\"" },
    { "3.5", "3.5" }, { "1e3", "1000.0" }, { ".5", "0.5" }, { "true", "true" }, { "True", "true" }, { "FALSE", "false" },
    { "null", "null" }, { "~", "null" }, { "", "null" }, { "yes", "\"yes\"" }, { "on", "\"on\"" }, { "0x10", "\"0x10\"" },
    { "1.2.3", "\"1.2.3\"" }, { "\"true\"", "\"true\"" }, { "'null'", "\"null\"" }, { "!!str 42", "\"42\"" },
    { "!!int \"5\"", "5" }, { "!!float 2", "2" }, { ".inf", "\".inf\"" }, { "5s", "\"5s\"" }, { "\"a\\tb\"", "\"a\\tb\"" },
    { "|\n    line1\n    line2", "\"line1\\nline2\\n\"" }, { ">-\n    folded\n    text", "\"folded text\"" },
    { "[1, two, 3.0, null]", "[1, \"two\", 3.0, null]" }, { "{a: 1, 'b': x}", "{\"a\": 1, \"b\": \"x\"}" },
    { "\"\\u00e9t\\u00e9\"", "\"\\u00e9t\\u00e9\"" }, { "9223372036854775807", "9223372036854775807" },
};

static void test_yaml_types(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(scalar_vectors) / sizeof(scalar_vectors[0]); i++) {
        char doc[256];
        json_t *out, *want = json_ok(scalar_vectors[i].json);
        snprintf(doc, sizeof(doc), "- kind: zone\n  v: %s\n", scalar_vectors[i].yaml);
        out = parse_ok(doc, "t.yaml");
        if (!json_equal(json_object_get(json_array_get(out, 0), "v"), want))
            print_error("vector %zu: %s\n", i, scalar_vectors[i].yaml);
        assert_true(json_equal(json_object_get(json_array_get(out, 0), "v"), want));
        json_decref(out);
        json_decref(want);
    }
    expect_err("- kind: zone\n  v: 9223372036854775808\n", "t.yaml", "t.yaml:2:6: integer out of range");
    expect_err("- kind: zone\n  v: 1e999\n", "t.yaml", "t.yaml:2:6: number out of range");
    expect_err("- kind: zone\n  v: !!int abc\n", "t.yaml", "t.yaml:2:6: unsupported tag");
    expect_err("- kind: zone\n  v: !custom x\n", "t.yaml", "t.yaml:2:6: unsupported tag");
    expect_err("- kind: zone\n  v: \"a\\0b\"\n", "t.yaml", "NUL character");
}

static void test_anchors(void **state)
{
    const char *doc = "- kind: cluster\n"
                      "  cluster_key: c1\n"
                      "  instances: &hosts\n"
                      "    - {host: 10.0.0.1, port: &port 8080}\n"
                      "  circuit_breakers: &cb {max_connections: 10, max_requests: 20}\n"
                      "- kind: cluster\n"
                      "  cluster_key: c2\n"
                      "  instances: *hosts\n"
                      "  circuit_breakers:\n"
                      "    <<: *cb\n"
                      "    max_requests: 30\n"
                      "  least_request_lb_config: {choice_count: *port}\n"
                      "- kind: cluster\n"
                      "  cluster_key: c3\n"
                      "  circuit_breakers: {<<: [{max_retries: 1}, {max_retries: 2, max_connections: 5}]}\n";
    const char *want = "[{\"kind\":\"cluster\",\"cluster_key\":\"c1\",\"instances\":[{\"host\":\"10.0.0.1\",\"port\":8080}],"
                       "\"circuit_breakers\":{\"max_connections\":10,\"max_requests\":20}},"
                       "{\"kind\":\"cluster\",\"cluster_key\":\"c2\",\"instances\":[{\"host\":\"10.0.0.1\",\"port\":8080}],"
                       "\"circuit_breakers\":{\"max_requests\":30,\"max_connections\":10},"
                       "\"least_request_lb_config\":{\"choice_count\":8080}},"
                       "{\"kind\":\"cluster\",\"cluster_key\":\"c3\",\"circuit_breakers\":{\"max_retries\":1,\"max_connections\":5}}]";
    json_t *out = parse_ok(doc, "a.yaml"), *w = json_ok(want);
    struct gy_mesh_error err;

    (void)state;
    assert_true(json_equal(out, w));
    /* choice_count 8080 is out of bounds: the alias really resolved to the integer. */
    assert_int_equal(gy_mesh_validate(out, &err), GY_ECONFIG);
    assert_string_equal(err.msg, "cluster \"c2\": least_request_lb_config.choice_count: must be between 2 and 100, got 8080");
    json_decref(out);
    json_decref(w);
    expect_err("- kind: zone\n  v: *nope\n", "a.yaml", "a.yaml:2:6: unknown anchor \"nope\"");
    expect_err("- &a [*a]\n", "a.yaml", "a.yaml:1:7: unknown anchor \"a\"");
    expect_err("- kind: zone\n  v: {<<: 5}\n", "a.yaml", "\"<<\" needs a mapping or a list of mappings");
}

static void test_alias_bomb(void **state)
{
    char doc[2048];
    size_t o = 0;

    (void)state;
    /* billion laughs: 9 levels of 9 aliases = 9^9 values from a few hundred bytes */
    o += (size_t)snprintf(doc + o, sizeof(doc) - o, "- kind: zone\n  a0: &a0 [lol]\n");
    for (int i = 1; i <= 9; i++)
        o += (size_t)snprintf(doc + o, sizeof(doc) - o, "  a%d: &a%d [*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d]\n", i, i,
                              i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    expect_parse_error(doc, o, "bomb.yaml", "bomb.yaml: more than 1000000 values (after expanding aliases)");

    /* the same with merge keys: mappings of mappings */
    o = (size_t)snprintf(doc, sizeof(doc), "- kind: zone\n  m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}\n");
    for (int i = 1; i <= 8; i++)
        o += (size_t)snprintf(doc + o, sizeof(doc) - o, "  m%d: &m%d {a: *m%d, b: *m%d, c: *m%d, d: *m%d, e: *m%d, f: *m%d, g: *m%d, h: *m%d}\n",
                              i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    expect_parse_error(doc, o, "bomb.yaml", "more than 1000000 values");
}

static void test_limits(void **state)
{
    char deep[512];
    size_t o = 0;

    (void)state;
    /* JSON nesting that jansson accepts but that is deeper than 64 */
    for (int i = 0; i < 70; i++)
        deep[o++] = '[';
    for (int i = 0; i < 70; i++)
        deep[o++] = ']';
    deep[o] = '\0';
    expect_parse_error(deep, o, "deep.json", "deep.json: nesting deeper than 64 levels");
    /* YAML nesting: stopped while building, with the position */
    o = (size_t)snprintf(deep, sizeof(deep), "- ");
    for (int i = 0; i < 100; i++)
        deep[o++] = '[';
    deep[o] = '\0';
    expect_parse_error(deep, o, "deep.yaml", "deep.yaml:1:66: nesting deeper than 64 levels");
    /* many values in JSON: refused before jansson builds them */
    {
        size_t n = 1000001, len = 2 * n + 1;
        char *big = malloc(len + 1);
        assert_non_null(big);
        big[0] = '[';
        for (size_t i = 0; i < n; i++)
            big[1 + 2 * i] = '0', big[2 + 2 * i] = ',';
        big[len - 1] = ']';
        big[len] = '\0';
        expect_parse_error(big, len, "many.json", "many.json: more than 1000000 values");
        free(big);
    }
    /* size: checked before the text is read, so a short buffer with a large length is safe */
    expect_parse_error("[]", (size_t)65 << 20, "big.json", "big.json: larger than 64 MiB");
}

static const struct {
    const char *text;
    const char *want;
} syntax_vectors[] = {
    { "- kind: zone\n  a: [1, 2\n", "s.yaml:3:1: did not find expected ',' or ']'" },
    { "- kind: zone\n  a: 1\n  a: 2\n", "s.yaml:3:3: duplicate key \"a\"" },
    { "- kind: zone\n   b: 1\n", "s.yaml:2:5: mapping values are not allowed in this context" },
    { "- kind: zone\n  1: x\n", "s.yaml:2:3: mapping keys must be strings" },
    { "- kind: zone\n  ? [a]\n  : x\n", "s.yaml:2:5: mapping keys must be strings, not lists or mappings" },
    { "- kind: zone\n---\n- kind: zone\n", "s.yaml:2:1: more than one YAML document" },
    { "- kind: \"zone\n", "s.yaml:2:1: found unexpected end of stream" },
    { "- kind: zone\n\tx: 1\n", "s.yaml:2:1: found a tab character that violates indentation" },
    { "- kind: \xff\n", "s.yaml:1:9: invalid leading UTF-8 octet (byte 0xff)" },
    { "", "s.yaml: empty document" },
    { "# only a comment\n", "s.yaml: empty document" },
    { "hello", "s.yaml: the top level must be a list of objects or a mapping of kind to list of objects" },
    { "kind: zone\nzone_key: z\n", "s.yaml: the top level is a single object" },
    { "- zone_key: z\n", "s.yaml: object 0: missing \"kind\"" },
    { "- kind: zone\n- 5\n", "s.yaml: object 1: must be an object, got a scalar" },
    { "- kind: [zone]\n", "s.yaml: object 0: \"kind\" must be a string" },
    { "[{\"kind\": \"zone\"", "s.yaml:1:16: '}' expected near end of file" },
    { "[{\"kind\": \"zone\", \"kind\": \"zone\"}]", "s.yaml:1:24: duplicate object key near '\"kind\"'" },
};

static void test_syntax_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(syntax_vectors) / sizeof(syntax_vectors[0]); i++)
        expect_parse_error(syntax_vectors[i].text, strlen(syntax_vectors[i].text), "s.yaml", syntax_vectors[i].want);
}

static void test_load_file(void **state)
{
    struct gy_mesh_error err;
    json_t *out = NULL;

    (void)state;
    assert_int_equal(gy_mesh_load_file("/nonexistent/mesh.yaml", &out, &err), GY_ECONFIG);
    assert_string_equal(err.msg, "/nonexistent/mesh.yaml: No such file or directory");
    assert_null(out);
}

/* ---- validation ---- */

static const char base_mesh[] =
    "["
    /* 0 */ "{\"kind\": \"zone\", \"zone_key\": \"z1\", \"name\": \"zone one\"},"
    /* 1 */ "{\"kind\": \"cluster\", \"cluster_key\": \"a\", \"zone_key\": \"z1\"},"
    /* 2 */ "{\"kind\": \"proxy\", \"proxy_key\": \"p1\", \"name\": \"svc\", \"zone_key\": \"z1\", \"listener_keys\": [\"ingress\"],"
    "  \"domain_keys\": [\"d1\"]},"
    /* 3 */ "{\"kind\": \"listener\", \"listener_key\": \"ingress\", \"ip\": \"127.0.0.1\", \"port\": 10808,"
    "  \"protocol\": \"http_auto\", \"domain_keys\": [\"d1\"], \"stream_idle_timeout\": \"5m\"},"
    /* 4 */ "{\"kind\": \"domain\", \"domain_key\": \"d1\", \"name\": \"*\", \"port\": 10808},"
    /* 5 */ "{\"kind\": \"route\", \"route_key\": \"api\", \"domain_key\": \"d1\", \"route_match\": {\"path\": \"/api/\"},"
    "  \"rules\": [{\"methods\": [\"GET\"], \"constraints\": {\"light\": [{\"cluster_key\": \"backend\", \"weight\": 1}]}}]},"
    /* 6 */ "{\"kind\": \"shared_rules\", \"shared_rules_key\": \"sr1\", \"default\": {\"light\": [{\"cluster_key\": \"a\"}]}},"
    /* 7 */ "{\"kind\": \"cluster\", \"cluster_key\": \"backend\", \"name\": \"backend\", \"instances\": [{\"host\": \"127.0.0.1\","
    "  \"port\": 9000}, {\"host\": \"::1\", \"port\": 9001}], \"lb_policy\": \"ring_hash\"},"
    /* 8 */ "{\"kind\": \"route\", \"route_key\": \"r\", \"domain_key\": \"d1\", \"path\": \"/r\", \"shared_rules_key\": \"sr1\"}"
    "]";

/* One mutation of the base mesh and the error it must give (NULL: still valid).
 * path: "5/rules/0/constraints" (object index first); "+" appends value to the list of objects;
 * value NULL deletes the member or element. */
static const struct {
    const char *path;
    const char *value;
    const char *want;
} validation_vectors[] = {
    /* the messages of the brief */
    { "5/rules/0/constraints/light/0/cluster_key", "\"pay\"", "route \"api\": rules[0].constraints.light[0].cluster_key: no cluster \"pay\"" },
    { "7/instances/1/port", "0", "cluster \"backend\": instances[1].port: must be between 1 and 65535, got 0" },
    { "3/protocol", "\"udp\"", "listener \"ingress\": protocol: must be one of http_auto, http, http2, tcp, got \"udp\"" },
    { "4/nmae", "\"x\"", "domain \"d1\": unknown field \"nmae\"" },
    { "3/kind", NULL, "object 3: missing \"kind\"" },
    { "3/kind", "\"routes\"", "object 3: unknown kind \"routes\"" },
    { "+", "{\"kind\": \"cluster\", \"cluster_key\": \"a\"}", "cluster \"a\": duplicate cluster_key (also object 1)" },
    { "8/domain_key", NULL, "route \"r\": missing required field \"domain_key\"" },
    /* objects and keys */
    { "+", "5", "object 9: must be an object, got 5" },
    { "3/kind", "7", "object 3: \"kind\" must be a string, got 7" },
    { "1/cluster_key", NULL, "object 1 (cluster): missing required field \"cluster_key\"" },
    { "1/cluster_key", "\"\"", "object 1 (cluster): cluster_key: must not be empty" },
    { "1/cluster_key", "3", "object 1 (cluster): cluster_key: must be a string, got 3" },
    { "1/zone_key", "\"z2\"", "cluster \"a\": zone_key: no zone \"z2\"" },
    { "1/zone_key", "\"\"", NULL },
    { "1/name", "\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"",
      NULL },
    { "1/lb_policy", "\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"", /* cut inside a 2-byte sequence: the whole sequence goes */
      "cluster \"a\": lb_policy: must be one of round_robin, least_request, random, ring_hash, maglev, got \"\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9...\"" },
    { "1/zone_key", "null", NULL },
    { "2/name", NULL, "proxy \"p1\": missing required field \"name\"" },
    { "2/listener_keys/0", "\"egress\"", "proxy \"p1\": listener_keys[0]: no listener \"egress\"" },
    { "2/domain_keys", "\"d1\"", "proxy \"p1\": domain_keys: must be a list, got \"d1\"" },
    { "2/active_proxy_filters", "[\"gm.metrics\"]", NULL },
    { "2/proxy_filters", "{\"gm_metrics\": {\"metrics_port\": 8081}}", NULL },
    { "2/listeners", "[{\"listener_key\": \"inline\", \"port\": 80, \"domain_keys\": [\"nope\"]}]",
      "proxy \"p1\": listeners[0].domain_keys[0]: no domain \"nope\"" },
    { "0/checksum", "\"abc\"", NULL },
    { "0/org_key", "5", "zone \"z1\": org_key: must be a string, got 5" },
    /* listener */
    { "3/ip", "\"localhost\"", "listener \"ingress\": ip: must be an IPv4 or IPv6 address, got \"localhost\"" },
    { "3/ip", "\"::\"", NULL },
    { "3/port", NULL, "listener \"ingress\": missing required field \"port\"" },
    { "3/port", "\"80\"", "listener \"ingress\": port: must be an integer, got \"80\"" },
    { "3/port", "80.0", "listener \"ingress\": port: must be an integer, got 80" },
    { "3/max_request_headers_kb", "97", "listener \"ingress\": max_request_headers_kb: must be between 1 and 96, got 97" },
    { "3/max_headers_count", "0", "listener \"ingress\": max_headers_count: must be between 1 and 1000, got 0" },
    { "3/use_remote_address", "\"yes\"", "listener \"ingress\": use_remote_address: must be a boolean, got \"yes\"" },
    { "3/generate_request_id", "1", "listener \"ingress\": generate_request_id: must be a boolean, got 1" },
    { "3/request_headers_timeout", "\"10 s\"",
      "listener \"ingress\": request_headers_timeout: must be a duration such as \"250ms\", \"5s\" or \"1m30s\", got \"10 s\"" },
    { "3/drain_timeout", "30", NULL },
    { "3/domain_keys/0", "\"d2\"", "listener \"ingress\": domain_keys[0]: no domain \"d2\"" },
    { "3/http_filters", "{\"gm_metrics\": {\"anything\": [1, {\"goes\": null}]}}", NULL },
    { "3/http_filters", "[]", "listener \"ingress\": http_filters: must be an object, got a list" },
    { "3/access_loggers", "{\"http_connection_loggers\": {\"file_loggers\": [{\"path\": \"/dev/stdout\", \"format\": \"%START_TIME%\"}]}}", NULL },
    { "3/access_loggers", "{\"http_connection_loggers\": {\"file_loggers\": [{\"format\": \"x\"}]}}",
      "listener \"ingress\": access_loggers.http_connection_loggers.file_loggers[0]: missing required field \"path\"" },
    { "3/tracing_config", "null", NULL },
    { "3/secret", "{\"secret_key\": \"s\", \"set_current_client_cert_details\": {\"uri\": true}, \"forward_client_cert_details\": \"APPEND_FORWARD\"}", NULL },
    { "3/secret", "{\"forward_client_cert_details\": \"append\"}",
      "listener \"ingress\": secret.forward_client_cert_details: must be one of SANITIZE, FORWARD_ONLY, APPEND_FORWARD, SANITIZE_SET, ALWAYS_FORWARD_ONLY, got \"append\"" },
    /* domain */
    { "4/name", "\"a*b\"", "domain \"d1\": name: must be \"*\", a host name, \"*.suffix\" or \"prefix.*\", got \"a*b\"" },
    { "4/name", "\"*.example.com\"", NULL },
    { "4/name", "\"api.*\"", NULL },
    { "4/name", "\"Example.COM\"", NULL },
    { "4/name", "\"[::1]\"", NULL },
    { "4/name", NULL, "domain \"d1\": missing required field \"name\"" },
    { "4/aliases", "[\"www.example.com\", \"bad host\"]",
      "domain \"d1\": aliases[1]: must be \"*\", a host name, \"*.suffix\" or \"prefix.*\", got \"bad host\"" },
    { "4/port", "65536", "domain \"d1\": port: must be between 1 and 65535, got 65536" },
    { "4/custom_headers", "[{\"key\": \"x-a\", \"value\": \"1\"}]", NULL },
    { "4/custom_headers", "[{\"key\": \"x a\", \"value\": \"1\"}]",
      "domain \"d1\": custom_headers[0].key: must be a token (letters, digits and !#$%&'*+-.^_`|~), got \"x a\"" },
    { "4/cors_config", "{\"allowed_origins\": [{\"match_type\": \"regex\", \"value\": \"https://(.*\"}]}",
      "domain \"d1\": cors_config.allowed_origins[0].value: invalid regex: missing closing parenthesis at offset 11" },
    { "4/redirects", "[{\"name\": \"to-https\", \"from\": \"^/old/(.*)\", \"to\": \"/new/$1\", \"redirect_type\": \"permanent\"}]", NULL },
    { "4/redirects", "[{\"name\": \"x\", \"from\": \"[\", \"to\": \"/\"}]",
      "domain \"d1\": redirects[0].from: invalid regex: missing terminating ] for character class at offset 1" },
    { "4/redirects", "[{\"name\": \"x\", \"from\": \"/\", \"to\": \"/\", \"redirect_type\": \"moved\"}]",
      "domain \"d1\": redirects[0].redirect_type: must be one of permanent, temporary, got \"moved\"" },
    { "4/ssl_config", "{\"cert_key_pairs\": [{\"certificate_path\": \"/c\", \"key_path\": \"/k\"}], \"protocols\": [\"TLSv1_2\"], \"sni\": \"a\"}", NULL },
    { "4/ssl_config", "{\"protocols\": [\"SSLv3\"]}",
      "domain \"d1\": ssl_config.protocols[0]: must be one of TLS_AUTO, TLSv1_0, TLSv1_1, TLSv1_2, TLSv1_3, got \"SSLv3\"" },
    /* route */
    { "5/route_match", NULL, "route \"api\": missing required field \"route_match\" (or the 1.x \"path\")" },
    { "5/path", "\"/api/\"", "route \"api\": \"route_match\" and \"path\" cannot both be set" },
    { "8/path", "\"r\"", "route \"r\": path: must start with \"/\", got \"r\"" },
    { "5/route_match", "{\"path\": \"^/v[0-9]+/\", \"match_type\": \"regex\"}", NULL },
    { "5/route_match", "{\"path\": \"(\", \"match_type\": \"regex\"}",
      "route \"api\": route_match.path: invalid regex: missing closing parenthesis at offset 1" },
    { "5/route_match", "{\"path\": \"api\", \"match_type\": \"exact\"}", "route \"api\": route_match.path: must start with \"/\", got \"api\"" },
    { "5/route_match", "{\"match_type\": \"exact\"}", "route \"api\": route_match: missing required field \"path\"" },
    { "5/route_match/match_type", "\"glob\"", "route \"api\": route_match.match_type: must be one of prefix, exact, regex, got \"glob\"" },
    { "5/rules", NULL, "route \"api\": needs rules with light constraints, a shared_rules_key, a direct_response or redirects" },
    { "5/rules", "[]", "route \"api\": needs rules with light constraints, a shared_rules_key, a direct_response or redirects" },
    { "8/shared_rules_key", NULL, "route \"r\": needs rules with light constraints, a shared_rules_key, a direct_response or redirects" },
    { "8/shared_rules_key", "\"sr2\"", "route \"r\": shared_rules_key: no shared_rules \"sr2\"" },
    { "8/direct_response", "{\"status\": 200, \"body\": \"ok\"}", NULL },
    { "8/direct_response", "{\"status\": 700}", "route \"r\": direct_response.status: must be between 200 and 599, got 700" },
    { "8/direct_response", "{\"body\": \"x\"}", "route \"r\": direct_response: missing required field \"status\"" },
    { "5/domain_key", "\"\"", "route \"api\": domain_key: must not be empty" },
    { "5/timeout", "\"5x\"", "route \"api\": timeout: must be a duration such as \"250ms\", \"5s\" or \"1m30s\", got \"5x\"" },
    { "5/timeout", "\"1m30s\"", NULL },
    { "5/timeout", "-1", "route \"api\": timeout: must be a duration such as \"250ms\", \"5s\" or \"1m30s\", got -1" },
    { "5/prefix_rewrite", "\"/\"", NULL },
    { "5/request_headers_to_add", "[{\"key\": \"x-a\", \"value\": \"1\"}, {\"header\": {\"key\": \"x-b\", \"value\": \"2\"}, \"append\": false}]", NULL },
    { "5/request_headers_to_add", "[{\"header\": {\"key\": \"x-a\", \"value\": \"a\\nb\"}}]",
      "route \"api\": request_headers_to_add[0].header.value: a header value cannot hold control characters (CR, LF, NUL...), "
      "got \"a?b\"" },
    { "5/request_headers_to_add", "[{\"key\": \"x-a\", \"header\": {\"key\": \"x-b\"}}]",
      "route \"api\": request_headers_to_add[0]: \"key\" and \"header\" cannot both be set" },
    { "5/response_headers_to_add", "[{\"value\": \"1\"}]",
      "route \"api\": response_headers_to_add[0]: missing required field \"key\" (or Envoy's \"header\")" },
    { "5/request_headers_to_remove", "[\"x-internal\", \"\"]",
      "route \"api\": request_headers_to_remove[1]: must be a token (letters, digits and !#$%&'*+-.^_`|~), got \"\"" },
    { "5/hash_policy", "[{\"header\": {\"header_name\": \"x-user\"}}, {\"connection_properties\": {\"source_ip\": true}}]", NULL },
    { "5/hash_policy", "[{\"cookie\": {\"name\": \"s\"}, \"header\": {\"header_name\": \"x\"}}]",
      "route \"api\": hash_policy[0]: must have exactly one of \"header\", \"cookie\", \"connection_properties\"" },
    { "5/hash_policy", "[{}]", "route \"api\": hash_policy[0]: must have exactly one of \"header\", \"cookie\", \"connection_properties\"" },
    { "5/retry_policy", "{\"num_retries\": 2, \"retry_on\": \"5xx, connect-failure\", \"retriable_status_codes\": 503,"
                        " \"retry_back_off\": {\"base_interval\": \"25ms\"}, \"retriable_headers\": {\"name\": \"x-retry\"}}", NULL },
    { "5/retry_policy", "{\"retry_on\": \"\"}", NULL },
    { "5/retry_policy", "{\"retry_on\": \"5xx,sometimes\"}", "route \"api\": retry_policy.retry_on: unknown retry condition \"sometimes\"" },
    { "5/retry_policy", "{\"retriable_status_codes\": [503, 99]}",
      "route \"api\": retry_policy.retriable_status_codes[1]: must be between 100 and 599, got 99" },
    { "5/retry_policy", "{\"retriable_headers\": [{\"name\": \"x\", \"exact_match\": \"a\", \"prefix_match\": \"b\"}]}",
      "route \"api\": retry_policy.retriable_headers[0]: at most one of exact_match, regex_match, safe_regex_match, range_match, present_match, prefix_match, suffix_match may be set" },
    { "5/filter_configs", "{\"gm_inheaders\": {\"debug\": true}}", NULL },
    { "5/filter_metadata", "{\"gm_metrics\": [{\"key\": \"a\", \"value\": \"b\"}]}", NULL },
    { "5/redirects", "[{\"name\": \"r\", \"from\": \"^/x$\", \"to\": \"\"}]", "route \"api\": redirects[0].to: must not be empty" },
    { "5/cohort_seed", "{\"type\": \"header\"}", "route \"api\": cohort_seed: missing required field \"name\"" },
    { "5/cohort_seed", "{\"type\": \"ip\", \"name\": \"x\"}", "route \"api\": cohort_seed.type: must be one of header, cookie, query, got \"ip\"" },
    /* rules, matches, constraints */
    { "5/rules/0/methods/0", "\"GE T\"",
      "route \"api\": rules[0].methods[0]: must be a token (letters, digits and !#$%&'*+-.^_`|~), got \"GE T\"" },
    { "5/rules/0/constraints/light", "[]", "route \"api\": rules[0].constraints.light: must not be empty" },
    { "5/rules/0/constraints/light", NULL, "route \"api\": rules[0].constraints: missing required field \"light\"" },
    { "5/rules/0/constraints/light/0/weight", "0", "route \"api\": rules[0].constraints.light: total weight must be greater than 0" },
    { "5/rules/0/constraints/light/0/weight", "1000001",
      "route \"api\": rules[0].constraints.light[0].weight: must be between 0 and 1000000, got 1000001" },
    { "5/rules/0/constraints/light/0/cluster_key", NULL, "route \"api\": rules[0].constraints.light[0]: missing required field \"cluster_key\"" },
    { "5/rules/0/constraints/dark", "[{\"cluster_key\": \"a\"}]", NULL },
    { "5/rules/0/constraints/tap", "[{\"cluster_key\": \"nope\"}]", "route \"api\": rules[0].constraints.tap[0].cluster_key: no cluster \"nope\"" },
    { "5/rules/0/matches", "[{\"kind\": \"header\", \"behavior\": \"regex\", \"from\": {\"key\": \"x-v\", \"value\": \"^v[12]$\"}}]", NULL },
    { "5/rules/0/matches", "[{\"kind\": \"header\", \"behavior\": \"range\", \"from\": {\"key\": \"x-v\", \"value\": \"-5,10\"}}]", NULL },
    { "5/rules/0/matches", "[{\"kind\": \"cookie\", \"from\": {\"key\": \"beta\"}, \"to\": {\"key\": \"stage\", \"value\": \"beta\"}}]", NULL },
    { "5/rules/0/matches", "[{\"kind\": \"query\", \"behavior\": \"regex\", \"from\": {\"key\": \"a\", \"value\": \"x\"}}]",
      "route \"api\": rules[0].matches[0]: behavior \"regex\" cannot be used with kind \"query\"" },
    { "5/rules/0/matches", "[{\"kind\": \"cookie\", \"behavior\": \"range\", \"from\": {\"key\": \"a\", \"value\": \"1,2\"}}]",
      "route \"api\": rules[0].matches[0]: behavior \"range\" cannot be used with kind \"cookie\"" },
    { "5/rules/0/matches", "[{\"kind\": \"query\", \"behavior\": \"range\", \"from\": {\"key\": \"a\", \"value\": \"1,2\"}}]",
      "route \"api\": rules[0].matches[0]: behavior \"range\" cannot be used with kind \"query\"" },
    { "5/rules/0/matches", "[{\"kind\": \"header\", \"behavior\": \"range\", \"from\": {\"key\": \"a\", \"value\": \"5,5\"}}]",
      "route \"api\": rules[0].matches[0].from.value: must be a range \"START,END\" of integers with START < END, got \"5,5\"" },
    { "5/rules/0/matches", "[{\"kind\": \"header\", \"behavior\": \"range\", \"from\": {\"key\": \"a\"}}]",
      "route \"api\": rules[0].matches[0].from: missing required field \"value\" (behavior \"range\")" },
    { "5/rules/0/matches", "[{\"kind\": \"header\", \"behavior\": \"regex\", \"from\": {\"key\": \"a\", \"value\": \"a{2,1}\"}}]",
      "route \"api\": rules[0].matches[0].from.value: invalid regex: numbers out of order in {} quantifier at offset 5" },
    { "5/rules/0/matches", "[{\"behavior\": \"exact\", \"from\": {\"key\": \"a\"}}]",
      "route \"api\": rules[0].matches[0]: missing required field \"kind\"" },
    { "5/rules/0/matches", "[{\"kind\": \"header\", \"from\": {\"key\": \"\"}}]", "route \"api\": rules[0].matches[0].from.key: must not be empty" },
    { "5/rules/0/matches", "[{\"kind\": \"header\", \"from\": {\"key\": \"a\"}, \"to\": {\"value\": \"b\"}}]",
      "route \"api\": rules[0].matches[0].to: \"value\" needs \"key\"" },
    /* shared_rules */
    { "6/default", NULL, "shared_rules \"sr1\": missing required field \"default\"" },
    { "6/default/light", "null", "shared_rules \"sr1\": default: missing required field \"light\"" },
    { "6/rules", "[{\"constraints\": {\"light\": [{\"cluster_key\": \"backend\", \"weight\": 3}, {\"cluster_key\": \"a\", \"weight\": 1}]}}]", NULL },
    { "6/properties", "[{\"key\": \"team\", \"value\": \"x\"}]", NULL },
    { "6/retry_policy", "{\"per_try_timeout_msec\": -1}", "shared_rules \"sr1\": retry_policy.per_try_timeout_msec: must be at least 0, got -1" },
    /* cluster */
    { "7/lb_policy", "\"weighted\"",
      "cluster \"backend\": lb_policy: must be one of round_robin, least_request, random, ring_hash, maglev, got \"weighted\"" },
    { "7/lb_policy", "\"maglev\"", NULL },
    { "7/instances/0/host", "\"bad host\"", "cluster \"backend\": instances[0].host: must be an IP address or a host name, got \"bad host\"" },
    { "7/instances/0/host", "\"echo.default.svc.cluster.local\"", NULL },
    { "7/instances/0/host", NULL, "cluster \"backend\": instances[0]: missing required field \"host\"" },
    { "7/instances/0/weight", "0", "cluster \"backend\": instances[0].weight: must be between 1 and 128, got 0" },
    { "7/instances/0/metadata", "[{\"key\": \"version\", \"value\": \"v2\"}]", NULL },
    { "7/instances/0/metadata", "[{\"value\": \"v2\"}]", "cluster \"backend\": instances[0].metadata[0]: missing required field \"key\"" },
    { "7/connect_timeout", "\"0s\"", "cluster \"backend\": connect_timeout: must be at least 1ms, got \"0s\"" },
    { "7/idle_timeout", "\"90s\"", NULL },
    { "7/max_idle_connections_per_host", "10001",
      "cluster \"backend\": max_idle_connections_per_host: must be between 0 and 10000, got 10001" },
    { "7/least_request_lb_config", "{\"choice_count\": 1}", "cluster \"backend\": least_request_lb_config.choice_count: must be between 2 and 100, got 1" },
    { "7/ring_hash_lb_config", "{\"minimum_ring_size\": 2048, \"maximum_ring_size\": 1024}",
      "cluster \"backend\": ring_hash_lb_config.maximum_ring_size: must be at least minimum_ring_size (2048), got 1024" },
    { "7/ring_hash_lb_config", "{\"minimum_ring_size\": 8388609}",
      "cluster \"backend\": ring_hash_lb_config.minimum_ring_size: must be between 1 and 8388608, got 8388609" },
    { "7/ring_hash_lb_config", "{\"hash_func\": \"md5\"}",
      "cluster \"backend\": ring_hash_lb_config.hash_func: must be xx_hash, murmur_hash_2, 0 or 1, got \"md5\"" },
    { "7/ring_hash_lb_config", "{\"hash_func\": 1}", NULL },
    { "7/circuit_breakers", "{\"max_connections\": 100, \"high\": {\"max_requests\": -1}}",
      "cluster \"backend\": circuit_breakers.high.max_requests: must be at least 0, got -1" },
    { "7/outlier_detection", "{\"consecutive_5xx\": 5, \"max_ejection_percent\": 101}",
      "cluster \"backend\": outlier_detection.max_ejection_percent: must be between 0 and 100, got 101" },
    { "7/health_checks", "[{\"timeout_msec\": 1000, \"health_checker\": {\"http_health_check\": {\"path\": \"/health\"}}}]", NULL },
    { "7/health_checks", "[{\"health_checker\": {\"http_health_check\": {}, \"tcp_health_check\": {}}}]",
      "cluster \"backend\": health_checks[0].health_checker: only one of \"http_health_check\", \"tcp_health_check\", \"grpc_health_check\" may be set" },
    { "7/health_checks", "[{\"health_checker\": {\"http_health_check\": {\"service_name\": \"billing\", \"request_headers_to_add\": "
                         "[{\"key\": \"x-probe\", \"value\": \"1\"}, {\"header\": {\"key\": \"user-agent\", \"value\": \"p\"}, \"append\": false}]}}}]",
      NULL },
    { "7/health_checks", "[{\"health_checker\": {\"http_health_check\": {\"request_headers_to_add\": [{\"key\": \"x-a\"}, {\"key\": \"Host\", \"value\": \"h\"}]}}}]",
      "cluster \"backend\": health_checks[0].health_checker.http_health_check.request_headers_to_add[1]: a health check cannot set "
      "\"host\" here: the check has its own \"host\" field" },
    { "7/health_checks", "[{\"health_checker\": {\"http_health_check\": {\"request_headers_to_add\": [{\"header\": {\"key\": \"Transfer-Encoding\", \"value\": \"chunked\"}}]}}}]",
      "cluster \"backend\": health_checks[0].health_checker.http_health_check.request_headers_to_add[0]: a health check cannot set "
      "\"transfer-encoding\" (gyrus frames the check)" },
    { "7/health_checks", "[{\"health_checker\": {\"http_health_check\": {\"request_headers_to_add\": [{\"key\": \"x-a\", \"value\": \"1\\r\\nx-b: 2\"}]}}}]",
      "cluster \"backend\": health_checks[0].health_checker.http_health_check.request_headers_to_add[0].value: a header value cannot "
      "hold control characters (CR, LF, NUL...), got \"1??x-b: 2\"" },
    { "7/health_checks", "[{\"health_checker\": {\"grpc_health_check\": {\"authority\": \"health.svc.local:8443\"}}}]", NULL },
    { "7/health_checks", "[{\"health_checker\": {\"grpc_health_check\": {\"authority\": \"a b\"}}}]",
      "cluster \"backend\": health_checks[0].health_checker.grpc_health_check.authority: must be host or host:port, got \"a b\"" },
    { "7/health_checks", "[{\"health_checker\": {\"grpc_health_check\": {\"authority\": \"\"}}}]",
      "cluster \"backend\": health_checks[0].health_checker.grpc_health_check.authority: must not be empty" },
    { "7/ssl_config", "{\"sni\": \"backend.local\", \"trust_file\": \"/ca.pem\"}", NULL },
    { "7/ssl_config", "{\"sni\": [\"a\"]}", "cluster \"backend\": ssl_config.sni: must be a string, got a list" },
    { "7/circuit_breakers", "null", NULL },
    { "7/common_lb_config", "{\"healthy_panic_threshold\": {\"value\": 50.5}, \"update_merge_window\": {\"seconds\": 1}}", NULL },
};

/* Sets (value != NULL) or deletes the member/element at path in root; "+" appends to root. */
static void mutate(json_t *root, const char *path, json_t *value)
{
    char buf[256], *save = NULL, *tok, *next;
    json_t *cur = root;

    if (strcmp(path, "+") == 0) {
        json_array_append_new(root, value);
        return;
    }
    snprintf(buf, sizeof(buf), "%s", path);
    tok = strtok_r(buf, "/", &save);
    while ((next = strtok_r(NULL, "/", &save)) != NULL) {
        cur = json_is_array(cur) ? json_array_get(cur, (size_t)strtoul(tok, NULL, 10)) : json_object_get(cur, tok);
        assert_non_null(cur);
        tok = next;
    }
    if (json_is_array(cur)) {
        size_t i = (size_t)strtoul(tok, NULL, 10);
        if (value != NULL)
            assert_int_equal(json_array_set_new(cur, i, value), 0);
        else
            assert_int_equal(json_array_remove(cur, i), 0);
    } else if (value != NULL) {
        assert_int_equal(json_object_set_new(cur, tok, value), 0);
    } else {
        assert_int_equal(json_object_del(cur, tok), 0);
    }
}

static void test_base_mesh_valid(void **state)
{
    struct gy_mesh_error err;
    json_t *m = json_ok(base_mesh);
    int rc = gy_mesh_validate(m, &err);

    (void)state;
    if (rc != 0)
        print_error("base mesh: %s\n", err.msg);
    assert_int_equal(rc, 0);
    json_decref(m);
}

static void test_validation_errors(void **state)
{
    int failures = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(validation_vectors) / sizeof(validation_vectors[0]); i++) {
        struct gy_mesh_error err;
        json_t *m = json_ok(base_mesh), *before;
        const char *want = validation_vectors[i].want;
        int rc;

        mutate(m, validation_vectors[i].path, validation_vectors[i].value ? json_ok(validation_vectors[i].value) : NULL);
        before = json_deep_copy(m);
        rc = gy_mesh_validate(m, &err);
        assert_true(json_equal(m, before)); /* validation never modifies */
        if ((want == NULL && rc != 0) || (want != NULL && (rc != GY_ECONFIG || strcmp(err.msg, want) != 0))) {
            print_error("vector %zu (%s = %s):\n  want: %s\n  got:  %s\n", i, validation_vectors[i].path,
                        validation_vectors[i].value ? validation_vectors[i].value : "(deleted)", want ? want : "(valid)",
                        rc ? err.msg : "(valid)");
            failures++;
        }
        json_decref(before);
        json_decref(m);
    }
    assert_int_equal(failures, 0);
}

static void test_order_independence(void **state)
{
    unsigned seed = 12345;

    (void)state;
    for (int round = 0; round < 50; round++) {
        struct gy_mesh_error err;
        json_t *m = json_ok(base_mesh), *shuffled = json_array();
        size_t n = json_array_size(m);
        size_t idx[32];

        for (size_t i = 0; i < n; i++)
            idx[i] = i;
        for (size_t i = n - 1; i > 0; i--) {
            size_t j, t;
            seed = seed * 1103515245u + 12345u;
            j = (seed >> 16) % (i + 1);
            t = idx[i], idx[i] = idx[j], idx[j] = t;
        }
        for (size_t i = 0; i < n; i++)
            json_array_append(shuffled, json_array_get(m, idx[i]));
        assert_int_equal(gy_mesh_validate(shuffled, &err), 0);
        json_decref(shuffled);
        json_decref(m);
    }
}

/* A mesh in the shapes Grey Matter 1.x JSON uses: nulls for absent fields, flat `path`,
 * `active_proxy_filters`, SPIFFE secrets, envoy_rbac filter configs. */
static const char greymatter_mesh[] =
    "{\"zone\": [{\"zone_key\": \"zone-default-zone\", \"name\": \"zone-default-zone\"}],\n"
    " \"proxy\": [{\"proxy_key\": \"proxy-catalog\", \"zone_key\": \"zone-default-zone\", \"name\": \"catalog\",\n"
    "   \"domain_keys\": [\"domain-catalog\"], \"listener_keys\": [\"listener-catalog\"], \"listeners\": null,\n"
    "   \"active_proxy_filters\": [\"gm.metrics\"], \"proxy_filters\": {\"gm_metrics\": {\"metrics_port\": 8081,\n"
    "   \"metrics_host\": \"0.0.0.0\", \"metrics_key_depth\": \"3\"}}}],\n"
    " \"listener\": [{\"listener_key\": \"listener-catalog\", \"zone_key\": \"zone-default-zone\", \"name\": \"catalog\",\n"
    "   \"ip\": \"0.0.0.0\", \"port\": 10808, \"protocol\": \"http_auto\", \"domain_keys\": [\"domain-catalog\"],\n"
    "   \"tracing_config\": null, \"secret\": {\"secret_key\": \"secret-catalog-secret\",\n"
    "   \"secret_name\": \"spiffe://quickstart.greymatter.io/catalog\",\n"
    "   \"secret_validation_name\": \"spiffe://quickstart.greymatter.io\", \"forward_client_cert_details\": \"APPEND_FORWARD\",\n"
    "   \"set_current_client_cert_details\": {\"uri\": true}, \"ecdh_curves\": [\"X25519:P-256:P-521:P-384\"],\n"
    "   \"subject_names\": [\"spiffe://quickstart.greymatter.io/edge\"]},\n"
    "   \"active_http_filters\": [\"gm.metrics\", \"envoy.rbac\"], \"http_filters\": {\"envoy_rbac\": {\"rules\": {\"action\": 0,\n"
    "   \"policies\": {\"all\": {\"permissions\": [{\"any\": true}], \"principals\": [{\"any\": true}]}}}}},\n"
    "   \"active_network_filters\": [\"envoy.tcp_proxy\"], \"network_filters\": {\"envoy_tcp_proxy\": {\"cluster\": \"x\",\n"
    "   \"stat_prefix\": \"x\"}}}],\n"
    " \"domain\": [{\"domain_key\": \"domain-catalog\", \"zone_key\": \"zone-default-zone\", \"name\": \"*\", \"port\": 10808,\n"
    "   \"redirects\": null, \"gzip_enabled\": false, \"cors_config\": null, \"aliases\": null, \"force_https\": true,\n"
    "   \"ssl_config\": {\"require_client_certs\": true, \"trust_file\": \"/etc/proxy/tls/sidecar/ca.crt\",\n"
    "   \"cert_key_pairs\": [{\"certificate_path\": \"/etc/proxy/tls/sidecar/server.crt\",\n"
    "   \"key_path\": \"/etc/proxy/tls/sidecar/server.key\"}]}}],\n"
    " \"route\": [{\"route_key\": \"route-catalog\", \"domain_key\": \"domain-catalog\", \"zone_key\": \"zone-default-zone\",\n"
    "   \"path\": \"/\", \"prefix_rewrite\": null, \"redirects\": null, \"shared_rules_key\": \"shared-rules-catalog\",\n"
    "   \"rules\": null, \"timeout\": \"0s\", \"idle_timeout\": \"\", \"response_data\": {}, \"cohort_seed\": null,\n"
    "   \"retry_policy\": null}],\n"
    " \"shared_rules\": [{\"shared_rules_key\": \"shared-rules-catalog\", \"name\": \"catalog\", \"zone_key\": \"zone-default-zone\",\n"
    "   \"default\": {\"light\": [{\"constraint_key\": \"\", \"cluster_key\": \"cluster-catalog\", \"metadata\": null,\n"
    "   \"properties\": null, \"response_data\": {}, \"weight\": 1}], \"dark\": null, \"tap\": null}}],\n"
    " \"cluster\": [{\"cluster_key\": \"cluster-catalog\", \"zone_key\": \"zone-default-zone\", \"name\": \"catalog\",\n"
    "   \"lb_policy\": \"\", \"connect_timeout\": \"\",\n"
    "   \"instances\": [{\"host\": \"127.0.0.1\", \"port\": 8080}], \"circuit_breakers\": null, \"outlier_detection\": null,\n"
    "   \"health_checks\": [], \"require_tls\": true, \"secret\": {\"secret_key\": \"s\", \"secret_name\": \"spiffe://q/edge\",\n"
    "   \"secret_validation_name\": \"spiffe://q\", \"ecdh_curves\": [\"X25519:P-256:P-521:P-384\"]}}]}\n";

static void test_greymatter_shapes(void **state)
{
    struct gy_mesh_error err;
    json_t *m = parse_ok(greymatter_mesh, "gm.json");
    int rc = gy_mesh_validate(m, &err);

    (void)state;
    if (rc != 0)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(json_array_size(m), 7);
    json_decref(m);
}

static void test_examples(void **state)
{
    struct gy_mesh_error err;
    json_t *y = NULL, *j = NULL;
    int rc;

    (void)state;
    rc = gy_mesh_load_file("examples/mesh.yaml", &y, &err);
    if (rc != 0)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(gy_mesh_load_file("examples/mesh.json", &j, &err), 0);
    assert_true(json_equal(y, j));
    rc = gy_mesh_validate(y, &err);
    if (rc != 0)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, 0);
    json_decref(y);
    json_decref(j);
}

static void test_kinds(void **state)
{
    (void)state;
    assert_int_equal(gy_mesh_nkinds, 7);
    assert_string_equal(gy_mesh_kinds[0], "zone");
    assert_string_equal(gy_mesh_kinds[6], "cluster");
    for (size_t i = 0; i < gy_mesh_nkinds; i++) {
        char want[64];
        snprintf(want, sizeof(want), "%s_key", gy_mesh_kinds[i]);
        assert_string_equal(gy_mesh_key_field(gy_mesh_kinds[i]), want);
    }
    assert_null(gy_mesh_key_field("routes"));
    assert_null(gy_mesh_key_field(NULL));
}

/* ---- durations ---- */

static const struct {
    const char *json;
    long long ms; /* -1: invalid */
} duration_vectors[] = {
    { "\"250ms\"", 250 }, { "\"5s\"", 5000 }, { "\"1.5s\"", 1500 }, { "\"2m\"", 120000 }, { "\"1h\"", 3600000 },
    { "\"1m30s\"", 90000 }, { "\"1h2m3s4ms\"", 3723004 }, { "\"0\"", 0 }, { "\"0s\"", 0 }, { "\".5s\"", 500 },
    { "\"1.s\"", 1000 }, { "\"1500us\"", 2 }, { "\"1µs\"", 1 }, { "\"999999ns\"", 1 }, { "\"1000000ns\"", 1 },
    { "\"0.001s\"", 1 }, { "\"0.0015s\"", 2 }, { "\"2147483648ms\"", 2147483648LL }, { "\"596h31m23.648s\"", 2147483648LL },
    { "5", 5000 }, { "0", 0 }, { "2147483", 2147483000 },
    { "\"2147483649ms\"", -1 }, { "\"597h\"", -1 }, { "2147484", -1 }, { "-1", -1 }, { "1.5", -1 }, { "\"5\"", -1 },
    { "\"\"", -1 }, { "\"s\"", -1 }, { "\".s\"", -1 }, { "\"-1s\"", -1 }, { "\"+1s\"", -1 }, { "\"1 s\"", -1 },
    { "\"1d\"", -1 }, { "\"1sm\"", -1 }, { "\"5s \"", -1 }, { "\"99999999999999999999999s\"", -1 }, { "true", -1 },
    { "null", -1 }, { "[1]", -1 },
};

static void test_durations(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(duration_vectors) / sizeof(duration_vectors[0]); i++) {
        json_t *v = json_ok(duration_vectors[i].json);
        uint32_t ms = 12345;
        int rc = gy_mesh_duration_ms(v, &ms);
        long long got = rc == 0 ? (long long)ms : -1;
        if (got != duration_vectors[i].ms)
            print_error("duration %s: want %lld, got %lld\n", duration_vectors[i].json, duration_vectors[i].ms, got);
        assert_int_equal(got, duration_vectors[i].ms);
        assert_true(rc == 0 || rc == GY_EINVAL);
        json_decref(v);
    }
}

/* ---- docs/config-reference.md agrees with the tables ---- */

#define DOC_BEGIN "<!-- BEGIN GENERATED FROM src/mesh/schema*.c -->\n"
#define DOC_END "<!-- END GENERATED -->\n"

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0;

    *len = 0;
    if (f == NULL)
        return NULL;
    for (;;) {
        size_t n;
        if (*len + 4096 + 1 > cap && (buf = realloc(buf, cap = cap * 2 + 8192)) == NULL)
            break;
        n = fread(buf + *len, 1, cap - *len - 1, f);
        *len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    if (buf != NULL)
        buf[*len] = '\0';
    return buf;
}

static void test_docs_in_sync(void **state)
{
    const char *path = "docs/config-reference.md";
    char *gen = NULL, *doc, *b, *e;
    size_t genlen = 0, doclen;
    FILE *mem = open_memstream(&gen, &genlen);

    (void)state;
    assert_non_null(mem);
    assert_int_equal(gy_mesh_schema_markdown(mem), 0);
    fclose(mem);
    doc = read_all(path, &doclen);
    assert_non_null(doc);
    b = strstr(doc, DOC_BEGIN);
    e = b != NULL ? strstr(b, DOC_END) : NULL;
    assert_non_null(e);
    b += strlen(DOC_BEGIN);
    if (getenv("GY_UPDATE_DOCS") != NULL) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fwrite(doc, 1, (size_t)(b - doc), f);
        fwrite(gen, 1, genlen, f);
        fputs(e, f);
        fclose(f);
    } else if ((size_t)(e - b) != genlen || memcmp(b, gen, genlen) != 0) {
        print_error("%s is out of date with the schema tables; run the test with GY_UPDATE_DOCS=1\n", path);
        fail();
    }
    free(doc);
    free(gen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_json_equal),
        cmocka_unit_test(test_kind_map),
        cmocka_unit_test(test_yaml_types),
        cmocka_unit_test(test_anchors),
        cmocka_unit_test(test_alias_bomb),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_base_mesh_valid),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_order_independence),
        cmocka_unit_test(test_greymatter_shapes),
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_docs_in_sync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
