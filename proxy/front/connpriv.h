/* connpriv: the private header of the connection module (conn.c: the state machine,
 * heads, responses and closing; connbody.c: the request body; connidle.c: the idle
 * list). Nothing outside proxy/front/conn*.c includes it; everyone else sees conn.h.
 * Invariant: a struct conn is freed only by the outermost conn_leave() after conn_kill(). */
#ifndef FOGATE_CONNPRIV_H
#define FOGATE_CONNPRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conn.h"
#include "slab.h"
#include "tracectx.h"
#include "deadline.h"
#include "h1body.h"
#include "http1.h"


#define OUT_HIGH (64 * 1024)        /* unsent output above which the next request waits */
#define DISCARD_MAX (1024 * 1024)   /* unread body we still read and drop to keep a connection */
#define LINGER_MS 2000              /* read and drop after the last response, then close */
#define LINGER_MAX_BYTES (1024 * 1024)
#define READ_SLACK (16 * 1024)      /* input kept beyond max_header_bytes (pipelining) */
#define STREAM_HIGH (256 * 1024)    /* streamed response: unsent bytes before the caller waits */
#define HOLD_MAX (16 * 1024)        /* a streamed body up to this long: its head waits for it */
#define STREAM_READ (128 * 1024)    /* most request body bytes read by one recv */
#define FLUSH_BYTES (256 * 1024)    /* queued response bytes written at once, not at turn's end */
#define FLUSH_IOV 64                /* most pieces of the output in one sendmsg */
#define HEAD_INLINE 1024            /* request head bytes in the header array's block */
#define HEAD_OUT_BLOCK 2048         /* a response head's buffer from conn_list.held */

enum state { ST_HEAD, ST_HANDLING, ST_CLOSING, ST_LINGER, ST_DEAD };
enum { DL_HEAD = 1, DL_IDLE, DL_BODY, DL_LINGER }; /* deadline kinds */

struct conn_req {
    struct conn *conn;          /* borrowed: the connection this request came on */
    struct http1_head head;     /* slices point into conn->head_buf */
    struct h1body body;
    bool parsed;
    bool responded;
    bool continue_sent;
    bool body_active;           /* a sink (or the discarder) is reading the body */
    bool body_failed;
    bool body_over;             /* the body went over body_limit */
    bool body_paused;           /* conn_req_pause_body: on_data withheld */
    bool streaming;             /* conn_req_start was called, conn_req_end not yet */
    bool stream_chunked;
    bool stream_nobody;         /* HEAD, 204 or 304: the body is not sent */
    bool stream_wait;           /* conn_req_write said 1; on_drained is owed */
    int64_t stream_left;        /* Content-Length still to send; -1 when not counted */
    char *held_head;            /* owned: a small response's head, sent with its body */
    size_t held_len;
    bool held_cached;           /* held_head is a HEAD_OUT_BLOCK from conn_list.held */
    struct conn_req_events ev;
    struct conn_body_sink sink;
    uint64_t body_limit;
    uint64_t body_limit_req;    /* conn_req_set_body_limit; 0 = server's */
    uint64_t body_bytes;        /* decoded body bytes so far */
    char id[TRACECTX_REQUEST_ID_MAX + 1]; /* the client's X-Request-Id, or ours (16 hex) */
    struct tracectx trace;      /* the client's traceparent's trace, or a new one */
    uint8_t route;              /* conn_req_set_route: the metrics' route index */
    int64_t start_us;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t body_out;          /* response body bytes queued */
    int64_t body_expected;      /* announced body length; -1 unknown */
    int status;
    void *hold;                 /* borrowed: conn_req_hold, released at the request's end */
    const char *error_code;     /* static string; NULL unless reply_error answered */
    char error_message[160];
};

struct conn {
    struct conn_server *srv;    /* borrowed */
    const struct conn_options *opt; /* borrowed from srv */
    struct conn_list *list;     /* borrowed: the list this connection is on */
    struct conn *prev, *next;   /* list links */
    struct conn *idle_prev, *idle_next; /* idle list links, when is_idle */
    bool is_idle;               /* on the list's idle list */
    bool parked;                /* idle and stripped to park_ev (connidle.c): no bev, req, timer */
    struct bufferevent *bev;    /* owned while not parked; does not close the socket */
    struct deadline dl;         /* the one current deadline; its timer owned while not parked */
    evutil_socket_t fd;
    enum state state;
    int busy;                   /* nesting depth of entry points */
    bool closing;               /* close after the current response */
    bool peer_eof;
    bool in_process;            /* inside process_input: do not recurse into it */
    bool head_started;          /* bytes of the next head have arrived */
    bool write_enabled;         /* the bufferevent writes the queued output when it can */
    bool body_direct;           /* body_ev reads the body; the bufferevent does not read */
    bool in_feed;               /* read_direct is feeding body_buf to the body */
    bool log_pending;           /* answered, but the log line waits for the output to drain */
    enum conn_outcome why;      /* what conn_kill logs for a request in flight */
    size_t scanned;             /* http1_head_find resume point */
    uint64_t linger_bytes;
    char *head_buf;             /* owned: the current head, copied out of the input; in the
                                 * headers' block while it fits (HEAD_INLINE), else its own */
    size_t head_cap;
    struct http1_header *headers; /* owned: opt.head.max_headers entries, at the start of a
                                 * block from list->heads of head_block bytes */
    size_t head_block;
    struct event *body_ev;      /* owned, made on first use: direct reads of a request body */
    char *body_buf;             /* owned while a body is read directly: STREAM_READ bytes */
    struct event *flush_ev;     /* owned, made on first use: writes queued output once a turn */
    struct event *park_ev;      /* in this object (after the struct), assigned on first park:
                                 * readable or the deadline, while parked */
    struct conn_req *req;       /* owned while not parked: the current or next request */
    char client[64];
    union {                     /* the client's address as accepted */
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
};

/* ---- conn.c, for connbody.c ---- */

/* Entry and exit of every callback: the connection is freed by the outermost leave once
 * conn_kill marked it dead. */
void conn_enter(struct conn *c);
void conn_leave(struct conn *c);

/* Ends the connection now (see conn.c); a request in flight is logged as aborted, or with
 * `why` through conn_kill_why. */
void conn_kill(struct conn *c);
void conn_kill_why(struct conn *c, enum conn_outcome why);

/* The current request is answered and its body read: keep-alive or close. */
void conn_request_done(struct conn *c);

/* Writes iov[0..n) now, as far as the socket takes it; the rest is queued. */
void conn_send_iov(struct conn *c, struct iovec *iov, int n);

/* True while the request has body bytes nobody has read or dropped yet. */
bool conn_body_unread(const struct conn_req *r);

/* Gives the connection what it needs to read and answer requests: its bufferevent
 * (reading), its request and its timer (re-armed for the current deadline). Returns 0, or
 * -1 on allocation failure (then it has none of them). */
int conn_attach(struct conn *c, struct event_base *base);

/* Frees what conn_attach gave, and the body and flush events (for parking: the connection
 * must be idle, with nothing queued either way). The deadline is kept. */
void conn_detach(struct conn *c);

/* The room for the park event in c's object (see conn_list_init); event_assign it. */
struct event *conn_park_event(struct conn *c);

/* ---- connidle.c, for conn.c ---- */

/* Puts the connection at the idle list's end if it is idle (ST_HEAD, no byte of a next
 * head, no output queued); a no-op otherwise or when already there. */
void conn_idle_enter(struct conn *c);

/* Takes the connection off the idle list (a no-op when not on it). */
void conn_idle_leave(struct conn *c);

/* ---- connbody.c, for conn.c ---- */

/* Reading goes back to the bufferevent (the body ended, failed or was dropped). */
void connbody_stop(struct conn *c);

/* The body cannot be read to its end: the sink hears of it first, then the client gets
 * status/code/message unless answered; the connection closes. */
void connbody_failed(struct conn *c, int status, const char *code, const char *message);

/* Feeds what the input holds to the body, and reads on when it needs more. */
void connbody_pump(struct conn *c);

#endif
