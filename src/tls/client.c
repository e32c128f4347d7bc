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

int tls_client_setup(const struct tls_set *set, SSL *ssl, const char *host, enum gy_tls_alpn_offer alpn)
{
    const char *sni = set->sni != NULL ? set->sni : host;

    if (set_alpn(ssl, alpn) != 0)
        return -1;
    if (sni != NULL && !is_ip(sni) && SSL_set_tlsext_host_name(ssl, sni) != 1)
        return -1;
    if (!set->verify_names || sni == NULL)
        return 0;
    if (is_ip(sni))
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), sni) == 1 ? 0 : -1;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(ssl, sni) == 1 ? 0 : -1;
}
