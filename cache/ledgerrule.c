/* ledgerrule: the ledger's transition rules (see ledgerrule.h). Every branch here has its
 * twin in ledgerlua.c; test_ledger checks the two agree case by case. */
#include "ledgerrule.h"

#include <string.h>

static bool same(const char *a, const char *b)
{
    return a && b && a[0] && strcmp(a, b) == 0;
}

static bool unconfirmed(enum ledger_state s)
{
    return s == LEDGER_S_LEASED || s == LEDGER_S_DELIVERED;
}

enum ledger_verdict ledgerrule_dequeue(const struct ledgerrule_entry *e, long long now_ms,
                                       enum ledger_state *next)
{
    *next = e->state;
    if (e->state == LEDGER_S_NONE) {
        *next = LEDGER_S_LEASED;
        return LEDGER_NEW;
    }
    if (!unconfirmed(e->state)) {
        *next = LEDGER_S_CONFIRMED; /* an ACKED message that comes back is re-acked */
        return LEDGER_DUPLICATE_CONFIRMED;
    }
    if (e->lease_until_ms > now_ms)
        return LEDGER_LEASED_ELSEWHERE; /* even if this instance holds it: another request */
    *next = LEDGER_S_LEASED;
    return LEDGER_REDELIVERY;
}

enum ledger_status ledgerrule_deliver(const struct ledgerrule_entry *e, const char *instance,
                                      enum ledger_state *next)
{
    *next = e->state;
    if (e->state == LEDGER_S_NONE)
        return LEDGER_NOT_FOUND;
    if (!unconfirmed(e->state))
        return LEDGER_ALREADY;
    if (!same(e->holder, instance))
        return LEDGER_NOT_HOLDER;
    if (e->state == LEDGER_S_DELIVERED)
        return LEDGER_ALREADY;
    *next = LEDGER_S_DELIVERED;
    return LEDGER_DONE;
}

enum ledger_status ledgerrule_confirm(const struct ledgerrule_entry *e,
                                      enum ledger_state *next)
{
    *next = e->state;
    if (e->state == LEDGER_S_NONE)
        return LEDGER_NOT_FOUND;
    if (!unconfirmed(e->state))
        return LEDGER_ALREADY;
    *next = LEDGER_S_CONFIRMED;
    return LEDGER_DONE;
}

enum ledger_status ledgerrule_ack(const struct ledgerrule_entry *e, enum ledger_state *next)
{
    *next = e->state;
    if (e->state == LEDGER_S_NONE)
        return LEDGER_NOT_FOUND;
    if (e->state == LEDGER_S_ACKED)
        return LEDGER_ALREADY;
    *next = LEDGER_S_ACKED;
    return LEDGER_DONE;
}

enum ledger_status ledgerrule_outbox(const struct ledgerrule_entry *e, const char *instance)
{
    if (e->state == LEDGER_S_ACKED)
        return LEDGER_ALREADY;
    if (e->state != LEDGER_S_CONFIRMED)
        return LEDGER_NOT_FOUND;
    return same(e->ob_owner, instance) ? LEDGER_DONE : LEDGER_NOT_HOLDER;
}

bool ledgerrule_claimable(enum ledger_state s)
{
    return s == LEDGER_S_CONFIRMED;
}

static const char *const state_names[] = { "", "leased", "delivered", "confirmed", "acked" };
static const char *const verdict_names[] = { "new", "redelivery", "duplicate", "leased" };
static const char *const status_names[] = { "done", "already", "not_found", "not_holder" };

/* Index of s in names[0..n), or -1. */
static int find(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

const char *ledgerrule_state_str(enum ledger_state s)
{
    return (unsigned)s <= LEDGER_S_ACKED ? state_names[s] : "?";
}

int ledgerrule_state_parse(const char *s, enum ledger_state *out)
{
    int i = find(state_names, 5, s);
    if (i >= 0)
        *out = (enum ledger_state)i;
    return i >= 0 ? 0 : -1;
}

const char *ledgerrule_verdict_str(enum ledger_verdict v)
{
    return (unsigned)v <= LEDGER_LEASED_ELSEWHERE ? verdict_names[v] : "?";
}

int ledgerrule_verdict_parse(const char *s, enum ledger_verdict *out)
{
    int i = find(verdict_names, 4, s);
    if (i >= 0)
        *out = (enum ledger_verdict)i;
    return i >= 0 ? 0 : -1;
}

const char *ledgerrule_status_str(enum ledger_status st)
{
    return (unsigned)st <= LEDGER_NOT_HOLDER ? status_names[st] : "?";
}

int ledgerrule_status_parse(const char *s, enum ledger_status *out)
{
    int i = find(status_names, 4, s);
    if (i >= 0)
        *out = (enum ledger_status)i;
    return i >= 0 ? 0 : -1;
}
