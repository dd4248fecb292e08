/* budget: D365's service-protection limits kept by fogate, per environment identity, on one
 * worker. Every D365 call first takes a slot: a concurrency limit and a request rate over a
 * sliding window, shared by all instances through Redis with `d365_budget.shared` (a
 * semaphore of expiring leases and a window, budgetlua), or this worker's share of them
 * (budgetwin) without Redis or while it is down. Calls that must wait queue per job and
 * are served round-robin (fairq); one that gets no slot within its wait bound is refused
 * here and D365 never sees it. Also the environment's 429 gate: closed by a 429 on any
 * instance (a Redis key with D365's Retry-After), read here from a cache that a timer
 * refreshes every `gate_refresh_ms`, so the request path never waits on Redis.
 * Invariant: every lease is released exactly once; a waiter's callback runs exactly once
 * unless it was cancelled, and never from inside budget_acquire. */
#ifndef FOGATE_BUDGET_H
#define FOGATE_BUDGET_H

#include <stdint.h>

#include <jansson.h>

struct conf;
struct event_base;
struct budget;
struct budget_wait;
struct budget_lease;

/* The budget of one worker (`workers` in this instance) for `conf` (borrowed; see
 * budget_set_conf). Opens its own Redis connection when d365_budget.shared. Returns NULL
 * after logging why. */
struct budget *budget_new(struct event_base *base, const struct conf *conf, unsigned workers);

/* Points at a new config snapshot (borrowed); environments are matched by name. */
void budget_set_conf(struct budget *b, const struct conf *conf);

/* Frees everything. Every lease must have been released and every wait cancelled or
 * answered. NULL is a no-op. */
void budget_free(struct budget *b);

enum budget_verdict {
    BUDGET_GRANTED,     /* a slot: call D365, then budget_release(lease) */
    BUDGET_EXHAUSTED,   /* no slot within the wait bound: retry_after_s from now */
    BUDGET_GATED,       /* the 429 gate closed meanwhile: retry_after_s left */
};

/* `lease` is non-NULL for BUDGET_GRANTED only; the callee owns it from then on. */
typedef void budget_cb(void *arg, enum budget_verdict v, struct budget_lease *lease,
                       unsigned retry_after_s);

enum budget_start {
    BUDGET_PENDING,     /* *wait set: cb comes later, from the event loop */
    BUDGET_FREE,        /* the budget is off (or the environment unknown): call at once */
    BUDGET_FULL,        /* the job's queue is full: refused now, *retry_after_s set */
};

/* Asks for a slot of environment `env` for a call of job `job` (both borrowed during the
 * call; job NULL = ""), waiting at most `wait_ms` (capped by d365_budget.wait_ms). */
enum budget_start budget_acquire(struct budget *b, const char *env, const char *job,
                                 unsigned wait_ms, budget_cb *cb, void *arg,
                                 struct budget_wait **wait, unsigned *retry_after_s);

/* Withdraws a pending wait: no callback afterwards. NULL is a no-op. */
void budget_cancel(struct budget_wait *w);

/* Gives a slot back (the call ended). NULL is a no-op. */
void budget_release(struct budget_lease *lease);

/* Microseconds left on `env`'s 429 gate as this worker knows it (its own 429s and the
 * cluster's, cached), 0 when open. */
int64_t budget_gate_left_us(const struct budget *b, const char *env);

/* D365 answered 429 with `secs` of Retry-After: closes env's gate here at once and, when
 * shared, for every instance (only ever extends a gate). */
void budget_gate_close(struct budget *b, const char *env, unsigned secs);

/* Per environment: {"mode": "shared"|"local"|"off", "inflight", "waiting",
 * "gate_ms", "granted", "refused"} (new reference). */
json_t *budget_status(const struct budget *b);

#endif
