/*
 * FIPS mode (`gyrus proxy --fips on|required`).
 *
 * on:       every TLS context is restricted to FIPS-approved choices (TLS 1.2 and 1.3 only;
 *           ECDHE with AES-GCM suites; groups P-256 and P-384; RSA >= 2048 and ECDSA P-256/P-384
 *           keys; SHA-256 or stronger signatures; OpenSSL security level 2), and the OpenSSL FIPS
 *           provider is loaded when it is installed: then all cryptography comes from it
 *           (default properties "fips=yes"). Without it gyrus warns and runs with the restricted
 *           choices over the default provider, which is not a validated module.
 * required: the same, but gyrus refuses to start without the FIPS provider.
 *
 * The mode is set once at startup, before any context is built, and never changes after.
 * docs/fips.md says what is and is not certified.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "core/err.h"
#include "core/log.h"
#include "tls/tls_int.h"

#define FIPS_TLS12 "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
#define FIPS_TLS13 "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"
#define FIPS_GROUPS "P-256:P-384"
#define FIPS_SIGALGS                                                                                              \
    "ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512:rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:"         \
    "rsa_pss_pss_sha256:rsa_pss_pss_sha384:rsa_pss_pss_sha512:RSA+SHA256:RSA+SHA384:RSA+SHA512"

static int mode;                    /* 0 off, 1 on, 2 required */
static OSSL_PROVIDER *fips_prov, *base_prov;

int tls_fips_mode(void)
{
    return mode;
}

bool tls_fips_provider(void)
{
    return fips_prov != NULL;
}

int tls_fips_setup(const char *m, char *err, size_t errlen)
{
    int want;

    if (m == NULL || strcmp(m, "off") == 0 || strcmp(m, "false") == 0)
        want = 0;
    else if (strcmp(m, "on") == 0 || strcmp(m, "true") == 0)
        want = 1;
    else if (strcmp(m, "required") == 0)
        want = 2;
    else {
        snprintf(err, errlen, "--fips: expected on, off or required, got \"%s\"", m);
        return GY_ECONFIG;
    }
    mode = want;
    if (want == 0 || fips_prov != NULL)
        return 0;
    ERR_clear_error();
    /* retain_fallbacks: when it fails, the default provider must still load on first use */
    fips_prov = OSSL_PROVIDER_try_load(NULL, "fips", 1);
    if (fips_prov == NULL) {
        char why[256];
        unsigned long e = ERR_peek_error();
        if (e != 0)
            ERR_error_string_n(e, why, sizeof(why));
        else
            snprintf(why, sizeof(why), "not found in %s", OPENSSL_info(OPENSSL_INFO_MODULES_DIR));
        ERR_clear_error();
        if (want == 2) {
            snprintf(err, errlen,
                     "--fips required: the OpenSSL FIPS provider cannot be loaded (%s): install fips.so in %s and "
                     "activate it with a fipsmodule.cnf included from openssl.cnf (docs/fips.md)",
                     why, OPENSSL_info(OPENSSL_INFO_MODULES_DIR));
            return GY_ECONFIG;
        }
        gy_warn("FIPS mode on without the OpenSSL FIPS provider (%s): TLS is restricted to FIPS-approved algorithms, "
                "but the cryptography is not a validated module; --fips required refuses to start in this case",
                why);
        return 0;
    }
    base_prov = OSSL_PROVIDER_load(NULL, "base"); /* PEM and DER decoders */
    if (EVP_default_properties_enable_fips(NULL, 1) != 1) {
        snprintf(err, errlen, "--fips: cannot make FIPS algorithms the default: %s", tls_ossl_reason());
        return GY_ECONFIG;
    }
    gy_info("FIPS mode: OpenSSL FIPS provider %s loaded; only FIPS-approved algorithms are used",
            OSSL_PROVIDER_get0_name(fips_prov));
    return 0;
}

void tls_fips_free(void)
{
    if (fips_prov != NULL) {
        EVP_default_properties_enable_fips(NULL, 0);
        OSSL_PROVIDER_unload(fips_prov);
    }
    if (base_prov != NULL)
        OSSL_PROVIDER_unload(base_prov);
    fips_prov = base_prov = NULL;
    mode = 0;
}

int tls_fips_restrict(SSL_CTX *ctx, char *why, size_t len)
{
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 || SSL_CTX_set_cipher_list(ctx, FIPS_TLS12) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, FIPS_TLS13) != 1 || SSL_CTX_set1_groups_list(ctx, FIPS_GROUPS) != 1 ||
        SSL_CTX_set1_sigalgs_list(ctx, FIPS_SIGALGS) != 1 || SSL_CTX_set1_client_sigalgs_list(ctx, FIPS_SIGALGS) != 1) {
        snprintf(why, len, "%s", tls_ossl_reason());
        ERR_clear_error();
        return -1;
    }
    SSL_CTX_set_security_level(ctx, 2); /* 112-bit security: RSA >= 2048, no SHA-1 signatures */
    return 0;
}

/* Whether a key is one FIPS mode allows: RSA >= 2048 bits, ECDSA on P-256 or P-384. */
static int key_check(EVP_PKEY *key, char *why, size_t len)
{
    char group[64] = "";

    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
        if (EVP_PKEY_get_bits(key) < 2048) {
            snprintf(why, len, "RSA keys need at least 2048 bits (this one has %d)", EVP_PKEY_get_bits(key));
            return -1;
        }
        return 0;
    case EVP_PKEY_EC: {
        EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), NULL);
        int nid = OBJ_sn2nid(group);
        if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1) {
            snprintf(why, len, "ECDSA keys must be on P-256 or P-384 (this one is on %s)", group[0] ? group : "?");
            return -1;
        }
        return 0;
    }
    default:
        tls_key_describe(key, group, sizeof(group));
        snprintf(why, len, "%s keys are not allowed (RSA >= 2048 or ECDSA P-256/P-384)", group);
        return -1;
    }
}

int gy_tls_fips_key_check(EVP_PKEY *key, char *why, size_t len)
{
    return mode == 0 ? 0 : key_check(key, why, len);
}

int tls_fips_check(EVP_PKEY *key, X509 *x, char *why, size_t len)
{
    int mdnid = NID_undef;

    if (key_check(key, why, len) != 0)
        return -1;
    if (X509_get_signature_info(x, &mdnid, NULL, NULL, NULL) != 1 ||
        (mdnid != NID_sha256 && mdnid != NID_sha384 && mdnid != NID_sha512)) {
        snprintf(why, len, "the certificate is signed with %s; SHA-256 or stronger is needed",
                 mdnid != NID_undef ? OBJ_nid2sn(mdnid) : "an unknown digest");
        return -1;
    }
    return 0;
}

char *tls_fips_ciphers(SSL_CTX *ctx)
{
    static const char *const approved[] = { "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
                                            "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384" };
    STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);
    char out[512] = "";
    size_t used = 0;

    for (int i = 0; sk != NULL && i < sk_SSL_CIPHER_num(sk); i++) {
        const char *name = SSL_CIPHER_get_name(sk_SSL_CIPHER_value(sk, i));
        for (size_t k = 0; k < sizeof(approved) / sizeof(approved[0]); k++) {
            if (strcmp(name, approved[k]) != 0)
                continue;
            int n = snprintf(out + used, sizeof(out) - used, "%s%s", used ? ":" : "", name);
            if (n > 0 && (size_t)n < sizeof(out) - used)
                used += (size_t)n;
        }
    }
    return used > 0 ? strdup(out) : NULL;
}
