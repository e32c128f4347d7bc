/*
 * TLS for gyrus's own HTTPS endpoints, outside the mesh config: the control API (server side) and
 * the proxy's calls to it (client side). See tls.h.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tls/tls_int.h"

static SSL_CTX *endpoint_ctx(const SSL_METHOD *method, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    char why[256];

    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context: %s", tls_ossl_reason());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    if (tls_fips_mode() > 0 && tls_fips_restrict(ctx, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "FIPS mode: %s", why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The checks after a server context has its certificate and key: FIPS, the session cache. */
static SSL_CTX *server_ready(SSL_CTX *ctx, const char *what, char *err, size_t errlen)
{
    char why[256];

    if (tls_fips_mode() > 0 &&
        tls_fips_check(SSL_CTX_get0_privatekey(ctx), SSL_CTX_get0_certificate(ctx), why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s: %s", what, why);
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    return ctx;
}

struct ssl_ctx_st *gy_tls_endpoint_server(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    SSL_CTX *ctx = endpoint_ctx(TLS_server_method(), err, errlen);

    if (ctx == NULL)
        return NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        snprintf(err, errlen, "%s: cannot use it as a certificate chain: %s", cert_path, tls_ossl_reason());
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(err, errlen, "%s does not match the certificate in %s", key_path, cert_path);
        else
            snprintf(err, errlen, "%s: cannot use it as a private key: %s", key_path, tls_ossl_reason());
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "%s does not match the certificate in %s", key_path, cert_path);
        goto fail;
    }
    return server_ready(ctx, cert_path, err, errlen);
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

struct ssl_ctx_st *gy_tls_endpoint_server_x509(struct x509_st *cert, struct x509_st *chain, struct evp_pkey_st *key,
                                               char *err, size_t errlen)
{
    SSL_CTX *ctx = endpoint_ctx(TLS_server_method(), err, errlen);

    if (ctx == NULL)
        return NULL;
    if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1 || (chain != NULL && SSL_CTX_add1_chain_cert(ctx, chain) != 1)) {
        snprintf(err, errlen, "cannot use the certificate: %s", tls_ossl_reason());
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    return server_ready(ctx, "the certificate", err, errlen);
}

struct ssl_ctx_st *gy_tls_endpoint_client(const char *ca_path, char *err, size_t errlen)
{
    SSL_CTX *ctx = endpoint_ctx(TLS_client_method(), err, errlen);

    if (ctx == NULL)
        return NULL;
    if (ca_path != NULL && access(ca_path, R_OK) != 0) { /* OpenSSL would say only "system lib" */
        snprintf(err, errlen, "%s: cannot load trust anchors: %s", ca_path, strerror(errno));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (ca_path != NULL ? SSL_CTX_load_verify_locations(ctx, ca_path, NULL) != 1
                        : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, errlen, "%s: cannot load trust anchors: %s", ca_path ? ca_path : "the system trust store",
                 tls_ossl_reason());
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

static int accept_any(int ok, X509_STORE_CTX *store)
{
    (void)ok;
    (void)store;
    return 1; /* the verdict stays in SSL_get_verify_result(); the server decides what it allows */
}

int gy_tls_endpoint_trust_clients(struct ssl_ctx_st *ctx, const char *pem, char *err, size_t errlen)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x;
    int n = 0;

    if (b == NULL || store == NULL) {
        BIO_free(b);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (X509_STORE_add_cert(store, x) == 1)
            n++;
        X509_free(x);
    }
    BIO_free(b);
    ERR_clear_error();
    if (n == 0) {
        snprintf(err, errlen, "no CA certificate to check clients against");
        return -1;
    }
    X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN); /* an intermediate CA is an anchor too */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any);
    static const unsigned char sid[] = "gyrus-endpoint";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    return 0;
}

int gy_tls_endpoint_client_cert(struct ssl_ctx_st *ctx, const char *cert_path, const char *key_path, char *err,
                                size_t errlen)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "%s: cannot present it: %s", cert_path, tls_ossl_reason());
        ERR_clear_error();
        return -1;
    }
    return 0;
}

char *gy_tls_spiffe_id(struct x509_st *x)
{
    return tls_spiffe_id(x);
}
