/*
 * gyrus control: the daemon. Opens the store and loads the mesh, serves the API and the xds
 * endpoint on one loop, runs the discovery sources, and drains on SIGTERM/SIGINT (stop
 * accepting, answer parked polls with 503 so proxies go elsewhere, finish responses in flight).
 * SIGHUP reads the store again (never fatal).
 */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/ca.h"
#include "control/control.h"
#include "control/discovery.h"
#include "control/view.h"
#include "core/err.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/time.h"
#include "mesh/mesh.h"
#include "net/sock.h"
#include "tls/tls.h"

#define GC_INTERVAL_MS 60000u
#define DRAIN_TICK_MS 20u

/* ---- identities (automatic mTLS) ---- */

static void load_identities(struct gy_control *ctl)
{
    const char *path = ctl_ca_identities_path(ctl->ca);
    json_t *ids = path[0] ? json_load_file(path, 0, NULL) : NULL;

    if (json_is_object(ids)) {
        json_decref(ctl->identities);
        ctl->identities = ids;
    } else {
        json_decref(ids);
    }
}

void ctl_identity_seen(struct gy_control *ctl, const char *zone, const char *service)
{
    const char *known = json_string_value(json_object_get(ctl->identities, service)), *path;
    char *text;

    if (known != NULL && strcmp(known, zone) == 0)
        return;
    json_object_set_new(ctl->identities, service, json_string(zone));
    path = ctl_ca_identities_path(ctl->ca);
    if (path[0] && (text = json_dumps(ctl->identities, JSON_COMPACT)) != NULL) {
        if (gy_write_file_atomic(path, text, strlen(text)) != 0)
            gy_warn("ca: cannot write %s: %s", path, strerror(errno));
        free(text);
    }
    gy_info("mtls: %s (zone %s) has an SVID: traffic to and from it is mutual TLS from now on", service, zone);
    ctl_views_cluster_name_changed(ctl, service); /* others' clusters to it */
    ctl_views_name_changed(ctl, service);         /* its own clusters and listeners */
    ctl_views_flush(ctl);
}

/* ---- discovery ---- */

static bool instance_ok(const json_t *in)
{
    const json_t *host = json_object_get(in, "host"), *port = json_object_get(in, "port");

    return json_is_object(in) && json_is_string(host) && json_string_length(host) > 0 && json_is_integer(port) &&
           json_integer_value(port) >= 1 && json_integer_value(port) <= 65535;
}

/* A snapshot with only well-formed instances (logged once per update when some are not). */
static json_t *clean_snapshot(const char *source, json_t *snapshot)
{
    json_t *out = json_object(), *list, *in;
    const char *name;
    size_t bad = 0, i;

    if (!json_is_object(snapshot)) {
        gy_warn("discovery %s: snapshot is not an object; ignored", source);
        return out;
    }
    json_object_foreach(snapshot, name, list) {
        json_t *good = json_array();
        json_array_foreach(list, i, in) {
            if (instance_ok(in))
                json_array_append(good, in);
            else
                bad++;
        }
        if (json_array_size(good) > 0)
            json_object_set_new(out, name, good);
        else
            json_decref(good);
    }
    if (bad > 0)
        gy_warn("discovery %s: ignored %zu instances without a host and a port in 1-65535", source, bad);
    return out;
}

static json_t *merged_instances(struct gy_control *ctl, const char *name)
{
    json_t *out = json_array(), *seen = json_object(), *in;
    size_t i;

    for (size_t s = 0; s < ctl->nsources; s++) {
        json_array_foreach(json_object_get(ctl->sources[s].snapshot, name), i, in) {
            char hp[600];
            snprintf(hp, sizeof(hp), "%s:%" JSON_INTEGER_FORMAT, json_string_value(json_object_get(in, "host")),
                     json_integer_value(json_object_get(in, "port")));
            if (json_object_get(seen, hp) == NULL) {
                json_object_set_new(seen, hp, json_true());
                json_array_append(out, in);
            }
        }
    }
    json_decref(seen);
    return out;
}

void ctl_discovery_update(struct gy_control *ctl, struct ctl_source *src, json_t *snapshot)
{
    json_t *next = clean_snapshot(src->spec, snapshot), *old = src->snapshot, *names = json_object(), *v;
    const char *name;
    size_t changed = 0;

    src->updates++;
    json_object_foreach(old, name, v)
        if (!json_equal(v, json_object_get(next, name)))
            json_object_set_new(names, name, json_true());
    json_object_foreach(next, name, v)
        if (!json_equal(v, json_object_get(old, name)))
            json_object_set_new(names, name, json_true());
    src->snapshot = next;
    json_decref(old);
    json_object_foreach(names, name, v) {
        json_t *m = merged_instances(ctl, name);
        if (json_array_size(m) > 0)
            json_object_set(ctl->discovered, name, m);
        else
            json_object_del(ctl->discovered, name);
        json_decref(m);
        ctl_views_cluster_name_changed(ctl, name);
        changed++;
    }
    json_decref(names);
    if (changed > 0)
        gy_info("discovery %s: %zu cluster names changed (%zu known)", src->spec, changed,
                json_object_size(next));
    ctl_views_flush(ctl);
}

static void on_discovery(void *arg, const char *source, json_t *snapshot)
{
    struct ctl_source *src = arg;

    (void)source;
    ctl_discovery_update(src->ctl, src, snapshot);
    json_decref(snapshot);
}

static void start_sources(struct gy_control *ctl)
{
    char err[512];

    ctl->sources = calloc(ctl->opt.ndiscovery ? ctl->opt.ndiscovery : 1, sizeof(*ctl->sources));
    if (ctl->sources == NULL)
        gy_fatal("out of memory");
    for (size_t i = 0; i < ctl->opt.ndiscovery; i++) {
        struct ctl_source *s = &ctl->sources[ctl->nsources++];
        s->ctl = ctl;
        s->spec = strdup(ctl->opt.discovery[i]);
        s->snapshot = json_object();
        if (s->spec == NULL || s->snapshot == NULL)
            gy_fatal("out of memory");
        s->d = gy_discovery_start(&ctl->loop, s->spec, on_discovery, s, err, sizeof(err));
        if (s->d == NULL)
            gy_fatal("%s", err);
        gy_info("discovery source %s started", s->spec);
    }
}

static void stop_sources(struct gy_control *ctl)
{
    for (size_t i = 0; i < ctl->nsources; i++) {
        if (ctl->sources[i].d != NULL)
            gy_discovery_stop(ctl->sources[i].d);
        ctl->sources[i].d = NULL;
    }
}

/* ---- store ---- */

static void store_changed(void *arg, const struct gy_store_change *c, size_t n)
{
    ctl_mesh_apply_changes(arg, c, n);
}

static void store_resync(void *arg)
{
    if (ctl_mesh_resync(arg) == 0)
        gy_info("store: mesh reloaded");
}

static void open_store(struct gy_control *ctl)
{
    struct gy_store_options so = { ctl->opt.data_dir, ctl->opt.etcd_endpoints, ctl->opt.etcd_prefix };
    struct gy_mesh_error me;
    json_t *objects = NULL;
    char err[512];

    if ((ctl->store_ops = gy_store_find(ctl->opt.store)) == NULL)
        gy_fatal("--store: want sqlite or etcd, got \"%s\"", ctl->opt.store);
    if (ctl->store_ops->open(&so, &ctl->store, err, sizeof(err)) != 0)
        gy_fatal("%s", err);
    if (ctl->store_ops->load(ctl->store, &objects, err, sizeof(err)) != 0)
        gy_fatal("%s", err);
    if (gy_mesh_validate(objects, &me) != 0)
        gy_warn("the stored mesh is not valid (writes will say so until it is fixed): %s", me.msg);
    ctl_mesh_replace_all(ctl, objects);
    gy_info("store %s: %zu objects", ctl->store_ops->name, json_array_size(objects));
    json_decref(objects);
    if (ctl->store_ops->watch != NULL) {
        struct gy_store_watcher w = { store_changed, store_resync, ctl };
        if (ctl->store_ops->watch(ctl->store, &ctl->loop, &w, err, sizeof(err)) != 0)
            gy_fatal("%s", err);
    }
}

/* ---- signals, drain, gc ---- */

static void drain_tick(struct gy_timer *t)
{
    struct gy_control *ctl = GY_CONTAINER_OF(t, struct gy_control, drain_timer);

    if (ctl_server_nconns(ctl->server) == 0 || gy_loop_now(&ctl->loop) >= ctl->drain_deadline) {
        gy_loop_stop(&ctl->loop);
        return;
    }
    gy_timer_start(&ctl->loop, &ctl->drain_timer, DRAIN_TICK_MS);
}

static void begin_drain(struct gy_control *ctl, const char *why)
{
    if (ctl->draining) {
        gy_warn("%s while draining: stopping now", why);
        gy_loop_stop(&ctl->loop);
        return;
    }
    gy_info("%s: draining (at most %u ms)", why, ctl->opt.drain_ms);
    ctl->draining = true;
    ctl->drain_deadline = gy_loop_now(&ctl->loop) + ctl->opt.drain_ms;
    stop_sources(ctl);
    ctl_xds_drain(ctl);
    ctl_server_drain(ctl->server);
    gy_timer_stop(&ctl->loop, &ctl->gc_timer);
    gy_timer_start(&ctl->loop, &ctl->drain_timer, 0);
}

/* SIGHUP: --api-key-file again (a file that does not load keeps the keys in use). */
static void reload_keys(struct gy_control *ctl)
{
    char err[512];
    struct ctl_auth *a;

    if (ctl->opt.api_key_file == NULL)
        return;
    if ((a = ctl_auth_load(ctl->opt.api_key_file, err, sizeof(err))) == NULL) {
        gy_warn("SIGHUP: keeping the API keys in use: %s", err);
        return;
    }
    ctl_auth_free(ctl->auth);
    ctl->auth = a;
    gy_info("SIGHUP: %zu API key%s", ctl_auth_nkeys(a), ctl_auth_nkeys(a) == 1 ? "" : "s");
}

static void signal_io(struct gy_io *io, unsigned events)
{
    struct gy_control *ctl = GY_CONTAINER_OF(io, struct gy_control, signal_io);
    struct signalfd_siginfo si;

    (void)events;
    while (read(io->fd, &si, sizeof(si)) == sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGHUP:
            gy_info("SIGHUP: reading the store again");
            store_resync(ctl);
            reload_keys(ctl);
            break;
        case SIGTERM:
            begin_drain(ctl, "SIGTERM");
            break;
        case SIGINT:
            begin_drain(ctl, "SIGINT");
            break;
        default:
            break;
        }
    }
}

static void setup_signals(struct gy_control *ctl)
{
    sigset_t set;
    int fd;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    /* Blocked before any thread starts, so only the signalfd sees them. */
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 || (fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
        gy_io_start(&ctl->loop, &ctl->signal_io, fd, GY_IO_READ, signal_io) != 0)
        gy_fatal("cannot set up signal handling: %s", strerror(errno));
}

static void gc_tick(struct gy_timer *t)
{
    struct gy_control *ctl = GY_CONTAINER_OF(t, struct gy_control, gc_timer);
    uint64_t now = gy_now_ms();

    ctl_xds_gc(ctl, now);
    ctl_views_gc(ctl, now);
    gy_timer_start(&ctl->loop, &ctl->gc_timer, GC_INTERVAL_MS);
}

/* ---- HTTPS ---- */

#define TLS_WATCH_MS 1000

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Clients may present an SVID of this mesh: a proxy polling its own view proves itself with it
 * when the API asks for authentication (auth.c). */
static int tls_trust_mesh(struct gy_control *ctl, SSL_CTX *tls)
{
    char err[300];

    if (gy_tls_endpoint_trust_clients(tls, ctl_ca_bundle(ctl->ca), err, sizeof(err)) != 0) {
        gy_warn("HTTPS: cannot check client certificates against the mesh CA: %s", err);
        return -1;
    }
    return 0;
}

/* Reads --tls-cert and --tls-key into a new context, and notes which files they were. NULL with
 * the reason in err. */
static SSL_CTX *tls_build(struct gy_control *ctl, char *err, size_t errlen)
{
    if (stat(ctl->opt.tls_cert, &ctl->tls_seen[0]) != 0 || stat(ctl->opt.tls_key, &ctl->tls_seen[1]) != 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        return NULL;
    }
    return gy_tls_endpoint_server(ctl->opt.tls_cert, ctl->opt.tls_key, err, errlen);
}

/* ---- --tls-auto ---- */

#define TLS_AUTO_RETRY_MS 60000

/* What a server certificate can name: an IP address or a DNS name. */
static bool name_ok(const char *name)
{
    return gy_is_ip(name) || gy_is_dns_name(name, strlen(name));
}

static void add_name(struct gy_control *ctl, const char *name)
{
    for (size_t i = 0; i < ctl->ntls_names; i++)
        if (strcasecmp(ctl->tls_names[i], name) == 0)
            return;
    char **n = realloc(ctl->tls_names, (ctl->ntls_names + 1) * sizeof(*n));
    if (n == NULL || (n[ctl->ntls_names] = strdup(name)) == NULL)
        gy_fatal("out of memory");
    ctl->tls_names = n;
    ctl->ntls_names++;
}

/* What the certificate names: --tls-san first, then the --listen address unless it is a
 * wildcard, localhost and the loopback addresses, this host's name. An unusable --tls-san stops
 * the process; the others are only skipped. */
static void tls_auto_names(struct gy_control *ctl)
{
    char host[256], *sans = strdup(ctl->opt.tls_sans ? ctl->opt.tls_sans : "");
    struct sockaddr_storage ss;
    socklen_t sl;

    if (sans == NULL)
        gy_fatal("out of memory");
    for (char *save = NULL, *t = strtok_r(sans, ", ", &save); t != NULL; t = strtok_r(NULL, ", ", &save)) {
        if (!name_ok(t))
            gy_fatal("--tls-san: \"%s\" is neither an IP address nor a DNS name", t);
        add_name(ctl, t);
    }
    free(sans);
    if (gy_addr_parse(ctl->opt.listen, &ss, &sl) == 0) {
        gy_addr_format_ip((struct sockaddr *)&ss, host, sizeof(host));
        if (strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0)
            add_name(ctl, host);
    }
    add_name(ctl, "localhost");
    add_name(ctl, "127.0.0.1");
    add_name(ctl, "::1");
    if (gethostname(host, sizeof(host) - 1) == 0) {
        host[sizeof(host) - 1] = '\0';
        if (name_ok(host))
            add_name(ctl, host);
    }
}

/* Issues a new certificate and serves it to new connections. -1 with the reason in err. */
static int tls_auto_renew(struct gy_control *ctl, char *err, size_t errlen)
{
    X509 *cert = NULL, *chain = NULL;
    EVP_PKEY *key = NULL;
    SSL_CTX *tls = NULL;
    uint32_t ttl = ctl->opt.tls_ttl_s;

    if (ctl_ca_issue_server(ctl->ca, (const char *const *)ctl->tls_names, ctl->ntls_names, ttl, &cert, &key, &chain,
                            err, errlen) != 0)
        return -1;
    tls = gy_tls_endpoint_server_x509(cert, chain, key, err, errlen);
    X509_free(cert);
    EVP_PKEY_free(key);
    if (tls == NULL)
        return -1;
    if (tls_trust_mesh(ctl, tls) != 0) {
        SSL_CTX_free(tls);
        snprintf(err, errlen, "the mesh CA's certificate does not load");
        return -1;
    }
    ctl_server_set_tls(ctl->server, tls);
    ctl->tls_renew_ms = gy_loop_now(&ctl->loop) + (uint64_t)ttl * 2000 / 3;
    return 0;
}

/* Every second: --tls-auto renews its certificate at two thirds of its life (a failure is logged
 * and tried again a minute later; the current one serves until then). Otherwise, when
 * --tls-cert or --tls-key changed, new connections get the new pair. A pair that does not load
 * is logged once (until the files change again); the current one stays. */
static void tls_tick(struct gy_timer *t)
{
    struct gy_control *ctl = GY_CONTAINER_OF(t, struct gy_control, tls_timer);
    struct stat st[2];
    char err[512];

    if (ctl->opt.tls_auto) {
        if (gy_loop_now(&ctl->loop) >= ctl->tls_renew_ms) {
            if (tls_auto_renew(ctl, err, sizeof(err)) != 0) {
                gy_warn("HTTPS: cannot renew the certificate, trying again in a minute: %s", err);
                ctl->tls_renew_ms = gy_loop_now(&ctl->loop) + TLS_AUTO_RETRY_MS;
            } else {
                gy_info("HTTPS: certificate renewed");
            }
        }
    } else if (stat(ctl->opt.tls_cert, &st[0]) == 0 && stat(ctl->opt.tls_key, &st[1]) == 0 &&
        (!same_file(&st[0], &ctl->tls_seen[0]) || !same_file(&st[1], &ctl->tls_seen[1]))) {
        SSL_CTX *tls = tls_build(ctl, err, sizeof(err));
        if (tls == NULL) {
            gy_warn("HTTPS: keeping the current certificate: %s", err);
        } else if (tls_trust_mesh(ctl, tls) != 0) {
            SSL_CTX_free(tls);
        } else {
            ctl_server_set_tls(ctl->server, tls);
            gy_info("HTTPS: certificate reloaded from %s", ctl->opt.tls_cert);
        }
    }
    gy_timer_start(&ctl->loop, &ctl->tls_timer, TLS_WATCH_MS);
}

/* Says what the certificate names and where clients find the CA to trust it with. */
static void log_tls_auto(struct gy_control *ctl)
{
    char names[1024];
    size_t len = 0;
    const char *bundle = ctl_ca_bundle_path(ctl->ca);

    names[0] = '\0';
    for (size_t i = 0; i < ctl->ntls_names && len < sizeof(names); i++) {
        int k = snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "", ctl->tls_names[i]);
        len += k > 0 ? (size_t)k : 0;
    }
    uint32_t ttl = ctl->opt.tls_ttl_s;
    gy_info("HTTPS: a certificate from the mesh CA for %s, valid %u%s and renewed at two thirds of that; clients "
            "trust %s%s", names, ttl % 3600 == 0 ? ttl / 3600 : ttl % 60 == 0 ? ttl / 60 : ttl,
            ttl % 3600 == 0 ? "h" : ttl % 60 == 0 ? "m" : "s",
            bundle ? bundle : ctl->opt.ca_cert ? ctl->opt.ca_cert : "the bundle of GET /v1.0/ca/bundle",
            ctl->opt.ca_cert ? " or a root above it" : "");
}

/* ---- run ---- */

static void shutdown_all(struct gy_control *ctl)
{
    stop_sources(ctl);
    ctl_server_free(ctl->server);
    ctl_ca_close(ctl->ca);
    ctl_auth_free(ctl->auth);
    if (ctl->store != NULL)
        ctl->store_ops->close(ctl->store);
    ctl_views_dispose(ctl);
    ctl_xds_dispose(ctl);
    ctl_mesh_dispose(ctl);
    for (size_t i = 0; i < ctl->nsources; i++) {
        free(ctl->sources[i].spec);
        json_decref(ctl->sources[i].snapshot);
    }
    free(ctl->sources);
    for (size_t i = 0; i < ctl->ntls_names; i++)
        free(ctl->tls_names[i]);
    free(ctl->tls_names);
    gy_io_stop(&ctl->signal_io);
    close(ctl->signal_io.fd);
    gy_loop_dispose(&ctl->loop);
    curl_global_cleanup();
}

int gy_control_run(const struct gy_control_options *opt)
{
    struct gy_control *ctl = calloc(1, sizeof(*ctl));
    char err[512];
    int rc;

    if (ctl == NULL)
        gy_fatal("out of memory");
    ctl->opt = *opt;
    ctl->started_ms = gy_now_ms();
    if (gy_tls_init(NULL, opt->fips, err, sizeof(err)) != 0) /* FIPS mode first: nothing is started yet */
        gy_fatal("%s", err);
    SSL_CTX *tls = NULL; /* loaded first: a bad pair stops the process before anything is created */
    if (opt->tls_cert != NULL && (tls = tls_build(ctl, err, sizeof(err))) == NULL)
        gy_fatal("--tls-cert/--tls-key: %s", err);
    if (opt->api_key_file != NULL) {
        if ((ctl->auth = ctl_auth_load(opt->api_key_file, err, sizeof(err))) == NULL)
            gy_fatal("--api-key-file: %s", err);
        if (opt->tls_cert == NULL && !opt->tls_auto)
            gy_warn("--api-key-file without HTTPS (--tls-auto or --tls-cert): API keys cross the network in clear "
                    "text");
    }
    signal(SIGPIPE, SIG_IGN);
    gy_raise_nofile();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        gy_fatal("cannot initialise libcurl");
    if (gy_loop_init(&ctl->loop) != 0)
        gy_fatal("cannot create the event loop: %s", strerror(errno));
    ctl->loop.data = ctl;
    gy_timer_init(&ctl->drain_timer, drain_tick);
    gy_timer_init(&ctl->gc_timer, gc_tick);
    gy_timer_init(&ctl->tls_timer, tls_tick);
    if (ctl_mesh_init(ctl) != 0)
        gy_fatal("out of memory");
    ctl_views_init(ctl);
    ctl_map_init(&ctl->nodes);
    setup_signals(ctl);
    open_store(ctl);
    struct ctl_ca_options cao = { opt->data_dir, opt->ca_cert, opt->ca_key, opt->trust_domain, opt->svid_ttl_s };
    if ((ctl->ca = ctl_ca_open(&cao, err, sizeof(err))) == NULL)
        gy_fatal("ca: %s", err);
    load_identities(ctl);
    if (ctl_server_start(&ctl->loop, opt->listen, ctl_handle, ctl, &ctl->server, err, sizeof(err)) != 0)
        gy_fatal("%s", err);
    if (tls != NULL) {
        if (tls_trust_mesh(ctl, tls) != 0)
            gy_fatal("HTTPS: the mesh CA's certificate does not load");
        ctl_server_set_tls(ctl->server, tls);
        gy_timer_start(&ctl->loop, &ctl->tls_timer, TLS_WATCH_MS);
    } else if (opt->tls_auto) {
        tls_auto_names(ctl);
        if (tls_auto_renew(ctl, err, sizeof(err)) != 0)
            gy_fatal("--tls-auto: %s", err);
        gy_timer_start(&ctl->loop, &ctl->tls_timer, TLS_WATCH_MS);
        log_tls_auto(ctl);
    }
    start_sources(ctl);
    gy_timer_start(&ctl->loop, &ctl->gc_timer, GC_INTERVAL_MS);
    gy_info("control plane listening on %s%s (store %s)", opt->tls_cert || opt->tls_auto ? "https://" : "http://",
            opt->listen, ctl->store_ops->name);
    rc = gy_loop_run(&ctl->loop);
    gy_info("stopped");
    shutdown_all(ctl);
    gy_tls_shutdown();
    free(ctl);
    return rc == 0 ? 0 : 1;
}
