/* d365: typed D365 operations for the simple API on top of upcall: enqueue (streamed
 * body), dequeue, download (streamed response), ack (the original dequeue body) and OData
 * action calls with envelope parsing (reference §3, §4.1-§4.4).
 * Invariant: every failure reaches the caller as one struct d365_err (fogate's status, a
 * stable code, D365's message without stack trace), and the result callback runs exactly
 * once per call unless d365_cancel came first. */
#ifndef FOGATE_D365_H
#define FOGATE_D365_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "d365parse.h"
#include "upcall.h"

/* A failed operation as the simple API answers it. Codes (stable):
 *   d365_throttled 429 (retry_after_s set), d365_no_token 503, d365_timeout 504,
 *   d365_unreachable 502, d365_unauthorized 502 (D365 refused fogate's own token: 401/403),
 *   d365_rejected 400 (D365 answered 400: its message), d365_not_found 404,
 *   d365_too_large 413, d365_error 502 (any other status, 5xx included),
 *   d365_bad_answer 502 (an answer fogate cannot read), no_environment 500. */
struct d365_err {
    int status;                  /* fogate's HTTP status for its client */
    const char *code;            /* static */
    char message[D365PARSE_MSG_MAX + 160];
    unsigned retry_after_s;      /* 429: Retry-After for the client; else 0 */
};

/* Fills *out for a call `what` ("enqueue", "GetMessageStatus", ...) that ended with `d`
 * (not UPCALL_OK, or UPCALL_OK with a status the operation does not expect). Pure. */
void d365_error_from(const struct upcall_done *d, const char *what, struct d365_err *out);

/* What a call's on_result gets (borrowed, valid during the callback). */
struct d365_result {
    bool ok;
    struct d365_err err;         /* !ok: why */
    int status;                  /* ok: D365's status (200, or 204 for an empty dequeue) */
    const char *body;            /* ok, buffered calls: D365's raw body (NUL-terminated) */
    size_t body_len;
    const char *value;           /* actions: the envelope's string value; enqueue: the
                                    canonical message id; otherwise NULL */
};

struct d365_call;

/* Callbacks of a call; on_result is required, the rest per operation. `arg` borrowed. */
struct d365_cbs {
    void (*on_result)(void *arg, const struct d365_result *r);
    /* d365_enqueue: room for more request body (see d365_send). */
    void (*on_send_space)(void *arg);
    /* d365_download: D365 answered 200; the body follows through on_body. */
    void (*on_head)(void *arg, const struct uphead *head);
    enum upstream_flow (*on_body)(void *arg, const char *data, size_t len);
    void *arg;
};

/* OData action `action` with the body {"<param>":"<value>"}; on success r->value is the
 * envelope's string value. UPCALL_RETRY_SAFE (these actions only read). */
struct d365_call *d365_action(struct upcall_ctx *ctx, const char *env, const char *action,
                              const char *param, const char *value,
                              const struct d365_cbs *cbs);

/* Like d365_action with the body `params` (a JSON object, borrowed), for actions with
 * several parameters (reference §4.10). An Edm.Boolean value reads "true" / "false" in
 * r->value (for every action call). */
struct d365_call *d365_action_json(struct upcall_ctx *ctx, const char *env,
                                   const char *action, const json_t *params,
                                   const struct d365_cbs *cbs);

/* Enqueue to `activity` with a streamed body of `len` bytes (or UPSTREAM_BODY_CHUNKED);
 * entity, company and file_name (x-ms-dyn-externalidentifier) may be NULL. Never retried
 * (only the 401 retry before any body byte was sent, which upcall decides). On success
 * r->value is the message id. */
struct d365_call *d365_enqueue(struct upcall_ctx *ctx, const char *env, const char *activity,
                               const char *entity, const char *company,
                               const char *file_name, int64_t len,
                               const struct d365_cbs *cbs);

/* Request body of an enqueue: room now, push bytes (returns how many were taken), end. */
size_t d365_send_space(const struct d365_call *c);
size_t d365_send(struct d365_call *c, const void *data, size_t len);
void d365_send_eof(struct d365_call *c);

/* Dequeue from `activity`; ok with status 200 (body = the raw dequeue JSON) or 204. */
struct d365_call *d365_dequeue(struct upcall_ctx *ctx, const char *env, const char *activity,
                               const struct d365_cbs *cbs);

/* Download `path_query` (from d365parse_download_path) streamed: on_head on 200, on_body
 * with the bytes, then on_result (ok when the whole body arrived; a truncated body is
 * d365_error). A non-200 answer is read whole and reported as an error, no on_head. */
struct d365_call *d365_download(struct upcall_ctx *ctx, const char *env,
                                const char *path_query, const struct d365_cbs *cbs);

/* Undoes an UPSTREAM_PAUSE returned by on_body. */
void d365_resume(struct d365_call *c);

/* Ack to `activity` with `body` (`len` bytes, copied: the original dequeue body). ok when
 * D365 answered 200. */
struct d365_call *d365_ack(struct upcall_ctx *ctx, const char *env, const char *activity,
                           const char *body, size_t len, const struct d365_cbs *cbs);

/* Stops a call; no callback afterwards. Not from inside on_result. NULL is a no-op. */
void d365_cancel(struct d365_call *c);

#endif
