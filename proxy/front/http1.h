/* http1: pure HTTP/1.1 request-head parsing (finding, checking, parsing), no I/O.
 * Invariant: a head either parses into a struct http1_head whose every slice points into
 * the caller's bytes, or yields one verdict (HTTP status + stable code); never both. */
#ifndef FOGATE_HTTP1_H
#define FOGATE_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

struct http1_limits {
    size_t max_header_bytes;  /* whole head: request line, header lines, final CRLF */
    size_t max_headers;       /* header field lines */
};

/* Why a request was refused. `code` and `message` are static strings; a message never
 * quotes request bytes, so it is safe to log and to send back. */
struct http1_verdict {
    int status;               /* 400, 417, 431, 501 or 505 (conn adds 408, 413) */
    const char *code;         /* stable machine-readable code, e.g. "duplicate_content_length" */
    const char *message;      /* what a person can act on */
};

struct http1_header {
    const char *name;         /* borrowed from the head bytes; not NUL-terminated */
    size_t name_len;
    const char *value;        /* borrowed; leading and trailing whitespace removed */
    size_t value_len;
};

enum http1_framing {
    HTTP1_BODY_NONE,          /* no Content-Length, no Transfer-Encoding, or length 0 */
    HTTP1_BODY_LENGTH,        /* Content-Length > 0 */
    HTTP1_BODY_CHUNKED,       /* Transfer-Encoding: chunked, decoded by http_parser */
};

struct http1_head {
    enum http_method method;
    const char *method_name;  /* static string ("GET") */
    const char *target;       /* borrowed; origin-form ("/a?b") or "*" (OPTIONS only) */
    size_t target_len;
    size_t path_len;          /* length of target before '?': the part safe to log */
    unsigned version_minor;   /* HTTP/1.<minor>, 0 or 1 */
    struct http1_header *headers; /* borrowed: the array given to http1_parse */
    size_t n_headers;
    const char *host;         /* borrowed; NULL when absent (HTTP/1.0 only) */
    size_t host_len;
    enum http1_framing framing;
    uint64_t content_length;  /* valid when framing == HTTP1_BODY_LENGTH */
    bool keep_alive;          /* version and Connection header allow another request */
    bool expect_continue;     /* "Expect: 100-continue" on an HTTP/1.1 request */
    http_parser parser;       /* private: http_parser's state after the head (h1body.h) */
};

enum http1_find {
    HTTP1_FIND_MORE,          /* no complete head yet and still under the limit */
    HTTP1_FIND_DONE,          /* a head ends at *head_end */
    HTTP1_FIND_ERROR,         /* *v says why (431 over the limit, 400 bare CR/LF) */
};

/* Looks for the end of a request head (CRLFCRLF) in buf[0..len). Empty lines (CRLF)
 * before the request line are allowed and count as part of the head for the limit.
 * *scanned is a resume point: set it to 0 for a new head and pass it back unchanged
 * with the same, longer buffer. On DONE, the head is buf[*head_start .. *head_end)
 * (including its final CRLFCRLF). Reports 431 as soon as more than max_header_bytes
 * arrive without an end, and 400 as soon as a NUL, a bare LF or a CR not followed by LF
 * shows. */
enum http1_find http1_head_find(const char *buf, size_t len, size_t max_header_bytes,
                                size_t *scanned, size_t *head_start, size_t *head_end,
                                struct http1_verdict *v);

/* Parses one complete head (as delimited by http1_head_find, starting at the request
 * line) into *out. `headers` (capacity `cap`, borrowed) receives the header slices.
 * Returns 0, or -1 with *v filled. All slices in *out point into `head`, so `head` must
 * outlive *out. */
int http1_parse(const char *head, size_t len, const struct http1_limits *lim,
                struct http1_header *headers, size_t cap, struct http1_head *out,
                struct http1_verdict *v);

/* Finds a header by case-insensitive name. Returns a borrowed pointer or NULL. */
const struct http1_header *http1_header_find(const struct http1_head *h, const char *name);

/* Reason phrase for a status code ("Not Found"); "Unknown" for codes it does not know. */
const char *http1_reason(int status);

#endif
