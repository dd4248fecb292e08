/* conn: client connections, from accept to lingering close.
 *
 *            bytes            head ok             answered (body read or dropped)
 *   accept ---------> ST_HEAD ---------> ST_HANDLING -----------------------------> ST_HEAD
 *                      |   \ refused / 408       |        keep-alive: next pipelined head
 *                      |    `---------------> ST_CLOSING (flush) --> ST_LINGER --> freed
 *                      `- idle, or no bytes in time ------------------------------> freed
 *
 * One request at a time: the next pipelined head is read only after the current request
 * has finished, so responses leave in order. One timer per connection carries the single
 * current deadline (head, idle, body, linger; see deadline.h). Callbacks never free a
 * connection under their own feet: kill_conn() marks it and the outermost leave() frees. */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "conn_server.h"
#include "deadline.h"
#include "h1body.h"
#include "listener.h"
#include "log.h"
#include "reply.h"

#define OUT_HIGH (64 * 1024)        /* unsent output above which the next request waits */
#define DISCARD_MAX (1024 * 1024)   /* unread body we still read and drop to keep a connection */
#define LINGER_MS 2000              /* read and drop after the last response, then close */
#define LINGER_MAX_BYTES (1024 * 1024)
#define READ_SLACK (16 * 1024)      /* input kept beyond max_header_bytes (pipelining) */
#define STREAM_HIGH (256 * 1024)    /* streamed response: unsent bytes before the caller waits */
#define HOLD_MAX (16 * 1024)        /* a streamed body up to this long: its head waits for it */
#define STREAM_READ (256 * 1024)    /* most request body bytes read by one recv */
#define FLUSH_BYTES (256 * 1024)    /* queued response bytes written at once, not at turn's end */
#define FLUSH_IOV 64                /* most pieces of the output in one sendmsg */

enum state { ST_HEAD, ST_HANDLING, ST_CLOSING, ST_LINGER, ST_DEAD };
enum { DL_HEAD = 1, DL_IDLE, DL_BODY, DL_LINGER }; /* deadline kinds */

struct conn_req {
    struct conn *conn;          /* borrowed: the connection this request came on */
    struct http1_head head;     /* slices point into conn->head_buf */
    struct h1body body;
    bool parsed;
    bool responded;
    bool continue_sent;
    bool body_active;           /* a sink (or the discarder) is reading the body */
    bool body_failed;
    bool body_over;             /* the body went over body_limit */
    bool body_paused;           /* conn_req_pause_body: on_data withheld */
    bool streaming;             /* conn_req_start was called, conn_req_end not yet */
    bool stream_chunked;
    bool stream_nobody;         /* HEAD, 204 or 304: the body is not sent */
    bool stream_wait;           /* conn_req_write said 1; on_drained is owed */
    int64_t stream_left;        /* Content-Length still to send; -1 when not counted */
    char *held_head;            /* owned: a small response's head, sent with its body */
    size_t held_len;
    struct conn_req_events ev;
    struct conn_body_sink sink;
    uint64_t body_limit;
    uint64_t body_limit_req;    /* conn_req_set_body_limit; 0 = server's */
    uint64_t body_bytes;        /* decoded body bytes so far */
    char id[17];
    int64_t start_us;
    uint64_t bytes_in;
    uint64_t bytes_out;
    int status;
    const char *error_code;     /* static string; NULL unless reply_error answered */
    char error_message[160];
};

struct conn {
    struct conn_server *srv;    /* borrowed */
    const struct conn_options *opt; /* borrowed from srv */
    struct conn_list *list;     /* borrowed: the list this connection is on */
    struct conn *prev, *next;   /* list links */
    struct bufferevent *bev;    /* owned; closes the socket */
    struct deadline dl;         /* owned timer: the one current deadline */
    evutil_socket_t fd;
    enum state state;
    int busy;                   /* nesting depth of entry points */
    bool closing;               /* close after the current response */
    bool peer_eof;
    bool in_process;            /* inside process_input: do not recurse into it */
    bool head_started;          /* bytes of the next head have arrived */
    bool write_enabled;         /* the bufferevent writes the queued output when it can */
    bool body_direct;           /* body_ev reads the body; the bufferevent does not read */
    bool in_feed;               /* read_direct is feeding body_buf to the body */
    size_t scanned;             /* http1_head_find resume point */
    uint64_t linger_bytes;
    char *head_buf;             /* owned: the current head, copied out of the input */
    size_t head_cap;
    struct http1_header *headers; /* owned: opt.head.max_headers entries */
    struct event *body_ev;      /* owned, made on first use: direct reads of a request body */
    char *body_buf;             /* owned while a body is read directly: STREAM_READ bytes */
    struct event *flush_ev;     /* owned, made on first use: writes queued output once a turn */
    char client[64];
    struct conn_req req;
};

static void process_input(struct conn *c);
static void request_done(struct conn *c);

/* ---- lifetime ---------------------------------------------------------------------- */

static void enter(struct conn *c)
{
    c->busy++;
}

static void log_request(struct conn *c)
{
    struct conn_req *r = &c->req;
    struct conn_req_log l = {
        .id = r->id,
        .method = r->parsed ? r->head.method_name : NULL,
        .path = r->parsed ? r->head.target : NULL,
        .path_len = r->parsed ? r->head.path_len : 0,
        .client = c->client,
        .status = r->status,
        .bytes_in = r->bytes_in,
        .bytes_out = r->bytes_out,
        .duration_us = deadline_now_us() - r->start_us,
        .error_code = r->error_code,
        .error_message = r->error_code ? r->error_message : NULL,
    };
    reply_log(&l);
}

static void destroy(struct conn *c)
{
    struct conn_server *srv = c->srv;

    if (c->prev)
        c->prev->next = c->next;
    else
        c->list->first = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->list->count--;
    bufferevent_free(c->bev);
    if (c->body_ev)
        event_free(c->body_ev);
    if (c->flush_ev)
        event_free(c->flush_ev);
    deadline_cleanup(&c->dl);
    free(c->req.held_head);
    free(c->head_buf);
    free(c->headers);
    free(c->body_buf);
    free(c);
    conn_server_closed(srv);
}

static void leave(struct conn *c)
{
    if (--c->busy == 0 && c->state == ST_DEAD)
        destroy(c);
}

/* Ends the connection now. A request in flight still gets its log line (status 0 when
 * it was never answered), and a body sink its on_end(false). */
static void kill_conn(struct conn *c)
{
    struct conn_req *r = &c->req;
    bool in_flight = c->state == ST_HANDLING;

    if (c->state == ST_DEAD)
        return;
    c->state = ST_DEAD; /* from here on, answers are ignored */
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    free(r->held_head); /* never sent: the body it waited for did not come */
    r->held_head = NULL;
    if (c->body_ev)
        event_del(c->body_ev);
    if (in_flight)
        log_request(c);
    if (in_flight && r->body_active) {
        r->body_active = false;
        if (r->sink.on_end)
            r->sink.on_end(r, false, r->sink.arg);
    }
    if (in_flight && r->ev.on_gone) {
        void (*gone)(void *) = r->ev.on_gone;
        r->ev.on_gone = NULL;
        gone(r->ev.arg);
    }
    if (c->busy == 0)
        destroy(c);
}

/* ---- refusals and deadlines ------------------------------------------------------- */

/* A request fogate refuses itself: one error response, then the connection closes. */
static void refuse(struct conn *c, int status, const char *code, const char *message)
{
    c->closing = true;
    c->state = ST_HANDLING;
    deadline_clear(&c->dl);
    reply_error(&c->req, status, code, "%s", message);
}

static void body_failed(struct conn *c, int status, const char *code, const char *message);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    enter(c);
    switch (deadline_fired(&c->dl)) {
    case DL_HEAD:
        if (c->state == ST_HEAD && c->head_started)
            refuse(c, 408, "request_head_timeout",
                   "the request head did not arrive within the time limit");
        else
            kill_conn(c); /* no byte of a request: close without a word */
        break;
    case DL_BODY:
        body_failed(c, 408, "body_timeout", "the request body stopped arriving");
        break;
    case DL_IDLE:
    case DL_LINGER:
        kill_conn(c);
        break;
    }
    leave(c);
}

/* ---- writing ----------------------------------------------------------------------- */

/* Sends iov[0..n) in order: straight to the socket when nothing is queued (one syscall,
 * no write event), and whatever did not fit through the bufferevent. */
static void send_iov(struct conn *c, struct iovec *iov, int n)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t sent = 0;
    char *held = c->req.held_head;

    if (held) { /* the held head goes first, in the same call when it fits */
        struct iovec all[4] = { { held, c->req.held_len } };
        c->req.held_head = NULL;
        if (n < 4)
            memcpy(all + 1, iov, (size_t)n * sizeof *iov);
        send_iov(c, all, n < 4 ? n + 1 : 1);
        free(held);
        if (n < 4)
            return;
    }

    if (evbuffer_get_length(out) == 0) {
        struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
            sent = (size_t)w;
    }
    for (int i = 0; i < n; i++) {
        if (sent >= iov[i].iov_len) {
            sent -= iov[i].iov_len;
            continue;
        }
        evbuffer_add(out, (char *)iov[i].iov_base + sent, iov[i].iov_len - sent);
        sent = 0;
        if (!c->write_enabled) {
            bufferevent_enable(c->bev, EV_WRITE);
            c->write_enabled = true;
        }
    }
}

static size_t output_len(const struct conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* A streamed response arrives in pieces of at most 16 KiB (libcurl's write size), so it is
 * queued and written with one sendmsg per loop turn (at once past FLUSH_BYTES) instead of
 * one per piece. The bufferevent writes only what the socket did not take. */
static void flush_output(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct evbuffer_iovec v[FLUSH_IOV];
    struct iovec iov[FLUSH_IOV];

    if (c->state == ST_DEAD || c->write_enabled || evbuffer_get_length(out) == 0)
        return;
    int n = evbuffer_peek(out, -1, NULL, v, FLUSH_IOV);
    n = n < FLUSH_IOV ? n : FLUSH_IOV;
    for (int i = 0; i < n; i++)
        iov[i] = (struct iovec){ v[i].iov_base, v[i].iov_len };
    struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };
    ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) { /* a bufferevent's output is frozen at the front except for its own writes */
        evbuffer_unfreeze(out, 1);
        evbuffer_drain(out, (size_t)w);
        evbuffer_freeze(out, 1);
    }
    if (evbuffer_get_length(out) > 0) {
        bufferevent_enable(c->bev, EV_WRITE);
        c->write_enabled = true;
    }
}

static void output_drained(struct conn *c);

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    enter(c);
    flush_output(c);
    if (c->state != ST_DEAD && output_len(c) == 0)
        output_drained(c);
    leave(c);
}

/* Queues iov[0..n) (copied) behind the output for this turn's flush. Returns 0, or -1 when
 * memory ran out (the caller must end the connection: the body has a hole). */
static int queue_iov(struct conn *c, const struct iovec *iov, int n)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    for (int i = 0; i < n; i++)
        if (evbuffer_add(out, iov[i].iov_base, iov[i].iov_len) != 0)
            return -1;
    if (!c->flush_ev)
        c->flush_ev = event_new(bufferevent_get_base(c->bev), -1, 0, on_flush, c);
    if (!c->flush_ev || evbuffer_get_length(out) >= FLUSH_BYTES)
        flush_output(c);
    else
        event_active(c->flush_ev, EV_TIMEOUT, 0);
    return 0;
}

static bool body_unread(const struct conn_req *r)
{
    return r->parsed && !h1body_done(&r->body) && !r->body_active && !r->body_failed;
}

/* Decides, before the response head is written, whether the connection ends with it. */
static void decide_close(struct conn *c)
{
    struct conn_req *r = &c->req;

    if (!r->parsed || !r->head.keep_alive || conn_server_draining(c->srv) || c->peer_eof)
        c->closing = true;
    if (body_unread(r)) {
        /* A client told nothing (no 100) may or may not send its body now: never guess. */
        if (r->head.expect_continue && !r->continue_sent)
            c->closing = true;
        if (r->head.framing == HTTP1_BODY_LENGTH && r->body.left > DISCARD_MAX)
            c->closing = true;
    }
}

static size_t format_head(struct conn *c, char *buf, size_t cap, int status,
                          const char *extra, const char *ctype, size_t body_len)
{
    struct reply_head h = {
        .status = status,
        .date = conn_server_date(c->srv),
        .content_type = ctype,
        .content_length = body_len,
        .request_id = c->req.id,
        .extra = extra,
        .connection = c->closing                     ? "close"
                      : c->req.head.version_minor == 0 ? "keep-alive"
                                                       : NULL,
    };
    return reply_format_head(buf, cap, &h);
}

void conn_req_respond(struct conn_req *req, int status, const char *extra_headers,
                      const char *content_type, const char *body, size_t body_len)
{
    struct conn *c = req->conn;
    char small[1024], *head = small;
    size_t cap = sizeof small;

    if (req->responded || c->state != ST_HANDLING)
        return;
    if (extra_headers && strlen(extra_headers) > 256) {
        cap = strlen(extra_headers) + 768;
        if (!(head = malloc(cap))) {
            head = small;
            cap = sizeof small;
        }
    }
    enter(c);
    req->responded = true;
    req->status = status;
    decide_close(c);
    size_t hl = format_head(c, head, cap, status, extra_headers, content_type, body_len);
    if (hl == 0) { /* only over-long extra headers do this: a bug, not a client's doing */
        log_msg(LOG_LVL_ERROR, "response head for request %s does not fit", req->id);
        kill_conn(c);
        leave(c);
        if (head != small)
            free(head);
        return;
    }
    bool with_body = !(req->parsed && req->head.method == HTTP_HEAD) && status != 204 &&
                     status != 304;
    struct iovec iov[2] = { { head, hl }, { (void *)body, with_body ? body_len : 0 } };
    send_iov(c, iov, 2);
    if (head != small)
        free(head);
    req->bytes_out += hl + iov[1].iov_len;
    if (!c->closing && body_unread(req))
        conn_req_read_body(req, NULL); /* drop the body and keep the connection */
    else if (c->closing || !req->body_active)
        request_done(c);
    leave(c);
}

void conn_req_note_error(struct conn_req *req, const char *code, const char *message)
{
    req->error_code = code;
    snprintf(req->error_message, sizeof req->error_message, "%s", message);
}

const struct http1_head *conn_req_head(const struct conn_req *req)
{
    return req->parsed ? &req->head : NULL;
}

const char *conn_req_id(const struct conn_req *req)
{
    return req->id;
}

/* ---- closing ----------------------------------------------------------------------- */

static void drop_input(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(in);

    c->linger_bytes += n;
    evbuffer_drain(in, n);
    if (c->linger_bytes > LINGER_MAX_BYTES)
        kill_conn(c);
}

/* After the last byte is out: half-close and read what the client still sends, so that
 * closing with unread input does not become a reset that destroys our last response. */
static void linger_begin(struct conn *c)
{
    unsigned idle = c->opt->idle_timeout_ms;

    c->state = ST_LINGER;
    if (c->peer_eof) {
        kill_conn(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    deadline_set(&c->dl, DL_LINGER, idle < LINGER_MS ? idle : LINGER_MS);
    drop_input(c);
}

static void start_close(struct conn *c)
{
    c->state = ST_CLOSING;
    if (output_len(c) == 0) {
        linger_begin(c);
        return;
    }
    deadline_set(&c->dl, DL_IDLE, c->opt->idle_timeout_ms);
    drop_input(c);
}

static void request_done(struct conn *c)
{
    if (c->state != ST_HANDLING)
        return;
    log_request(c);
    c->head_started = false;
    c->scanned = 0;
    if (c->closing) {
        start_close(c);
        return;
    }
    c->state = ST_HEAD;
    deadline_set(&c->dl, DL_IDLE, c->opt->idle_timeout_ms);
    if (!c->in_process)
        process_input(c);
}

/* ---- bodies ------------------------------------------------------------------------ */

static int on_body_data(void *arg, const char *data, size_t len)
{
    struct conn *c = arg;
    struct conn_req *r = &c->req;

    r->body_bytes += len;
    if (r->body_bytes > r->body_limit) {
        r->body_over = true;
        return -1;
    }
    return r->sink.on_data ? r->sink.on_data(r, data, len, r->sink.arg) : 0;
}

/* ---- direct body reads: libevent 2.1's bufferevent reads 4 KiB per call, so while a body
 * streams the socket is read here, up to STREAM_READ per recv, into the bufferevent's input:
 * pump_body and the next pipelined head still see one stream. */

static void pump_body(struct conn *c);

/* Reading goes back to the bufferevent (the body ended, failed or was dropped). */
static void body_read_stop(struct conn *c)
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
    struct conn_req *r = &c->req;
    struct http1_verdict v = { 400, "bad_body", "the request body is malformed" };
    ssize_t n = h1body_feed(&r->body, p, len, on_body_data, c, &v);

    if (n <= 0 && r->body_over)
        body_failed(c, 413, "body_too_large", "the request body is larger than allowed");
    else if (n <= 0)
        body_failed(c, v.status, v.code, v.message);
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
    const struct h1body *b = &c->req.body;
    size_t want = STREAM_READ;

    if (b->framing == HTTP1_BODY_LENGTH && b->left < want)
        want = (size_t)b->left; /* a pipelined head is left to the bufferevent */
    if (!c->body_buf && !(c->body_buf = malloc(STREAM_READ))) {
        kill_conn(c); /* out of memory: the body cannot be read */
        return -1;
    }
    ssize_t n = recv(c->fd, c->body_buf, want, 0);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        kill_conn(c);
    if (n == 0)
        c->peer_eof = true;
    if (n <= 0)
        return n == 0 ? 0 : -1;
    c->in_feed = true;
    ssize_t used = feed_body(c, c->body_buf, (size_t)n);
    c->in_feed = false;
    int rc = used < 0 ? -1 : 1;
    if (rc > 0 && used < n && keep_rest(c, c->body_buf + used, (size_t)(n - used)) != 0) {
        kill_conn(c);
        rc = -1;
    }
    if (c->state != ST_HANDLING || !c->req.body_active)
        body_read_stop(c); /* frees body_buf if it ended while being fed */
    return rc;
}

static void on_body_readable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    enter(c);
    if (c->state != ST_HANDLING || !c->req.body_active)
        body_read_stop(c);
    else if (c->req.body_paused)
        event_del(c->body_ev); /* the bytes wait in the socket until the body resumes */
    else if (read_direct(c) >= 0 && c->state == ST_HANDLING && c->req.body_active)
        pump_body(c);
    leave(c);
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
    struct conn_req *r = &c->req;

    body_read_stop(c);
    r->body_active = false;
    if (r->sink.on_end)
        r->sink.on_end(r, ok, r->sink.arg);
    if (c->state == ST_HANDLING && r->responded)
        request_done(c);
}

/* The body cannot be read to its end: the sink hears of it first and may answer; if it
 * does not, this answers with the reason. Either way the connection closes. */
static void body_failed(struct conn *c, int status, const char *code, const char *message)
{
    struct conn_req *r = &c->req;

    r->body_failed = true;
    c->closing = true;
    deadline_clear(&c->dl);
    body_end(c, false);
    if (c->state == ST_HANDLING && !r->responded)
        reply_error(r, status, code, "%s", message);
}

static void pump_body(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct conn_req *r = &c->req;

    while (!h1body_done(&r->body)) {
        if (r->body_paused) {
            deadline_clear(&c->dl);
            return;
        }
        size_t avail = evbuffer_get_contiguous_space(in);
        if (avail == 0) {
            if (c->peer_eof) {
                body_failed(c, 400, "body_cut_off", "the client closed before the body ended");
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

    if (!body_unread(req) || c->state != ST_HANDLING)
        return -1;
    enter(c);
    req->body_active = true;
    req->sink = sink ? *sink : (struct conn_body_sink){ 0 };
    req->body_limit = sink ? c->opt->max_body_bytes : DISCARD_MAX;
    if (sink && req->body_limit_req && req->body_limit_req < req->body_limit)
        req->body_limit = req->body_limit_req;
    if (req->head.expect_continue && !req->continue_sent && !req->responded) {
        struct iovec iov[1] = { { (void *)cont, sizeof cont - 1 } };
        send_iov(c, iov, 1);
        req->continue_sent = true;
        req->bytes_out += sizeof cont - 1;
    }
    pump_body(c);
    leave(c);
    return 0;
}

/* ---- asynchronous handlers and streamed responses --------------------------------- */

void conn_req_set_events(struct conn_req *req, const struct conn_req_events *ev)
{
    req->ev = ev ? *ev : (struct conn_req_events){ 0 };
}

const char *conn_req_client(const struct conn_req *req)
{
    return req->conn->client;
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
    enter(c);
    pump_body(c);
    leave(c);
}

int conn_req_start(struct conn_req *req, int status, const char *extra_headers,
                   const char *content_type, int64_t content_length)
{
    struct conn *c = req->conn;
    size_t el = extra_headers ? strlen(extra_headers) : 0, cap = el + 1024;
    char *extra = NULL, *head = NULL;
    int rc = -1;

    if (req->responded || c->state != ST_HANDLING)
        return -1;
    req->stream_nobody = (req->parsed && req->head.method == HTTP_HEAD) || status == 204 ||
                         status == 304;
    req->stream_chunked = content_length < 0 && !req->stream_nobody &&
                          req->head.version_minor == 1;
    extra = malloc(el + 32);
    head = malloc(cap);
    if (!extra || !head)
        goto out;
    snprintf(extra, el + 32, "%s%s", extra_headers ? extra_headers : "",
             req->stream_chunked ? "Transfer-Encoding: chunked\r\n" : "");
    enter(c);
    req->responded = true;
    req->streaming = true;
    req->status = status;
    req->stream_left = req->stream_nobody ? 0 : content_length;
    decide_close(c);
    if (content_length < 0 && !req->stream_nobody && !req->stream_chunked)
        c->closing = true; /* HTTP/1.0: the body ends with the connection */
    struct reply_head h = {
        .status = status, .date = conn_server_date(c->srv), .content_type = content_type,
        .content_length = content_length < 0 ? 0 : (size_t)content_length,
        .no_length = content_length < 0, .request_id = req->id, .extra = extra,
        .connection = c->closing ? "close"
                      : req->head.version_minor == 0 ? "keep-alive" : NULL,
    };
    size_t hl = reply_format_head(head, cap, &h);
    struct iovec iov[1] = { { head, hl } };
    if (hl > 0 && !req->stream_nobody && content_length > 0 && content_length <= HOLD_MAX) {
        req->held_head = head; /* sent with the body by the first conn_req_write */
        req->held_len = hl;
        head = NULL;
        req->bytes_out += hl;
        rc = 0;
    } else if (hl > 0) {
        send_iov(c, iov, 1);
        req->bytes_out += hl;
        rc = 0;
    } else {
        kill_conn(c);
    }
    leave(c);
out:
    free(extra);
    free(head);
    return rc;
}

int conn_req_write(struct conn_req *req, const char *data, size_t len)
{
    struct conn *c = req->conn;
    char size[24];

    if (c->state != ST_HANDLING || !req->streaming)
        return -1;
    if (req->stream_nobody || len == 0)
        return 0;
    if (req->stream_left >= 0 && (uint64_t)len > (uint64_t)req->stream_left)
        len = (size_t)req->stream_left; /* never more than announced */
    int n = req->stream_chunked ? snprintf(size, sizeof size, "%zx\r\n", len) : 0;
    struct iovec iov[3] = { { size, (size_t)n }, { (void *)data, len }, { "\r\n", 2 } };
    if (req->held_head) /* a small body: its held head and it leave in one sendmsg, now */
        send_iov(c, iov, req->stream_chunked ? 3 : 2);
    else if (queue_iov(c, iov, req->stream_chunked ? 3 : 2) != 0) {
        enter(c);
        kill_conn(c); /* a hole in the body: the client must see it cut off */
        leave(c);
        return -1;
    }
    req->bytes_out += (uint64_t)n + len + (req->stream_chunked ? 2 : 0);
    if (req->stream_left >= 0)
        req->stream_left -= (int64_t)len;
    if (output_len(c) <= STREAM_HIGH)
        return 0;
    req->stream_wait = true;
    deadline_set(&c->dl, DL_IDLE, c->opt->idle_timeout_ms); /* a client that stops reading */
    return 1;
}

void conn_req_end(struct conn_req *req)
{
    struct conn *c = req->conn;

    if (c->state != ST_HANDLING || !req->streaming)
        return;
    if (req->stream_left > 0) {
        conn_req_abort(req);
        return;
    }
    enter(c);
    req->streaming = false;
    req->stream_wait = false;
    req->ev = (struct conn_req_events){ 0 };
    if (req->stream_chunked) {
        struct iovec iov[1] = { { "0\r\n\r\n", 5 } };
        if (queue_iov(c, iov, 1) != 0)
            c->closing = true; /* no last chunk: the client sees the body cut off */
        req->bytes_out += 5;
    }
    deadline_clear(&c->dl);
    if (!c->closing && body_unread(req))
        conn_req_read_body(req, NULL);
    else if (c->closing || !req->body_active)
        request_done(c);
    leave(c);
}

void conn_req_close_after(struct conn_req *req)
{
    req->conn->closing = true;
}

void conn_req_drop_body(struct conn_req *req)
{
    struct conn *c = req->conn;

    if (!req->body_active)
        return;
    body_read_stop(c);
    req->body_active = false;
    req->body_failed = true; /* the rest is never read: the connection must close */
    req->sink = (struct conn_body_sink){ 0 };
    c->closing = true;
}

void conn_req_abort(struct conn_req *req)
{
    struct conn *c = req->conn;

    req->ev = (struct conn_req_events){ 0 };
    req->body_active = false;
    req->sink = (struct conn_body_sink){ 0 };
    enter(c);
    kill_conn(c);
    leave(c);
}

/* ---- reading heads ----------------------------------------------------------------- */

static void begin_request(struct conn *c)
{
    struct conn_req *r = &c->req;

    memset(r, 0, sizeof *r);
    r->conn = c;
    r->start_us = deadline_now_us();
    conn_server_request_id(c->srv, r->id);
    c->head_started = true;
    c->scanned = 0;
}

static bool head_buf_fit(struct conn *c, size_t len)
{
    size_t max_headers = c->opt->head.max_headers;

    if (!c->headers) { /* http1_parse fills the entries it counts */
        c->headers = malloc((max_headers ? max_headers : 1) * sizeof *c->headers);
        if (!c->headers)
            return false;
    }
    if (len <= c->head_cap)
        return true;
    size_t cap = (len + 1023) & ~(size_t)1023;
    char *p = realloc(c->head_buf, cap);
    if (!p)
        return false;
    c->head_buf = p;
    c->head_cap = cap;
    return true;
}

/* The head is buf[start..end) of the input. Returns 1 when dispatched, -1 when refused. */
static int take_head(struct conn *c, const char *buf, size_t start, size_t end)
{
    const struct conn_options *o = c->opt;
    struct conn_req *r = &c->req;
    struct http1_verdict v;
    size_t len = end - start;

    r->bytes_in = end;
    if (!head_buf_fit(c, len)) {
        refuse(c, 503, "out_of_memory", "the server is out of memory, retry later");
        return -1;
    }
    memcpy(c->head_buf, buf + start, len);
    evbuffer_drain(bufferevent_get_input(c->bev), end);
    if (http1_parse(c->head_buf, len, &o->head, c->headers, o->head.max_headers, &r->head,
                    &v) < 0) {
        refuse(c, v.status, v.code, v.message);
        return -1;
    }
    r->parsed = true;
    h1body_init(&r->body, &r->head);
    if (r->head.framing == HTTP1_BODY_LENGTH && r->head.content_length > o->max_body_bytes) {
        refuse(c, 413, "body_too_large", "the request body is larger than allowed");
        return -1;
    }
    c->state = ST_HANDLING;
    deadline_clear(&c->dl);
    conn_server_dispatch(c->srv, r);
    return 1;
}

/* Empty lines between requests (some clients send CRLF after a body) start no request. */
static void drop_empty_lines(struct evbuffer *in)
{
    unsigned char *p;

    while (evbuffer_get_length(in) >= 2 && (p = evbuffer_pullup(in, 2)) && p[0] == '\r' &&
           p[1] == '\n')
        evbuffer_drain(in, 2);
}

/* Returns 1 when a request was dispatched, 0 when more bytes are needed, -1 if refused. */
static int read_head(struct conn *c)
{
    const struct conn_options *o = c->opt;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t len = evbuffer_get_length(in), start = 0, end = 0;
    struct http1_verdict v;

    if (!c->head_started) {
        drop_empty_lines(in);
        len = evbuffer_get_length(in);
    }
    if (len == 0)
        return 0;
    if (!c->head_started)
        begin_request(c);
    c->req.bytes_in = len;
    size_t n = len < o->head.max_header_bytes ? len : o->head.max_header_bytes;
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    switch (http1_head_find(p, n, o->head.max_header_bytes, &c->scanned, &start, &end, &v)) {
    case HTTP1_FIND_MORE:
        if (c->dl.kind != DL_HEAD)
            deadline_set(&c->dl, DL_HEAD, o->head_timeout_ms);
        return 0;
    case HTTP1_FIND_ERROR:
        refuse(c, v.status, v.code, v.message);
        return -1;
    case HTTP1_FIND_DONE:
        break;
    }
    return take_head(c, p, start, end);
}

/* A keep-alive connection waiting with no byte of a next head costs only its bufferevent:
 * the head copy and the header array are allocated again by the next request. */
static void release_head_bufs(struct conn *c)
{
    free(c->head_buf);
    free(c->headers);
    c->head_buf = NULL;
    c->headers = NULL;
    c->head_cap = 0;
}

static void process_input(struct conn *c)
{
    c->in_process = true;
    while (c->state == ST_HEAD && output_len(c) <= OUT_HIGH && read_head(c) > 0)
        ;
    c->in_process = false;
    if (c->state == ST_HEAD && !c->head_started)
        release_head_bufs(c);
    if (c->state != ST_HEAD || !c->peer_eof)
        return;
    if (c->head_started)
        kill_conn(c); /* a partial head, and the client has gone */
    else
        start_close(c);
}

/* ---- bufferevent callbacks --------------------------------------------------------- */

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    enter(c);
    if (c->state == ST_HEAD)
        process_input(c);
    else if (c->state == ST_HANDLING && c->req.body_active)
        pump_body(c);
    else if (c->state == ST_CLOSING || c->state == ST_LINGER)
        drop_input(c);
    leave(c);
}

/* The output buffer has drained (written by the bufferevent or by a flush). */
static void output_drained(struct conn *c)
{
    if (c->state == ST_HANDLING && c->req.stream_wait) {
        c->req.stream_wait = false;
        deadline_clear(&c->dl);
        if (c->req.ev.on_drained)
            c->req.ev.on_drained(c->req.ev.arg);
    } else if (c->state == ST_CLOSING)
        linger_begin(c);
    else if (c->state == ST_HEAD)
        process_input(c); /* pipelined requests waited for the output to drain */
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    enter(c);
    if (c->write_enabled && output_len(c) == 0) {
        bufferevent_disable(c->bev, EV_WRITE); /* flushes write directly again */
        c->write_enabled = false;
    }
    output_drained(c);
    leave(c);
}

static void on_peer_eof(struct conn *c)
{
    c->peer_eof = true;
    if (c->state == ST_HEAD)
        process_input(c);
    else if (c->state == ST_HANDLING && c->req.body_active)
        pump_body(c);
    else if (c->state == ST_LINGER)
        kill_conn(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    enter(c);
    if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING))
        on_peer_eof(c);
    else
        kill_conn(c); /* a socket error: nothing more can be sent */
    leave(c);
}

/* ---- accepting --------------------------------------------------------------------- */

struct conn *conn_new(struct conn_server *srv, struct event_base *base,
                      struct conn_list *list, evutil_socket_t fd, const struct sockaddr *peer)
{
    struct conn *c = calloc(1, sizeof *c);
    int one = 1;

    if (!c)
        return NULL;
    if (deadline_init(&c->dl, base, on_timer, c) == 0)
        c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) { /* the caller still owns fd */
        deadline_cleanup(&c->dl);
        free(c);
        return NULL;
    }
    c->srv = srv;
    c->opt = conn_server_options(srv);
    c->fd = fd;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    listener_format_addr(peer, c->client, sizeof c->client);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_set_max_single_write(c->bev, FLUSH_BYTES); /* libevent's default: 16 KiB */
    bufferevent_disable(c->bev, EV_WRITE); /* on by default; only send_iov/flush_output enable it */
    bufferevent_setwatermark(c->bev, EV_READ, 0, c->opt->head.max_header_bytes + READ_SLACK);
    bufferevent_enable(c->bev, EV_READ);
    c->list = list;
    c->next = list->first;
    if (list->first)
        list->first->prev = c;
    list->first = c;
    list->count++;
    deadline_set(&c->dl, DL_HEAD, c->opt->head_timeout_ms);
    return c;
}

void conn_list_close(struct conn_list *list, bool idle_only)
{
    for (struct conn *c = list->first, *next; c; c = next) {
        next = c->next;
        if (!idle_only || (c->state == ST_HEAD && !c->head_started && output_len(c) == 0))
            kill_conn(c);
    }
}
