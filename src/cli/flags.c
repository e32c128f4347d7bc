#include "cli/flags.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

void gy_flags_init(struct gy_flags *f, int argc, char **argv, const char *usage)
{
    memset(f, 0, sizeof(*f));
    f->argc = argc;
    f->argv = argv;
    f->i = 0;
    f->usage = usage;
}

bool gy_flags_next(struct gy_flags *f)
{
    if (++f->i >= f->argc)
        return false;
    const char *a = f->argv[f->i];
    const char *eq = a[0] == '-' && a[1] == '-' ? strchr(a, '=') : NULL;
    if (eq != NULL && (size_t)(eq - a) < sizeof(f->name)) {
        memcpy(f->name, a, (size_t)(eq - a));
        f->name[eq - a] = '\0';
        f->cur = f->name;
        f->inline_value = eq + 1;
    } else {
        f->cur = a;
        f->inline_value = NULL;
    }
    return true;
}

bool gy_flag_is(struct gy_flags *f, const char *short_name, const char *long_name)
{
    return (short_name && strcmp(f->cur, short_name) == 0) || (long_name && strcmp(f->cur, long_name) == 0);
}

const char *gy_flag_positional(struct gy_flags *f)
{
    return f->cur[0] != '-' || f->cur[1] == '\0' ? f->cur : NULL;
}

const char *gy_flag_value(struct gy_flags *f)
{
    if (f->inline_value != NULL)
        return f->inline_value;
    if (f->i + 1 >= f->argc)
        gy_fatal("%s needs a value (see --help)", f->cur);
    return f->argv[++f->i];
}

long gy_flag_uint(struct gy_flags *f, long min, long max)
{
    const char *flag = f->cur, *v = gy_flag_value(f);
    char *end;

    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || *v == '\0' || *end != '\0' || n < min || n > max)
        gy_fatal("%s: want a number from %ld to %ld, got \"%s\"", flag, min, max, v);
    return n;
}

long long gy_parse_duration_ms(const char *s)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || v < 0 || s[0] == '-' || s[0] == '+')
        return -1;
    if (*end == '\0' || strcmp(end, "s") == 0)
        v *= 1000;
    else if (strcmp(end, "ms") == 0)
        ;
    else if (strcmp(end, "m") == 0)
        v *= 60000;
    else if (strcmp(end, "h") == 0)
        v *= 3600000;
    else
        return -1;
    if (v > 2147483647.0)
        return -1;
    return (long long)v;
}

uint32_t gy_flag_duration_ms(struct gy_flags *f)
{
    const char *flag = f->cur, *v = gy_flag_value(f);
    long long ms = gy_parse_duration_ms(v);

    if (ms < 0)
        gy_fatal("%s: want a duration like 250ms, 10s or 2m, got \"%s\"", flag, v);
    return (uint32_t)ms;
}

bool gy_flags_common(struct gy_flags *f)
{
    if (gy_flag_is(f, "-h", "--help")) {
        fputs(f->usage, stdout);
        exit(0);
    }
    if (gy_flag_is(f, NULL, "--log-level")) {
        const char *v = gy_flag_value(f);
        int lvl = gy_log_level_parse(v);
        if (lvl < 0)
            gy_fatal("--log-level: want debug, info, warn or error, got \"%s\"", v);
        gy_log_set_level((enum gy_log_level)lvl);
        return true;
    }
    if (gy_flag_is(f, NULL, "--log-format")) {
        const char *v = gy_flag_value(f);
        if (gy_log_set_format(v) != 0)
            gy_fatal("--log-format: want text or json, got \"%s\"", v);
        return true;
    }
    return false;
}

void gy_flags_unknown(struct gy_flags *f)
{
    if (f->cur[0] == '-')
        gy_fatal("unknown option %s (see --help)", f->cur);
    gy_fatal("unexpected argument \"%s\" (see --help)", f->cur);
}
