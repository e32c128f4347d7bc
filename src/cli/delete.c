/* gyrus delete KIND KEY [--checksum SUM]: deletes an object (refused while others use it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "core/log.h"

static const char usage[] =
    "usage: gyrus delete KIND KEY [--checksum SUM] [--control URL]\n"
    "\n"
    "Deletes an object. The control plane refuses (and says which object still refers to it)\n"
    "when the mesh would no longer be valid. With --checksum, only if the object is unchanged.\n";

int gy_cmd_delete(int argc, char **argv)
{
    const char *url = NULL, *kind = NULL, *key = NULL, *sum = NULL;
    struct gy_flags f;
    struct gy_client c;
    char path[4096];

    gy_flags_init(&f, argc, argv, usage);
    while (gy_flags_next(&f)) {
        const char *pos = gy_flag_positional(&f);
        if (pos != NULL && kind == NULL)
            kind = gy_cli_kind(pos);
        else if (pos != NULL && key == NULL)
            key = pos;
        else if (gy_flag_is(&f, NULL, "--checksum"))
            sum = gy_flag_value(&f);
        else if (!gy_client_flag(&f, &url) && !gy_flags_common(&f))
            gy_flags_unknown(&f);
    }
    if (kind == NULL || key == NULL)
        gy_fatal("want KIND and KEY (usage: gyrus delete KIND KEY)");
    gy_client_init(&c, url);
    char *ek = gy_client_escape(&c, key), *es = sum ? gy_client_escape(&c, sum) : NULL;
    snprintf(path, sizeof(path), "/v1.0/%s/%s%s%s", kind, ek, es ? "?checksum=" : "", es ? es : "");
    free(ek);
    free(es);
    json_decref(gy_client_result(&c, "DELETE", path, NULL, 0));
    printf("%s \"%s\" deleted\n", kind, key);
    gy_client_dispose(&c);
    return 0;
}
