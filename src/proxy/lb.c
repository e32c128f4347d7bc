/*
 * Load balancing over a cluster's instances (lb.h). Every policy honours ctx->excluded and
 * ctx->subset; none allocates on the request path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "proxy/lb.h"

#define LB_MAX_CHOICES 64
#define RING_MAX_POINTS (1u << 23)

/* Per worker, per cluster: the current weights of smooth weighted round robin. */
struct gy_lb_state {
    size_t n;   /* instance count the weights belong to */
    size_t cap; /* entries in cw */
    int64_t cw[];
};

struct gy_lb_state *gy_lb_state_new(const struct gy_cluster *c)
{
    size_t n = c != NULL ? c->ninstances : 0;
    struct gy_lb_state *st = calloc(1, sizeof(*st) + n * sizeof(st->cw[0]));

    if (st != NULL)
        st->n = st->cap = n;
    return st;
}

void gy_lb_state_free(struct gy_lb_state *st)
{
    free(st);
}

uint64_t gy_lb_rand(uint64_t *state)
{
    uint64_t x = *state != 0 ? *state : 0x9e3779b97f4a7c15ull;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* FNV-1a over the bytes, then a 64-bit avalanche so that nearby inputs spread over the ring. */
uint64_t gy_lb_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* A uniformly random number in [0, n), n > 0. */
static uint64_t rand_below(uint64_t *rng, uint64_t n)
{
    uint64_t r = gy_lb_rand(rng);

    if (n <= UINT32_MAX)
        return ((r >> 32) * n) >> 32;
    return r % n;
}

/* ---- which instances are usable -------------------------------------------------------------- */

static bool carries(const struct gy_instance *in, const struct gy_kv *want)
{
    for (size_t i = 0; i < in->nmetadata; i++)
        if (strcmp(in->metadata[i].key, want->key) == 0 && strcmp(in->metadata[i].value, want->value) == 0)
            return true;
    return false;
}

static bool usable(const struct gy_cluster *c, const struct gy_lb_ctx *ctx, size_t i)
{
    if (ctx->excluded != NULL && ctx->excluded[i])
        return false;
    if (ctx->subset != NULL)
        for (size_t k = 0; k < ctx->subset->nmetadata; k++)
            if (!carries(&c->instances[i], &ctx->subset->metadata[k]))
                return false;
    return true;
}

static bool in_set(const int *set, size_t n, size_t i)
{
    for (size_t k = 0; k < n; k++)
        if (set[k] == (int)i)
            return true;
    return false;
}

/* Weighted random among usable instances not in skip[0..nskip). */
static int pick_weighted(const struct gy_cluster *c, const struct gy_lb_ctx *ctx, uint64_t *rng, const int *skip,
                         size_t nskip)
{
    uint64_t total = 0, r;
    size_t i;

    for (i = 0; i < c->ninstances; i++)
        if (usable(c, ctx, i) && !in_set(skip, nskip, i))
            total += c->instances[i].weight;
    if (total == 0)
        return -1;
    r = rand_below(rng, total);
    for (i = 0; i < c->ninstances; i++) {
        if (!usable(c, ctx, i) || in_set(skip, nskip, i))
            continue;
        if (r < c->instances[i].weight)
            return (int)i;
        r -= c->instances[i].weight;
    }
    return -1;
}

/* ---- policies ------------------------------------------------------------------------------ */

/* Smooth weighted round robin (nginx): every usable instance gains its weight, the one with the
 * most is chosen and pays back the total. Weights 5,1,1 give a a b a c a a. */
static int pick_round_robin(const struct gy_cluster *c, struct gy_lb_state *st, const struct gy_lb_ctx *ctx,
                            uint64_t *rng)
{
    int64_t total = 0;
    int best = -1;

    if (st == NULL || st->cap < c->ninstances) /* state from a smaller config: no memory to keep turns */
        return pick_weighted(c, ctx, rng, NULL, 0);
    if (st->n != c->ninstances) {
        memset(st->cw, 0, st->cap * sizeof(st->cw[0]));
        st->n = c->ninstances;
    }
    for (size_t i = 0; i < c->ninstances; i++) {
        if (!usable(c, ctx, i))
            continue;
        st->cw[i] += c->instances[i].weight;
        total += c->instances[i].weight;
        if (best < 0 || st->cw[i] > st->cw[best])
            best = (int)i;
    }
    if (best >= 0)
        st->cw[best] -= total;
    return best;
}

/* a is better than b: fewer active requests, then the higher weight. */
static bool less_loaded(const struct gy_cluster *c, const struct gy_lb_ctx *ctx, int a, int b)
{
    uint32_t aa = ctx->active ? ctx->active[a] : 0, ab = ctx->active ? ctx->active[b] : 0;

    if (aa != ab)
        return aa < ab;
    return c->instances[a].weight > c->instances[b].weight;
}

/* Power of choice_count choices: sample that many distinct usable instances (by weight) and
 * take the least loaded; when there are no more usable instances than that, look at all. */
static int pick_least_request(const struct gy_cluster *c, const struct gy_lb_ctx *ctx, uint64_t *rng)
{
    size_t k = c->choice_count < 1 ? 1 : c->choice_count > LB_MAX_CHOICES ? LB_MAX_CHOICES : c->choice_count;
    size_t nusable = 0;
    int chosen[LB_MAX_CHOICES], best = -1;

    for (size_t i = 0; i < c->ninstances && nusable <= k; i++)
        nusable += usable(c, ctx, i);
    if (nusable <= k) {
        for (size_t i = 0; i < c->ninstances; i++)
            if (usable(c, ctx, i) && (best < 0 || less_loaded(c, ctx, (int)i, best)))
                best = (int)i;
        return best;
    }
    for (size_t j = 0; j < k; j++) {
        int idx = pick_weighted(c, ctx, rng, chosen, j);
        if (idx < 0)
            break;
        chosen[j] = idx;
        if (best < 0 || less_loaded(c, ctx, idx, best))
            best = idx;
    }
    return best;
}

/* The first point at or after the key's hash (wrapping), then onward past unusable instances. */
static int pick_ring_hash(const struct gy_cluster *c, const struct gy_lb_ctx *ctx, uint64_t *rng)
{
    size_t lo = 0, hi = c->ring_size;

    if (!ctx->has_hash || c->ring_hashes == NULL || c->ring_size == 0)
        return pick_weighted(c, ctx, rng, NULL, 0);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->ring_hashes[mid] < ctx->hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t j = 0; j < c->ring_size; j++) {
        uint32_t h = c->ring_hosts[(lo + j) % c->ring_size];
        if (h < c->ninstances && usable(c, ctx, h))
            return (int)h;
    }
    return -1;
}

int gy_lb_pick(const struct gy_cluster *c, struct gy_lb_state *st, const struct gy_lb_ctx *ctx)
{
    uint64_t local_rng = 0x2545f4914f6cdd1dull;
    uint64_t *rng = ctx->rng != NULL ? ctx->rng : &local_rng;

    if (c == NULL || c->ninstances == 0)
        return -1;
    switch (c->lb_policy) {
    case GY_LB_ROUND_ROBIN:
        return pick_round_robin(c, st, ctx, rng);
    case GY_LB_LEAST_REQUEST:
        return pick_least_request(c, ctx, rng);
    case GY_LB_RING_HASH:
        return pick_ring_hash(c, ctx, rng);
    case GY_LB_RANDOM:
    default:
        return pick_weighted(c, ctx, rng, NULL, 0);
    }
}

/* ---- ring ---------------------------------------------------------------------------------- */

struct ring_point {
    uint64_t hash;
    uint32_t host;
};

static int ring_point_cmp(const void *pa, const void *pb)
{
    const struct ring_point *a = pa, *b = pb;

    if (a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    return a->host < b->host ? -1 : a->host > b->host;
}

/* Points per instance. When the weights fit in the ring, each weight unit gets a power of two
 * of points, so the total lands in [ring_size, 2 * ring_size) and adding or removing an
 * instance usually leaves every other instance's points unchanged (only ~1/n of keys move).
 * Otherwise points are proportional to weight, at least one each. */
static uint64_t ring_points(const struct gy_cluster *c, uint64_t target, uint64_t total_weight, size_t i)
{
    uint64_t w = c->instances[i].weight;

    if (total_weight <= target) {
        uint64_t per = 1;
        while (per * total_weight < target)
            per <<= 1;
        return w * per;
    }
    uint64_t p = w * target / total_weight;
    return p == 0 ? 1 : p;
}

static void ring_fill(const struct gy_cluster *c, struct ring_point *pts, uint64_t target, uint64_t total_weight)
{
    char key[300];
    size_t np = 0;

    for (size_t i = 0; i < c->ninstances; i++) {
        uint64_t n = ring_points(c, target, total_weight, i);
        for (uint64_t j = 0; j < n; j++) {
            int len = snprintf(key, sizeof(key), "%s:%u_%llu", c->instances[i].host, (unsigned)c->instances[i].port,
                               (unsigned long long)j);
            size_t kl = len < 0 ? 0 : (size_t)len >= sizeof(key) ? sizeof(key) - 1 : (size_t)len;
            pts[np].hash = gy_lb_hash(key, kl);
            pts[np].host = (uint32_t)i;
            np++;
        }
    }
}

int gy_lb_build_ring(struct gy_cluster *c)
{
    uint64_t target = c->ring_size != 0 ? c->ring_size : 1024, total_weight = 0, npoints = 0;
    struct ring_point *pts;

    free(c->ring_hashes);
    free(c->ring_hosts);
    c->ring_hashes = NULL;
    c->ring_hosts = NULL;
    c->ring_size = 0;
    if (c->ninstances == 0)
        return 0;
    if (target > RING_MAX_POINTS / 2)
        target = RING_MAX_POINTS / 2;
    for (size_t i = 0; i < c->ninstances; i++)
        total_weight += c->instances[i].weight;
    for (size_t i = 0; i < c->ninstances; i++)
        npoints += ring_points(c, target, total_weight, i);
    pts = malloc(npoints * sizeof(*pts));
    c->ring_hashes = malloc(npoints * sizeof(*c->ring_hashes));
    c->ring_hosts = malloc(npoints * sizeof(*c->ring_hosts));
    if (pts == NULL || c->ring_hashes == NULL || c->ring_hosts == NULL) {
        free(pts);
        free(c->ring_hashes);
        free(c->ring_hosts);
        c->ring_hashes = NULL;
        c->ring_hosts = NULL;
        return GY_ENOMEM;
    }
    ring_fill(c, pts, target, total_weight);
    qsort(pts, npoints, sizeof(*pts), ring_point_cmp);
    for (size_t i = 0; i < npoints; i++) {
        c->ring_hashes[i] = pts[i].hash;
        c->ring_hosts[i] = pts[i].host;
    }
    c->ring_size = (uint32_t)npoints;
    free(pts);
    return 0;
}
