/*
 * TLS counters per listener and cluster (kept for the life of the process, like the proxy's
 * stats scopes, so that they survive reloads), their Prometheus lines, and the /certs document.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>

#include "core/err.h"
#include "tls/tls_int.h"

static pthread_mutex_t counters_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_counters *counters;

static const char *const fail_names[TLS_FAIL_N] = {
    [TLS_FAIL_PROTOCOL] = "protocol_version",
    [TLS_FAIL_CIPHER] = "no_shared_cipher",
    [TLS_FAIL_NO_CERT] = "no_client_certificate",
    [TLS_FAIL_VERIFY] = "certificate_verify_failed",
    [TLS_FAIL_REVOKED] = "certificate_revoked",
    [TLS_FAIL_EXPIRED] = "certificate_expired",
    [TLS_FAIL_PEER_ALERT] = "peer_alert",
    [TLS_FAIL_NOT_TLS] = "not_tls",
    [TLS_FAIL_CLOSED] = "connection_closed",
    [TLS_FAIL_OTHER] = "other",
};

struct tls_counters *tls_counters_get(bool server, const char *name)
{
    struct tls_counters *c;

    pthread_mutex_lock(&counters_lock);
    for (c = counters; c != NULL; c = c->next)
        if (c->server == server && strcmp(c->name, name) == 0)
            break;
    if (c == NULL && (c = calloc(1, sizeof(*c))) != NULL) {
        if ((c->name = strdup(name)) == NULL) {
            free(c);
            c = NULL;
        } else {
            c->server = server;
            c->next = counters;
            counters = c;
        }
    }
    pthread_mutex_unlock(&counters_lock);
    return c;
}

void tls_counters_free(void)
{
    pthread_mutex_lock(&counters_lock);
    while (counters != NULL) {
        struct tls_counters *c = counters;
        counters = c->next;
        free(c->name);
        free(c);
    }
    pthread_mutex_unlock(&counters_lock);
}

static enum tls_fail verify_reason(SSL *ssl)
{
    switch (SSL_get_verify_result(ssl)) {
    case X509_V_ERR_CERT_REVOKED:
        return TLS_FAIL_REVOKED;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return TLS_FAIL_EXPIRED;
    default:
        return TLS_FAIL_VERIFY;
    }
}

static enum tls_fail classify(SSL *ssl, int ssl_error, unsigned long err)
{
    if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN)
        return TLS_FAIL_CLOSED;
    if (ssl_error != SSL_ERROR_SSL || ERR_GET_LIB(err) != ERR_LIB_SSL)
        return TLS_FAIL_OTHER;
    switch (ERR_GET_REASON(err)) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        return TLS_FAIL_PROTOCOL;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
    case SSL_R_NO_CIPHERS_AVAILABLE:
        return TLS_FAIL_CIPHER;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return TLS_FAIL_NO_CERT;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        return verify_reason(ssl);
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
        return TLS_FAIL_NOT_TLS;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return TLS_FAIL_CLOSED;
    default:
        /* Alerts the peer sent are reported as SSL_R_SSLV3_ALERT_* / SSL_R_TLSV1_ALERT_*. */
        return ERR_GET_REASON(err) >= SSL_AD_REASON_OFFSET ? TLS_FAIL_PEER_ALERT : TLS_FAIL_OTHER;
    }
}

void tls_count_failure(struct tls_counters *c, SSL *ssl, int ssl_error, unsigned long err)
{
    atomic_fetch_add_explicit(&c->failures[classify(ssl, ssl_error, err)], 1, memory_order_relaxed);
}

/* ---- Prometheus ---- */

static void label(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void counter_family(FILE *f, const char *name, const char *help, size_t offset)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (struct tls_counters *c = counters; c != NULL; c = c->next) {
        fprintf(f, "%s{%s=\"", name, c->server ? "listener" : "cluster");
        label(f, c->name);
        fprintf(f, "\"} %llu\n", (unsigned long long)atomic_load((atomic_ullong *)((char *)c + offset)));
    }
}

void gy_tls_metrics(FILE *f)
{
    int64_t now = (int64_t)time(NULL);

    pthread_mutex_lock(&counters_lock);
    counter_family(f, "gyrus_tls_handshakes_total", "TLS handshakes completed (listener: from clients, cluster: to instances).",
                   offsetof(struct tls_counters, handshakes));
    counter_family(f, "gyrus_tls_sessions_resumed_total", "Handshakes that resumed a session (ticket or session id).",
                   offsetof(struct tls_counters, resumed));
    counter_family(f, "gyrus_tls_certificate_reloads_total", "Certificate sets re-read from disk after a change.",
                   offsetof(struct tls_counters, reloads));
    counter_family(f, "gyrus_tls_certificate_reload_failures_total",
                   "Changed certificate files that could not be used (the loaded ones stay).",
                   offsetof(struct tls_counters, reload_failures));
    fprintf(f, "# HELP gyrus_tls_handshake_failures_total TLS handshakes that failed, by reason.\n"
               "# TYPE gyrus_tls_handshake_failures_total counter\n");
    for (struct tls_counters *c = counters; c != NULL; c = c->next) {
        for (int r = 0; r < TLS_FAIL_N; r++) {
            fprintf(f, "gyrus_tls_handshake_failures_total{%s=\"", c->server ? "listener" : "cluster");
            label(f, c->name);
            fprintf(f, "\",reason=\"%s\"} %llu\n", fail_names[r], (unsigned long long)atomic_load(&c->failures[r]));
        }
    }
    pthread_mutex_unlock(&counters_lock);
    fprintf(f, "# HELP gyrus_tls_certificate_expiry_seconds Seconds until a loaded certificate expires (negative: expired).\n"
               "# TYPE gyrus_tls_certificate_expiry_seconds gauge\n");
    tls_registry_lock();
    for (struct gy_list *n = tls_registry()->next; n != tls_registry(); n = n->next) {
        struct tls_owner *o = GY_CONTAINER_OF(n, struct tls_owner, link);
        for (size_t i = 0; i < o->cur->ncerts; i++) {
            fprintf(f, "gyrus_tls_certificate_expiry_seconds{%s=\"", o->server ? "listener" : "cluster");
            label(f, o->ctr->name);
            fputs("\",path=\"", f);
            label(f, o->cur->certs[i].path);
            fprintf(f, "\"} %lld\n", (long long)(o->cur->certs[i].not_after - now));
        }
    }
    tls_registry_unlock();
    fprintf(f, "# HELP gyrus_tls_fips_mode FIPS mode: 0 off, 1 on, 2 required.\n# TYPE gyrus_tls_fips_mode gauge\n"
               "gyrus_tls_fips_mode %d\n"
               "# HELP gyrus_tls_fips_provider 1 when the OpenSSL FIPS provider is loaded.\n"
               "# TYPE gyrus_tls_fips_provider gauge\ngyrus_tls_fips_provider %d\n",
            tls_fips_mode(), tls_fips_provider() ? 1 : 0);
}

/* ---- /certs ---- */

static json_t *cert_json(const struct tls_owner *o, const struct tls_cert_info *ci, int64_t now)
{
    json_t *sans = json_array();
    char when[32];
    time_t t = (time_t)ci->not_after;
    struct tm tm;

    for (size_t i = 0; sans != NULL && i < ci->nsans; i++)
        json_array_append_new(sans, json_string(ci->sans[i]));
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:I}", "kind", o->server ? "listener" : "cluster", "name",
                     o->ctr->name, "object_key", o->key, "path", ci->path, "subject", ci->subject, "issuer", ci->issuer,
                     "sans", sans != NULL ? sans : json_array(), "key_type", ci->key, "not_after", when,
                     "seconds_to_expiry", (json_int_t)(ci->not_after - now));
}

char *gy_tls_certs_json(void)
{
    json_t *list = json_array(), *doc;
    int64_t now = (int64_t)time(NULL);
    char *out;

    if (list == NULL)
        return NULL;
    tls_registry_lock();
    for (struct gy_list *n = tls_registry()->next; n != tls_registry(); n = n->next) {
        struct tls_owner *o = GY_CONTAINER_OF(n, struct tls_owner, link);
        for (size_t i = 0; i < o->cur->ncerts; i++)
            json_array_append_new(list, cert_json(o, &o->cur->certs[i], now));
    }
    tls_registry_unlock();
    doc = json_pack("{s:o,s:i,s:b}", "certificates", list, "fips_mode", tls_fips_mode(), "fips_provider",
                    tls_fips_provider());
    out = doc != NULL ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    json_decref(doc);
    return out;
}
