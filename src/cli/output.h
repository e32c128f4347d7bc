/* How the CLI prints mesh objects: YAML (libyaml's emitter), indented JSON, or a table. */
#ifndef GY_CLI_OUTPUT_H
#define GY_CLI_OUTPUT_H

#include <jansson.h>
#include <stdio.h>

enum gy_output { GY_OUT_TABLE, GY_OUT_YAML, GY_OUT_JSON };

/* "table", "yaml", "json" (exits on anything else). */
enum gy_output gy_output_parse(const char *s);

/* A copy of a mesh object with "kind", its key and "name" first, "checksum" last (new reference). */
json_t *gy_output_ordered(const json_t *obj);

/* Writes v as a YAML document; strings that would read back as another type are quoted.
 * Returns 0 or -1. */
int gy_yaml_write(FILE *f, const json_t *v);

/* Objects of one kind as a table: a header and one row each. */
void gy_output_table(FILE *f, const char *kind, const json_t *objects);

/* Rows of strings with a header, columns aligned. `rows` is an array of arrays of strings. */
void gy_output_rows(FILE *f, const char *const *header, size_t ncols, const json_t *rows);

/* A mesh object or a list of them in the format asked for. */
void gy_output_objects(FILE *f, enum gy_output fmt, const char *kind, const json_t *v);

#endif
