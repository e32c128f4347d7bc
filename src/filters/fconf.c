/* Filter configurations read through option tables (fconf.h). */
#include "filters/fconf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mesh/mesh.h"

void gy_fconf_init(struct gy_fconf *f, char *err, size_t errlen)
{
    f->err = err;
    f->errlen = errlen;
    f->path[0] = '\0';
    f->pathlen = 0;
    if (errlen > 0)
        err[0] = '\0';
}

int gy_fconf_fail(struct gy_fconf *f, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (f->pathlen > 0)
        snprintf(f->err, f->errlen, "%s: %s", f->path, msg);
    else
        snprintf(f->err, f->errlen, "%s", msg);
    return -1;
}

static size_t append(struct gy_fconf *f, const char *fmt, const char *name, size_t i)
{
    size_t old = f->pathlen, room = sizeof(f->path) - old;
    int n = name != NULL ? snprintf(f->path + old, room, fmt, name) : snprintf(f->path + old, room, fmt, i);

    f->pathlen = (n < 0 || (size_t)n >= room) ? sizeof(f->path) - 1 : old + (size_t)n;
    return old;
}

size_t gy_fconf_push(struct gy_fconf *f, const char *name)
{
    return append(f, f->pathlen > 0 ? ".%s" : "%s", name, 0);
}

size_t gy_fconf_pushi(struct gy_fconf *f, size_t i)
{
    return append(f, "[%zu]", NULL, i);
}

void gy_fconf_pop(struct gy_fconf *f, size_t mark)
{
    f->pathlen = mark;
    f->path[mark] = '\0';
}

const char *gy_fconf_desc(const json_t *v, char *buf, size_t len)
{
    switch (json_typeof(v)) {
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), o = 0, i;
        if (len < 8)
            return "a string";
        buf[o++] = '"';
        for (i = 0; i < n && i < len - 6; i++)
            buf[o++] = ((unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == 0x7f) ? '?' : s[i];
        if (i < n) {
            memcpy(buf + o, "...", 3);
            o += 3;
        }
        buf[o++] = '"';
        buf[o] = '\0';
        return buf;
    }
    case JSON_INTEGER:
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    case JSON_REAL:
        snprintf(buf, len, "%g", json_real_value(v));
        return buf;
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return "null";
    case JSON_ARRAY:
        return "a list";
    case JSON_OBJECT:
        return "an object";
    }
    return "a value";
}

uint32_t gy_fopt_bit(const struct gy_fopt *table, const char *name)
{
    for (unsigned i = 0; table[i].name != NULL && i < 32; i++)
        if (strcmp(table[i].name, name) == 0)
            return 1u << i;
    return 0;
}

static int read_uint(struct gy_fconf *f, const struct gy_fopt *o, const json_t *v, uint32_t *dst)
{
    char got[96];
    json_int_t n;

    if (!json_is_integer(v))
        return gy_fconf_fail(f, "must be an integer, got %s", gy_fconf_desc(v, got, sizeof(got)));
    n = json_integer_value(v);
    if (n < o->min || n > o->max)
        return gy_fconf_fail(f, "must be between %lld and %lld, got %" JSON_INTEGER_FORMAT, o->min, o->max, n);
    *dst = (uint32_t)n;
    return 0;
}

/* Envoy's FractionalPercent: {numerator: 25, denominator: HUNDRED | TEN_THOUSAND | MILLION}. */
static int read_fractional(struct gy_fconf *f, const json_t *v, uint32_t *ppm)
{
    static const char *const names[] = { "HUNDRED", "TEN_THOUSAND", "MILLION" };
    static const uint32_t scale[] = { 10000, 100, 1 };
    const json_t *num = json_object_get(v, "numerator"), *den = json_object_get(v, "denominator");
    const char *key;
    json_t *val;
    char got[96];
    size_t d = 0, mark;

    json_object_foreach((json_t *)v, key, val)
        if (strcmp(key, "numerator") != 0 && strcmp(key, "denominator") != 0)
            return gy_fconf_fail(f, "unknown field \"%s\" (a percentage object has numerator and denominator)",
                                 key);
    if (den != NULL && !json_is_null(den)) {
        for (d = 0; d < 3 && !(json_is_string(den) && strcmp(json_string_value(den), names[d]) == 0); d++)
            ;
        if (d == 3) {
            mark = gy_fconf_push(f, "denominator");
            gy_fconf_fail(f, "must be one of HUNDRED, TEN_THOUSAND, MILLION, got %s", gy_fconf_desc(den, got, sizeof(got)));
            gy_fconf_pop(f, mark);
            return -1;
        }
    }
    mark = gy_fconf_push(f, "numerator");
    if (num == NULL || !json_is_integer(num) || json_integer_value(num) < 0 || json_integer_value(num) > 1000000 ||
        (uint64_t)json_integer_value(num) * scale[d] > 1000000u) {
        if (num == NULL)
            gy_fconf_fail(f, "required");
        else
            gy_fconf_fail(f, "must be an integer between 0 and the denominator, got %s",
                          gy_fconf_desc(num, got, sizeof(got)));
        gy_fconf_pop(f, mark);
        return -1;
    }
    gy_fconf_pop(f, mark);
    *ppm = (uint32_t)json_integer_value(num) * scale[d];
    return 0;
}

static int read_percent(struct gy_fconf *f, const json_t *v, uint32_t *ppm)
{
    char got[96];
    double p;

    if (json_is_object(v))
        return read_fractional(f, v, ppm);
    if (!json_is_number(v))
        return gy_fconf_fail(f, "must be a percentage between 0 and 100, got %s", gy_fconf_desc(v, got, sizeof(got)));
    p = json_number_value(v);
    if (!(p >= 0.0 && p <= 100.0))
        return gy_fconf_fail(f, "must be a percentage between 0 and 100, got %s", gy_fconf_desc(v, got, sizeof(got)));
    *ppm = (uint32_t)lround(p * 10000.0);
    return 0;
}

static int read_duration(struct gy_fconf *f, const struct gy_fopt *o, const json_t *v, uint32_t *ms)
{
    char got[96];

    if ((!json_is_string(v) && !json_is_integer(v)) || gy_mesh_duration_ms(v, ms) != 0)
        return gy_fconf_fail(f, "must be a duration such as \"250ms\", \"5s\" or \"1m30s\", got %s",
                             gy_fconf_desc(v, got, sizeof(got)));
    if (*ms < o->min)
        return gy_fconf_fail(f, "must be at least %lldms, got %s", o->min, gy_fconf_desc(v, got, sizeof(got)));
    if (o->max > 0 && *ms > o->max)
        return gy_fconf_fail(f, "must be at most %lldms, got %s", o->max, gy_fconf_desc(v, got, sizeof(got)));
    return 0;
}

static int read_field(struct gy_fconf *f, const struct gy_fopt *o, const json_t *v, void *dst)
{
    char got[96];

    switch (o->type) {
    case GY_FOPT_UINT:
        return read_uint(f, o, v, dst);
    case GY_FOPT_PERCENT:
        return read_percent(f, v, dst);
    case GY_FOPT_DURATION:
        return read_duration(f, o, v, dst);
    case GY_FOPT_BOOL:
        if (!json_is_boolean(v))
            return gy_fconf_fail(f, "must be true or false, got %s", gy_fconf_desc(v, got, sizeof(got)));
        *(bool *)dst = json_is_true(v);
        return 0;
    case GY_FOPT_STRING:
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
            return gy_fconf_fail(f, "must be a string, got %s", gy_fconf_desc(v, got, sizeof(got)));
        if ((long long)json_string_length(v) < o->min)
            return gy_fconf_fail(f, "must not be empty");
        *(const char **)dst = json_string_value(v);
        return 0;
    case GY_FOPT_CUSTOM:
        return o->parse(f, v, dst);
    case GY_FOPT_IGNORED:
        return 0;
    }
    return gy_fconf_fail(f, "bad option table");
}

int gy_fconf_read(struct gy_fconf *f, const json_t *obj, const struct gy_fopt *table, void *dst, uint32_t *present)
{
    const char *key;
    json_t *v;
    char got[96];

    if (present != NULL)
        *present = 0;
    if (!json_is_object(obj))
        return gy_fconf_fail(f, "must be an object, got %s", gy_fconf_desc(obj, got, sizeof(got)));
    json_object_foreach((json_t *)obj, key, v) {
        const struct gy_fopt *o = table;
        unsigned i = 0;
        size_t mark;
        int rc;

        for (; o->name != NULL && strcmp(o->name, key) != 0; o++, i++)
            ;
        if (o->name == NULL) {
            snprintf(got, sizeof(got), "%s", key);
            return gy_fconf_fail(f, "unknown field \"%s\"", got);
        }
        if (json_is_null(v))
            continue;
        mark = gy_fconf_push(f, key);
        rc = read_field(f, o, v, (char *)dst + o->off);
        gy_fconf_pop(f, mark);
        if (rc != 0)
            return -1;
        if (present != NULL && i < 32)
            *present |= 1u << i;
    }
    return 0;
}
