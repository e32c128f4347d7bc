/*
 * The proxy's mesh identity: in dynamic mode it gets an X.509-SVID
 * (spiffe://<trust-domain>/<zone>/<service>) from the control plane's CA, proving itself with a
 * join token the first time and with its current SVID after that, renews it at half life, and
 * keeps serving with the valid one (warning loudly) when renewals fail. The SVID, its key and
 * the trust bundle are files in the data directory, so TLS picks a renewed one up like any
 * rotated certificate, without dropping connections.
 */
#ifndef GY_PROXY_IDENTITY_H
#define GY_PROXY_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct gy_identity;

struct gy_identity_options {
    const char *control_url;
    const char *control_ca;     /* https: trust anchors (NULL: the system's) */
    const char *data_dir;
    const char *service;        /* the proxy's name */
    const char *zone;
    const char *join_token;     /* may be NULL when a valid SVID is already on disk */
};

/* Starts the identity thread; NULL (logged) when there is nothing to start from. */
struct gy_identity *gy_identity_start(const struct gy_identity_options *o);
void gy_identity_stop(struct gy_identity *id);

/* Paths of the SVID chain, its key and the trust bundle (valid for the identity's life). */
const char *gy_identity_cert_path(const struct gy_identity *id);
const char *gy_identity_key_path(const struct gy_identity *id);
const char *gy_identity_bundle_path(const struct gy_identity *id);
/* The SPIFFE ID and expiry (epoch seconds, 0 before the first SVID). */
const char *gy_identity_spiffe_id(const struct gy_identity *id);
int64_t gy_identity_expires(const struct gy_identity *id);

/* Prometheus lines: gyrus_svid_expiry_seconds, gyrus_svid_renewals_total, ..._failures_total. */
void gy_identity_metrics(const struct gy_identity *id, FILE *f);
/* A JSON object describing the SVID for /certs (malloc'ed). */
char *gy_identity_json(const struct gy_identity *id);

#endif
