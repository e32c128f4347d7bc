/*
 * gyrus.ratelimit (envoy.filters.http.local_ratelimit, envoy.local_rate_limit): local token
 * buckets, shared by all the workers of a proxy. docs/filters.md has the config reference.
 *
 * A bucket holds up to max_tokens; each request takes one or is refused (429 with retry-after,
 * or grpc-status 8 for gRPC callers). tokens_per_fill come back every fill_interval, computed
 * lazily from the request's time: no timers. Fills happen on a grid that starts when the
 * bucket is created, so retry-after is the time to the next fill.
 *
 * key `route` gives one bucket to the compiled config: a route's filter_configs entry has its
 * own, the listener's http_filters entry one for the listener. `source_ip`, `identity` and
 * `header:NAME` give one bucket per value, in a table of at most RL_MAX_KEYS values split in RL_STRIPES
 * stripes, each with its own lock, hash index and LRU list. A new value in a full stripe takes
 * the bucket of the stripe's least recently used value (which has usually refilled anyway).
 * Values are identified by a seeded 64-bit hash, their length and their first RL_KEY_BYTES
 * bytes; tables are allocated on their first request.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "filters/fconf.h"
#include "proxy/filter.h"

#define RL_RF 0x200u                  /* GY_RF_FI (proxy.h): "FI", a filter answered instead of the upstream */
#define RL_MAX_KEYS 10000u
#define RL_STRIPES 16u
#define RL_STRIPE_CAP (RL_MAX_KEYS / RL_STRIPES)
#define RL_HEADS 1024u                /* hash chains per stripe (a power of two) */
#define RL_KEY_BYTES 112u
#define RL_NIL UINT32_MAX
#define RL_MAX_HEADER 128u            /* header:NAME, NAME at most this long */
#define GRPC_RESOURCE_EXHAUSTED 8

enum rl_key { RL_KEY_ROUTE, RL_KEY_SOURCE_IP, RL_KEY_HEADER, RL_KEY_IDENTITY };

struct bucket {
    uint64_t tokens;
    uint64_t last_fill_ms;            /* the last point of the fill grid at or before now */
};

struct entry {
    uint64_t hash;
    uint32_t chain;                   /* next entry in the same hash chain */
    uint32_t newer, older;            /* LRU list */
    uint32_t len;                     /* of the whole value */
    char key[RL_KEY_BYTES];           /* its first min(len, RL_KEY_BYTES) bytes */
    struct bucket b;
};

struct table {
    uint32_t heads[RL_HEADS];
    struct entry entries[RL_STRIPE_CAP];
};

struct stripe {
    pthread_mutex_t lock;
    struct table *t;                  /* NULL until the first request */
    uint32_t used;
    uint32_t newest, oldest;
};

struct ratelimit {
    uint64_t max_tokens;
    uint64_t tokens_per_fill;
    uint64_t fill_ms;
    int status;
    enum rl_key key;
    struct gy_slice header;           /* RL_KEY_HEADER: the name */
    char header_buf[RL_MAX_HEADER + 1]; /* NUL-terminated */
    uint64_t seed;
    pthread_mutex_t lock;             /* RL_KEY_ROUTE */
    struct bucket single;
    bool single_started;
    struct stripe stripes[RL_STRIPES]; /* for the other keys */
};

/* ---- config ----------------------------------------------------------------------------- */

struct rl_conf {
    uint32_t max_tokens, tokens_per_fill, fill_ms, status;
    const char *key;
};

static const struct gy_fopt bucket_table[] = {
    { "max_tokens", GY_FOPT_UINT, 1, 1000000000, offsetof(struct rl_conf, max_tokens), NULL },
    { "tokens_per_fill", GY_FOPT_UINT, 1, 1000000000, offsetof(struct rl_conf, tokens_per_fill), NULL },
    { "fill_interval", GY_FOPT_DURATION, 1, 0, offsetof(struct rl_conf, fill_ms), NULL },
    GY_FOPT_END,
};

/* Envoy's shape: the three bucket fields under token_bucket. */
static int parse_token_bucket(struct gy_fconf *f, const json_t *v, void *dst)
{
    uint32_t present;
    return gy_fconf_read(f, v, bucket_table, dst, &present);
}

static const struct gy_fopt rl_table[] = {
    { "max_tokens", GY_FOPT_UINT, 1, 1000000000, offsetof(struct rl_conf, max_tokens), NULL },
    { "tokens_per_fill", GY_FOPT_UINT, 1, 1000000000, offsetof(struct rl_conf, tokens_per_fill), NULL },
    { "fill_interval", GY_FOPT_DURATION, 1, 0, offsetof(struct rl_conf, fill_ms), NULL },
    { "key", GY_FOPT_STRING, 1, 0, offsetof(struct rl_conf, key), NULL },
    { "status", GY_FOPT_UINT, 400, 599, offsetof(struct rl_conf, status), NULL },
    { "token_bucket", GY_FOPT_CUSTOM, 0, 0, 0, parse_token_bucket },
    { "stat_prefix", GY_FOPT_IGNORED, 0, 0, 0, NULL },
    GY_FOPT_END,
};

static bool is_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] != '\0' && strchr("!#$%&'*+-.^_`|~", s[i]) != NULL)))
            return false;
    return n > 0;
}

static int set_key(struct gy_fconf *f, struct ratelimit *rl, const char *key, const json_t *value)
{
    size_t n, mark;
    char got[96];

    if (key == NULL || strcmp(key, "route") == 0) {
        rl->key = RL_KEY_ROUTE;
        return 0;
    }
    if (strcmp(key, "source_ip") == 0) {
        rl->key = RL_KEY_SOURCE_IP;
        return 0;
    }
    if (strcmp(key, "identity") == 0) {
        rl->key = RL_KEY_IDENTITY;
        return 0;
    }
    n = strlen(key);
    if (strncmp(key, "header:", 7) != 0 || !is_token(key + 7, n - 7) || n - 7 > RL_MAX_HEADER) {
        mark = gy_fconf_push(f, "key");
        gy_fconf_fail(f, "must be route, source_ip, identity or header:NAME, got %s", gy_fconf_desc(value, got, sizeof(got)));
        gy_fconf_pop(f, mark);
        return -1;
    }
    rl->key = RL_KEY_HEADER;
    memcpy(rl->header_buf, key + 7, n - 7);
    rl->header = gy_slice(rl->header_buf, n - 7);
    return 0;
}

static uint64_t make_seed(void)
{
    uint64_t s = 0;

    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15u ^ (uint64_t)ts.tv_sec;
    }
    return s;
}

static void destroy(void *compiled)
{
    struct ratelimit *rl = compiled;

    if (rl == NULL)
        return;
    pthread_mutex_destroy(&rl->lock);
    for (unsigned i = 0; i < RL_STRIPES; i++) {
        pthread_mutex_destroy(&rl->stripes[i].lock);
        free(rl->stripes[i].t);
    }
    free(rl);
}

static struct ratelimit *rl_new(void)
{
    struct ratelimit *rl = calloc(1, sizeof(*rl));

    if (rl == NULL)
        return NULL;
    pthread_mutex_init(&rl->lock, NULL);
    for (unsigned i = 0; i < RL_STRIPES; i++)
        pthread_mutex_init(&rl->stripes[i].lock, NULL);
    rl->seed = make_seed();
    return rl;
}

static void *compile(const json_t *config, char *err, size_t errlen)
{
    struct gy_fconf f;
    struct rl_conf rc = { .status = 429 };
    struct ratelimit *rl = NULL;
    uint32_t present, flat = gy_fopt_bit(rl_table, "max_tokens") | gy_fopt_bit(rl_table, "tokens_per_fill") |
                                gy_fopt_bit(rl_table, "fill_interval");

    gy_fconf_init(&f, err, errlen);
    if (config == NULL || json_is_null(config)) {
        gy_fconf_fail(&f, "needs a config: max_tokens and fill_interval are required");
        return NULL;
    }
    if (gy_fconf_read(&f, config, rl_table, &rc, &present) != 0)
        return NULL;
    if ((present & gy_fopt_bit(rl_table, "token_bucket")) && (present & flat)) {
        gy_fconf_fail(&f, "token_bucket: excludes max_tokens, tokens_per_fill and fill_interval beside it");
        return NULL;
    }
    if (rc.max_tokens == 0 || rc.fill_ms == 0) {
        gy_fconf_fail(&f, "%s: required", rc.max_tokens == 0 ? "max_tokens" : "fill_interval");
        return NULL;
    }
    if ((rl = rl_new()) == NULL) {
        gy_fconf_fail(&f, "out of memory");
        return NULL;
    }
    rl->max_tokens = rc.max_tokens;
    rl->tokens_per_fill = rc.tokens_per_fill != 0 ? rc.tokens_per_fill : rc.max_tokens;
    rl->fill_ms = rc.fill_ms;
    rl->status = (int)rc.status;
    if (set_key(&f, rl, rc.key, json_object_get(config, "key")) != 0) {
        destroy(rl);
        return NULL;
    }
    return rl;
}

/* ---- buckets ---------------------------------------------------------------------------- */

/* Takes a token if there is one; otherwise sets *wait_ms to the time until the next fill. */
static bool bucket_take(const struct ratelimit *rl, struct bucket *b, uint64_t now, uint64_t *wait_ms)
{
    if (now >= b->last_fill_ms + rl->fill_ms) {
        uint64_t fills = (now - b->last_fill_ms) / rl->fill_ms;
        if (fills >= rl->max_tokens)
            b->tokens = rl->max_tokens; /* also keeps fills × tokens_per_fill from overflowing */
        else
            b->tokens = b->tokens + fills * rl->tokens_per_fill > rl->max_tokens ? rl->max_tokens
                                                                                 : b->tokens + fills * rl->tokens_per_fill;
        b->last_fill_ms += fills * rl->fill_ms;
    }
    if (b->tokens > 0) {
        b->tokens--;
        return true;
    }
    *wait_ms = b->last_fill_ms + rl->fill_ms - now;
    return false;
}

static void bucket_start(const struct ratelimit *rl, struct bucket *b, uint64_t now)
{
    b->tokens = rl->max_tokens;
    b->last_fill_ms = now;
}

static uint64_t hash_key(uint64_t seed, const char *p, size_t n)
{
    uint64_t h = seed ^ 0xcbf29ce484222325u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3u;
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 29;
    return h;
}

static void lru_unlink(struct stripe *s, uint32_t i)
{
    struct entry *e = &s->t->entries[i];

    if (e->newer != RL_NIL)
        s->t->entries[e->newer].older = e->older;
    else
        s->newest = e->older;
    if (e->older != RL_NIL)
        s->t->entries[e->older].newer = e->newer;
    else
        s->oldest = e->newer;
}

static void lru_push(struct stripe *s, uint32_t i)
{
    struct entry *e = &s->t->entries[i];

    e->newer = RL_NIL;
    e->older = s->newest;
    if (s->newest != RL_NIL)
        s->t->entries[s->newest].newer = i;
    s->newest = i;
    if (s->oldest == RL_NIL)
        s->oldest = i;
}

static void chain_unlink(struct stripe *s, uint32_t i)
{
    uint32_t *p = &s->t->heads[s->t->entries[i].hash & (RL_HEADS - 1)];

    while (*p != RL_NIL && *p != i)
        p = &s->t->entries[*p].chain;
    if (*p == i)
        *p = s->t->entries[i].chain;
}

/* The bucket of a value, created (or recycled from the oldest value) if new; NULL without memory. */
static struct bucket *stripe_bucket(const struct ratelimit *rl, struct stripe *s, uint64_t h, struct gy_slice v,
                                    uint64_t now)
{
    size_t cmp = v.len < RL_KEY_BYTES ? v.len : RL_KEY_BYTES;
    uint32_t i;
    struct entry *e;

    if (s->t == NULL) {
        if ((s->t = malloc(sizeof(*s->t))) == NULL)
            return NULL;
        memset(s->t->heads, 0xff, sizeof(s->t->heads));
        s->used = 0;
        s->newest = s->oldest = RL_NIL;
    }
    for (i = s->t->heads[h & (RL_HEADS - 1)]; i != RL_NIL; i = e->chain) {
        e = &s->t->entries[i];
        if (e->hash == h && e->len == v.len && (cmp == 0 || memcmp(e->key, v.ptr, cmp) == 0)) {
            lru_unlink(s, i);
            lru_push(s, i);
            return &e->b;
        }
    }
    if (s->used < RL_STRIPE_CAP) {
        i = s->used++;
    } else {
        i = s->oldest;
        lru_unlink(s, i);
        chain_unlink(s, i);
    }
    e = &s->t->entries[i];
    e->hash = h;
    e->len = (uint32_t)v.len;
    if (cmp > 0)
        memcpy(e->key, v.ptr, cmp);
    e->chain = s->t->heads[h & (RL_HEADS - 1)];
    s->t->heads[h & (RL_HEADS - 1)] = i;
    lru_push(s, i);
    bucket_start(rl, &e->b, now);
    return &e->b;
}

/* The value a request is counted under (key source_ip, identity or header:NAME); "" when it has
 * none. identity: what the client's verified certificate proved (SPIFFE ID, else subject DN),
 * else its address; a header as the filters before left it. */
static struct gy_slice key_value(const struct ratelimit *rl, const struct gy_filter_call *c)
{
    const struct gy_tls_peer *p = c->peer;

    if (rl->key == RL_KEY_IDENTITY && p != NULL && p->verified && (p->spiffe_id != NULL || p->subject != NULL))
        return gy_slice_cstr(p->spiffe_id != NULL ? p->spiffe_id : p->subject);
    if (rl->key == RL_KEY_SOURCE_IP || rl->key == RL_KEY_IDENTITY)
        return gy_slice_cstr(c->peer_ip != NULL ? c->peer_ip : "");
    struct gy_slice v = gy_filter_header_get(c, rl->header_buf);
    return v.ptr != NULL ? v : gy_slice("", 0);
}

/* Takes a token for the request; false with *wait_ms if it has none. Allows it when out of memory. */
static bool take(struct ratelimit *rl, const struct gy_filter_call *c, uint64_t *wait_ms)
{
    bool ok = true;

    if (rl->key == RL_KEY_ROUTE) {
        pthread_mutex_lock(&rl->lock);
        if (!rl->single_started) {
            bucket_start(rl, &rl->single, c->now_ms);
            rl->single_started = true;
        }
        ok = bucket_take(rl, &rl->single, c->now_ms, wait_ms);
        pthread_mutex_unlock(&rl->lock);
        return ok;
    }
    struct gy_slice v = key_value(rl, c);
    uint64_t h = hash_key(rl->seed, v.ptr, v.len);
    struct stripe *s = &rl->stripes[h >> 60 & (RL_STRIPES - 1)];

    pthread_mutex_lock(&s->lock);
    struct bucket *b = stripe_bucket(rl, s, h, v, c->now_ms);
    if (b != NULL)
        ok = bucket_take(rl, b, c->now_ms, wait_ms);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static enum gy_filter_result on_request(struct gy_filter_call *c, void *compiled, void *route_compiled)
{
    struct ratelimit *rl = route_compiled != NULL ? route_compiled : compiled;
    uint64_t wait_ms = 0, secs;
    char extra[96];

    if (take(rl, c, &wait_ms))
        return GY_FILTER_CONTINUE;
    c->flags |= RL_RF;
    if (c->grpc)
        return gy_filter_grpc_reply(c, GRPC_RESOURCE_EXHAUSTED, "local rate limited");
    secs = (wait_ms + 999) / 1000;
    snprintf(extra, sizeof(extra), "retry-after: %llu\r\nx-gyrus-ratelimited: true\r\n",
             (unsigned long long)(secs > 0 ? secs : 1));
    return gy_filter_reply(c, rl->status, extra, "local_rate_limited");
}

static const char *const aliases[] = { "envoy.filters.http.local_ratelimit", "envoy.local_rate_limit", NULL };

const struct gy_filter_ops gy_filter_ratelimit = {
    .name = "gyrus.ratelimit",
    .aliases = aliases,
    .compile = compile,
    .destroy = destroy,
    .on_request = on_request,
};
