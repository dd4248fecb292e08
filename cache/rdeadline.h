/* rdeadline: an intrusive list kept in deadline order, so one timer serves every pending
 * Redis command. Invariant: the head has the earliest deadline; equal deadlines keep
 * insertion order. Pure logic: no clock, no I/O, no allocation. */
#ifndef FOGATE_RDEADLINE_H
#define FOGATE_RDEADLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Embed in the object that has a deadline. `at` is in the caller's clock unit. */
struct rdeadline_item {
    struct rdeadline_item *prev; /* borrowed: list neighbour */
    struct rdeadline_item *next; /* borrowed: list neighbour */
    int64_t at;
    bool linked;
};

struct rdeadline_list {
    struct rdeadline_item *head; /* borrowed: earliest deadline */
    struct rdeadline_item *tail; /* borrowed: latest deadline */
    size_t count;
};

/* Links `it` (not linked yet) with deadline `at`. Walks from the tail, so inserting
 * deadlines that only grow (one timeout for all commands) is O(1). */
void rdeadline_insert(struct rdeadline_list *l, struct rdeadline_item *it, int64_t at);

/* Unlinks `it`; a no-op if it is not linked. O(1). */
void rdeadline_remove(struct rdeadline_list *l, struct rdeadline_item *it);

/* Unlinks and returns the head if its deadline is <= now, else returns NULL. */
struct rdeadline_item *rdeadline_pop_expired(struct rdeadline_list *l, int64_t now);

#endif
