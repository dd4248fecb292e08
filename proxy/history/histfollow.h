/* histfollow: the background status follow-up of imports. A Redis sorted set
 * (fogate:hist:follow, member = record id, score = when its next poll is due) is worked
 * off by every instance: a claim moves a due member forward by a lease, so one instance
 * polls a message at a time; after a poll it is rescheduled with a growing delay, or
 * dropped when the status is final or history.follow_hours have passed since the enqueue.
 * A final status with errors fetches the execution's errors once into the record.
 * Invariant: an instance that dies while polling leaves its members to the others once the
 * lease ends; nothing here ever touches a transfer. */
#ifndef FOGATE_HISTFOLLOW_H
#define FOGATE_HISTFOLLOW_H

#include <event2/event.h>

#include "conf.h"
#include "upcall.h"

struct history;
struct histfollow;
struct rconn;

/* The follow-up on `base`, polling through `uc`, recording into `h`, queueing on `rc`
 * (all borrowed, must outlive it), history.* from `conf`. NULL on failure. */
struct histfollow *histfollow_new(struct event_base *base, struct upcall_ctx *uc,
                                  struct history *h, struct rconn *rc,
                                  const struct conf *conf);

/* A new config snapshot (borrowed). NULL f is a no-op. */
void histfollow_set_conf(struct histfollow *f, const struct conf *conf);

/* Cancels every poll in flight (their members come back after the lease) and frees f.
 * NULL is a no-op. */
void histfollow_free(struct histfollow *f);

/* Queues record `id` (an import just enqueued) for its first poll. NULL f is a no-op. */
void histfollow_add(struct histfollow *f, const char *id);

struct msgwait_opts;

/* Polls package executions with `opts` (static) from now on. NULL f is a no-op. */
void histfollow_set_exec_poll(struct histfollow *f, const struct msgwait_opts *opts);

/* Polls made and imports seen final by this worker (0 for NULL f). */
void histfollow_stats(const struct histfollow *f, unsigned long *polls, unsigned long *final);

#endif
