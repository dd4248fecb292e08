/* upstream: every outbound HTTP call of fogate (D365, token endpoints) goes through here:
 * libcurl multi on the caller's libevent loop (or, with UPSTREAM_CLIENT_NATIVE, fogate's
 * own client for the transfers it can carry: h1up.h), HTTP/1.1 with keep-alive,
 * TLS verified, no redirects followed, bodies streamed both ways with backpressure.
 * Invariant: memory per transfer is bounded by the configured buffer sizes, never by body
 * size, and on_done is called exactly once per transfer unless it was aborted first. */
#ifndef FOGATE_UPSTREAM_H
#define FOGATE_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "uphead.h"

struct upstream;
struct upstream_xfer;

/* Call once per process at start-up, before any thread or upstream_new
 * (curl_global_init). Returns 0 or -1. */
int upstream_global_init(void);

/* Call once at exit, after the last upstream_free. */
void upstream_global_cleanup(void);

enum upstream_client {
    UPSTREAM_CLIENT_CURL,        /* libcurl for every transfer (opts zeroed; fogate's config
                                    default is native) */
    UPSTREAM_CLIENT_NATIVE,      /* fogate's own HTTP/1.1 client (h1up.h) where it can
                                    carry the transfer, libcurl elsewhere */
};

struct upstream_opts {
    enum upstream_client client;
    long max_host_connections;   /* per host:port at once; 0 = no limit */
    long max_total_connections;  /* 0 = no limit */
    const char *ca_file;         /* borrowed, copied; NULL = system trust store */
    const char *proxy;           /* borrowed, copied; NULL or "" = none (env ignored) */
    bool allow_http;             /* also allow http:// (tests only); default https only */
    size_t max_header_bytes;     /* cap on a response head, 1xx included; 0 = 64 KiB */
    size_t send_buffer_bytes;    /* request body buffer per transfer; 0 = 128 KiB */
    size_t recv_buffer_bytes;    /* libcurl receive buffer per transfer; 0 = 64 KiB */
    size_t bulk_buffer_bytes;    /* that of a bulk transfer (upstream_req.bulk); 0 = 256 KiB */
    unsigned max_bulk_buffers;   /* bulk transfers with it at once (the others get
                                    recv_buffer_bytes); 0 = 4 */
    unsigned connect_timeout_ms; /* default when a request gives 0; 0 = 10 s */
    unsigned total_timeout_ms;   /* default when a request gives 0; 0 = 60 min */
    unsigned first_byte_timeout_ms; /* default when a request gives 0; 0 = none */
    unsigned stall_timeout_ms;   /* default when a request gives 0; 0 = none */
};

/* A new client on `base` (borrowed, must outlive it); `opts` is copied. NULL on failure.
 * Free with upstream_free. */
struct upstream *upstream_new(struct event_base *base, const struct upstream_opts *opts);

/* Stops every live transfer without calling its on_done, closes all connections and frees
 * `up`. Never call it from one of this module's callbacks. NULL is a no-op. */
void upstream_free(struct upstream *up);

enum upstream_result {
    UPSTREAM_OK,             /* final status and the whole body delivered */
    UPSTREAM_CONNECT_FAILED, /* name not resolved, connection refused or unreachable */
    UPSTREAM_TIMEOUT,        /* connect or total timeout */
    UPSTREAM_TLS_FAILED,     /* handshake or certificate verification */
    UPSTREAM_TRUNCATED,      /* upstream closed mid-body: the client must see an error */
    UPSTREAM_ABORTED,        /* never passed to on_done (see upstream_abort); for names */
    UPSTREAM_TOO_LARGE,      /* response head over max_header_bytes, or fetch body over cap */
    UPSTREAM_OTHER,          /* anything else; see the error text */
    UPSTREAM_FIRST_BYTE,     /* the whole request went out, no response byte came within
                                first_byte_ms: the peer may have acted on the request */
    UPSTREAM_STALLED,        /* no byte moved either way for stall_ms (fogate's own waits,
                                paused reads and a request body not yet pushed, excluded) */
};

/* "OK", "CONNECT_FAILED", ... */
const char *upstream_result_name(enum upstream_result r);

/* What on_done receives; everything is borrowed and valid during the callback only. */
struct upstream_done {
    enum upstream_result result;
    const char *error;           /* "" when OK; libcurl's text, never with a URL query */
    int status;                  /* final status, 0 if no complete head arrived */
    const struct uphead *head;   /* final response head, NULL if none */
    const char *body;            /* upstream_fetch only: the response body (NUL-terminated) */
    size_t body_len;
    long connects;               /* connections this transfer opened (0 = one reused) */
    uint64_t bytes_sent;         /* request body bytes handed to libcurl */
    uint64_t bytes_received;     /* response body bytes delivered */
    bool request_sent;           /* the whole request (body included) was handed to the
                                    connection: the peer may have received it */
};

enum upstream_flow { UPSTREAM_CONTINUE, UPSTREAM_PAUSE };

/* A transfer's callbacks; any may be NULL except on_done. `arg` is borrowed. Callbacks may
 * call upstream_abort on their own transfer, and any function on other transfers. */
struct upstream_cbs {
    /* The final response head arrived (interim 1xx heads are skipped). */
    void (*on_head)(void *arg, const struct uphead *head);
    /* `len` (> 0) body bytes, borrowed during the call; the callee has taken them whatever
     * it returns. UPSTREAM_PAUSE: deliver nothing more until upstream_resume_recv. */
    enum upstream_flow (*on_body)(void *arg, const char *data, size_t len);
    /* The request body buffer drained after an upstream_send that could not take all it was
     * offered (or found no space): push more. */
    void (*on_send_space)(void *arg);
    /* Exactly once, from the event loop, unless aborted first. The transfer is freed right
     * after it returns: forget the upstream_xfer pointer. */
    void (*on_done)(void *arg, const struct upstream_done *done);
    void *arg;
};

#define UPSTREAM_BODY_NONE (-1)    /* no request body (GET, HEAD, DELETE ...) */
#define UPSTREAM_BODY_CHUNKED (-2) /* body of unknown length: Transfer-Encoding: chunked */

/* Per-request limits; 0 = the upstream's default (upstream_opts). first_byte_ms and
 * stall_ms are watched by a timer that progress pushes back (exact, unlike libcurl's
 * per-second low-speed average): first_byte_ms runs from the last request byte to the
 * first response byte, stall_ms whenever else the transfer is under way. Time in which
 * fogate itself holds the transfer (receive paused by the consumer, request body not yet
 * pushed by the caller, waiting for a connection) never counts. UPSTREAM_NO_LIMIT turns
 * one off for this request. */
#define UPSTREAM_NO_LIMIT 0xffffffffu
struct upstream_timeouts {
    unsigned connect_ms;         /* TCP + TLS handshake */
    unsigned total_ms;           /* whole transfer, paused time included */
    unsigned first_byte_ms;      /* request sent -> first response byte */
    unsigned stall_ms;           /* longest time without a byte either way */
};

struct upstream_req {
    const char *method;          /* token, e.g. "GET", "POST", "PUT" */
    const char *url;             /* https://host[:port]/path?query (query never logged) */
    const char *const *headers;  /* "Name: value" lines, sent exactly; copied */
    size_t n_headers;
    int64_t body_len;            /* >= 0: Content-Length; or UPSTREAM_BODY_NONE/_CHUNKED */
    struct upstream_timeouts timeouts;
    bool bulk;                   /* a large response body is likely (a file download): the
                                    larger receive buffer, while max_bulk_buffers allow */
};

/* Starts a streaming transfer. Headers are sent as given, except that Content-Length,
 * Transfer-Encoding and Expect lines are dropped (libcurl sets the first two from
 * body_len; Expect: 100-continue is never used) and libcurl's default Accept is
 * suppressed. Returns the transfer, owned by `up` until on_done returns or
 * upstream_abort is called, or NULL (bad method/header, or no memory) with no callback.
 * No callback runs before this returns. `req` and its strings are copied. */
struct upstream_xfer *upstream_start(struct upstream *up, const struct upstream_req *req,
                                     const struct upstream_cbs *cbs);

/* Stops the transfer; its connection is closed and its callbacks are never called again,
 * on_done included. The pointer is invalid afterwards. From inside one of the transfer's
 * own callbacks the handle is freed on the next loop turn; otherwise at once. NULL is a
 * no-op, and so is a call from inside the transfer's on_done. */
void upstream_abort(struct upstream_xfer *x);

/* Request body: room left in the send buffer (0 after upstream_send_eof, or once a known
 * body_len was fully pushed). A caller reading from a client stops reading at 0 and starts
 * again on on_send_space. */
size_t upstream_send_space(const struct upstream_xfer *x);

/* Copies up to `len` bytes of request body into the send buffer and wakes the upload if it
 * was waiting (this is the "resume send"). Returns how many bytes were taken (<= space). */
size_t upstream_send(struct upstream_xfer *x, const void *data, size_t len);

/* Same, moving bytes out of `src` (the caller's evbuffer, e.g. a bufferevent's input). */
size_t upstream_send_buffer(struct upstream_xfer *x, struct evbuffer *src);

/* The request body is complete. If fewer than a known body_len bytes were pushed the
 * transfer fails (UPSTREAM_OTHER) instead of sending a short body. */
void upstream_send_eof(struct upstream_xfer *x);

/* Undoes an UPSTREAM_PAUSE returned by on_body: delivery restarts from the event loop
 * (never from inside this call). */
void upstream_resume_recv(struct upstream_xfer *x);

/* A small call whose response is buffered whole (token fetch, OData actions, dequeue):
 * `body` (`body_len` bytes, copied; NULL/0 for none) is sent with Content-Length, unless
 * body is NULL and the method is GET/HEAD/DELETE, then without a body. A response body
 * over `max_response_bytes` ends the transfer with UPSTREAM_TOO_LARGE. `on_done(arg, done)`
 * gets done->body. Returns the transfer (abortable) or NULL as upstream_start. */
struct upstream_xfer *upstream_fetch(struct upstream *up, const char *method,
                                     const char *url, const char *const *headers,
                                     size_t n_headers, const void *body, size_t body_len,
                                     size_t max_response_bytes,
                                     struct upstream_timeouts timeouts,
                                     void (*on_done)(void *arg, const struct upstream_done *d),
                                     void *arg);

/* Counters since upstream_new, for benchmarks. */
struct upstream_stats {
    uint64_t transfers_started;   /* as upstream_started, both clients */
    uint64_t native_started;      /* of those, carried by the own client (h1up.h) */
    uint64_t transfers_done;      /* on_done called */
    uint64_t transfers_aborted;
    uint64_t connects;            /* new connections opened (sum of CURLINFO_NUM_CONNECTS) */
    uint64_t bytes_sent;          /* request body bytes */
    uint64_t bytes_received;      /* response body bytes */
    uint64_t socket_events;       /* loop wake-ups for libcurl sockets */
    uint64_t timer_events;        /* loop wake-ups for libcurl's timer */
    uint64_t rearms;              /* socket event re-arms (interest changed) */
    uint64_t sockets;             /* sockets watched in total */
    uint64_t pauses;              /* receive pauses + upload waits */
    uint64_t bulk_buffers;        /* transfers holding the bulk receive buffer now */
    uint64_t bulk_buffers_peak;   /* the most at once */
};

void upstream_stats(const struct upstream *up, struct upstream_stats *out);

/* Transfers started so far (upstream_start and upstream_fetch) by the client that carries
 * them, out[UPSTREAM_CLIENT_CURL] and out[UPSTREAM_CLIENT_NATIVE]. Unlike upstream_stats,
 * safe to call from another thread (relaxed atomic counters, statcell.h): /metrics. */
void upstream_started(const struct upstream *up, uint64_t out[2]);

#endif
