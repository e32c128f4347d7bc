/*
 * gyrus.fault (envoy.fault, envoy.filters.http.fault): fault injection, configured or asked for
 * by the request's x-envoy-fault-* headers. docs/filters.md has the config reference.
 *
 * A request eligible for faults (it matches every `headers` matcher) may be aborted (an HTTP
 * status, or a gRPC status in a trailers-only answer) or delayed, each with its own percentage
 * drawn from independent halves of the call's random number. When both hit, the abort wins
 * and there is no delay: the chain resumes after a delay with the next filter, so a filter
 * cannot answer after its own pause.
 *
 * max_active_faults bounds the faults in progress across all workers without a callback at the
 * end of a request: a delay takes one of max_active_faults slots, an atomic holding the time its
 * delay ends; a slot whose time has passed is free. An abort needs a free slot but does not hold
 * it (it is over at once).
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/fconf.h"
#include "proxy/filter.h"

#define FAULT_RF_FI 0x200u            /* GY_RF_FI (proxy.h): "FI" in the access log */
#define PPM 1000000u                  /* percentages are kept in parts per million */
#define MAX_DELAY_MS 3600000u         /* configured and header-requested delays, at most 1 h */
#define MAX_ACTIVE_FAULTS 10000

enum match_kind { MATCH_PRESENT, MATCH_EXACT, MATCH_PREFIX, MATCH_SUFFIX };

struct header_match {
    struct gy_slice name;             /* owned, NUL-terminated */
    struct gy_slice value;            /* owned, NUL-terminated; empty for MATCH_PRESENT */
    enum match_kind kind;
    bool invert;                      /* invert_match, or present_match: false */
};

struct fault {
    int abort_http;                   /* 200..599, or 0 */
    int abort_grpc;                   /* 0..16, or -1 */
    uint32_t abort_ppm;
    uint32_t delay_ms;                /* 0: no configured delay */
    uint32_t delay_ppm;
    bool header_faults;               /* honour x-envoy-fault-* request headers */
    struct header_match *headers;
    size_t nheaders;
    uint32_t max_active;              /* 0: unlimited */
    _Atomic uint64_t *slots;          /* max_active end times (ms, monotonic) */
};

/* ---- config ----------------------------------------------------------------------------- */

struct abort_conf {
    uint32_t http_status, grpc_status, ppm;
};

struct delay_conf {
    uint32_t fixed_ms, fixed_ms_int, ppm;
};

struct header_conf {
    const char *name, *exact, *prefix, *suffix;
    bool present, invert;
};

struct fault_conf {
    struct fault *ft;
    bool header_faults;
    uint32_t max_active;
};

static const struct gy_fopt abort_table[] = {
    { "http_status", GY_FOPT_UINT, 200, 599, offsetof(struct abort_conf, http_status), NULL },
    { "grpc_status", GY_FOPT_UINT, 0, 16, offsetof(struct abort_conf, grpc_status), NULL },
    { "percentage", GY_FOPT_PERCENT, 0, 0, offsetof(struct abort_conf, ppm), NULL },
    GY_FOPT_END,
};

static const struct gy_fopt delay_table[] = {
    { "fixed_delay", GY_FOPT_DURATION, 1, MAX_DELAY_MS, offsetof(struct delay_conf, fixed_ms), NULL },
    { "fixed_delay_ms", GY_FOPT_UINT, 1, MAX_DELAY_MS, offsetof(struct delay_conf, fixed_ms_int), NULL },
    { "percentage", GY_FOPT_PERCENT, 0, 0, offsetof(struct delay_conf, ppm), NULL },
    GY_FOPT_END,
};

static const struct gy_fopt header_table[] = {
    { "name", GY_FOPT_STRING, 1, 0, offsetof(struct header_conf, name), NULL },
    { "exact_match", GY_FOPT_STRING, 0, 0, offsetof(struct header_conf, exact), NULL },
    { "prefix_match", GY_FOPT_STRING, 1, 0, offsetof(struct header_conf, prefix), NULL },
    { "suffix_match", GY_FOPT_STRING, 1, 0, offsetof(struct header_conf, suffix), NULL },
    { "present_match", GY_FOPT_BOOL, 0, 0, offsetof(struct header_conf, present), NULL },
    { "invert_match", GY_FOPT_BOOL, 0, 0, offsetof(struct header_conf, invert), NULL },
    GY_FOPT_END,
};

static int parse_abort(struct gy_fconf *f, const json_t *v, void *dst)
{
    struct fault *ft = ((struct fault_conf *)dst)->ft;
    struct abort_conf a = { .ppm = PPM };
    uint32_t present, http = gy_fopt_bit(abort_table, "http_status"), grpc = gy_fopt_bit(abort_table, "grpc_status");

    if (gy_fconf_read(f, v, abort_table, &a, &present) != 0)
        return -1;
    if ((present & (http | grpc)) == 0)
        return gy_fconf_fail(f, "needs http_status or grpc_status");
    if ((present & (http | grpc)) == (http | grpc))
        return gy_fconf_fail(f, "http_status and grpc_status exclude each other");
    ft->abort_http = (present & http) ? (int)a.http_status : 0;
    ft->abort_grpc = (present & grpc) ? (int)a.grpc_status : -1;
    ft->abort_ppm = a.ppm;
    return 0;
}

static int parse_delay(struct gy_fconf *f, const json_t *v, void *dst)
{
    struct fault *ft = ((struct fault_conf *)dst)->ft;
    struct delay_conf d = { .ppm = PPM };
    uint32_t present, dur = gy_fopt_bit(delay_table, "fixed_delay"), ms = gy_fopt_bit(delay_table, "fixed_delay_ms");

    if (gy_fconf_read(f, v, delay_table, &d, &present) != 0)
        return -1;
    if ((present & (dur | ms)) == 0)
        return gy_fconf_fail(f, "needs fixed_delay or fixed_delay_ms");
    if ((present & (dur | ms)) == (dur | ms))
        return gy_fconf_fail(f, "fixed_delay and fixed_delay_ms exclude each other");
    ft->delay_ms = (present & dur) ? d.fixed_ms : d.fixed_ms_int;
    ft->delay_ppm = d.ppm;
    return 0;
}

static bool is_token(const char *s)
{
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && strchr("!#$%&'*+-.^_`|~", *s) == NULL)
            return false;
    return true;
}

static int own_slice(struct gy_slice *s, const char *str)
{
    char *p = strdup(str);

    if (p == NULL)
        return -1;
    *s = gy_slice(p, strlen(p));
    return 0;
}

static int parse_header(struct gy_fconf *f, const json_t *v, struct header_match *m)
{
    struct header_conf h = { .present = true };
    const char *value = "";
    uint32_t present, kinds;
    int nkinds = 0;

    if (gy_fconf_read(f, v, header_table, &h, &present) != 0)
        return -1;
    if (h.name == NULL || !is_token(h.name)) {
        size_t mark = gy_fconf_push(f, "name");
        char got[96];
        if (h.name == NULL)
            gy_fconf_fail(f, "required");
        else
            gy_fconf_fail(f, "must be a header name, got %s", gy_fconf_desc(json_object_get(v, "name"), got, sizeof(got)));
        gy_fconf_pop(f, mark);
        return -1;
    }
    kinds = present & ~(gy_fopt_bit(header_table, "name") | gy_fopt_bit(header_table, "invert_match"));
    for (; kinds != 0; kinds &= kinds - 1)
        nkinds++;
    if (nkinds > 1)
        return gy_fconf_fail(f, "exact_match, prefix_match, suffix_match and present_match exclude each other");
    m->kind = MATCH_PRESENT;
    m->invert = h.invert != !h.present;
    if (h.exact != NULL) {
        m->kind = MATCH_EXACT;
        value = h.exact;
    } else if (h.prefix != NULL) {
        m->kind = MATCH_PREFIX;
        value = h.prefix;
    } else if (h.suffix != NULL) {
        m->kind = MATCH_SUFFIX;
        value = h.suffix;
    }
    if (own_slice(&m->name, h.name) != 0 || own_slice(&m->value, value) != 0)
        return gy_fconf_fail(f, "out of memory");
    return 0;
}

static int parse_headers(struct gy_fconf *f, const json_t *v, void *dst)
{
    struct fault *ft = ((struct fault_conf *)dst)->ft;
    const json_t *el;
    size_t i;
    char got[96];

    if (!json_is_array(v))
        return gy_fconf_fail(f, "must be a list of header matchers, got %s", gy_fconf_desc(v, got, sizeof(got)));
    if (json_array_size(v) == 0)
        return 0;
    if ((ft->headers = calloc(json_array_size(v), sizeof(*ft->headers))) == NULL)
        return gy_fconf_fail(f, "out of memory");
    json_array_foreach(v, i, el) {
        size_t mark = gy_fconf_pushi(f, i);
        int rc = parse_header(f, el, &ft->headers[i]);
        gy_fconf_pop(f, mark);
        ft->nheaders = i + 1; /* freed by destroy() even when it failed half way */
        if (rc != 0)
            return -1;
    }
    return 0;
}

static const struct gy_fopt fault_table[] = {
    { "abort", GY_FOPT_CUSTOM, 0, 0, 0, parse_abort },
    { "delay", GY_FOPT_CUSTOM, 0, 0, 0, parse_delay },
    { "headers", GY_FOPT_CUSTOM, 0, 0, 0, parse_headers },
    { "max_active_faults", GY_FOPT_UINT, 1, MAX_ACTIVE_FAULTS, offsetof(struct fault_conf, max_active), NULL },
    { "header_faults", GY_FOPT_BOOL, 0, 0, offsetof(struct fault_conf, header_faults), NULL },
    GY_FOPT_END,
};

static void destroy(void *compiled)
{
    struct fault *ft = compiled;

    if (ft == NULL)
        return;
    for (size_t i = 0; i < ft->nheaders; i++) {
        free((char *)ft->headers[i].name.ptr);
        free((char *)ft->headers[i].value.ptr);
    }
    free(ft->headers);
    free(ft->slots);
    free(ft);
}

/* A config may be NULL (the filter listed without one): header-controlled faults only. */
static void *compile(const json_t *config, char *err, size_t errlen)
{
    struct gy_fconf f;
    struct fault_conf fc = { .header_faults = true };
    struct fault *ft = calloc(1, sizeof(*ft));
    uint32_t present;

    gy_fconf_init(&f, err, errlen);
    if (ft == NULL) {
        gy_fconf_fail(&f, "out of memory");
        return NULL;
    }
    ft->abort_grpc = -1;
    fc.ft = ft;
    if (config != NULL && !json_is_null(config) && gy_fconf_read(&f, config, fault_table, &fc, &present) != 0)
        goto fail;
    ft->header_faults = fc.header_faults;
    ft->max_active = fc.max_active;
    if (ft->max_active > 0 && (ft->slots = calloc(ft->max_active, sizeof(*ft->slots))) == NULL) {
        gy_fconf_fail(&f, "out of memory");
        goto fail;
    }
    return ft;
fail:
    destroy(ft);
    return NULL;
}

/* ---- requests --------------------------------------------------------------------------- */

static bool header_matches(const struct header_match *m, const struct gy_filter_call *c)
{
    const struct gy_header *h = gy_header_find(c->headers, c->nheaders, m->name);
    bool ok = h != NULL;

    if (ok) {
        switch (m->kind) {
        case MATCH_PRESENT:
            break;
        case MATCH_EXACT:
            ok = gy_slice_eq(h->value, m->value);
            break;
        case MATCH_PREFIX:
            ok = gy_slice_has_prefix(h->value, m->value);
            break;
        case MATCH_SUFFIX:
            ok = gy_slice_has_suffix(h->value, m->value);
            break;
        }
    }
    return ok != m->invert;
}

static struct gy_slice header_value(const struct gy_filter_call *c, const char *name)
{
    const struct gy_header *h = gy_header_find(c->headers, c->nheaders, gy_slice_cstr(name));
    return h != NULL ? gy_slice_trim(h->value) : GY_SLICE_NULL;
}

/* An integer header in [lo, hi], or -1 if absent or invalid (ignored, as Envoy does). */
static long long header_int(const struct gy_filter_call *c, const char *name, long long lo, long long hi)
{
    struct gy_slice v = header_value(c, name);
    long long n;

    if (v.ptr == NULL)
        return -1;
    n = gy_slice_to_u63(v);
    return n >= lo && n <= hi ? n : -1;
}

/* A percentage header ("25", "0.5", "100") in parts per million; `def` if absent or invalid. */
static uint32_t header_ppm(const struct gy_filter_call *c, const char *name, uint32_t def)
{
    struct gy_slice v = header_value(c, name);
    uint64_t whole = 0, frac = 0, scale = 10000;
    size_t i = 0;

    if (v.ptr == NULL || v.len == 0)
        return def;
    for (; i < v.len && v.ptr[i] >= '0' && v.ptr[i] <= '9' && whole <= 100; i++)
        whole = whole * 10 + (uint64_t)(v.ptr[i] - '0');
    if (i == 0)
        return def;
    if (i < v.len && v.ptr[i] == '.')
        for (i++; i < v.len && v.ptr[i] >= '0' && v.ptr[i] <= '9'; i++)
            if (scale > 1)
                scale /= 10, frac += (uint64_t)(v.ptr[i] - '0') * scale;
    if (i != v.len || whole * 10000 + frac > PPM)
        return def;
    return (uint32_t)(whole * 10000 + frac);
}

/* Takes a free max_active_faults slot until now + hold_ms (hold 0: only checks one is free). */
static bool take_slot(struct fault *ft, uint64_t now, uint32_t hold_ms, uint64_t random)
{
    uint32_t start;

    if (ft->max_active == 0)
        return true;
    start = (uint32_t)(random % ft->max_active);
    for (uint32_t i = 0; i < ft->max_active; i++) {
        _Atomic uint64_t *slot = &ft->slots[(start + i) % ft->max_active];
        uint64_t end = atomic_load_explicit(slot, memory_order_relaxed);
        if (end > now)
            continue;
        if (hold_ms == 0 ||
            atomic_compare_exchange_strong_explicit(slot, &end, now + hold_ms, memory_order_relaxed, memory_order_relaxed))
            return true;
    }
    return false;
}

struct decision {
    int http_status;                  /* abort with this status, or 0 */
    int grpc_status;                  /* abort with this gRPC status, or -1 */
    uint32_t delay_ms;                /* or delay, or 0 */
};

/* What the config and the request's headers ask for, before the percentages. */
static void requested(const struct fault *ft, const struct gy_filter_call *c, struct decision *d, uint32_t *abort_ppm,
                      uint32_t *delay_ppm)
{
    long long http, grpc, delay;

    d->http_status = ft->abort_http;
    d->grpc_status = ft->abort_grpc;
    *abort_ppm = ft->abort_ppm;
    d->delay_ms = ft->delay_ms;
    *delay_ppm = ft->delay_ppm;
    if (!ft->header_faults)
        return;
    http = header_int(c, "x-envoy-fault-abort-request", 200, 599);
    grpc = http < 0 ? header_int(c, "x-envoy-fault-abort-grpc-request", 0, 16) : -1;
    if (http >= 0 || grpc >= 0) {
        d->http_status = http >= 0 ? (int)http : 0;
        d->grpc_status = http >= 0 ? -1 : (int)grpc;
        *abort_ppm = header_ppm(c, "x-envoy-fault-abort-request-percentage", PPM);
    }
    if ((delay = header_int(c, "x-envoy-fault-delay-request", 1, MAX_DELAY_MS)) >= 0) {
        d->delay_ms = (uint32_t)delay;
        *delay_ppm = header_ppm(c, "x-envoy-fault-delay-request-percentage", PPM);
    }
}

static enum gy_filter_result on_request(struct gy_filter_call *c, void *compiled, void *route_compiled)
{
    struct fault *ft = route_compiled != NULL ? route_compiled : compiled;
    struct decision d;
    uint32_t abort_ppm, delay_ppm;
    bool abort_hit, delay_hit;

    for (size_t i = 0; i < ft->nheaders; i++)
        if (!header_matches(&ft->headers[i], c))
            return GY_FILTER_CONTINUE;
    requested(ft, c, &d, &abort_ppm, &delay_ppm);
    /* Independent draws: the low half of the random number for aborts, the high half for delays. */
    abort_hit = (d.http_status > 0 || d.grpc_status >= 0) && (uint32_t)c->random % PPM < abort_ppm;
    delay_hit = !abort_hit && d.delay_ms > 0 && (uint32_t)(c->random >> 32) % PPM < delay_ppm;
    if (!abort_hit && !delay_hit)
        return GY_FILTER_CONTINUE;
    if (!take_slot(ft, c->now_ms, abort_hit ? 0 : d.delay_ms, c->random >> 7))
        return GY_FILTER_CONTINUE;
    c->flags |= FAULT_RF_FI;
    if (!abort_hit)
        return gy_filter_delay(c, d.delay_ms);
    if (d.grpc_status >= 0)
        return gy_filter_grpc_reply(c, d.grpc_status, "fault filter abort");
    return gy_filter_reply(c, d.http_status, NULL, "fault filter abort");
}

static const char *const aliases[] = { "envoy.fault", "envoy.filters.http.fault", NULL };

const struct gy_filter_ops gy_filter_fault = {
    .name = "gyrus.fault",
    .aliases = aliases,
    .compile = compile,
    .destroy = destroy,
    .on_request = on_request,
};
