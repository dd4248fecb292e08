/* h1conn: the connections of fogate's own HTTP/1.1 upstream client and their pool: a
 * non-blocking socket on the loop with its events, its response reader (h1resp) and
 * receive buffer, and a small transport (plain TCP here; TLS plugs in
 * as another h1conn_io) so the HTTP logic never touches the socket.
 * Invariant: a connection is either owned by one transfer (`owner`) or idle in the pool;
 * an idle one is closed when the peer closes or sends anything, or after the idle time. */
#ifndef FOGATE_H1CONN_H
#define FOGATE_H1CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <event2/event.h>
#include <event2/util.h>

#include "h1resp.h"

#define H1CONN_KEY_MAX 256     /* "scheme://host:port" of a pooled connection */

/* What a transport's read and write return besides a byte count (> 0). The values are
 * those of h1tls.h, so a TLS session passes its codes through. */
enum { H1CONN_ERROR = -1, H1CONN_WANT_READ = -2, H1CONN_WANT_WRITE = -3, H1CONN_EOF = -4 };

struct h1conn;

/* A transport: plain TCP, or TLS over it (h1tls). */
struct h1conn_io {
    ssize_t (*read)(struct h1conn *c, void *buf, size_t len);
    ssize_t (*write)(struct h1conn *c, const void *buf, size_t len);
    size_t (*pending)(const struct h1conn *c); /* read bytes buffered above the socket */
};

struct h1conn_pool;
struct h1tls;
struct h1dns_req;

struct h1conn {
    struct h1conn_pool *pool;              /* borrowed owner */
    struct h1conn *prev, *next;            /* in the pool's list, most recently idle first */
    char key[H1CONN_KEY_MAX];
    const char *authority;                 /* borrowed from key: "host[:port]" */
    int fd;
    struct h1dns_req *dns_req;             /* owned while the name is being resolved */
    struct evutil_addrinfo *addrs;         /* owned: the host's addresses */
    struct evutil_addrinfo *next_addr;     /* borrowed from addrs: tried next */
    const struct h1conn_io *io;            /* borrowed, static */
    struct h1tls *tls;                     /* owned: the session of an https connection */
    struct event *rd, *wr, *tm, *kick;     /* owned; rd persists, also while idle */
    void *owner;                           /* borrowed: the transfer on it, NULL while idle */
    bool connecting, idle, reused, rd_off;
    bool failed;                           /* no connection could be made */
    bool is_tls, handshaking;
    bool tls_failed;                       /* with failed: the handshake or verification */
    bool unclean_eof;                      /* TLS EOF without close_notify */
    bool peer_closed;                      /* EOF seen: never kept */
    char error[160];                       /* with tls_failed: why (never a secret) */
    int last_errno;                        /* of the last H1CONN_ERROR */
    struct h1resp resp;
    char *in;                              /* owned: [in_off, in_len) unparsed */
    size_t in_off, in_len, in_cap;
};

/* A transfer waiting for a connection (embedded in it; see h1conn_get). */
struct h1conn_waiter {
    struct h1conn_waiter *next;            /* in the pool's FIFO */
    const char *key;                       /* borrowed from the owner */
    void *owner;                           /* borrowed */
};

/* The client's handlers for a connection that has an owner (arg = the h1conn). */
struct h1conn_cbs {
    /* A waiter got `c` (now owned by it), or NULL when opening one ran out of memory. Runs
     * from inside h1conn_idle / h1conn_close: it must not close or idle a connection. */
    void (*on_granted)(void *owner, struct h1conn *c);
    void (*on_read)(struct h1conn *c);     /* readable (or the connect ended, then on_write) */
    void (*on_write)(struct h1conn *c);    /* writable, or connecting (TCP, then TLS) ended */
    void (*on_timer)(struct h1conn *c);    /* the timer armed with h1conn_timer */
    void (*on_kick)(struct h1conn *c);     /* h1conn_kick: a turn of the loop later */
};

/* A new pool on `base` (borrowed); each connection gets a `recv_bytes` receive buffer; at
 * most `host_limit` connections per key and `total_limit` in all (0 = no limit); https
 * peers verified against `ca_file` (borrowed, must outlive the pool; NULL = the system
 * store; loaded at the first https connection). `cbs` is copied. NULL on failure. */
struct h1conn_pool *h1conn_pool_new(struct event_base *base, size_t recv_bytes,
                                    long host_limit, long total_limit, const char *ca_file,
                                    const struct h1conn_cbs *cbs);

/* Closes every connection and frees the pool; owners must have let go first. NULL: no-op. */
void h1conn_pool_free(struct h1conn_pool *p);

/* A connection to w->key for w->owner: the most recently idle one, or a new one (see
 * h1conn_open) when the limits allow (an idle one to another key is closed to make room
 * under the total limit). Returns NULL with *queued false when memory ran out, NULL with
 * *queued true when `w` now waits in the pool's FIFO: on_granted hands it a connection
 * when one is let go. `w` must stay valid until then or until h1conn_cancel. */
struct h1conn *h1conn_get(struct h1conn_pool *p, struct h1conn_waiter *w, bool *queued);

/* Takes a waiting `w` out of the FIFO; a no-op if it is not in it. */
void h1conn_cancel(struct h1conn_pool *p, struct h1conn_waiter *w);

/* Starts connecting to `key` ("http://host[:port]" or "https://host[:port]", ports 80 and
 * 443 by default; https: the TLS handshake is part of connecting) for `owner`,
 * whatever the limits (a retry replacing a dead connection): a name is resolved without
 * blocking (h1dns), its addresses are tried in turn, and on_write tells the owner when the
 * connection is up or none could be made (`failed`). One that could not even start comes
 * back with `failed` set, so that the failure is reported from the loop like any other;
 * NULL only when memory ran out or the key is malformed. */
struct h1conn *h1conn_open(struct h1conn_pool *p, const char *key, void *owner);

/* Back to the pool after a complete exchange (or closed when the pool holds enough idle
 * ones); the owner lets go. A waiter may be granted a connection from inside. */
void h1conn_idle(struct h1conn *c);

/* Closes the socket and frees `c`. A waiter may be granted a connection from inside. */
void h1conn_close(struct h1conn *c);

/* Through the transport: > 0 bytes, or an H1CONN_ code (EOF, WANT_*, ERROR). */
ssize_t h1conn_read(struct h1conn *c, void *buf, size_t len);
ssize_t h1conn_write(struct h1conn *c, const void *buf, size_t len);

/* Bytes already read from the socket but not yet by the caller (TLS records): they will
 * not make the socket readable again, so a reader goes on while this is > 0. */
size_t h1conn_pending(const struct h1conn *c);

/* Waits for writability once (a short write, a connect under way). */
void h1conn_want_write(struct h1conn *c);

/* Stops or restarts reading (a paused consumer). */
void h1conn_read_off(struct h1conn *c);
void h1conn_read_on(struct h1conn *c);

/* Arms the connection's timer in `us` microseconds (>= 1 ms), or stops it (us < 0). */
void h1conn_timer(struct h1conn *c, long long us);

/* Runs on_kick from the loop on its next turn (several kicks before it: one call). */
void h1conn_kick(struct h1conn *c);

#endif
