/* The SVID thread of `gyrus proxy --control`: CSR, signing, renewal at half life, files. */
#include "proxy/identity.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/bytes.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/time.h"
#include "http/client.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000

struct gy_identity {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    char *url, *ca, *service, *zone, *token;
    char cert[4096], key[4096], bundle[4096];
    char spiffe_id[600];
    _Atomic int64_t got_at, expires;   /* when the current SVID was obtained (or found on disk) */
    _Atomic uint64_t renewals, failures;
    uint64_t rng;
};

static bool stopping(struct gy_identity *id)
{
    pthread_mutex_lock(&id->lock);
    bool s = id->stop;
    pthread_mutex_unlock(&id->lock);
    return s;
}

static void nap(struct gy_identity *id, uint64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&id->lock);
    while (!id->stop && pthread_cond_timedwait(&id->cond, &id->lock, &ts) == 0) {
    }
    pthread_mutex_unlock(&id->lock);
}

/* Reads the SVID on disk: its validity and SPIFFE ID; false when absent or unusable. */
static bool load_current(struct gy_identity *id)
{
    FILE *f = fopen(id->cert, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    bool ok = false;

    if (f)
        fclose(f);
    if (x != NULL) {
        GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
        for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
            const char *u = g->type == GEN_URI ? (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier) : "";
            if (strncmp(u, "spiffe://", 9) == 0) {
                pthread_mutex_lock(&id->lock);
                snprintf(id->spiffe_id, sizeof(id->spiffe_id), "%s", u);
                pthread_mutex_unlock(&id->lock);
            }
        }
        GENERAL_NAMES_free(sans);
        struct tm tm;
        if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1) {
            atomic_store(&id->expires, (int64_t)timegm(&tm));
            atomic_store(&id->got_at, (int64_t)time(NULL));
            ok = atomic_load(&id->expires) > (int64_t)time(NULL);
        }
        X509_free(x);
    }
    ERR_clear_error();
    return ok;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t n = 0;

    if (f == NULL)
        return NULL;
    if (getdelim(&buf, &n, '\0', f) < 0) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* A new P-256 key and a CSR for it, both PEM. */
static int make_csr(struct gy_identity *id, char **key_pem, char **csr_pem)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509_REQ *req = X509_REQ_new();
    BIO *kb = BIO_new(BIO_s_mem()), *cb = BIO_new(BIO_s_mem());
    char *data;
    long n;
    int rc = -1;

    if (k == NULL || req == NULL || kb == NULL || cb == NULL)
        goto out;
    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
                               (const unsigned char *)id->service, -1, -1, 0);
    if (X509_REQ_set_pubkey(req, k) != 1 || X509_REQ_sign(req, k, EVP_sha256()) <= 0 ||
        PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL) != 1 || PEM_write_bio_X509_REQ(cb, req) != 1)
        goto out;
    n = BIO_get_mem_data(kb, &data);
    *key_pem = strndup(data, (size_t)n);
    n = BIO_get_mem_data(cb, &data);
    *csr_pem = strndup(data, (size_t)n);
    rc = *key_pem && *csr_pem ? 0 : -1;
out:
    ERR_clear_error();
    BIO_free(kb);
    BIO_free(cb);
    X509_REQ_free(req);
    EVP_PKEY_free(k);
    return rc;
}

/* Signs the CSR text with the current SVID's key (the renewal proof), base64. */
static char *proof_signature(struct gy_identity *id, const char *csr)
{
    FILE *f = fopen(id->key, "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[256];
    size_t siglen = sizeof(sig);
    char *out = NULL;

    if (f)
        fclose(f);
    if (k != NULL && md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
        EVP_DigestSign(md, sig, &siglen, (const unsigned char *)csr, strlen(csr)) == 1 &&
        (out = malloc(4 * ((siglen + 2) / 3) + 1)) != NULL)
        EVP_EncodeBlock((unsigned char *)out, sig, (int)siglen);
    ERR_clear_error();
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return out;
}

static json_t *sign_request(struct gy_identity *id, const char *csr, bool renewal)
{
    json_t *req = json_pack("{s:s,s:s,s:s}", "csr", csr, "zone", id->zone, "service", id->service);

    if (renewal) {
        char *cert = read_text(id->cert), *sig = proof_signature(id, csr);
        if (cert && sig)
            json_object_set_new(req, "proof", json_pack("{s:s,s:s}", "certificate", cert, "signature", sig));
        free(cert);
        free(sig);
    } else if (id->token != NULL) {
        json_object_set_new(req, "token", json_string(id->token));
    }
    return req;
}

/* POSTs to /v1.0/ca/sign; returns the result object or NULL with why. */
static json_t *post_sign(struct gy_identity *id, json_t *req, char *why, size_t whylen)
{
    struct gy_bytes b = { .max = 1 << 20 };
    char url[1200], *body = json_dumps(req, JSON_COMPACT);
    json_t *res = NULL, *doc = NULL;
    int code = 0;

    if (body == NULL) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    snprintf(url, sizeof(url), "%s/v1.0/ca/sign", id->url);
    struct gy_http_request hr = {
        .method = "POST", .url = url, .content_type = "application/json", .body = body, .body_len = strlen(body),
        .user_agent = "gyrus-proxy/" GY_VERSION, .connect_timeout_ms = 5000, .timeout_ms = 10000, .ca_file = id->ca,
    };
    int rc = gy_http_fetch(&hr, &code, &b, why, whylen);
    doc = b.p ? json_loads(b.p, 0, NULL) : NULL;
    if (rc == 0 && code != 200)
        snprintf(why, whylen, "HTTP %d: %s", code,
                 json_string_value(json_object_get(json_object_get(doc, "error"), "message")) ?: "no message");
    else if (rc == 0 && (res = json_object_get(doc, "result")) == NULL)
        snprintf(why, whylen, "no result in the answer");
    json_incref(res);
    json_decref(doc);
    gy_bytes_free(&b);
    free(body);
    return res;
}

/* One attempt to get a new SVID; true on success (files written). */
static bool obtain(struct gy_identity *id, bool renewal)
{
    char *key = NULL, *csr = NULL, why[400] = "";
    bool ok = false;

    if (make_csr(id, &key, &csr) != 0) {
        snprintf(why, sizeof(why), "cannot make a key and CSR");
        goto out;
    }
    json_t *req = sign_request(id, csr, renewal);
    json_t *res = post_sign(id, req, why, sizeof(why));
    json_decref(req);
    const char *cert = json_string_value(json_object_get(res, "certificate"));
    const char *bundle = json_string_value(json_object_get(res, "bundle"));
    const char *sid = json_string_value(json_object_get(res, "spiffe_id"));
    if (res != NULL && (cert == NULL || bundle == NULL || sid == NULL))
        snprintf(why, sizeof(why), "incomplete answer");
    else if (res != NULL) {
        /* Key first: until the certificate follows, TLS keeps the previous pair (they mismatch). */
        if (gy_write_file_atomic(id->key, key, strlen(key)) != 0 || chmod(id->key, 0600) != 0 ||
            gy_write_file_atomic(id->bundle, bundle, strlen(bundle)) != 0 ||
            gy_write_file_atomic(id->cert, cert, strlen(cert)) != 0)
            snprintf(why, sizeof(why), "cannot write the SVID files: %s", strerror(errno));
        else {
            pthread_mutex_lock(&id->lock);
            snprintf(id->spiffe_id, sizeof(id->spiffe_id), "%s", sid);
            pthread_mutex_unlock(&id->lock);
            ok = load_current(id);
        }
    }
    json_decref(res);
out:
    if (ok) {
        atomic_fetch_add(&id->renewals, 1);
        gy_info("identity: got SVID %s, valid until %lld", id->spiffe_id, (long long)atomic_load(&id->expires));
    } else {
        atomic_fetch_add(&id->failures, 1);
        int64_t left = atomic_load(&id->expires) - (int64_t)time(NULL);
        if (atomic_load(&id->expires) == 0)
            gy_warn("identity: cannot get an SVID from %s: %s", id->url, why);
        else if (left <= 0)
            gy_error("identity: the SVID has EXPIRED and renewal fails: %s", why);
        else
            gy_warn("identity: renewal failed (%s); the SVID stays valid for %lld s", why, (long long)left);
    }
    free(key);
    free(csr);
    return ok;
}

static void *identity_main(void *arg)
{
    struct gy_identity *id = arg;
    uint64_t backoff = BACKOFF_MIN_MS;

    while (!stopping(id)) {
        int64_t now = (int64_t)time(NULL), got = atomic_load(&id->got_at), ex = atomic_load(&id->expires);
        bool have = ex > now;
        int64_t renew_at = got + (ex - got) / 2; /* half of the life it had when it came */
        if (have && now < renew_at) {
            nap(id, (uint64_t)(renew_at - now) * 1000);
            continue;
        }
        if (have && ex - got < 2) { /* too short to renew at half life: wait until it is over */
            nap(id, 1000);
        }
        if (obtain(id, have)) {
            backoff = BACKOFF_MIN_MS;
            continue;
        }
        uint64_t wait = backoff / 2 + gy_now_ns() % (backoff / 2 + 1);
        int64_t left_ms = (atomic_load(&id->expires) - (int64_t)time(NULL)) * 1000;
        if (left_ms > 0 && wait > (uint64_t)left_ms / 4) /* short-lived SVIDs: retry within their life */
            wait = (uint64_t)left_ms / 4 < BACKOFF_MIN_MS ? BACKOFF_MIN_MS : (uint64_t)left_ms / 4;
        nap(id, wait);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    return NULL;
}

struct gy_identity *gy_identity_start(const struct gy_identity_options *o)
{
    struct gy_identity *id;

    if (o->data_dir == NULL || gy_mkdir_p(o->data_dir) != 0) {
        gy_warn("identity: no data directory to keep an SVID in; running without mesh identity");
        return NULL;
    }
    if ((id = calloc(1, sizeof(*id))) == NULL)
        return NULL;
    id->url = strdup(o->control_url);
    id->ca = o->control_ca ? strdup(o->control_ca) : NULL;
    id->service = strdup(o->service);
    id->zone = strdup(o->zone ? o->zone : "default");
    id->token = o->join_token ? strdup(o->join_token) : NULL;
    size_t ul = strlen(id->url);
    while (ul > 0 && id->url[ul - 1] == '/')
        id->url[--ul] = '\0';
    snprintf(id->cert, sizeof(id->cert), "%s/svid-%s.crt", o->data_dir, o->service);
    snprintf(id->key, sizeof(id->key), "%s/svid-%s.key", o->data_dir, o->service);
    snprintf(id->bundle, sizeof(id->bundle), "%s/bundle-%s.crt", o->data_dir, o->service);
    pthread_mutex_init(&id->lock, NULL);
    pthread_cond_init(&id->cond, NULL);
    bool have = load_current(id);
    if (!have && id->token == NULL) {
        gy_info("identity: no join token and no valid SVID in %s; running without mesh identity", o->data_dir);
        gy_identity_stop(id);
        return NULL;
    }
    /* The first SVID is fetched before the proxy serves, so TLS has it from the start. */
    if (!have)
        obtain(id, false);
    if (pthread_create(&id->thread, NULL, identity_main, id) != 0) {
        gy_identity_stop(id);
        return NULL;
    }
    return id;
}

void gy_identity_stop(struct gy_identity *id)
{
    if (id == NULL)
        return;
    pthread_mutex_lock(&id->lock);
    bool started = id->thread != 0;
    id->stop = true;
    pthread_cond_broadcast(&id->cond);
    pthread_mutex_unlock(&id->lock);
    if (started)
        pthread_join(id->thread, NULL);
    pthread_mutex_destroy(&id->lock);
    pthread_cond_destroy(&id->cond);
    free(id->url);
    free(id->ca);
    free(id->service);
    free(id->zone);
    free(id->token);
    free(id);
}

const char *gy_identity_cert_path(const struct gy_identity *id)
{
    return id->cert;
}

const char *gy_identity_key_path(const struct gy_identity *id)
{
    return id->key;
}

const char *gy_identity_bundle_path(const struct gy_identity *id)
{
    return id->bundle;
}

const char *gy_identity_spiffe_id(const struct gy_identity *id)
{
    return id->spiffe_id;
}

int64_t gy_identity_expires(const struct gy_identity *id)
{
    return atomic_load(&id->expires);
}

void gy_identity_metrics(const struct gy_identity *id, FILE *f)
{
    int64_t left = id ? atomic_load(&id->expires) - (int64_t)time(NULL) : 0;

    if (id == NULL)
        return;
    fprintf(f, "# HELP gyrus_svid_expiry_seconds Seconds until the proxy's SVID expires (negative: expired).\n"
               "# TYPE gyrus_svid_expiry_seconds gauge\ngyrus_svid_expiry_seconds %lld\n", (long long)left);
    fprintf(f, "# HELP gyrus_svid_renewals_total SVIDs obtained from the CA.\n"
               "# TYPE gyrus_svid_renewals_total counter\ngyrus_svid_renewals_total %llu\n",
            (unsigned long long)atomic_load(&id->renewals));
    fprintf(f, "# HELP gyrus_svid_renewal_failures_total Failed attempts to get an SVID.\n"
               "# TYPE gyrus_svid_renewal_failures_total counter\ngyrus_svid_renewal_failures_total %llu\n",
            (unsigned long long)atomic_load(&id->failures));
}

char *gy_identity_json(const struct gy_identity *id)
{
    json_t *o;
    char *s;

    pthread_mutex_lock((pthread_mutex_t *)&id->lock);
    o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "spiffe_id", id->spiffe_id, "certificate", id->cert, "key", id->key,
                  "bundle", id->bundle, "expires_at", (json_int_t)atomic_load(&id->expires), "seconds_to_expiry",
                  (json_int_t)(atomic_load(&id->expires) - (int64_t)time(NULL)));
    pthread_mutex_unlock((pthread_mutex_t *)&id->lock);
    s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}
