#include "cli/output.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/log.h"
#include "mesh/mesh.h"

enum gy_output gy_output_parse(const char *s)
{
    if (strcmp(s, "table") == 0 || strcmp(s, "wide") == 0)
        return GY_OUT_TABLE;
    if (strcmp(s, "yaml") == 0 || strcmp(s, "yml") == 0)
        return GY_OUT_YAML;
    if (strcmp(s, "json") == 0)
        return GY_OUT_JSON;
    gy_fatal("-o: want json, yaml or table, got \"%s\"", s);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *gy_output_ordered(const json_t *obj)
{
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    const char *keyf = kind ? gy_mesh_key_field(kind) : NULL;
    const char *first[] = { "kind", keyf, "name" };
    json_t *out = json_object(), *v;
    size_t n = json_object_size(obj), i = 0;
    const char **keys, *k;

    if (!json_is_object(obj) || out == NULL || (keys = malloc((n ? n : 1) * sizeof(*keys))) == NULL) {
        json_decref(out);
        return json_incref((json_t *)obj);
    }
    for (int f = 0; f < 3; f++)
        if (first[f] != NULL && (v = json_object_get(obj, first[f])) != NULL)
            json_object_set(out, first[f], v);
    json_object_foreach((json_t *)obj, k, v)
        keys[i++] = k;
    qsort(keys, n, sizeof(*keys), cmp_str);
    for (i = 0; i < n; i++)
        if (json_object_get(out, keys[i]) == NULL && strcmp(keys[i], "checksum") != 0)
            json_object_set(out, keys[i], json_object_get(obj, keys[i]));
    if ((v = json_object_get(obj, "checksum")) != NULL)
        json_object_set(out, "checksum", v);
    free(keys);
    return out;
}

/* ---- YAML ---- */

/* True if a plain scalar with this text would be read as something other than a string by a
 * YAML 1.1 or 1.2 reader: null, booleans, numbers, dates, sexagesimals. */
static bool ambiguous(const char *s)
{
    static const char *const words[] = { "null", "Null", "NULL", "~", "true", "True", "TRUE", "false", "False",
                                         "FALSE", "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off",
                                         "Off", "OFF", "y", "Y", "n", "N", ".inf", ".Inf", ".INF", "-.inf", "+.inf",
                                         ".nan", ".NaN", ".NAN", "<<", NULL };
    char *end;
    size_t n = strlen(s);

    if (n == 0)
        return true;
    for (const char *const *w = words; *w; w++)
        if (strcmp(s, *w) == 0)
            return true;
    (void)strtod(s, &end);
    if (*end == '\0' && !isspace((unsigned char)s[0]))
        return true;
    (void)strtoll(s, &end, 0);
    if (*end == '\0')
        return true;
    if ((s[0] == '0' && (s[1] == 'o' || s[1] == 'x' || s[1] == 'b')) || (n >= 10 && isdigit((unsigned char)s[0]) &&
                                                                      isdigit((unsigned char)s[3]) && s[4] == '-'))
        return true;
    /* YAML 1.1 sexagesimal numbers: 1:20, 190:20:30.15 */
    bool digits_colons = isdigit((unsigned char)s[0]) != 0 && strchr(s, ':') != NULL;
    for (const char *p = s; *p && digits_colons; p++)
        if (!isdigit((unsigned char)*p) && *p != ':' && *p != '.' && *p != '_')
            digits_colons = false;
    return digits_colons;
}

static int emit_scalar(yaml_emitter_t *e, const char *text, bool quote)
{
    yaml_event_t ev;

    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), !quote, 1,
                                      quote ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE))
        return -1;
    return yaml_emitter_emit(e, &ev) ? 0 : -1;
}

static int emit(yaml_emitter_t *e, const json_t *v)
{
    yaml_event_t ev;
    char buf[64];
    size_t i;
    const char *k;
    json_t *el;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                                 json_object_size(v) ? YAML_BLOCK_MAPPING_STYLE : YAML_FLOW_MAPPING_STYLE) ||
            !yaml_emitter_emit(e, &ev))
            return -1;
        json_object_foreach((json_t *)v, k, el)
            if (emit_scalar(e, k, ambiguous(k)) != 0 || emit(e, el) != 0)
                return -1;
        return yaml_mapping_end_event_initialize(&ev) && yaml_emitter_emit(e, &ev) ? 0 : -1;
    case JSON_ARRAY:
        if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                  json_array_size(v) ? YAML_BLOCK_SEQUENCE_STYLE : YAML_FLOW_SEQUENCE_STYLE) ||
            !yaml_emitter_emit(e, &ev))
            return -1;
        json_array_foreach(v, i, el)
            if (emit(e, el) != 0)
                return -1;
        return yaml_sequence_end_event_initialize(&ev) && yaml_emitter_emit(e, &ev) ? 0 : -1;
    case JSON_STRING:
        return emit_scalar(e, json_string_value(v), ambiguous(json_string_value(v)));
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return emit_scalar(e, buf, false);
    case JSON_REAL:
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
        if (strpbrk(buf, ".eEn") == NULL)
            strncat(buf, ".0", sizeof(buf) - strlen(buf) - 1);
        return emit_scalar(e, buf, false);
    case JSON_TRUE:
        return emit_scalar(e, "true", false);
    case JSON_FALSE:
        return emit_scalar(e, "false", false);
    case JSON_NULL:
        return emit_scalar(e, "null", false);
    }
    return -1;
}

int gy_yaml_write(FILE *f, const json_t *v)
{
    yaml_emitter_t e;
    yaml_event_t ev;
    int rc = -1;

    if (!yaml_emitter_initialize(&e))
        return -1;
    yaml_emitter_set_output_file(&e, f);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, 120);
    if (yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) && yaml_emitter_emit(&e, &ev) &&
        yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) && yaml_emitter_emit(&e, &ev) &&
        emit(&e, v) == 0 && yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(&e, &ev) &&
        yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(&e, &ev) && yaml_emitter_flush(&e))
        rc = 0;
    yaml_emitter_delete(&e);
    return rc;
}

/* ---- tables ---- */

static void print_cell(FILE *f, const char *s, size_t width, bool last)
{
    if (last)
        fprintf(f, "%s\n", s ? s : "");
    else
        fprintf(f, "%-*s  ", (int)width, s ? s : "");
}

void gy_output_rows(FILE *f, const char *const *header, size_t ncols, const json_t *rows)
{
    size_t w[16] = { 0 }, i;
    json_t *row;

    if (ncols > 16)
        ncols = 16;
    for (size_t c = 0; c < ncols; c++)
        w[c] = strlen(header[c]);
    json_array_foreach(rows, i, row)
        for (size_t c = 0; c < ncols; c++) {
            size_t l = strlen(json_string_value(json_array_get(row, c)) ? json_string_value(json_array_get(row, c)) : "");
            if (l > w[c])
                w[c] = l;
        }
    for (size_t c = 0; c < ncols; c++)
        print_cell(f, header[c], w[c], c + 1 == ncols);
    json_array_foreach(rows, i, row)
        for (size_t c = 0; c < ncols; c++)
            print_cell(f, json_string_value(json_array_get(row, c)), w[c], c + 1 == ncols);
}

/* A cell: strings as they are, numbers printed, lists joined with ",", absent as "-". */
static json_t *cell(const json_t *v)
{
    char buf[64];

    if (v == NULL || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0) ||
        (json_is_array(v) && json_array_size(v) == 0))
        return json_string("-");
    if (json_is_string(v))
        return json_string(json_string_value(v));
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return json_string(buf);
    }
    if (json_is_boolean(v))
        return json_string(json_is_true(v) ? "true" : "false");
    if (json_is_array(v)) {
        char *out = NULL;
        size_t len = 0, i;
        json_t *el;
        FILE *m = open_memstream(&out, &len);
        json_array_foreach(v, i, el) {
            json_t *c = cell(el);
            fprintf(m, "%s%s", i ? "," : "", json_string_value(c));
            json_decref(c);
        }
        fclose(m);
        json_t *s = json_string(out ? out : "");
        free(out);
        return s;
    }
    return json_string("...");
}

static const char *str_or(const json_t *v, const char *dflt)
{
    const char *s = json_string_value(v);
    return s != NULL ? s : dflt;
}

/* "cluster:weight,..." of the light constraints of an AllConstraints or of a rule list. */
static json_t *light_cell(const json_t *all, const json_t *rules)
{
    json_t *list = json_array(), *c, *r;
    size_t i, j;
    char buf[300];

    json_array_foreach(json_object_get(all, "light"), i, c) {
        snprintf(buf, sizeof(buf), "%s:%" JSON_INTEGER_FORMAT, str_or(json_object_get(c, "cluster_key"), "?"),
                 json_integer_value(json_object_get(c, "weight")));
        json_array_append_new(list, json_string(buf));
    }
    json_array_foreach(rules, j, r)
        json_array_foreach(json_object_get(json_object_get(r, "constraints"), "light"), i, c) {
            snprintf(buf, sizeof(buf), "%s:%" JSON_INTEGER_FORMAT,
                     str_or(json_object_get(c, "cluster_key"), "?"),
                     json_integer_value(json_object_get(c, "weight")));
            json_array_append_new(list, json_string(buf));
        }
    json_t *s = cell(list);
    json_decref(list);
    return s;
}

struct column {
    const char *title;
    const char *field;  /* NULL: computed */
};

static json_t *computed(const char *kind, const char *title, const json_t *o)
{
    if (strcmp(title, "ADDRESS") == 0) {
        char buf[300];
        snprintf(buf, sizeof(buf), "%s:%" JSON_INTEGER_FORMAT, str_or(json_object_get(o, "ip"), "0.0.0.0"),
                 json_integer_value(json_object_get(o, "port")));
        return json_string(buf);
    }
    if (strcmp(title, "PATH") == 0) {
        const json_t *m = json_object_get(o, "route_match");
        return cell(m ? json_object_get(m, "path") : json_object_get(o, "path"));
    }
    if (strcmp(title, "MATCH") == 0) {
        const json_t *m = json_object_get(o, "route_match");
        const json_t *t = json_object_get(m, "match_type");
        return t ? cell(t) : json_string("prefix");
    }
    if (strcmp(title, "CLUSTERS") == 0 && strcmp(kind, "route") == 0)
        return light_cell(NULL, json_object_get(o, "rules"));
    if (strcmp(title, "DEFAULT") == 0)
        return light_cell(json_object_get(o, "default"), NULL);
    if (strcmp(title, "INSTANCES") == 0) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%zu", json_array_size(json_object_get(o, "instances")));
        return json_string(buf);
    }
    return json_string("-");
}

void gy_output_table(FILE *f, const char *kind, const json_t *objects)
{
    static const struct {
        const char *kind;
        struct column cols[7];
    } tables[] = {
        { "zone", { { "KEY", "zone_key" }, { "NAME", "name" } } },
        { "proxy", { { "KEY", "proxy_key" }, { "NAME", "name" }, { "ZONE", "zone_key" }, { "LISTENERS", "listener_keys" },
                     { "DOMAINS", "domain_keys" } } },
        { "listener", { { "KEY", "listener_key" }, { "NAME", "name" }, { "ADDRESS", NULL }, { "PROTOCOL", "protocol" },
                        { "DOMAINS", "domain_keys" } } },
        { "domain", { { "KEY", "domain_key" }, { "NAME", "name" }, { "PORT", "port" }, { "ZONE", "zone_key" } } },
        { "route", { { "KEY", "route_key" }, { "DOMAIN", "domain_key" }, { "PATH", NULL }, { "MATCH", NULL },
                     { "SHARED_RULES", "shared_rules_key" }, { "CLUSTERS", NULL } } },
        { "shared_rules", { { "KEY", "shared_rules_key" }, { "NAME", "name" }, { "DEFAULT", NULL } } },
        { "cluster", { { "KEY", "cluster_key" }, { "NAME", "name" }, { "INSTANCES", NULL }, { "LB_POLICY", "lb_policy" } } },
    };
    const char *header[8];
    size_t ncols = 0, t, i;
    json_t *rows = json_array(), *o;

    for (t = 0; t < sizeof(tables) / sizeof(tables[0]) && strcmp(tables[t].kind, kind) != 0; t++)
        ;
    if (t == sizeof(tables) / sizeof(tables[0]))
        return;
    for (ncols = 0; ncols < 7 && tables[t].cols[ncols].title != NULL; ncols++)
        header[ncols] = tables[t].cols[ncols].title;
    json_array_foreach(objects, i, o) {
        json_t *row = json_array();
        for (size_t c = 0; c < ncols; c++) {
            const struct column *col = &tables[t].cols[c];
            json_array_append_new(row, col->field ? cell(json_object_get(o, col->field)) : computed(kind, col->title, o));
        }
        json_array_append_new(rows, row);
    }
    gy_output_rows(f, header, ncols, rows);
    json_decref(rows);
}

void gy_output_objects(FILE *f, enum gy_output fmt, const char *kind, const json_t *v)
{
    json_t *out;

    if (fmt == GY_OUT_TABLE) {
        if (json_is_array(v)) {
            gy_output_table(f, kind, v);
        } else {
            json_t *one = json_pack("[O]", v);
            gy_output_table(f, kind, one);
            json_decref(one);
        }
        return;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *o;
        out = json_array();
        json_array_foreach(v, i, o)
            json_array_append_new(out, gy_output_ordered(o));
    } else {
        out = gy_output_ordered(v);
    }
    if (fmt == GY_OUT_YAML) {
        if (gy_yaml_write(f, out) != 0)
            gy_fatal("cannot write YAML");
    } else {
        char *s = json_dumps(out, JSON_INDENT(2));
        fprintf(f, "%s\n", s ? s : "null");
        free(s);
    }
    json_decref(out);
}
