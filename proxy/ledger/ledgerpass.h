/* ledgerpass: the pass-through connector routes (/api/connector/dequeue|ack/{activity})
 * when the ack ledger is on: a dequeue goes through ledgerflow's loop (Redis first,
 * duplicates suppressed, redeliveries marked) and answers D365's body with its
 * DownloadLocation rewritten; an ack is a consumer confirmation (ledger first, then D365).
 * Invariant: each request is answered exactly once, and a client that leaves cancels
 * what it started (work already handed to Redis or D365 completes in the background). */
#ifndef FOGATE_LEDGERPASS_H
#define FOGATE_LEDGERPASS_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "conn.h"
#include <stdbool.h>

#include "ledgerflow.h"
#include "upcall.h"

/* GET dequeue of `job` (borrowed from the conf of the request) for `client`; download
 * links are rewritten to `public_base_url` (copied). Headers on a delivery:
 * X-Fogate-Redelivery: true (a redelivery), X-Fogate-Delivery-Count, X-Fogate-Ledger
 * (unkeyed | fail_open when the ledger was not used). 503 ledger_unavailable with
 * Retry-After when Redis is down and the ledger fails closed. */
void ledgerpass_dequeue(struct ledgerflow *lf, struct conn_req *req, const struct conf_job *job,
                        const struct conf_client *client, const char *public_base_url);

/* Told once when a consumer's ack through the ledger is confirmed: export `msg_id`
 * (canonical CorrelationId) of `job` in `env`, by `client`; `acked`: D365 took the upstream
 * ack too (otherwise the outbox will). Strings are borrowed for the call. */
typedef void ledgerpass_confirmed_fn(void *arg, const char *env, const char *job,
                                     const char *msg_id, const char *client, bool acked);

struct ledgerpass_hook {
    ledgerpass_confirmed_fn *fn; /* NULL: nobody is told */
    void *arg;
};

/* POST ack of `job` for `client`, body up to body_limit bytes (413 above): recorded as a
 * confirmation, then acked upstream with the latest dequeue body: 200 (empty body, as
 * D365), or 202 {"ack":"pending"} when D365's ack failed and the outbox retries it. A body
 * the ledger does not know is acked upstream as it is, through `uc`. `hook` (copied; may
 * be NULL) hears of each confirmation. */
void ledgerpass_ack(struct ledgerflow *lf, struct upcall_ctx *uc, struct conn_req *req,
                    const struct conf_job *job, const struct conf_client *client,
                    uint64_t body_limit, const struct ledgerpass_hook *hook);

/* The ledger id of a download URL target ("/api/connector/download/..?..&blob=<guid>",
 * `len` bytes) of `job`, in out (cap bytes). Returns 0, or -1 when it names no blob. */
int ledgerpass_download_id(const struct conf_job *job, const char *target, size_t len,
                           char *out, size_t cap);

#endif
