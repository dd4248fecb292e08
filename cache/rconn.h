/* rconn: one Redis connection on a libevent loop (hiredict), shared by every feature that
 * keeps state in Redis. It connects (TCP, unix socket or TLS; directly or to the master
 * Redis Sentinel names), authenticates, selects the database, reconnects with capped
 * jittered backoff, and gives every command its own timeout. Invariant: each accepted command's callback runs exactly once, never from
 * inside the call that queued it, and never after rconn_free returns.
 * Not supported on this connection: SUBSCRIBE/PSUBSCRIBE/MONITOR (they break the
 * one-reply-per-command rule). The process must ignore SIGPIPE. */
#ifndef FOGATE_RCONN_H
#define FOGATE_RCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <hiredict/hiredict.h>

#include "statcell.h"

struct event_base;
struct evdns_base;
struct rconn;
struct rsentinel_options;

/* Plain options, filled by proxy/ from the config. Every string is borrowed for the
 * duration of rconn_new only (it copies them; the password copy is wiped on free).
 * Zero or NULL means the default noted. */
struct rconn_options {
    const char *host;            /* borrowed; IP literal, or a name resolved at each connect */
    struct evdns_base *dns;      /* borrowed, must outlive the rconn: resolves host names
                                    without blocking; NULL = hiredict's blocking getaddrinfo */
    int port;                    /* 0 = 6379 */
    const char *unix_path;       /* borrowed; when set, used instead of host/port */
    int db;                      /* SELECT db after AUTH when > 0 */
    const char *username;        /* borrowed; ACL user, NULL = AUTH with password only */
    const char *password;        /* borrowed; NULL = no AUTH */
    bool tls;                    /* rediss: TCP only */
    const char *tls_ca_file;     /* borrowed; PEM bundle, NULL = system store */
    const char *tls_server_name; /* borrowed; name (or IP) the certificate must match, NULL = host */
    int connect_timeout_ms;      /* connect + TLS + AUTH + SELECT; 0 = 2000 */
    int command_timeout_ms;      /* default per-command timeout, and the stall limit; 0 = 1000 */
    int reconnect_min_ms;        /* first backoff; 0 = 100 */
    int reconnect_max_ms;        /* backoff cap; 0 = 5000 */
    size_t max_pending;          /* commands in flight before RCONN_OVERLOADED; 0 = 65536 */
    size_t max_reply_bytes;      /* more unparsed reply bytes than this (checked before each
                                    16 KiB read) drop the connection; 0 = 64 MiB */
    const struct rsentinel_options *sentinel; /* borrowed for rconn_new; non-NULL: before
                                    each (re)connect ask these sentinels for the master
                                    (host, port, unix_path unused), check ROLE is master,
                                    and reconnect through them on a READONLY reply */
};

/* How a command ended. RCONN_OK carries the reply, which may itself be a Redis error
 * (reply->type == REDICT_REPLY_ERROR). Every other result comes with reply == NULL. */
enum rconn_result {
    RCONN_OK,
    RCONN_TIMEOUT,       /* no reply within the command's timeout; a late reply is dropped */
    RCONN_DISCONNECTED,  /* the connection was lost while the command was in flight */
    RCONN_NOT_CONNECTED, /* not connected when queued: failed fast, nothing was sent */
    RCONN_CANCELLED,     /* rconn_free ran while the command was pending */
    RCONN_OVERLOADED,    /* max_pending commands already in flight: nothing was sent */
};

/* `reply` (may be NULL) is owned by hiredict and valid only during the call. */
typedef void rconn_cb(void *arg, enum rconn_result res, const redictReply *reply);

/* A short stable name for `res` ("ok", "timeout", ...). */
const char *rconn_result_str(enum rconn_result res);

/* Creates the connection on `base` (borrowed, must outlive it) and starts connecting at
 * once. Returns the handle (free with rconn_free), or NULL if the options are invalid or
 * the TLS CA file cannot be loaded (the reason is logged). */
struct rconn *rconn_new(struct event_base *base, const struct rconn_options *opts);

/* Closes the connection. Every pending callback is called once with RCONN_CANCELLED
 * before this returns; commands queued from those callbacks are refused (-1). NULL is a
 * no-op. Must not be called from inside one of this connection's callbacks. */
void rconn_free(struct rconn *c);

/* Queues a command in hiredict's format (%s, %b with pointer + size_t, %d, ...).
 * timeout_ms <= 0 uses the connection's command_timeout_ms.
 * Returns 0: cb(arg, ...) will be called exactly once, later.
 * Returns -1 (cb is never called): cb is NULL, the format is invalid, memory ran out,
 * or the connection is being freed. */
int rconn_command(struct rconn *c, rconn_cb *cb, void *arg, int timeout_ms, const char *fmt, ...);

/* Same as rconn_command with an argument vector (binary safe). argv and argvlen are
 * borrowed for the call; argvlen NULL means strlen of each argument. */
int rconn_command_argv(struct rconn *c, rconn_cb *cb, void *arg, int timeout_ms, int argc,
                       const char **argv, const size_t *argvlen);

/* A Lua script known by its SHA1, computed locally. */
struct rconn_script {
    const char *body; /* borrowed: must outlive every rconn_eval that uses the script */
    char sha1[41];    /* lowercase hex, NUL-terminated */
};

/* Fills `s` for `body` (borrowed). Returns 0, or -1 if hashing fails. */
int rconn_script_init(struct rconn_script *s, const char *body);

/* Runs `s` with EVALSHA; on NOSCRIPT it sends EVAL once with the remaining time. The
 * caller sees one callback, with the same contract as rconn_command. The first `nkeys`
 * of the `argc` arguments are keys; argv/argvlen as in rconn_command_argv. */
int rconn_evalv(struct rconn *c, const struct rconn_script *s, rconn_cb *cb, void *arg,
                int timeout_ms, int nkeys, int argc, const char **argv, const size_t *argvlen);

/* rconn_evalv with C-string arguments given inline and terminated by NULL (at most 32). */
int rconn_eval(struct rconn *c, const struct rconn_script *s, rconn_cb *cb, void *arg,
               int timeout_ms, int nkeys, ...) __attribute__((sentinel));

/* A snapshot for health endpoints. */
struct rconn_health {
    bool connected;          /* authenticated, db selected, accepting commands */
    int64_t since_unix_ms;   /* wall clock of the last change of `connected` */
    unsigned long connects;  /* successful handshakes since rconn_new */
    unsigned long failures;  /* failed attempts and lost connections since rconn_new */
    size_t in_flight;        /* commands sent and not yet answered (or timed out) */
    char last_error[192];    /* most recent error, "" if none; never holds the password */
    char address[160];       /* server connected to or last tried (host:port, unix:path) */
    char named_by[272];      /* Sentinel: host:port of the sentinel that named it, else "" */
};

/* Fills *out. */
void rconn_get_health(const struct rconn *c, struct rconn_health *out);

/* Counters for metrics (statcell.h: written by the connection's thread, read anywhere). */
#define RCONN_RESULTS 6
struct rconn_stats {
    statgauge up;                /* 1 while connected and ready */
    statcell connects;           /* handshakes completed (reconnects = connects - 1) */
    statcell failovers;          /* Sentinel named a master other than the last one */
    statcell results[RCONN_RESULTS]; /* commands by enum rconn_result */
    struct stathist latency;     /* sent -> reply (RCONN_OK only) */
};

/* The connection's counters (borrowed, live as long as c). */
const struct rconn_stats *rconn_stats(const struct rconn *c);

/* Registers cb(arg, connected) (both borrowed), called on every change of `connected`.
 * NULL removes it. The callback may queue commands. */
void rconn_set_state_cb(struct rconn *c, void (*cb)(void *arg, bool connected), void *arg);

#endif
