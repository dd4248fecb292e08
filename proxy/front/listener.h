/* listener: a listening TCP socket on libevent that hands accepted sockets to a callback.
 * Invariant: accept errors (EMFILE, ENFILE, ENOBUFS...) pause accepting for a short while
 * instead of spinning on a socket that stays readable. */
#ifndef FOGATE_LISTENER_H
#define FOGATE_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <event2/event.h>

struct listener;

/* Gets each accepted, non-blocking, close-on-exec socket; it now owns `fd`. */
typedef void (*listener_on_accept)(evutil_socket_t fd, const struct sockaddr *peer, void *arg);

/* listener_new flags: SO_REUSEPORT, so that several worker threads each listen on the
 * same address and the kernel spreads new connections over them. */
#define LISTENER_REUSEPORT 1u

/* Binds to host (IP literal, IPv6 without brackets) and port (0 = any free port) with
 * `flags` (LISTENER_*) and starts accepting on `base` (borrowed). Writes the bound
 * address ("127.0.0.1:41234", "[::1]:8080") to bound. Returns a listener the caller frees, or NULL with errno set. */
struct listener *listener_new(struct event_base *base, const char *host, int port,
                              unsigned flags, listener_on_accept on_accept, void *arg,
                              char *bound, size_t bound_len);

/* Holds (hold true) or resumes accepting. While held, new connections wait in the
 * kernel's backlog; an error pause ending does not resume a held listener. */
void listener_hold(struct listener *l, bool hold);

/* Closes the socket and frees. NULL is a no-op. */
void listener_free(struct listener *l);

/* Formats an IPv4/IPv6 address and port as "1.2.3.4:5" or "[::1]:5" into buf. */
void listener_format_addr(const struct sockaddr *sa, char *buf, size_t len);

#endif
