/* rdeadline: deadline-ordered intrusive list (see rdeadline.h). */
#include "rdeadline.h"

void rdeadline_insert(struct rdeadline_list *l, struct rdeadline_item *it, int64_t at)
{
    struct rdeadline_item *after = l->tail;

    while (after && after->at > at)
        after = after->prev;
    it->at = at;
    it->prev = after;
    it->next = after ? after->next : l->head;
    if (it->next)
        it->next->prev = it;
    else
        l->tail = it;
    if (after)
        after->next = it;
    else
        l->head = it;
    it->linked = true;
    l->count++;
}

void rdeadline_remove(struct rdeadline_list *l, struct rdeadline_item *it)
{
    if (!it->linked)
        return;
    if (it->prev)
        it->prev->next = it->next;
    else
        l->head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    else
        l->tail = it->prev;
    it->prev = it->next = NULL;
    it->linked = false;
    l->count--;
}

struct rdeadline_item *rdeadline_pop_expired(struct rdeadline_list *l, int64_t now)
{
    struct rdeadline_item *it = l->head;

    if (!it || it->at > now)
        return NULL;
    rdeadline_remove(l, it);
    return it;
}
