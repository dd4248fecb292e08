/* reqcore: the answer path shared by the request objects of the simple API (simple_req)
 * and the package API (package_req): take the client's request for its one answer, answer
 * an error in fogate's shape, a D365 failure, or JSON.
 * Invariant: a request is answered at most once; once answered it is handed back to conn
 * (its events cleared, the owner's pointer NULL) unless its body is still being read, in
 * which case the owner's body-end handler hands it back. */
#ifndef FOGATE_REQCORE_H
#define FOGATE_REQCORE_H

#include <stdbool.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "conn.h"
#include "d365.h"

/* A view of the owner's fields (all borrowed from the request object). */
struct reqcore {
    struct conn_req **req;  /* the owner's request pointer; NULL once answered or gone */
    bool *responded;        /* the owner's "an answer (or a streamed head) went out" */
    bool body_reading;      /* a body sink is active: keep the request until it ends */
};

/* Marks the owner answered and returns its request for the one answer. Unless the body
 * is still being read, the request's events are cleared and *c.req becomes NULL. */
struct conn_req *reqcore_take(struct reqcore c);

/* Answers `status` with fogate's error body {code, message, request_id} and `extra`
 * header lines (may be NULL), unless already answered or gone. */
void reqcore_error(struct reqcore c, int status, const char *extra, const char *code,
                   const char *message);

/* Answers a D365 failure in the error shape, with Retry-After when it carries one. */
void reqcore_fail(struct reqcore c, const struct d365_err *e);

/* Answers `status` with `o` (stolen) as JSON; 500 when it cannot be serialised. */
void reqcore_json(struct reqcore c, int status, json_t *o);

/* Answers `status` with `len` bytes of JSON text (borrowed), already serialised. */
void reqcore_json_text(struct reqcore c, int status, const char *text, size_t len);

/* The body ended after an answer (or failed): hands `req` back to conn (events cleared,
 * *c.req NULL) and marks the owner answered. */
void reqcore_body_over(struct reqcore c, struct conn_req *req);

/* Where a streamed request body goes: `dst` (borrowed; NULL = not yet) has space(dst)
 * bytes of room and send(dst, ...) takes up to that many, returning how many it took. */
struct reqcore_pipe {
    void *dst;
    size_t (*space)(void *dst);
    size_t (*send)(void *dst, const void *data, size_t len);
};

/* Moves the body bytes kept in `pending` to the pipe while it has room. */
void reqcore_push_pending(const struct reqcore_pipe *p, struct evbuffer *pending);

/* Offers `len` bytes of body, behind those already pending: what the pipe does not take
 * is kept in `pending` and the body of `req` paused. Returns 0, or -1 out of memory. */
int reqcore_offer(const struct reqcore_pipe *p, struct evbuffer *pending,
                  struct conn_req *req, const char *data, size_t len);

#endif
