/* Discovery: spec parsing for every source, the shared pieces (host:port, URLs, backoff,
 * instances, snapshots), and the delivery of snapshots to a loop and stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "control/discovery.h"
#include "control/discovery/source.h"
#include "core/err.h"
#include "core/time.h"

/* ---- specs ---- */

static const char *const good_specs[] = {
    "file:/etc/gyrus/instances.yaml",
    "file:relative.json",
    "dns:api.example.com:8080=api",
    "dns:_http._tcp.api.example.com=api",
    "dns:api:80=api@127.0.0.1",
    "dns:api.example.com:80=api@127.0.0.1:5353",
    "dns:api.example.com:80=api@[::1]:5353",
    "dns:api.example.com:80=api@[::1]",
    "etcd:http://127.0.0.1:2379/gyrus/instances",
    "etcd:https://etcd.internal:2379/x/",
    "consul:http://127.0.0.1:8500",
    "consul:http://consul:8500/?dc=dc1",
    "kubernetes:https://10.96.0.1:443",
    "kubernetes:https://k8s:6443?namespace=mesh&label=app&port=http",
    "kubernetes:http://127.0.0.1:8001/k8s/clusters/c-1?label=greymatter.io%2Fcluster",
};

static void test_good_specs(void **state)
{
    char err[512];

    (void)state;
    for (size_t i = 0; i < sizeof(good_specs) / sizeof(good_specs[0]); i++) {
        err[0] = '\0';
        int rc = gy_discovery_check(good_specs[i], err, sizeof(err));
        if (rc != 0)
            fail_msg("%s: %s", good_specs[i], err);
    }
}

static const struct {
    const char *spec;
    const char *message;
} bad_specs[] = {
    { "", "unknown kind" },
    { "file", "unknown kind" },
    { "files:/x", "unknown kind" },
    { "file:", "want file:PATH" },
    { "dns:", "want dns:NAME" },
    { "dns:api.example.com:8080", "want dns:NAME" },
    { "dns:=api", "is not a DNS name" },
    { "dns:api example:80=api", "is not a DNS name" },
    { "dns:api.example.com:=api", "port must be 1..65535" },
    { "dns:api.example.com:65536=api", "port must be 1..65535" },
    { "dns:api.example.com:-1=api", "port must be 1..65535" },
    { "dns:api.example.com:80=", "no cluster name" },
    { "dns:api.example.com:80=@127.0.0.1", "no cluster name" },
    { "dns:api.example.com:80=api@", "is not IP[:PORT]" },
    { "dns:api.example.com:80=api@dns.google", "is not IP[:PORT]" },
    { "dns:api.example.com:80=api@127.0.0.1:0", "is not IP[:PORT]" },
    { "dns:api.example.com:80=api@[::1", "is not IP[:PORT]" },
    { "dns:api.example.com:80=api@::1", "is not IP[:PORT]" },
    { "etcd:", "not an http:// or https:// URL" },
    { "etcd:http://127.0.0.1:2379", "no key prefix" },
    { "etcd:http://127.0.0.1:2379/", "no key prefix" },
    { "etcd:http://127.0.0.1:2379/x?dc=1", "unknown option \"dc\"" },
    { "consul:127.0.0.1:8500", "not an http:// or https:// URL" },
    { "consul:http://", "not a valid URL" },
    { "consul:http://c:8500?dc", "needs a value" },
    { "consul:http://c:8500?dc=a%zz", "malformed %-escape" },
    { "consul:http://c:8500?wait=5s", "unknown option \"wait\"" },
    { "kubernetes:https://k8s?namespace=", "needs a value" },
    { "kubernetes:https://k8s?namespace=UPPER", "not a valid name" },
    { "kubernetes:https://k8s?label=a%2Cb", "not a valid label key" },
    { "kubernetes:https://k8s?port=p_1", "not a valid port name" },
    { "kubernetes:https://k8s?a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9", "unknown option" },
};

static void test_bad_specs(void **state)
{
    char err[512];

    (void)state;
    for (size_t i = 0; i < sizeof(bad_specs) / sizeof(bad_specs[0]); i++) {
        err[0] = '\0';
        int rc = gy_discovery_check(bad_specs[i].spec, err, sizeof(err));
        if (rc != GY_EINVAL || strstr(err, bad_specs[i].message) == NULL || strchr(err, '\n') != NULL)
            fail_msg("%s: rc %d, \"%s\" (want \"%s\")", bad_specs[i].spec, rc, err, bad_specs[i].message);
    }
}

static void test_hostport(void **state)
{
    static const struct {
        const char *in, *out;
        bool need_port;
    } v[] = {
        { "127.0.0.1", "127.0.0.1:53", false },
        { "127.0.0.1:5353", "127.0.0.1:5353", false },
        { "[::1]", "[::1]:53", false },
        { "[fe80::1]:53", "[fe80::1]:53", true },
        { "127.0.0.1", NULL, true },
        { "localhost:53", NULL, false },
        { "127.0.0.1:", NULL, false },
        { "127.0.0.1:1x", NULL, false },
        { "[::1]x", NULL, false },
        { "1.2.3.4.5", NULL, false },
        { "", NULL, false },
    };
    char out[64];

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        int rc = gy_parse_hostport(v[i].in, out, sizeof(out), v[i].need_port);
        if (v[i].out == NULL ? rc == 0 : rc != 0 || strcmp(out, v[i].out) != 0)
            fail_msg("\"%s\": rc %d \"%s\"", v[i].in, rc, rc == 0 ? out : "");
    }
    assert_int_equal(gy_parse_port("1", 1), 1);
    assert_int_equal(gy_parse_port("65535", 5), 65535);
    assert_int_equal(gy_parse_port("065535", 6), -1);
    assert_int_equal(gy_parse_port("0", 1), -1);
    assert_int_equal(gy_parse_port("", 0), -1);
}

static void test_spec_url(void **state)
{
    static const char *const allowed[] = { "namespace", "label", NULL };
    struct gy_spec_url u;
    char err[256];

    (void)state;
    assert_int_equal(gy_spec_url_parse("https://k8s.local/prefix/?namespace=a%2Db&label=x+y", allowed, &u, err,
                                       sizeof(err)), 0);
    assert_string_equal(u.base, "https://k8s.local:443");
    assert_string_equal(u.path, "/prefix");
    assert_string_equal(gy_spec_url_param(&u, "namespace", NULL), "a-b");
    assert_string_equal(gy_spec_url_param(&u, "label", NULL), "x y");
    assert_null(gy_spec_url_param(&u, "port", NULL));
    gy_spec_url_dispose(&u);
    assert_int_equal(gy_spec_url_parse("http://[::1]:8500", allowed, &u, err, sizeof(err)), 0);
    assert_string_equal(u.base, "http://[::1]:8500");
    assert_string_equal(u.path, "");
    gy_spec_url_dispose(&u);
    assert_int_equal(gy_spec_url_parse("http://h?namespace=a%00", allowed, &u, err, sizeof(err)), GY_EINVAL);
}

/* ---- backoff ---- */

static void test_backoff(void **state)
{
    struct gy_backoff b;
    uint32_t prev_base = 0;

    (void)state;
    gy_backoff_init(&b, 42);
    for (int i = 0; i < 20; i++) {
        uint32_t base = b.base_ms, d = gy_backoff_next(&b);
        assert_true(d >= (base < GY_BACKOFF_MAX_MS ? base : GY_BACKOFF_MAX_MS) && d <= GY_BACKOFF_MAX_MS);
        assert_true(d <= base + base / 2);
        assert_true(base >= prev_base);
        prev_base = base;
    }
    assert_int_equal(b.base_ms, GY_BACKOFF_MAX_MS);
    gy_backoff_reset(&b);
    uint32_t d = gy_backoff_next(&b);
    assert_true(d >= 500 && d <= 750);
}

/* ---- instances and snapshots ---- */

static json_t *parse(const char *s)
{
    json_t *v = json_loads(s, 0, NULL);
    assert_non_null(v);
    return v;
}

static void expect_instance(const char *in, const char *out)
{
    json_t *v = parse(in), *want = out != NULL ? parse(out) : NULL;
    char why[128] = "";
    json_t *got = gy_instance_normalize(v, why, sizeof(why));

    if (want == NULL ? got != NULL : got == NULL || !json_equal(got, want)) {
        char *text = got != NULL ? json_dumps(got, JSON_COMPACT) : NULL;
        fail_msg("%s: got %s (%s)", in, text != NULL ? text : "NULL", why);
    }
    if (want == NULL)
        assert_true(why[0] != '\0');
    json_decref(v);
    json_decref(want);
    json_decref(got);
}

static void test_instances(void **state)
{
    (void)state;
    expect_instance("{\"host\":\"10.0.0.1\",\"port\":80}", "{\"host\":\"10.0.0.1\",\"port\":80}");
    expect_instance("{\"host\":\"h\",\"port\":\"8080\",\"weight\":3}", "{\"host\":\"h\",\"port\":8080,\"weight\":3}");
    expect_instance("{\"host\":\"h\",\"port\":1,\"metadata\":[{\"key\":\"v\",\"value\":\"2\"},{\"key\":\"e\"}]}",
                    "{\"host\":\"h\",\"port\":1,\"metadata\":[{\"key\":\"v\",\"value\":\"2\"},{\"key\":\"e\",\"value\":\"\"}]}");
    expect_instance("{\"host\":\"h\",\"port\":1,\"metadata\":{\"zone\":\"a\",\"n\":3}}",
                    "{\"host\":\"h\",\"port\":1,\"metadata\":[{\"key\":\"zone\",\"value\":\"a\"},{\"key\":\"n\",\"value\":\"3\"}]}");
    expect_instance("{\"host\":\"h\",\"port\":1,\"metadata\":null}", "{\"host\":\"h\",\"port\":1}");
    expect_instance("{\"host\":\"\",\"port\":1}", NULL);
    expect_instance("{\"port\":1}", NULL);
    expect_instance("{\"host\":\"h\"}", NULL);
    expect_instance("{\"host\":\"h\",\"port\":0}", NULL);
    expect_instance("{\"host\":\"h\",\"port\":65536}", NULL);
    expect_instance("{\"host\":\"h\",\"port\":\"80x\"}", NULL);
    expect_instance("{\"host\":\"h\",\"port\":1.5}", NULL);
    expect_instance("{\"host\":\"h\",\"port\":1,\"weight\":0}", NULL);
    expect_instance("{\"host\":\"h\",\"port\":1,\"metadata\":[{\"value\":\"x\"}]}", NULL);
    expect_instance("{\"host\":\"h\",\"port\":1,\"metadata\":\"x\"}", NULL);
    expect_instance("[1]", NULL);
}

static void test_snapshot_sorted_and_deduplicated(void **state)
{
    json_t *snap = json_object();
    json_t *want = parse("{\"a\":[{\"host\":\"10.0.0.1\",\"port\":80},{\"host\":\"10.0.0.1\",\"port\":81},"
                         "{\"host\":\"10.0.0.2\",\"port\":80}],\"b\":[{\"host\":\"x\",\"port\":1}]}");

    (void)state;
    assert_int_equal(gy_snapshot_add(snap, "a", gy_instance_new("10.0.0.2", 80, NULL)), 0);
    assert_int_equal(gy_snapshot_add(snap, "a", gy_instance_new("10.0.0.1", 81, NULL)), 0);
    assert_int_equal(gy_snapshot_add(snap, "b", gy_instance_new("x", 1, NULL)), 0);
    assert_int_equal(gy_snapshot_add(snap, "a", gy_instance_new("10.0.0.1", 80, NULL)), 0);
    assert_int_equal(gy_snapshot_add(snap, "a", gy_instance_new("10.0.0.2", 80, NULL)), 0);
    gy_snapshot_finish(snap);
    assert_true(json_equal(snap, want));
    assert_int_equal(gy_snapshot_instances(snap), 4);
    json_decref(snap);
    json_decref(want);
}

/* ---- delivery and stop ---- */

struct seen {
    int calls;
    json_t *last;
};

static void on_update(void *arg, const char *source, json_t *snapshot)
{
    struct seen *s = arg;

    assert_non_null(strstr(source, "file:"));
    s->calls++;
    json_decref(s->last);
    s->last = snapshot;
}

static bool queued(struct gy_loop *l)
{
    pthread_mutex_lock(&l->msg_lock);
    bool any = !gy_list_empty(&l->msgs);
    pthread_mutex_unlock(&l->msg_lock);
    return any;
}

static void test_file_source_delivers_on_the_loop(void **state)
{
    char path[] = "/tmp/gyrus-test-discovery-XXXXXX", spec[64], err[256];
    const char *text = "[{\"cluster\":\"a\",\"instances\":[{\"host\":\"10.0.0.1\",\"port\":80}]}]";
    struct seen seen = { 0 };
    struct gy_loop loop;
    struct gy_discovery *d;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    snprintf(spec, sizeof(spec), "file:%s", path);
    assert_int_equal(gy_loop_init(&loop), 0);
    assert_non_null(d = gy_discovery_start(&loop, spec, on_update, &seen, err, sizeof(err)));
    for (uint64_t deadline = gy_now_ms() + 5000; seen.calls == 0 && gy_now_ms() < deadline;)
        gy_loop_run_once(&loop, 50);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(json_array_size(json_object_get(seen.last, "a")), 1);
    assert_non_null(strstr(gy_discovery_state(d), "ok, 1 clusters, 1 instances"));
    gy_discovery_stop(d);

    /* A snapshot posted but not yet run when the source stops is never delivered, and does not
     * leak when the loop is disposed. */
    assert_non_null(d = gy_discovery_start(&loop, spec, on_update, &seen, err, sizeof(err)));
    for (uint64_t deadline = gy_now_ms() + 5000; !queued(&loop) && gy_now_ms() < deadline;)
        usleep(10000);
    assert_true(queued(&loop));
    gy_discovery_stop(d);
    assert_false(queued(&loop));
    gy_loop_run_once(&loop, 0);
    assert_int_equal(seen.calls, 1);
    json_decref(seen.last);
    gy_loop_dispose(&loop);
    unlink(path);
}

static void test_stop_is_prompt(void **state)
{
    static const char *const specs[] = {
        "file:/nonexistent/gyrus/instances.yaml",
        "dns:api.gyrus.test:80=api@127.0.0.1:9",
        "etcd:http://127.0.0.1:9/x",
        "consul:http://127.0.0.1:9",
        "kubernetes:http://127.0.0.1:9",
    };
    struct gy_discovery *d[sizeof(specs) / sizeof(specs[0])];
    struct seen seen = { 0 };
    struct gy_loop loop;
    char err[256];

    (void)state;
    assert_int_equal(gy_loop_init(&loop), 0);
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
        assert_non_null(d[i] = gy_discovery_start(&loop, specs[i], on_update, &seen, err, sizeof(err)));
    usleep(300000); /* failing and sleeping in their backoff */
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        uint64_t t0 = gy_now_ms();
        gy_discovery_stop(d[i]);
        if (gy_now_ms() - t0 > 1000)
            fail_msg("%s took %llu ms to stop", specs[i], (unsigned long long)(gy_now_ms() - t0));
    }
    assert_int_equal(seen.calls, 0);
    gy_loop_dispose(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_specs),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_spec_url),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_instances),
        cmocka_unit_test(test_snapshot_sorted_and_deduplicated),
        cmocka_unit_test(test_file_source_delivers_on_the_loop),
        cmocka_unit_test(test_stop_is_prompt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
