/*
 * The CLI's side of the control plane API (docs/control.md): one libcurl handle, the control
 * plane's URL (--control URL, else $GYRUS_CONTROL, else http://127.0.0.1:5555), kind names as
 * users type them, and one-line failures: every verb exits non-zero with
 * `<verb>: error: <reason>` on standard error, the reason being the API's error message.
 */
#ifndef GY_CLI_CLIENT_H
#define GY_CLI_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "cli/flags.h"

#define GY_CONTROL_DEFAULT "http://127.0.0.1:5555"

struct gy_client {
    void *curl;
    char base[1024];   /* without a trailing slash */
    char ca[1024];     /* https: trust anchors (--control-ca, $GYRUS_CONTROL_CA); "": the system's */
    char auth[600];    /* "Authorization: Bearer KEY" (--api-key-file, $GYRUS_API_KEY), or "" */
    long timeout_ms;
};

/* url: from --control, or NULL for $GYRUS_CONTROL or the default. Exits on failure. */
void gy_client_init(struct gy_client *c, const char *url);
void gy_client_dispose(struct gy_client *c);

/* One request. Returns 0 with *status and *json (the parsed body, NULL if empty or not JSON),
 * or -1 with a one-line reason in err when the control plane cannot be reached. */
int gy_client_call(struct gy_client *c, const char *method, const char *path, const char *body, size_t len,
                   long *status, json_t **json, char *err, size_t errlen);

/* A request whose failure ends the command: returns the "result" of a 2xx answer (new
 * reference), else exits with the error's message. */
json_t *gy_client_result(struct gy_client *c, const char *method, const char *path, const char *body, size_t len);

/* The error message of an error envelope, or a description of the status. */
const char *gy_client_error_message(const json_t *json, long status, char *buf, size_t len);

/* Percent-encodes a path segment or query value (caller frees). */
char *gy_client_escape(struct gy_client *c, const char *s);

/* Handles --control URL, --control-ca FILE and --api-key-file FILE (the last two kept for
 * gy_client_init); true if it did. */
bool gy_client_flag(struct gy_flags *f, const char **url);

/* The kind a user means: exact names, plurals ("clusters", "proxies"), "shared-rules" and
 * "sharedrules". Exits with the list of kinds when unknown. */
const char *gy_cli_kind(const char *arg);

#endif
