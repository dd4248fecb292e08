/* h1up: transfers of the own HTTP/1.1 client (see h1up.h).
 *
 *   start: head into x->out -> attach (idle conn | new conn: connect) -> kick: flush
 *     -> readable: h1resp -> on_head, on_body (pause: read off until resumed)
 *     -> complete: conn back to the pool (or closed), on_done, free
 *   a kept connection found dead before any response byte: the request (still whole in
 *   x->out) goes once more on a new connection, as libcurl does.
 *
 * Callbacks run from the loop only: upstream_send and friends only buffer and kick the
 * connection. A callback may abort its own transfer; `in_cb` makes that a mark that the
 * code after the callback acts on. */
#include "h1up.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event_struct.h>

#include "h1conn.h"
#include "h1out.h"
#include "h1resp.h"
#include "uphead.h"
#include "upreq.h"

#define SPARE 64                /* emptied heads and byte buffers kept for reuse */
#define OUT_KEEP (64 * 1024)    /* a larger request or fetch buffer is not kept */
#define FETCH_MIN 4096          /* first size of a fetch buffer without Content-Length */

struct spare_out {
    char *buf;                    /* owned */
    size_t cap;
};

struct h1up {
    struct event_base *base;          /* borrowed */
    struct upstream_opts opts;        /* strings borrowed from the upstream */
    struct upstream_stats *stats;     /* borrowed */
    struct h1conn_pool *pool;         /* owned */
    unsigned *bulk_buffers;           /* borrowed: the upstream's count, shared with libcurl's */
    struct h1x *live;                 /* borrowed list of transfers (owned by callers) */
    uint64_t socket_events, timer_events, rearms, sockets;
    struct uphead *heads[SPARE];      /* owned: emptied heads */
    size_t n_heads;
    struct spare_out outs[SPARE];     /* owned: request and fetch buffers */
    size_t n_outs;
};

struct h1x {
    unsigned char kind;               /* H1UP_KIND_H1: first, see h1up.h */
    struct h1up *h;                   /* borrowed owner */
    struct h1x *prev, *next;          /* in h->live */
    struct h1conn_waiter waiter;      /* in the pool's FIFO while `waiting` */
    struct h1conn *c;                 /* borrowed: the connection carrying it, or NULL */
    struct event wait_ev;             /* total limit and reports while waiting (embedded) */
    char *bulk;                       /* owned: the bulk receive buffer, or NULL */
    char *saved_in;                   /* the connection's own buffer while bulk is lent */
    size_t saved_cap;
    char key[H1CONN_KEY_MAX];         /* "http://authority" */
    struct upstream_cbs cbs;
    struct uphead *head;              /* owned */
    struct h1out out;                 /* request bytes */
    int64_t body_len;                 /* as upstream_req */
    uint64_t pushed;                  /* request body bytes taken from the caller */
    uint64_t bytes_received;
    unsigned connect_ms, total_ms, first_byte_ms, stall_ms; /* 0 = none (but total) */
    int64_t deadline_us;              /* monotonic end of the total limit */
    int64_t connect_deadline_us;      /* of the connection being opened */
    int64_t progress_us;              /* last byte moved, or last time fogate held it */
    long connects;
    bool is_head, send_eof, connected, head_done, got_response, request_sent;
    bool retried, space_wanted, want_recv, recv_paused, send_waiting, waiting;
    bool in_cb, aborted, finishing;
    bool fetching;                    /* h1up_fetch: the body is buffered into `fetch` */
    char *fetch;                      /* owned: the response body so far, or NULL */
    size_t fetch_len, fetch_cap;
    size_t fetch_max;                 /* max_response_bytes */
    bool failing;                     /* fail_result/fail_text hold a failure to report */
    enum upstream_result fail_result;
    const char *fail_text;            /* static, or `error` */
    char error[160];                  /* a TLS failure's text */
};

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct h1x *xfer_of(struct upstream_xfer *ux)
{
    return (struct h1x *)(void *)ux;
}

/* "http(s)://authority/path?query": "http(s)://authority" into key (the pool's key: scheme,
 * host and port), the target from '/' on; *auth points at the authority inside key. */
static int split_url(const char *url, char *key, const char **target, const char **auth)
{
    size_t sl = strncasecmp(url, "https://", 8) == 0 ? 8
                : strncasecmp(url, "http://", 7) == 0 ? 7 : 0;
    const char *a = url + sl, *e = a + strcspn(a, "/?#");

    if (!sl || e == a || (size_t)(e - a) + sl >= H1CONN_KEY_MAX ||
        memchr(a, '@', (size_t)(e - a)))
        return -1;
    memcpy(key, sl == 8 ? "https://" : "http://", sl);
    memcpy(key + sl, a, (size_t)(e - a));
    key[sl + (size_t)(e - a)] = '\0';
    *target = e;
    *auth = key + sl;
    return 0;
}

bool h1up_handles(const struct h1up *h, const char *url)
{
    char key[H1CONN_KEY_MAX];
    const char *t, *a;

    /* a proxy stays with libcurl (CONNECT tunnels are not done here); without allow_http,
     * libcurl's path refuses http:// with its usual error */
    return !h->opts.proxy && url && split_url(url, key, &t, &a) == 0 &&
           (key[4] == 's' || h->opts.allow_http);
}

/* ---- transfer lifetime ---- */

static void set_fail(struct h1x *x, enum upstream_result r, const char *text)
{
    if (x->failing)
        return;
    x->failing = true;
    x->fail_result = r;
    x->fail_text = text;
}

/* A spare buffer into buf and cap if one is kept (else they stay NULL and 0). */
static void spare_take(struct h1up *h, char **buf, size_t *cap)
{
    if (!h->n_outs)
        return;
    h->n_outs--;
    *buf = h->outs[h->n_outs].buf;
    *cap = h->outs[h->n_outs].cap;
}

/* Keeps `buf` for the next transfer when it is small and there is room, else frees it. */
static void spare_put(struct h1up *h, char *buf, size_t cap)
{
    if (buf && cap <= OUT_KEEP && h->n_outs < SPARE)
        h->outs[h->n_outs++] = (struct spare_out){buf, cap};
    else
        free(buf);
}

static void xfer_free(struct h1x *x)
{
    struct h1up *h = x->h;

    h->stats->bytes_sent += x->pushed;
    h->stats->bytes_received += x->bytes_received;
    if (x->prev)
        x->prev->next = x->next;
    else
        h->live = x->next;
    if (x->next)
        x->next->prev = x->prev;
    if (x->waiting)
        h1conn_cancel(h->pool, &x->waiter);
    event_del(&x->wait_ev);
    if (x->bulk) {
        free(x->bulk);
        (*h->bulk_buffers)--;
    }
    if (x->head && h->n_heads < SPARE) {
        uphead_reset(x->head);
        h->heads[h->n_heads++] = x->head;
    } else {
        uphead_free(x->head);
    }
    spare_put(h, x->out.buf, x->out.cap);
    spare_put(h, x->fetch, x->fetch_cap);
    free(x);
}

/* Lets go of x's connection: kept when `keep`, else closed. */
static void release(struct h1x *x, bool keep)
{
    struct h1conn *c = x->c;

    if (!c)
        return;
    x->c = NULL;
    h1conn_timer(c, -1);
    if (x->saved_in) { /* the bulk buffer was lent: the connection gets its own back */
        c->in = x->saved_in;
        c->in_cap = x->saved_cap;
        c->in_off = c->in_len = 0;
        x->saved_in = NULL;
    }
    if (keep)
        h1conn_idle(c);
    else
        h1conn_close(c);
}

static bool reusable(const struct h1x *x)
{
    const struct h1conn *c = x->c;

    return c && !c->peer_closed && h1resp_keep_alive(&c->resp) && x->request_sent &&
           h1out_pending(&x->out) == 0 && c->in_off == c->in_len;
}

/* Reports and frees `x`; its connection goes back to the pool first (so a transfer started
 * from on_done can reuse it) when the response ended cleanly, else it is closed. */
static void finish(struct h1x *x, enum upstream_result r, const char *text)
{
    struct upstream_done d = {0};

    release(x, r == UPSTREAM_OK && reusable(x));
    d.result = r;
    d.error = r == UPSTREAM_OK ? "" : text ? text : upstream_result_name(r);
    d.status = x->head_done ? uphead_status(x->head) : 0;
    d.head = x->head_done ? x->head : NULL;
    d.connects = x->connects;
    d.bytes_sent = x->pushed;
    d.bytes_received = x->bytes_received;
    d.request_sent = x->request_sent;
    if (x->fetching && r == UPSTREAM_OK) {
        /* fetch_add kept a byte free for the NUL; no body, maybe no buffer */
        if (x->fetch_cap > x->fetch_len)
            x->fetch[x->fetch_len] = '\0';
        d.body = x->fetch_cap > x->fetch_len ? x->fetch : "";
        d.body_len = x->fetch_len;
    }
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
    struct h1x *x = xfer_of(ux);

    if (!x || x->aborted || x->finishing)
        return;
    x->aborted = true;
    x->h->stats->transfers_aborted++;
    if (x->in_cb)
        return; /* the code after the callback closes and frees */
    release(x, false);
    xfer_free(x);
}

/* After a callback aborted `x` (in_cb cleared): close its connection and free it. */
static void reap(struct h1x *x)
{
    release(x, false);
    xfer_free(x);
}

/* ---- time limits: total, connect, first byte, stall (the connection's one timer) ---- */

static bool body_complete(const struct h1x *x)
{
    return x->body_len == UPSTREAM_BODY_NONE || x->send_eof ||
           (x->body_len >= 0 && x->pushed == (uint64_t)x->body_len);
}

/* fogate, not the peer, is the one waiting: the consumer paused the response, the upload
 * waits for the caller's bytes, or the connection is not up yet (the connect limit's
 * time), as upstream.c's watchdog. */
static bool held_here(const struct h1x *x)
{
    return x->recv_paused || x->want_recv || !x->connected ||
           (h1out_pending(&x->out) == 0 && !body_complete(x));
}

/* The limit that applies now (ms, 0 = none): first byte once the whole request is out and
 * nothing came back, stall otherwise. */
static unsigned limit_now(const struct h1x *x)
{
    return x->request_sent && !x->got_response ? x->first_byte_ms : x->stall_ms;
}

static unsigned watch_ms(const struct h1x *x)
{
    unsigned a = x->first_byte_ms, b = x->stall_ms;

    return a && b ? (a < b ? a : b) : (a ? a : b);
}

/* Arms the timer at the earliest of: the total limit, the connect limit while connecting,
 * the watch limit's due time (or, while fogate holds the transfer, a look again later).
 * Progress does not re-arm it: on_timer finds a due time that moved and arms again. */
static void arm_timer(struct h1x *x, int64_t now)
{
    int64_t at = x->deadline_us, due;
    unsigned lim = limit_now(x), w = watch_ms(x);

    if (!x->connected && x->connect_deadline_us < at)
        at = x->connect_deadline_us;
    if (lim && !held_here(x))
        due = x->progress_us + (int64_t)lim * 1000;
    else
        due = w ? now + (int64_t)w * 1000 : at;
    h1conn_timer(x->c, (due < at ? due : at) - now);
}

static void on_timer(struct h1conn *c)
{
    struct h1x *x = c->owner;
    int64_t now = mono_us();
    unsigned lim;
    bool head;

    x->h->timer_events++;
    if (now >= x->deadline_us || (!x->connected && now >= x->connect_deadline_us)) {
        fail_now(x, UPSTREAM_TIMEOUT, x->connected ? "operation timed out"
                                                   : "connection timed out");
        return;
    }
    if (held_here(x))
        x->progress_us = now;
    lim = limit_now(x);
    if (lim && now >= x->progress_us + (int64_t)lim * 1000) {
        head = x->request_sent && !x->got_response;
        fail_now(x, head ? UPSTREAM_FIRST_BYTE : UPSTREAM_STALLED,
                 head ? "no response within the first-byte limit after the request was sent"
                      : "no byte moved either way within the stall limit");
        return;
    }
    arm_timer(x, now);
}

/* A waiting transfer's timer: its total limit, or a failure to report from the loop. */
static void on_wait(evutil_socket_t fd, short what, void *arg)
{
    struct h1x *x = arg;

    (void)fd;
    (void)what;
    x->h->timer_events++;
    if (x->failing)
        finish(x, x->fail_result, x->fail_text);
    else
        fail_now(x, UPSTREAM_TIMEOUT, "operation timed out waiting for a connection");
}

/* ---- connections ---- */

static enum upstream_result connect_result(const struct h1conn *c)
{
    return c->tls_failed ? UPSTREAM_TLS_FAILED : UPSTREAM_CONNECT_FAILED;
}

/* Why c could not be made; a TLS text is copied into x (c is closed before on_done). */
static const char *connect_error(struct h1x *x, const struct h1conn *c)
{
    if (c->tls_failed) {
        snprintf(x->error, sizeof x->error, "%s", c->error);
        return x->error;
    }
    return c->addrs ? "could not connect to the upstream"
                    : "could not resolve the upstream's host name";
}

static bool on_resp_head(void *arg, const struct uphead *head);
static bool on_resp_body(void *arg, const char *data, size_t len);

static void attach(struct h1conn *c, struct h1x *x)
{
    struct h1resp_cbs rc = {.on_head = on_resp_head, .on_body = on_resp_body, .arg = x};
    int64_t now = mono_us();

    x->c = c;
    x->connected = !c->connecting;
    x->connect_deadline_us = now + (int64_t)x->connect_ms * 1000;
    x->progress_us = now;
    h1resp_start(&c->resp, x->head, x->is_head, x->h->opts.max_header_bytes, &rc);
    if (x->bulk) {
        x->saved_in = c->in;
        x->saved_cap = c->in_cap;
        c->in = x->bulk;
        c->in_cap = x->h->opts.bulk_buffer_bytes;
    }
    if (!c->reused) {
        x->connects++;
        x->h->stats->connects += !c->failed;
        x->h->sockets += !c->failed;
    }
    if (c->failed)
        set_fail(x, connect_result(c), connect_error(x, c));
    arm_timer(x, now);
}

/* The pool handed a waiting transfer a connection (or none: out of memory). */
static void on_granted(void *owner, struct h1conn *c)
{
    struct h1x *x = owner;

    x->waiting = false;
    event_del(&x->wait_ev);
    if (!c) {
        set_fail(x, UPSTREAM_OTHER, "out of memory");
        event_active(&x->wait_ev, EV_TIMEOUT, 0);
        return;
    }
    attach(c, x);
    h1conn_kick(c);
}

/* A new connection for a request whose kept one died before answering. */
static bool retry_fresh(struct h1x *x)
{
    struct h1conn *c = h1conn_open(x->h->pool, x->key, x);

    if (!c)
        return false;
    if (c->failed) {
        h1conn_close(c);
        return false;
    }
    x->retried = true;
    release(x, false);
    x->out.off = 0;
    x->request_sent = false;
    attach(c, x);
    return true;
}

/* The request could not go out or no response came on a kept connection: once more on a
 * new one if the whole request is still here, else fail with `r`. */
static void conn_lost(struct h1x *x, enum upstream_result r, const char *text)
{
    if (x->c->reused && !x->got_response && x->out.whole && !x->retried && retry_fresh(x))
        return;
    fail_now(x, r, text);
}

/* ---- sending ---- */

/* Sends what is buffered. Returns 0, or -1 after a send error. */
static int flush(struct h1x *x)
{
    struct h1conn *c = x->c;

    while (h1out_pending(&x->out) > 0) {
        ssize_t n = h1conn_write(c, x->out.buf + x->out.off, h1out_pending(&x->out));
        if (n == H1CONN_WANT_WRITE) {
            h1conn_want_write(c);
            x->h->rearms++;
            return 0;
        }
        if (n == H1CONN_WANT_READ)
            return 0; /* a TLS transport: the next readable event flushes again */
        if (n < 0)
            return -1;
        x->out.off += (size_t)n;
        x->progress_us = mono_us();
    }
    if (body_complete(x))
        x->request_sent = true;
    return 0;
}

/* The send buffer drained: tell the caller (from the loop; it may abort x). */
static void notify_space(struct h1x *x)
{
    if (!x->space_wanted || h1out_pending(&x->out) > x->h->opts.send_buffer_bytes / 2)
        return;
    x->space_wanted = false;
    if (!x->cbs.on_send_space)
        return;
    x->in_cb = true;
    x->cbs.on_send_space(x->cbs.arg);
    x->in_cb = false;
}

static void do_flush(struct h1x *x)
{
    if (flush(x) != 0) {
        conn_lost(x, UPSTREAM_OTHER, "send failure");
        return;
    }
    if (h1out_pending(&x->out) == 0 && !body_complete(x) && !x->send_waiting) {
        x->send_waiting = true; /* the upload waits for the caller: counted as libcurl's */
        x->h->stats->pauses++;
    }
    notify_space(x);
    if (x->aborted)
        reap(x);
}

static void on_write(struct h1conn *c)
{
    struct h1x *x = c->owner;

    x->h->socket_events++;
    if (c->failed) {
        fail_now(x, connect_result(c), connect_error(x, c));
        return;
    }
    if (!x->connected) {
        x->connected = true;
        x->progress_us = mono_us();
        arm_timer(x, x->progress_us);
    }
    do_flush(x);
}

/* ---- fetch: the response body buffered whole, up to fetch_max ---- */

/* Appends body bytes, growing the buffer (to the announced length at once when known) up
 * to fetch_max + 1 (the NUL). Returns false to stop the reader: the cap or no memory. */
static bool fetch_add(struct h1x *x, const char *data, size_t len)
{
    size_t need, cap;
    uint64_t cl;
    char *p;

    if (len > x->fetch_max - x->fetch_len) {
        set_fail(x, UPSTREAM_TOO_LARGE, "response body over the fetch limit");
        return false;
    }
    need = x->fetch_len + len + 1;
    if (need > x->fetch_cap) {
        cl = x->c ? h1resp_body_left(&x->c->resp) : 0; /* bytes still to come */
        cap = x->fetch_cap ? x->fetch_cap * 2 : FETCH_MIN;
        if (cl != UINT64_MAX && cl < x->fetch_max && need + cl > cap)
            cap = need + (size_t)cl; /* the rest of a known length: one allocation */
        if (cap < need)
            cap = need;
        if (x->fetch_max < SIZE_MAX && cap > x->fetch_max + 1)
            cap = x->fetch_max + 1;
        if (!(p = realloc(x->fetch, cap))) {
            set_fail(x, UPSTREAM_OTHER, "out of memory");
            return false;
        }
        x->fetch = p;
        x->fetch_cap = cap;
    }
    memcpy(x->fetch + x->fetch_len, data, len);
    x->fetch_len += len;
    x->bytes_received += len;
    return true;
}

/* ---- receiving ---- */

static bool on_resp_head(void *arg, const struct uphead *head)
{
    struct h1x *x = arg;
    uint64_t announced = x->fetching ? h1resp_body_left(&x->c->resp) : UINT64_MAX;

    x->head_done = true;
    if (announced != UINT64_MAX && announced > x->fetch_max) {
        /* no use reading a body announced over the cap (h1resp read the length; libcurl's
         * path checks the same with uphead_body_over) */
        set_fail(x, UPSTREAM_TOO_LARGE, "response body over the fetch limit");
        return false;
    }
    if (x->cbs.on_head) {
        x->in_cb = true;
        x->cbs.on_head(x->cbs.arg, head);
        x->in_cb = false;
    }
    return !x->aborted;
}

static bool on_resp_body(void *arg, const char *data, size_t len)
{
    struct h1x *x = arg;

    if (x->fetching)
        return fetch_add(x, data, len);
    x->bytes_received += len;
    if (!x->cbs.on_body)
        return true;
    x->in_cb = true;
    if (x->cbs.on_body(x->cbs.arg, data, len) == UPSTREAM_PAUSE) {
        x->recv_paused = true;
        x->h->stats->pauses++;
    }
    x->in_cb = false;
    return !x->aborted && !x->recv_paused;
}

/* Runs the reader over the unparsed bytes and acts on where it stopped. Returns 1 when the
 * transfer ended (x freed), else 0. */
static int parse(struct h1x *x)
{
    struct h1conn *c = x->c;
    size_t used;
    enum h1resp_state st = h1resp_feed(&c->resp, c->in + c->in_off, c->in_len - c->in_off,
                                       &used);

    c->in_off += used;
    if (x->aborted) {
        reap(x);
        return 1;
    }
    switch (st) {
    case H1RESP_DONE:
        finish(x, UPSTREAM_OK, NULL);
        return 1;
    case H1RESP_FAILED:
        fail_now(x, c->resp.fail, c->resp.fail_text);
        return 1;
    case H1RESP_STOPPED:
        if (x->failing) { /* a fetch over its cap */
            finish(x, x->fail_result, x->fail_text);
            return 1;
        }
        if (x->recv_paused && !c->rd_off) {
            h1conn_read_off(c);
            x->h->rearms++;
        }
        return 0;
    case H1RESP_MORE:
        break;
    }
    return 0;
}

static void on_eof(struct h1x *x, ssize_t code)
{
    struct h1conn *c = x->c;

    if (!x->got_response) {
        conn_lost(x, UPSTREAM_OTHER, code == H1CONN_EOF ? "empty reply from the upstream"
                                                        : "connection reset before the response");
        return;
    }
    /* a TLS EOF without close_notify cannot end a body read until close: it may be a cut */
    if (code == H1CONN_EOF && !c->unclean_eof && h1resp_eof(&c->resp) == H1RESP_DONE) {
        c->peer_closed = true;
        finish(x, UPSTREAM_OK, NULL);
        return;
    }
    if (code == H1CONN_EOF && !c->unclean_eof)
        fail_now(x, c->resp.fail, c->resp.fail_text);
    else if (code == H1CONN_EOF)
        fail_now(x, x->head_done ? UPSTREAM_TRUNCATED : UPSTREAM_OTHER,
                 "upstream closed the connection without close_notify");
    else
        fail_now(x, x->head_done ? UPSTREAM_TRUNCATED : UPSTREAM_OTHER,
                 "connection reset by the upstream");
}

static void on_read(struct h1conn *c)
{
    struct h1x *x = c->owner;
    ssize_t n;

    x->h->socket_events++;
    do {
        if (x->recv_paused)
            return;
        if (c->in_off == c->in_len)
            c->in_off = c->in_len = 0;
        n = h1conn_read(c, c->in + c->in_len, c->in_cap - c->in_len);
        if (n == H1CONN_WANT_READ || n == H1CONN_WANT_WRITE)
            break;
        if (n < 0) {
            on_eof(x, n);
            return;
        }
        x->got_response = true;
        x->progress_us = mono_us();
        c->in_len += (size_t)n;
        if (parse(x) != 0)
            return;
    } while (h1conn_pending(c) > 0); /* TLS: decrypted bytes the socket will not signal */
    if (h1out_pending(&x->out) > 0)
        do_flush(x); /* a transport whose write waited for a read */
}

static void on_kick(struct h1conn *c)
{
    struct h1x *x = c->owner;

    if (x->failing) { /* a failure found where no callback may run */
        finish(x, x->fail_result, x->fail_text);
        return;
    }
    if (x->want_recv) {
        x->want_recv = false;
        x->recv_paused = false;
        x->progress_us = mono_us(); /* the pause was fogate's time, not the peer's */
        if (c->in_off < c->in_len && (parse(x) != 0 || x->recv_paused))
            return;
        if (c->rd_off) {
            h1conn_read_on(c);
            x->h->rearms++;
        }
        if (h1conn_pending(c) > 0) {
            on_read(c); /* TLS bytes read before the pause: the socket will not tell */
            return;
        }
    }
    if (x->connected)
        do_flush(x);
}

/* ---- starting ---- */

static struct h1x *xfer_new(struct h1up *h, const struct upstream_req *req,
                            const struct upstream_cbs *cbs)
{
    struct h1x *x = calloc(1, sizeof *x);
    unsigned total;

    if (!x)
        return NULL;
    x->kind = H1UP_KIND_H1;
    x->h = h;
    evtimer_assign(&x->wait_ev, h->base, on_wait, x);
    x->next = h->live;
    if (h->live)
        h->live->prev = x;
    h->live = x;
    x->cbs = *cbs;
    x->body_len = req->body_len;
    x->is_head = strcmp(req->method, "HEAD") == 0;
    x->out.whole = true;
    spare_take(h, &x->out.buf, &x->out.cap);
    x->connect_ms = upreq_limit(req->timeouts.connect_ms, h->opts.connect_timeout_ms);
    total = upreq_limit(req->timeouts.total_ms, h->opts.total_timeout_ms);
    x->total_ms = total ? total : 24u * 3600 * 1000;
    x->deadline_us = mono_us() + (int64_t)x->total_ms * 1000;
    if (!x->connect_ms)
        x->connect_ms = x->total_ms;
    x->first_byte_ms = upreq_limit(req->timeouts.first_byte_ms, h->opts.first_byte_timeout_ms);
    x->stall_ms = upreq_limit(req->timeouts.stall_ms, h->opts.stall_timeout_ms);
    x->head = h->n_heads ? h->heads[--h->n_heads] : uphead_new(h->opts.max_header_bytes);
    /* as upstream.c: a likely large download gets the larger receive buffer, a few at once */
    if (req->bulk && *h->bulk_buffers < h->opts.max_bulk_buffers &&
        (x->bulk = malloc(h->opts.bulk_buffer_bytes))) {
        if (++*h->bulk_buffers > h->stats->bulk_buffers_peak)
            h->stats->bulk_buffers_peak = *h->bulk_buffers;
    }
    return x;
}

/* A fetch's request body and cap (h1up_fetch), or NULL for a streamed transfer. */
struct fetch_args {
    const void *body;             /* borrowed, copied */
    size_t body_len;
    size_t max_response_bytes;
};

/* h1up_start and h1up_fetch: the request (with a fetch's whole body) goes into x->out
 * before a connection is asked for, so a kept connection found dead can get it again. */
static struct upstream_xfer *start(struct h1up *h, const struct upstream_req *req,
                                   const struct upstream_cbs *cbs, const struct fetch_args *f)
{
    char key[H1CONN_KEY_MAX];
    const char *target, *auth;
    struct h1conn *c = NULL;
    struct h1x *x;
    bool queued;

    if (!upreq_method_ok(req->method) || !req->url || !cbs->on_done ||
        req->body_len < UPSTREAM_BODY_CHUNKED || split_url(req->url, key, &target, &auth) != 0)
        return NULL;
    if (!(x = xfer_new(h, req, cbs)))
        return NULL;
    memcpy(x->key, key, sizeof key);
    if (!x->head || h1out_head(&x->out, req, target, auth) != 0) {
        xfer_free(x);
        return NULL;
    }
    if (f) {
        x->fetching = true;
        x->fetch_max = f->max_response_bytes;
        spare_take(h, &x->fetch, &x->fetch_cap); /* small answers fit: no allocation */
        if (f->body_len && h1out_add(&x->out, f->body, f->body_len) != 0) {
            xfer_free(x);
            return NULL;
        }
        x->pushed = f->body_len;
        x->send_eof = true;
    }
    x->waiter = (struct h1conn_waiter){.key = x->key, .owner = x};
    c = h1conn_get(h->pool, &x->waiter, &queued);
    if (!c && !queued) {
        xfer_free(x);
        return NULL;
    }
    if (queued) { /* the limits are reached: wait (not a stall) within the total limit */
        struct timeval tv = {x->total_ms / 1000, (suseconds_t)(x->total_ms % 1000) * 1000};
        x->waiting = true;
        evtimer_add(&x->wait_ev, &tv);
        return (struct upstream_xfer *)(void *)x;
    }
    attach(c, x);
    h1conn_kick(c);
    return (struct upstream_xfer *)(void *)x;
}

struct upstream_xfer *h1up_start(struct h1up *h, const struct upstream_req *req,
                                 const struct upstream_cbs *cbs)
{
    return start(h, req, cbs, NULL);
}

struct upstream_xfer *h1up_fetch(struct h1up *h, const struct upstream_req *req,
                                 const struct upstream_cbs *cbs, const void *body,
                                 size_t body_len, size_t max_response_bytes)
{
    struct fetch_args f = {body, body_len, max_response_bytes};

    if (req->body_len != UPSTREAM_BODY_NONE && req->body_len != (int64_t)body_len)
        return NULL;
    return start(h, req, cbs, &f);
}

/* ---- request body ---- */

size_t h1up_send_space(const struct upstream_xfer *ux)
{
    const struct h1x *x = (const struct h1x *)(const void *)ux;
    size_t cap = x->h->opts.send_buffer_bytes, have, room;

    if (x->aborted || x->send_eof || x->body_len == UPSTREAM_BODY_NONE)
        return 0;
    have = h1out_pending(&x->out);
    room = have >= cap ? 0 : cap - have;
    if (x->body_len >= 0 && (uint64_t)x->body_len - x->pushed < room)
        room = (size_t)((uint64_t)x->body_len - x->pushed);
    return room;
}

size_t h1up_send(struct upstream_xfer *ux, const void *data, size_t len)
{
    struct h1x *x = xfer_of(ux);
    size_t room = h1up_send_space(ux), take = len < room ? len : room;

    if (take > 0) {
        int rc = x->body_len == UPSTREAM_BODY_CHUNKED ? h1out_chunk(&x->out, data, take)
                                                       : h1out_add(&x->out, data, take);
        if (rc != 0)
            return 0;
        x->pushed += take;
        if (x->send_waiting) /* the wait for these bytes was fogate's time */
            x->progress_us = mono_us();
        x->send_waiting = false;
        if (x->c)
            h1conn_kick(x->c);
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
    struct h1x *x = xfer_of(ux);

    if (x->aborted || x->send_eof)
        return;
    x->send_eof = true;
    x->space_wanted = false;
    if (x->body_len >= 0 && x->pushed < (uint64_t)x->body_len)
        set_fail(x, UPSTREAM_OTHER, "request body shorter than its Content-Length");
    else if (x->body_len == UPSTREAM_BODY_CHUNKED && h1out_last_chunk(&x->out) != 0)
        set_fail(x, UPSTREAM_OTHER, "out of memory");
    if (x->c)
        h1conn_kick(x->c);
}

void h1up_resume_recv(struct upstream_xfer *ux)
{
    struct h1x *x = xfer_of(ux);

    if (x->aborted || !x->recv_paused || !x->c)
        return;
    x->want_recv = true;
    h1conn_kick(x->c);
}

/* ---- the client ---- */

struct h1up *h1up_new(struct event_base *base, const struct upstream_opts *opts,
                      struct upstream_stats *stats, unsigned *bulk_buffers)
{
    static const struct h1conn_cbs cbs = {
        .on_granted = on_granted, .on_read = on_read, .on_write = on_write,
        .on_timer = on_timer, .on_kick = on_kick,
    };
    struct h1up *h = calloc(1, sizeof *h);

    if (!h)
        return NULL;
    h->base = base;
    h->opts = *opts;
    h->stats = stats;
    h->bulk_buffers = bulk_buffers;
    if (!(h->pool = h1conn_pool_new(base, opts->recv_buffer_bytes, opts->max_host_connections,
                                    opts->max_total_connections, opts->ca_file, &cbs))) {
        free(h);
        return NULL;
    }
    return h;
}

void h1up_free(struct h1up *h)
{
    if (!h)
        return;
    /* the waiting first, so that closing a connection grants nothing */
    for (struct h1x *x = h->live, *next; x; x = next) {
        next = x->next;
        if (x->waiting)
            xfer_free(x);
    }
    while (h->live) {
        struct h1x *x = h->live;
        release(x, false);
        xfer_free(x);
    }
    h1conn_pool_free(h->pool);
    while (h->n_heads > 0)
        uphead_free(h->heads[--h->n_heads]);
    while (h->n_outs > 0)
        free(h->outs[--h->n_outs].buf);
    free(h);
}

void h1up_stats(const struct h1up *h, struct upstream_stats *out)
{
    out->socket_events += h->socket_events;
    out->timer_events += h->timer_events;
    out->rearms += h->rearms;
    out->sockets += h->sockets;
}
