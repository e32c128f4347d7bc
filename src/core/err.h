/* Error codes: 0 is success, negative GY_E* are failures. One table, one message each. */
#ifndef GY_CORE_ERR_H
#define GY_CORE_ERR_H

#define GY_ERRNO_MAP(X)                                            \
    X(EAGAIN, "not yet: need more input or the resource is busy") \
    X(ENOMEM, "out of memory")                                     \
    X(EINVAL, "invalid argument")                                  \
    X(EPARSE, "malformed input")                                   \
    X(ETOOBIG, "input exceeds a configured limit")                 \
    X(ENOTFOUND, "not found")                                      \
    X(EEXIST, "already exists")                                    \
    X(EIO, "input/output error")                                   \
    X(ECLOSED, "connection closed")                                \
    X(ETIMEDOUT, "timed out")                                      \
    X(ECANCELED, "cancelled")                                      \
    X(ECONFIG, "invalid configuration")                            \
    X(EUNSUPPORTED, "not supported")

enum {
    GY_OK = 0,
#define GY_ERR_ENUM(name, msg) GY_##name,
    GY_ERR_FIRST_ = -1000,
    GY_ERRNO_MAP(GY_ERR_ENUM)
#undef GY_ERR_ENUM
    GY_ERR_LAST_
};

/* Returns a static message for a GY_E* code (or "success" for 0). */
const char *gy_strerror(int code);

#endif
