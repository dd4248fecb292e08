/* h1resp: reads one HTTP/1.1 response from bytes as they arrive: http_parser (response
 * mode) drives it, the head goes line by line into an uphead (same cap, 1xx skipped), the
 * body by Content-Length, chunked (trailers ignored) or until close goes to a callback
 * without a copy. Pure logic, no I/O, so a fuzzer can feed it directly.
 * Invariant: the head bytes held (line buffer + uphead) never exceed max_header_bytes. */
#ifndef FOGATE_H1RESP_H
#define FOGATE_H1RESP_H

#include <stdbool.h>
#include <stddef.h>

#include <http_parser.h>

#include "uphead.h"
#include "upstream.h"

struct h1resp_cbs {
    /* The final head is complete. Return false to stop the parser (e.g. the transfer was
     * aborted); h1resp_feed then returns H1RESP_STOPPED. */
    bool (*on_head)(void *arg, const struct uphead *head);
    /* `len` body bytes, borrowed during the call; taken whatever it returns. Return false
     * to stop after them (a pause, or an abort). */
    bool (*on_body)(void *arg, const char *data, size_t len);
    void *arg;
};

enum h1resp_state {
    H1RESP_MORE,     /* all bytes taken, the response is not complete */
    H1RESP_STOPPED,  /* a callback returned false: feed the rest (from *used on) later */
    H1RESP_DONE,     /* the response is complete; bytes after it were not taken */
    H1RESP_FAILED,   /* see h1resp.fail and fail_text */
};

struct h1resp {
    http_parser parser;
    struct uphead *head;          /* borrowed from the transfer */
    struct h1resp_cbs cbs;
    size_t max_head;              /* max_header_bytes */
    char *line;                   /* owned: the header line being assembled */
    size_t line_len, line_cap;
    bool is_head, in_value, status_fed, interim, head_done, done;
    bool next_head;               /* an interim head ended: the next status line follows */
    unsigned prefix;              /* bytes of "HTTP/1." seen of the current status line */
    const char *feed_start;       /* borrowed: the data of the running h1resp_feed */
    char prev_byte;               /* the last byte of the previous feed */
    enum upstream_result fail;    /* with H1RESP_FAILED */
    const char *fail_text;        /* static */
};

/* Readies `r` for a response into `head` (empty); is_head: the request was HEAD (no
 * body follows whatever the head says). Keeps the line buffer of a previous response. */
void h1resp_start(struct h1resp *r, struct uphead *head, bool is_head, size_t max_head,
                  const struct h1resp_cbs *cbs);

/* Feeds `len` bytes; *used says how many were taken. */
enum h1resp_state h1resp_feed(struct h1resp *r, const char *data, size_t len, size_t *used);

/* The peer closed the connection: H1RESP_DONE when that ends a body read until close,
 * else H1RESP_FAILED (TRUNCATED mid-body, OTHER mid-head). */
enum h1resp_state h1resp_eof(struct h1resp *r);

/* After H1RESP_DONE: the response lets the connection be kept (HTTP/1.1 without
 * Connection: close, or 1.0 with keep-alive). */
bool h1resp_keep_alive(const struct h1resp *r);

/* Frees the line buffer. */
void h1resp_cleanup(struct h1resp *r);

#endif
