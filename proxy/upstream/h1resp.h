/* h1resp: reads one HTTP/1.1 response from bytes as they arrive. The head is cut into
 * lines here and each line goes to an uphead, which checks it strictly (status line,
 * field syntax, control bytes, obs-fold, cap; 1xx heads skipped): one pass over the head,
 * the same checks as libcurl's path. The body is framed from the final head: none (HEAD,
 * 1xx, 204, 304), Content-Length, chunked (decoded here, strictly: hex size, extensions
 * ignored, CRLF, trailers ignored within the head's cap) or until close, and goes to
 * a callback without a copy. Pure logic, no I/O, so a fuzzer can feed it directly.
 * Invariants: the head bytes held (partial line + uphead) never exceed max_header_bytes;
 * no byte past the response's end is taken. */
#ifndef FOGATE_H1RESP_H
#define FOGATE_H1RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uphead.h"
#include "upstream.h"

struct h1resp_cbs {
    /* The final head is complete. Return false to stop the parser (e.g. the transfer was
     * aborted); h1resp_feed then returns H1RESP_STOPPED (DONE when no body follows). */
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

enum h1resp_framing {
    H1RESP_BODY_NONE,     /* HEAD request, 1xx, 204, 304 */
    H1RESP_BODY_LENGTH,   /* Content-Length */
    H1RESP_BODY_CHUNKED,  /* Transfer-Encoding ending in chunked */
    H1RESP_BODY_CLOSE,    /* neither, or another coding last: until the peer closes */
};

enum h1resp_chunk {
    H1RESP_CHUNK_SIZE,    /* a chunk-size line */
    H1RESP_CHUNK_DATA,    /* `left` bytes of chunk data */
    H1RESP_CHUNK_CR,      /* the line end after the data */
    H1RESP_CHUNK_LF,
    H1RESP_CHUNK_TRAILER, /* trailer lines until an empty one */
};

struct h1resp {
    struct uphead *head;          /* borrowed from the transfer */
    struct h1resp_cbs cbs;
    size_t max_head;              /* max_header_bytes */
    char *line;                   /* owned: a head line split across feeds */
    size_t line_len, line_cap;
    enum h1resp_framing framing;  /* once head_done */
    enum h1resp_chunk chunk;      /* with H1RESP_BODY_CHUNKED */
    uint64_t left;                /* Content-Length or chunk bytes still to come */
    size_t trailer;               /* trailer bytes so far */
    unsigned prefix;              /* bytes of "HTTP/1." seen of the current status line */
    bool is_head, head_done, done, keep;
    bool at_status;               /* the next line is a status line */
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
 * Connection: close, or 1.0 with keep-alive; never after a body read until close). */
bool h1resp_keep_alive(const struct h1resp *r);

/* Content-Length bytes still to come, or UINT64_MAX when the length is not known. */
uint64_t h1resp_body_left(const struct h1resp *r);

/* Frees the line buffer. */
void h1resp_cleanup(struct h1resp *r);

#endif
