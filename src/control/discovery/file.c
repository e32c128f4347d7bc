/*
 * file:PATH: Grey Matter's flat-file discovery. The file is a YAML or JSON list
 *   - cluster: NAME
 *     instances: [{host, port, metadata}]
 * checked every 500 ms (stat: inode, size, mtime; a file changed in the last two seconds is
 * re-read each time, since a rewrite of the same size within one kernel clock tick keeps its
 * mtime). A missing or broken file keeps the last good snapshot, and says why once.
 *
 * The mesh loader (gy_mesh_parse) reads the YAML and JSON. It wants a list of objects of some
 * kind, so the document is handed to it as the value of a "discovery:" key: line numbers in its
 * messages are put back to the file's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "control/discovery/source.h"
#include "core/err.h"
#include "mesh/mesh.h"

#define FILE_POLL_MS 500
#define FILE_RECENT_S 2
#define FILE_MAX_BYTES ((size_t)64 << 20)

struct file_source {
    struct gy_discovery *d;
    char *path;
    struct gy_loop loop;
    struct gy_timer timer;
    struct stat seen;
    bool have_seen;
};

/* ---- the document ---- */

/* A reason into err (vsnprintf: a long path may cut it short, which is fine for a log line). */
static int say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return GY_ECONFIG;
}

static int read_all(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
    size_t cap = 65536, len = 0;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = GY_EIO;

    if (fd < 0) {
        say(err, errlen, "%s: %s", path, strerror(errno));
        return GY_EIO;
    }
    for (;;) {
        if (buf == NULL || len == cap) {
            char *nb;
            if (buf != NULL)
                cap *= 2;
            if (cap > 2 * FILE_MAX_BYTES || (nb = realloc(buf, cap)) == NULL) {
                say(err, errlen, "%s: larger than 64 MiB or out of memory", path);
                goto out;
            }
            buf = nb;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            say(err, errlen, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > FILE_MAX_BYTES) {
            say(err, errlen, "%s: larger than 64 MiB", path);
            goto out;
        }
    }
    *out = buf;
    *outlen = len;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

/* Skips blank and comment lines from `i`; returns the start of the first line with content. */
static size_t content_line(const char *t, size_t len, size_t i)
{
    while (i < len) {
        size_t j = i;
        while (j < len && (t[j] == ' ' || t[j] == '\t' || t[j] == '\r'))
            j++;
        if (j < len && t[j] != '\n' && t[j] != '#')
            return i;
        while (j < len && t[j] != '\n')
            j++;
        i = j + 1;
    }
    return len;
}

static bool blank_or_end(const char *t, size_t len, size_t i)
{
    return i >= len || t[i] == ' ' || t[i] == '\t' || t[i] == '\r' || t[i] == '\n';
}

/*
 * The text gy_mesh_parse gets: "{\"discovery\":\n" TEXT "\n}" for JSON, "discovery:\n" TEXT for
 * YAML (a block sequence may sit at the key's indentation), each one line longer than the file.
 * A YAML document marker "---" cannot follow "discovery:", so it becomes a comment.
 */
static char *wrap(const char *t, size_t len, size_t *outlen, char *err, size_t errlen, const char *path)
{
    size_t at = content_line(t, len, 0), marker = len, i, n;
    bool json;
    char *out;

    if (len - at >= 3 && memcmp(t + at, "---", 3) == 0 && blank_or_end(t, len, at + 3)) {
        marker = at;
        while (at < len && t[at] != '\n')
            at++;
        at = content_line(t, len, at);
    }
    for (i = at; i < len && (t[i] == ' ' || t[i] == '\t');)
        i++;
    if (i >= len) {
        say(err, errlen, "%s: empty (write [] for a file with no instances)", path);
        return NULL;
    }
    json = marker == len && t[i] == '[';
    if (!json && !(t[i] == '-' && blank_or_end(t, len, i + 1))) {
        say(err, errlen, "%s: the top level must be a list of {cluster, instances}", path);
        return NULL;
    }
    if ((out = malloc(len + 32)) == NULL) {
        say(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    n = (size_t)snprintf(out, 32, json ? "{\"discovery\":\n" : "discovery:\n");
    memcpy(out + n, t, len);
    if (marker < len)
        out[n + marker] = '#';
    n += len;
    if (json) {
        memcpy(out + n, "\n}", 2);
        n += 2;
    }
    *outlen = n;
    return out;
}

/* Copies a loader message, taking one off the line numbers after "PATH:" and "at line ". */
static void unwrap_message(const char *msg, const char *path, char *out, size_t outlen)
{
    size_t plen = strlen(path), o = 0;
    const char *p = msg;

    while (*p != '\0' && o + 1 < outlen) {
        const char *digits = NULL;
        if (p == msg && strncmp(p, path, plen) == 0 && p[plen] == ':' && p[plen + 1] >= '0' && p[plen + 1] <= '9')
            digits = p + plen + 1;
        else if (strncmp(p, "at line ", 8) == 0)
            digits = p + 8;
        if (digits == NULL) {
            out[o++] = *p++;
            continue;
        }
        char *end;
        long line = strtol(digits, &end, 10);
        o += (size_t)snprintf(out + o, outlen - o, "%.*s%ld", (int)(digits - p), p, line > 1 ? line - 1 : 1);
        if (o >= outlen)
            o = outlen - 1;
        p = end;
    }
    out[o] = '\0';
}

static int add_entry(json_t *snap, const json_t *entry, size_t idx, const char *path, char *err, size_t errlen)
{
    const json_t *cluster = json_object_get(entry, "cluster"), *insts = json_object_get(entry, "instances"), *v;
    const char *key;
    char why[200];
    size_t i;

    json_object_foreach((json_t *)entry, key, v) {
        if (strcmp(key, "kind") != 0 && strcmp(key, "cluster") != 0 && strcmp(key, "instances") != 0) {
            say(err, errlen, "%s: entry %zu: unknown field \"%.64s\" (want cluster, instances)", path, idx, key);
            return GY_ECONFIG;
        }
    }
    if (!json_is_string(cluster) || json_string_length(cluster) == 0) {
        say(err, errlen, "%s: entry %zu: \"cluster\" must be a non-empty string", path, idx);
        return GY_ECONFIG;
    }
    if (insts != NULL && !json_is_null(insts) && !json_is_array(insts)) {
        say(err, errlen, "%s: cluster \"%.64s\": \"instances\" must be a list", path, json_string_value(cluster));
        return GY_ECONFIG;
    }
    if (json_object_get(snap, json_string_value(cluster)) == NULL &&
        json_object_set_new(snap, json_string_value(cluster), json_array()) != 0)
        goto nomem;
    json_array_foreach((json_t *)insts, i, v) {
        json_t *inst = gy_instance_normalize(v, why, sizeof(why));
        if (inst == NULL) {
            say(err, errlen, "%s: cluster \"%.64s\": instances[%zu]: %s", path, json_string_value(cluster), i, why);
            return GY_ECONFIG;
        }
        if (gy_snapshot_add(snap, json_string_value(cluster), inst) != 0)
            goto nomem;
    }
    return 0;
nomem:
    say(err, errlen, "%s: out of memory", path);
    return GY_ENOMEM;
}

/* Reads and checks the file; a new snapshot or NULL with the reason. */
static json_t *load(const char *path, char *err, size_t errlen)
{
    char *text = NULL, *wrapped = NULL;
    size_t len = 0, wlen = 0, i;
    struct gy_mesh_error merr;
    json_t *entries = NULL, *snap = NULL, *ret = NULL, *entry;

    if (read_all(path, &text, &len, err, errlen) != 0 || (wrapped = wrap(text, len, &wlen, err, errlen, path)) == NULL)
        goto out;
    if (gy_mesh_parse(wrapped, wlen, path, &entries, &merr) != 0) {
        unwrap_message(merr.msg, path, err, errlen);
        goto out;
    }
    if ((snap = json_object()) == NULL) {
        say(err, errlen, "%s: out of memory", path);
        goto out;
    }
    json_array_foreach(entries, i, entry) {
        if (add_entry(snap, entry, i, path, err, errlen) != 0)
            goto out;
    }
    gy_snapshot_finish(snap);
    ret = snap;
    snap = NULL;
out:
    json_decref(snap);
    json_decref(entries);
    free(wrapped);
    free(text);
    return ret;
}

/* ---- the watch ---- */

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void check(struct file_source *f)
{
    char err[GY_DISCOVERY_REASON_MAX];
    struct stat st;
    json_t *snap;

    if (stat(f->path, &st) != 0) {
        f->have_seen = false;
        gy_discovery_fail(f->d, "%s: %s", f->path, strerror(errno));
        return;
    }
    if (f->have_seen && same_file(&st, &f->seen) && time(NULL) - st.st_mtim.tv_sec > FILE_RECENT_S)
        return;
    f->seen = st;
    f->have_seen = true;
    if ((snap = load(f->path, err, sizeof(err))) == NULL)
        gy_discovery_fail(f->d, "%s", err);
    else
        gy_discovery_publish(f->d, snap);
}

static void on_timer(struct gy_timer *t)
{
    struct file_source *f = GY_CONTAINER_OF(t, struct file_source, timer);

    check(f);
    gy_timer_start(&f->loop, &f->timer, FILE_POLL_MS);
}

static void on_stop(struct gy_loop *loop, void *arg)
{
    (void)arg;
    gy_loop_stop(loop);
}

static void file_run(struct gy_discovery *d)
{
    struct file_source *f = d->impl;

    check(f);
    gy_timer_start(&f->loop, &f->timer, FILE_POLL_MS);
    if (!gy_discovery_stopping(d))
        gy_loop_run(&f->loop);
    gy_timer_stop(&f->loop, &f->timer);
}

static void file_interrupt(struct gy_discovery *d)
{
    struct file_source *f = d->impl;

    while (gy_loop_post(&f->loop, on_stop, NULL) != 0)
        usleep(1000);
}

static void file_dispose(struct gy_discovery *d)
{
    struct file_source *f = d->impl;

    gy_loop_dispose(&f->loop);
    free(f->path);
    free(f);
    d->impl = NULL;
}

static int file_init(struct gy_discovery *d, const char *arg, char *err, size_t errlen)
{
    struct file_source *f;

    if (arg[0] == '\0')
        return gy_discovery_bad_spec(err, errlen, "discovery source \"%s\": want file:PATH", d->spec);
    if ((f = calloc(1, sizeof(*f))) == NULL || (f->path = strdup(arg)) == NULL || gy_loop_init(&f->loop) != 0) {
        if (f != NULL)
            free(f->path);
        free(f);
        return gy_discovery_bad_spec(err, errlen, "discovery source \"%s\": out of resources", d->spec);
    }
    f->d = d;
    gy_timer_init(&f->timer, on_timer);
    d->impl = f;
    return 0;
}

const struct gy_discovery_ops gy_discovery_file_ops = {
    .scheme = "file",
    .init = file_init,
    .run = file_run,
    .interrupt = file_interrupt,
    .dispose = file_dispose,
};
