/* jobpause: jobs paused by an operator, cluster-wide. The state is one Redis hash
 * (fogate:jobs:paused, job -> {"by","at_ms"}) that every worker of every instance reads
 * every JOBPAUSE_REFRESH_MS into a local copy; requests consult the copy only, so a pause
 * is honoured everywhere within JOBPAUSE_REFRESH_MS plus one Redis command timeout.
 * Invariant: a request never waits for Redis here; while Redis is unreachable the last
 * state read stays in force (a pause is not lifted by an outage). */
#ifndef FOGATE_JOBPAUSE_H
#define FOGATE_JOBPAUSE_H

#include <stdbool.h>

#include <event2/event.h>
#include <jansson.h>

#include "conf.h"
#include "conn.h"

#define JOBPAUSE_REFRESH_MS 1000 /* how often each worker rereads the paused jobs */
#define JOBPAUSE_RETRY_AFTER_S 30 /* Retry-After of a 503 job_paused */

struct jobpause;

/* The paused-jobs view of one worker on `base` (borrowed, must outlive it), reading Redis
 * from `conf`->redis (borrowed for the call). Returns NULL when no Redis is configured
 * (nothing can be paused then) or on failure (logged). */
struct jobpause *jobpause_new(struct event_base *base, const struct conf *conf);

/* Stops the refresh, completes pending calls (their callbacks get -1) and frees.
 * NULL is a no-op. */
void jobpause_free(struct jobpause *jp);

/* True when job `name` is paused in the last state read. NULL jp: false. */
bool jobpause_paused(const struct jobpause *jp, const char *name);

/* The paused jobs as {job: {"by":..,"at_ms":..}} (a new object; {} for NULL jp). */
json_t *jobpause_list(const struct jobpause *jp);

/* 0: Redis took it (and this worker's copy is updated); -1: Redis unavailable. */
typedef void jobpause_done(void *arg, int status);

/* Pauses (paused true) or resumes job `name`, recording `who` (both copied). cb(arg, ..)
 * once, later. Returns 0, or -1 (no Redis, out of memory; cb not called). */
int jobpause_set(struct jobpause *jp, const char *name, bool paused, const char *who,
                 jobpause_done *cb, void *arg);

/* Answers `req` 503 job_paused with Retry-After for job `name` (borrowed). */
void jobpause_refuse(struct conn_req *req, const char *name);

#endif
