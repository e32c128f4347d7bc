/*
 * The kinds of the mesh object model and the structures several kinds share: metadata,
 * headers, redirects, CORS, TLS (ssl_config, secret) and HTTP protocol options.
 * Field names follow Grey Matter's api.cue; see schema.h for the table format.
 */
#include <string.h>

#include "mesh/schema.h"

const char *const gy_mesh_kinds[] = { "zone", "proxy", "listener", "domain", "route", "shared_rules", "cluster" };
const size_t gy_mesh_nkinds = sizeof(gy_mesh_kinds) / sizeof(gy_mesh_kinds[0]);

const struct gy_kind gy_mesh_kind_table[] = {
    { "zone", "zone_key", &gy_s_zone },
    { "proxy", "proxy_key", &gy_s_proxy },
    { "listener", "listener_key", &gy_s_listener },
    { "domain", "domain_key", &gy_s_domain },
    { "route", "route_key", &gy_s_route },
    { "shared_rules", "shared_rules_key", &gy_s_shared_rules },
    { "cluster", "cluster_key", &gy_s_cluster },
    { NULL, NULL, NULL },
};

const struct gy_kind *gy_mesh_kind(const char *name)
{
    for (const struct gy_kind *k = gy_mesh_kind_table; name != NULL && k->name != NULL; k++)
        if (strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

const char *gy_mesh_key_field(const char *kind)
{
    const struct gy_kind *k = gy_mesh_kind(kind);
    return k != NULL ? k->key : NULL;
}

/* ---- list elements ---- */

const struct gy_field gy_e_string = GY_STR(NULL, .doc = NULL);
const struct gy_field gy_e_hex = GY_STR(NULL, .check = gy_check_hex, .type_doc = "hex", .doc = NULL);
const struct gy_field gy_e_token = GY_STR(NULL, .check = gy_check_token, .type_doc = "token", .doc = NULL);
const struct gy_field gy_e_metadatum = GY_OBJ(NULL, gy_s_metadatum, .doc = NULL);
const struct gy_field gy_e_any = GY_ANY(NULL, .doc = NULL);
const struct gy_field gy_e_regex = GY_STR(NULL, .check = gy_check_regex, .type_doc = "regex", .doc = NULL);
const struct gy_field gy_e_header_kv = GY_OBJ(NULL, gy_s_header_kv, .doc = NULL);

/* ---- metadata and headers ---- */

static const struct gy_field f_metadatum[] = {
    GY_STR("key", .flags = GY_F_REQUIRED | GY_F_USED, .doc = "Name."),
    GY_STR("value", .flags = GY_F_USED, .def = "\"\"", .doc = "Value."),
    GY_END,
};
const struct gy_struct gy_s_metadatum = { "metadatum", "A key/value pair (Grey Matter `#Metadatum`).", f_metadatum, NULL };

static const struct gy_field f_header_kv[] = {
    GY_STR("key", .flags = GY_F_REQUIRED | GY_F_USED, .check = gy_check_token, .type_doc = "token",
           .doc = "Header name (an HTTP token; matched case-insensitively)."),
    GY_STR("value", .flags = GY_F_USED, .check = gy_check_field_value, .def = "\"\"", .doc = "Header value."),
    GY_END,
};
const struct gy_struct gy_s_header_kv = { "header", "A header name and value.", f_header_kv, NULL };

static const struct gy_field f_header_op[] = {
    GY_STR("key", .flags = GY_F_USED, .check = gy_check_token, .type_doc = "token",
           .doc = "Header name, Grey Matter form (`{key, value}`). Give either `key` or `header`."),
    GY_STR("value", .flags = GY_F_USED, .check = gy_check_field_value, .def = "\"\"",
           .doc = "Header value, Grey Matter form."),
    GY_OBJ("header", gy_s_header_kv, .flags = GY_F_USED,
           .doc = "Envoy form (`{header: {key, value}, append}`). Give either `key` or `header`."),
    GY_BOOL("append", .flags = GY_F_USED, .def = "true",
            .doc = "Add the header beside existing ones (`true`, Envoy's default) or replace them (`false`)."),
    GY_END,
};
const struct gy_struct gy_s_header_op = {
    "header_op", "A header to add: Grey Matter's `{key, value}` or Envoy's `{header: {key, value}, append}`.",
    f_header_op, gy_check_header_op
};

/* ---- redirects ---- */

static const char *const redirect_types[] = { "permanent", "temporary", NULL };

static const struct gy_field f_header_constraint[] = {
    GY_STR("name", .flags = GY_F_REQUIRED | GY_F_USED, .check = gy_check_token, .type_doc = "token",
           .doc = "Request header to test."),
    GY_STR("value", .flags = GY_F_USED, .check = gy_check_regex, .type_doc = "regex", .def = "\"\"",
           .doc = "Regular expression the header value must match."),
    GY_BOOL("case_sensitive", .flags = GY_F_USED, .def = "false", .doc = "Match the value case-sensitively."),
    GY_BOOL("invert", .flags = GY_F_USED, .def = "false", .doc = "Redirect when the header does *not* match."),
    GY_END,
};
static const struct gy_struct s_header_constraint = {
    "header_constraint", "A condition on a request header for a redirect.", f_header_constraint, NULL
};
static const struct gy_field e_header_constraint = GY_OBJ(NULL, s_header_constraint, .doc = NULL);

static const struct gy_field f_redirect[] = {
    GY_STR("name", .flags = GY_F_REQUIRED | GY_F_USED, .check = gy_check_token, .type_doc = "token",
           .doc = "Name of the redirect (letters, digits, `-`, `_`, ...)."),
    GY_STR("from", .flags = GY_F_REQUIRED | GY_F_USED, .check = gy_check_regex, .type_doc = "regex",
           .doc = "Regular expression matched against the request path (and query)."),
    GY_STR("to", .flags = GY_F_REQUIRED | GY_F_NONEMPTY | GY_F_USED,
           .doc = "Replacement URL or path; `$1`..`$9` insert groups captured by `from`."),
    GY_ENUM("redirect_type", redirect_types, .flags = GY_F_USED, .def = "`permanent`",
            .doc = "`permanent` answers 301, `temporary` answers 302."),
    GY_LIST("header_constraints", e_header_constraint, .flags = GY_F_USED,
            .doc = "All must hold for the redirect to apply."),
    GY_END,
};
const struct gy_struct gy_s_redirect = { "redirect", "A regex redirect (domain or route).", f_redirect, NULL };

/* ---- CORS ---- */

static const char *const origin_match_types[] = { "exact", "prefix", "suffix", "regex", NULL };

static const struct gy_field f_cors_origin[] = {
    GY_ENUM("match_type", origin_match_types, .def = "`exact`", .doc = "How `value` is compared with the Origin header."),
    GY_STR("value", .flags = GY_F_REQUIRED, .doc = "Origin, prefix, suffix or regular expression."),
    GY_END,
};
static const struct gy_struct s_cors_origin = { "cors_origin", "An allowed origin.", f_cors_origin, gy_check_cors_origin };
static const struct gy_field e_cors_origin = GY_OBJ(NULL, s_cors_origin, .doc = NULL);

static const struct gy_field f_cors_config[] = {
    GY_LIST("allowed_origins", e_cors_origin, .doc = "Origins allowed to make cross-origin requests."),
    GY_BOOL("allow_credentials", .def = "false", .doc = "Sends `Access-Control-Allow-Credentials: true`."),
    GY_LIST("exposed_headers", gy_e_token, .doc = "`Access-Control-Expose-Headers`."),
    GY_INT("max_age", 0, GY_I64, .doc = "`Access-Control-Max-Age`, seconds."),
    GY_LIST("allowed_methods", gy_e_token, .doc = "`Access-Control-Allow-Methods`."),
    GY_LIST("allowed_headers", gy_e_token, .doc = "`Access-Control-Allow-Headers`."),
    GY_END,
};
const struct gy_struct gy_s_cors_config = { "cors_config", "Cross-origin resource sharing for a domain.", f_cors_config, NULL };

/* ---- TLS ---- */

static const char *const tls_protocols[] = { "TLS_AUTO", "TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3", NULL };
static const struct gy_field e_tls_protocol = GY_ENUM(NULL, tls_protocols, .doc = NULL);

static const struct gy_field f_cert_key_pair[] = {
    GY_STR("certificate_path", .flags = GY_F_USED, .doc = "PEM certificate file: the certificate, then its intermediates."),
    GY_STR("key_path", .flags = GY_F_USED, .doc = "PEM private key file (not encrypted); must match the certificate."),
    GY_END,
};
static const struct gy_struct s_cert_key_pair = { "cert_key_pair", "A certificate and its key, as file paths.", f_cert_key_pair, NULL };
static const struct gy_field e_cert_key_pair = GY_OBJ(NULL, s_cert_key_pair, .doc = NULL);

static const struct gy_field f_data_source[] = {
    GY_STR("filename", .flags = GY_F_USED, .doc = "Read from this file (PEM); re-read when it changes."),
    GY_STR("inline_string", .flags = GY_F_USED, .doc = "The data itself (PEM)."),
    GY_END,
};
static const struct gy_struct s_data_source = { "data_source", "A file or inline data (a CRL).", f_data_source, NULL };

static const struct gy_field f_listener_ssl[] = {
    GY_LIST("cert_key_pairs", e_cert_key_pair, .flags = GY_F_USED,
            .doc = "Server certificates: one per key type (an RSA and an ECDSA one); reloaded when the files change."),
    GY_STR("cipher_filter", .flags = GY_F_USED, .def = "OpenSSL's",
           .doc = "OpenSSL cipher list for TLS 1.2, e.g. `ECDHE-ECDSA-AES128-GCM-SHA256:...` (Envoy's `[A|B]` groups accepted)."),
    GY_OBJ("crl", s_data_source, .flags = GY_F_USED, .doc = "Revocation list checked for client certificates (every level of the chain)."),
    GY_LIST("ecdh_curves", gy_e_string, .flags = GY_F_USED | GY_F_GYRUS, .def = "OpenSSL's (X25519 first)",
            .doc = "Key exchange groups offered, in order of preference, e.g. `[X25519, P-256]` (Envoy's `ecdh_curves`); FIPS mode allows P-256 and P-384 only."),
    GY_LIST("protocols", e_tls_protocol, .flags = GY_F_USED, .def = "TLS 1.2 and 1.3",
            .doc = "Allowed TLS versions: the lowest and highest listed bound them; TLSv1_0/TLSv1_1 are not offered."),
    GY_BOOL("require_client_certs", .flags = GY_F_USED, .def = "false",
            .doc = "Refuse clients without a certificate that verifies against `trust_file` (mTLS)."),
    GY_LIST("sni", gy_e_string, .flags = GY_F_ONE_OR_LIST | GY_F_USED, .def = "the domain's name and aliases",
            .doc = "Server names (host patterns) this certificate serves, picked by the client's SNI."),
    GY_STR("trust_file", .flags = GY_F_USED,
           .doc = "CA bundle that verifies client certificates; with it, certificates are asked for and verified when sent."),
    GY_STR("ocsp_staple", .flags = GY_F_USED | GY_F_GYRUS,
           .doc = "DER OCSP response file for the certificate (e.g. `openssl ocsp -respout`), stapled when a client asks; "
                  "checked to be current and \"good\", re-read when it changes."),
    GY_END,
};
const struct gy_struct gy_s_listener_ssl = { "listener_ssl_config", "TLS for incoming connections (domain, listener).", f_listener_ssl, NULL };

static const struct gy_field f_cluster_ssl[] = {
    GY_LIST("cert_key_pairs", e_cert_key_pair, .flags = GY_F_USED, .doc = "Client certificate presented to the upstream (mTLS)."),
    GY_STR("cipher_filter", .flags = GY_F_USED, .def = "OpenSSL's", .doc = "OpenSSL cipher list for TLS 1.2."),
    GY_OBJ("crl", s_data_source, .flags = GY_F_USED, .doc = "Revocation list checked for upstream certificates."),
    GY_LIST("ecdh_curves", gy_e_string, .flags = GY_F_USED | GY_F_GYRUS, .def = "OpenSSL's (X25519 first)",
            .doc = "Key exchange groups offered, in order of preference, e.g. `[X25519, P-256]` (Envoy's `ecdh_curves`); FIPS mode allows P-256 and P-384 only."),
    GY_LIST("protocols", e_tls_protocol, .flags = GY_F_USED, .def = "TLS 1.2 and 1.3", .doc = "Allowed TLS versions."),
    GY_STR("sni", .flags = GY_F_USED, .def = "the instance host when it is a name",
           .doc = "Server name sent to the upstream; the upstream certificate must then match it."),
    GY_STR("trust_file", .flags = GY_F_USED, .def = "the system store (and the name is checked)",
           .doc = "CA bundle that verifies the upstream certificate (always verified)."),
    GY_BOOL("require_client_certs", .def = "false", .doc = "Accepted for symmetry with the listener form; no effect upstream."),
    GY_END,
};
const struct gy_struct gy_s_cluster_ssl = { "cluster_ssl_config", "TLS towards a cluster's instances.", f_cluster_ssl, NULL };

const char *const gy_fcc_values[] = { "SANITIZE", "FORWARD_ONLY", "APPEND_FORWARD", "SANITIZE_SET", "ALWAYS_FORWARD_ONLY", NULL };

static const struct gy_field f_client_cert_details[] = {
    GY_BOOL("uri", .flags = GY_F_USED, .def = "false", .doc = "Include the client certificate's URI SANs (`URI=`, its SPIFFE ID)."),
    GY_BOOL("URI", .flags = GY_F_USED, .def = "false", .doc = "Same as `uri` (the spelling of api.cue)."),
    GY_BOOL("subject", .flags = GY_F_USED, .def = "false", .doc = "Include the subject DN (`Subject=\"...\"`, RFC 2253)."),
    GY_BOOL("cert", .flags = GY_F_USED, .def = "false", .doc = "Include the PEM certificate, URL-encoded (`Cert=\"...\"`)."),
    GY_BOOL("chain", .flags = GY_F_USED, .def = "false", .doc = "Include the PEM chain the client sent, leaf first, URL-encoded (`Chain=\"...\"`)."),
    GY_BOOL("dns", .flags = GY_F_USED, .def = "false", .doc = "Include each DNS SAN (`DNS=`)."),
    GY_END,
};
const struct gy_struct gy_s_client_cert_details = {
    "client_cert_details", "What goes into `x-forwarded-client-cert`.", f_client_cert_details, NULL
};

static const struct gy_field f_secret[] = {
    GY_STR("secret_key", .doc = "Identifier of this secret."),
    GY_STR("secret_name", .doc = "SPIFFE ID of this side, e.g. `spiffe://example.org/echo` (gyrus presents its SVID, whose ID this is)."),
    GY_STR("secret_validation_name", .flags = GY_F_USED,
           .doc = "Trust domain the peer's SPIFFE ID must belong to, e.g. `spiffe://example.org`."),
    GY_LIST("subject_names", gy_e_string, .flags = GY_F_USED, .doc = "SPIFFE IDs the peer may present (instead of any of the trust domain)."),
    GY_LIST("ecdh_curves", gy_e_string, .flags = GY_F_USED, .doc = "Key exchange groups, e.g. `[X25519, P-256]` (as `ssl_config.ecdh_curves`)."),
    GY_ENUM("forward_client_cert_details", gy_fcc_values, .flags = GY_F_USED,
            .doc = "Handling of `x-forwarded-client-cert` on a listener (see the listener's field of that name; clusters ignore it)."),
    GY_OBJ("set_current_client_cert_details", gy_s_client_cert_details, .flags = GY_F_USED,
           .doc = "On a listener: what our `x-forwarded-client-cert` element carries besides `By` and `Hash`."),
    GY_STR("checksum", .doc = "Opaque, kept for Grey Matter compatibility."),
    GY_END,
};
const struct gy_struct gy_s_secret = { "secret", "SPIFFE/SDS identity for mTLS (Grey Matter `#Secret`).", f_secret, NULL };

/* ---- HTTP protocol options ---- */

static const struct gy_field f_header_key_format[] = {
    GY_BOOL("proper_case_words", .def = "false", .doc = "Write HTTP/1 header names as `Content-Type` instead of lower case."),
    GY_END,
};
static const struct gy_struct s_header_key_format = { "header_key_format", "HTTP/1 header name case.", f_header_key_format, NULL };

static const struct gy_field f_http_options[] = {
    GY_BOOL("allow_absolute_url", .def = "true", .doc = "Accept absolute-form request targets (`GET http://host/path`)."),
    GY_BOOL("accept_http_10", .def = "false", .doc = "Accept HTTP/1.0 requests."),
    GY_STR("default_host_for_http_10", .doc = "Host assumed for HTTP/1.0 requests without one."),
    GY_OBJ("header_key_format", s_header_key_format, .doc = "Header name case on HTTP/1."),
    GY_BOOL("enable_trailers", .def = "false", .doc = "Pass HTTP/1 chunked trailers."),
    GY_END,
};
const struct gy_struct gy_s_http_options = { "http_protocol_options", "HTTP/1.1 settings.", f_http_options, NULL };

static const struct gy_field f_http2_options[] = {
    GY_INT("hpack_table_size", 0, 65536, .flags = GY_F_USED, .def = "4096", .doc = "HPACK dynamic table size we allow the peer (SETTINGS_HEADER_TABLE_SIZE)."),
    GY_INT("max_concurrent_streams", 1, 2147483647, .flags = GY_F_USED, .def = "100",
           .doc = "SETTINGS_MAX_CONCURRENT_STREAMS; on a cluster, streams per connection before another one is opened."),
    GY_INT("initial_stream_window_size", 65535, 16777216, .flags = GY_F_USED, .def = "65535",
           .doc = "Per-stream flow-control window; also the most a stream buffers in each direction."),
    GY_INT("initial_connection_window_size", 65535, 2147483647, .flags = GY_F_USED, .def = "1048576", .doc = "Connection flow-control window."),
    GY_INT("max_header_list_size", 1024, 1048576, .flags = GY_F_USED, .def = "`max_request_headers_kb` (listeners), 65536 (clusters)",
           .doc = "SETTINGS_MAX_HEADER_LIST_SIZE; a larger request head is answered 431 (HPACK bombs stop at it)."),
    GY_BOOL("allow_connect", .flags = GY_F_USED, .def = "false", .doc = "Allow extended CONNECT (RFC 8441): WebSocket over HTTP/2."),
    GY_INT("max_outbound_control_frames", 1, 1000000, .flags = GY_F_USED, .def = "1000",
           .doc = "SETTINGS/PING acknowledgements queued for a peer that does not read before it is cut off."),
    GY_INT("max_inbound_control_frames_per_second", 1, 1000000, .flags = GY_F_USED | GY_F_GYRUS, .def = "1000",
           .doc = "SETTINGS, PING, PRIORITY and empty frames per second before GOAWAY ENHANCE_YOUR_CALM (floods)."),
    GY_INT("max_requests_reset_per_second", 1, 1000000, .flags = GY_F_USED | GY_F_GYRUS, .def = "100",
           .doc = "Streams the client may reset per second on average (rapid reset, CVE-2023-44487)."),
    GY_INT("max_requests_reset_burst", 1, 1000000, .flags = GY_F_USED | GY_F_GYRUS, .def = "200",
           .doc = "Resets allowed in a burst before GOAWAY ENHANCE_YOUR_CALM."),
    GY_INT("max_outbound_frames", 1, GY_U32, .def = "10000", .doc = "Outbound frame queue limit (flood protection)."),
    GY_INT("max_consecutive_inbound_frames_with_empty_payload", 0, GY_U32, .def = "1", .doc = "Flood protection."),
    GY_INT("max_inbound_priority_frames_per_stream", 0, GY_U32, .def = "100", .doc = "Flood protection."),
    GY_INT("max_inbound_window_update_frames_per_data_frame_sent", 1, GY_U32, .def = "10", .doc = "Flood protection."),
    GY_BOOL("stream_error_on_invalid_http_messaging", .def = "false",
            .doc = "Reset only the stream (not the connection) on an invalid message (gyrus always does)."),
    GY_END,
};
const struct gy_struct gy_s_http2_options = { "http2_protocol_options", "HTTP/2 settings (Envoy's names).", f_http2_options, NULL };
