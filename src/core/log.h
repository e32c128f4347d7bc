/* Levelled logging to stderr, text or JSON. Arguments are not evaluated when the level is off. */
#ifndef GY_CORE_LOG_H
#define GY_CORE_LOG_H

#include <stdbool.h>

enum gy_log_level { GY_LOG_DEBUG, GY_LOG_INFO, GY_LOG_WARN, GY_LOG_ERROR, GY_LOG_FATAL };

extern enum gy_log_level gy_log_min_level;

/* Parses "debug|info|warn|error"; returns -1 if unknown. */
int gy_log_level_parse(const char *s);
/* "text" or "json"; returns -1 if unknown. */
int gy_log_set_format(const char *s);
void gy_log_set_level(enum gy_log_level lvl);
/* A short tag printed with each line (e.g. the subcommand). Not copied. */
void gy_log_set_component(const char *name);

void gy_log_write(enum gy_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define GY_LOG(lvl, ...)                     \
    do {                                     \
        if ((lvl) >= gy_log_min_level)       \
            gy_log_write((lvl), __VA_ARGS__); \
    } while (0)

#define gy_debug(...) GY_LOG(GY_LOG_DEBUG, __VA_ARGS__)
#define gy_info(...) GY_LOG(GY_LOG_INFO, __VA_ARGS__)
#define gy_warn(...) GY_LOG(GY_LOG_WARN, __VA_ARGS__)
#define gy_error(...) GY_LOG(GY_LOG_ERROR, __VA_ARGS__)

/* One clear line on stderr, then exit(1). Only for startup and CLI errors. */
void gy_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
