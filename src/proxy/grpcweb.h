/*
 * gRPC-Web (application/grpc-web, application/grpc-web-text) translated to gRPC for browser
 * clients: the content type is rewritten both ways, -text bodies are base64 decoded on the way in
 * and encoded on the way out (3-byte groups carried across chunks, padded only at the end), and
 * the upstream's trailers become a final length-prefixed frame with flag 0x80 in the body.
 */
#ifndef GY_PROXY_GRPCWEB_H
#define GY_PROXY_GRPCWEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/header.h"

enum gy_grpcweb_mode { GY_GRPCWEB_NONE, GY_GRPCWEB_BINARY, GY_GRPCWEB_TEXT };

struct gy_grpcweb {
    uint8_t mode;                /* enum gy_grpcweb_mode */
    uint8_t enc_carry[3];        /* response bytes waiting to complete a base64 group */
    uint8_t nenc;
    uint8_t dec_carry[4];        /* request characters waiting to complete a base64 group */
    uint8_t ndec;
    bool trailers_sent;
};

/* The mode for a request content-type. */
enum gy_grpcweb_mode gy_grpcweb_mode(struct gy_slice content_type);
/* "application/grpc-web-text+proto" -> "application/grpc+proto" (into out, cap >= ct.len). */
struct gy_slice gy_grpcweb_to_grpc(struct gy_slice ct, char *out, size_t cap);
/* "application/grpc+proto" -> "application/grpc-web(-text)+proto" ("+proto" when none is given). */
struct gy_slice gy_grpcweb_from_grpc(const struct gy_grpcweb *g, struct gy_slice ct, char *out, size_t cap);
/* Decodes base64 text (any chunking) into out (cap >= 3 * (n + 4) / 4); returns bytes or -1. */
long gy_grpcweb_decode(struct gy_grpcweb *g, const char *in, size_t n, uint8_t *out);
/* Encodes bytes as base64 into out (cap >= 4 * (n + 5) / 3 + 4); `final` pads the last group. */
size_t gy_grpcweb_encode(struct gy_grpcweb *g, const uint8_t *in, size_t n, bool final, char *out);
/* The trailer frame (0x80, length, "name:value\r\n"...) into out; returns its length or 0 if cap is short. */
size_t gy_grpcweb_trailer_frame(const struct gy_header *t, unsigned n, char *out, size_t cap);

#endif
