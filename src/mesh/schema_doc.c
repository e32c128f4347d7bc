/*
 * The field tables of docs/config-reference.md, generated from the schema tables so that the
 * reference and the validator cannot disagree (tests/unit/test_mesh.c compares them).
 */
#include <stdio.h>
#include <string.h>

#include "mesh/schema.h"

#define MAX_STRUCTS 128

static void put_escaped(FILE *out, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
}

static void put_type(FILE *out, const struct gy_field *f)
{
    switch (f->type) {
    case GY_T_STRING:
        fputs(f->type_doc != NULL ? f->type_doc : "string", out);
        break;
    case GY_T_INT:
        if (f->max == GY_I64 && f->min == -GY_I64 - 1)
            fputs("integer", out);
        else if (f->max == GY_I64)
            fprintf(out, "integer ≥ %lld", f->min);
        else
            fprintf(out, "integer %lld..%lld", f->min, f->max);
        break;
    case GY_T_NUMBER:
        fputs("number", out);
        break;
    case GY_T_BOOL:
        fputs("boolean", out);
        break;
    case GY_T_DURATION:
        fputs("duration", out);
        if (f->min > 0)
            fprintf(out, " ≥ %lldms", f->min);
        break;
    case GY_T_ENUM:
        fputs("one of ", out);
        for (const char *const *e = f->values; *e != NULL; e++)
            fprintf(out, "%s`%s`", e == f->values ? "" : ", ", *e);
        break;
    case GY_T_KEY:
        fputs("key (unique string)", out);
        break;
    case GY_T_REF:
        fprintf(out, "[%s](#%s) key", f->ref, f->ref);
        break;
    case GY_T_LIST:
        fputs("list of ", out);
        if (f->elem->type == GY_T_REF)
            fprintf(out, "[%s](#%s) keys", f->elem->ref, f->elem->ref);
        else
            put_type(out, f->elem);
        if (f->flags & GY_F_ONE_OR_LIST)
            fputs(" (or a single one)", out);
        break;
    case GY_T_MAP:
        if (f->type_doc != NULL) {
            put_escaped(out, f->type_doc);
        } else {
            fputs("map of string → ", out);
            put_type(out, f->elem);
        }
        break;
    case GY_T_STRUCT:
        fprintf(out, "[%s](#%s)", f->sub->name, f->sub->name);
        break;
    case GY_T_ANY:
        put_escaped(out, f->type_doc != NULL ? f->type_doc : "any");
        break;
    }
}

static void put_struct(FILE *out, const struct gy_struct *s, const char *kind_key)
{
    fprintf(out, "### %s\n\n", s->name);
    put_escaped(out, s->doc);
    if (kind_key != NULL)
        fprintf(out, " Kind `%s`, key field `%s`.", s->name, kind_key);
    fputs("\n\n| Field | Type | Default | Used | Meaning |\n|---|---|---|---|---|\n", out);
    for (const struct gy_field *f = s->fields; f->name != NULL; f++) {
        fprintf(out, "| `%s`%s | ", f->name, (f->flags & GY_F_GYRUS) ? " (gyrus)" : "");
        put_type(out, f);
        fputs(" | ", out);
        if (f->flags & GY_F_REQUIRED)
            fputs("**required**", out);
        else
            put_escaped(out, f->def);
        fprintf(out, " | %s | ", (f->flags & GY_F_USED) ? "yes" : "not yet");
        put_escaped(out, f->doc);
        fputs(" |\n", out);
    }
    fputc('\n', out);
}

static size_t add_struct(const struct gy_struct **list, size_t n, const struct gy_struct *s)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == s)
            return n;
    if (n < MAX_STRUCTS)
        list[n++] = s;
    return n;
}

int gy_mesh_schema_markdown(FILE *out)
{
    const struct gy_struct *list[MAX_STRUCTS];
    size_t n = 0, nkinds;

    for (const struct gy_kind *k = gy_mesh_kind_table; k->name != NULL; k++)
        n = add_struct(list, n, k->schema);
    nkinds = n;
    for (size_t i = 0; i < n; i++)
        for (const struct gy_field *f = list[i]->fields; f->name != NULL; f++) {
            const struct gy_field *e = f;
            while ((e->type == GY_T_LIST || e->type == GY_T_MAP) && e->elem != NULL)
                e = e->elem;
            if (e->type == GY_T_STRUCT)
                n = add_struct(list, n, e->sub);
        }
    fputs("## Kinds\n\n", out);
    for (size_t i = 0; i < nkinds; i++)
        put_struct(out, list[i], gy_mesh_kind_table[i].key);
    fputs("## Nested structures\n\n", out);
    for (size_t i = nkinds; i < n; i++)
        put_struct(out, list[i], NULL);
    return n < MAX_STRUCTS ? 0 : -1;
}
