/*
 * Checks referenced by the schema tables: string syntaxes (tokens, regexes, addresses, host
 * patterns, retry conditions) and cross-field rules (one form or the other, weights, match
 * combinations, a route's reason to exist). Also the duration parser of mesh.h.
 */
#include <ctype.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "mesh/schema.h"
#include "net/sock.h"

/* A member that is present and not null. */
static const json_t *member(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);
    return json_is_null(v) ? NULL : v;
}

static const char *str(const json_t *obj, const char *name)
{
    return json_string_value(json_object_get(obj, name));
}

/* ---- durations ---- */

#define MAX_NS (((uint64_t)1 << 31) * 1000000u) /* 2^31 ms */

/* A unit at p[0..n), its length in *len, its size in ns; 0 if none. */
static uint64_t duration_unit(const char *p, size_t n, size_t *len)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {
        { "ns", 1 }, { "us", 1000 }, { "\xc2\xb5s", 1000 }, { "\xce\xbcs", 1000 }, { "ms", 1000000 },
        { "s", 1000000000 }, { "m", 60000000000u }, { "h", 3600000000000u },
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        size_t l = strlen(units[i].name);
        if (l <= n && memcmp(p, units[i].name, l) == 0) {
            *len = l;
            return units[i].ns;
        }
    }
    return 0;
}

int gy_mesh_duration_ms(const json_t *v, uint32_t *ms)
{
    const char *p;
    size_t n, i = 0;
    uint64_t total = 0;

    if (json_is_integer(v)) {
        json_int_t s = json_integer_value(v);
        if (s < 0 || s > (json_int_t)(((uint64_t)1 << 31) / 1000))
            return GY_EINVAL;
        *ms = (uint32_t)s * 1000u;
        return 0;
    }
    if (!json_is_string(v))
        return GY_EINVAL;
    p = json_string_value(v);
    n = json_string_length(v);
    if (n == 1 && p[0] == '0') {
        *ms = 0;
        return 0;
    }
    if (n == 0)
        return GY_EINVAL;
    while (i < n) {
        uint64_t whole = 0, frac = 0, scale = 1, unit;
        bool digits = false;
        size_t ulen = 0;

        for (; i < n && p[i] >= '0' && p[i] <= '9'; i++, digits = true)
            if ((whole = whole * 10 + (uint64_t)(p[i] - '0')) > MAX_NS)
                return GY_EINVAL;
        if (i < n && p[i] == '.')
            for (i++; i < n && p[i] >= '0' && p[i] <= '9'; i++, digits = true)
                if (scale < 1000000000000000u)
                    frac = frac * 10 + (uint64_t)(p[i] - '0'), scale *= 10;
        unit = duration_unit(p + i, n - i, &ulen);
        if (!digits || unit == 0 || whole > MAX_NS / unit)
            return GY_EINVAL;
        i += ulen;
        total += whole * unit + (uint64_t)((double)frac / (double)scale * (double)unit);
        if (total > MAX_NS)
            return GY_EINVAL;
    }
    *ms = (uint32_t)((total + 999999) / 1000000);
    return 0;
}

/* ---- strings ---- */

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int gy_check_token(struct gy_vctx *v, const json_t *value)
{
    const char *s = json_string_value(value);
    size_t n = json_string_length(value);
    char got[96];

    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            goto bad;
    if (n > 0)
        return 0;
bad:
    return gy_verr(v, "must be a token (letters, digits and !#$%%&'*+-.^_`|~), got %s", gy_vdesc(value, got, sizeof(got)));
}

/* An HTTP field value (RFC 9110 §5.5): visible characters, obs-text, spaces and tabs, but no CR,
 * LF or NUL, which would end the header or split it in two. */
int gy_check_field_value(struct gy_vctx *v, const json_t *value)
{
    const char *s = json_string_value(value);
    size_t n = json_string_length(value);
    char got[96];

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return gy_verr(v, "a header value cannot hold control characters (CR, LF, NUL...), got %s",
                           gy_vdesc(value, got, sizeof(got)));
    }
    return 0;
}

int gy_check_regex(struct gy_vctx *v, const json_t *value)
{
    return gy_vregex(v, json_string_value(value));
}

int gy_check_ip(struct gy_vctx *v, const json_t *value)
{
    char got[96];

    if (strlen(json_string_value(value)) == json_string_length(value) && gy_is_ip(json_string_value(value)))
        return 0;
    return gy_verr(v, "must be an IPv4 or IPv6 address, got %s", gy_vdesc(value, got, sizeof(got)));
}

int gy_check_host(struct gy_vctx *v, const json_t *value)
{
    const char *s = json_string_value(value);
    size_t n = json_string_length(value);
    char got[96];

    if (strlen(s) == n && (gy_is_ip(s) || gy_is_dns_name(s, n)))
        return 0;
    return gy_verr(v, "must be an IP address or a host name, got %s", gy_vdesc(value, got, sizeof(got)));
}

int gy_check_host_pattern(struct gy_vctx *v, const json_t *value)
{
    const char *s = json_string_value(value);
    size_t n = json_string_length(value);
    char got[96];

    if (n == 1 && s[0] == '*')
        return 0;
    if (strlen(s) == n) {
        if (n > 2 && s[0] == '*' && s[1] == '.' && gy_is_dns_name(s + 2, n - 2))
            return 0;
        if (n > 2 && s[n - 1] == '*' && s[n - 2] == '.' && gy_is_dns_name(s, n - 2))
            return 0;
        if (gy_is_dns_name(s, n) || gy_is_ip(s))
            return 0;
        if (n > 2 && s[0] == '[' && s[n - 1] == ']') {
            char buf[64];
            unsigned char addr[sizeof(struct in6_addr)];
            if (n - 2 < sizeof(buf)) {
                memcpy(buf, s + 1, n - 2);
                buf[n - 2] = '\0';
                if (inet_pton(AF_INET6, buf, addr) == 1)
                    return 0;
            }
        }
    }
    return gy_verr(v, "must be \"*\", a host name, \"*.suffix\" or \"prefix.*\", got %s", gy_vdesc(value, got, sizeof(got)));
}

int gy_check_path(struct gy_vctx *v, const json_t *value)
{
    char got[96];

    if (json_string_value(value)[0] == '/')
        return 0;
    return gy_verr(v, "must start with \"/\", got %s", gy_vdesc(value, got, sizeof(got)));
}

int gy_check_retry_on(struct gy_vctx *v, const json_t *value)
{
    static const char *const conds[] = {
        "5xx", "gateway-error", "reset", "connect-failure", "envoy-ratelimited", "retriable-4xx",
        "refused-stream", "retriable-status-codes", "retriable-headers", "http3-post-connect-failure",
        "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable", NULL,
    };
    const char *s = json_string_value(value), *end = s + json_string_length(value);

    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s)), *e = comma != NULL ? comma : end, *next = e + 1;
        const char *const *c;
        while (s < e && *s == ' ')
            s++;
        while (e > s && e[-1] == ' ')
            e--;
        for (c = conds; *c != NULL && s < e; c++)
            if (strlen(*c) == (size_t)(e - s) && memcmp(*c, s, (size_t)(e - s)) == 0)
                break;
        if (s < e && *c == NULL)
            return gy_verr(v, "unknown retry condition \"%.*s\"", (int)(e - s > 64 ? 64 : e - s), s);
        s = next;
    }
    return 0;
}

int gy_check_hash_func(struct gy_vctx *v, const json_t *value)
{
    const char *s = json_string_value(value);
    char got[96];

    if (json_is_integer(value) && json_integer_value(value) >= 0 && json_integer_value(value) <= 1)
        return 0;
    if (s != NULL && (strcasecmp(s, "xx_hash") == 0 || strcasecmp(s, "murmur_hash_2") == 0))
        return 0;
    return gy_verr(v, "must be xx_hash, murmur_hash_2, 0 or 1, got %s", gy_vdesc(value, got, sizeof(got)));
}

/* ---- structures ---- */

int gy_check_header_op(struct gy_vctx *v, const json_t *obj)
{
    bool key = member(obj, "key") != NULL, header = member(obj, "header") != NULL;

    if (key && header)
        return gy_verr(v, "\"key\" and \"header\" cannot both be set");
    if (!key && !header)
        return gy_verr(v, "missing required field \"key\" (or Envoy's \"header\")");
    if (header && member(obj, "value") != NULL)
        return gy_verr(v, "\"value\" belongs inside \"header\"");
    return 0;
}

int gy_check_constraints(struct gy_vctx *v, const json_t *obj)
{
    const json_t *light = member(obj, "light"), *c;
    unsigned long long total = 0;
    size_t i, mark;

    json_array_foreach(light, i, c) {
        const json_t *w = member(c, "weight");
        total += w != NULL ? (unsigned long long)json_integer_value(w) : 1;
    }
    if (total > 0 && total <= GY_U32)
        return 0;
    mark = gy_vpush(v, "light");
    if (total == 0)
        gy_verr(v, "total weight must be greater than 0");
    else
        gy_verr(v, "total weight must be at most %lld, got %llu", GY_U32, total);
    gy_vpop(v, mark);
    return -1;
}

/* "START,END": two integers, START < END (the range is START <= value < END). */
static bool parse_range(const char *s)
{
    char *end;
    long long a, b;

    errno = 0;
    a = strtoll(s, &end, 10);
    if (end == s || errno != 0)
        return false;
    while (*end == ' ')
        end++;
    if (*end != ',')
        return false;
    s = end + 1;
    b = strtoll(s, &end, 10);
    if (end == s || errno != 0)
        return false;
    while (*end == ' ')
        end++;
    return *end == '\0' && a < b;
}

int gy_check_match(struct gy_vctx *v, const json_t *obj)
{
    const char *kind = str(obj, "kind"), *behavior = str(obj, "behavior");
    const json_t *from = member(obj, "from"), *to = member(obj, "to");
    const char *value = str(from, "value");
    size_t mark;
    int rc = 0;
    char got[96];

    if (behavior == NULL)
        behavior = "exact";
    if ((strcmp(kind, "query") == 0 && strcmp(behavior, "regex") == 0) ||
        (strcmp(behavior, "range") == 0 && strcmp(kind, "header") != 0))
        return gy_verr(v, "behavior \"%s\" cannot be used with kind \"%s\"", behavior, kind);
    if (to != NULL && member(to, "value") != NULL && member(to, "key") == NULL) {
        mark = gy_vpush(v, "to");
        gy_verr(v, "\"value\" needs \"key\"");
        gy_vpop(v, mark);
        return -1;
    }
    if (strcmp(behavior, "regex") != 0 && strcmp(behavior, "range") != 0)
        return 0;
    mark = gy_vpush(v, "from");
    if (value == NULL)
        rc = gy_verr(v, "missing required field \"value\" (behavior \"%s\")", behavior);
    else {
        gy_vpush(v, "value");
        if (strcmp(behavior, "regex") == 0)
            rc = gy_vregex(v, value);
        else if (strlen(value) != json_string_length(json_object_get(from, "value")) || !parse_range(value))
            rc = gy_verr(v, "must be a range \"START,END\" of integers with START < END, got %s",
                         gy_vdesc(json_object_get(from, "value"), got, sizeof(got)));
    }
    gy_vpop(v, mark);
    return rc;
}

int gy_check_cors_origin(struct gy_vctx *v, const json_t *obj)
{
    const char *type = str(obj, "match_type");
    size_t mark;
    int rc;

    if (type == NULL || strcmp(type, "regex") != 0)
        return 0;
    mark = gy_vpush(v, "value");
    rc = gy_vregex(v, str(obj, "value"));
    gy_vpop(v, mark);
    return rc;
}

int gy_check_route_match(struct gy_vctx *v, const json_t *obj)
{
    const char *type = str(obj, "match_type");
    size_t mark = gy_vpush(v, "path");
    int rc;

    if (type != NULL && strcmp(type, "regex") == 0)
        rc = gy_vregex(v, str(obj, "path"));
    else
        rc = gy_check_path(v, json_object_get(obj, "path"));
    gy_vpop(v, mark);
    return rc;
}

int gy_check_route(struct gy_vctx *v, const json_t *obj)
{
    bool match = member(obj, "route_match") != NULL, path = member(obj, "path") != NULL;
    const json_t *rules = member(obj, "rules"), *redirects = member(obj, "redirects"), *rule;
    const char *shared = str(obj, "shared_rules_key");
    size_t i;

    if (match && path)
        return gy_verr(v, "\"route_match\" and \"path\" cannot both be set");
    if (!match && !path)
        return gy_verr(v, "missing required field \"route_match\" (or the 1.x \"path\")");
    json_array_foreach(rules, i, rule)
        if (member(rule, "constraints") != NULL)
            return 0;
    if ((shared != NULL && shared[0] != '\0') || member(obj, "direct_response") != NULL || json_array_size(redirects) > 0)
        return 0;
    return gy_verr(v, "needs rules with light constraints, a shared_rules_key, a direct_response or redirects");
}

/* How many of the named members are present. */
static int count_members(const json_t *obj, const char *const *names)
{
    int n = 0;
    for (; *names != NULL; names++)
        n += member(obj, *names) != NULL;
    return n;
}

int gy_check_hash_policy(struct gy_vctx *v, const json_t *obj)
{
    static const char *const forms[] = { "header", "cookie", "connection_properties", NULL };

    if (count_members(obj, forms) == 1)
        return 0;
    return gy_verr(v, "must have exactly one of \"header\", \"cookie\", \"connection_properties\"");
}

int gy_check_ring_hash(struct gy_vctx *v, const json_t *obj)
{
    const json_t *min = member(obj, "minimum_ring_size"), *max = member(obj, "maximum_ring_size");
    size_t mark;

    if (min == NULL || max == NULL || json_integer_value(max) >= json_integer_value(min))
        return 0;
    mark = gy_vpush(v, "maximum_ring_size");
    gy_verr(v, "must be at least minimum_ring_size (%" JSON_INTEGER_FORMAT "), got %" JSON_INTEGER_FORMAT,
            json_integer_value(min), json_integer_value(max));
    gy_vpop(v, mark);
    return -1;
}

int gy_check_header_matcher(struct gy_vctx *v, const json_t *obj)
{
    static const char *const forms[] = { "exact_match", "regex_match", "safe_regex_match", "range_match",
                                         "present_match", "prefix_match", "suffix_match", NULL };

    if (count_members(obj, forms) <= 1)
        return 0;
    return gy_verr(v, "at most one of exact_match, regex_match, safe_regex_match, range_match, present_match, "
                      "prefix_match, suffix_match may be set");
}

int gy_check_health_checker(struct gy_vctx *v, const json_t *obj)
{
    static const char *const forms[] = { "http_health_check", "tcp_health_check", "grpc_health_check", NULL };

    if (count_members(obj, forms) <= 1)
        return 0;
    return gy_verr(v, "only one of \"http_health_check\", \"tcp_health_check\", \"grpc_health_check\" may be set");
}

/* http_health_check: request_headers_to_add cannot set what frames the check itself. */
int gy_check_http_health(struct gy_vctx *v, const json_t *obj)
{
    static const char *const refused[] = { "host", "connection", "content-length", "transfer-encoding", "te",
                                           "upgrade", "keep-alive", "proxy-connection", "expect", NULL };
    const json_t *op;
    size_t i;

    json_array_foreach(member(obj, "request_headers_to_add"), i, op) {
        const json_t *kv = member(op, "header") != NULL ? member(op, "header") : op;
        const char *name = json_string_value(member(kv, "key"));
        for (const char *const *r = refused; name != NULL && *r != NULL; r++) {
            if (strcasecmp(name, *r) != 0)
                continue;
            size_t mark = gy_vpush(v, "request_headers_to_add");
            gy_vpushi(v, i);
            gy_verr(v, "a health check cannot set \"%s\"%s", *r,
                    strcmp(*r, "host") == 0 ? " here: the check has its own \"host\" field" : " (gyrus frames the check)");
            gy_vpop(v, mark);
            return -1;
        }
    }
    return 0;
}

/* An :authority: host[:port], a reg-name or an IP literal; no userinfo, path or spaces. */
int gy_check_authority(struct gy_vctx *v, const json_t *value)
{
    const char *s = json_string_value(value);
    char got[96];

    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && strchr("-._~!$&'()*+,;=:[]%", *p) == NULL)
            return gy_verr(v, "must be host or host:port, got %s", gy_vdesc(value, got, sizeof(got)));
    return 0;
}

int gy_check_hex(struct gy_vctx *v, const json_t *value)
{
    const char *s = json_string_value(value);
    size_t n = strlen(s);

    if (n % 2 != 0)
        return gy_verr(v, "hex \"%s\" has an odd number of digits", s);
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return gy_verr(v, "not hex: \"%s\"", s);
    return 0;
}
