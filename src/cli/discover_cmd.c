/*
 * gyrus discover SPEC [SPEC...]: runs discovery sources the way the control plane does and
 * prints every update as one JSON line {"source": SPEC, "snapshot": {...}} on standard output
 * (unbuffered) until SIGINT or SIGTERM. For checking a spec and what it sees, and for the tests.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "control/discovery.h"
#include "control/discovery/source.h" /* gy_discovery_check */
#include "core/log.h"

struct discover {
    struct gy_loop loop;
    struct gy_io sio;
    struct gy_discovery **sources;
    size_t nsources;
};

static const char usage[] =
    "usage: gyrus discover SPEC [SPEC...]\n"
    "\n"
    "Runs discovery sources and prints each update as a JSON line\n"
    "  {\"source\": SPEC, \"snapshot\": {CLUSTER: [{host, port, metadata}], ...}}\n"
    "until interrupted. Specs (docs/discovery.md):\n"
    "  file:PATH\n"
    "  dns:NAME[:PORT]=CLUSTER[@RESOLVER]\n"
    "  etcd:http://HOST:PORT/PREFIX\n"
    "  consul:http://HOST:PORT[?dc=DC]\n"
    "  kubernetes:https://HOST:PORT[?namespace=NS&label=KEY&port=NAME]\n";

/* One write per line, straight to fd 1: a line never mixes with log lines from other threads. */
static int write_line(const char *text)
{
    size_t len = strlen(text), off = 0;
    char *line = malloc(len + 1);

    if (line == NULL)
        return -1;
    memcpy(line, text, len);
    line[len++] = '\n';
    while (off < len) {
        ssize_t n = write(STDOUT_FILENO, line + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    free(line);
    return off == len ? 0 : -1;
}

static void on_update(void *arg, const char *source, json_t *snapshot)
{
    struct discover *dc = arg;
    json_t *line = json_pack("{s:s, s:o}", "source", source, "snapshot", snapshot);
    char *text = line != NULL ? json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

    if (text == NULL || write_line(text) != 0) {
        gy_error("cannot write an update to standard output: %s", text == NULL ? "out of memory" : strerror(errno));
        gy_loop_stop(&dc->loop);
    }
    free(text);
    json_decref(line);
}

static void on_signal(struct gy_io *io, unsigned events)
{
    struct discover *dc = GY_CONTAINER_OF(io, struct discover, sio);
    struct signalfd_siginfo si;

    (void)events;
    while (read(io->fd, &si, sizeof(si)) == sizeof(si))
        gy_loop_stop(&dc->loop);
}

static void stop_all(struct discover *dc)
{
    for (size_t i = 0; i < dc->nsources; i++)
        gy_discovery_stop(dc->sources[i]);
    dc->nsources = 0;
}

int gy_cmd_discover(int argc, char **argv)
{
    static struct discover dc;
    char err[512] = "";
    struct gy_flags f;
    sigset_t set;
    size_t nspecs = 0;
    int sfd;

    /* Every spec is checked before any source starts, so that a bad one is the only output. */
    gy_flags_init(&f, argc, argv, usage);
    while (gy_flags_next(&f)) {
        const char *spec = gy_flag_positional(&f);
        if (spec == NULL && !gy_flags_common(&f))
            gy_flags_unknown(&f);
        if (spec != NULL && gy_discovery_check(spec, err, sizeof(err)) != 0)
            gy_fatal("%s", err);
        nspecs += spec != NULL;
    }
    if (nspecs == 0)
        gy_fatal("no discovery source given (see --help)");
    if ((dc.sources = calloc((size_t)argc, sizeof(*dc.sources))) == NULL)
        gy_fatal("out of memory");
    /* Blocked before any source thread exists, so that every thread inherits the mask and the
     * signals reach the signalfd. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (gy_loop_init(&dc.loop) != 0 || (sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
        gy_io_start(&dc.loop, &dc.sio, sfd, GY_IO_READ, on_signal) != 0)
        gy_fatal("cannot set up the event loop");
    gy_flags_init(&f, argc, argv, usage);
    while (gy_flags_next(&f) && err[0] == '\0') {
        const char *spec = gy_flag_positional(&f);
        if (spec == NULL) {
            gy_flags_common(&f); /* again, to step over the values of options */
            continue;
        }
        if ((dc.sources[dc.nsources] = gy_discovery_start(&dc.loop, spec, on_update, &dc, err, sizeof(err))) != NULL)
            dc.nsources++;
    }
    if (err[0] == '\0')
        gy_loop_run(&dc.loop);
    stop_all(&dc);
    gy_io_stop(&dc.sio);
    close(sfd);
    gy_loop_dispose(&dc.loop);
    free(dc.sources);
    if (err[0] != '\0')
        gy_fatal("%s", err);
    return 0;
}
