/*
 * A string-keyed hash map of pointers (open addressing, linear probing, tombstones) for the
 * control plane's indexes: views by proxy, dependency sets, nodes. Keys are copied; values are
 * the caller's. Not thread-safe: used on the control loop only.
 */
#ifndef GY_CONTROL_MAP_H
#define GY_CONTROL_MAP_H

#include <stdbool.h>
#include <stddef.h>

struct ctl_map_slot {
    char *key;      /* NULL: empty; CTL_MAP_TOMB: deleted */
    void *val;
    unsigned long hash;
};

struct ctl_map {
    struct ctl_map_slot *slots;
    size_t cap;     /* a power of two, or 0 */
    size_t n;       /* live entries */
    size_t used;    /* live + tombstones */
};

void ctl_map_init(struct ctl_map *m);
/* Frees the keys (and each value with free_val when not NULL). */
void ctl_map_dispose(struct ctl_map *m, void (*free_val)(void *));
void *ctl_map_get(const struct ctl_map *m, const char *key);
/* Inserts or replaces; returns 0 or GY_ENOMEM. */
int ctl_map_put(struct ctl_map *m, const char *key, void *val);
/* Removes the key; returns its value (NULL if absent). */
void *ctl_map_del(struct ctl_map *m, const char *key);

/* Iteration: for (size_t i = 0; ctl_map_next(m, &i, &k, &v);) ... (no inserts while iterating). */
bool ctl_map_next(const struct ctl_map *m, size_t *pos, const char **key, void **val);

/* A set of pointers, small and unordered (dependency sets of views). */
struct ctl_ptrset {
    void **items;
    size_t n, cap;
};

int ctl_ptrset_add(struct ctl_ptrset *s, void *p);   /* no-op if present */
void ctl_ptrset_remove(struct ctl_ptrset *s, void *p);
void ctl_ptrset_dispose(struct ctl_ptrset *s);

#endif
