/* h1body: pure HTTP/1.1 request-body framing after a parsed head: Content-Length bytes as
 * they are, chunked bodies decoded by http_parser behind a strict check of the framing.
 * Invariant: it never consumes a byte past the end of the body, so whatever follows (a
 * pipelined request) is left untouched; malformed framing is a verdict, never a guess. */
#ifndef FOGATE_H1BODY_H
#define FOGATE_H1BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <http_parser.h>

#include "http1.h"

struct h1body {
    enum http1_framing framing;
    http_parser parser;       /* chunked: http_parser's state, continued from the head */
    uint64_t left;            /* Content-Length bytes still to come */
    bool done;
    bool cr;                  /* chunk framing: the last framing byte was a CR */
};

/* Gets decoded body bytes. Return 0 to go on, -1 to stop decoding (refuse the body). */
typedef int (*h1body_data_cb)(void *arg, const char *data, size_t len);

/* Starts decoding the body of `head` (a successful http1_parse; read, not kept). */
void h1body_init(struct h1body *b, const struct http1_head *head);

/* Feeds bytes that follow the head. Content-Length bytes go to on_data as they are;
 * chunked bodies are decoded by http_parser, and the framing bytes between data must be
 * hex chunk sizes and CRLF: chunk extensions, trailers, whitespace and bare LF are refused.
 * Stops at the end of the body. Returns the bytes consumed (the rest belongs to the next
 * request), or -1 with *v filled (400) when the framing is malformed or on_data refused. */
ssize_t h1body_feed(struct h1body *b, const char *buf, size_t len, h1body_data_cb on_data,
                    void *arg, struct http1_verdict *v);

/* True once the whole body has been consumed (at once for a head without a body). */
bool h1body_done(const struct h1body *b);

#endif
