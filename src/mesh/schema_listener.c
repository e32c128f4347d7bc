/* Schema of zones, proxies, listeners (with access loggers and tracing) and domains. */
#include "mesh/schema.h"

static const struct gy_field e_domain_ref = GY_REF(NULL, "domain", .doc = NULL);
static const struct gy_field e_listener_ref = GY_REF(NULL, "listener", .doc = NULL);
static const struct gy_field e_host_pattern = GY_STR(NULL, .check = gy_check_host_pattern, .type_doc = "host pattern", .doc = NULL);
static const struct gy_field e_redirect = GY_OBJ(NULL, gy_s_redirect, .doc = NULL);

/* ---- access logs and tracing ---- */

static const struct gy_field f_file_logger[] = {
    GY_STR("path", .flags = GY_F_REQUIRED | GY_F_NONEMPTY | GY_F_USED, .doc = "File to append to; `/dev/stdout` works."),
    GY_STR("format", .flags = GY_F_USED, .def = "JSON lines",
           .doc = "Line format with `%FIELD%` tokens (Envoy's command operators)."),
    GY_MAP("json_format", gy_e_string, .doc = "JSON object format: field name → `%FIELD%` token."),
    GY_MAP("typed_json_format", gy_e_string, .doc = "Same, with typed values."),
    GY_END,
};
static const struct gy_struct s_file_logger = { "file_logger", "An access log file.", f_file_logger, NULL };
static const struct gy_field e_file_logger = GY_OBJ(NULL, s_file_logger, .doc = NULL);

static const struct gy_field f_grpc_service[] = {
    GY_STR("cluster_name", .doc = "Cluster of the gRPC access log service."),
    GY_END,
};
static const struct gy_struct s_grpc_service = { "grpc_service", "A gRPC service.", f_grpc_service, NULL };

static const struct gy_field f_grpc_common[] = {
    GY_STR("log_name", .doc = "Log name sent to the service."),
    GY_OBJ("grpc_service", s_grpc_service, .doc = "Where to send the logs."),
    GY_END,
};
static const struct gy_struct s_grpc_common = { "grpc_common_config", "Common gRPC logger settings.", f_grpc_common, NULL };

static const struct gy_field f_grpc_logger[] = {
    GY_OBJ("common_config", s_grpc_common, .doc = "Service and log name."),
    GY_LIST("additional_request_headers_to_log", gy_e_string, .doc = "Request headers to log."),
    GY_LIST("additional_response_headers_to_log", gy_e_string, .doc = "Response headers to log."),
    GY_LIST("additional_response_trailers_to_log", gy_e_string, .doc = "Response trailers to log."),
    GY_END,
};
static const struct gy_struct s_grpc_logger = { "http_grpc_access_logger", "An Envoy gRPC access log service.", f_grpc_logger, NULL };
static const struct gy_field e_grpc_logger = GY_OBJ(NULL, s_grpc_logger, .doc = NULL);

static const struct gy_field f_loggers[] = {
    GY_BOOL("disabled", .flags = GY_F_USED, .def = "false", .doc = "Turn these logs off."),
    GY_LIST("file_loggers", e_file_logger, .flags = GY_F_USED, .doc = "Files."),
    GY_LIST("http_grpc_access_loggers", e_grpc_logger, .doc = "gRPC services."),
    GY_END,
};
static const struct gy_struct s_loggers = { "loggers", "A set of access logs.", f_loggers, NULL };

static const struct gy_field f_access_loggers[] = {
    GY_OBJ("http_connection_loggers", s_loggers, .flags = GY_F_USED, .doc = "One line per downstream request."),
    GY_OBJ("http_upstream_loggers", s_loggers, .doc = "One line per upstream attempt."),
    GY_END,
};
static const struct gy_struct s_access_loggers = { "access_loggers", "Access logs of a listener.", f_access_loggers, NULL };

static const struct gy_field f_tracing[] = {
    GY_BOOL("ingress", .def = "false", .doc = "Traffic is ingress (else egress)."),
    GY_LIST("request_headers_for_tags", gy_e_string, .doc = "Request headers recorded as span tags."),
    GY_END,
};
static const struct gy_struct s_tracing = { "tracing_config", "Tracing.", f_tracing, NULL };

/* ---- filter secrets ---- */

static const char *const secret_types[] = { "kubernetes", "plaintext", NULL };

static const struct gy_field f_k8s_secret[] = {
    GY_STR("namespace", .doc = "Namespace of the Secret."),
    GY_STR("name", .doc = "Name of the Secret."),
    GY_STR("key", .doc = "Key inside the Secret."),
    GY_END,
};
static const struct gy_struct s_k8s_secret = { "kubernetes_secret", "A Kubernetes Secret.", f_k8s_secret, NULL };

static const struct gy_field f_plain_secret[] = {
    GY_STR("secret", .doc = "The secret value."),
    GY_END,
};
static const struct gy_struct s_plain_secret = { "plaintext_secret", "A secret given inline.", f_plain_secret, NULL };

static const struct gy_field f_filter_secret[] = {
    GY_STR("filter", .flags = GY_F_REQUIRED, .doc = "Filter that receives the secret."),
    GY_STR("path", .flags = GY_F_REQUIRED, .doc = "Field of the filter configuration to set."),
    GY_ENUM("type", secret_types, .flags = GY_F_REQUIRED, .doc = "Where the secret is."),
    GY_OBJ("kubernetes_secret", s_k8s_secret, .doc = "For `type: kubernetes`."),
    GY_OBJ("plaintext_secret", s_plain_secret, .doc = "For `type: plaintext`."),
    GY_END,
};
static const struct gy_struct s_filter_secret = { "external_secret", "A secret inserted into a filter configuration.", f_filter_secret, NULL };
static const struct gy_field e_filter_secret = GY_OBJ(NULL, s_filter_secret, .doc = NULL);

/* ---- listener ---- */

static const char *const listener_protocols[] = { "http_auto", "http", "http2", "tcp", NULL };

static const struct gy_field f_listener[] = {
    GY_KEY("listener_key", .doc = "Unique key of the listener."),
    GY_STR("name", .flags = GY_F_USED, .def = "the `listener_key`", .doc = "Name used in stats and logs."),
    GY_REF("zone_key", "zone", .doc = "Zone."),
    GY_STR("ip", .flags = GY_F_USED, .check = gy_check_ip, .type_doc = "IP address", .def = "`0.0.0.0`",
           .doc = "Address to listen on: an IPv4 or IPv6 literal."),
    GY_INT("port", 1, 65535, .flags = GY_F_REQUIRED | GY_F_USED, .doc = "Port to listen on."),
    GY_ENUM("protocol", listener_protocols, .flags = GY_F_USED, .def = "`http_auto`",
            .doc = "`http_auto`: HTTP/1.1 or HTTP/2 (ALPN or preface); `http`: HTTP/1.1; `http2`: HTTP/2 only; `tcp`: TCP proxy."),
    GY_LIST("domain_keys", e_domain_ref, .flags = GY_F_USED, .doc = "Domains (virtual hosts) served on this listener."),
    GY_LIST("active_http_filters", gy_e_string, .flags = GY_F_USED, .doc = "HTTP filters to run, in order (`gm.metrics`, `gyrus.rbac`...)."),
    GY_MAP("http_filters", gy_e_any, .flags = GY_F_USED, .type_doc = "map of filter name → any",
           .doc = "Filter configurations keyed by name with `.` as `_` (`gm_metrics`, `envoy_rbac`)."),
    GY_LIST("active_network_filters", gy_e_string, .doc = "TCP filters to run, in order."),
    GY_MAP("network_filters", gy_e_any, .type_doc = "map of filter name → any", .doc = "TCP filter configurations."),
    GY_DUR("stream_idle_timeout", .flags = GY_F_USED, .def = "5m", .doc = "A stream with no activity for this long is reset."),
    GY_DUR("request_timeout", .flags = GY_F_USED, .def = "0 (none)", .doc = "Time allowed to receive the whole request."),
    GY_DUR("drain_timeout", .flags = GY_F_USED, .def = "5s", .doc = "Grace period for connections when draining."),
    GY_DUR("delayed_close_timeout", .def = "1s", .doc = "Wait for the client to close after the proxy's last byte."),
    GY_DUR("request_headers_timeout", .flags = GY_F_USED | GY_F_GYRUS, .def = "10s",
           .doc = "Time allowed to receive the request headers (slowloris); 408 when it fires."),
    GY_DUR("idle_timeout", .flags = GY_F_USED | GY_F_GYRUS, .def = "60s", .doc = "Idle downstream keep-alive connections are closed after this."),
    GY_INT("max_request_headers_kb", 1, 96, .flags = GY_F_USED | GY_F_GYRUS, .def = "32", .doc = "Largest request header block, KiB; 431 beyond."),
    GY_INT("max_headers_count", 1, 1000, .flags = GY_F_USED | GY_F_GYRUS, .def = "100", .doc = "Most request headers; 431 beyond."),
    GY_BOOL("use_remote_address", .flags = GY_F_USED, .def = "true",
            .doc = "Append the peer address to `x-forwarded-for` and trust it as the client address."),
    GY_BOOL("generate_request_id", .flags = GY_F_USED | GY_F_GYRUS, .def = "true",
            .doc = "Give a request without a valid `x-request-id` a new one (a random UUID) and send it upstream. "
                   "`false`: a client's valid id is still passed on, but none is made (Envoy's name)."),
    GY_OBJ("access_loggers", s_access_loggers, .flags = GY_F_USED, .doc = "Access logs."),
    GY_OBJ("tracing_config", s_tracing, .doc = "Tracing."),
    GY_LIST("external_secrets", e_filter_secret, .doc = "Secrets inserted into filter configurations."),
    GY_OBJ("secret", gy_s_secret, .flags = GY_F_USED,
           .doc = "SPIFFE mTLS with the proxy's SVID from the mesh CA: requires client SVIDs (ignored when `ssl_config` gives TLS, "
                  "except its `forward_client_cert_details`)."),
    GY_ENUM("forward_client_cert_details", gy_fcc_values, .flags = GY_F_USED,
            .doc = "Handling of `x-forwarded-client-cert` (Envoy's name; else the secret's): `SANITIZE` drops it, "
                   "`SANITIZE_SET` sets ours, `APPEND_FORWARD` appends ours, `FORWARD_ONLY` passes the client's, the last "
                   "three only over mTLS; `ALWAYS_FORWARD_ONLY` passes it always (docs/identity.md)."),
    GY_OBJ("set_current_client_cert_details", gy_s_client_cert_details, .flags = GY_F_USED,
           .doc = "What our element carries besides `By` and `Hash`."),
    GY_OBJ("ssl_config", gy_s_listener_ssl, .flags = GY_F_GYRUS | GY_F_USED,
           .doc = "TLS with certificate files: the default certificate (Grey Matter sets it on domains)."),
    GY_OBJ("http_protocol_options", gy_s_http_options, .doc = "HTTP/1.1 settings."),
    GY_OBJ("http2_protocol_options", gy_s_http2_options, .flags = GY_F_USED, .doc = "HTTP/2 settings (docs/http2.md)."),
    GY_STR("checksum", .doc = "Opaque; optimistic concurrency."),
    GY_STR("org_key", .doc = "Organization."),
    GY_END,
};
const struct gy_struct gy_s_listener = { "listener", "A socket a proxy listens on.", f_listener, NULL };
static const struct gy_field e_listener = GY_OBJ(NULL, gy_s_listener, .doc = NULL);

/* ---- domain ---- */

static const struct gy_field f_domain[] = {
    GY_KEY("domain_key", .doc = "Unique key of the domain."),
    GY_REF("zone_key", "zone", .doc = "Zone."),
    GY_STR("name", .flags = GY_F_REQUIRED | GY_F_USED, .check = gy_check_host_pattern, .type_doc = "host pattern",
           .doc = "Host matched: `*` (any), an exact host, `*.suffix` or `prefix.*`; case-insensitive, port ignored."),
    GY_INT("port", 1, 65535, .flags = GY_F_REQUIRED | GY_F_USED, .doc = "Port of the listener the domain is served on."),
    GY_LIST("aliases", e_host_pattern, .flags = GY_F_USED, .doc = "More host patterns, same syntax as `name`."),
    GY_BOOL("force_https", .flags = GY_F_USED, .def = "false", .doc = "Redirect plain-HTTP requests to https (301)."),
    GY_LIST("redirects", e_redirect, .flags = GY_F_USED, .doc = "Redirects checked before routing."),
    GY_LIST("custom_headers", gy_e_header_kv, .flags = GY_F_USED, .doc = "Headers added to every response of this domain."),
    GY_OBJ("cors_config", gy_s_cors_config, .doc = "CORS."),
    GY_OBJ("ssl_config", gy_s_listener_ssl, .flags = GY_F_USED,
           .doc = "TLS for this domain: makes its listener TLS; clients asking for its names (SNI) get this certificate."),
    GY_BOOL("gzip_enabled", .def = "false", .doc = "Compress responses."),
    GY_STR("checksum", .doc = "Opaque; optimistic concurrency."),
    GY_STR("org_key", .doc = "Organization."),
    GY_END,
};
const struct gy_struct gy_s_domain = { "domain", "A virtual host: the host names and port routes are attached to.", f_domain, NULL };

/* ---- proxy ---- */

static const struct gy_field f_proxy[] = {
    GY_KEY("proxy_key", .doc = "Unique key of the proxy."),
    GY_STR("name", .flags = GY_F_REQUIRED | GY_F_NONEMPTY | GY_F_USED,
           .doc = "Service name; `gyrus proxy --name NAME` selects the proxy with this name."),
    GY_REF("zone_key", "zone", .flags = GY_F_USED, .doc = "Zone of the proxy."),
    GY_LIST("domain_keys", e_domain_ref, .flags = GY_F_USED, .doc = "Domains served by this proxy."),
    GY_LIST("listener_keys", e_listener_ref, .flags = GY_F_USED, .doc = "Listeners of this proxy."),
    GY_LIST("active_filters", gy_e_string, .doc = "Proxy-wide HTTP filters, in order."),
    GY_MAP("filters", gy_e_any, .type_doc = "map of filter name → any", .doc = "Proxy-wide filter configurations."),
    GY_LIST("active_proxy_filters", gy_e_string, .doc = "Grey Matter 1.x name of `active_filters`."),
    GY_MAP("proxy_filters", gy_e_any, .type_doc = "map of filter name → any", .doc = "Grey Matter 1.x name of `filters`."),
    GY_LIST("listeners", e_listener, .doc = "Listeners given inline (same fields as the listener kind)."),
    GY_STR("upgrades", .doc = "Allowed protocol upgrades, e.g. `websocket`."),
    GY_STR("checksum", .doc = "Opaque; optimistic concurrency."),
    GY_STR("org_key", .doc = "Organization."),
    GY_END,
};
const struct gy_struct gy_s_proxy = { "proxy", "One service's sidecar (or an edge): its domains and listeners.", f_proxy, NULL };

/* ---- zone ---- */

static const struct gy_field f_zone[] = {
    GY_KEY("zone_key", .doc = "Unique key of the zone."),
    GY_STR("name", .def = "the `zone_key`", .doc = "Display name."),
    GY_STR("checksum", .doc = "Opaque; optimistic concurrency."),
    GY_STR("org_key", .doc = "Organization."),
    GY_END,
};
const struct gy_struct gy_s_zone = { "zone", "A logical group of objects (a region, a cluster, an environment).", f_zone, NULL };
