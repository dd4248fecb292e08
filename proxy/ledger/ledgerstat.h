/* ledgerstat: the ack ledger's numbers for /admin/status and the logs: this process's
 * counters, and the cluster-wide counters and ages read from Redis every
 * stats_interval_ms, with a warning log line when the oldest unconfirmed or unacked
 * message gets near D365's 30-minute re-offer (warn_unacked_s).
 * Invariant: reading the gauges never blocks a request; a failed read keeps the last one. */
#ifndef FOGATE_LEDGERSTAT_H
#define FOGATE_LEDGERSTAT_H

#include <event2/event.h>
#include <jansson.h>

#include "conf.h"

struct ledger;
struct ledgerstat;

/* What this process counts. */
enum ledgerstat_counter {
    LS_NEW,              /* NEW messages delivered */
    LS_REDELIVERED,      /* REDELIVERY messages delivered (marked) */
    LS_DUPLICATE,        /* DUPLICATE_CONFIRMED: suppressed and acked again */
    LS_LEASED_ELSEWHERE, /* skipped: another consumer holds it */
    LS_UNKEYED,          /* delivered without the ledger: body cannot be keyed */
    LS_FAIL_OPEN,        /* delivered without the ledger: Redis unavailable, fail_open */
    LS_REFUSED,          /* dequeues refused 503: Redis unavailable, fail closed */
    LS_DELIVERED,        /* whole bodies out (mark_delivered sent) */
    LS_CONFIRMED,        /* consumer confirmations recorded */
    LS_N_COUNTERS
};

/* Reads `l` (borrowed, must outlive it) every lc->stats_interval_ms on `base`. NULL when
 * out of memory. */
struct ledgerstat *ledgerstat_new(struct event_base *base, struct ledger *l,
                                  const struct conf_ledger *lc);

/* Stops the timer; a read still in flight ends harmlessly. NULL is a no-op. */
void ledgerstat_free(struct ledgerstat *st);

/* Adds one to counter c. */
void ledgerstat_count(struct ledgerstat *st, enum ledgerstat_counter c);

/* {"local": {...}, "cluster": {...} or null, "cluster_age_ms": n} (a new object). */
json_t *ledgerstat_json(const struct ledgerstat *st);

#endif
