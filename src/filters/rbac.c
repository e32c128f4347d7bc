/*
 * gyrus.rbac (also envoy.rbac, envoy.filters.http.rbac): Envoy's RBAC config. A policy matches
 * when any of its permissions and any of its principals match. `rules` with action ALLOW lets
 * through only requests some policy matches (default deny); DENY refuses requests some policy
 * matches. `shadow_rules` are evaluated and logged, never enforced. Denials answer 403
 * "RBAC: access denied", count in metrics and write an audit line: who, what, which policy.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/log.h"
#include "filters/fconf.h"
#include "filters/rbac.h"
#include "proxy/filter.h"

enum node_kind {
    N_ANY,
    N_HEADER,
    N_PATH,
    N_METHOD,
    N_ROUTE,
    N_PORT,
    N_AUTHENTICATED,
    N_IP,
    N_AND,
    N_OR,
    N_NOT,
};

struct strmatch {
    enum { SM_EXACT, SM_PREFIX, SM_SUFFIX, SM_CONTAINS, SM_REGEX, SM_PRESENT } how;
    char *s;
    size_t len;
    pcre2_code *re;
    bool ignore_case;
};

struct node {
    enum node_kind kind;
    bool invert;              /* header matchers' invert_match */
    char *name;               /* header name (lower case) */
    struct strmatch m;
    int family;               /* N_IP */
    uint8_t addr[16];
    unsigned prefix;
    uint32_t port;
    struct node *kids;        /* N_AND, N_OR: n kids; N_NOT: one */
    size_t n;
};

struct policy {
    char *name;
    struct node *perms, *princs;
    size_t nperms, nprincs;
};

struct ruleset {
    bool present;
    bool allow;               /* action ALLOW (default) or DENY */
    struct policy *p;
    size_t n;
};

struct counters {
    struct counters *next;
    char *prefix;
    _Atomic uint64_t allowed, denied, shadow_allowed, shadow_denied;
};

struct rbac {
    struct ruleset rules, shadow;
    struct counters *c;
};

/* ---- counters (process-wide, by stat_prefix) ---- */

static pthread_mutex_t counters_lock = PTHREAD_MUTEX_INITIALIZER;
static struct counters *all_counters;

static struct counters *counters_for(const char *prefix)
{
    struct counters *c;

    pthread_mutex_lock(&counters_lock);
    for (c = all_counters; c != NULL; c = c->next)
        if (strcmp(c->prefix, prefix) == 0)
            break;
    if (c == NULL && (c = calloc(1, sizeof(*c))) != NULL) {
        if ((c->prefix = strdup(prefix)) == NULL) {
            free(c);
            c = NULL;
        } else {
            c->next = all_counters;
            all_counters = c;
        }
    }
    pthread_mutex_unlock(&counters_lock);
    return c;
}

void gy_rbac_metrics(FILE *f)
{
    pthread_mutex_lock(&counters_lock);
    if (all_counters != NULL)
        fprintf(f, "# HELP gyrus_rbac_requests_total Requests judged by RBAC filters, by stat_prefix and outcome.\n"
                   "# TYPE gyrus_rbac_requests_total counter\n");
    for (struct counters *c = all_counters; c != NULL; c = c->next) {
        fprintf(f, "gyrus_rbac_requests_total{stat_prefix=\"%s\",outcome=\"allowed\"} %llu\n", c->prefix,
                (unsigned long long)atomic_load(&c->allowed));
        fprintf(f, "gyrus_rbac_requests_total{stat_prefix=\"%s\",outcome=\"denied\"} %llu\n", c->prefix,
                (unsigned long long)atomic_load(&c->denied));
        fprintf(f, "gyrus_rbac_requests_total{stat_prefix=\"%s\",outcome=\"shadow_allowed\"} %llu\n", c->prefix,
                (unsigned long long)atomic_load(&c->shadow_allowed));
        fprintf(f, "gyrus_rbac_requests_total{stat_prefix=\"%s\",outcome=\"shadow_denied\"} %llu\n", c->prefix,
                (unsigned long long)atomic_load(&c->shadow_denied));
    }
    pthread_mutex_unlock(&counters_lock);
}

void gy_rbac_shutdown(void)
{
    pthread_mutex_lock(&counters_lock);
    while (all_counters != NULL) {
        struct counters *c = all_counters;
        all_counters = c->next;
        free(c->prefix);
        free(c);
    }
    pthread_mutex_unlock(&counters_lock);
}

/* ---- freeing ---- */

static void node_dispose(struct node *n)
{
    free(n->name);
    free(n->m.s);
    if (n->m.re != NULL)
        pcre2_code_free(n->m.re);
    for (size_t i = 0; i < n->n; i++)
        node_dispose(&n->kids[i]);
    free(n->kids);
}

static void ruleset_dispose(struct ruleset *r)
{
    for (size_t i = 0; i < r->n; i++) {
        struct policy *p = &r->p[i];
        for (size_t k = 0; k < p->nperms; k++)
            node_dispose(&p->perms[k]);
        for (size_t k = 0; k < p->nprincs; k++)
            node_dispose(&p->princs[k]);
        free(p->perms);
        free(p->princs);
        free(p->name);
    }
    free(r->p);
}

static void destroy(void *compiled)
{
    struct rbac *r = compiled;

    if (r == NULL)
        return;
    ruleset_dispose(&r->rules);
    ruleset_dispose(&r->shadow);
    free(r);
}

/* ---- parsing ---- */

static int parse_node(struct gy_fconf *f, const json_t *v, struct node *n, bool principal);

/* An error in field `key` of the object being read. */
__attribute__((format(printf, 3, 4))) static int fail_at(struct gy_fconf *f, const char *key, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gy_fconf_push(f, key);
    return gy_fconf_fail(f, "%s", msg);
}

static bool only_key(const json_t *o, const char **key, const json_t **val)
{
    if (!json_is_object(o) || json_object_size(o) != 1)
        return false;
    void *it = json_object_iter((json_t *)o);
    *key = json_object_iter_key(it);
    *val = json_object_iter_value(it);
    return true;
}

/* How many of the NULL-terminated keys o has; an unknown key outside them and `also` fails. */
static int count_keys(struct gy_fconf *f, const json_t *o, const char *const *keys, const char *const *also)
{
    const char *key;
    const json_t *v;
    int n = 0;

    json_object_foreach((json_t *)o, key, v)
    {
        bool known = false;
        for (const char *const *k = keys; *k != NULL && !known; k++)
            if (strcmp(*k, key) == 0) {
                known = true;
                n++;
            }
        for (const char *const *k = also; *k != NULL && !known; k++)
            known = strcmp(*k, key) == 0;
        if (!known)
            return gy_fconf_fail(f, "unknown field \"%s\"", key);
    }
    return n;
}

/* Envoy StringMatcher: {exact|prefix|suffix|contains|safe_regex{regex}, ignore_case}. */
static int parse_strmatch(struct gy_fconf *f, const json_t *o, struct strmatch *m)
{
    static const char *const forms[] = { "exact", "prefix", "suffix", "contains", "safe_regex", NULL };
    static const char *const also[] = { "ignore_case", NULL };
    const json_t *v;
    int n;

    if (!json_is_object(o))
        return gy_fconf_fail(f, "want a string matcher: {exact|prefix|suffix|contains|safe_regex: ...}");
    if ((n = count_keys(f, o, forms, also)) < 0)
        return -1;
    if (n != 1)
        return gy_fconf_fail(f, "want exactly one of exact, prefix, suffix, contains, safe_regex");
    m->ignore_case = json_is_true(json_object_get(o, "ignore_case"));
    for (int i = 0; i < 4; i++) {
        if ((v = json_object_get(o, forms[i])) == NULL)
            continue;
        if (!json_is_string(v))
            return fail_at(f, forms[i], "want a string");
        m->how = i;
        if ((m->s = strdup(json_string_value(v))) == NULL)
            return gy_fconf_fail(f, "out of memory");
        m->len = strlen(m->s);
        return 0;
    }
    v = json_object_get(o, "safe_regex");
    const char *re = json_string_value(json_object_get(v, "regex"));
    int err;
    PCRE2_SIZE off;
    if (re == NULL)
        return fail_at(f, "safe_regex", "want {regex: ...}");
    m->how = SM_REGEX;
    m->re = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
                          PCRE2_ANCHORED | PCRE2_ENDANCHORED | (m->ignore_case ? PCRE2_CASELESS : 0), &err, &off,
                          NULL);
    if (m->re == NULL)
        return fail_at(f, "safe_regex.regex", "bad regex \"%s\"", re);
    return 0;
}

/* Envoy HeaderMatcher: {name, exact_match|prefix_match|suffix_match|contains_match|safe_regex_match|
 * present_match|string_match, invert_match}. */
static int parse_header(struct gy_fconf *f, const json_t *o, struct node *n)
{
    static const char *const forms[] = { "exact_match",      "prefix_match",  "suffix_match", "contains_match",
                                         "safe_regex_match", "present_match", "string_match", NULL };
    static const char *const also[] = { "name", "invert_match", NULL };
    const char *name = json_string_value(json_object_get(o, "name"));
    const json_t *v;
    int found;

    if (!json_is_object(o) || name == NULL || name[0] == '\0')
        return gy_fconf_fail(f, "want {name, and one way to match}");
    if ((found = count_keys(f, o, forms, also)) < 0)
        return -1;
    if (found != 1)
        return gy_fconf_fail(f, "want exactly one of exact_match, prefix_match, suffix_match, contains_match, "
                                "safe_regex_match, present_match, string_match");
    n->kind = N_HEADER;
    if ((n->name = strdup(name)) == NULL)
        return gy_fconf_fail(f, "out of memory");
    for (char *p = n->name; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    n->invert = json_is_true(json_object_get(o, "invert_match"));
    for (int i = 0; i < 4; i++) {
        if ((v = json_object_get(o, forms[i])) == NULL)
            continue;
        if (!json_is_string(v))
            return fail_at(f, forms[i], "want a string");
        n->m.how = i; /* same order as SM_EXACT.. SM_CONTAINS */
        if ((n->m.s = strdup(json_string_value(v))) == NULL)
            return gy_fconf_fail(f, "out of memory");
        n->m.len = strlen(n->m.s);
        return 0;
    }
    if ((v = json_object_get(o, "present_match")) != NULL) {
        if (!json_is_boolean(v))
            return fail_at(f, "present_match", "want true or false");
        n->m.how = SM_PRESENT;
        n->invert ^= json_is_false(v);
        return 0;
    }
    bool regex = (v = json_object_get(o, "safe_regex_match")) != NULL;
    json_t *sm = regex ? json_pack("{s:O}", "safe_regex", v) : json_incref(json_object_get(o, "string_match"));
    size_t mark = gy_fconf_push(f, regex ? "safe_regex_match" : "string_match");
    int rc = parse_strmatch(f, sm, &n->m);
    json_decref(sm);
    if (rc == 0)
        gy_fconf_pop(f, mark);
    return rc;
}

static int parse_cidr(struct gy_fconf *f, const json_t *o, struct node *n)
{
    const char *addr = json_string_value(json_object_get(o, "address_prefix"));
    const json_t *pl = json_object_get(o, "prefix_len");

    n->kind = N_IP;
    if (addr == NULL)
        return gy_fconf_fail(f, "want {address_prefix, prefix_len}");
    if (inet_pton(AF_INET, addr, n->addr) == 1)
        n->family = AF_INET;
    else if (inet_pton(AF_INET6, addr, n->addr) == 1)
        n->family = AF_INET6;
    else
        return fail_at(f, "address_prefix", "not an IP address: \"%s\"", addr);
    unsigned max = n->family == AF_INET ? 32 : 128;
    n->prefix = pl == NULL ? max : (unsigned)json_integer_value(pl);
    if ((pl != NULL && !json_is_integer(pl)) || n->prefix > max)
        return fail_at(f, "prefix_len", "want 0..%u", max);
    return 0;
}

static int parse_list(struct gy_fconf *f, const json_t *arr, struct node **out, size_t *n, bool principal)
{
    size_t i, cnt = json_array_size(arr);
    const json_t *v;

    if (!json_is_array(arr) || cnt == 0)
        return gy_fconf_fail(f, "want a non-empty list");
    if ((*out = calloc(cnt, sizeof(**out))) == NULL)
        return gy_fconf_fail(f, "out of memory");
    *n = cnt;
    json_array_foreach(arr, i, v)
    {
        size_t mark = gy_fconf_pushi(f, i);
        if (parse_node(f, v, &(*out)[i], principal) != 0)
            return -1;
        gy_fconf_pop(f, mark);
    }
    return 0;
}

static int parse_combo(struct gy_fconf *f, const char *key, const json_t *val, struct node *n, bool principal)
{
    const char *listkey = principal ? "ids" : "rules";
    size_t mark = gy_fconf_push(f, key);
    int rc;

    if (strcmp(key, principal ? "not_id" : "not_rule") == 0) {
        n->kind = N_NOT;
        n->n = 1;
        if ((n->kids = calloc(1, sizeof(*n->kids))) == NULL)
            return gy_fconf_fail(f, "out of memory");
        rc = parse_node(f, val, n->kids, principal);
    } else {
        n->kind = strncmp(key, "and_", 4) == 0 ? N_AND : N_OR;
        size_t m2 = gy_fconf_push(f, listkey);
        rc = parse_list(f, json_object_get(val, listkey), &n->kids, &n->n, principal);
        if (rc == 0)
            gy_fconf_pop(f, m2);
    }
    if (rc == 0)
        gy_fconf_pop(f, mark);
    return rc;
}

static int parse_node(struct gy_fconf *f, const json_t *v, struct node *n, bool principal)
{
    const char *key;
    const json_t *val;

    if (!only_key(v, &key, &val))
        return gy_fconf_fail(f, "want an object with exactly one key (any, header, %s...)",
                             principal ? "authenticated, source_ip" : "url_path, method");
    if (strcmp(key, "any") == 0) {
        n->kind = N_ANY;
        return 0;
    }
    if (strcmp(key, "header") == 0) {
        size_t mark = gy_fconf_push(f, key);
        if (parse_header(f, val, n) != 0)
            return -1;
        gy_fconf_pop(f, mark);
        return 0;
    }
    if (strcmp(key, principal ? "and_ids" : "and_rules") == 0 || strcmp(key, principal ? "or_ids" : "or_rules") == 0 ||
        strcmp(key, principal ? "not_id" : "not_rule") == 0)
        return parse_combo(f, key, val, n, principal);
    size_t mark = gy_fconf_push(f, key);
    int rc = -1;
    if (!principal && strcmp(key, "url_path") == 0) {
        n->kind = N_PATH;
        size_t m2 = gy_fconf_push(f, "path");
        rc = parse_strmatch(f, json_object_get(val, "path"), &n->m);
        if (rc == 0)
            gy_fconf_pop(f, m2);
    } else if (!principal && (strcmp(key, "method") == 0 || strcmp(key, "route") == 0)) {
        n->kind = key[0] == 'm' ? N_METHOD : N_ROUTE;
        rc = json_is_string(val) ? 0 : gy_fconf_fail(f, "want a string");
        if (rc == 0 && (n->m.s = strdup(json_string_value(val))) != NULL)
            n->m.len = strlen(n->m.s);
    } else if (!principal && strcmp(key, "destination_port") == 0) {
        n->kind = N_PORT;
        rc = json_is_integer(val) ? 0 : gy_fconf_fail(f, "want a port number");
        n->port = (uint32_t)json_integer_value(val);
    } else if (principal && strcmp(key, "authenticated") == 0) {
        n->kind = N_AUTHENTICATED;
        const json_t *pn = json_object_get(val, "principal_name");
        n->m.how = SM_PRESENT; /* no principal_name: any verified certificate */
        rc = 0;
        if (pn != NULL) {
            size_t m2 = gy_fconf_push(f, "principal_name");
            rc = parse_strmatch(f, pn, &n->m);
            if (rc == 0)
                gy_fconf_pop(f, m2);
        }
    } else if (principal && (strcmp(key, "source_ip") == 0 || strcmp(key, "direct_remote_ip") == 0 ||
                             strcmp(key, "remote_ip") == 0)) {
        rc = parse_cidr(f, val, n);
    } else {
        return gy_fconf_fail(f, "unknown %s", principal ? "principal" : "permission");
    }
    if (rc == 0)
        gy_fconf_pop(f, mark);
    return rc;
}

static int parse_ruleset(struct gy_fconf *f, const json_t *o, struct ruleset *r)
{
    const char *action = json_string_value(json_object_get(o, "action"));
    const json_t *policies = json_object_get(o, "policies"), *p;
    const char *name;
    size_t i = 0;

    if (!json_is_object(o))
        return gy_fconf_fail(f, "want an object {action, policies}");
    static const char *const keys[] = { "action", "policies", NULL }, *const no_more[] = { NULL };
    if (count_keys(f, o, keys, no_more) < 0)
        return -1;
    r->present = true;
    r->allow = action == NULL || strcasecmp(action, "ALLOW") == 0;
    if (action != NULL && !r->allow && strcasecmp(action, "DENY") != 0)
        return fail_at(f, "action", "want ALLOW or DENY, got \"%s\"", action);
    if (policies != NULL && !json_is_object(policies))
        return fail_at(f, "policies", "want an object of named policies");
    r->n = json_object_size(policies);
    if (r->n > 0 && (r->p = calloc(r->n, sizeof(*r->p))) == NULL)
        return gy_fconf_fail(f, "out of memory");
    size_t mark = gy_fconf_push(f, "policies");
    json_object_foreach((json_t *)policies, name, p)
    {
        static const char *const parts[] = { "permissions", "principals", NULL }, *const none[] = { NULL };
        struct policy *pol = &r->p[i++];
        size_t m2 = gy_fconf_push(f, name);
        if (!json_is_object(p))
            return gy_fconf_fail(f, "want {permissions, principals}");
        if (count_keys(f, p, parts, none) < 0)
            return -1;
        if ((pol->name = strdup(name)) == NULL)
            return gy_fconf_fail(f, "out of memory");
        size_t m3 = gy_fconf_push(f, "permissions");
        if (parse_list(f, json_object_get(p, "permissions"), &pol->perms, &pol->nperms, false) != 0)
            return -1;
        gy_fconf_pop(f, m3);
        m3 = gy_fconf_push(f, "principals");
        if (parse_list(f, json_object_get(p, "principals"), &pol->princs, &pol->nprincs, true) != 0)
            return -1;
        gy_fconf_pop(f, m3);
        gy_fconf_pop(f, m2);
    }
    gy_fconf_pop(f, mark);
    return 0;
}

static void *compile(const json_t *config, char *err, size_t errlen)
{
    struct gy_fconf f;
    struct rbac *r = calloc(1, sizeof(*r));
    const json_t *rules = json_object_get(config, "rules"), *shadow = json_object_get(config, "shadow_rules");
    const char *prefix = json_string_value(json_object_get(config, "stat_prefix"));
    const char *key;
    const json_t *v;

    gy_fconf_init(&f, err, errlen);
    if (r == NULL) {
        gy_fconf_fail(&f, "out of memory");
        return NULL;
    }
    if (config != NULL && !json_is_object(config)) {
        gy_fconf_fail(&f, "want {rules, shadow_rules, stat_prefix}");
        goto fail;
    }
    json_object_foreach((json_t *)config, key, v)
    {
        if (strcmp(key, "rules") != 0 && strcmp(key, "shadow_rules") != 0 && strcmp(key, "stat_prefix") != 0 &&
            strcmp(key, "shadow_rules_stat_prefix") != 0) {
            gy_fconf_fail(&f, "unknown field \"%s\"", key);
            goto fail;
        }
    }
    size_t mark = gy_fconf_push(&f, "rules");
    if (rules != NULL && parse_ruleset(&f, rules, &r->rules) != 0)
        goto fail;
    gy_fconf_pop(&f, mark);
    mark = gy_fconf_push(&f, "shadow_rules");
    if (shadow != NULL && parse_ruleset(&f, shadow, &r->shadow) != 0)
        goto fail;
    gy_fconf_pop(&f, mark);
    if ((r->c = counters_for(prefix ? prefix : "rbac")) == NULL) {
        gy_fconf_fail(&f, "out of memory");
        goto fail;
    }
    return r;
fail:
    destroy(r);
    return NULL;
}

/* ---- matching ---- */

static bool str_match(const struct strmatch *m, struct gy_slice v, bool present)
{
    if (m->how == SM_PRESENT)
        return present;
    if (!present)
        return false;
    int (*cmp)(const char *, const char *, size_t) = m->ignore_case ? strncasecmp : strncmp;
    switch (m->how) {
    case SM_EXACT:
        return v.len == m->len && cmp(v.ptr, m->s, m->len) == 0;
    case SM_PREFIX:
        return v.len >= m->len && cmp(v.ptr, m->s, m->len) == 0;
    case SM_SUFFIX:
        return v.len >= m->len && cmp(v.ptr + v.len - m->len, m->s, m->len) == 0;
    case SM_CONTAINS:
        for (size_t i = 0; i + m->len <= v.len; i++)
            if (cmp(v.ptr + i, m->s, m->len) == 0)
                return true;
        return m->len == 0;
    case SM_REGEX: {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(m->re, NULL);
        int rc = md ? pcre2_match(m->re, (PCRE2_SPTR)(v.ptr ? v.ptr : ""), v.len, 0, 0, md, NULL) : -1;
        pcre2_match_data_free(md);
        return rc >= 0;
    }
    default:
        return false;
    }
}

static bool header_match(const struct node *n, const struct gy_filter_call *c)
{
    struct gy_slice v;

    if (strcmp(n->name, ":method") == 0)
        v = c->method;
    else if (strcmp(n->name, ":path") == 0)
        v = c->path;
    else if (strcmp(n->name, ":authority") == 0)
        v = c->host;
    else
        v = gy_filter_header_get(c, n->name);
    bool r = str_match(&n->m, v, v.ptr != NULL);
    return n->invert ? !r : r;
}

static bool ip_match(const struct node *n, const char *peer)
{
    uint8_t a[16];
    int fam = strchr(peer, ':') ? AF_INET6 : AF_INET;

    if (fam != n->family || inet_pton(fam, peer, a) != 1)
        return false;
    unsigned full = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(a, n->addr, full) != 0)
        return false;
    return rest == 0 || ((a[full] ^ n->addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static bool node_match(const struct node *n, const struct gy_filter_call *c)
{
    switch (n->kind) {
    case N_ANY:
        return true;
    case N_HEADER:
        return header_match(n, c);
    case N_PATH:
        return str_match(&n->m, c->path, true);
    case N_METHOD:
        return gy_slice_eq(c->method, gy_slice(n->m.s, n->m.len));
    case N_ROUTE:
        return c->route != NULL && strcmp(c->route->key, n->m.s) == 0;
    case N_PORT:
        return c->listener != NULL && c->listener->port == n->port;
    case N_AUTHENTICATED: {
        const struct gy_tls_peer *p = c->peer;
        if (p == NULL || !p->verified)
            return false;
        const char *id = p->spiffe_id ? p->spiffe_id : p->subject ? p->subject : "";
        return str_match(&n->m, gy_slice_cstr(id), true);
    }
    case N_IP:
        return c->peer_ip != NULL && ip_match(n, c->peer_ip);
    case N_AND:
        for (size_t i = 0; i < n->n; i++)
            if (!node_match(&n->kids[i], c))
                return false;
        return true;
    case N_OR:
        for (size_t i = 0; i < n->n; i++)
            if (node_match(&n->kids[i], c))
                return true;
        return false;
    case N_NOT:
        return !node_match(n->kids, c);
    }
    return false;
}

static bool any_match(const struct node *nodes, size_t n, const struct gy_filter_call *c)
{
    for (size_t i = 0; i < n; i++)
        if (node_match(&nodes[i], c))
            return true;
    return false;
}

/* Returns true when the ruleset lets the request through; *policy names the deciding policy. */
static bool judge(const struct ruleset *r, const struct gy_filter_call *c, const char **policy)
{
    *policy = NULL;
    for (size_t i = 0; i < r->n; i++) {
        const struct policy *p = &r->p[i];
        if (any_match(p->perms, p->nperms, c) && any_match(p->princs, p->nprincs, c)) {
            *policy = p->name;
            return r->allow;
        }
    }
    return !r->allow; /* ALLOW with no matching policy: denied; DENY with none: allowed */
}

static void audit(const struct gy_filter_call *c, const char *what, const char *policy)
{
    const struct gy_tls_peer *p = c->peer;
    const char *who = p && p->verified ? (p->spiffe_id ? p->spiffe_id : p->subject ? p->subject : "-") : "-";

    gy_info("rbac: %s request_id=%.*s principal=%s peer=%s method=%.*s path=%.*s listener=%s route=%s policy=%s",
            what, GY_SLICE_ARG(c->request_id), who, c->peer_ip ? c->peer_ip : "-", GY_SLICE_ARG(c->method),
            GY_SLICE_ARG(c->path), c->listener ? c->listener->name : "-", c->route ? c->route->key : "-",
            policy ? policy : "(none matched)");
}

static enum gy_filter_result on_request(struct gy_filter_call *c, void *compiled, void *route_compiled)
{
    const struct rbac *r = route_compiled ? route_compiled : compiled;
    const char *policy;

    if (r->shadow.present) {
        bool ok = judge(&r->shadow, c, &policy);
        atomic_fetch_add(ok ? &r->c->shadow_allowed : &r->c->shadow_denied, 1);
        if (!ok)
            audit(c, "shadow-denied", policy);
    }
    if (!r->rules.present)
        return GY_FILTER_CONTINUE;
    if (judge(&r->rules, c, &policy)) {
        atomic_fetch_add(&r->c->allowed, 1);
        return GY_FILTER_CONTINUE;
    }
    atomic_fetch_add(&r->c->denied, 1);
    audit(c, "denied", policy);
    if (c->grpc)
        return gy_filter_grpc_reply(c, 7, "RBAC: access denied"); /* PERMISSION_DENIED */
    return gy_filter_reply(c, 403, NULL, "RBAC: access denied");
}

static const char *const aliases[] = { "envoy.rbac", "envoy.filters.http.rbac", NULL };

const struct gy_filter_ops gy_filter_rbac = {
    .name = "gyrus.rbac",
    .aliases = aliases,
    .compile = compile,
    .destroy = destroy,
    .on_request = on_request,
};
