/* ledgerlua: the Lua scripts that move ledger entries atomically in Redis; each mirrors a
 * rule of ledgerrule.c. Invariant: time is the Redis server's (TIME), so every instance
 * judges leases by one clock. The scripts touch keys derived from outbox members, so the
 * ledger needs one Redis (with replicas if wanted), not Redis Cluster.
 *
 * Message scripts (DEQUEUE, DELIVER, CONFIRM, ACK, OUTBOX) all take
 *   KEYS: 1 message hash, 2 alias key, 3 stats hash, 4 outbox zset, 5 unconfirmed zset,
 *         6 unacked zset
 *   ARGV: 1 id kind ("blob"/"corr"), 2 message key prefix, 3 id, 4 ttl ms, 5 instance,
 *         6 "1" to refresh the TTLs of keys 3-6 (else "0": only keys it may have created
 *         get one), then per script:
 *     DEQUEUE 7 body, 8 correlation, 9 pop receipt, 10 client, 11 lease ms, 12 outbox lease ms
 *             -> {verdict, id, deliveries, holder, lease_left_ms, body or ""}
 *     DELIVER -> {status, id, ""}
 *     CONFIRM 7 client, 8 outbox lease ms -> {status, id, body on "done" else ""}
 *     ACK     -> {status, id, ""}
 *     OUTBOX  7 "renew"/"release", 8 ms (new lease / delay before due) -> {status, id, ""}
 * A CORR id whose alias key exists is redirected to the id stored there (the blob id).
 * CLAIM  KEYS: stats, outbox, unconfirmed, unacked
 *        ARGV: 1 message key prefix, 2 ttl ms, 3 instance, 4 max entries, 5 lease ms
 *        -> {id, body, attempts, id, body, attempts, ...}
 * STATS  KEYS: stats, outbox, unconfirmed, unacked; ARGV: 1 message key prefix
 *        -> {outbox, unconfirmed, oldest unconfirmed age ms, unacked, oldest unacked age
 *            ms, {counter name, value, ...}}
 * Stored hash fields: state, body, corr, pop, holder, client, lease_until, first_ms,
 * last_dequeue_ms, dequeues, deliveries, delivered_ms, confirmed_ms, confirmed_by,
 * acked_ms, ob_owner, ob_attempts. */
#ifndef FOGATE_LEDGERLUA_H
#define FOGATE_LEDGERLUA_H

struct rconn_script;

enum ledgerlua_id {
    LEDGERLUA_DEQUEUE,
    LEDGERLUA_DELIVER,
    LEDGERLUA_CONFIRM,
    LEDGERLUA_ACK,
    LEDGERLUA_OUTBOX,
    LEDGERLUA_CLAIM,
    LEDGERLUA_STATS,
    LEDGERLUA_COUNT
};

/* The script (static storage, SHA1 precomputed; test_ledger checks each SHA1 against
 * rconn_script_init so they cannot drift). NULL if id is out of range. */
const struct rconn_script *ledgerlua_script(enum ledgerlua_id id);

#endif
