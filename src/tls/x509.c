/* Certificates as people read them: subject DNs, SANs, SPIFFE IDs, key types, expiry. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls/tls_int.h"

const char *tls_ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    return r != NULL ? r : "unknown OpenSSL error";
}

char *tls_name_string(const X509_NAME *n)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *p = NULL, *out = NULL;

    if (bio == NULL)
        return NULL;
    if (X509_NAME_print_ex(bio, n, 0, XN_FLAG_RFC2253) >= 0) {
        long len = BIO_get_mem_data(bio, &p);
        out = len >= 0 ? strndup(p != NULL ? p : "", (size_t)len) : NULL;
    }
    BIO_free(bio);
    return out;
}

/* An ASN1 string as a C string, refused when it holds a NUL (a forged name). */
static char *asn1_cstr(const ASN1_STRING *s)
{
    const unsigned char *d = ASN1_STRING_get0_data(s);
    int len = ASN1_STRING_length(s);

    if (d == NULL || len < 0 || memchr(d, '\0', (size_t)len) != NULL)
        return NULL;
    return strndup((const char *)d, (size_t)len);
}

/* "DNS:x", "URI:x", "IP:x", "email:x"; NULL for other kinds. */
static char *general_name(const GENERAL_NAME *g)
{
    char buf[INET6_ADDRSTRLEN + 4], *v, *out;
    const char *prefix;

    switch (g->type) {
    case GEN_DNS:
        prefix = "DNS:";
        break;
    case GEN_URI:
        prefix = "URI:";
        break;
    case GEN_EMAIL:
        prefix = "email:";
        break;
    case GEN_IPADD: {
        int len = ASN1_STRING_length(g->d.iPAddress);
        const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
        memcpy(buf, "IP:", 3);
        if ((len != 4 && len != 16) || inet_ntop(len == 4 ? AF_INET : AF_INET6, d, buf + 3, sizeof(buf) - 3) == NULL)
            return NULL;
        return strdup(buf);
    }
    default:
        return NULL;
    }
    if ((v = asn1_cstr(g->d.ia5)) == NULL)
        return NULL;
    size_t n = strlen(prefix) + strlen(v) + 1;
    if ((out = malloc(n)) != NULL)
        snprintf(out, n, "%s%s", prefix, v);
    free(v);
    return out;
}

char *tls_spiffe_id(X509 *x)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    char *id = NULL;

    for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens) && id == NULL; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_URI)
            continue;
        char *uri = asn1_cstr(g->d.uniformResourceIdentifier);
        if (uri != NULL && strncasecmp(uri, "spiffe://", 9) == 0)
            id = uri;
        else
            free(uri);
    }
    GENERAL_NAMES_free(gens);
    return id;
}

void tls_key_describe(EVP_PKEY *key, char *buf, size_t len)
{
    char group[64] = "";

    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
        snprintf(buf, len, "RSA %d", EVP_PKEY_get_bits(key));
        return;
    case EVP_PKEY_EC: {
        const char *nist = NULL;
        if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) == 1)
            nist = EC_curve_nid2nist(OBJ_sn2nid(group));
        snprintf(buf, len, "EC %s", nist != NULL ? nist : group[0] ? group : "?");
        return;
    }
    case EVP_PKEY_ED25519:
        snprintf(buf, len, "Ed25519");
        return;
    case EVP_PKEY_ED448:
        snprintf(buf, len, "Ed448");
        return;
    default:
        snprintf(buf, len, "%s", OBJ_nid2sn(EVP_PKEY_get_base_id(key)));
        return;
    }
}

static int64_t not_after(X509 *x)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

int tls_cert_info_fill(struct tls_cert_info *ci, const char *path, X509 *x, EVP_PKEY *key)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    char kd[64];
    int n = gens != NULL ? sk_GENERAL_NAME_num(gens) : 0;

    memset(ci, 0, sizeof(*ci));
    tls_key_describe(key, kd, sizeof(kd));
    ci->path = strdup(path);
    ci->subject = tls_name_string(X509_get_subject_name(x));
    ci->issuer = tls_name_string(X509_get_issuer_name(x));
    ci->key = strdup(kd);
    ci->not_after = not_after(x);
    ci->sans = n > 0 ? calloc((size_t)n, sizeof(*ci->sans)) : NULL;
    for (int i = 0; i < n && ci->sans != NULL; i++) {
        char *s = general_name(sk_GENERAL_NAME_value(gens, i));
        if (s != NULL)
            ci->sans[ci->nsans++] = s;
    }
    GENERAL_NAMES_free(gens);
    if (ci->path == NULL || ci->subject == NULL || ci->issuer == NULL || ci->key == NULL || (n > 0 && ci->sans == NULL)) {
        tls_cert_info_dispose(ci);
        return -1;
    }
    return 0;
}

void tls_cert_info_dispose(struct tls_cert_info *ci)
{
    free(ci->path);
    free(ci->subject);
    free(ci->issuer);
    free(ci->key);
    for (size_t i = 0; i < ci->nsans; i++)
        free(ci->sans[i]);
    free(ci->sans);
    memset(ci, 0, sizeof(*ci));
}
