/*
 * The config compiler, routes: a domain's routes sorted for matching, each with its rules in
 * precedence order (route rules → shared_rules rules → shared_rules default), matches,
 * light constraints, header operations, redirects and direct responses.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "mesh/compile_int.h"

/* ---- ordering ------------------------------------------------------------------------------ */

struct route_ref {
    const json_t *o;
    enum gy_path_match match_type;
    const char *path;
    size_t len;
    size_t pos;
};

static void route_path(const json_t *ro, enum gy_path_match *mt, const char **path)
{
    const json_t *m = json_object_get(ro, "route_match");
    const char *type = cc_str(m, "match_type", "prefix");

    *path = cc_str(m, "path", cc_str(ro, "path", "/"));
    if (strcmp(type, "exact") == 0)
        *mt = GY_PATH_EXACT;
    else if (strcmp(type, "regex") == 0)
        *mt = GY_PATH_REGEX;
    else
        *mt = GY_PATH_PREFIX;
}

/* nginx's order, which is what users of path routing expect: exact routes first, then regex
 * routes in file order, then prefix routes longest first; file order otherwise. */
static int route_rank(enum gy_path_match mt)
{
    return mt == GY_PATH_EXACT ? 0 : mt == GY_PATH_REGEX ? 1 : 2;
}

static int route_ref_cmp(const void *pa, const void *pb)
{
    const struct route_ref *a = pa, *b = pb;
    int ra = route_rank(a->match_type), rb = route_rank(b->match_type);

    if (ra != rb)
        return ra < rb ? -1 : 1;
    if (a->match_type == GY_PATH_PREFIX && a->len != b->len)
        return a->len > b->len ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* ---- rules --------------------------------------------------------------------------------- */

static uint32_t method_bit_ci(const char *m)
{
    static const char *const names[] = { "GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                         "CONNECT", "OPTIONS", "TRACE", "PATCH" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(m, names[i]) == 0)
            return 1u << i;
    return 0;
}

static int rule_methods(struct cc *cc, struct gy_rule *rule, const json_t *arr)
{
    size_t i, n = json_array_size(arr);
    const json_t *m;

    if (n == 0)
        return 0;
    json_array_foreach(arr, i, m)
    {
        const char *s = json_string_value(m) ? json_string_value(m) : "";
        uint32_t bit = method_bit_ci(s);
        if (bit != 0) {
            rule->methods |= bit;
            continue;
        }
        if (rule->extra_methods == NULL && (rule->extra_methods = cc_array(cc, n, sizeof(char *))) == NULL)
            return GY_ENOMEM;
        if ((rule->extra_methods[rule->nextra_methods++] = cc_strdup(cc, s)) == NULL)
            return GY_ENOMEM;
    }
    return 0;
}

static bool parse_i64(const char *s, const char *end, int64_t *out)
{
    char buf[32];
    size_t n;

    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    n = (size_t)(end - s);
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *e;
    errno = 0;
    long long v = strtoll(buf, &e, 10);
    if (errno != 0 || *e != '\0')
        return false;
    *out = v;
    return true;
}

/* "start,end": start <= value < end. */
static bool parse_range(const char *s, int64_t *start, int64_t *end)
{
    const char *comma = strchr(s, ',');
    return comma != NULL && parse_i64(s, comma, start) && parse_i64(comma + 1, comma + strlen(comma), end);
}

static int rule_match(struct cc *cc, struct gy_match *m, const json_t *mo, const char *what, const char *field)
{
    static const char *const kinds[] = { "header", "cookie", "query" };
    static const char *const behaviors[] = { "exact", "prefix", "suffix", "regex", "range" };
    const json_t *from = json_object_get(mo, "from");
    const char *kind = cc_str(mo, "kind", "header"), *behavior = cc_str(mo, "behavior", "exact");
    char f[200];

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(kind, kinds[i]) == 0)
            m->kind = (enum gy_match_kind)i;
    for (size_t i = 0; i < sizeof(behaviors) / sizeof(behaviors[0]); i++)
        if (strcmp(behavior, behaviors[i]) == 0)
            m->behavior = (enum gy_match_behavior)i;
    m->key = cc_strdup(cc, cc_str(from, "key", ""));
    m->value = cc_strdup(cc, cc_str(from, "value", ""));
    if (m->key == NULL || m->value == NULL)
        return GY_ENOMEM;
    snprintf(f, sizeof(f), "%s.from.value", field);
    if (m->behavior == GY_BEHAVIOR_REGEX)
        return cc_regex(cc, m->value, true, &m->re, what, f);
    if (m->behavior == GY_BEHAVIOR_RANGE && !parse_range(m->value, &m->range_start, &m->range_end))
        return cc_fail(cc, "%s: %s: range \"%s\" is not \"start,end\" (integers)", what, f, m->value);
    return 0;
}

/* The light constraints of an AllConstraints object {light[], dark[], tap[]}. */
static int rule_light(struct cc *cc, struct gy_rule *rule, const json_t *all, const char *what, const char *field)
{
    const json_t *light = json_object_get(all, "light"), *c;
    size_t i, n = json_array_size(light);
    uint64_t total = 0;
    int rc;

    if (n == 0)
        return 0;
    if ((rule->light = cc_array(cc, n, sizeof(*rule->light))) == NULL)
        return GY_ENOMEM;
    json_array_foreach(light, i, c)
    {
        struct gy_constraint *k = &rule->light[i];
        long long w = cc_int(c, "weight", 1);
        k->weight = w < 0 ? 0 : w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
        total += k->weight;
        if ((rc = cc_cluster(cc, cc_str(c, "cluster_key", ""), &k->cluster)) != 0 ||
            (rc = cc_kvs(cc, json_object_get(c, "metadata"), &k->metadata, &k->nmetadata)) != 0)
            return rc;
    }
    if (total > UINT32_MAX)
        return cc_fail(cc, "%s: %s.light: the weights add up to more than %u", what, field, UINT32_MAX);
    rule->nlight = n;
    rule->light_total_weight = (uint32_t)total;
    if ((rc = cc_constraint_list(cc, json_object_get(all, "dark"), &rule->dark, &rule->ndark)) != 0)
        return rc;
    return cc_constraint_list(cc, json_object_get(all, "tap"), &rule->tap, &rule->ntap);
}

static int build_rule(struct cc *cc, struct gy_rule *rule, const json_t *ro, const char *what, const char *field)
{
    const json_t *matches = json_object_get(ro, "matches"), *m;
    size_t i, n = json_array_size(matches);
    char f[160];
    int rc;

    if ((rc = rule_methods(cc, rule, json_object_get(ro, "methods"))) != 0)
        return rc;
    if (n > 0 && (rule->matches = cc_array(cc, n, sizeof(*rule->matches))) == NULL)
        return GY_ENOMEM;
    json_array_foreach(matches, i, m)
    {
        snprintf(f, sizeof(f), "%s.matches[%zu]", field, i);
        if ((rc = rule_match(cc, &rule->matches[i], m, what, f)) != 0)
            return rc;
    }
    rule->nmatches = n;
    if ((rc = cc_cohort(cc, json_object_get(ro, "cohort_seed"), &rule->cohort)) != 0)
        return rc;
    snprintf(f, sizeof(f), "%s.constraints", field);
    return rule_light(cc, rule, json_object_get(ro, "constraints"), what, f);
}

static int build_rule_list(struct cc *cc, struct gy_route *r, const json_t *arr, const char *what)
{
    const json_t *ro;
    size_t i;
    char f[48];
    int rc;

    json_array_foreach(arr, i, ro)
    {
        snprintf(f, sizeof(f), "rules[%zu]", i);
        if ((rc = build_rule(cc, &r->rules[r->nrules++], ro, what, f)) != 0)
            return rc;
    }
    return 0;
}

/* Route rules, then the shared_rules rules, then the shared_rules default (no methods or matches). */
static int route_rules(struct cc *cc, struct gy_route *r, const json_t *ro, const char *what)
{
    const char *srk = cc_str(ro, "shared_rules_key", NULL);
    if (srk != NULL && srk[0] == '\0')
        srk = NULL; /* Go exports write "" for "none" */
    const json_t *sr = srk != NULL ? json_object_get(cc->index[CC_SHARED_RULES], srk) : NULL;
    const json_t *rules = json_object_get(ro, "rules"), *srules = json_object_get(sr, "rules");
    const json_t *dflt = json_object_get(sr, "default");
    bool has_default = json_array_size(json_object_get(dflt, "light")) > 0;
    size_t n = json_array_size(rules) + json_array_size(srules) + (has_default ? 1 : 0);
    char srwhat[300];
    int rc;

    if (srk != NULL && sr == NULL)
        return cc_fail(cc, "%s: shared_rules_key: no shared_rules \"%s\"", what, srk);
    if (n == 0)
        return 0;
    if ((r->rules = cc_array(cc, n, sizeof(*r->rules))) == NULL)
        return GY_ENOMEM;
    snprintf(srwhat, sizeof(srwhat), "shared_rules \"%s\"", srk ? srk : "");
    size_t own = json_array_size(rules);
    if ((rc = build_rule_list(cc, r, rules, what)) != 0 || (rc = build_rule_list(cc, r, srules, srwhat)) != 0)
        return rc;
    if (has_default && (rc = rule_light(cc, &r->rules[r->nrules++], dflt, srwhat, "default")) != 0)
        return rc;
    /* Cohort seeds and retry policies: the rule's (route's) own, else the shared_rules'. */
    struct gy_cohort_seed route_seed = { 0 }, shared_seed = { 0 };
    if ((rc = cc_cohort(cc, json_object_get(ro, "cohort_seed"), &route_seed)) != 0 ||
        (rc = cc_cohort(cc, json_object_get(sr, "cohort_seed"), &shared_seed)) != 0)
        return rc;
    for (size_t i = 0; i < r->nrules; i++) {
        if (r->rules[i].cohort.type != GY_COHORT_NONE)
            continue;
        r->rules[i].cohort = i < own && route_seed.type != GY_COHORT_NONE ? route_seed : shared_seed;
    }
    if ((rc = cc_retry_policy(cc, json_object_get(ro, "retry_policy"), &r->retry, what)) != 0)
        return rc;
    if (r->retry == NULL)
        rc = cc_retry_policy(cc, json_object_get(sr, "retry_policy"), &r->retry, srwhat);
    return rc;
}

/* ---- route fields -------------------------------------------------------------------------- */

static int string_list_lower(struct cc *cc, const json_t *arr, char ***out, size_t *n)
{
    size_t i, cnt = json_array_size(arr);
    const json_t *s;

    if (cnt == 0)
        return 0;
    if ((*out = cc_array(cc, cnt, sizeof(char *))) == NULL)
        return GY_ENOMEM;
    json_array_foreach(arr, i, s)
    {
        if (((*out)[i] = cc_strdup_lower(cc, json_string_value(s) ? json_string_value(s) : "")) == NULL)
            return GY_ENOMEM;
    }
    *n = cnt;
    return 0;
}

static int direct_response(struct cc *cc, struct gy_route *r, const json_t *dr)
{
    if (!json_is_object(dr))
        return 0;
    if ((r->direct_response = cc_array(cc, 1, sizeof(*r->direct_response))) == NULL)
        return GY_ENOMEM;
    r->direct_response->status = (int)cc_int(dr, "status", 200);
    r->direct_response->body = cc_strdup(cc, cc_str(dr, "body", ""));
    if (r->direct_response->body == NULL)
        return GY_ENOMEM;
    r->direct_response->body_len = strlen(r->direct_response->body);
    return 0;
}

/* The first entry of an Envoy-shaped hash_policy[]. */
static int hash_policy(struct cc *cc, struct gy_route *r, const json_t *arr)
{
    const json_t *hp = json_array_get(arr, 0), *x;

    if ((x = json_object_get(hp, "header")) != NULL) {
        r->hash_policy.source = GY_HASH_HEADER;
        r->hash_policy.name = cc_strdup_lower(cc, cc_str(x, "header_name", ""));
    } else if ((x = json_object_get(hp, "cookie")) != NULL) {
        r->hash_policy.source = GY_HASH_COOKIE;
        r->hash_policy.name = cc_strdup(cc, cc_str(x, "name", ""));
    } else if ((x = json_object_get(hp, "connection_properties")) != NULL && cc_bool(x, "source_ip", false)) {
        r->hash_policy.source = GY_HASH_SOURCE_IP;
        return 0;
    } else {
        return 0;
    }
    return r->hash_policy.name == NULL ? GY_ENOMEM : 0;
}

static int route_headers(struct cc *cc, struct gy_route *r, const json_t *ro)
{
    int rc;

    if ((rc = cc_header_ops(cc, json_object_get(ro, "request_headers_to_add"), &r->request_headers_to_add,
                            &r->nrequest_headers_to_add)) != 0 ||
        (rc = cc_header_ops(cc, json_object_get(ro, "response_headers_to_add"), &r->response_headers_to_add,
                            &r->nresponse_headers_to_add)) != 0 ||
        (rc = string_list_lower(cc, json_object_get(ro, "request_headers_to_remove"), &r->request_headers_to_remove,
                                &r->nrequest_headers_to_remove)) != 0)
        return rc;
    return string_list_lower(cc, json_object_get(ro, "response_headers_to_remove"), &r->response_headers_to_remove,
                             &r->nresponse_headers_to_remove);
}

static int build_route(struct cc *cc, struct gy_route *r, const struct route_ref *ref)
{
    const json_t *ro = ref->o;
    const char *rewrite = cc_str(ro, "prefix_rewrite", NULL);
    char what[300];
    int rc;

    r->key = cc_strdup(cc, cc_str(ro, "route_key", ""));
    r->path = cc_strdup(cc, ref->path);
    if (r->key == NULL || r->path == NULL)
        return GY_ENOMEM;
    snprintf(what, sizeof(what), "route \"%s\"", r->key);
    r->match_type = ref->match_type;
    r->path_len = ref->len;
    if (r->match_type == GY_PATH_REGEX && (rc = cc_regex(cc, r->path, true, &r->re, what, "route_match.path")) != 0)
        return rc;
    if (rewrite != NULL && rewrite[0] != '\0' && (r->prefix_rewrite = cc_strdup(cc, rewrite)) == NULL)
        return GY_ENOMEM;
    if ((rc = cc_duration(cc, ro, "timeout", 15000, &r->timeout_ms, what)) != 0 ||
        (rc = cc_duration(cc, ro, "idle_timeout", 0, &r->idle_timeout_ms, what)) != 0 ||
        (rc = cc_duration(cc, ro, "max_stream_duration", 0, &r->max_stream_duration_ms, what)) != 0 ||
        (rc = route_headers(cc, r, ro)) != 0 ||
        (rc = cc_redirects(cc, json_object_get(ro, "redirects"), &r->redirects, &r->nredirects, what)) != 0 ||
        (rc = direct_response(cc, r, json_object_get(ro, "direct_response"))) != 0 ||
        (rc = hash_policy(cc, r, json_object_get(ro, "hash_policy"))) != 0)
        return rc;
    return route_rules(cc, r, ro, what);
}

int cc_vhost_routes(struct cc *cc, struct gy_vhost *v, const char *domain_key)
{
    const json_t *list = json_object_get(cc->routes_by_domain, domain_key), *ro;
    size_t i, n = json_array_size(list);
    struct route_ref *refs;
    int rc = 0;

    if (n == 0)
        return 0;
    if ((refs = calloc(n, sizeof(*refs))) == NULL || (v->routes = cc_array(cc, n, sizeof(*v->routes))) == NULL) {
        free(refs);
        return cc_nomem(cc);
    }
    json_array_foreach(list, i, ro)
    {
        refs[i].o = ro;
        refs[i].pos = i;
        route_path(ro, &refs[i].match_type, &refs[i].path);
        refs[i].len = strlen(refs[i].path);
    }
    qsort(refs, n, sizeof(*refs), route_ref_cmp);
    for (i = 0; i < n && rc == 0; i++)
        rc = build_route(cc, &v->routes[i], &refs[i]);
    v->nroutes = rc == 0 ? n : i;
    free(refs);
    return rc;
}
