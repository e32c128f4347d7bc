#include <stdio.h>

#include "cli/cli.h"

int gy_cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("gyrus %s\n", GY_VERSION);
    return 0;
}
