/* simhttp: HTTP/1.1 server, streaming both ways. See simhttp.h.
 *
 *   read -> http_parser -> on_head (sink chosen) -> body to mem/file -> complete
 *        -> parser paused, dispatch -> handler replies (now or later) -> emit
 *        -> pump body (file or memory, shaped) -> finish -> unpause, parse next
 */
#define _GNU_SOURCE
#include "simhttp.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <http_parser.h>

#define URL_CAP (8 * 1024)
#define HDR_CAP (32 * 1024)
#define MEM_BODY_DEFAULT_CAP (1024 * 1024)
#define READ_HIGH_WM (1024 * 1024)
#define OUT_HIGH (256 * 1024)
#define PIECE (64 * 1024)
#define IDLE_TIMEOUT_S 120
#define WRITE_TIMEOUT_S 300
#define STALL_MAX_S 600
#define LINGER_S 2

struct simhttp_server {
    struct event_base *base;                /* borrowed */
    struct evconnlistener *listener;        /* owned */
    const struct simhttp_handlers *h;       /* borrowed */
    void *ctx;                              /* borrowed */
    int port;
    struct simhttp_conn *conns;             /* owned list */
    struct simhttp_req *detached;           /* owned list: dispatched, client gone */
    char date[64];
    time_t date_t;
    http_parser_settings settings;
};

struct simhttp_conn {
    struct simhttp_server *srv;  /* borrowed */
    struct bufferevent *bev;     /* owned */
    struct event *timer;         /* owned: pacing / stall limit */
    struct simhttp_req *req;     /* owned: current request */
    http_parser parser;
    size_t hdr_bytes;
    int last_was_value;
    int in_parse, busy, pumping, closing, close_now, keep_alive, lingering;
    long long sent, budget;
    char peer[64];
    struct simhttp_conn *prev, *next;
};

static void parse_input(struct simhttp_conn *c);
static void pump(struct simhttp_conn *c);

/* ---- requests ---- */

static struct simhttp_req *req_new(struct simhttp_conn *c)
{
    struct simhttp_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->conn = c;
    r->srv = c->srv;
    r->content_length = -1;
    r->sink = SIMHTTP_SINK_MEM;
    r->body_cap = MEM_BODY_DEFAULT_CAP;
    r->body_fd = -1;
    r->resp_fd = -1;
    r->resp = evbuffer_new();
    snprintf(r->peer, sizeof(r->peer), "%s", c->peer);
    return r;
}

static void req_free(struct simhttp_req *r)
{
    if (!r)
        return;
    if (r->srv->h->on_free)
        r->srv->h->on_free(r, r->srv->ctx);
    free(r->url);
    free(r->path);
    free(r->query);
    for (int i = 0; i < r->nhdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    free(r->body);
    free(r->body_path);
    if (r->body_fd >= 0)
        close(r->body_fd);
    if (r->resp_fd >= 0)
        close(r->resp_fd);
    if (r->resp)
        evbuffer_free(r->resp);
    if (r->resp_body)
        evbuffer_free(r->resp_body);
    free(r);
}

static void detach_remove(struct simhttp_server *srv, struct simhttp_req *r)
{
    for (struct simhttp_req **p = &srv->detached; *p; p = &(*p)->next_live) {
        if (*p == r) {
            *p = r->next_live;
            return;
        }
    }
}

/* Appends n bytes to a NUL-terminated string, refusing to grow past cap. */
static int append(char **s, const char *at, size_t n, size_t cap)
{
    size_t old = *s ? strlen(*s) : 0;
    if (old + n > cap)
        return -1;
    char *p = realloc(*s, old + n + 1);
    if (!p)
        return -1;
    memcpy(p + old, at, n);
    p[old + n] = '\0';
    *s = p;
    return 0;
}

/* ---- connections ---- */

static void conn_free(struct simhttp_conn *c)
{
    struct simhttp_server *srv = c->srv;
    struct simhttp_req *r = c->req;
    if (r && r->dispatched && !r->replied) {
        r->conn = NULL;
        r->next_live = srv->detached;
        srv->detached = r;
    } else {
        req_free(r);
    }
    if (c->timer)
        event_free(c->timer);
    bufferevent_free(c->bev);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

/* Half-closes and discards input for a moment so the client can read our last reply
 * instead of getting a reset for the bytes it still had in flight (nginx's lingering close). */
static void linger(struct simhttp_conn *c)
{
    struct timeval t = {LINGER_S, 0};
    c->lingering = 1;
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
    bufferevent_set_timeouts(c->bev, &t, NULL);
    bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
    bufferevent_enable(c->bev, EV_READ);
}

static void start_closing(struct simhttp_conn *c)
{
    c->closing = 1;
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        linger(c);
}

static void finish(struct simhttp_conn *c)
{
    req_free(c->req);
    c->req = NULL;
    c->busy = 0;
    c->pumping = 0;
    if (!c->keep_alive) {
        if (!c->in_parse)
            start_closing(c);
        else
            c->closing = 1;
        return;
    }
    http_parser_pause(&c->parser, 0);
    struct timeval idle = {IDLE_TIMEOUT_S, 0}, wr = {WRITE_TIMEOUT_S, 0};
    bufferevent_set_timeouts(c->bev, &idle, &wr);
    if (!c->in_parse)
        parse_input(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct simhttp_conn *c = arg;
    if (c->req && c->req->shape.stall) {
        conn_free(c); /* stall limit reached */
        return;
    }
    long long add = c->req ? c->req->shape.rate_bps / 10 : 0;
    c->budget += add > 0 ? add : 1;
    pump(c);
}

static void add_piece(struct simhttp_conn *c, struct evbuffer *out, size_t n)
{
    struct simhttp_req *r = c->req;
    char buf[PIECE];
    ssize_t got;
    if (r->resp_fd >= 0)
        got = read(r->resp_fd, buf, n);
    else
        got = evbuffer_remove(r->resp_body, buf, n);
    if (got <= 0) { /* file shrank under us: cut the connection */
        c->closing = 1;
        return;
    }
    if (r->shape.chunked)
        evbuffer_add_printf(out, "%zx\r\n", (size_t)got);
    evbuffer_add(out, buf, (size_t)got);
    if (r->shape.chunked)
        evbuffer_add(out, "\r\n", 2);
    c->sent += got;
}

/* Moves body bytes into the output until it is full, the body ends, or shaping waits. */
static void pump(struct simhttp_conn *c)
{
    struct simhttp_req *r = c->req;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (!c->closing && evbuffer_get_length(out) < OUT_HIGH) {
        long long left = r->resp_len - c->sent;
        if (left <= 0) {
            if (r->shape.chunked)
                evbuffer_add(out, "0\r\n\r\n", 5);
            finish(c);
            return;
        }
        if (r->shape.truncate_at > 0 && c->sent >= r->shape.truncate_at) {
            start_closing(c);
            return;
        }
        size_t n = left < PIECE ? (size_t)left : PIECE;
        if (r->shape.truncate_at > 0 && (long long)n > r->shape.truncate_at - c->sent)
            n = (size_t)(r->shape.truncate_at - c->sent);
        if (r->shape.rate_bps > 0) {
            if (c->budget <= 0) {
                struct timeval tick = {0, 100000};
                evtimer_add(c->timer, &tick);
                return;
            }
            if ((long long)n > c->budget)
                n = (size_t)c->budget;
            c->budget -= (long long)n;
        }
        add_piece(c, out, n);
    }
    if (c->closing)
        start_closing(c);
}

static void emit(struct simhttp_conn *c)
{
    struct simhttp_req *r = c->req;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_buffer(out, r->resp);
    int nobody = r->is_head || r->resp_status == 204 || r->resp_status == 304;
    if (nobody || r->resp_len == 0) {
        finish(c);
        return;
    }
    if (r->shape.stall) {
        struct timeval lim = {STALL_MAX_S, 0};
        evtimer_add(c->timer, &lim);
        return;
    }
    int plain = !r->shape.rate_bps && !r->shape.truncate_at && !r->shape.chunked;
    if (plain && r->resp_body) {
        evbuffer_add_buffer(out, r->resp_body);
        finish(c);
        return;
    }
    c->pumping = 1;
    c->sent = 0;
    c->budget = r->shape.rate_bps > 0 ? r->shape.rate_bps / 10 + 1 : 0;
    pump(c);
}

static void dispatch(struct simhttp_conn *c)
{
    struct simhttp_req *r = c->req;
    c->busy = 1;
    r->dispatched = 1;
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    if (r->replied)
        emit(c);
    else
        c->srv->h->on_request(r, c->srv->ctx);
}

static void reply_bad(struct simhttp_conn *c, int status)
{
    char line[128];
    int n = snprintf(line, sizeof(line),
                     "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                     status, status == 431 ? "Request Header Fields Too Large" : "Bad Request");
    bufferevent_write(c->bev, line, (size_t)n);
    c->closing = 1;
}

static void parse_input(struct simhttp_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    c->in_parse = 1;
    while (!c->busy && !c->close_now && !c->closing && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t n = http_parser_execute(&c->parser, &c->srv->settings, v.iov_base, v.iov_len);
        evbuffer_drain(in, n);
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
        if (c->close_now)
            break;
        if (err == HPE_PAUSED && c->req && c->req->complete)
            dispatch(c);
        else if (err != HPE_OK)
            reply_bad(c, c->hdr_bytes > HDR_CAP ? 431 : 400);
    }
    c->in_parse = 0;
    if (c->close_now)
        conn_free(c);
    else if (c->closing && !c->busy)
        start_closing(c);
    else if (!c->busy)
        bufferevent_enable(c->bev, EV_READ);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct simhttp_conn *c = arg;
    if (c->lingering)
        evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
    else if (!c->busy && !c->closing)
        parse_input(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct simhttp_conn *c = arg;
    if (c->closing) {
        if (!c->lingering && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            linger(c);
        return;
    }
    if (c->pumping && !evtimer_pending(c->timer, NULL))
        pump(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    conn_free(arg);
}

/* ---- parser callbacks ---- */

static struct simhttp_conn *pconn(http_parser *p)
{
    return p->data;
}

static int on_message_begin(http_parser *p)
{
    struct simhttp_conn *c = pconn(p);
    req_free(c->req);
    c->req = req_new(c);
    c->hdr_bytes = 0;
    c->last_was_value = 1;
    return c->req ? 0 : -1;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    return append(&pconn(p)->req->url, at, n, URL_CAP);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct simhttp_conn *c = pconn(p);
    struct simhttp_req *r = c->req;
    c->hdr_bytes += n;
    if (c->hdr_bytes > HDR_CAP)
        return -1;
    if (c->last_was_value) {
        if (r->nhdrs == SIMHTTP_MAX_HEADERS) {
            c->hdr_bytes = HDR_CAP + 1;
            return -1;
        }
        r->nhdrs++;
        r->hdrs[r->nhdrs - 1].value = strdup("");
        c->last_was_value = 0;
    }
    return append(&r->hdrs[r->nhdrs - 1].name, at, n, HDR_CAP);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct simhttp_conn *c = pconn(p);
    c->hdr_bytes += n;
    if (c->hdr_bytes > HDR_CAP || c->req->nhdrs == 0)
        return -1;
    c->last_was_value = 1;
    return append(&c->req->hdrs[c->req->nhdrs - 1].value, at, n, HDR_CAP);
}

static void split_url(struct simhttp_req *r)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    const char *url = r->url ? r->url : "";
    if (http_parser_parse_url(url, strlen(url), 0, &u) == 0 && (u.field_set & (1 << UF_PATH)))
        r->path = strndup(url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    else
        r->path = strdup("/");
    if (u.field_set & (1 << UF_QUERY))
        r->query = strndup(url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    else
        r->query = strdup("");
}

static void open_sink(struct simhttp_req *r)
{
    if (r->replied || (r->content_length >= 0 && (uint64_t)r->content_length > r->body_cap)) {
        if (!r->replied)
            r->body_too_large = 1;
        r->sink = SIMHTTP_SINK_DISCARD;
        return;
    }
    if (r->sink == SIMHTTP_SINK_FILE) {
        r->body_fd = r->body_path ? open(r->body_path, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
        if (r->body_fd < 0) {
            r->body_io_error = 1;
            r->sink = SIMHTTP_SINK_DISCARD;
        }
    }
}

static int on_headers_complete(http_parser *p)
{
    struct simhttp_conn *c = pconn(p);
    struct simhttp_req *r = c->req;
    r->method = http_method_str((enum http_method)p->method);
    r->is_head = p->method == HTTP_HEAD;
    if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX)
        r->content_length = (int64_t)p->content_length;
    c->keep_alive = http_should_keep_alive(p);
    split_url(r);
    c->srv->h->on_head(r, c->srv->ctx);
    if (c->close_now)
        return -1;
    open_sink(r);
    const char *expect = simhttp_header(r, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && !r->replied)
        bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static void scan_needle(struct simhttp_req *r, const char *at, size_t n)
{
    size_t nl = strlen(r->needle);
    if (nl == 0 || nl >= sizeof(r->carry)) {
        return;
    }
    char tmp[64];
    size_t head = n < nl - 1 ? n : nl - 1;
    memcpy(tmp, r->carry, r->carry_len);
    memcpy(tmp + r->carry_len, at, head);
    if (memmem(tmp, r->carry_len + head, r->needle, nl) || memmem(at, n, r->needle, nl)) {
        r->needle_found = 1;
        return;
    }
    size_t total = r->carry_len + head;
    const char *src = n >= nl - 1 ? at + n - (nl - 1) : tmp + (total > nl - 1 ? total - (nl - 1) : 0);
    r->carry_len = n >= nl - 1 ? nl - 1 : (total < nl - 1 ? total : nl - 1);
    memmove(r->carry, src, r->carry_len);
}

static void body_mem(struct simhttp_req *r, const char *at, size_t n)
{
    char *p = realloc(r->body, r->body_len + 1);
    if (!p) {
        r->body_io_error = 1;
        return;
    }
    r->body = p;
    memcpy(r->body + r->body_len - n, at, n);
    r->body[r->body_len] = '\0';
}

static void body_file(struct simhttp_req *r, const char *at, size_t n)
{
    while (n > 0) {
        ssize_t w = write(r->body_fd, at, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            r->body_io_error = 1;
            r->sink = SIMHTTP_SINK_DISCARD;
            return;
        }
        at += w;
        n -= (size_t)w;
    }
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct simhttp_req *r = pconn(p)->req;
    r->body_len += n;
    if (r->sink != SIMHTTP_SINK_DISCARD && r->body_len > r->body_cap) {
        r->body_too_large = 1;
        r->sink = SIMHTTP_SINK_DISCARD;
    }
    if (r->needle && !r->needle_found && r->sink != SIMHTTP_SINK_DISCARD)
        scan_needle(r, at, n);
    for (const char *q = at; r->sink != SIMHTTP_SINK_DISCARD && (q = memchr(q, '\n', (size_t)(at + n - q)));
         q++)
        r->body_newlines++;
    if (r->sink == SIMHTTP_SINK_MEM)
        body_mem(r, at, n);
    else if (r->sink == SIMHTTP_SINK_FILE)
        body_file(r, at, n);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct simhttp_req *r = pconn(p)->req;
    r->complete = 1;
    if (r->body_fd >= 0) {
        close(r->body_fd);
        r->body_fd = -1;
    }
    if ((r->body_too_large || r->body_io_error) && r->body_path)
        unlink(r->body_path);
    if (r->sink == SIMHTTP_SINK_MEM && !r->body)
        r->body = strdup("");
    http_parser_pause(p, 1);
    return 0;
}

/* ---- listener ---- */

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct simhttp_server *srv = arg;
    struct simhttp_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->srv = srv;
    c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(srv->base, on_timer, c);
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, ntohs(in->sin_port));
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, READ_HIGH_WM);
    bufferevent_setwatermark(c->bev, EV_WRITE, PIECE, 0);
    struct timeval idle = {IDLE_TIMEOUT_S, 0}, wr = {WRITE_TIMEOUT_S, 0};
    bufferevent_set_timeouts(c->bev, &idle, &wr);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

struct simhttp_server *simhttp_new(struct event_base *base, const char *host, int port,
                                   const struct simhttp_handlers *h, void *ctx)
{
    struct simhttp_server *srv = calloc(1, sizeof(*srv));
    struct sockaddr_in sin = {0};
    if (!srv)
        return NULL;
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        goto fail;
    srv->base = base;
    srv->h = h;
    srv->ctx = ctx;
    srv->listener = evconnlistener_new_bind(base, on_accept, srv,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
                                            (struct sockaddr *)&sin, sizeof(sin));
    if (!srv->listener)
        goto fail;
    struct sockaddr_in bound;
    socklen_t blen = sizeof(bound);
    getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&bound, &blen);
    srv->port = ntohs(bound.sin_port);
    http_parser_settings_init(&srv->settings);
    srv->settings.on_message_begin = on_message_begin;
    srv->settings.on_url = on_url;
    srv->settings.on_header_field = on_header_field;
    srv->settings.on_header_value = on_header_value;
    srv->settings.on_headers_complete = on_headers_complete;
    srv->settings.on_body = on_body;
    srv->settings.on_message_complete = on_message_complete;
    return srv;
fail:
    free(srv);
    return NULL;
}

void simhttp_free(struct simhttp_server *srv)
{
    if (!srv)
        return;
    while (srv->conns)
        conn_free(srv->conns);
    while (srv->detached) {
        struct simhttp_req *r = srv->detached;
        srv->detached = r->next_live;
        req_free(r);
    }
    evconnlistener_free(srv->listener);
    free(srv);
}

int simhttp_port(const struct simhttp_server *srv)
{
    return srv->port;
}

/* ---- handler API ---- */

const char *simhttp_header(const struct simhttp_req *req, const char *name)
{
    for (int i = 0; i < req->nhdrs; i++)
        if (req->hdrs[i].name && strcasecmp(req->hdrs[i].name, name) == 0)
            return req->hdrs[i].value;
    return NULL;
}

void simhttp_sink_file(struct simhttp_req *req, const char *path)
{
    free(req->body_path);
    req->body_path = strdup(path);
    req->sink = SIMHTTP_SINK_FILE;
}

void simhttp_add_header(struct simhttp_req *req, const char *name, const char *value)
{
    evbuffer_add_printf(req->resp, "%s: %s\r\n", name, value);
}

void simhttp_set_shape(struct simhttp_req *req, const struct simhttp_shape *shape)
{
    req->shape = *shape;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Request Entity Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

static const char *http_date(struct simhttp_server *srv)
{
    time_t now = time(NULL);
    if (now != srv->date_t) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(srv->date, sizeof(srv->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        srv->date_t = now;
    }
    return srv->date;
}

/* Prepends the status line and framing headers to the handler's headers. */
static void build_head(struct simhttp_req *r, int status, const char *ctype)
{
    struct evbuffer *head = evbuffer_new();
    evbuffer_add_printf(head, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, reason(status),
                        http_date(r->srv));
    if (ctype)
        evbuffer_add_printf(head, "Content-Type: %s\r\n", ctype);
    if (status != 204 && status != 304) {
        if (r->shape.chunked)
            evbuffer_add_printf(head, "Transfer-Encoding: chunked\r\n");
        else
            evbuffer_add_printf(head, "Content-Length: %lld\r\n", r->resp_len);
    }
    if (r->conn && !r->conn->keep_alive)
        evbuffer_add_printf(head, "Connection: close\r\n");
    evbuffer_add_buffer(head, r->resp);
    evbuffer_add(head, "\r\n", 2);
    evbuffer_free(r->resp);
    r->resp = head;
    r->resp_status = status;
    r->replied = 1;
}

static int settle_detached(struct simhttp_req *req)
{
    if (req->conn)
        return 0;
    detach_remove(req->srv, req);
    req_free(req);
    return 1;
}

static void deliver(struct simhttp_req *req, int status)
{
    req->srv->h->on_reply(req, status, req->srv->ctx);
    if (req->complete && req->dispatched)
        emit(req->conn);
}

void simhttp_reply(struct simhttp_req *req, int status, const char *ctype, const void *body,
                   size_t len)
{
    if (req->replied || settle_detached(req))
        return;
    if (len > 0) {
        req->resp_body = evbuffer_new();
        evbuffer_add(req->resp_body, body, len);
    }
    req->resp_len = (long long)len;
    build_head(req, status, ctype);
    deliver(req, status);
}

void simhttp_reply_file(struct simhttp_req *req, int status, const char *ctype, const char *path)
{
    struct stat st;
    if (req->replied || settle_detached(req))
        return;
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        simhttp_reply(req, 404, NULL, NULL, 0);
        return;
    }
    req->resp_fd = fd;
    req->resp_len = (long long)st.st_size;
    build_head(req, status, ctype);
    deliver(req, status);
}

void simhttp_close(struct simhttp_req *req)
{
    if (req->replied || settle_detached(req))
        return;
    req->replied = 1;
    struct simhttp_conn *c = req->conn;
    c->close_now = 1;
    if (!c->in_parse)
        conn_free(c);
}
