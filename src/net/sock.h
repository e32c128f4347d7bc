/* Sockets: address parsing and formatting, listeners, non-blocking connects. */
#ifndef GY_NET_SOCK_H
#define GY_NET_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define GY_ADDRSTRLEN 64 /* "[ipv6]:port" */

/* Parses "IP:PORT", "[IPv6]:PORT" or ":PORT"/"PORT" (→ 0.0.0.0). Numeric only. Returns 0 or GY_EINVAL. */
int gy_addr_parse(const char *s, struct sockaddr_storage *out, socklen_t *len);
/* Fills an address from a numeric ip (IPv4 or IPv6) and port. */
int gy_addr_from_ip(const char *ip, unsigned port, struct sockaddr_storage *out, socklen_t *len);
/* "1.2.3.4:80" / "[::1]:80" */
void gy_addr_format(const struct sockaddr *sa, char *out, size_t cap);
/* Just the IP ("1.2.3.4", "::1"). */
void gy_addr_format_ip(const struct sockaddr *sa, char *out, size_t cap);
unsigned gy_addr_port(const struct sockaddr *sa);
/* A numeric IPv4 or IPv6 address. */
bool gy_is_ip(const char *s);
/* A DNS name: labels of letters, digits, '-' and '_' (1..63 bytes), dot-separated, an optional
 * final dot, 253 bytes at most (n: the length of s). */
bool gy_is_dns_name(const char *s, size_t n);

/* A non-blocking listening socket. reuseport: SO_REUSEPORT so each worker can have its own.
 * Returns the fd, or a negative GY_E* with errno kept. */
int gy_listen(const struct sockaddr *sa, socklen_t len, bool reuseport, int backlog);

/* Starts a non-blocking connect; returns the fd (connection in progress or done) or < 0. */
int gy_connect(const struct sockaddr *sa, socklen_t len);

/* After a non-blocking connect: 0 if connected, else the errno (SO_ERROR). */
int gy_connect_result(int fd);

/* Raises RLIMIT_NOFILE to its hard limit; returns the new soft limit. */
long gy_raise_nofile(void);

#endif
