/*
 * Transports under a connection: raw TCP, or TLS (src/tls/). Connections read and write through
 * a transport so that HTTP/1, HTTP/2 and the proxy logic never know which one they use.
 * A NULL transport means raw TCP on the fd.
 */
#ifndef GY_NET_TRANSPORT_H
#define GY_NET_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct gy_transport;

struct gy_transport_ops {
    /* Reads up to len bytes: > 0 bytes read, 0 at EOF, GY_EAGAIN when nothing is there now,
     * another negative GY_E* on error. *more is set when the transport holds more bytes already
     * (TLS records decrypted but not yet read), which edge-triggered epoll will not announce. */
    ssize_t (*read)(struct gy_transport *t, int fd, void *buf, size_t len, bool *more);
    /* Writes up to len bytes: > 0 bytes written, GY_EAGAIN when the socket is full, < 0 on error. */
    ssize_t (*write)(struct gy_transport *t, int fd, const void *buf, size_t len);
    /* Drives the handshake: 0 when done, GY_EAGAIN when it waits for I/O (*want_write tells which
     * direction), another negative GY_E* when it failed. */
    int (*handshake)(struct gy_transport *t, int fd, bool *want_write);
    /* The peer reset the connection before the handshake finished: counts it; nothing more is
     * read, computed or sent (optional). */
    void (*abort_handshake)(struct gy_transport *t);
    /* Sends the close notification (best effort, non-blocking). */
    void (*shutdown)(struct gy_transport *t, int fd);
    void (*destroy)(struct gy_transport *t);
};

struct gy_transport {
    const struct gy_transport_ops *ops;
};

#endif
