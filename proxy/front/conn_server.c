/* conn_server: accepts connections up to a cap and drains them on shutdown.
 * conn_server and conn include each other on purpose: the server owns its connections
 * (conn_new, conn_list_close) and each connection reports back through the narrow
 * "for conn.c" part of conn_server.h (options, request ids, Date, dispatch, closed). A
 * callback table between them would carry the same six calls with an extra indirection. */
#include "conn_server.h"

#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "listener.h"
#include "log.h"

struct conn_server {
    struct event_base *base;    /* borrowed */
    struct conn_options opt;
    conn_on_request on_request;
    void *arg;                  /* borrowed */
    struct listener *listener;  /* owned */
    struct event *grace;        /* owned: ends a drain */
    struct conn_list conns;     /* the connections own themselves; see conn_new */
    bool draining;
    void (*on_drained)(void *arg);
    void *drained_arg;          /* borrowed */
    uint64_t id_key;
    uint64_t id_next;
    time_t date_sec;
    char date[40];
};

/* Unique per process (splitmix64 of a random key plus a counter is a bijection of the
 * counter), unpredictable without the key, and no syscall per request. */
void conn_server_request_id(struct conn_server *srv, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t z = srv->id_key + srv->id_next++ * 0x9e3779b97f4a7c15ULL;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    for (int i = 15; i >= 0; i--, z >>= 4)
        out[i] = hex[z & 15];
    out[16] = '\0';
}

/* Formatted once per second (time() is a vDSO call, no syscall). */
const char *conn_server_date(struct conn_server *srv)
{
    time_t now = time(NULL);
    struct tm tm;

    if (now != srv->date_sec) {
        gmtime_r(&now, &tm);
        strftime(srv->date, sizeof srv->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        srv->date_sec = now;
    }
    return srv->date;
}

const struct conn_options *conn_server_options(const struct conn_server *srv)
{
    return &srv->opt;
}

bool conn_server_draining(const struct conn_server *srv)
{
    return srv->draining;
}

void conn_server_dispatch(struct conn_server *srv, struct conn_req *req)
{
    srv->on_request(req, srv->arg);
}

void conn_server_closed(struct conn_server *srv)
{
    void (*cb)(void *) = srv->on_drained;

    if (!srv->draining || srv->conns.count > 0 || !cb)
        return;
    srv->on_drained = NULL;
    evtimer_del(srv->grace);
    cb(srv->drained_arg);
}

static void on_accept(evutil_socket_t fd, const struct sockaddr *peer, void *arg)
{
    struct conn_server *srv = arg;

    if (srv->draining || srv->conns.count >= srv->opt.max_connections) {
        close(fd); /* over the limit: accepted and closed at once */
        return;
    }
    if (!conn_new(srv, srv->base, &srv->conns, fd, peer)) {
        log_msg(LOG_LVL_ERROR, "out of memory for a new connection");
        close(fd);
    }
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    struct conn_server *srv = arg;

    if (srv->conns.count > 0)
        log_msg(LOG_LVL_WARN, "shutdown grace over; closing %zu connection(s)", srv->conns.count);
    conn_list_close(&srv->conns, false);
    conn_server_closed(srv);
}

struct conn_server *conn_server_new(struct event_base *base, const struct conn_options *opt,
                                    conn_on_request on_request, void *arg)
{
    struct conn_server *srv = calloc(1, sizeof *srv);

    if (!srv)
        return NULL;
    srv->base = base;
    srv->opt = *opt;
    srv->on_request = on_request;
    srv->arg = arg;
    srv->grace = evtimer_new(base, on_grace, srv);
    if (!srv->grace) {
        free(srv);
        return NULL;
    }
    if (getrandom(&srv->id_key, sizeof srv->id_key, 0) != sizeof srv->id_key)
        srv->id_key = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return srv;
}

int conn_server_listen(struct conn_server *srv, const char *host, int port, char *bound,
                       size_t bound_len)
{
    unsigned flags = srv->opt.reuseport ? LISTENER_REUSEPORT : 0;

    srv->listener = listener_new(srv->base, host, port, flags, on_accept, srv, bound, bound_len);
    return srv->listener ? 0 : -1;
}

void conn_server_drain(struct conn_server *srv, unsigned grace_ms,
                       void (*on_drained)(void *arg), void *arg)
{
    struct timeval tv = { .tv_sec = grace_ms / 1000, .tv_usec = (grace_ms % 1000) * 1000 };

    srv->draining = true;
    srv->on_drained = on_drained;
    srv->drained_arg = arg;
    listener_free(srv->listener); /* new connections are refused now, not left queued */
    srv->listener = NULL;
    evtimer_add(srv->grace, &tv);
    conn_list_close(&srv->conns, true); /* idle keep-alive: nothing in flight */
    conn_server_closed(srv);
}

size_t conn_server_count(const struct conn_server *srv)
{
    return srv->conns.count;
}

void conn_server_free(struct conn_server *srv)
{
    if (!srv)
        return;
    srv->on_drained = NULL;
    listener_free(srv->listener);
    conn_list_close(&srv->conns, false);
    event_free(srv->grace);
    free(srv);
}
