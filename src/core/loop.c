#include "core/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/err.h"
#include "core/time.h"

#define MAX_EVENTS 256
#define WHEEL_MASK (GY_WHEEL_SIZE - 1)
/* Deltas of this many ms or more go to the top level and are re-filed when their slot comes up. */
#define WHEEL_SPAN (1ull << (GY_WHEEL_BITS * GY_WHEEL_LEVELS))

static void wake_cb(struct gy_io *io, unsigned events);

int gy_loop_init(struct gy_loop *l)
{
    memset(l, 0, sizeof(*l));
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0)
        return GY_EIO;
    l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wakefd < 0) {
        close(l->epfd);
        return GY_EIO;
    }
    l->now = l->wheel_now = gy_now_ms();
    for (int lv = 0; lv < GY_WHEEL_LEVELS; lv++)
        for (unsigned s = 0; s < GY_WHEEL_SIZE; s++)
            gy_list_init(&l->wheel[lv][s]);
    gy_list_init(&l->tasks);
    gy_list_init(&l->msgs);
    pthread_mutex_init(&l->msg_lock, NULL);
    if (gy_io_start(l, &l->wake_io, l->wakefd, GY_IO_READ, wake_cb) != 0) {
        close(l->wakefd);
        close(l->epfd);
        return GY_EIO;
    }
    return 0;
}

void gy_loop_dispose(struct gy_loop *l)
{
    pthread_mutex_lock(&l->msg_lock);
    while (!gy_list_empty(&l->msgs)) {
        struct gy_list *n = l->msgs.next;
        gy_list_remove(n);
        free(GY_CONTAINER_OF(n, struct gy_loop_msg, link));
    }
    pthread_mutex_unlock(&l->msg_lock);
    pthread_mutex_destroy(&l->msg_lock);
    close(l->wakefd);
    close(l->epfd);
}

void gy_loop_stop(struct gy_loop *l)
{
    l->stop = true;
}

int gy_io_start(struct gy_loop *l, struct gy_io *io, int fd, unsigned events, gy_io_cb cb)
{
    struct epoll_event ev = { .events = EPOLLET | EPOLLRDHUP, .data.ptr = io };

    if (events & GY_IO_READ)
        ev.events |= EPOLLIN;
    if (events & GY_IO_WRITE)
        ev.events |= EPOLLOUT;
    io->fd = fd;
    io->cb = cb;
    io->loop = l;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return GY_EIO;
    return 0;
}

void gy_io_stop(struct gy_io *io)
{
    if (io->loop != NULL && io->fd >= 0)
        epoll_ctl(io->loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->loop = NULL;
}

/* ---- timer wheel ---- */

static void wheel_file(struct gy_loop *l, struct gy_timer *t)
{
    uint64_t delta = t->expires > l->wheel_now ? t->expires - l->wheel_now : 0;
    uint64_t when = t->expires;
    int lv = 0;

    if (delta >= WHEEL_SPAN) {
        when = l->wheel_now + WHEEL_SPAN - 1;
        delta = WHEEL_SPAN - 1;
    }
    while (lv < GY_WHEEL_LEVELS - 1 && delta >= (1ull << (GY_WHEEL_BITS * (lv + 1))))
        lv++;
    if (delta == 0)
        when = l->wheel_now; /* due: fires on the next tick processed */
    unsigned slot = (unsigned)(when >> (GY_WHEEL_BITS * lv)) & WHEEL_MASK;
    gy_list_insert_tail(&l->wheel[lv][slot], &t->link);
}

void gy_timer_start(struct gy_loop *l, struct gy_timer *t, uint64_t ms)
{
    if (gy_timer_active(t))
        gy_list_remove(&t->link);
    else
        l->ntimers++;
    /* Timers count from the loop's notion of now; the wheel may lag it by a tick. */
    t->expires = l->now + ms;
    if (t->expires <= l->wheel_now)
        t->expires = l->wheel_now + 1;
    wheel_file(l, t);
}

void gy_timer_stop(struct gy_loop *l, struct gy_timer *t)
{
    if (gy_timer_active(t)) {
        gy_list_remove(&t->link);
        l->ntimers--;
    }
}

/* Re-files every timer of a higher-level slot into lower levels. */
static void wheel_cascade(struct gy_loop *l, int lv)
{
    unsigned slot = (unsigned)(l->wheel_now >> (GY_WHEEL_BITS * lv)) & WHEEL_MASK;
    struct gy_list tmp;

    gy_list_init(&tmp);
    gy_list_splice_tail(&tmp, &l->wheel[lv][slot]);
    while (!gy_list_empty(&tmp)) {
        struct gy_timer *t = GY_CONTAINER_OF(tmp.next, struct gy_timer, link);
        gy_list_remove(&t->link);
        wheel_file(l, t);
    }
}

static void wheel_fire_slot(struct gy_loop *l)
{
    struct gy_list *head = &l->wheel[0][l->wheel_now & WHEEL_MASK];
    struct gy_list due;

    gy_list_init(&due);
    gy_list_splice_tail(&due, head);
    while (!gy_list_empty(&due)) {
        struct gy_timer *t = GY_CONTAINER_OF(due.next, struct gy_timer, link);
        gy_list_remove(&t->link);
        if (t->expires > l->wheel_now) { /* clamped far timer: not yet */
            wheel_file(l, t);
            continue;
        }
        l->ntimers--;
        t->cb(t);
    }
}

static void wheel_advance(struct gy_loop *l)
{
    if (l->ntimers == 0) {
        l->wheel_now = l->now;
        return;
    }
    /* Fire the current tick first (timers filed as due), then step to now. */
    wheel_fire_slot(l);
    while (l->wheel_now < l->now) {
        l->wheel_now++;
        for (int lv = 1; lv < GY_WHEEL_LEVELS; lv++) {
            if ((l->wheel_now & ((1ull << (GY_WHEEL_BITS * lv)) - 1)) != 0)
                break;
            wheel_cascade(l, lv);
        }
        wheel_fire_slot(l);
        if (l->ntimers == 0) {
            l->wheel_now = l->now;
            break;
        }
    }
}

/* How long epoll may sleep: until the next non-empty level-0 slot, or the next level-0 wrap
 * when only higher levels hold timers. */
static int wheel_timeout(struct gy_loop *l)
{
    if (l->ntimers == 0)
        return -1;
    for (unsigned i = 0; i < GY_WHEEL_SIZE; i++) {
        unsigned slot = (unsigned)(l->wheel_now + i) & WHEEL_MASK;
        if (!gy_list_empty(&l->wheel[0][slot]))
            return (int)i;
        if (slot == WHEEL_MASK)
            return (int)i + 1;
    }
    return GY_WHEEL_SIZE;
}

/* ---- tasks and messages ---- */

void gy_task_schedule(struct gy_loop *l, struct gy_task *t)
{
    if (!gy_list_linked(&t->link))
        gy_list_insert_tail(&l->tasks, &t->link);
}

void gy_task_cancel(struct gy_task *t)
{
    if (gy_list_linked(&t->link))
        gy_list_remove(&t->link);
}

static void run_tasks(struct gy_loop *l)
{
    /* Tasks scheduled by tasks run in the same pass, bounded to avoid starving I/O. */
    for (int budget = 1024; budget > 0 && !gy_list_empty(&l->tasks); budget--) {
        struct gy_task *t = GY_CONTAINER_OF(l->tasks.next, struct gy_task, link);
        gy_list_remove(&t->link);
        t->cb(t);
    }
}

int gy_loop_post(struct gy_loop *l, void (*fn)(struct gy_loop *, void *), void *arg)
{
    struct gy_loop_msg *m = malloc(sizeof(*m));
    uint64_t one = 1;

    if (m == NULL)
        return GY_ENOMEM;
    m->fn = fn;
    m->arg = arg;
    pthread_mutex_lock(&l->msg_lock);
    gy_list_insert_tail(&l->msgs, &m->link);
    pthread_mutex_unlock(&l->msg_lock);
    ssize_t w = write(l->wakefd, &one, sizeof(one));
    (void)w;
    return 0;
}

static void wake_cb(struct gy_io *io, unsigned events)
{
    struct gy_loop *l = GY_CONTAINER_OF(io, struct gy_loop, wake_io);
    struct gy_list msgs;
    uint64_t v;

    (void)events;
    while (read(l->wakefd, &v, sizeof(v)) > 0) {
    }
    gy_list_init(&msgs);
    pthread_mutex_lock(&l->msg_lock);
    gy_list_splice_tail(&msgs, &l->msgs);
    pthread_mutex_unlock(&l->msg_lock);
    while (!gy_list_empty(&msgs)) {
        struct gy_loop_msg *m = GY_CONTAINER_OF(msgs.next, struct gy_loop_msg, link);
        gy_list_remove(&m->link);
        m->fn(l, m->arg);
        free(m);
    }
}

int gy_loop_run_once(struct gy_loop *l, int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    int wt = wheel_timeout(l);

    if (!gy_list_empty(&l->tasks))
        timeout_ms = 0;
    else if (wt >= 0 && (timeout_ms < 0 || wt < timeout_ms))
        timeout_ms = wt;
    int n = epoll_wait(l->epfd, evs, MAX_EVENTS, timeout_ms);
    if (n < 0 && errno != EINTR)
        return GY_EIO;
    l->now = gy_now_ms();
    for (int i = 0; i < n; i++) {
        struct gy_io *io = evs[i].data.ptr;
        unsigned e = 0;
        if (io->loop == NULL) /* stopped earlier in this batch; its owner is freed by a task */
            continue;
        if (evs[i].events & EPOLLIN)
            e |= GY_IO_READ;
        if (evs[i].events & EPOLLOUT)
            e |= GY_IO_WRITE;
        if (evs[i].events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))
            e |= GY_IO_HUP | GY_IO_READ;
        if (evs[i].events & EPOLLERR)
            e |= GY_IO_ERR;
        io->cb(io, e);
    }
    run_tasks(l);
    wheel_advance(l);
    run_tasks(l);
    return 0;
}

int gy_loop_run(struct gy_loop *l)
{
    while (!l->stop) {
        int rc = gy_loop_run_once(l, -1);
        if (rc != 0)
            return rc;
    }
    return 0;
}
