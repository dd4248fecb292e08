/* sdnotify: tells systemd how fogate is doing (the sd_notify(3) datagram protocol:
 * READY=1, RELOADING=1 with MONOTONIC_USEC, STOPPING=1, STATUS=...) on $NOTIFY_SOCKET.
 * The messages are formatted by pure functions; only sdnotify_open and sdnotify_send do
 * I/O. Without NOTIFY_SOCKET the handle is NULL and every send is a no-op.
 * Invariant: one message is one datagram, at most SDNOTIFY_MSG_MAX bytes, never a secret. */
#ifndef FOGATE_SDNOTIFY_H
#define FOGATE_SDNOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#define SDNOTIFY_MSG_MAX 1024    /* the largest message sent (systemd reads up to 4 KiB) */
#define SDNOTIFY_STATUS_MAX 400  /* the largest STATUS= text */

struct sdnotify;

enum sdnotify_state {
    SDNOTIFY_STATUS_ONLY, /* STATUS= alone */
    SDNOTIFY_READY,       /* READY=1: started, or done reloading */
    SDNOTIFY_RELOADING,   /* RELOADING=1 + MONOTONIC_USEC= */
    SDNOTIFY_STOPPING,    /* STOPPING=1 */
};

/* What STATUS= tells, summed over the workers by the caller. */
struct sdnotify_health {
    size_t connections;     /* client connections open now */
    unsigned envs;          /* environments configured */
    unsigned envs_ready;    /* environments whose token every worker holds */
    int ledger;             /* -1 off; else the number of workers whose ledger Redis is up */
    unsigned workers;
};

/* The socket address of a NOTIFY_SOCKET value: "/path" (a file system socket) or "@name"
 * (the abstract namespace: a leading NUL byte, no trailing NUL). Returns 0 with *sa and
 * *len filled, or -1 for anything else (empty, relative, vsock:, too long). Pure. */
int sdnotify_address(const char *value, struct sockaddr_un *sa, socklen_t *len);

/* Formats the message for `state` into buf (cap bytes, NUL-terminated): the state line,
 * "MONOTONIC_USEC=<usec>" for SDNOTIFY_RELOADING, then "STATUS=<status>" when status is
 * not NULL (a newline in it ends the text there). Returns the length, or -1 when it does
 * not fit. Pure. */
int sdnotify_format(char *buf, size_t cap, enum sdnotify_state state, uint64_t usec,
                    const char *status);

/* A line for `systemctl status`, e.g. "serving: 3 connections; tokens ready for 2/2
 * environments; ledger: Redis up in 2/2 workers", into buf (cap bytes). Returns the length
 * (truncated to fit). Pure. */
int sdnotify_status_text(char *buf, size_t cap, const struct sdnotify_health *h);

/* Opens the socket named by the environment variable NOTIFY_SOCKET. Returns 0 with *out a
 * new handle (free with sdnotify_free), 0 with *out NULL when the variable is not set, or
 * -1 (logged) with *out NULL when it is set but unusable (the caller runs on without). */
int sdnotify_open(struct sdnotify **out);

/* Sends one message (formatted as sdnotify_format does). Returns 0, or -1 after logging
 * why; with n NULL does nothing and returns 0. Call from one thread at a time. */
int sdnotify_send(struct sdnotify *n, enum sdnotify_state state, const char *status);

/* True when n is a real handle (fogate runs under a service manager that listens). */
bool sdnotify_enabled(const struct sdnotify *n);

/* Closes the socket and frees the handle. NULL is a no-op. */
void sdnotify_free(struct sdnotify *n);

#endif
