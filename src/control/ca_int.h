/* Private to the CA (ca.c, ca_sign.c). */
#ifndef GY_CONTROL_CA_INT_H
#define GY_CONTROL_CA_INT_H

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>

struct ctl_ca {
    X509 *cert;
    EVP_PKEY *key;
    char *bundle;                /* PEM of the CA certificate */
    char *trust_domain;
    uint32_t ttl_s;
    char tokens_path[4096];      /* "" when kept in memory only */
    char root_path[4200];        /* DIR/ca/root.crt of a root we keep, else "" */
    json_t *tokens;              /* sha256(token) → {service, zone, expires, uses} */
    uint64_t issued;
};

/* Adds an X.509v3 extension in OpenSSL's config syntax; 0 or -1. */
int ca_add_ext(X509 *issuer, X509 *x, int nid, const char *value);
/* Gives x a random positive 127-bit serial; 0 or -1. */
int ca_random_serial(X509 *x);
/* The PEM text of a certificate (malloc'ed) or NULL. */
char *ca_pem_of(X509 *x);
/* The last OpenSSL error as text (thread-local buffer); clears the queue. */
const char *ca_ossl_reason(void);
void ca_save_tokens(struct ctl_ca *ca);

#endif
