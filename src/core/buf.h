/*
 * Byte buffers with a hard capacity, taken from a per-worker pool of fixed-size blocks and given
 * back when empty, so that an idle connection holds no buffer. A buffer may be grown once to a
 * larger, separately allocated block (a request head bigger than a block), up to a limit.
 */
#ifndef GY_CORE_BUF_H
#define GY_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GY_BUF_BLOCK 16384u

struct gy_bufpool {
    void **free;            /* cached blocks */
    size_t nfree;
    size_t max_free;
    size_t in_use;          /* blocks handed out (for /stats and leak checks) */
    size_t low;             /* fewest cached blocks since the last trim */
};

/* Valid bytes are data[head..tail). */
struct gy_buf {
    char *data;
    uint32_t cap;
    uint32_t head;
    uint32_t tail;
};

void gy_bufpool_init(struct gy_bufpool *p, size_t max_free);
void gy_bufpool_dispose(struct gy_bufpool *p);
/* Frees the cached blocks no one took since the last call (the cache's low-water mark), so that
 * memory taken by a burst goes back once the burst is over. Returns the bytes freed. */
size_t gy_bufpool_trim(struct gy_bufpool *p);

/* Makes sure b has storage; returns 0 or GY_ENOMEM. */
int gy_buf_reserve(struct gy_bufpool *p, struct gy_buf *b);
/* Gives the storage back (the content is dropped). */
void gy_buf_release(struct gy_bufpool *p, struct gy_buf *b);
/* Releases the storage if the buffer holds no bytes. */
static inline void gy_buf_release_if_empty(struct gy_bufpool *p, struct gy_buf *b)
{
    if (b->data != NULL && b->head == b->tail)
        gy_buf_release(p, b);
}
/* Grows the buffer's capacity to `cap` bytes (keeping its content); GY_ENOMEM on failure. */
int gy_buf_grow(struct gy_bufpool *p, struct gy_buf *b, uint32_t cap);

static inline size_t gy_buf_len(const struct gy_buf *b)
{
    return b->tail - b->head;
}

static inline char *gy_buf_start(const struct gy_buf *b)
{
    return b->data + b->head;
}

/* Room at the end, after moving the content to the front when that helps. */
static inline size_t gy_buf_room(struct gy_buf *b)
{
    if (b->data == NULL)
        return 0;
    if (b->head == b->tail) {
        b->head = b->tail = 0;
    } else if (b->head > 0 && b->cap - b->tail < b->cap / 4) {
        memmove(b->data, b->data + b->head, b->tail - b->head);
        b->tail -= b->head;
        b->head = 0;
    }
    return b->cap - b->tail;
}

static inline void gy_buf_consume(struct gy_buf *b, size_t n)
{
    b->head += (uint32_t)n;
    if (b->head == b->tail)
        b->head = b->tail = 0;
}

/* Appends up to n bytes; returns how many fit. */
static inline size_t gy_buf_append(struct gy_buf *b, const void *src, size_t n)
{
    size_t room = gy_buf_room(b);
    if (n > room)
        n = room;
    if (n == 0)
        return 0;
    memcpy(b->data + b->tail, src, n);
    b->tail += (uint32_t)n;
    return n;
}

#endif
