/* reply: the one place where fogate's own errors become HTTP responses, and where a
 * finished request becomes its JSON log line.
 * Invariant: an error body is always {"code","message","request_id","trace_id"} and a
 * message never
 * quotes request bytes or secrets, so it is safe to send and to log. */
#ifndef FOGATE_REPLY_H
#define FOGATE_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "conn.h"

/* Answers `req` with `status` and the JSON error shape; `code` is a stable static string,
 * the message is printf-formatted. Notes the error for the log line. Exactly once per
 * request (conn_req_respond ignores a second answer). */
void reply_error(struct conn_req *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* 405 in the error shape with "Allow: <allow>" (borrowed, e.g. "GET, HEAD"). */
void reply_method_not_allowed(struct conn_req *req, const char *allow);

/* Answers with a JSON body (borrowed, `len` bytes) and Content-Type application/json. */
void reply_json(struct conn_req *req, int status, const char *json, size_t len);

/* Builds the error body {"code":..,"message":..,"request_id":..,"trace_id":..} (no
 * trace_id when it is NULL). Returns a malloc'd, NUL-terminated string the caller frees,
 * or NULL when out of memory. */
char *reply_error_body(const char *code, const char *message, const char *request_id,
                       const char *trace_id);

/* The parts of a response head (all borrowed). */
struct reply_head {
    int status;
    const char *date;           /* Date header value */
    const char *content_type;   /* NULL: no Content-Type */
    size_t content_length;      /* not sent for 204 and 304, nor with no_length */
    bool no_length;             /* no Content-Length (chunked or close-delimited body) */
    const char *request_id;     /* X-Request-Id */
    const char *extra;          /* NULL, or header lines each ending in CRLF */
    bool chunked;               /* "Transfer-Encoding: chunked", after extra */
    const char *connection;     /* NULL, "close" or "keep-alive" */
};

/* Formats "HTTP/1.1 <status> <reason>" and the headers, ending with the empty line, into
 * buf (cap bytes, NUL-terminated). Returns the length, or 0 when it does not fit. Pure. */
size_t reply_format_head(char *buf, size_t cap, const struct reply_head *h);

/* Writes one JSON log line for a finished request (conf/log.h): request_id, method, path
 * (never the query string), status, bytes_in, bytes_out, duration_us, client, outcome
 * ("ok" or why the response was cut), body_expected (when the length was announced) and
 * body_sent, and code and error when an error reply was sent. A cut response (outcome
 * other than ok and client_closed) logs at warn. */
void reply_log(const struct conn_req_log *l);

#endif
