/* ledger: the ack ledger. Keeps the state of every D365 export message in Redis, shared
 * by all fogate instances, so that each export reaches a consumer at least once and never
 * again after the consumer confirmed it. Invariant: a state changes only inside one Lua
 * script (ledgerlua.c), judged by the Redis server's clock; every call's callback runs
 * exactly once.
 *
 *                  dequeue: NEW
 *   (none) ------------------------> LEASED --mark_delivered--> DELIVERED
 *                                    |  ^  (holder, client,         |
 *          dequeue, lease live:      |  |   lease_until)            |
 *          LEASED_ELSEWHERE <--------+  +--- dequeue, lease over: --+
 *          (left alone)              |       REDELIVERY             |
 *                                    +-----------+------------------+
 *                                      confirm   |  (consumer acked to fogate; outbox
 *                                                v   entry leased to the confirming instance)
 *          dequeue: DUPLICATE_CONFIRMED ---> CONFIRMED <--- outbox: claim / renew / release
 *          (re-ack with the new body)          |   ^
 *                                   mark_acked |   | dequeue again: DUPLICATE_CONFIRMED
 *                                              v   | (the upstream ack did not stick)
 *                                             ACKED
 *
 * Identity (ledgerkey.h): the blob GUID of DownloadLocation, scoped by environment and
 * activity; the CorrelationId only when there is no blob GUID. A redelivery is recognised
 * with the same or a new CorrelationId. Every dequeue stores its ORIGINAL body bytes
 * (the latest one wins: it carries the PopReceipt an upstream ack must send back).
 *
 * Keys (prefix P, default "fogate:"), all with a TTL of retention + margin: a message's
 * keys refreshed on every write, the four index keys when a call creates them and at
 * least once a second by each instance that writes: P"ledger:m:"<id> (hash),
 * P"ledger:alias:"<env>:<activity>:<correlation> (-> blob id), P"ledger:outbox" (zset id -> due ms), P"ledger:unconfirmed" and
 * P"ledger:unacked" (zsets id -> last dequeue ms, for the age gauges), P"ledger:stats"
 * (hash of counters). Nothing secret is stored: bodies are D365 dequeue bodies (no
 * token), names are instance and client names; no header ever reaches this module.
 * Needs a single Redis (replicas fine), not Redis Cluster.
 *
 * What the proxy does with each outcome (fogate's decisions):
 *   NEW                  deliver the body.
 *   REDELIVERY           deliver it, marked with a response header; count it.
 *   DUPLICATE_CONFIRMED  do not deliver; ack upstream with the returned body (its outbox
 *                        entry is leased to this instance), then mark_acked, or
 *                        outbox_release with a backoff if the ack fails; dequeue the next
 *                        (bounded loop; at the bound answer 204, the next poll goes on).
 *   LEASED_ELSEWHERE     do not deliver and do not ack: skip to the next message (bounded
 *                        loop). The holder's consumer still has it; if it never confirms,
 *                        D365 offers it again and the lease will be over by then.
 *   err != LEDGER_OK     fail closed (503 + Retry-After) by default, or fail open
 *                        (deliver, counted) if so configured.
 * Recommended: lease_ms below D365's 30-minute visibility timeout (e.g. 20 minutes), so a
 * message that was never confirmed is redelivered on D365's first re-offer. */
#ifndef FOGATE_LEDGER_H
#define FOGATE_LEDGER_H

#include <stddef.h>

#include "ledgerkey.h"
#include "ledgerrule.h"

struct rconn;
struct ledger;

#define LEDGER_NAME_MAX 128 /* instance and client names: 1..128 of [A-Za-z0-9_.:-] */
#define LEDGER_CLAIM_MAX 100 /* most outbox entries one claim hands out */

struct ledger_opts {
    const char *prefix;        /* copied; NULL = "fogate:"; up to 64 of [A-Za-z0-9_.:-] */
    const char *instance;      /* copied; this instance's id (unique per process),
                                  LEDGER_NAME_MAX chars */
    int timeout_ms;            /* every call's timeout; <= 0 = the connection's default */
    long long retention_ms;    /* D365 blob retention; 0 = 7 days */
    long long margin_ms;       /* kept this long past retention; 0 = 1 day */
    unsigned outbox_lease_ms;  /* how long an outbox entry stays with the instance that
                                  confirmed or claimed it; 0 = 60000 */
    unsigned refresh_ms;       /* the index keys' TTLs are refreshed by at most one call in
                                  this long (the first call refreshes them); 0 = 1000 */
};

/* Why a call did not reach a verdict. Anything but LEDGER_OK comes with a NULL result.
 * After an error the script may still have run (e.g. Redis answered after the timeout),
 * and nothing is lost either way: a repeated mark_delivered/confirm/mark_acked/release
 * says ALREADY or NOT_HOLDER (a confirm that was applied leaves its outbox entry to the
 * outbox loop); entries a lost claim leased come due again after outbox_lease_ms; and a
 * dequeue recorded without its verdict is leased to this instance until lease_ms, after
 * which D365's next re-offer is a REDELIVERY. Do not repeat on_dequeue for the same body. */
enum ledger_err {
    LEDGER_OK,
    LEDGER_ERR_TIMEOUT,     /* no answer within timeout_ms (Redis slow or stopped) */
    LEDGER_ERR_UNAVAILABLE, /* not connected, connection lost, or too many in flight */
    LEDGER_ERR_REPLY,       /* Redis answered with an error or an unexpected shape */
    LEDGER_ERR_CANCELLED,   /* the rconn was freed while the call was pending */
};

struct ledger_dequeue_result {
    enum ledger_verdict verdict;
    const char *id;          /* the ledger id to use in later calls: k->id, or for a CORR
                                id the blob id it is an alias of. Borrowed (callback only) */
    unsigned deliveries;     /* NEW/REDELIVERY: deliveries so far, this one included;
                                LEASED_ELSEWHERE: the holder's count */
    const char *holder;      /* LEASED_ELSEWHERE: the instance holding the lease; else "" */
    long long lease_left_ms; /* LEASED_ELSEWHERE: time left on that lease; else 0 */
    const char *body;        /* DUPLICATE_CONFIRMED: the stored body (= the one just
                                passed in) to ack upstream with; else NULL. Borrowed */
    size_t body_len;
};

struct ledger_result {
    enum ledger_status status;
    const char *id;   /* the resolved ledger id (see ledger_dequeue_result). Borrowed */
    const char *body; /* confirm with DONE: the latest dequeue body, to ack upstream with;
                         else NULL. Borrowed (callback only) */
    size_t body_len;
};

/* One outbox entry handed to this instance. Strings borrowed (callback only). */
struct ledger_claim {
    const char *id;
    const char *body; /* latest dequeue body: send it as the upstream ack body */
    size_t body_len;
    unsigned attempts; /* claims of this entry so far, this one included */
};

/* Cluster-wide numbers (from Redis). Ages are 0 when nothing is waiting. */
struct ledger_stats {
    long long new_messages;          /* NEW verdicts */
    long long redeliveries;          /* REDELIVERY verdicts */
    long long duplicates_suppressed; /* DUPLICATE_CONFIRMED verdicts */
    long long leased_elsewhere;      /* LEASED_ELSEWHERE verdicts */
    long long fallback_ids;          /* dequeues keyed by CorrelationId (no blob GUID) */
    long long confirmed;             /* first confirmations */
    long long confirm_repeats;       /* confirmations of an already confirmed message */
    long long acked;                 /* messages marked acked */
    long long outbox_depth;          /* confirmed, not yet acked */
    long long unconfirmed;           /* leased or delivered, not yet confirmed */
    long long oldest_unconfirmed_ms; /* age since the last dequeue of the oldest of those:
                                        alert well before 30 minutes (D365 re-offers) */
    long long unacked;               /* = outbox entries, by last dequeue time */
    long long oldest_unacked_ms;     /* age since the last dequeue, confirmed-not-acked */
};

/* `r` is NULL iff err != LEDGER_OK. */
typedef void ledger_dequeue_cb(void *arg, enum ledger_err err,
                               const struct ledger_dequeue_result *r);
typedef void ledger_done_cb(void *arg, enum ledger_err err, const struct ledger_result *r);
/* `n` entries (0 when none are due, or on error). */
typedef void ledger_claim_cb(void *arg, enum ledger_err err, const struct ledger_claim *e,
                             size_t n);
typedef void ledger_stats_cb(void *arg, enum ledger_err err, const struct ledger_stats *s);

/* Creates the ledger on `conn` (borrowed; must outlive it, and rconn_free completes
 * pending calls with LEDGER_ERR_CANCELLED). Returns NULL on bad options or no memory. */
struct ledger *ledger_new(struct rconn *conn, const struct ledger_opts *opts);

/* Frees the ledger. Pending calls still complete (their callbacks never touch the
 * ledger). NULL is a no-op. */
void ledger_free(struct ledger *l);

/* Every call below returns 0 (cb will be called exactly once, later, never from inside
 * the call) or -1 (bad arguments, no memory, connection being freed; cb is never
 * called). Ids are ledger ids (struct ledgerkey.id or a result's id). */

/* A dequeue returned `body` (len bytes, borrowed for the call; must parse to `k`, with a
 * PopReceipt) for `client`: records it and reaches a verdict (ledgerrule_dequeue). NEW
 * and REDELIVERY lease it to this instance for lease_ms (>= 1). */
int ledger_on_dequeue(struct ledger *l, const struct ledgerkey *k, const char *body,
                      size_t len, const char *client, unsigned lease_ms, ledger_dequeue_cb *cb,
                      void *arg);

/* ledger_on_dequeue for a body not parsed yet: keys it once (ledgerkey_parse for `env`
 * and `activity`) instead of the caller parsing it and ledger_on_dequeue again. Returns 0
 * (cb later), -1 (as ledger_on_dequeue), or -2 when ledgerkey_parse refuses the body or
 * the env/activity (cb is never called). *why, when not NULL, gets the parse's result. */
int ledger_on_dequeue_body(struct ledger *l, const char *env, const char *activity,
                           const char *body, size_t len, const char *client, unsigned lease_ms,
                           enum ledgerkey_err *why, ledger_dequeue_cb *cb, void *arg);

/* The whole body went out to the consumer. DONE; ALREADY (delivered, confirmed or acked);
 * NOT_HOLDER (the lease ran out and another instance re-leased it); NOT_FOUND. */
int ledger_mark_delivered(struct ledger *l, const char *id, ledger_done_cb *cb, void *arg);

/* The consumer `client` confirmed (acked to fogate); `id` may be a CORR id (the alias is
 * followed). DONE: recorded, with an outbox entry leased to this instance for
 * outbox_lease_ms, and the body to ack upstream with; ALREADY: confirmed before (counted
 * as a repeat, nothing else changes); NOT_FOUND: never seen or expired. */
int ledger_confirm(struct ledger *l, const char *id, const char *client, ledger_done_cb *cb,
                   void *arg);

/* The upstream ack succeeded: ACKED, removed from the outbox. DONE, ALREADY, NOT_FOUND. */
int ledger_mark_acked(struct ledger *l, const char *id, ledger_done_cb *cb, void *arg);

/* Leases up to `max` (1..LEDGER_CLAIM_MAX) due outbox entries to this instance for
 * outbox_lease_ms. An entry whose holder stopped renewing becomes due when its lease
 * runs out, so whichever instance is alive retries it. */
int ledger_outbox_claim(struct ledger *l, unsigned max, ledger_claim_cb *cb, void *arg);

/* Extends this instance's lease on an outbox entry by outbox_lease_ms from now (call it
 * while an upstream ack takes long). DONE; NOT_HOLDER (another instance has it now);
 * ALREADY (acked); NOT_FOUND (no outbox entry). */
int ledger_outbox_renew(struct ledger *l, const char *id, ledger_done_cb *cb, void *arg);

/* Gives an outbox entry back after a failed upstream ack, due again in delay_ms (the
 * caller's backoff). Same statuses as renew. */
int ledger_outbox_release(struct ledger *l, const char *id, unsigned delay_ms,
                          ledger_done_cb *cb, void *arg);

/* Reads the counters and gauges. */
int ledger_stats(struct ledger *l, ledger_stats_cb *cb, void *arg);

/* A short stable name for err ("ok", "timeout", ...). */
const char *ledger_err_str(enum ledger_err err);

#endif
