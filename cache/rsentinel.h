/* rsentinel: finds the current Redis master through Redis Sentinel. One ask walks the
 * sentinel list once, starting with the sentinel that answered last, sending
 * `SENTINEL get-master-addr-by-name <name>` on a short-lived connection to each in turn
 * (each try bounded by timeout_ms). The reply parsers at the bottom are pure (no I/O).
 * Invariant: an accepted ask calls back exactly once, never from inside rsentinel_ask,
 * unless cancelled (rsentinel_cancel / rsentinel_free), which calls back never. */
#ifndef FOGATE_RSENTINEL_H
#define FOGATE_RSENTINEL_H

#include <stdbool.h>
#include <stddef.h>
#include <hiredict/hiredict.h>

struct event_base;
struct rsentinel;

struct rsentinel_addr {
    const char *host; /* borrowed; IP literal (a name is resolved with getaddrinfo) */
    int port;
};

/* Every pointer is borrowed for rsentinel_new only (it copies; the password copy is
 * wiped on free). */
struct rsentinel_options {
    const char *master_name;
    const struct rsentinel_addr *addrs;
    size_t n_addrs;              /* at least 1 */
    const char *username;        /* ACL user on the sentinels; NULL = AUTH with password only */
    const char *password;        /* NULL = no AUTH */
    bool tls;
    const char *tls_ca_file;     /* NULL = system store */
    const char *tls_server_name; /* NULL = each sentinel's host */
    int timeout_ms;              /* one try: connect + AUTH + the question; 0 = 2000 */
};

/* The answer: on success why == NULL and host/port name the master (host is valid only
 * during the call); on failure host == NULL and why says what the last try saw. The
 * callback must not free the rsentinel. */
typedef void rsentinel_cb(void *arg, const char *host, int port, const char *why);

/* A new asker on `base` (borrowed, must outlive it). Returns NULL if an option is invalid
 * or the TLS CA cannot be loaded (logged). Free with rsentinel_free. */
struct rsentinel *rsentinel_new(struct event_base *base, const struct rsentinel_options *o);

/* Cancels an ask in flight (no callback) and frees everything. NULL is a no-op. */
void rsentinel_free(struct rsentinel *s);

/* Starts an ask; cb(arg, ...) runs once, later. Returns 0, or -1 if an ask is already
 * in flight (cb is never called then). */
int rsentinel_ask(struct rsentinel *s, rsentinel_cb *cb, void *arg);

/* Drops an ask in flight without calling back. No-op when idle. */
void rsentinel_cancel(struct rsentinel *s);

/* "host:port" of the sentinel that answered last, "" before the first answer. Borrowed. */
const char *rsentinel_last(const struct rsentinel *s);

/* ---- pure helpers ---- */

/* Parses the reply to SENTINEL get-master-addr-by-name: an array of two strings
 * (IP, port). Copies the host into host (cap bytes) and sets *port. Returns 0, or -1 with
 * why (whylen bytes) set: a nil reply (unknown master name), an error reply, or a
 * malformed one. */
int rsentinel_parse_master(const redictReply *r, char *host, size_t cap, int *port,
                           char *why, size_t whylen);

enum rsentinel_role { RSENTINEL_MASTER, RSENTINEL_REPLICA, RSENTINEL_SENTINEL,
                      RSENTINEL_UNKNOWN };

/* The role in a ROLE reply (first element "master", "slave" or "sentinel"). */
enum rsentinel_role rsentinel_parse_role(const redictReply *r);

/* True iff `r` is an error saying the server is a read-only replica (-READONLY ...),
 * which is how a demoted master answers writes after a failover. */
bool rsentinel_is_readonly(const redictReply *r);

/* Writes "host:port" ("[v6]:port" for IPv6) into buf (cap bytes). */
void rsentinel_format_addr(char *buf, size_t cap, const char *host, int port);

#endif
