/*
 * Reading filter configurations (the JSON of http_filters and filter_configs entries) through
 * option tables: each field has a name, a type, bounds and where the value goes. Unknown fields
 * are errors, as everywhere else in a mesh file.
 *
 * Errors are one line, `PATH: message`, PATH relative to the filter's config
 * (`abort.http_status: must be between 200 and 599, got 600`); the chain builder (filter.c)
 * puts the listener or route and the filter name in front.
 */
#ifndef GY_FILTERS_FCONF_H
#define GY_FILTERS_FCONF_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gy_fconf {
    char *err;
    size_t errlen;
    char path[160];
    size_t pathlen;
};

enum gy_fopt_type {
    GY_FOPT_UINT,     /* integer in [min, max] → uint32_t */
    GY_FOPT_PERCENT,  /* number (may be fractional) in [0, 100] → uint32_t parts per million */
    GY_FOPT_DURATION, /* "250ms", "1.5s" or integer seconds, in [min, max] ms → uint32_t ms */
    GY_FOPT_BOOL,     /* → bool */
    GY_FOPT_STRING,   /* string of at least min bytes, no NUL → const char * borrowed from the JSON */
    GY_FOPT_CUSTOM,   /* parse(f, value, dst) */
    GY_FOPT_IGNORED,  /* accepted for compatibility, not used */
};

struct gy_fopt {
    const char *name;
    enum gy_fopt_type type;
    long long min, max;
    size_t off; /* of the destination in the caller's struct */
    int (*parse)(struct gy_fconf *f, const json_t *value, void *dst);
};

#define GY_FOPT_END { .name = NULL }

void gy_fconf_init(struct gy_fconf *f, char *err, size_t errlen);

/* Sets the error to `PATH: message` (or `message` at the top); returns -1. */
int gy_fconf_fail(struct gy_fconf *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends ".name" / "[i]" to the path; returns the length to give back to gy_fconf_pop. */
size_t gy_fconf_push(struct gy_fconf *f, const char *name);
size_t gy_fconf_pushi(struct gy_fconf *f, size_t i);
void gy_fconf_pop(struct gy_fconf *f, size_t mark);

/* Describes a value for "got ...": "x" (quoted, cut), 5, 1.5, true, null, a list, an object. */
const char *gy_fconf_desc(const json_t *v, char *buf, size_t len);

/*
 * Reads object `obj` against `table` into `dst`. Fields absent (or null) are left as they are
 * (so set defaults first); bit i of *present (present may be NULL) is set when table[i] was
 * given (tables have at most 32 fields). Returns 0 or -1 with the error set.
 */
int gy_fconf_read(struct gy_fconf *f, const json_t *obj, const struct gy_fopt *table, void *dst, uint32_t *present);

/* The bit of field `name` in `present` (0 if the table has no such field). */
uint32_t gy_fopt_bit(const struct gy_fopt *table, const char *name);

#endif
