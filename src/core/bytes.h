/* A growable, NUL-terminated byte string with a hard cap: bodies read from HTTP peers. */
#ifndef GY_CORE_BYTES_H
#define GY_CORE_BYTES_H

#include <stdbool.h>
#include <stddef.h>

struct gy_bytes {
    char *p;        /* NULL until the first byte; always NUL-terminated after it */
    size_t len;
    size_t max;     /* appending past it fails and sets too_big */
    bool too_big;
};

/* Appends n bytes; false (nothing appended) past max or out of memory. */
bool gy_bytes_append(struct gy_bytes *b, const void *p, size_t n);
/* A libcurl write callback (CURLOPT_WRITEFUNCTION, with the gy_bytes as CURLOPT_WRITEDATA). */
size_t gy_bytes_curl_write(char *ptr, size_t size, size_t n, void *arg);
void gy_bytes_free(struct gy_bytes *b);

#endif
