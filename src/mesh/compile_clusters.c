/*
 * The config compiler, clusters: only those the proxy's routes reach, each built once on first
 * reference (index = position), instances resolved to socket addresses, rings built for
 * ring_hash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "mesh/compile_int.h"
#include "proxy/lb.h"

static enum gy_lb_policy parse_lb_policy(const char *s)
{
    if (strcmp(s, "least_request") == 0)
        return GY_LB_LEAST_REQUEST;
    if (strcmp(s, "random") == 0)
        return GY_LB_RANDOM;
    if (strcmp(s, "ring_hash") == 0 || strcmp(s, "maglev") == 0)
        return GY_LB_RING_HASH;
    return GY_LB_ROUND_ROBIN;
}

static int build_instances(struct cc *cc, struct gy_cluster *c, const json_t *arr)
{
    size_t i, n = json_array_size(arr);
    const json_t *io;
    const char *why = NULL;
    int rc;

    if (n == 0)
        return 0;
    if ((c->instances = cc_array(cc, n, sizeof(*c->instances))) == NULL)
        return GY_ENOMEM;
    json_array_foreach(arr, i, io)
    {
        struct gy_instance *in = &c->instances[i];
        long long w = cc_int(io, "weight", 1);
        in->host = cc_strdup(cc, cc_str(io, "host", ""));
        if (in->host == NULL)
            return GY_ENOMEM;
        in->port = (uint16_t)cc_int(io, "port", 0);
        in->weight = w < 1 ? 1 : w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
        if ((rc = cc_kvs(cc, json_object_get(io, "metadata"), &in->metadata, &in->nmetadata)) != 0)
            return rc;
        if (cc_resolve(in->host, in->port, &in->addr, &in->addrlen, &why) != 0)
            return cc_fail(cc, "cluster \"%s\": instances[%zu].host: cannot resolve \"%s\": %s", c->key, i, in->host,
                           why);
    }
    c->ninstances = n;
    return 0;
}

static void ring_free(void *p)
{
    struct gy_cluster *c = p;

    free(c->ring_hashes);
    free(c->ring_hosts);
    c->ring_hashes = NULL;
    c->ring_hosts = NULL;
}

static int build_cluster(struct cc *cc, struct gy_cluster *c, const json_t *co)
{
    char what[300];
    long long v;
    int rc;

    c->key = cc_strdup(cc, cc_str(co, "cluster_key", ""));
    c->name = cc_strdup(cc, cc_str(co, "name", c->key ? c->key : ""));
    if (c->key == NULL || c->name == NULL)
        return GY_ENOMEM;
    snprintf(what, sizeof(what), "cluster \"%s\"", c->key);
    c->lb_policy = parse_lb_policy(cc_str(co, "lb_policy", "round_robin"));
    v = cc_int(json_object_get(co, "least_request_lb_config"), "choice_count", 2);
    c->choice_count = v < 1 ? 1 : v > 64 ? 64 : (uint32_t)v;
    v = cc_int(json_object_get(co, "ring_hash_lb_config"), "minimum_ring_size", 1024);
    c->ring_size = v < 1 ? 1 : v > (1 << 23) ? (1u << 23) : (uint32_t)v;
    v = cc_int(co, "max_idle_connections_per_host", 64);
    c->max_idle_per_host = v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    c->http2 = json_is_object(json_object_get(co, "http2_protocol_options"));
    c->use_downstream_protocol = strcmp(cc_str(co, "protocol_selection", ""), "USE_DOWNSTREAM_PROTOCOL") == 0;
    cc_http2_options(json_object_get(co, "http2_protocol_options"), &c->h2, 65536);
    if ((rc = cc_duration(cc, co, "connect_timeout", 5000, &c->connect_timeout_ms, what)) != 0 ||
        (rc = cc_duration(cc, co, "idle_timeout", 60000, &c->idle_timeout_ms, what)) != 0 ||
        (rc = build_instances(cc, c, json_object_get(co, "instances"))) != 0 ||
        (rc = cc_cluster_resilience(cc, c, co)) != 0)
        return rc;
    if (c->lb_policy != GY_LB_RING_HASH)
        return 0;
    if ((rc = cc_cleanup_add(cc, ring_free, c)) != 0)
        return rc;
    return gy_lb_build_ring(c) == 0 ? 0 : cc_nomem(cc);
}

int cc_cluster(struct cc *cc, const char *cluster_key, struct gy_cluster **out)
{
    struct gy_config *cfg = cc->cfg;
    const json_t *pos = json_object_get(cc->cluster_pos, cluster_key);

    if (pos != NULL) {
        *out = &cfg->clusters[json_integer_value(pos)];
        return 0;
    }
    const json_t *co = json_object_get(cc->index[CC_CLUSTER], cluster_key);
    if (co == NULL || cfg->nclusters >= cc->clusters_cap)
        return cc_fail(cc, "proxy \"%s\": no cluster \"%s\"", cfg->proxy_name, cluster_key);
    size_t idx = cfg->nclusters++;
    struct gy_cluster *c = &cfg->clusters[idx];
    c->index = (unsigned)idx;
    if (json_object_set_new(cc->cluster_pos, cluster_key, json_integer((json_int_t)idx)) != 0)
        return cc_nomem(cc);
    *out = c;
    return build_cluster(cc, c, co);
}
