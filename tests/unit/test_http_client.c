/* The proxy's own HTTP/1.1 client (http/client.c) against a loopback server thread that answers
 * each connection with canned bytes: lengths, chunked and close-delimited bodies, 1xx, bad and
 * truncated answers, oversized ones, silence (timeout and cancel), and URLs it must refuse. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/time.h"
#include "http/client.h"

struct server {
    int fd;
    int port;
    pthread_t thread;
    const char *answer;      /* sent whole after the request head arrives; NULL: say nothing */
    size_t answer_len;
    unsigned hold_ms;        /* keep the connection open this long after answering */
    bool answer_first;       /* send the answer as soon as the connection is accepted */
    char request[4096];      /* what the client sent (head and body) */
    size_t request_len;
};

static void *serve(void *arg)
{
    struct server *s = arg;
    int c = accept(s->fd, NULL, NULL);

    if (c < 0)
        return NULL;
    /* the head, and a body of the length it says */
    while (!s->answer_first && s->request_len < sizeof(s->request) - 1) {
        ssize_t k = recv(c, s->request + s->request_len, sizeof(s->request) - 1 - s->request_len, 0);
        if (k <= 0)
            break;
        s->request_len += (size_t)k;
        s->request[s->request_len] = '\0';
        char *end = strstr(s->request, "\r\n\r\n");
        const char *cl = strstr(s->request, "Content-Length: ");
        if (end != NULL && (cl == NULL || s->request_len >= (size_t)(end + 4 - s->request) + strtoul(cl + 16, NULL, 10)))
            break;
    }
    if (s->answer != NULL)
        (void)!send(c, s->answer, s->answer_len, MSG_NOSIGNAL);
    usleep(s->hold_ms * 1000);
    close(c);
    return NULL;
}

static void server_start_how(struct server *s, const char *answer, size_t len, unsigned hold_ms, bool answer_first)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);

    memset(s, 0, sizeof(*s));
    s->answer = answer;
    s->answer_len = answer ? (len ? len : strlen(answer)) : 0;
    s->hold_ms = hold_ms;
    s->answer_first = answer_first;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 4), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_start(struct server *s, const char *answer, size_t len, unsigned hold_ms)
{
    server_start_how(s, answer, len, hold_ms, false);
}

static void server_stop(struct server *s)
{
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    close(s->fd);
}

/* GETs /p?q=1 from a server answering `answer`; returns the rc, with status, body and why. */
static int fetch(struct server *s, const char *answer, size_t len, size_t max, uint32_t timeout_ms, int *status,
                 struct gy_bytes *out, char *why)
{
    char url[128];

    server_start(s, answer, len, answer ? 0 : timeout_ms + 500);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/p?q=1", s->port);
    struct gy_http_request req = { .method = "GET", .url = url, .timeout_ms = timeout_ms };
    *out = (struct gy_bytes){ .max = max };
    int rc = gy_http_fetch(&req, status, out, why, 200);
    server_stop(s);
    return rc;
}

static void test_bodies(void **state)
{
    static const struct {
        const char *answer;
        int status;
        const char *body;
    } cases[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\nx-t: 1\r\n\r\n", 200, "hello" },
        { "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", 200, "until the end" },
        { "HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", 304, "" },
        { "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 503 No\r\nContent-Length: 4\r\n\r\ndown", 503, "down" },
        { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA BYTES IGNORED", 200, "ok" },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct server s;
        struct gy_bytes b;
        char why[200];
        int status = -1;
        assert_int_equal(fetch(&s, cases[i].answer, 0, 1024, 5000, &status, &b, why), 0);
        assert_int_equal(status, cases[i].status);
        assert_int_equal(b.len, strlen(cases[i].body));
        if (b.len)
            assert_string_equal(b.p, cases[i].body);
        gy_bytes_free(&b);
        /* the request as sent */
        assert_non_null(strstr(s.request, "GET /p?q=1 HTTP/1.1\r\n"));
        assert_non_null(strstr(s.request, "Connection: close\r\n"));
        char host[64];
        snprintf(host, sizeof(host), "Host: 127.0.0.1:%d\r\n", s.port);
        assert_non_null(strstr(s.request, host));
    }
}

static void test_post_sends_its_body(void **state)
{
    struct server s;
    struct gy_bytes b = { .max = 100 };
    char url[128], why[200];
    int status;

    (void)state;
    server_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 0, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1.0/ca/sign", s.port);
    struct gy_http_request req = { .method = "POST", .url = url, .content_type = "application/json",
                                   .body = "{\"csr\":\"x\"}", .body_len = 11, .user_agent = "gyrus-test" };
    assert_int_equal(gy_http_fetch(&req, &status, &b, why, sizeof(why)), 0);
    server_stop(&s);
    assert_int_equal(status, 200);
    assert_string_equal(b.p, "{}");
    gy_bytes_free(&b);
    assert_non_null(strstr(s.request, "POST /v1.0/ca/sign HTTP/1.1\r\n"));
    assert_non_null(strstr(s.request, "Content-Type: application/json\r\nContent-Length: 11\r\n"));
    assert_non_null(strstr(s.request, "User-Agent: gyrus-test\r\n"));
    assert_non_null(strstr(s.request, "\r\n\r\n{\"csr\":\"x\"}"));
}

static void test_bad_answers(void **state)
{
    static const struct {
        const char *answer;
        size_t max;
        int rc;
        const char *why;
    } cases[] = {
        { "HTTP/1.1 2OO OK\r\n\r\n", 1024, GY_EPARSE, "malformed answer: " },
        { "SSH-2.0-OpenSSH_9.2\r\n", 1024, GY_EPARSE, "malformed answer: " },
        { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 1024, GY_ECLOSED, "connection closed in the middle of the answer" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n", 1024, GY_EPARSE, "malformed answer: bad chunked body" },
        { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 4, GY_ETOOBIG, "answer over 4 bytes" },
        { "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n0123456789", 4, GY_ETOOBIG, "answer over 4 bytes" },
        { "", 1024, GY_ECLOSED, "connection closed before an answer" },
        { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n", 1024, GY_EPARSE, "malformed answer" },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct server s;
        struct gy_bytes b;
        char why[200];
        int status;
        int rc = fetch(&s, cases[i].answer, 0, cases[i].max, 5000, &status, &b, why);
        if (rc != cases[i].rc || strstr(why, cases[i].why) == NULL)
            fail_msg("case %zu: want %d \"%s\", got %d \"%s\"", i, cases[i].rc, cases[i].why, rc, why);
        gy_bytes_free(&b);
    }
}

static void test_silence_times_out(void **state)
{
    struct server s;
    struct gy_bytes b;
    char why[200];
    int status;

    (void)state;
    uint64_t t0 = gy_now_ms();
    assert_int_equal(fetch(&s, NULL, 0, 1024, 300, &status, &b, why), GY_ETIMEDOUT);
    assert_string_equal(why, "timed out after 300 ms");
    assert_true(gy_now_ms() - t0 >= 300);
    gy_bytes_free(&b);
}

static atomic_int cancel_calls;
static bool cancel_after_some(void *arg)
{
    (void)arg;
    return atomic_fetch_add(&cancel_calls, 1) >= 3;
}

static void test_cancel_ends_a_wait(void **state)
{
    struct server s;
    struct gy_bytes b = { .max = 1024 };
    char url[128], why[200];
    int status;

    (void)state;
    server_start(&s, NULL, 0, 3000);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s.port);
    struct gy_http_request req = { .method = "GET", .url = url, .timeout_ms = 60000, .cancel = cancel_after_some };
    uint64_t t0 = gy_now_ms();
    assert_int_equal(gy_http_fetch(&req, &status, &b, why, sizeof(why)), GY_ECANCELED);
    assert_true(gy_now_ms() - t0 < 2500); /* long before the 60 s timeout; a few 200 ms ticks */
    assert_string_equal(why, "cancelled");
    server_stop(&s);
}

static void test_refused_and_bad_urls(void **state)
{
    static const struct {
        const char *url;
        int rc;
        const char *why;
    } cases[] = {
        { "https://127.0.0.1:1/", GY_EIO, "cannot connect to 127.0.0.1:1" },
        { "ftp://127.0.0.1/", GY_EINVAL, "not an http:// or https:// URL" },
        { "http:///path", GY_EINVAL, "no usable host" },
        { "http://user@127.0.0.1/", GY_EINVAL, "user info" },
        { "http://127.0.0.1:0/", GY_EINVAL, "bad port" },
        { "http://127.0.0.1:99999/", GY_EINVAL, "bad port" },
        { "http://127.0.0.1:8x/", GY_EINVAL, "bad port" },
        { "http://[::1/", GY_EINVAL, "bad IPv6 host" },
        { "http://127.0.0.1:1/a b", GY_EINVAL, "spaces or control characters" },
        { "http://host.invalid./", GY_EIO, "cannot resolve host.invalid." },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gy_bytes b = { .max = 10 };
        char why[200];
        int status;
        struct gy_http_request req = { .method = "GET", .url = cases[i].url, .timeout_ms = 2000 };
        assert_int_equal(gy_http_fetch(&req, &status, &b, why, sizeof(why)), cases[i].rc);
        if (strstr(why, cases[i].why) == NULL)
            fail_msg("%s: want \"%s\" in \"%s\"", cases[i].url, cases[i].why, why);
    }
}

/* https:// against servers that do not speak TLS, and trust anchors that do not load. (The
 * handshake that verifies is shown end to end: tests/integration/test_control_tls.py.) */
static void test_https_failures(void **state)
{
    struct server s;
    struct gy_bytes b = { .max = 100 };
    char url[128], why[300], want[128];
    int status;

    (void)state;
    /* a plain HTTP server: its answer is no ServerHello */
    server_start_how(&s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0, true);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", s.port);
    struct gy_http_request req = { .method = "GET", .url = url, .timeout_ms = 3000 };
    assert_int_equal(gy_http_fetch(&req, &status, &b, why, sizeof(why)), GY_EIO);
    snprintf(want, sizeof(want), "TLS handshake with 127.0.0.1:%d failed: ", s.port);
    if (strncmp(why, want, strlen(want)) != 0)
        fail_msg("want \"%s...\", got \"%s\"", want, why);
    server_stop(&s);

    /* a server that says nothing: the handshake times out */
    server_start(&s, NULL, 0, 1500);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", s.port);
    req.timeout_ms = 300;
    assert_int_equal(gy_http_fetch(&req, &status, &b, why, sizeof(why)), GY_ETIMEDOUT);
    snprintf(want, sizeof(want), "TLS handshake with 127.0.0.1:%d: timed out", s.port);
    assert_string_equal(why, want);
    server_stop(&s);

    /* trust anchors that cannot be read */
    server_start(&s, NULL, 0, 200);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", s.port);
    req.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(gy_http_fetch(&req, &status, &b, why, sizeof(why)), GY_ECONFIG);
    assert_non_null(strstr(why, "/nonexistent/ca.pem: cannot load trust anchors"));
    server_stop(&s);
    gy_bytes_free(&b);
}

static void test_connection_refused(void **state)
{
    struct server s;
    struct gy_bytes b = { .max = 10 };
    char url[128], why[200];
    int status;

    (void)state;
    server_start(&s, "x", 0, 0); /* a port that was just free: bound, then closed */
    int port = s.port;
    shutdown(s.fd, SHUT_RDWR);
    close(s.fd);
    pthread_join(s.thread, NULL);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    struct gy_http_request req = { .method = "GET", .url = url, .timeout_ms = 2000 };
    assert_int_equal(gy_http_fetch(&req, &status, &b, why, sizeof(why)), GY_EIO);
    char want[96];
    snprintf(want, sizeof(want), "cannot connect to 127.0.0.1:%d: Connection refused", port);
    assert_string_equal(why, want);
}

static void test_url_escape(void **state)
{
    char *e = gy_url_escape("a b&c=d/é~-._");

    (void)state;
    assert_string_equal(e, "a%20b%26c%3Dd%2F%C3%A9~-._");
    free(e);
    e = gy_url_escape("");
    assert_string_equal(e, "");
    free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_post_sends_its_body),
        cmocka_unit_test(test_bad_answers),
        cmocka_unit_test(test_silence_times_out),
        cmocka_unit_test(test_cancel_ends_a_wait),
        cmocka_unit_test(test_refused_and_bad_urls),
        cmocka_unit_test(test_https_failures),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_url_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
