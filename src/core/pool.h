/*
 * A per-request memory pool: allocations are freed all at once when the request ends, with
 * cleanup handlers for anything else the request owns. The first block lives inside the pool
 * struct's owner allocation, so small requests allocate nothing more.
 */
#ifndef GY_CORE_POOL_H
#define GY_CORE_POOL_H

#include <stddef.h>

#include "core/slice.h"

struct gy_pool_block;
struct gy_pool_cleanup;

struct gy_pool {
    char *cur;
    char *end;
    struct gy_pool_block *blocks;    /* extra blocks, malloc'ed */
    struct gy_pool_cleanup *cleanups;
    size_t limit;                    /* max bytes of extra blocks; 0 = no limit */
    size_t used;
};

/* Uses `first` (len bytes, may be NULL/0) as the first block. */
void gy_pool_init(struct gy_pool *p, void *first, size_t len, size_t limit);
/* Runs the cleanups and frees the extra blocks; the pool can be reused after gy_pool_init. */
void gy_pool_dispose(struct gy_pool *p);
/* Returns 16-byte aligned memory or NULL (out of memory or past the limit). */
void *gy_pool_alloc(struct gy_pool *p, size_t n);
/* Copies a slice into the pool (NUL-terminated for convenience); NULL slice on failure. */
struct gy_slice gy_pool_dup(struct gy_pool *p, struct gy_slice s);
/* Moving many strings that lie in one block (a parsed head): the block is copied once, then each
 * slice is moved to the same place in the copy; a slice that did not lie in the block is copied on
 * its own. `copy` is NULL when the block could not be copied (then every slice is copied). */
struct gy_pool_move {
    struct gy_slice from;
    const char *copy;
};
struct gy_pool_move gy_pool_move_begin(struct gy_pool *p, struct gy_slice block);
struct gy_slice gy_pool_moved(struct gy_pool *p, const struct gy_pool_move *m, struct gy_slice s);
/* Registers fn(arg) to run at dispose, in reverse order of registration. Returns 0 or GY_ENOMEM. */
int gy_pool_on_dispose(struct gy_pool *p, void (*fn)(void *), void *arg);

#endif
