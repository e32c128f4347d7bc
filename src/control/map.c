#include "control/map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static char tomb_marker;
#define TOMB (&tomb_marker)

static unsigned long hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return (unsigned long)(h ^ (h >> 29));
}

void ctl_map_init(struct ctl_map *m)
{
    memset(m, 0, sizeof(*m));
}

void ctl_map_dispose(struct ctl_map *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->cap; i++) {
        char *k = m->slots[i].key;
        if (k == NULL || k == TOMB)
            continue;
        if (free_val != NULL)
            free_val(m->slots[i].val);
        free(k);
    }
    free(m->slots);
    ctl_map_init(m);
}

static struct ctl_map_slot *find(const struct ctl_map *m, const char *key, unsigned long h)
{
    size_t mask = m->cap - 1;

    if (m->cap == 0)
        return NULL;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct ctl_map_slot *s = &m->slots[i];
        if (s->key == NULL)
            return NULL;
        if (s->key != TOMB && s->hash == h && strcmp(s->key, key) == 0)
            return s;
    }
}

void *ctl_map_get(const struct ctl_map *m, const char *key)
{
    struct ctl_map_slot *s = find(m, key, hash_str(key));
    return s != NULL ? s->val : NULL;
}

static int grow(struct ctl_map *m)
{
    size_t cap = m->cap ? m->cap : 16;
    struct ctl_map_slot *old = m->slots;
    size_t oldcap = m->cap;

    while (cap < 16 || (m->n + 1) * 2 > cap)
        cap *= 2;
    struct ctl_map_slot *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return GY_ENOMEM;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].key == NULL || old[i].key == TOMB)
            continue;
        size_t j = old[i].hash & (cap - 1);
        while (slots[j].key != NULL)
            j = (j + 1) & (cap - 1);
        slots[j] = old[i];
    }
    free(old);
    m->slots = slots;
    m->cap = cap;
    m->used = m->n;
    return 0;
}

int ctl_map_put(struct ctl_map *m, const char *key, void *val)
{
    unsigned long h = hash_str(key);
    struct ctl_map_slot *s = find(m, key, h);

    if (s != NULL) {
        s->val = val;
        return 0;
    }
    if ((m->used + 1) * 4 > m->cap * 3 && grow(m) != 0)
        return GY_ENOMEM;
    char *k = strdup(key);
    if (k == NULL)
        return GY_ENOMEM;
    size_t mask = m->cap - 1, i = h & mask;
    while (m->slots[i].key != NULL && m->slots[i].key != TOMB)
        i = (i + 1) & mask;
    if (m->slots[i].key == NULL)
        m->used++;
    m->slots[i] = (struct ctl_map_slot){ k, val, h };
    m->n++;
    return 0;
}

void *ctl_map_del(struct ctl_map *m, const char *key)
{
    struct ctl_map_slot *s = find(m, key, hash_str(key));
    void *v;

    if (s == NULL)
        return NULL;
    v = s->val;
    free(s->key);
    s->key = TOMB;
    s->val = NULL;
    m->n--;
    return v;
}

bool ctl_map_next(const struct ctl_map *m, size_t *pos, const char **key, void **val)
{
    for (; *pos < m->cap; (*pos)++) {
        const struct ctl_map_slot *s = &m->slots[*pos];
        if (s->key != NULL && s->key != TOMB) {
            *key = s->key;
            *val = s->val;
            (*pos)++;
            return true;
        }
    }
    return false;
}

int ctl_ptrset_add(struct ctl_ptrset *s, void *p)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->items[i] == p)
            return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        void **items = realloc(s->items, cap * sizeof(*items));
        if (items == NULL)
            return GY_ENOMEM;
        s->items = items;
        s->cap = cap;
    }
    s->items[s->n++] = p;
    return 0;
}

void ctl_ptrset_remove(struct ctl_ptrset *s, void *p)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->items[i] == p) {
            s->items[i] = s->items[--s->n];
            return;
        }
    }
}

void ctl_ptrset_dispose(struct ctl_ptrset *s)
{
    free(s->items);
    s->items = NULL;
    s->n = s->cap = 0;
}
