/* Shared by the filter unit tests: JSON fixtures and config checks against a filter's compile. */
#ifndef GY_TESTS_FILTER_FIXTURES_H
#define GY_TESTS_FILTER_FIXTURES_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/filter.h"

/* JSON with ' for " so that the fixtures stay readable. */
static json_t *J(const char *text)
{
    char *s = strdup(text);
    json_error_t e;

    assert_non_null(s);
    for (char *p = s; *p != '\0'; p++)
        if (*p == '\'')
            *p = '"';
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
    if (j == NULL)
        fail_msg("fixture: %s at line %d col %d", e.text, e.line, e.column);
    free(s);
    return j;
}

static void *compile_ok(const struct gy_filter_ops *ops, const char *text)
{
    json_t *j = text != NULL ? J(text) : NULL;
    char err[400] = "";
    void *c = ops->compile(j, err, sizeof(err));

    if (c == NULL)
        fail_msg("%s: unexpected error: %s", text ? text : "(no config)", err);
    json_decref(j);
    return c;
}

static void expect_error(const struct gy_filter_ops *ops, const char *text, const char *msg)
{
    json_t *j = text != NULL ? J(text) : NULL;
    char err[400] = "";
    void *c = ops->compile(j, err, sizeof(err));

    json_decref(j);
    if (c != NULL) {
        ops->destroy(c);
        fail_msg("%s: compiled, expected: %s", text, msg);
    }
    if (strcmp(err, msg) != 0)
        fail_msg("%s:\n  got:      %s\n  expected: %s", text ? text : "(no config)", err, msg);
}

#endif
