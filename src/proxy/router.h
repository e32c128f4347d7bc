/*
 * Routing: listener → virtual host (domain) → route → rule → constraint → cluster.
 * Pure functions over the compiled config; no allocation, no I/O.
 */
#ifndef GY_PROXY_ROUTER_H
#define GY_PROXY_ROUTER_H

#include <stdint.h>

#include "http/header.h"
#include "mesh/config.h"

struct gy_route_request {
    struct gy_slice method;
    struct gy_slice host;            /* Host header (may carry ":port"; matched case-insensitively) */
    struct gy_slice path;            /* path without the query */
    struct gy_slice query;           /* without '?' */
    const struct gy_header *headers;
    size_t nheaders;
    bool tls;                        /* the downstream connection is TLS (for force_https) */
    uint64_t random;                 /* uniformly random, picks among weighted light constraints */
};

enum gy_route_action {
    GY_ROUTE_NOT_FOUND,   /* no virtual host or no route or no rule matched: answer 404 (flag NR) */
    GY_ROUTE_CLUSTER,     /* forward to result.cluster */
    GY_ROUTE_REDIRECT,    /* answer result.status with Location: result.location */
    GY_ROUTE_DIRECT,      /* answer route->direct_response */
};

struct gy_route_result {
    enum gy_route_action action;
    const struct gy_vhost *vhost;
    const struct gy_route *route;
    const struct gy_rule *rule;
    const struct gy_constraint *constraint;
    const struct gy_cluster *cluster;
    struct gy_slice path;            /* path to send upstream (after prefix_rewrite), in `buf` or the request */
    int status;                      /* redirect status */
    struct gy_slice location;        /* redirect target, in `buf` */
};

/*
 * Routes a request arriving on listener `l`. `buf` (bufcap bytes, >= 8 KiB recommended) holds a
 * rewritten path or redirect location; if it is too small the request is not routed (NOT_FOUND
 * is not returned for that: GY_ETOOBIG is). Returns 0 with *res filled, or GY_ETOOBIG.
 * Redirects of the domain (and force_https) are checked before routes, then the route's own.
 */
int gy_router_route(const struct gy_listener *l, const struct gy_route_request *req, struct gy_route_result *res,
                    char *buf, size_t bufcap);

/* Matches a host (no port, any case) against a virtual host's name and aliases. */
bool gy_router_host_matches(const struct gy_vhost *v, struct gy_slice host);

/* Parses a method into its GY_METHOD_* bit, 0 if it has none. */
uint32_t gy_method_bit(struct gy_slice method);

#endif
