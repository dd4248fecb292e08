/* histreceipt: signed receipts to jobs' callback_url, worked off a Redis queue by every
 * instance (fogate:hist:receipts, member "<record id>:<status>", score = when due). A
 * record of a job with a callback queues its receipt when it turns final (histlua PUT),
 * an export delivered and not confirmed within receipts.unconfirmed_s queues one with
 * status "unconfirmed". A claim moves a due member ahead by a lease (so one instance
 * sends it at a time; after a crash another takes it over); a 2xx answer removes it; a
 * failure reschedules it with a growing delay, up to receipts.max_attempts.
 * Invariant: at least once per member; each member is queued once (NX), so a receiver
 * sees each final status once unless an instance dies between its 2xx and the removal. */
#ifndef FOGATE_HISTRECEIPT_H
#define FOGATE_HISTRECEIPT_H

#include <event2/event.h>

#include "conf.h"

struct history;
struct histreceipt;
struct rconn;

/* The sender on `base`, recording into `h`, queueing on `rc` (borrowed, must outlive
 * it), the key read now from conf->receipts.key_file. NULL on failure (logged). */
struct histreceipt *histreceipt_new(struct event_base *base, struct history *h,
                                    struct rconn *rc, const struct conf *conf);

/* A new config snapshot (borrowed). NULL hr is a no-op. */
void histreceipt_set_conf(struct histreceipt *hr, const struct conf *conf);

/* Aborts the POSTs in flight (their members come back after the lease), wipes the key and
 * frees hr. NULL is a no-op. */
void histreceipt_free(struct histreceipt *hr);

/* Export record `id` was delivered: its "unconfirmed" receipt is due after
 * receipts.unconfirmed_s unless it is confirmed by then (queued once). */
void histreceipt_unconfirmed(struct histreceipt *hr, const char *id);

/* Receipts delivered (2xx) and given up by this worker. */
void histreceipt_stats(const struct histreceipt *hr, unsigned long *sent,
                       unsigned long *given_up);

#endif
