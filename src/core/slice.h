/* (pointer, length) views into memory we do not own; never NUL-terminated. */
#ifndef GY_CORE_SLICE_H
#define GY_CORE_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

struct gy_slice {
    const char *ptr;
    size_t len;
};

#define GY_SLICE_LIT(s) ((struct gy_slice){ (s), sizeof(s) - 1 })
#define GY_SLICE_NULL ((struct gy_slice){ NULL, 0 })
#define GY_SLICE_FMT "%.*s"
#define GY_SLICE_ARG(s) (int)(s).len, (s).ptr

static inline struct gy_slice gy_slice(const char *p, size_t n)
{
    return (struct gy_slice){ p, n };
}

static inline struct gy_slice gy_slice_cstr(const char *s)
{
    return (struct gy_slice){ s, s ? strlen(s) : 0 };
}

static inline bool gy_slice_eq(struct gy_slice a, struct gy_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* ASCII case-insensitive comparison (header names, tokens). */
static inline bool gy_slice_eqi(struct gy_slice a, struct gy_slice b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++) {
        unsigned char x = (unsigned char)a.ptr[i], y = (unsigned char)b.ptr[i];
        /* equal, or one letter in two cases (0x20 is the case bit of ASCII letters only) */
        if (x != y && ((x | 0x20) != (y | 0x20) || (unsigned)((x | 0x20) - 'a') > 'z' - 'a'))
            return false;
    }
    return true;
}

static inline bool gy_slice_eqi_cstr(struct gy_slice a, const char *b)
{
    return gy_slice_eqi(a, gy_slice_cstr(b));
}

static inline bool gy_slice_has_prefix(struct gy_slice s, struct gy_slice prefix)
{
    return s.len >= prefix.len && memcmp(s.ptr, prefix.ptr, prefix.len) == 0;
}

static inline bool gy_slice_has_suffix(struct gy_slice s, struct gy_slice suffix)
{
    return s.len >= suffix.len && memcmp(s.ptr + s.len - suffix.len, suffix.ptr, suffix.len) == 0;
}

/* Strips leading and trailing spaces and tabs (OWS). */
struct gy_slice gy_slice_trim(struct gy_slice s);

/* Parses a non-negative decimal number with no sign, spaces or overflow; -1 on any error. */
long long gy_slice_to_u63(struct gy_slice s);

#endif
