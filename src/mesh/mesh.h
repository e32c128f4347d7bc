/*
 * The mesh object model (DESIGN.md §2): loading a mesh file and validating its objects.
 *
 * A mesh file is YAML or JSON holding a list of objects, each with `kind:` and the fields of
 * that kind, Grey Matter field names (zone, proxy, listener, domain, route, shared_rules,
 * cluster). A JSON object {"zone": [...], "cluster": [...]} keyed by kind is also accepted.
 * Loading turns either format into a jansson array of objects, each carrying "kind".
 * Validation checks every field against the schema tables of schema.c (type, bounds, enum
 * values, unknown fields), duplicate keys and references between objects. It does not change
 * the objects: defaults are applied by the compiler (config.h), which can rely on every field
 * present having the right type and every key reference resolving.
 */
#ifndef GY_MESH_MESH_H
#define GY_MESH_MESH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* An error that names the object and the field:
 *   route "api": rules[0].constraints.light[0].cluster_key: no cluster "pay"
 * or, for syntax errors, the file, line and column. */
struct gy_mesh_error {
    char msg[512];
};

/* Parses a mesh document (YAML or JSON, detected from content) into a new array of objects,
 * each with a "kind" string member. `name` is used in error messages (e.g. the file path).
 * Returns 0 or GY_ECONFIG with *err set. The caller owns *out (json_decref). */
int gy_mesh_parse(const char *text, size_t len, const char *name, json_t **out, struct gy_mesh_error *err);

/* Reads and parses a file (at most 64 MiB). */
int gy_mesh_load_file(const char *path, json_t **out, struct gy_mesh_error *err);

/* Validates the objects of a whole mesh as one unit (order does not matter). Does not modify
 * them. Returns 0 or GY_ECONFIG with the first error in *err. */
int gy_mesh_validate(json_t *objects, struct gy_mesh_error *err);

/* Kind names in the order used for output: zone, proxy, listener, domain, route, shared_rules, cluster. */
extern const char *const gy_mesh_kinds[];
extern const size_t gy_mesh_nkinds;

/* The key field name of a kind ("route" → "route_key"), or NULL for an unknown kind. */
const char *gy_mesh_key_field(const char *kind);

/* Duration fields ("timeout", "connect_timeout", listener timeouts...) accept a string with a
 * unit ("250ms", "5s", "1.5s", "2m", "1h") or a non-negative integer number of seconds.
 * Converts a (validated or not) value to milliseconds; returns 0, or GY_EINVAL if malformed or
 * above 2^31 ms. */
int gy_mesh_duration_ms(const json_t *v, uint32_t *ms);

#endif
