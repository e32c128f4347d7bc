/* gyrus token create: a join token with which a proxy gets its first SVID from the mesh CA. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "core/log.h"

static const char usage[] =
    "usage: gyrus token create [--service NAME] [--zone ZONE] [--ttl 24h] [--uses N] [--control URL]\n"
    "\n"
    "Creates a join token on the control plane's CA and prints it. A proxy started with\n"
    "`gyrus proxy --control URL --join-token TOKEN` proves itself with it once, gets its X.509-SVID\n"
    "(spiffe://<trust-domain>/<zone>/<service>), and renews it with that SVID afterwards.\n"
    "  --service, --zone   restrict the token to this identity\n"
    "  --ttl DURATION      how long the token can be used, default 24h\n"
    "  --uses N            how many times, default unlimited until it expires\n";

int gy_cmd_token(int argc, char **argv)
{
    const char *url = NULL, *verb = NULL, *service = NULL, *zone = NULL, *ttl = NULL;
    long uses = 0;
    struct gy_flags f;
    struct gy_client c;

    gy_flags_init(&f, argc, argv, usage);
    while (gy_flags_next(&f)) {
        const char *pos = gy_flag_positional(&f);
        if (pos != NULL && verb == NULL)
            verb = pos;
        else if (gy_flag_is(&f, NULL, "--service"))
            service = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--zone"))
            zone = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--ttl"))
            ttl = gy_flag_value(&f);
        else if (gy_flag_is(&f, NULL, "--uses"))
            uses = gy_flag_uint(&f, 1, 1000000);
        else if (!gy_client_flag(&f, &url) && !gy_flags_common(&f))
            gy_flags_unknown(&f);
    }
    if (verb == NULL || strcmp(verb, "create") != 0)
        gy_fatal("want `gyrus token create` (see --help)");
    json_t *req = json_object();
    if (service)
        json_object_set_new(req, "service", json_string(service));
    if (zone)
        json_object_set_new(req, "zone", json_string(zone));
    if (ttl)
        json_object_set_new(req, "ttl", json_string(ttl));
    if (uses)
        json_object_set_new(req, "uses", json_integer(uses));
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    gy_client_init(&c, url);
    json_t *res = gy_client_result(&c, "POST", "/v1.0/ca/tokens", body, strlen(body));
    printf("%s\n", json_string_value(json_object_get(res, "token")));
    json_decref(res);
    free(body);
    gy_client_dispose(&c);
    return 0;
}
