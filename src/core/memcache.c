/* Size-class cache of freed blocks: see memcache.h. */
#include "core/memcache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BIG UINT32_MAX /* the class of a block too large to cache */

/* 16 bytes, so that the memory after it keeps malloc's alignment. */
struct hdr {
    uint32_t cls;
    uint32_t pad;
    size_t size; /* the usable size: the class's, or the exact size of a big block */
};

static struct hdr *hdr_of(void *p)
{
    return (struct hdr *)p - 1;
}

void gy_memcache_init(struct gy_memcache *mc, size_t max_bytes)
{
    memset(mc, 0, sizeof(*mc));
    mc->max_bytes = max_bytes;
}

void gy_memcache_dispose(struct gy_memcache *mc)
{
    for (size_t c = 0; c < GY_MEMCACHE_NCLASSES; c++) {
        while (mc->free[c] != NULL) {
            void *p = mc->free[c];
            mc->free[c] = *(void **)p;
            free(hdr_of(p));
        }
    }
    mc->cached_bytes = 0;
}

size_t gy_memcache_trim(struct gy_memcache *mc)
{
    size_t bytes = mc->cached_bytes;

    if (mc->hits != mc->hits_at_trim) {
        mc->hits_at_trim = mc->hits;
        return 0;
    }
    gy_memcache_dispose(mc);
    return bytes;
}

void *gy_memcache_alloc(struct gy_memcache *mc, size_t n)
{
    size_t cls = n == 0 ? 0 : (n - 1) / GY_MEMCACHE_STEP;
    struct hdr *h;

    if (n > GY_MEMCACHE_MAX) {
        if ((h = malloc(sizeof(*h) + n)) == NULL)
            return NULL;
        h->cls = BIG;
        h->size = n;
        return h + 1;
    }
    if (mc->free[cls] != NULL) {
        void *p = mc->free[cls];
        mc->free[cls] = *(void **)p;
        mc->cached_bytes -= hdr_of(p)->size;
        mc->hits++;
        return p;
    }
    size_t size = (cls + 1) * GY_MEMCACHE_STEP;
    if ((h = malloc(sizeof(*h) + size)) == NULL)
        return NULL;
    h->cls = (uint32_t)cls;
    h->size = size;
    return h + 1;
}

void gy_memcache_free(struct gy_memcache *mc, void *p)
{
    if (p == NULL)
        return;
    struct hdr *h = hdr_of(p);
    if (h->cls == BIG || mc->cached_bytes + h->size > mc->max_bytes) {
        free(h);
        return;
    }
    *(void **)p = mc->free[h->cls];
    mc->free[h->cls] = p;
    mc->cached_bytes += h->size;
}

void *gy_memcache_calloc(struct gy_memcache *mc, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size)
        return NULL;
    void *p = gy_memcache_alloc(mc, nmemb * size);
    if (p != NULL)
        memset(p, 0, nmemb * size);
    return p;
}

void *gy_memcache_realloc(struct gy_memcache *mc, void *p, size_t n)
{
    if (p == NULL)
        return gy_memcache_alloc(mc, n);
    struct hdr *h = hdr_of(p);
    if (n <= h->size && (h->cls != BIG || n > GY_MEMCACHE_MAX))
        return p; /* still fits its block (a big block is not shrunk into a class) */
    void *q = gy_memcache_alloc(mc, n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, n < h->size ? n : h->size);
    gy_memcache_free(mc, p);
    return q;
}
