/* h1out: the request bytes of one HTTP/1.1 upstream connection: the head written from an
 * upstream_req, body bytes (raw or chunk-framed), and what of them was sent.
 * Invariant: [off, len) is unsent; while `whole` the request is still all in the buffer
 * (nothing sent was dropped), so it can be sent again on another connection. No I/O. */
#ifndef FOGATE_H1OUT_H
#define FOGATE_H1OUT_H

#include <stdbool.h>
#include <stddef.h>

#include "upstream.h"

struct h1out {
    char *buf;                    /* owned */
    size_t off, len, cap;
    bool whole;                   /* no sent byte dropped since h1out_reset */
};

/* Empties `o` for the next request; a buffer larger than `keep_cap` is freed. */
void h1out_reset(struct h1out *o, size_t keep_cap);

/* Frees the buffer. */
void h1out_cleanup(struct h1out *o);

/* Bytes not sent yet. */
size_t h1out_pending(const struct h1out *o);

/* Room for `n` more bytes: drops sent bytes first (clearing `whole`), then grows.
 * Returns 0 or -1 (no memory). */
int h1out_reserve(struct h1out *o, size_t n);

/* Appends `n` bytes. Returns 0 or -1 (no memory). */
int h1out_add(struct h1out *o, const void *s, size_t n);

/* Writes the request head: request line (`target` without its fragment), Host
 * (`authority`, unless the caller gave one), the caller's lines with Content-Length,
 * Transfer-Encoding and Expect dropped (as upreq does for libcurl), the framing line from
 * body_len, the blank line. Returns 0, or -1 when a line is malformed (no token name and
 * colon, CR or LF inside) or memory ran out. */
int h1out_head(struct h1out *o, const struct upstream_req *req, const char *target,
               const char *authority);

/* Appends `n` (> 0) body bytes as one chunk ("<hex>\r\n" data "\r\n"). Returns 0 or -1. */
int h1out_chunk(struct h1out *o, const void *data, size_t n);

/* Appends the last chunk of a chunked body (no trailers). Returns 0 or -1. */
int h1out_last_chunk(struct h1out *o);

#endif
