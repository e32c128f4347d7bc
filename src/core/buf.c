#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

void gy_bufpool_init(struct gy_bufpool *p, size_t max_free)
{
    p->free = calloc(max_free ? max_free : 1, sizeof(void *));
    p->nfree = 0;
    p->max_free = p->free ? max_free : 0;
    p->in_use = 0;
    p->low = 0;
}

void gy_bufpool_dispose(struct gy_bufpool *p)
{
    for (size_t i = 0; i < p->nfree; i++)
        free(p->free[i]);
    free(p->free);
    p->free = NULL;
    p->nfree = 0;
}

size_t gy_bufpool_trim(struct gy_bufpool *p)
{
    size_t cold = p->low < p->nfree ? p->low : p->nfree;

    /* The stack is used from the top: its bottom `cold` blocks sat unused all along. */
    for (size_t i = 0; i < cold; i++)
        free(p->free[i]);
    memmove(p->free, p->free + cold, (p->nfree - cold) * sizeof(void *));
    p->nfree -= cold;
    p->low = p->nfree;
    return cold * GY_BUF_BLOCK;
}

int gy_buf_reserve(struct gy_bufpool *p, struct gy_buf *b)
{
    if (b->data != NULL)
        return 0;
    if (p->nfree > 0) {
        b->data = p->free[--p->nfree];
        if (p->nfree < p->low)
            p->low = p->nfree;
    } else {
        b->data = malloc(GY_BUF_BLOCK);
        if (b->data == NULL)
            return GY_ENOMEM;
    }
    p->in_use++;
    b->cap = GY_BUF_BLOCK;
    b->head = b->tail = 0;
    return 0;
}

void gy_buf_release(struct gy_bufpool *p, struct gy_buf *b)
{
    if (b->data == NULL)
        return;
    if (b->cap == GY_BUF_BLOCK && p->nfree < p->max_free)
        p->free[p->nfree++] = b->data;
    else
        free(b->data);
    p->in_use--;
    b->data = NULL;
    b->cap = b->head = b->tail = 0;
}

int gy_buf_grow(struct gy_bufpool *p, struct gy_buf *b, uint32_t cap)
{
    char *n;

    if (b->data == NULL)
        return gy_buf_reserve(p, b) == 0 && cap > GY_BUF_BLOCK ? gy_buf_grow(p, b, cap) : 0;
    if (cap <= b->cap)
        return 0;
    n = malloc(cap);
    if (n == NULL)
        return GY_ENOMEM;
    memcpy(n, b->data + b->head, b->tail - b->head);
    b->tail -= b->head;
    b->head = 0;
    if (b->cap == GY_BUF_BLOCK && p->nfree < p->max_free)
        p->free[p->nfree++] = b->data;
    else
        free(b->data);
    b->data = n;
    b->cap = cap;
    return 0;
}
