/* The mesh CA: a root kept in the data directory, SVIDs signed on request, join tokens. */
#include "control/ca.h"
#include "control/ca_int.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "control/control.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "net/sock.h"
#include "tls/tls.h"

#define ROOT_DAYS 3650
#define MAX_TOKENS 10000


char *ca_pem_of(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *out = NULL;
    long n;

    if (b != NULL && PEM_write_bio_X509(b, x) == 1 && (n = BIO_get_mem_data(b, &data)) > 0 &&
        (out = malloc((size_t)n + 1)) != NULL) {
        memcpy(out, data, (size_t)n);
        out[n] = '\0';
    }
    BIO_free(b);
    return out;
}

const char *ca_ossl_reason(void)
{
    static _Thread_local char buf[256];
    unsigned long e = ERR_get_error();

    if (e == 0)
        return "unknown error";
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return buf;
}

int ca_add_ext(X509 *issuer, X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    int ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

int ca_random_serial(X509 *x)
{
    unsigned char rnd[16];
    BIGNUM *bn = NULL;
    int ok;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return -1;
    rnd[0] &= 0x7f; /* positive */
    bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
    ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? 0 : -1;
}

/* A self-signed P-256 root for the trust domain. */
static int make_root(struct ctl_ca *ca)
{
    X509_NAME *name;
    int rc = -1;

    ca->key = EVP_EC_gen("P-256");
    ca->cert = X509_new();
    if (ca->key == NULL || ca->cert == NULL || X509_set_version(ca->cert, 2) != 1 || ca_random_serial(ca->cert) != 0)
        return -1;
    X509_gmtime_adj(X509_getm_notBefore(ca->cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(ca->cert), (long)ROOT_DAYS * 86400);
    X509_set_pubkey(ca->cert, ca->key);
    name = X509_get_subject_name(ca->cert);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"gyrus", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)ca->trust_domain, -1, -1, 0);
    X509_set_issuer_name(ca->cert, name);
    char uri[300];
    snprintf(uri, sizeof(uri), "URI:spiffe://%s", ca->trust_domain);
    if (ca_add_ext(ca->cert, ca->cert, NID_basic_constraints, "critical,CA:TRUE") == 0 &&
        ca_add_ext(ca->cert, ca->cert, NID_key_usage, "critical,keyCertSign,cRLSign") == 0 &&
        ca_add_ext(ca->cert, ca->cert, NID_subject_key_identifier, "hash") == 0 &&
        ca_add_ext(ca->cert, ca->cert, NID_subject_alt_name, uri) == 0 &&
        X509_sign(ca->cert, ca->key, EVP_sha256()) > 0)
        rc = 0;
    return rc;
}

static int save_root(struct ctl_ca *ca, const char *dir, char *err, size_t errlen)
{
    char path[4096];
    BIO *b = BIO_new(BIO_s_mem());
    char *data;
    long n;

    snprintf(path, sizeof(path), "%s/root.key", dir);
    if (b == NULL || PEM_write_bio_PrivateKey(b, ca->key, NULL, NULL, 0, NULL, NULL) != 1 ||
        (n = BIO_get_mem_data(b, &data)) <= 0 || gy_write_file_atomic(path, data, (size_t)n) != 0 ||
        chmod(path, 0600) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        BIO_free(b);
        return -1;
    }
    BIO_free(b);
    snprintf(path, sizeof(path), "%s/root.crt", dir);
    if (gy_write_file_atomic(path, ca->bundle, strlen(ca->bundle)) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int load_pair(struct ctl_ca *ca, const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    FILE *f = fopen(cert_file, "r");

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", cert_file, strerror(errno));
        return -1;
    }
    ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if ((f = fopen(key_file, "r")) == NULL) {
        snprintf(err, errlen, "%s: %s", key_file, strerror(errno));
        return -1;
    }
    ca->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (ca->cert == NULL || ca->key == NULL) {
        snprintf(err, errlen, "%s / %s: not a PEM certificate and key: %s", cert_file, key_file, ca_ossl_reason());
        return -1;
    }
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        snprintf(err, errlen, "%s: the key does not match the certificate", key_file);
        return -1;
    }
    if (X509_check_ca(ca->cert) == 0) {
        snprintf(err, errlen, "%s: not a CA certificate", cert_file);
        return -1;
    }
    char why[200];
    if (gy_tls_fips_key_check(ca->key, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s: FIPS mode: %s", key_file, why);
        return -1;
    }
    return 0;
}

static void load_tokens(struct ctl_ca *ca)
{
    json_t *t = ca->tokens_path[0] ? json_load_file(ca->tokens_path, 0, NULL) : NULL;
    ca->tokens = json_is_object(t) ? t : json_object();
    if (!json_is_object(t))
        json_decref(t);
}

void ca_save_tokens(struct ctl_ca *ca)
{
    char *text;

    if (ca->tokens_path[0] == '\0' || (text = json_dumps(ca->tokens, JSON_COMPACT)) == NULL)
        return;
    if (gy_write_file_atomic(ca->tokens_path, text, strlen(text)) != 0 || chmod(ca->tokens_path, 0600) != 0)
        gy_warn("ca: cannot write %s: %s", ca->tokens_path, strerror(errno));
    free(text);
}

struct ctl_ca *ctl_ca_open(const struct ctl_ca_options *o, char *err, size_t errlen)
{
    struct ctl_ca *ca = calloc(1, sizeof(*ca));
    char dir[3900] = "", cert[4200], key[4200];

    if (ca == NULL)
        return NULL;
    ca->trust_domain = strdup(o->trust_domain ? o->trust_domain : "gyrus.local");
    ca->ttl_s = o->svid_ttl_s ? o->svid_ttl_s : 3600;
    if (o->dir != NULL) {
        snprintf(dir, sizeof(dir), "%s/ca", o->dir);
        if (gy_mkdir_p(dir) != 0) {
            snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
            goto fail;
        }
        chmod(dir, 0700);
        snprintf(ca->tokens_path, sizeof(ca->tokens_path), "%s/tokens.json", dir);
    }
    snprintf(cert, sizeof(cert), "%s/root.crt", dir);
    snprintf(key, sizeof(key), "%s/root.key", dir);
    if (o->cert_file != NULL) {
        if (load_pair(ca, o->cert_file, o->key_file ? o->key_file : "", err, errlen) != 0)
            goto fail;
    } else if (dir[0] && access(cert, F_OK) == 0) {
        if (load_pair(ca, cert, key, err, errlen) != 0)
            goto fail;
        snprintf(ca->root_path, sizeof(ca->root_path), "%s", cert);
    } else {
        if (make_root(ca) != 0) {
            snprintf(err, errlen, "cannot create the mesh CA: %s", ca_ossl_reason());
            goto fail;
        }
        if ((ca->bundle = ca_pem_of(ca->cert)) == NULL || (dir[0] && save_root(ca, dir, err, errlen) != 0))
            goto fail;
        gy_info("ca: created a root for trust domain %s%s%s", ca->trust_domain, dir[0] ? " in " : " (in memory)",
                dir);
        if (dir[0])
            snprintf(ca->root_path, sizeof(ca->root_path), "%s", cert);
    }
    if (ca->bundle == NULL && (ca->bundle = ca_pem_of(ca->cert)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    load_tokens(ca);
    return ca;
fail:
    ctl_ca_close(ca);
    return NULL;
}

void ctl_ca_close(struct ctl_ca *ca)
{
    if (ca == NULL)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca->bundle);
    free(ca->trust_domain);
    json_decref(ca->tokens);
    free(ca);
}

const char *ctl_ca_identities_path(const struct ctl_ca *ca)
{
    static _Thread_local char path[4200];
    size_t n = strlen(ca->tokens_path);

    if (n < 11) /* "tokens.json" */
        return "";
    snprintf(path, sizeof(path), "%.*sidentities.json", (int)(n - 11), ca->tokens_path);
    return path;
}

const char *ctl_ca_trust_domain(const struct ctl_ca *ca)
{
    return ca->trust_domain;
}

const char *ctl_ca_bundle(const struct ctl_ca *ca)
{
    return ca->bundle;
}

const char *ctl_ca_bundle_path(const struct ctl_ca *ca)
{
    return ca->root_path[0] ? ca->root_path : NULL;
}

/* "DNS:a,IP:1.2.3.4,..." for the subjectAltName extension; -1 when a name is not usable. */
static int server_sans(const char *const *names, size_t n, char *out, size_t cap, char *err, size_t errlen)
{
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        bool is_ip = gy_is_ip(names[i]);
        if (!is_ip && !gy_is_dns_name(names[i], strlen(names[i]))) {
            snprintf(err, errlen, "\"%s\" is neither an IP address nor a DNS name", names[i]);
            return -1;
        }
        int k = snprintf(out + len, cap - len, "%s%s:%s", len ? "," : "", is_ip ? "IP" : "DNS", names[i]);
        if (k < 0 || (size_t)k >= cap - len) {
            snprintf(err, errlen, "too many names");
            return -1;
        }
        len += (size_t)k;
    }
    if (len == 0) {
        snprintf(err, errlen, "no name to issue a certificate for");
        return -1;
    }
    return 0;
}

int ctl_ca_issue_server(struct ctl_ca *ca, const char *const *names, size_t n, uint32_t ttl_s, X509 **cert,
                        EVP_PKEY **key, X509 **chain, char *err, size_t errlen)
{
    char san[4096];
    X509 *x = NULL;
    EVP_PKEY *k = NULL;

    if (server_sans(names, n, san, sizeof(san), err, errlen) != 0)
        return -1;
    if ((k = EVP_EC_gen("P-256")) == NULL || (x = X509_new()) == NULL || X509_set_version(x, 2) != 1 ||
        ca_random_serial(x) != 0)
        goto fail;
    X509_gmtime_adj(X509_getm_notBefore(x), -(long)(ttl_s / 10 < 30 ? ttl_s / 10 : 30));
    X509_gmtime_adj(X509_getm_notAfter(x), (long)ttl_s);
    X509_set_pubkey(x, k);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"gyrus", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)names[0], -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(ca->cert));
    if (ca_add_ext(ca->cert, x, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        ca_add_ext(ca->cert, x, NID_key_usage, "critical,digitalSignature,keyAgreement") != 0 ||
        ca_add_ext(ca->cert, x, NID_ext_key_usage, "serverAuth") != 0 ||
        ca_add_ext(ca->cert, x, NID_subject_alt_name, san) != 0 ||
        ca_add_ext(ca->cert, x, NID_authority_key_identifier, "keyid:always") != 0 ||
        X509_sign(x, ca->key, EVP_sha256()) <= 0)
        goto fail;
    *cert = x;
    *key = k;
    *chain = ca->cert;
    return 0;
fail:
    snprintf(err, errlen, "cannot issue a certificate: %s", ca_ossl_reason());
    X509_free(x);
    EVP_PKEY_free(k);
    return -1;
}
