/* adminstats: where /metrics finds every worker's counters: one row per worker of
 * borrowed pointers to the stats structs each layer keeps (front, d365, ledger, packages,
 * Redis). The wiring fills it once the apps exist; admin only reads through it.
 * Invariant: the table and everything it points to outlive the admin listener (the
 * worker threads are joined before any app is freed). */
#ifndef FOGATE_ADMINSTATS_H
#define FOGATE_ADMINSTATS_H

#include "connstats.h"
#include "d365stats.h"
#include "ledgerstat.h"
#include "package.h"
#include "rconn.h"
#include "upstream.h"

enum adminstats_redis { ADMINSTATS_REDIS_TOKENS, ADMINSTATS_REDIS_LEDGER,
                        ADMINSTATS_REDIS_PACKAGES, ADMINSTATS_REDIS_N };

struct adminstats_worker {
    const struct connstats *front;          /* borrowed */
    const struct d365stats *d365;           /* borrowed */
    const struct ledgerstat *ledger;        /* borrowed; NULL when the ledger is off */
    const struct packagestats *packages;    /* borrowed */
    const struct upstream *upstream;        /* borrowed: read with upstream_started only */
    const struct rconn_stats *redis[ADMINSTATS_REDIS_N]; /* borrowed; NULL = none */
};

struct adminstats {
    const char *const *route_names;         /* borrowed (static): route index -> label */
    unsigned n_routes;
    unsigned n;                             /* workers */
    struct adminstats_worker w[];
};

/* A table for `n` workers, rows zeroed. NULL when out of memory. Free with free(). */
struct adminstats *adminstats_new(unsigned n, const char *const *route_names,
                                  unsigned n_routes);

/* The client label of a Redis connection ("tokens", "ledger", "packages"). */
const char *adminstats_redis_name(unsigned i);

#endif
