#include "core/bytes.h"

#include <stdlib.h>
#include <string.h>

bool gy_bytes_append(struct gy_bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->max) {
        b->too_big = true;
        return false;
    }
    char *np = realloc(b->p, b->len + n + 1);
    if (np == NULL)
        return false;
    memcpy(np + b->len, p, n);
    b->p = np;
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

size_t gy_bytes_curl_write(char *ptr, size_t size, size_t n, void *arg)
{
    return gy_bytes_append(arg, ptr, size * n) ? size * n : 0;
}

void gy_bytes_free(struct gy_bytes *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
}
