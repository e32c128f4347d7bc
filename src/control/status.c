/* /ready, /metrics (Prometheus text), /v1.0/status and /v1.0/version of the control plane. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "control/control.h"
#include "control/discovery.h"
#include "core/time.h"

static const char *store_state(struct gy_control *ctl)
{
    return ctl->store_ops->state ? ctl->store_ops->state(ctl->store) : "ok";
}

static bool source_up(const struct ctl_source *s)
{
    return s->d != NULL && s->updates > 0;
}

void ctl_status_ready(struct gy_control *ctl, struct ctl_req *r)
{
    char buf[512];
    const char *st = store_state(ctl);
    int n;

    if (ctl->draining)
        n = snprintf(buf, sizeof(buf), "draining\n");
    else if (strcmp(st, "ok") != 0)
        n = snprintf(buf, sizeof(buf), "store %s: %s\n", ctl->store_ops->name, st);
    else
        n = snprintf(buf, sizeof(buf), "ready\n");
    ctl_respond_text(r, ctl->draining || strcmp(st, "ok") != 0 ? 503 : 200, "text/plain; charset=utf-8", buf,
                     (size_t)n);
}

static long rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * sysconf(_SC_PAGESIZE);
}

static double cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* A Prometheus label value: backslash, quote and newline escaped. */
static void label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f), fputc(*s, f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void metric(FILE *f, const char *name, const char *type, const char *help, unsigned long long v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

void ctl_status_metrics(struct gy_control *ctl, struct ctl_req *r)
{
    char *out = NULL;
    size_t len = 0, ninst = 0;
    FILE *f = open_memstream(&out, &len);
    const char *k;
    json_t *v;

    if (f == NULL) {
        ctl_respond_errorf(r, 500, "out of memory");
        return;
    }
    fprintf(f, "# HELP gyrus_control_objects Mesh objects in the store, by kind.\n# TYPE gyrus_control_objects gauge\n");
    for (int i = 0; i < CTL_NKINDS; i++)
        fprintf(f, "gyrus_control_objects{kind=\"%s\"} %zu\n", ctl_kind_name(i), ctl_mesh_count(ctl, i));
    metric(f, "gyrus_control_proxies_connected", "gauge", "Proxy nodes polling now (a poll parked or in the last 5 s).",
           ctl_xds_connected(ctl));
    metric(f, "gyrus_control_nodes", "gauge", "Proxy nodes seen in the last 10 minutes.", ctl->nodes.n);
    metric(f, "gyrus_control_views", "gauge", "Per-proxy views kept.", ctl->views.n);
    metric(f, "gyrus_control_polls_total", "counter", "xds polls received.", ctl->polls);
    metric(f, "gyrus_control_views_sent_total", "counter", "Views sent to proxies (200 answers to polls).",
           ctl->views_sent);
    metric(f, "gyrus_control_view_computes_total", "counter", "View computations.", ctl->view_computes);
    metric(f, "gyrus_control_acks_total", "counter", "Versions proxies reported applied.", ctl->acks);
    metric(f, "gyrus_control_nacks_total", "counter", "Versions proxies reported refused.", ctl->nacks);
    metric(f, "gyrus_control_writes_total", "counter", "Batches committed to the store.", ctl->writes);
    metric(f, "gyrus_control_store_errors_total", "counter", "Store operations that failed.", ctl->store_errors);
    fprintf(f, "# HELP gyrus_control_store_up 1 when the store answers.\n# TYPE gyrus_control_store_up gauge\n"
               "gyrus_control_store_up{store=\"%s\"} %d\n", ctl->store_ops->name,
            strcmp(store_state(ctl), "ok") == 0);
    metric(f, "gyrus_control_http_requests_total", "counter", "API requests.", ctl->requests);
    metric(f, "gyrus_control_auth_refused_total", "counter",
           "Requests refused 401 or 403 for want of an API key or a matching SVID (--api-key-file).", ctl->auth_refused);
    fprintf(f, "# HELP gyrus_control_discovery_source_up 1 when the source has reported.\n"
               "# TYPE gyrus_control_discovery_source_up gauge\n");
    for (size_t i = 0; i < ctl->nsources; i++) {
        fputs("gyrus_control_discovery_source_up{source=\"", f);
        label(f, ctl->sources[i].spec);
        fprintf(f, "\"} %d\n", source_up(&ctl->sources[i]));
    }
    fprintf(f, "# HELP gyrus_control_discovery_updates_total Snapshots received from a source.\n"
               "# TYPE gyrus_control_discovery_updates_total counter\n");
    for (size_t i = 0; i < ctl->nsources; i++) {
        fputs("gyrus_control_discovery_updates_total{source=\"", f);
        label(f, ctl->sources[i].spec);
        fprintf(f, "\"} %llu\n", (unsigned long long)ctl->sources[i].updates);
    }
    json_object_foreach(ctl->discovered, k, v)
        ninst += json_array_size(v);
    metric(f, "gyrus_control_discovered_instances", "gauge", "Instances known from discovery (all sources).", ninst);
    metric(f, "gyrus_control_uptime_seconds", "gauge", "Seconds since start.", (gy_now_ms() - ctl->started_ms) / 1000);
    fprintf(f, "# HELP process_cpu_seconds_total User and system CPU time.\n# TYPE process_cpu_seconds_total counter\n"
               "process_cpu_seconds_total %.3f\n", cpu_seconds());
    metric(f, "process_resident_memory_bytes", "gauge", "Resident memory.", (unsigned long long)rss_bytes());
    fclose(f);
    struct ctl_blob *b = ctl_blob_take(out, len);
    ctl_respond(r, b ? 200 : 500, "text/plain; version=0.0.4; charset=utf-8", b, NULL);
    ctl_blob_unref(b);
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static json_t *clusters_status(struct gy_control *ctl)
{
    size_t n = ctl_mesh_count(ctl, CTL_CLUSTER), i = 0;
    const char **keys = malloc((n ? n : 1) * sizeof(*keys)), *key;
    json_t *out = json_array(), *o;

    if (keys == NULL || out == NULL) {
        free(keys);
        return out;
    }
    json_object_foreach(ctl->objects[CTL_CLUSTER], key, o)
        keys[i++] = key;
    qsort(keys, n, sizeof(*keys), cmp_key);
    for (i = 0; i < n; i++) {
        o = json_object_get(ctl->objects[CTL_CLUSTER], keys[i]);
        const char *name = json_string_value(json_object_get(o, "name"));
        if (name == NULL || name[0] == '\0')
            name = keys[i];
        json_t *disc = json_object_get(ctl->discovered, name);
        size_t nstatic = json_array_size(json_object_get(o, "instances")), total = nstatic;
        if (disc != NULL) {
            json_t *all = ctl_cluster_instances(ctl, o);
            total = json_array_size(all);
            json_decref(all);
        }
        json_array_append_new(out, json_pack("{s:s,s:s,s:I,s:I,s:I}", "cluster_key", keys[i], "name", name,
                                             "static_instances", (json_int_t)nstatic, "discovered_instances",
                                             (json_int_t)json_array_size(disc), "instances", (json_int_t)total));
    }
    free(keys);
    return out;
}

void ctl_status_json(struct gy_control *ctl, struct ctl_req *r)
{
    json_t *objects = json_object(), *sources = json_array();

    for (int i = 0; i < CTL_NKINDS; i++)
        json_object_set_new(objects, ctl_kind_name(i), json_integer((json_int_t)ctl_mesh_count(ctl, i)));
    for (size_t i = 0; i < ctl->nsources; i++) {
        const struct ctl_source *s = &ctl->sources[i];
        json_array_append_new(sources, json_pack("{s:s,s:s,s:I,s:I}", "source", s->spec, "state",
                                                 s->d ? gy_discovery_state(s->d) : "stopped", "clusters",
                                                 (json_int_t)json_object_size(s->snapshot), "updates",
                                                 (json_int_t)s->updates));
    }
    ctl_respond_result(r, 200, json_pack("{s:s,s:{s:s,s:s},s:o,s:o,s:o,s:o}", "version", GY_VERSION, "store", "type",
                                         ctl->store_ops->name, "state", store_state(ctl), "objects", objects,
                                         "proxies", ctl_xds_status(ctl), "clusters", clusters_status(ctl),
                                         "discovery", sources));
}

void ctl_status_version(struct gy_control *ctl, struct ctl_req *r)
{
    ctl_respond_result(r, 200, json_pack("{s:s,s:s}", "version", GY_VERSION, "store", ctl->store_ops->name));
}
