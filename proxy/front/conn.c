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
 * connection under their own feet: conn_kill() marks it and the outermost conn_leave()
 * frees. The request body is pumped by connbody.c, and idle connections are listed and
 * parked by connidle.c (the same module split for size; they share connpriv.h). A parked
 * connection has given back its bufferevent, request and timer (conn_detach) and gets them
 * again (conn_attach) when bytes arrive. */
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
#include "connpriv.h"
#include "deadline.h"
#include "h1body.h"
#include "listener.h"
#include "log.h"
#include "reply.h"

static void process_input(struct conn *c);
static size_t output_len(const struct conn *c);
static void release_head_bufs(struct conn *c);
static void drop_held(struct conn_req *r);
/* ---- lifetime ---------------------------------------------------------------------- */

void conn_enter(struct conn *c)
{
    c->busy++;
}

const char *conn_outcome_name(enum conn_outcome o)
{
    static const char *const names[] = { "ok", "client_timeout", "client_closed",
                                         "upstream_error", "drain", "aborted" };

    return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "aborted";
}

/* The request's log line. What is still in the output buffer was not sent: bytes_out and
 * body_sent leave it out, so a cut transfer shows how much of its body left. */
static void log_request(struct conn *c, enum conn_outcome why)
{
    struct conn_req *r = c->req;
    uint64_t unsent = output_len(c) + (r->held_head ? r->held_len : 0);
    struct conn_req_log l = {
        .id = r->id,
        .trace_id = r->trace.trace_id[0] ? r->trace.trace_id : NULL,
        .method = r->parsed ? r->head.method_name : NULL,
        .path = r->parsed ? r->head.target : NULL,
        .path_len = r->parsed ? r->head.path_len : 0,
        .client = c->client,
        .status = r->status,
        .bytes_in = r->bytes_in,
        .bytes_out = r->bytes_out - (unsent < r->bytes_out ? unsent : r->bytes_out),
        .outcome = conn_outcome_name(why),
        .body_expected = r->body_expected,
        .body_sent = r->body_out - (unsent < r->body_out ? unsent : r->body_out),
        .duration_us = deadline_now_us() - r->start_us,
        .error_code = r->error_code,
        .error_message = r->error_code ? r->error_message : NULL,
    };
    c->log_pending = false;
    reply_log(&l);
    connstats_request(conn_server_counters(c->srv), r->route, l.method, r->status,
                      l.duration_us, r->bytes_in, r->bytes_out);
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
    conn_detach(c);
    if (c->park_ev)
        event_del(c->park_ev);
    evutil_closesocket(c->fd); /* after the bufferevent's events left epoll */
    release_head_bufs(c);
    free(c->body_buf);
    struct sockaddr_storage peer = { 0 };
    memcpy(&peer, &c->peer, sizeof c->peer);
    slab_free(c->list->slab, c);
    statcell_inc(&conn_server_counters(srv)->closed);
    conn_server_closed(srv, (struct sockaddr *)&peer);
}

void conn_leave(struct conn *c)
{
    if (--c->busy == 0 && c->state == ST_DEAD)
        destroy(c);
}

/* The request has ended: what it held goes back (once). */
static void release_hold(struct conn_req *r)
{
    void *hold = r->hold;

    r->hold = NULL;
    if (hold)
        conn_server_release(r->conn->srv, hold);
}

void conn_req_hold(struct conn_req *req, void *hold)
{
    req->hold = hold;
}

void conn_kill(struct conn *c)
{
    conn_kill_why(c, CONN_ABORTED);
}

/* Ends the connection now. A request in flight, or answered with its output still
 * queued, gets its log line with outcome `why` (status 0 when it was never answered), and
 * a body sink its on_end(false). */
void conn_kill_why(struct conn *c, enum conn_outcome why)
{
    struct conn_req *r = c->req;
    bool in_flight = c->state == ST_HANDLING;

    if (c->state == ST_DEAD)
        return;
    if (in_flight || c->log_pending)
        log_request(c, why); /* before the held head is dropped: it was never sent */
    conn_idle_leave(c);
    c->state = ST_DEAD; /* from here on, answers are ignored */
    if (c->bev)
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (r)
        drop_held(r); /* never sent: the body it waited for did not come */
    if (c->body_ev)
        event_del(c->body_ev);
    if (c->park_ev)
        event_del(c->park_ev);
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
    if (in_flight)
        release_hold(r); /* after on_gone: the handler let go of the request */
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
    connstats_malformed(conn_server_counters(c->srv), code);
    reply_error(c->req, status, code, "%s", message);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    conn_enter(c);
    switch (deadline_fired(&c->dl)) {
    case DL_HEAD:
        if (c->state == ST_HEAD && c->head_started)
            refuse(c, 408, "request_head_timeout",
                   "the request head did not arrive within the time limit");
        else
            conn_kill(c); /* no byte of a request: close without a word */
        break;
    case DL_BODY:
        connbody_failed(c, 408, "body_timeout", "the request body stopped arriving");
        break;
    case DL_IDLE:
        conn_kill_why(c, CONN_CLIENT_TIMEOUT); /* stopped reading, or silent keep-alive */
        break;
    case DL_LINGER:
        conn_kill(c);
        break;
    }
    conn_leave(c);
}

/* ---- writing ----------------------------------------------------------------------- */

/* Sends iov[0..n) in order: straight to the socket when nothing is queued (one syscall,
 * no write event), and whatever did not fit through the bufferevent. */
void conn_send_iov(struct conn *c, struct iovec *iov, int n)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t sent = 0;
    char *held = c->req->held_head;

    if (held) { /* the held head goes first, in the same call when it fits */
        struct iovec all[4] = { { held, c->req->held_len } };
        c->req->held_head = NULL;
        if (n < 4)
            memcpy(all + 1, iov, (size_t)n * sizeof *iov);
        conn_send_iov(c, all, n < 4 ? n + 1 : 1);
        c->req->held_head = held; /* sent or copied: given back */
        drop_held(c->req);
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
    return c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0; /* 0: parked */
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

    conn_enter(c);
    flush_output(c);
    if (c->state != ST_DEAD && output_len(c) == 0)
        output_drained(c);
    conn_leave(c);
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

bool conn_body_unread(const struct conn_req *r)
{
    return r->parsed && !h1body_done(&r->body) && !r->body_active && !r->body_failed;
}

/* Decides, before the response head is written, whether the connection ends with it. */
static void decide_close(struct conn *c)
{
    struct conn_req *r = c->req;

    if (!r->parsed || !r->head.keep_alive || conn_server_draining(c->srv) || c->peer_eof)
        c->closing = true;
    if (conn_body_unread(r)) {
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
        .request_id = c->req->id,
        .extra = extra,
        .connection = c->closing                     ? "close"
                      : c->req->head.version_minor == 0 ? "keep-alive"
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
    conn_enter(c);
    req->responded = true;
    req->status = status;
    decide_close(c);
    size_t hl = format_head(c, head, cap, status, extra_headers, content_type, body_len);
    if (hl == 0) { /* only over-long extra headers do this: a bug, not a client's doing */
        log_msg(LOG_LVL_ERROR, "response head for request %s does not fit", req->id);
        conn_kill(c);
        conn_leave(c);
        if (head != small)
            free(head);
        return;
    }
    bool with_body = !(req->parsed && req->head.method == HTTP_HEAD) && status != 204 &&
                     status != 304;
    struct iovec iov[2] = { { head, hl }, { (void *)body, with_body ? body_len : 0 } };
    req->body_expected = (int64_t)iov[1].iov_len;
    conn_send_iov(c, iov, 2);
    if (head != small)
        free(head);
    req->bytes_out += hl + iov[1].iov_len;
    req->body_out += iov[1].iov_len;
    if (!c->closing && conn_body_unread(req))
        conn_req_read_body(req, NULL); /* drop the body and keep the connection */
    else if (c->closing || !req->body_active)
        conn_request_done(c);
    conn_leave(c);
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

void conn_req_set_route(struct conn_req *req, unsigned route)
{
    req->route = (uint8_t)(route < CONNSTATS_ROUTES ? route : 0);
}

const struct tracectx *conn_req_trace(const struct conn_req *req)
{
    return &req->trace;
}

/* X-Request-Id and traceparent from the client when they are sane (one field each);
 * otherwise ours: the id begin_request made, a new trace. */
static void take_correlation(struct conn *c)
{
    struct conn_req *r = c->req;
    const struct http1_header *id = http1_header_find(&r->head, "X-Request-Id");
    const struct http1_header *tp = http1_header_find(&r->head, "traceparent");

    if (id && tracectx_request_id_ok(id->value, id->value_len)) {
        memcpy(r->id, id->value, id->value_len);
        r->id[id->value_len] = '\0';
    }
    if (!tp || tracectx_parse(tp->value, tp->value_len, &r->trace) < 0)
        tracectx_hex(conn_server_random(c->srv), conn_server_random(c->srv),
                     r->trace.trace_id, 32);
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
        conn_kill(c);
}

/* After the last byte is out: half-close and read what the client still sends, so that
 * closing with unread input does not become a reset that destroys our last response. */
static void linger_begin(struct conn *c)
{
    unsigned idle = c->opt->idle_timeout_ms;

    c->state = ST_LINGER;
    if (c->peer_eof) {
        conn_kill(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    deadline_set(&c->dl, DL_LINGER, idle < LINGER_MS ? idle : LINGER_MS);
    drop_input(c);
}

static void start_close(struct conn *c)
{
    conn_idle_leave(c);
    c->state = ST_CLOSING;
    if (output_len(c) == 0) {
        linger_begin(c);
        return;
    }
    deadline_set(&c->dl, DL_IDLE, c->opt->idle_timeout_ms);
    drop_input(c);
}

void conn_request_done(struct conn *c)
{
    if (c->state != ST_HANDLING)
        return;
    if (output_len(c) > 0)
        c->log_pending = true; /* logged once sent, or with why the connection died */
    else
        log_request(c, CONN_OK);
    release_hold(c->req);
    if (conn_server_draining(c->srv))
        c->closing = true; /* a drain: no next request on this connection */
    c->head_started = false;
    c->scanned = 0;
    if (c->closing) {
        start_close(c);
        return;
    }
    c->state = ST_HEAD;
    deadline_set(&c->dl, DL_IDLE, c->opt->idle_timeout_ms);
    conn_idle_enter(c);
    if (!c->in_process)
        process_input(c);
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

/* A response head's buffer of cap bytes: from the connections' cache when it fits. */
static char *head_out_get(struct conn *c, size_t cap)
{
    return cap <= HEAD_OUT_BLOCK ? blockcache_get(&c->list->held, HEAD_OUT_BLOCK) : malloc(cap);
}

static void head_out_put(struct conn *c, char *head, bool cached)
{
    if (cached)
        blockcache_put(&c->list->held, head, HEAD_OUT_BLOCK);
    else
        free(head);
}

static void drop_held(struct conn_req *r)
{
    char *held = r->held_head;

    r->held_head = NULL;
    if (held)
        head_out_put(r->conn, held, r->held_cached);
}

int conn_req_start(struct conn_req *req, int status, const char *extra_headers,
                   const char *content_type, int64_t content_length)
{
    struct conn *c = req->conn;
    size_t cap = (extra_headers ? strlen(extra_headers) : 0) + 1024;
    char *head = NULL;
    int rc = -1;

    if (req->responded || c->state != ST_HANDLING)
        return -1;
    req->stream_nobody = (req->parsed && req->head.method == HTTP_HEAD) || status == 204 ||
                         status == 304;
    req->stream_chunked = content_length < 0 && !req->stream_nobody &&
                          req->head.version_minor == 1;
    bool cached = cap <= HEAD_OUT_BLOCK;
    if (!(head = head_out_get(c, cap)))
        return -1;
    if (cached)
        cap = HEAD_OUT_BLOCK;
    conn_enter(c);
    req->responded = true;
    req->streaming = true;
    req->status = status;
    req->stream_left = req->stream_nobody ? 0 : content_length;
    req->body_expected = req->stream_nobody ? 0 : content_length;
    decide_close(c);
    if (content_length < 0 && !req->stream_nobody && !req->stream_chunked)
        c->closing = true; /* HTTP/1.0: the body ends with the connection */
    struct reply_head h = {
        .status = status, .date = conn_server_date(c->srv), .content_type = content_type,
        .content_length = content_length < 0 ? 0 : (size_t)content_length,
        .no_length = content_length < 0, .request_id = req->id, .extra = extra_headers,
        .chunked = req->stream_chunked,
        .connection = c->closing ? "close"
                      : req->head.version_minor == 0 ? "keep-alive" : NULL,
    };
    size_t hl = reply_format_head(head, cap, &h);
    struct iovec iov[1] = { { head, hl } };
    if (hl > 0 && !req->stream_nobody && content_length > 0 && content_length <= HOLD_MAX) {
        req->held_head = head; /* sent with the body by the first conn_req_write */
        req->held_len = hl;
        req->held_cached = cached;
        head = NULL;
        req->bytes_out += hl;
        rc = 0;
    } else if (hl > 0) {
        conn_send_iov(c, iov, 1);
        req->bytes_out += hl;
        rc = 0;
    } else {
        conn_kill(c);
    }
    conn_leave(c);
    if (head)
        head_out_put(c, head, cached);
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
        conn_send_iov(c, iov, req->stream_chunked ? 3 : 2);
    else if (queue_iov(c, iov, req->stream_chunked ? 3 : 2) != 0) {
        conn_enter(c);
        conn_kill(c); /* a hole in the body: the client must see it cut off */
        conn_leave(c);
        return -1;
    }
    req->bytes_out += (uint64_t)n + len + (req->stream_chunked ? 2 : 0);
    req->body_out += len;
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
    conn_enter(c);
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
    if (!c->closing && conn_body_unread(req))
        conn_req_read_body(req, NULL);
    else if (c->closing || !req->body_active)
        conn_request_done(c);
    conn_leave(c);
}

void conn_req_close_after(struct conn_req *req)
{
    req->conn->closing = true;
}

void conn_req_abort(struct conn_req *req)
{
    struct conn *c = req->conn;

    req->ev = (struct conn_req_events){ 0 };
    req->body_active = false;
    req->sink = (struct conn_body_sink){ 0 };
    conn_enter(c);
    conn_kill_why(c, CONN_UPSTREAM_ERROR);
    conn_leave(c);
}

/* ---- reading heads ----------------------------------------------------------------- */

static void begin_request(struct conn *c)
{
    struct conn_req *r = c->req;

    if (c->log_pending) /* a pipelined request starts while the last output drains */
        log_request(c, CONN_OK);
    conn_idle_leave(c);
    memset(r, 0, sizeof *r);
    r->conn = c;
    r->start_us = deadline_now_us();
    conn_server_request_id(c->srv, r->id);
    tracectx_hex(conn_server_random(c->srv), 0, r->trace.span_id, 16);
    c->head_started = true;
    c->scanned = 0;
}

/* The header array and, while the head fits HEAD_INLINE, the head bytes share one block
 * from the connections' cache (given back by release_head_bufs). */
static bool head_in_block(const struct conn *c)
{
    return c->head_buf == (char *)c->headers + c->head_block - HEAD_INLINE;
}

static bool head_buf_fit(struct conn *c, size_t len)
{
    size_t max_headers = c->opt->head.max_headers ? c->opt->head.max_headers : 1;

    if (!c->headers) { /* http1_parse fills the entries it counts */
        size_t size = max_headers * sizeof *c->headers + HEAD_INLINE;
        if (!(c->headers = blockcache_get(&c->list->heads, size)))
            return false;
        c->head_block = size;
        c->head_buf = (char *)c->headers + size - HEAD_INLINE;
        c->head_cap = HEAD_INLINE;
    }
    if (len <= c->head_cap)
        return true;
    size_t cap = (len + 1023) & ~(size_t)1023;
    char *p = head_in_block(c) ? malloc(cap) : realloc(c->head_buf, cap);
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
    struct conn_req *r = c->req;
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
    take_correlation(c);
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
    c->req->bytes_in = len;
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

/* A keep-alive connection waiting with no byte of a next head keeps no head buffers: they
 * go back to the connections' cache (a few kept, blockcache.h), and the next request takes
 * them again from there. */
static void release_head_bufs(struct conn *c)
{
    if (!c->headers)
        return;
    if (!head_in_block(c))
        free(c->head_buf);
    blockcache_put(&c->list->heads, c->headers, c->head_block);
    c->headers = NULL;
    c->head_buf = NULL;
    c->head_cap = 0;
}

static void process_input(struct conn *c)
{
    c->in_process = true;
    while (c->state == ST_HEAD && output_len(c) <= OUT_HIGH && read_head(c) > 0)
        ;
    c->in_process = false;
    if (c->state == ST_HEAD && !c->head_started && !c->log_pending)
        release_head_bufs(c); /* a pending log line still reads the path in head_buf */
    if (c->state != ST_HEAD || !c->peer_eof)
        return;
    if (c->head_started)
        conn_kill(c); /* a partial head, and the client has gone */
    else
        start_close(c);
}

/* ---- bufferevent callbacks --------------------------------------------------------- */

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    conn_enter(c);
    if (c->state == ST_HEAD) {
        process_input(c);
        conn_idle_enter(c); /* after a wake that brought no head (a no-op when not idle) */
    } else if (c->state == ST_HANDLING && c->req->body_active)
        connbody_pump(c);
    else if (c->state == ST_CLOSING || c->state == ST_LINGER)
        drop_input(c);
    conn_leave(c);
}

/* The output buffer has drained (written by the bufferevent or by a flush). */
static void output_drained(struct conn *c)
{
    if (c->log_pending)
        log_request(c, CONN_OK);
    if (c->state == ST_HANDLING && c->req->stream_wait) {
        c->req->stream_wait = false;
        deadline_clear(&c->dl);
        if (c->req->ev.on_drained)
            c->req->ev.on_drained(c->req->ev.arg);
    } else if (c->state == ST_CLOSING)
        linger_begin(c);
    else if (c->state == ST_HEAD && conn_server_draining(c->srv) && !c->head_started)
        start_close(c); /* drained after a drain began: nothing more to answer */
    else if (c->state == ST_HEAD) {
        process_input(c); /* pipelined requests waited for the output to drain */
        if (c->state == ST_HEAD)
            conn_idle_enter(c);
    }
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    conn_enter(c);
    if (c->write_enabled && output_len(c) == 0) {
        bufferevent_disable(c->bev, EV_WRITE); /* flushes write directly again */
        c->write_enabled = false;
    }
    output_drained(c);
    conn_leave(c);
}

static void on_peer_eof(struct conn *c)
{
    c->peer_eof = true;
    if (c->state == ST_HEAD)
        process_input(c);
    else if (c->state == ST_HANDLING && c->req->body_active)
        connbody_pump(c);
    else if (c->state == ST_LINGER)
        conn_kill(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    conn_enter(c);
    if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING))
        on_peer_eof(c);
    else
        conn_kill_why(c, CONN_CLIENT_CLOSED); /* a socket error: nothing more can be sent */
    conn_leave(c);
}

/* ---- accepting --------------------------------------------------------------------- */

int conn_attach(struct conn *c, struct event_base *base)
{
    c->req = calloc(1, sizeof *c->req);
    if (c->req && deadline_resume(&c->dl, base, on_timer, c) == 0)
        c->bev = bufferevent_socket_new(base, c->fd, 0); /* destroy() closes the socket */
    if (!c->bev) {
        deadline_suspend(&c->dl);
        free(c->req);
        c->req = NULL;
        return -1;
    }
    c->req->conn = c;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_set_max_single_write(c->bev, FLUSH_BYTES); /* libevent's default: 16 KiB */
    bufferevent_disable(c->bev, EV_WRITE); /* on by default; only send_iov/flush_output enable it */
    bufferevent_setwatermark(c->bev, EV_READ, 0, c->opt->head.max_header_bytes + READ_SLACK);
    bufferevent_enable(c->bev, EV_READ);
    return 0;
}

void conn_detach(struct conn *c)
{
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->body_ev)
        event_free(c->body_ev);
    if (c->flush_ev)
        event_free(c->flush_ev);
    c->bev = NULL;
    c->body_ev = c->flush_ev = NULL;
    c->write_enabled = false;
    deadline_suspend(&c->dl);
    if (c->req)
        drop_held(c->req);
    free(c->req);
    c->req = NULL;
}

/* A connection's object: struct conn, then room for its park event (libevent's size). */
#define CONN_EV_OFFSET ((sizeof(struct conn) + 15) & ~(size_t)15)

int conn_list_init(struct conn_list *list)
{
    *list = (struct conn_list){ 0 };
    list->slab = slab_pool_new(CONN_EV_OFFSET + event_get_struct_event_size());
    return list->slab ? 0 : -1;
}

void conn_list_cleanup(struct conn_list *list)
{
    blockcache_cleanup(&list->heads);
    blockcache_cleanup(&list->held);
    slab_pool_free(list->slab);
    list->slab = NULL;
}

struct event *conn_park_event(struct conn *c)
{
    return (struct event *)((char *)c + CONN_EV_OFFSET);
}

struct conn *conn_new(struct conn_server *srv, struct event_base *base,
                      struct conn_list *list, evutil_socket_t fd, const struct sockaddr *peer)
{
    struct conn *c = slab_alloc(list->slab);
    int one = 1;

    if (!c)
        return NULL;
    c->srv = srv;
    c->opt = conn_server_options(srv);
    c->fd = fd;
    c->list = list;
    if (conn_attach(c, base) != 0) { /* the caller still owns fd */
        slab_free(list->slab, c);
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    listener_format_addr(peer, c->client, sizeof c->client);
    if (peer->sa_family == AF_INET6)
        memcpy(&c->peer, peer, sizeof(struct sockaddr_in6));
    else if (peer->sa_family == AF_INET)
        memcpy(&c->peer, peer, sizeof(struct sockaddr_in));
    c->next = list->first;
    if (list->first)
        list->first->prev = c;
    list->first = c;
    list->count++;
    deadline_set(&c->dl, DL_HEAD, c->opt->head_timeout_ms);
    conn_idle_enter(c);
    return c;
}

void conn_list_close(struct conn_list *list, bool idle_only, enum conn_outcome why)
{
    for (struct conn *c = list->first, *next; c; c = next) {
        next = c->next;
        if (!idle_only || (c->state == ST_HEAD && !c->head_started && output_len(c) == 0))
            conn_kill_why(c, why);
    }
}
