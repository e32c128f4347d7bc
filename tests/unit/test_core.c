/* Core: timer wheel, tasks, cross-thread messages, buffers, per-request pool, slices, headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/loop.h"
#include "core/pool.h"
#include "core/slice.h"
#include "core/time.h"
#include "http/header.h"

struct fired {
    struct gy_timer t;
    struct gy_loop *loop;
    uint64_t at;
    int count;
};

static void on_fire(struct gy_timer *t)
{
    struct fired *f = GY_CONTAINER_OF(t, struct fired, t);
    f->at = gy_loop_now(f->loop);
    f->count++;
}

static void run_until(struct gy_loop *l, uint64_t ms)
{
    uint64_t end = gy_now_ms() + ms;
    while (gy_now_ms() < end)
        gy_loop_run_once(l, 5);
}

/* Timers at every level of the wheel fire once, not early, and in order of their deadlines. */
static void test_timer_wheel_deadlines(void **state)
{
    struct gy_loop l;
    static const uint64_t delays[] = { 0, 1, 5, 63, 64, 65, 130, 700, 4095, 4097 };
    struct fired f[sizeof(delays) / sizeof(delays[0])];

    (void)state;
    assert_int_equal(gy_loop_init(&l), 0);
    uint64_t start = gy_loop_now(&l);
    for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        memset(&f[i], 0, sizeof(f[i]));
        f[i].loop = &l;
        gy_timer_init(&f[i].t, on_fire);
        gy_timer_start(&l, &f[i].t, delays[i]);
    }
    run_until(&l, 4300);
    for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        assert_int_equal(f[i].count, 1);
        assert_true(f[i].at >= start + delays[i]);
        assert_true(f[i].at <= start + delays[i] + 60); /* generous: a busy CI machine */
        assert_false(gy_timer_active(&f[i].t));
    }
    assert_int_equal(l.ntimers, 0);
    gy_loop_dispose(&l);
}

static void test_timer_stop_and_restart(void **state)
{
    struct gy_loop l;
    struct fired a = { 0 }, b = { 0 };

    (void)state;
    assert_int_equal(gy_loop_init(&l), 0);
    a.loop = b.loop = &l;
    gy_timer_init(&a.t, on_fire);
    gy_timer_init(&b.t, on_fire);
    gy_timer_start(&l, &a.t, 20);
    gy_timer_start(&l, &b.t, 20);
    gy_timer_stop(&l, &a.t);
    gy_timer_start(&l, &b.t, 200); /* re-arming moves it, never fires twice */
    run_until(&l, 120);
    assert_int_equal(a.count, 0);
    assert_int_equal(b.count, 0);
    run_until(&l, 200);
    assert_int_equal(b.count, 1);
    assert_int_equal(l.ntimers, 0);
    gy_loop_dispose(&l);
}

/* A far timer (beyond the wheel's span) is clamped and re-filed, and stop works on it. */
static void test_timer_far_future(void **state)
{
    struct gy_loop l;
    struct fired a = { 0 };

    (void)state;
    assert_int_equal(gy_loop_init(&l), 0);
    a.loop = &l;
    gy_timer_init(&a.t, on_fire);
    gy_timer_start(&l, &a.t, 100ull * 3600 * 1000);
    assert_true(gy_timer_active(&a.t));
    run_until(&l, 20);
    assert_int_equal(a.count, 0);
    gy_timer_stop(&l, &a.t);
    assert_int_equal(l.ntimers, 0);
    gy_loop_dispose(&l);
}

static int task_runs;
static void on_task(struct gy_task *t)
{
    (void)t;
    task_runs++;
}

static void test_tasks_run_once(void **state)
{
    struct gy_loop l;
    struct gy_task t;

    (void)state;
    assert_int_equal(gy_loop_init(&l), 0);
    gy_task_init(&t, on_task);
    task_runs = 0;
    gy_task_schedule(&l, &t);
    gy_task_schedule(&l, &t);
    gy_loop_run_once(&l, 0);
    gy_loop_run_once(&l, 0);
    assert_int_equal(task_runs, 1);
    gy_task_schedule(&l, &t);
    gy_task_cancel(&t);
    gy_loop_run_once(&l, 0);
    assert_int_equal(task_runs, 1);
    gy_loop_dispose(&l);
}

static int posted;
static void on_post(struct gy_loop *l, void *arg)
{
    posted += *(int *)arg;
    gy_loop_stop(l);
}

static void *poster(void *arg)
{
    static int seven = 7;
    usleep(20000);
    gy_loop_post(arg, on_post, &seven);
    return NULL;
}

static void test_post_from_other_thread(void **state)
{
    struct gy_loop l;
    pthread_t th;

    (void)state;
    assert_int_equal(gy_loop_init(&l), 0);
    posted = 0;
    pthread_create(&th, NULL, poster, &l);
    assert_int_equal(gy_loop_run(&l), 0); /* returns once the message stops it */
    pthread_join(th, NULL);
    assert_int_equal(posted, 7);
    gy_loop_dispose(&l);
}

static void test_buffers_pool_and_bounds(void **state)
{
    struct gy_bufpool p;
    struct gy_buf a = { 0 }, b = { 0 };
    char big[GY_BUF_BLOCK + 10];

    (void)state;
    gy_bufpool_init(&p, 2);
    assert_int_equal(gy_buf_room(&a), 0); /* no storage until reserved */
    assert_int_equal(gy_buf_reserve(&p, &a), 0);
    assert_int_equal(gy_buf_room(&a), GY_BUF_BLOCK);
    memset(big, 'x', sizeof(big));
    assert_int_equal(gy_buf_append(&a, big, sizeof(big)), GY_BUF_BLOCK); /* hard cap */
    gy_buf_consume(&a, 100);
    assert_int_equal(gy_buf_len(&a), GY_BUF_BLOCK - 100);
    assert_int_equal(gy_buf_grow(&p, &a, 2 * GY_BUF_BLOCK), 0);
    assert_int_equal(gy_buf_len(&a), GY_BUF_BLOCK - 100);
    assert_int_equal(a.head, 0);
    gy_buf_release(&p, &a);
    assert_null(a.data);
    assert_int_equal(p.in_use, 0);
    assert_int_equal(gy_buf_reserve(&p, &b), 0);
    gy_buf_release_if_empty(&p, &b); /* empty: goes back to the pool */
    assert_null(b.data);
    assert_int_equal(p.nfree, 1);
    gy_bufpool_dispose(&p);
}

static int cleaned;
static void cleanup(void *arg)
{
    cleaned = cleaned * 10 + *(int *)arg;
}

static void test_request_pool(void **state)
{
    char first[256];
    struct gy_pool p;
    static int one = 1, two = 2;

    (void)state;
    gy_pool_init(&p, first, sizeof(first), 64 * 1024);
    char *a = gy_pool_alloc(&p, 10);
    assert_true(a >= first && a < first + sizeof(first)); /* small ones come from the inline block */
    assert_int_equal((uintptr_t)a % 16, 0);
    void *big = gy_pool_alloc(&p, 10000);
    assert_non_null(big);
    memset(big, 1, 10000);
    assert_null(gy_pool_alloc(&p, 100000)); /* past the limit */
    struct gy_slice d = gy_pool_dup(&p, GY_SLICE_LIT("hello"));
    assert_int_equal(d.len, 5);
    assert_string_equal(d.ptr, "hello");
    cleaned = 0;
    gy_pool_on_dispose(&p, cleanup, &one);
    gy_pool_on_dispose(&p, cleanup, &two);
    gy_pool_dispose(&p);
    assert_int_equal(cleaned, 21); /* reverse order */
}

static void test_slices_and_header_helpers(void **state)
{
    struct gy_header h[] = {
        { GY_SLICE_LIT("Host"), GY_SLICE_LIT("a") },
        { GY_SLICE_LIT("Cookie"), GY_SLICE_LIT("x=1; session=\"abc\"; flag") },
        { GY_SLICE_LIT("cookie"), GY_SLICE_LIT("late=2") },
    };
    struct gy_slice v;

    (void)state;
    assert_int_equal(gy_slice_to_u63(GY_SLICE_LIT("123")), 123);
    assert_int_equal(gy_slice_to_u63(GY_SLICE_LIT("")), -1);
    assert_int_equal(gy_slice_to_u63(GY_SLICE_LIT("12a")), -1);
    assert_int_equal(gy_slice_to_u63(GY_SLICE_LIT("9999999999999999999")), -1);
    v = gy_slice_trim(GY_SLICE_LIT(" \t x y \t"));
    assert_true(gy_slice_eq(v, GY_SLICE_LIT("x y")));
    assert_ptr_equal(gy_header_find(h, 3, GY_SLICE_LIT("HOST")), &h[0]);
    assert_null(gy_header_find(h, 3, GY_SLICE_LIT("nope")));
    assert_true(gy_header_cookie(h, 3, GY_SLICE_LIT("session"), &v));
    assert_true(gy_slice_eq(v, GY_SLICE_LIT("abc")));
    assert_true(gy_header_cookie(h, 3, GY_SLICE_LIT("late"), &v));
    assert_true(gy_slice_eq(v, GY_SLICE_LIT("2")));
    assert_true(gy_header_cookie(h, 3, GY_SLICE_LIT("flag"), &v));
    assert_int_equal(v.len, 0);
    assert_false(gy_header_cookie(h, 3, GY_SLICE_LIT("sess"), &v));
    assert_true(gy_query_param(GY_SLICE_LIT("a=1&b=two&c"), GY_SLICE_LIT("b"), &v));
    assert_true(gy_slice_eq(v, GY_SLICE_LIT("two")));
    assert_false(gy_query_param(GY_SLICE_NULL, GY_SLICE_LIT("b"), &v));
    assert_string_equal(gy_strerror(GY_EAGAIN), "not yet: need more input or the resource is busy");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_wheel_deadlines), cmocka_unit_test(test_timer_stop_and_restart),
        cmocka_unit_test(test_timer_far_future),      cmocka_unit_test(test_tasks_run_once),
        cmocka_unit_test(test_post_from_other_thread), cmocka_unit_test(test_buffers_pool_and_bounds),
        cmocka_unit_test(test_request_pool),          cmocka_unit_test(test_slices_and_header_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
