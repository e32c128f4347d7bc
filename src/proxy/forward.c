/* Building the heads a proxy forwards: the upstream request and the downstream response. */
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "proxy/proxy.h"

struct writer {
    char *p;
    size_t len, cap;
    bool overflow;
};

/* A writer over the free space at the end of a buffer; commit with writer_commit. */
static void writer_on_buf(struct writer *w, struct gy_buf *out)
{
    w->cap = gy_buf_room(out);
    w->p = out->data + out->tail;
    w->len = 0;
    w->overflow = false;
}

static int writer_commit(struct writer *w, struct gy_buf *out)
{
    if (w->overflow)
        return GY_EAGAIN;
    out->tail += (uint32_t)w->len;
    return 0;
}

static void put(struct writer *w, const char *s, size_t n)
{
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = true;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void put_slice(struct writer *w, struct gy_slice s)
{
    put(w, s.ptr, s.len);
}

static void put_cstr(struct writer *w, const char *s)
{
    put(w, s, strlen(s));
}

static void put_header(struct writer *w, struct gy_slice name, struct gy_slice value)
{
    put_slice(w, name);
    put(w, ": ", 2);
    put_slice(w, value);
    put(w, "\r\n", 2);
}

static bool in_list(char *const *names, size_t n, struct gy_slice name)
{
    for (size_t i = 0; i < n; i++)
        if (gy_slice_eqi_cstr(name, names[i]))
            return true;
    return false;
}

/* Replacing adds (append = false) drop the request's own header of that name. */
static bool replaced_by(const struct gy_header_op *ops, size_t n, struct gy_slice name)
{
    for (size_t i = 0; i < n; i++)
        if (!ops[i].append && gy_slice_eqi_cstr(name, ops[i].name))
            return true;
    return false;
}

static void put_ops(struct writer *w, const struct gy_header_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_header(w, gy_slice_cstr(ops[i].name), gy_slice_cstr(ops[i].value));
}

/* Headers the proxy never forwards as received. */
static bool skip_common(const struct gy_header *h, const struct gy_header *all, unsigned n)
{
    return gy_h1_is_hop_by_hop(h->name) || gy_h1_connection_lists(all, n, h->name);
}

static size_t ops_size(const struct gy_header_op *ops, size_t n)
{
    size_t sz = 0;

    for (size_t i = 0; i < n; i++)
        sz += strlen(ops[i].name) + strlen(ops[i].value) + 4;
    return sz;
}

int gy_fwd_request_head(struct gy_stream *s, const struct gy_h1_request *req, struct gy_slice path)
{
    const struct gy_route *r = s->route.route;
    bool remote = s->lcfg->use_remote_address;
    struct gy_slice xff = GY_SLICE_NULL;
    char hostbuf[300];
    struct writer w;

    w.cap = req->head_len + path.len + req->query.len + 640 + s->xff.len + s->request_id.len +
            ops_size(r->request_headers_to_add, r->nrequest_headers_to_add);
    w.p = gy_pool_alloc(&s->pool, w.cap);
    w.len = 0;
    w.overflow = false;
    if (w.p == NULL)
        return GY_ENOMEM;

    put_slice(&w, req->method);
    put(&w, " ", 1);
    put_slice(&w, path);
    if (req->query.len > 0 || (req->target.len > 0 && req->target.ptr[req->target.len - 1] == '?')) {
        put(&w, "?", 1);
        put_slice(&w, req->query);
    }
    put_cstr(&w, " HTTP/1.1\r\n");
    bool have_host = false;
    for (unsigned i = 0; i < req->nheaders; i++) {
        const struct gy_header *h = &req->headers[i];
        if (skip_common(h, req->headers, req->nheaders))
            continue;
        if (gy_slice_eqi_cstr(h->name, "x-forwarded-for")) {
            if (remote)
                continue; /* re-emitted below with the peer appended */
        } else if (gy_slice_eqi_cstr(h->name, "x-forwarded-proto") || gy_slice_eqi_cstr(h->name, "x-request-id") ||
                   gy_slice_eqi_cstr(h->name, "expect")) {
            continue;
        } else if (gy_slice_eqi_cstr(h->name, "host")) {
            have_host = true;
        }
        if (in_list(r->request_headers_to_remove, r->nrequest_headers_to_remove, h->name) ||
            replaced_by(r->request_headers_to_add, r->nrequest_headers_to_add, h->name))
            continue;
        put_header(&w, h->name, h->value);
    }
    if (!have_host) {
        /* HTTP/1.0 without Host (or an absolute-form target): name the upstream cluster (the head is
         * built once, before a host is picked, so that retries can go elsewhere). */
        int n = req->host.len ? snprintf(hostbuf, sizeof(hostbuf), "%.*s", GY_SLICE_ARG(req->host))
                              : snprintf(hostbuf, sizeof(hostbuf), "%s", s->cluster->name);
        put_header(&w, GY_SLICE_LIT("host"), gy_slice(hostbuf, n > 0 ? (size_t)n : 0));
    }
    if (remote) {
        xff = s->xff;
        put_cstr(&w, "x-forwarded-for: ");
        if (xff.len) {
            put_slice(&w, xff);
            put(&w, ", ", 2);
        }
        put_cstr(&w, s->dc->peer_ip);
        put(&w, "\r\n", 2);
    }
    put_header(&w, GY_SLICE_LIT("x-forwarded-proto"), GY_SLICE_LIT("http"));
    put_header(&w, GY_SLICE_LIT("x-request-id"), s->request_id);
    put_cstr(&w, "via: 1.1 gyrus\r\n");
    put_ops(&w, r->request_headers_to_add, r->nrequest_headers_to_add);
    if (req->body == GY_H1_BODY_CHUNKED)
        put_cstr(&w, "transfer-encoding: chunked\r\n");
    put(&w, "\r\n", 2);
    if (w.overflow)
        return GY_ETOOBIG;
    s->uhead = gy_slice(w.p, w.len);
    return 0;
}

int gy_fwd_response_head(struct gy_stream *s, const struct gy_h1_response *res, struct gy_buf *out, bool keep)
{
    const struct gy_route *r = s->route.route;
    const struct gy_vhost *v = s->route.vhost;
    char line[64];
    struct writer w;
    size_t need = res->head_len + 256 + ops_size(r->response_headers_to_add, r->nresponse_headers_to_add) +
                  ops_size(v->custom_headers, v->ncustom_headers);

    if (gy_buf_room(out) < need)
        return GY_EAGAIN;
    writer_on_buf(&w, out);
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d ", res->status);
    put(&w, line, (size_t)n);
    put_slice(&w, res->reason);
    put(&w, "\r\n", 2);
    for (unsigned i = 0; i < res->nheaders; i++) {
        const struct gy_header *h = &res->headers[i];
        if (skip_common(h, res->headers, res->nheaders))
            continue;
        if (in_list(r->response_headers_to_remove, r->nresponse_headers_to_remove, h->name) ||
            replaced_by(r->response_headers_to_add, r->nresponse_headers_to_add, h->name) ||
            replaced_by(v->custom_headers, v->ncustom_headers, h->name))
            continue;
        if (s->resp_eof_out && gy_slice_eqi_cstr(h->name, "content-length"))
            continue;
        put_header(&w, h->name, h->value);
    }
    put_ops(&w, r->response_headers_to_add, r->nresponse_headers_to_add);
    put_ops(&w, v->custom_headers, v->ncustom_headers);
    put_cstr(&w, "via: 1.1 gyrus\r\n");
    if (s->resp_chunked_out)
        put_cstr(&w, "transfer-encoding: chunked\r\n");
    if (!keep)
        put_cstr(&w, "connection: close\r\n");
    else if (s->minor_version == 0)
        put_cstr(&w, "connection: keep-alive\r\n");
    put(&w, "\r\n", 2);
    return writer_commit(&w, out);
}

/* Forwards an informational (1xx) response to an HTTP/1.1 client as it came, minus hop-by-hop headers. */
int gy_fwd_informational(const struct gy_h1_response *res, struct gy_buf *out)
{
    char line[64];
    struct writer w;

    if (gy_buf_room(out) < res->head_len + 64)
        return GY_EAGAIN;
    writer_on_buf(&w, out);
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d ", res->status);
    put(&w, line, (size_t)n);
    put_slice(&w, res->reason);
    put(&w, "\r\n", 2);
    for (unsigned i = 0; i < res->nheaders; i++)
        if (!skip_common(&res->headers[i], res->headers, res->nheaders))
            put_header(&w, res->headers[i].name, res->headers[i].value);
    put(&w, "\r\n", 2);
    return writer_commit(&w, out);
}

/*
 * Moves body bytes from `in` to `out`, decoding `framing` (LENGTH with *remaining, CHUNKED with
 * *dec, EOF) and encoding as chunked when `chunk_out`. Returns bytes of body data moved; sets
 * *done when the body is complete; GY_EPARSE on bad chunked framing.
 */
long gy_fwd_body(struct gy_buf *in, struct gy_buf *out, enum gy_h1_body framing, uint64_t *remaining,
                 struct gy_h1_chunked *dec, bool chunk_out, bool *done)
{
    long moved = 0;

    for (;;) {
        size_t avail = gy_buf_len(in), room = gy_buf_room(out);
        if (*done)
            break;
        if (framing == GY_H1_BODY_LENGTH && *remaining == 0) {
            *done = true;
            break;
        }
        if (room < (chunk_out ? 32u : 1u))
            break;
        if (chunk_out)
            room -= 24; /* chunk-size line and CRLF */
        if (framing == GY_H1_BODY_CHUNKED) {
            struct gy_slice data;
            bool fin = false;
            long used = gy_h1_chunked_decode(dec, gy_buf_start(in), avail < room ? avail : room, &data, &fin);
            if (used < 0)
                return GY_EPARSE;
            if (data.len > 0) {
                if (chunk_out) {
                    char hdr[24];
                    size_t hl = gy_h1_chunk_header(hdr, data.len);
                    gy_buf_append(out, hdr, hl);
                    gy_buf_append(out, data.ptr, data.len);
                    gy_buf_append(out, "\r\n", 2);
                } else {
                    gy_buf_append(out, data.ptr, data.len);
                }
                moved += (long)data.len;
            }
            gy_buf_consume(in, (size_t)used);
            if (fin)
                *done = true;
            if (used == 0 && data.len == 0 && !fin)
                break;
            continue;
        }
        size_t n = avail < room ? avail : room;
        if (framing == GY_H1_BODY_LENGTH && n > *remaining)
            n = (size_t)*remaining;
        if (n == 0)
            break;
        if (chunk_out) {
            char hdr[24];
            size_t hl = gy_h1_chunk_header(hdr, n);
            gy_buf_append(out, hdr, hl);
            gy_buf_append(out, gy_buf_start(in), n);
            gy_buf_append(out, "\r\n", 2);
        } else {
            gy_buf_append(out, gy_buf_start(in), n);
        }
        gy_buf_consume(in, n);
        moved += (long)n;
        if (framing == GY_H1_BODY_LENGTH)
            *remaining -= n;
    }
    return moved;
}
