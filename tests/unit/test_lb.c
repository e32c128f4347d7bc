/* Load balancer: smooth round robin sequences, least request, weighted random, ring hash
 * consistency, exclusions and metadata subsets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/lb.h"

#define MAXI 16

struct fixture {
    char hosts[MAXI][32];
    struct gy_kv md[MAXI];
    struct gy_instance inst[MAXI];
    struct gy_cluster c;
};

/* A cluster of n instances 10.0.0.<i+1>:8080 with the given weights. Even instances carry
 * version=v1, odd ones version=v2. */
static void mk(struct fixture *f, enum gy_lb_policy policy, const uint32_t *w, size_t n)
{
    static char key[] = "version", v1[] = "v1", v2[] = "v2";

    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < n; i++) {
        snprintf(f->hosts[i], sizeof(f->hosts[i]), "10.0.0.%zu", i + 1);
        f->inst[i].host = f->hosts[i];
        f->inst[i].port = 8080;
        f->inst[i].weight = w != NULL ? w[i] : 1;
        f->md[i].key = key;
        f->md[i].value = i % 2 == 0 ? v1 : v2;
        f->inst[i].metadata = &f->md[i];
        f->inst[i].nmetadata = 1;
    }
    f->c.name = f->c.key = "c";
    f->c.instances = f->inst;
    f->c.ninstances = n;
    f->c.lb_policy = policy;
    f->c.choice_count = 2;
    f->c.ring_size = 1024;
    if (policy == GY_LB_RING_HASH)
        assert_int_equal(gy_lb_build_ring(&f->c), 0);
}

static void dispose(struct fixture *f)
{
    free(f->c.ring_hashes);
    free(f->c.ring_hosts);
}

static void expect_sequence(const uint32_t *w, size_t n, const char *seq)
{
    struct fixture f;
    uint64_t rng = 1;
    struct gy_lb_ctx ctx = { .rng = &rng };

    mk(&f, GY_LB_ROUND_ROBIN, w, n);
    struct gy_lb_state *st = gy_lb_state_new(&f.c);
    assert_non_null(st);
    for (size_t round = 0; round < 3; round++)
        for (const char *p = seq; *p != '\0'; p++)
            assert_int_equal(gy_lb_pick(&f.c, st, &ctx), *p - 'a');
    gy_lb_state_free(st);
}

static void test_rr_equal(void **state)
{
    (void)state;
    expect_sequence((const uint32_t[]){ 1, 1 }, 2, "ab");
    expect_sequence((const uint32_t[]){ 1, 1, 1 }, 3, "abc");
}

static void test_rr_smooth_weighted(void **state)
{
    (void)state;
    expect_sequence((const uint32_t[]){ 5, 1, 1 }, 3, "aabacaa");
    expect_sequence((const uint32_t[]){ 2, 1 }, 2, "aba");
}

static void test_rr_excluded(void **state)
{
    struct fixture f;
    uint64_t rng = 1;
    uint8_t excl[3] = { 0, 1, 0 };
    struct gy_lb_ctx ctx = { .rng = &rng, .excluded = excl };

    (void)state;
    mk(&f, GY_LB_ROUND_ROBIN, NULL, 3);
    struct gy_lb_state *st = gy_lb_state_new(&f.c);
    for (int i = 0; i < 10; i++)
        assert_int_equal(gy_lb_pick(&f.c, st, &ctx), i % 2 == 0 ? 0 : 2);
    /* A state from a smaller cluster still gives usable picks. */
    struct fixture small;
    mk(&small, GY_LB_ROUND_ROBIN, NULL, 1);
    struct gy_lb_state *st1 = gy_lb_state_new(&small.c);
    for (int i = 0; i < 10; i++) {
        int k = gy_lb_pick(&f.c, st1, &ctx);
        assert_true(k == 0 || k == 2);
    }
    gy_lb_state_free(st1);
    gy_lb_state_free(st);
}

static void test_least_request_all_choices(void **state)
{
    static const struct {
        uint32_t w[4];
        uint32_t active[4];
        int want;
    } cases[] = {
        { { 1, 1, 1, 1 }, { 5, 1, 3, 2 }, 1 },
        { { 1, 1, 1, 1 }, { 0, 0, 0, 0 }, 0 }, /* tie: first */
        { { 1, 3, 2, 1 }, { 2, 2, 2, 2 }, 1 }, /* tie: higher weight */
        { { 1, 1, 1, 1 }, { 9, 9, 9, 0 }, 3 },
    };
    (void)state;
    for (size_t t = 0; t < sizeof(cases) / sizeof(cases[0]); t++) {
        struct fixture f;
        uint64_t rng = 7;
        struct gy_lb_ctx ctx = { .rng = &rng, .active = cases[t].active };
        mk(&f, GY_LB_LEAST_REQUEST, cases[t].w, 4);
        f.c.choice_count = 4;
        for (int i = 0; i < 20; i++)
            assert_int_equal(gy_lb_pick(&f.c, NULL, &ctx), cases[t].want);
    }
}

static void test_least_request_two_choices(void **state)
{
    struct fixture f;
    uint64_t rng = 99;
    uint32_t active[4] = { 0, 10, 10, 10 };
    struct gy_lb_ctx ctx = { .rng = &rng, .active = active };
    int counts[4] = { 0 };
    const int n = 40000;

    (void)state;
    mk(&f, GY_LB_LEAST_REQUEST, NULL, 4);
    for (int i = 0; i < n; i++)
        counts[gy_lb_pick(&f.c, NULL, &ctx)]++;
    /* Host 0 wins whenever it is one of the two distinct samples: 1 - C(3,2)/C(4,2) = 1/2. */
    assert_in_range(counts[0], n * 45 / 100, n * 55 / 100);
    /* Excluding the idle host: the others share. */
    uint8_t excl[4] = { 1, 0, 0, 0 };
    ctx.excluded = excl;
    for (int i = 0; i < 100; i++)
        assert_int_not_equal(gy_lb_pick(&f.c, NULL, &ctx), 0);
}

static void test_random_distribution(void **state)
{
    static const uint32_t w[] = { 1, 2, 7 };
    struct fixture f;
    uint64_t rng = 12345;
    struct gy_lb_ctx ctx = { .rng = &rng };
    int counts[3] = { 0 };
    const int n = 100000;

    (void)state;
    mk(&f, GY_LB_RANDOM, w, 3);
    for (int i = 0; i < n; i++)
        counts[gy_lb_pick(&f.c, NULL, &ctx)]++;
    for (int i = 0; i < 3; i++) {
        int expect = (int)((int64_t)n * w[i] / 10);
        assert_in_range(counts[i], expect - n / 100, expect + n / 100);
    }
}

static int ring_pick(struct fixture *f, uint64_t key, const uint8_t *excl)
{
    uint64_t rng = 5;
    struct gy_lb_ctx ctx = { .rng = &rng, .hash = key, .has_hash = true, .excluded = excl };
    return gy_lb_pick(&f->c, NULL, &ctx);
}

static void test_ring_hash_consistent(void **state)
{
    struct fixture f4, f5;
    int moved = 0, moved_to_new = 0, counts[4] = { 0 };
    const int n = 20000;
    char key[32];

    (void)state;
    mk(&f4, GY_LB_RING_HASH, NULL, 4);
    mk(&f5, GY_LB_RING_HASH, NULL, 5);
    assert_true(f4.c.ring_size >= 1024 && f4.c.ring_size < 2048);
    for (int i = 0; i < n; i++) {
        int len = snprintf(key, sizeof(key), "user-%d", i);
        uint64_t h = gy_lb_hash(key, (size_t)len);
        int a = ring_pick(&f4, h, NULL), b = ring_pick(&f5, h, NULL);
        assert_int_equal(a, ring_pick(&f4, h, NULL)); /* same key → same host */
        assert_in_range(a, 0, 3);
        counts[a]++;
        if (a != b) {
            moved++;
            moved_to_new += b == 4;
        }
    }
    for (int i = 0; i < 4; i++) /* a fair share each */
        assert_in_range(counts[i], n / 4 * 7 / 10, n / 4 * 13 / 10);
    /* Adding a fifth host moves about 1/5 of the keys, all of them to the new host. */
    assert_in_range(moved, n / 10, n * 3 / 10);
    assert_int_equal(moved, moved_to_new);
    dispose(&f4);
    dispose(&f5);
}

static void test_ring_hash_excluded_and_no_key(void **state)
{
    struct fixture f;
    uint8_t excl[4] = { 0 };
    uint64_t rng = 3;
    struct gy_lb_ctx ctx = { .rng = &rng };

    (void)state;
    mk(&f, GY_LB_RING_HASH, NULL, 4);
    for (int i = 0; i < 500; i++) {
        uint64_t h = gy_lb_hash(&i, sizeof(i));
        int a = ring_pick(&f, h, NULL);
        excl[a] = 1;
        int b = ring_pick(&f, h, excl);
        assert_true(b >= 0 && b != a);
        assert_int_equal(b, ring_pick(&f, h, excl));
        excl[a] = 0;
    }
    for (int i = 0; i < 100; i++) /* no key: random, still valid */
        assert_in_range(gy_lb_pick(&f.c, NULL, &ctx), 0, 3);
    dispose(&f);
}

static void test_subset_and_all_excluded(void **state)
{
    static char key[] = "version", v2[] = "v2", v3[] = "v3";
    struct gy_kv want2 = { key, v2 }, want3 = { key, v3 };
    struct gy_constraint sub2 = { .metadata = &want2, .nmetadata = 1 }, sub3 = { .metadata = &want3, .nmetadata = 1 };
    const enum gy_lb_policy policies[] = { GY_LB_ROUND_ROBIN, GY_LB_LEAST_REQUEST, GY_LB_RANDOM, GY_LB_RING_HASH };
    uint8_t all[6] = { 1, 1, 1, 1, 1, 1 };

    (void)state;
    for (size_t p = 0; p < sizeof(policies) / sizeof(policies[0]); p++) {
        struct fixture f;
        uint64_t rng = 11;
        mk(&f, policies[p], NULL, 6);
        struct gy_lb_state *st = gy_lb_state_new(&f.c);
        struct gy_lb_ctx ctx = { .rng = &rng, .subset = &sub2, .has_hash = true };
        for (int i = 0; i < 200; i++) {
            ctx.hash = gy_lb_hash(&i, sizeof(i));
            int k = gy_lb_pick(&f.c, st, &ctx);
            assert_true(k == 1 || k == 3 || k == 5); /* odd instances carry v2 */
        }
        ctx.subset = &sub3; /* nobody carries v3 */
        assert_int_equal(gy_lb_pick(&f.c, st, &ctx), -1);
        ctx.subset = NULL;
        ctx.excluded = all;
        assert_int_equal(gy_lb_pick(&f.c, st, &ctx), -1);
        ctx.has_hash = false;
        assert_int_equal(gy_lb_pick(&f.c, st, &ctx), -1);
        f.c.ninstances = 0;
        assert_int_equal(gy_lb_pick(&f.c, st, &ctx), -1);
        gy_lb_state_free(st);
        dispose(&f);
    }
}

static void test_hash_and_rand(void **state)
{
    uint64_t s = 1, seen = 0;

    (void)state;
    assert_true(gy_lb_hash("abc", 3) == gy_lb_hash("abc", 3));
    assert_true(gy_lb_hash("abc", 3) != gy_lb_hash("abd", 3));
    assert_true(gy_lb_hash("", 0) != 0);
    /* Low and high bits both vary over sequential keys. */
    for (uint32_t i = 0; i < 64; i++)
        seen |= 1ull << (gy_lb_hash(&i, sizeof(i)) & 63);
    assert_true(__builtin_popcountll(seen) > 32);
    uint64_t a = gy_lb_rand(&s), b = gy_lb_rand(&s);
    assert_true(a != b && s != 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rr_equal),
        cmocka_unit_test(test_rr_smooth_weighted),
        cmocka_unit_test(test_rr_excluded),
        cmocka_unit_test(test_least_request_all_choices),
        cmocka_unit_test(test_least_request_two_choices),
        cmocka_unit_test(test_random_distribution),
        cmocka_unit_test(test_ring_hash_consistent),
        cmocka_unit_test(test_ring_hash_excluded_and_no_key),
        cmocka_unit_test(test_subset_and_all_excluded),
        cmocka_unit_test(test_hash_and_rand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
