/* simple: fogate's simple API for internal services (/v1/...), documented in
 * docs/openapi.yaml: enqueue a file, poll or wait for its status, read its errors, take
 * the next export as a streamed file, ack it.
 * Invariant: every /v1 request is answered exactly once, in fogate's error shape when it
 * fails, and everything it started (D365 calls, waits) ends when its client goes away. */
#ifndef FOGATE_SIMPLE_H
#define FOGATE_SIMPLE_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "conf.h"
#include "conn.h"
#include "upcall.h"

struct simple;

/* The simple API on `base`, calling D365 through `ctx`, with config `conf` (all borrowed;
 * they must outlive it). NULL when out of memory. */
struct simple *simple_new(struct event_base *base, struct upcall_ctx *ctx,
                          const struct conf *conf);

struct ledgerflow;

/* Uses the ack ledger `lf` (borrowed, must outlive s; NULL = none) on /next and ack. */
void simple_set_ledger(struct simple *s, struct ledgerflow *lf);

struct history;

/* Records files into `h` (borrowed, must outlive s; NULL = no history) and serves
 * /v1/history from it. */
void simple_set_history(struct simple *s, struct history *h);

/* Jobs paused by an operator (borrowed; must outlive s): a paused job's enqueue and next
 * answer 503 job_paused. NULL: none. */
struct jobpause;
void simple_set_pause(struct simple *s, struct jobpause *jp);

/* A new config snapshot (borrowed) for requests that start from now on. */
void simple_set_conf(struct simple *s, const struct conf *conf);

/* Ends every wait and call of the simple API and frees it. NULL is a no-op. */
void simple_free(struct simple *s);

/* True iff `h`'s path is under /v1 (the caller then hands the request to simple_handle). */
bool simple_owns(const struct http1_head *h);

/* The largest request body the simple API takes for `h`: limits.max_enqueue_bytes for an
 * enqueue (POST /v1/jobs/{job}/messages), limits.max_body_bytes otherwise. Pure; for a
 * router that refuses announced bodies before dispatching. */
uint64_t simple_body_limit(const struct conf *conf, const struct http1_head *h);

/* Serves a /v1 request of `client` (authenticated by the caller; borrowed from the conf
 * given last). Answers now or later; registers on_gone on `req` when it answers later. */
void simple_handle(struct simple *s, struct conn_req *req, const struct conf_client *client);

#endif
