/*
 * The TLS interface of tls.h: process setup, attaching contexts to a compiled config, and
 * transports for new connections. See tls_int.h for owners and sets.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "core/err.h"
#include "core/log.h"
#include "tls/tls_int.h"

/* ---- process ---- */

/* Set once on the main thread before configs are attached (gy_tls_set_identity). */
static char *id_cert, *id_key, *id_bundle;

void gy_tls_set_identity(const char *cert_path, const char *key_path, const char *bundle_path)
{
    free(id_cert), free(id_key), free(id_bundle);
    id_cert = id_key = id_bundle = NULL;
    if (cert_path == NULL || key_path == NULL || bundle_path == NULL)
        return;
    id_cert = strdup(cert_path);
    id_key = strdup(key_path);
    id_bundle = strdup(bundle_path);
}

json_t *tls_secret_ssl(const json_t *secret, bool server)
{
    const char *td = json_string_value(json_object_get(secret, "secret_validation_name"));
    json_t *names = json_object_get(secret, "subject_names");

    if (id_cert == NULL || id_key == NULL || id_bundle == NULL)
        return NULL;
    json_t *ssl = json_pack("{s:[{s:s,s:s}],s:s,s:{s:s?,s:O?}}", "cert_key_pairs", "certificate_path", id_cert,
                            "key_path", id_key, "trust_file", id_bundle, "spiffe", "trust_domain", td,
                            "subject_names", json_is_array(names) ? names : NULL);
    if (ssl != NULL && server)
        json_object_set_new(ssl, "require_client_certs", json_true());
    if (ssl != NULL && json_is_array(json_object_get(secret, "ecdh_curves")))
        json_object_set(ssl, "ecdh_curves", json_object_get(secret, "ecdh_curves"));
    return ssl;
}

int gy_tls_init(struct gy_loop *loop, const char *fips, char *err, size_t errlen)
{
    int rc = tls_fips_setup(fips, err, errlen);

    if (rc != 0)
        return rc;
    if (tls_tickets_init() != 0) {
        snprintf(err, errlen, "TLS: cannot create session ticket keys: %s", tls_ossl_reason());
        return GY_ECONFIG;
    }
    return tls_watch_start(loop);
}

void gy_tls_shutdown(void)
{
    tls_watch_stop();
    tls_tickets_free();
    tls_counters_free();
    tls_fips_free();
    gy_tls_set_identity(NULL, NULL, NULL);
}

const json_t *tls_find_object(const json_t *objects, const char *kind, const char *keyfield, const char *key)
{
    const json_t *o;
    size_t i;

    json_array_foreach(objects, i, o)
    {
        const char *k = json_string_value(json_object_get(o, "kind"));
        const char *v = json_string_value(json_object_get(o, keyfield));
        if (k != NULL && v != NULL && strcmp(k, kind) == 0 && strcmp(v, key) == 0)
            return o;
    }
    return NULL;
}

/* ---- sets and owners ---- */

struct tls_set *tls_set_new(bool server, struct tls_counters *ctr)
{
    struct tls_set *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    atomic_init(&s->refs, 1);
    s->server = server;
    s->ctr = ctr;
    pthread_mutex_init(&s->sess_lock, NULL);
    return s;
}

void tls_set_unref(struct tls_set *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < s->nctxs; i++)
        tls_ctx_dispose(&s->ctxs[i]);
    free(s->ctxs);
    for (size_t i = 0; i < s->nnames; i++)
        free(s->names[i].pattern);
    free(s->names);
    for (size_t i = 0; i < s->nfiles; i++)
        free(s->files[i].path);
    free(s->files);
    for (size_t i = 0; i < s->ncerts; i++)
        tls_cert_info_dispose(&s->certs[i]);
    free(s->certs);
    free(s->sni);
    for (size_t i = 0; i < s->nsessions; i++) {
        free(s->sessions[i].host);
        SSL_SESSION_free(s->sessions[i].sess);
    }
    free(s->sessions);
    pthread_mutex_destroy(&s->sess_lock);
    free(s);
}

struct tls_set *tls_owner_acquire(struct tls_owner *o)
{
    struct tls_set *s;

    pthread_mutex_lock(&o->lock);
    s = o->cur;
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&o->lock);
    return s;
}

int tls_owner_build(struct tls_owner *o, struct tls_set **out, char *err, size_t errlen)
{
    int rc = o->server ? tls_server_build(o, out, err, errlen) : tls_client_build(o, out, err, errlen);

    ERR_clear_error();
    return rc;
}

static void owner_free(struct tls_owner *o)
{
    if (o == NULL)
        return;
    tls_registry_remove(o);
    tls_set_unref(o->cur);
    json_decref(o->spec);
    pthread_mutex_destroy(&o->lock);
    free(o->key);
    free(o->what);
    free(o);
}

/* Takes spec. */
static struct tls_owner *owner_new(bool server, const char *key, const char *name, json_t *spec, char *err,
                                   size_t errlen, int *rc)
{
    struct tls_owner *o = calloc(1, sizeof(*o));
    char what[300];

    snprintf(what, sizeof(what), "%s \"%s\"", server ? "listener" : "cluster", key);
    *rc = GY_ENOMEM;
    if (o == NULL) {
        json_decref(spec);
        snprintf(err, errlen, "%s: out of memory", what);
        return NULL;
    }
    gy_list_init(&o->link);
    pthread_mutex_init(&o->lock, NULL);
    o->server = server;
    o->spec = spec;
    o->key = strdup(key);
    o->what = strdup(what);
    o->ctr = tls_counters_get(server, name);
    if (o->key == NULL || o->what == NULL || o->ctr == NULL) {
        snprintf(err, errlen, "%s: out of memory", what);
        owner_free(o);
        return NULL;
    }
    if ((*rc = tls_owner_build(o, &o->cur, err, errlen)) != 0) {
        owner_free(o);
        return NULL;
    }
    o->seen = o->pending = tls_files_signature(o->cur->files, o->cur->nfiles, false);
    return o;
}

/* ---- attaching to a config ---- */

int gy_tls_attach(struct gy_config *cfg, char *err, size_t errlen)
{
    int rc = 0;

    if (tls_tickets_init() != 0) {
        snprintf(err, errlen, "TLS: cannot create session ticket keys: %s", tls_ossl_reason());
        return GY_ECONFIG;
    }
    for (size_t i = 0; i < cfg->nlisteners && rc == 0; i++) {
        struct gy_listener *l = &cfg->listeners[i];
        json_t *spec = NULL;
        if ((rc = tls_server_spec(cfg, l, &spec, err, errlen)) == 0 && spec != NULL)
            l->tls = owner_new(true, l->key, l->name, spec, err, errlen, &rc);
    }
    for (size_t i = 0; i < cfg->nclusters && rc == 0; i++) {
        struct gy_cluster *c = &cfg->clusters[i];
        json_t *spec = NULL;
        if ((rc = tls_client_spec(cfg, c, &spec, err, errlen)) == 0 && spec != NULL)
            c->tls = owner_new(false, c->key, c->name, spec, err, errlen, &rc);
    }
    if (rc != 0) {
        gy_tls_detach(cfg);
        return rc == GY_ENOMEM ? GY_ENOMEM : GY_ECONFIG;
    }
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (cfg->listeners[i].tls != NULL)
            tls_registry_add(cfg->listeners[i].tls);
    for (size_t i = 0; i < cfg->nclusters; i++)
        if (cfg->clusters[i].tls != NULL)
            tls_registry_add(cfg->clusters[i].tls);
    return 0;
}

void gy_tls_detach(struct gy_config *cfg)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        owner_free(cfg->listeners[i].tls);
        cfg->listeners[i].tls = NULL;
    }
    for (size_t i = 0; i < cfg->nclusters; i++) {
        owner_free(cfg->clusters[i].tls);
        cfg->clusters[i].tls = NULL;
    }
}

bool gy_tls_same_setup(void *a, void *b)
{
    const struct tls_owner *x = a, *y = b;

    return x == y || (x != NULL && y != NULL && json_equal(x->spec, y->spec));
}

/* ---- connections ---- */

struct gy_transport *gy_tls_server(void *listener_tls)
{
    struct tls_set *s = tls_owner_acquire(listener_tls);
    SSL *ssl = SSL_new(s->ctxs[0].ctx);

    if (ssl == NULL) {
        ERR_clear_error();
        tls_set_unref(s);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return tls_conn_new(s, ssl, true);
}

struct gy_transport *gy_tls_client(void *cluster_tls, const char *instance_host, enum gy_tls_alpn_offer alpn)
{
    struct tls_set *s = tls_owner_acquire(cluster_tls);
    SSL *ssl = SSL_new(s->ctxs[0].ctx);

    if (ssl == NULL || tls_client_setup(s, ssl, instance_host, alpn) != 0) {
        ERR_clear_error();
        SSL_free(ssl);
        tls_set_unref(s);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return tls_conn_new(s, ssl, false);
}
