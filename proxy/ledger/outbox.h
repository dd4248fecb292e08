/* outbox: the ack ledger's upstream-ack worker. A confirmed message is acked to D365 with
 * its latest dequeue body; success marks it acked in the ledger, failure gives the outbox
 * entry back with a capped, jittered delay. A periodic claim hands this instance the due
 * entries of any instance (its own failures, or those of an instance that died).
 * Invariant: one upstream ack in flight per ledger id in this process; while it runs, the
 * entry's lease is renewed, so no other instance acks it at the same time. */
#ifndef FOGATE_OUTBOX_H
#define FOGATE_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "conf.h"
#include "upcall.h"

struct ledger;
struct outbox;
struct outbox_job;

/* Local counters of this process. */
struct outbox_counts {
    unsigned long long acks_ok;      /* upstream acks that succeeded */
    unsigned long long acks_failed;  /* upstream acks that failed (retried later) */
    unsigned long long claimed;      /* entries handed out by claims */
    size_t in_flight;                /* jobs running now */
};

/* The worker on `base`, acking through `uc` and recording in `l` (all borrowed; they
 * must outlive it), tuned by `lc` (copied). Claims every lc->outbox_interval_ms once
 * outbox_start ran. NULL when out of memory. */
struct outbox *outbox_new(struct event_base *base, struct upcall_ctx *uc, struct ledger *l,
                          const struct conf_ledger *lc);

/* Starts the periodic claim. Returns 0 or -1. */
int outbox_start(struct outbox *ob);

/* Stops the timers and cancels the upstream acks; jobs waiting for Redis are detached and
 * end in their callback (rconn_free completes them). Callers' callbacks are not called.
 * NULL is a no-op. */
void outbox_free(struct outbox *ob);

/* Called once when a job ends: acked (true) or given back for a later retry (false). */
typedef void outbox_done_cb(void *arg, bool acked);

/* Acks ledger id `id` upstream with `body` (`len` bytes; both copied); this instance must
 * hold the entry (a confirm DONE, a DUPLICATE_CONFIRMED verdict or a claim). `attempts`
 * (>= 1) sets the retry delay on failure. cb may be NULL. Returns the job (valid until
 * cb or outbox_forget), or NULL when the id is malformed, already in flight here (cb is
 * then not called: the running job finishes it) or memory ran out. */
struct outbox_job *outbox_ack(struct outbox *ob, const char *id, const char *body, size_t len,
                              unsigned attempts, outbox_done_cb *cb, void *arg);

/* The caller of outbox_ack went away: its cb is not called; the job goes on. */
void outbox_forget(struct outbox_job *j);

/* Called after each upstream ack D365 took, with the environment and the message id (the
 * CorrelationId of the acked body); `arg` borrowed. */
typedef void outbox_acked_hook(void *arg, const char *env, const char *msg_id);

/* Sets (or with NULL clears) the hook of `ob`. */
void outbox_set_acked_hook(struct outbox *ob, outbox_acked_hook *fn, void *arg);

/* Fills *out. */
void outbox_get_counts(const struct outbox *ob, struct outbox_counts *out);

/* Splits a ledger id "<env>:<activity>:..." into env (cap bytes) and the activity GUID
 * (GUID_CANON_SIZE bytes). Returns 0, or -1 when the id has no such shape. Pure. */
int outbox_id_scope(const char *id, char *env, size_t cap, char *activity);

#endif
