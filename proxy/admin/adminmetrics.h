/* adminmetrics: GET /metrics in the Prometheus text format 0.0.4: the whole process in
 * one scrape. Counters of every worker are summed; gauges are combined as documented in
 * docs/operations.md (open connections summed, Redis up = the lowest, gate until = the
 * latest); token and ledger cluster figures are worker 0's view (the ledger's come from
 * Redis and are the same on every instance: families named fogate_ledger_cluster_*).
 * Invariant: every label value comes from a fixed set or from the config, never from a
 * request, so the series count is bounded by the config. */
#ifndef FOGATE_ADMINMETRICS_H
#define FOGATE_ADMINMETRICS_H

#include <stddef.h>

#include "admin.h"

#define ADMINMETRICS_MAX (8u << 20) /* an exposition larger than this is refused */

/* Renders the exposition of everything `d` reaches. Returns a malloc'd text the caller
 * frees and its length in *len, or NULL when out of memory or over ADMINMETRICS_MAX. */
char *adminmetrics_render(const struct admin_deps *d, size_t *len);

#endif
