/*
 * Schema tables of the mesh object model (internal to src/mesh).
 *
 * Every kind and every nested structure is a table of fields (STYLE.md "Option tables"): name,
 * type, bounds, enum values, referenced kind, flags, default and a line of documentation. One
 * engine (validate.c) walks an object against its table; the same tables generate the field
 * tables of docs/config-reference.md (schema_doc.c), and a unit test keeps the two equal.
 *
 * Values that are JSON null are treated as absent (Grey Matter exports write `"dark": null`).
 * Defaults are documented here and applied by the compiler (config.h), never by validation.
 */
#ifndef GY_MESH_SCHEMA_H
#define GY_MESH_SCHEMA_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "mesh/mesh.h"

enum gy_ftype {
    GY_T_STRING,   /* a string; `check` may add syntax rules */
    GY_T_INT,      /* an integer in [min, max] */
    GY_T_NUMBER,   /* an integer or a real number */
    GY_T_BOOL,     /* true or false */
    GY_T_DURATION, /* "250ms", "1m30s" or integer seconds (gy_mesh_duration_ms); [min, max] in ms if max > 0 */
    GY_T_ENUM,     /* one of `values` */
    GY_T_KEY,      /* the object's own key: a non-empty string, unique within its kind */
    GY_T_REF,      /* the key of an object of kind `ref`; "" counts as absent unless required */
    GY_T_LIST,     /* an array of `elem` */
    GY_T_MAP,      /* an object with free string keys, each value an `elem` */
    GY_T_STRUCT,   /* an object with the fields of `sub` */
    GY_T_ANY,      /* accepted as is, not inspected (filter configurations); `check` may inspect */
};

#define GY_F_REQUIRED 0x01u    /* must be present and not null */
#define GY_F_NONEMPTY 0x02u    /* string: not ""; list: at least one element */
#define GY_F_ONE_OR_LIST 0x04u /* list: a single element is accepted in place of a list */
#define GY_F_USED 0x08u        /* gyrus acts on it in this release (the docs' "used" column) */
#define GY_F_GYRUS 0x10u       /* a gyrus extension, not a Grey Matter field */

struct gy_vctx;
struct gy_struct;

/* Extra check on a value that already has the right JSON type; 0 or -1 after gy_verr(). */
typedef int (*gy_check_fn)(struct gy_vctx *v, const json_t *value);

struct gy_field {
    const char *name;
    enum gy_ftype type;
    unsigned flags;
    long long min, max;          /* INT bounds; DURATION bounds in ms (if max > 0) */
    const char *const *values;   /* ENUM: NULL-terminated */
    const char *ref;             /* REF: the kind referred to */
    const struct gy_field *elem; /* LIST, MAP: the element */
    const struct gy_struct *sub; /* STRUCT */
    gy_check_fn check;
    const char *type_doc;        /* ANY, or a STRING with a syntax: how the docs name the type */
    const char *def;             /* default as documented ("" or NULL: none) */
    const char *doc;
};

struct gy_struct {
    const char *name;             /* section name in the docs, e.g. "instance" */
    const char *doc;
    const struct gy_field *fields; /* ends with a field whose name is NULL */
    gy_check_fn check;            /* cross-field rules, run after the fields pass */
};

struct gy_kind {
    const char *name;
    const char *key;
    const struct gy_struct *schema;
};

extern const struct gy_kind gy_mesh_kind_table[];

/* The schema of a kind, or NULL. */
const struct gy_kind *gy_mesh_kind(const char *name);

/* Structures shared between kinds (schema.c). */
extern const struct gy_struct gy_s_metadatum, gy_s_header_kv, gy_s_header_op, gy_s_response_data,
    gy_s_redirect, gy_s_cors_config, gy_s_listener_ssl, gy_s_cluster_ssl, gy_s_secret,
    gy_s_http_options, gy_s_http2_options, gy_s_retry_policy, gy_s_cohort_seed, gy_s_rule,
    gy_s_all_constraints, gy_s_client_cert_details;
extern const char *const gy_fcc_values[];
/* The kinds (schema_route.c, schema_cluster.c, schema_listener.c). */
extern const struct gy_struct gy_s_zone, gy_s_proxy, gy_s_listener, gy_s_domain, gy_s_route,
    gy_s_shared_rules, gy_s_cluster;

/* Common list elements. */
extern const struct gy_field gy_e_string, gy_e_token, gy_e_regex, gy_e_metadatum, gy_e_header_kv,
    gy_e_any, gy_e_hex;

/* Table helpers: GY_INT("port", 1, 65535, .flags = GY_F_REQUIRED, .doc = "..."). */
#define GY_STR(n, ...) { .name = (n), .type = GY_T_STRING, __VA_ARGS__ }
#define GY_INT(n, lo, hi, ...) { .name = (n), .type = GY_T_INT, .min = (lo), .max = (hi), __VA_ARGS__ }
#define GY_NUM(n, ...) { .name = (n), .type = GY_T_NUMBER, __VA_ARGS__ }
#define GY_BOOL(n, ...) { .name = (n), .type = GY_T_BOOL, __VA_ARGS__ }
#define GY_DUR(n, ...) { .name = (n), .type = GY_T_DURATION, __VA_ARGS__ }
#define GY_ENUM(n, vals, ...) { .name = (n), .type = GY_T_ENUM, .values = (vals), __VA_ARGS__ }
#define GY_KEY(n, ...) { .name = (n), .type = GY_T_KEY, .flags = GY_F_REQUIRED | GY_F_USED, __VA_ARGS__ }
#define GY_REF(n, kind, ...) { .name = (n), .type = GY_T_REF, .ref = (kind), __VA_ARGS__ }
#define GY_LIST(n, el, ...) { .name = (n), .type = GY_T_LIST, .elem = &(el), __VA_ARGS__ }
#define GY_MAP(n, el, ...) { .name = (n), .type = GY_T_MAP, .elem = &(el), __VA_ARGS__ }
#define GY_OBJ(n, s, ...) { .name = (n), .type = GY_T_STRUCT, .sub = &(s), __VA_ARGS__ }
#define GY_ANY(n, ...) { .name = (n), .type = GY_T_ANY, __VA_ARGS__ }
#define GY_END { .name = NULL }
#define GY_I64 9223372036854775807LL
#define GY_U32 4294967295LL

/* ---- validation context (validate.c) ---- */

struct gy_vctx {
    struct gy_mesh_error *err;
    const json_t *objects;
    json_t *index;    /* kind -> { key -> object index } */
    char obj[160];    /* `route "api"` */
    char path[320];   /* `rules[0].constraints` */
    size_t pathlen;
};

/* Sets err to `OBJ: PATH: message` (or `OBJ: message` at the top); returns -1. */
int gy_verr(struct gy_vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends ".name" (or "name" at the top) / "[i]" to the path; returns the length to restore. */
size_t gy_vpush(struct gy_vctx *v, const char *name);
size_t gy_vpushi(struct gy_vctx *v, size_t i);
void gy_vpop(struct gy_vctx *v, size_t len);
/* Formats a value for "got ..." in messages: "x", 5, true, a list, an object. */
const char *gy_vdesc(const json_t *value, char *buf, size_t len);
/* Checks that `pattern` compiles with PCRE2; on failure sets the error and returns -1. */
int gy_vregex(struct gy_vctx *v, const char *pattern);

/* ---- checks used by the tables (check.c) ---- */
int gy_check_hex(struct gy_vctx *v, const json_t *value);

int gy_check_token(struct gy_vctx *v, const json_t *value);
int gy_check_field_value(struct gy_vctx *v, const json_t *value);
int gy_check_authority(struct gy_vctx *v, const json_t *value);
int gy_check_http_health(struct gy_vctx *v, const json_t *obj);
int gy_check_regex(struct gy_vctx *v, const json_t *value);
int gy_check_ip(struct gy_vctx *v, const json_t *value);
int gy_check_host(struct gy_vctx *v, const json_t *value);
int gy_check_host_pattern(struct gy_vctx *v, const json_t *value);
int gy_check_retry_on(struct gy_vctx *v, const json_t *value);
int gy_check_hash_func(struct gy_vctx *v, const json_t *value);
int gy_check_path(struct gy_vctx *v, const json_t *value);
int gy_check_header_op(struct gy_vctx *v, const json_t *obj);
int gy_check_constraints(struct gy_vctx *v, const json_t *obj);
int gy_check_match(struct gy_vctx *v, const json_t *obj);
int gy_check_cors_origin(struct gy_vctx *v, const json_t *obj);
int gy_check_route_match(struct gy_vctx *v, const json_t *obj);
int gy_check_route(struct gy_vctx *v, const json_t *obj);
int gy_check_hash_policy(struct gy_vctx *v, const json_t *obj);
int gy_check_ring_hash(struct gy_vctx *v, const json_t *obj);
int gy_check_header_matcher(struct gy_vctx *v, const json_t *obj);
int gy_check_health_checker(struct gy_vctx *v, const json_t *obj);

/* ---- documentation (schema_doc.c) ---- */

/* Writes the generated part of docs/config-reference.md: one table per structure. */
int gy_mesh_schema_markdown(FILE *out);

#endif
