/* package: the package API (/v1/packages/..., /v1/executions/...): import a data package
 * in one call (GetAzureWriteUrl, Put Blob, ImportFromPackage), export one
 * (ExportToPackage), an execution's status (shared polls, ?wait=), its package and its
 * errors. Documented in docs/openapi.yaml. Clients reach a package job (conf: a job with
 * `project`) only if it is one of theirs, as for recurring jobs.
 * Invariant: ImportFromPackage runs at most once at a time per environment (in this
 * process, or across every instance sharing Redis with packages.shared) and is never sent
 * twice; a SAS URL's query never reaches a log or an error. */
#ifndef FOGATE_PACKAGE_H
#define FOGATE_PACKAGE_H

#include <stdbool.h>

#include <event2/event.h>

#include "conf.h"
#include "conn.h"
#include "http1.h"
#include "statcell.h"
#include "upcall.h"
#include "upstream.h"

struct package;
struct rconn_stats;

/* The package API on `base`, calling D365 through `ctx` and blob storage through `up`
 * (no bearer token), with config `conf` (all borrowed; they must outlive it). NULL when
 * out of memory. */
struct package *package_new(struct event_base *base, struct upcall_ctx *ctx,
                            struct upstream *up, const struct conf *conf);

struct history;

/* Records package imports into `h` (borrowed, must outlive p; NULL = none) and lets its
 * follow-up poll their executions. */
void package_set_history(struct package *p, struct history *h);

/* A new config snapshot (borrowed) for requests that start from now on. */
void package_set_conf(struct package *p, const struct conf *conf);

/* Cancels every call and wait (imports queued or in flight included) and frees `p`.
 * NULL is a no-op. */
void package_free(struct package *p);

/* True iff `h`'s path is under /v1/packages or /v1/executions. */
bool package_owns(const struct http1_head *h);

/* True iff `h` is a package import (its body limit is limits.max_package_bytes). */
bool package_is_import(const struct http1_head *h);

/* Serves a package API request of `client` (authenticated by the caller; borrowed from
 * the conf given last). Answers now or later. */
void package_handle(struct package *p, struct conn_req *req, const struct conf_client *client);

/* What the package API counts (statcell.h: written by the worker, read by proxy/admin). */
struct packagestats {
    statcell imports_started;    /* ImportFromPackage sent */
    statcell exports_started;    /* ExportToPackage started an execution */
    statcell lock_waits;         /* imports that waited for their environment's turn */
    statcell lock_timeouts;      /* imports refused: the turn did not come in time */
    statcell replays;            /* Idempotency-Key replays answered without a new import */
};

/* The package API's counters (borrowed, live as long as p). */
const struct packagestats *package_stats(const struct package *p);

/* Its Redis connection's counters (packages.shared), or NULL. */
const struct rconn_stats *package_redis_stats(const struct package *p);

#endif
