/* h1up: PROTOTYPE HTTP/1.1 upstream client (see h1up.h).
 *
 *   start: attach (idle conn | new conn: connect) -> kick: send head + body (out buffer)
 *     -> read: http_parser -> on_head, on_body (pause: parser paused, read event off)
 *     -> message complete: conn back to the pool (or closed), on_done, free
 *   a kept connection found dead before any response byte: the request (still whole in
 *   the out buffer) goes once more on a new connection, as libcurl does.
 *
 * Callbacks run from the loop only: upstream_send and friends only buffer and activate the
 * connection's kick event. A callback may abort its own transfer; `in_cb` makes that a mark
 * that the code after the callback acts on. */
#include "h1up.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#include "uphead.h"
#include "upreq.h"

#define KEY_MAX 256             /* host:port of a pooled connection */
#define IDLE_MAX 256            /* idle connections kept */
#define IDLE_MS (60 * 1000)     /* an idle connection is closed after this */
#define OUT_FIRST 4096          /* first size of a connection's request buffer */
#define OUT_KEEP (64 * 1024)    /* an idle connection frees a request buffer above this */

#define ADDR_CACHE 8
#define SPARE_HEADS 64

struct addr_entry {
    char key[KEY_MAX];
    struct sockaddr_storage sa;
    socklen_t len;
};

struct h1conn;

struct h1up {
    struct event_base *base;          /* borrowed */
    struct upstream_opts opts;        /* strings borrowed from the upstream */
    struct upstream_stats *stats;     /* borrowed */
    struct h1conn *conns;             /* owned: every connection, idle or busy */
    size_t n_idle;
    struct addr_entry addrs[ADDR_CACHE];
    size_t n_addrs;
    struct uphead *spare[SPARE_HEADS]; /* owned: emptied heads for the next transfers */
    size_t n_spare;
};

struct h1x {
    unsigned char kind;               /* H1UP_KIND_H1: first, see h1up.h */
    struct h1up *h;                   /* borrowed owner */
    struct h1conn *c;                 /* borrowed: the connection carrying it */
    struct upstream_cbs cbs;
    struct uphead *head;              /* owned */
    int64_t body_len;                 /* as upstream_req */
    uint64_t pushed;                  /* request body bytes taken from the caller */
    uint64_t bytes_received;
    unsigned connect_ms, total_ms;
    int64_t deadline_us;              /* monotonic end of the total limit */
    long connects;
    bool is_head, send_eof, head_done, got_response, request_sent;
    bool replayable;                  /* the whole request is still in the out buffer */
    bool retried, space_wanted, want_recv, recv_paused, interim, send_waiting;
    bool in_cb, aborted, finishing;
    bool failing;                     /* fail_result/fail_text hold a failure to report */
    enum upstream_result fail_result;
    const char *fail_text;            /* static */
};

struct h1conn {
    struct h1up *h;                   /* borrowed */
    struct h1conn *prev, *next;       /* in h->conns */
    char key[KEY_MAX];
    int fd;
    struct event *rd, *wr, *tm, *kick; /* owned */
    struct h1x *x;                    /* the transfer on it, NULL while idle */
    bool connecting, idle, reused, done, rd_off;
    bool failed;                      /* the connect could not start */
    bool peer_closed;                 /* EOF seen: never kept */
    http_parser parser;
    char *out;                        /* owned: request bytes; [out_off, out_len) unsent */
    size_t out_off, out_len, out_cap;
    char *in;                         /* owned: recv_buffer_bytes; [in_off, in_len) unparsed */
    size_t in_off, in_len;
    char *line;                       /* owned: the header line being assembled */
    size_t line_len, line_cap;
    bool in_value, status_fed;
};

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool h1up_enabled(void)
{
    const char *v = getenv("FOGATE_PROTO_H1");

    return v && *v && strcmp(v, "0") != 0;
}

/* ---- URL ---- */

/* "http://authority/path?query": authority into key, the target from '/' on (or "/"). */
static int split_url(const char *url, char *key, const char **target)
{
    const char *a, *e;

    if (strncasecmp(url, "http://", 7) != 0)
        return -1;
    a = url + 7;
    e = a + strcspn(a, "/?#");
    if (e == a || (size_t)(e - a) >= KEY_MAX || memchr(a, '@', (size_t)(e - a)))
        return -1;
    memcpy(key, a, (size_t)(e - a));
    key[e - a] = '\0';
    *target = e;
    return 0;
}

bool h1up_handles(const struct h1up *h, const char *url)
{
    char key[KEY_MAX];
    const char *t;

    /* without allow_http, libcurl's path refuses http:// with its usual error */
    return h->opts.allow_http && !h->opts.proxy && url && split_url(url, key, &t) == 0;
}

/* Host and port of "host[:port]" or "[v6][:port]". */
static int host_port(const char *key, char *host, size_t cap, const char **port)
{
    const char *colon, *h = key, *he;

    if (*key == '[') {
        h = key + 1;
        he = strchr(h, ']');
        if (!he)
            return -1;
        colon = he[1] == ':' ? he + 1 : NULL;
    } else {
        colon = strrchr(key, ':');
        he = colon ? colon : key + strlen(key);
    }
    if ((size_t)(he - h) >= cap)
        return -1;
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = '\0';
    *port = colon && colon[1] ? colon + 1 : "80";
    return 0;
}

/* The address of `key`, cached. Blocking getaddrinfo: a prototype shortcut (numeric hosts
 * return at once; a production version needs evdns or a resolver thread). */
static const struct addr_entry *resolve(struct h1up *h, const char *key)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    struct addr_entry *e;
    char host[KEY_MAX];
    const char *port;

    for (size_t i = 0; i < h->n_addrs; i++)
        if (strcmp(h->addrs[i].key, key) == 0)
            return &h->addrs[i];
    if (host_port(key, host, sizeof host, &port) != 0 ||
        getaddrinfo(host, port, &hints, &res) != 0 || !res)
        return NULL;
    e = &h->addrs[h->n_addrs < ADDR_CACHE ? h->n_addrs++ : ADDR_CACHE - 1];
    snprintf(e->key, sizeof e->key, "%s", key);
    memcpy(&e->sa, res->ai_addr, res->ai_addrlen);
    e->len = res->ai_addrlen;
    freeaddrinfo(res);
    return e;
}

/* ---- connections ---- */

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void on_kick(evutil_socket_t fd, short what, void *arg);

static void conn_close(struct h1conn *c)
{
    struct h1up *h = c->h;

    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->idle)
        h->n_idle--;
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
    free(c->out);
    free(c->in);
    free(c->line);
    free(c);
}

/* Starts connecting to `key`. A connection that could not start (name not resolved,
 * refused at once) is returned with `failed` set and no socket, so that the failure is
 * reported from the loop like any other; NULL only when memory ran out. */
static struct h1conn *conn_open(struct h1up *h, const char *key)
{
    const struct addr_entry *a = resolve(h, key);
    struct h1conn *c = calloc(1, sizeof *c);
    int one = 1;

    if (!c)
        return NULL;
    c->h = h;
    c->fd = -1;
    snprintf(c->key, sizeof c->key, "%s", key);
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    c->tm = evtimer_new(h->base, on_timer, c);
    c->kick = event_new(h->base, -1, 0, on_kick, c);
    c->in = malloc(h->opts.recv_buffer_bytes);
    if (!c->tm || !c->kick || !c->in) {
        conn_close(c);
        return NULL;
    }
    c->connecting = true;
    c->failed = true;
    if (!a || (c->fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                              0)) < 0)
        return c;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as libcurl */
    setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    c->rd = event_new(h->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
    c->wr = event_new(h->base, c->fd, EV_WRITE, on_write, c);
    if (!c->rd || !c->wr ||
        (connect(c->fd, (const struct sockaddr *)&a->sa, a->len) != 0 && errno != EINPROGRESS))
        return c;
    h->stats->connects++;
    if (event_add(c->wr, NULL) != 0 || event_add(c->rd, NULL) != 0)
        return c;
    c->failed = false;
    return c;
}

/* An idle connection to `key` (most recently used first), taken out of the idle set. */
static struct h1conn *conn_reuse(struct h1up *h, const char *key)
{
    for (struct h1conn *c = h->conns; c; c = c->next) {
        if (c->idle && strcmp(c->key, key) == 0) {
            c->idle = false;
            h->n_idle--;
            c->reused = true;
            return c;
        }
    }
    return NULL;
}

/* Back to the pool after a complete response; the idle timer closes it later. */
static void conn_idle(struct h1conn *c)
{
    struct h1up *h = c->h;
    struct timeval tv = {IDLE_MS / 1000, 0};

    c->x = NULL;
    c->out_off = c->out_len = 0;
    c->in_off = c->in_len = 0;
    if (c->out_cap > OUT_KEEP) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    if (h->n_idle >= IDLE_MAX) {
        conn_close(c);
        return;
    }
    if (c->rd_off) { /* a paused read left it off */
        c->rd_off = false;
        event_add(c->rd, NULL);
    }
    event_del(c->wr);
    c->idle = true;
    h->n_idle++;
    evtimer_add(c->tm, &tv);
    /* move to the front: reuse takes the most recent */
    if (c != h->conns) {
        c->prev->next = c->next;
        if (c->next)
            c->next->prev = c->prev;
        c->prev = NULL;
        c->next = h->conns;
        h->conns->prev = c;
        h->conns = c;
    }
}

/* ---- response parsing (http_parser callbacks; c = parser->data) ---- */

static int line_add(struct h1conn *c, const char *s, size_t n)
{
    size_t need = c->line_len + n + 2, cap = c->line_cap ? c->line_cap : 256;
    char *p;

    if (need > c->h->opts.max_header_bytes)
        return -1;
    if (need > c->line_cap) {
        while (cap < need)
            cap *= 2;
        if (!(p = realloc(c->line, cap)))
            return -1;
        c->line = p;
        c->line_cap = cap;
    }
    memcpy(c->line + c->line_len, s, n);
    c->line_len += n;
    return 0;
}

static void set_fail(struct h1x *x, enum upstream_result r, const char *text)
{
    if (x->failing)
        return;
    x->failing = true;
    x->fail_result = r;
    x->fail_text = text;
}

/* Feeds the line built so far (and first the status line); -1 stops the parser. */
static int feed_pending(struct h1conn *c, http_parser *p)
{
    struct h1x *x = c->x;
    enum uphead_verdict v;

    if (!c->status_fed) {
        char st[32];
        int n = snprintf(st, sizeof st, "HTTP/1.%u %03u\r\n", p->http_minor % 10,
                         p->status_code % 1000);
        c->status_fed = true;
        v = uphead_feed(x->head, st, (size_t)n);
        if (v != UPHEAD_MORE)
            goto bad;
    }
    if (!c->line_len)
        return 0;
    if (line_add(c, "\r\n", 2) != 0) {
        set_fail(x, UPSTREAM_TOO_LARGE, "response head too large");
        return -1;
    }
    v = uphead_feed(x->head, c->line, c->line_len);
    c->line_len = 0;
    c->in_value = false;
    if (v == UPHEAD_MORE)
        return 0;
bad:
    set_fail(x, v == UPHEAD_TOO_BIG ? UPSTREAM_TOO_LARGE : UPSTREAM_OTHER,
             v == UPHEAD_TOO_BIG ? "response head too large" : "malformed response head");
    return -1;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
    struct h1conn *c = p->data;

    if (c->x->head_done) /* a chunked body's trailers: ignored (http_parser bounds them) */
        return 0;
    if ((c->in_value || !c->status_fed) && feed_pending(c, p) != 0)
        return -1;
    if (line_add(c, at, len) == 0)
        return 0;
    set_fail(c->x, UPSTREAM_TOO_LARGE, "response head too large");
    return -1;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    struct h1conn *c = p->data;

    if (c->x->head_done)
        return 0;
    if ((!c->in_value && line_add(c, ": ", 2) != 0) || line_add(c, at, len) != 0) {
        set_fail(c->x, UPSTREAM_TOO_LARGE, "response head too large");
        return -1;
    }
    c->in_value = true;
    return 0;
}

static int on_headers_done(http_parser *p)
{
    struct h1conn *c = p->data;
    struct h1x *x = c->x;
    enum uphead_verdict v;

    if (feed_pending(c, p) != 0)
        return -1;
    v = uphead_feed(x->head, "\r\n", 2);
    c->status_fed = false;
    if (v == UPHEAD_INTERIM) {
        x->interim = true; /* its message_complete is not ours */
        return 0;
    }
    if (v != UPHEAD_DONE) {
        set_fail(x, v == UPHEAD_TOO_BIG ? UPSTREAM_TOO_LARGE : UPSTREAM_OTHER,
                 v == UPHEAD_TOO_BIG ? "response head too large" : "malformed response head");
        return -1;
    }
    x->head_done = true;
    if (x->cbs.on_head) {
        x->in_cb = true;
        x->cbs.on_head(x->cbs.arg, x->head);
        x->in_cb = false;
        if (x->aborted)
            http_parser_pause(p, 1);
    }
    return x->is_head ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct h1conn *c = p->data;
    struct h1x *x = c->x;

    x->bytes_received += len;
    if (!x->cbs.on_body)
        return 0;
    x->in_cb = true;
    if (x->cbs.on_body(x->cbs.arg, at, len) == UPSTREAM_PAUSE) {
        x->recv_paused = true;
        x->h->stats->pauses++;
        http_parser_pause(p, 1);
    }
    x->in_cb = false;
    if (x->aborted)
        http_parser_pause(p, 1);
    return 0;
}

static int on_message_done(http_parser *p)
{
    struct h1conn *c = p->data;

    if (c->x->interim) {
        c->x->interim = false;
        return 0;
    }
    c->done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_done,
    .on_body = on_body,
    .on_message_complete = on_message_done,
};

/* ---- transfer lifetime ---- */

static void xfer_free(struct h1x *x)
{
    struct h1up *h = x->h;

    h->stats->bytes_sent += x->pushed;
    h->stats->bytes_received += x->bytes_received;
    if (x->head) {
        if (h->n_spare < SPARE_HEADS) {
            uphead_reset(x->head);
            h->spare[h->n_spare++] = x->head;
        } else {
            uphead_free(x->head);
        }
    }
    free(x);
}

/* Reports and frees `x`; its connection goes back to the pool first (so a transfer started
 * from on_done can reuse it) when the response ended cleanly, else it is closed. */
static void finish(struct h1x *x, enum upstream_result r, const char *text)
{
    struct h1conn *c = x->c;
    struct upstream_done d = {0};
    bool keep = r == UPSTREAM_OK && c && c->done && !c->connecting && !c->peer_closed &&
                c->out_off == c->out_len && c->in_off == c->in_len &&
                http_should_keep_alive(&c->parser) && x->request_sent;

    if (c) {
        evtimer_del(c->tm);
        if (keep)
            conn_idle(c);
        else
            conn_close(c);
        x->c = NULL;
    }
    d.result = r;
    d.error = r == UPSTREAM_OK ? "" : text ? text : upstream_result_name(r);
    d.status = x->head_done ? uphead_status(x->head) : 0;
    d.head = x->head_done ? x->head : NULL;
    d.connects = x->connects;
    d.bytes_sent = x->pushed;
    d.bytes_received = x->bytes_received;
    d.request_sent = x->request_sent;
    x->h->stats->transfers_done++;
    x->finishing = true;
    x->cbs.on_done(x->cbs.arg, &d);
    xfer_free(x);
}

static void fail_now(struct h1x *x, enum upstream_result r, const char *text)
{
    set_fail(x, r, text);
    finish(x, x->fail_result, x->fail_text);
}

void h1up_abort(struct upstream_xfer *ux)
{
    struct h1x *x = (struct h1x *)(void *)ux;

    if (!x || x->aborted || x->finishing)
        return;
    x->aborted = true;
    x->h->stats->transfers_aborted++;
    if (x->in_cb)
        return; /* the code after the callback closes and frees */
    if (x->c) {
        x->c->x = NULL;
        conn_close(x->c);
    }
    xfer_free(x);
}

/* After a callback aborted `x` (in_cb cleared): close its connection and free it. */
static void reap(struct h1x *x)
{
    if (x->c) {
        x->c->x = NULL;
        conn_close(x->c);
    }
    xfer_free(x);
}

/* ---- sending ---- */

static void arm_timer(struct h1conn *c, struct h1x *x)
{
    int64_t left = x->deadline_us - mono_us();
    struct timeval tv;

    if (c->connecting && (int64_t)x->connect_ms * 1000 < left)
        left = (int64_t)x->connect_ms * 1000;
    if (left < 1000)
        left = 1000;
    tv.tv_sec = (time_t)(left / 1000000);
    tv.tv_usec = (suseconds_t)(left % 1000000);
    evtimer_add(c->tm, &tv);
}

static size_t pending(const struct h1conn *c)
{
    return c->out_len - c->out_off;
}

static bool body_complete(const struct h1x *x)
{
    return x->body_len == UPSTREAM_BODY_NONE || x->send_eof ||
           (x->body_len >= 0 && x->pushed == (uint64_t)x->body_len);
}

/* Room for `n` more bytes; drops sent bytes first (then a replay is no longer possible). */
static int out_reserve(struct h1conn *c, size_t n)
{
    size_t cap = c->out_cap ? c->out_cap : OUT_FIRST;
    char *p;

    if (c->out_len + n <= c->out_cap)
        return 0;
    if (c->out_off > 0 && c->x) {
        memmove(c->out, c->out + c->out_off, pending(c));
        c->out_len -= c->out_off;
        c->out_off = 0;
        c->x->replayable = false;
        if (c->out_len + n <= c->out_cap)
            return 0;
    }
    while (cap < c->out_len + n)
        cap *= 2;
    if (!(p = realloc(c->out, cap)))
        return -1;
    c->out = p;
    c->out_cap = cap;
    return 0;
}

static void kick(struct h1conn *c)
{
    event_active(c->kick, EV_TIMEOUT, 0);
}

/* Sends what is buffered. Returns 0, or -1 after a send error (x marked failing). */
static int flush(struct h1conn *c)
{
    struct h1x *x = c->x;

    while (pending(c) > 0) {
        ssize_t n = send(c->fd, c->out + c->out_off, pending(c), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(c->wr, NULL);
            return 0;
        }
        if (n <= 0) {
            set_fail(x, UPSTREAM_OTHER, "send failure");
            return -1;
        }
        c->out_off += (size_t)n;
    }
    if (body_complete(x))
        x->request_sent = true;
    return 0;
}

static bool retry_fresh(struct h1x *x);

/* The request could not go out or no response came on a kept connection: once more on a
 * new one if the whole request is still here, else fail with `r`. */
static void conn_lost(struct h1x *x, enum upstream_result r, const char *text)
{
    if (x->c->reused && !x->got_response && x->replayable && !x->retried && retry_fresh(x))
        return;
    fail_now(x, r, text);
}

/* The send buffer drained: tell the caller (from the loop; it may abort x). */
static void notify_space(struct h1x *x)
{
    if (!x->space_wanted || pending(x->c) > x->h->opts.send_buffer_bytes / 2)
        return;
    x->space_wanted = false;
    if (!x->cbs.on_send_space)
        return;
    x->in_cb = true;
    x->cbs.on_send_space(x->cbs.arg);
    x->in_cb = false;
}

static void do_flush(struct h1conn *c)
{
    struct h1x *x = c->x;

    if (flush(c) != 0) {
        conn_lost(x, UPSTREAM_OTHER, "send failure");
        return;
    }
    if (pending(c) == 0 && !body_complete(x) && !x->send_waiting) {
        x->send_waiting = true; /* the upload waits for the caller: counted as libcurl's */
        x->h->stats->pauses++;
    }
    notify_space(x);
    if (x->aborted)
        reap(x);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct h1conn *c = arg;
    struct h1x *x = c->x;
    int err = 0;
    socklen_t len = sizeof err;

    if (!x)
        return;
    if (c->connecting) {
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            fail_now(x, UPSTREAM_CONNECT_FAILED, "could not connect to the upstream");
            return;
        }
        c->connecting = false;
        arm_timer(c, x);
    }
    do_flush(c);
}

/* ---- receiving ---- */

static int parse(struct h1conn *c);

static void on_eof(struct h1conn *c, int err)
{
    struct h1x *x = c->x;

    if (!x->got_response) {
        conn_lost(x, UPSTREAM_OTHER, err ? "connection reset before the response"
                                         : "empty reply from the upstream");
        return;
    }
    if (!err) { /* ends a body read until close */
        http_parser_execute(&c->parser, &settings, NULL, 0);
        if (c->done) {
            c->peer_closed = true;
            finish(x, UPSTREAM_OK, NULL);
            return;
        }
    }
    fail_now(x, x->head_done ? UPSTREAM_TRUNCATED : UPSTREAM_OTHER,
             x->head_done ? "upstream closed the connection mid-body"
                          : "upstream closed the connection mid-head");
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct h1conn *c = arg;
    struct h1x *x = c->x;
    ssize_t n;

    if (!x) { /* idle: the peer closed it, or sent what nobody asked for */
        conn_close(c);
        return;
    }
    if (c->connecting || x->recv_paused)
        return;
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    n = recv(fd, c->in + c->in_len, c->h->opts.recv_buffer_bytes - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        on_eof(c, n < 0 ? errno : 0);
        return;
    }
    x->got_response = true;
    c->in_len += (size_t)n;
    parse(c);
}

/* Runs the parser over the unparsed bytes and acts on where it stopped. Returns 1 when the
 * transfer ended (x freed, c closed or idle), else 0. */
static int parse(struct h1conn *c)
{
    struct h1x *x = c->x;
    size_t got = http_parser_execute(&c->parser, &settings, c->in + c->in_off,
                                     c->in_len - c->in_off);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

    c->in_off += got;
    if (x->aborted) {
        reap(x);
        return 1;
    }
    if (e == HPE_PAUSED) {
        http_parser_pause(&c->parser, 0);
        if (c->done) {
            finish(x, UPSTREAM_OK, NULL);
            return 1;
        }
        if (x->recv_paused && !c->rd_off) {
            c->rd_off = true;
            event_del(c->rd);
        }
        return 0;
    }
    if (e != HPE_OK) {
        if (!x->failing)
            set_fail(x, x->head_done ? UPSTREAM_TRUNCATED : UPSTREAM_OTHER,
                     x->head_done ? "malformed response body" : "malformed response head");
        finish(x, x->fail_result, x->fail_text);
        return 1;
    }
    return 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct h1conn *c = arg;

    if (!c->x) { /* idle too long */
        conn_close(c);
        return;
    }
    fail_now(c->x, UPSTREAM_TIMEOUT, c->connecting ? "connection timed out"
                                                   : "operation timed out");
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct h1conn *c = arg;
    struct h1x *x = c->x;

    if (!x)
        return;
    if (x->failing) { /* a failure found where no callback may run */
        finish(x, x->fail_result, x->fail_text);
        return;
    }
    if (x->want_recv) {
        x->want_recv = false;
        x->recv_paused = false;
        if (c->in_off < c->in_len && (parse(c) != 0 || x->recv_paused))
            return;
        if (c->rd_off) {
            c->rd_off = false;
            event_add(c->rd, NULL);
        }
    }
    if (!c->connecting)
        do_flush(c);
}

/* ---- starting ---- */

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static size_t name_len(const char *line)
{
    size_t n = 0;

    while (is_tchar((unsigned char)line[n]))
        n++;
    return line[n] == ':' ? n : 0;
}

static bool named(const char *line, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(line, name, n) == 0;
}

static int out_add(struct h1conn *c, const char *s, size_t n)
{
    if (out_reserve(c, n) != 0)
        return -1;
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
    return 0;
}

/* Request line, Host, the caller's lines (Content-Length, Transfer-Encoding and Expect
 * dropped, as upreq does), the framing line, the blank line. */
static int write_head(struct h1conn *c, const struct upstream_req *req, const char *target)
{
    bool has_host = false;
    char num[64];
    int rc = 0;

    for (size_t i = 0; i < req->n_headers; i++) {
        const char *l = req->headers[i];
        if (!l || !name_len(l) || strpbrk(l, "\r\n"))
            return -1;
        has_host |= named(l, name_len(l), "Host");
    }
    rc |= out_add(c, req->method, strlen(req->method));
    rc |= out_add(c, " ", 1);
    rc |= *target == '/' ? 0 : out_add(c, "/", 1);
    rc |= out_add(c, target, strcspn(target, "#"));
    rc |= out_add(c, " HTTP/1.1\r\n", 11);
    if (!has_host) {
        rc |= out_add(c, "Host: ", 6);
        rc |= out_add(c, c->key, strlen(c->key));
        rc |= out_add(c, "\r\n", 2);
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *l = req->headers[i];
        size_t nl = name_len(l);
        if (named(l, nl, "Content-Length") || named(l, nl, "Transfer-Encoding") ||
            named(l, nl, "Expect"))
            continue;
        rc |= out_add(c, l, strlen(l));
        rc |= out_add(c, "\r\n", 2);
    }
    if (req->body_len >= 0) {
        int n = snprintf(num, sizeof num, "Content-Length: %lld\r\n", (long long)req->body_len);
        rc |= out_add(c, num, (size_t)n);
    } else if (req->body_len == UPSTREAM_BODY_CHUNKED) {
        rc |= out_add(c, "Transfer-Encoding: chunked\r\n", 28);
    }
    rc |= out_add(c, "\r\n", 2);
    return rc ? -1 : 0;
}

static void attach(struct h1conn *c, struct h1x *x)
{
    c->x = x;
    x->c = c;
    c->done = false;
    c->line_len = 0;
    c->in_value = false;
    c->status_fed = false;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    if (!c->reused)
        x->connects++;
    if (c->failed)
        set_fail(x, UPSTREAM_CONNECT_FAILED, "could not connect to the upstream");
    arm_timer(c, x);
}

/* A new connection for a request whose kept one died before answering: the out buffer
 * (the whole request) moves over. */
static bool retry_fresh(struct h1x *x)
{
    struct h1conn *old = x->c, *c = conn_open(x->h, old->key);
    char *buf;
    size_t cap;

    if (!c)
        return false;
    if (c->failed) {
        conn_close(c);
        return false;
    }
    x->retried = true;
    buf = c->out;
    cap = c->out_cap;
    c->out = old->out;
    c->out_cap = old->out_cap;
    c->out_len = old->out_len;
    c->out_off = 0;
    old->out = buf;
    old->out_cap = cap;
    old->x = NULL;
    conn_close(old);
    x->request_sent = false;
    attach(c, x);
    return true;
}

static unsigned pick(unsigned req, unsigned dflt)
{
    if (req == UPSTREAM_NO_LIMIT)
        return 0;
    return req ? req : dflt;
}

struct upstream_xfer *h1up_start(struct h1up *h, const struct upstream_req *req,
                                 const struct upstream_cbs *cbs)
{
    char key[KEY_MAX];
    const char *target;
    struct h1conn *c = NULL;
    struct h1x *x;
    unsigned total;

    if (!upreq_method_ok(req->method) || !req->url || !cbs->on_done ||
        req->body_len < UPSTREAM_BODY_CHUNKED || split_url(req->url, key, &target) != 0)
        return NULL;
    if (!(x = calloc(1, sizeof *x)))
        return NULL;
    x->kind = H1UP_KIND_H1;
    x->h = h;
    x->cbs = *cbs;
    x->body_len = req->body_len;
    x->is_head = strcmp(req->method, "HEAD") == 0;
    x->replayable = true;
    x->connect_ms = pick(req->timeouts.connect_ms, h->opts.connect_timeout_ms);
    total = pick(req->timeouts.total_ms, h->opts.total_timeout_ms);
    x->total_ms = total ? total : 24u * 3600 * 1000;
    x->deadline_us = mono_us() + (int64_t)x->total_ms * 1000;
    if (!x->connect_ms)
        x->connect_ms = x->total_ms;
    x->head = h->n_spare ? h->spare[--h->n_spare] : uphead_new(h->opts.max_header_bytes);
    if (x->head && !(c = conn_reuse(h, key)))
        c = conn_open(h, key);
    if (!c) {
        xfer_free(x);
        return NULL;
    }
    attach(c, x);
    if (write_head(c, req, target) != 0) {
        c->x = NULL;
        conn_close(c);
        xfer_free(x);
        return NULL;
    }
    h->stats->transfers_started++;
    kick(c);
    return (struct upstream_xfer *)(void *)x;
}

/* ---- request body ---- */

size_t h1up_send_space(const struct upstream_xfer *ux)
{
    const struct h1x *x = (const struct h1x *)(const void *)ux;
    size_t cap = x->h->opts.send_buffer_bytes, have, room;

    if (x->aborted || x->send_eof || !x->c || x->body_len == UPSTREAM_BODY_NONE)
        return 0;
    have = pending(x->c);
    room = have >= cap ? 0 : cap - have;
    if (x->body_len >= 0 && (uint64_t)x->body_len - x->pushed < room)
        room = (size_t)((uint64_t)x->body_len - x->pushed);
    return room;
}

size_t h1up_send(struct upstream_xfer *ux, const void *data, size_t len)
{
    struct h1x *x = (struct h1x *)(void *)ux;
    size_t room = h1up_send_space(ux), take = len < room ? len : room;
    char sz[24];

    if (take > 0) {
        if (x->body_len == UPSTREAM_BODY_CHUNKED) {
            int n = snprintf(sz, sizeof sz, "%zx\r\n", take);
            if (out_reserve(x->c, (size_t)n + take + 2) != 0)
                return 0;
            out_add(x->c, sz, (size_t)n);
            out_add(x->c, data, take);
            out_add(x->c, "\r\n", 2);
        } else if (out_add(x->c, data, take) != 0) {
            return 0;
        }
        x->pushed += take;
        x->send_waiting = false;
        kick(x->c);
    }
    /* as upstream.c: a caller that stops at space 0 must hear when room comes back */
    if (take < len || (h1up_send_space(ux) == 0 && !body_complete(x)))
        x->space_wanted = true;
    return take;
}

size_t h1up_send_buffer(struct upstream_xfer *ux, struct evbuffer *src)
{
    size_t total = 0;

    while (evbuffer_get_length(src) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(src, -1, NULL, &v, 1) < 1)
            break;
        size_t took = h1up_send(ux, v.iov_base, v.iov_len);
        evbuffer_drain(src, took);
        total += took;
        if (took < v.iov_len)
            break;
    }
    return total;
}

void h1up_send_eof(struct upstream_xfer *ux)
{
    struct h1x *x = (struct h1x *)(void *)ux;

    if (x->aborted || x->send_eof || !x->c)
        return;
    x->send_eof = true;
    x->space_wanted = false;
    if (x->body_len >= 0 && x->pushed < (uint64_t)x->body_len)
        set_fail(x, UPSTREAM_OTHER, "request body shorter than its Content-Length");
    else if (x->body_len == UPSTREAM_BODY_CHUNKED && out_add(x->c, "0\r\n\r\n", 5) != 0)
        set_fail(x, UPSTREAM_OTHER, "out of memory");
    kick(x->c);
}

void h1up_resume_recv(struct upstream_xfer *ux)
{
    struct h1x *x = (struct h1x *)(void *)ux;

    if (x->aborted || !x->recv_paused || !x->c)
        return;
    x->want_recv = true;
    kick(x->c);
}

/* ---- the client ---- */

struct h1up *h1up_new(struct event_base *base, const struct upstream_opts *opts,
                      struct upstream_stats *stats)
{
    struct h1up *h = calloc(1, sizeof *h);

    if (!h)
        return NULL;
    h->base = base;
    h->opts = *opts;
    h->stats = stats;
    return h;
}

void h1up_free(struct h1up *h)
{
    if (!h)
        return;
    while (h->conns) {
        struct h1conn *c = h->conns;
        if (c->x) {
            c->x->c = NULL;
            xfer_free(c->x);
        }
        c->x = NULL;
        conn_close(c);
    }
    while (h->n_spare > 0)
        uphead_free(h->spare[--h->n_spare]);
    free(h);
}
