#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/err.h"
#include "core/log.h"
#include "mesh/config.h"
#include "mesh/mesh.h"
#include "proxy/filter.h"

/* gyrus validate FILE [--name PROXY]: checks a mesh file (and, with --name, compiles that proxy's view
 * with its filter configurations). */
int gy_cmd_validate(int argc, char **argv)
{
    const char *path = NULL, *name = NULL;
    struct gy_mesh_error err;
    json_t *objects = NULL;
    struct gy_config *cfg = NULL;

    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--name") == 0 || strcmp(argv[i], "-n") == 0) && i + 1 < argc)
            name = argv[++i];
        else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: gyrus validate MESH_FILE [--name PROXY]\n");
            return 0;
        } else if (argv[i][0] == '-' || path != NULL)
            gy_fatal("unexpected argument \"%s\" (usage: gyrus validate MESH_FILE [--name PROXY])", argv[i]);
        else
            path = argv[i];
    }
    if (path == NULL)
        gy_fatal("missing MESH_FILE (usage: gyrus validate MESH_FILE [--name PROXY])");
    if (gy_mesh_load_file(path, &objects, &err) != 0 || gy_mesh_validate(objects, &err) != 0)
        gy_fatal("%s", err.msg);
    if (name != NULL) {
        char ferr[512];
        if (gy_config_compile(objects, name, &cfg, &err) != 0)
            gy_fatal("%s", err.msg);
        if (gy_filters_attach(cfg, ferr, sizeof(ferr)) != 0)
            gy_fatal("%s", ferr);
        gy_filters_detach(cfg);
        printf("%s: valid; proxy \"%s\": %zu listeners, %zu clusters\n", path, name, cfg->nlisteners, cfg->nclusters);
        gy_config_unref(cfg);
    } else {
        printf("%s: valid (%zu objects)\n", path, json_array_size(objects));
    }
    json_decref(objects);
    return 0;
}
