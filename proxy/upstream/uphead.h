/* uphead: collects one upstream response head, fed line by line as libcurl hands it over
 * (status line, header fields, blank line), skipping interim 1xx heads.
 * Invariant: the bytes fed, interim heads included, never exceed the cap given to
 * uphead_new; pure logic, no I/O. */
#ifndef FOGATE_UPHEAD_H
#define FOGATE_UPHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum uphead_verdict {
    UPHEAD_MORE,     /* line taken, head not complete yet */
    UPHEAD_INTERIM,  /* an interim 1xx head ended; its fields were dropped, feed on */
    UPHEAD_DONE,     /* the final head is complete: status and fields are readable */
    UPHEAD_TOO_BIG,  /* over the cap; the head is unusable */
    UPHEAD_BAD,      /* malformed status line or field (incl. obs-fold, control bytes) */
};

struct uphead;

/* A new, empty head that accepts at most `cap` bytes in total. NULL on allocation failure.
 * Free with uphead_free. */
struct uphead *uphead_new(size_t cap);

/* Empties `h` for the next response, keeping its allocations and cap. */
void uphead_reset(struct uphead *h);

/* Frees `h`. NULL is a no-op. */
void uphead_free(struct uphead *h);

/* Feeds one line of `len` bytes (its CRLF or LF included, as libcurl passes it; not
 * NUL-terminated, borrowed only during the call). After TOO_BIG or BAD every later call
 * returns the same verdict; after DONE, feeding returns UPHEAD_BAD (trailers are the
 * caller's business). */
enum uphead_verdict uphead_feed(struct uphead *h, const char *line, size_t len);

/* True when s[0..len) (no line end) is a well-formed field line, "token: text": what
 * uphead_feed takes as a field, for lines it does not store (a chunked body's trailers). */
bool uphead_field_ok(const char *s, size_t len);

/* Status code of the final head (100..999), or 0 before UPHEAD_DONE. */
int uphead_status(const struct uphead *h);

/* HTTP minor version of the final head's status line ("HTTP/1.x"), or -1 before DONE. */
int uphead_minor(const struct uphead *h);

/* Number of header fields of the final head (0 before DONE). */
size_t uphead_count(const struct uphead *h);

/* Name and value of field `i` (< uphead_count), NUL-terminated, borrowed from `h` until it
 * is freed. Values have surrounding whitespace removed; names keep their spelling. */
const char *uphead_name(const struct uphead *h, size_t i);
const char *uphead_value(const struct uphead *h, size_t i);

/* Value of the first field named `name` (ASCII case-insensitive), or NULL. Borrowed. */
const char *uphead_find(const struct uphead *h, const char *name);

/* True when the final head announces (Content-Length) a body of more than `cap` bytes
 * and the response has one: not to a HEAD request (`is_head`), not a 204 or 304. Lets a
 * whole-body fetch fail at the head instead of reading up to its cap first. */
bool uphead_body_over(const struct uphead *h, bool is_head, uint64_t cap);

/* Total bytes fed so far (interim heads included). */
size_t uphead_bytes(const struct uphead *h);

#endif
