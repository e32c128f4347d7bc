/* Intrusive circular doubly-linked lists (the list head is a node that links to itself). */
#ifndef GY_CORE_LIST_H
#define GY_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct gy_list {
    struct gy_list *prev, *next;
};

#define GY_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void gy_list_init(struct gy_list *l)
{
    l->prev = l->next = l;
}

static inline bool gy_list_empty(const struct gy_list *l)
{
    return l->next == l;
}

/* True if the node is linked into some list (nodes are kept self-linked when unlinked). */
static inline bool gy_list_linked(const struct gy_list *n)
{
    return n->next != n;
}

static inline void gy_list_insert_tail(struct gy_list *head, struct gy_list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void gy_list_insert_head(struct gy_list *head, struct gy_list *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}

static inline void gy_list_remove(struct gy_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* Moves every node of `from` to the end of `to`; `from` becomes empty. */
static inline void gy_list_splice_tail(struct gy_list *to, struct gy_list *from)
{
    if (gy_list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    gy_list_init(from);
}

#endif
