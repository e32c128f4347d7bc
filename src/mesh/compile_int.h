/*
 * Private to the config compiler (compile.c, compile_routes.c, compile_clusters.c).
 *
 * Everything a compiled config owns lives in one arena (chunks of memory freed together) plus
 * a list of cleanup handlers for what the arena cannot hold (PCRE2 codes, whose JIT memory is
 * mapped by PCRE2 itself), like nginx's pool cleanups.
 */
#ifndef GY_MESH_COMPILE_INT_H
#define GY_MESH_COMPILE_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "mesh/config.h"

struct cc_chunk;
struct cc_cleanup;

struct cc_arena {
    struct cc_chunk *chunks;
    struct cc_cleanup *cleanups;
};

/* A config and the arena that holds everything it points to (gy_config_unref frees both). */
struct config_impl {
    struct gy_config pub;
    struct cc_arena arena;
};

/* Runs the cleanups, then frees every chunk. */
void cc_arena_dispose(struct cc_arena *a);

enum cc_kind { CC_ZONE, CC_PROXY, CC_LISTENER, CC_DOMAIN, CC_ROUTE, CC_SHARED_RULES, CC_CLUSTER, CC_NKINDS };

/* The state of one gy_config_compile() call. */
struct cc {
    struct cc_arena *arena;
    struct gy_config *cfg;
    struct gy_mesh_error *err;
    json_t *index[CC_NKINDS]; /* per kind: key → object */
    json_t *routes_by_domain; /* domain_key → array of routes, in file order */
    json_t *vhost_pos;        /* domain_key → index in cfg->vhosts */
    json_t *cluster_pos;      /* cluster_key → index in cfg->clusters */
    size_t vhosts_cap, clusters_cap;
};

/* Zeroed memory from the config's arena; NULL (and *err set) when out of memory or n == 0. */
void *cc_array(struct cc *cc, size_t n, size_t size);
char *cc_strdup(struct cc *cc, const char *s);       /* NULL stays NULL */
char *cc_strdup_lower(struct cc *cc, const char *s); /* ASCII lower-case copy */
/* Registers fn(p) to run when the config is freed. */
int cc_cleanup_add(struct cc *cc, void (*fn)(void *), void *p);

/* Sets *err and returns GY_ECONFIG. */
int cc_fail(struct cc *cc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets *err to "out of memory" and returns GY_ENOMEM. */
int cc_nomem(struct cc *cc);

/* Field readers with defaults (types are guaranteed by the validator). */
const char *cc_str(const json_t *o, const char *field, const char *def);
long long cc_int(const json_t *o, const char *field, long long def);
bool cc_bool(const json_t *o, const char *field, bool def);
/* Reads a duration field into ms (default `def` when absent); error names `what` and the field. */
int cc_duration(struct cc *cc, const json_t *o, const char *field, uint32_t def, uint32_t *ms, const char *what);
/* Compiles a regex (JIT when available) owned by the config; `anchored`: must match the whole subject. */
int cc_regex(struct cc *cc, const char *pattern, bool anchored, struct pcre2_real_code_8 **out, const char *what,
             const char *field);
/* Resolves host:port (numeric first, then getaddrinfo). On failure returns the gai message in *why. */
int cc_resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len, const char **why);

/* Lists of {key,value}. */
int cc_kvs(struct cc *cc, const json_t *arr, struct gy_kv **out, size_t *n);
/* Grey Matter redirects[{name, from, to, redirect_type}]. */
int cc_redirects(struct cc *cc, const json_t *arr, struct gy_redirect **out, size_t *n, const char *what);
/* Header operations: {key,value} (replace) or Envoy's {header:{key,value}, append}. */
int cc_header_ops(struct cc *cc, const json_t *arr, struct gy_header_op **out, size_t *n);

/* http2_protocol_options (absent: all defaults). */
void cc_http2_options(const json_t *o, struct gy_http2_options *h, uint32_t max_header_list_size);

/* Resilience (compile_resilience.c). */
int cc_constraint_list(struct cc *cc, const json_t *arr, struct gy_constraint **out, size_t *n);
int cc_cohort(struct cc *cc, const json_t *o, struct gy_cohort_seed *out);
int cc_retry_policy(struct cc *cc, const json_t *rp, struct gy_retry_policy **out, const char *what);
int cc_cluster_resilience(struct cc *cc, struct gy_cluster *c, const json_t *co);

/* Builds the routes of a domain into v (compile_routes.c). */
int cc_vhost_routes(struct cc *cc, struct gy_vhost *v, const char *domain_key);
/* The compiled cluster for cluster_key, built on first use (compile_clusters.c). */
int cc_cluster(struct cc *cc, const char *cluster_key, struct gy_cluster **out);

#endif
