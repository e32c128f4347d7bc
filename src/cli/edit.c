/*
 * gyrus edit KIND KEY: opens the object as YAML in $EDITOR and replaces it with what is saved,
 * guarded by its checksum (a change made meanwhile by someone else is refused, never lost).
 * An invalid edit reopens the editor with the error on top; saving it unchanged gives up with
 * that error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"
#include "core/log.h"
#include "mesh/mesh.h"

static const char usage[] =
    "usage: gyrus edit KIND KEY [--control URL]\n"
    "\n"
    "Opens the object in $VISUAL or $EDITOR (default vi) as YAML and applies what is saved.\n"
    "An empty file or an unchanged one changes nothing.\n";

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0;

    if (f == NULL)
        gy_fatal("%s: %s", path, strerror(errno));
    FILE *m = open_memstream(&buf, &len);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

static void write_file(const char *path, const char *kind, const char *key, const char *error, const char *body)
{
    FILE *f = fopen(path, "w");

    if (f == NULL)
        gy_fatal("%s: %s", path, strerror(errno));
    fprintf(f, "# Editing %s \"%s\". Save and quit to apply; an empty file cancels.\n", kind, key);
    if (error != NULL)
        fprintf(f, "# error: %s\n", error);
    fputs(body, f);
    if (fclose(f) != 0)
        gy_fatal("%s: %s", path, strerror(errno));
}

/* The text without the comment lines at its top (ours). */
static const char *skip_header(const char *s)
{
    while (*s == '#') {
        const char *nl = strchr(s, '\n');
        s = nl ? nl + 1 : s + strlen(s);
    }
    return s;
}

static bool blank(const char *s)
{
    for (const char *p = s; *p;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (*p == '#') {
            const char *nl = strchr(p, '\n');
            p = nl ? nl + 1 : p + strlen(p);
            continue;
        }
        if (*p != '\0')
            return false;
    }
    return true;
}

static void run_editor(const char *path)
{
    const char *ed = getenv("VISUAL");
    pid_t pid;
    int st;

    if (ed == NULL || ed[0] == '\0')
        ed = getenv("EDITOR");
    if (ed == NULL || ed[0] == '\0')
        ed = "vi";
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s \"$1\"", ed);
    if ((pid = fork()) < 0)
        gy_fatal("cannot start the editor: %s", strerror(errno));
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, "sh", path, (char *)NULL);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            gy_fatal("waiting for the editor: %s", strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        gy_fatal("the editor (%s) failed; nothing changed", ed);
}

/* The edited text as one object: the mapping is made the single item of a list (every line
 * indented under "- "), which is what the mesh parser reads. NULL with err on failure. */
static json_t *parse_edit(const char *text, const char *path, const char *kind, const char *key, char *err,
                          size_t errlen)
{
    size_t n = strlen(text), lines = 1;
    struct gy_mesh_error me;
    json_t *arr = NULL, *o;

    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    char *buf = malloc(n + 2 * lines + 3), *p = buf;
    if (buf == NULL)
        gy_fatal("out of memory");
    *p++ = '-', *p++ = ' ';
    for (size_t i = 0; i < n; i++) {
        *p++ = text[i];
        if (text[i] == '\n' && i + 1 < n)
            *p++ = ' ', *p++ = ' ';
    }
    *p = '\0';
    int rc = gy_mesh_parse(buf, (size_t)(p - buf), path, &arr, &me);
    free(buf);
    if (rc != 0) {
        snprintf(err, errlen, "%s", me.msg);
        return NULL;
    }
    o = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    const char *k = json_string_value(json_object_get(o, gy_mesh_key_field(kind)));
    if (json_array_size(arr) != 1 && o == NULL) {
        snprintf(err, errlen, "want one %s", kind);
    } else if (strcmp(json_string_value(json_object_get(o, "kind")), kind) != 0) {
        snprintf(err, errlen, "kind: cannot change a %s into something else", kind);
    } else if (k == NULL || strcmp(k, key) != 0) {
        snprintf(err, errlen, "%s: cannot be changed (create a new %s and delete this one)", gy_mesh_key_field(kind),
                 kind);
    } else {
        return o;
    }
    json_decref(o);
    return NULL;
}

int gy_cmd_edit(int argc, char **argv)
{
    const char *url = NULL, *kind = NULL, *key = NULL;
    struct gy_flags f;
    struct gy_client c;
    char path[4096], tmpl[] = "/tmp/gyrus-edit-XXXXXX.yaml", err[1024];
    char *error = NULL, *failed = NULL, *body = NULL;

    gy_flags_init(&f, argc, argv, usage);
    while (gy_flags_next(&f)) {
        const char *pos = gy_flag_positional(&f);
        if (pos != NULL && kind == NULL)
            kind = gy_cli_kind(pos);
        else if (pos != NULL && key == NULL)
            key = pos;
        else if (!gy_client_flag(&f, &url) && !gy_flags_common(&f))
            gy_flags_unknown(&f);
    }
    if (kind == NULL || key == NULL)
        gy_fatal("want KIND and KEY (usage: gyrus edit KIND KEY)");
    gy_client_init(&c, url);
    char *ek = gy_client_escape(&c, key);
    snprintf(path, sizeof(path), "/v1.0/%s/%s", kind, ek);
    free(ek);
    json_t *obj = gy_client_result(&c, "GET", path, NULL, 0), *ordered = gy_output_ordered(obj);
    json_decref(obj);
    size_t blen = 0;
    FILE *m = open_memstream(&body, &blen);
    if (m == NULL || gy_yaml_write(m, ordered) != 0 || fclose(m) != 0)
        gy_fatal("cannot write YAML");
    json_decref(ordered);
    int fd = mkstemps(tmpl, 5);
    if (fd < 0)
        gy_fatal("cannot create a temporary file: %s", strerror(errno));
    close(fd);
    for (;;) {
        write_file(tmpl, kind, key, error, body);
        run_editor(tmpl);
        char *edited = read_all(tmpl);
        const char *text = skip_header(edited);
        if (blank(edited)) {
            printf("edit: cancelled (empty file); nothing changed\n");
            free(edited);
            break;
        }
        if (strcmp(text, body) == 0) {
            if (error != NULL) { /* saved as it was after an error: give up with it */
                unlink(tmpl);
                gy_fatal("%s", error);
            }
            printf("%s \"%s\": no changes\n", kind, key);
            free(edited);
            break;
        }
        free(failed);
        failed = strdup(text);
        free(body);
        body = strdup(text);
        free(edited);
        free(error);
        error = NULL;
        json_t *o = parse_edit(body, tmpl, kind, key, err, sizeof(err));
        if (o == NULL) {
            error = strdup(err);
            continue;
        }
        char *json = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        long status;
        json_t *ans;
        if (gy_client_call(&c, "PUT", path, json, strlen(json), &status, &ans, err, sizeof(err)) != 0) {
            unlink(tmpl);
            gy_fatal("%s", err);
        }
        free(json);
        if (status >= 200 && status <= 299) {
            json_decref(ans);
            printf("%s \"%s\" edited\n", kind, key);
            break;
        }
        char buf[128];
        error = strdup(gy_client_error_message(ans, status, buf, sizeof(buf)));
        json_decref(ans);
        if (status != 400) { /* a conflict or a vanished object: reopening cannot help */
            unlink(tmpl);
            gy_fatal("%s", error);
        }
    }
    unlink(tmpl);
    free(error);
    free(failed);
    free(body);
    gy_client_dispose(&c);
    return 0;
}
