/* ipcount: linear probing with backward-shift deletion (no tombstones), so lookups stay
 * short however many addresses come and go. The table has at least twice as many slots as
 * entries it may hold, a power of two. */
#include "ipcount.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct slot {
    struct ipcount_key key;
    unsigned count;            /* 0: empty */
    bool marked;               /* ipcount_mark */
};

struct ipcount {
    size_t mask;               /* slots - 1 */
    size_t max_entries;
    size_t entries;
    struct slot *slots;        /* owned */
};

void ipcount_key_of(const struct sockaddr *sa, struct ipcount_key *k)
{
    memset(k, 0, sizeof *k);
    if (sa->sa_family == AF_INET6) {
        memcpy(k->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    } else if (sa->sa_family == AF_INET) {
        k->b[10] = k->b[11] = 0xff;
        memcpy(k->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    }
}

struct ipcount *ipcount_new(size_t max_entries)
{
    struct ipcount *t = calloc(1, sizeof *t);
    size_t slots = 16;

    if (!t)
        return NULL;
    while (slots < 2 * max_entries && slots < ((size_t)1 << 40))
        slots <<= 1;
    t->slots = calloc(slots, sizeof *t->slots);
    if (!t->slots) {
        free(t);
        return NULL;
    }
    t->mask = slots - 1;
    t->max_entries = max_entries;
    return t;
}

void ipcount_free(struct ipcount *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t);
}

/* FNV-1a: the table is private and per process, and a client cannot choose its address
 * freely enough to aim at one chain of a table twice the cap's size. */
static size_t hash(const struct ipcount_key *k)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (int i = 0; i < 16; i++)
        h = (h ^ k->b[i]) * 0x100000001b3ULL;
    return (size_t)(h ^ (h >> 32));
}

/* The key's slot, or the empty slot where it would go. */
static size_t find(const struct ipcount *t, const struct ipcount_key *k)
{
    size_t i = hash(k) & t->mask;

    while (t->slots[i].count && memcmp(&t->slots[i].key, k, sizeof *k) != 0)
        i = (i + 1) & t->mask;
    return i;
}

unsigned ipcount_get(const struct ipcount *t, const struct ipcount_key *k)
{
    return t->slots[find(t, k)].count;
}

unsigned ipcount_add(struct ipcount *t, const struct ipcount_key *k)
{
    struct slot *s = &t->slots[find(t, k)];

    if (s->count == 0) {
        if (t->entries >= t->max_entries)
            return 0;
        s->key = *k;
        s->marked = false;
        t->entries++;
    }
    return ++s->count;
}

/* Empties slot i and moves later members of its cluster back so no lookup breaks. */
static void remove_at(struct ipcount *t, size_t i)
{
    size_t j = i;

    for (;;) {
        t->slots[i].count = 0;
        for (;;) {
            j = (j + 1) & t->mask;
            if (!t->slots[j].count)
                return;
            size_t home = hash(&t->slots[j].key) & t->mask;
            /* j may move to i unless its home lies cyclically in (i, j] */
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
                break;
        }
        t->slots[i] = t->slots[j];
        i = j;
    }
}

bool ipcount_mark(struct ipcount *t, const struct ipcount_key *k)
{
    struct slot *s = &t->slots[find(t, k)];

    if (!s->count || s->marked)
        return false;
    s->marked = true;
    return true;
}

unsigned ipcount_sub(struct ipcount *t, const struct ipcount_key *k)
{
    size_t i = find(t, k);

    if (!t->slots[i].count)
        return 0;
    if (--t->slots[i].count > 0)
        return t->slots[i].count;
    t->entries--;
    remove_at(t, i);
    return 0;
}
