/*
 * A per-thread cache of freed memory blocks in size classes, for a library that allocates and
 * frees many small objects per request (nghttp2: a stream, its frames, a copy of each header
 * list). glibc keeps only 7 freed blocks per size in its thread cache; past that, every free and
 * malloc goes through its bins, which costs a proxy with hundreds of streams in flight more than
 * the work itself. Blocks here carry a 16-byte header with their class; classes are 64 bytes
 * apart up to GY_MEMCACHE_MAX, larger sizes go straight to malloc. The cache holds at most
 * max_bytes of free blocks (0: cache nothing, every call goes to malloc/free: sanitizer builds,
 * so that they still see each allocation). Not thread-safe: one per worker.
 */
#ifndef GY_CORE_MEMCACHE_H
#define GY_CORE_MEMCACHE_H

#include <stddef.h>

#define GY_MEMCACHE_STEP 64
#define GY_MEMCACHE_MAX 4096
#define GY_MEMCACHE_NCLASSES (GY_MEMCACHE_MAX / GY_MEMCACHE_STEP)

struct gy_memcache {
    void *free[GY_MEMCACHE_NCLASSES];  /* a list per class, linked through the blocks */
    size_t max_bytes;
    size_t cached_bytes;               /* in the free lists */
    size_t hits;                       /* allocations served from the lists */
    size_t hits_at_trim;
};

void gy_memcache_init(struct gy_memcache *mc, size_t max_bytes);
/* Frees every cached block (blocks still in use stay valid and may be freed later). */
void gy_memcache_dispose(struct gy_memcache *mc);
/* Frees every cached block if the cache served nothing since the last call (the traffic that
 * filled it is over). Returns the bytes freed. */
size_t gy_memcache_trim(struct gy_memcache *mc);
void *gy_memcache_alloc(struct gy_memcache *mc, size_t n);
void *gy_memcache_calloc(struct gy_memcache *mc, size_t nmemb, size_t size);
void *gy_memcache_realloc(struct gy_memcache *mc, void *p, size_t n);
void gy_memcache_free(struct gy_memcache *mc, void *p);

#endif
