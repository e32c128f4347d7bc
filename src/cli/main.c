/* gyrus: one binary, subcommands (DESIGN.md §1). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"

static const struct gy_command commands[] = {
    { "proxy", "run the sidecar or edge proxy", gy_cmd_proxy },
    { "demo-service", "run the built-in demo HTTP service (echo, fibonacci)", gy_cmd_demo_service },
    { "dev", "run a demo mesh on this machine: demo service, sidecar, edge", gy_cmd_dev },
    { "validate", "validate a mesh file and print the first error", gy_cmd_validate },
    { "discover", "run discovery sources and print what they see, as JSON lines", gy_cmd_discover },
    { "version", "print the version", gy_cmd_version },
    { "control", "run the control plane: mesh API, config distribution, discovery", gy_cmd_control },
    { "apply", "create or replace the objects of mesh files (-f FILE|-) on the control plane", gy_cmd_apply },
    { "get", "print mesh objects: get KIND [KEY] [-o json|yaml|table]", gy_cmd_get },
    { "list", "list the objects of a kind as a table: list KIND", gy_cmd_list },
    { "delete", "delete a mesh object: delete KIND KEY", gy_cmd_delete },
    { "edit", "edit a mesh object in $EDITOR: edit KIND KEY", gy_cmd_edit },
    { "status", "proxies, their config versions and ACK/NACK, clusters and instances", gy_cmd_status },
    { "token", "create join tokens for proxies to get their first SVID", gy_cmd_token },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: gyrus <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nRun 'gyrus <command> --help' for the options of a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0)
        return gy_cmd_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            gy_log_set_component(commands[i].name);
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    gy_fatal("unknown command \"%s\" (try 'gyrus --help')", argv[1]);
}
