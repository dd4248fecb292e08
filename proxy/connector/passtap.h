/* passtap: the pass-through's taps into the file history. Downloads: the export's record
 * when its file went out whole. The enqueue (/api/connector/enqueue/{activity}) with the file
 * history and Idempotency-Key, as POST /v1/jobs/{job}/messages has them: the body is
 * hashed as it streams to D365, D365's answer (the message id) completes the record, and
 * an Idempotency-Key is reserved before any byte goes upstream. A repeat with the same
 * key and file answers 200 with the first message id as D365 spells it (a JSON string)
 * and X-Fogate-Replayed: true; other content 422, in flight 409 + Retry-After.
 * Invariant: the call itself is passthru's; this module only taps it. */
#ifndef FOGATE_PASSTAP_H
#define FOGATE_PASSTAP_H

#include <stdbool.h>

#include "conf.h"
#include "conn.h"
#include "passthru.h"

struct history;

/* Serves the enqueue `req` of `client` on `job` (borrowed from the request's snapshot)
 * through `ctx` with route `rt` (copied), recording into `h` (borrowed; not NULL). */
void passtap_enqueue(struct history *h, struct upcall_ctx *ctx, struct conn_req *req,
                     const struct passthru_route *rt, const struct conf_job *job,
                     const struct conf_client *client);

/* Serves the download `req` (GET /api/connector/download/...?correlation-id=..) with
 * route `rt` (copied): when the file went out whole, the export's record is made or
 * updated (delivered to `client`, size, SHA-256 of the bytes). */
void passtap_download(struct history *h, struct upcall_ctx *ctx, struct conn_req *req,
                      const struct passthru_route *rt, const struct conf_job *job,
                      const struct conf_client *client);

/* Serves a dequeue (ack false) or an ack (ack true) `req` of `client` on `job` when the
 * ack ledger is off, with route `rt` (copied). A dequeue D365 answered 200 makes or
 * updates the export's record (dequeued, delivered_to `client`); an ack D365 took (200)
 * marks it confirmed by `client` and acked, the message id read from the ack's body
 * (the dequeue JSON, at most rt->body_limit bytes kept). */
void passtap_export(struct history *h, struct upcall_ctx *ctx, struct conn_req *req,
                    const struct passthru_route *rt, const struct conf_job *job,
                    const struct conf_client *client, bool ack);

#endif
