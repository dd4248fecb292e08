/* h1dns: host names of the own HTTP/1.1 client resolved without blocking the loop: numeric
 * hosts at once (getaddrinfo with AI_NUMERICHOST never blocks), names through libevent's
 * evdns_getaddrinfo (/etc/hosts first, then the resolv.conf servers) on the client's base.
 * Invariant: a request's callback runs exactly once, from the loop, unless it was
 * cancelled first; never from inside h1dns_resolve. */
#ifndef FOGATE_H1DNS_H
#define FOGATE_H1DNS_H

#include <event2/event.h>
#include <event2/util.h>

struct h1dns;
struct h1dns_req;

/* A resolver on `base` (borrowed); the evdns base is made at the first name. NULL: no
 * memory. */
struct h1dns *h1dns_new(struct event_base *base);

/* Frees the resolver; pending requests must have been cancelled. NULL is a no-op. */
void h1dns_free(struct h1dns *d);

/* Called with the addresses (owned by the callee: evutil_freeaddrinfo), or NULL and a
 * static error text. */
typedef void (*h1dns_cb)(void *arg, struct evutil_addrinfo *addrs, const char *error);

/* Resolves `host` (a name, an IPv4 literal or an IPv6 literal without brackets) and
 * `port` for TCP. Numeric hosts need no lookup; *addrs gets them at once and NULL is
 * returned with no callback. Otherwise returns the pending request (cb later), or NULL
 * with *addrs NULL and `error` set when it could not start. */
struct h1dns_req *h1dns_resolve(struct h1dns *d, const char *host, const char *port,
                                h1dns_cb cb, void *arg, struct evutil_addrinfo **addrs,
                                const char **error);

/* The callback of `r` will not run. */
void h1dns_cancel(struct h1dns_req *r);

#endif
