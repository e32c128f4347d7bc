#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum gy_log_level gy_log_min_level = GY_LOG_INFO;
static bool log_json;
static const char *log_component = "gyrus";

static const char *const level_names[] = { "debug", "info", "warn", "error", "fatal" };

int gy_log_level_parse(const char *s)
{
    for (int i = 0; i <= GY_LOG_ERROR; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    if (strcmp(s, "warning") == 0)
        return GY_LOG_WARN;
    return -1;
}

int gy_log_set_format(const char *s)
{
    if (strcmp(s, "json") == 0)
        log_json = true;
    else if (strcmp(s, "text") == 0)
        log_json = false;
    else
        return -1;
    return 0;
}

void gy_log_set_level(enum gy_log_level lvl)
{
    gy_log_min_level = lvl;
}

void gy_log_set_component(const char *name)
{
    log_component = name;
}

/* Appends s to out as the body of a JSON string. */
static size_t json_escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;

    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
    return n;
}

static void log_vwrite(enum gy_log_level lvl, const char *fmt, va_list ap)
{
    char msg[2048], line[4500], ts[40];
    struct timespec now;
    struct tm tm;
    int n;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    n = (int)strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - (size_t)n, ".%03ldZ", now.tv_nsec / 1000000);

    if (log_json) {
        char esc[4200];
        json_escape(esc, sizeof(esc), msg);
        n = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"msg\":\"%s\"}\n",
                     ts, level_names[lvl], log_component, esc);
    } else {
        n = snprintf(line, sizeof(line), "%s %-5s %s: %s\n", ts, level_names[lvl], log_component, msg);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1;
    /* One write per line so that lines from several threads do not interleave. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void gy_log_write(enum gy_log_level lvl, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(lvl, fmt, ap);
    va_end(ap);
}

void gy_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (log_json) {
        log_vwrite(GY_LOG_FATAL, fmt, ap);
    } else {
        char msg[2048];
        vsnprintf(msg, sizeof(msg), fmt, ap);
        fprintf(stderr, "%s: error: %s\n", log_component, msg);
    }
    va_end(ap);
    exit(1);
}
