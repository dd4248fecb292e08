/* simctl: the control API under /_sim/ (healthz, counters, reset, config, clock, faults,
 * export feeding). Invariant: control calls never count as D365 traffic and never fault. */
#ifndef SIMCTL_H
#define SIMCTL_H

#include "sim.h"

/* The route for `path` if it is under /_sim/, else NULL. Static storage. */
const struct sim_route *simctl_route(const char *path);

#endif
