/*
 * The event loop: one per thread, edge-triggered epoll, a hierarchical timer wheel with 1 ms
 * ticks, deferred tasks run after each batch of I/O, and a message queue other threads can post
 * to (the only locked path; it carries config swaps and drain orders, not requests).
 */
#ifndef GY_CORE_LOOP_H
#define GY_CORE_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/list.h"

#define GY_IO_READ 0x1u
#define GY_IO_WRITE 0x2u
#define GY_IO_HUP 0x4u /* peer closed or error: read to find out */
#define GY_IO_ERR 0x8u /* a socket error is pending (the peer reset): writes will fail */

struct gy_loop;
struct gy_io;

typedef void (*gy_io_cb)(struct gy_io *io, unsigned events);

/* An fd watched by a loop; embed it in the owner and recover the owner with GY_CONTAINER_OF. */
struct gy_io {
    int fd;
    gy_io_cb cb;
    struct gy_loop *loop;
};

struct gy_timer;
typedef void (*gy_timer_cb)(struct gy_timer *t);

struct gy_timer {
    struct gy_list link;
    uint64_t expires; /* loop ms */
    gy_timer_cb cb;
};

struct gy_task;
typedef void (*gy_task_cb)(struct gy_task *t);

/* A callback to run once after the current batch of events. */
struct gy_task {
    struct gy_list link;
    gy_task_cb cb;
};

#define GY_WHEEL_BITS 6
#define GY_WHEEL_SIZE (1u << GY_WHEEL_BITS)
#define GY_WHEEL_LEVELS 4

struct gy_loop_msg {
    struct gy_list link;
    void (*fn)(struct gy_loop *loop, void *arg);
    void *arg;
};

struct gy_loop {
    int epfd;
    int wakefd;             /* eventfd for posted messages */
    struct gy_io wake_io;
    bool stop;
    uint64_t now;           /* ms, monotonic, refreshed each iteration */
    uint64_t wheel_now;     /* ms the wheel has advanced to */
    size_t ntimers;
    struct gy_list wheel[GY_WHEEL_LEVELS][GY_WHEEL_SIZE];
    struct gy_list tasks;
    pthread_mutex_t msg_lock;
    struct gy_list msgs;
    void *data;             /* owner (e.g. the worker) */
};

int gy_loop_init(struct gy_loop *l);
void gy_loop_dispose(struct gy_loop *l);

/* Runs until gy_loop_stop; returns 0 or a negative error. */
int gy_loop_run(struct gy_loop *l);
/* Runs one iteration, waiting at most timeout_ms (-1 = until the next timer). */
int gy_loop_run_once(struct gy_loop *l, int timeout_ms);
void gy_loop_stop(struct gy_loop *l);

/* Starts watching io->fd for GY_IO_READ/GY_IO_WRITE (edge-triggered). */
int gy_io_start(struct gy_loop *l, struct gy_io *io, int fd, unsigned events, gy_io_cb cb);
/* Stops watching; does not close the fd. */
void gy_io_stop(struct gy_io *io);

static inline void gy_timer_init(struct gy_timer *t, gy_timer_cb cb)
{
    gy_list_init(&t->link);
    t->cb = cb;
    t->expires = 0;
}

static inline bool gy_timer_active(const struct gy_timer *t)
{
    return gy_list_linked(&t->link);
}

/* (Re)arms the timer to fire after `ms` milliseconds. */
void gy_timer_start(struct gy_loop *l, struct gy_timer *t, uint64_t ms);
void gy_timer_stop(struct gy_loop *l, struct gy_timer *t);

static inline void gy_task_init(struct gy_task *t, gy_task_cb cb)
{
    gy_list_init(&t->link);
    t->cb = cb;
}

/* Schedules the task once (no-op if already scheduled). */
void gy_task_schedule(struct gy_loop *l, struct gy_task *t);
void gy_task_cancel(struct gy_task *t);

/* Thread-safe: runs fn(loop, arg) on the loop's thread soon. */
int gy_loop_post(struct gy_loop *l, void (*fn)(struct gy_loop *, void *), void *arg);

static inline uint64_t gy_loop_now(const struct gy_loop *l)
{
    return l->now;
}

#endif
