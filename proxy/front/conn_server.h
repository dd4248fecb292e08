/* conn_server: the client connections behind one listening socket: a connection cap,
 * request ids, the cached Date header, and graceful drain on shutdown.
 * At the cap the longest-idle keep-alive connection is closed to make room, and with none
 * idle accepting pauses (new connections wait in the kernel's backlog) until one is.
 * Invariant: on_drained is called at most once, when the last connection has closed or
 * the grace period has ended (then every connection left is closed first). */
#ifndef FOGATE_CONN_SERVER_H
#define FOGATE_CONN_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <sys/socket.h>

#include "http1.h"

struct conn_server;
struct conn_req;

struct conn_options {
    struct http1_limits head;  /* request head size and header count */
    uint64_t max_body_bytes;   /* larger bodies get 413 (by Content-Length, before reading) */
    unsigned max_connections;  /* at it: shed idle keep-alive, or leave new ones in the backlog */
    unsigned max_per_ip;       /* most connections from one address; 0 = no limit */
    unsigned head_timeout_ms;  /* absolute deadline for a whole head, from its first byte */
    unsigned idle_timeout_ms;  /* keep-alive wait, body and send progress */
    bool reuseport;            /* listen with SO_REUSEPORT (one listener per worker) */
};

/* Called once for each accepted request head. The handler answers at once (reply_*), or
 * later (conn_req_respond or a streamed response) after setting conn_req_set_events so
 * that it hears, through on_gone, of a client that went away meanwhile. */
typedef void (*conn_on_request)(struct conn_req *req, void *arg);

/* Creates a server on `base` (borrowed, must outlive it). `opt` is copied. Returns NULL
 * on allocation failure. Free with conn_server_free. */
struct conn_server *conn_server_new(struct event_base *base, const struct conn_options *opt,
                                    conn_on_request on_request, void *arg);

/* Closes the listener and every connection, then frees. NULL is a no-op. */
void conn_server_free(struct conn_server *srv);

/* Binds and listens on host (an IP literal, IPv6 without brackets) and port (0 = any free
 * port). Writes the bound address ("127.0.0.1:41234", "[::1]:8080") to bound. Returns 0,
 * or -1 with errno set. */
int conn_server_listen(struct conn_server *srv, const char *host, int port, char *bound,
                       size_t bound_len);

/* Graceful stop: stops accepting, closes idle connections, lets requests in flight finish
 * (their responses carry Connection: close). Calls on_drained(arg) once, when no
 * connection is left or after grace_ms, whichever comes first. */
void conn_server_drain(struct conn_server *srv, unsigned grace_ms,
                       void (*on_drained)(void *arg), void *arg);

/* Sets the callback that gets back what a request held (conn_req_hold) when it ends;
 * `arg` is the one given to conn_server_new. */
void conn_server_on_release(struct conn_server *srv, void (*release)(void *hold, void *arg));

/* Number of open client connections. */
size_t conn_server_count(const struct conn_server *srv);

/* Why the connection cap closed or held back a connection. */
enum conn_shed_reason {
    CONN_SHED_IDLE,            /* an idle keep-alive connection closed to make room */
    CONN_SHED_HOLD,            /* accepting paused: at the cap with no connection idle */
    CONN_SHED_REFUSED,         /* accepted at the cap with nothing to shed, closed at once */
    CONN_SHED_PER_IP,          /* over max_per_ip for its address, closed at once */
    CONN_SHED_REASONS
};

/* The connection counters of one server (one worker); plain numbers, summed by whoever
 * reads several workers. */
struct conn_server_stats {
    uint64_t accepted;                   /* connections accepted */
    uint64_t shed[CONN_SHED_REASONS];    /* by reason; HOLD counts pauses, not connections */
    uint64_t cap_episodes;               /* times the cap was reached (each logged once) */
    bool at_cap;                         /* an episode is under way */
};

/* The server's counters (borrowed, live as long as srv, updated in place). */
const struct conn_server_stats *conn_server_stats(const struct conn_server *srv);

/* ---- for conn.c ---- */

/* The options (borrowed, live as long as srv). */
const struct conn_options *conn_server_options(const struct conn_server *srv);

/* True once conn_server_drain was called. */
bool conn_server_draining(const struct conn_server *srv);

/* Writes a new request id (16 lower-case hex characters and a NUL) to out. */
void conn_server_request_id(struct conn_server *srv, char out[17]);

/* The current Date header value (borrowed; changes once per second). */
const char *conn_server_date(struct conn_server *srv);

/* Hands an accepted request to the on_request callback. */
void conn_server_dispatch(struct conn_server *srv, struct conn_req *req);

/* Hands a request's hold to the release callback (for conn.c). */
void conn_server_release(struct conn_server *srv, void *hold);

/* Told by conn.c after a connection from `peer` (its address as accepted) was freed. */
void conn_server_closed(struct conn_server *srv, const struct sockaddr *peer);

/* Told by conn.c when a connection became idle (it can be shed at the cap) or stopped
 * being idle. */
void conn_server_idle_changed(struct conn_server *srv);

#endif
