/* simpleidem: Idempotency-Key on POST /v1/jobs/{job}/messages (proxy/history/histidem
 * holds the records in Redis). Part of the simple module (simplexfer.h's simple_req).
 *   key free      -> reserved, the enqueue goes on (simplexfer_enqueue_go)
 *   key in flight -> 409 idempotency_key_in_use, Retry-After: 1 (body not read)
 *   key done      -> the body is read and hashed, nothing goes to D365: same SHA-256 ->
 *                    202 with the first message id ("replayed": true); else 422
 *   Redis down    -> 503 idempotency_store_unavailable, nothing enqueued
 * Invariant: with a key, no byte goes to D365 before the key is reserved for us. */
#ifndef FOGATE_SIMPLEIDEM_H
#define FOGATE_SIMPLEIDEM_H

#include "simplexfer.h"

#define SIMPLEIDEM_KEY_MAX 255 /* bytes of an Idempotency-Key */

/* Looks the key `k` of `job` up; answers or goes on with the enqueue. */
void simpleidem_begin(struct simple_req *r, const struct conf_job *job,
                      const struct http1_header *k);

#endif
