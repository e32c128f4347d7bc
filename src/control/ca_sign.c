/* The CA's endpoints: signing CSRs into SVIDs after a join token or the current SVID proves the
 * caller, creating join tokens, publishing the bundle. */
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/flags.h"
#include "control/ca.h"
#include "control/ca_int.h"
#include "control/control.h"
#include "core/log.h"
#include "tls/tls.h"


static bool valid_segment(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

static void token_key(const char *token, char out[65])
{
    ctl_sha256_hex(token, strlen(token), out, 64);
}

static X509 *pem_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return x;
}

/* The single spiffe:// URI SAN of a certificate, or NULL. */
static char *spiffe_id_of(X509 *x)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    char *out = NULL;
    int uris = 0;

    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type != GEN_URI)
            continue;
        uris++;
        const char *u = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
        if (out == NULL && strncmp(u, "spiffe://", 9) == 0)
            out = strdup(u);
    }
    GENERAL_NAMES_free(sans);
    if (uris != 1) {
        free(out);
        return NULL;
    }
    return out;
}


/* An X509-SVID for id with the CSR's key, signed by the CA. */
static X509 *issue(struct ctl_ca *ca, X509_REQ *req, const char *service, const char *id)
{
    X509 *x = X509_new();
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    char san[640];
    bool ok;

    if (x == NULL || pub == NULL || ca_random_serial(x) != 0) {
        X509_free(x);
        return NULL;
    }
    ok = true;
    X509_set_version(x, 2);
    /* Backdated a little for clocks behind ours, never by more than a tenth of its life. */
    X509_gmtime_adj(X509_getm_notBefore(x), -(long)(ca->ttl_s / 10 < 30 ? ca->ttl_s / 10 : 30));
    X509_gmtime_adj(X509_getm_notAfter(x), (long)ca->ttl_s);
    X509_set_pubkey(x, pub);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"gyrus", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)service, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(ca->cert));
    snprintf(san, sizeof(san), "URI:%s", id);
    /* SPIFFE X509-SVID: one URI SAN, not a CA, digitalSignature, TLS client and server. */
    ok = ok && ca_add_ext(ca->cert, x, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
         ca_add_ext(ca->cert, x, NID_key_usage, "critical,digitalSignature,keyEncipherment,keyAgreement") == 0 &&
         ca_add_ext(ca->cert, x, NID_ext_key_usage, "serverAuth,clientAuth") == 0 &&
         ca_add_ext(ca->cert, x, NID_subject_alt_name, san) == 0 &&
         ca_add_ext(ca->cert, x, NID_authority_key_identifier, "keyid:always") == 0 &&
         X509_sign(x, ca->key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Checks a join token (and spends one use). NULL when fine, else why not. */
static const char *check_token(struct ctl_ca *ca, const char *token, const char *zone, const char *service)
{
    char key[65];
    json_t *t;

    token_key(token, key);
    if ((t = json_object_get(ca->tokens, key)) == NULL)
        return "unknown join token";
    if (json_integer_value(json_object_get(t, "expires")) < (json_int_t)time(NULL))
        return "join token expired";
    const char *ts = json_string_value(json_object_get(t, "service")), *tz = json_string_value(json_object_get(t, "zone"));
    if ((ts != NULL && strcmp(ts, service) != 0) || (tz != NULL && strcmp(tz, zone) != 0))
        return "join token not valid for this service or zone";
    json_int_t uses = json_integer_value(json_object_get(t, "uses"));
    if (uses > 0) {
        if (uses == 1)
            json_object_del(ca->tokens, key);
        else
            json_object_set_new(t, "uses", json_integer(uses - 1));
        ca_save_tokens(ca);
    }
    return NULL;
}

/* Checks a proof by the current SVID: a valid certificate from this CA for the same ID, and a
 * signature of the CSR (as sent) by its key. NULL when fine. */
static const char *check_proof(struct ctl_ca *ca, const json_t *proof, const char *csr, const char *id)
{
    const char *cert_pem = json_string_value(json_object_get(proof, "certificate"));
    const char *sig64 = json_string_value(json_object_get(proof, "signature"));
    const char *why = "proof: invalid";
    X509 *x = cert_pem ? pem_cert(cert_pem) : NULL;
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *vctx = X509_STORE_CTX_new();
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[1024];
    char *pid = NULL;
    int siglen;

    if (x == NULL || sig64 == NULL || store == NULL || vctx == NULL || md == NULL) {
        why = "proof: needs certificate and signature";
        goto out;
    }
    X509_STORE_add_cert(store, ca->cert);
    if (X509_STORE_CTX_init(vctx, store, x, NULL) != 1 || X509_verify_cert(vctx) != 1) {
        why = "proof: the certificate is not a valid SVID of this mesh (expired or another CA)";
        goto out;
    }
    if ((pid = spiffe_id_of(x)) == NULL || strcmp(pid, id) != 0) {
        why = "proof: the certificate is for another identity";
        goto out;
    }
    size_t b64 = strlen(sig64), pad = 0;
    if (b64 == 0 || b64 > 1300 || b64 % 4 != 0 ||
        (siglen = EVP_DecodeBlock(sig, (const unsigned char *)sig64, (int)b64)) <= 0) {
        why = "proof: signature is not base64";
        goto out;
    }
    while (pad < 2 && sig64[b64 - 1 - pad] == '=') /* EVP_DecodeBlock counts the padding as zeros */
        pad++;
    siglen -= (int)pad;
    if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(x)) != 1 ||
        EVP_DigestVerify(md, sig, (size_t)siglen, (const unsigned char *)csr, strlen(csr)) != 1) {
        why = "proof: the signature does not match the certificate";
        goto out;
    }
    why = NULL;
out:
    ERR_clear_error();
    free(pid);
    EVP_MD_CTX_free(md);
    X509_STORE_CTX_free(vctx);
    X509_STORE_free(store);
    X509_free(x);
    return why;
}

static X509_REQ *pem_csr(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509_REQ *r = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return r;
}

static void sign(struct gy_control *ctl, struct ctl_ca *ca, struct ctl_req *r)
{
    json_t *in = json_loadb(r->body, r->body_len, 0, NULL);
    const char *csr = json_string_value(json_object_get(in, "csr"));
    const char *zone = json_string_value(json_object_get(in, "zone"));
    const char *service = json_string_value(json_object_get(in, "service"));
    const char *token = json_string_value(json_object_get(in, "token"));
    const json_t *proof = json_object_get(in, "proof");
    X509_REQ *req = NULL;
    X509 *leaf = NULL;
    char id[600], *pem = NULL;
    const char *why;

    if (csr == NULL || !valid_segment(zone) || !valid_segment(service)) {
        ctl_respond_errorf(r, 400, "want {csr, zone, service, token | proof}; zone and service are [A-Za-z0-9._-]+");
        goto out;
    }
    snprintf(id, sizeof(id), "spiffe://%s/%s/%s", ca->trust_domain, zone, service);
    if ((req = pem_csr(csr)) == NULL || X509_REQ_verify(req, X509_REQ_get0_pubkey(req)) != 1) {
        ERR_clear_error();
        ctl_respond_errorf(r, 400, "csr: not a valid PEM certificate request");
        goto out;
    }
    char fips_why[200];
    if (gy_tls_fips_key_check(X509_REQ_get0_pubkey(req), fips_why, sizeof(fips_why)) != 0) {
        ctl_respond_errorf(r, 400, "csr: FIPS mode: %s", fips_why);
        goto out;
    }
    why = token != NULL ? check_token(ca, token, zone, service)
          : proof != NULL ? check_proof(ca, proof, csr, id)
                          : "needs a join token or a proof by the current SVID";
    if (why != NULL) {
        gy_warn("ca: refused an SVID for %s from %s: %s", id, r->peer, why);
        ctl_respond_errorf(r, 403, "%s", why);
        goto out;
    }
    if ((leaf = issue(ca, req, service, id)) == NULL || (pem = ca_pem_of(leaf)) == NULL) {
        ctl_respond_errorf(r, 500, "cannot sign: %s", ca_ossl_reason());
        goto out;
    }
    ca->issued++;
    gy_info("ca: issued %s to %s (%s)", id, r->peer, token ? "join token" : "renewal");
    ctl_identity_seen(ctl, zone, service);
    ctl_respond_result(r, 200,
                       json_pack("{s:s,s:s,s:s,s:I}", "certificate", pem, "bundle", ca->bundle, "spiffe_id", id,
                                 "expires_at", (json_int_t)(time(NULL) + ca->ttl_s)));
out:
    free(pem);
    X509_free(leaf);
    X509_REQ_free(req);
    json_decref(in);
}

static void create_token(struct ctl_ca *ca, struct ctl_req *r)
{
    json_t *in = r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : json_object();
    const char *service = json_string_value(json_object_get(in, "service"));
    const char *zone = json_string_value(json_object_get(in, "zone"));
    const char *ttl = json_string_value(json_object_get(in, "ttl"));
    json_int_t uses = json_integer_value(json_object_get(in, "uses"));
    long long ttl_ms = gy_parse_duration_ms(ttl ? ttl : "24h");
    unsigned char rnd[32];
    char token[80], key[65];

    if (!json_is_object(in) || (service && !valid_segment(service)) || (zone && !valid_segment(zone)) ||
        ttl_ms <= 0 || uses < 0) {
        ctl_respond_errorf(r, 400, "want {service?, zone?, ttl?: \"24h\", uses?: N}");
        json_decref(in);
        return;
    }
    if (json_object_size(ca->tokens) >= 10000 || RAND_bytes(rnd, sizeof(rnd)) != 1) {
        ctl_respond_errorf(r, 503, "cannot create more tokens");
        json_decref(in);
        return;
    }
    int n = snprintf(token, sizeof(token), "gyt_");
    for (size_t i = 0; i < sizeof(rnd); i++)
        n += snprintf(token + n, sizeof(token) - (size_t)n, "%02x", rnd[i]);
    token_key(token, key);
    json_int_t expires = (json_int_t)time(NULL) + ttl_ms / 1000;
    json_t *rec = json_pack("{s:I,s:I}", "expires", expires, "uses", uses);
    if (service)
        json_object_set_new(rec, "service", json_string(service));
    if (zone)
        json_object_set_new(rec, "zone", json_string(zone));
    json_object_set_new(ca->tokens, key, rec);
    ca_save_tokens(ca);
    ctl_respond_result(r, 201, json_pack("{s:s,s:I}", "token", token, "expires_at", expires));
    json_decref(in);
}

void ctl_ca_handle(struct gy_control *ctl, struct ctl_req *r, const char *sub)
{
    struct ctl_ca *ca = ctl->ca;
    bool get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;

    if (ca == NULL) {
        ctl_respond_errorf(r, 404, "this control plane has no CA");
    } else if (strcmp(sub, "bundle") == 0 && get) {
        ctl_respond_result(r, 200, json_pack("{s:s,s:s}", "trust_domain", ca->trust_domain, "bundle", ca->bundle));
    } else if (strcmp(sub, "sign") == 0 && post) {
        sign(ctl, ca, r);
    } else if (strcmp(sub, "tokens") == 0 && post) {
        create_token(ca, r);
    } else {
        ctl_respond_errorf(r, 404, "the CA serves GET /v1.0/ca/bundle, POST /v1.0/ca/sign, POST /v1.0/ca/tokens");
    }
}
