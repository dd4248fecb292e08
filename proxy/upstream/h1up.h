/* h1up: fogate's own HTTP/1.1 upstream client (issue 16), chosen with the config key
 * upstream.client = "native" for upstream_start's https:// (and allowed http://) URLs when
 * no proxy is configured; the rest stays on libcurl. upstream.c hands it the transfers it
 * can carry, streamed (upstream_start) or whole-body (upstream_fetch); both kinds sit
 * behind upstream.h's API (the first byte of a transfer says which kind). Transfers here,
 * connections, pool and limits in h1conn, names in h1dns, TLS in h1tls, request bytes in
 * h1out, response reading in h1resp.
 * Invariant: on_done exactly once per transfer unless aborted; a connection goes back to
 * the pool only after a complete response that allows keep-alive and left no extra bytes. */
#ifndef FOGATE_H1UP_H
#define FOGATE_H1UP_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "upstream.h"

/* Both kinds of transfer start with this byte, so upstream.c can tell them apart. */
#define H1UP_KIND_CURL 0
#define H1UP_KIND_H1 1

struct h1up;

/* A new client on `base` (borrowed) with `opts` (defaults filled; copied; strings borrowed
 * from the caller, who must keep them), `stats` (borrowed, the upstream's counters:
 * done, aborted, connects, bytes, pauses and bulk_buffers_peak are added to it; upstream.c
 * counts the starts)
 * and `bulk_buffers` (borrowed: the transfers holding a bulk receive buffer now, shared
 * with libcurl's path so that max_bulk_buffers holds for both). NULL on failure. */
struct h1up *h1up_new(struct event_base *base, const struct upstream_opts *opts,
                      struct upstream_stats *stats, unsigned *bulk_buffers);

/* Stops every live transfer without on_done, closes every connection, frees. NULL: no-op. */
void h1up_free(struct h1up *h);

/* True if this client can carry `url`: https://, or http:// when allowed, and no proxy
 * configured. */
bool h1up_handles(const struct h1up *h, const char *url);

/* As upstream_start; the returned pointer's first byte is H1UP_KIND_H1. */
struct upstream_xfer *h1up_start(struct h1up *h, const struct upstream_req *req,
                                 const struct upstream_cbs *cbs);

/* As upstream_fetch: `req` is the call's (body_len UPSTREAM_BODY_NONE, or `body_len`),
 * `body` is copied and sent whole, the response body is buffered in a growing buffer owned
 * by the transfer (a spare one reused when kept) up to `max_response_bytes`, then
 * UPSTREAM_TOO_LARGE; a Content-Length over it fails at the head. on_body is not called. */
struct upstream_xfer *h1up_fetch(struct h1up *h, const struct upstream_req *req,
                                 const struct upstream_cbs *cbs, const void *body,
                                 size_t body_len, size_t max_response_bytes);

/* As their upstream_ counterparts, for a transfer of h1up_start. */
void h1up_abort(struct upstream_xfer *x);
size_t h1up_send_space(const struct upstream_xfer *x);
size_t h1up_send(struct upstream_xfer *x, const void *data, size_t len);
size_t h1up_send_buffer(struct upstream_xfer *x, struct evbuffer *src);
void h1up_send_eof(struct upstream_xfer *x);
void h1up_resume_recv(struct upstream_xfer *x);

/* Adds this client's loop counters (socket and timer events, re-arms, sockets) to `out`. */
void h1up_stats(const struct h1up *h, struct upstream_stats *out);

#endif
