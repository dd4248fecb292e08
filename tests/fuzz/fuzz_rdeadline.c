/* fuzz_rdeadline: libFuzzer target for cache/rdeadline.c. It takes no bytes from outside,
 * but every Redis command's timeout goes through it, so the input is read as a program of
 * list operations checked against a naive model (an array scanned in full).
 * Each operation is 2 bytes: op (low 2 bits) and item (next 3 bits) from the first, a
 * deadline or clock value from the second:
 *   0 insert item at deadline  1 remove item  2 pop expired at now  3 pop all at now.
 * Invariants: pops return the earliest deadline, equal deadlines in insertion order, only
 * when due; count, head and tail always agree with the model. Seeds need no name. */
#include "rdeadline.h"
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>

#define ITEMS 8

struct model {
    struct rdeadline_item it[ITEMS];
    uint64_t seq[ITEMS]; /* insertion order of linked items */
    uint64_t next_seq;
};

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_rdeadline: invariant broken: %s\n", why);
    abort();
}

/* The linked item the list must pop first, or -1. */
static int model_first(const struct model *m)
{
    int best = -1;

    for (int i = 0; i < ITEMS; i++)
        if (m->it[i].linked && (best < 0 || m->it[i].at < m->it[best].at ||
                                (m->it[i].at == m->it[best].at && m->seq[i] < m->seq[best])))
            best = i;
    return best;
}

static void check_shape(const struct rdeadline_list *l, const struct model *m)
{
    size_t linked = 0, walked = 0;
    const struct rdeadline_item *prev = NULL;

    for (int i = 0; i < ITEMS; i++)
        linked += m->it[i].linked;
    for (const struct rdeadline_item *p = l->head; p && walked <= ITEMS; p = p->next) {
        if (p->prev != prev || (prev && prev->at > p->at))
            fail("list links or order");
        prev = p;
        walked++;
    }
    int first = model_first(m);
    if (l->count != linked || walked != linked || l->tail != prev ||
        l->head != (first < 0 ? NULL : &m->it[first]))
        fail("count, head or tail disagree with the model");
}

static void pop(struct rdeadline_list *l, struct model *m, int64_t now)
{
    int want = model_first(m);
    struct rdeadline_item *got = rdeadline_pop_expired(l, now);

    if (want >= 0 && m->it[want].at <= now) {
        if (got != &m->it[want] || got->linked)
            fail("popped the wrong item");
    } else if (got) {
        fail("popped an item that was not due");
    }
}

static void step(struct rdeadline_list *l, struct model *m, uint8_t a, uint8_t b)
{
    int k = (a >> 2) & (ITEMS - 1);
    struct rdeadline_item *it = &m->it[k];

    switch (a & 3) {
    case 0:
        if (!it->linked) {
            m->seq[k] = m->next_seq++;
            rdeadline_insert(l, it, (int64_t)b);
            if (!it->linked || it->at != (int64_t)b)
                fail("insert did not link");
        }
        break;
    case 1:
        rdeadline_remove(l, it);
        if (it->linked)
            fail("remove left the item linked");
        break;
    case 2:
        pop(l, m, (int64_t)b);
        break;
    default:
        for (int i = 0; i <= ITEMS; i++)
            pop(l, m, (int64_t)b);
    }
    check_shape(l, m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct model m = { 0 };
    struct rdeadline_list l = { 0 };

    for (size_t i = 0; i + 1 < size; i += 2)
        step(&l, &m, data[i], data[i + 1]);
    return 0;
}

int replay_check(const char *name, const uint8_t *data, size_t size)
{
    return LLVMFuzzerTestOneInput(data, size);
}
