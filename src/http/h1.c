/*
 * HTTP/1.1 codec (RFC 9112): head parsers, chunked decoder and small helpers. See h1.h.
 *
 * The head parsers are called again from the start of the buffer whenever bytes arrive, so the
 * incomplete case is kept cheap: the start line is checked as far as it goes (junk such as a TLS
 * ClientHello is refused at once), then memchr walks the line ends looking for the empty line
 * that ends the head. Only a complete head is parsed field by field. That pass needs no bounds
 * checks in its inner loops: the head is known to end with LF, and LF is in no character class,
 * so every scan stops at the latest there.
 */
#include "http/h1.h"

#include <assert.h>
#include <limits.h>
#include <string.h>

#include "core/err.h"

const struct gy_h1_limits gy_h1_default_limits = {
    .max_request_line = 8192,
    .max_head_bytes = 32768,
    .max_headers = 100,
};

#define MAX_EMPTY_LINES 4                       /* skipped before a request line (§2.2) */
#define MAX_CONTENT_LENGTH ((uint64_t)INT64_MAX)
#define MAX_CHUNK_SIZE ((uint64_t)1 << 62)
#define MAX_CHUNK_DIGITS 16
#define MAX_CHUNK_LINE 4096                     /* chunk-size line with its extensions */
#define MAX_TRAILER_BYTES 8192                  /* whole trailer section */

/* Character classes (RFC 9110 §5.6.2 tchar, §5.5 field-vchar, RFC 3986 host and scheme). */
enum {
    C_TCHAR = 0x01,  /* token character */
    C_FVAL = 0x02,   /* field value: HTAB, SP, VCHAR, obs-text */
    C_TARGET = 0x04, /* request-target: VCHAR except '#' (no CTL, SP, fragment or obs-text) */
    C_HOST = 0x08,   /* uri-host and port: unreserved, sub-delims, ':', '[', ']', '%' */
    C_HEX = 0x10,    /* HEXDIG */
    C_QDTEXT = 0x20, /* quoted-string text: HTAB, SP, VCHAR except '"' and '\\', obs-text */
    C_SCHEME = 0x40, /* scheme after its first letter: ALPHA, DIGIT, '+', '-', '.' */
};

static const uint8_t cclass[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 00 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 10 */
    0x22, 0x2f, 0x06, 0x23, 0x2f, 0x2f, 0x2f, 0x2f, 0x2e, 0x2e, 0x2f, 0x6f, 0x2e, 0x6f, 0x6f, 0x26, /* 20 */
    0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x2e, 0x2e, 0x26, 0x2e, 0x26, 0x26, /* 30 */
    0x26, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, /* 40 */
    0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x2e, 0x06, 0x2e, 0x27, 0x2f, /* 50 */
    0x27, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, /* 60 */
    0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x26, 0x27, 0x26, 0x2f, 0x00, /* 70 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* 80 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* 90 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* a0 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* b0 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* c0 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* d0 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* e0 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* f0 */
};

#define IS(c, cls) ((cclass[(uint8_t)(c)] & (cls)) != 0)
#define IS_WS(c) ((c) == ' ' || (c) == '\t')

/* Eight bytes at a time (bit-twiddling "hasless"/"hasmore", exact for "any byte"). */
#define ONES ((uint64_t)0x0101010101010101u)
#define HIGHS (ONES * 0x80)
#define HAS_LESS(x, n) ((((x) - ONES * (n)) & ~(x) & HIGHS) != 0)     /* n <= 128 */
#define HAS_MORE(x, n) (((((x) + ONES * (127 - (n))) | (x)) & HIGHS) != 0) /* n <= 127 */
#define HAS_BYTE(x, b) HAS_LESS((x) ^ (ONES * (b)), 1)

static inline uint64_t load8(const char *p)
{
    uint64_t x;
    memcpy(&x, p, sizeof(x));
    return x;
}

/* Skips field-value characters (HTAB excepted, which the byte loop takes) in [p, end). */
static inline const char *skip_value(const char *p, const char *end)
{
    while (end - p >= 8) {
        uint64_t x = load8(p);
        if (HAS_LESS(x, 0x20) || HAS_BYTE(x, 0x7f))
            break;
        p += 8;
    }
    while (p < end && IS(*p, C_FVAL))
        p++;
    return p;
}

/* Skips request-target characters (VCHAR but '#') in [p, end). */
static inline const char *skip_target(const char *p, const char *end)
{
    while (end - p >= 8) {
        uint64_t x = load8(p);
        if (HAS_LESS(x, 0x21) || HAS_MORE(x, 0x7e) || HAS_BYTE(x, '#'))
            break;
        p += 8;
    }
    while (p < end && IS(*p, C_TARGET))
        p++;
    return p;
}

static int fail(struct gy_h1_error *err, int rc, int status, const char *reason)
{
    err->status = status;
    err->reason = reason;
    return rc;
}

static inline char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

/* Compares p[0..n) case-insensitively with a lower-case literal. */
static bool eq_lower(const char *p, size_t n, const char *lit, size_t lit_len)
{
    if (n != lit_len)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(p[i]) != lit[i])
            return false;
    return true;
}

#define EQ_LIT(p, n, lit) eq_lower((p), (n), lit, sizeof(lit) - 1)

/* Walks the elements of a comma-separated list (RFC 9110 §5.6.1), each trimmed of OWS. */
struct list_iter {
    const char *p, *end;
    bool done;
};

static bool list_next(struct list_iter *it, struct gy_slice *elem)
{
    if (it->done)
        return false;
    size_t n = (size_t)(it->end - it->p);
    const char *comma = n > 0 ? memchr(it->p, ',', n) : NULL;
    const char *e = comma != NULL ? comma : it->end;
    *elem = gy_slice_trim(gy_slice(it->p, (size_t)(e - it->p)));
    if (comma != NULL)
        it->p = comma + 1;
    else
        it->done = true;
    return true;
}

/* ---- start lines ---- */

/*
 * Finds the LF ending the line that starts at buf[start]. Returns 1 with *content_end (before
 * CRLF or LF) and *lf set when the line is complete, 0 when it is not (*content_end is then the
 * end of the data, less a final CR that may begin the CRLF), GY_ETOOBIG when its content is known
 * to exceed max_line.
 */
static int find_line(const char *buf, size_t len, size_t start, size_t max_line, size_t *content_end, size_t *lf)
{
    size_t avail = len - start;
    size_t window = max_line < SIZE_MAX - 2 ? max_line + 2 : SIZE_MAX;
    const char *nl = memchr(buf + start, '\n', avail < window ? avail : window);
    size_t end;

    if (nl != NULL) {
        *lf = (size_t)(nl - buf);
        end = *lf;
    } else {
        end = len;
    }
    if (end > start && buf[end - 1] == '\r')
        end--;
    *content_end = end;
    if (end - start > max_line)
        return GY_ETOOBIG;
    return nl != NULL;
}

/*
 * Finds the empty line that ends the head in buf[0..window); `lf` is the LF ending the start line.
 * Returns the head length, 0 if not found, or -1 after more than max_lines field lines.
 */
static long find_head_end(const char *buf, size_t window, size_t lf, unsigned max_lines)
{
    size_t ls = lf + 1;
    unsigned lines = 0;

    while (ls < window) {
        const char *nl = memchr(buf + ls, '\n', window - ls);
        if (nl == NULL)
            return 0;
        size_t i = (size_t)(nl - buf);
        if (i == ls || (i == ls + 1 && buf[ls] == '\r'))
            return (long)(i + 1);
        if (lines++ == max_lines)
            return -1;
        ls = i + 1;
    }
    return 0;
}

/* 1 for HTTP/1.0 or HTTP/1.1 (*minor set), 0 for another "HTTP/x.y", -1 for anything else. */
static int parse_version(const char *v, size_t n, int *minor)
{
    if (n == 8 && memcmp(v, "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1')) {
        *minor = v[7] - '0';
        return 1;
    }
    if (n < 8 || memcmp(v, "HTTP/", 5) != 0)
        return -1;
    size_t i = 5, digits = 0;
    while (i < n && v[i] >= '0' && v[i] <= '9')
        i++, digits++;
    if (digits == 0 || i == n || v[i++] != '.')
        return -1;
    for (digits = 0; i < n && v[i] >= '0' && v[i] <= '9'; i++)
        digits++;
    return digits > 0 && i == n ? 0 : -1;
}

/* "host[:port]" with host chars only; a port, when present, is digits. Empty is allowed. */
static bool valid_host(struct gy_slice h)
{
    for (size_t i = 0; i < h.len; i++)
        if (!IS(h.ptr[i], C_HOST))
            return false;
    return true;
}

static void split_path_query(struct gy_h1_request *req, const char *p, const char *end)
{
    const char *q = p < end ? memchr(p, '?', (size_t)(end - p)) : NULL;

    if (q == NULL) {
        req->path = gy_slice(p, (size_t)(end - p));
        req->query = gy_slice(end, 0);
    } else {
        req->path = gy_slice(p, (size_t)(q - p));
        req->query = gy_slice(q + 1, (size_t)(end - q - 1));
    }
}

/* Authority-form "host:port", for CONNECT only (§3.2.3). */
static bool parse_authority_form(struct gy_slice t)
{
    size_t colon = t.len;

    while (colon > 0 && t.ptr[colon - 1] != ':')
        colon--;
    if (colon <= 1 || colon == t.len || !valid_host(t))
        return false;
    for (size_t i = colon; i < t.len; i++)
        if (t.ptr[i] < '0' || t.ptr[i] > '9')
            return false;
    return t.ptr[0] != ':';
}

/*
 * Classifies the request-target (§3.2) and fills path, query and, for the absolute and authority
 * forms, host. Sets *has_authority for those two forms.
 */
static int parse_target(struct gy_h1_request *req, bool *has_authority, struct gy_h1_error *err)
{
    const char *t = req->target.ptr, *end = t + req->target.len;

    if (req->is_connect) {
        if (!parse_authority_form(req->target))
            return fail(err, GY_EPARSE, 400, "CONNECT needs an authority-form target");
        req->host = req->target;
        req->path = gy_slice(end, 0);
        req->query = gy_slice(end, 0);
        *has_authority = true;
        return 0;
    }
    if (t[0] == '/') {
        split_path_query(req, t, end);
        return 0;
    }
    if (req->target.len == 1 && t[0] == '*') {
        if (req->method.len != 7 || memcmp(req->method.ptr, "OPTIONS", 7) != 0)
            return fail(err, GY_EPARSE, 400, "asterisk-form target outside OPTIONS");
        req->path = req->target;
        req->query = gy_slice(end, 0);
        return 0;
    }
    /* absolute-form: scheme "://" authority [path] ["?" query] */
    const char *p = t;
    if ((*p | 0x20) < 'a' || (*p | 0x20) > 'z')
        return fail(err, GY_EPARSE, 400, "invalid request-target");
    while (p < end && IS(*p, C_SCHEME))
        p++;
    if (end - p < 3 || memcmp(p, "://", 3) != 0)
        return fail(err, GY_EPARSE, 400, "invalid request-target");
    const char *auth = p + 3;
    for (p = auth; p < end && *p != '/' && *p != '?'; p++)
        ;
    struct gy_slice authority = gy_slice(auth, (size_t)(p - auth));
    if (authority.len == 0 || !valid_host(authority))
        return fail(err, GY_EPARSE, 400, "invalid authority in request-target");
    req->host = authority;
    split_path_query(req, p, end);
    *has_authority = true;
    return 0;
}

/*
 * Request line "method SP request-target SP HTTP-version" in [p, e). When the line is not
 * complete yet, what is there is checked and GY_EAGAIN returned if it may still become valid.
 */
static int parse_request_line(const char *p, const char *e, bool complete, struct gy_h1_request *req,
                              bool *has_authority, struct gy_h1_error *err)
{
    const char *s = p;

    while (p < e && IS(*p, C_TCHAR))
        p++;
    if (p == e)
        return complete ? fail(err, GY_EPARSE, 400, "incomplete request line") : GY_EAGAIN;
    if (*p != ' ' || p == s)
        return fail(err, GY_EPARSE, 400, "invalid method");
    req->method = gy_slice(s, (size_t)(p - s));

    s = ++p;
    p = skip_target(p, e);
    if (p == e)
        return complete ? fail(err, GY_EPARSE, 400, "incomplete request line") : GY_EAGAIN;
    if (*p != ' ')
        return fail(err, GY_EPARSE, 400, "invalid character in request-target");
    if (p == s)
        return fail(err, GY_EPARSE, 400, "empty request-target");
    req->target = gy_slice(s, (size_t)(p - s));

    s = ++p;
    size_t n = (size_t)(e - s);
    if (!complete)
        return memcmp(s, "HTTP/", n < 5 ? n : 5) == 0 ? GY_EAGAIN
                                                     : fail(err, GY_EPARSE, 400, "invalid HTTP version");
    int v = parse_version(s, n, &req->minor_version);
    if (v < 0)
        return fail(err, GY_EPARSE, 400, "invalid HTTP version");
    if (v == 0)
        return fail(err, GY_EPARSE, 505, "unsupported HTTP version");

    req->is_head = req->method.len == 4 && memcmp(req->method.ptr, "HEAD", 4) == 0;
    req->is_connect = req->method.len == 7 && memcmp(req->method.ptr, "CONNECT", 7) == 0;
    return parse_target(req, has_authority, err);
}

/* Status line "HTTP/1.x SP 3DIGIT [SP reason]" in [p, e); "HTTP/1.1 200" alone is tolerated. */
static int parse_status_line(const char *p, const char *e, struct gy_h1_response *res, struct gy_h1_error *err)
{
    if (parse_version(p, e - p < 8 ? (size_t)(e - p) : 8, &res->minor_version) != 1)
        return fail(err, GY_EPARSE, 502, "invalid HTTP version in status line");
    if (e - p < 12 || p[8] != ' ')
        return fail(err, GY_EPARSE, 502, "invalid status line");
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return fail(err, GY_EPARSE, 502, "invalid status code");
        status = status * 10 + (p[i] - '0');
    }
    if (status < 100)
        return fail(err, GY_EPARSE, 502, "invalid status code");
    res->status = status;
    p += 12;
    if (p == e) {
        res->reason = gy_slice(p, 0);
        return 0;
    }
    if (*p++ != ' ')
        return fail(err, GY_EPARSE, 502, "invalid status line");
    res->reason = gy_slice(p, (size_t)(e - p));
    for (; p < e; p++)
        if (!IS(*p, C_FVAL))
            return fail(err, GY_EPARSE, 502, "invalid character in reason phrase");
    return 0;
}

/* ---- header fields ---- */

/* What the header fields say about framing and the connection. */
struct framing {
    bool is_request;  /* Host is checked in requests only */
    uint64_t content_length;
    struct gy_slice host;
    unsigned nhost;
    bool has_cl, has_te;
    bool te_bad, te_chunked_seen, te_chunked_twice, te_chunked_last, te_other;
    bool conn_close, conn_keep_alive, conn_upgrade;
    bool has_upgrade, expect_continue;
};

static int parse_content_length(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;

    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(uint8_t)v[i] - '0';
        if (d > 9 || x > (MAX_CONTENT_LENGTH - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

static void inspect_transfer_encoding(struct framing *f, const char *v, size_t n)
{
    struct list_iter it = { v, v + n, false };
    struct gy_slice c;

    f->has_te = true;
    while (list_next(&it, &c)) {
        if (EQ_LIT(c.ptr, c.len, "chunked")) {
            f->te_chunked_twice |= f->te_chunked_seen;
            f->te_chunked_seen = true;
            f->te_chunked_last = true;
            continue;
        }
        f->te_bad |= c.len == 0;
        for (size_t i = 0; i < c.len; i++)
            f->te_bad |= !IS(c.ptr[i], C_TCHAR);
        f->te_other = true;
        f->te_chunked_last = false;
    }
}

static void inspect_connection(struct framing *f, const char *v, size_t n)
{
    struct list_iter it = { v, v + n, false };
    struct gy_slice t;

    while (list_next(&it, &t)) {
        if (EQ_LIT(t.ptr, t.len, "close"))
            f->conn_close = true;
        else if (EQ_LIT(t.ptr, t.len, "keep-alive"))
            f->conn_keep_alive = true;
        else if (EQ_LIT(t.ptr, t.len, "upgrade"))
            f->conn_upgrade = true;
    }
}

/* Looks at the fields that matter to framing; a request-side status is set on error. */
static int inspect_field(struct framing *f, const char *name, size_t nlen, const char *v, size_t vlen,
                         struct gy_h1_error *err)
{
    switch (nlen) {
    case 4:
        if (f->is_request && EQ_LIT(name, nlen, "host")) {
            f->host = gy_slice(v, vlen);
            if (++f->nhost > 1)
                return fail(err, GY_EPARSE, 400, "several Host headers");
            if (!valid_host(f->host))
                return fail(err, GY_EPARSE, 400, "invalid Host header");
        }
        break;
    case 6:
        if (EQ_LIT(name, nlen, "expect") && EQ_LIT(v, vlen, "100-continue"))
            f->expect_continue = true;
        break;
    case 7:
        if (EQ_LIT(name, nlen, "upgrade"))
            f->has_upgrade = true;
        break;
    case 10:
        if (EQ_LIT(name, nlen, "connection"))
            inspect_connection(f, v, vlen);
        break;
    case 14:
        if (EQ_LIT(name, nlen, "content-length")) {
            if (f->has_cl)
                return fail(err, GY_EPARSE, 400, "several Content-Length headers");
            if (parse_content_length(v, vlen, &f->content_length) != 0)
                return fail(err, GY_EPARSE, 400, "invalid Content-Length");
            f->has_cl = true;
        }
        break;
    case 17:
        if (EQ_LIT(name, nlen, "transfer-encoding"))
            inspect_transfer_encoding(f, v, vlen);
        break;
    default:
        break;
    }
    return 0;
}

/*
 * Parses the field lines in [p, end), where end follows the LF of the empty line ending the
 * head (so the scans below need no bounds checks).
 */
static int parse_fields(const char *p, const char *end, struct gy_header *headers, unsigned max_headers,
                        unsigned *nheaders, struct framing *f, struct gy_h1_error *err)
{
    unsigned n = 0;

    assert(p < end && end[-1] == '\n');
    for (;;) {
        if (*p == '\n') {
            p++;
            break;
        }
        if (*p == '\r') {
            if (p[1] != '\n')
                return fail(err, GY_EPARSE, 400, "bare CR");
            p += 2;
            break;
        }
        if (IS_WS(*p))
            return fail(err, GY_EPARSE, 400, "obs-fold or whitespace before a header field");

        const char *name = p;
        while (IS(*p, C_TCHAR))
            p++;
        if (*p != ':') {
            if (p == name)
                return fail(err, GY_EPARSE, 400, "invalid header name");
            if (IS_WS(*p))
                return fail(err, GY_EPARSE, 400, "whitespace between header name and colon");
            return fail(err, GY_EPARSE, 400, "invalid character in header name");
        }
        if (p == name)
            return fail(err, GY_EPARSE, 400, "empty header name");
        size_t nlen = (size_t)(p - name);

        p++;
        while (IS_WS(*p))
            p++;
        const char *v = p;
        p = skip_value(p, end);
        const char *ve = p;
        if (*p == '\r' && p[1] == '\n')
            p += 2;
        else if (*p == '\n')
            p++;
        else
            return fail(err, GY_EPARSE, 400, *p == '\r' ? "bare CR" : "invalid character in header value");
        while (ve > v && IS_WS(ve[-1]))
            ve--;

        if (n == max_headers)
            return fail(err, GY_ETOOBIG, 431, "too many header fields");
        headers[n].name = gy_slice(name, nlen);
        headers[n].value = gy_slice(v, (size_t)(ve - v));
        n++;
        int rc = inspect_field(f, name, nlen, v, (size_t)(ve - v), err);
        if (rc != 0)
            return rc;
    }
    assert(p == end);
    (void)end;
    *nheaders = n;
    return 0;
}

/*
 * Shared by both parsers once the start line is known to end at buf[lf]: finds the end of the
 * head within the limits and parses its fields. Returns the head length, GY_EAGAIN, or an error
 * with a request-side status.
 */
static int parse_head_rest(const char *buf, size_t len, size_t lf, struct gy_header *headers,
                           const struct gy_h1_limits *lim, unsigned *nheaders, struct framing *f,
                           struct gy_h1_error *err)
{
    size_t max_head = lim->max_head_bytes < INT_MAX ? lim->max_head_bytes : INT_MAX;
    size_t window = len < max_head ? len : max_head;

    if (lf >= window)
        return fail(err, GY_ETOOBIG, 431, "header section too large");
    long end = find_head_end(buf, window, lf, lim->max_headers);
    if (end < 0)
        return fail(err, GY_ETOOBIG, 431, "too many header fields");
    if (end == 0)
        return len >= max_head ? fail(err, GY_ETOOBIG, 431, "header section too large") : GY_EAGAIN;
    int rc = parse_fields(buf + lf + 1, buf + end, headers, lim->max_headers, nheaders, f, err);
    return rc != 0 ? rc : (int)end;
}

/* ---- requests ---- */

/* Skips up to MAX_EMPTY_LINES empty lines (§2.2); returns the offset of the request line. */
static long skip_empty_lines(const char *buf, size_t len, struct gy_h1_error *err)
{
    size_t off = 0;

    for (int i = 0;; i++) {
        size_t n;
        if (off == len)
            return GY_EAGAIN;
        if (buf[off] == '\n') {
            n = 1;
        } else if (buf[off] == '\r') {
            if (off + 1 == len)
                return GY_EAGAIN;
            if (buf[off + 1] != '\n')
                return fail(err, GY_EPARSE, 400, "bare CR");
            n = 2;
        } else {
            return (long)off;
        }
        if (i == MAX_EMPTY_LINES)
            return fail(err, GY_EPARSE, 400, "too many empty lines before the request line");
        off += n;
    }
}

static int finish_request(struct gy_h1_request *req, const struct framing *f, bool has_authority,
                          struct gy_h1_error *err)
{
    bool v11 = req->minor_version == 1;

    if (f->nhost == 0 && v11 && !has_authority)
        return fail(err, GY_EPARSE, 400, "HTTP/1.1 request without Host");
    if (!has_authority)
        req->host = f->host;
    if (f->has_te) {
        if (f->has_cl)
            return fail(err, GY_EPARSE, 400, "both Content-Length and Transfer-Encoding");
        if (!v11)
            return fail(err, GY_EPARSE, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (f->te_bad || f->te_chunked_twice || !f->te_chunked_last)
            return fail(err, GY_EPARSE, 400, "Transfer-Encoding without a final chunked");
        if (f->te_other)
            return fail(err, GY_EPARSE, 501, "unsupported transfer coding");
        req->body = GY_H1_BODY_CHUNKED;
    } else if (f->has_cl && f->content_length > 0) {
        req->body = GY_H1_BODY_LENGTH;
        req->content_length = f->content_length;
    } else {
        req->body = GY_H1_BODY_NONE;
    }
    req->keep_alive = !f->conn_close && (v11 || f->conn_keep_alive);
    req->expect_continue = v11 && f->expect_continue;
    req->upgrade = v11 && f->conn_upgrade && f->has_upgrade;
    return 0;
}

int gy_h1_parse_request(const char *buf, size_t len, struct gy_h1_request *req, struct gy_header *headers,
                        const struct gy_h1_limits *lim, struct gy_h1_error *err)
{
    struct gy_h1_error unused;
    struct framing f = { .is_request = true };
    bool has_authority = false;
    size_t end, lf = 0;

    if (err == NULL)
        err = &unused;
    if (lim == NULL)
        lim = &gy_h1_default_limits;
    memset(req, 0, sizeof(*req));
    req->headers = headers;

    long off = skip_empty_lines(buf, len, err);
    if (off < 0)
        return (int)off;
    int rc = find_line(buf, len, (size_t)off, lim->max_request_line, &end, &lf);
    if (rc == GY_ETOOBIG)
        return fail(err, GY_ETOOBIG, 414, "request line too long");
    bool complete = rc == 1;
    rc = parse_request_line(buf + off, buf + end, complete, req, &has_authority, err);
    if (rc != 0 && rc != GY_EAGAIN)
        return rc;
    if (!complete) {
        if (len >= lim->max_head_bytes)
            return fail(err, GY_ETOOBIG, 431, "header section too large");
        return GY_EAGAIN;
    }
    rc = parse_head_rest(buf, len, lf, headers, lim, &req->nheaders, &f, err);
    if (rc <= 0)
        return rc;
    req->head_len = (size_t)rc;
    int frc = finish_request(req, &f, has_authority, err);
    return frc != 0 ? frc : rc;
}

/* ---- responses ---- */

static int finish_response(struct gy_h1_response *res, const struct framing *f, bool request_was_head,
                           bool request_was_connect, struct gy_h1_error *err)
{
    bool v11 = res->minor_version == 1;
    int s = res->status;

    if (f->has_te) {
        if (f->has_cl)
            return fail(err, GY_EPARSE, 502, "both Content-Length and Transfer-Encoding");
        if (!v11)
            return fail(err, GY_EPARSE, 502, "Transfer-Encoding in an HTTP/1.0 response");
        if (f->te_bad || f->te_chunked_twice || !f->te_chunked_last || f->te_other)
            return fail(err, GY_EPARSE, 502, "Transfer-Encoding other than chunked");
    }
    if (f->has_cl)
        res->content_length = f->content_length;
    res->keep_alive = !f->conn_close && (v11 || f->conn_keep_alive);

    if (s == 101 || (request_was_connect && s >= 200 && s < 300)) {
        res->body = GY_H1_BODY_TUNNEL;
        res->keep_alive = false;
    } else if (request_was_head || s < 200 || s == 204 || s == 304) {
        res->body = GY_H1_BODY_NONE;
    } else if (f->has_te) {
        res->body = GY_H1_BODY_CHUNKED;
    } else if (f->has_cl) {
        res->body = f->content_length > 0 ? GY_H1_BODY_LENGTH : GY_H1_BODY_NONE;
    } else {
        res->body = GY_H1_BODY_EOF;
        res->keep_alive = false;
    }
    return 0;
}

int gy_h1_parse_response(const char *buf, size_t len, struct gy_h1_response *res, struct gy_header *headers,
                         const struct gy_h1_limits *lim, bool request_was_head, bool request_was_connect,
                         struct gy_h1_error *err)
{
    struct gy_h1_error unused;
    struct framing f = { 0 };
    size_t end, lf = 0;

    if (err == NULL)
        err = &unused;
    if (lim == NULL)
        lim = &gy_h1_default_limits;
    memset(res, 0, sizeof(*res));
    res->headers = headers;

    if (len == 0)
        return GY_EAGAIN;
    int rc = find_line(buf, len, 0, lim->max_request_line, &end, &lf);
    if (rc == GY_ETOOBIG)
        return fail(err, GY_ETOOBIG, 502, "status line too long");
    if (rc == 0) {
        if (memcmp(buf, "HTTP/1.", end < 7 ? end : 7) != 0)
            return fail(err, GY_EPARSE, 502, "invalid status line");
        if (len >= lim->max_head_bytes)
            return fail(err, GY_ETOOBIG, 502, "response head too large");
        return GY_EAGAIN;
    }
    rc = parse_status_line(buf, buf + end, res, err);
    if (rc != 0)
        return rc;
    rc = parse_head_rest(buf, len, lf, headers, lim, &res->nheaders, &f, err);
    if (rc < 0 && rc != GY_EAGAIN)
        err->status = 502;
    if (rc <= 0)
        return rc;
    res->head_len = (size_t)rc;
    int frc = finish_response(res, &f, request_was_head, request_was_connect, err);
    return frc != 0 ? frc : rc;
}

/* ---- chunked transfer coding (§7.1) ---- */

enum {
    CH_SIZE,            /* chunk-size hex digits */
    CH_SIZE_WS,         /* BWS after the size, before ';' */
    CH_EXT_PRE_NAME,    /* after ';' */
    CH_EXT_NAME,
    CH_EXT_POST_NAME,   /* BWS after a name */
    CH_EXT_PRE_VALUE,   /* after '=' */
    CH_EXT_VALUE,       /* token value */
    CH_EXT_QUOTED,      /* quoted-string value */
    CH_EXT_QUOTED_ESC,  /* after '\\' in a quoted-string */
    CH_EXT_POST_VALUE,  /* after a value */
    CH_SIZE_LF,         /* CR seen on the size line */
    CH_DATA,
    CH_DATA_CR,         /* CRLF after the data */
    CH_DATA_LF,
    CH_TRAILER_START,   /* start of a trailer line or of the final empty line */
    CH_TRAILER_NAME,
    CH_TRAILER_VALUE,
    CH_TRAILER_LF,
    CH_TRAILER_END_LF,  /* CR of the final empty line seen */
    CH_DONE,
    CH_ERROR,
};

void gy_h1_chunked_init(struct gy_h1_chunked *d)
{
    memset(d, 0, sizeof(*d));
    d->state = CH_SIZE;
}

/* The size line has ended: data follows, or the trailer section after the last chunk. */
static int size_line_done(struct gy_h1_chunked *d)
{
    d->line_bytes = 0;
    d->digits = 0;
    return d->remaining > 0 ? CH_DATA : CH_TRAILER_START;
}

/* Size-line byte after a chunk-ext name or value: ';' starts the next one, CR/LF end the line. */
static int ext_next(struct gy_h1_chunked *d, char c, int ws_state)
{
    if (IS_WS(c))
        return ws_state;
    if (c == ';')
        return CH_EXT_PRE_NAME;
    if (c == '\r')
        return CH_SIZE_LF;
    if (c == '\n')
        return size_line_done(d);
    return CH_ERROR;
}

/* One byte of framing: the size line, the CRLF after data, or the trailer section. */
static inline int chunked_step(struct gy_h1_chunked *d, char c)
{
    int s = d->state;

    if (s < CH_DATA && ++d->line_bytes > MAX_CHUNK_LINE)
        return CH_ERROR;
    if (s >= CH_TRAILER_START && ++d->line_bytes > MAX_TRAILER_BYTES)
        return CH_ERROR;

    switch (s) {
    case CH_SIZE:
        if (IS(c, C_HEX)) {
            unsigned v = c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
            if (++d->digits > MAX_CHUNK_DIGITS || d->remaining > (MAX_CHUNK_SIZE >> 4))
                return CH_ERROR;
            d->remaining = d->remaining * 16 + v;
            return d->remaining > MAX_CHUNK_SIZE ? CH_ERROR : CH_SIZE;
        }
        if (d->digits == 0)
            return CH_ERROR;
        if (IS_WS(c))
            return CH_SIZE_WS;
        if (c == ';')
            return CH_EXT_PRE_NAME;
        if (c == '\r')
            return CH_SIZE_LF;
        return c == '\n' ? size_line_done(d) : CH_ERROR;
    case CH_SIZE_WS:
        return IS_WS(c) ? CH_SIZE_WS : c == ';' ? CH_EXT_PRE_NAME : CH_ERROR;
    case CH_EXT_PRE_NAME:
        return IS_WS(c) ? CH_EXT_PRE_NAME : IS(c, C_TCHAR) ? CH_EXT_NAME : CH_ERROR;
    case CH_EXT_NAME:
        if (IS(c, C_TCHAR))
            return CH_EXT_NAME;
        return c == '=' ? CH_EXT_PRE_VALUE : ext_next(d, c, CH_EXT_POST_NAME);
    case CH_EXT_POST_NAME:
        return c == '=' ? CH_EXT_PRE_VALUE : ext_next(d, c, CH_EXT_POST_NAME);
    case CH_EXT_PRE_VALUE:
        if (IS_WS(c))
            return CH_EXT_PRE_VALUE;
        return c == '"' ? CH_EXT_QUOTED : IS(c, C_TCHAR) ? CH_EXT_VALUE : CH_ERROR;
    case CH_EXT_VALUE:
        return IS(c, C_TCHAR) ? CH_EXT_VALUE : ext_next(d, c, CH_EXT_POST_VALUE);
    case CH_EXT_QUOTED:
        if (c == '"')
            return CH_EXT_POST_VALUE;
        if (c == '\\')
            return CH_EXT_QUOTED_ESC;
        return IS(c, C_QDTEXT) ? CH_EXT_QUOTED : CH_ERROR;
    case CH_EXT_QUOTED_ESC:
        return IS(c, C_FVAL) ? CH_EXT_QUOTED : CH_ERROR;
    case CH_EXT_POST_VALUE:
        return ext_next(d, c, CH_EXT_POST_VALUE);
    case CH_SIZE_LF:
        return c == '\n' ? size_line_done(d) : CH_ERROR;
    case CH_DATA_CR:
        return c == '\r' ? CH_DATA_LF : c == '\n' ? CH_SIZE : CH_ERROR;
    case CH_DATA_LF:
        return c == '\n' ? CH_SIZE : CH_ERROR;
    case CH_TRAILER_START:
        if (c == '\r')
            return CH_TRAILER_END_LF;
        if (c == '\n')
            return CH_DONE;
        return IS(c, C_TCHAR) ? CH_TRAILER_NAME : CH_ERROR; /* SP/HTAB here is obs-fold */
    case CH_TRAILER_NAME:
        return IS(c, C_TCHAR) ? CH_TRAILER_NAME : c == ':' ? CH_TRAILER_VALUE : CH_ERROR;
    case CH_TRAILER_VALUE:
        if (IS(c, C_FVAL))
            return CH_TRAILER_VALUE;
        return c == '\r' ? CH_TRAILER_LF : c == '\n' ? CH_TRAILER_START : CH_ERROR;
    case CH_TRAILER_LF:
        return c == '\n' ? CH_TRAILER_START : CH_ERROR;
    case CH_TRAILER_END_LF:
        return c == '\n' ? CH_DONE : CH_ERROR;
    default:
        return CH_ERROR;
    }
}

long gy_h1_chunked_decode(struct gy_h1_chunked *d, const char *in, size_t len, struct gy_slice *data, bool *done)
{
    size_t i = 0;
    bool have_data = false;

    *data = gy_slice(in, 0);
    *done = false;
    if (len > LONG_MAX)
        len = LONG_MAX;
    while (i < len && d->state != CH_DONE && d->state != CH_ERROR) {
        if (d->state == CH_DATA) {
            if (have_data)
                break;
            size_t n = len - i;
            if (n > d->remaining)
                n = (size_t)d->remaining;
            *data = gy_slice(in + i, n);
            have_data = true;
            i += n;
            d->remaining -= n;
            if (d->remaining == 0)
                d->state = CH_DATA_CR;
            continue;
        }
        /* Framing bytes: short runs, so one step per byte (inlined by the compiler). */
        const char *p = in + i, *e = in + len;
        int s = d->state;
        while (p < e && s != CH_DATA && s != CH_DONE && s != CH_ERROR) {
            s = chunked_step(d, *p++);
            d->state = s;
        }
        i = (size_t)(p - in);
    }
    if (d->state == CH_ERROR) {
        *data = gy_slice(in, 0);
        return GY_EPARSE;
    }
    *done = d->state == CH_DONE;
    return (long)i;
}

/* ---- helpers ---- */

size_t gy_h1_chunk_header(char *out, uint64_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t k = 0;

    do {
        tmp[k++] = hex[n & 0xf];
        n >>= 4;
    } while (n != 0);
    for (size_t i = 0; i < k; i++)
        out[i] = tmp[k - 1 - i];
    out[k] = '\r';
    out[k + 1] = '\n';
    return k + 2;
}

bool gy_h1_is_hop_by_hop(struct gy_slice name)
{
    const char *p = name.ptr;

    switch (name.len) {
    case 2:
        return EQ_LIT(p, 2, "te");
    case 7:
        return EQ_LIT(p, 7, "trailer") || EQ_LIT(p, 7, "upgrade");
    case 10:
        return EQ_LIT(p, 10, "connection") || EQ_LIT(p, 10, "keep-alive");
    case 16:
        return EQ_LIT(p, 16, "proxy-connection");
    case 17:
        return EQ_LIT(p, 17, "transfer-encoding");
    case 18:
        return EQ_LIT(p, 18, "proxy-authenticate");
    default:
        return false;
    }
}

bool gy_h1_connection_lists(const struct gy_header *h, unsigned n, struct gy_slice name)
{
    if (name.len == 0)
        return false;
    for (unsigned i = 0; i < n; i++) {
        if (h[i].value.len == 0 || !EQ_LIT(h[i].name.ptr, h[i].name.len, "connection"))
            continue;
        struct list_iter it = { h[i].value.ptr, h[i].value.ptr + h[i].value.len, false };
        struct gy_slice t;
        while (list_next(&it, &t))
            if (gy_slice_eqi(t, name))
                return true;
    }
    return false;
}

const char *gy_h1_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "";
    }
}
