/* A small command-line flag reader shared by the subcommands: "--flag value" and "--flag=value". */
#ifndef GY_CLI_FLAGS_H
#define GY_CLI_FLAGS_H

#include <stdbool.h>
#include <stdint.h>

struct gy_flags {
    int argc;
    char **argv;
    int i;
    const char *usage;
    const char *cur;       /* the flag being looked at, without "=value" */
    const char *inline_value;
    char name[64];
};

void gy_flags_init(struct gy_flags *f, int argc, char **argv, const char *usage);
/* Advances to the next argument; false at the end. Positional arguments are errors unless
 * the caller handles them with gy_flag_positional. */
bool gy_flags_next(struct gy_flags *f);
bool gy_flag_is(struct gy_flags *f, const char *short_name, const char *long_name);
/* The current argument if it does not start with '-' (a positional), else NULL. */
const char *gy_flag_positional(struct gy_flags *f);
const char *gy_flag_value(struct gy_flags *f);
long gy_flag_uint(struct gy_flags *f, long min, long max);
uint32_t gy_flag_duration_ms(struct gy_flags *f);
/* --log-level, --log-format, --help; returns true if it handled the flag. */
bool gy_flags_common(struct gy_flags *f);
void gy_flags_unknown(struct gy_flags *f) __attribute__((noreturn));

/* Parses "250ms", "10s", "1.5s", "2m", "1h" or plain seconds; -1 if malformed. */
long long gy_parse_duration_ms(const char *s);

#endif
