/*
 * Routing over the compiled config (router.h): listener → virtual host → route → rule → light
 * constraint → cluster. Pure: no allocation, no I/O, no shared mutable state.
 *
 * PCRE2 needs match data (and, without JIT, backtracking frames) for every match. They come
 * from a bump arena on the stack of the one function that runs a regex, through a PCRE2
 * general context, so matching never touches the heap; the arena and a match limit bound the
 * work a hostile input can cause.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "proxy/lb.h"
#include "proxy/router.h"

#define RE_OVEC 10                 /* $0..$9 */
#define RE_ARENA_SIZE (24 * 1024)  /* match data, plus the interpreter's first frame vector (20 KiB) */
#define RE_MATCH_LIMIT 100000      /* pcre2_set_match_limit: against catastrophic backtracking */
#define RE_DEPTH_LIMIT 1000

/* ---- regex matching without the heap -------------------------------------------------------- */

struct re_arena {
    size_t used;
    _Alignas(16) unsigned char mem[RE_ARENA_SIZE];
};

static void *re_alloc(PCRE2_SIZE n, void *data)
{
    struct re_arena *a = data;
    size_t need = ((size_t)n + 15u) & ~(size_t)15u;

    if (need > sizeof(a->mem) - a->used)
        return NULL;
    void *p = a->mem + a->used;
    a->used += need;
    return p;
}

static void re_free(void *p, void *data)
{
    (void)p;
    (void)data;
}

/* Runs `re` on s. Returns the number of ovector pairs set (> 0) on a match and copies them to
 * ov (2 * RE_OVEC entries) if not NULL; 0 on no match or when a limit was hit. */
static int re_exec(const pcre2_code *re, struct gy_slice s, PCRE2_SIZE *ov)
{
    struct re_arena arena;
    pcre2_general_context *g;
    pcre2_match_context *mc;
    pcre2_match_data *md;
    int rc;

    arena.used = 0;
    if ((g = pcre2_general_context_create(re_alloc, re_free, &arena)) == NULL ||
        (mc = pcre2_match_context_create(g)) == NULL || (md = pcre2_match_data_create(RE_OVEC, g)) == NULL)
        return 0;
    pcre2_set_match_limit(mc, RE_MATCH_LIMIT);
    pcre2_set_depth_limit(mc, RE_DEPTH_LIMIT);
    rc = pcre2_match(re, (PCRE2_SPTR)(s.ptr != NULL ? s.ptr : ""), s.len, 0, 0, md, mc);
    if (rc < 0)
        return 0;
    if (rc == 0) /* more groups than the ovector holds: still a match */
        rc = RE_OVEC;
    if (ov != NULL)
        memcpy(ov, pcre2_get_ovector_pointer(md), 2 * (size_t)rc * sizeof(PCRE2_SIZE));
    return rc;
}

/* ---- small helpers ------------------------------------------------------------------------- */

uint32_t gy_method_bit(struct gy_slice m)
{
    static const char *const names[] = { "GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                         "CONNECT", "OPTIONS", "TRACE", "PATCH" };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (gy_slice_eq(m, gy_slice_cstr(names[i]))) /* methods are case-sensitive */
            return 1u << i;
    return 0;
}

/* "host:port" → "host"; "[v6]:port" → "[v6]". */
static struct gy_slice strip_port(struct gy_slice h)
{
    if (h.len > 0 && h.ptr[0] == '[') {
        const char *rb = memchr(h.ptr, ']', h.len);
        return rb != NULL ? gy_slice(h.ptr, (size_t)(rb - h.ptr) + 1) : h;
    }
    const char *colon = memchr(h.ptr != NULL ? h.ptr : "", ':', h.len);
    return colon != NULL ? gy_slice(h.ptr, (size_t)(colon - h.ptr)) : h;
}

/* Bounded writer into the caller's buffer. */
struct out {
    char *p;
    size_t len, cap;
    bool overflow;
};

static void out_put(struct out *o, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (n > o->cap - o->len) {
        o->overflow = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

/* ---- virtual hosts ------------------------------------------------------------------------- */

/* How well one name matches: exact > longest suffix > longest prefix > "*"; 0 = no match. */
static uint64_t name_score(enum gy_host_match m, const char *pat, size_t plen, struct gy_slice host)
{
    switch (m) {
    case GY_HOST_EXACT:
        return host.len == plen && plen > 0 && strncasecmp(host.ptr, pat, plen) == 0 ? 4ull << 32 : 0;
    case GY_HOST_SUFFIX:
        return host.len > plen && strncasecmp(host.ptr + host.len - plen, pat, plen) == 0 ? (3ull << 32) | plen : 0;
    case GY_HOST_PREFIX:
        return host.len > plen && strncasecmp(host.ptr, pat, plen) == 0 ? (2ull << 32) | plen : 0;
    case GY_HOST_ANY:
    default:
        return 1ull << 32;
    }
}

static uint64_t vhost_score(const struct gy_vhost *v, struct gy_slice host)
{
    uint64_t best = name_score(v->match, v->pattern, v->pattern_len, host);

    for (size_t i = 0; i < v->naliases; i++) {
        uint64_t s = name_score(v->alias_match[i], v->alias_pattern[i], strlen(v->alias_pattern[i]), host);
        if (s > best)
            best = s;
    }
    return best;
}

bool gy_router_host_matches(const struct gy_vhost *v, struct gy_slice host)
{
    return vhost_score(v, host) != 0;
}

/* The best match over every name and alias; on a tie the first in the listener's order. An
 * absent Host matches only "*". */
static const struct gy_vhost *find_vhost(const struct gy_listener *l, struct gy_slice host)
{
    const struct gy_vhost *best = NULL;
    uint64_t best_score = 0;

    for (size_t i = 0; i < l->nvhosts; i++) {
        uint64_t s = vhost_score(l->vhosts[i], host);
        if (s > best_score) {
            best_score = s;
            best = l->vhosts[i];
        }
    }
    return best;
}

/* ---- redirects ----------------------------------------------------------------------------- */

/* The request's "path?query" (the redirect subject): the request bytes when path and query are
 * adjacent, else a copy at the end of buf, which then shrinks. */
static int redirect_subject(const struct gy_route_request *req, char *buf, size_t *bufcap, struct gy_slice *subj)
{
    if (req->query.len == 0) {
        *subj = req->path;
        return 0;
    }
    if (req->path.ptr != NULL && req->query.ptr == req->path.ptr + req->path.len + 1 &&
        req->path.ptr[req->path.len] == '?') {
        *subj = gy_slice(req->path.ptr, req->path.len + 1 + req->query.len);
        return 0;
    }
    size_t n = req->path.len + 1 + req->query.len;
    if (n > *bufcap)
        return GY_ETOOBIG;
    char *p = buf + *bufcap - n;
    memcpy(p, req->path.ptr, req->path.len);
    p[req->path.len] = '?';
    memcpy(p + req->path.len + 1, req->query.ptr, req->query.len);
    *bufcap -= n;
    *subj = gy_slice(p, n);
    return 0;
}

/* `to` with $0..$9 replaced by the groups of the match. */
static void expand_to(const char *to, struct gy_slice subj, const PCRE2_SIZE *ov, int n, struct out *o)
{
    for (const char *p = to; *p != '\0'; p++) {
        if (p[0] == '$' && p[1] >= '0' && p[1] <= '9') {
            int g = *++p - '0';
            if (g < n && ov[2 * g] != PCRE2_UNSET)
                out_put(o, subj.ptr + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
            continue;
        }
        out_put(o, p, 1);
    }
}

/* Returns 1 when a redirect matched (res filled), 0 when none did, or GY_ETOOBIG. */
static int apply_redirects(const struct gy_redirect *rd, size_t nrd, const struct gy_route_request *req,
                           struct gy_route_result *res, char *buf, size_t bufcap)
{
    struct gy_slice subj = GY_SLICE_NULL;
    PCRE2_SIZE ov[2 * RE_OVEC];

    if (nrd == 0)
        return 0;
    if (redirect_subject(req, buf, &bufcap, &subj) != 0)
        return GY_ETOOBIG;
    for (size_t i = 0; i < nrd; i++) {
        int n = re_exec(rd[i].from, subj, ov);
        if (n <= 0)
            continue;
        struct out o = { buf, 0, bufcap, false };
        expand_to(rd[i].to, subj, ov, n, &o);
        if (o.overflow)
            return GY_ETOOBIG;
        res->action = GY_ROUTE_REDIRECT;
        res->status = rd[i].status;
        res->location = gy_slice(buf, o.len);
        return 1;
    }
    return 0;
}

static int redirect_https(struct gy_slice host, const struct gy_route_request *req, struct gy_route_result *res,
                          char *buf, size_t bufcap)
{
    struct out o = { buf, 0, bufcap, false };

    out_put(&o, "https://", 8);
    out_put(&o, host.ptr, host.len);
    out_put(&o, req->path.ptr, req->path.len);
    if (req->query.len > 0) {
        out_put(&o, "?", 1);
        out_put(&o, req->query.ptr, req->query.len);
    }
    if (o.overflow)
        return GY_ETOOBIG;
    res->action = GY_ROUTE_REDIRECT;
    res->status = 301;
    res->location = gy_slice(buf, o.len);
    return 0;
}

/* ---- routes and rules ---------------------------------------------------------------------- */

static bool path_matches(const struct gy_route *r, struct gy_slice path)
{
    switch (r->match_type) {
    case GY_PATH_EXACT:
        return path.len == r->path_len && (path.len == 0 || memcmp(path.ptr, r->path, path.len) == 0);
    case GY_PATH_PREFIX:
        return path.len >= r->path_len && (r->path_len == 0 || memcmp(path.ptr, r->path, r->path_len) == 0);
    case GY_PATH_REGEX:
    default:
        return re_exec(r->re, path, NULL) > 0;
    }
}

/* A signed decimal integer, the whole slice. */
static bool slice_to_i64(struct gy_slice s, int64_t *out)
{
    bool neg = s.len > 0 && s.ptr[0] == '-';
    long long v = gy_slice_to_u63(neg ? gy_slice(s.ptr + 1, s.len - 1) : s);

    if (v < 0)
        return false;
    *out = neg ? -v : v;
    return true;
}

static bool value_matches(const struct gy_match *m, struct gy_slice v)
{
    struct gy_slice want = gy_slice_cstr(m->value);
    int64_t x;

    if (want.len == 0 && m->behavior != GY_BEHAVIOR_REGEX && m->behavior != GY_BEHAVIOR_RANGE)
        return true; /* no value: the key must be present, with any value */
    switch (m->behavior) {
    case GY_BEHAVIOR_EXACT:
        return gy_slice_eq(v, want);
    case GY_BEHAVIOR_PREFIX:
        return gy_slice_has_prefix(v, want);
    case GY_BEHAVIOR_SUFFIX:
        return gy_slice_has_suffix(v, want);
    case GY_BEHAVIOR_REGEX:
        return re_exec(m->re, v, NULL) > 0;
    case GY_BEHAVIOR_RANGE:
        return slice_to_i64(gy_slice_trim(v), &x) && x >= m->range_start && x < m->range_end;
    default:
        return false;
    }
}

static bool match_matches(const struct gy_match *m, const struct gy_route_request *req)
{
    struct gy_slice key = gy_slice_cstr(m->key), v;
    const struct gy_header *h;

    switch (m->kind) {
    case GY_MATCHKIND_HEADER:
        if ((h = gy_header_find(req->headers, req->nheaders, key)) == NULL)
            return false;
        v = h->value;
        break;
    case GY_MATCHKIND_COOKIE:
        if (!gy_header_cookie(req->headers, req->nheaders, key, &v))
            return false;
        break;
    case GY_MATCHKIND_QUERY:
    default: /* an empty query has no parameters (and may be a NULL slice) */
        if (req->query.len == 0 || !gy_query_param(req->query, key, &v))
            return false;
        break;
    }
    return value_matches(m, v);
}

static bool rule_matches(const struct gy_rule *rule, uint32_t method_bit, const struct gy_route_request *req)
{
    if (rule->methods != 0 || rule->nextra_methods != 0) {
        bool ok = (rule->methods & method_bit) != 0;
        for (size_t i = 0; !ok && i < rule->nextra_methods; i++)
            ok = gy_slice_eq(req->method, gy_slice_cstr(rule->extra_methods[i]));
        if (!ok)
            return false;
    }
    for (size_t i = 0; i < rule->nmatches; i++)
        if (!match_matches(&rule->matches[i], req))
            return false;
    return true;
}

/* Weighted pick among the light constraints with the top 32 bits of `random`. */
static const struct gy_constraint *pick_light(const struct gy_rule *rule, uint64_t random)
{
    uint64_t r = ((random >> 32) * rule->light_total_weight) >> 32;

    for (size_t i = 0; i < rule->nlight; i++) {
        if (r < rule->light[i].weight)
            return &rule->light[i];
        r -= rule->light[i].weight;
    }
    return NULL;
}

static int rewrite_prefix(const struct gy_route *r, struct gy_slice path, struct gy_route_result *res, char *buf,
                          size_t bufcap)
{
    struct out o = { buf, 0, bufcap, false };

    out_put(&o, r->prefix_rewrite, strlen(r->prefix_rewrite));
    out_put(&o, path.ptr + r->path_len, path.len - r->path_len);
    if (o.overflow)
        return GY_ETOOBIG;
    res->path = gy_slice(buf, o.len);
    return 0;
}

/* The random number that picks the light constraint: the request's, or for a rule with a
 * cohort seed, a hash of the seed's value, so that one caller always lands on the same side. */
static uint64_t split_random(const struct gy_rule *rule, const struct gy_route_request *req)
{
    const struct gy_cohort_seed *cs = &rule->cohort;
    struct gy_slice v = GY_SLICE_NULL;
    const struct gy_header *h;
    bool found = false;

    switch (cs->type) {
    case GY_COHORT_HEADER:
        if ((h = gy_header_find(req->headers, req->nheaders, gy_slice_cstr(cs->name))) != NULL) {
            v = h->value;
            found = true;
        }
        break;
    case GY_COHORT_COOKIE:
        found = gy_header_cookie(req->headers, req->nheaders, gy_slice_cstr(cs->name), &v);
        break;
    case GY_COHORT_QUERY:
        found = req->query.len > 0 && gy_query_param(req->query, gy_slice_cstr(cs->name), &v);
        break;
    default:
        return req->random;
    }
    if (!found && !cs->use_zero_value_seed)
        return req->random;
    /* Mix so that nearby seeds spread over the whole range the weights are cut from. */
    uint64_t x = gy_lb_hash(v.ptr ? v.ptr : "", v.len);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

/* Returns 1 when the route answered (res filled), 0 to try the next route, or GY_ETOOBIG. */
static int try_route(const struct gy_route *r, uint32_t method_bit, const struct gy_route_request *req,
                     struct gy_route_result *res, char *buf, size_t bufcap)
{
    int rc;

    if (!path_matches(r, req->path))
        return 0;
    res->route = r;
    if ((rc = apply_redirects(r->redirects, r->nredirects, req, res, buf, bufcap)) != 0)
        return rc;
    if (r->direct_response != NULL) {
        res->action = GY_ROUTE_DIRECT;
        return 1;
    }
    for (size_t i = 0; i < r->nrules; i++) {
        const struct gy_rule *rule = &r->rules[i];
        const struct gy_constraint *c;
        if (rule->light_total_weight == 0 || !rule_matches(rule, method_bit, req) ||
            (c = pick_light(rule, split_random(rule, req))) == NULL)
            continue;
        if (r->prefix_rewrite != NULL && r->match_type == GY_PATH_PREFIX &&
            (rc = rewrite_prefix(r, req->path, res, buf, bufcap)) != 0)
            return rc;
        res->action = GY_ROUTE_CLUSTER;
        res->rule = rule;
        res->constraint = c;
        res->cluster = c->cluster;
        return 1;
    }
    res->route = NULL; /* no rule: fall through to the next route, as Envoy does with exploded rules */
    return 0;
}

int gy_router_route(const struct gy_listener *l, const struct gy_route_request *req, struct gy_route_result *res,
                    char *buf, size_t bufcap)
{
    struct gy_slice host = strip_port(req->host);
    const struct gy_vhost *v;
    int rc;

    memset(res, 0, sizeof(*res));
    res->action = GY_ROUTE_NOT_FOUND;
    res->path = req->path;
    if ((v = find_vhost(l, host)) == NULL)
        return 0;
    res->vhost = v;
    if (v->force_https && !req->tls && host.len > 0)
        return redirect_https(host, req, res, buf, bufcap);
    if ((rc = apply_redirects(v->redirects, v->nredirects, req, res, buf, bufcap)) != 0)
        return rc < 0 ? rc : 0;
    uint32_t method_bit = gy_method_bit(req->method);
    for (size_t i = 0; i < v->nroutes; i++) {
        if ((rc = try_route(&v->routes[i], method_bit, req, res, buf, bufcap)) != 0)
            return rc < 0 ? rc : 0;
    }
    return 0;
}
