/*
 * Clusters: TLS towards instances when the cluster has `require_tls: true` or `ssl_config`.
 *
 * The upstream certificate is always verified: against ssl_config.trust_file, else the system
 * store. The name is verified too when ssl_config.sni is given (against it), or when the system
 * store is used (against the instance host: a public CA vouches for names, so a chain alone
 * proves nothing). With a private trust_file and no sni, the chain is what is checked (Envoy's
 * and Grey Matter's behaviour: mesh certificates rarely carry the instances' addresses).
 * SNI is ssl_config.sni, else the instance host when it is a name. ALPN offers http/1.1 (the
 * context's default), or "h2" and "http/1.1" for connections meant for HTTP/2 (clusters with
 * http2_protocol_options, or USE_DOWNSTREAM_PROTOCOL for an HTTP/2 client): the proxy runs
 * whichever codec the server picked (proxy/up_h2.c), "h2" only for gRPC health checks.
 * Sessions resume: the last session of each host (per cluster TLS setup, so a reload or a new
 * certificate starts afresh) is offered on its next connection, which saves the key exchange and
 * the certificate checks; a server that refuses it gets a full handshake.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "core/err.h"
#include "core/log.h"
#include "tls/tls_int.h"

static bool is_ip(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int tls_client_spec(const struct gy_config *cfg, const struct gy_cluster *c, json_t **spec, char *err, size_t errlen)
{
    const json_t *co = tls_find_object(cfg->objects, "cluster", "cluster_key", c->key);
    const json_t *ssl = json_object_get(co, "ssl_config");
    bool require = json_is_true(json_object_get(co, "require_tls"));
    bool secret = json_is_object(json_object_get(co, "secret"));
    char what[300];

    json_t *made = NULL;

    *spec = NULL;
    if (!json_is_object(ssl))
        ssl = NULL;
    if (secret && ssl == NULL) {
        if ((ssl = made = tls_secret_ssl(json_object_get(co, "secret"), false)) == NULL) {
            snprintf(err, errlen, "cluster \"%s\": secret: this proxy has no SVID (it gets one from the mesh CA with "
                                  "--control and a join token); give the cluster an ssl_config with certificate files "
                                  "instead", c->key);
            return GY_ECONFIG;
        }
    } else if (secret) {
        gy_warn("cluster \"%s\": secret is ignored: TLS comes from ssl_config", c->key);
    }
    if (ssl == NULL && !require)
        return 0;
    snprintf(what, sizeof(what), "cluster \"%s\"", c->key);
    *spec = json_pack("{s:s,s:O?}", "what", what, "ssl", ssl);
    json_decref(made);
    if (*spec == NULL) {
        snprintf(err, errlen, "%s: out of memory", what);
        return GY_ENOMEM;
    }
    return 0;
}

int tls_client_build(struct tls_owner *o, struct tls_set **out, char *err, size_t errlen)
{
    const json_t *ssl = json_object_get(o->spec, "ssl");
    const char *sni = json_string_value(json_object_get(ssl, "sni"));
    struct tls_set *s = tls_set_new(false, o->ctr);
    struct tls_build b = { o->what, err, errlen, s };
    bool system_store = false;

    if (json_is_null(ssl))
        ssl = NULL;
    if (s == NULL || (s->ctxs = calloc(1, sizeof(*s->ctxs))) == NULL ||
        (sni != NULL && sni[0] != '\0' && (s->sni = strdup(sni)) == NULL)) {
        snprintf(err, errlen, "%s: out of memory", o->what);
        goto fail;
    }
    if (tls_ctx_client(&b, ssl, &s->ctxs[0], &system_store) != 0)
        goto fail;
    s->nctxs = 1;
    s->verify_names = system_store || s->sni != NULL;
    *out = s;
    return 0;
fail:
    tls_set_unref(s);
    return GY_ECONFIG;
}

static int set_alpn(SSL *ssl, enum gy_tls_alpn_offer alpn)
{
    static const unsigned char h2_h1[] = "\x02h2\x08http/1.1", h2[] = "\x02h2";

    switch (alpn) {
    case GY_TLS_ALPN_H2_HTTP11:
        return SSL_set_alpn_protos(ssl, h2_h1, sizeof(h2_h1) - 1) == 0 ? 0 : -1; /* 0 is success here */
    case GY_TLS_ALPN_H2:
        return SSL_set_alpn_protos(ssl, h2, sizeof(h2) - 1) == 0 ? 0 : -1;
    default:
        return 0; /* the context offers http/1.1 */
    }
}

/* ---- session resumption: the last session of each upstream host, tried on its next connection ---- */

#define SESSIONS_MAX 256 /* hosts per cluster remembered; past it, the oldest entries are replaced */

struct sess_key {
    struct tls_set *set;            /* alive as long as the SSL (its connection holds a reference) */
    char host[];
};

static int key_index = -1;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void key_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

static void key_init(void)
{
    key_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, key_free);
}

static struct tls_session *find_session(struct tls_set *set, const char *host)
{
    for (size_t i = 0; i < set->nsessions; i++)
        if (strcmp(set->sessions[i].host, host) == 0)
            return &set->sessions[i];
    return NULL;
}

/* A copy is kept, not the connection's own session: OpenSSL marks that one not resumable when
 * the connection ends without close_notify (an upstream that just closes), which would spoil
 * the entry; the copy's ticket stays good. Returns 0: OpenSSL keeps its reference. */
int tls_client_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct sess_key *k = key_index >= 0 ? SSL_get_ex_data(ssl, key_index) : NULL;
    struct tls_session *e;
    SSL_SESSION *copy;

    if (k == NULL || !SSL_SESSION_is_resumable(sess) || (copy = SSL_SESSION_dup(sess)) == NULL)
        return 0;
    pthread_mutex_lock(&k->set->sess_lock);
    if ((e = find_session(k->set, k->host)) == NULL) {
        struct tls_set *set = k->set;
        if (set->sessions == NULL && (set->sessions = calloc(SESSIONS_MAX, sizeof(*set->sessions))) == NULL)
            goto out;
        char *host = strdup(k->host);
        if (host == NULL)
            goto out;
        e = &set->sessions[set->nsessions < SESSIONS_MAX ? set->nsessions++ : (size_t)(uintptr_t)sess % SESSIONS_MAX];
        free(e->host);
        e->host = host;
    }
    SSL_SESSION_free(e->sess); /* NULL-safe: a new entry has none */
    e->sess = copy;
    copy = NULL;
out:
    pthread_mutex_unlock(&k->set->sess_lock);
    SSL_SESSION_free(copy);
    return 0;
}

/* Remembers the host for the new-session callback and offers the host's last session. */
static int offer_session(struct tls_set *set, SSL *ssl, const char *host)
{
    size_t len = strlen(host);
    struct sess_key *k = malloc(sizeof(*k) + len + 1);
    struct tls_session *e;

    pthread_once(&key_once, key_init);
    if (k == NULL || key_index < 0) {
        free(k);
        return 0; /* no resumption, still a connection */
    }
    k->set = set;
    memcpy(k->host, host, len + 1);
    if (SSL_set_ex_data(ssl, key_index, k) != 1) {
        free(k);
        return 0;
    }
    pthread_mutex_lock(&set->sess_lock);
    if ((e = find_session(set, host)) != NULL && e->sess != NULL)
        SSL_set_session(ssl, e->sess); /* takes its own reference; a refused one means a full handshake */
    pthread_mutex_unlock(&set->sess_lock);
    return 0;
}

int tls_client_setup(struct tls_set *set, SSL *ssl, const char *host, enum gy_tls_alpn_offer alpn)
{
    const char *sni = set->sni != NULL ? set->sni : host;

    if (set_alpn(ssl, alpn) != 0)
        return -1;
    if (host != NULL)
        offer_session(set, ssl, host);
    if (sni != NULL && !is_ip(sni) && SSL_set_tlsext_host_name(ssl, sni) != 1)
        return -1;
    if (!set->verify_names || sni == NULL)
        return 0;
    if (is_ip(sni))
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), sni) == 1 ? 0 : -1;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(ssl, sni) == 1 ? 0 : -1;
}
