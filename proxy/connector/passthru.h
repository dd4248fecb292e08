/* passthru: forwards one authenticated client request to a D365 environment and its
 * answer back: request bodies stream to D365 as they arrive (or are buffered, small JSON
 * bodies, so a 401 can be retried), response bodies stream to the client with
 * backpressure both ways; a dequeue 200 body gets its DownloadLocation rewritten.
 * Invariants: the client's Authorization / X-Api-Key never leave fogate; path and query are
 * forwarded byte for byte; a body that fails midway closes the client connection (never
 * a short body that looks complete); a client that leaves aborts the upstream transfer.
 * Decision: D365's status and body pass through unchanged, an OData innererror.stacktrace
 * included: it is D365's answer to the client's own call and the client may need it for a
 * support case. Errors fogate makes itself (reply.h) never carry upstream text beyond a
 * status or result name, and a final 401 from D365 becomes fogate's own d365_unauthorized
 * (502, refused also after a fresh token) or d365_token_retry (503, not sent again), so a
 * client never mistakes it for a bad API key. */
#ifndef FOGATE_PASSTHRU_H
#define FOGATE_PASSTHRU_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "upcall.h"

struct conf_env;

enum passthru_body {
    PASSTHRU_BODY_BUFFER,   /* read whole (up to body_limit) before calling D365 */
    PASSTHRU_BODY_STREAM,   /* stream to D365 as it arrives (enqueue); no retry */
};

/* A tap on a streamed call (the enqueue's history and Idempotency-Key, passtap.c). */
struct passthru_tap {
    /* Request body bytes as they are taken from the client (streamed or buffered); may be
     * NULL. */
    void (*on_body)(void *ctx, const char *data, size_t len);
    /* Answer body bytes as they go to the client; may be NULL. */
    void (*on_answer_body)(void *ctx, const char *data, size_t len);
    /* Exactly once, when the request ends: D365's status when its whole answer reached
     * the client (else 0) and the first bytes of that answer (borrowed); for a dequeue
     * (route.dequeue), D365's whole answer as it came, before the client is answered. */
    void (*on_end)(void *ctx, int status, const char *answer, size_t len);
};

#define PASSTHRU_TAP_ANSWER 256   /* answer bytes kept for the tap */

struct passthru_route {
    const struct conf_env *env;        /* borrowed from the conf snapshot */
    enum upcall_retry retry;
    enum passthru_body body;
    uint64_t body_limit;               /* 413 above it, before reading when announced */
    bool dequeue;                      /* buffer a 200 answer and rewrite DownloadLocation */
    const char *public_base_url;       /* borrowed; for the rewrite */
    struct upstream_timeouts timeouts;
    /* Called when a 200 response body went out to the client whole (the ack ledger marks
     * a download delivered); NULL = none. ctx borrowed, tag copied with the route. */
    void (*on_complete)(void *ctx, const char *tag);
    void *complete_ctx;
    char complete_tag[160];
    const struct passthru_tap *tap;    /* static; NULL = none */
    void *tap_ctx;                     /* borrowed until tap->on_end */
};

/* Takes over `req` (answered later, or at once on an error) for `rt` (copied) through
 * `ctx` (borrowed, must outlive the request). */
void passthru_start(struct upcall_ctx *ctx, struct conn_req *req, const struct passthru_route *rt);

/* True for a request header that must not be forwarded: hop-by-hop fields (Connection,
 * Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*), framing and host
 * (Content-Length, Expect, Host: libcurl sets them), the client's credentials
 * (Authorization, X-Api-Key) and fogate's own X-Fogate-Environment. Pure. */
bool passthru_drop_header(const char *name, size_t len);

/* True for a response header passed back to the client: Retry-After, ms-dyn-*,
 * OData-Version, Content-Encoding, Content-Disposition, Location. Content-Type is passed
 * separately. Pure. */
bool passthru_keep_response_header(const char *name);

#endif
