/* Subcommands of the gyrus binary. Each takes argv with argv[0] = the command name. */
#ifndef GY_CLI_CLI_H
#define GY_CLI_CLI_H

struct gy_command {
    const char *name;
    const char *help;
    int (*run)(int argc, char **argv);
};

int gy_cmd_proxy(int argc, char **argv);
int gy_cmd_demo_service(int argc, char **argv);
int gy_cmd_dev(int argc, char **argv);
int gy_cmd_validate(int argc, char **argv);
int gy_cmd_discover(int argc, char **argv);
int gy_cmd_version(int argc, char **argv);
int gy_cmd_token(int argc, char **argv);
int gy_cmd_control(int argc, char **argv);
int gy_cmd_apply(int argc, char **argv);
int gy_cmd_get(int argc, char **argv);
int gy_cmd_list(int argc, char **argv);
int gy_cmd_delete(int argc, char **argv);
int gy_cmd_edit(int argc, char **argv);
int gy_cmd_status(int argc, char **argv);

#endif
