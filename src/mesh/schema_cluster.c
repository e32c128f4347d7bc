/* Schema of clusters: instances, load balancing, health checks, outlier detection, circuit breakers. */
#include "mesh/schema.h"

static const struct gy_field f_instance[] = {
    GY_STR("host", .flags = GY_F_REQUIRED | GY_F_NONEMPTY | GY_F_USED, .check = gy_check_host, .type_doc = "host",
           .doc = "IP address or DNS name (resolved when the config is compiled)."),
    GY_INT("port", 1, 65535, .flags = GY_F_REQUIRED | GY_F_USED, .doc = "TCP port."),
    GY_INT("weight", 1, 128, .flags = GY_F_USED | GY_F_GYRUS, .def = "1", .doc = "Load-balancing weight."),
    GY_LIST("metadata", gy_e_metadatum, .flags = GY_F_USED, .doc = "Labels matched by constraints' `metadata` (subsets)."),
    GY_END,
};
static const struct gy_struct s_instance = { "instance", "A host of a cluster.", f_instance, NULL };
static const struct gy_field e_instance = GY_OBJ(NULL, s_instance, .doc = NULL);

/* ---- health checks ---- */

static const struct gy_field f_status_range[] = {
    GY_INT("start", 100, 599, .flags = GY_F_REQUIRED | GY_F_USED, .doc = "First status, inclusive."),
    GY_INT("end", 101, 600, .flags = GY_F_REQUIRED | GY_F_USED, .doc = "Last status, exclusive."),
    GY_END,
};
static const struct gy_struct s_status_range = { "status_range", "A range of HTTP statuses (Envoy's `Int64Range`).", f_status_range, NULL };
static const struct gy_field e_status_range = GY_OBJ(NULL, s_status_range, .doc = NULL);

static const struct gy_field e_header_op = GY_OBJ(NULL, gy_s_header_op, .doc = NULL);

static const struct gy_field f_http_health[] = {
    GY_STR("host", .flags = GY_F_USED, .doc = "Host header; default: the cluster name."),
    GY_STR("path", .flags = GY_F_USED, .def = "/", .doc = "Path requested."),
    GY_LIST("expected_statuses", e_status_range, .flags = GY_F_USED, .def = "200..399",
            .doc = "Statuses that count as healthy (Envoy's field)."),
    GY_STR("service_name", .flags = GY_F_USED,
           .doc = "When set, a healthy answer must carry `x-envoy-upstream-healthchecked-cluster` starting with "
                  "this (Envoy's check that the right service answered)."),
    GY_LIST("request_headers_to_add", e_header_op, .flags = GY_F_USED,
            .doc = "Headers sent with the check (`{key, value}` or Envoy's `{header: {key, value}, append}`; "
                   "`append: false` replaces gyrus's `user-agent`). `host` has its own field, and "
                   "connection-level headers are refused."),
    GY_END,
};
static const struct gy_struct s_http_health = { "http_health_check", "An HTTP health check.", f_http_health,
                                                gy_check_http_health };

static const struct gy_field f_tcp_health[] = {
    GY_STR("send", .flags = GY_F_USED, .check = gy_check_hex, .type_doc = "hex", .doc = "Hex-encoded bytes to send; empty: connect only."),
    GY_LIST("receive", gy_e_hex, .flags = GY_F_USED, .doc = "Hex-encoded bytes expected back, each somewhere in the answer."),
    GY_END,
};
static const struct gy_struct s_tcp_health = { "tcp_health_check", "A TCP health check.", f_tcp_health, NULL };

static const struct gy_field f_grpc_health[] = {
    GY_STR("service_name", .flags = GY_F_USED, .def = "\"\" (the server)", .doc = "Service asked about in `grpc.health.v1.Health/Check`."),
    GY_STR("authority", .flags = GY_F_USED | GY_F_NONEMPTY, .check = gy_check_authority, .type_doc = "host[:port]",
           .def = "the cluster name", .doc = "`:authority` of the check."),
    GY_END,
};
static const struct gy_struct s_grpc_health = { "grpc_health_check", "A gRPC Health v1 check (Envoy's field).", f_grpc_health, NULL };

static const struct gy_field f_health_checker[] = {
    GY_OBJ("http_health_check", s_http_health, .flags = GY_F_USED, .doc = "HTTP check."),
    GY_OBJ("tcp_health_check", s_tcp_health, .flags = GY_F_USED, .doc = "TCP check."),
    GY_OBJ("grpc_health_check", s_grpc_health, .flags = GY_F_USED, .doc = "gRPC check."),
    GY_END,
};
static const struct gy_struct s_health_checker = {
    "health_checker", "The kind of check: at most one of `http_health_check`, `tcp_health_check`, `grpc_health_check`.", f_health_checker,
    gy_check_health_checker
};

static const struct gy_field f_health_check[] = {
    GY_INT("timeout_msec", 0, GY_I64, .doc = "Time allowed for an answer, ms."),
    GY_INT("interval_msec", 0, GY_I64, .doc = "Time between checks, ms."),
    GY_INT("interval_jitter_msec", 0, GY_I64, .doc = "Random extra time between checks, ms."),
    GY_INT("unhealthy_threshold", 0, GY_I64, .doc = "Failures before a host is unhealthy."),
    GY_INT("healthy_threshold", 0, GY_I64, .doc = "Successes before a host is healthy again."),
    GY_BOOL("reuse_connection", .flags = GY_F_USED, .def = "true",
            .doc = "Keep the connection between HTTP and gRPC checks, and TCP checks with `receive`."),
    GY_INT("no_traffic_interval_msec", 0, GY_I64, .flags = GY_F_USED, .def = "interval_msec",
           .doc = "Interval for healthy hosts while the cluster has had no request yet, ms (Envoy's no_traffic_interval)."),
    GY_INT("unhealthy_interval_msec", 0, GY_I64, .flags = GY_F_USED, .def = "interval_msec", .doc = "Interval for unhealthy hosts, ms."),
    GY_INT("unhealthy_edge_interval_msec", 0, GY_I64, .flags = GY_F_USED, .def = "unhealthy_interval_msec",
           .doc = "Interval before the first check after a host turns unhealthy, ms."),
    GY_INT("healthy_edge_interval_msec", 0, GY_I64, .flags = GY_F_USED, .def = "interval_msec",
           .doc = "Interval before the first check after a host turns healthy again, ms."),
    GY_OBJ("health_checker", s_health_checker, .doc = "HTTP or TCP."),
    GY_END,
};
static const struct gy_struct s_health_check = { "health_check", "Active health checking (Envoy's fields).", f_health_check, NULL };
static const struct gy_field e_health_check = GY_OBJ(NULL, s_health_check, .doc = NULL);

static const struct gy_field f_outlier[] = {
    GY_INT("interval_msec", 0, GY_I64, .def = "10000", .doc = "Time between ejection sweeps, ms."),
    GY_INT("base_ejection_time_msec", 0, GY_I64, .def = "30000", .doc = "Ejection time, multiplied by the number of ejections, ms."),
    GY_INT("max_ejection_percent", 0, 100, .def = "10", .doc = "Most hosts that may be ejected, %."),
    GY_INT("consecutive_5xx", 0, GY_I64, .def = "5", .doc = "Consecutive 5xx answers that eject a host."),
    GY_INT("enforcing_consecutive_5xx", 0, 100, .def = "100", .doc = "Chance that a 5xx ejection is enforced, %."),
    GY_INT("enforcing_success_rate", 0, 100, .def = "100", .doc = "Chance that a success-rate ejection is enforced, %."),
    GY_INT("success_rate_minimum_hosts", 0, GY_I64, .def = "5", .doc = "Hosts needed for success-rate detection."),
    GY_INT("success_rate_request_volume", 0, GY_I64, .def = "100", .doc = "Requests per interval a host needs to be judged."),
    GY_INT("success_rate_stdev_factor", 0, GY_I64, .def = "1900", .doc = "Ejection threshold: mean - stdev × factor / 1000."),
    GY_INT("consecutive_gateway_failure", 0, GY_I64, .def = "5", .doc = "Consecutive 502/503/504 that eject a host."),
    GY_INT("enforcing_consecutive_gateway_failure", 0, 100, .def = "0", .doc = "Chance that a gateway-failure ejection is enforced, %."),
    GY_END,
};
static const struct gy_struct s_outlier = { "outlier_detection", "Passive health: eject hosts that fail (Envoy's fields).", f_outlier, NULL };

static const struct gy_struct s_circuit_breakers;
static const struct gy_field f_circuit_breakers[] = {
    GY_INT("max_connections", 0, GY_I64, .flags = GY_F_USED, .def = "1024", .doc = "Connections to the cluster."),
    GY_INT("max_pending_requests", 0, GY_I64, .flags = GY_F_USED, .def = "1024", .doc = "Requests waiting for a connection."),
    GY_INT("max_requests", 0, GY_I64, .flags = GY_F_USED, .def = "1024", .doc = "Requests in flight."),
    GY_INT("max_retries", 0, GY_I64, .flags = GY_F_USED, .def = "3", .doc = "Retries in flight."),
    GY_INT("max_connection_pools", 0, GY_I64, .def = "unlimited", .doc = "Connection pools."),
    GY_BOOL("track_remaining", .def = "false", .doc = "Publish remaining capacity as stats."),
    GY_OBJ("high", s_circuit_breakers, .doc = "Thresholds for `high_priority` routes."),
    GY_END,
};
static const struct gy_struct s_circuit_breakers = {
    "circuit_breakers", "Limits; past them requests get 503 with `x-gyrus-overloaded`.", f_circuit_breakers, NULL
};

static const struct gy_field f_retry_budget[] = {
    GY_INT("budget_percent", 0, 100, .flags = GY_F_USED, .def = "20", .doc = "Retries in flight, as a share of the requests in flight, %."),
    GY_INT("min_retry_concurrency", 0, GY_U32, .flags = GY_F_USED, .def = "3", .doc = "Retries always allowed in flight, whatever the share."),
    GY_END,
};
static const struct gy_struct s_retry_budget = {
    "retry_budget", "gyrus extension (Envoy's and Linkerd's idea): retries cannot multiply an outage.", f_retry_budget, NULL
};

/* ---- load balancing ---- */

static const char *const lb_policies[] = { "round_robin", "least_request", "random", "ring_hash", "maglev", NULL };

static const struct gy_field f_least_request[] = {
    GY_INT("choice_count", 2, 100, .flags = GY_F_USED, .def = "2", .doc = "Hosts sampled; the least loaded wins."),
    GY_END,
};
static const struct gy_struct s_least_request = { "least_request_lb_config", "Settings of `least_request`.", f_least_request, NULL };

static const struct gy_field f_ring_hash[] = {
    GY_INT("minimum_ring_size", 1, 8388608, .flags = GY_F_USED, .def = "1024", .doc = "Entries on the ring."),
    GY_INT("maximum_ring_size", 1, 8388608, .def = "8388608", .doc = "Upper bound of the ring size; at least `minimum_ring_size`."),
    GY_ANY("hash_func", .check = gy_check_hash_func, .type_doc = "`xx_hash` (0) or `murmur_hash_2` (1)", .def = "`xx_hash`",
           .doc = "Hash function, by name or Envoy's number. gyrus uses its own hash either way."),
    GY_END,
};
static const struct gy_struct s_ring_hash = { "ring_hash_lb_config", "Settings of `ring_hash` (and `maglev`).", f_ring_hash, gy_check_ring_hash };

static const struct gy_field f_original_dst[] = {
    GY_BOOL("use_http_header", .def = "false", .doc = "Take the destination from `x-envoy-original-dst-host`."),
    GY_END,
};
static const struct gy_struct s_original_dst = { "original_dst_lb_config", "Envoy's original-destination balancer.", f_original_dst, NULL };

static const struct gy_field f_percent[] = {
    GY_NUM("value", .flags = GY_F_USED, .doc = "Percentage, 0 to 100."),
    GY_END,
};
static const struct gy_struct s_percent = { "percent", "A percentage.", f_percent, NULL };

static const struct gy_field f_zone_aware[] = {
    GY_OBJ("routing_enabled", s_percent, .doc = "Share of requests routed zone-aware."),
    GY_INT("min_cluster_size", 0, GY_I64, .doc = "Smallest cluster for zone-aware routing."),
    GY_BOOL("fail_traffic_on_panic", .def = "false", .doc = "Fail rather than spread in panic mode."),
    GY_END,
};
static const struct gy_struct s_zone_aware = { "zone_aware_lb_config", "Zone-aware routing.", f_zone_aware, NULL };

static const struct gy_field f_consistent_hashing[] = {
    GY_BOOL("use_hostname_for_hashing", .def = "false", .doc = "Hash host names instead of addresses."),
    GY_END,
};
static const struct gy_struct s_consistent_hashing = { "consistent_hashing_lb_config", "Consistent hashing.", f_consistent_hashing, NULL };

static const struct gy_field f_pb_duration[] = {
    GY_INT("seconds", 0, GY_I64, .doc = "Seconds."),
    GY_INT("nanos", 0, 999999999, .doc = "Nanoseconds."),
    GY_END,
};
static const struct gy_struct s_pb_duration = { "duration_object", "A duration as `{seconds, nanos}`.", f_pb_duration, NULL };

static const struct gy_field f_common_lb[] = {
    GY_OBJ("healthy_panic_threshold", s_percent, .flags = GY_F_USED, .def = "50", .doc = "Below this share of healthy hosts, use all hosts."),
    GY_OBJ("zone_aware_lb_config", s_zone_aware, .doc = "Zone-aware routing."),
    GY_OBJ("consistent_hashing_lb_config", s_consistent_hashing, .doc = "Consistent hashing."),
    GY_OBJ("update_merge_window", s_pb_duration, .doc = "Merge host updates within this window."),
    GY_BOOL("ignore_new_hosts_until_first_hc", .def = "false", .doc = "New hosts wait for a first health check."),
    GY_BOOL("close_connections_on_host_set_change", .def = "false", .doc = "Drain connections when hosts change."),
    GY_END,
};
static const struct gy_struct s_common_lb = { "common_lb_config", "Settings common to all balancers (Envoy's fields).", f_common_lb, NULL };

/* ---- the kind ---- */

static const char *const protocol_selections[] = { "USE_CONFIGURED_PROTOCOL", "USE_DOWNSTREAM_PROTOCOL", NULL };

static const struct gy_field f_cluster[] = {
    GY_KEY("cluster_key", .doc = "Unique key of the cluster."),
    GY_STR("name", .flags = GY_F_USED, .def = "the `cluster_key`",
           .doc = "Service name: the discovery key (Consul service, Kubernetes label, file entry...)."),
    GY_REF("zone_key", "zone", .doc = "Zone."),
    GY_LIST("instances", e_instance, .flags = GY_F_USED, .doc = "Static hosts; discovery adds or replaces them."),
    GY_ENUM("lb_policy", lb_policies, .flags = GY_F_USED, .def = "`round_robin`",
            .doc = "Load balancer. `maglev` is accepted and works as `ring_hash`."),
    GY_DUR("connect_timeout", .flags = GY_F_USED | GY_F_GYRUS, .min = 1, .max = 0, .def = "5s", .doc = "Upstream TCP (and TLS) connect timeout."),
    GY_DUR("idle_timeout", .flags = GY_F_USED | GY_F_GYRUS, .min = 1, .max = 0, .def = "60s",
           .doc = "Idle upstream keep-alive connections are closed after this."),
    GY_INT("max_idle_connections_per_host", 0, 10000, .flags = GY_F_USED | GY_F_GYRUS, .def = "64",
           .doc = "Idle upstream connections kept per host per worker; 0 disables reuse."),
    GY_OBJ("least_request_lb_config", s_least_request, .flags = GY_F_USED, .doc = "Settings of `least_request`."),
    GY_OBJ("ring_hash_lb_config", s_ring_hash, .flags = GY_F_USED, .doc = "Settings of `ring_hash`."),
    GY_OBJ("original_dst_lb_config", s_original_dst, .doc = "Accepted for Grey Matter compatibility."),
    GY_OBJ("common_lb_config", s_common_lb, .flags = GY_F_USED, .doc = "Balancer settings."),
    GY_STR("dns_type", .doc = "Envoy DNS discovery type (`strict_dns`, `logical_dns`...)."),
    GY_BOOL("require_tls", .flags = GY_F_USED, .def = "false", .doc = "Connect to instances with TLS (verified against the system store without `ssl_config`)."),
    GY_OBJ("ssl_config", gy_s_cluster_ssl, .flags = GY_F_USED, .doc = "TLS towards instances (implies `require_tls`)."),
    GY_OBJ("secret", gy_s_secret, .flags = GY_F_USED,
           .doc = "SPIFFE mTLS towards instances with the proxy's SVID; checks their SPIFFE IDs (ignored with `ssl_config`)."),
    GY_OBJ("http_protocol_options", gy_s_http_options, .doc = "HTTP/1.1 towards instances."),
    GY_OBJ("http2_protocol_options", gy_s_http2_options, .flags = GY_F_USED, .doc = "HTTP/2 towards instances (given, even empty: HTTP/2)."),
    GY_ENUM("protocol_selection", protocol_selections, .flags = GY_F_USED, .def = "`USE_CONFIGURED_PROTOCOL`",
            .doc = "`USE_DOWNSTREAM_PROTOCOL`: HTTP/2 to instances for HTTP/2 clients, HTTP/1.1 for the others."),
    GY_LIST("health_checks", e_health_check, .doc = "Active health checks."),
    GY_OBJ("outlier_detection", s_outlier, .doc = "Passive health checks."),
    GY_OBJ("circuit_breakers", s_circuit_breakers, .flags = GY_F_USED, .doc = "Limits."),
    GY_OBJ("retry_budget", s_retry_budget, .flags = GY_F_GYRUS | GY_F_USED, .doc = "How many retries may be in flight."),
    GY_STR("checksum", .doc = "Opaque; optimistic concurrency."),
    GY_STR("org_key", .doc = "Organization."),
    GY_END,
};
const struct gy_struct gy_s_cluster = { "cluster", "An upstream service and its instances.", f_cluster, NULL };
