/*
 * Loading a mesh file: YAML or JSON text → a jansson array of objects, each with "kind".
 *
 * JSON (first non-space byte '[' or '{') goes through jansson for its exact errors; if jansson
 * refuses it, the text is tried as YAML (flow YAML also starts with '[' or '{'), and the JSON
 * error is reported when both fail. YAML goes through libyaml's event API straight into
 * jansson values, with YAML 1.2 core-schema typing of plain scalars, anchors and aliases
 * (shared by reference), `<<` merge keys, and limits against hostile input: 64 MiB of text,
 * 64 levels of nesting and 1,000,000 values after alias expansion.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "core/err.h"
#include "mesh/mesh.h"

#define MESH_MAX_BYTES ((size_t)64 << 20)
#define MESH_MAX_DEPTH 64
#define MESH_MAX_NODES 1000000

static int fail(struct gy_mesh_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct gy_mesh_error *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return GY_ECONFIG;
}

/* ---- YAML → jansson ---- */

struct yframe {
    json_t *node;      /* the array or object being filled */
    char *anchor;      /* registered when the node is complete */
    json_t *key;       /* mapping: the key waiting for its value (a string) */
    bool merge;        /* mapping: the key waiting for its value is "<<" */
    json_t *merges;    /* mapping: the value of "<<", merged when the mapping ends */
};

struct ybuild {
    const char *name;
    struct gy_mesh_error *err;
    struct yframe stack[MESH_MAX_DEPTH];
    size_t depth;
    json_t *root;
    json_t *anchors;   /* anchor name → value */
    size_t nodes;
};

static int yerr(struct ybuild *b, yaml_mark_t mark, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int yerr(struct ybuild *b, yaml_mark_t mark, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fail(b->err, "%s:%zu:%zu: %s", b->name, mark.line + 1, mark.column + 1, msg);
    return -1;
}

static bool expects_key(const struct yframe *f)
{
    return f != NULL && json_is_object(f->node) && f->key == NULL && !f->merge;
}

static struct yframe *top(struct ybuild *b)
{
    return b->depth > 0 ? &b->stack[b->depth - 1] : NULL;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

/* YAML 1.2 core float: [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE][-+]?[0-9]+ )? */
static bool is_float(const char *s, size_t n)
{
    size_t i = 0, d1 = 0, d2 = 0;

    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++, d1++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, d2++;
    }
    if (d1 == 0 && d2 == 0)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        if (!all_digits(s + i, n - i))
            return false;
        i = n;
    }
    return i == n;
}

static bool is_one_of(const char *s, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strcmp(s, *words) == 0)
            return true;
    return false;
}

/* A plain scalar: null, bool, int, float or string. NULL with *why set if out of range. */
static json_t *resolve_plain(const char *s, size_t n, const char **why)
{
    static const char *const nulls[] = { "null", "Null", "NULL", "~", NULL };
    static const char *const trues[] = { "true", "True", "TRUE", NULL };
    static const char *const falses[] = { "false", "False", "FALSE", NULL };
    size_t sign = (n > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;

    if (n == 0 || is_one_of(s, nulls))
        return json_null();
    if (is_one_of(s, trues))
        return json_true();
    if (is_one_of(s, falses))
        return json_false();
    if (all_digits(s + sign, n - sign)) {
        long long v;
        errno = 0;
        v = strtoll(s, NULL, 10);
        if (errno == ERANGE) {
            *why = "integer out of range";
            return NULL;
        }
        return json_integer(v);
    }
    if (is_float(s, n)) {
        double d = strtod(s, NULL);
        if (!isfinite(d)) {
            *why = "number out of range";
            return NULL;
        }
        return json_real(d);
    }
    return json_stringn(s, n);
}

static json_t *scalar_value(const yaml_event_t *ev, const char **why)
{
    const char *s = (const char *)ev->data.scalar.value, *tag = (const char *)ev->data.scalar.tag;
    size_t n = ev->data.scalar.length;
    json_t *v;

    *why = "out of memory";
    if (memchr(s, '\0', n) != NULL) {
        *why = "NUL character in a string";
        return NULL;
    }
    if (tag == NULL)
        return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? resolve_plain(s, n, why) : json_stringn(s, n);
    if (strcmp(tag, "!") == 0 || strcmp(tag, YAML_STR_TAG) == 0)
        return json_stringn(s, n);
    v = resolve_plain(s, n, why);
    if (v == NULL)
        return NULL;
    if ((strcmp(tag, YAML_INT_TAG) == 0 && json_is_integer(v)) || (strcmp(tag, YAML_FLOAT_TAG) == 0 && json_is_number(v)) ||
        (strcmp(tag, YAML_BOOL_TAG) == 0 && json_is_boolean(v)) || (strcmp(tag, YAML_NULL_TAG) == 0 && json_is_null(v)))
        return v;
    json_decref(v);
    *why = "unsupported tag or a value that does not match its tag";
    return NULL;
}

static int count_node(struct ybuild *b, yaml_mark_t mark, size_t n)
{
    b->nodes += n;
    if (b->nodes > MESH_MAX_NODES)
        return yerr(b, mark, "more than %d values", MESH_MAX_NODES);
    return 0;
}

/* Takes ownership of v: makes it the root, appends it, or sets it under the waiting key. */
static int add(struct ybuild *b, json_t *v, const char *anchor, yaml_mark_t mark)
{
    struct yframe *f = top(b);
    int rc = 0;

    if (anchor != NULL && json_object_set(b->anchors, anchor, v) != 0) {
        json_decref(v);
        return yerr(b, mark, "invalid anchor name");
    }
    if (f == NULL) {
        json_decref(b->root);
        b->root = v;
    } else if (json_is_array(f->node)) {
        rc = json_array_append_new(f->node, v);
    } else if (f->merge) {
        size_t i;
        json_t *el;
        bool ok = json_is_object(v) || json_is_array(v);
        json_array_foreach(v, i, el)
            ok = ok && json_is_object(el);
        f->merge = false;
        if (!ok) {
            json_decref(v);
            return yerr(b, mark, "\"<<\" needs a mapping or a list of mappings");
        }
        f->merges = v;
    } else {
        rc = json_object_setn_new(f->node, json_string_value(f->key), json_string_length(f->key), v);
        json_decref(f->key);
        f->key = NULL;
    }
    return rc != 0 ? yerr(b, mark, "out of memory") : 0;
}

/* A scalar or an alias in key position. Takes ownership of key. */
static int set_key(struct ybuild *b, json_t *key, bool merge, yaml_mark_t mark)
{
    struct yframe *f = top(b);
    char q[80];

    if (merge) {
        json_decref(key);
        if (f->merges != NULL)
            return yerr(b, mark, "duplicate key \"<<\"");
        f->merge = true;
        return 0;
    }
    if (!json_is_string(key)) {
        json_decref(key);
        return yerr(b, mark, "mapping keys must be strings (quote it)");
    }
    if (json_object_getn(f->node, json_string_value(key), json_string_length(key)) != NULL) {
        snprintf(q, sizeof(q), "%s", json_string_value(key));
        json_decref(key);
        return yerr(b, mark, "duplicate key \"%s\"", q);
    }
    f->key = key;
    return 0;
}

static int on_scalar(struct ybuild *b, const yaml_event_t *ev)
{
    const char *why, *anchor = (const char *)ev->data.scalar.anchor;
    json_t *v = scalar_value(ev, &why);

    if (v == NULL)
        return yerr(b, ev->start_mark, "%s", why);
    if (count_node(b, ev->start_mark, 1) != 0) {
        json_decref(v);
        return -1;
    }
    if (expects_key(top(b))) {
        bool merge = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && ev->data.scalar.tag == NULL &&
                     strcmp((const char *)ev->data.scalar.value, "<<") == 0;
        if (anchor != NULL && json_object_set(b->anchors, anchor, v) != 0) {
            json_decref(v);
            return yerr(b, ev->start_mark, "invalid anchor name");
        }
        return set_key(b, v, merge, ev->start_mark);
    }
    return add(b, v, anchor, ev->start_mark);
}

static int on_alias(struct ybuild *b, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    json_t *v = json_object_get(b->anchors, name);

    if (v == NULL)
        return yerr(b, ev->start_mark, "unknown anchor \"%.64s\"", name);
    if (count_node(b, ev->start_mark, 1) != 0)
        return -1;
    if (expects_key(top(b)))
        return set_key(b, json_incref(v), false, ev->start_mark);
    return add(b, json_incref(v), NULL, ev->start_mark);
}

static int on_start(struct ybuild *b, const yaml_event_t *ev, json_t *node, const char *anchor, const char *tag,
                    const char *plain_tag)
{
    struct yframe *f;
    int rc = 0;

    if (node == NULL)
        rc = yerr(b, ev->start_mark, "out of memory");
    else if (expects_key(top(b)))
        rc = yerr(b, ev->start_mark, "mapping keys must be strings, not lists or mappings");
    else if (tag != NULL && strcmp(tag, "!") != 0 && strcmp(tag, plain_tag) != 0)
        rc = yerr(b, ev->start_mark, "unsupported tag \"%.64s\"", tag);
    else if (b->depth == MESH_MAX_DEPTH)
        rc = yerr(b, ev->start_mark, "nesting deeper than %d levels", MESH_MAX_DEPTH);
    else
        rc = count_node(b, ev->start_mark, 1);
    if (rc != 0) {
        json_decref(node);
        return rc;
    }
    f = &b->stack[b->depth++];
    memset(f, 0, sizeof(*f));
    f->node = node;
    if (anchor != NULL && (f->anchor = strdup(anchor)) == NULL)
        return yerr(b, ev->start_mark, "out of memory");
    return 0;
}

/* `<<`: keys of the merged mapping(s) not already present; earlier mappings win. */
static int merge_keys(struct ybuild *b, struct yframe *f, yaml_mark_t mark)
{
    json_t *src = f->merges, *one = json_is_object(src) ? src : NULL;
    size_t i = 0;

    do {
        const char *key;
        json_t *v;
        if (one == NULL)
            one = json_array_get(src, i++);
        json_object_foreach(one, key, v) {
            if (json_object_get(f->node, key) != NULL)
                continue;
            if (count_node(b, mark, 1) != 0)
                return -1;
            if (json_object_set(f->node, key, v) != 0)
                return yerr(b, mark, "out of memory");
        }
        one = NULL;
    } while (json_is_array(src) && i < json_array_size(src));
    return 0;
}

static int on_end(struct ybuild *b, const yaml_event_t *ev)
{
    struct yframe f = b->stack[--b->depth];
    int rc = 0;

    if (f.merges != NULL)
        rc = merge_keys(b, &f, ev->start_mark);
    if (rc == 0)
        rc = add(b, f.node, f.anchor, ev->start_mark);
    else
        json_decref(f.node);
    json_decref(f.merges);
    json_decref(f.key);
    free(f.anchor);
    return rc;
}

static void parser_error(struct ybuild *b, const yaml_parser_t *p, const char *text, size_t len)
{
    const char *problem = p->problem != NULL ? p->problem : "syntax error";
    size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;

    if (p->error == YAML_MEMORY_ERROR) {
        fail(b->err, "%s: out of memory", b->name);
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        line = col = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++, col++)
            if (text[i] == '\n')
                line++, col = 0;
        fail(b->err, "%s:%zu:%zu: %s (byte 0x%02x)", b->name, line, col, problem, (unsigned)p->problem_value & 0xffu);
    } else if (p->context != NULL) {
        fail(b->err, "%s:%zu:%zu: %s (%s at line %zu, column %zu)", b->name, line, col, problem, p->context,
             p->context_mark.line + 1, p->context_mark.column + 1);
    } else {
        fail(b->err, "%s:%zu:%zu: %s", b->name, line, col, problem);
    }
}

static int yaml_event(struct ybuild *b, const yaml_event_t *ev, int *docs)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++*docs > 1)
            return yerr(b, ev->start_mark, "more than one YAML document (a mesh file holds one)");
        return 0;
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_ALIAS_EVENT:
        return on_alias(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(b, ev, json_array(), (const char *)ev->data.sequence_start.anchor,
                        (const char *)ev->data.sequence_start.tag, YAML_SEQ_TAG);
    case YAML_MAPPING_START_EVENT:
        return on_start(b, ev, json_object(), (const char *)ev->data.mapping_start.anchor,
                        (const char *)ev->data.mapping_start.tag, YAML_MAP_TAG);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_end(b, ev);
    default:
        return 0;
    }
}

static int yaml_to_json(const char *text, size_t len, const char *name, json_t **out, struct gy_mesh_error *err)
{
    struct ybuild b;
    yaml_parser_t parser;
    yaml_event_t ev;
    int rc = GY_ECONFIG, docs = 0;
    bool done = false;

    memset(&b, 0, sizeof(b));
    b.name = name;
    b.err = err;
    if (!yaml_parser_initialize(&parser))
        return fail(err, "%s: out of memory", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if ((b.anchors = json_object()) == NULL) {
        fail(err, "%s: out of memory", name);
        goto out;
    }
    while (!done) {
        int r;
        if (!yaml_parser_parse(&parser, &ev)) {
            parser_error(&b, &parser, text, len);
            goto out;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        r = yaml_event(&b, &ev, &docs);
        yaml_event_delete(&ev);
        if (r != 0)
            goto out;
    }
    if (b.root == NULL || json_is_null(b.root)) {
        fail(err, "%s: empty document (expected a list of objects)", name);
        goto out;
    }
    *out = b.root;
    b.root = NULL;
    rc = 0;
out:
    while (b.depth > 0) {
        struct yframe *f = &b.stack[--b.depth];
        json_decref(f->node);
        json_decref(f->key);
        json_decref(f->merges);
        free(f->anchor);
    }
    json_decref(b.root);
    json_decref(b.anchors);
    yaml_parser_delete(&parser);
    return rc;
}

/* ---- limits and the top level ---- */

/* 0, or 1 past MESH_MAX_NODES values (aliases count each time they appear), or 2 too deep. */
static int walk_limits(const json_t *v, int depth, size_t *nodes)
{
    const char *key;
    json_t *el;
    size_t i;
    int rc = 0;

    if (++*nodes > MESH_MAX_NODES)
        return 1;
    if ((json_is_array(v) || json_is_object(v)) && depth > MESH_MAX_DEPTH)
        return 2;
    json_array_foreach(v, i, el) {
        if ((rc = walk_limits(el, depth + 1, nodes)) != 0)
            return rc;
    }
    json_object_foreach((json_t *)v, key, el) {
        if ((rc = walk_limits(el, depth + 1, nodes)) != 0)
            return rc;
    }
    return 0;
}

/* An upper bound of the values in JSON text (1 + commas + '[' + '{' outside strings), so that
 * jansson is not asked to build millions of values only for them to be refused. */
static size_t json_values_bound(const char *text, size_t len)
{
    size_t n = 1;
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == ',' || c == '[' || c == '{') {
            n++;
        }
    }
    return n;
}

/* Appends object `el` of kind list `kind` (NULL: the element carries its own kind). */
static int add_object(json_t *out, json_t *el, const char *kind, const char *name, const char *where, size_t i,
                      struct gy_mesh_error *err)
{
    const json_t *k = json_object_get(el, "kind");
    json_t *obj;

    if (!json_is_object(el))
        return fail(err, "%s: %s %zu: must be an object, got %s", name, where, i,
                    json_is_array(el) ? "a list" : "a scalar");
    if (kind == NULL && (k == NULL || json_is_null(k)))
        return fail(err, "%s: %s %zu: missing \"kind\"", name, where, i);
    if (k != NULL && !json_is_null(k) && !json_is_string(k))
        return fail(err, "%s: %s %zu: \"kind\" must be a string", name, where, i);
    if (kind != NULL && json_is_string(k) && strcmp(json_string_value(k), kind) != 0)
        return fail(err, "%s: %s %zu: kind \"%.64s\" differs from its list", name, where, i, json_string_value(k));
    obj = json_object();
    if (obj == NULL || json_object_set_new(obj, "kind", json_string(kind != NULL ? kind : json_string_value(k))) != 0 ||
        json_object_update(obj, el) != 0 || json_array_append_new(out, obj) != 0) {
        json_decref(obj);
        return fail(err, "%s: out of memory", name);
    }
    return 0;
}

static int normalize(json_t *root, const char *name, json_t **out, struct gy_mesh_error *err)
{
    json_t *arr = json_array(), *el, *list;
    const char *kind;
    size_t i;
    int rc = 0;

    if (arr == NULL)
        return fail(err, "%s: out of memory", name);
    if (json_is_array(root)) {
        json_array_foreach(root, i, el) {
            if ((rc = add_object(arr, el, NULL, name, "object", i, err)) != 0)
                break;
        }
    } else if (json_is_object(root) && json_is_string(json_object_get(root, "kind"))) {
        rc = fail(err, "%s: the top level is a single object; put it in a list (\"- kind: ...\")", name);
    } else if (json_is_object(root)) {
        json_object_foreach(root, kind, list) {
            if (json_is_null(list))
                continue;
            if (!json_is_array(list)) {
                rc = fail(err, "%s: %.64s: must be a list of objects", name, kind);
                break;
            }
            json_array_foreach(list, i, el) {
                if ((rc = add_object(arr, el, kind, name, kind, i, err)) != 0)
                    break;
            }
            if (rc != 0)
                break;
        }
    } else {
        rc = fail(err, "%s: the top level must be a list of objects or a mapping of kind to list of objects", name);
    }
    if (rc != 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

int gy_mesh_parse(const char *text, size_t len, const char *name, json_t **out, struct gy_mesh_error *err)
{
    json_t *root = NULL;
    size_t i = 0, nodes = 0;
    int rc;

    *out = NULL;
    err->msg[0] = '\0';
    if (name == NULL)
        name = "mesh";
    if (len > MESH_MAX_BYTES)
        return fail(err, "%s: larger than 64 MiB", name);
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
        i++;
    if (i < len && (text[i] == '[' || text[i] == '{')) {
        json_error_t je;
        if (json_values_bound(text, len) > MESH_MAX_NODES)
            return fail(err, "%s: more than %d values", name, MESH_MAX_NODES);
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        if (root == NULL) {
            struct gy_mesh_error yerr;
            if (yaml_to_json(text, len, name, &root, &yerr) != 0) {
                if (je.line > 0)
                    return fail(err, "%s:%d:%d: %s", name, je.line, je.column, je.text);
                return fail(err, "%s: %s", name, je.text);
            }
        }
    } else if ((rc = yaml_to_json(text, len, name, &root, err)) != 0) {
        return rc;
    }
    switch (walk_limits(root, 1, &nodes)) {
    case 1:
        rc = fail(err, "%s: more than %d values (after expanding aliases)", name, MESH_MAX_NODES);
        break;
    case 2:
        rc = fail(err, "%s: nesting deeper than %d levels", name, MESH_MAX_DEPTH);
        break;
    default:
        rc = normalize(root, name, out, err);
    }
    json_decref(root);
    return rc;
}

int gy_mesh_load_file(const char *path, json_t **out, struct gy_mesh_error *err)
{
    size_t cap = 65536, len = 0;
    char *buf = NULL;
    int fd, rc;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, "%s: %s", path, strerror(errno));
    for (;;) {
        ssize_t n;
        if (buf == NULL || len == cap) {
            char *nb;
            if (buf != NULL)
                cap *= 2;
            if ((nb = realloc(buf, cap)) == NULL) {
                rc = fail(err, "%s: out of memory", path);
                goto out;
            }
            buf = nb;
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = fail(err, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > MESH_MAX_BYTES) {
            rc = fail(err, "%s: larger than 64 MiB", path);
            goto out;
        }
    }
    rc = gy_mesh_parse(buf, len, path, out, err);
out:
    free(buf);
    close(fd);
    return rc;
}
