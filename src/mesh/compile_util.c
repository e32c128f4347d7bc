/*
 * The config compiler, shared helpers: the arena a config lives in, errors, field readers,
 * durations, regexes, address resolution and the small lists (key/values, header operations,
 * redirects) that several kinds carry.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "mesh/compile_int.h"

/* ---- arena ------------------------------------------------------------------------------ */

#define CHUNK_SIZE 16384
#define ALIGN_UP(n) (((n) + 15u) & ~(size_t)15u)

struct cc_chunk {
    struct cc_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
};

struct cc_cleanup {
    struct cc_cleanup *next;
    void (*fn)(void *);
    void *p;
};

static void *arena_alloc(struct cc_arena *a, size_t n)
{
    struct cc_chunk *c = a->chunks;

    n = ALIGN_UP(n);
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > CHUNK_SIZE / 2 ? n : CHUNK_SIZE;
        c = malloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->used = 0;
        c->cap = cap;
        if (a->chunks != NULL && n > CHUNK_SIZE / 2) {
            /* A big block gets its own chunk behind the current one, which stays in use. */
            c->next = a->chunks->next;
            a->chunks->next = c;
        } else {
            c->next = a->chunks;
            a->chunks = c;
        }
    }
    void *p = c->mem + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void cc_arena_dispose(struct cc_arena *a)
{
    for (struct cc_cleanup *cl = a->cleanups; cl != NULL; cl = cl->next)
        cl->fn(cl->p);
    a->cleanups = NULL;
    while (a->chunks != NULL) {
        struct cc_chunk *next = a->chunks->next;
        free(a->chunks);
        a->chunks = next;
    }
}

void *cc_array(struct cc *cc, size_t n, size_t size)
{
    if (n == 0)
        return NULL;
    if (size != 0 && n > SIZE_MAX / 2 / size) {
        cc_nomem(cc);
        return NULL;
    }
    void *p = arena_alloc(cc->arena, n * size);
    if (p == NULL)
        cc_nomem(cc);
    return p;
}

char *cc_strdup(struct cc *cc, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    char *d = cc_array(cc, n + 1, 1);
    if (d != NULL)
        memcpy(d, s, n + 1);
    return d;
}

char *cc_strdup_lower(struct cc *cc, const char *s)
{
    char *d = cc_strdup(cc, s);
    for (char *p = d; p != NULL && *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

int cc_cleanup_add(struct cc *cc, void (*fn)(void *), void *p)
{
    struct cc_cleanup *cl = cc_array(cc, 1, sizeof(*cl));
    if (cl == NULL)
        return GY_ENOMEM;
    cl->fn = fn;
    cl->p = p;
    cl->next = cc->arena->cleanups;
    cc->arena->cleanups = cl;
    return 0;
}

/* ---- errors and field readers ------------------------------------------------------------- */

int cc_fail(struct cc *cc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cc->err->msg, sizeof(cc->err->msg), fmt, ap);
    va_end(ap);
    return GY_ECONFIG;
}

int cc_nomem(struct cc *cc)
{
    snprintf(cc->err->msg, sizeof(cc->err->msg), "proxy \"%s\": out of memory while compiling the config",
             cc->cfg->proxy_name ? cc->cfg->proxy_name : "?");
    return GY_ENOMEM;
}

const char *cc_str(const json_t *o, const char *field, const char *def)
{
    const char *s = json_string_value(json_object_get(o, field));
    return s != NULL ? s : def;
}

long long cc_int(const json_t *o, const char *field, long long def)
{
    const json_t *v = json_object_get(o, field);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

bool cc_bool(const json_t *o, const char *field, bool def)
{
    const json_t *v = json_object_get(o, field);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

int cc_duration(struct cc *cc, const json_t *o, const char *field, uint32_t def, uint32_t *ms, const char *what)
{
    const json_t *v = json_object_get(o, field);

    if (v == NULL || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) {
        *ms = def;
        return 0;
    }
    if (gy_mesh_duration_ms(v, ms) != 0)
        return cc_fail(cc, "%s: %s: not a duration (\"250ms\", \"5s\", \"1.5s\", \"2m\", \"1h\" or seconds)", what,
                       field);
    return 0;
}

static void regex_free(void *p)
{
    pcre2_code_free(p);
}

int cc_regex(struct cc *cc, const char *pattern, bool anchored, struct pcre2_real_code_8 **out, const char *what,
             const char *field)
{
    int errcode;
    PCRE2_SIZE erroff;
    uint32_t opts = anchored ? PCRE2_ANCHORED | PCRE2_ENDANCHORED : 0;

    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &errcode, &erroff, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof(msg));
        return cc_fail(cc, "%s: %s: bad regex \"%s\": %s at offset %zu", what, field, pattern, (const char *)msg,
                       (size_t)erroff);
    }
    if (cc_cleanup_add(cc, regex_free, re) != 0) {
        pcre2_code_free(re);
        return GY_ENOMEM;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is used when JIT is unavailable */
    *out = re;
    return 0;
}

int cc_resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len, const char **why)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    char bare[INET6_ADDRSTRLEN + 2];
    size_t hl = strlen(host);

    memset(ss, 0, sizeof(*ss));
    if (hl >= 2 && hl < sizeof(bare) && host[0] == '[' && host[hl - 1] == ']') {
        memcpy(bare, host + 1, hl - 2); /* "[::1]" */
        bare[hl - 2] = '\0';
        host = bare;
    }
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        *len = sizeof(*sin);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *len = sizeof(*sin6);
        return 0;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || res == NULL) {
        *why = rc != 0 ? gai_strerror(rc) : "no address";
        return GY_ENOTFOUND;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    if (ss->ss_family == AF_INET)
        sin->sin_port = htons(port);
    else if (ss->ss_family == AF_INET6)
        sin6->sin6_port = htons(port);
    freeaddrinfo(res);
    return 0;
}

/* ---- shared list helpers ------------------------------------------------------------------- */

int cc_kvs(struct cc *cc, const json_t *arr, struct gy_kv **out, size_t *n)
{
    size_t i, cnt = json_array_size(arr);
    const json_t *item;

    *out = NULL;
    *n = 0;
    if (cnt == 0)
        return 0;
    struct gy_kv *kv = cc_array(cc, cnt, sizeof(*kv));
    if (kv == NULL)
        return GY_ENOMEM;
    json_array_foreach(arr, i, item)
    {
        kv[i].key = cc_strdup(cc, cc_str(item, "key", ""));
        kv[i].value = cc_strdup(cc, cc_str(item, "value", ""));
        if (kv[i].key == NULL || kv[i].value == NULL)
            return GY_ENOMEM;
    }
    *out = kv;
    *n = cnt;
    return 0;
}

int cc_header_ops(struct cc *cc, const json_t *arr, struct gy_header_op **out, size_t *n)
{
    size_t i, cnt = json_array_size(arr);
    const json_t *item;

    *out = NULL;
    *n = 0;
    if (cnt == 0)
        return 0;
    struct gy_header_op *ops = cc_array(cc, cnt, sizeof(*ops));
    if (ops == NULL)
        return GY_ENOMEM;
    json_array_foreach(arr, i, item)
    {
        const json_t *h = json_object_get(item, "header");
        bool envoy = json_is_object(h);
        const json_t *kv = envoy ? h : item;
        ops[i].name = cc_strdup_lower(cc, cc_str(kv, "key", ""));
        ops[i].value = cc_strdup(cc, cc_str(kv, "value", ""));
        ops[i].append = cc_bool(item, "append", envoy);
        if (ops[i].name == NULL || ops[i].value == NULL)
            return GY_ENOMEM;
    }
    *out = ops;
    *n = cnt;
    return 0;
}

static int redirect_status(const char *type)
{
    if (type == NULL || strcmp(type, "permanent") == 0)
        return 301;
    if (strcmp(type, "temporary") == 0)
        return 302;
    char *end;
    long v = strtol(type, &end, 10); /* an explicit 3xx */
    return *end == '\0' && v >= 300 && v <= 399 ? (int)v : 301;
}

int cc_redirects(struct cc *cc, const json_t *arr, struct gy_redirect **out, size_t *n, const char *what)
{
    size_t i, cnt = json_array_size(arr);
    const json_t *item;
    char field[64];
    int rc;

    *out = NULL;
    *n = 0;
    if (cnt == 0)
        return 0;
    struct gy_redirect *r = cc_array(cc, cnt, sizeof(*r));
    if (r == NULL)
        return GY_ENOMEM;
    json_array_foreach(arr, i, item)
    {
        snprintf(field, sizeof(field), "redirects[%zu].from", i);
        if ((rc = cc_regex(cc, cc_str(item, "from", ""), false, &r[i].from, what, field)) != 0)
            return rc;
        r[i].name = cc_strdup(cc, cc_str(item, "name", ""));
        r[i].to = cc_strdup(cc, cc_str(item, "to", ""));
        if (r[i].name == NULL || r[i].to == NULL)
            return GY_ENOMEM;
        const json_t *t = json_object_get(item, "redirect_type");
        r[i].status = json_is_integer(t) ? (int)json_integer_value(t) : redirect_status(json_string_value(t));
    }
    *out = r;
    *n = cnt;
    return 0;
}

static uint32_t clamp_u32(long long v, uint32_t lo, uint32_t hi)
{
    return v < (long long)lo ? lo : v > (long long)hi ? hi : (uint32_t)v;
}

void cc_http2_options(const json_t *o, struct gy_http2_options *h, uint32_t max_header_list_size)
{
    h->max_concurrent_streams = clamp_u32(cc_int(o, "max_concurrent_streams", 100), 1, 2147483647u);
    h->initial_stream_window_size = clamp_u32(cc_int(o, "initial_stream_window_size", 65535), 65535, 16777216u);
    h->initial_connection_window_size =
        clamp_u32(cc_int(o, "initial_connection_window_size", 1048576), 65535, 2147483647u);
    h->max_header_list_size = clamp_u32(cc_int(o, "max_header_list_size", max_header_list_size), 1024, 1048576u);
    h->hpack_table_size = clamp_u32(cc_int(o, "hpack_table_size", 4096), 0, 65536u);
    h->allow_connect = cc_bool(o, "allow_connect", false);
    h->max_outbound_control_frames = clamp_u32(cc_int(o, "max_outbound_control_frames", 1000), 1, 1000000u);
    h->max_inbound_control_frames_per_s =
        clamp_u32(cc_int(o, "max_inbound_control_frames_per_second", 1000), 1, 1000000u);
    h->max_resets_per_s = clamp_u32(cc_int(o, "max_requests_reset_per_second", 100), 1, 1000000u);
    h->max_resets_burst = clamp_u32(cc_int(o, "max_requests_reset_burst", 200), 1, 1000000u);
}
