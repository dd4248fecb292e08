/* simconnector: the recurring-integration connector API (reference §3) under
 * /api/connector/{enqueue|dequeue|download|ack|jobstatus}/{activityId}, optional /en prefix.
 * Invariant: bodies stream to and from files; nothing holds a whole message in memory. */
#ifndef SIMCONNECTOR_H
#define SIMCONNECTOR_H

#include "sim.h"

/* The route for `path` if it is a connector endpoint, else NULL. Static storage. */
const struct sim_route *simconnector_route(const char *path);

/* Import processing outcome → the DataJobState number of §3.5 for a message at `now`. */
struct simqueue_msg;
int simconnector_job_state(const struct sim *s, const struct simqueue_msg *m, double now);

/* Adds an export message whose bytes are already in `path` (ownership of the file passes to
 * the queue). Returns the message, borrowed, or NULL. */
struct simqueue_msg *simconnector_feed(struct sim *s, const char *job, const char *path,
                                       long long size);

#endif
