/*
 * Access logs: a line per request, JSON or an Envoy-style format string with %FIELD% tokens.
 * Files are opened once by the main thread; each worker formats into its own buffer per file
 * and writes it out after each batch of events (O_APPEND keeps lines from workers whole).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/time.h"
#include "proxy/proxy.h"
#include "tls/tls.h"

#define ALOG_FLUSH_AT (16u * 1024u)
#define ALOG_MAX (64u * 1024u)

enum field {
    F_START_TIME,
    F_METHOD,
    F_PATH,
    F_PROTOCOL,
    F_RESPONSE_CODE,
    F_RESPONSE_FLAGS,
    F_BYTES_RECEIVED,
    F_BYTES_SENT,
    F_DURATION,
    F_UPSTREAM_SERVICE_TIME,
    F_UPSTREAM_HOST,
    F_UPSTREAM_CLUSTER,
    F_ROUTE_NAME,
    F_LISTENER,
    F_REQUEST_ID,
    F_AUTHORITY,
    F_USER_AGENT,
    F_X_FORWARDED_FOR,
    F_DOWNSTREAM_REMOTE_ADDRESS,
    F_UPSTREAM_ATTEMPTS,
    F_GRPC_STATUS,
    F_PEER_URI_SAN,
    F_PEER_SUBJECT,
    F_COUNT
};

/* Token names (format strings) and JSON keys. */
static const struct {
    const char *token;
    const char *alias;
    const char *json;
    bool number;
} fields[F_COUNT] = {
    [F_START_TIME] = { "START_TIME", NULL, "start_time", false },
    [F_METHOD] = { "METHOD", "REQ(:METHOD)", "method", false },
    [F_PATH] = { "PATH", "REQ(:PATH)", "path", false },
    [F_PROTOCOL] = { "PROTOCOL", NULL, "protocol", false },
    [F_RESPONSE_CODE] = { "RESPONSE_CODE", NULL, "status", true },
    [F_RESPONSE_FLAGS] = { "RESPONSE_FLAGS", NULL, "response_flags", false },
    [F_BYTES_RECEIVED] = { "BYTES_RECEIVED", NULL, "bytes_received", true },
    [F_BYTES_SENT] = { "BYTES_SENT", NULL, "bytes_sent", true },
    [F_DURATION] = { "DURATION", NULL, "duration_ms", true },
    [F_UPSTREAM_SERVICE_TIME] = { "UPSTREAM_SERVICE_TIME", NULL, "upstream_service_time_ms", true },
    [F_UPSTREAM_HOST] = { "UPSTREAM_HOST", NULL, "upstream_host", false },
    [F_UPSTREAM_CLUSTER] = { "UPSTREAM_CLUSTER", NULL, "upstream_cluster", false },
    [F_ROUTE_NAME] = { "ROUTE_NAME", NULL, "route", false },
    [F_LISTENER] = { "LISTENER", NULL, "listener", false },
    [F_REQUEST_ID] = { "REQUEST_ID", "REQ(X-REQUEST-ID)", "request_id", false },
    [F_AUTHORITY] = { "AUTHORITY", "REQ(:AUTHORITY)", "authority", false },
    [F_USER_AGENT] = { "USER_AGENT", "REQ(USER-AGENT)", "user_agent", false },
    [F_X_FORWARDED_FOR] = { "X_FORWARDED_FOR", "REQ(X-FORWARDED-FOR)", "x_forwarded_for", false },
    [F_DOWNSTREAM_REMOTE_ADDRESS] = { "DOWNSTREAM_REMOTE_ADDRESS", NULL, "downstream_remote_address", false },
    [F_UPSTREAM_ATTEMPTS] = { "UPSTREAM_REQUEST_ATTEMPT_COUNT", NULL, "upstream_attempts", true },
    [F_GRPC_STATUS] = { "GRPC_STATUS_NUMBER", "GRPC_STATUS", "grpc_status", true },
    [F_PEER_URI_SAN] = { "DOWNSTREAM_PEER_URI_SAN", NULL, "downstream_peer_uri_san", false },
    [F_PEER_SUBJECT] = { "DOWNSTREAM_PEER_SUBJECT", NULL, "downstream_peer_subject", false },
};

static int field_lookup(const char *name, size_t len)
{
    for (int i = 0; i < F_COUNT; i++) {
        if ((strlen(fields[i].token) == len && memcmp(fields[i].token, name, len) == 0) ||
            (fields[i].alias && strlen(fields[i].alias) == len && strncasecmp(fields[i].alias, name, len) == 0))
            return i;
    }
    return -1;
}

/* Checks every %TOKEN% of a format string; returns 0 or -1 with a message. */
static int format_check(const char *fmt, char *err, size_t errlen)
{
    for (const char *p = fmt; (p = strchr(p, '%')) != NULL;) {
        const char *end = strchr(p + 1, '%');
        if (end == NULL) {
            snprintf(err, errlen, "unterminated %% in access log format");
            return -1;
        }
        if (end != p + 1 && field_lookup(p + 1, (size_t)(end - p - 1)) < 0) {
            snprintf(err, errlen, "unknown access log field %%%.*s%%", (int)(end - p - 1), p + 1);
            return -1;
        }
        p = end + 1;
    }
    return 0;
}

struct gy_alog_sink *gy_alog_sink_open(struct gy_proxy *p, const char *path, const char *format, char *err,
                                       size_t errlen)
{
    struct gy_alog_sink *s;

    for (s = p->sinks; s != NULL; s = s->next)
        if (strcmp(s->path, path) == 0 && ((s->format == NULL && format == NULL) ||
                                           (s->format && format && strcmp(s->format, format) == 0)))
            return s;
    if (format != NULL && format_check(format, err, errlen) != 0)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (strcmp(path, "-") == 0 || strcmp(path, "/dev/stdout") == 0)
        s->fd = dup(STDOUT_FILENO);
    else if (strcmp(path, "/dev/stderr") == 0)
        s->fd = dup(STDERR_FILENO);
    else
        s->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        snprintf(err, errlen, "cannot open access log %s: %s", path, strerror(errno));
        free(s);
        return NULL;
    }
    s->path = strdup(path);
    s->format = format ? strdup(format) : NULL;
    s->index = p->nsinks++;
    s->next = p->sinks;
    p->sinks = s;
    return s;
}

void gy_alog_reopen(struct gy_proxy *p)
{
    for (struct gy_alog_sink *s = p->sinks; s != NULL; s = s->next) {
        if (s->path[0] != '/' || strncmp(s->path, "/dev/", 5) == 0)
            continue;
        int fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            gy_warn("cannot reopen access log %s: %s", s->path, strerror(errno));
            continue;
        }
        dup3(fd, s->fd, O_CLOEXEC); /* atomic for the workers writing to s->fd */
        close(fd);
    }
}

/* ---- formatting ---- */

struct line {
    char *p;
    size_t len, cap;
};

static void add(struct line *l, const char *s, size_t n)
{
    if (l->len + n > l->cap)
        n = l->cap - l->len;
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void add_json_str(struct line *l, struct gy_slice v)
{
    add(l, "\"", 1);
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.ptr[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            add(l, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            int n = snprintf(esc, sizeof(esc), "\\u%04x", c);
            add(l, esc, (size_t)n);
        } else {
            add(l, (const char *)&c, 1);
        }
    }
    add(l, "\"", 1);
}

static void flags_str(uint32_t f, char *out, size_t cap)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = { { GY_RF_NR, "NR" },   { GY_RF_UH, "UH" },   { GY_RF_UF, "UF" }, { GY_RF_UT, "UT" },
                  { GY_RF_UC, "UC" },   { GY_RF_DC, "DC" },   { GY_RF_DPE, "DPE" }, { GY_RF_UPE, "UPE" },
                  { GY_RF_SI, "SI" },   { GY_RF_FI, "FI" },   { GY_RF_UO, "UO" }, { GY_RF_URX, "URX" } };
    size_t n = 0;

    out[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (f & names[i].bit)
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "," : "", names[i].name);
    if (n == 0)
        snprintf(out, cap, "-");
}

/* The value of field f as text (numbers as digits); returns false when absent ("-"). */
static struct gy_slice field_value(const struct gy_stream *s, int f, char *tmp, size_t cap)
{
    const struct gy_cluster *c = s->cluster;
    int n = -1;

    switch (f) {
    case F_START_TIME: {
        time_t secs = (time_t)(s->wall_start_us / 1000000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        size_t k = strftime(tmp, cap, "%Y-%m-%dT%H:%M:%S", &tm);
        n = (int)k + snprintf(tmp + k, cap - k, ".%06uZ", (unsigned)(s->wall_start_us % 1000000));
        break;
    }
    case F_METHOD:
        return s->method;
    case F_PATH:
        return s->target;
    case F_PROTOCOL:
        return s->version == 20 ? GY_SLICE_LIT("HTTP/2") : s->version == 10 ? GY_SLICE_LIT("HTTP/1.0")
                                                                           : GY_SLICE_LIT("HTTP/1.1");
    case F_RESPONSE_CODE:
        n = snprintf(tmp, cap, "%d", s->resp_done ? s->status : 0);
        break;
    case F_RESPONSE_FLAGS:
        flags_str(s->flags, tmp, cap);
        return gy_slice_cstr(tmp);
    case F_BYTES_RECEIVED:
        n = snprintf(tmp, cap, "%llu", (unsigned long long)s->bytes_rx);
        break;
    case F_BYTES_SENT:
        n = snprintf(tmp, cap, "%llu", (unsigned long long)s->bytes_tx);
        break;
    case F_DURATION:
        n = snprintf(tmp, cap, "%.3f", (double)(gy_now_ns() - s->t_start_ns) / 1e6);
        break;
    case F_UPSTREAM_SERVICE_TIME:
        if (s->t_upstream_done_ns == 0)
            return GY_SLICE_NULL;
        n = snprintf(tmp, cap, "%.3f", (double)(s->t_upstream_done_ns - s->t_upstream_ns) / 1e6);
        break;
    case F_UPSTREAM_HOST:
        if (s->host < 0)
            return GY_SLICE_NULL;
        gy_addr_format((const struct sockaddr *)&c->instances[s->host].addr, tmp, cap);
        return gy_slice_cstr(tmp);
    case F_UPSTREAM_CLUSTER:
        return c ? gy_slice_cstr(c->name) : GY_SLICE_NULL;
    case F_ROUTE_NAME:
        return s->route.route ? gy_slice_cstr(s->route.route->key) : GY_SLICE_NULL;
    case F_LISTENER:
        return gy_slice_cstr(s->lcfg->name);
    case F_REQUEST_ID:
        return s->request_id;
    case F_AUTHORITY:
        return s->host_hdr;
    case F_USER_AGENT:
        return s->user_agent;
    case F_X_FORWARDED_FOR:
        return s->xff;
    case F_DOWNSTREAM_REMOTE_ADDRESS:
        return gy_slice_cstr(s->dc->peer_ip);
    case F_UPSTREAM_ATTEMPTS:
        n = snprintf(tmp, cap, "%u", s->attempts);
        break;
    case F_PEER_URI_SAN:
    case F_PEER_SUBJECT: { /* what the client's certificate proved; nothing unless it was verified */
        const struct gy_tls_peer *p = s->dc->transport != NULL ? gy_tls_peer(s->dc->transport) : NULL;
        const char *v = p == NULL || !p->verified ? NULL : f == F_PEER_URI_SAN ? p->spiffe_id : p->subject;
        return v != NULL ? gy_slice_cstr(v) : GY_SLICE_NULL;
    }
    case F_GRPC_STATUS:
        if (!s->grpc || s->grpc_status < 0)
            return GY_SLICE_NULL;
        n = snprintf(tmp, cap, "%d", s->grpc_status);
        break;
    default:
        break;
    }
    return n > 0 ? gy_slice(tmp, (size_t)n) : GY_SLICE_NULL;
}

static void format_json(struct line *l, const struct gy_stream *s)
{
    char tmp[128];

    add(l, "{", 1);
    for (int f = 0; f < F_COUNT; f++) {
        struct gy_slice v = field_value(s, f, tmp, sizeof(tmp));
        if (f)
            add(l, ",", 1);
        add(l, "\"", 1);
        add(l, fields[f].json, strlen(fields[f].json));
        add(l, "\":", 2);
        if (v.ptr == NULL)
            add(l, "null", 4);
        else if (fields[f].number)
            add(l, v.ptr, v.len);
        else
            add_json_str(l, v);
    }
    add(l, "}\n", 2);
}

static void format_text(struct line *l, const struct gy_stream *s, const char *fmt)
{
    char tmp[128];

    for (const char *p = fmt; *p;) {
        const char *pct = strchr(p, '%');
        if (pct == NULL) {
            add(l, p, strlen(p));
            break;
        }
        add(l, p, (size_t)(pct - p));
        const char *end = strchr(pct + 1, '%');
        if (end == NULL)
            break;
        if (end == pct + 1) {
            add(l, "%", 1);
        } else {
            int f = field_lookup(pct + 1, (size_t)(end - pct - 1));
            struct gy_slice v = f >= 0 ? field_value(s, f, tmp, sizeof(tmp)) : GY_SLICE_NULL;
            if (v.ptr == NULL || v.len == 0)
                add(l, "-", 1);
            else
                for (size_t i = 0; i < v.len; i++) /* no control characters in a text log */
                    add(l, (unsigned char)v.ptr[i] < 0x20 ? "?" : &v.ptr[i], 1);
        }
        p = end + 1;
    }
    if (l->len == 0 || l->p[l->len - 1] != '\n')
        add(l, "\n", 1);
}

static void record_to(struct gy_worker *w, const struct gy_alog_sink *sink, const struct gy_stream *s)
{
    if (sink->index >= w->nalog) {
        size_t n = sink->index + 8;
        struct gy_alog_buf *a = realloc(w->alog, n * sizeof(*a));
        if (a == NULL)
            return;
        memset(a + w->nalog, 0, (n - w->nalog) * sizeof(*a));
        w->alog = a;
        w->nalog = n;
    }
    struct gy_alog_buf *b = &w->alog[sink->index];
    if (b->data == NULL && (b->data = malloc(ALOG_MAX)) == NULL)
        return;
    b->fd = sink->fd;
    if (ALOG_MAX - b->len < 8192)
        gy_alog_flush(w);
    struct line l = { b->data + b->len, 0, ALOG_MAX - b->len < 8192 ? ALOG_MAX - b->len : 8192 };
    if (sink->format)
        format_text(&l, s, sink->format);
    else
        format_json(&l, s);
    if (l.len > 0 && l.p[l.len - 1] != '\n')
        l.p[l.len - 1] = '\n';
    b->len += l.len;
    if (b->len >= ALOG_FLUSH_AT)
        gy_alog_flush(w);
    else
        gy_task_schedule(&w->loop, &w->alog_flush);
}

void gy_alog_record(struct gy_worker *w, const struct gy_stream *s)
{
    const struct gy_listener *l = s->lcfg;
    const struct gy_alog_sink *g = w->proxy->global_sink;

    for (size_t i = 0; i < l->naccess_logs; i++)
        if (l->access_logs[i].sink != NULL)
            record_to(w, l->access_logs[i].sink, s);
    if (g != NULL)
        record_to(w, g, s);
}

void gy_alog_flush(struct gy_worker *w)
{
    for (size_t i = 0; i < w->nalog; i++) {
        struct gy_alog_buf *b = &w->alog[i];
        size_t off = 0;
        while (off < b->len) {
            ssize_t n = write(b->fd, b->data + off, b->len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break; /* a full disk loses log lines, never requests */
            off += (size_t)n;
        }
        b->len = 0;
    }
}
