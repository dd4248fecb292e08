/* admin: the operators' listener (admin.listen): its own conn_server with its own route
 * table (adminroutes.c) for /metrics, /healthz, /readyz and /admin/..., never the client
 * routes and never a client API key. Runs on worker 0's event loop.
 * Invariant: every request is checked by adminauth before any handler sees it. */
#ifndef FOGATE_ADMIN_H
#define FOGATE_ADMIN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "conn.h"

struct admin;
struct budget;
struct conf;
struct history;
struct jobpause;
struct ledgerflow;
struct package;
struct token_mgr;
struct upcall_ctx;
struct adminstats;
struct adminauth_token;
struct rconn;

/* What the admin handlers read; worker 0's objects, borrowed from its app. */
struct admin_deps {
    const struct conf *conf;       /* borrowed; worker 0's current snapshot */
    struct upcall_ctx *uc;         /* borrowed */
    struct budget *budget;         /* borrowed: the D365 budget and 429 gates */
    struct token_mgr *tm;          /* borrowed */
    bool token_shared;             /* tokens shared through Redis */
    struct ledgerflow *ledger;     /* borrowed; NULL when the ledger is off */
    struct package *package;       /* borrowed */
    struct history *history;       /* borrowed; NULL when history is off */
    struct jobpause *pause;        /* borrowed; NULL without Redis */
    atomic_bool *draining;         /* borrowed from the worker pool: a drain was asked */
    struct rconn *rc;              /* the admin's own Redis connection; NULL without Redis */
    const struct adminauth_token *token; /* the admin token (digest); set by admin_new */
    unsigned workers;              /* the worker count */
    const struct adminstats *stats; /* borrowed; every worker's counters; NULL = none */
};

/* Builds the admin listener's server on `base` (borrowed) with `deps` (copied) and the
 * conn options `opt` (copied). Reads admin.token_file. Returns NULL after logging why. */
struct admin *admin_new(struct event_base *base, const struct conn_options *opt,
                        const struct admin_deps *deps);

/* Binds admin.listen; writes the bound address to `bound`. Returns 0 or -1 (errno set). */
int admin_listen(struct admin *a, char *bound, size_t bound_len);

/* A reload: the handlers see `conf` (borrowed, the app's new snapshot) from now on. */
void admin_set_conf(struct admin *a, const struct conf *conf);

/* The table of every worker's counters for /metrics (borrowed; must outlive a). */
void admin_set_stats(struct admin *a, const struct adminstats *stats);

/* The process's drain flag (borrowed; must outlive a): the drain action sets it. */
void admin_set_drain_flag(struct admin *a, atomic_bool *flag);

/* Stops accepting and closes idle connections (shutdown). */
void admin_drain(struct admin *a);

/* Closes the listener and its connections, frees. NULL is a no-op. */
void admin_free(struct admin *a);

/* GET /readyz's answer (shared with the client listener, for load balancers): 200 when
 * every environment has a token and the ledger (when on, failing closed) has Redis, and
 * no drain was asked (`draining`: 503 with status "draining"). */
void admin_readyz(struct conn_req *req, const struct conf *conf, struct token_mgr *tm,
                  struct ledgerflow *ledger, bool draining);

#endif
