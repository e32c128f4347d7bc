/*
 * The config compiler, resilience: retry policies, circuit breakers, retry budgets, outlier
 * detection, active health checks, shadow (dark) and tap constraints, cohort seeds.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "mesh/compile_int.h"

static uint32_t u32(long long v)
{
    return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* ---- constraints and cohorts ---- */

/* dark[] / tap[]: clusters and optional metadata subsets (weights do not matter). */
int cc_constraint_list(struct cc *cc, const json_t *arr, struct gy_constraint **out, size_t *n)
{
    const json_t *c;
    size_t i, cnt = json_array_size(arr);
    int rc;

    if (cnt == 0)
        return 0;
    if ((*out = cc_array(cc, cnt, sizeof(**out))) == NULL)
        return GY_ENOMEM;
    json_array_foreach(arr, i, c)
    {
        struct gy_constraint *k = &(*out)[i];
        k->weight = u32(cc_int(c, "weight", 1));
        if ((rc = cc_cluster(cc, cc_str(c, "cluster_key", ""), &k->cluster)) != 0 ||
            (rc = cc_kvs(cc, json_object_get(c, "metadata"), &k->metadata, &k->nmetadata)) != 0)
            return rc;
    }
    *n = cnt;
    return 0;
}

int cc_cohort(struct cc *cc, const json_t *o, struct gy_cohort_seed *out)
{
    const char *type = cc_str(o, "type", NULL);

    if (!json_is_object(o) || type == NULL)
        return 0;
    out->type = strcmp(type, "header") == 0   ? GY_COHORT_HEADER
                : strcmp(type, "cookie") == 0 ? GY_COHORT_COOKIE
                                              : GY_COHORT_QUERY;
    out->name = out->type == GY_COHORT_HEADER ? cc_strdup_lower(cc, cc_str(o, "name", ""))
                                              : cc_strdup(cc, cc_str(o, "name", ""));
    out->use_zero_value_seed = cc_bool(o, "use_zero_value_seed", false);
    return out->name == NULL ? GY_ENOMEM : 0;
}

/* ---- retry policy ---- */

static const struct {
    const char *name;
    uint32_t bit;
} retry_conditions[] = {
    { "5xx", GY_RETRY_5XX },
    { "gateway-error", GY_RETRY_GATEWAY_ERROR },
    { "reset", GY_RETRY_RESET },
    { "connect-failure", GY_RETRY_CONNECT_FAILURE },
    { "retriable-4xx", GY_RETRY_RETRIABLE_4XX },
    { "refused-stream", GY_RETRY_REFUSED_STREAM },
    { "retriable-status-codes", GY_RETRY_STATUS_CODES },
    { "cancelled", GY_RETRY_GRPC_CANCELLED },
    { "deadline-exceeded", GY_RETRY_GRPC_DEADLINE_EXCEEDED },
    { "internal", GY_RETRY_GRPC_INTERNAL },
    { "resource-exhausted", GY_RETRY_GRPC_RESOURCE_EXHAUSTED },
    { "unavailable", GY_RETRY_GRPC_UNAVAILABLE },
};

static uint32_t parse_retry_on(const char *s)
{
    uint32_t bits = 0;

    while (*s) {
        while (*s == ',' || isspace((unsigned char)*s))
            s++;
        size_t n = strcspn(s, ", \t");
        for (size_t i = 0; i < sizeof(retry_conditions) / sizeof(retry_conditions[0]); i++)
            if (strlen(retry_conditions[i].name) == n && strncmp(retry_conditions[i].name, s, n) == 0)
                bits |= retry_conditions[i].bit;
        s += n;
    }
    return bits;
}

int cc_retry_policy(struct cc *cc, const json_t *rp, struct gy_retry_policy **out, const char *what)
{
    struct gy_retry_policy *p;
    const json_t *codes = json_object_get(rp, "retriable_status_codes"), *bo = json_object_get(rp, "retry_back_off");
    int rc;

    if (!json_is_object(rp))
        return 0;
    if ((p = cc_array(cc, 1, sizeof(*p))) == NULL)
        return GY_ENOMEM;
    p->num_retries = u32(cc_int(rp, "num_retries", 1));
    p->per_try_timeout_ms = u32(cc_int(rp, "per_try_timeout_msec", 0));
    p->timeout_ms = u32(cc_int(rp, "timeout_msec", 0));
    p->retry_on = parse_retry_on(cc_str(rp, "retry_on", ""));
    p->max_request_bytes = u32(cc_int(rp, "max_request_bytes", 65536));
    if (json_is_integer(codes))
        codes = json_pack("[O]", codes); /* one code in place of a list */
    else
        json_incref((json_t *)codes);
    size_t n = json_array_size(codes);
    if (n > 0 && (p->status_codes = cc_array(cc, n, sizeof(*p->status_codes))) == NULL) {
        json_decref((json_t *)codes);
        return GY_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        p->status_codes[i] = (uint16_t)json_integer_value(json_array_get(codes, i));
    p->nstatus_codes = n;
    json_decref((json_t *)codes);
    if ((rc = cc_duration(cc, bo, "base_interval", 25, &p->backoff_base_ms, what)) != 0 ||
        (rc = cc_duration(cc, bo, "max_interval", p->backoff_base_ms * 10, &p->backoff_max_ms, what)) != 0)
        return rc;
    if (p->backoff_base_ms == 0)
        p->backoff_base_ms = 1;
    if (p->backoff_max_ms < p->backoff_base_ms)
        p->backoff_max_ms = p->backoff_base_ms;
    *out = p;
    return 0;
}

/* ---- clusters ---- */

static void circuit_breakers(struct gy_cluster *c, const json_t *o)
{
    c->cb.max_connections = u32(cc_int(o, "max_connections", 1024));
    c->cb.max_pending_requests = u32(cc_int(o, "max_pending_requests", 1024));
    c->cb.max_requests = u32(cc_int(o, "max_requests", 1024));
    c->cb.max_retries = u32(cc_int(o, "max_retries", 3));
}

static void outlier(struct gy_cluster *c, const json_t *o)
{
    struct gy_outlier_detection *od = &c->outlier;

    od->enabled = json_is_object(o);
    od->interval_ms = u32(cc_int(o, "interval_msec", 10000));
    od->base_ejection_ms = u32(cc_int(o, "base_ejection_time_msec", 30000));
    od->max_ejection_percent = u32(cc_int(o, "max_ejection_percent", 10));
    od->consecutive_5xx = u32(cc_int(o, "consecutive_5xx", 5));
    od->enforcing_5xx = u32(cc_int(o, "enforcing_consecutive_5xx", 100));
    od->consecutive_gateway = u32(cc_int(o, "consecutive_gateway_failure", 5));
    od->enforcing_gateway = u32(cc_int(o, "enforcing_consecutive_gateway_failure", 0));
    od->sr_minimum_hosts = u32(cc_int(o, "success_rate_minimum_hosts", 5));
    od->sr_request_volume = u32(cc_int(o, "success_rate_request_volume", 100));
    od->sr_stdev_factor = u32(cc_int(o, "success_rate_stdev_factor", 1900));
    od->enforcing_sr = u32(cc_int(o, "enforcing_success_rate", 100));
    if (od->interval_ms == 0)
        od->interval_ms = 10000;
}

static int hex_decode(struct cc *cc, const char *hex, uint8_t **out, size_t *len)
{
    size_t n = strlen(hex) / 2;

    *len = n;
    if (n == 0)
        return 0;
    if ((*out = cc_array(cc, n, 1)) == NULL)
        return GY_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return cc_fail(cc, "bad hex \"%s\"", hex);
        (*out)[i] = (uint8_t)v;
    }
    return 0;
}

static int health_tcp(struct cc *cc, struct gy_health_check *h, const json_t *t)
{
    const json_t *recv = json_object_get(t, "receive"), *r;
    size_t i, n = json_array_size(recv);
    int rc;

    h->kind = GY_HC_TCP;
    if ((rc = hex_decode(cc, cc_str(t, "send", ""), &h->send, &h->send_len)) != 0)
        return rc;
    if (n == 0)
        return 0;
    if ((h->receive = cc_array(cc, n, sizeof(*h->receive))) == NULL ||
        (h->receive_len = cc_array(cc, n, sizeof(*h->receive_len))) == NULL)
        return GY_ENOMEM;
    json_array_foreach(recv, i, r)
    {
        if ((rc = hex_decode(cc, json_string_value(r) ? json_string_value(r) : "", &h->receive[i],
                             &h->receive_len[i])) != 0)
            return rc;
    }
    h->nreceive = n;
    return 0;
}

static int health_http(struct cc *cc, struct gy_health_check *h, const json_t *t, const struct gy_cluster *c)
{
    const json_t *exp = json_object_get(t, "expected_statuses"), *e;
    size_t i, n = json_array_size(exp);

    h->kind = GY_HC_HTTP;
    h->path = cc_strdup(cc, cc_str(t, "path", "/"));
    h->host = cc_strdup(cc, cc_str(t, "host", c->name));
    if (h->path == NULL || h->host == NULL)
        return GY_ENOMEM;
    if (cc_str(t, "service_name", NULL) != NULL && (h->service_name = cc_strdup(cc, cc_str(t, "service_name", ""))) == NULL)
        return GY_ENOMEM;
    int rc = cc_header_ops(cc, json_object_get(t, "request_headers_to_add"), &h->headers, &h->nheaders);
    if (rc != 0)
        return rc;
    if (n == 0) {
        if ((h->expected = cc_array(cc, 1, sizeof(*h->expected))) == NULL)
            return GY_ENOMEM;
        h->expected[0] = (struct gy_status_range){ 200, 400 };
        h->nexpected = 1;
        return 0;
    }
    if ((h->expected = cc_array(cc, n, sizeof(*h->expected))) == NULL)
        return GY_ENOMEM;
    json_array_foreach(exp, i, e)
    {
        h->expected[i].start = (uint16_t)cc_int(e, "start", 200);
        h->expected[i].end = (uint16_t)cc_int(e, "end", h->expected[i].start + 1);
    }
    h->nexpected = n;
    return 0;
}

static int health_grpc(struct cc *cc, struct gy_health_check *h, const json_t *t, const struct gy_cluster *c)
{
    h->kind = GY_HC_GRPC;
    h->service_name = cc_strdup(cc, cc_str(t, "service_name", ""));
    h->authority = cc_strdup(cc, cc_str(t, "authority", c->name));
    return h->service_name == NULL || h->authority == NULL ? GY_ENOMEM : 0;
}

static int health_checks(struct cc *cc, struct gy_cluster *c, const json_t *arr)
{
    const json_t *o;
    size_t i, n = json_array_size(arr);
    int rc;

    if (n == 0)
        return 0;
    if ((c->health_checks = cc_array(cc, n, sizeof(*c->health_checks))) == NULL)
        return GY_ENOMEM;
    json_array_foreach(arr, i, o)
    {
        struct gy_health_check *h = &c->health_checks[i];
        const json_t *hc = json_object_get(o, "health_checker"), *t;
        h->timeout_ms = u32(cc_int(o, "timeout_msec", 1000));
        h->interval_ms = u32(cc_int(o, "interval_msec", 5000));
        h->jitter_ms = u32(cc_int(o, "interval_jitter_msec", 0));
        h->unhealthy_threshold = u32(cc_int(o, "unhealthy_threshold", 3));
        h->healthy_threshold = u32(cc_int(o, "healthy_threshold", 2));
        if (h->interval_ms == 0)
            h->interval_ms = 5000;
        h->unhealthy_interval_ms = u32(cc_int(o, "unhealthy_interval_msec", h->interval_ms));
        if (h->unhealthy_interval_ms == 0)
            h->unhealthy_interval_ms = h->interval_ms;
        h->unhealthy_edge_ms = u32(cc_int(o, "unhealthy_edge_interval_msec", h->unhealthy_interval_ms));
        if (h->unhealthy_edge_ms == 0)
            h->unhealthy_edge_ms = h->unhealthy_interval_ms;
        h->healthy_edge_ms = u32(cc_int(o, "healthy_edge_interval_msec", h->interval_ms));
        if (h->healthy_edge_ms == 0)
            h->healthy_edge_ms = h->interval_ms;
        h->reuse = cc_bool(o, "reuse_connection", true);
        h->no_traffic_ms = u32(cc_int(o, "no_traffic_interval_msec", 0));
        if (h->timeout_ms == 0)
            h->timeout_ms = 1000;
        if (h->unhealthy_threshold == 0)
            h->unhealthy_threshold = 1;
        if (h->healthy_threshold == 0)
            h->healthy_threshold = 1;
        if ((t = json_object_get(hc, "tcp_health_check")) != NULL)
            rc = health_tcp(cc, h, t);
        else if ((t = json_object_get(hc, "grpc_health_check")) != NULL)
            rc = health_grpc(cc, h, t, c);
        else
            rc = health_http(cc, h, json_object_get(hc, "http_health_check"), c);
        if (rc != 0)
            return rc;
    }
    c->nhealth_checks = n;
    return 0;
}

int cc_cluster_resilience(struct cc *cc, struct gy_cluster *c, const json_t *co)
{
    const json_t *budget = json_object_get(co, "retry_budget");
    const json_t *panic = json_object_get(json_object_get(co, "common_lb_config"), "healthy_panic_threshold");

    circuit_breakers(c, json_object_get(co, "circuit_breakers"));
    outlier(c, json_object_get(co, "outlier_detection"));
    c->retry_budget.percent = u32(cc_int(budget, "budget_percent", 20));
    c->retry_budget.min_concurrency = u32(cc_int(budget, "min_retry_concurrency", 3));
    c->panic_threshold = 50;
    if (json_is_number(json_object_get(panic, "value")))
        c->panic_threshold = u32((long long)json_number_value(json_object_get(panic, "value")));
    return health_checks(cc, c, json_object_get(co, "health_checks"));
}
