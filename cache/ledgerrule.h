/* ledgerrule: the ack ledger's state machine as pure functions, the reference that the
 * Lua scripts in ledgerlua.c mirror (test_ledger runs both on every case and compares).
 * Invariant: a confirmed message is never handed to a consumer again. No I/O. */
#ifndef FOGATE_LEDGERRULE_H
#define FOGATE_LEDGERRULE_H

#include <stdbool.h>

/* States of one message (the diagram is at the top of ledger.h). */
enum ledger_state {
    LEDGER_S_NONE,      /* never seen (or expired) */
    LEDGER_S_LEASED,    /* handed to a consumer by `holder` until lease_until */
    LEDGER_S_DELIVERED, /* the whole body went out; still leased, not yet confirmed */
    LEDGER_S_CONFIRMED, /* the consumer acked to fogate; an outbox entry exists */
    LEDGER_S_ACKED,     /* the upstream ack succeeded */
};

/* What to do with a message a dequeue returned. */
enum ledger_verdict {
    LEDGER_NEW,                 /* first time: deliver it */
    LEDGER_REDELIVERY,          /* lease ran out unconfirmed: deliver again */
    LEDGER_DUPLICATE_CONFIRMED, /* confirmed or acked before: do not deliver, re-ack */
    LEDGER_LEASED_ELSEWHERE,    /* a live lease is held: leave it alone */
};

/* How a transition request ended. */
enum ledger_status {
    LEDGER_DONE,       /* the transition was made */
    LEDGER_ALREADY,    /* nothing to do: the message is already there (or past it) */
    LEDGER_NOT_FOUND,  /* no such message (or, for outbox calls, no outbox entry) */
    LEDGER_NOT_HOLDER, /* another instance holds the lease / outbox entry now */
};

/* What the rules read of a stored message. Strings are borrowed; "" = none. */
struct ledgerrule_entry {
    enum ledger_state state;
    const char *holder;       /* instance holding the delivery lease */
    long long lease_until_ms; /* delivery lease deadline (Redis server clock) */
    const char *ob_owner;     /* instance holding the outbox entry (CONFIRMED) */
};

/* A dequeue returned the message at now_ms: the verdict, and *next the state after. */
enum ledger_verdict ledgerrule_dequeue(const struct ledgerrule_entry *e, long long now_ms,
                                       enum ledger_state *next);

/* `instance` finished sending the body to the consumer. */
enum ledger_status ledgerrule_deliver(const struct ledgerrule_entry *e, const char *instance,
                                      enum ledger_state *next);

/* The consumer confirmed (acked to fogate). Confirming twice is ALREADY. */
enum ledger_status ledgerrule_confirm(const struct ledgerrule_entry *e,
                                      enum ledger_state *next);

/* The upstream ack succeeded (from any state that exists). */
enum ledger_status ledgerrule_ack(const struct ledgerrule_entry *e, enum ledger_state *next);

/* `instance` renews or releases its outbox entry (the state does not change). */
enum ledger_status ledgerrule_outbox(const struct ledgerrule_entry *e, const char *instance);

/* True if a due outbox entry in this state is handed out by a claim (others are dropped
 * from the outbox). */
bool ledgerrule_claimable(enum ledger_state s);

/* Stored names of states ("leased", ...; NONE is ""), and back (-1 if unknown). */
const char *ledgerrule_state_str(enum ledger_state s);
int ledgerrule_state_parse(const char *s, enum ledger_state *out);

/* Wire names shared with the Lua scripts ("new", "done", ...), and back (-1 if unknown). */
const char *ledgerrule_verdict_str(enum ledger_verdict v);
int ledgerrule_verdict_parse(const char *s, enum ledger_verdict *out);
const char *ledgerrule_status_str(enum ledger_status st);
int ledgerrule_status_parse(const char *s, enum ledger_status *out);

#endif
