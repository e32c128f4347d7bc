/*
 * The header rules of the proxy, in one place for both protocols: what is dropped (hop-by-hop
 * and connection-specific fields, what a route removes or replaces), what is added
 * (x-forwarded-for/proto, x-request-id, via, route and domain headers), and how heads are
 * written for HTTP/1.1 (bytes) and HTTP/2 (nghttp2 name/value arrays). Also the HTTP/1 body
 * framing helpers used by both HTTP/1.1 codecs.
 */
#include <nghttp2/nghttp2.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "http/h2.h"
#include "proxy/filter.h"
#include "proxy/proxy.h"
#include "tls/tls.h"

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

bool gy_fwd_skip_request_header(const struct gy_stream *s, const struct gy_header *h, const struct gy_header *all,
                                unsigned n)
{
    const struct gy_route *r = s->route.route;

    if (skip_common(h, all, n))
        return true;
    if (gy_slice_eqi_cstr(h->name, "x-forwarded-for")) {
        if (s->lcfg->use_remote_address)
            return true; /* re-emitted with the peer appended */
    } else if (gy_slice_eqi_cstr(h->name, "x-forwarded-proto") || gy_slice_eqi_cstr(h->name, "x-request-id") ||
               gy_slice_eqi_cstr(h->name, "expect") || gy_slice_eqi_cstr(h->name, "http2-settings") ||
               gy_slice_eqi_cstr(h->name, "x-forwarded-client-cert")) {
        return true; /* x-forwarded-client-cert: re-made as forward_client_cert_details says */
    }
    return gy_filter_edits_drop(s->edits, h->name) || in_list(r->request_headers_to_remove, r->nrequest_headers_to_remove, h->name) ||
           replaced_by(r->request_headers_to_add, r->nrequest_headers_to_add, h->name);
}

bool gy_fwd_skip_response_header(const struct gy_stream *s, const struct gy_header *h, const struct gy_header *all,
                                 unsigned n)
{
    const struct gy_route *r = s->route.route;
    const struct gy_vhost *v = s->route.vhost;

    return skip_common(h, all, n) ||
           in_list(r->response_headers_to_remove, r->nresponse_headers_to_remove, h->name) ||
           replaced_by(r->response_headers_to_add, r->nresponse_headers_to_add, h->name) ||
           replaced_by(v->custom_headers, v->ncustom_headers, h->name);
}

/* Room for the headers the filters set. */
static size_t edits_size(const struct gy_filter_edits *e)
{
    size_t sz = 0;

    for (size_t i = 0; e != NULL && i < e->nset; i++)
        sz += e->set[i].name.len + e->set[i].value.len + 4;
    return sz;
}

/* x-forwarded-proto: how the client reached us. */
static struct gy_slice downstream_scheme(const struct gy_stream *s)
{
    return s->dc->transport != NULL ? GY_SLICE_LIT("https") : GY_SLICE_LIT("http");
}

/* The x-forwarded-for value sent upstream: the client's, then the peer. */
static struct gy_slice forwarded_for(struct gy_stream *s)
{
    struct gy_slice peer = gy_slice_cstr(s->dc->peer_ip);

    if (s->xff.len == 0)
        return peer; /* the connection outlives its streams */
    char *p = gy_pool_alloc(&s->pool, s->xff.len + 2 + peer.len);
    if (p == NULL)
        return peer;
    memcpy(p, s->xff.ptr, s->xff.len);
    memcpy(p + s->xff.len, ", ", 2);
    memcpy(p + s->xff.len + 2, peer.ptr, peer.len);
    return gy_slice(p, s->xff.len + 2 + peer.len);
}

/* x-forwarded-client-cert as the listener's forward_client_cert_details says (the client's own
 * fields were skipped); ptr NULL: none goes upstream. */
static struct gy_slice forwarded_client_cert(struct gy_stream *s, const struct gy_req_head *req)
{
    const struct gy_listener *l = s->lcfg;
    const struct gy_tls_peer *peer;
    const char *mine = NULL;
    size_t n = 0;

    if (l->xfcc_mode == GY_XFCC_SANITIZE)
        return (struct gy_slice){ 0 };
    peer = gy_tls_peer(s->dc->transport);
    if ((peer == NULL || !peer->verified) && l->xfcc_mode != GY_XFCC_ALWAYS_FORWARD_ONLY)
        return (struct gy_slice){ 0 }; /* not mTLS: nothing vouches for what the client says */
    bool theirs = l->xfcc_mode != GY_XFCC_SANITIZE_SET;
    if (l->xfcc_mode == GY_XFCC_APPEND_FORWARD || l->xfcc_mode == GY_XFCC_SANITIZE_SET) {
        if ((mine = gy_tls_xfcc(s->dc->transport, l->xfcc_fields)) == NULL)
            return (struct gy_slice){ 0 };
        n += strlen(mine) + 1;
    }
    for (unsigned i = 0; theirs && i < req->nheaders; i++)
        if (gy_slice_eqi_cstr(req->headers[i].name, "x-forwarded-client-cert"))
            n += req->headers[i].value.len + 1;
    char *p = gy_pool_alloc(&s->pool, n + 1);
    size_t len = 0;
    if (p == NULL)
        return (struct gy_slice){ 0 };
    for (unsigned i = 0; theirs && i < req->nheaders; i++) {
        struct gy_slice v = gy_slice_trim(req->headers[i].value);
        if (!gy_slice_eqi_cstr(req->headers[i].name, "x-forwarded-client-cert") || v.len == 0)
            continue;
        if (len > 0)
            p[len++] = ',';
        memcpy(p + len, v.ptr, v.len);
        len += v.len;
    }
    if (mine != NULL) {
        if (len > 0)
            p[len++] = ',';
        memcpy(p + len, mine, strlen(mine));
        len += strlen(mine);
    }
    return len > 0 ? gy_slice(p, len) : (struct gy_slice){ 0 };
}

/* WebSocket towards an HTTP/1.1 upstream: the upgrade asked again, and for an extended CONNECT
 * (RFC 8441) the handshake fields HTTP/2 does without. */
static void put_tunnel_headers(struct gy_stream *s, struct writer *w, const struct gy_req_head *req)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char key[25];

    put_cstr(w, "connection: upgrade\r\nupgrade: websocket\r\n");
    if (!req->is_connect)
        return;
    if (gy_header_find(req->headers, req->nheaders, GY_SLICE_LIT("sec-websocket-key")) == NULL) {
        uint64_t a = gy_worker_rand(s->dc->w), b = gy_worker_rand(s->dc->w);
        for (int i = 0; i < 21; i++) {
            key[i] = b64[(i < 10 ? a >> (6 * i) : b >> (6 * (i - 10))) & 63];
        }
        key[21] = b64[(b >> 60) & 0x30];
        memcpy(key + 22, "==", 2);
        key[24] = '\0';
        put_cstr(w, "sec-websocket-key: ");
        put_cstr(w, key);
        put(w, "\r\n", 2);
    }
    if (gy_header_find(req->headers, req->nheaders, GY_SLICE_LIT("sec-websocket-version")) == NULL)
        put_cstr(w, "sec-websocket-version: 13\r\n");
}

int gy_fwd_request_head(struct gy_stream *s, const struct gy_req_head *req, struct gy_slice path)
{
    const struct gy_route *r = s->route.route;
    bool remote = s->lcfg->use_remote_address;
    char hostbuf[300];
    struct writer w;
    size_t hsize = 0;
    struct gy_slice xfcc = forwarded_client_cert(s, req);

    for (unsigned i = 0; i < req->nheaders; i++)
        hsize += req->headers[i].name.len + req->headers[i].value.len + 4;
    w.cap = hsize + xfcc.len + req->method.len + req->authority.len + path.len + req->query.len + 700 + s->xff.len +
            s->request_id.len + ops_size(r->request_headers_to_add, r->nrequest_headers_to_add) + edits_size(s->edits);
    w.p = gy_pool_alloc(&s->pool, w.cap);
    w.len = 0;
    w.overflow = false;
    if (w.p == NULL)
        return GY_ENOMEM;

    put_slice(&w, s->tunnel && req->is_connect ? GY_SLICE_LIT("GET") : req->method);
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
        if (gy_fwd_skip_request_header(s, h, req->headers, req->nheaders))
            continue;
        if (gy_slice_eqi_cstr(h->name, "host"))
            have_host = true;
        put_header(&w, h->name, h->value);
    }
    if (!have_host) {
        /* HTTP/2 (:authority), HTTP/1.0 without Host or an absolute-form target: name the
         * authority, else the upstream cluster (the head is built once, before a host is picked,
         * so that retries can go elsewhere). */
        int n = req->authority.len ? snprintf(hostbuf, sizeof(hostbuf), "%.*s", GY_SLICE_ARG(req->authority))
                                   : snprintf(hostbuf, sizeof(hostbuf), "%s", s->cluster->name);
        put_header(&w, GY_SLICE_LIT("host"), gy_slice(hostbuf, n > 0 && (size_t)n < sizeof(hostbuf) ? (size_t)n : 0));
    }
    if (remote)
        put_header(&w, GY_SLICE_LIT("x-forwarded-for"), forwarded_for(s));
    put_header(&w, GY_SLICE_LIT("x-forwarded-proto"), downstream_scheme(s));
    if (s->request_id.len)
        put_header(&w, GY_SLICE_LIT("x-request-id"), s->request_id);
    if (xfcc.ptr != NULL)
        put_header(&w, GY_SLICE_LIT("x-forwarded-client-cert"), xfcc);
    put_cstr(&w, "via: 1.1 gyrus\r\n");
    put_ops(&w, r->request_headers_to_add, r->nrequest_headers_to_add);
    for (size_t i = 0; s->edits != NULL && i < s->edits->nset; i++)
        put_header(&w, s->edits->set[i].name, s->edits->set[i].value);
    if (s->tunnel)
        put_tunnel_headers(s, &w, req);
    if (s->req_chunked_up)
        put_cstr(&w, "transfer-encoding: chunked\r\n");
    put(&w, "\r\n", 2);
    if (w.overflow)
        return GY_ETOOBIG;
    s->uhead = gy_slice(w.p, w.len);
    return 0;
}

/* ---- HTTP/2 name/value arrays ---- */

struct nvlist {
    nghttp2_nv *nv;
    size_t n, cap;
    bool failed;
};

void gy_fwd_nv(struct gy_slice name, struct gy_slice value, uint8_t keep, void *out)
{
    *(nghttp2_nv *)out = (nghttp2_nv){ (uint8_t *)name.ptr, (uint8_t *)value.ptr, name.len, value.len,
                                       (uint8_t)(keep | gy_h2_nv_flags(name.ptr, name.len)) };
}

static void nv_put(struct nvlist *l, struct gy_slice name, struct gy_slice value, uint8_t keep)
{
    if (l->failed || l->n == l->cap) {
        l->failed = true;
        return;
    }
    gy_fwd_nv(name, value, keep, &l->nv[l->n++]);
}

/* A field from the request or the route (nghttp2 copies it, and lower-cases the name). */
static void nv_add(struct nvlist *l, struct gy_slice name, struct gy_slice value)
{
    nv_put(l, name, value, NGHTTP2_NV_FLAG_NONE);
}

/* A field of ours: the name is a lower-case literal, which nghttp2 keeps without a copy. */
static void nv_ours(struct nvlist *l, struct gy_slice name, struct gy_slice value)
{
    nv_put(l, name, value, NGHTTP2_NV_FLAG_NO_COPY_NAME);
}

/* Name and value literals. */
static void nv_lit(struct nvlist *l, struct gy_slice name, struct gy_slice value)
{
    nv_put(l, name, value, NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE);
}

static void nv_ops(struct nvlist *l, const struct gy_header_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        nv_add(l, gy_slice_cstr(ops[i].name), gy_slice_cstr(ops[i].value));
}

int gy_fwd_request_nv(struct gy_stream *s, const struct gy_req_head *req, struct gy_slice path)
{
    const struct gy_route *r = s->route.route;
    struct nvlist l = { .cap = req->nheaders + r->nrequest_headers_to_add + (s->edits ? s->edits->nset : 0) + 12 };
    struct gy_slice authority = req->authority, fullpath = path;
    bool te = false;

    l.nv = gy_pool_alloc(&s->pool, l.cap * sizeof(nghttp2_nv));
    if (l.nv == NULL)
        return GY_ENOMEM;
    if (req->query.len > 0 || (req->target.len > 0 && req->target.ptr[req->target.len - 1] == '?')) {
        char *p = gy_pool_alloc(&s->pool, path.len + req->query.len + 2);
        if (p == NULL)
            return GY_ENOMEM;
        int n = snprintf(p, path.len + req->query.len + 2, "%.*s?%.*s", GY_SLICE_ARG(path), GY_SLICE_ARG(req->query));
        fullpath = gy_slice(p, (size_t)n);
    }
    if (authority.len == 0)
        authority = gy_slice_cstr(s->cluster->name);
    if (s->tunnel)
        nv_lit(&l, GY_SLICE_LIT(":method"), GY_SLICE_LIT("CONNECT"));
    else
        nv_ours(&l, GY_SLICE_LIT(":method"), req->method);
    nv_lit(&l, GY_SLICE_LIT(":scheme"), s->cluster->tls != NULL ? GY_SLICE_LIT("https") : GY_SLICE_LIT("http"));
    nv_ours(&l, GY_SLICE_LIT(":authority"), authority);
    nv_ours(&l, GY_SLICE_LIT(":path"), fullpath.len ? fullpath : GY_SLICE_LIT("/"));
    if (s->tunnel)
        nv_lit(&l, GY_SLICE_LIT(":protocol"), GY_SLICE_LIT("websocket"));
    for (unsigned i = 0; i < req->nheaders; i++) {
        const struct gy_header *h = &req->headers[i];
        if (gy_slice_eqi_cstr(h->name, "te"))
            te |= gy_slice_eqi(gy_slice_trim(h->value), GY_SLICE_LIT("trailers"));
        if (gy_fwd_skip_request_header(s, h, req->headers, req->nheaders) || gy_slice_eqi_cstr(h->name, "host"))
            continue;
        if (s->tunnel &&
            (gy_slice_eqi_cstr(h->name, "sec-websocket-key") || gy_slice_eqi_cstr(h->name, "content-length")))
            continue; /* HTTP/2 has no key handshake; we answer the HTTP/1.1 client's key ourselves */
        if (s->grpc_web.mode && gy_slice_eqi_cstr(h->name, "content-type")) {
            char *ct = gy_pool_alloc(&s->pool, h->value.len + 1);
            if (ct != NULL)
                nv_add(&l, h->name, gy_grpcweb_to_grpc(h->value, ct, h->value.len));
            continue;
        }
        if (s->grpc_web.mode == GY_GRPCWEB_TEXT && gy_slice_eqi_cstr(h->name, "content-length"))
            continue;
        nv_add(&l, h->name, h->value);
    }
    if ((te || s->grpc) && !s->tunnel)
        nv_lit(&l, GY_SLICE_LIT("te"), GY_SLICE_LIT("trailers"));
    if (s->lcfg->use_remote_address)
        nv_ours(&l, GY_SLICE_LIT("x-forwarded-for"), forwarded_for(s));
    nv_lit(&l, GY_SLICE_LIT("x-forwarded-proto"), downstream_scheme(s));
    if (s->request_id.len)
        nv_ours(&l, GY_SLICE_LIT("x-request-id"), s->request_id);
    struct gy_slice xfcc = forwarded_client_cert(s, req);
    if (xfcc.ptr != NULL)
        nv_ours(&l, GY_SLICE_LIT("x-forwarded-client-cert"), xfcc);
    nv_lit(&l, GY_SLICE_LIT("via"), GY_SLICE_LIT("2 gyrus"));
    nv_ops(&l, r->request_headers_to_add, r->nrequest_headers_to_add);
    for (size_t i = 0; s->edits != NULL && i < s->edits->nset; i++)
        nv_add(&l, s->edits->set[i].name, s->edits->set[i].value);
    if (l.failed)
        return GY_ETOOBIG;
    s->unv = l.nv;
    s->nunv = l.n;
    return 0;
}

struct gy_slice gy_fwd_ws_accept(struct gy_pool *pool, struct gy_slice key)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char in[128];
    char *out = gy_pool_alloc(pool, 32);

    key = gy_slice_trim(key);
    if (out == NULL || key.len == 0 || key.len + sizeof(guid) > sizeof(in))
        return GY_SLICE_NULL;
    memcpy(in, key.ptr, key.len);
    memcpy(in + key.len, guid, sizeof(guid) - 1);
    if (EVP_Digest(in, key.len + sizeof(guid) - 1, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        return GY_SLICE_NULL;
    int n = EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters */
    return gy_slice(out, (size_t)n);
}

void gy_fwd_response_fields(struct gy_stream *s, const struct gy_resp_head *res,
                            void (*fn)(void *arg, struct gy_slice name, struct gy_slice value), void *arg)
{
    const struct gy_route *r = s->route.route;
    const struct gy_vhost *v = s->route.vhost;

    for (unsigned i = 0; i < res->nheaders; i++) {
        const struct gy_header *h = &res->headers[i];
        if (gy_fwd_skip_response_header(s, h, res->headers, res->nheaders) ||
            (res->tunnel && gy_slice_eqi_cstr(h->name, "sec-websocket-accept")))
            continue;
        fn(arg, h->name, h->value);
    }
    for (size_t i = 0; i < r->nresponse_headers_to_add; i++)
        fn(arg, gy_slice_cstr(r->response_headers_to_add[i].name), gy_slice_cstr(r->response_headers_to_add[i].value));
    for (size_t i = 0; i < v->ncustom_headers; i++)
        fn(arg, gy_slice_cstr(v->custom_headers[i].name), gy_slice_cstr(v->custom_headers[i].value));
    fn(arg, GY_SLICE_LIT("via"), s->version == 20 ? GY_SLICE_LIT("2 gyrus") : GY_SLICE_LIT("1.1 gyrus"));
}

/* ---- HTTP/1.1 response heads ---- */

int gy_fwd_response_head(struct gy_stream *s, const struct gy_resp_head *res, struct gy_buf *out, bool keep)
{
    const struct gy_route *r = s->route.route;
    const struct gy_vhost *v = s->route.vhost;
    char line[64];
    struct writer w;
    size_t need = 256 + ops_size(r->response_headers_to_add, r->nresponse_headers_to_add) +
                  ops_size(v->custom_headers, v->ncustom_headers) + res->reason.len;

    for (unsigned i = 0; i < res->nheaders; i++)
        need += res->headers[i].name.len + res->headers[i].value.len + 4;
    if (gy_buf_room(out) < need)
        return GY_EAGAIN;
    writer_on_buf(&w, out);
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d ", res->status);
    put(&w, line, (size_t)n);
    put_slice(&w, res->reason.len ? res->reason : gy_slice_cstr(gy_h1_reason(res->status)));
    put(&w, "\r\n", 2);
    for (unsigned i = 0; i < res->nheaders; i++) {
        const struct gy_header *h = &res->headers[i];
        if (gy_fwd_skip_response_header(s, h, res->headers, res->nheaders))
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
    else if (!res->body && res->content_length < 0 && !s->is_head && res->status != 204 && res->status != 304 &&
             !res->tunnel)
        put_cstr(&w, "content-length: 0\r\n"); /* an HTTP/2 answer without a body (gRPC trailers-only) */
    if (res->tunnel)
        put_cstr(&w, "connection: upgrade\r\nupgrade: websocket\r\n");
    else if (!keep)
        put_cstr(&w, "connection: close\r\n");
    else if (s->version == 10)
        put_cstr(&w, "connection: keep-alive\r\n");
    put(&w, "\r\n", 2);
    return writer_commit(&w, out);
}

/* Forwards an informational (1xx) response to an HTTP/1.1 client as it came, minus hop-by-hop headers. */
int gy_fwd_informational(const struct gy_resp_head *res, struct gy_buf *out)
{
    char line[64];
    struct writer w;
    size_t need = 64 + res->reason.len;

    for (unsigned i = 0; i < res->nheaders; i++)
        need += res->headers[i].name.len + res->headers[i].value.len + 4;
    if (gy_buf_room(out) < need)
        return GY_EAGAIN;
    writer_on_buf(&w, out);
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d ", res->status);
    put(&w, line, (size_t)n);
    put_slice(&w, res->reason.len ? res->reason : gy_slice_cstr(gy_h1_reason(res->status)));
    put(&w, "\r\n", 2);
    for (unsigned i = 0; i < res->nheaders; i++)
        if (!skip_common(&res->headers[i], res->headers, res->nheaders))
            put_header(&w, res->headers[i].name, res->headers[i].value);
    put(&w, "\r\n", 2);
    return writer_commit(&w, out);
}

/* ---- HTTP/1 body framing ---- */

void gy_h1_bodydec_init(struct gy_h1_bodydec *d, enum gy_h1_body framing, uint64_t length)
{
    d->framing = framing;
    d->remaining = length;
    gy_h1_chunked_init(&d->chunked);
}

long gy_h1_bodydec_next(struct gy_h1_bodydec *d, const char *in, size_t len, size_t max, struct gy_slice *data,
                        bool *done)
{
    size_t n = len < max ? len : max;

    *data = GY_SLICE_NULL;
    switch (d->framing) {
    case GY_H1_BODY_NONE:
        *done = true;
        return 0;
    case GY_H1_BODY_LENGTH:
        if (n > d->remaining)
            n = (size_t)d->remaining;
        d->remaining -= n;
        *data = gy_slice(in, n);
        *done = d->remaining == 0;
        return (long)n;
    case GY_H1_BODY_CHUNKED:
        return gy_h1_chunked_decode(&d->chunked, in, n, data, done);
    default: /* until EOF, or a tunnel */
        *data = gy_slice(in, n);
        return (long)n;
    }
}

void gy_h1_put_body(struct gy_buf *out, const char *p, size_t n, bool chunked)
{
    if (n == 0)
        return;
    if (chunked) {
        char hdr[24];
        size_t hl = gy_h1_chunk_header(hdr, n);
        gy_buf_append(out, hdr, hl);
        gy_buf_append(out, p, n);
        gy_buf_append(out, "\r\n", 2);
    } else {
        gy_buf_append(out, p, n);
    }
}
