/* ledgerflow: the ack ledger on fogate's export paths. A dequeue checks Redis first (so a
 * message waits safely in D365 while Redis is away), dequeues, asks the ledger for a
 * verdict and skips, in a bounded loop, what must not reach a consumer (confirmed before:
 * acked upstream again; leased elsewhere: left alone). A consumer's ack is recorded as a
 * confirmation first, then acked upstream (outbox.h retries a failure).
 * Invariant: a message the ledger has as confirmed is never handed to a consumer. */
#ifndef FOGATE_LEDGERFLOW_H
#define FOGATE_LEDGERFLOW_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <jansson.h>

#include "conf.h"
#include "d365.h"
#include "upcall.h"

struct ledgerflow;
struct ledgerflow_op;

/* Builds the ledger for `conf` (borrowed during the call; conf->ledger.enabled is the
 * caller's test): its own Redis connection from conf->redis (TLS, ACL user, password from
 * file or environment), the ledger with a unique instance id, the outbox worker and the
 * gauges timer, on `base` calling D365 through `uc` (both borrowed; must outlive it).
 * Returns NULL after logging why. */
struct ledgerflow *ledgerflow_new(struct event_base *base, struct upcall_ctx *uc,
                                  const struct conf *conf);

/* Stops the timers, cancels every call and frees everything (pending operations end
 * without calling back). Before upcall_ctx_free; not from inside a callback. NULL: no-op. */
void ledgerflow_free(struct ledgerflow *lf);

/* Calls fn(arg, env, message id) after each upstream ack the outbox made (an ack that was
 * pending when its consumer confirmed). NULL fn clears it. */
void ledgerflow_set_acked_hook(struct ledgerflow *lf,
                               void (*fn)(void *arg, const char *env, const char *msg_id),
                               void *arg);

/* What a dequeue ended with (borrowed, valid during the callback). */
enum ledgerflow_kind {
    LEDGERFLOW_MESSAGE, /* deliver body: a NEW or REDELIVERY message, or one without ledger */
    LEDGERFLOW_EMPTY,   /* nothing to deliver now: answer 204 */
    LEDGERFLOW_FAILED,  /* answer err (fogate's status, code, Retry-After when set) */
};

struct ledgerflow_delivery {
    enum ledgerflow_kind kind;
    const struct d365_err *err; /* FAILED */
    const char *body;           /* MESSAGE: the original D365 dequeue body */
    size_t len;
    bool redelivery;            /* REDELIVERY: mark the response */
    unsigned deliveries;        /* deliveries so far, this one included (0 unledgered) */
    const char *id;             /* ledger id for ledgerflow_delivered; "" unledgered */
    const char *unledgered;     /* NULL, or why the ledger was not used: "unkeyed" (the
                                   body cannot be keyed) or "fail_open" (Redis down) */
};

typedef void ledgerflow_next_cb(void *arg, const struct ledgerflow_delivery *d);

/* Dequeues the next message of `activity` (canonical) in environment `env` for consumer
 * `client` (a conf client name); all copied. cb is called once, later, unless
 * ledgerflow_cancel came first. NULL when out of memory. */
struct ledgerflow_op *ledgerflow_next(struct ledgerflow *lf, const char *env,
                                      const char *activity, const char *client,
                                      ledgerflow_next_cb *cb, void *arg);

/* How a consumer's ack ended. */
enum ledgerflow_ack_kind {
    LEDGERFLOW_ACKED,       /* confirmed and acked upstream: 200 */
    LEDGERFLOW_PENDING,     /* confirmed; the upstream ack failed and is retried: 202 */
    LEDGERFLOW_ALREADY,     /* confirmed before (its upstream ack done or under way): 200 */
    LEDGERFLOW_UNKNOWN,     /* the ledger has no such message (expired, delivered without
                               the ledger), or Redis is unavailable and the ledger fails
                               open: the caller acks upstream itself */
    LEDGERFLOW_ACK_FAILED,  /* err: Redis unavailable (503) */
};

typedef void ledgerflow_ack_cb(void *arg, enum ledgerflow_ack_kind kind,
                               const struct d365_err *err);

/* The consumer `client` confirmed ledger id `id` (a blob id or a CORR id; copied). cb
 * once, later, unless ledgerflow_cancel came first. NULL when out of memory or `id` is
 * malformed. */
struct ledgerflow_op *ledgerflow_confirm(struct ledgerflow *lf, const char *id,
                                         const char *client, ledgerflow_ack_cb *cb,
                                         void *arg);

/* Stops an operation: no callback afterwards; work already handed to D365 or Redis
 * completes in the background. NULL is a no-op. */
void ledgerflow_cancel(struct ledgerflow_op *op);

/* The whole body of delivery `id` went out to the consumer (fire and forget). */
void ledgerflow_delivered(struct ledgerflow *lf, const char *id);

/* The ledger id "<env>:<activity>:corr:<guid>" for a CorrelationId (canonical GUID), in
 * out (LEDGERKEY_ID_SIZE bytes). Returns 0 or -1. Pure. */
int ledgerflow_corr_id(const char *env, const char *activity, const char *correlation,
                       char *out, size_t cap);

/* Counters, gauges and Redis health for /admin/status (a new object). */
json_t *ledgerflow_status(const struct ledgerflow *lf);

/* The ledger's numbers (borrowed, live as long as lf) and its Redis counters. */
const struct ledgerstat *ledgerflow_stat(const struct ledgerflow *lf);
const struct rconn_stats *ledgerflow_redis_stats(const struct ledgerflow *lf);

/* False when Redis is not connected now (readiness; reason in why, cap bytes). */
bool ledgerflow_ready(const struct ledgerflow *lf, char *why, size_t cap);

#endif
