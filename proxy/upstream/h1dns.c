/* h1dns: non-blocking name resolution for the own HTTP/1.1 client (see h1dns.h).
 * evdns may answer from /etc/hosts inside evdns_getaddrinfo, and reports a cancel later
 * from the loop; a request therefore lives in its own allocation, freed by evdns's (one)
 * callback, and the caller's callback goes through a deferred event. */
#include "h1dns.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/dns.h>

struct h1dns {
    struct event_base *base;          /* borrowed */
    struct evdns_base *dns;           /* owned, made at the first name */
};

struct h1dns_req {
    h1dns_cb cb;                      /* NULL once cancelled */
    void *arg;
    struct evdns_getaddrinfo_request *pending; /* evdns's, until its callback ran */
    struct event *deliver;            /* owned: runs cb from the loop */
    struct evutil_addrinfo *addrs;    /* owned until delivered */
    const char *error;                /* static */
    bool evdns_done, delivered;
};

struct h1dns *h1dns_new(struct event_base *base)
{
    struct h1dns *d = calloc(1, sizeof *d);

    if (d)
        d->base = base;
    return d;
}

void h1dns_free(struct h1dns *d)
{
    if (!d)
        return;
    if (d->dns)
        evdns_base_free(d->dns, 1);
    free(d);
}

static void req_free(struct h1dns_req *r)
{
    if (r->deliver)
        event_free(r->deliver);
    if (r->addrs)
        evutil_freeaddrinfo(r->addrs);
    free(r);
}

static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
    struct h1dns_req *r = arg;
    struct evutil_addrinfo *a = r->addrs;

    (void)fd;
    (void)what;
    r->addrs = NULL;
    r->delivered = true;
    if (r->cb)
        r->cb(r->arg, a, a ? NULL : r->error);
    else if (a)
        evutil_freeaddrinfo(a);
    if (r->evdns_done)
        req_free(r);
}

static void on_evdns(int result, struct evutil_addrinfo *res, void *arg)
{
    struct h1dns_req *r = arg;

    r->evdns_done = true;
    r->pending = NULL;
    if (result == EVUTIL_EAI_CANCEL || !r->cb) { /* cancelled: nobody waits */
        if (res)
            evutil_freeaddrinfo(res);
        if (r->delivered || !r->cb)
            req_free(r);
        return;
    }
    r->addrs = result == 0 ? res : NULL;
    if (result != 0 && res)
        evutil_freeaddrinfo(res);
    r->error = result == 0 ? NULL : "could not resolve the upstream's host name";
    event_active(r->deliver, EV_TIMEOUT, 0);
}

static struct evdns_base *dns_of(struct h1dns *d)
{
    if (!d->dns) {
        /* DISABLE_WHEN_INACTIVE: an idle resolver holds no event that keeps the loop up */
        d->dns = evdns_base_new(d->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                             EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (d->dns)
            evdns_base_load_hosts(d->dns, NULL);
    }
    return d->dns;
}

struct h1dns_req *h1dns_resolve(struct h1dns *d, const char *host, const char *port,
                                h1dns_cb cb, void *arg, struct evutil_addrinfo **addrs,
                                const char **error)
{
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                    .ai_flags = EVUTIL_AI_NUMERICHOST | EVUTIL_AI_NUMERICSERV};
    struct h1dns_req *r;

    *addrs = NULL;
    *error = "could not resolve the upstream's host name";
    if (evutil_getaddrinfo(host, port, &hints, addrs) == 0)
        return NULL; /* a literal address */
    *addrs = NULL;
    hints.ai_flags = EVUTIL_AI_NUMERICSERV | EVUTIL_AI_ADDRCONFIG;
    if (!dns_of(d) || !(r = calloc(1, sizeof *r)))
        return NULL;
    r->cb = cb;
    r->arg = arg;
    if (!(r->deliver = event_new(d->base, -1, 0, on_deliver, r))) {
        req_free(r);
        return NULL;
    }
    r->pending = evdns_getaddrinfo(d->dns, host, port, &hints, on_evdns, r);
    /* NULL: evdns answered (or failed) inside; on_evdns has queued the delivery */
    return r;
}

void h1dns_cancel(struct h1dns_req *r)
{
    r->cb = NULL;
    event_del(r->deliver);
    if (r->pending) {
        evdns_getaddrinfo_cancel(r->pending); /* on_evdns frees r, now or later */
        return;
    }
    if (r->evdns_done)
        req_free(r);
}
