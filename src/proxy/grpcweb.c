/* gRPC-Web translation helpers: see grpcweb.h. */
#include "proxy/grpcweb.h"

#include <string.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

enum gy_grpcweb_mode gy_grpcweb_mode(struct gy_slice ct)
{
    if (gy_slice_has_prefix(ct, GY_SLICE_LIT("application/grpc-web-text")))
        return GY_GRPCWEB_TEXT;
    if (gy_slice_has_prefix(ct, GY_SLICE_LIT("application/grpc-web")))
        return GY_GRPCWEB_BINARY;
    return GY_GRPCWEB_NONE;
}

static struct gy_slice join(const char *a, struct gy_slice rest, char *out, size_t cap)
{
    size_t n = strlen(a);

    if (n + rest.len > cap)
        return gy_slice_cstr(a);
    memcpy(out, a, n);
    memcpy(out + n, rest.ptr, rest.len);
    return gy_slice(out, n + rest.len);
}

struct gy_slice gy_grpcweb_to_grpc(struct gy_slice ct, char *out, size_t cap)
{
    size_t skip = gy_grpcweb_mode(ct) == GY_GRPCWEB_TEXT ? 25 : 20;

    return join("application/grpc", gy_slice(ct.ptr + skip, ct.len - skip), out, cap);
}

struct gy_slice gy_grpcweb_from_grpc(const struct gy_grpcweb *g, struct gy_slice ct, char *out, size_t cap)
{
    struct gy_slice rest = gy_slice_has_prefix(ct, GY_SLICE_LIT("application/grpc")) ? gy_slice(ct.ptr + 16, ct.len - 16)
                                                                                     : GY_SLICE_NULL;

    if (rest.len == 0)
        rest = GY_SLICE_LIT("+proto"); /* what browsers' gRPC-Web clients expect (as Envoy does) */
    return join(g->mode == GY_GRPCWEB_TEXT ? "application/grpc-web-text" : "application/grpc-web", rest, out, cap);
}

static int b64_value(char c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '+' || c == '-' ? 62
           : c == '/' || c == '_' ? 63
           : c == '=' ? 64 : -1;
}

long gy_grpcweb_decode(struct gy_grpcweb *g, const char *in, size_t n, uint8_t *out)
{
    long k = 0;

    for (size_t i = 0; i < n; i++) {
        if (in[i] == '\r' || in[i] == '\n')
            continue;
        if (b64_value(in[i]) < 0)
            return -1;
        g->dec_carry[g->ndec++] = (uint8_t)in[i];
        if (g->ndec < 4)
            continue;
        int v[4];
        for (int j = 0; j < 4; j++)
            v[j] = b64_value((char)g->dec_carry[j]);
        g->ndec = 0;
        if (v[0] == 64 || v[1] == 64)
            return -1;
        out[k++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
        if (v[2] != 64)
            out[k++] = (uint8_t)((v[1] & 15) << 4 | v[2] >> 2);
        if (v[2] != 64 && v[3] != 64)
            out[k++] = (uint8_t)((v[2] & 3) << 6 | v[3]);
    }
    return k;
}

static size_t group(const uint8_t *p, size_t n, char *out)
{
    uint32_t v = (uint32_t)p[0] << 16 | (n > 1 ? (uint32_t)p[1] << 8 : 0) | (n > 2 ? p[2] : 0);

    out[0] = b64[v >> 18];
    out[1] = b64[(v >> 12) & 63];
    out[2] = n > 1 ? b64[(v >> 6) & 63] : '=';
    out[3] = n > 2 ? b64[v & 63] : '=';
    return 4;
}

size_t gy_grpcweb_encode(struct gy_grpcweb *g, const uint8_t *in, size_t n, bool final, char *out)
{
    size_t k = 0, i = 0;

    while (g->nenc > 0 && g->nenc < 3 && i < n)
        g->enc_carry[g->nenc++] = in[i++];
    if (g->nenc == 3) {
        k += group(g->enc_carry, 3, out + k);
        g->nenc = 0;
    }
    for (; i + 3 <= n; i += 3)
        k += group(in + i, 3, out + k);
    while (i < n)
        g->enc_carry[g->nenc++] = in[i++];
    if (final && g->nenc > 0) {
        k += group(g->enc_carry, g->nenc, out + k);
        g->nenc = 0;
    }
    return k;
}

size_t gy_grpcweb_trailer_frame(const struct gy_header *t, unsigned n, char *out, size_t cap)
{
    size_t len = 5;

    for (unsigned i = 0; i < n; i++) {
        if (len + t[i].name.len + t[i].value.len + 3 > cap)
            return 0;
        for (size_t j = 0; j < t[i].name.len; j++) {
            char c = t[i].name.ptr[j];
            out[len++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        out[len++] = ':';
        memcpy(out + len, t[i].value.ptr, t[i].value.len);
        len += t[i].value.len;
        out[len++] = '\r';
        out[len++] = '\n';
    }
    if (cap < 5)
        return 0;
    uint32_t body = (uint32_t)(len - 5);
    out[0] = (char)0x80;
    out[1] = (char)(body >> 24);
    out[2] = (char)(body >> 16);
    out[3] = (char)(body >> 8);
    out[4] = (char)body;
    return len;
}
