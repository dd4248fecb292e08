/* routes: maps a client request to its handler: /healthz, /readyz (for load balancers),
 * the connector pass-through ([/en]/api/connector/{op}/{activityId}), /data/..., the simple
 * and package APIs. /metrics and /admin/... are never here: the admin listener
 * (proxy/admin) serves them. Invariant: every route but /healthz and /readyz
 * authenticates the client first, and a client reaches only its own jobs and environments. */
#ifndef FOGATE_ROUTES_H
#define FOGATE_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "conn.h"

struct conf;
struct ledgerflow;
struct package;
struct simple;
struct token_mgr;
struct upcall_ctx;

/* What the handlers need (all borrowed from the app for the duration of the call). */
struct budget;

struct routes_deps {
    const struct conf *conf;
    struct upcall_ctx *uc;
    struct budget *budget;         /* the D365 budget and 429 gates */
    struct token_mgr *tm;
    struct simple *simple;         /* the simple API (/v1/...) */
    struct package *package;       /* the package API (/v1/packages, /v1/executions) */
    struct ledgerflow *ledger;     /* the ack ledger; NULL when not enabled */
    struct history *history;       /* the file history; NULL when not enabled */
    struct jobpause *pause;        /* paused jobs; NULL when there is no Redis */
    bool draining;                 /* an operator asked this instance to drain */
};

/* Handles one request (answers it, or hands it to a handler that answers later). */
void routes_dispatch(const struct routes_deps *d, struct conn_req *req);

enum routes_op { ROUTES_ENQUEUE, ROUTES_DEQUEUE, ROUTES_ACK, ROUTES_JOBSTATUS, ROUTES_DOWNLOAD };

/* The metrics' route label of each route index (conn_req_set_route), index 0 = a path no
 * route took ("other"); `*n` gets the count. Static. */
const char *const *routes_names(unsigned *n);

/* Parses a connector path (`path`, `len` bytes, no query): optional "/en", then
 * "/api/connector/<op>/<activityId>". Returns 0 with *op and the id slice, or -1. Pure. */
int routes_parse_connector(const char *path, size_t len, enum routes_op *op, const char **id,
                           size_t *id_len);

/* The methods a /data path (`path`, `len` bytes, no query) allows, as an Allow value
 * (static string): "GET, HEAD" for /data and $metadata, "POST" for $batch and actions,
 * "GET, HEAD, POST, PATCH, PUT, DELETE" for entity paths. Pure. */
const char *routes_data_allow(const char *path, size_t len);


#endif
