/* conn: fogate's client-facing HTTP/1.1 connection on libevent (bufferevents): limits,
 * deadlines, keep-alive, pipelining, body framing, lingering close; and its requests.
 * Invariant: a connection has at most one request in flight and answers requests in the
 * order they came; a refused head gets exactly one error response, then the connection
 * closes and nothing is dispatched. */
#ifndef FOGATE_CONN_H
#define FOGATE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include <sys/socket.h>

#include "blockcache.h"
#include "conn_server.h"
#include "http1.h"
#include "tracectx.h"

struct conn;

/* The open connections of a server (embedded in it; links live in struct conn), and
 * among them the idle ones (waiting for a next request with nothing received and nothing
 * left to send), oldest first: the ones shed at the connection cap. The idle ones before
 * hot_first are parked (connpriv.h): only the newest CONN_HOT_IDLE idle ones are kept
 * whole. */
struct conn_list {
    struct conn *first;
    size_t count;
    struct conn *idle_first, *idle_last;
    size_t idle_count;
    struct conn *hot_first;    /* the oldest idle connection not parked; NULL if none */
    size_t parked;
    struct slab_pool *slab;    /* owned: the connections' memory (slab.h) */
    struct blockcache heads;   /* owned: request head blocks given back by idle connections */
    struct blockcache held;    /* owned: response head buffers (conn_req_start) */
};

/* Sets up an empty list (embedded by the caller). Returns 0, or -1 on allocation failure. */
int conn_list_init(struct conn_list *list);

/* Frees what conn_list_init made; the list must be empty (conn_list_close first). */
void conn_list_cleanup(struct conn_list *list);

/* Idle connections kept whole per server (each ~1.5 KB more than a parked one, but its
 * next request costs no allocations): a benchmark's or a load balancer's pool of
 * keep-alive connections stays within it; thousands of idle clients do not. */
#define CONN_HOT_IDLE 256

/* Takes over `fd` (an accepted socket) as a new connection on `list` (borrowed, owned by
 * srv), allocated from the list's slab. Returns the connection, or NULL on allocation failure (then the caller still owns
 * fd). The connection frees itself when it closes. */
struct conn *conn_new(struct conn_server *srv, struct event_base *base,
                      struct conn_list *list, evutil_socket_t fd, const struct sockaddr *peer);

/* Closes the connection that has been idle longest. Returns true if there was one. */
bool conn_list_shed_idle(struct conn_list *list);

/* How a request's response ended, as its log line says ("outcome"). */
enum conn_outcome {
    CONN_OK,                   /* the whole response was handed to the socket */
    CONN_CLIENT_TIMEOUT,       /* the client stopped reading (or sending) for idle_ms */
    CONN_CLIENT_CLOSED,        /* the client closed or reset the connection */
    CONN_UPSTREAM_ERROR,       /* the handler aborted a streamed response (upstream failed) */
    CONN_DRAIN,                /* shutdown: the grace ended with the request in flight */
    CONN_ABORTED,              /* fogate itself could not go on (out of memory, a bug) */
};

/* The outcome's log name ("ok", "client_timeout", ...; static). */
const char *conn_outcome_name(enum conn_outcome o);

/* Closes the connections on `list`: all of them, or with idle_only only those waiting
 * for a next request with nothing received and nothing left to send. A request in flight
 * is logged with outcome `why`. */
void conn_list_close(struct conn_list *list, bool idle_only, enum conn_outcome why);

/* The parsed head (borrowed, valid until the response is sent); NULL while a refused head
 * is being answered. */
const struct http1_head *conn_req_head(const struct conn_req *req);

/* Files the request under route index `route` (0..CONNSTATS_ROUTES-1, named by the
 * wiring) in the request counters; unset = 0. */
void conn_req_set_route(struct conn_req *req, unsigned route);

/* The request id: the client's X-Request-Id when it is sane (tracectx_request_id_ok),
 * else 16 lower-case hex characters of ours (borrowed, valid as long as req). */
const char *conn_req_id(const struct conn_req *req);

/* The request's trace (borrowed, valid as long as req): the client's traceparent's trace
 * id when valid, else a new one; span_id is fogate's own span for this request. */
const struct tracectx *conn_req_trace(const struct conn_req *req);

/* Sends the whole response: status line, Date, Content-Type (when `content_type` is not
 * NULL), Content-Length, X-Request-Id, `extra_headers` (NULL or complete lines each ending
 * in CRLF, borrowed), Connection when needed, then `body` (borrowed, copied) unless the
 * request was HEAD. Must be called exactly once per request; later calls are ignored. */
void conn_req_respond(struct conn_req *req, int status, const char *extra_headers,
                      const char *content_type, const char *body, size_t body_len);

/* Records the error code (static string) and message (copied, truncated) that the request
 * log line will carry. Used by reply_error. */
void conn_req_note_error(struct conn_req *req, const char *code, const char *message);

/* Where a request body goes. on_data gets decoded body bytes (return 0, or -1 to refuse
 * the body). on_end(req, ok, arg) comes exactly once: ok at the end of the body, or not ok
 * when the body was malformed, over max_body_bytes, refused, too slow or cut off, or the
 * connection died. After a failure the handler may answer inside on_end (an error); if it
 * does not, conn answers with the reason (400, 408 or 413); the connection then closes,
 * and `req` must not be used after on_end(false) returns. */
struct conn_body_sink {
    int (*on_data)(struct conn_req *req, const char *data, size_t len, void *arg);
    void (*on_end)(struct conn_req *req, bool ok, void *arg);
    void *arg;                 /* borrowed */
};

/* Starts reading the request body into `sink` (copied; NULL discards the body). Sends
 * "100 Continue" first when the client asked for it. Bodies over max_body_bytes end with
 * ok false. Returns 0, or -1 if the body is already being read or the request has none. */
int conn_req_read_body(struct conn_req *req, const struct conn_body_sink *sink);

/* ---- asynchronous handlers and streamed responses ---- */

/* Events of a request answered later or streamed (all optional; `arg` borrowed).
 * on_gone: the connection died (client left, socket error, idle limit while sending)
 * while the request was in flight; called once, after a body sink's on_end(false); `req`
 * must not be used afterwards. on_drained: the output of a streamed response fell below
 * the low-water mark after conn_req_write asked the caller to wait. */
struct conn_req_events {
    void (*on_gone)(void *arg);
    void (*on_drained)(void *arg);
    void *arg;
};

/* Sets (copies) the request's events. A handler that returns without answering must set
 * on_gone, so that it hears of a client that went away. */
void conn_req_set_events(struct conn_req *req, const struct conn_req_events *ev);

/* Gives the request `hold` (borrowed; e.g. a reference to the config snapshot it was
 * routed with), handed to the server's release callback (conn_server_on_release) once,
 * when the request ends: answered and its body read, or its connection gone. */
void conn_req_hold(struct conn_req *req, void *hold);

/* The client's address, "ip:port" or "[ip6]:port" (borrowed, valid as long as req). */
const char *conn_req_client(const struct conn_req *req);

/* Lowers this request's body limit (never above the server's max_body_bytes); call before
 * conn_req_read_body. Bodies over it end with ok false (413). */
void conn_req_set_body_limit(struct conn_req *req, uint64_t limit);

/* Backpressure on the request body: stop delivering on_data (bytes stay in the socket)
 * until conn_req_resume_body. While paused no body deadline runs: the caller's own
 * timeouts (upstream) bound the wait. */
void conn_req_pause_body(struct conn_req *req);
void conn_req_resume_body(struct conn_req *req);

/* Starts a streamed response: writes the head (status, Date, Content-Type if not NULL,
 * X-Request-Id, `extra_headers` (complete CRLF lines, borrowed), Connection). With
 * content_length >= 0 it is sent as Content-Length; with -1 the body is chunked (HTTP/1.1)
 * or ends with the connection (HTTP/1.0). Returns 0, or -1 when the request was already
 * answered or the connection is dead. */
int conn_req_start(struct conn_req *req, int status, const char *extra_headers,
                   const char *content_type, int64_t content_length);

/* Queues body bytes (copied). Returns 0, 1 when the output is over the high-water mark
 * (stop and wait for on_drained), or -1 when the connection is dead. */
int conn_req_write(struct conn_req *req, const char *data, size_t len);

/* Ends a streamed response (the last chunk). A body shorter than its Content-Length
 * closes the connection instead, so the client sees an error. */
void conn_req_end(struct conn_req *req);

/* The connection closes after this request's response (e.g. a 413 whose body is never
 * read). Call before answering. */
void conn_req_close_after(struct conn_req *req);

/* Stops delivering the request body to its sink (no on_end follows) when the answer is
 * complete before the body: the rest is not read and the connection closes after the
 * response. A no-op when no body is being read. */
void conn_req_drop_body(struct conn_req *req);

/* A streamed response failed midway: closes the connection at once, so the client sees
 * a cut-off body rather than a short file that looks complete. on_gone is not called. */
void conn_req_abort(struct conn_req *req);

/* What the request log line says about one finished request (all borrowed). */
struct conn_req_log {
    const char *id;
    const char *trace_id;      /* 32 hex digits */
    const char *method;        /* NULL when the head was refused before it parsed */
    const char *path;          /* target without the query string; not NUL-terminated */
    size_t path_len;
    const char *client;        /* "ip:port" */
    int status;                /* 0 when the client left before a response */
    uint64_t bytes_in;         /* head and body bytes read */
    uint64_t bytes_out;        /* response bytes queued */
    const char *outcome;       /* conn_outcome_name */
    int64_t body_expected;     /* response body length announced; -1 unknown (chunked) */
    uint64_t body_sent;        /* response body bytes handed to the socket */
    int64_t duration_us;       /* from the first byte of the head to the end */
    const char *error_code;    /* NULL unless reply_error answered */
    const char *error_message;
};

#endif
