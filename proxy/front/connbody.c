/* connbody: the request body of a client connection: read from the bufferevent's input
 * or, while a body streams, straight from the socket (up to STREAM_READ per recv), decoded
 * by h1body and fed to the handler's sink, with pause/resume, limits and failures.
 * Half of the connection module (conn.c is the state machine; connpriv.h their shared
 * private header): the two call each other because a body is a state of the connection.
 * Invariant: bytes past the body's end are never consumed here; they stay in the input for
 * the next pipelined head. */
#include "connpriv.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "deadline.h"
#include "h1body.h"
#include "reply.h"

static int on_body_data(void *arg, const char *data, size_t len)
{
    struct conn *c = arg;
    struct conn_req *r = c->req;

    r->body_bytes += len;
    if (r->body_bytes > r->body_limit) {
        r->body_over = true;
        return -1;
    }
    return r->sink.on_data ? r->sink.on_data(r, data, len, r->sink.arg) : 0;
}

/* ---- direct body reads: libevent 2.1's bufferevent reads 4 KiB per call, so while a body
 * streams the socket is read here, up to STREAM_READ per recv, into the bufferevent's input:
 * connbody_pump and the next pipelined head still see one stream. */

/* Reading goes back to the bufferevent (the body ended, failed or was dropped). */
void connbody_stop(struct conn *c)
{
    if (!c->in_feed) { /* else read_direct frees it once the feed is over */
        free(c->body_buf);
        c->body_buf = NULL;
    }
    if (!c->body_direct)
        return;
    c->body_direct = false;
    event_del(c->body_ev);
    if (c->state != ST_DEAD)
        bufferevent_enable(c->bev, EV_READ);
}

/* Feeds p[0..len) to the body. Returns the bytes consumed, or -1 after failing the body. */
static ssize_t feed_body(struct conn *c, const char *p, size_t len)
{
    struct conn_req *r = c->req;
    struct http1_verdict v = { 400, "bad_body", "the request body is malformed" };
    ssize_t n = h1body_feed(&r->body, p, len, on_body_data, c, &v);

    if (n <= 0 && r->body_over)
        connbody_failed(c, 413, "body_too_large", "the request body is larger than allowed");
    else if (n <= 0)
        connbody_failed(c, v.status, v.code, v.message);
    if (n <= 0)
        return -1;
    r->bytes_in += (uint64_t)n;
    return n;
}

/* Bytes read past the body's end (a pipelined head) go to the input. Returns 0 or -1. */
static int keep_rest(struct conn *c, const char *p, size_t len)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    evbuffer_unfreeze(in, 0); /* the input is frozen at the end except for the bufferevent */
    int rc = evbuffer_add(in, p, len);
    evbuffer_freeze(in, 0);
    return rc;
}

/* One recv into body_buf (a buffer per body, not an allocation per read), fed to the body at
 * once. Returns 1 when bytes were fed, 0 at the client's EOF, -1 otherwise (nothing to read
 * yet, or the body failed, or the connection died). */
static int read_direct(struct conn *c)
{
    const struct h1body *b = &c->req->body;
    size_t want = STREAM_READ;

    if (b->framing == HTTP1_BODY_LENGTH && b->left < want)
        want = (size_t)b->left; /* a pipelined head is left to the bufferevent */
    if (!c->body_buf && !(c->body_buf = malloc(STREAM_READ))) {
        conn_kill(c); /* out of memory: the body cannot be read */
        return -1;
    }
    ssize_t n = recv(c->fd, c->body_buf, want, 0);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        conn_kill_why(c, CONN_CLIENT_CLOSED);
    if (n == 0)
        c->peer_eof = true;
    if (n <= 0)
        return n == 0 ? 0 : -1;
    c->in_feed = true;
    ssize_t used = feed_body(c, c->body_buf, (size_t)n);
    c->in_feed = false;
    int rc = used < 0 ? -1 : 1;
    if (rc > 0 && used < n && keep_rest(c, c->body_buf + used, (size_t)(n - used)) != 0) {
        conn_kill(c);
        rc = -1;
    }
    if (c->state != ST_HANDLING || !c->req->body_active)
        connbody_stop(c); /* frees body_buf if it ended while being fed */
    return rc;
}

static void on_body_readable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    conn_enter(c);
    if (c->state != ST_HANDLING || !c->req->body_active)
        connbody_stop(c);
    else if (c->req->body_paused)
        event_del(c->body_ev); /* the bytes wait in the socket until the body resumes */
    else if (read_direct(c) >= 0 && c->state == ST_HANDLING && c->req->body_active)
        connbody_pump(c);
    conn_leave(c);
}

/* The body needs more bytes: body_ev reads them (without it, the bufferevent does). */
static void body_read_start(struct conn *c)
{
    if (!c->body_ev)
        c->body_ev = event_new(bufferevent_get_base(c->bev), c->fd, EV_READ | EV_PERSIST,
                               on_body_readable, c);
    if (!c->body_ev)
        return;
    if (!c->body_direct)
        bufferevent_disable(c->bev, EV_READ);
    c->body_direct = true;
    if (!event_pending(c->body_ev, EV_READ, NULL))
        event_add(c->body_ev, NULL);
}

static void body_end(struct conn *c, bool ok)
{
    struct conn_req *r = c->req;

    connbody_stop(c);
    r->body_active = false;
    if (r->sink.on_end)
        r->sink.on_end(r, ok, r->sink.arg);
    if (c->state == ST_HANDLING && r->responded)
        conn_request_done(c);
}

/* The body cannot be read to its end: the sink hears of it first and may answer; if it
 * does not, this answers with the reason. Either way the connection closes. */
void connbody_failed(struct conn *c, int status, const char *code, const char *message)
{
    struct conn_req *r = c->req;

    r->body_failed = true;
    c->closing = true;
    deadline_clear(&c->dl);
    connstats_malformed(conn_server_counters(c->srv), code);
    body_end(c, false);
    if (c->state == ST_HANDLING && !r->responded)
        reply_error(r, status, code, "%s", message);
}

void connbody_pump(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct conn_req *r = c->req;

    while (!h1body_done(&r->body)) {
        if (r->body_paused) {
            deadline_clear(&c->dl);
            return;
        }
        size_t avail = evbuffer_get_contiguous_space(in);
        if (avail == 0) {
            if (c->peer_eof) {
                connbody_failed(c, 400, "body_cut_off", "the client closed before the body ended");
                return;
            }
            deadline_set(&c->dl, DL_BODY, c->opt->idle_timeout_ms);
            body_read_start(c);
            return;
        }
        ssize_t n = feed_body(c, (const char *)evbuffer_pullup(in, (ev_ssize_t)avail), avail);
        if (n < 0)
            return;
        evbuffer_drain(in, (size_t)n);
    }
    deadline_clear(&c->dl);
    body_end(c, true);
}

int conn_req_read_body(struct conn_req *req, const struct conn_body_sink *sink)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct conn *c = req->conn;

    if (!conn_body_unread(req) || c->state != ST_HANDLING)
        return -1;
    conn_enter(c);
    req->body_active = true;
    req->sink = sink ? *sink : (struct conn_body_sink){ 0 };
    req->body_limit = sink ? c->opt->max_body_bytes : DISCARD_MAX;
    if (sink && req->body_limit_req && req->body_limit_req < req->body_limit)
        req->body_limit = req->body_limit_req;
    if (req->head.expect_continue && !req->continue_sent && !req->responded) {
        struct iovec iov[1] = { { (void *)cont, sizeof cont - 1 } };
        conn_send_iov(c, iov, 1);
        req->continue_sent = true;
        req->bytes_out += sizeof cont - 1;
    }
    connbody_pump(c);
    conn_leave(c);
    return 0;
}
void conn_req_set_body_limit(struct conn_req *req, uint64_t limit)
{
    req->body_limit_req = limit;
}
void conn_req_pause_body(struct conn_req *req)
{
    req->body_paused = true;
}
void conn_req_resume_body(struct conn_req *req)
{
    struct conn *c = req->conn;

    if (!req->body_paused)
        return;
    req->body_paused = false;
    if (c->state != ST_HANDLING || !req->body_active)
        return;
    conn_enter(c);
    connbody_pump(c);
    conn_leave(c);
}
void conn_req_drop_body(struct conn_req *req)
{
    struct conn *c = req->conn;

    if (!req->body_active)
        return;
    connbody_stop(c);
    req->body_active = false;
    req->body_failed = true; /* the rest is never read: the connection must close */
    req->sink = (struct conn_body_sink){ 0 };
    c->closing = true;
}
