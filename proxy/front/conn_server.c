/* conn_server: accepts connections up to a cap and drains them on shutdown.
 * conn_server and conn include each other on purpose: the server owns its connections
 * (conn_new, conn_list_close) and each connection reports back through the narrow
 * "for conn.c" part of conn_server.h (options, request ids, Date, dispatch, closed). A
 * callback table between them would carry the same six calls with an extra indirection. */
#include "conn_server.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "heaptrim.h"
#include "ipcount.h"
#include "listener.h"
#include "log.h"

#define SHED_PER_TURN 32 /* idle connections closed per loop turn at most */

struct conn_server {
    struct event_base *base;    /* borrowed */
    struct conn_options opt;
    conn_on_request on_request;
    void (*release)(void *hold, void *arg);
    void *arg;                  /* borrowed */
    struct listener *listener;  /* owned */
    struct event *grace;        /* owned: ends a drain */
    struct event *settle;       /* owned: lets shed connections' sockets close (see shed) */
    struct conn_list conns;     /* the connections own themselves; see conn_new */
    struct ipcount *per_ip;     /* owned; NULL without opt.max_per_ip */
    struct heaptrim *trim;      /* owned: gives memory back after connections close */
    uint64_t episode_shed[CONNSTATS_REFUSE_N]; /* stats.refused when the episode began */
    bool at_cap;                /* a cap episode is under way */
    bool held;                  /* the listener is held at the cap */
    bool settling;              /* held until the next loop turn after SHED_PER_TURN sheds */
    bool listener_held;         /* what listener_hold was last told */
    unsigned turn_sheds;        /* connections shed since the last settle */
    bool draining;
    void (*on_drained)(void *arg);
    void *drained_arg;          /* borrowed */
    uint64_t id_key;
    uint64_t id_next;
    time_t date_sec;
    char date[40];
    struct connstats stats;
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

uint64_t conn_server_random(struct conn_server *srv)
{
    uint64_t z = srv->id_key + srv->id_next++ * 0x9e3779b97f4a7c15ULL;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
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

void conn_server_on_release(struct conn_server *srv, void (*release)(void *hold, void *arg))
{
    srv->release = release;
}

void conn_server_release(struct conn_server *srv, void *hold)
{
    if (srv->release)
        srv->release(hold, srv->arg);
}

void conn_server_dispatch(struct conn_server *srv, struct conn_req *req)
{
    srv->on_request(req, srv->arg);
}

/* ---- the connection cap ----------------------------------------------------------- */

/* An episode starts when the cap is reached and ends when the count falls to 90% of it;
 * each is logged once at each end, whatever happened in between. */
static uint64_t refused(const struct conn_server *srv, enum connstats_refuse r)
{
    return statcell_get(&srv->stats.refused[r]);
}

static void episode_check(struct conn_server *srv)
{
    size_t max = srv->opt.max_connections, n = srv->conns.count;

    if (!srv->at_cap && n >= max) {
        srv->at_cap = true;
        statcell_inc(&srv->stats.cap_episodes);
        for (unsigned i = 0; i < CONNSTATS_REFUSE_N; i++)
            srv->episode_shed[i] = refused(srv, (enum connstats_refuse)i);
        log_msg(LOG_LVL_WARN, "connection cap (%zu) reached: closing the longest-idle "
                "keep-alive connections to make room, new ones wait in the backlog", max);
    } else if (srv->at_cap && n <= max - max / 10 - 1) {
        srv->at_cap = false;
        log_msg(LOG_LVL_INFO, "connection cap episode over: %llu idle connection(s) closed, "
                "accepting paused %llu time(s), %llu refused",
                (unsigned long long)(refused(srv, CONNSTATS_REFUSE_IDLE) -
                                     srv->episode_shed[CONNSTATS_REFUSE_IDLE]),
                (unsigned long long)(refused(srv, CONNSTATS_REFUSE_HOLD) -
                                     srv->episode_shed[CONNSTATS_REFUSE_HOLD]),
                (unsigned long long)(refused(srv, CONNSTATS_REFUSE_FULL) -
                                     srv->episode_shed[CONNSTATS_REFUSE_FULL]));
    }
}

/* Accepting goes on while there is room, or an idle connection to shed for the next one,
 * and no settle is under way. */
static void hold_check(struct conn_server *srv)
{
    bool room = srv->conns.count < srv->opt.max_connections || srv->conns.idle_count > 0;

    if (srv->held != !room) {
        srv->held = !room;
        if (srv->held)
            statcell_inc(&srv->stats.refused[CONNSTATS_REFUSE_HOLD]);
    }
    if (!srv->listener || srv->listener_held == (srv->held || srv->settling))
        return;
    srv->listener_held = srv->held || srv->settling;
    listener_hold(srv->listener, srv->listener_held);
}

static void on_settle(evutil_socket_t fd, short what, void *arg)
{
    struct conn_server *srv = arg;

    srv->settling = false;
    srv->turn_sheds = 0;
    hold_check(srv);
}

/* Closes the longest-idle connection for a new one. libevent closes a freed bufferevent's
 * socket in a finalizer later in the loop turn, while the listener accepts the whole
 * backlog in one callback: past SHED_PER_TURN sheds accepting waits for the next turn, so
 * descriptors of shed connections cannot pile up to EMFILE. */
static bool shed(struct conn_server *srv)
{
    if (!conn_list_shed_idle(&srv->conns))
        return false;
    statcell_inc(&srv->stats.refused[CONNSTATS_REFUSE_IDLE]);
    if (++srv->turn_sheds >= SHED_PER_TURN && !srv->settling) {
        srv->settling = true;
        event_active(srv->settle, EV_TIMEOUT, 0);
        hold_check(srv);
    }
    return true;
}

void conn_server_idle_changed(struct conn_server *srv)
{
    hold_check(srv);
}

const struct connstats *conn_server_stats(const struct conn_server *srv)
{
    return &srv->stats;
}

struct connstats *conn_server_counters(struct conn_server *srv)
{
    return &srv->stats;
}

static void after_close(struct conn_server *srv)
{
    void (*cb)(void *) = srv->on_drained;

    episode_check(srv);
    hold_check(srv);
    if (!srv->draining || srv->conns.count > 0 || !cb)
        return;
    srv->on_drained = NULL;
    evtimer_del(srv->grace);
    cb(srv->drained_arg);
}

void conn_server_closed(struct conn_server *srv, const struct sockaddr *peer)
{
    struct ipcount_key k;

    if (srv->per_ip) {
        ipcount_key_of(peer, &k);
        ipcount_sub(srv->per_ip, &k);
    }
    heaptrim_note(srv->trim);
    after_close(srv);
}

/* Over limits.max_connections_per_ip: closed at once (the address's own connections are
 * what keeps it over), logged once per address while it holds connections. */
static bool over_per_ip(struct conn_server *srv, const struct sockaddr *peer,
                        const struct ipcount_key *k)
{
    char addr[64];

    if (!srv->per_ip || ipcount_get(srv->per_ip, k) < srv->opt.max_per_ip)
        return false;
    statcell_inc(&srv->stats.refused[CONNSTATS_REFUSE_PER_IP]);
    if (ipcount_mark(srv->per_ip, k)) {
        listener_format_addr(peer, addr, sizeof addr);
        *strrchr(addr, ':') = '\0'; /* the address, not this connection's port */
        log_msg(LOG_LVL_WARN, "client %s holds %u connections (max_connections_per_ip): "
                "closing its new ones until it has fewer", addr, srv->opt.max_per_ip);
    }
    return true;
}

static void on_accept(evutil_socket_t fd, const struct sockaddr *peer, void *arg)
{
    struct conn_server *srv = arg;
    struct ipcount_key k;

    ipcount_key_of(peer, &k);
    if (srv->draining || over_per_ip(srv, peer, &k)) {
        if (srv->draining)
            statcell_inc(&srv->stats.refused[CONNSTATS_REFUSE_DRAINING]);
        close(fd);
        return;
    }
    if (srv->conns.count >= srv->opt.max_connections) {
        episode_check(srv);
        if (!shed(srv)) { /* the idle one got busy since the listener was left on: rare */
            statcell_inc(&srv->stats.refused[CONNSTATS_REFUSE_FULL]);
            close(fd);
            hold_check(srv);
            return;
        }
    }
    if (!conn_new(srv, srv->base, &srv->conns, fd, peer)) {
        statcell_inc(&srv->stats.refused[CONNSTATS_REFUSE_NOMEM]);
        log_msg(LOG_LVL_ERROR, "out of memory for a new connection");
        close(fd);
        return;
    }
    statcell_inc(&srv->stats.accepted);
    if (srv->per_ip)
        ipcount_add(srv->per_ip, &k); /* never full: one entry per connection at most */
    episode_check(srv);
    hold_check(srv); /* at the cap with nothing idle: the next ones wait in the backlog */
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    struct conn_server *srv = arg;

    if (srv->conns.count > 0)
        log_msg(LOG_LVL_WARN, "shutdown grace over; closing %zu connection(s)", srv->conns.count);
    conn_list_close(&srv->conns, false, CONN_DRAIN);
    after_close(srv);
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
    srv->settle = event_new(base, -1, 0, on_settle, srv);
    srv->trim = heaptrim_new(base);
    if (opt->max_per_ip)
        srv->per_ip = ipcount_new(opt->max_connections);
    if (conn_list_init(&srv->conns) != 0 || !srv->grace || !srv->settle || !srv->trim ||
        (opt->max_per_ip && !srv->per_ip)) {
        conn_list_cleanup(&srv->conns);
        if (srv->grace)
            event_free(srv->grace);
        if (srv->settle)
            event_free(srv->settle);
        heaptrim_free(srv->trim);
        ipcount_free(srv->per_ip);
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
    conn_list_close(&srv->conns, true, CONN_OK); /* idle keep-alive: nothing in flight */
    after_close(srv);
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
    srv->listener = NULL;
    conn_list_close(&srv->conns, false, CONN_DRAIN);
    conn_list_cleanup(&srv->conns);
    event_free(srv->grace);
    event_free(srv->settle);
    heaptrim_free(srv->trim);
    ipcount_free(srv->per_ip);
    free(srv);
}
