/* h1conn: connections and pool of the own HTTP/1.1 client (see h1conn.h).
 *
 *   open: socket + connect (EINPROGRESS) -> writable: SO_ERROR -> owner's on_write
 *   owned: rd persistent, wr one-shot, tm and kick for the owner
 *   idle:  rd persistent (a byte or EOF closes it), tm = idle expiry
 */
#include "h1conn.h"

#include "h1dns.h"
#include "h1tls.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define IDLE_MAX 256            /* idle connections kept */
#define IDLE_MS (60 * 1000)     /* an idle connection is closed after this */

struct h1conn_pool {
    struct event_base *base;      /* borrowed */
    struct h1conn_cbs cbs;
    size_t recv_bytes;
    struct h1conn *conns;         /* owned: every connection, idle or busy */
    size_t n_conns, n_idle;
    long host_limit, total_limit;     /* 0 = none */
    struct h1conn_waiter *waiters, *waiters_tail; /* borrowed FIFO */
    bool granting, closing;
    struct h1dns *dns;                /* owned */
    const char *ca_file;              /* borrowed */
    struct h1tls_ctx *tls_ctx;        /* owned, made at the first https connection */
};

/* ---- plain TCP transport ---- */

static ssize_t tcp_read(struct h1conn *c, void *buf, size_t len)
{
    ssize_t n;

    do
        n = recv(c->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        return n;
    if (n == 0)
        return H1CONN_EOF;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return H1CONN_WANT_READ;
    c->last_errno = errno;
    return H1CONN_ERROR;
}

static ssize_t tcp_write(struct h1conn *c, const void *buf, size_t len)
{
    ssize_t n;

    do
        n = send(c->fd, buf, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return H1CONN_WANT_WRITE;
    c->last_errno = n < 0 ? errno : EPIPE;
    return H1CONN_ERROR;
}

static size_t tcp_pending(const struct h1conn *c)
{
    (void)c;
    return 0;
}

static const struct h1conn_io tcp_io = {.read = tcp_read, .write = tcp_write,
                                        .pending = tcp_pending};

/* ---- TLS transport (h1tls) ---- */

static ssize_t tls_read(struct h1conn *c, void *buf, size_t len)
{
    ssize_t n = h1tls_read(c->tls, buf, len);

    /* an EOF without close_notify may be a cut: the reader must not take it as the end
     * of a body read until close */
    if (n == H1TLS_EOF)
        c->unclean_eof = *h1tls_error(c->tls) != '\0';
    return n;
}

static ssize_t tls_write(struct h1conn *c, const void *buf, size_t len)
{
    return h1tls_write(c->tls, buf, len);
}

static size_t tls_pending(const struct h1conn *c)
{
    return h1tls_pending(c->tls);
}

static const struct h1conn_io tls_io = {.read = tls_read, .write = tls_write,
                                        .pending = tls_pending};

/* ---- addresses ---- */

/* Host and port of "host[:port]" or "[v6][:port]" (`port` when none is given). */
static int host_port(const char *auth, char *host, size_t cap, const char **port,
                     const char *dflt)
{
    const char *colon, *h = auth, *he;

    if (*auth == '[') {
        h = auth + 1;
        he = strchr(h, ']');
        if (!he)
            return -1;
        colon = he[1] == ':' ? he + 1 : NULL;
    } else {
        colon = strrchr(auth, ':');
        he = colon ? colon : auth + strlen(auth);
    }
    if ((size_t)(he - h) >= cap)
        return -1;
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = '\0';
    *port = colon && colon[1] ? colon + 1 : dflt;
    return 0;
}

/* ---- events ---- */

/* Connecting ended (up, or failed): the owner hears it as writable. */
static void connected(struct h1conn *c)
{
    c->connecting = false;
    c->pool->cbs.on_write(c);
}

static void tls_fail(struct h1conn *c, const char *why)
{
    snprintf(c->error, sizeof c->error, "TLS: %s", why);
    c->failed = c->tls_failed = true;
    c->handshaking = false;
    connected(c);
}

/* Drives the TLS handshake after the TCP connect, within the same connect limit. */
static void handshake(struct h1conn *c)
{
    switch (h1tls_handshake(c->tls)) {
    case H1TLS_OK:
        c->handshaking = false;
        connected(c);
        return;
    case H1TLS_WANT_WRITE:
        event_add(c->wr, NULL);
        return;
    case H1TLS_WANT_READ:
        return; /* rd persists */
    default:
        tls_fail(c, h1tls_error(c->tls));
    }
}

static void start_tls(struct h1conn *c)
{
    struct h1conn_pool *p = c->pool;
    char host[H1CONN_KEY_MAX], err[128] = "";
    const char *port;

    if (!p->tls_ctx && !(p->tls_ctx = h1tls_ctx_new(p->ca_file, err, sizeof err))) {
        tls_fail(c, err[0] ? err : "could not set up TLS");
        return;
    }
    host_port(c->authority, host, sizeof host, &port, "443");
    if (!(c->tls = h1tls_new(p->tls_ctx, c->fd, host))) {
        tls_fail(c, "out of memory");
        return;
    }
    c->io = &tls_io;
    c->handshaking = true;
    handshake(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct h1conn *c = arg;

    (void)fd;
    (void)what;
    if (!c->owner) { /* idle: the peer closed it, or sent what nobody asked for */
        h1conn_close(c);
        return;
    }
    if (c->handshaking)
        handshake(c);
    else if (!c->connecting)
        c->pool->cbs.on_read(c);
}

static int connect_next(struct h1conn *c);

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct h1conn *c = arg;
    int err = 0;
    socklen_t len = sizeof err;

    (void)what;
    if (!c->owner)
        return;
    if (c->handshaking) {
        handshake(c);
        return;
    }
    if (c->connecting) {
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            c->last_errno = err ? err : errno;
            if (c->next_addr && connect_next(c) == 0)
                return; /* the name's next address, within the same connect limit */
            c->failed = true;
        } else if (c->is_tls) {
            start_tls(c);
            return;
        }
        c->connecting = false;
    }
    c->pool->cbs.on_write(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct h1conn *c = arg;

    (void)fd;
    (void)what;
    if (!c->owner) { /* idle too long */
        h1conn_close(c);
        return;
    }
    c->pool->cbs.on_timer(c);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct h1conn *c = arg;

    (void)fd;
    (void)what;
    if (c->owner)
        c->pool->cbs.on_kick(c);
}

/* ---- connections ---- */

static void grant(struct h1conn_pool *p);

static void link_front(struct h1conn_pool *p, struct h1conn *c)
{
    c->prev = NULL;
    c->next = p->conns;
    if (p->conns)
        p->conns->prev = c;
    p->conns = c;
}

static void unlink_conn(struct h1conn_pool *p, struct h1conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

void h1conn_close(struct h1conn *c)
{
    struct h1conn_pool *p = c->pool;

    unlink_conn(p, c);
    p->n_conns--;
    if (c->idle)
        p->n_idle--;
    if (c->dns_req)
        h1dns_cancel(c->dns_req);
    if (c->addrs)
        evutil_freeaddrinfo(c->addrs);
    h1tls_free(c->tls); /* before the socket closes: its close_notify */
    if (c->rd)
        event_free(c->rd);
    if (c->wr)
        event_free(c->wr);
    if (c->tm)
        event_free(c->tm);
    if (c->kick)
        event_free(c->kick);
    if (c->fd >= 0)
        close(c->fd);
    h1resp_cleanup(&c->resp);
    free(c->in);
    free(c);
    grant(p);
}

/* A new connection object in the pool, no socket yet. */
static struct h1conn *conn_new(struct h1conn_pool *p, const char *key, void *owner)
{
    struct h1conn *c;
    const char *auth = strstr(key, "://");

    if (!auth || strlen(key) >= H1CONN_KEY_MAX || !(c = calloc(1, sizeof *c)))
        return NULL;
    c->pool = p;
    c->fd = -1;
    c->owner = owner;
    snprintf(c->key, sizeof c->key, "%s", key);
    c->authority = c->key + (auth - key) + 3;
    link_front(p, c);
    p->n_conns++;
    c->tm = evtimer_new(p->base, on_timer, c);
    c->kick = event_new(p->base, -1, 0, on_kick, c);
    c->in_cap = p->recv_bytes;
    c->in = malloc(c->in_cap);
    if (!c->tm || !c->kick || !c->in) {
        h1conn_close(c);
        return NULL;
    }
    return c;
}

/* Drops the socket of a failed attempt. */
static void drop_socket(struct h1conn *c)
{
    if (c->rd)
        event_free(c->rd);
    if (c->wr)
        event_free(c->wr);
    c->rd = c->wr = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Starts connecting to the next address that takes a connect. Returns 0, or -1 when none
 * is left. */
static int connect_next(struct h1conn *c)
{
    struct h1conn_pool *p = c->pool;
    int one = 1;

    for (struct evutil_addrinfo *a; (a = c->next_addr) != NULL;) {
        c->next_addr = a->ai_next;
        drop_socket(c);
        c->fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            continue;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as libcurl */
        setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        c->rd = event_new(p->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
        c->wr = event_new(p->base, c->fd, EV_WRITE, on_write, c);
        if (!c->rd || !c->wr ||
            (connect(c->fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS)) {
            c->last_errno = errno;
            continue;
        }
        if (event_add(c->wr, NULL) == 0 && event_add(c->rd, NULL) == 0)
            return 0;
    }
    drop_socket(c);
    return -1;
}

static void on_resolved(void *arg, struct evutil_addrinfo *addrs, const char *error)
{
    struct h1conn *c = arg;

    (void)error;
    c->dns_req = NULL;
    c->addrs = c->next_addr = addrs;
    if (addrs && connect_next(c) == 0)
        return;
    c->failed = true;
    c->connecting = false;
    if (c->owner)
        c->pool->cbs.on_write(c); /* reports the failure */
}

struct h1conn *h1conn_open(struct h1conn_pool *p, const char *key, void *owner)
{
    struct h1conn *c = conn_new(p, key, owner);
    char host[H1CONN_KEY_MAX];
    const char *port, *error;

    if (!c)
        return NULL;
    c->connecting = true;
    c->io = &tcp_io;
    c->is_tls = strncmp(key, "https:", 6) == 0;
    if (host_port(c->authority, host, sizeof host, &port, c->is_tls ? "443" : "80") != 0) {
        c->failed = true;
        return c;
    }
    c->dns_req = h1dns_resolve(p->dns, host, port, on_resolved, c, &c->addrs, &error);
    if (c->dns_req)
        return c; /* on_resolved goes on */
    c->next_addr = c->addrs;
    c->failed = !c->addrs || connect_next(c) != 0;
    return c;
}

static struct h1conn *reuse(struct h1conn_pool *p, const char *key, void *owner)
{
    for (struct h1conn *c = p->conns; c; c = c->next) {
        if (c->idle && strcmp(c->key, key) == 0) {
            c->idle = false;
            p->n_idle--;
            c->reused = true;
            c->owner = owner;
            return c;
        }
    }
    return NULL;
}

void h1conn_idle(struct h1conn *c)
{
    struct h1conn_pool *p = c->pool;
    struct timeval tv = {IDLE_MS / 1000, 0};

    c->owner = NULL;
    c->in_off = c->in_len = 0;
    if (p->n_idle >= IDLE_MAX) {
        h1conn_close(c);
        return;
    }
    h1conn_read_on(c); /* a paused read left it off */
    event_del(c->wr);
    c->idle = true;
    p->n_idle++;
    evtimer_add(c->tm, &tv);
    unlink_conn(p, c); /* to the front: reuse takes the most recent */
    link_front(p, c);
    grant(p);
}

ssize_t h1conn_read(struct h1conn *c, void *buf, size_t len)
{
    return c->io->read(c, buf, len);
}

ssize_t h1conn_write(struct h1conn *c, const void *buf, size_t len)
{
    return c->io->write(c, buf, len);
}

size_t h1conn_pending(const struct h1conn *c)
{
    return c->io->pending(c);
}

void h1conn_want_write(struct h1conn *c)
{
    event_add(c->wr, NULL);
}

void h1conn_read_off(struct h1conn *c)
{
    if (!c->rd_off && c->rd) {
        c->rd_off = true;
        event_del(c->rd);
    }
}

void h1conn_read_on(struct h1conn *c)
{
    if (c->rd_off) {
        c->rd_off = false;
        event_add(c->rd, NULL);
    }
}

void h1conn_timer(struct h1conn *c, long long us)
{
    struct timeval tv;

    if (us < 0) {
        evtimer_del(c->tm);
        return;
    }
    if (us < 1000)
        us = 1000;
    tv.tv_sec = (time_t)(us / 1000000);
    tv.tv_usec = (suseconds_t)(us % 1000000);
    evtimer_add(c->tm, &tv);
}

void h1conn_kick(struct h1conn *c)
{
    event_active(c->kick, EV_TIMEOUT, 0);
}

/* ---- pool ---- */

struct h1conn_pool *h1conn_pool_new(struct event_base *base, size_t recv_bytes,
                                    long host_limit, long total_limit, const char *ca_file,
                                    const struct h1conn_cbs *cbs)
{
    struct h1conn_pool *p = calloc(1, sizeof *p);

    if (!p)
        return NULL;
    p->base = base;
    p->recv_bytes = recv_bytes;
    p->host_limit = host_limit;
    p->total_limit = total_limit;
    p->ca_file = ca_file;
    p->cbs = *cbs;
    if (!(p->dns = h1dns_new(base))) {
        free(p);
        return NULL;
    }
    return p;
}

void h1conn_pool_free(struct h1conn_pool *p)
{
    if (!p)
        return;
    p->closing = true;
    while (p->conns)
        h1conn_close(p->conns);
    h1dns_free(p->dns);
    h1tls_ctx_free(p->tls_ctx);
    free(p);
}

static size_t count_key(const struct h1conn_pool *p, const char *key)
{
    size_t n = 0;

    for (const struct h1conn *c = p->conns; c; c = c->next)
        n += strcmp(c->key, key) == 0;
    return n;
}

/* Closes the least recently used idle connection. Returns false if none is idle. */
static bool drop_idle(struct h1conn_pool *p)
{
    struct h1conn *last = NULL;

    for (struct h1conn *c = p->conns; c; c = c->next)
        if (c->idle)
            last = c;
    if (!last)
        return false;
    h1conn_close(last);
    return true;
}

/* A connection for `w` now, or NULL with *wait (limits) or without (no memory). */
static struct h1conn *try_get(struct h1conn_pool *p, struct h1conn_waiter *w, bool *wait)
{
    struct h1conn *c = reuse(p, w->key, w->owner);

    *wait = false;
    if (c)
        return c;
    if (p->host_limit > 0 && count_key(p, w->key) >= (size_t)p->host_limit) {
        *wait = true;
        return NULL;
    }
    if (p->total_limit > 0 && p->n_conns >= (size_t)p->total_limit && !drop_idle(p)) {
        *wait = true;
        return NULL;
    }
    return h1conn_open(p, w->key, w->owner);
}

static bool waits_for(const struct h1conn_pool *p, const char *key)
{
    for (const struct h1conn_waiter *w = p->waiters; w; w = w->next)
        if (strcmp(w->key, key) == 0)
            return true;
    return false;
}

struct h1conn *h1conn_get(struct h1conn_pool *p, struct h1conn_waiter *w, bool *queued)
{
    struct h1conn *c;
    bool wait;

    *queued = false;
    if (waits_for(p, w->key)) {
        wait = true; /* FIFO: no overtaking a transfer waiting for the same host */
    } else {
        p->granting = true; /* drop_idle must not hand its room to a waiter */
        c = try_get(p, w, &wait);
        p->granting = false;
        if (c || !wait)
            return c;
    }
    w->next = NULL;
    if (p->waiters_tail)
        p->waiters_tail->next = w;
    else
        p->waiters = w;
    p->waiters_tail = w;
    *queued = true;
    return NULL;
}

void h1conn_cancel(struct h1conn_pool *p, struct h1conn_waiter *w)
{
    struct h1conn_waiter **pp = &p->waiters, *prev = NULL;

    while (*pp && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = w->next;
    if (p->waiters_tail == w)
        p->waiters_tail = prev;
}

/* Hands connections to waiters, in order, while the limits allow (a waiter for a host at
 * its limit does not hold up one for another host). */
static void grant(struct h1conn_pool *p)
{
    struct h1conn_waiter *w, *prev = NULL, *next;

    if (p->granting || p->closing || !p->waiters)
        return;
    p->granting = true;
    for (w = p->waiters; w; w = next) {
        struct h1conn *c;
        bool wait;
        next = w->next;
        c = try_get(p, w, &wait);
        if (!c && wait) {
            prev = w;
            continue;
        }
        if (prev)
            prev->next = next;
        else
            p->waiters = next;
        if (p->waiters_tail == w)
            p->waiters_tail = prev;
        p->cbs.on_granted(w->owner, c);
    }
    p->granting = false;
}
