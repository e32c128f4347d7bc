#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/flags.h"
#include "core/log.h"

static const char usage[] =
    "usage: gyrus version [--control URL]\n"
    "\n"
    "Prints this binary's version and, when it answers within a second, the control plane's.\n";

int gy_cmd_version(int argc, char **argv)
{
    const char *url = NULL;
    struct gy_flags f;
    struct gy_client c;
    char err[512];
    long status;
    json_t *j = NULL;

    gy_flags_init(&f, argc, argv, usage);
    while (gy_flags_next(&f))
        if (!gy_client_flag(&f, &url) && !gy_flags_common(&f))
            gy_flags_unknown(&f);
    printf("gyrus %s\n", GY_VERSION);
    fflush(stdout);
    gy_client_init(&c, url);
    c.timeout_ms = 1000;
    if (gy_client_call(&c, "GET", "/v1.0/version", NULL, 0, &status, &j, err, sizeof(err)) == 0 && status == 200) {
        const json_t *r = json_object_get(j, "result");
        const char *v = json_string_value(json_object_get(r, "version"));
        const char *s = json_string_value(json_object_get(r, "store"));
        if (v != NULL)
            printf("control plane %s: gyrus %s (store %s)\n", c.base, v, s ? s : "?");
    }
    json_decref(j);
    gy_client_dispose(&c);
    return 0;
}
