/* libFuzzer target: mesh loading (YAML/JSON) and validation on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "mesh/mesh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gy_mesh_error err;
    json_t *objects = NULL;

    if (gy_mesh_parse((const char *)data, size, "fuzz", &objects, &err) == 0) {
        gy_mesh_validate(objects, &err);
        json_decref(objects);
    }
    return 0;
}
