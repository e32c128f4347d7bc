/*
 * Validation of a whole mesh: one engine walks every object against the schema tables of
 * schema*.c, then the tables' check functions (check.c) apply cross-field rules.
 *
 * Pass 1 indexes the objects by kind and key (unknown kinds, missing or duplicate keys).
 * Pass 2 checks every field of every object; key references resolve through the index, so
 * the order of objects does not matter. The first error wins; objects are never modified.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/err.h"
#include "mesh/mesh.h"
#include "mesh/schema.h"

static void format(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void format(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

int gy_verr(struct gy_vctx *v, const char *fmt, ...)
{
    char msg[sizeof(v->err->msg)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (v->pathlen > 0)
        format(v->err->msg, sizeof(v->err->msg), "%s: %s: %s", v->obj, v->path, msg);
    else
        format(v->err->msg, sizeof(v->err->msg), "%s: %s", v->obj, msg);
    return -1;
}

static size_t vappend(struct gy_vctx *v, const char *sep, const char *name, size_t index, int is_index)
{
    size_t old = v->pathlen, room = sizeof(v->path) - old;
    int n;

    if (room <= 1)
        return old;
    if (is_index)
        n = snprintf(v->path + old, room, "[%zu]", index);
    else
        n = snprintf(v->path + old, room, "%s%s", sep, name);
    v->pathlen = (n < 0 || (size_t)n >= room) ? sizeof(v->path) - 1 : old + (size_t)n;
    return old;
}

size_t gy_vpush(struct gy_vctx *v, const char *name)
{
    return vappend(v, v->pathlen > 0 ? "." : "", name, 0, 0);
}

size_t gy_vpushi(struct gy_vctx *v, size_t i)
{
    return vappend(v, "", NULL, i, 1);
}

void gy_vpop(struct gy_vctx *v, size_t len)
{
    v->pathlen = len;
    v->path[len] = '\0';
}

/* `"text"` with unprintable bytes as '?' and long strings cut with "...". */
static const char *quote(const char *s, size_t n, char *buf, size_t len)
{
    size_t o = 0, i = 0, max = len > 8 ? len - 6 : 0;

    if (len < 8)
        return "\"\"";
    buf[o++] = '"';
    for (; i < n && o < max; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c < 0x20 || c == 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    if (i < n) {
        size_t lead = o; /* do not cut a UTF-8 sequence */
        while (lead > 1 && ((unsigned char)buf[lead - 1] & 0xc0) == 0x80)
            lead--;
        if (lead > 1 && (unsigned char)buf[lead - 1] >= 0xc0) {
            unsigned char c = (unsigned char)buf[lead - 1];
            size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            if (o - (lead - 1) < need)
                o = lead - 1;
        }
        memcpy(buf + o, "...", 3), o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

const char *gy_vdesc(const json_t *value, char *buf, size_t len)
{
    switch (json_typeof(value)) {
    case JSON_STRING:
        return quote(json_string_value(value), json_string_length(value), buf, len);
    case JSON_INTEGER:
        format(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
        return buf;
    case JSON_REAL:
        format(buf, len, "%g", json_real_value(value));
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

static int type_error(struct gy_vctx *v, const char *what, const json_t *value)
{
    char got[96];
    return gy_verr(v, "must be %s, got %s", what, gy_vdesc(value, got, sizeof(got)));
}

int gy_vregex(struct gy_vctx *v, const char *pattern)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
    PCRE2_UCHAR msg[160];

    if (re != NULL) {
        pcre2_code_free(re);
        return 0;
    }
    if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
        format((char *)msg, sizeof(msg), "error %d", code);
    return gy_verr(v, "invalid regex: %s at offset %zu", (const char *)msg, (size_t)off);
}

/* ---- the engine ---- */

static int check_value(struct gy_vctx *v, const struct gy_field *f, const json_t *val);

static const struct gy_field *find_field(const struct gy_struct *s, const char *name)
{
    for (const struct gy_field *f = s->fields; f->name != NULL; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static int check_struct(struct gy_vctx *v, const struct gy_struct *s, const json_t *obj, int top)
{
    const char *key;
    json_t *val;
    char q[96];

    json_object_foreach((json_t *)obj, key, val) {
        const struct gy_field *f;
        size_t mark;
        int rc;

        if (top && strcmp(key, "kind") == 0)
            continue;
        f = find_field(s, key);
        if (f == NULL)
            return gy_verr(v, "unknown field %s", quote(key, strlen(key), q, sizeof(q)));
        if (json_is_null(val))
            continue;
        mark = gy_vpush(v, key);
        rc = check_value(v, f, val);
        gy_vpop(v, mark);
        if (rc != 0)
            return rc;
    }
    for (const struct gy_field *f = s->fields; f->name != NULL; f++) {
        val = json_object_get(obj, f->name);
        if ((f->flags & GY_F_REQUIRED) && (val == NULL || json_is_null(val)))
            return gy_verr(v, "missing required field \"%s\"", f->name);
    }
    return s->check != NULL ? s->check(v, obj) : 0;
}

static int check_int(struct gy_vctx *v, const struct gy_field *f, const json_t *val)
{
    json_int_t n;

    if (!json_is_integer(val))
        return type_error(v, "an integer", val);
    n = json_integer_value(val);
    if (n >= f->min && n <= f->max)
        return 0;
    if (f->max == GY_I64)
        return gy_verr(v, "must be at least %lld, got %" JSON_INTEGER_FORMAT, f->min, n);
    return gy_verr(v, "must be between %lld and %lld, got %" JSON_INTEGER_FORMAT, f->min, f->max, n);
}

static int check_duration(struct gy_vctx *v, const struct gy_field *f, const json_t *val)
{
    uint32_t ms;
    char got[96];

    if ((!json_is_string(val) && !json_is_integer(val)) || gy_mesh_duration_ms(val, &ms) != 0)
        return gy_verr(v, "must be a duration such as \"250ms\", \"5s\" or \"1m30s\", got %s",
                       gy_vdesc(val, got, sizeof(got)));
    if (ms < f->min)
        return gy_verr(v, "must be at least %lldms, got %s", f->min, gy_vdesc(val, got, sizeof(got)));
    if (f->max > 0 && ms > f->max)
        return gy_verr(v, "must be at most %lldms, got %s", f->max, gy_vdesc(val, got, sizeof(got)));
    return 0;
}

static int check_enum(struct gy_vctx *v, const struct gy_field *f, const json_t *val)
{
    char list[256], got[96];
    size_t o = 0;

    if (json_is_string(val))
        for (const char *const *e = f->values; *e != NULL; e++)
            if (strcmp(*e, json_string_value(val)) == 0)
                return 0;
    list[0] = '\0';
    for (const char *const *e = f->values; *e != NULL && o < sizeof(list); e++) {
        int n = snprintf(list + o, sizeof(list) - o, "%s%s", o > 0 ? ", " : "", *e);
        o = n < 0 ? sizeof(list) : o + (size_t)n;
    }
    return gy_verr(v, "must be one of %s, got %s", list, gy_vdesc(val, got, sizeof(got)));
}

static int check_ref(struct gy_vctx *v, const struct gy_field *f, const json_t *val)
{
    json_t *keys;
    char q[160];

    if (!json_is_string(val))
        return type_error(v, "a string", val);
    if (json_string_length(val) == 0)
        return (f->flags & GY_F_REQUIRED) ? gy_verr(v, "must not be empty") : 0;
    keys = json_object_get(v->index, f->ref);
    if (json_object_get(keys, json_string_value(val)) == NULL)
        return gy_verr(v, "no %s %s", f->ref, gy_vdesc(val, q, sizeof(q)));
    return 0;
}

static int check_list(struct gy_vctx *v, const struct gy_field *f, const json_t *val)
{
    size_t i;
    json_t *el;

    if (!json_is_array(val)) {
        if (f->flags & GY_F_ONE_OR_LIST)
            return check_value(v, f->elem, val);
        return type_error(v, "a list", val);
    }
    if ((f->flags & GY_F_NONEMPTY) && json_array_size(val) == 0)
        return gy_verr(v, "must not be empty");
    json_array_foreach(val, i, el) {
        size_t mark = gy_vpushi(v, i);
        int rc = check_value(v, f->elem, el);
        gy_vpop(v, mark);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int check_map(struct gy_vctx *v, const struct gy_field *f, const json_t *val)
{
    const char *key;
    json_t *el;

    if (!json_is_object(val))
        return type_error(v, "an object", val);
    json_object_foreach((json_t *)val, key, el) {
        size_t mark = gy_vpush(v, key);
        int rc = check_value(v, f->elem, el);
        gy_vpop(v, mark);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int check_value(struct gy_vctx *v, const struct gy_field *f, const json_t *val)
{
    int rc = 0;

    /* Go exports (Grey Matter's own) write "" for an unset enum or duration: absent, like null. */
    if ((f->type == GY_T_DURATION || f->type == GY_T_ENUM) && !(f->flags & GY_F_REQUIRED) && json_is_string(val) &&
        json_string_length(val) == 0)
        return 0;

    switch (f->type) {
    case GY_T_STRING:
    case GY_T_KEY:
        if (!json_is_string(val))
            return type_error(v, "a string", val);
        if ((f->type == GY_T_KEY || (f->flags & GY_F_NONEMPTY)) && json_string_length(val) == 0)
            return gy_verr(v, "must not be empty");
        break;
    case GY_T_INT:
        rc = check_int(v, f, val);
        break;
    case GY_T_NUMBER:
        if (!json_is_number(val))
            return type_error(v, "a number", val);
        break;
    case GY_T_BOOL:
        if (!json_is_boolean(val))
            return type_error(v, "a boolean", val);
        break;
    case GY_T_DURATION:
        rc = check_duration(v, f, val);
        break;
    case GY_T_ENUM:
        rc = check_enum(v, f, val);
        break;
    case GY_T_REF:
        return check_ref(v, f, val);
    case GY_T_LIST:
        rc = check_list(v, f, val);
        break;
    case GY_T_MAP:
        rc = check_map(v, f, val);
        break;
    case GY_T_STRUCT:
        if (!json_is_object(val))
            return type_error(v, "an object", val);
        rc = check_struct(v, f->sub, val, 0);
        break;
    case GY_T_ANY:
        break;
    }
    if (rc == 0 && f->check != NULL)
        rc = f->check(v, val);
    return rc;
}

/* ---- objects ---- */

static void name_object(struct gy_vctx *v, const struct gy_kind *k, const json_t *obj, size_t i)
{
    const json_t *key = json_object_get(obj, k->key);
    char q[128];

    if (json_is_string(key) && json_string_length(key) > 0)
        format(v->obj, sizeof(v->obj), "%s %s", k->name, gy_vdesc(key, q, sizeof(q)));
    else
        format(v->obj, sizeof(v->obj), "object %zu (%s)", i, k->name);
    gy_vpop(v, 0);
}

/* Pass 1: kind and key of object i, and its place in the index. */
static int index_object(struct gy_vctx *v, size_t i, const json_t *obj)
{
    const struct gy_kind *k;
    const json_t *kind, *key;
    json_t *keys, *prev;
    char got[96];

    format(v->obj, sizeof(v->obj), "object %zu", i);
    gy_vpop(v, 0);
    if (!json_is_object(obj))
        return type_error(v, "an object", obj);
    kind = json_object_get(obj, "kind");
    if (kind == NULL || json_is_null(kind))
        return gy_verr(v, "missing \"kind\"");
    if (!json_is_string(kind))
        return gy_verr(v, "\"kind\" must be a string, got %s", gy_vdesc(kind, got, sizeof(got)));
    k = gy_mesh_kind(json_string_value(kind));
    if (k == NULL)
        return gy_verr(v, "unknown kind %s", gy_vdesc(kind, got, sizeof(got)));
    name_object(v, k, obj, i);
    key = json_object_get(obj, k->key);
    if (key == NULL || json_is_null(key))
        return gy_verr(v, "missing required field \"%s\"", k->key);
    gy_vpush(v, k->key);
    if (!json_is_string(key))
        return type_error(v, "a string", key);
    if (json_string_length(key) == 0)
        return gy_verr(v, "must not be empty");
    gy_vpop(v, 0);
    keys = json_object_get(v->index, k->name);
    prev = json_object_get(keys, json_string_value(key));
    if (prev != NULL)
        return gy_verr(v, "duplicate %s (also object %" JSON_INTEGER_FORMAT ")", k->key, json_integer_value(prev));
    if (json_object_set_new(keys, json_string_value(key), json_integer((json_int_t)i)) != 0)
        return gy_verr(v, "out of memory");
    return 0;
}

int gy_mesh_validate(json_t *objects, struct gy_mesh_error *err)
{
    struct gy_vctx v;
    size_t i;
    json_t *obj;
    int rc = GY_ECONFIG;

    memset(&v, 0, sizeof(v));
    v.err = err;
    v.objects = objects;
    err->msg[0] = '\0';
    if (!json_is_array(objects)) {
        format(err->msg, sizeof(err->msg), "objects: must be a list of objects");
        return GY_ECONFIG;
    }
    v.index = json_object();
    for (const struct gy_kind *k = gy_mesh_kind_table; v.index != NULL && k->name != NULL; k++)
        if (json_object_set_new(v.index, k->name, json_object()) != 0 || json_object_get(v.index, k->name) == NULL) {
            json_decref(v.index);
            v.index = NULL;
        }
    if (v.index == NULL) {
        format(err->msg, sizeof(err->msg), "out of memory");
        return GY_ENOMEM;
    }
    json_array_foreach(objects, i, obj)
        if (index_object(&v, i, obj) != 0)
            goto out;
    json_array_foreach(objects, i, obj) {
        const struct gy_kind *k = gy_mesh_kind(json_string_value(json_object_get(obj, "kind")));
        name_object(&v, k, obj, i);
        if (check_struct(&v, k->schema, obj, 1) != 0)
            goto out;
    }
    rc = 0;
out:
    json_decref(v.index);
    return rc;
}
