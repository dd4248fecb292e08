/* upcall: one call to a D365 environment. It waits for the environment's bearer token,
 * honours the environment's 429 gate, sends through upstream (response buffered or
 * streamed), and applies fogate's retry rules:
 *   - 401 from D365: token_invalidate(generation) and ONE retry with the new token, when the
 *     request body is still available (none, or buffered by upcall); never a second one.
 *   - 429: the environment's gate closes until Retry-After has passed (on every instance
 *     with d365_budget.shared); calls meanwhile end with UPCALL_THROTTLED (the remaining
 *     seconds) without reaching D365. Calls of class UPCALL_RETRY_SAFE wait and retry when
 *     the wait fits in their retry budget.
 *   - every attempt holds a slot of the environment's D365 budget (budget.h) while it is
 *     sent and answered; no slot within the wait ends the call with UPCALL_BUDGET.
 *   - 5xx and connection failures: retried with jittered backoff for UPCALL_RETRY_SAFE
 *     calls with no or a buffered body, never for UPCALL_RETRY_NONE.
 * Invariant: a response that will be retried is never shown to the caller (on_head is
 * called at most once, for the final attempt), and on_done runs exactly once unless the
 * call was cancelled first. The token never appears in a log line or an error. */
#ifndef FOGATE_UPCALL_H
#define FOGATE_UPCALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upstream.h"

struct budget;
struct conf;
struct token_mgr;
struct upcall;
struct upcall_ctx;

/* Shared state of all calls of one app: the upstream client, the token manager and the
 * D365 budget with the per-environment 429 gates. `up`, `tm` and `budget` are borrowed and
 * must outlive the context. Returns NULL when out of memory. */
struct upcall_ctx *upcall_ctx_new(struct event_base *base, struct upstream *up,
                                  struct token_mgr *tm, struct budget *budget,
                                  const struct conf *conf);

/* Points the context at a new config snapshot (borrowed; it must live as long as calls
 * started afterwards). Gates of environments that still exist are kept. */
void upcall_ctx_set_conf(struct upcall_ctx *ctx, const struct conf *conf);

/* Frees the context. Every call must have ended or been cancelled. NULL is a no-op. */
void upcall_ctx_free(struct upcall_ctx *ctx);

/* Seconds left on environment `env`'s 429 gate, 0 when it is open. */
unsigned upcall_gate_remaining(const struct upcall_ctx *ctx, const char *env);

/* Which retries a call allows (reference §8.2: never retry non-idempotent POSTs).
 * NONE: enqueue, ImportFromPackage(Async), ExportToPackage(Async) and any call whose
 *       request body is streamed: only the 401 retry, and only with no body, a buffered
 *       one, or a streamed one whose bytes are all kept (limits.replay_body_bytes).
 * SAFE: dequeue, download, jobstatus, status and URL actions, and ack. A retried ack is
 *       matched on CorrelationId + PopReceipt, so a repeat of an ack that did land answers
 *       200; a lost ack costs a duplicate download 30 minutes later, which is worse. */
enum upcall_retry { UPCALL_RETRY_NONE, UPCALL_RETRY_SAFE };

struct upcall_req {
    const char *env;              /* environment name (borrowed during upcall_start) */
    const char *method;           /* "GET", "POST" ... */
    const char *path_query;       /* appended byte-exact to the environment's base_url;
                                     starts with '/' */
    const char *const *headers;   /* "Name: value" lines sent as given (copied); never an
                                     Authorization line: upcall adds its own */
    size_t n_headers;
    enum upcall_retry retry;
    /* Request body, one of: none (body NULL, stream false); buffered (body/body_len,
     * copied); streamed (stream true, stream_len bytes or UPSTREAM_BODY_CHUNKED, pushed
     * with upcall_send after on_send_space). */
    const void *body;
    size_t body_len;
    bool stream;
    int64_t stream_len;
    /* Response: buffered whole (max_response_bytes > 0: on_done gets the body) or
     * streamed through on_head/on_body (max_response_bytes == 0). */
    size_t max_response_bytes;
    unsigned wait_ms;             /* budget for waiting: token, 429 gate, backoff, a D365
                                     budget slot; 0 = 10 s */
    const char *job;              /* the client's job (activity id or name) for the fair
                                     queue of the D365 budget; NULL = one shared queue */
    struct upstream_timeouts timeouts; /* per attempt; 0 = the upstream's defaults */
};

enum upcall_status {
    UPCALL_OK,          /* D365 answered: status (and head) are D365's final answer */
    UPCALL_THROTTLED,   /* the environment's 429 gate is closed: retry_after_s seconds */
    UPCALL_NO_TOKEN,    /* no usable token within the wait: token_reason says why */
    UPCALL_FAILED,      /* no (complete) answer: transport says why */
    UPCALL_NO_ENV,      /* no such environment */
    UPCALL_BUDGET,      /* no D365 budget slot within the wait: retry_after_s; not sent */
};

/* What on_done gets (all borrowed, valid during the call). */
struct upcall_done {
    enum upcall_status st;
    int status;                     /* D365's final status; 0 unless UPCALL_OK */
    const struct uphead *head;      /* final head (buffered mode, and streamed mode if
                                       a head arrived); NULL otherwise */
    const char *body;               /* buffered mode: the response body (NUL-terminated) */
    size_t body_len;
    enum upstream_result transport; /* UPCALL_FAILED: why; also TRUNCATED mid-stream */
    const char *error;              /* "" or a short text without URL query or secrets */
    unsigned retry_after_s;         /* UPCALL_THROTTLED, UPCALL_BUDGET: seconds to wait */
    const char *token_reason;       /* UPCALL_NO_TOKEN: token_reason() of the env */
    unsigned attempts;              /* requests sent to D365 */
    bool head_delivered;            /* streamed mode: on_head was called */
    bool retried_401;               /* a 401 was answered and the call sent again with a
                                       fresh token (so a final 401 is the second one) */
};

/* Callbacks; only on_done is required. `arg` is borrowed. */
struct upcall_cbs {
    /* Streamed mode: D365's final answer starts (after any retry was decided). */
    void (*on_head)(void *arg, const struct uphead *head);
    /* Streamed mode: body bytes; UPSTREAM_PAUSE until upcall_resume_recv. */
    enum upstream_flow (*on_body)(void *arg, const char *data, size_t len);
    /* Streamed request body: room for more (first call when the transfer starts). */
    void (*on_send_space)(void *arg);
    /* Exactly once, from the event loop, unless cancelled; `c` is freed after it returns. */
    void (*on_done)(void *arg, const struct upcall_done *d);
    void *arg;
};

/* Starts a call. Returns the call, or NULL (bad request or no memory; no callback).
 * No callback runs before it returns. Everything in `req` is copied. */
struct upcall *upcall_start(struct upcall_ctx *ctx, const struct upcall_req *req,
                            const struct upcall_cbs *cbs);

/* Ends the call now (the client went away): token wait withdrawn, transfer aborted, no
 * callback afterwards. Safe from inside the call's own callbacks except on_done. NULL is
 * a no-op. */
void upcall_cancel(struct upcall *c);

/* Streamed request body: room in the send buffer now (0 while waiting for the token, a
 * gate or the transfer to start, and after upcall_send_eof). */
size_t upcall_send_space(const struct upcall *c);

/* Pushes up to `len` bytes of request body; returns how many were taken. */
size_t upcall_send(struct upcall *c, const void *data, size_t len);

/* The streamed request body is complete. */
void upcall_send_eof(struct upcall *c);

/* Undoes an UPSTREAM_PAUSE returned by on_body. */
void upcall_resume_recv(struct upcall *c);

#endif
