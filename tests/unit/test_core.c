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
#include "core/memcache.h"
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

static void test_pool_moves_a_block_at_once(void **state)
{
    char first[512], block[] = "name\0value\0other", elsewhere[] = "outside";
    struct gy_pool p;

    (void)state;
    gy_pool_init(&p, first, sizeof(first), 64 * 1024);
    struct gy_slice b = gy_slice(block, sizeof(block) - 1);
    struct gy_pool_move m = gy_pool_move_begin(&p, b);
    assert_non_null(m.copy);
    struct gy_slice name = gy_pool_moved(&p, &m, gy_slice(block, 4));
    struct gy_slice value = gy_pool_moved(&p, &m, gy_slice(block + 5, 5));
    struct gy_slice last = gy_pool_moved(&p, &m, gy_slice(block + 11, 5)); /* ends where the block ends */
    struct gy_slice out = gy_pool_moved(&p, &m, gy_slice_cstr(elsewhere));
    struct gy_slice over = gy_pool_moved(&p, &m, gy_slice(block + 11, 6)); /* runs past the block */
    memset(block, 'X', sizeof(block) - 1); /* the original goes away */
    assert_ptr_equal(name.ptr, m.copy);
    assert_string_equal(name.ptr, "name"); /* NUL-terminated as the block was */
    assert_ptr_equal(value.ptr, m.copy + 5);
    assert_string_equal(value.ptr, "value");
    assert_true(gy_slice_eq(last, GY_SLICE_LIT("other")));
    assert_ptr_equal(last.ptr, m.copy + 11);
    assert_true(out.ptr < m.copy || out.ptr >= m.copy + b.len); /* copied on its own */
    assert_string_equal(out.ptr, "outside");
    assert_true(over.ptr < m.copy || over.ptr >= m.copy + b.len);
    assert_int_equal(over.len, 6);
    assert_int_equal(gy_pool_moved(&p, &m, GY_SLICE_NULL).len, 0);
    assert_non_null(gy_pool_moved(&p, &m, GY_SLICE_NULL).ptr);
    /* no block (an HTTP/1.1 head): every string is copied */
    struct gy_pool_move none = gy_pool_move_begin(&p, GY_SLICE_NULL);
    assert_null(none.copy);
    struct gy_slice c = gy_pool_moved(&p, &none, gy_slice_cstr(elsewhere));
    assert_true(c.ptr != elsewhere);
    assert_string_equal(c.ptr, "outside");
    gy_pool_dispose(&p);
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
    assert_true(gy_slice_eqi(GY_SLICE_LIT("X-Request-ID"), GY_SLICE_LIT("x-request-id")));
    assert_true(gy_slice_eqi(GY_SLICE_LIT(""), GY_SLICE_LIT("")));
    assert_false(gy_slice_eqi(GY_SLICE_LIT("x-request-id"), GY_SLICE_LIT("x-request-i")));
    assert_false(gy_slice_eqi(GY_SLICE_LIT("a@"), GY_SLICE_LIT("a`"))); /* 0x40/0x60 differ in bit 0x20 only */
    assert_false(gy_slice_eqi(GY_SLICE_LIT("a["), GY_SLICE_LIT("a{")));
    assert_false(gy_slice_eqi(GY_SLICE_LIT("a\0b"), GY_SLICE_LIT("a\0c"))); /* not a C string compare */
    assert_false(gy_slice_eqi(GY_SLICE_LIT("\xc9"), GY_SLICE_LIT("\xe9"))); /* bytes past ASCII are not letters */
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

static void test_memcache_reuses_within_its_bound(void **state)
{
    struct gy_memcache mc;
    (void)state;

    gy_memcache_init(&mc, 4 * GY_MEMCACHE_STEP);
    char *a = gy_memcache_alloc(&mc, 100), *b = gy_memcache_alloc(&mc, 128);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal((uintptr_t)a % 16, 0);
    memset(a, 0xab, 100);
    memset(b, 0xcd, 128);
    gy_memcache_free(&mc, a);
    assert_int_equal(mc.cached_bytes, 2 * GY_MEMCACHE_STEP);
    assert_ptr_equal(gy_memcache_alloc(&mc, 65), a); /* the same class (65..128) comes back */
    assert_int_equal(mc.cached_bytes, 0);
    assert_int_equal(mc.hits, 1);
    /* past max_bytes a free goes to free(3): two 128-byte blocks fit, the third does not */
    char *c = gy_memcache_alloc(&mc, 128);
    gy_memcache_free(&mc, a);
    gy_memcache_free(&mc, b);
    gy_memcache_free(&mc, c);
    assert_int_equal(mc.cached_bytes, 4 * GY_MEMCACHE_STEP);
    /* calloc zeroes a reused block; realloc keeps the bytes, in place while they fit */
    unsigned char *z = gy_memcache_calloc(&mc, 4, 32);
    for (int i = 0; i < 128; i++)
        assert_int_equal(z[i], 0);
    memcpy(z, "0123456789", 10);
    assert_ptr_equal(gy_memcache_realloc(&mc, z, 120), z);
    unsigned char *y = gy_memcache_realloc(&mc, z, 1000);
    assert_non_null(y);
    assert_memory_equal(y, "0123456789", 10);
    /* big blocks are not cached; shrinking one below the limit moves it into a class */
    char *big = gy_memcache_alloc(&mc, GY_MEMCACHE_MAX + 1);
    memcpy(big, "big", 3);
    char *small = gy_memcache_realloc(&mc, big, 10);
    assert_memory_equal(small, "big", 3);
    size_t before = mc.cached_bytes;
    gy_memcache_free(&mc, gy_memcache_alloc(&mc, 2 * GY_MEMCACHE_MAX));
    assert_int_equal(mc.cached_bytes, before);
    assert_null(gy_memcache_calloc(&mc, SIZE_MAX / 2, 4));
    gy_memcache_free(&mc, small);
    gy_memcache_free(&mc, y);
    gy_memcache_free(&mc, NULL);
    gy_memcache_dispose(&mc);
    assert_int_equal(mc.cached_bytes, 0);

    /* max_bytes 0: nothing is kept (sanitizer builds) */
    gy_memcache_init(&mc, 0);
    gy_memcache_free(&mc, gy_memcache_alloc(&mc, 10));
    assert_int_equal(mc.cached_bytes, 0);
    assert_null(mc.free[0]);
    gy_memcache_dispose(&mc);
}

static void test_caches_give_back_what_a_burst_left(void **state)
{
    struct gy_bufpool p;
    struct gy_buf b[6] = { 0 };
    struct gy_memcache mc;
    (void)state;

    gy_bufpool_init(&p, 16);
    for (int i = 0; i < 6; i++) /* a burst: six buffers at once */
        assert_int_equal(gy_buf_reserve(&p, &b[i]), 0);
    for (int i = 0; i < 6; i++)
        gy_buf_release(&p, &b[i]);
    assert_int_equal(p.nfree, 6);
    assert_int_equal(gy_bufpool_trim(&p), 0); /* the low-water mark of this period was 0 */
    /* steady traffic: two buffers at a time, taken from the cache */
    assert_int_equal(gy_buf_reserve(&p, &b[0]), 0);
    assert_int_equal(gy_buf_reserve(&p, &b[1]), 0);
    gy_buf_release(&p, &b[1]);
    gy_buf_release(&p, &b[0]);
    assert_int_equal(gy_bufpool_trim(&p), 4 * GY_BUF_BLOCK); /* four sat unused all period */
    assert_int_equal(p.nfree, 2);
    assert_int_equal(gy_buf_reserve(&p, &b[0]), 0); /* what is left still works */
    gy_buf_release(&p, &b[0]);
    assert_int_equal(gy_bufpool_trim(&p), GY_BUF_BLOCK);
    assert_int_equal(gy_bufpool_trim(&p), GY_BUF_BLOCK); /* idle: the last one goes too */
    assert_int_equal(p.nfree, 0);
    assert_int_equal(p.in_use, 0);
    gy_bufpool_dispose(&p);

    gy_memcache_init(&mc, 1 << 20);
    void *x = gy_memcache_alloc(&mc, 100);
    gy_memcache_free(&mc, x);
    gy_memcache_free(&mc, gy_memcache_alloc(&mc, 100)); /* served from the cache */
    assert_int_equal(gy_memcache_trim(&mc), 0);          /* it was used: kept */
    assert_int_equal(gy_memcache_trim(&mc), 128);        /* unused since: freed */
    assert_int_equal(mc.cached_bytes, 0);
    assert_null(mc.free[1]);
    gy_memcache_dispose(&mc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_wheel_deadlines), cmocka_unit_test(test_timer_stop_and_restart),
        cmocka_unit_test(test_timer_far_future),      cmocka_unit_test(test_tasks_run_once),
        cmocka_unit_test(test_post_from_other_thread), cmocka_unit_test(test_buffers_pool_and_bounds),
        cmocka_unit_test(test_request_pool),          cmocka_unit_test(test_slices_and_header_helpers),
        cmocka_unit_test(test_pool_moves_a_block_at_once),
        cmocka_unit_test(test_memcache_reuses_within_its_bound),
        cmocka_unit_test(test_caches_give_back_what_a_burst_left),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
