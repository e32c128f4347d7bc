#include "core/pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

struct gy_pool_block {
    struct gy_pool_block *next;
    size_t size;
    _Alignas(16) char data[];
};

struct gy_pool_cleanup {
    struct gy_pool_cleanup *next;
    void (*fn)(void *);
    void *arg;
};

#define POOL_BLOCK 4096u

void gy_pool_init(struct gy_pool *p, void *first, size_t len, size_t limit)
{
    char *start = first;
    uintptr_t a = ((uintptr_t)start + 15u) & ~(uintptr_t)15u;

    p->cur = first ? (char *)a : NULL;
    p->end = first ? start + len : NULL;
    if (p->cur > p->end)
        p->cur = p->end;
    p->blocks = NULL;
    p->cleanups = NULL;
    p->limit = limit;
    p->used = 0;
}

void gy_pool_dispose(struct gy_pool *p)
{
    while (p->cleanups != NULL) {
        struct gy_pool_cleanup *c = p->cleanups;
        p->cleanups = c->next;
        c->fn(c->arg); /* c itself lives in the pool */
    }
    while (p->blocks != NULL) {
        struct gy_pool_block *b = p->blocks;
        p->blocks = b->next;
        free(b);
    }
    p->cur = p->end = NULL;
    p->used = 0;
}

void *gy_pool_alloc(struct gy_pool *p, size_t n)
{
    n = (n + 15u) & ~(size_t)15u;
    if (p->cur != NULL && (size_t)(p->end - p->cur) >= n) {
        void *r = p->cur;
        p->cur += n;
        return r;
    }
    size_t size = n > POOL_BLOCK / 2 ? n : POOL_BLOCK;
    if (p->limit != 0 && p->used + size > p->limit)
        return NULL;
    struct gy_pool_block *b = malloc(sizeof(*b) + size);
    if (b == NULL)
        return NULL;
    b->next = p->blocks;
    b->size = size;
    p->blocks = b;
    p->used += size;
    if (size == n)
        return b->data; /* a big one-off: keep the current block for small allocations */
    p->cur = b->data + n;
    p->end = b->data + size;
    return b->data;
}

struct gy_slice gy_pool_dup(struct gy_pool *p, struct gy_slice s)
{
    char *d = gy_pool_alloc(p, s.len + 1);

    if (d == NULL)
        return GY_SLICE_NULL;
    if (s.len)
        memcpy(d, s.ptr, s.len);
    d[s.len] = '\0';
    return gy_slice(d, s.len);
}

struct gy_pool_move gy_pool_move_begin(struct gy_pool *p, struct gy_slice block)
{
    struct gy_pool_move m = { block, NULL };
    char *d = block.len ? gy_pool_alloc(p, block.len) : NULL;

    if (d != NULL) {
        memcpy(d, block.ptr, block.len);
        m.copy = d;
    }
    return m;
}

struct gy_slice gy_pool_moved(struct gy_pool *p, const struct gy_pool_move *m, struct gy_slice s)
{
    uintptr_t at = (uintptr_t)s.ptr, b = (uintptr_t)m->from.ptr;

    if (s.len == 0)
        return GY_SLICE_LIT("");
    if (m->copy != NULL && s.ptr != NULL && at >= b && s.len <= m->from.len && at - b <= m->from.len - s.len)
        return gy_slice(m->copy + (at - b), s.len);
    return gy_pool_dup(p, s);
}

int gy_pool_on_dispose(struct gy_pool *p, void (*fn)(void *), void *arg)
{
    struct gy_pool_cleanup *c = gy_pool_alloc(p, sizeof(*c));

    if (c == NULL)
        return GY_ENOMEM;
    c->fn = fn;
    c->arg = arg;
    c->next = p->cleanups;
    p->cleanups = c;
    return 0;
}
