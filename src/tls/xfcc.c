/*
 * Our element of x-forwarded-client-cert for a verified client certificate, in Envoy's format:
 * `By=<our URI SAN>;Hash=<hex SHA-256 of the client's DER>` then, as asked, `Cert="<URL-encoded
 * PEM>"`, `Chain="<URL-encoded PEM chain>"`, `Subject="<RFC 2253 DN>"`, `URI=<SAN>` and
 * `DNS=<SAN>` (one per SAN). Values that hold `,`, `;`, `=` or `"` are quoted, with `"` and `\`
 * escaped inside quotes; bytes a header may not carry are percent-encoded.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls/tls_int.h"

struct sb {
    char *p;
    size_t len, cap;
    bool failed;
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_cstr(struct sb *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_pct(struct sb *b, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    char e[3] = { '%', hex[c >> 4], hex[c & 15] };

    sb_put(b, e, 3);
}

/* key=value; quoted when the value holds a separator (always when `quote`). */
static void sb_field(struct sb *b, const char *key, const char *v, bool quote)
{
    quote = quote || strpbrk(v, ",;=\"") != NULL;
    sb_put(b, b->len ? ";" : "", b->len ? 1 : 0);
    sb_cstr(b, key);
    sb_put(b, quote ? "=\"" : "=", quote ? 2 : 1);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p < 0x20 || *p >= 0x7f)
            sb_pct(b, *p);
        else if (quote && (*p == '"' || *p == '\\')) {
            sb_put(b, "\\", 1);
            sb_put(b, (const char *)p, 1);
        } else
            sb_put(b, (const char *)p, 1);
    }
    if (quote)
        sb_put(b, "\"", 1);
}

/* PEM of the certificates, URL-encoded (everything but unreserved characters). */
static void sb_pem(struct sb *b, const char *key, X509 *const *certs, int n)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long len;

    for (int i = 0; bio != NULL && i < n; i++)
        if (PEM_write_bio_X509(bio, certs[i]) != 1)
            b->failed = true;
    if (bio == NULL || (len = BIO_get_mem_data(bio, &pem)) < 0) {
        b->failed = true;
        BIO_free(bio);
        return;
    }
    sb_put(b, ";", 1);
    sb_cstr(b, key);
    sb_put(b, "=\"", 2);
    for (long i = 0; i < len; i++) {
        unsigned char c = (unsigned char)pem[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c != 0 && strchr("-._~", c) != NULL))
            sb_put(b, (const char *)&c, 1);
        else
            sb_pct(b, c);
    }
    sb_put(b, "\"", 1);
    BIO_free(bio);
}

/* Every SAN of one type as key=value. */
static void sb_sans(struct sb *b, X509 *x, int type, const char *key)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);

    for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != type)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(g->d.ia5);
        int len = ASN1_STRING_length(g->d.ia5);
        if (d == NULL || len <= 0 || memchr(d, '\0', (size_t)len) != NULL)
            continue; /* a forged name with a NUL in it */
        char *v = strndup((const char *)d, (size_t)len);
        if (v == NULL) {
            b->failed = true;
            break;
        }
        sb_field(b, key, v, false);
        free(v);
    }
    GENERAL_NAMES_free(gens);
}

/* The first URI SAN of our own certificate (our SPIFFE ID), or NULL. */
static char *first_uri(X509 *x)
{
    GENERAL_NAMES *gens = x != NULL ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) : NULL;
    char *out = NULL;

    for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens) && out == NULL; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const unsigned char *d = g->type == GEN_URI ? ASN1_STRING_get0_data(g->d.ia5) : NULL;
        int len = d != NULL ? ASN1_STRING_length(g->d.ia5) : 0;
        if (d != NULL && len > 0 && memchr(d, '\0', (size_t)len) == NULL)
            out = strndup((const char *)d, (size_t)len);
    }
    GENERAL_NAMES_free(gens);
    return out;
}

char *tls_xfcc_element(X509 *peer, STACK_OF(X509) *sent, X509 *local, unsigned fields)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    struct sb b = { 0 };
    char *by = first_uri(local);

    if (by != NULL)
        sb_field(&b, "By", by, false);
    free(by);
    if (X509_digest(peer, EVP_sha256(), md, &mdlen) != 1) {
        free(b.p);
        return NULL;
    }
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    sb_field(&b, "Hash", hex, false);
    if (fields & GY_XFCC_CERT)
        sb_pem(&b, "Cert", &peer, 1);
    if (fields & GY_XFCC_CHAIN) {
        /* Leaf first, then what the client sent besides it (a server's peer chain omits the leaf). */
        int n = sent != NULL ? sk_X509_num(sent) : 0;
        X509 **all = malloc((size_t)(n + 1) * sizeof(*all));
        int k = 0;
        if (all == NULL)
            b.failed = true;
        else {
            all[k++] = peer;
            for (int i = 0; i < n; i++)
                if (X509_cmp(sk_X509_value(sent, i), peer) != 0)
                    all[k++] = sk_X509_value(sent, i);
            sb_pem(&b, "Chain", all, k);
            free(all);
        }
    }
    if (fields & GY_XFCC_SUBJECT) {
        char *subject = tls_name_string(X509_get_subject_name(peer));
        if (subject != NULL)
            sb_field(&b, "Subject", subject, true);
        free(subject);
    }
    if (fields & GY_XFCC_URI)
        sb_sans(&b, peer, GEN_URI, "URI");
    if (fields & GY_XFCC_DNS)
        sb_sans(&b, peer, GEN_DNS, "DNS");
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
