/* gyrus proxy: the sidecar / edge proxy. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "core/log.h"
#include "proxy/proxy.h"

static const char usage[] =
    "usage: gyrus proxy --config MESH_FILE --name PROXY [options]\n"
    "       gyrus proxy --control URL --name PROXY [--zone ZONE] [options]\n"
    "\n"
    "Serves the listeners of proxy PROXY (its `name`, or `proxy_key`), from a mesh file (YAML or JSON)\n"
    "reloaded on SIGHUP and when it changes, or from the control plane, which pushes every change.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE          mesh file (static mode)\n"
    "      --control URL          control plane, e.g. http://127.0.0.1:5555 (dynamic mode; also $GYRUS_CONTROL)\n"
    "  -n, --name NAME            proxy to serve (required)\n"
    "      --control-ca FILE      PEM trust anchors for an https:// control plane, default the system's\n"
    "                             ($GYRUS_CONTROL_CA); $GYRUS_API_KEY: an API key to poll with\n"
    "      --zone ZONE            zone the proxy announces to the control plane\n"
    "      --node ID              this instance's id for the control plane, default HOSTNAME:PID\n"
    "      --data-dir DIR         where the last view from the control plane is cached, default /var/lib/gyrus\n"
    "      --join-token TOKEN     proves the proxy to the mesh CA for its first SVID ($GYRUS_JOIN_TOKEN)\n"
    "      --admin ADDR           admin listener, default 127.0.0.1:8001; \"off\" to disable\n"
    "      --workers N            worker threads, default: number of CPUs\n"
    "      --drain-time DURATION  how long SIGTERM waits for in-flight requests, default 10s\n"
    "      --watch-interval DUR   how often to check the mesh file for changes, default 1s; 0 = never\n"
    "      --access-log PATH      also log every request of every listener to PATH (\"-\" = stdout)\n"
    "      --access-log-format F  format string with %FIELD% tokens instead of JSON lines\n"
    "      --fips MODE            on: FIPS-approved TLS only; required: also refuse to start without the FIPS provider\n"
    "      --log-level LEVEL      debug, info, warn, error (default info)\n"
    "      --log-format FORMAT    text or json (default text)\n";

int gy_cmd_proxy(int argc, char **argv)
{
    struct gy_proxy_options o = {
        .admin_addr = "127.0.0.1:8001",
        .drain_time_ms = 10000,
        .watch_interval_ms = 1000,
    };
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct gy_flags f;

    o.workers = cpus > 0 ? (unsigned)cpus : 1;
    gy_flags_init(&f, argc, argv, usage);
    while (gy_flags_next(&f)) {
        if (gy_flag_is(&f, "-c", "--config"))
            o.config_path = gy_flag_value(&f);
        else if (gy_flag_is(&f, "-n", "--name"))
            o.name = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--zone"))
            o.zone = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--control"))
            o.control_url = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--control-ca"))
            o.control_ca = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--node"))
            o.node = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--data-dir"))
            o.data_dir = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--join-token"))
            o.join_token = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--admin"))
            o.admin_addr = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--workers"))
            o.workers = (unsigned)gy_flag_uint(&f, 1, 256);
        else if (gy_flag_is(&f, NULL, "--drain-time"))
            o.drain_time_ms = gy_flag_duration_ms(&f);
        else if (gy_flag_is(&f, NULL, "--watch-interval"))
            o.watch_interval_ms = gy_flag_duration_ms(&f);
        else if (gy_flag_is(&f, NULL, "--access-log"))
            o.access_log = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--access-log-format"))
            o.access_log_format = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--fips"))
            o.fips = gy_flag_value(&f);
        else if (!gy_flags_common(&f))
            gy_flags_unknown(&f);
    }
    if (o.config_path == NULL && o.control_url == NULL)
        o.control_url = getenv("GYRUS_CONTROL");
    if (o.config_path == NULL && o.control_url == NULL)
        gy_fatal("--config FILE or --control URL is required");
    if (o.join_token == NULL)
        o.join_token = getenv("GYRUS_JOIN_TOKEN");
    if (o.control_ca == NULL && o.control_url != NULL)
        o.control_ca = getenv("GYRUS_CONTROL_CA");
    if (o.control_url != NULL && (o.api_key = getenv("GYRUS_API_KEY")) != NULL) {
        size_t n = strlen(o.api_key);
        for (size_t i = 0; i < n; i++)
            if (!isgraph((unsigned char)o.api_key[i]))
                gy_fatal("$GYRUS_API_KEY: a key is one word of printable characters");
        if (n == 0 || n > 512)
            gy_fatal("$GYRUS_API_KEY: want 1 to 512 characters");
    }
    if (o.config_path != NULL && o.control_url != NULL)
        gy_fatal("--config and --control exclude each other");
    if (o.name == NULL)
        gy_fatal("--name is required (the proxy object to serve)");
    return gy_proxy_run(&o);
}
