/*
 * gyrus dev: a whole mesh on this machine, in one command. It starts the control plane (SQLite
 * in a temp dir, HTTPS with a certificate from its own CA), two demo services (echo, fibonacci)
 * with a sidecar each, and an edge proxy; the proxies get their config from the control plane,
 * and the sidecars are found through flat-file discovery. Ctrl-C stops all of it.
 */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/flags.h"
#include "core/log.h"
#include "net/sock.h"

#define NCHILD 6

struct child {
    const char *what;
    pid_t pid;
};

/* The mesh objects applied to the control plane. Clusters without instances are filled by
 * discovery (the flat file below), by their `name`. */
static const char mesh_template[] =
    "# Applied by `gyrus dev` to its control plane: an edge proxy and two services behind sidecars.\n"
    "- {kind: zone, zone_key: dev, name: dev}\n"
    "\n"
    "# Sidecars: each listens for the mesh and forwards to its local service.\n"
    "- {kind: cluster, cluster_key: echo-local, name: echo-local, zone_key: dev}\n"
    "- {kind: domain, domain_key: echo-ingress, name: \"*\", port: %d, zone_key: dev}\n"
    "- {kind: listener, listener_key: echo-ingress, name: echo-ingress, ip: 127.0.0.1, port: %d,\n"
    "   protocol: http_auto, domain_keys: [echo-ingress], zone_key: dev}\n"
    "- {kind: route, route_key: echo-ingress, domain_key: echo-ingress, zone_key: dev,\n"
    "   route_match: {path: /, match_type: prefix},\n"
    "   rules: [{constraints: {light: [{cluster_key: echo-local, weight: 1}]}}]}\n"
    "- {kind: proxy, proxy_key: echo, name: echo, zone_key: dev, listener_keys: [echo-ingress]}\n"
    "\n"
    "- {kind: cluster, cluster_key: fibonacci-local, name: fibonacci-local, zone_key: dev}\n"
    "- {kind: domain, domain_key: fibonacci-ingress, name: \"*\", port: %d, zone_key: dev}\n"
    "- {kind: listener, listener_key: fibonacci-ingress, name: fibonacci-ingress, ip: 127.0.0.1, port: %d,\n"
    "   protocol: http_auto, domain_keys: [fibonacci-ingress], zone_key: dev}\n"
    "- {kind: route, route_key: fibonacci-ingress, domain_key: fibonacci-ingress, zone_key: dev,\n"
    "   route_match: {path: /, match_type: prefix},\n"
    "   rules: [{constraints: {light: [{cluster_key: fibonacci-local, weight: 1}]}}]}\n"
    "- {kind: proxy, proxy_key: fibonacci, name: fibonacci, zone_key: dev, listener_keys: [fibonacci-ingress]}\n"
    "\n"
    "# The edge: /services/<name>/ goes to that service's sidecars (cluster name = service name).\n"
    "- {kind: cluster, cluster_key: edge-to-echo, name: echo, zone_key: dev}\n"
    "- {kind: cluster, cluster_key: edge-to-fibonacci, name: fibonacci, zone_key: dev}\n"
    "- {kind: shared_rules, shared_rules_key: edge-to-echo, zone_key: dev,\n"
    "   default: {light: [{cluster_key: edge-to-echo, weight: 1}]}}\n"
    "- {kind: shared_rules, shared_rules_key: edge-to-fibonacci, zone_key: dev,\n"
    "   default: {light: [{cluster_key: edge-to-fibonacci, weight: 1}]}}\n"
    "- {kind: domain, domain_key: edge, name: \"*\", port: %d, zone_key: dev}\n"
    "- {kind: listener, listener_key: edge, name: edge, ip: 127.0.0.1, port: %d, protocol: http_auto,\n"
    "   domain_keys: [edge], zone_key: dev}\n"
    "- {kind: route, route_key: edge-echo, domain_key: edge, zone_key: dev,\n"
    "   route_match: {path: /services/echo/, match_type: prefix}, prefix_rewrite: /,\n"
    "   shared_rules_key: edge-to-echo}\n"
    "- {kind: route, route_key: edge-fibonacci, domain_key: edge, zone_key: dev,\n"
    "   route_match: {path: /services/fibonacci/, match_type: prefix}, prefix_rewrite: /,\n"
    "   shared_rules_key: edge-to-fibonacci}\n"
    "- {kind: route, route_key: edge-index, domain_key: edge, zone_key: dev,\n"
    "   route_match: {path: /, match_type: exact},\n"
    "   direct_response: {status: 200, body: \"gyrus dev edge: try /services/echo/echo or /services/fibonacci/fib/30\\n\"}}\n"
    "- {kind: proxy, proxy_key: edge, name: edge, zone_key: dev, listener_keys: [edge]}\n";

/* Flat-file discovery: where each service and each sidecar listens. */
static const char discovery_template[] =
    "# Read by the control plane (--discovery file:...): instances by cluster name. Edit it while\n"
    "# the mesh runs and the proxies follow within a second.\n"
    "- cluster: echo-local\n  instances: [{host: 127.0.0.1, port: %d}]\n"
    "- cluster: fibonacci-local\n  instances: [{host: 127.0.0.1, port: %d}]\n"
    "- cluster: echo\n  instances: [{host: 127.0.0.1, port: %d}]\n"
    "- cluster: fibonacci\n  instances: [{host: 127.0.0.1, port: %d}]\n";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static pid_t spawn(char *const argv[])
{
    pid_t pid = fork();

    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* Out of the terminal's process group: Ctrl-C reaches `gyrus dev` alone, which stops
         * the children in order; and if `gyrus dev` dies, so do they. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1)
            _exit(1);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    return pid;
}

/* True once `GET /path` on 127.0.0.1:port answers 200. */
static bool http_ok(int port, const char *path)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char req[256], resp[64];
    bool ok = false;

    gy_addr_from_ip("127.0.0.1", (unsigned)port, &ss, &len);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct timeval tv = { 1, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&ss, len) == 0) {
        int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n", path);
        if (write(fd, req, (size_t)n) == n) {
            ssize_t r = read(fd, resp, sizeof(resp) - 1);
            ok = r >= 12 && memcmp(resp + 9, "200", 3) == 0;
        }
    }
    close(fd);
    return ok;
}

static void stop_all(struct child *c, int n)
{
    for (int i = 0; i < n; i++)
        if (c[i].pid > 0)
            kill(c[i].pid, SIGTERM);
    for (int waited = 0; waited < 150; waited++) { /* 15 s */
        int alive = 0;
        for (int i = 0; i < n; i++) {
            if (c[i].pid > 0 && waitpid(c[i].pid, NULL, WNOHANG) == c[i].pid)
                c[i].pid = 0;
            alive += c[i].pid > 0;
        }
        if (!alive)
            return;
        nanosleep(&(struct timespec){ 0, 100000000 }, NULL);
    }
    for (int i = 0; i < n; i++)
        if (c[i].pid > 0) {
            kill(c[i].pid, SIGKILL);
            waitpid(c[i].pid, NULL, 0);
        }
}

static const char usage[] = "usage: gyrus dev [--port-base N] [--keep]\n"
                            "\n"
                            "Runs a demo mesh on 127.0.0.1 (control plane, two services with sidecars, an edge)\n"
                            "and prints where to send requests; Ctrl-C stops it.\n"
                            "  --port-base N   ports used: N (edge), N+1..N+2 (sidecars), N+3..N+4 (services),\n"
                            "                  N+5 (control plane), N+10..N+12 (admin); default 10080\n"
                            "  --keep          keep the generated files after stopping\n";

struct ports {
    int edge, echo_sc, fib_sc, echo_svc, fib_svc, control;
    int admin[3];
};

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static bool child_died(struct child *ch, int n)
{
    bool died = false;

    for (int i = 0; i < n; i++) {
        if (ch[i].pid > 0 && waitpid(ch[i].pid, NULL, WNOHANG) == ch[i].pid) {
            gy_error("the %s exited while starting", ch[i].what);
            ch[i].pid = 0;
            died = true;
        }
    }
    return died;
}

/* Waits up to 10 s for ready(arg); false if a child died or time ran out. */
static bool wait_until_ready(struct child *ch, int n, bool (*ready)(const void *arg), const void *arg)
{
    for (int t = 0; t < 100 && !stop_requested; t++) {
        nanosleep(&(struct timespec){ 0, 100000000 }, NULL);
        if (child_died(ch, n))
            return false;
        if (ready(arg))
            return true;
    }
    return false;
}

struct probes {
    const int *ports;
    const char *const *paths;
    int count;
};

/* Every (port, path) answers 200. */
static bool all_http_ok(const void *arg)
{
    const struct probes *pr = arg;

    for (int i = 0; i < pr->count; i++)
        if (!http_ok(pr->ports[i], pr->paths[i]))
            return false;
    return true;
}

static bool wait_ready(struct child *ch, int n, const int *ports, const char *const *paths, int count)
{
    const struct probes pr = { ports, paths, count };

    return wait_until_ready(ch, n, all_http_ok, &pr);
}

static void write_file(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_file(const char *path, const char *fmt, ...)
{
    va_list ap;
    FILE *fp = fopen(path, "w");

    if (fp == NULL)
        gy_fatal("cannot write %s: %s", path, strerror(errno));
    va_start(ap, fmt);
    vfprintf(fp, fmt, ap);
    va_end(ap);
    if (fclose(fp) != 0)
        gy_fatal("cannot write %s: %s", path, strerror(errno));
}

/* A CLI client for the control plane, trusting its CA's root (the control plane serves HTTPS with a
 * certificate from its own CA, --tls-auto). */
static void control_client(struct gy_client *c, const char *url, const char *ca)
{
    gy_client_init(c, url);
    snprintf(c->ca, sizeof(c->ca), "%s", ca);
}

struct control {
    const char *url, *ca;
};

/* The control plane's /ready answers 200 over HTTPS, verified against its CA's root. */
static bool control_ok(const void *arg)
{
    const struct control *cp = arg;
    struct gy_client c;
    char err[300];
    long status = 0;
    json_t *res = NULL;

    if (access(cp->ca, R_OK) != 0)
        return false; /* the CA's root is written as the control plane starts */
    control_client(&c, cp->url, cp->ca);
    c.timeout_ms = 1000;
    int rc = gy_client_call(&c, "GET", "/ready", NULL, 0, &status, &res, err, sizeof(err));
    json_decref(res);
    gy_client_dispose(&c);
    return rc == 0 && status == 200;
}

/* Runs `gyrus apply -f mesh --control url --control-ca ca` and waits for it. */
static bool apply_mesh(const char *mesh, const char *url, const char *ca)
{
    char *argv[] = { "gyrus", "apply", "-q", "-f", (char *)mesh, "--control", (char *)url, "--control-ca", (char *)ca,
                     NULL };
    int status = 0;
    pid_t pid = spawn(argv);

    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return false;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A one-use join token for a proxy of the demo, so that it gets its SVID and the traffic between
 * the proxies turns to mTLS by itself; "" (no identity) if the CA cannot give one. */
static void join_token(const char *url, const char *ca, const char *service, char *out, size_t len)
{
    struct gy_client c;
    char body[160], err[300];
    long status = 0;
    json_t *res = NULL;

    out[0] = '\0';
    snprintf(body, sizeof(body), "{\"service\":\"%s\",\"zone\":\"dev\",\"uses\":1,\"ttl\":\"10m\"}", service);
    control_client(&c, url, ca);
    if (gy_client_call(&c, "POST", "/v1.0/ca/tokens", body, strlen(body), &status, &res, err, sizeof(err)) != 0 ||
        status / 100 != 2)
        gy_warn("no join token for %s (%s): it runs without a mesh identity", service,
                status ? gy_client_error_message(res, status, err, sizeof(err)) : err);
    else {
        const char *t = json_string_value(json_object_get(json_object_get(res, "result"), "token"));
        snprintf(out, len, "%s", t != NULL ? t : "");
    }
    json_decref(res);
    gy_client_dispose(&c);
}

static void banner(const char *dir, const char *ca, const struct ports *p)
{
    printf("\ngyrus dev mesh is up (files in %s)\n\n"
           "  edge:          http://127.0.0.1:%d/\n"
           "  try:           curl http://127.0.0.1:%d/services/echo/echo\n"
           "                 curl http://127.0.0.1:%d/services/fibonacci/fib/30\n"
           "  control plane: https://127.0.0.1:%d/  (its CA's root: %s)\n"
           "                 export GYRUS_CONTROL=https://127.0.0.1:%d GYRUS_CONTROL_CA=%s\n"
           "                 then: gyrus status, gyrus get route; or curl --cacert %s https://127.0.0.1:%d/v1.0/route\n"
           "  edge admin:    http://127.0.0.1:%d/stats/prometheus\n"
           "  sidecar admin: http://127.0.0.1:%d/ (echo), http://127.0.0.1:%d/ (fibonacci)\n"
           "  identities:    the proxies hold SPIFFE SVIDs from the control plane's CA (their /certs);\n"
           "                 edge -> sidecar traffic is mTLS, and the sidecars refuse anyone without one\n\n"
           "Change the mesh with `gyrus apply -f %s/mesh.yaml` (with the exports above) after\n"
           "editing it, or the instances in %s/discovery.yaml. Access log of the edge follows;\n"
           "Ctrl-C stops everything.\n\n",
           dir, p->edge, p->edge, p->edge, p->control, ca, p->control, ca, ca, p->control, p->admin[0], p->admin[1],
           p->admin[2], dir, dir);
    fflush(stdout);
}

int gy_cmd_dev(int argc, char **argv)
{
    struct child ch[NCHILD] = { { "control plane", 0 }, { "echo service", 0 },    { "fibonacci service", 0 },
                                { "echo sidecar", 0 },  { "fibonacci sidecar", 0 }, { "edge proxy", 0 } };
    int base = 10080;
    bool keep = false;
    struct gy_flags f;
    char dir[] = "/tmp/gyrus-dev-XXXXXX", mesh[128], disc[128], disc_spec[140], cdir[128], cache[128], url[64];
    char ca[160];
    char addr[3][32], admin[3][32], clisten[32];

    gy_flags_init(&f, argc, argv, usage);
    while (gy_flags_next(&f)) {
        if (gy_flag_is(&f, NULL, "--port-base"))
            base = (int)gy_flag_uint(&f, 1024, 65000);
        else if (gy_flag_is(&f, NULL, "--keep"))
            keep = true;
        else if (!gy_flags_common(&f))
            gy_flags_unknown(&f);
    }
    struct ports p = { base, base + 1, base + 2, base + 3, base + 4, base + 5, { base + 10, base + 11, base + 12 } };
    if (mkdtemp(dir) == NULL)
        gy_fatal("cannot create a temporary directory: %s", strerror(errno));
    snprintf(mesh, sizeof(mesh), "%s/mesh.yaml", dir);
    snprintf(disc, sizeof(disc), "%s/discovery.yaml", dir);
    snprintf(disc_spec, sizeof(disc_spec), "file:%s", disc);
    snprintf(cdir, sizeof(cdir), "%s/control", dir);
    snprintf(cache, sizeof(cache), "%s/proxies", dir);
    snprintf(ca, sizeof(ca), "%s/ca/root.crt", cdir);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", p.control);
    snprintf(clisten, sizeof(clisten), "127.0.0.1:%d", p.control);
    write_file(mesh, mesh_template, p.echo_sc, p.echo_sc, p.fib_sc, p.fib_sc, p.edge, p.edge);
    write_file(disc, discovery_template, p.echo_svc, p.fib_svc, p.echo_sc, p.fib_sc);
    snprintf(addr[0], sizeof(addr[0]), "127.0.0.1:%d", p.echo_svc);
    snprintf(addr[1], sizeof(addr[1]), "127.0.0.1:%d", p.fib_svc);
    for (int i = 0; i < 3; i++)
        snprintf(admin[i], sizeof(admin[i]), "127.0.0.1:%d", p.admin[i]);
    char tokens[3][128];
    char *argvs[NCHILD][20] = {
        { "gyrus", "control", "--listen", clisten, "--data-dir", cdir, "--discovery", disc_spec, "--tls-auto", NULL },
        { "gyrus", "demo-service", "--listen", addr[0], "--name", "echo", NULL },
        { "gyrus", "demo-service", "--listen", addr[1], "--name", "fibonacci", NULL },
        { "gyrus", "proxy", "--control", url, "--control-ca", ca, "--name", "echo", "--zone", "dev", "--data-dir",
          cache, "--admin", admin[1], "--workers", "1", NULL },
        { "gyrus", "proxy", "--control", url, "--control-ca", ca, "--name", "fibonacci", "--zone", "dev", "--data-dir",
          cache, "--admin", admin[2], "--workers", "1", NULL },
        { "gyrus", "proxy", "--control", url, "--control-ca", ca, "--name", "edge", "--zone", "dev", "--data-dir",
          cache, "--admin", admin[0], "--access-log", "-", NULL },
    };

    /* No SA_RESTART: the signal must interrupt waitpid below. */
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    const struct control cp = { url, ca };
    bool ok = (ch[0].pid = spawn(argvs[0])) > 0 && wait_until_ready(ch, NCHILD, control_ok, &cp) &&
              apply_mesh(mesh, url, ca);
    for (int i = 0; ok && i < 3; i++) { /* the proxies, argvs[3..5] (name at [7]): a token at the end */
        char **a = argvs[3 + i];
        size_t n = 0;
        while (a[n] != NULL)
            n++;
        join_token(url, ca, a[7], tokens[i], sizeof(tokens[i]));
        if (tokens[i][0] != '\0') {
            a[n] = "--join-token";
            a[n + 1] = tokens[i];
            a[n + 2] = NULL;
        }
    }
    /* The sidecars first: once they serve, they hold their SVIDs, so the edge's first view
     * already speaks mTLS to them (no plain-then-TLS switch while the first requests come). */
    for (int i = 1; ok && i < NCHILD - 1; i++)
        if ((ch[i].pid = spawn(argvs[i])) < 0)
            ok = false;
    const char *const sc_paths[] = { "/ready", "/ready" };
    ok = ok && wait_ready(ch, NCHILD, &p.admin[1], sc_paths, 2) && (ch[NCHILD - 1].pid = spawn(argvs[NCHILD - 1])) > 0;
    const int rports[] = { p.admin[0], p.admin[1], p.admin[2], p.echo_svc, p.fib_svc };
    const char *const rpaths[] = { "/ready", "/ready", "/ready", "/healthz", "/healthz" };
    if (!ok || !wait_ready(ch, NCHILD, rports, rpaths, 5)) {
        stop_all(ch, NCHILD);
        if (stop_requested)
            return 0;
        gy_fatal("the demo mesh did not start (ports %d-%d in use? files kept in %s)", base, base + 12, dir);
    }
    banner(dir, ca, &p);

    int status = 0;
    while (!stop_requested) {
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0 && errno == EINTR)
            continue;
        for (int i = 0; i < NCHILD; i++) {
            if (ch[i].pid == pid) {
                ch[i].pid = 0;
                gy_error("the %s exited unexpectedly (status %d); stopping the mesh", ch[i].what, status);
                stop_requested = 1;
            }
        }
    }
    stop_all(ch, NCHILD);
    if (!keep && nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        gy_warn("could not remove %s: %s", dir, strerror(errno));
    printf("gyrus dev: stopped\n");
    return 0;
}
