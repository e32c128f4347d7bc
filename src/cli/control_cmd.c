/* gyrus control: the control plane (src/control/, docs/control.md). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "control/control.h"
#include "core/log.h"
#include "net/sock.h"

static const char usage[] =
    "usage: gyrus control --data-dir DIR [options]\n"
    "\n"
    "Serves the mesh object API (/v1.0/<kind>), distributes each proxy its view (/v1.0/xds/<proxy>)\n"
    "and fills cluster instances from discovery sources. See docs/control.md.\n"
    "\n"
    "options:\n"
    "      --listen ADDR            API and xds address, default 127.0.0.1:5555\n"
    "      --data-dir DIR           state directory; the SQLite store is DIR/mesh.db (required for sqlite)\n"
    "      --store sqlite|etcd      where the mesh is kept, default sqlite\n"
    "      --etcd-endpoints URLS    etcd v3 endpoints, default http://127.0.0.1:2379 (comma-separated)\n"
    "      --etcd-prefix PREFIX     etcd key prefix, default /gyrus\n"
    "      --discovery SPEC         a discovery source (repeatable): file:PATH, dns:NAME[:PORT]=CLUSTER,\n"
    "                               etcd:URL/PREFIX, consul:URL, kubernetes:URL\n"
    "      --drain-time DURATION    how long SIGTERM waits for responses in flight, default 5s\n"
    "      --trust-domain NAME      SPIFFE trust domain of the mesh CA, default gyrus.local\n"
    "      --svid-ttl DURATION      lifetime of the SVIDs the CA issues, default 1h\n"
    "      --ca-cert FILE           sign with this (intermediate) CA instead of a root in DIR/ca\n"
    "      --ca-key FILE            its private key\n"
    "      --fips on|required       FIPS mode: the CA signs only FIPS-approved keys (RSA >= 2048, ECDSA\n"
    "                               P-256/P-384) with SHA-256; required: refuse to start without the\n"
    "                               OpenSSL FIPS provider (docs/fips.md)\n"
    "      --tls-cert FILE          serve the API and xds over HTTPS with this PEM certificate chain\n"
    "      --tls-key FILE           and its private key (both re-read when they change)\n"
    "      --tls-auto               serve HTTPS with a certificate the mesh CA issues and renews (for\n"
    "                               localhost, the loopback and --listen addresses, this host's name);\n"
    "                               clients trust DIR/ca/root.crt\n"
    "      --tls-san NAMES          more names for it (DNS names or IPs, comma-separated)\n"
    "      --tls-ttl DURATION       its lifetime, default 24h; renewed at two thirds of it\n"
    "      --api-key-file FILE      callers must authenticate: API keys, one per line (re-read on SIGHUP);\n"
    "                               proxies may poll their view with their SVID instead (docs/control.md)\n"
    "      --log-level LEVEL        debug, info, warn, error (default info)\n"
    "      --log-format FORMAT      text or json (default text)\n";

int gy_cmd_control(int argc, char **argv)
{
    struct gy_control_options o = {
        .listen = "127.0.0.1:5555",
        .store = "sqlite",
        .etcd_endpoints = "http://127.0.0.1:2379",
        .etcd_prefix = "/gyrus",
        .drain_ms = 5000,
    };
    struct gy_flags f;
    long long tls_ttl_ms = -1;
    int rc;

    o.discovery = calloc((size_t)argc + 1, sizeof(*o.discovery));
    if (o.discovery == NULL)
        gy_fatal("out of memory");
    gy_flags_init(&f, argc, argv, usage);
    while (gy_flags_next(&f)) {
        if (gy_flag_is(&f, "-l", "--listen"))
            o.listen = gy_flag_value(&f);
        else if (gy_flag_is(&f, "-d", "--data-dir"))
            o.data_dir = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--store"))
            o.store = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--etcd-endpoints"))
            o.etcd_endpoints = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--etcd-prefix"))
            o.etcd_prefix = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--discovery"))
            o.discovery[o.ndiscovery++] = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--drain-time"))
            o.drain_ms = gy_flag_duration_ms(&f);
        else if (gy_flag_is(&f, NULL, "--trust-domain"))
            o.trust_domain = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--svid-ttl"))
            o.svid_ttl_s = (gy_flag_duration_ms(&f) + 999) / 1000;
        else if (gy_flag_is(&f, NULL, "--ca-cert"))
            o.ca_cert = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--ca-key"))
            o.ca_key = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--api-key-file"))
            o.api_key_file = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--tls-cert"))
            o.tls_cert = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--tls-key"))
            o.tls_key = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--tls-auto"))
            o.tls_auto = true;
        else if (gy_flag_is(&f, NULL, "--tls-san"))
            o.tls_sans = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--tls-ttl"))
            tls_ttl_ms = (long long)gy_flag_duration_ms(&f);
        else if (gy_flag_is(&f, NULL, "--fips"))
            o.fips = gy_flag_value(&f);
        else if (!gy_flags_common(&f))
            gy_flags_unknown(&f);
    }
    if (strcmp(o.store, "sqlite") != 0 && strcmp(o.store, "etcd") != 0)
        gy_fatal("--store: want sqlite or etcd, got \"%s\"", o.store);
    if (strcmp(o.store, "sqlite") == 0 && o.data_dir == NULL)
        gy_fatal("--data-dir is required (the SQLite store lives there)");
    struct sockaddr_storage ss;
    socklen_t sl;
    if (gy_addr_parse(o.listen, &ss, &sl) != 0)
        gy_fatal("--listen: cannot parse \"%s\" (want IP:PORT)", o.listen);
    if ((o.tls_cert == NULL) != (o.tls_key == NULL))
        gy_fatal("--tls-cert and --tls-key go together");
    if (o.tls_auto && o.tls_cert != NULL)
        gy_fatal("--tls-auto or --tls-cert/--tls-key: one or the other");
    if (!o.tls_auto && (o.tls_sans != NULL || tls_ttl_ms >= 0))
        gy_fatal("--tls-san and --tls-ttl are for --tls-auto");
    if (tls_ttl_ms >= 0 && tls_ttl_ms < 3000)
        gy_fatal("--tls-ttl: want at least 3s");
    o.tls_ttl_s = tls_ttl_ms >= 0 ? (uint32_t)(tls_ttl_ms / 1000) : 86400;
    if ((o.ca_cert == NULL) != (o.ca_key == NULL))
        gy_fatal("--ca-cert and --ca-key go together");
    if (o.trust_domain != NULL && (strchr(o.trust_domain, '/') || strchr(o.trust_domain, ':') || !o.trust_domain[0]))
        gy_fatal("--trust-domain: want a name like example.org, got \"%s\"", o.trust_domain);
    if (o.etcd_prefix[0] != '/')
        gy_fatal("--etcd-prefix: want a prefix starting with '/', got \"%s\"", o.etcd_prefix);
    rc = gy_control_run(&o);
    free(o.discovery);
    return rc;
}
