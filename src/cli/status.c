/* gyrus status: the proxies the control plane serves (versions, ACK/NACK), clusters and their
 * instance counts, discovery sources. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"
#include "core/log.h"

static const char usage[] =
    "usage: gyrus status [-o table|json] [--control URL]\n"
    "\n"
    "Shows each proxy node polling the control plane (the version it holds, whether it applied\n"
    "it (ACK) or refused it (NACK) and why), the clusters with their instance counts, and the\n"
    "discovery sources.\n";

static const char *s_or(const json_t *v, const char *dflt)
{
    const char *s = json_string_value(v);
    return s != NULL && s[0] != '\0' ? s : dflt;
}

static void proxies(const json_t *list)
{
    static const char *const header[] = { "PROXY", "ZONE", "NODE", "VERSION", "STATUS", "IN SYNC", "LAST SEEN", "ERROR" };
    json_t *rows = json_array(), *p;
    size_t i;

    json_array_foreach(list, i, p) {
        char seen[32];
        snprintf(seen, sizeof(seen), "%.0fs ago", json_number_value(json_object_get(p, "last_seen_seconds_ago")));
        json_array_append_new(rows, json_pack("[s,s,s,s,s,s,s,s]", s_or(json_object_get(p, "name"), "-"),
                                              s_or(json_object_get(p, "zone"), "-"), s_or(json_object_get(p, "node"), "-"),
                                              s_or(json_object_get(p, "version"), "-"),
                                              s_or(json_object_get(p, "status"), "-"),
                                              json_is_true(json_object_get(p, "in_sync")) ? "yes" : "no", seen,
                                              s_or(json_object_get(p, "error"), "-")));
    }
    if (json_array_size(rows) == 0)
        printf("no proxies polling\n");
    else
        gy_output_rows(stdout, header, 8, rows);
    json_decref(rows);
}

static void clusters(const json_t *list)
{
    static const char *const header[] = { "CLUSTER", "NAME", "INSTANCES", "STATIC", "DISCOVERED" };
    json_t *rows = json_array(), *c;
    size_t i;

    json_array_foreach(list, i, c) {
        char n[3][24];
        snprintf(n[0], sizeof(n[0]), "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(c, "instances")));
        snprintf(n[1], sizeof(n[1]), "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(c, "static_instances")));
        snprintf(n[2], sizeof(n[2]), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(c, "discovered_instances")));
        json_array_append_new(rows, json_pack("[s,s,s,s,s]", s_or(json_object_get(c, "cluster_key"), "-"),
                                              s_or(json_object_get(c, "name"), "-"), n[0], n[1], n[2]));
    }
    if (json_array_size(rows) == 0)
        printf("no clusters\n");
    else
        gy_output_rows(stdout, header, 5, rows);
    json_decref(rows);
}

int gy_cmd_status(int argc, char **argv)
{
    const char *url = NULL, *out = NULL;
    struct gy_flags f;
    struct gy_client c;

    gy_flags_init(&f, argc, argv, usage);
    while (gy_flags_next(&f)) {
        if (gy_flag_is(&f, "-o", "--output"))
            out = gy_flag_value(&f);
        else if (!gy_client_flag(&f, &url) && !gy_flags_common(&f))
            gy_flags_unknown(&f);
    }
    enum gy_output fmt = out ? gy_output_parse(out) : GY_OUT_TABLE;
    gy_client_init(&c, url);
    json_t *st = gy_client_result(&c, "GET", "/v1.0/status", NULL, 0);
    if (fmt == GY_OUT_JSON) {
        char *s = json_dumps(st, JSON_INDENT(2));
        printf("%s\n", s ? s : "null");
        free(s);
    } else if (fmt == GY_OUT_YAML) {
        gy_yaml_write(stdout, st);
    } else {
        json_t *objs = json_object_get(st, "objects"), *v;
        const char *k;
        json_int_t total = 0;
        json_object_foreach(objs, k, v)
            total += json_integer_value(v);
        printf("control plane %s: gyrus %s, store %s (%s), %" JSON_INTEGER_FORMAT " objects\n\n", c.base,
               s_or(json_object_get(st, "version"), "?"), s_or(json_object_get(json_object_get(st, "store"), "type"), "?"),
               s_or(json_object_get(json_object_get(st, "store"), "state"), "?"), total);
        proxies(json_object_get(st, "proxies"));
        printf("\n");
        clusters(json_object_get(st, "clusters"));
        size_t i;
        json_t *s, *disc = json_object_get(st, "discovery");
        if (json_array_size(disc) > 0) {
            static const char *const header[] = { "DISCOVERY SOURCE", "STATE" };
            json_t *rows = json_array();
            json_array_foreach(disc, i, s)
                json_array_append_new(rows, json_pack("[s,s]", s_or(json_object_get(s, "source"), "-"),
                                                      s_or(json_object_get(s, "state"), "-")));
            printf("\n");
            gy_output_rows(stdout, header, 2, rows);
            json_decref(rows);
        }
    }
    json_decref(st);
    gy_client_dispose(&c);
    return 0;
}
