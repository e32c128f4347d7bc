/*
 * Certificates and keys re-read from disk when they change.
 *
 * Every live owner (a listener's or cluster's TLS) is in a registry. A main-thread timer stats
 * the files its current set was built from (certificates, keys, trust files, CRLs) every second.
 * When they changed and then stayed the same for one more tick (a certificate and its key are
 * rarely replaced in the same instant), the owner's spec is built again into a new set, swapped
 * in for new connections; existing connections keep the set they hold. A build that fails (a
 * key that no longer matches, a half-written file) keeps the loaded set, says why once, and is
 * tried again when the files change again. The same timer rotates the session ticket keys.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "tls/tls_int.h"

#define WATCH_MS 1000

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gy_list reg = { &reg, &reg };
static struct gy_loop *watch_loop;
static struct gy_timer watch_timer;

void tls_registry_lock(void)
{
    pthread_mutex_lock(&reg_lock);
}

void tls_registry_unlock(void)
{
    pthread_mutex_unlock(&reg_lock);
}

struct gy_list *tls_registry(void)
{
    return &reg;
}

void tls_registry_add(struct tls_owner *o)
{
    pthread_mutex_lock(&reg_lock);
    gy_list_insert_tail(&reg, &o->link);
    pthread_mutex_unlock(&reg_lock);
}

void tls_registry_remove(struct tls_owner *o)
{
    pthread_mutex_lock(&reg_lock);
    if (gy_list_linked(&o->link))
        gy_list_remove(&o->link);
    pthread_mutex_unlock(&reg_lock);
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        h ^= (v >> (i * 8)) & 0xff;
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t tls_files_signature(const struct tls_file *files, size_t n, bool fresh)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++) {
        struct stat st;
        int err = 0;
        if (!fresh)
            st = files[i].st;
        else if (stat(files[i].path, &st) != 0)
            err = errno, memset(&st, 0, sizeof(st));
        h = mix(h, (uint64_t)st.st_dev);
        h = mix(h, (uint64_t)st.st_ino);
        h = mix(h, (uint64_t)st.st_size);
        h = mix(h, (uint64_t)st.st_mtim.tv_sec);
        h = mix(h, (uint64_t)st.st_mtim.tv_nsec);
        h = mix(h, (uint64_t)err);
    }
    return h;
}

/* Main thread, registry locked: o->cur is only replaced here, so it is read without o->lock. */
static void check_owner(struct tls_owner *o)
{
    uint64_t sig = tls_files_signature(o->cur->files, o->cur->nfiles, true);
    struct tls_set *next = NULL, *old;
    char err[512];

    if (sig == o->seen) {
        o->pending = sig;
        return;
    }
    if (sig != o->pending) {
        o->pending = sig; /* changed: wait until it stops changing */
        return;
    }
    o->seen = sig;
    if (tls_owner_build(o, &next, err, sizeof(err)) != 0) {
        atomic_fetch_add(&o->ctr->reload_failures, 1);
        gy_warn("%s: certificate files changed but cannot be used; still serving the loaded ones: %s", o->what, err);
        return;
    }
    o->seen = o->pending = tls_files_signature(next->files, next->nfiles, false);
    pthread_mutex_lock(&o->lock);
    old = o->cur;
    o->cur = next;
    pthread_mutex_unlock(&o->lock);
    tls_set_unref(old);
    atomic_fetch_add(&o->ctr->reloads, 1);
    gy_info("%s: certificates reloaded from disk", o->what);
}

static void watch_tick(struct gy_timer *t)
{
    (void)t;
    tls_tickets_tick(gy_loop_now(watch_loop));
    pthread_mutex_lock(&reg_lock);
    for (struct gy_list *n = reg.next; n != &reg; n = n->next)
        check_owner(GY_CONTAINER_OF(n, struct tls_owner, link));
    pthread_mutex_unlock(&reg_lock);
    gy_timer_start(watch_loop, &watch_timer, WATCH_MS);
}

int tls_watch_start(struct gy_loop *loop)
{
    if (loop == NULL || watch_loop != NULL)
        return 0;
    watch_loop = loop;
    gy_timer_init(&watch_timer, watch_tick);
    gy_timer_start(loop, &watch_timer, WATCH_MS);
    return 0;
}

void tls_watch_stop(void)
{
    if (watch_loop == NULL)
        return;
    gy_timer_stop(watch_loop, &watch_timer);
    watch_loop = NULL;
}
