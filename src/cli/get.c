/* gyrus get KIND [KEY] [-o json|yaml|table] and gyrus list KIND: read mesh objects. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"
#include "core/log.h"

static const char usage_get[] =
    "usage: gyrus get KIND [KEY] [-o json|yaml|table] [--filter FIELD=VALUE...] [--control URL]\n"
    "\n"
    "Prints one object (YAML by default) or every object of a kind (a table by default).\n"
    "KIND: zone, proxy, listener, domain, route, shared_rules, cluster (plurals work too).\n"
    "\n"
    "options:\n"
    "  -o, --output FORMAT        json, yaml or table\n"
    "      --filter FIELD=VALUE   only objects whose FIELD equals VALUE (repeatable)\n"
    "      --control URL          control plane, default $GYRUS_CONTROL or " GY_CONTROL_DEFAULT "\n"
    "      --control-ca FILE      PEM trust anchors for an https:// control plane ($GYRUS_CONTROL_CA)\n"
    "      --api-key-file FILE    the API key to send, when the control plane asks for one ($GYRUS_API_KEY)\n";

static const char usage_list[] =
    "usage: gyrus list KIND [-o table|json|yaml] [--filter FIELD=VALUE...] [--control URL]\n"
    "\n"
    "Prints every object of a kind, as a table by default.\n";

static int run(int argc, char **argv, bool is_list)
{
    const char *url = NULL, *kind = NULL, *key = NULL, *out = NULL;
    char query[4096] = "";
    size_t qlen = 0;
    struct gy_flags f;
    struct gy_client c;
    const char *filters[64];
    size_t nfilters = 0;

    gy_flags_init(&f, argc, argv, is_list ? usage_list : usage_get);
    while (gy_flags_next(&f)) {
        const char *pos = gy_flag_positional(&f);
        if (pos != NULL && kind == NULL)
            kind = gy_cli_kind(pos);
        else if (pos != NULL && key == NULL && !is_list)
            key = pos;
        else if (gy_flag_is(&f, "-o", "--output"))
            out = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--filter")) {
            const char *v = gy_flag_value(&f);
            if (strchr(v, '=') == NULL || v[0] == '=')
                gy_fatal("--filter: want FIELD=VALUE, got \"%s\"", v);
            if (nfilters < sizeof(filters) / sizeof(filters[0]))
                filters[nfilters++] = v;
        } else if (!gy_client_flag(&f, &url) && !gy_flags_common(&f))
            gy_flags_unknown(&f);
    }
    if (kind == NULL)
        gy_fatal("missing KIND (zone, proxy, listener, domain, route, shared_rules, cluster)");
    enum gy_output fmt = out ? gy_output_parse(out) : key ? GY_OUT_YAML : GY_OUT_TABLE;
    gy_client_init(&c, url);
    for (size_t i = 0; i < nfilters; i++) {
        const char *eq = strchr(filters[i], '=');
        char field[256];
        snprintf(field, sizeof(field), "%.*s", (int)(eq - filters[i]), filters[i]);
        char *ef = gy_client_escape(&c, field), *ev = gy_client_escape(&c, eq + 1);
        int n = snprintf(query + qlen, sizeof(query) - qlen, "%c%s=%s", qlen ? '&' : '?', ef, ev);
        if (n > 0 && (size_t)n < sizeof(query) - qlen)
            qlen += (size_t)n;
        free(ef);
        free(ev);
    }
    char path[8192];
    if (key != NULL) {
        char *ek = gy_client_escape(&c, key);
        snprintf(path, sizeof(path), "/v1.0/%s/%s", kind, ek);
        free(ek);
    } else {
        snprintf(path, sizeof(path), "/v1.0/%s%s", kind, query);
    }
    json_t *res = gy_client_result(&c, "GET", path, NULL, 0);
    gy_output_objects(stdout, fmt, kind, res);
    json_decref(res);
    gy_client_dispose(&c);
    return 0;
}

int gy_cmd_get(int argc, char **argv)
{
    return run(argc, argv, false);
}

int gy_cmd_list(int argc, char **argv)
{
    return run(argc, argv, true);
}
