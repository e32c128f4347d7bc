/*
 * An SSL_CTX from an `ssl_config` (Grey Matter #ListenerSSLConfig / #ClusterSSLConfig):
 * cert_key_pairs, protocols, cipher_filter, ecdh_curves, trust_file, crl, require_client_certs,
 * ocsp_staple; session
 * tickets and ALPN on server contexts. Files are read by us (not by OpenSSL's file loaders) so
 * that errors name the field and the OS reason, and so that reload.c knows which files to watch.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/log.h"
#include "tls/tls_int.h"

#define MAX_FILE_BYTES (16u << 20) /* certificates, keys, bundles, CRLs */
#define SESSION_TIMEOUT_S 3600     /* ticket keys rotate hourly and stay valid for two more hours */

int tls_berr(struct tls_build *b, const char *field, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (field != NULL)
        snprintf(b->err, b->errlen, "%s: ssl_config.%s: %s", b->what, field, msg);
    else
        snprintf(b->err, b->errlen, "%s: ssl_config: %s", b->what, msg);
    ERR_clear_error();
    return -1;
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0; /* encrypted keys are refused, never prompted for */
}

static int record_file(struct tls_build *b, const char *path, const struct stat *st)
{
    struct tls_set *s = b->set;
    struct tls_file *f = realloc(s->files, (s->nfiles + 1) * sizeof(*f));

    if (f == NULL)
        return -1;
    s->files = f;
    f += s->nfiles;
    if ((f->path = strdup(path)) == NULL)
        return -1;
    f->st = *st;
    s->nfiles++;
    return 0;
}

/* Reads a whole file into a BIO (freed by the caller). */
static BIO *read_file(struct tls_build *b, const char *field, const char *path)
{
    struct stat st;
    char *data = NULL;
    size_t len = 0;
    BIO *bio = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        tls_berr(b, field, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0) {
        tls_berr(b, field, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_FILE_BYTES) {
        tls_berr(b, field, "cannot read %s: %s", path, S_ISREG(st.st_mode) ? "larger than 16 MiB" : "not a regular file");
        goto out;
    }
    if ((data = malloc((size_t)st.st_size + 1)) == NULL)
        goto nomem;
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, data + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            tls_berr(b, field, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (record_file(b, path, &st) != 0 || (bio = BIO_new(BIO_s_mem())) == NULL)
        goto nomem;
    if (BIO_write(bio, data, (int)len) != (int)len) {
        BIO_free(bio);
        bio = NULL;
        goto nomem;
    }
    goto out;
nomem:
    tls_berr(b, field, "out of memory");
out:
    free(data);
    close(fd);
    return bio;
}

static const char *jstr(const json_t *o, const char *name)
{
    const char *s = json_string_value(json_object_get(o, name));
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* ---- versions and ciphers ---- */

int tls_protocols(struct tls_build *b, const json_t *list, int *min, int *max)
{
    static const struct {
        const char *name;
        int version;
    } names[] = { { "TLSv1_0", TLS1_VERSION }, { "TLSv1_1", TLS1_1_VERSION }, { "TLSv1_2", TLS1_2_VERSION },
                  { "TLSv1_3", TLS1_3_VERSION } };
    int lo = 0, hi = 0;
    const json_t *v;
    size_t i;

    *min = TLS1_2_VERSION;
    *max = 0;
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        for (size_t k = 0; s != NULL && k < sizeof(names) / sizeof(names[0]); k++) {
            if (strcmp(s, names[k].name) != 0)
                continue;
            lo = lo == 0 || names[k].version < lo ? names[k].version : lo;
            hi = names[k].version > hi ? names[k].version : hi;
        }
    }
    if (hi == 0)
        return 0; /* none or only TLS_AUTO: TLS 1.2 and 1.3 */
    if (hi < TLS1_2_VERSION)
        return tls_berr(b, "protocols", "TLSv1_0 and TLSv1_1 are not supported (insecure; OpenSSL 3 refuses them); "
                                        "list TLSv1_2 and/or TLSv1_3");
    if (lo < TLS1_2_VERSION)
        gy_warn("%s: ssl_config.protocols: TLSv1_0 and TLSv1_1 are not offered; the minimum is TLSv1_2", b->what);
    *min = lo < TLS1_2_VERSION ? TLS1_2_VERSION : lo;
    *max = hi;
    return 0;
}

char *tls_cipher_list(const char *filter)
{
    size_t n = strlen(filter);
    char *out = malloc(n + 1), *w = out;

    if (out == NULL)
        return NULL;
    for (const char *p = filter; *p != '\0'; p++) {
        if (*p == '[' || *p == ']' || *p == ' ')
            continue;
        *w++ = *p == '|' || *p == ',' ? ':' : *p;
    }
    *w = '\0';
    return out;
}

/* ecdh_curves: the key exchange groups, in order; FIPS mode takes P-256 and P-384 only. */
static int apply_groups(struct tls_build *b, const json_t *ssl, SSL_CTX *ctx)
{
    const json_t *curves = json_object_get(ssl, "ecdh_curves"), *v;
    char list[512];
    size_t i, len = 0;

    if (json_array_size(curves) == 0)
        return 0;
    json_array_foreach(curves, i, v)
    {
        const char *g = json_string_value(v);
        if (g == NULL || *g == '\0' || strchr(g, ':') != NULL || len + strlen(g) + 2 > sizeof(list))
            return tls_berr(b, "ecdh_curves", "each entry is one group name, e.g. X25519 or P-256");
        if (tls_fips_mode() != 0 && strcmp(g, "P-256") != 0 && strcmp(g, "P-384") != 0 &&
            strcmp(g, "prime256v1") != 0 && strcmp(g, "secp384r1") != 0)
            return tls_berr(b, "ecdh_curves", "FIPS mode: \"%s\" is not an approved group (P-256, P-384)", g);
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", len ? ":" : "", g);
    }
    if (SSL_CTX_set1_groups_list(ctx, list) != 1)
        return tls_berr(b, "ecdh_curves", "unknown group in \"%s\"", list);
    return 0;
}

static int apply_versions_ciphers(struct tls_build *b, const json_t *ssl, struct tls_ctx *c)
{
    const char *filter = jstr(ssl, "cipher_filter");
    char *list = NULL;

    if (tls_protocols(b, json_object_get(ssl, "protocols"), &c->min_version, &c->max_version) != 0 ||
        apply_groups(b, ssl, c->ctx) != 0)
        return -1;
    if (SSL_CTX_set_min_proto_version(c->ctx, c->min_version) != 1 ||
        SSL_CTX_set_max_proto_version(c->ctx, c->max_version) != 1)
        return tls_berr(b, "protocols", "%s", tls_ossl_reason());
    if (filter != NULL) {
        if ((list = tls_cipher_list(filter)) == NULL)
            return tls_berr(b, "cipher_filter", "out of memory");
        if (SSL_CTX_set_cipher_list(c->ctx, list) != 1) {
            free(list);
            return tls_berr(b, "cipher_filter", "no usable cipher in \"%s\"", filter);
        }
    }
    if (tls_fips_mode() != 0) {
        free(list);
        if ((list = tls_fips_ciphers(c->ctx)) == NULL)
            return tls_berr(b, "cipher_filter", "no FIPS-approved cipher (ECDHE with AES-GCM) in \"%s\"",
                            filter != NULL ? filter : "");
        if (SSL_CTX_set_cipher_list(c->ctx, list) != 1) {
            free(list);
            return tls_berr(b, "cipher_filter", "%s", tls_ossl_reason());
        }
    }
    c->ciphers = list;
    return 0;
}

/* ---- certificates and keys ---- */

static int load_pair(struct tls_build *b, SSL_CTX *ctx, const json_t *pair, size_t i, int *types, size_t *ntypes)
{
    char fcert[64], fkey[64], why[200];
    const char *cert_path = jstr(pair, "certificate_path"), *key_path = jstr(pair, "key_path");
    STACK_OF(X509) *chain = NULL;
    X509 *leaf = NULL, *x;
    EVP_PKEY *key = NULL;
    BIO *bio = NULL;
    int rc = -1;

    snprintf(fcert, sizeof(fcert), "cert_key_pairs[%zu].certificate_path", i);
    snprintf(fkey, sizeof(fkey), "cert_key_pairs[%zu].key_path", i);
    if (cert_path == NULL)
        return tls_berr(b, fcert, "required");
    if (key_path == NULL)
        return tls_berr(b, fkey, "required");
    if ((bio = read_file(b, fcert, cert_path)) == NULL)
        goto out;
    if ((leaf = PEM_read_bio_X509_AUX(bio, NULL, no_password, NULL)) == NULL) {
        tls_berr(b, fcert, "no PEM certificate in %s", cert_path);
        goto out;
    }
    if ((chain = sk_X509_new_null()) == NULL)
        goto nomem;
    while ((x = PEM_read_bio_X509(bio, NULL, no_password, NULL)) != NULL) {
        if (!sk_X509_push(chain, x)) {
            X509_free(x);
            goto nomem;
        }
    }
    ERR_clear_error(); /* the end of the file */
    BIO_free(bio);
    if ((bio = read_file(b, fkey, key_path)) == NULL)
        goto out;
    if ((key = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL)) == NULL) {
        tls_berr(b, fkey, "no PEM private key in %s (encrypted keys are not supported)", key_path);
        goto out;
    }
    if (X509_check_private_key(leaf, key) != 1) {
        tls_berr(b, fkey, "%s does not match the certificate %s", key_path, cert_path);
        goto out;
    }
    if (tls_fips_mode() != 0 && tls_fips_check(key, leaf, why, sizeof(why)) != 0) {
        tls_berr(b, fcert, "%s: FIPS mode: %s", cert_path, why);
        goto out;
    }
    for (size_t k = 0; k < *ntypes; k++)
        if (types[k] == EVP_PKEY_get_base_id(key)) {
            tls_key_describe(key, why, sizeof(why));
            tls_berr(b, fcert, "a second certificate with a %s key: one ssl_config holds one certificate per key "
                               "type; give other names their own domain ssl_config or sni", why);
            goto out;
        }
    types[(*ntypes)++] = EVP_PKEY_get_base_id(key);
    if (SSL_CTX_use_cert_and_key(ctx, leaf, key, chain, 1) != 1) {
        tls_berr(b, fcert, "%s: %s", cert_path, tls_ossl_reason());
        goto out;
    }
    struct tls_set *s = b->set;
    struct tls_cert_info *ci = realloc(s->certs, (s->ncerts + 1) * sizeof(*ci));
    if (ci == NULL)
        goto nomem;
    s->certs = ci;
    if (tls_cert_info_fill(&ci[s->ncerts], cert_path, leaf, key) != 0)
        goto nomem;
    s->ncerts++;
    rc = 0;
    goto out;
nomem:
    tls_berr(b, fcert, "out of memory");
out:
    BIO_free(bio);
    X509_free(leaf);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}

static int load_pairs(struct tls_build *b, SSL_CTX *ctx, const json_t *pairs)
{
    int types[8];
    size_t ntypes = 0, i;
    const json_t *p;

    if (json_array_size(pairs) > sizeof(types) / sizeof(types[0]))
        return tls_berr(b, "cert_key_pairs", "at most 8 certificates");
    json_array_foreach(pairs, i, p)
    {
        if (load_pair(b, ctx, p, i, types, &ntypes) != 0)
            return -1;
    }
    return 0;
}

/* ---- trust and revocation ---- */

static int load_trust(struct tls_build *b, SSL_CTX *ctx, const char *path, bool ca_names)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_INFO) *infos;
    BIO *bio = read_file(b, "trust_file", path);
    int n = 0;

    if (bio == NULL)
        return -1;
    infos = PEM_X509_INFO_read_bio(bio, NULL, no_password, NULL);
    BIO_free(bio);
    for (int i = 0; infos != NULL && i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *xi = sk_X509_INFO_value(infos, i);
        if (xi->x509 == NULL)
            continue;
        if (X509_STORE_add_cert(store, xi->x509) != 1 || (ca_names && SSL_CTX_add_client_CA(ctx, xi->x509) != 1)) {
            sk_X509_INFO_pop_free(infos, X509_INFO_free);
            return tls_berr(b, "trust_file", "%s: %s", path, tls_ossl_reason());
        }
        n++;
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    if (n == 0)
        return tls_berr(b, "trust_file", "no PEM certificate in %s", path);
    ERR_clear_error();
    return 0;
}

static int load_crl(struct tls_build *b, SSL_CTX *ctx, const json_t *crl)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    const char *file = jstr(crl, "filename"), *text = jstr(crl, "inline_string");
    const char *field = file != NULL ? "crl.filename" : "crl.inline_string";
    STACK_OF(X509_INFO) *infos;
    BIO *bio;
    int n = 0;

    if (file == NULL && text == NULL)
        return tls_berr(b, "crl", "give filename or inline_string");
    bio = file != NULL ? read_file(b, field, file) : BIO_new_mem_buf(text, -1);
    if (bio == NULL)
        return file != NULL ? -1 : tls_berr(b, field, "out of memory");
    infos = PEM_X509_INFO_read_bio(bio, NULL, no_password, NULL);
    BIO_free(bio);
    for (int i = 0; infos != NULL && i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *xi = sk_X509_INFO_value(infos, i);
        if (xi->crl == NULL)
            continue;
        if (X509_STORE_add_crl(store, xi->crl) != 1) {
            sk_X509_INFO_pop_free(infos, X509_INFO_free);
            return tls_berr(b, field, "%s", tls_ossl_reason());
        }
        n++;
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    if (n == 0)
        return tls_berr(b, field, "no PEM CRL in %s", file != NULL ? file : "the inline string");
    /* Envoy's rule: every certificate of the chain is checked against its issuer's CRL. */
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    ERR_clear_error();
    return 0;
}

/* ---- SPIFFE IDs (`secret`) ---- */

static int ctx_index = -1; /* SSL_CTX ex_data: its struct tls_ctx (set on the main thread, then read-only) */

static bool spiffe_allowed(const struct tls_ctx *c, const char *id)
{
    for (size_t i = 0; i < c->nspiffe_ids; i++)
        if (strcmp(id, c->spiffe_ids[i]) == 0)
            return true;
    if (c->nspiffe_ids > 0 || c->spiffe_td == NULL)
        return c->nspiffe_ids == 0;
    size_t n = strlen(c->spiffe_td);
    return strncmp(id, c->spiffe_td, n) == 0 && id[n] == '/';
}

/* After OpenSSL verified the chain: the leaf's SPIFFE ID must be one the `secret` allows. */
static int spiffe_verify(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    const struct tls_ctx *c = ssl != NULL ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index) : NULL;

    if (!ok || X509_STORE_CTX_get_error_depth(xs) != 0 || c == NULL)
        return ok;
    char *id = tls_spiffe_id(X509_STORE_CTX_get_current_cert(xs));
    bool good = id != NULL && spiffe_allowed(c, id);
    free(id);
    if (!good)
        X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
    return good;
}

static int apply_spiffe(struct tls_build *b, const json_t *ssl, struct tls_ctx *c)
{
    const json_t *sp = json_object_get(ssl, "spiffe"), *ids = json_object_get(sp, "subject_names"), *v;
    const char *td = jstr(sp, "trust_domain");
    size_t i;

    if (!json_is_object(sp))
        return 0;
    if (ctx_index < 0 && (ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL)) < 0)
        return tls_berr(b, NULL, "%s", tls_ossl_reason());
    if (td != NULL && (c->spiffe_td = strdup(td)) == NULL)
        return tls_berr(b, NULL, "out of memory");
    if (c->spiffe_td != NULL && c->spiffe_td[0] != '\0' && c->spiffe_td[strlen(c->spiffe_td) - 1] == '/')
        c->spiffe_td[strlen(c->spiffe_td) - 1] = '\0';
    if (json_array_size(ids) > 0 && (c->spiffe_ids = calloc(json_array_size(ids), sizeof(char *))) == NULL)
        return tls_berr(b, NULL, "out of memory");
    json_array_foreach(ids, i, v)
    {
        if (json_is_string(v) && (c->spiffe_ids[c->nspiffe_ids++] = strdup(json_string_value(v))) == NULL)
            return tls_berr(b, NULL, "out of memory");
    }
    SSL_CTX_set_ex_data(c->ctx, ctx_index, c);
    SSL_CTX_set_verify(c->ctx, c->verify_mode, spiffe_verify);
    return 0;
}

/* ---- contexts ---- */

static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg)
{
    const struct tls_alpn *a = arg;
    unsigned char *chosen = NULL;

    (void)s;
    if (SSL_select_next_proto(&chosen, outlen, a->wire, a->len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no common protocol: go on without ALPN */
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *ctx_new(struct tls_build *b, bool server)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    char why[200];

    if (ctx == NULL) {
        tls_berr(b, NULL, "cannot create a TLS context: %s", tls_ossl_reason());
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    if (tls_fips_mode() != 0 && tls_fips_restrict(ctx, why, sizeof(why)) != 0) {
        tls_berr(b, NULL, "FIPS mode: %s", why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Sessions of one ssl_config are never resumed under another (the verify settings differ). */
static int set_session_context(struct tls_build *b, SSL_CTX *ctx, const json_t *ssl)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char *dump = json_dumps(ssl, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    int ok = dump != NULL && h != NULL && EVP_DigestInit_ex(h, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(h, b->what, strlen(b->what)) == 1 && EVP_DigestUpdate(h, dump, strlen(dump)) == 1 &&
             EVP_DigestFinal_ex(h, md, &mdlen) == 1 &&
             SSL_CTX_set_session_id_context(ctx, md, mdlen > SSL_MAX_SID_CTX_LENGTH ? SSL_MAX_SID_CTX_LENGTH : mdlen) == 1;

    EVP_MD_CTX_free(h);
    free(dump);
    return ok ? 0 : tls_berr(b, NULL, "cannot set the session context: %s", tls_ossl_reason());
}

/* ---- OCSP stapling ---- */

static int staple(SSL *ssl, void *arg)
{
    const struct tls_ctx *c = arg;
    unsigned char *copy;

    if (c->ocsp == NULL || (copy = OPENSSL_malloc(c->ocsp_len)) == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    memcpy(copy, c->ocsp, c->ocsp_len);
    SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)c->ocsp_len); /* OpenSSL frees it */
    return SSL_TLSEXT_ERR_OK;
}

/* The issuer of the leaf among the chain the certificate file gave, or NULL. */
static X509 *issuer_of(SSL_CTX *ctx, X509 *leaf)
{
    STACK_OF(X509) *chain = NULL;

    SSL_CTX_get0_chain_certs(ctx, &chain);
    for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++)
        if (X509_check_issued(sk_X509_value(chain, i), leaf) == X509_V_OK)
            return sk_X509_value(chain, i);
    return NULL;
}

/* ocsp_staple: a DER OCSP response for the (last) certificate, checked to be a successful
 * answer that is current and, when the file's chain has the issuer, says "good" for exactly
 * this certificate. */
static int load_ocsp(struct tls_build *b, const char *path, struct tls_ctx *c)
{
    BIO *bio = read_file(b, "ocsp_staple", path);
    const unsigned char *p;
    char *data;
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *basic = NULL;
    int rc = -1;

    if (bio == NULL)
        return -1;
    long len = BIO_get_mem_data(bio, &data);
    p = (const unsigned char *)data;
    if (len <= 0 || (resp = d2i_OCSP_RESPONSE(NULL, &p, len)) == NULL) {
        tls_berr(b, "ocsp_staple", "%s is not a DER OCSP response", path);
        goto out;
    }
    if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL || (basic = OCSP_response_get1_basic(resp)) == NULL) {
        tls_berr(b, "ocsp_staple", "%s: the responder did not answer (%s)", path,
                 OCSP_response_status_str(OCSP_response_status(resp)));
        goto out;
    }
    X509 *leaf = SSL_CTX_get0_certificate(c->ctx), *issuer = leaf != NULL ? issuer_of(c->ctx, leaf) : NULL;
    if (issuer != NULL) {
        OCSP_CERTID *id = OCSP_cert_to_id(NULL, leaf, issuer);
        ASN1_GENERALIZEDTIME *thisupd = NULL, *nextupd = NULL;
        int status = -1, reason = 0;
        int found = id != NULL && OCSP_resp_find_status(basic, id, &status, &reason, NULL, &thisupd, &nextupd) == 1;
        OCSP_CERTID_free(id);
        if (!found) {
            tls_berr(b, "ocsp_staple", "%s does not answer for this certificate", path);
            goto out;
        }
        if (status != V_OCSP_CERTSTATUS_GOOD) {
            tls_berr(b, "ocsp_staple", "%s says the certificate is %s", path, OCSP_cert_status_str(status));
            goto out;
        }
        if (OCSP_check_validity(thisupd, nextupd, 300, -1) != 1) {
            tls_berr(b, "ocsp_staple", "%s is not current (outside its thisUpdate..nextUpdate)", path);
            goto out;
        }
    } else {
        gy_warn("%s: ocsp_staple %s: the certificate file has no issuer certificate, so the response is stapled "
                "without checking that it is about this certificate", b->what, path);
    }
    if ((c->ocsp = malloc((size_t)len)) == NULL) {
        tls_berr(b, "ocsp_staple", "out of memory");
        goto out;
    }
    memcpy(c->ocsp, data, (size_t)len);
    c->ocsp_len = (size_t)len;
    SSL_CTX_set_tlsext_status_cb(c->ctx, staple);
    SSL_CTX_set_tlsext_status_arg(c->ctx, c);
    rc = 0;
out:
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    BIO_free(bio);
    return rc;
}

int tls_ctx_server(struct tls_build *b, const json_t *ssl, const struct tls_alpn *alpn, struct tls_ctx *out)
{
    const char *trust = jstr(ssl, "trust_file");
    const json_t *pairs = json_object_get(ssl, "cert_key_pairs");
    bool require = json_is_true(json_object_get(ssl, "require_client_certs"));

    memset(out, 0, sizeof(*out));
    if (json_array_size(pairs) == 0)
        return tls_berr(b, "cert_key_pairs", "a TLS listener needs a certificate (certificate_path and key_path)");
    if (require && trust == NULL)
        return tls_berr(b, "require_client_certs", "needs trust_file (the CAs that sign client certificates)");
    if (json_object_get(ssl, "crl") != NULL && !json_is_null(json_object_get(ssl, "crl")) && trust == NULL)
        return tls_berr(b, "crl", "needs trust_file (client certificates are only checked with one)");
    if ((out->ctx = ctx_new(b, true)) == NULL)
        return -1;
    if (apply_versions_ciphers(b, ssl, out) != 0 || load_pairs(b, out->ctx, pairs) != 0)
        goto fail;
    if (trust != NULL && load_trust(b, out->ctx, trust, true) != 0)
        goto fail;
    if (json_is_object(json_object_get(ssl, "crl")) && load_crl(b, out->ctx, json_object_get(ssl, "crl")) != 0)
        goto fail;
    out->verify_mode = require ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                       : trust != NULL ? SSL_VERIFY_PEER : SSL_VERIFY_NONE;
    SSL_CTX_set_verify(out->ctx, out->verify_mode, NULL);
    if (apply_spiffe(b, ssl, out) != 0 || set_session_context(b, out->ctx, ssl) != 0)
        goto fail;
    if (jstr(ssl, "ocsp_staple") != NULL && load_ocsp(b, jstr(ssl, "ocsp_staple"), out) != 0)
        goto fail;
    SSL_CTX_set_timeout(out->ctx, SESSION_TIMEOUT_S);
    if (SSL_CTX_set_tlsext_ticket_key_evp_cb(out->ctx, tls_ticket_cb) != 1) {
        tls_berr(b, NULL, "cannot set the session ticket keys: %s", tls_ossl_reason());
        goto fail;
    }
    if (alpn != NULL)
        SSL_CTX_set_alpn_select_cb(out->ctx, alpn_select, (void *)alpn);
    return 0;
fail:
    tls_ctx_dispose(out);
    return -1;
}

int tls_ctx_client(struct tls_build *b, const json_t *ssl, struct tls_ctx *out, bool *system_store)
{
    static const unsigned char http11[] = "\x08http/1.1";
    const char *trust = jstr(ssl, "trust_file");
    const json_t *crl = json_object_get(ssl, "crl");

    memset(out, 0, sizeof(*out));
    *system_store = trust == NULL;
    if ((out->ctx = ctx_new(b, false)) == NULL)
        return -1;
    if (apply_versions_ciphers(b, ssl, out) != 0 || load_pairs(b, out->ctx, json_object_get(ssl, "cert_key_pairs")) != 0)
        goto fail;
    if (trust != NULL && load_trust(b, out->ctx, trust, false) != 0)
        goto fail;
    if (trust == NULL && SSL_CTX_set_default_verify_paths(out->ctx) != 1) {
        tls_berr(b, "trust_file", "no trust_file and the system store cannot be used: %s", tls_ossl_reason());
        goto fail;
    }
    if (json_is_object(crl) && load_crl(b, out->ctx, crl) != 0)
        goto fail;
    out->verify_mode = SSL_VERIFY_PEER;
    SSL_CTX_set_verify(out->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(out->ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(out->ctx, tls_client_new_session);
    if (apply_spiffe(b, ssl, out) != 0)
        goto fail;
    if (SSL_CTX_set_alpn_protos(out->ctx, http11, sizeof(http11) - 1) != 0) { /* 0 is success here */
        tls_berr(b, NULL, "cannot set ALPN: %s", tls_ossl_reason());
        goto fail;
    }
    return 0;
fail:
    tls_ctx_dispose(out);
    return -1;
}

void tls_ctx_dispose(struct tls_ctx *c)
{
    SSL_CTX_free(c->ctx);
    free(c->ciphers);
    free(c->ocsp);
    free(c->spiffe_td);
    for (size_t i = 0; i < c->nspiffe_ids; i++)
        free(c->spiffe_ids[i]);
    free(c->spiffe_ids);
    memset(c, 0, sizeof(*c));
}
