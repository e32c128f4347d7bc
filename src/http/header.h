/* A header field as parsed from the wire: slices into the connection's buffer. */
#ifndef GY_HTTP_HEADER_H
#define GY_HTTP_HEADER_H

#include "core/slice.h"

struct gy_header {
    struct gy_slice name;
    struct gy_slice value;
};

/* Returns the first header named `name` (case-insensitive), or NULL. */
const struct gy_header *gy_header_find(const struct gy_header *h, size_t n, struct gy_slice name);

/* Finds cookie `name` in the Cookie headers; on success sets *value and returns true. */
bool gy_header_cookie(const struct gy_header *h, size_t n, struct gy_slice name, struct gy_slice *value);

/* Finds query parameter `name` in a query string (no leading '?'); the value is not decoded. */
bool gy_query_param(struct gy_slice query, struct gy_slice name, struct gy_slice *value);

#endif
