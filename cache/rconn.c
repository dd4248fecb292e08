/* rconn: a Redis connection with per-command timeouts and reconnect (see rconn.h).
 * Invariant: a sent command (struct rcmd) is owned by hiredict and freed only in
 * on_reply; `done` guarantees its caller's callback runs once, whichever comes first of
 * the reply, its timeout, the loss of the connection or rconn_free.
 * One file on purpose (past the usual ~600 lines): the command queue, the connection
 * state machine and EVAL's retry all rely on that invariant and on one struct rconn;
 * the pure parts live in rdeadline, rbackoff, rtls and revent. */
#include "rconn.h"

#include "log.h"
#include "rbackoff.h"
#include "rdeadline.h"
#include "revent.h"
#include "rsentinel.h"
#include "rtls.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredict/async.h>
#include <hiredict/hiredict_ssl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPLY_ELEMENTS (1 << 20)
#define MAX_EVAL_ARGS 32

/* Connection states (CONNECTING starts with an async name lookup when a resolver is given):
 *
 *   IDLE --ev_conn (backoff) fires--> CONNECTING --AUTH/SELECT/PING ok--> READY
 *    ^                                    |                                 |
 *    +-- schedule_retry <-- go_down <-----+-- error, connect timeout -------+-- error, stall
 *
 * Only READY accepts commands; in every other state they fail fast (RCONN_NOT_CONNECTED).
 */
enum state { ST_IDLE, ST_CONNECTING, ST_READY, ST_CLOSED };

struct rcmd {
    struct rdeadline_item dl;  /* first member: maps the deadline link back to the rcmd */
    struct rconn *conn;        /* borrowed */
    rconn_cb *cb;
    void *arg;                 /* borrowed: the caller's */
    struct rcmd *next_failed;  /* borrowed: link in the deferred-failure queue */
    enum rconn_result failed;
    bool done;                 /* the caller's callback has run */
    int64_t sent_us;           /* monotonic, for the latency histogram */
};

/* A name lookup in flight. It outlives an abandoned attempt (and the rconn): lookups are
 * never cancelled, so libevent's cancel/free ordering never matters; the callback frees it. */
struct lookup {
    struct rconn *conn; /* borrowed; NULL once abandoned */
};

struct rconn {
    struct event_base *base;   /* borrowed */
    struct evdns_base *dns;    /* borrowed; NULL = hiredict resolves (blocking) */
    struct lookup *lookup;     /* owned by the resolver callback; set while resolving */
    char *host;                /* owned */
    char *unix_path;           /* owned */
    char *username;            /* owned */
    char *password;            /* owned, wiped on free */
    char *server_name;         /* owned */
    struct rsentinel *sentinel; /* owned; NULL = connect to host directly */
    bool fixed_server_name;    /* TLS name configured, not taken from each master address */
    char where[160];           /* host:port or socket path, for logs */
    int port, db;
    int connect_timeout_ms, cmd_timeout_ms, reconnect_min_ms, reconnect_max_ms;
    size_t max_pending, max_reply_bytes;
    SSL_CTX *ssl_ctx;          /* owned; NULL without TLS */
    redictAsyncContext *ac;    /* owned; set in CONNECTING and READY only */
    SSL *ssl;                  /* borrowed from ac, which owns it */
    enum state state;
    int handshake_left;
    struct event *ev_conn;     /* owned: backoff wait, then the connect deadline */
    struct event *ev_cmd;      /* owned: earliest command deadline or the stall check */
    struct event *ev_defer;    /* owned: reports commands that were never sent */
    struct rdeadline_list pending;          /* sent, caller not answered yet */
    struct rcmd *failed_head, *failed_tail; /* owned: never sent, to report */
    int64_t armed_at;          /* ev_cmd deadline (monotonic ms), 0 = not armed */
    int64_t last_progress;     /* last reply, or when the oldest in-flight command left */
    size_t in_flight;          /* handed to hiredict, reply not received */
    size_t orphans;            /* in flight but already reported as timed out */
    unsigned attempt;
    uint32_t rng;
    bool closing;
    char logged_error[192];
    struct rconn_health health;
    void (*state_cb)(void *arg, bool connected);
    void *state_arg;           /* borrowed */
    struct rconn_stats stats;
    char master[160];          /* Sentinel: the last master connected to, "" before */
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval ms_tv(int64_t ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    return tv;
}

const char *rconn_result_str(enum rconn_result res)
{
    switch (res) {
    case RCONN_OK: return "ok";
    case RCONN_TIMEOUT: return "timeout";
    case RCONN_DISCONNECTED: return "disconnected";
    case RCONN_NOT_CONNECTED: return "not connected";
    case RCONN_CANCELLED: return "cancelled";
    case RCONN_OVERLOADED: return "overloaded";
    }
    return "unknown";
}

/* Records the error for health and logs it once per distinct text. A server message
 * that echoes the password (none known does) is withheld rather than stored. */
static void set_error(struct rconn *c, const char *why)
{
    char *err = c->health.last_error;

    if (c->password && *c->password && strstr(why, c->password))
        why = "redis error (text withheld: it contained the password)";
    snprintf(err, sizeof(c->health.last_error), "%s", why);
    if (strcmp(err, c->logged_error) == 0)
        return;
    snprintf(c->logged_error, sizeof(c->logged_error), "%s", err);
    log_json(LOG_LVL_WARN, "redis error", json_pack("{s:s,s:s}", "redis", c->where, "error", err));
}

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void call_user(struct rcmd *r, enum rconn_result res, const redictReply *reply)
{
    struct rconn_stats *st = &r->conn->stats;

    if ((unsigned)res < RCONN_RESULTS)
        statcell_inc(&st->results[res]);
    if (res == RCONN_OK)
        stathist_observe(&st->latency, mono_us() - r->sent_us);
    r->done = true;
    r->cb(r->arg, res, reply);
}

static void notify_state(struct rconn *c, bool connected)
{
    statgauge_set(&c->stats.up, connected);
    c->health.connected = connected;
    c->health.since_unix_ms = wall_ms();
    if (c->state_cb)
        c->state_cb(c->state_arg, connected);
}

/* ---- the command timer ---- */

static void arm(struct rconn *c, int64_t at, int64_t now)
{
    struct timeval tv = ms_tv(at > now ? at - now : 1);

    evtimer_add(c->ev_cmd, &tv);
    c->armed_at = at;
}

/* The next wake-up: the earliest deadline, or the stall limit while a timed-out command
 * still holds up the connection's reply queue. */
static void arm_next(struct rconn *c, int64_t now)
{
    int64_t next = c->pending.head ? c->pending.head->at : INT64_MAX;

    if (c->orphans && c->state == ST_READY && c->last_progress + c->cmd_timeout_ms < next)
        next = c->last_progress + c->cmd_timeout_ms;
    if (next == INT64_MAX) {
        evtimer_del(c->ev_cmd);
        c->armed_at = 0;
        return;
    }
    arm(c, next, now);
}

static void drop(struct rconn *c, const char *why);

/* Replies come in order, so a command that timed out blocks every later reply. One slow
 * reply is tolerated; no reply at all for command_timeout_ms while one is owed means the
 * server is stalled (or the path to it is): drop and reconnect rather than let every
 * later command time out behind it. */
static void on_cmd_timer(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *c = arg;
    int64_t now = mono_ms();
    struct rdeadline_item *it;

    c->armed_at = 0;
    while ((it = rdeadline_pop_expired(&c->pending, now))) {
        c->orphans++;
        call_user((struct rcmd *)it, RCONN_TIMEOUT, NULL);
    }
    if (c->orphans && c->state == ST_READY && now - c->last_progress >= c->cmd_timeout_ms) {
        char why[96];
        snprintf(why, sizeof(why), "no reply for %d ms: connection stalled", c->cmd_timeout_ms);
        drop(c, why);
    }
    arm_next(c, mono_ms());
}

/* ---- connection lifecycle ---- */

static void schedule_retry(struct rconn *c)
{
    unsigned ms = rbackoff_delay_ms((unsigned)c->reconnect_min_ms, (unsigned)c->reconnect_max_ms,
                                    c->attempt, rbackoff_rand(&c->rng));
    struct timeval tv = ms_tv(ms);

    if (c->attempt < 64)
        c->attempt++;
    evtimer_add(c->ev_conn, &tv);
}

/* The connection (already detached from c->ac) is gone: record why, report, retry. */
static void go_down(struct rconn *c, const char *why)
{
    bool was_ready = c->state == ST_READY;

    c->state = ST_IDLE;
    c->handshake_left = 0;
    c->health.failures++;
    set_error(c, why);
    schedule_retry(c);
    if (was_ready) {
        log_json(LOG_LVL_WARN, "redis connection lost", json_pack("{s:s}", "redis", c->where));
        notify_state(c, false);
    }
}

/* Our own teardown of the current connection: pending callers get RCONN_DISCONNECTED
 * from the NULL replies hiredict delivers while freeing. */
static void drop(struct rconn *c, const char *why)
{
    redictAsyncContext *ac = c->ac;

    if (!ac)
        return;
    c->ac = NULL;
    c->ssl = NULL;
    go_down(c, why);
    redictAsyncFree(ac);
}

/* hiredict is tearing `ac` down by itself (I/O error, server closed, refused). */
static void conn_lost(struct rconn *c, const redictAsyncContext *ac)
{
    char why[192];

    if (ac != c->ac)
        return;
    if (!(c->ssl && rtls_verify_failure(c->ssl, why, sizeof(why))))
        snprintf(why, sizeof(why), "%s", ac->c.err ? ac->c.errstr : "connection closed");
    c->ac = NULL;
    c->ssl = NULL;
    go_down(c, why);
}

static void became_ready(struct rconn *c)
{
    evtimer_del(c->ev_conn);
    c->state = ST_READY;
    c->attempt = 0;
    c->health.connects++;
    statcell_inc(&c->stats.connects);
    if (c->sentinel && c->master[0] && strcmp(c->master, c->where) != 0)
        statcell_inc(&c->stats.failovers);
    if (c->sentinel)
        snprintf(c->master, sizeof c->master, "%s", c->where);
    c->logged_error[0] = '\0';
    log_json(LOG_LVL_INFO, "redis connected", json_pack("{s:s,s:i}", "redis", c->where, "db", c->db));
    notify_state(c, true);
}

static void on_handshake(redictAsyncContext *ac, void *reply, void *priv)
{
    struct rconn *c = priv;
    const redictReply *r = reply;

    if (ac != c->ac || c->state != ST_CONNECTING)
        return;
    if (!r) {
        conn_lost(c, ac);
    } else if (r->type == REDICT_REPLY_ERROR) {
        char why[192];
        snprintf(why, sizeof(why), "redis refused the handshake: %s", r->str);
        drop(c, why);
    } else if (c->sentinel && c->handshake_left == 1 &&
               rsentinel_parse_role(r) != RSENTINEL_MASTER) { /* ROLE comes last */
        drop(c, "not a master (ROLE): asking the sentinels again");
    } else if (--c->handshake_left == 0) {
        became_ready(c);
    }
}

static int send_handshake(struct rconn *c)
{
    redictAsyncContext *ac = c->ac;
    int rc = REDICT_OK;

    c->handshake_left = 0;
    if (c->password) { /* AUTH [username] password */
        const char *argv[3] = { "AUTH", c->username, c->password };
        int argc = 3;
        if (!c->username) {
            argv[1] = c->password;
            argc = 2;
        }
        rc |= redictAsyncCommandArgv(ac, on_handshake, c, argc, argv, NULL);
        c->handshake_left++;
    }
    if (c->db > 0) {
        rc |= redictAsyncCommand(ac, on_handshake, c, "SELECT %d", c->db);
        c->handshake_left++;
    }
    if (c->handshake_left == 0 || c->sentinel) { /* ROLE: the sentinels may lag a failover */
        rc |= redictAsyncCommand(ac, on_handshake, c, c->sentinel ? "ROLE" : "PING");
        c->handshake_left++;
    }
    return rc == REDICT_OK ? 0 : -1;
}

static void on_connect(const redictAsyncContext *ac, int status)
{
    if (status != REDICT_OK)
        conn_lost(ac->data, ac);
}

static void on_disconnect(const redictAsyncContext *ac, int status)
{
    conn_lost(ac->data, ac);
}

static void on_overflow(redictAsyncContext *ac)
{
    struct rconn *c = ac->data;
    char why[96];

    snprintf(why, sizeof(why), "reply larger than %zu bytes", c->max_reply_bytes);
    drop(c, why);
}

static redictAsyncContext *open_context(struct rconn *c, const char *addr, char *why, size_t len)
{
    redictOptions ro = { 0 };
    redictAsyncContext *ac = NULL;

    if (c->unix_path)
        REDICT_OPTIONS_SET_UNIX(&ro, c->unix_path);
    else
        REDICT_OPTIONS_SET_TCP(&ro, addr, c->port);
    ac = redictAsyncConnectWithOptions(&ro);
    if (!ac) {
        snprintf(why, len, "connect: out of memory");
        return NULL;
    }
    if (ac->err) {
        snprintf(why, len, "connect: %s", ac->errstr);
        goto fail;
    }
    if (c->ssl_ctx && !(c->ssl = rtls_attach(ac, c->ssl_ctx, c->server_name, why, len)))
        goto fail;
    if (revent_attach(ac, c->base, c->max_reply_bytes, on_overflow) != 0) {
        snprintf(why, len, "connect: cannot attach to the event loop");
        goto fail;
    }
    return ac;
fail:
    c->ssl = NULL;
    redictAsyncFree(ac);
    return NULL;
}

static void start_connect(struct rconn *c, const char *addr)
{
    char why[192];
    redictAsyncContext *ac = open_context(c, addr, why, sizeof(why));

    if (!ac) {
        go_down(c, why);
        return;
    }
    ac->data = c;
    ac->c.reader->maxelements = MAX_REPLY_ELEMENTS;
    if (!c->unix_path)
        redictEnableKeepAlive(&ac->c);
    redictAsyncSetConnectCallback(ac, on_connect);
    redictAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    if (send_handshake(c) != 0)
        drop(c, "connect: cannot queue the handshake");
}

static bool is_ip_literal(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* The first IPv4 address, else the first address at all. */
static void first_address(const struct evutil_addrinfo *res, char *ip, size_t len)
{
    const struct evutil_addrinfo *pick = res;

    for (const struct evutil_addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    if (pick->ai_family == AF_INET)
        evutil_inet_ntop(AF_INET, &((struct sockaddr_in *)pick->ai_addr)->sin_addr, ip, len);
    else if (pick->ai_family == AF_INET6)
        evutil_inet_ntop(AF_INET6, &((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr, ip, len);
}

static void on_resolved(int err, struct evutil_addrinfo *res, void *arg)
{
    struct lookup *l = arg;
    struct rconn *c = l->conn;
    char ip[INET6_ADDRSTRLEN] = "", why[192];

    free(l);
    if (res) {
        first_address(res, ip, sizeof(ip));
        evutil_freeaddrinfo(res);
    }
    if (!c)
        return;
    c->lookup = NULL;
    if (!ip[0]) {
        snprintf(why, sizeof(why), "resolve %s: %s", c->host,
                 err ? evutil_gai_strerror(err) : "no address");
        go_down(c, why);
        return;
    }
    start_connect(c, ip);
}

static void resolve(struct rconn *c)
{
    struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                     .ai_protocol = IPPROTO_TCP };
    struct lookup *l = calloc(1, sizeof(*l));

    if (!l) {
        go_down(c, "resolve: out of memory");
        return;
    }
    l->conn = c;
    c->lookup = l;
    evdns_getaddrinfo(c->dns, c->host, NULL, &hints, on_resolved, l); /* may call back now */
}

static void abandon_lookup(struct rconn *c)
{
    if (c->lookup)
        c->lookup->conn = NULL;
    c->lookup = NULL;
}

static void connect_host(struct rconn *c)
{
    struct timeval tv = ms_tv(c->connect_timeout_ms);

    evtimer_add(c->ev_conn, &tv);
    if (c->dns && c->host && !is_ip_literal(c->host))
        resolve(c);
    else
        start_connect(c, c->host);
}

/* The sentinels named the master (or all failed): connect to it like a configured host. */
static void on_master(void *arg, const char *host, int port, const char *why)
{
    struct rconn *c = arg;
    char *h = host ? strdup(host) : NULL;
    char *sn = h && !c->fixed_server_name ? strdup(host) : NULL;

    if (!h || (!c->fixed_server_name && !sn)) {
        free(h);
        go_down(c, why ? why : "sentinel answer: out of memory");
        return;
    }
    free(c->host);
    c->host = h;
    c->port = port;
    if (sn) {
        free(c->server_name);
        c->server_name = sn;
    }
    rsentinel_format_addr(c->where, sizeof(c->where) - 8, host, port);
    if (c->ssl_ctx)
        strcat(c->where, " (tls)");
    connect_host(c);
}

static void begin_attempt(struct rconn *c)
{
    c->state = ST_CONNECTING;
    if (!c->sentinel)
        connect_host(c);
    else if (rsentinel_ask(c->sentinel, on_master, c) != 0) /* each try: connect_timeout_ms */
        go_down(c, "sentinel: an ask is already in flight");
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *c = arg;
    char why[96];

    if (c->state == ST_IDLE) {
        begin_attempt(c);
    } else if (c->state == ST_CONNECTING && c->lookup) {
        abandon_lookup(c);
        snprintf(why, sizeof(why), "resolve %s: timeout after %d ms", c->host, c->connect_timeout_ms);
        go_down(c, why);
    } else if (c->state == ST_CONNECTING) {
        snprintf(why, sizeof(why), "connect timeout after %d ms", c->connect_timeout_ms);
        drop(c, why);
    }
}

/* ---- commands ---- */

static void on_reply(redictAsyncContext *ac, void *reply, void *priv)
{
    struct rcmd *r = priv;
    struct rconn *c = r->conn;

    c->in_flight--;
    if (reply)
        c->last_progress = mono_ms();
    else
        conn_lost(c, ac); /* first, so callbacks see the connection as down */
    if (c->sentinel && ac == c->ac && rsentinel_is_readonly(reply))
        drop(c, "READONLY: the master was demoted; asking the sentinels again");
    if (r->done) {
        c->orphans--;
    } else {
        rdeadline_remove(&c->pending, &r->dl);
        call_user(r, reply ? RCONN_OK : c->closing ? RCONN_CANCELLED : RCONN_DISCONNECTED, reply);
    }
    free(r);
}

static void on_defer(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *c = arg;
    struct rcmd *r = c->failed_head;

    c->failed_head = c->failed_tail = NULL;
    while (r) {
        struct rcmd *next = r->next_failed;
        call_user(r, c->closing ? RCONN_CANCELLED : r->failed, NULL);
        free(r);
        r = next;
    }
}

/* Reports `res` from the event loop right after the current callbacks (event_active
 * costs no syscall), so a callback never runs inside the call that queued it. */
static int defer_fail(struct rconn *c, struct rcmd *r, enum rconn_result res)
{
    r->failed = res;
    if (c->failed_tail)
        c->failed_tail->next_failed = r;
    else
        c->failed_head = r;
    c->failed_tail = r;
    event_active(c->ev_defer, EV_TIMEOUT, 0);
    return 0;
}

/* Queues the formatted command `cmd` (borrowed: hiredict copies it). */
static int submit(struct rconn *c, const char *cmd, long long len, rconn_cb *cb, void *arg,
                  int timeout_ms)
{
    struct rcmd *r = NULL;
    int64_t now;

    if (c->closing || !cb || len <= 0)
        return -1;
    r = calloc(1, sizeof(*r));
    if (!r)
        return -1;
    r->conn = c;
    r->cb = cb;
    r->arg = arg;
    r->sent_us = mono_us();
    if (c->state != ST_READY)
        return defer_fail(c, r, RCONN_NOT_CONNECTED);
    if (c->in_flight >= c->max_pending)
        return defer_fail(c, r, RCONN_OVERLOADED);
    if (redictAsyncFormattedCommand(c->ac, on_reply, r, cmd, (size_t)len) != REDICT_OK)
        return defer_fail(c, r, RCONN_NOT_CONNECTED);
    now = mono_ms();
    if (c->in_flight++ == 0)
        c->last_progress = now;
    rdeadline_insert(&c->pending, &r->dl, now + (timeout_ms > 0 ? timeout_ms : c->cmd_timeout_ms));
    if (!c->armed_at || r->dl.at < c->armed_at)
        arm(c, r->dl.at, now);
    return 0;
}

int rconn_command(struct rconn *c, rconn_cb *cb, void *arg, int timeout_ms, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;

    va_start(ap, fmt);
    int len = redictvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return -1;
    int rc = submit(c, cmd, len, cb, arg, timeout_ms);
    redictFreeCommand(cmd);
    return rc;
}

int rconn_command_argv(struct rconn *c, rconn_cb *cb, void *arg, int timeout_ms, int argc,
                       const char **argv, const size_t *argvlen)
{
    char *cmd = NULL;

    if (argc <= 0)
        return -1;
    long long len = redictFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return -1;
    int rc = submit(c, cmd, len, cb, arg, timeout_ms);
    redictFreeCommand(cmd);
    return rc;
}

/* ---- scripts ---- */

struct reval {
    struct rconn *conn;                /* borrowed */
    const struct rconn_script *script; /* borrowed */
    rconn_cb *cb;
    void *arg;                         /* borrowed: the caller's */
    int64_t deadline;
    char *cmd;                         /* owned: the formatted EVALSHA */
    long long len;
    bool retried;
};

int rconn_script_init(struct rconn_script *s, const char *body)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    s->body = body;
    s->sha1[0] = '\0';
    if (!body || EVP_Digest(body, strlen(body), md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        return -1;
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(s->sha1 + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* EVAL with the same arguments: the EVALSHA command is "*N\r\n$7\r\nEVALSHA\r\n$40\r\n"
 * <sha> "\r\n" <rest>; swap the first two elements and keep the header and the rest. */
static long long build_eval(const struct reval *e, char **out)
{
    static const char sha_elems[] = "$7\r\nEVALSHA\r\n$40\r\n";
    const char *hdr_end = memchr(e->cmd, '\n', (size_t)e->len);
    size_t hdr = hdr_end ? (size_t)(hdr_end - e->cmd) + 1 : 0;
    size_t skip = hdr + sizeof(sha_elems) - 1 + 40 + 2;
    size_t body_len = strlen(e->script->body);

    if (!hdr || (size_t)e->len < skip || memcmp(e->cmd + hdr, sha_elems, sizeof(sha_elems) - 1))
        return -1;
    size_t cap = hdr + 64 + body_len + 2 + ((size_t)e->len - skip);
    char *buf = malloc(cap);
    if (!buf)
        return -1;
    int n = snprintf(buf, cap, "%.*s$4\r\nEVAL\r\n$%zu\r\n", (int)hdr, e->cmd, body_len);
    memcpy(buf + n, e->script->body, body_len);
    memcpy(buf + n + body_len, "\r\n", 2);
    memcpy(buf + n + body_len + 2, e->cmd + skip, (size_t)e->len - skip);
    *out = buf;
    return (long long)(n + body_len + 2 + ((size_t)e->len - skip));
}

static bool is_noscript(const redictReply *r)
{
    return r && r->type == REDICT_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

static void on_eval_reply(void *arg, enum rconn_result res, const redictReply *reply);

/* NOSCRIPT (after SCRIPT FLUSH or a fresh server): resend as EVAL, within the time left. */
static enum rconn_result retry_eval(struct reval *e)
{
    struct rconn *c = e->conn;
    int64_t left = e->deadline - mono_ms();
    char *cmd = NULL;

    if (left <= 0)
        return RCONN_TIMEOUT;
    long long len = build_eval(e, &cmd);
    int rc = len < 0 ? -1 : submit(c, cmd, len, on_eval_reply, e, (int)left);
    free(cmd);
    if (rc != 0)
        return c->closing ? RCONN_CANCELLED : RCONN_NOT_CONNECTED;
    e->retried = true;
    return RCONN_OK;
}

static void on_eval_reply(void *arg, enum rconn_result res, const redictReply *reply)
{
    struct reval *e = arg;

    if (res == RCONN_OK && !e->retried && is_noscript(reply)) {
        res = retry_eval(e);
        if (res == RCONN_OK)
            return;
        reply = NULL;
    }
    e->cb(e->arg, res, reply);
    redictFreeCommand(e->cmd);
    free(e);
}

int rconn_evalv(struct rconn *c, const struct rconn_script *s, rconn_cb *cb, void *arg,
                int timeout_ms, int nkeys, int argc, const char **argv, const size_t *argvlen)
{
    struct reval *e = NULL;
    const char **av = NULL;
    size_t *avlen = NULL;
    char nk[16];
    int rc = -1;

    if (!s || !s->sha1[0] || argc < 0 || nkeys < 0 || nkeys > argc || argc > 1 << 20)
        return -1;
    e = calloc(1, sizeof(*e));
    av = calloc((size_t)argc + 3, sizeof(*av));
    avlen = calloc((size_t)argc + 3, sizeof(*avlen));
    if (!e || !av || !avlen)
        goto out;
    snprintf(nk, sizeof(nk), "%d", nkeys);
    av[0] = "EVALSHA", av[1] = s->sha1, av[2] = nk;
    avlen[0] = 7, avlen[1] = 40, avlen[2] = strlen(nk);
    for (int i = 0; i < argc; i++) {
        av[i + 3] = argv[i];
        avlen[i + 3] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    *e = (struct reval){ .conn = c, .script = s, .cb = cb, .arg = arg,
                         .deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : c->cmd_timeout_ms) };
    e->len = redictFormatCommandArgv(&e->cmd, argc + 3, av, avlen);
    if (e->len > 0 && cb && submit(c, e->cmd, e->len, on_eval_reply, e, timeout_ms) == 0) {
        e = NULL; /* on_eval_reply owns it now */
        rc = 0;
    }
out:
    if (e)
        redictFreeCommand(e->cmd);
    free(e);
    free(av);
    free(avlen);
    return rc;
}

int rconn_eval(struct rconn *c, const struct rconn_script *s, rconn_cb *cb, void *arg,
               int timeout_ms, int nkeys, ...)
{
    const char *argv[MAX_EVAL_ARGS];
    int argc = 0;
    const char *a;
    va_list ap;

    va_start(ap, nkeys);
    while ((a = va_arg(ap, const char *)) && argc < MAX_EVAL_ARGS)
        argv[argc++] = a;
    va_end(ap);
    if (a)
        return -1; /* more than MAX_EVAL_ARGS */
    return rconn_evalv(c, s, cb, arg, timeout_ms, nkeys, argc, argv, NULL);
}

/* ---- lifecycle and health ---- */

static int copy_options(struct rconn *c, const struct rconn_options *o)
{
    c->port = o->port > 0 ? o->port : 6379;
    c->db = o->db;
    c->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 2000;
    c->cmd_timeout_ms = o->command_timeout_ms > 0 ? o->command_timeout_ms : 1000;
    c->reconnect_min_ms = o->reconnect_min_ms > 0 ? o->reconnect_min_ms : 100;
    c->reconnect_max_ms = o->reconnect_max_ms > 0 ? o->reconnect_max_ms : 5000;
    c->max_pending = o->max_pending ? o->max_pending : 65536;
    c->max_reply_bytes = o->max_reply_bytes ? o->max_reply_bytes : 64u << 20;
    c->host = o->host && *o->host ? strdup(o->host) : NULL;
    c->unix_path = o->unix_path && *o->unix_path ? strdup(o->unix_path) : NULL;
    c->username = o->username && *o->username ? strdup(o->username) : NULL;
    c->password = o->password && *o->password ? strdup(o->password) : NULL;
    const char *sn = o->tls_server_name && *o->tls_server_name ? o->tls_server_name : o->host;
    c->fixed_server_name = o->tls_server_name && *o->tls_server_name;
    c->server_name = sn ? strdup(sn) : NULL;
    if ((o->host && !c->host) || (o->unix_path && *o->unix_path && !c->unix_path) ||
        (o->username && *o->username && !c->username) || (o->password && *o->password && !c->password) ||
        (sn && !c->server_name))
        return -1;
    if (c->unix_path)
        snprintf(c->where, sizeof(c->where), "unix:%s", c->unix_path);
    else if (o->sentinel)
        snprintf(c->where, sizeof(c->where), "master %.100s (via sentinel)",
                 o->sentinel->master_name ? o->sentinel->master_name : "");
    else
        snprintf(c->where, sizeof(c->where), "%s:%d%s", c->host ? c->host : "", c->port,
                 o->tls ? " (tls)" : "");
    return 0;
}

static const char *check_options(const struct rconn_options *o)
{
    bool has_unix = o->unix_path && *o->unix_path;

    if (!has_unix && !(o->host && *o->host) && !o->sentinel)
        return "redis: neither host nor unix_path nor sentinel is set";
    if (o->sentinel && has_unix)
        return "redis: sentinel needs TCP, not a unix socket";
    if (o->tls && has_unix)
        return "redis: tls needs a TCP host, not a unix socket";
    if (o->db < 0 || o->port < 0 || o->port > 65535)
        return "redis: db or port out of range";
    return NULL;
}

static int setup(struct rconn *c, const struct rconn_options *o)
{
    char err[192];

    if (copy_options(c, o) != 0)
        return -1;
    c->ev_conn = evtimer_new(c->base, on_conn_timer, c);
    c->ev_cmd = evtimer_new(c->base, on_cmd_timer, c);
    c->ev_defer = event_new(c->base, -1, 0, on_defer, c);
    if (!c->ev_conn || !c->ev_cmd || !c->ev_defer)
        return -1;
    if (o->tls && !(c->ssl_ctx = rtls_ctx_new(o->tls_ca_file, err, sizeof(err)))) {
        log_json(LOG_LVL_ERROR, "redis tls setup failed", json_pack("{s:s}", "error", err));
        return -1;
    }
    if (o->sentinel && !(c->sentinel = rsentinel_new(c->base, o->sentinel)))
        return -1;
    return 0;
}

struct rconn *rconn_new(struct event_base *base, const struct rconn_options *opts)
{
    const char *bad = check_options(opts);
    struct rconn *c = NULL;

    if (bad) {
        log_msg(LOG_LVL_ERROR, "%s", bad);
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->base = base;
    c->dns = opts->dns;
    c->rng = (uint32_t)(mono_ms() ^ wall_ms() ^ (uintptr_t)c ^ ((uint32_t)getpid() << 16));
    c->health.since_unix_ms = wall_ms();
    if (setup(c, opts) != 0) {
        rconn_free(c);
        return NULL;
    }
    begin_attempt(c);
    return c;
}

void rconn_free(struct rconn *c)
{
    redictAsyncContext *ac;

    if (!c)
        return;
    c->closing = true;
    c->state = ST_CLOSED;
    abandon_lookup(c);
    rsentinel_free(c->sentinel);
    ac = c->ac;
    c->ac = NULL;
    c->ssl = NULL;
    if (ac)
        redictAsyncFree(ac); /* pending commands: RCONN_CANCELLED via on_reply */
    on_defer(-1, 0, c);
    if (c->ev_conn)
        event_free(c->ev_conn);
    if (c->ev_cmd)
        event_free(c->ev_cmd);
    if (c->ev_defer)
        event_free(c->ev_defer);
    SSL_CTX_free(c->ssl_ctx);
    if (c->password)
        OPENSSL_cleanse(c->password, strlen(c->password));
    free(c->host);
    free(c->unix_path);
    free(c->username);
    free(c->password);
    free(c->server_name);
    free(c);
}

const struct rconn_stats *rconn_stats(const struct rconn *c)
{
    return &c->stats;
}

void rconn_get_health(const struct rconn *c, struct rconn_health *out)
{
    *out = c->health;
    out->in_flight = c->in_flight;
    snprintf(out->address, sizeof(out->address), "%s", c->where);
    snprintf(out->named_by, sizeof(out->named_by), "%s",
             c->sentinel ? rsentinel_last(c->sentinel) : "");
}

void rconn_set_state_cb(struct rconn *c, void (*cb)(void *arg, bool connected), void *arg)
{
    c->state_cb = cb;
    c->state_arg = arg;
}
