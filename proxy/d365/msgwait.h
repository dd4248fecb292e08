/* msgwait: GetMessageStatus polling shared by everyone asking about the same message.
 * Clients asking about one (environment, message id) join one entry with at most one
 * GetMessageStatus in flight; while any of them waits (?wait=N) the entry polls on a
 * growing interval and answers each waiter when the status is final, when its own wait
 * ends (with the last status seen) or when a poll fails.
 *   new waiter --> [fresh result (< fresh_ms)?] -- yes --> join (wait 0: answered now)
 *                          | no
 *                          v
 *                  poll in flight <--- timer (interval, growing) <--- not final,
 *                          |                                          waiters left
 *                          +--> final or error: answer all, entry freed
 * Invariant: per entry at most one upstream call at a time; every waiter's callback runs
 * exactly once unless it was cancelled first. */
#ifndef FOGATE_MSGWAIT_H
#define FOGATE_MSGWAIT_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "d365.h"

struct msgwait;
struct msgwait_waiter;

struct msgwait_opts {
    unsigned first_interval_ms;  /* pause after the first poll; 0 = 1000 */
    unsigned max_interval_ms;    /* the pause grows by half up to this; 0 = 5000 */
    unsigned fresh_ms;           /* a result this young serves a new waiter; 0 = 500 */
    size_t max_waiters;          /* over it msgwait_add refuses; 0 = 10000 */
    /* What is polled (the package API polls executions): all static; NULL = the default. */
    const char *action;          /* OData action; NULL = "GetMessageStatus" */
    const char *param;           /* its one parameter; NULL = "messageId" */
    bool (*is_final)(const char *status); /* NULL = d365parse_status_final */
    /* A failed poll that means "no status yet" (e.g. "Execution details were not found"
     * right after an export): returns the status to report instead (not final), or NULL
     * for a real failure. NULL = every failed poll is a failure. */
    const char *(*not_yet)(const struct d365_err *err);
};

/* What a waiter's callback gets (borrowed, valid during the callback). */
struct msgwait_result {
    bool ok;                     /* false: err says why (poll failed or nothing in time) */
    const char *status;          /* ok: GetMessageStatus value */
    bool final;                  /* ok: the status is final (d365parse_status_final) */
    const struct d365_err *err;  /* !ok */
};

typedef void (*msgwait_on_result)(void *arg, const struct msgwait_result *r);

/* A registry on `base` polling through `ctx` (both borrowed, must outlive it); `opts` may
 * be NULL (defaults). NULL when out of memory. */
struct msgwait *msgwait_new(struct event_base *base, struct upcall_ctx *ctx,
                            const struct msgwait_opts *opts);

/* Cancels every poll and frees every waiter without calling back. NULL is a no-op. */
void msgwait_free(struct msgwait *mw);

/* Asks for the status of message `id` (canonical GUID, or any id under 256 bytes for
 * another action) in environment `env` (both
 * copied). wait_ms 0: the current status (one poll, or a fresh shared result). Otherwise
 * the answer comes when the status is final or wait_ms has passed. The callback runs from
 * the event loop, never before this returns. Returns the waiter (valid until its callback
 * returns or msgwait_cancel), or NULL when over max_waiters or out of memory. */
struct msgwait_waiter *msgwait_add(struct msgwait *mw, const char *env, const char *id,
                                   unsigned wait_ms, msgwait_on_result cb, void *arg);

/* Withdraws a waiter (its client went away); no callback afterwards. The shared poll
 * stops when no waiter is left. Not from inside the waiter's callback. NULL is a no-op. */
void msgwait_cancel(struct msgwait_waiter *w);

/* Waiters and entries right now, and GetMessageStatus calls started since msgwait_new. */
struct msgwait_stats {
    size_t waiters;
    size_t entries;
    unsigned long polls;
};
void msgwait_stats(const struct msgwait *mw, struct msgwait_stats *out);

#endif
