/*
 * Internals of src/tls shared between its files (not for other layers: they use tls.h).
 *
 * An owner (what listener->tls and cluster->tls point to) holds the spec it was built from and
 * its current set. A set is one generation of contexts: immutable once built, reference counted
 * by the connections made with it, replaced as a whole when a certificate file changes
 * (reload.c) or when a new config is attached (a new owner).
 */
#ifndef GY_TLS_TLS_INT_H
#define GY_TLS_TLS_INT_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "core/list.h"
#include "tls/tls.h"

/* A file a set was built from, with what fstat() said when it was read (reload.c compares). */
struct tls_file {
    char *path;
    struct stat st;
};

/* A certificate loaded into a set, for /certs and the expiry metric. */
struct tls_cert_info {
    char *path;
    char *subject;                  /* RFC 2253: "CN=x,O=y" */
    char *issuer;
    char **sans;                    /* "DNS:a", "IP:1.2.3.4", "URI:spiffe://..." */
    size_t nsans;
    char *key;                      /* "EC P-256", "RSA 2048" */
    int64_t not_after;              /* Unix seconds */
};

/* One ssl_config compiled into an SSL_CTX, plus what has to be applied per connection when SNI
 * moves a connection onto it (SSL_set_SSL_CTX carries the certificate and trust store, not the
 * versions, ciphers or verify mode). */
struct tls_ctx {
    SSL_CTX *ctx;
    int min_version, max_version;   /* TLS1_2_VERSION...; 0: no limit */
    char *ciphers;                  /* the TLS <= 1.2 cipher list applied, NULL: OpenSSL's default */
    int verify_mode;                /* SSL_VERIFY_* */
    char *spiffe_td;                /* `secret`: the peer's SPIFFE ID must be in this trust domain... */
    char **spiffe_ids;              /* ... or one of these (subject_names) */
    size_t nspiffe_ids;
    unsigned char *ocsp;            /* server: the DER OCSP response stapled for this certificate */
    size_t ocsp_len;
};

enum tls_name_match { TLS_NAME_EXACT, TLS_NAME_SUFFIX /* *.example.com */, TLS_NAME_PREFIX /* api.* */ };

/* A server name served by one of the set's contexts. */
struct tls_name {
    char *pattern;                  /* lower-case; ".example.com" for SUFFIX, "api." for PREFIX */
    size_t len;
    enum tls_name_match match;
    size_t ctx;                     /* index in set->ctxs */
};

enum tls_fail {
    TLS_FAIL_PROTOCOL,              /* no common TLS version */
    TLS_FAIL_CIPHER,                /* no common cipher / group / signature algorithm */
    TLS_FAIL_NO_CERT,               /* a required client certificate is missing */
    TLS_FAIL_VERIFY,                /* the peer's certificate did not verify (unknown CA...) */
    TLS_FAIL_REVOKED,               /* ... because it is revoked (crl) */
    TLS_FAIL_EXPIRED,               /* ... because it expired or is not valid yet */
    TLS_FAIL_PEER_ALERT,            /* the peer refused ours (unknown CA, bad certificate...) */
    TLS_FAIL_NOT_TLS,               /* plain HTTP or other bytes on a TLS port */
    TLS_FAIL_CLOSED,                /* the peer closed or reset during the handshake */
    TLS_FAIL_OTHER,
    TLS_FAIL_N
};

/* Counters of one listener or cluster (by name), kept for the life of the process. */
struct tls_counters {
    struct tls_counters *next;
    bool server;
    char *name;
    atomic_ullong handshakes, resumed, failures[TLS_FAIL_N], reloads, reload_failures;
};

struct tls_set {
    atomic_uint refs;
    bool server;
    struct tls_counters *ctr;
    struct tls_ctx *ctxs;           /* server: [0] serves clients without (or with an unknown) SNI */
    size_t nctxs;
    struct tls_name *names;         /* server: SNI -> context, most specific first */
    size_t nnames;
    struct tls_file *files;
    size_t nfiles;
    struct tls_cert_info *certs;
    size_t ncerts;
    char *sni;                      /* client: ssl_config.sni */
    bool verify_names;              /* client: check the name (the system store is used) */
    pthread_mutex_t sess_lock;      /* client: guards sessions (workers share the set) */
    struct tls_session *sessions;   /* client: the last resumable session per upstream host */
    size_t nsessions;
};

struct tls_session {
    char *host;
    SSL_SESSION *sess;
};

struct tls_owner {
    bool server;
    char *key;                      /* the listener's or cluster's key */
    char *what;                     /* `listener "x"`, `cluster "x"`: error and log prefix */
    json_t *spec;                   /* what sets are built from (sni.c, client.c) */
    struct tls_counters *ctr;
    pthread_mutex_t lock;           /* guards cur */
    struct tls_set *cur;
    uint64_t seen;                  /* reload.c: signature of the files at the last (re)build attempt */
    uint64_t pending;               /* reload.c: a changed signature waiting to settle */
    struct gy_list link;            /* in the registry (reload.c) */
};

/* Building: errors are `WHAT: ssl_config.FIELD: message`. */
struct tls_build {
    const char *what;               /* `listener "x"`, `domain "y"` */
    char *err;
    size_t errlen;
    struct tls_set *set;            /* files and certificates are recorded here */
};

int tls_berr(struct tls_build *b, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* x509.c */
char *tls_name_string(const X509_NAME *n);
/* The first URI SAN starting with "spiffe://", malloc'd, or NULL. */
char *tls_spiffe_id(X509 *x);
/* Our x-forwarded-client-cert element for a verified peer (xfcc.c); malloc'd, NULL without memory.
 * sent: the chain the peer sent (may omit the leaf); local: our certificate; fields: GY_XFCC_*. */
char *tls_xfcc_element(X509 *peer, STACK_OF(X509) *sent, X509 *local, unsigned fields);
int tls_cert_info_fill(struct tls_cert_info *ci, const char *path, X509 *x, EVP_PKEY *key);
void tls_cert_info_dispose(struct tls_cert_info *ci);
/* "EC P-256", "RSA 2048", "Ed25519" */
void tls_key_describe(EVP_PKEY *key, char *buf, size_t len);
const char *tls_ossl_reason(void);

/* ALPN protocols offered, in wire format (length-prefixed names), in preference order. */
struct tls_alpn {
    const unsigned char *wire;
    unsigned len;
};

/* ctx.c */
int tls_ctx_server(struct tls_build *b, const json_t *ssl, const struct tls_alpn *alpn, struct tls_ctx *out);
int tls_ctx_client(struct tls_build *b, const json_t *ssl, struct tls_ctx *out, bool *system_store);
void tls_ctx_dispose(struct tls_ctx *c);
/* Turns Envoy/BoringSSL cipher lists ("[A|B]:C") into OpenSSL's ("A:B:C"). malloc'd. */
char *tls_cipher_list(const char *filter);
/* "TLSv1_2"... to versions: 0 or -1 after tls_berr(). */
int tls_protocols(struct tls_build *b, const json_t *list, int *min, int *max);

/* sni.c */
int tls_server_spec(const struct gy_config *cfg, const struct gy_listener *l, json_t **spec, char *err, size_t errlen);
int tls_server_build(struct tls_owner *o, struct tls_set **out, char *err, size_t errlen);
/* Parses a server_name extension body; the host name lower-cased in name. 0, or -1 if malformed. */
int tls_sni_parse(const unsigned char *p, size_t len, char *name, size_t cap);
/* The context serving `name` (lower-case), or 0 (the default). */
size_t tls_sni_lookup(const struct tls_set *set, const char *name, size_t len);

/* client.c */
int tls_client_spec(const struct gy_config *cfg, const struct gy_cluster *c, json_t **spec, char *err, size_t errlen);
int tls_client_build(struct tls_owner *o, struct tls_set **out, char *err, size_t errlen);
/* Sets SNI, the name to verify and the ALPN offer on a new client SSL. */
int tls_client_setup(struct tls_set *set, SSL *ssl, const char *host, enum gy_tls_alpn_offer alpn);
/* SSL_CTX_sess_set_new_cb of client contexts: keeps the session for the connection's host. */
int tls_client_new_session(SSL *ssl, SSL_SESSION *sess);

/* tls.c */
/* The ssl_config that stands for a `secret` (the SVID files, the SPIFFE rule), or NULL with no
 * SVID (gy_tls_set_identity). */
json_t *tls_secret_ssl(const json_t *secret, bool server);
/* The object of `kind` whose `keyfield` is `key` in the validated objects, or NULL. */
const json_t *tls_find_object(const json_t *objects, const char *kind, const char *keyfield, const char *key);
struct tls_set *tls_set_new(bool server, struct tls_counters *ctr);
void tls_set_unref(struct tls_set *s);
struct tls_set *tls_owner_acquire(struct tls_owner *o);
int tls_owner_build(struct tls_owner *o, struct tls_set **out, char *err, size_t errlen);

/* transport.c */
struct gy_transport *tls_conn_new(struct tls_set *set, SSL *ssl, bool server);

/* tickets.c: session ticket keys shared by all listeners, rotated every hour; tickets of the two
 * previous keys are still accepted (and renewed). */
int tls_tickets_init(void);
void tls_tickets_free(void);
void tls_tickets_tick(uint64_t now_ms);
void tls_tickets_rotate(void);
int tls_ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *ctx, EVP_MAC_CTX *hctx,
                  int enc);

/* reload.c: the registry of live owners and the file watch. */
void tls_registry_add(struct tls_owner *o);
void tls_registry_remove(struct tls_owner *o);
uint64_t tls_files_signature(const struct tls_file *files, size_t n, bool fresh);
void tls_registry_lock(void);
void tls_registry_unlock(void);
struct gy_list *tls_registry(void);
int tls_watch_start(struct gy_loop *loop);
void tls_watch_stop(void);

/* metrics.c */
struct tls_counters *tls_counters_get(bool server, const char *name);
void tls_counters_free(void);
void tls_count_failure(struct tls_counters *c, SSL *ssl, int ssl_error, unsigned long err);

/* fips.c */
int tls_fips_setup(const char *mode, char *err, size_t errlen);
void tls_fips_free(void);
int tls_fips_mode(void);            /* 0 off, 1 on, 2 required */
bool tls_fips_provider(void);       /* the FIPS provider is loaded */
/* FIPS restrictions on a context: TLS 1.2+, AES-GCM suites, P-256/P-384, SHA-256+ signatures. */
int tls_fips_restrict(SSL_CTX *ctx, char *why, size_t len);
/* Whether a key (and the certificate's signature) may be used in FIPS mode. */
int tls_fips_check(EVP_PKEY *key, X509 *x, char *why, size_t len);
/* Keeps only FIPS-approved TLS 1.2 suites of a cipher list (malloc'd), NULL if none. */
char *tls_fips_ciphers(SSL_CTX *ctx);

#endif
