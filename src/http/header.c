#include "http/header.h"

const struct gy_header *gy_header_find(const struct gy_header *h, size_t n, struct gy_slice name)
{
    for (size_t i = 0; i < n; i++)
        if (gy_slice_eqi(h[i].name, name))
            return &h[i];
    return NULL;
}

/* Walks "a=1; b=2" pairs separated by `sep`, returning the value of `name`. */
static bool find_pair(struct gy_slice s, char sep, struct gy_slice name, struct gy_slice *value)
{
    if (s.len == 0)
        return false;
    const char *p = s.ptr, *end = s.ptr + s.len;

    while (p < end) {
        const char *item_end = memchr(p, sep, (size_t)(end - p));
        if (item_end == NULL)
            item_end = end;
        struct gy_slice item = gy_slice_trim(gy_slice(p, (size_t)(item_end - p)));
        const char *eq = memchr(item.ptr, '=', item.len);
        if (eq != NULL) {
            struct gy_slice k = gy_slice_trim(gy_slice(item.ptr, (size_t)(eq - item.ptr)));
            if (gy_slice_eq(k, name)) {
                *value = gy_slice(eq + 1, (size_t)(item.ptr + item.len - eq - 1));
                return true;
            }
        } else if (gy_slice_eq(item, name)) {
            *value = gy_slice(item.ptr + item.len, 0);
            return true;
        }
        p = item_end + 1;
    }
    return false;
}

bool gy_header_cookie(const struct gy_header *h, size_t n, struct gy_slice name, struct gy_slice *value)
{
    for (size_t i = 0; i < n; i++) {
        if (gy_slice_eqi_cstr(h[i].name, "cookie") && find_pair(h[i].value, ';', name, value)) {
            if (value->len >= 2 && value->ptr[0] == '"' && value->ptr[value->len - 1] == '"')
                *value = gy_slice(value->ptr + 1, value->len - 2);
            return true;
        }
    }
    return false;
}

bool gy_query_param(struct gy_slice query, struct gy_slice name, struct gy_slice *value)
{
    return find_pair(query, '&', name, value);
}
