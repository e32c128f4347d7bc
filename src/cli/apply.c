/* gyrus apply -f FILE|- [...]: creates or replaces every object of mesh files, all or nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "core/log.h"
#include "mesh/mesh.h"

static const char usage[] =
    "usage: gyrus apply -f FILE|- [-f FILE...] [--prune] [--control URL]\n"
    "\n"
    "Sends the objects of mesh files (YAML or JSON, any order) to the control plane, which\n"
    "validates the mesh they produce as one unit and applies them all or none: each object is\n"
    "created, or replaced if its key exists. With --prune, objects not in the files are deleted.\n"
    "\n"
    "options:\n"
    "  -f, --filename FILE   mesh file, \"-\" for standard input (repeatable)\n"
    "      --prune           delete stored objects that are not in the files\n"
    "  -q, --quiet           print nothing on success\n"
    "      --control URL     control plane, default $GYRUS_CONTROL or " GY_CONTROL_DEFAULT "\n"
    "      --control-ca FILE PEM trust anchors for an https:// control plane ($GYRUS_CONTROL_CA)\n"
    "      --api-key-file FILE the API key to send, when the control plane asks for one ($GYRUS_API_KEY)\n";

static json_t *read_mesh(const char *path)
{
    struct gy_mesh_error err;
    json_t *objs = NULL;

    if (strcmp(path, "-") != 0) {
        if (gy_mesh_load_file(path, &objs, &err) != 0)
            gy_fatal("%s", err.msg);
        return objs;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            if (cap > ((size_t)64 << 20) + 65536 || (buf = realloc(buf, cap)) == NULL)
                gy_fatal("standard input: too large or out of memory");
        }
        n = fread(buf + len, 1, cap - len, stdin);
        len += n;
    } while (n > 0);
    if (ferror(stdin))
        gy_fatal("standard input: read error");
    if (gy_mesh_parse(buf, len, "-", &objs, &err) != 0)
        gy_fatal("%s", err.msg);
    free(buf);
    return objs;
}

int gy_cmd_apply(int argc, char **argv)
{
    const char *url = NULL, *files[64];
    size_t nfiles = 0;
    bool prune = false, quiet = false;
    struct gy_flags f;
    struct gy_client c;

    gy_flags_init(&f, argc, argv, usage);
    while (gy_flags_next(&f)) {
        if (gy_flag_is(&f, "-f", "--filename")) {
            if (nfiles == sizeof(files) / sizeof(files[0]))
                gy_fatal("too many files");
            files[nfiles++] = gy_flag_value(&f);
        } else if (gy_flag_is(&f, NULL, "--prune"))
            prune = true;
        else if (gy_flag_is(&f, "-q", "--quiet"))
            quiet = true;
        else if (!gy_client_flag(&f, &url) && !gy_flags_common(&f))
            gy_flags_unknown(&f);
    }
    if (nfiles == 0)
        gy_fatal("-f FILE is required (\"-\" reads standard input)");
    json_t *all = json_array();
    for (size_t i = 0; i < nfiles; i++) {
        json_t *objs = read_mesh(files[i]);
        json_array_extend(all, objs);
        json_decref(objs);
    }
    char *body = json_dumps(all, JSON_COMPACT);
    json_decref(all);
    if (body == NULL)
        gy_fatal("out of memory");
    gy_client_init(&c, url);
    json_t *res = gy_client_result(&c, "POST", prune ? "/v1.0/apply?prune=true" : "/v1.0/apply", body, strlen(body));
    free(body);
    if (!quiet) {
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(res, "objects"), i, o) {
            const char *action = json_string_value(json_object_get(o, "action"));
            if (action != NULL && strcmp(action, "unchanged") != 0)
                printf("%s \"%s\" %s\n", json_string_value(json_object_get(o, "kind")),
                       json_string_value(json_object_get(o, "key")), action);
        }
        printf("applied: %" JSON_INTEGER_FORMAT " created, %" JSON_INTEGER_FORMAT " updated, %" JSON_INTEGER_FORMAT
               " unchanged, %" JSON_INTEGER_FORMAT " deleted\n",
               json_integer_value(json_object_get(res, "created")), json_integer_value(json_object_get(res, "updated")),
               json_integer_value(json_object_get(res, "unchanged")), json_integer_value(json_object_get(res, "deleted")));
    }
    json_decref(res);
    gy_client_dispose(&c);
    return 0;
}
