/* Outlier detection on a main loop without workers: consecutive-failure ejections, the growing
 * ejection time, un-ejection at the exact time, max_ejection_percent (one host always may go),
 * enforcement, success-rate sweeps, and config syncs that forget hosts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/time.h"
#include "proxy/outlier.h"
#include "proxy/proxy.h"

#define MAXH 8

struct fx {
    struct gy_proxy *p;
    struct gy_config cfg;
    struct gy_cluster c;
    struct gy_instance in[MAXH];
    struct gy_host *h[MAXH];
};

static char cluster_name[] = "c", local_ip[] = "127.0.0.1";

static struct fx *mk(size_t n, uint32_t max_pct, uint32_t base_ms)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_non_null(f->p = calloc(1, sizeof(*f->p)));
    assert_int_equal(gy_loop_init(&f->p->loop), 0);
    for (size_t i = 0; i < n; i++) {
        f->in[i].host = local_ip;
        f->in[i].port = (uint16_t)(20000 + i);
        f->in[i].weight = 1;
        assert_int_equal(gy_addr_from_ip(local_ip, 20000 + (unsigned)i, &f->in[i].addr, &f->in[i].addrlen), 0);
    }
    f->c.name = f->c.key = cluster_name;
    f->c.instances = f->in;
    f->c.ninstances = n;
    f->c.outlier = (struct gy_outlier_detection){
        .enabled = true, .interval_ms = 60000, .base_ejection_ms = base_ms, .max_ejection_percent = max_pct,
        .consecutive_5xx = 5, .enforcing_5xx = 100, .consecutive_gateway = 5, .enforcing_gateway = 100,
        .sr_minimum_hosts = 3, .sr_request_volume = 10, .sr_stdev_factor = 1000, .enforcing_sr = 100,
    };
    f->cfg.clusters = &f->c;
    f->cfg.nclusters = 1;
    gy_outlier_sync(f->p, &f->cfg);
    for (size_t i = 0; i < n; i++)
        assert_non_null(f->h[i] = gy_host_get(cluster_name, (struct sockaddr *)&f->in[i].addr, f->in[i].addrlen));
    return f;
}

static void done(struct fx *f)
{
    gy_outlier_stop(f->p);
    assert_null(f->p->outlier);
    gy_loop_dispose(&f->p->loop);
    free(f->p);
    free(f);
    gy_hosts_shutdown();
}

static bool ejected(const struct gy_host *h)
{
    return (atomic_load(&h->flags) & GY_HOST_EJECTED) != 0;
}

/* Runs the loop until h returns; returns how long that took, ms. */
static uint64_t wait_return(struct fx *f, struct gy_host *h)
{
    uint64_t t0 = gy_now_ms();

    while (ejected(h) && gy_now_ms() - t0 < 5000)
        gy_loop_run_once(&f->p->loop, 5);
    assert_false(ejected(h));
    return gy_now_ms() - t0;
}

static void test_consecutive_ejects_and_time_grows(void **state)
{
    struct fx *f = mk(3, 100, 60);
    struct gy_host *h = f->h[0];

    (void)state;
    atomic_store(&h->consecutive_5xx, 5);
    gy_outlier_crossed(f->p, h, &f->c, false);
    assert_true(ejected(h));
    assert_false(gy_host_usable(h));
    assert_int_equal(h->ejections, 1);
    assert_int_equal(atomic_load(&h->ejections_total), 1);
    assert_int_equal(atomic_load(&h->consecutive_5xx), 0);
    uint64_t first = wait_return(f, h);
    assert_in_range(first, 40, 200);

    gy_outlier_crossed(f->p, h, &f->c, true);
    assert_int_equal(h->ejections, 2);
    uint64_t second = wait_return(f, h);
    assert_in_range(second, 100, 300);
    assert_true(second > first);
    assert_int_equal(atomic_load(&h->ejections_total), 2);
    done(f);
}

static void test_already_ejected_is_left_alone(void **state)
{
    struct fx *f = mk(3, 100, 10000);

    (void)state;
    gy_outlier_crossed(f->p, f->h[1], &f->c, false);
    uint64_t until = f->h[1]->ejected_until_ms;
    atomic_store(&f->h[1]->consecutive_5xx, 7);
    gy_outlier_crossed(f->p, f->h[1], &f->c, false);
    assert_int_equal(f->h[1]->ejections, 1);
    assert_int_equal(f->h[1]->ejected_until_ms, until);
    assert_int_equal(atomic_load(&f->h[1]->consecutive_5xx), 0);
    done(f);
}

static void test_max_ejection_percent(void **state)
{
    struct fx *f = mk(4, 50, 10000);

    (void)state;
    for (int i = 0; i < 4; i++)
        gy_outlier_crossed(f->p, f->h[i], &f->c, false);
    assert_true(ejected(f->h[0]));
    assert_true(ejected(f->h[1]));
    assert_false(ejected(f->h[2]));
    assert_false(ejected(f->h[3]));
    done(f);

    /* 10% of two hosts is less than one, but one host always may be ejected. */
    f = mk(2, 10, 10000);
    gy_outlier_crossed(f->p, f->h[0], &f->c, false);
    gy_outlier_crossed(f->p, f->h[1], &f->c, false);
    assert_true(ejected(f->h[0]));
    assert_false(ejected(f->h[1]));
    done(f);
}

static void test_enforcement(void **state)
{
    struct fx *f = mk(3, 100, 10000);

    (void)state;
    f->c.outlier.enforcing_gateway = 0;
    gy_outlier_sync(f->p, &f->cfg);
    atomic_store(&f->h[0]->consecutive_gateway, 5);
    gy_outlier_crossed(f->p, f->h[0], &f->c, true);
    assert_false(ejected(f->h[0]));
    assert_int_equal(atomic_load(&f->h[0]->consecutive_gateway), 0);
    gy_outlier_crossed(f->p, f->h[0], &f->c, false); /* enforcing_5xx is 100 */
    assert_true(ejected(f->h[0]));
    done(f);
}

static void traffic(struct gy_host *h, uint64_t total, uint64_t ok)
{
    atomic_fetch_add(&h->rq_total, total);
    atomic_fetch_add(&h->rq_success, ok);
}

static void test_success_rate(void **state)
{
    struct fx *f = mk(5, 100, 10000);

    (void)state;
    for (int i = 0; i < 4; i++)
        traffic(f->h[i], 100, 100);
    traffic(f->h[4], 100, 50); /* mean 90, stdev 20: below 70 goes */
    assert_int_equal(gy_outlier_sweep(f->p, "c"), 1);
    assert_true(ejected(f->h[4]));
    for (int i = 0; i < 4; i++)
        assert_false(ejected(f->h[i]));

    /* Each sweep looks at its own interval only: nothing new, nothing ejected. */
    assert_int_equal(gy_outlier_sweep(f->p, "c"), 0);

    /* Too few hosts with enough requests: no verdict. */
    traffic(f->h[0], 100, 100);
    traffic(f->h[1], 100, 10);
    traffic(f->h[2], 9, 0);
    assert_int_equal(gy_outlier_sweep(f->p, "c"), 0);
    assert_int_equal(gy_outlier_sweep(f->p, "nope"), -1);

    /* All alike: a zero stdev ejects nobody. */
    for (int i = 0; i < 4; i++)
        traffic(f->h[i], 50, 40);
    assert_int_equal(gy_outlier_sweep(f->p, "c"), 0);
    done(f);
}

static void test_sync_forgets_hosts_and_clusters(void **state)
{
    struct fx *f = mk(3, 100, 10000);

    (void)state;
    gy_outlier_crossed(f->p, f->h[0], &f->c, false);
    gy_outlier_crossed(f->p, f->h[2], &f->c, false);
    assert_true(ejected(f->h[0]) && ejected(f->h[2]));

    /* Instance 0 leaves: un-ejected; instance 2 stays ejected. */
    f->c.instances = &f->in[1];
    f->c.ninstances = 2;
    gy_outlier_sync(f->p, &f->cfg);
    assert_false(ejected(f->h[0]));
    assert_int_equal(f->h[0]->ejections, 0);
    assert_true(ejected(f->h[2]));
    /* A crossing for a host that left is ignored. */
    gy_outlier_crossed(f->p, f->h[0], &f->c, false);
    assert_false(ejected(f->h[0]));

    /* outlier_detection removed: everything returns. */
    f->c.outlier.enabled = false;
    gy_outlier_sync(f->p, &f->cfg);
    assert_false(ejected(f->h[2]));
    gy_outlier_crossed(f->p, f->h[1], &f->c, false);
    assert_false(ejected(f->h[1]));
    done(f);
}

static void test_multiplier_decays(void **state)
{
    struct fx *f = mk(3, 100, 20);

    (void)state;
    f->c.outlier.interval_ms = 30;
    gy_outlier_sync(f->p, &f->cfg);
    gy_outlier_crossed(f->p, f->h[0], &f->c, false);
    assert_int_equal(f->h[0]->ejections, 1);
    uint64_t t0 = gy_now_ms();
    while (f->h[0]->ejections > 0 && gy_now_ms() - t0 < 3000)
        gy_loop_run_once(&f->p->loop, 5);
    assert_int_equal(f->h[0]->ejections, 0);
    assert_false(ejected(f->h[0]));
    done(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consecutive_ejects_and_time_grows),
        cmocka_unit_test(test_already_ejected_is_left_alone),
        cmocka_unit_test(test_max_ejection_percent),
        cmocka_unit_test(test_enforcement),
        cmocka_unit_test(test_success_rate),
        cmocka_unit_test(test_sync_forgets_hosts_and_clusters),
        cmocka_unit_test(test_multiplier_decays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
