/*
 * Schema of routes and shared_rules, and of what they hold: rules, matches, constraints,
 * cohort seeds, retry policies, response data, hash policies, direct responses.
 */
#include "mesh/schema.h"

/* ---- response data ---- */

static const struct gy_field f_response_datum[] = {
    GY_STR("name", .doc = "Header name."),
    GY_STR("value", .doc = "Value, or a template when `value_is_literal` is false."),
    GY_BOOL("value_is_literal", .def = "false", .doc = "Use `value` as is."),
    GY_END,
};
static const struct gy_struct s_response_datum = { "response_datum", "A response header.", f_response_datum, NULL };

static const struct gy_field f_header_datum[] = {
    GY_OBJ("response_datum", s_response_datum, .doc = "The header."),
    GY_END,
};
static const struct gy_struct s_header_datum = { "header_datum", "A header added to responses.", f_header_datum, NULL };
static const struct gy_field e_header_datum = GY_OBJ(NULL, s_header_datum, .doc = NULL);

static const struct gy_field f_cookie_datum[] = {
    GY_STR("name", .doc = "Cookie name."),
    GY_STR("value", .doc = "Value, or a template when `value_is_literal` is false."),
    GY_BOOL("value_is_literal", .def = "false", .doc = "Use `value` as is."),
    GY_INT("expires_in_sec", 0, GY_U32, .doc = "Max-Age."),
    GY_STR("domain", .doc = "Domain attribute."),
    GY_STR("path", .doc = "Path attribute."),
    GY_BOOL("secure", .def = "false", .doc = "Secure attribute."),
    GY_BOOL("http_only", .def = "false", .doc = "HttpOnly attribute."),
    GY_STR("same_site", .doc = "SameSite attribute (`Strict`, `Lax`, `None`)."),
    GY_END,
};
static const struct gy_struct s_cookie_datum = { "cookie_datum", "A cookie set on responses.", f_cookie_datum, NULL };
static const struct gy_field e_cookie_datum = GY_OBJ(NULL, s_cookie_datum, .doc = NULL);

static const struct gy_field f_response_data[] = {
    GY_LIST("headers", e_header_datum, .doc = "Headers added to responses."),
    GY_LIST("cookies", e_cookie_datum, .doc = "Cookies set on responses."),
    GY_END,
};
const struct gy_struct gy_s_response_data = {
    "response_data", "Headers and cookies added to responses (Grey Matter `#ResponseData`).", f_response_data, NULL
};

/* ---- constraints ---- */

static const struct gy_field f_constraint[] = {
    GY_STR("constraint_key", .doc = "Identifier, kept for Grey Matter compatibility."),
    GY_REF("cluster_key", "cluster", .flags = GY_F_REQUIRED | GY_F_USED, .doc = "The cluster that receives the traffic."),
    GY_INT("weight", 0, 1000000, .flags = GY_F_USED, .def = "1",
           .doc = "Share of the traffic among the `light` constraints (weight / total weight)."),
    GY_LIST("metadata", gy_e_metadatum, .flags = GY_F_USED,
            .doc = "Only instances whose metadata contain all these pairs are used (subset)."),
    GY_LIST("properties", gy_e_metadatum, .doc = "Free-form properties."),
    GY_OBJ("response_data", gy_s_response_data, .doc = "Headers and cookies added when this constraint serves."),
    GY_END,
};
static const struct gy_struct s_constraint = { "constraint", "A cluster that receives a share of a rule's traffic.", f_constraint, NULL };
static const struct gy_field e_constraint = GY_OBJ(NULL, s_constraint, .doc = NULL);

static const struct gy_field f_all_constraints[] = {
    GY_LIST("light", e_constraint, .flags = GY_F_REQUIRED | GY_F_NONEMPTY | GY_F_USED,
            .doc = "Where requests go: one constraint is picked by weight. The total weight must be above 0."),
    GY_LIST("dark", e_constraint, .flags = GY_F_USED, .doc = "Shadow clusters: each gets a copy of the request; responses are discarded."),
    GY_LIST("tap", e_constraint, .flags = GY_F_USED, .doc = "Clusters that get a JSON record of each request and response (POST /), for inspection."),
    GY_END,
};
const struct gy_struct gy_s_all_constraints = {
    "constraints", "Where a rule sends traffic (Grey Matter `#AllConstraints`).", f_all_constraints, gy_check_constraints
};

/* ---- rules and matches ---- */

static const char *const match_kinds[] = { "header", "cookie", "query", NULL };
static const char *const match_behaviors[] = { "exact", "prefix", "suffix", "regex", "range", NULL };

static const struct gy_field f_match_from[] = {
    GY_STR("key", .flags = GY_F_REQUIRED | GY_F_NONEMPTY | GY_F_USED, .doc = "Header, cookie or query parameter name."),
    GY_STR("value", .flags = GY_F_USED,
           .doc = "Value to compare with (by `behavior`); absent: the key only has to be present. "
                  "`regex`: a regular expression; `range`: `START,END` (integers, START <= value < END)."),
    GY_END,
};
static const struct gy_struct s_match_from = { "match_from", "What a match looks at in the request.", f_match_from, NULL };

static const struct gy_field f_match_to[] = {
    GY_STR("key", .doc = "Instance metadata key the request is mapped onto."),
    GY_STR("value", .doc = "Instance metadata value (needs `key`); absent: the request's value."),
    GY_END,
};
static const struct gy_struct s_match_to = { "match_to", "Instance metadata a matching request is sent to.", f_match_to, NULL };

static const struct gy_field f_match[] = {
    GY_ENUM("kind", match_kinds, .flags = GY_F_REQUIRED | GY_F_USED, .doc = "What to look at."),
    GY_ENUM("behavior", match_behaviors, .flags = GY_F_USED, .def = "`exact`",
            .doc = "How to compare. `query`+`regex`, `cookie`+`range` and `query`+`range` are invalid."),
    GY_OBJ("from", s_match_from, .flags = GY_F_REQUIRED | GY_F_USED, .doc = "Request attribute and value."),
    GY_OBJ("to", s_match_to, .doc = "Metadata subset of the cluster's instances for matching requests."),
    GY_END,
};
static const struct gy_struct s_match = { "match", "A condition on the request; all matches of a rule must hold.", f_match, gy_check_match };
static const struct gy_field e_match = GY_OBJ(NULL, s_match, .doc = NULL);

static const char *const cohort_types[] = { "header", "cookie", "query", NULL };

static const struct gy_field f_cohort_seed[] = {
    GY_ENUM("type", cohort_types, .flags = GY_F_REQUIRED | GY_F_USED, .doc = "Where the seed comes from."),
    GY_STR("name", .flags = GY_F_REQUIRED | GY_F_NONEMPTY | GY_F_USED, .doc = "Header, cookie or query parameter name."),
    GY_BOOL("use_zero_value_seed", .flags = GY_F_USED, .def = "false", .doc = "Requests without the seed all go to one backend."),
    GY_END,
};
const struct gy_struct gy_s_cohort_seed = {
    "cohort_seed", "Sticky weighted choice: requests with the same seed value get the same constraint.", f_cohort_seed, NULL
};

static const struct gy_field f_rule[] = {
    GY_STR("rule_key", .doc = "Identifier of the rule."),
    GY_LIST("methods", gy_e_token, .flags = GY_F_USED, .doc = "HTTP methods the rule applies to; empty: all."),
    GY_LIST("matches", e_match, .flags = GY_F_USED, .doc = "Conditions, all of which must hold."),
    GY_OBJ("constraints", gy_s_all_constraints, .flags = GY_F_USED, .doc = "Where matching requests go."),
    GY_OBJ("cohort_seed", gy_s_cohort_seed, .flags = GY_F_USED, .doc = "Sticky choice among the constraints."),
    GY_END,
};
const struct gy_struct gy_s_rule = { "rule", "A routing rule. The first rule that applies decides.", f_rule, NULL };
static const struct gy_field e_rule = GY_OBJ(NULL, gy_s_rule, .doc = NULL);

/* ---- retry policy ---- */

static const struct gy_field f_back_off[] = {
    GY_DUR("base_interval", .flags = GY_F_USED, .def = "25ms", .doc = "First back-off interval (jittered, doubling)."),
    GY_DUR("max_interval", .flags = GY_F_USED, .def = "10 × base_interval", .doc = "Longest back-off interval."),
    GY_END,
};
static const struct gy_struct s_back_off = { "retry_back_off", "Back-off between retries.", f_back_off, NULL };

static const struct gy_field f_google_re2[] = {
    GY_INT("max_program_size", 0, GY_I64, .doc = "Accepted for compatibility; PCRE2 match limits apply instead."),
    GY_END,
};
static const struct gy_struct s_google_re2 = { "google_re2", "RE2 engine settings (Envoy).", f_google_re2, NULL };

static const struct gy_field f_regex_matcher[] = {
    GY_OBJ("google_re2", s_google_re2, .doc = "Engine settings."),
    GY_STR("regex", .flags = GY_F_REQUIRED, .check = gy_check_regex, .type_doc = "regex", .doc = "The expression."),
    GY_END,
};
static const struct gy_struct s_regex_matcher = { "regex_matcher", "A regular expression (Envoy `safe_regex`).", f_regex_matcher, NULL };

static const struct gy_field f_range_match[] = {
    GY_INT("start", -GY_I64 - 1, GY_I64, .doc = "Inclusive lower bound."),
    GY_INT("end", -GY_I64 - 1, GY_I64, .doc = "Exclusive upper bound."),
    GY_END,
};
static const struct gy_struct s_range_match = { "range_match", "An integer range.", f_range_match, NULL };

static const struct gy_field f_header_matcher[] = {
    GY_STR("name", .flags = GY_F_REQUIRED, .check = gy_check_token, .type_doc = "token", .doc = "Header name."),
    GY_STR("exact_match", .doc = "Value equals this."),
    GY_STR("regex_match", .check = gy_check_regex, .type_doc = "regex", .doc = "Value matches this expression."),
    GY_OBJ("safe_regex_match", s_regex_matcher, .doc = "Value matches this expression."),
    GY_OBJ("range_match", s_range_match, .doc = "Value is an integer in this range."),
    GY_BOOL("present_match", .doc = "Header is present."),
    GY_STR("prefix_match", .doc = "Value starts with this."),
    GY_STR("suffix_match", .doc = "Value ends with this."),
    GY_BOOL("invert_match", .def = "false", .doc = "Negate the result."),
    GY_END,
};
static const struct gy_struct s_header_matcher = {
    "header_matcher", "A condition on a header (Envoy `HeaderMatcher`); at most one `*_match` besides `invert_match`.",
    f_header_matcher, gy_check_header_matcher
};
static const struct gy_field e_header_matcher = GY_OBJ(NULL, s_header_matcher, .doc = NULL);
static const struct gy_field e_status = GY_INT(NULL, 100, 599, .doc = NULL);

static const struct gy_field f_retry_policy[] = {
    GY_INT("num_retries", 0, GY_I64, .flags = GY_F_USED, .def = "1", .doc = "Retries after the first attempt."),
    GY_INT("per_try_timeout_msec", 0, GY_I64, .flags = GY_F_USED, .def = "the route timeout", .doc = "Timeout of each attempt, ms."),
    GY_INT("timeout_msec", 0, GY_I64, .flags = GY_F_USED, .def = "the route timeout", .doc = "Timeout of all attempts together, ms."),
    GY_STR("retry_on", .flags = GY_F_USED, .check = gy_check_retry_on, .type_doc = "comma-separated conditions",
           .doc = "When to retry: `5xx`, `gateway-error`, `reset`, `connect-failure`, `retriable-4xx`, "
                  "`refused-stream`, `retriable-status-codes`, `retriable-headers`, `envoy-ratelimited`, "
                  "gRPC `cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`, `unavailable`."),
    GY_STR("retry_priority", .doc = "Envoy retry priority plugin name."),
    GY_STR("retry_host_predicate", .doc = "Envoy retry host predicate name (e.g. `envoy.retry_host_predicates.previous_hosts`)."),
    GY_INT("host_selection_retry_max_attempts", 0, GY_I64, .def = "1", .doc = "Host re-selection attempts."),
    GY_LIST("retriable_status_codes", e_status, .flags = GY_F_ONE_OR_LIST | GY_F_USED,
            .doc = "Status codes retried with `retriable-status-codes` (a code or a list)."),
    GY_OBJ("retry_back_off", s_back_off, .flags = GY_F_USED, .doc = "Back-off between retries."),
    GY_LIST("retriable_headers", e_header_matcher, .flags = GY_F_ONE_OR_LIST,
            .doc = "Responses with a matching header are retried (one matcher or a list)."),
    GY_LIST("retriable_request_headers", e_header_matcher, .flags = GY_F_ONE_OR_LIST,
            .doc = "Only requests with a matching header are retried (one matcher or a list)."),
    GY_INT("max_request_bytes", 0, 16777216, .flags = GY_F_GYRUS | GY_F_USED, .def = "65536",
           .doc = "Request bodies up to this size are kept to be replayed; larger requests are not retried."),
    GY_END,
};
const struct gy_struct gy_s_retry_policy = { "retry_policy", "Retries (Grey Matter `#RetryPolicy`).", f_retry_policy, NULL };

/* ---- route-only structures ---- */

static const char *const path_match_types[] = { "prefix", "exact", "regex", NULL };

static const struct gy_field f_route_match[] = {
    GY_STR("path", .flags = GY_F_REQUIRED | GY_F_USED,
           .doc = "Path prefix, exact path, or a regular expression matched against the whole path. "
                  "Prefix and exact paths start with `/`."),
    GY_ENUM("match_type", path_match_types, .flags = GY_F_USED, .def = "`prefix`", .doc = "How `path` is compared."),
    GY_END,
};
static const struct gy_struct s_route_match = { "route_match", "The request paths a route takes.", f_route_match, gy_check_route_match };

static const struct gy_field f_direct_response[] = {
    GY_INT("status", 200, 599, .flags = GY_F_REQUIRED | GY_F_USED, .doc = "Status code of the answer."),
    GY_STR("body", .flags = GY_F_USED, .def = "empty", .doc = "Body of the answer."),
    GY_END,
};
static const struct gy_struct s_direct_response = {
    "direct_response", "gyrus extension: answer the request from the proxy, without an upstream.", f_direct_response, NULL
};

static const struct gy_field f_hash_header[] = {
    GY_STR("header_name", .flags = GY_F_REQUIRED | GY_F_USED, .check = gy_check_token, .type_doc = "token", .doc = "Header whose value is hashed."),
    GY_END,
};
static const struct gy_struct s_hash_header = { "hash_policy_header", "Hash a request header.", f_hash_header, NULL };

static const struct gy_field f_hash_cookie[] = {
    GY_STR("name", .flags = GY_F_REQUIRED | GY_F_USED, .check = gy_check_token, .type_doc = "token", .doc = "Cookie whose value is hashed."),
    GY_DUR("ttl", .doc = "Accepted for Envoy compatibility; gyrus does not generate the cookie."),
    GY_STR("path", .doc = "Accepted for Envoy compatibility."),
    GY_END,
};
static const struct gy_struct s_hash_cookie = { "hash_policy_cookie", "Hash a request cookie.", f_hash_cookie, NULL };

static const struct gy_field f_hash_conn[] = {
    GY_BOOL("source_ip", .flags = GY_F_REQUIRED | GY_F_USED, .doc = "Hash the client's IP address."),
    GY_END,
};
static const struct gy_struct s_hash_conn = { "hash_policy_connection", "Hash a connection property.", f_hash_conn, NULL };

static const struct gy_field f_hash_policy[] = {
    GY_OBJ("header", s_hash_header, .flags = GY_F_USED, .doc = "Hash a header."),
    GY_OBJ("cookie", s_hash_cookie, .flags = GY_F_USED, .doc = "Hash a cookie."),
    GY_OBJ("connection_properties", s_hash_conn, .flags = GY_F_USED, .doc = "Hash the client address."),
    GY_BOOL("terminal", .def = "false", .doc = "Accepted for Envoy compatibility."),
    GY_END,
};
static const struct gy_struct s_hash_policy = {
    "hash_policy", "gyrus extension (Envoy's shape): what `ring_hash` clusters hash; exactly one of "
                   "`header`, `cookie`, `connection_properties`. The first policy that yields a value is used.",
    f_hash_policy, gy_check_hash_policy
};
static const struct gy_field e_hash_policy = GY_OBJ(NULL, s_hash_policy, .doc = NULL);
static const struct gy_field e_header_op = GY_OBJ(NULL, gy_s_header_op, .doc = NULL);
static const struct gy_field e_redirect = GY_OBJ(NULL, gy_s_redirect, .doc = NULL);
static const struct gy_field e_metadata_list = GY_LIST(NULL, gy_e_metadatum, .doc = NULL);

/* ---- the kinds ---- */

static const struct gy_field f_route[] = {
    GY_KEY("route_key", .doc = "Unique key of the route."),
    GY_REF("domain_key", "domain", .flags = GY_F_REQUIRED | GY_F_USED, .doc = "The domain (virtual host) the route belongs to."),
    GY_REF("zone_key", "zone", .doc = "Zone of the route."),
    GY_OBJ("route_match", s_route_match, .flags = GY_F_USED, .doc = "Paths the route takes. One of `route_match` and `path` is required."),
    GY_STR("path", .flags = GY_F_USED, .check = gy_check_path, .type_doc = "path",
           .doc = "Grey Matter 1.x form: a path prefix, same as `route_match: {path: ..., match_type: prefix}`."),
    GY_STR("prefix_rewrite", .flags = GY_F_USED, .doc = "Replaces the matched prefix before the request goes upstream."),
    GY_LIST("rules", e_rule, .flags = GY_F_USED, .doc = "Rules tried first, in order."),
    GY_REF("shared_rules_key", "shared_rules", .flags = GY_F_USED, .doc = "Shared rules tried after `rules`; their `default` catches the rest."),
    GY_OBJ("retry_policy", gy_s_retry_policy, .flags = GY_F_USED, .doc = "Retries; default: the shared_rules' policy."),
    GY_DUR("timeout", .flags = GY_F_USED, .def = "15s", .doc = "Whole-request timeout (504 when it fires); `0` disables it."),
    GY_DUR("idle_timeout", .flags = GY_F_USED, .def = "the listener's `stream_idle_timeout`", .doc = "Stream idle timeout."),
    GY_DUR("max_stream_duration", .flags = GY_F_GYRUS | GY_F_USED, .def = "none", .doc = "Longest life of a request, whatever it is doing (504 or reset)."),
    GY_LIST("request_headers_to_add", e_header_op, .flags = GY_F_USED, .doc = "Headers added to requests going upstream."),
    GY_LIST("response_headers_to_add", e_header_op, .flags = GY_F_USED, .doc = "Headers added to responses."),
    GY_LIST("request_headers_to_remove", gy_e_token, .flags = GY_F_USED, .doc = "Headers removed from requests."),
    GY_LIST("response_headers_to_remove", gy_e_token, .flags = GY_F_USED, .doc = "Headers removed from responses."),
    GY_LIST("redirects", e_redirect, .flags = GY_F_USED, .doc = "Redirects checked before the rules."),
    GY_OBJ("direct_response", s_direct_response, .flags = GY_F_USED | GY_F_GYRUS, .doc = "Answer without an upstream."),
    GY_LIST("hash_policy", e_hash_policy, .flags = GY_F_USED | GY_F_GYRUS, .doc = "What `ring_hash` clusters hash."),
    GY_OBJ("cohort_seed", gy_s_cohort_seed, .flags = GY_F_USED, .doc = "Sticky choice among constraints."),
    GY_BOOL("high_priority", .def = "false", .doc = "Use the high-priority circuit breaker thresholds."),
    GY_MAP("filter_configs", gy_e_any, .type_doc = "map of filter name → any", .doc = "Per-route filter settings, keyed by filter name."),
    GY_MAP("filter_metadata", e_metadata_list, .doc = "Per-route metadata for filters, keyed by filter name."),
    GY_OBJ("response_data", gy_s_response_data, .doc = "Headers and cookies added to responses."),
    GY_STR("checksum", .doc = "Opaque; the control plane uses it for optimistic concurrency."),
    GY_STR("org_key", .doc = "Organization, kept for Grey Matter compatibility."),
    GY_END,
};
const struct gy_struct gy_s_route = {
    "route", "A path on a domain and where its requests go. A route needs something to do: rules with `light` "
             "constraints, a `shared_rules_key`, a `direct_response` or `redirects`.",
    f_route, gy_check_route
};

static const struct gy_field f_shared_rules[] = {
    GY_KEY("shared_rules_key", .doc = "Unique key."),
    GY_STR("name", .doc = "Display name."),
    GY_REF("zone_key", "zone", .doc = "Zone."),
    GY_OBJ("default", gy_s_all_constraints, .flags = GY_F_REQUIRED | GY_F_USED, .doc = "Where requests go when no rule applies."),
    GY_LIST("rules", e_rule, .flags = GY_F_USED, .doc = "Rules tried after the route's own rules."),
    GY_OBJ("retry_policy", gy_s_retry_policy, .flags = GY_F_USED, .doc = "Retries for routes without their own policy."),
    GY_OBJ("cohort_seed", gy_s_cohort_seed, .flags = GY_F_USED, .doc = "Sticky choice among constraints."),
    GY_LIST("properties", gy_e_metadatum, .doc = "Free-form properties."),
    GY_OBJ("response_data", gy_s_response_data, .doc = "Headers and cookies added to responses."),
    GY_STR("checksum", .doc = "Opaque; optimistic concurrency."),
    GY_STR("org_key", .doc = "Organization."),
    GY_END,
};
const struct gy_struct gy_s_shared_rules = { "shared_rules", "Routing rules shared by routes.", f_shared_rules, NULL };
