/* TLS: the SNI extension parser, cipher list translation, SNI lookup order, the transport over a
 * socketpair (handshake, peer identity, reads, EOF), session tickets across key rotations. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/err.h"
#include "mesh/config.h"
#include "mesh/mesh.h"
#include "tls/tls_int.h"

/* ---- SNI parser ---- */

static void test_sni_parse(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        const char *want; /* NULL: malformed */
    } v[] = {
        { "\x00\x0e\x00\x00\x0b" "example.com", 16, "example.com" },
        { "\x00\x0e\x00\x00\x0b" "EXAMPLE.com", 16, "example.com" },
        { "\x00\x0f\x00\x00\x0c" "example.com.", 17, "example.com" },
        { "\x00\x0e\x00\x00\x0b" "example.com", 15, NULL },    /* truncated */
        { "\x00\x0f\x00\x00\x0b" "example.com", 16, NULL },    /* list length wrong */
        { "\x00\x0e\x00\x00\x0c" "example.com", 16, NULL },    /* name longer than the list */
        { "\x00\x03\x00\x00\x00", 5, NULL },                   /* empty name */
        { "\x00\x04\x00\x00\x01" ".", 6, NULL },               /* only a dot */
        { "\x00\x06\x00\x00\x03" "a\x00" "b", 8, NULL },       /* NUL */
        { "\x00\x06\x00\x00\x03" "a b", 8, NULL },             /* space */
        { "\x00\x0a\x05\x00\x01" "x" "\x00\x00\x01" "y", 12, "y" }, /* another name type first */
        { "\x00", 1, NULL },
        { "", 0, NULL },
    };
    char name[64];

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        int rc = tls_sni_parse((const unsigned char *)v[i].in, v[i].len, name, sizeof(name));
        if (v[i].want == NULL) {
            assert_int_equal(rc, -1);
        } else {
            assert_int_equal(rc, 0);
            assert_string_equal(name, v[i].want);
        }
    }
    /* longer than the buffer */
    unsigned char big[2 + 3 + 100];
    big[0] = 0, big[1] = 103, big[2] = 0, big[3] = 0, big[4] = 100;
    memset(big + 5, 'a', 100);
    assert_int_equal(tls_sni_parse(big, sizeof(big), name, sizeof(name)), -1);
}

static void test_cipher_list(void **state)
{
    char *s = tls_cipher_list("[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]:AES256-GCM-SHA384");

    (void)state;
    assert_string_equal(s, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:AES256-GCM-SHA384");
    free(s);
    s = tls_cipher_list("A, B");
    assert_string_equal(s, "A:B");
    free(s);
}

/* ---- a small PKI in memory, written to files ---- */

static char dir[64];

static EVP_PKEY *ec_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *san, bool ca)
{
    X509 *x = X509_new();
    X509V3_CTX ctx;
    static long serial = 1;

    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : X509_get_subject_name(x));
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    if (san != NULL) {
        e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static void write_pem(const char *name, X509 *x, EVP_PKEY *k)
{
    char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_non_null(f = fopen(path, "w"));
    if (x != NULL)
        PEM_write_X509(f, x);
    else
        PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
}

static int setup_pki(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/gyrus-unit-tls-XXXXXX");
    assert_non_null(mkdtemp(dir));
    EVP_PKEY *cak = ec_key(), *sk = ec_key(), *ck = ec_key();
    X509 *ca = make_cert("unit CA", cak, NULL, NULL, NULL, true);
    X509 *srv = make_cert("server.unit", sk, ca, cak, "DNS:localhost", false);
    X509 *cli = make_cert("client.unit", ck, ca, cak, "DNS:client.unit,URI:spiffe://unit.test/ns/a/sa/b", false);
    write_pem("ca.pem", ca, NULL);
    write_pem("srv.pem", srv, NULL);
    write_pem("srv.key", NULL, sk);
    write_pem("cli.pem", cli, NULL);
    write_pem("cli.key", NULL, ck);
    X509_free(ca), X509_free(srv), X509_free(cli);
    EVP_PKEY_free(cak), EVP_PKEY_free(sk), EVP_PKEY_free(ck);
    return 0;
}

static int teardown_pki(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A proxy with a TLS listener that requires client certificates, and a TLS cluster with one. */
static struct gy_config *compile_tls_config(void)
{
    char text[4096];
    json_t *objects = NULL;
    struct gy_config *cfg = NULL;
    struct gy_mesh_error me;
    char err[512];

    snprintf(text, sizeof(text),
             "[{\"kind\":\"listener\",\"listener_key\":\"l\",\"port\":1,\"ip\":\"127.0.0.1\",\"domain_keys\":[\"d\"],"
             "  \"ssl_config\":{\"cert_key_pairs\":[{\"certificate_path\":\"%s/srv.pem\",\"key_path\":\"%s/srv.key\"}],"
             "  \"trust_file\":\"%s/ca.pem\",\"require_client_certs\":true}},"
             "{\"kind\":\"domain\",\"domain_key\":\"d\",\"name\":\"*\",\"port\":1},"
             "{\"kind\":\"proxy\",\"proxy_key\":\"p\",\"name\":\"p\",\"listener_keys\":[\"l\"]},"
             "{\"kind\":\"cluster\",\"cluster_key\":\"c\",\"instances\":[{\"host\":\"127.0.0.1\",\"port\":1}],"
             "  \"ssl_config\":{\"cert_key_pairs\":[{\"certificate_path\":\"%s/cli.pem\",\"key_path\":\"%s/cli.key\"}],"
             "  \"trust_file\":\"%s/ca.pem\",\"sni\":\"localhost\"}},"
             "{\"kind\":\"route\",\"route_key\":\"r\",\"domain_key\":\"d\",\"route_match\":{\"path\":\"/\"},"
             "  \"rules\":[{\"constraints\":{\"light\":[{\"cluster_key\":\"c\",\"weight\":1}]}}]}]",
             dir, dir, dir, dir, dir, dir);
    assert_int_equal(gy_mesh_parse(text, strlen(text), "unit", &objects, &me), 0);
    if (gy_mesh_validate(objects, &me) != 0)
        fail_msg("%s", me.msg);
    assert_int_equal(gy_config_compile(objects, "p", &cfg, &me), 0);
    json_decref(objects);
    if (gy_tls_attach(cfg, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_non_null(cfg->listeners[0].tls);
    assert_non_null(cfg->clusters[0].tls);
    return cfg;
}

static void release(struct gy_config *cfg)
{
    gy_tls_detach(cfg);
    gy_config_unref(cfg);
}

/* Drives both handshakes over a non-blocking socketpair. */
static void handshake_pair(struct gy_transport *s, int sfd, struct gy_transport *c, int cfd)
{
    int rs = GY_EAGAIN, rc = GY_EAGAIN;

    for (int i = 0; i < 100 && (rs == GY_EAGAIN || rc == GY_EAGAIN); i++) {
        bool ww;
        if (rc == GY_EAGAIN)
            rc = c->ops->handshake(c, cfd, &ww);
        if (rs == GY_EAGAIN)
            rs = s->ops->handshake(s, sfd, &ww);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(rs, 0);
}

static void test_transport_over_socketpair(void **state)
{
    struct gy_config *cfg = compile_tls_config();
    int sv[2];
    char buf[65536];
    bool more;

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct gy_transport *s = gy_tls_server(cfg->listeners[0].tls);
    struct gy_transport *c = gy_tls_client(cfg->clusters[0].tls, "127.0.0.1", GY_TLS_ALPN_HTTP11);
    assert_non_null(s);
    assert_non_null(c);
    /* nothing yet */
    assert_int_equal(s->ops->read(s, sv[0], buf, sizeof(buf), &more), GY_EAGAIN);
    handshake_pair(s, sv[0], c, sv[1]);
    assert_string_equal(gy_tls_alpn(s), "http/1.1");
    assert_string_equal(gy_tls_alpn(c), "http/1.1");
    const struct gy_tls_peer *peer = gy_tls_peer(s);
    assert_true(peer->verified);
    assert_string_equal(peer->subject, "CN=client.unit");
    assert_string_equal(peer->spiffe_id, "spiffe://unit.test/ns/a/sa/b");
    assert_ptr_equal(gy_tls_peer(s), peer); /* computed once */
    assert_string_equal(gy_tls_peer(c)->subject, "CN=server.unit");
    assert_null(gy_tls_peer(c)->spiffe_id);

    /* several records in the socket: one read takes them all (edge-triggered epoll will not tell again) */
    static char msg[40000];
    memset(msg, 'x', sizeof(msg));
    size_t sent = 0;
    while (sent < sizeof(msg)) {
        ssize_t n = c->ops->write(c, sv[1], msg + sent, sizeof(msg) - sent);
        assert_true(n > 0);
        sent += (size_t)n;
    }
    ssize_t n = s->ops->read(s, sv[0], buf, sizeof(buf), &more);
    assert_int_equal(n, (ssize_t)sizeof(msg));
    assert_false(more);
    /* a small buffer: the rest is pending inside the transport */
    assert_int_equal(c->ops->write(c, sv[1], "hello world", 11), 11);
    n = s->ops->read(s, sv[0], buf, 5, &more);
    assert_int_equal(n, 5);
    n = s->ops->read(s, sv[0], buf, sizeof(buf), &more);
    assert_int_equal(n, 6);
    assert_memory_equal(buf, " world", 6);
    /* close_notify is EOF */
    c->ops->shutdown(c, sv[1]);
    assert_int_equal(s->ops->read(s, sv[0], buf, sizeof(buf), &more), 0);
    assert_int_equal(s->ops->read(s, sv[0], buf, sizeof(buf), &more), 0);
    s->ops->destroy(s);
    c->ops->destroy(c);
    close(sv[0]), close(sv[1]);
    release(cfg);
}

/* Connections meant for HTTP/2 offer h2 first (the listener offers h2 and http/1.1). */
static void test_client_alpn_offers(void **state)
{
    static const enum gy_tls_alpn_offer offers[] = { GY_TLS_ALPN_H2_HTTP11, GY_TLS_ALPN_H2, GY_TLS_ALPN_HTTP11 };
    static const char *const want[] = { "h2", "h2", "http/1.1" };
    struct gy_config *cfg = compile_tls_config();

    (void)state;
    for (size_t i = 0; i < sizeof(offers) / sizeof(offers[0]); i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        struct gy_transport *s = gy_tls_server(cfg->listeners[0].tls);
        struct gy_transport *c = gy_tls_client(cfg->clusters[0].tls, "127.0.0.1", offers[i]);
        assert_non_null(s);
        assert_non_null(c);
        handshake_pair(s, sv[0], c, sv[1]);
        assert_string_equal(gy_tls_alpn(c), want[i]);
        assert_string_equal(gy_tls_alpn(s), want[i]);
        s->ops->destroy(s);
        c->ops->destroy(c);
        close(sv[0]), close(sv[1]);
    }
    release(cfg);
}

static void test_client_without_certificate_is_refused(void **state)
{
    struct gy_config *cfg = compile_tls_config();
    int sv[2], rs = GY_EAGAIN, rc = GY_EAGAIN;
    bool ww, more;
    char buf[16];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct gy_transport *s = gy_tls_server(cfg->listeners[0].tls);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *cssl = SSL_new(cctx);
    SSL_set_fd(cssl, sv[1]);
    SSL_set_connect_state(cssl);
    for (int i = 0; i < 100 && rs == GY_EAGAIN; i++) {
        if (rc == GY_EAGAIN && SSL_do_handshake(cssl) == 1)
            rc = 0;
        rs = s->ops->handshake(s, sv[0], &ww);
    }
    assert_int_equal(rs, GY_EIO);
    assert_int_equal(s->ops->read(s, sv[0], buf, sizeof(buf), &more), GY_EIO);
    struct tls_owner *o = cfg->listeners[0].tls;
    assert_int_equal(atomic_load(&o->ctr->failures[TLS_FAIL_NO_CERT]), 1);
    SSL_free(cssl);
    SSL_CTX_free(cctx);
    ERR_clear_error();
    s->ops->destroy(s);
    close(sv[0]), close(sv[1]);
    release(cfg);
}

/* ---- session tickets: raw SSL over memory BIOs against the listener's context ---- */

static bool resumed_with(SSL_CTX *sctx, SSL_CTX *cctx, SSL_SESSION **sess)
{
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    BIO *a, *b;
    char buf[16];
    size_t n;

    assert_int_equal(BIO_new_bio_pair(&a, 0, &b, 0), 1);
    SSL_set_bio(s, a, a);
    SSL_set_bio(c, b, b);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    if (*sess != NULL)
        SSL_set_session(c, *sess);
    for (int i = 0; i < 50; i++) {
        SSL_do_handshake(c);
        SSL_do_handshake(s);
    }
    assert_int_equal(SSL_is_init_finished(c), 1);
    SSL_write_ex(s, "x", 1, &n); /* TLS 1.3 tickets travel after the handshake */
    SSL_read_ex(c, buf, sizeof(buf), &n);
    bool reused = SSL_session_reused(c);
    SSL_SESSION_free(*sess);
    *sess = SSL_get1_session(c);
    SSL_shutdown(c); /* else OpenSSL marks the session not resumable */
    SSL_free(s);
    SSL_free(c);
    return reused;
}

static void test_ticket_keys_rotate(void **state)
{
    struct gy_config *cfg = compile_tls_config();
    struct tls_owner *o = cfg->listeners[0].tls;
    SSL_CTX *sctx = o->cur->ctxs[0].ctx;
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    char path[128];
    SSL_SESSION *sess = NULL;

    (void)state;
    snprintf(path, sizeof(path), "%s/cli.pem", dir);
    assert_int_equal(SSL_CTX_use_certificate_file(cctx, path, SSL_FILETYPE_PEM), 1);
    snprintf(path, sizeof(path), "%s/cli.key", dir);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(cctx, path, SSL_FILETYPE_PEM), 1);
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT);
    SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF); /* tickets only */
    for (int v = 0; v < 2; v++) {
        SSL_CTX_set_max_proto_version(cctx, v == 0 ? TLS1_2_VERSION : TLS1_3_VERSION);
        assert_false(resumed_with(sctx, cctx, &sess));
        assert_true(resumed_with(sctx, cctx, &sess));
        tls_tickets_rotate();                       /* the previous key still decrypts */
        assert_true(resumed_with(sctx, cctx, &sess)); /* ... and the ticket is renewed under the new one */
        tls_tickets_rotate();
        tls_tickets_rotate();
        assert_true(resumed_with(sctx, cctx, &sess)); /* two generations old: still accepted */
        tls_tickets_rotate();
        tls_tickets_rotate();
        tls_tickets_rotate();
        assert_false(resumed_with(sctx, cctx, &sess)); /* three: a full handshake */
        SSL_SESSION_free(sess);
        sess = NULL;
    }
    SSL_CTX_free(cctx);
    release(cfg);
}

static void test_attach_errors_name_the_field(void **state)
{
    const char *text = "[{\"kind\":\"listener\",\"listener_key\":\"l\",\"port\":1,\"ip\":\"127.0.0.1\",\"domain_keys\":[\"d\"]},"
                       "{\"kind\":\"domain\",\"domain_key\":\"d\",\"name\":\"x.test\",\"port\":1,\"ssl_config\":{"
                       "\"cert_key_pairs\":[{\"certificate_path\":\"/nonexistent.pem\",\"key_path\":\"/k\"}]}},"
                       "{\"kind\":\"proxy\",\"proxy_key\":\"p\",\"name\":\"p\",\"listener_keys\":[\"l\"]}]";
    json_t *objects = NULL;
    struct gy_config *cfg = NULL;
    struct gy_mesh_error me;
    char err[512];

    (void)state;
    assert_int_equal(gy_mesh_parse(text, strlen(text), "unit", &objects, &me), 0);
    assert_int_equal(gy_config_compile(objects, "p", &cfg, &me), 0);
    json_decref(objects);
    assert_int_equal(gy_tls_attach(cfg, err, sizeof(err)), GY_ECONFIG);
    assert_string_equal(err, "domain \"d\": ssl_config.cert_key_pairs[0].certificate_path: cannot read "
                             "/nonexistent.pem: No such file or directory");
    assert_null(cfg->listeners[0].tls);
    release(cfg);
}

/* `secret`: the proxy's SVID on both sides, SPIFFE IDs checked against the trust domain or subject_names. */
static struct gy_config *compile_secret_config(const char *listener_secret, const char *cluster_secret, char *err,
                                               size_t errlen)
{
    char text[4096];
    json_t *objects = NULL;
    struct gy_config *cfg = NULL;
    struct gy_mesh_error me;

    snprintf(text, sizeof(text),
             "[{\"kind\":\"listener\",\"listener_key\":\"l\",\"port\":1,\"ip\":\"127.0.0.1\",\"domain_keys\":[\"d\"],"
             "  \"secret\":%s},"
             "{\"kind\":\"domain\",\"domain_key\":\"d\",\"name\":\"*\",\"port\":1},"
             "{\"kind\":\"proxy\",\"proxy_key\":\"p\",\"name\":\"p\",\"listener_keys\":[\"l\"]},"
             "{\"kind\":\"cluster\",\"cluster_key\":\"c\",\"instances\":[{\"host\":\"127.0.0.1\",\"port\":1}],"
             "  \"secret\":%s},"
             "{\"kind\":\"route\",\"route_key\":\"r\",\"domain_key\":\"d\",\"route_match\":{\"path\":\"/\"},"
             "  \"rules\":[{\"constraints\":{\"light\":[{\"cluster_key\":\"c\",\"weight\":1}]}}]}]",
             listener_secret, cluster_secret);
    assert_int_equal(gy_mesh_parse(text, strlen(text), "unit", &objects, &me), 0);
    if (gy_mesh_validate(objects, &me) != 0)
        fail_msg("%s", me.msg);
    assert_int_equal(gy_config_compile(objects, "p", &cfg, &me), 0);
    json_decref(objects);
    if (gy_tls_attach(cfg, err, errlen) != 0) {
        release(cfg);
        return NULL;
    }
    return cfg;
}

static int secret_pair(const char *lsecret, const char *csecret, char *spiffe, size_t len)
{
    char err[512];
    struct gy_config *cfg = compile_secret_config(lsecret, csecret, err, sizeof(err));
    int sv[2], rs = GY_EAGAIN, rc = GY_EAGAIN;

    if (cfg == NULL)
        fail_msg("%s", err);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct gy_transport *s = gy_tls_server(cfg->listeners[0].tls);
    struct gy_transport *c = gy_tls_client(cfg->clusters[0].tls, "127.0.0.1", GY_TLS_ALPN_HTTP11);
    for (int i = 0; i < 100 && (rs == GY_EAGAIN || rc == GY_EAGAIN); i++) {
        bool ww;
        if (rc == GY_EAGAIN)
            rc = c->ops->handshake(c, sv[1], &ww);
        if (rs == GY_EAGAIN)
            rs = s->ops->handshake(s, sv[0], &ww);
        if (rc == GY_EIO || rs == GY_EIO)
            break;
    }
    if (rc == 0 && rs == 0)
        snprintf(spiffe, len, "%s", gy_tls_peer(s)->spiffe_id ? gy_tls_peer(s)->spiffe_id : "");
    s->ops->destroy(s);
    c->ops->destroy(c);
    close(sv[0]), close(sv[1]);
    release(cfg);
    ERR_clear_error();
    return rc == 0 && rs == 0 ? 0 : -1;
}

static void test_secret_uses_the_svid(void **state)
{
    char cert[128], key[128], bundle[128], spiffe[256] = "", err[512];

    (void)state;
    snprintf(cert, sizeof(cert), "%s/cli.pem", dir);
    snprintf(key, sizeof(key), "%s/cli.key", dir);
    snprintf(bundle, sizeof(bundle), "%s/ca.pem", dir);
    assert_null(compile_secret_config("{}", "{}", err, sizeof(err))); /* no SVID yet */
    assert_non_null(strstr(err, "secret: this proxy has no SVID"));
    gy_tls_set_identity(cert, key, bundle);
    assert_int_equal(secret_pair("{\"secret_validation_name\":\"spiffe://unit.test\"}",
                                 "{\"subject_names\":[\"spiffe://unit.test/ns/a/sa/b\"]}", spiffe, sizeof(spiffe)), 0);
    assert_string_equal(spiffe, "spiffe://unit.test/ns/a/sa/b");
    /* the server is not the one the cluster expects */
    assert_int_equal(secret_pair("{\"secret_validation_name\":\"spiffe://unit.test\"}",
                                 "{\"subject_names\":[\"spiffe://unit.test/ns/a/sa/other\"]}", spiffe, sizeof(spiffe)),
                     -1);
    /* the client is from another trust domain */
    assert_int_equal(secret_pair("{\"secret_validation_name\":\"spiffe://other.test\"}",
                                 "{\"secret_validation_name\":\"spiffe://unit.test\"}", spiffe, sizeof(spiffe)), -1);
    gy_tls_set_identity(NULL, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sni_parse),
        cmocka_unit_test(test_cipher_list),
        cmocka_unit_test(test_transport_over_socketpair),
        cmocka_unit_test(test_client_alpn_offers),
        cmocka_unit_test(test_client_without_certificate_is_refused),
        cmocka_unit_test(test_ticket_keys_rotate),
        cmocka_unit_test(test_attach_errors_name_the_field),
        cmocka_unit_test(test_secret_uses_the_svid),
    };
    int rc = cmocka_run_group_tests(tests, setup_pki, teardown_pki);

    gy_tls_shutdown();
    return rc;
}
