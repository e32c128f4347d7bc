/*
 * The gRPC Health v1 check as an I/O-free exchange: one HTTP/2 (prior knowledge, h2c) client
 * session that sends `POST /grpc.health.v1.Health/Check` with a HealthCheckRequest{service} and
 * reads the HealthCheckResponse. The caller moves bytes: gy_hc_grpc_output() for what to send,
 * gy_hc_grpc_input() with what came back. Used by health.c on the main thread.
 */
#ifndef GY_PROXY_HEALTH_GRPC_H
#define GY_PROXY_HEALTH_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gy_hc_grpc;

/* Starts a session and queues the connection preface, SETTINGS and the request. NULL when out
 * of memory or when `service` is longer than 1 KiB. */
struct gy_hc_grpc *gy_hc_grpc_new(const char *authority, const char *service);
void gy_hc_grpc_free(struct gy_hc_grpc *g);

/* Bytes to send next (valid until the next call on g); *len = 0 when there are none.
 * Returns 0 or a negative GY_E* code. */
int gy_hc_grpc_output(struct gy_hc_grpc *g, const uint8_t **data, size_t *len);

/* Feeds bytes from the server. Returns GY_EAGAIN while the answer is incomplete, 0 when the
 * server answered SERVING, or GY_EPARSE / GY_EIO with gy_hc_grpc_why() saying why it is not
 * healthy (a protocol error, a reset stream, an HTTP or grpc-status error, NOT_SERVING). */
int gy_hc_grpc_input(struct gy_hc_grpc *g, const uint8_t *in, size_t len);

/* reuse_connection: whether the session can carry another call (the last one ended, the
 * server said no GOAWAY and nothing went wrong); gy_hc_grpc_again() queues that call, after which
 * output/input work as for the first. Between calls, what the server sends (PING, SETTINGS,
 * WINDOW_UPDATE) goes to gy_hc_grpc_idle_input(), and its answers to gy_hc_grpc_output();
 * GY_ECLOSED means the session is over (GOAWAY, a protocol error). */
bool gy_hc_grpc_reusable(const struct gy_hc_grpc *g);
int gy_hc_grpc_again(struct gy_hc_grpc *g);
int gy_hc_grpc_idle_input(struct gy_hc_grpc *g, const uint8_t *in, size_t len);

/* The connection closed: the verdict if the answer was complete, else GY_EIO. */
int gy_hc_grpc_eof(struct gy_hc_grpc *g);

const char *gy_hc_grpc_why(const struct gy_hc_grpc *g);

/* Encodes HealthCheckRequest{service} (protobuf field 1, length-delimited) behind the 5-byte gRPC
 * message prefix into out[0..cap); returns the length, or 0 if it does not fit. */
size_t gy_hc_grpc_encode_request(const char *service, uint8_t *out, size_t cap);

/* Decodes the `status` field (1, varint) of a HealthCheckResponse message (without the gRPC
 * prefix); unknown fields are skipped. Returns the status (0 UNKNOWN, 1 SERVING, 2 NOT_SERVING,
 * 3 SERVICE_UNKNOWN; 0 when absent) or GY_EPARSE. */
int gy_hc_grpc_decode_status(const uint8_t *msg, size_t len);

#endif
