/* ledgerops: an operator's actions on the ack ledger (ledger.h) and the lists behind the
 * operator page: end a delivery's lease (release), make a confirmed message's upstream
 * ack due now (retry), and list the messages waiting (unconfirmed, unacked).
 * Invariant: like ledger.h, every change is one Lua script judged by the Redis server's
 * clock; a list is read-only and bounded (LEDGEROPS_LIST_MAX per kind). */
#ifndef FOGATE_LEDGEROPS_H
#define FOGATE_LEDGEROPS_H

#include "rconn.h"

#define LEDGEROPS_LIST_MAX 200 /* most messages one list returns per kind */

/* The outcome of an action: "done", "not_found", or a state the action does not apply to
 * ("confirmed", "acked", "leased", "delivered"); NULL when Redis gave no answer. */
typedef void ledgerops_done(void *arg, const char *outcome);

/* The list as JSON text {"now_ms":..,"unconfirmed":[..],"unacked":[..]} (borrowed for the
 * call), or NULL when Redis gave no answer. */
typedef void ledgerops_list_cb(void *arg, const char *json, size_t len);

/* Ends the lease of ledger id `id` (copied) when it is leased or delivered and not yet
 * confirmed: D365's next offer of it goes to whichever consumer asks (a REDELIVERY), not
 * skipped as leased elsewhere. cb once, later. Returns 0, or -1 (cb not called). */
int ledgerops_release(struct rconn *rc, const char *id, ledgerops_done *cb, void *arg);

/* Makes the upstream ack of confirmed ledger id `id` due now and frees its outbox lease:
 * the next outbox claim of any instance acks it. cb once, later. Returns 0 or -1. */
int ledgerops_retry_ack(struct rconn *rc, const char *id, ledgerops_done *cb, void *arg);

/* The oldest `max` (1..LEDGEROPS_LIST_MAX) unconfirmed and unacked messages with their
 * fields (id, state, message_id, client, holder, deliveries, first_ms, last_dequeue_ms,
 * delivered_ms, confirmed_ms, confirmed_by, ob_attempts, due_ms). Returns 0 or -1. */
int ledgerops_list(struct rconn *rc, unsigned max, ledgerops_list_cb *cb, void *arg);

#endif
