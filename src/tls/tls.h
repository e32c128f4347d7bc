/*
 * TLS for listeners and clusters (OpenSSL 3). The proxy compiles a server context per listener
 * (from the listener's and its domains' `ssl_config`/`secret`) and a client context per cluster
 * (`require_tls`, `ssl_config`, `secret`) when it attaches a config, and wraps sockets in TLS
 * transports (net/transport.h). Contexts are reference counted: connections keep theirs across
 * reloads and certificate rotations.
 */
#ifndef GY_TLS_TLS_H
#define GY_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "mesh/config.h"
#include "net/transport.h"

/* Builds listener->tls and cluster->tls for every listener and cluster of cfg that asks for TLS
 * (NULL otherwise) and registers their release in cfg. Returns 0, or GY_ECONFIG with
 * `listener "x": ssl_config.cert_key_pairs[0].certificate_path: cannot read ...` in err. */
int gy_tls_attach(struct gy_config *cfg, char *err, size_t errlen);
/* Releases what gy_tls_attach built (called when the config is freed). */
void gy_tls_detach(struct gy_config *cfg);

/* A server-side TLS transport for an accepted socket of a listener with tls != NULL. */
struct gy_transport *gy_tls_server(void *listener_tls);
/* A client-side TLS transport for a connection to an instance of a cluster with tls != NULL. */
struct gy_transport *gy_tls_client(void *cluster_tls, const char *instance_host);

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

#endif
