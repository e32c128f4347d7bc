/*
 * The mesh CA of the control plane (DESIGN.md §4): issues SPIFFE X.509-SVIDs
 * (spiffe://<trust-domain>/<zone>/<service>) to proxies that prove themselves with a join token
 * or with their current, still valid SVID; publishes the trust bundle.
 *
 *   GET  /v1.0/ca/bundle        the trust bundle (PEM)
 *   POST /v1.0/ca/sign          {csr, zone, service, token} or {csr, zone, service, proof: {certificate, signature}}
 *   POST /v1.0/ca/tokens        {service?, zone?, ttl?, uses?} → {token}
 */
#ifndef GY_CONTROL_CA_H
#define GY_CONTROL_CA_H

#include <stddef.h>
#include <stdint.h>

struct gy_control;
struct ctl_req;
struct ctl_ca;

struct ctl_ca_options {
    const char *dir;             /* where the root (and tokens) are kept; NULL: in memory only */
    const char *cert_file;       /* an intermediate to use instead of a self-signed root */
    const char *key_file;
    const char *trust_domain;    /* default "gyrus.local" */
    uint32_t svid_ttl_s;         /* default 3600 */
};

/* Loads the CA from dir (or the given files), creating a self-signed root on first start. */
struct ctl_ca *ctl_ca_open(const struct ctl_ca_options *o, char *err, size_t errlen);
void ctl_ca_close(struct ctl_ca *ca);
/* Handles /v1.0/ca/<sub>. */
void ctl_ca_handle(struct gy_control *ctl, struct ctl_req *r, const char *sub);
/* Where the services that got SVIDs are remembered across restarts (DIR/ca/identities.json), "" if none. */
const char *ctl_ca_identities_path(const struct ctl_ca *ca);
const char *ctl_ca_trust_domain(const struct ctl_ca *ca);
/* The trust bundle: PEM of the CA certificate that signs SVIDs. */
const char *ctl_ca_bundle(const struct ctl_ca *ca);
/* A TLS server certificate for the control plane itself (--tls-auto): a new P-256 key and a
 * certificate for `names` (DNS names or IP addresses, at least one) valid for ttl_s, signed by
 * the mesh CA, TLS server use only (no SPIFFE ID: it is not a workload). The CA's own certificate
 * comes back in *chain (not owned by the caller). 0, or -1 with the reason in err. */
struct x509_st;
struct evp_pkey_st;
int ctl_ca_issue_server(struct ctl_ca *ca, const char *const *names, size_t n, uint32_t ttl_s, struct x509_st **cert,
                        struct evp_pkey_st **key, struct x509_st **chain, char *err, size_t errlen);
/* Where the trust bundle is kept on disk (DIR/ca/root.crt), or NULL for a CA in memory or from
 * --ca-cert (then GET /v1.0/ca/bundle, or the --ca-cert file, is the bundle). */
const char *ctl_ca_bundle_path(const struct ctl_ca *ca);

#endif
