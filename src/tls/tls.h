/*
 * TLS for listeners and clusters (OpenSSL 3). The proxy compiles a server context per listener
 * (from the listener's and its domains' `ssl_config`/`secret`) and a client context per cluster
 * (`require_tls`, `ssl_config`, `secret`) when it attaches a config, and wraps sockets in TLS
 * transports (net/transport.h). Contexts are reference counted: connections keep theirs across
 * reloads and certificate rotations.
 *
 * Files: tls.c (this interface), ctx.c (an SSL_CTX from an ssl_config), sni.c (listeners:
 * certificates per domain, picked by SNI), client.c (clusters), transport.c (the transport
 * ops), tickets.c (session ticket keys), reload.c (certificate files watched and re-read),
 * metrics.c (Prometheus lines, /certs), fips.c (FIPS mode). docs/tls.md, docs/fips.md.
 */
#ifndef GY_TLS_TLS_H
#define GY_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/loop.h"
#include "mesh/config.h"
#include "net/transport.h"

/* Whether listeners offer "h2" by ALPN (protocol http_auto and http2): the HTTP/2 codec serves
 * TLS connections, gy_tls_alpn() tells the connection which codec to run (proxy/downstream.c). */
#define GY_TLS_OFFER_H2 1

/* Process-wide setup, on the main thread before the first gy_tls_attach: FIPS mode (`fips`: NULL,
 * "off", "on" (or "true"), "required"; fips.c), session ticket keys, and a timer on `loop` that
 * re-reads certificate, key, trust and CRL files when they change (checked every second) and
 * rotates the ticket keys (every hour). loop may be NULL: no reloads. Returns 0, or GY_ECONFIG
 * with one line in err (`--fips required` without the FIPS provider, a bad --fips value). */
int gy_tls_init(struct gy_loop *loop, const char *fips, char *err, size_t errlen);
/* In FIPS mode (gy_tls_init with "on" or "required"), whether `key` is one FIPS allows (RSA >=
 * 2048 bits, ECDSA P-256/P-384): 0, or -1 with the reason in why. 0 when FIPS mode is off. */
struct evp_pkey_st;
int gy_tls_fips_key_check(struct evp_pkey_st *key, char *why, size_t len);
/* Stops the timer and frees the process-wide state (after the last config is released). */
void gy_tls_shutdown(void);

/* The proxy's SVID files (proxy/identity.c): certificate chain, key, trust bundle. With them,
 * Grey Matter's `secret` (SPIFFE) works: a listener with `secret` (and no ssl_config) serves the
 * SVID and requires a client SVID of the trust domain `secret_validation_name` (or one of
 * `subject_names`); a cluster with `secret` presents the SVID and checks the server's SPIFFE ID
 * the same way. Main thread, before configs are attached; the files are watched like any
 * certificate, so renewals are picked up. NULL: none (then `secret` is refused). */
void gy_tls_set_identity(const char *cert_path, const char *key_path, const char *bundle_path);

/* TLS for gyrus's own HTTPS endpoints (endpoint.c): the control API and the proxy's calls to it.
 * Both contexts allow TLS 1.2 and 1.3 only, no renegotiation, and follow FIPS mode. The server
 * context serves the PEM certificate chain and key (checked to match; NULL with the reason in
 * err). The client context verifies the server's chain against ca_path (PEM; NULL: the system's
 * trust store); the caller checks the name (SSL_set1_host / X509_VERIFY_PARAM_set1_ip_asc).
 * SSL_CTX_free() them. */
struct ssl_ctx_st;
struct ssl_ctx_st *gy_tls_endpoint_server(const char *cert_path, const char *key_path, char *err, size_t errlen);
/* The same from a certificate and key in memory (each gets a reference); `chain` (may be NULL)
 * is sent after the certificate. */
struct x509_st;
struct evp_pkey_st;
struct ssl_ctx_st *gy_tls_endpoint_server_x509(struct x509_st *cert, struct x509_st *chain, struct evp_pkey_st *key,
                                               char *err, size_t errlen);
struct ssl_ctx_st *gy_tls_endpoint_client(const char *ca_path, char *err, size_t errlen);
/* A server context asks clients for a certificate and checks what they present against the PEM
 * CA certificates in `pem` (each a trust anchor, intermediates too). The handshake goes on
 * whatever the outcome: SSL_get_verify_result() tells the server whether to believe it. */
int gy_tls_endpoint_trust_clients(struct ssl_ctx_st *ctx, const char *pem, char *err, size_t errlen);
/* A client context presents this certificate chain and key (both PEM files). */
int gy_tls_endpoint_client_cert(struct ssl_ctx_st *ctx, const char *cert_path, const char *key_path, char *err,
                                size_t errlen);
/* The certificate's SPIFFE ID (its first URI SAN starting with spiffe://), malloc'ed, or NULL. */
char *gy_tls_spiffe_id(struct x509_st *x);

/* Builds listener->tls and cluster->tls for every listener and cluster of cfg that asks for TLS
 * (NULL otherwise) and registers their release in cfg. Returns 0, or GY_ECONFIG with
 * `listener "x": ssl_config.cert_key_pairs[0].certificate_path: cannot read ...` in err. */
int gy_tls_attach(struct gy_config *cfg, char *err, size_t errlen);
/* Releases what gy_tls_attach built (called when the config is freed). */
void gy_tls_detach(struct gy_config *cfg);

/* A server-side TLS transport for an accepted socket of a listener with tls != NULL. */
struct gy_transport *gy_tls_server(void *listener_tls);
/* What a client connection offers by ALPN. */
enum gy_tls_alpn_offer {
    GY_TLS_ALPN_HTTP11,             /* "http/1.1" */
    GY_TLS_ALPN_H2_HTTP11,          /* "h2", then "http/1.1": the server picks, gy_tls_alpn() tells */
    GY_TLS_ALPN_H2,                 /* "h2" only (gRPC health checks) */
};
/* A client-side TLS transport for a connection to an instance of a cluster with tls != NULL,
 * offering `alpn`. */
struct gy_transport *gy_tls_client(void *cluster_tls, const char *instance_host, enum gy_tls_alpn_offer alpn);

/* Whether two listener TLS contexts (listener->tls of two configs) were built from the same
 * settings: certificates, trust, versions, ciphers, SNI names, ALPN. */
bool gy_tls_same_setup(void *listener_tls_a, void *listener_tls_b);

/* The negotiated ALPN protocol ("h2", "http/1.1") or NULL. */
const char *gy_tls_alpn(struct gy_transport *t);

/* What the peer proved: its certificate's subject DN ("CN=x,O=y"), its SPIFFE ID (the URI SAN
 * "spiffe://..."), whether a certificate was presented and verified. Fields are NULL when absent.
 * Valid while the transport lives. */
struct gy_tls_peer {
    bool verified;
    const char *subject;
    const char *spiffe_id;
};
const struct gy_tls_peer *gy_tls_peer(struct gy_transport *t);
/* Our x-forwarded-client-cert element for this connection's verified client certificate (see
 * tls/xfcc.c), NULL without one; `fields` (GY_XFCC_*) is the same for every call on a connection.
 * Made on first use and kept while the transport lives. */
const char *gy_tls_xfcc(struct gy_transport *t, unsigned fields);

/* Appends the TLS metrics in Prometheus text format: handshakes and failures by reason per
 * listener and cluster, certificate reloads, seconds to expiry of every loaded certificate, FIPS
 * mode. Main thread (admin). */
void gy_tls_metrics(FILE *f);
/* The loaded certificates as JSON for the admin /certs endpoint (malloc'd, NULL without memory):
 * {"certificates":[{"owner","path","subject","sans":[],"key","not_after","seconds_to_expiry"}]}. */
char *gy_tls_certs_json(void);

#endif
